//! Sending messages to subscribers: straight from memory for a publish that live subscribers
//! are waiting for, from storage in bounded pages for anyone catching up or owed a redelivery.

use super::sessions::Session;
use super::store::Store;
use durable_stream_protocol::frame::{encode_messages, OutgoingMessage};
use durable_stream_protocol::legacy;
use durable_stream_protocol::retention::StreamBounds;
use durable_stream_protocol::{Config, Seq};
use std::ops::RangeInclusive;
use wasm_bindgen::JsValue;
use worker::Result;

/// Messages just published, kept in memory for the subscribers that are up to date.
pub struct Recent<'a> {
    pub messages: Vec<OutgoingMessage<'a>>,
    /// All of `messages` encoded once, as a JavaScript string shared by every live subscriber.
    pub frame: JsValue,
}

impl<'a> Recent<'a> {
    pub fn new(messages: Vec<OutgoingMessage<'a>>) -> Self {
        let frame = JsValue::from_str(&encode_messages(&messages, false));
        Recent { messages, frame }
    }

    fn first(&self) -> Seq {
        self.messages.first().map_or(Seq::MAX, |m| m.seq)
    }

    fn last(&self) -> Seq {
        self.messages.last().map_or(0, |m| m.seq)
    }
}

/// Sends a subscriber everything its window allows. Returns whether its state changed; the
/// caller then saves it, and [`Session::save`] skips the write when only `sent` moved.
pub fn pump(
    session: &mut Session,
    store: &Store,
    config: &Config,
    bounds: StreamBounds,
    recent: Option<&Recent>,
    now: u64,
) -> Result<bool> {
    let Some(sub) = session.sub.as_mut() else { return Ok(false) };
    let before = sub.clone();
    sub.skip_trimmed(bounds);
    if let Some(range) = sub.sendable(bounds) {
        let end = *range.end();
        send_range(session, store, config, range, false, recent)?;
        if let Some(sub) = session.sub.as_mut() {
            sub.record_sent(end, now, config.ack_wait_ms);
        }
    }
    Ok(session.sub.as_ref() != Some(&before))
}

/// Sends `range` to the session, from `recent` when it holds all of it, else from storage.
pub fn send_range(
    session: &Session,
    store: &Store,
    config: &Config,
    range: RangeInclusive<Seq>,
    redelivered: bool,
    recent: Option<&Recent>,
) -> Result<()> {
    if let Some(recent) = recent.filter(|r| !redelivered && *range.start() >= r.first() && *range.end() <= r.last()) {
        let from = (*range.start() - recent.first()) as usize;
        let to = (*range.end() - recent.first()) as usize;
        let messages = &recent.messages[from..=to];
        if session.legacy {
            messages.iter().for_each(|message| session.send(&legacy::encode_delivery(message)));
        } else if messages.len() == recent.messages.len() {
            session.send_js(&recent.frame);
        } else {
            session.send(&encode_messages(messages, false));
        }
        return Ok(());
    }
    let (mut from, to) = (*range.start(), *range.end());
    if session.legacy {
        // The original client takes one message a frame.
        while from <= to {
            let page = store.read(from, to, config.replay_page_messages)?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            page.iter().for_each(|message| session.send(&legacy::encode_delivery(&message.outgoing())));
        }
        return Ok(());
    }
    let mut whole_pages = true;
    while from <= to {
        let (page, frame_bytes) = (config.replay_page_messages, config.replay_frame_bytes);
        let Some((last, frame)) = store.read_frame(from, to, page, frame_bytes, redelivered, &mut whole_pages)? else {
            break;
        };
        session.send_js(&frame);
        from = last + 1;
    }
    Ok(())
}
