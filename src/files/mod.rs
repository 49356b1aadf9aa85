//! The R2 file API under `/v1/files` (docs/PROTOCOL.md, "Files").
//!
//! `PUT`/`POST /v1/files/{key}` stores a file, `GET`/`HEAD` read it (single byte ranges, etag
//! preconditions), `DELETE` removes it and `GET /v1/files` lists keys. Bodies stream through the
//! Worker in both directions and are never buffered whole: an upload without `Content-Length`, or
//! above the single-put limit, goes to R2 in parts (`streamed`). Uploads in parts on the S3 model
//! are `parts` (with their index, `index`), signed links `link`. The header and query parsing
//! lives in the submodules as plain functions with native unit tests.

mod conditional;
mod index;
mod key;
pub mod legacy;
mod link;
mod parts;
mod query;
mod r2;
mod range;
mod streamed;

use crate::access;
use crate::auth::Principal;
use crate::http::{self, Failure};
use crate::request_url;
use crate::body::read_limited;
use conditional::Precondition;
use durable_stream_protocol::files::FileLimits;
use durable_stream_protocol::token::Actions;
use durable_stream_protocol::ProtocolError;
pub use index::FileUploads;
use link::SigningKeys;
use query::Subresource;
use range::ByteRange;
use serde::Serialize;
use worker::{
    Bucket, Conditional, Context, Data, Date, EncodeBody, Env, Headers, HttpMetadata, Include, Method, Object, Request,
    Response, ResponseBuilder,
};

const BUCKET_BINDING: &str = "FILES";
/// Served (and listed) when the upload named no Content-Type.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// How often a read starts over when the file is replaced between its metadata and its body.
const READ_ATTEMPTS: usize = 3;

/// Test builds only: aborts upload `{uploadId}/{key}` in R2 without telling the upload index,
/// as R2's lifecycle rule does to an upload left unfinished for 7 days.
#[cfg(feature = "test-hooks")]
pub async fn abort_in_r2_only(env: &Env, upload: &str) -> Result<Response, Failure> {
    let (upload_id, encoded_key) =
        upload.split_once('/').ok_or_else(|| ProtocolError::bad_request("expected /test/r2-abort/{uploadId}/{key}"))?;
    r2::abort(&env.bucket(BUCKET_BINDING)?, &key::parse_key(encoded_key)?, upload_id).await?;
    Ok(Response::empty()?.with_status(204))
}

/// Serves the methods the Worker's route table (`routes.rs`) lets through: GET on the listing;
/// GET, HEAD, PUT, POST and DELETE on a file and its subresources (`?uploads`, `?uploadId=…`,
/// `?link`) — what the caller's credentials allow.
pub async fn handle(mut req: Request, env: &Env, ctx: &Context, principal: &Principal) -> Result<Response, Failure> {
    let path = req.path();
    let bucket = env.bucket(BUCKET_BINDING)?;
    let Some(encoded_key) = path.strip_prefix("/v1/files/") else {
        let query = query::parse_list_query(http::query(&req))?;
        principal.require_file_listing(query.prefix.as_deref().unwrap_or_default())?;
        if query.uploads {
            return parts::list_uploads(env, query.prefix.as_deref(), query.cursor.as_deref(), query.limit).await;
        }
        return list(query, &bucket).await;
    };
    let key = key::parse_key(encoded_key)?;
    let limits = file_limits(env)?;
    let subresource = query::parse_subresource(http::query(&req))?;
    match &subresource {
        Subresource::None => principal.require_file(access::file_request(&req.inner().method()), &key)?,
        // An upload in parts writes the file, even to list its parts; a link needs what it
        // grants, which its request body says.
        Subresource::Uploads { .. } | Subresource::Upload { .. } => principal.require_file(Actions::FILES_WRITE, &key)?,
        Subresource::Link => {}
    }
    match (req.method(), subresource) {
        (Method::Put | Method::Post, Subresource::None) => {
            stored(&key, &upload(req, env, ctx, &bucket, &key, &limits, limits.max_file_bytes).await?)
        }
        (Method::Delete, Subresource::None) => delete(&bucket, &key).await,
        (Method::Head, Subresource::None) => read(&req, &bucket, &key, false).await,
        (Method::Get, Subresource::None) => read(&req, &bucket, &key, true).await,
        (Method::Post, Subresource::Uploads { part_size }) => {
            parts::create(&req, env, &bucket, &key, part_size.unwrap_or(limits.part_bytes)).await
        }
        (Method::Put, Subresource::Upload { upload_id, part_number: Some(part_number) }) => {
            parts::upload_part(&req, env, &bucket, &key, &upload_id, part_number, &limits).await
        }
        (Method::Get, Subresource::Upload { upload_id, part_number: None }) => parts::list_parts(env, &key, &upload_id).await,
        (Method::Post, Subresource::Upload { upload_id, part_number: None }) => {
            parts::complete(&mut req, env, &bucket, &key, &upload_id, &limits).await
        }
        (Method::Delete, Subresource::Upload { upload_id, part_number: None }) => parts::abort(env, &bucket, &key, &upload_id).await,
        (Method::Post, Subresource::Link) => create_link(&mut req, env, &key, &limits, principal).await,
        (_, other) => {
            let (name, operations) = other.operations();
            Err(ProtocolError::bad_request(format!("{} is not an operation on {name}; it takes {operations}", req.inner().method())).into())
        }
    }
}

/// Whether the request presents a signed link (then [`handle_signed`] serves it, without the API
/// key).
pub fn is_signed(req: &Request) -> bool {
    http::query(req).iter().any(|(name, _)| name == link::SIGNATURE_PARAM)
}

/// A request to `/v1/files/{key}` with a signed link: the file alone, as the link allows.
pub async fn handle_signed(req: Request, env: &Env, ctx: &Context) -> Result<Response, Failure> {
    let path = req.path();
    let encoded_key = path.strip_prefix("/v1/files/").unwrap_or_default();
    let key = key::parse_key(encoded_key)?;
    let method = req.inner().method();
    let query = http::query(&req);
    let grant = signing_keys(env).and_then(|keys| link::verify(http::pairs(&query), &key, &method, now_seconds(), &keys))?;
    let bucket = env.bucket(BUCKET_BINDING)?;
    if method != "PUT" {
        return read(&req, &bucket, &key, method == "GET").await;
    }
    if let Some(allowed) = &grant.content_type {
        if req.headers().get("content-type")?.as_deref() != Some(allowed.as_str()) {
            let message = format!("this link uploads only Content-Type {allowed:?}; send that header");
            return Err(ProtocolError::forbidden(message).into());
        }
    }
    let limits = file_limits(env)?;
    let max_bytes = grant.max_bytes.map_or(limits.max_file_bytes, |max| max.min(limits.max_file_bytes));
    stored(&key, &upload(req, env, ctx, &bucket, &key, &limits, max_bytes).await?)
}

/// `POST /v1/files/{key}?link` with `{"ttl":seconds,"method":"GET"|"PUT",…}`. A link made with
/// an access token allows only what the token does on the file, and ends with the token.
async fn create_link(
    req: &mut Request,
    env: &Env,
    key: &str,
    limits: &FileLimits,
    principal: &Principal,
) -> Result<Response, Failure> {
    let keys = signing_keys(env)?;
    let body = read_limited(req, link::MAX_LINK_REQUEST_BYTES).await?;
    let token_expiry = match principal {
        Principal::Token(claims) => Some(claims.exp),
        Principal::Master => None,
    };
    let grant = link::plan(key, &body, now_seconds(), limits.max_file_bytes, token_expiry)?;
    principal.require_file(access::file_request(grant.method.as_str()), key)?;
    let url = request_url::with_query(&req.inner().url(), grant.query(&keys));
    let expires = js_sys::Date::new(&((grant.expires * 1000) as f64).into()).to_iso_string();
    json_answer(200, &serde_json::json!({ "url": url, "expires": String::from(expires), "method": grant.method }))
}

fn signing_keys(env: &Env) -> Result<SigningKeys, ProtocolError> {
    let secret = |name| env.secret(name).ok().map(|value| value.to_string());
    SigningKeys::new(secret(link::SIGNING_KEY_SECRET), secret(link::PREVIOUS_SIGNING_KEY_SECRET))
}

fn now_seconds() -> u64 {
    Date::now().as_millis() / 1000
}

/// `PUT /v1/files/{key}` (and `/r2/`'s POST): streams the request's body into R2 under `key`
/// with its caching headers, refusing more than `max_bytes`: one put when its length is known
/// and small enough, parts otherwise (a chunked upload).
async fn upload(
    req: Request,
    env: &Env,
    ctx: &Context,
    bucket: &Bucket,
    key: &str,
    limits: &FileLimits,
    max_bytes: u64,
) -> Result<Object, Failure> {
    let length = content_length(&req)?;
    if let Some(length) = length.filter(|length| *length > max_bytes) {
        return Err(ProtocolError::too_large(format!("file is {length} bytes; the limit is {max_bytes}")).into());
    }
    let metadata = http_metadata(req.headers())?;
    let body = req.inner().body();
    let object = match (length, body) {
        (Some(0), _) => put_object(bucket, key, Vec::new(), &metadata).await?,
        (Some(length), None) => {
            return Err(ProtocolError::bad_request(format!("Content-Length is {length} but there is no body")).into())
        }
        // R2 streams a body of known length into one object.
        (Some(length), Some(stream)) if length <= limits.single_put_max_bytes => put_object(bucket, key, stream, &metadata).await?,
        (_, body) => {
            let target = streamed::Target { bucket: bucket.clone(), key: key.to_owned(), metadata };
            streamed::store(ctx, env, target, body, limits.part_bytes as u32, max_bytes).await?
        }
    };
    Ok(object)
}

/// One R2 put (R2 needs the length of a stream up front).
async fn put_object(bucket: &Bucket, key: &str, value: impl Into<Data>, metadata: &HttpMetadata) -> Result<Object, Failure> {
    let object = bucket.put(key, value).http_metadata(metadata.clone()).execute().await?;
    Ok(object.ok_or_else(|| worker::Error::RustError("R2 put without a condition returned no object".into()))?)
}

/// The answer to a stored file: 201, its ETag, `{"key","size","etag"}`.
fn stored(key: &str, object: &Object) -> Result<Response, Failure> {
    let mut response = json_answer(201, &serde_json::json!({ "key": key, "size": object.size(), "etag": object.etag() }))?;
    response.headers_mut().set("etag", &object.http_etag())?;
    Ok(response)
}

fn json_answer(status: u16, value: &impl Serialize) -> Result<Response, Failure> {
    Ok(http::json_response(status, &serde_json::to_value(value).map_err(worker::Error::from)?)?)
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
    let listed = list_page(query, bucket).await?;
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

/// One page of R2's listing, with each object's HTTP metadata.
async fn list_page(query: query::ListQuery, bucket: &Bucket) -> Result<worker::Objects, Failure> {
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
    Ok(listing.execute().await?)
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

/// The request's `Content-Length`, if it has one.
fn content_length(req: &Request) -> Result<Option<u64>, Failure> {
    let Some(text) = req.headers().get("content-length")? else { return Ok(None) };
    Ok(Some(parse_content_length(&text)?))
}

fn parse_content_length(text: &str) -> Result<u64, ProtocolError> {
    let invalid = || ProtocolError::bad_request(format!("Content-Length {text:?} is not a byte count"));
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse().map_err(|_| invalid())
}

/// `MAX_FILE_BYTES`, `FILE_SINGLE_PUT_MAX_BYTES` and `FILE_PART_BYTES`. A variable that is set but
/// unusable is a misconfiguration: refused (and logged) rather than silently replaced.
fn file_limits(env: &Env) -> Result<FileLimits, Failure> {
    FileLimits::from_lookup(|name| env.var(name).ok().map(|value| value.to_string()))
        .map_err(|error| Failure::Internal(worker::Error::RustError(error.to_string())))
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
}
