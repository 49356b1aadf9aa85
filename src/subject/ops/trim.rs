//! `trim`: delete messages up to a sequence. Sequence numbers are never reused.

use super::super::Core;
use crate::http::Failure;
use durable_stream_protocol::frame::encode_ok;
use durable_stream_protocol::{retention, RequestId, Seq};
use serde_json::json;

pub fn trim(core: &mut Core, upto: Seq, now: u64) -> Result<serde_json::Value, Failure> {
    let deleted = match retention::trim_upto(core.meta.bounds(), upto) {
        Some(upto) => super::publish::delete_upto(core, upto, now)?,
        None => 0,
    };
    // Subscribers that were owed trimmed messages move on to what remains.
    core.pump_all(now)?;
    Ok(json!({ "first": core.meta.first_seq, "last": core.meta.last_seq, "deleted": deleted }))
}

pub fn over_websocket(core: &mut Core, id: Option<&RequestId>, upto: Seq, now: u64) -> Result<String, Failure> {
    Ok(encode_ok(id, trim(core, upto, now)?))
}
