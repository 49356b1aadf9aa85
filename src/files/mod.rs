//! The R2 file API under `/v1/files` (docs/PROTOCOL.md, "Files").
//!
//! `PUT`/`POST /v1/files/{key}` stores a file, `GET`/`HEAD` read it (single byte ranges, etag
//! preconditions), `DELETE` removes it and `GET /v1/files` lists keys. Bodies stream through the
//! Worker in both directions and are never buffered whole. The header and query parsing lives
//! in the submodules as plain functions with native unit tests.

mod conditional;
mod key;
mod query;
mod range;

use crate::access;
use crate::auth::Principal;
use crate::http::{self, Failure};
use conditional::Precondition;
use durable_stream_protocol::ProtocolError;
use range::ByteRange;
use worker::{
    Bucket, Conditional, Date, EncodeBody, Env, Headers, HttpMetadata, Include, Method, Object, Request, Response,
    ResponseBuilder,
};

const BUCKET_BINDING: &str = "FILES";
const MAX_FILE_BYTES_VAR: &str = "MAX_FILE_BYTES";
/// R2's limit for a single (non-multipart) upload.
const DEFAULT_MAX_FILE_BYTES: u64 = 5 * 1024 * 1024 * 1024 - 5 * 1024 * 1024;
/// Served (and listed) when the upload named no Content-Type.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// How often a read starts over when the file is replaced between its metadata and its body.
const READ_ATTEMPTS: usize = 3;

/// Serves the methods the Worker's route table (`routes.rs`) lets through: GET on the listing;
/// GET, HEAD, PUT, POST and DELETE on a file — what the caller's credentials allow.
pub async fn handle(req: Request, env: &Env, principal: &Principal) -> Result<Response, Failure> {
    let path = req.path();
    let Some(encoded_key) = path.strip_prefix("/v1/files/") else {
        let query = query::parse_list_query(req.url()?.query_pairs())?;
        principal.require_file_listing(query.prefix.as_deref().unwrap_or_default())?;
        return list(query, &env.bucket(BUCKET_BINDING)?).await;
    };
    let key = key::parse_key(encoded_key)?;
    principal.require_file(access::file_request(&req.inner().method()), &key)?;
    let bucket = env.bucket(BUCKET_BINDING)?;
    match req.method() {
        Method::Put | Method::Post => write(&req, env, &bucket, &key).await,
        Method::Delete => delete(&bucket, &key).await,
        Method::Head => read(&req, &bucket, &key, false).await,
        _ => read(&req, &bucket, &key, true).await,
    }
}

/// `PUT /v1/files/{key}`: streams the body into R2 (which needs its length up front).
async fn write(req: &Request, env: &Env, bucket: &Bucket, key: &str) -> Result<Response, Failure> {
    let Some(length) = req.headers().get("content-length")? else {
        let error = ProtocolError::bad_request("Content-Length required: uploads are streamed and R2 needs the size first");
        return error_with_status(411, &error);
    };
    let length = parse_content_length(&length)?;
    let max = max_file_bytes(env)?;
    if length > max {
        return Err(ProtocolError::too_large(format!("file is {length} bytes; the limit is {max}")).into());
    }
    let metadata = http_metadata(req.headers())?;
    let put = match (req.inner().body(), length) {
        (Some(stream), 1..) => bucket.put(key, stream),
        (_, 0) => bucket.put(key, Vec::new()),
        (None, _) => return Err(ProtocolError::bad_request(format!("Content-Length is {length} but there is no body")).into()),
    };
    let object = put
        .http_metadata(metadata)
        .execute()
        .await?
        .ok_or_else(|| worker::Error::RustError("R2 put without a condition returned no object".into()))?;
    let mut response = http::json_response(
        201,
        &serde_json::json!({ "key": key, "size": object.size(), "etag": object.etag() }),
    )?;
    response.headers_mut().set("etag", &object.http_etag())?;
    Ok(response)
}

/// `GET`/`HEAD /v1/files/{key}`: preconditions, then the whole file or one range.
async fn read(req: &Request, bucket: &Bucket, key: &str, with_body: bool) -> Result<Response, Failure> {
    let headers = req.headers();
    let if_match = headers.get("if-match")?;
    let if_none_match = headers.get("if-none-match")?;
    let if_range = headers.get("if-range")?;
    let range_header = headers.get("range")?;
    for _ in 0..READ_ATTEMPTS {
        let Some(meta) = bucket.head(key).await? else { return Err(not_found(key)) };
        let etag = meta.etag();
        match conditional::evaluate(if_match.as_deref(), if_none_match.as_deref(), &etag) {
            Precondition::Failed => {
                return error_with_status(412, &ProtocolError::conflict("If-Match does not match the file's current ETag"))
            }
            Precondition::NotModified => {
                let headers = cache_headers(&meta, &meta.http_metadata())?;
                return Ok(ResponseBuilder::new().with_status(304).with_headers(headers).empty());
            }
            Precondition::Proceed => {}
        }
        let size = meta.size();
        let requested = range_header
            .as_deref()
            .filter(|_| conditional::range_allowed(if_range.as_deref(), &etag))
            .and_then(range::parse_range);
        let selected = match requested.map(|spec| spec.resolve(size)) {
            None => None,
            Some(Some(range)) => Some(range),
            Some(None) => return range_not_satisfiable(size),
        };
        let response_headers = representation_headers(&meta)?;
        let (status, length) = match selected {
            Some(range) => {
                response_headers.set("content-range", &range.content_range())?;
                (206, range.len())
            }
            None => (200, size),
        };
        response_headers.set("content-length", &length.to_string())?;
        let response = ResponseBuilder::new().with_status(status).with_headers(response_headers);
        if !with_body {
            return Ok(response.empty());
        }
        // Read exactly the version whose metadata was checked above.
        let only_this_version = Conditional { etag_matches: Some(etag), ..Conditional::default() };
        let mut get = bucket.get(key).only_if(only_this_version);
        if let Some(ByteRange { start, .. }) = selected {
            get = get.range(worker::Range::OffsetWithLength { offset: start, length });
        }
        let Some(object) = get.execute().await? else { return Err(not_found(key)) };
        let Some(body) = object.body() else { continue }; // replaced meanwhile: start over
        // Manual: a stored Content-Encoding describes bytes that are already encoded.
        return Ok(response.with_encode_body(EncodeBody::Manual).body(body.response_body()?));
    }
    Err(ProtocolError::conflict("the file kept changing while it was being read; retry").into())
}

/// `DELETE /v1/files/{key}`: R2's delete succeeds for missing keys, so look first for the 404.
async fn delete(bucket: &Bucket, key: &str) -> Result<Response, Failure> {
    if bucket.head(key).await?.is_none() {
        return Err(not_found(key));
    }
    bucket.delete(key).await?;
    Ok(Response::empty()?.with_status(204))
}

/// `GET /v1/files?prefix=&delimiter=&cursor=&limit=`
async fn list(query: query::ListQuery, bucket: &Bucket) -> Result<Response, Failure> {
    let mut listing = bucket.list().limit(query.limit).include(vec![Include::HttpMetadata]);
    if let Some(prefix) = query.prefix {
        listing = listing.prefix(prefix);
    }
    if let Some(delimiter) = query.delimiter {
        listing = listing.delimiter(delimiter);
    }
    if let Some(cursor) = query.cursor {
        listing = listing.cursor(cursor);
    }
    let listed = listing.execute().await?;
    let objects: Vec<serde_json::Value> = listed
        .objects()
        .iter()
        .map(|object| {
            serde_json::json!({
                "key": object.key(),
                "size": object.size(),
                "etag": object.etag(),
                "uploaded": String::from(js_sys::Date::from(object.uploaded()).to_iso_string()),
                "contentType": object.http_metadata().content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            })
        })
        .collect();
    let truncated = listed.truncated();
    let body = serde_json::json!({
        "objects": objects,
        "prefixes": listed.delimited_prefixes(),
        "truncated": truncated,
        "cursor": if truncated { listed.cursor() } else { None },
    });
    Ok(http::json_response(200, &body)?)
}

/// The HTTP metadata stored with an upload, taken from its request headers.
fn http_metadata(headers: &Headers) -> Result<HttpMetadata, Failure> {
    let cache_expiry = match headers.get("expires")? {
        None => None,
        Some(text) => {
            let date = js_sys::Date::new(&text.as_str().into());
            if date.get_time().is_nan() {
                return Err(ProtocolError::bad_request("Expires is not a valid HTTP date").into());
            }
            Some(Date::from(date))
        }
    };
    Ok(HttpMetadata {
        content_type: headers.get("content-type")?,
        content_language: headers.get("content-language")?,
        content_disposition: headers.get("content-disposition")?,
        content_encoding: headers.get("content-encoding")?,
        cache_control: headers.get("cache-control")?,
        cache_expiry,
    })
}

/// ETag, Last-Modified and the stored caching headers: what a 304 carries too.
fn cache_headers(object: &Object, metadata: &HttpMetadata) -> Result<Headers, Failure> {
    let headers = Headers::new();
    headers.set("etag", &object.http_etag())?;
    headers.set("last-modified", &http_date(object.uploaded()))?;
    if let Some(cache_control) = &metadata.cache_control {
        headers.set("cache-control", cache_control)?;
    }
    if let Some(expires) = &metadata.cache_expiry {
        headers.set("expires", &http_date(expires.clone()))?;
    }
    Ok(headers)
}

/// The headers of a 200/206 answer, except the length (which depends on the range).
fn representation_headers(object: &Object) -> Result<Headers, Failure> {
    let metadata = object.http_metadata();
    let headers = cache_headers(object, &metadata)?;
    headers.set("content-type", metadata.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE))?;
    for (name, value) in [
        ("content-language", &metadata.content_language),
        ("content-disposition", &metadata.content_disposition),
        ("content-encoding", &metadata.content_encoding),
    ] {
        if let Some(value) = value {
            headers.set(name, value)?;
        }
    }
    headers.set("accept-ranges", "bytes")?;
    Ok(headers)
}

/// IMF-fixdate, e.g. `Tue, 15 Nov 1994 08:12:31 GMT`.
fn http_date(date: Date) -> String {
    js_sys::Date::from(date).to_utc_string().into()
}

fn parse_content_length(text: &str) -> Result<u64, ProtocolError> {
    let invalid = || ProtocolError::bad_request(format!("Content-Length {text:?} is not a byte count"));
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse().map_err(|_| invalid())
}

/// `MAX_FILE_BYTES` (a positive integer) or R2's single-upload limit. A variable that is set but
/// unusable is a misconfiguration: refused (and logged) rather than silently replaced.
fn max_file_bytes(env: &Env) -> Result<u64, Failure> {
    let Ok(var) = env.var(MAX_FILE_BYTES_VAR) else { return Ok(DEFAULT_MAX_FILE_BYTES) };
    parse_max_file_bytes(&var.to_string()).map_err(|reason| {
        Failure::Internal(worker::Error::RustError(format!("invalid configuration variable {MAX_FILE_BYTES_VAR}: {reason}")))
    })
}

fn parse_max_file_bytes(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive integer")),
    }
}

fn not_found(key: &str) -> Failure {
    ProtocolError::not_found(format!("no file {key:?}")).into()
}

/// A JSON error body with a status outside the error codes' own (411, 412, 416).
fn error_with_status(status: u16, error: &ProtocolError) -> Result<Response, Failure> {
    Ok(http::json_text_response(status, error.to_http_body())?)
}

fn range_not_satisfiable(size: u64) -> Result<Response, Failure> {
    let error = ProtocolError::bad_request(format!("range not satisfiable for a file of {size} bytes"));
    let mut response = error_with_status(416, &error)?;
    response.headers_mut().set("content-range", &range::unsatisfied_content_range(size))?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(parse_content_length("0").unwrap(), 0);
        assert_eq!(parse_content_length("5368709121").unwrap(), 5_368_709_121);
        for bad in ["", "-1", "+1", "1.5", "abc", "99999999999999999999999"] {
            assert!(parse_content_length(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn max_file_bytes_must_be_positive() {
        assert_eq!(parse_max_file_bytes(" 1024 "), Ok(1024));
        assert!(parse_max_file_bytes("0").is_err());
        assert!(parse_max_file_bytes("5GiB").is_err());
    }
}
