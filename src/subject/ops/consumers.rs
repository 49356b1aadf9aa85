//! `consumers`, `consumer.delete` and `consumer.reset` (and `GET`, `DELETE`, `PUT
//! …/consumers[/{name}]`): durable consumers for operators. A reset applies to a live
//! subscription of the consumer in the same event (`Subscription::reset_to`).

use super::super::delivery::pump;
use super::super::Core;
use super::subscribe::end_consumer_subscriptions;
use crate::http::Failure;
use durable_stream_protocol::consumers::{check_reset, pending, ConsumerInfo, MAX_LISTED_CONSUMERS};
use durable_stream_protocol::frame::{encode_ok, encode_reset};
use durable_stream_protocol::{ProtocolError, RequestId, Seq, Subscription};
use serde_json::{json, Value};
use std::collections::HashMap;

/// `{"consumers":[…],"last":N}`, with `"truncated":true` beyond [`MAX_LISTED_CONSUMERS`].
pub fn list(core: &Core) -> Result<Value, Failure> {
    let last = core.meta.last_seq;
    let live: HashMap<&str, &Subscription> =
        core.sessions.subscriptions().filter_map(|sub| Some((sub.consumer.as_deref()?, sub))).collect();
    let mut stored = core.store.consumers(MAX_LISTED_CONSUMERS + 1)?;
    let truncated = stored.len() > MAX_LISTED_CONSUMERS;
    stored.truncate(MAX_LISTED_CONSUMERS);
    let consumers: Vec<ConsumerInfo> = stored
        .into_iter()
        .map(|consumer| {
            let subscription = live.get(consumer.name.as_str()).copied();
            ConsumerInfo::new(consumer, last, subscription)
        })
        .collect();
    let mut listing = json!({ "consumers": consumers, "last": last });
    if truncated {
        listing["truncated"] = true.into();
    }
    Ok(listing)
}

/// Deletes a consumer; a connection subscribed as it gets `err` `conflict` and its
/// subscription ends.
pub fn delete(core: &mut Core, name: &str) -> Result<Value, Failure> {
    if !core.store.delete_consumer(name)? {
        return Err(ProtocolError::not_found(format!("subject {:?} has no consumer {name:?}", core.meta.subject)).into());
    }
    let deleted = ProtocolError::conflict(format!("consumer {name:?} was deleted; subscribe again to start it over"));
    end_consumer_subscriptions(core, name, None, &deleted);
    Ok(json!({ "deleted": true }))
}

/// Moves (or creates) a consumer's acknowledged position to `acked`. A connection subscribed
/// as it gets `{"op":"reset",…}`, its in-flight messages are dropped, and delivery goes on at
/// `acked + 1`.
pub fn reset(core: &mut Core, name: &str, acked: Seq, now: u64) -> Result<Value, Failure> {
    let last = core.meta.last_seq;
    check_reset(acked, last)?;
    core.store.set_consumer_acked(name, acked, now)?;
    let bounds = core.meta.bounds();
    let notice = encode_reset(name, acked);
    for session in core.sessions.consumer_mut(name, None) {
        if let Some(sub) = session.sub.as_mut() {
            sub.reset_to(acked);
        }
        session.send(&notice);
        pump(session, &core.store, &core.config, bounds, None, now)?;
        session.save();
    }
    Ok(json!({ "name": name, "acked": acked, "pending": pending(last, acked) }))
}

pub fn list_over_websocket(core: &Core, id: Option<&RequestId>) -> Result<String, Failure> {
    Ok(encode_ok(id, list(core)?))
}

pub fn delete_over_websocket(core: &mut Core, id: Option<&RequestId>, name: &str) -> Result<String, Failure> {
    Ok(encode_ok(id, delete(core, name)?))
}

pub fn reset_over_websocket(core: &mut Core, id: Option<&RequestId>, name: &str, acked: Seq, now: u64) -> Result<String, Failure> {
    Ok(encode_ok(id, reset(core, name, acked, now)?))
}
