//! `get`: one message by its sequence, or the newest one.

use super::super::store::StoredMessage;
use super::super::Core;
use crate::http::Failure;
use durable_stream_protocol::frame::encode_message_reply;
use durable_stream_protocol::get::MessageRef;
use durable_stream_protocol::RequestId;

/// The message, or `not_found` with the subject's bounds when it was trimmed or not written yet.
pub fn get(core: &Core, message: MessageRef) -> Result<StoredMessage, Failure> {
    let bounds = core.meta.bounds();
    let seq = message.locate(bounds)?;
    let found = core.store.read(seq, seq, 1)?.pop();
    // Within the bounds every sequence is stored: a miss means the storage disagrees with them.
    found.ok_or_else(|| worker::Error::RustError(format!("message {seq} is missing from storage within {bounds:?}")).into())
}

pub fn over_websocket(core: &Core, id: Option<&RequestId>, message: MessageRef) -> Result<String, Failure> {
    Ok(encode_message_reply(id, &get(core, message)?.outgoing()))
}
