//! `pub`: dedup, expectation, sequence, store, enforce retention, then fan out to live
//! subscribers.

use super::super::delivery::{pump, Recent};
use super::super::store::Draft;
use super::super::Core;
use super::reply_to;
use crate::http::Failure;
use durable_stream_protocol::dedup::{self, DedupDecision};
use durable_stream_protocol::frame::{encode_ok, OutgoingMessage, Payload};
use durable_stream_protocol::publish::{decide, decide_entries, entries_reply, EntryOutcome, KeyedEntry, Publish, PublishDecision};
use durable_stream_protocol::{retention, RequestId, Seq};
use serde_json::json;
use worker::Result;

/// What a publish makes its storage depend on: its idempotency key, and the last sequence the
/// publisher expects the subject to have.
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions<'a> {
    pub msg_id: Option<&'a str>,
    pub expect_last_seq: Option<Seq>,
}

/// What a publish produced.
pub struct Published {
    pub first: Seq,
    pub last: Seq,
    pub ts: u64,
    pub duplicate: bool,
}

impl Published {
    /// The reply fields: `seq` (and `last` for a batch, `duplicate` when deduplicated).
    pub fn reply_fields(&self, batch: bool) -> serde_json::Value {
        let mut fields = json!({ "seq": self.first });
        if batch {
            fields["last"] = self.last.into();
        }
        if self.duplicate {
            fields["duplicate"] = true.into();
        }
        fields
    }
}

pub fn over_websocket(
    core: &mut Core,
    conn: &str,
    id: Option<&RequestId>,
    payload: &Payload,
    conditions: Conditions,
    now: u64,
) -> std::result::Result<(), Failure> {
    let messages: Vec<Draft> = payload.messages.iter().map(Draft::from).collect();
    let token = core.rate_limited_token(conn);
    core.admit_publish(Some(conn), token.as_ref(), messages.len(), messages.iter().map(|m| m.size() as usize).sum(), now)?;
    let published = store(core, &messages, conditions, now)?;
    reply_to(core, conn, &encode_ok(id, published.reply_fields(payload.batch)));
    if !published.duplicate {
        fan_out(core, &published, &messages, now)?;
    }
    Ok(())
}

/// A batch whose entries carry their own `msgId`s (`msgIds`): stores the new entries, answers
/// every entry's sequence and which were duplicates, and fans out the new ones.
pub fn keyed_batch_over_websocket(
    core: &mut Core,
    conn: &str,
    id: Option<&RequestId>,
    payload: &Payload,
    msg_ids: &[Option<String>],
    expect_last_seq: Option<Seq>,
    now: u64,
) -> std::result::Result<(), Failure> {
    let messages: Vec<Draft> = payload.messages.iter().map(Draft::from).collect();
    let token = core.rate_limited_token(conn);
    core.admit_publish(Some(conn), token.as_ref(), messages.len(), messages.iter().map(|m| m.size() as usize).sum(), now)?;
    let (outcomes, stored) = store_keyed(core, &messages, msg_ids, expect_last_seq, now)?;
    reply_to(core, conn, &encode_ok(id, entries_reply(&outcomes)));
    if let Some((published, fresh)) = stored {
        fan_out(core, &published, &fresh, now)?;
    }
    Ok(())
}

/// What a keyed batch appended: where, and the new entries (the ones to fan out).
type StoredEntries<'a> = (Published, Vec<Draft<'a>>);

/// Stores the entries of a keyed batch that are new, each with its own key in its row, in one
/// append with contiguous sequences (one statement reads the keys, one frees the expired ones
/// if any, one inserts). Returns every entry's outcome and, when something was stored, what and
/// where. Like [`store`], no await between the decision and the append.
fn store_keyed<'a>(
    core: &mut Core,
    messages: &[Draft<'a>],
    msg_ids: &[Option<String>],
    expect_last_seq: Option<Seq>,
    now: u64,
) -> std::result::Result<(Vec<EntryOutcome>, Option<StoredEntries<'a>>), Failure> {
    let keys: Vec<&str> = msg_ids.iter().flatten().map(String::as_str).collect();
    let stored = core.store.key_records(&keys)?;
    let entries: Vec<KeyedEntry> = msg_ids
        .iter()
        .map(Option::as_deref)
        .map(|msg_id| KeyedEntry { msg_id, previous: msg_id.and_then(|key| stored.get(key).copied()) })
        .collect();
    let outcomes = decide_entries(&entries, expect_last_seq, core.meta.last_seq, now, core.config.dedup_window_ms)?;
    let (mut fresh, mut fresh_keys, mut expired) = (Vec::new(), Vec::new(), Vec::new());
    for ((message, entry), outcome) in messages.iter().zip(&entries).zip(&outcomes) {
        if let EntryOutcome::New(_) = outcome {
            fresh.push(*message);
            fresh_keys.push(entry.msg_id);
            if let (Some(msg_id), Some(_)) = (entry.msg_id, entry.previous) {
                expired.push(msg_id);
            }
        }
    }
    core.telemetry.counters.dedup_hits += (outcomes.len() - fresh.len()) as u64;
    if fresh.is_empty() {
        return Ok((outcomes, None));
    }
    if !expired.is_empty() {
        // Found but expired: the new entries take these keys.
        core.store.release_keys(&expired)?;
    }
    let (first, last) = (core.meta.last_seq + 1, core.meta.last_seq + fresh.len() as u64);
    // Timestamps never go backwards, even if the clock does.
    let ts = now.max(core.meta.last_ts);
    core.store.append_keyed(&mut core.meta, first, last, ts, &fresh, &fresh_keys)?;
    core.telemetry.time_commit(now);
    enforce_retention(core, now)?;
    Ok((outcomes, Some((Published { first, last, ts, duplicate: false }, fresh))))
}

/// Stores `messages` durably (or recognises a duplicate `msgId`, or refuses them when the
/// expected last sequence is not the subject's) and applies retention. The decision and the
/// append run without an await in between: no other event can publish in the meantime.
///
/// A single message's key is checked by its own insert (the key's unique index), so that an
/// ordinary publish is one SQL statement; the key is looked up first only when the insert
/// could not tell: a batch, a failed expectation (a retry must still get its original
/// sequence), or keys kept apart from their messages.
pub fn store(core: &mut Core, messages: &[Draft], conditions: Conditions, now: u64) -> std::result::Result<Published, Failure> {
    let key = conditions.msg_id;
    let look_up_first = key.is_some()
        && (messages.len() > 1
            || conditions.expect_last_seq.is_some_and(|expected| expected != core.meta.last_seq)
            || core.store.keeps_keys_apart()?);
    let previous = match key {
        Some(msg_id) if look_up_first => core.store.key_record(msg_id)?,
        _ => None,
    };
    let publish = Publish { count: messages.len(), previous, expect_last_seq: conditions.expect_last_seq };
    let (first, last) = match decide(publish, core.meta.last_seq, now, core.config.dedup_window_ms)? {
        PublishDecision::Duplicate { first, last } => return Ok(duplicate(core, first, last, now)),
        PublishDecision::Append { first, last } => (first, last),
    };
    if let (Some(msg_id), Some(_)) = (key, previous) {
        // Found but expired: the new publish takes the key.
        core.store.release_keys(&[msg_id])?;
    }
    // Timestamps never go backwards, even if the clock does.
    let ts = now.max(core.meta.last_ts);
    let appended = core.store.append(&mut core.meta, first, last, ts, messages, key)?;
    if let (false, Some(msg_id)) = (appended, key) {
        // A single message not looked up first: its key is in a stored message's row.
        let record = core.store.key_record(msg_id)?;
        if let DedupDecision::Duplicate { first, last } = dedup::decide(record, now, core.config.dedup_window_ms) {
            return Ok(duplicate(core, first, last, now));
        }
        core.store.release_keys(&[msg_id])?;
        core.store.append(&mut core.meta, first, last, ts, messages, key)?;
    }
    core.telemetry.time_commit(now);
    enforce_retention(core, now)?;
    Ok(Published { first, last, ts, duplicate: false })
}

/// A publish whose key was stored as `first..=last` within the dedup window.
fn duplicate(core: &mut Core, first: Seq, last: Seq, now: u64) -> Published {
    core.telemetry.counters.dedup_hits += 1;
    Published { first, last, ts: now, duplicate: true }
}

/// Sends freshly stored messages to every subscriber whose window allows it.
pub fn fan_out(core: &mut Core, published: &Published, messages: &[Draft], now: u64) -> Result<()> {
    for waiter in core.waiters.drain(..) {
        let _ = waiter.send(());
    }
    // Durable Streams readers (long-poll, SSE) of the same stream.
    super::super::ds::on_append(core, now)?;
    if core.sessions.subscriber_count() == 0 {
        return Ok(());
    }
    let recent = Recent::new(
        messages
            .iter()
            .zip(published.first..=published.last)
            .map(|(message, seq)| OutgoingMessage { seq, ts: published.ts, headers: message.headers, data: message.data })
            .collect(),
    );
    let bounds = core.meta.bounds();
    for (_, session) in core.sessions.subscribed_mut() {
        if pump(session, &core.store, &core.config, bounds, Some(&recent), now)? {
            session.save();
        }
    }
    Ok(())
}

/// Deletes the oldest messages beyond the count, age and byte limits.
pub fn enforce_retention(core: &mut Core, now: u64) -> Result<()> {
    let bounds = core.meta.bounds();
    if bounds.is_empty() {
        return Ok(());
    }
    let mut upto = retention::count_cutoff(bounds, &core.config);
    if let Some(cutoff) = retention::age_cutoff(now, &core.config) {
        let expired_upto = match core.store.first_unexpired(cutoff)? {
            Some(seq) => seq - 1,
            None => bounds.last,
        };
        if expired_upto >= bounds.first {
            upto = upto.max(Some(expired_upto));
        }
    }
    if let Some(upto) = upto {
        delete_upto(core, upto, now)?;
    }
    const SIZE_PAGE: usize = 1000;
    loop {
        let excess = retention::excess_bytes(core.meta.bytes, &core.config);
        if excess == 0 {
            return Ok(());
        }
        let oldest = core.store.oldest_sizes(core.meta.first_seq - 1, SIZE_PAGE)?;
        let (Some(cutoff), _) = retention::bytes_cutoff(excess, oldest) else { return Ok(()) };
        delete_upto(core, cutoff, now)?;
    }
}

/// Deletes every message with `seq <= upto`; the keys still within the dedup window outlive
/// them. Returns how many went.
pub fn delete_upto(core: &mut Core, upto: Seq, now: u64) -> Result<u64> {
    let keep_keys_since = dedup::expiry_cutoff(now, core.config.dedup_window_ms);
    core.store.delete_upto(&mut core.meta, upto, keep_keys_since)
}
