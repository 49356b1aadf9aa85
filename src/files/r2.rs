//! R2 multipart uploads through the runtime's binding.
//!
//! Parts go in as JavaScript values: the request's own body stream (a part upload streams
//! straight through) or a part the Worker assembled in a `Uint8Array`. workers-rs's typed
//! `MultipartUpload::upload_part` takes neither without first copying the bytes into wasm memory,
//! so parts go through the binding's `uploadPart` itself.

use durable_stream_protocol::files::PartRef;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{R2Bucket, R2MultipartUpload, R2UploadedPart};
use worker::{Bucket, HttpMetadata, Object, Result, UploadedPart};

/// Starts an upload of `key` that stores `metadata` with the file; returns its upload id.
pub async fn create(bucket: &Bucket, key: &str, metadata: HttpMetadata) -> Result<String> {
    let upload = bucket.create_multipart_upload(key).http_metadata(metadata).execute().await?;
    Ok(upload.upload_id().await)
}

/// Stores part `part_number` (`value`: a `Uint8Array` or a stream of known length); returns the
/// part's etag.
pub async fn upload_part(bucket: &Bucket, key: &str, upload_id: &str, part_number: u16, value: JsValue) -> Result<String> {
    let binding: &R2Bucket = bucket.as_ref().unchecked_ref();
    let upload: R2MultipartUpload = binding.resume_multipart_upload(key.into(), upload_id.into())?.unchecked_into();
    let part: R2UploadedPart = JsFuture::from(upload.upload_part(part_number, value)?).await?.unchecked_into();
    Ok(part.etag()?)
}

/// R2's error code for an upload it does not have (any more).
const NO_SUCH_UPLOAD: u32 = 10024;
/// R2's error code for a completion naming a part it does not hold under that etag.
const INVALID_PART: u32 = 10025;

/// Whether `error` is R2's error `code` (the binding puts it in the message, "… (10025)").
fn has_code(error: &worker::Error, code: u32) -> bool {
    error.to_string().contains(&format!("({code})"))
}

/// Whether R2 no longer has the upload: aborted, completed, or expired (a bucket's default
/// lifecycle rule aborts an unfinished upload after 7 days).
pub fn is_no_such_upload(error: &worker::Error) -> bool {
    has_code(error, NO_SUCH_UPLOAD)
}

/// Whether R2 refused a completion because a part's etag is not that of the part it holds.
pub fn is_invalid_part(error: &worker::Error) -> bool {
    has_code(error, INVALID_PART)
}

/// Joins `parts` into the file (which replaces any file under `key`).
pub async fn complete(bucket: &Bucket, key: &str, upload_id: &str, parts: &[PartRef]) -> Result<Object> {
    let parts = parts.iter().map(|part| UploadedPart::new(part.part_number, part.etag.clone()));
    bucket.resume_multipart_upload(key, upload_id)?.complete(parts).await
}

/// Drops the upload and every part stored for it.
pub async fn abort(bucket: &Bucket, key: &str, upload_id: &str) -> Result<()> {
    bucket.resume_multipart_upload(key, upload_id)?.abort().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_refusals_are_told_apart_by_their_code() {
        let gone = worker::Error::RustError("completeMultipartUpload: The specified multipart upload does not exist. (10024)".into());
        let stale = worker::Error::RustError("completeMultipartUpload: One or more of the specified parts could not be found. (10025)".into());
        let other = worker::Error::RustError("uploadPart: Internal error (10001), upload 10024".into());
        assert!(is_no_such_upload(&gone) && !is_invalid_part(&gone));
        assert!(is_invalid_part(&stale) && !is_no_such_upload(&stale));
        assert!(!is_no_such_upload(&other) && !is_invalid_part(&other), "a code only in parentheses");
    }
}
