//! Uploads in parts on the S3 model (docs/PROTOCOL.md, "Uploads in parts"): create an upload,
//! upload numbered parts (each streamed straight into R2), list them, complete the upload with
//! the part list, abort it, and list the unfinished ones. R2 keeps the parts; the index
//! (`index.rs`) keeps what R2's binding cannot list.

use super::index::UploadIndex;
use super::{content_length, error_with_status, http_metadata, json_answer, r2, stored};
use crate::http::Failure;
use crate::body::read_limited;
use durable_stream_protocol::files::{check_completion, check_part, Completion, CreatedUpload, FileLimits, UploadedPart};
use durable_stream_protocol::{strict_json, ProtocolError};
use worker::{Bucket, Env, Request, Response};

/// Largest completion body: 10,000 parts with etags of a few hundred bytes each.
const MAX_COMPLETION_BYTES: usize = 4 * 1024 * 1024;
/// A completion is `{"parts":[{…}]}`: three levels.
const COMPLETION_DEPTH: usize = 3;

/// `POST /v1/files/{key}?uploads[&partSize=N]`: the upload's metadata comes from the request's
/// headers, as for a `PUT`.
pub async fn create(req: &Request, env: &Env, bucket: &Bucket, key: &str, part_size: u64) -> Result<Response, Failure> {
    let metadata = http_metadata(req.headers())?;
    let upload_id = r2::create(bucket, key, metadata).await?;
    if let Err(error) = UploadIndex::open(env)?.create(key, &upload_id, part_size).await {
        // Unrecorded, it could be neither listed nor resumed: drop it (best effort).
        let _ = r2::abort(bucket, key, &upload_id).await;
        return Err(error);
    }
    let created = CreatedUpload { key: key.to_owned(), upload_id, part_size };
    json_answer(201, &created)
}

/// `PUT /v1/files/{key}?uploadId=…&partNumber=N`: the body streams into R2 as that part,
/// replacing an earlier upload of the same number.
pub async fn upload_part(
    req: &Request,
    env: &Env,
    bucket: &Bucket,
    key: &str,
    upload_id: &str,
    part_number: u16,
    limits: &FileLimits,
) -> Result<Response, Failure> {
    let Some(length) = content_length(req)? else {
        let error = ProtocolError::bad_request("Content-Length required: a part streams straight into R2, which needs its size first");
        return error_with_status(411, &error);
    };
    let index = UploadIndex::open(env)?;
    let upload = index.find(key, upload_id).await?;
    check_part(upload.part_size, part_number, length, limits.max_file_bytes)?;
    let body = req.inner().body().ok_or_else(|| ProtocolError::bad_request(format!("Content-Length is {length} but there is no body")))?;
    let etag = match r2::upload_part(bucket, key, upload_id, part_number, body.into()).await {
        Err(error) if r2::is_no_such_upload(&error) => return Err(gone(&index, key, upload_id).await),
        outcome => outcome?,
    };
    let part = UploadedPart { part_number, etag, size: length };
    index.record_part(key, upload_id, part.clone()).await?;
    let mut response = json_answer(200, &part)?;
    response.headers_mut().set("etag", &format!("\"{}\"", part.etag))?;
    Ok(response)
}

/// `GET /v1/files/{key}?uploadId=…`
pub async fn list_parts(env: &Env, key: &str, upload_id: &str) -> Result<Response, Failure> {
    let listing = UploadIndex::open(env)?.get(key, upload_id).await?;
    json_answer(200, &listing)
}

/// `POST /v1/files/{key}?uploadId=…` with `{"parts":[{"partNumber":1,"etag":"…"},…]}`.
pub async fn complete(
    req: &mut Request,
    env: &Env,
    bucket: &Bucket,
    key: &str,
    upload_id: &str,
    limits: &FileLimits,
) -> Result<Response, Failure> {
    let body = read_limited(req, MAX_COMPLETION_BYTES).await?;
    let completion = parse_completion(&body)?;
    let index = UploadIndex::open(env)?;
    let upload = index.get(key, upload_id).await?;
    check_completion(upload.part_size, &completion.parts, &upload.parts, limits.max_file_bytes)?;
    let object = match r2::complete(bucket, key, upload_id, &completion.parts).await {
        Err(error) if r2::is_no_such_upload(&error) => return Err(gone(&index, key, upload_id).await),
        Err(error) if r2::is_invalid_part(&error) => {
            return Err(ProtocolError::bad_request(
                "R2 does not hold one of these parts under the etag given (uploaded again since?): take the etags from the part listing (GET with ?uploadId=) and complete again, or upload that part again",
            )
            .into())
        }
        outcome => outcome?,
    };
    index.forget(key, upload_id).await?;
    stored(key, &object)
}

fn parse_completion(body: &[u8]) -> Result<Completion, ProtocolError> {
    const EXAMPLE: &str = r#"{"parts":[{"partNumber":1,"etag":"…"}]}"#;
    let text = std::str::from_utf8(body).map_err(|_| ProtocolError::bad_request(format!("body must be UTF-8 JSON: {EXAMPLE}")))?;
    strict_json::validate(text, COMPLETION_DEPTH).map_err(|e| ProtocolError::bad_request(format!("body: {e}; expected {EXAMPLE}")))?;
    serde_json::from_str(text).map_err(|e| ProtocolError::bad_request(format!("body is not a part list ({e}); expected {EXAMPLE}")))
}

/// `DELETE /v1/files/{key}?uploadId=…`: R2 drops the parts.
pub async fn abort(env: &Env, bucket: &Bucket, key: &str, upload_id: &str) -> Result<Response, Failure> {
    let index = UploadIndex::open(env)?;
    index.find(key, upload_id).await?;
    match r2::abort(bucket, key, upload_id).await {
        // Gone already, as the abort asked.
        Err(error) if r2::is_no_such_upload(&error) => {}
        outcome => outcome?,
    }
    index.forget(key, upload_id).await?;
    Ok(Response::empty()?.with_status(204))
}

/// R2 no longer has an upload that the index still lists (it expired, or was aborted or
/// completed outside this API): the index forgets it too, and the caller learns how to go on.
async fn gone(index: &UploadIndex, key: &str, upload_id: &str) -> Failure {
    if let Err(failure) = index.forget(key, upload_id).await {
        return failure;
    }
    ProtocolError::not_found(format!(
        "upload {upload_id:?} of {key:?} no longer exists in R2 (R2 aborts an unfinished upload after 7 days unless the bucket's lifecycle rules say otherwise): start a new upload (POST ?uploads) and send its parts again"
    ))
    .into()
}

/// `GET /v1/files?uploads[&prefix=&cursor=&limit=]`
pub async fn list_uploads(env: &Env, prefix: Option<&str>, cursor: Option<&str>, limit: u32) -> Result<Response, Failure> {
    let listing = UploadIndex::open(env)?.list(prefix.unwrap_or_default(), cursor, limit).await?;
    json_answer(200, &listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_bodies_are_strict_and_explained() {
        let parsed = parse_completion(br#"{"parts":[{"partNumber":2,"etag":"x"}]}"#).unwrap();
        assert_eq!(parsed.parts[0].part_number, 2);
        for (bad, says) in [
            (&b"\xff"[..], "UTF-8"),
            (b"", "malformed"),
            (br#"{"parts":[{"partNumber":1,"etag":"a","etag":"b"}]}"#, "duplicate key"),
            (br#"{"parts":[{"partNumber":1}]}"#, "not a part list"),
            (br#"{"parts":[[[[1]]]]}"#, "nested"),
            (br#"[1]"#, "not a part list"),
        ] {
            let message = parse_completion(bad).unwrap_err().message;
            assert!(message.contains(says), "{bad:?}: {message}");
            assert!(message.contains("partNumber"), "{message}");
        }
    }
}
