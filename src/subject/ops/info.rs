//! `info`: the subject's bounds, size, subscribers and epoch.

use super::super::Core;
use crate::http::Failure;
use durable_stream_protocol::frame::encode_ok;
use durable_stream_protocol::RequestId;
use serde_json::json;

pub fn info(core: &Core) -> Result<serde_json::Value, Failure> {
    let bounds = core.meta.bounds();
    Ok(json!({
        "subject": core.meta.subject,
        "first": bounds.first,
        "last": bounds.last,
        "count": bounds.count(),
        "bytes": core.meta.bytes,
        "subscribers": core.sessions.subscriber_count(),
        "connections": core.sessions.len(),
        "consumers": core.store.consumer_count()?,
        "epoch": core.meta.epoch,
    }))
}

pub fn over_websocket(core: &Core, id: Option<&RequestId>) -> Result<String, Failure> {
    Ok(encode_ok(id, info(core)?))
}
