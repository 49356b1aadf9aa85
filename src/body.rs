//! Request bodies read within a size limit, for every HTTP surface.

use crate::http::Failure;
use durable_stream_protocol::ProtocolError;
use futures_util::StreamExt;
use worker::Request;

/// The whole body, or `too_large` when it has more than `limit` bytes.
///
/// An oversized body is still read to its end (and dropped) before the refusal goes out: a
/// response sent while the request body is unread leaves the HTTP/1.1 connection unusable, so
/// clients answered mid-upload report a broken connection instead of the 413, and a proxy that
/// reuses the connection (wrangler dev's) fails the *next* request on it.
pub async fn read_limited(req: &mut Request, limit: usize) -> Result<Vec<u8>, Failure> {
    let too_large = |size: usize| ProtocolError::too_large(format!("body is {size} bytes; the limit is {limit}"));
    // A declared length within the limit is read in one call (the common, small request):
    // streaming costs a round trip through JavaScript per chunk.
    let declared = req.headers().get("content-length")?.and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length <= limit) {
        let body = req.bytes().await?;
        if body.len() > limit {
            return Err(too_large(body.len()).into());
        }
        return Ok(body);
    }
    let mut body = Vec::new();
    let mut size = 0;
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len();
            if size <= limit {
                body.extend_from_slice(&chunk);
            }
        }
    }
    if size > limit {
        return Err(too_large(size).into());
    }
    Ok(body)
}
