//! Uploads the Worker cuts into parts itself: a `PUT` without `Content-Length` (chunked), or with
//! one above `FILE_SINGLE_PUT_MAX_BYTES`.
//!
//! The body is read into parts of `FILE_PART_BYTES`, in JavaScript memory; while one part goes to
//! R2 the next one is read, so at most two parts are held at a time. A body that ends within (or
//! right at the end of) its first part is stored with one plain put instead. While the parts go up, the
//! upload is in the index (so it is listed, and can be aborted by hand should the Worker die
//! meanwhile); it is completed at the end of the body and aborted on any error. The client going
//! away is such an error, but the runtime also cancels the request's own work then: the upload
//! runs under `waitUntil`, which lets it finish the abort.

use super::index::UploadIndex;
use super::r2;
use crate::http::Failure;
use durable_stream_protocol::files::{PartRef, MAX_PARTS};
use durable_stream_protocol::ProtocolError;
use futures_channel::oneshot;
use futures_util::future::join;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::ReadableStream;
use worker::{console_error, Context, Env, Object};

/// Where the file goes and what is stored with it.
pub struct Target {
    pub bucket: worker::Bucket,
    pub key: String,
    pub metadata: worker::HttpMetadata,
}

/// Stores `body` (`None`: empty) in parts of `part_bytes`, refusing it beyond `max_bytes`.
pub async fn store(
    ctx: &Context,
    env: &Env,
    target: Target,
    body: Option<ReadableStream>,
    part_bytes: u32,
    max_bytes: u64,
) -> Result<Object, Failure> {
    let index = UploadIndex::open(env)?;
    let (sender, outcome) = oneshot::channel();
    ctx.wait_until(async move {
        let outcome = match PartReader::new(body, part_bytes, max_bytes) {
            Ok(parts) => run(&target, &index, parts).await,
            Err(error) => Err(error),
        };
        // Nobody receives this when the client went away; the upload is cleaned up all the same.
        let _ = sender.send(outcome);
    });
    outcome.await.unwrap_or_else(|_| Err(worker::Error::RustError("the upload task ended without an outcome".into()).into()))
}

async fn run(target: &Target, index: &UploadIndex, mut parts: PartReader) -> Result<Object, Failure> {
    let first = parts.next().await?;
    let second = if first.is_some() { parts.next().await? } else { None };
    let (first, second) = match (first, second) {
        (Some(first), Some(second)) => (first, second),
        // The body ended within (or right at the end of) its first part.
        (whole, _) => {
            let bytes = whole.map(|part| part.to_vec()).unwrap_or_default();
            return super::put_object(&target.bucket, &target.key, bytes, &target.metadata).await;
        }
    };
    let upload_id = r2::create(&target.bucket, &target.key, target.metadata.clone()).await?;
    let stored = match index.create(&target.key, &upload_id, parts.part_bytes.into()).await {
        Ok(()) => send_parts(target, &upload_id, [first, second], &mut parts).await,
        Err(error) => Err(error),
    };
    match stored {
        Ok(object) => {
            // The file is stored whatever happens here: a stale index entry only lists an
            // upload that is gone.
            if let Err(error) = index.forget(&target.key, &upload_id).await {
                console_error!("a completed upload stays in the upload index: {}", logged(&error));
            }
            Ok(object)
        }
        Err(error) => {
            discard(target, index, &upload_id).await;
            Err(error)
        }
    }
}

/// Sends each part while reading the next (the first two are read already), then completes
/// the upload.
async fn send_parts(target: &Target, upload_id: &str, [first, second]: [Uint8Array; 2], parts: &mut PartReader) -> Result<Object, Failure> {
    let mut sent = Vec::new();
    let (mut current, mut upcoming) = (first, Some(second));
    loop {
        let part_number = sent.len() as u16 + 1;
        let sending = r2::upload_part(&target.bucket, &target.key, upload_id, part_number, current.into());
        let (etag, next) = match upcoming.take() {
            Some(read) => (sending.await, Ok(Some(read))),
            None => join(sending, parts.next()).await,
        };
        sent.push(PartRef { part_number, etag: etag? });
        match next? {
            None => break,
            Some(_) if part_number == MAX_PARTS => {
                let most = u64::from(MAX_PARTS) * u64::from(parts.part_bytes);
                return Err(ProtocolError::too_large(format!(
                    "an upload the server cuts into parts holds at most {MAX_PARTS} parts of {} bytes (FILE_PART_BYTES), \
                     {most} bytes; upload larger files in parts yourself (POST …?uploads&partSize=…)",
                    parts.part_bytes
                ))
                .into());
            }
            Some(part) => current = part,
        }
    }
    Ok(r2::complete(&target.bucket, &target.key, upload_id, &sent).await?)
}

/// Aborts a failed upload. Should R2 refuse, the upload stays in the index, listed as
/// unfinished, so it can still be aborted by hand.
async fn discard(target: &Target, index: &UploadIndex, upload_id: &str) {
    match r2::abort(&target.bucket, &target.key, upload_id).await {
        Ok(()) => {
            if let Err(error) = index.forget(&target.key, upload_id).await {
                console_error!("an aborted upload stays in the upload index: {}", logged(&error));
            }
        }
        Err(error) => console_error!("aborting a failed upload failed; it stays listed as unfinished: {error}"),
    }
}

/// What the log says of a failure: a client error's code only, since its message names the
/// file (logs name no keys).
fn logged(failure: &Failure) -> String {
    match failure {
        Failure::Client(error) => error.code.to_string(),
        Failure::Internal(error) => error.to_string(),
    }
}

/// Cuts a body stream into parts of `part_bytes`. Each part is one `readAtLeast` of the
/// runtime's BYOB reader into a fresh `Uint8Array`: one call per part rather than one per network
/// chunk, and the bytes never pass through wasm memory.
struct PartReader {
    /// `None` once the body has ended (or when there is none).
    reader: Option<js_sys::Object>,
    part_bytes: u32,
    read: u64,
    max_bytes: u64,
}

impl PartReader {
    fn new(body: Option<ReadableStream>, part_bytes: u32, max_bytes: u64) -> Result<PartReader, Failure> {
        let reader = match body {
            None => None,
            Some(stream) => {
                let options = js_sys::Object::new();
                Reflect::set(&options, &"mode".into(), &"byob".into()).map_err(worker::Error::from)?;
                Some(call(&stream, "getReader", &[options.into()])?.unchecked_into())
            }
        };
        Ok(PartReader { reader, part_bytes, read: 0, max_bytes })
    }

    /// The next part: `part_bytes` long except the last one; `None` after the last one.
    async fn next(&mut self) -> Result<Option<Uint8Array>, Failure> {
        let Some(reader) = &self.reader else { return Ok(None) };
        let buffer = Uint8Array::new_with_length(self.part_bytes);
        let promise = call(reader, "readAtLeast", &[self.part_bytes.into(), buffer.into()])?;
        let result = JsFuture::from(js_sys::Promise::from(promise)).await.map_err(|_| {
            ProtocolError::bad_request("the request body broke off before its end (client gone?); nothing was stored")
        })?;
        let field = |name: &str| Reflect::get(&result, &name.into()).map_err(worker::Error::from);
        let part = field("value")?.dyn_into::<Uint8Array>().ok().filter(|part| part.length() > 0);
        // A short part is the last one: the stream ended within it.
        if field("done")?.as_bool() == Some(true) || part.as_ref().is_some_and(|part| part.length() < self.part_bytes) {
            self.reader = None;
        }
        self.read += part.as_ref().map_or(0, |part| u64::from(part.length()));
        if self.read > self.max_bytes {
            let limit = self.max_bytes;
            return Err(ProtocolError::too_large(format!("the file is more than {limit} bytes; the limit is {limit}")).into());
        }
        Ok(part)
    }
}

/// `target.method(args…)` on a JavaScript object.
fn call(target: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, Failure> {
    let function: js_sys::Function = Reflect::get(target, &method.into())
        .map_err(worker::Error::from)?
        .dyn_into()
        .map_err(|_| worker::Error::RustError(format!("the runtime has no {method}")))?;
    Ok(function.apply(target, &args.iter().collect()).map_err(worker::Error::from)?)
}
