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

/// R2's error code for a completion naming a part it does not hold under that etag.
const INVALID_PART: &str = "(10025)";

/// Whether R2 refused a completion because a part's etag is not that of the part it holds.
pub fn is_invalid_part(error: &worker::Error) -> bool {
    error.to_string().contains(INVALID_PART)
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
