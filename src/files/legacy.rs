//! The original durable-stream's file routes under `/r2/` (docs/PROTOCOL.md, "Legacy routes"):
//! the same bucket, uploads, reads and credentials as `/v1/files`, answered as the original
//! client expects. The key is the raw path after `/r2/`, not percent-decoded, as the original
//! took it (so a leading `/` and empty segments are part of it); `/r2/` alone lists.

use super::{file_limits, key::MAX_KEY_BYTES, list_page, query, read, upload, BUCKET_BINDING};
use crate::access;
use crate::auth::Principal;
use crate::http::{self, Failure};
use durable_stream_protocol::ProtocolError;
use worker::{Context, Env, Method, Request, Response};

pub async fn handle(req: Request, env: &Env, ctx: &Context, principal: &Principal) -> Result<Response, Failure> {
    let path = req.path();
    let key = path.strip_prefix("/r2").unwrap_or_default();
    let key = key.strip_prefix('/').unwrap_or(key).to_owned();
    let bucket = env.bucket(BUCKET_BINDING)?;
    if key.is_empty() {
        if req.method() != Method::Get {
            return Err(ProtocolError::bad_request("a file route needs a key: /r2/{key} (GET /r2/ lists)").into());
        }
        let query = query::parse_list_query(http::query(&req))?;
        principal.require_file_listing(query.prefix.as_deref().unwrap_or_default())?;
        return list(query, &bucket).await;
    }
    check_key(&key)?;
    principal.require_file(access::file_request(&req.inner().method()), &key)?;
    match req.method() {
        Method::Post => {
            let limits = file_limits(env)?;
            let object = upload(req, env, ctx, &bucket, &key, &limits, limits.max_file_bytes).await?;
            let mut response = Response::ok(format!("Put {key} successfully!"))?;
            response.headers_mut().set("etag", &object.http_etag())?;
            Ok(response)
        }
        Method::Head => read(&req, &bucket, &key, false).await,
        Method::Get => read(&req, &bucket, &key, true).await,
        // The original answers 200 for a missing key as well.
        _ => {
            bucket.delete(&key).await?;
            Ok(Response::empty()?)
        }
    }
}

/// Keys as R2 takes them: at most 1024 bytes, and (a URL's path having none) no control
/// characters.
fn check_key(key: &str) -> Result<(), ProtocolError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(ProtocolError::bad_request(format!("key is {} bytes; the limit is {MAX_KEY_BYTES}", key.len())));
    }
    if key.chars().any(char::is_control) {
        return Err(ProtocolError::bad_request("key contains a control character"));
    }
    Ok(())
}

/// `GET /r2/?prefix=&delimiter=&cursor=`: R2's list result, as the original returned it.
async fn list(query: query::ListQuery, bucket: &worker::Bucket) -> Result<Response, Failure> {
    let listed = list_page(query, bucket).await?;
    let objects: Vec<serde_json::Value> = listed
        .objects()
        .iter()
        .map(|object| {
            let metadata = object.http_metadata();
            serde_json::json!({
                "key": object.key(),
                "size": object.size(),
                "etag": object.etag(),
                "httpEtag": object.http_etag(),
                "uploaded": String::from(js_sys::Date::from(object.uploaded()).to_iso_string()),
                "version": object.version(),
                "httpMetadata": {
                    "contentType": metadata.content_type,
                    "contentLanguage": metadata.content_language,
                    "contentDisposition": metadata.content_disposition,
                    "contentEncoding": metadata.content_encoding,
                    "cacheControl": metadata.cache_control,
                },
                "customMetadata": object.custom_metadata().unwrap_or_default(),
            })
        })
        .collect();
    let mut body = serde_json::json!({
        "objects": objects,
        "truncated": listed.truncated(),
        "delimitedPrefixes": listed.delimited_prefixes(),
    });
    if let Some(cursor) = listed.cursor().filter(|_| listed.truncated()) {
        body["cursor"] = cursor.into();
    }
    Ok(http::json_response(200, &body)?)
}
