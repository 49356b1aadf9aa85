//! `sub`, `ack` and `unsub`: one subscription per connection, flow-controlled by its window.

use super::super::delivery::pump;
use super::super::Core;
use super::reply_to;
use crate::http::Failure;
use durable_stream_protocol::frame::{encode_error, encode_ok};
use durable_stream_protocol::subscription::resolve_start;
use durable_stream_protocol::{ProtocolError, RequestId, Seq, StartPosition, Subscription};
use serde_json::json;

pub fn subscribe(
    core: &mut Core,
    conn: &str,
    id: Option<&RequestId>,
    from: Option<StartPosition>,
    consumer: Option<String>,
    window: Option<u32>,
    now: u64,
) -> Result<(), Failure> {
    if core.sessions.get_mut(conn).is_some_and(|s| s.sub.is_some()) {
        return Err(ProtocolError::conflict("this connection already has a subscription; unsub first").into());
    }
    let bounds = core.meta.bounds();
    let stored_position = match consumer.as_deref() {
        Some(name) => core.store.consumer_acked(name)?,
        None => None,
    };
    let start = resolve_start(from, stored_position, bounds, |ms| core.store.first_seq_since(ms))?;
    if let Some(name) = consumer.as_deref() {
        // An explicit `from` (or a new consumer) sets the durable position.
        if from.is_some() || stored_position.is_none() {
            core.store.set_consumer_acked(name, start - 1, now)?;
        }
        take_over_consumer(core, conn, name);
    }
    let window = window.unwrap_or(core.config.default_window);
    let reply = encode_ok(id, json!({ "first": bounds.first, "last": bounds.last, "from": start }));
    begin(core, conn, Subscription::new(start, window, consumer), &reply, now)
}

/// Starts `sub` on connection `conn` (replacing any it had): the reply goes first, then what
/// is stored.
pub fn begin(core: &mut Core, conn: &str, sub: Subscription, reply: &str, now: u64) -> Result<(), Failure> {
    let bounds = core.meta.bounds();
    let Some(session) = core.sessions.get_mut(conn) else { return Ok(()) };
    session.sub = Some(sub);
    session.send(reply);
    pump(session, &core.store, &core.config, bounds, None, now)?;
    session.save();
    Ok(())
}

/// A durable consumer is delivered to one connection at a time: the newest subscriber wins
/// (a client reconnecting after a network drop must not wait for its old socket to time out).
fn take_over_consumer(core: &mut Core, conn: &str, name: &str) {
    let taken = ProtocolError::conflict(format!("consumer {name:?} was taken over by another connection"));
    end_consumer_subscriptions(core, name, Some(conn), &taken);
}

/// Ends the subscriptions of durable consumer `name` (but `except`'s), telling each why.
pub fn end_consumer_subscriptions(core: &mut Core, name: &str, except: Option<&str>, why: &ProtocolError) {
    for session in core.sessions.consumer_mut(name, except) {
        session.sub = None;
        session.save();
        session.send(&encode_error(None, why));
    }
}

pub fn ack(core: &mut Core, conn: &str, id: Option<&RequestId>, seq: Seq, now: u64) -> Result<(), Failure> {
    let bounds = core.meta.bounds();
    let Some(session) = core.sessions.get_mut(conn) else { return Ok(()) };
    let Some(sub) = session.sub.as_mut() else {
        return Err(ProtocolError::bad_request("nothing to ack: this connection has no subscription").into());
    };
    if sub.ack(seq, now, core.config.ack_wait_ms)? {
        if let Some(consumer) = sub.consumer.as_deref() {
            core.store.set_consumer_acked(consumer, sub.acked, now)?;
        }
        pump(session, &core.store, &core.config, bounds, None, now)?;
        session.save();
    }
    if id.is_some() {
        reply_to(core, conn, &encode_ok(id, json!({})));
    }
    Ok(())
}

/// Ends the subscription. Unacked messages are not redelivered; a durable consumer keeps its
/// acknowledged position for the next `sub`.
pub fn unsubscribe(core: &mut Core, conn: &str, id: Option<&RequestId>) -> Result<String, Failure> {
    if let Some(session) = core.sessions.get_mut(conn) {
        session.sub = None;
        session.save();
    }
    Ok(encode_ok(id, json!({})))
}
