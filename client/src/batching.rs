//! Auto-batching: concurrent publishes to one subject go out together as one batch frame.
//!
//! Every frame is an event for the subject's Durable Object, which runs one event at a time, so
//! a hundred tasks each publishing one message cost a hundred events; coalesced, they cost one.
//! A per-subject task collects the publishes that arrive while it lingers (at most
//! [`AutoBatch::linger`], and only while an earlier frame is unanswered) or until a count or size
//! bound is reached, then sends them as one `pub`
//! with a `batch` whose entries keep their own `msgIds`. The server answers every entry's sequence,
//! so each caller gets its own; a batch resent after a reconnect is deduplicated entry by entry,
//! so each message is stored once. Batches go out in the order their publishes arrived, on the
//! subject's one connection, so each caller's publishes keep their order. A lone publish goes out
//! as an ordinary single `pub`.

use crate::client::field;
use crate::error::{Error, Result};
use crate::requests::{RequestConnection, Resend};
use durable_stream_protocol::Seq;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How [`Client::publish`](crate::Client::publish) coalesces concurrent publishes to a subject
/// into batch frames ([`ClientBuilder::auto_batch`](crate::ClientBuilder::auto_batch)).
///
/// On by default. A publish made while nothing published to the subject is unanswered goes out
/// at once (with any publishes already queued), so a task publishing one message after another
/// never waits; while a frame is unanswered, a publish waits at most 1 ms for others to join it.
/// A batch holds at most 100 messages and about 256 KiB. Conditional publishes
/// ([`PublishOptions::expect_last_seq`](crate::PublishOptions::expect_last_seq)) and explicit
/// batches are never coalesced.
///
/// ```
/// use durable_stream_client::AutoBatch;
/// use std::time::Duration;
///
/// let eager = AutoBatch::default().linger(Duration::from_micros(200)).max_messages(50);
/// let one_frame_per_publish = AutoBatch::off();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoBatch {
    pub(crate) enabled: bool,
    pub(crate) linger: Duration,
    pub(crate) max_messages: usize,
    pub(crate) max_bytes: usize,
}

impl Default for AutoBatch {
    fn default() -> Self {
        AutoBatch { enabled: true, linger: Duration::from_millis(1), max_messages: 100, max_bytes: 256 * 1024 }
    }
}

impl AutoBatch {
    /// No coalescing: every publish is a frame of its own.
    pub fn off() -> Self {
        AutoBatch { enabled: false, ..AutoBatch::default() }
    }

    /// How long the first publish of a batch waits for others while an earlier frame is
    /// unanswered (default 1 ms). Zero still coalesces the publishes already waiting.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Most messages in one batch (default 100; the server refuses more than its
    /// `MAX_BATCH_MESSAGES`, 1,000 by default).
    pub fn max_messages(mut self, count: usize) -> Self {
        self.max_messages = count.max(1);
        self
    }

    /// About the most bytes of data, headers and ids in one batch (default 256 KiB; a frame
    /// must stay within [`ClientBuilder::max_frame_bytes`](crate::ClientBuilder::max_frame_bytes)).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes.max(1);
        self
    }
}

/// One publish waiting to go out.
struct Queued {
    data: Value,
    /// The message's headers as a JSON object, or `Null` for none.
    headers: Value,
    msg_id: String,
    /// About what it adds to a frame.
    size: usize,
    reply: oneshot::Sender<Result<Seq>>,
}

/// A handle to a subject's batching task; cheap to clone.
#[derive(Clone)]
pub(crate) struct Batcher {
    queue: mpsc::UnboundedSender<Queued>,
}

impl Batcher {
    /// Starts the task that batches publishes onto `connection`.
    pub fn spawn(connection: RequestConnection, settings: AutoBatch) -> Self {
        let (queue, inbox) = mpsc::unbounded_channel();
        tokio::spawn(run(inbox, connection, settings));
        Batcher { queue }
    }

    /// Whether the task is still running.
    pub fn is_alive(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Publishes one message (with its headers, `Null` for none) under `msg_id`, in a batch with
    /// whatever else is published meanwhile; returns its sequence.
    pub async fn publish(&self, data: Value, headers: Value, msg_id: String) -> Result<Seq> {
        let size = serde_json::to_string(&data).map_or(0, |text| text.len())
            + serde_json::to_string(&headers).map_or(0, |text| text.len())
            + msg_id.len()
            + 8;
        let (reply, answer) = oneshot::channel();
        self.queue.send(Queued { data, headers, msg_id, size, reply }).map_err(|_| Error::Closed)?;
        answer.await.unwrap_or(Err(Error::Closed))
    }
}

/// Collects publishes into batches until every handle is gone.
///
/// A publish lingers for company only while an earlier frame of this task is unanswered: then
/// the others are on their way (many tasks publishing), and the reply takes about as long as
/// the linger anyway. With nothing in flight it goes out at once with whatever is already
/// queued, so one task publishing one message after another never waits for a timer.
async fn run(mut inbox: mpsc::UnboundedReceiver<Queued>, connection: RequestConnection, settings: AutoBatch) {
    // Each frame sent holds a clone until it is answered: a count of one means none is out.
    let unanswered = Arc::new(());
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(carried) => carried,
            None => match inbox.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = Batch::new(first, &settings);
        let idle = Arc::strong_count(&unanswered) == 1;
        let linger = tokio::time::sleep(settings.linger);
        tokio::pin!(linger);
        while !batch.is_full() {
            let next = if idle {
                inbox.try_recv().ok()
            } else {
                tokio::select! {
                    // Publishes already waiting join before the linger can end the batch.
                    biased;
                    next = inbox.recv() => next,
                    _ = &mut linger => None,
                }
            };
            let Some(next) = next else { break };
            if let Some(refused) = batch.add(next) {
                carried = Some(refused);
                break;
            }
        }
        send(&connection, batch.publishes, unanswered.clone());
    }
}

/// The publishes of the batch being collected, within the count and size bounds.
struct Batch<'a> {
    publishes: Vec<Queued>,
    bytes: usize,
    settings: &'a AutoBatch,
}

impl<'a> Batch<'a> {
    fn new(first: Queued, settings: &'a AutoBatch) -> Self {
        Batch { bytes: first.size, publishes: vec![first], settings }
    }

    fn is_full(&self) -> bool {
        self.publishes.len() >= self.settings.max_messages || self.bytes >= self.settings.max_bytes
    }

    /// Adds `next`, or hands it back (to start the next batch) when it does not fit.
    fn add(&mut self, next: Queued) -> Option<Queued> {
        if self.bytes + next.size > self.settings.max_bytes {
            return Some(next);
        }
        self.bytes += next.size;
        self.publishes.push(next);
        None
    }
}

/// Sends one batch (a lone message as a single publish) and answers its publishes when the
/// reply comes; the frame is queued on the connection before this returns, so batches keep
/// their order. `in_flight` is dropped when the reply has come.
fn send(connection: &RequestConnection, mut batch: Vec<Queued>, in_flight: Arc<()>) {
    if batch.len() == 1 {
        let one = batch.pop().expect("one publish");
        let reply = connection.submit(single_frame(&one), Resend::Safe);
        tokio::spawn(async move {
            let seq = reply.await.and_then(|reply| field(&reply, "seq"));
            drop(in_flight);
            let _ = one.reply.send(seq);
        });
        return;
    }
    let reply = connection.submit(batch_frame(&batch), Resend::Safe);
    let connection = connection.clone();
    tokio::spawn(async move {
        let answered = reply.await.and_then(|reply| entry_seqs(&reply, batch.len()));
        drop(in_flight);
        match answered {
            Ok(seqs) => {
                for (queued, seq) in batch.into_iter().zip(seqs) {
                    let _ = queued.reply.send(Ok(seq));
                }
            }
            // Refused as a whole for what one entry holds (its headers, say), and nothing was
            // stored: each publish is sent again alone, so each gets its own answer.
            Err(Error::BadRequest(_) | Error::TooLarge(_)) => {
                let replies: Vec<_> = batch.iter().map(|queued| connection.submit(single_frame(queued), Resend::Safe)).collect();
                for (queued, reply) in batch.into_iter().zip(replies) {
                    let _ = queued.reply.send(reply.await.and_then(|reply| field(&reply, "seq")));
                }
            }
            Err(e) => {
                for queued in batch {
                    let _ = queued.reply.send(Err(e.clone()));
                }
            }
        }
    });
}

/// `{"op":"pub","data":…,"msgId":…}`, with `headers` when the message has some.
fn single_frame(queued: &Queued) -> Map<String, Value> {
    let mut frame = Map::new();
    frame.insert("op".into(), "pub".into());
    frame.insert("data".into(), queued.data.clone());
    frame.insert("msgId".into(), queued.msg_id.clone().into());
    if !queued.headers.is_null() {
        frame.insert("headers".into(), queued.headers.clone());
    }
    frame
}

/// `{"op":"pub","batch":[…],"msgIds":[…]}`, with `headers` when any message has some.
fn batch_frame(batch: &[Queued]) -> Map<String, Value> {
    let mut frame = Map::new();
    frame.insert("op".into(), "pub".into());
    frame.insert("batch".into(), batch.iter().map(|queued| queued.data.clone()).collect());
    frame.insert("msgIds".into(), batch.iter().map(|queued| Value::from(queued.msg_id.clone())).collect());
    if batch.iter().any(|queued| !queued.headers.is_null()) {
        frame.insert("headers".into(), batch.iter().map(|queued| queued.headers.clone()).collect());
    }
    frame
}

/// The sequence of every entry (`seqs`), one per entry.
fn entry_seqs(reply: &Map<String, Value>, entries: usize) -> Result<Vec<Seq>> {
    let seqs: Vec<Seq> = field(reply, "seqs")?;
    if seqs.len() != entries {
        return Err(Error::InvalidResponse(format!("a batch of {entries} answered {} sequences", seqs.len())));
    }
    Ok(seqs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{read_frame, send_frame, FakeServer};
    use serde_json::json;

    /// Batches flushed by their bounds only, so no test depends on the linger's timing. (The
    /// first batch, with nothing in flight, takes what is queued when the batching task runs: in
    /// the tests' single-threaded runtime, every publish spawned before the test first waits.)
    fn bounded(max_messages: usize) -> AutoBatch {
        AutoBatch::default().linger(Duration::from_secs(600)).max_messages(max_messages)
    }

    async fn batcher(auto_batch: AutoBatch) -> (FakeServer, Batcher) {
        let (server, settings) = FakeServer::start(Duration::from_secs(30)).await;
        (server, Batcher::spawn(RequestConnection::spawn(settings, "s".into()), auto_batch))
    }

    fn publish(batcher: &Batcher, n: i64, headers: Value) -> tokio::task::JoinHandle<Result<Seq>> {
        let batcher = batcher.clone();
        tokio::spawn(async move { batcher.publish(json!(n), headers, format!("id-{n}")).await })
    }

    #[tokio::test]
    async fn concurrent_publishes_go_out_as_one_batch_and_each_caller_gets_its_own_sequence() {
        let (server, batcher) = batcher(bounded(4)).await;
        let calls: Vec<_> = (0..4).map(|n| publish(&batcher, n, if n == 2 { json!({"type": "T"}) } else { Value::Null })).collect();
        let mut socket = server.accept().await;
        let frame = read_frame(&mut socket).await;
        let entries: Vec<i64> = frame["batch"].as_array().unwrap().iter().map(|n| n.as_i64().unwrap()).collect();
        assert_eq!(entries.len(), 4, "{frame}");
        let ids: Vec<Value> = entries.iter().map(|n| json!(format!("id-{n}"))).collect();
        assert_eq!(frame["msgIds"], Value::Array(ids), "each entry keeps its own id");
        let headers: Vec<Value> = entries.iter().map(|n| if *n == 2 { json!({"type": "T"}) } else { Value::Null }).collect();
        assert_eq!(frame["headers"], Value::Array(headers));
        assert!(frame.get("msgId").is_none() && frame.get("data").is_none());
        // Entry 0 was a duplicate: it answers its original sequence like the others do theirs.
        let seqs: Vec<i64> = entries.iter().map(|n| 100 + n).collect();
        send_frame(&mut socket, json!({ "op": "ok", "id": frame["id"], "seqs": seqs, "duplicates": [0] })).await;
        for (n, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap().unwrap(), 100 + n as u64);
        }
    }

    #[tokio::test]
    async fn a_lone_publish_goes_out_as_a_single_publish() {
        let (server, batcher) = batcher(AutoBatch::default().linger(Duration::ZERO)).await;
        let call = publish(&batcher, 7, json!({"a": "b"}));
        let mut socket = server.accept().await;
        let frame = read_frame(&mut socket).await;
        assert_eq!(frame, json!({ "op": "pub", "id": frame["id"], "data": 7, "msgId": "id-7", "headers": {"a": "b"} }));
        send_frame(&mut socket, json!({ "op": "ok", "id": frame["id"], "seq": 1 })).await;
        assert_eq!(call.await.unwrap().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_publish_with_nothing_in_flight_goes_out_at_once_and_the_next_ones_wait_for_company() {
        let (server, batcher) = batcher(bounded(3)).await;
        let alone = publish(&batcher, 0, Value::Null);
        let mut socket = server.accept().await;
        // The linger is 600 s: only "nothing in flight" can have sent it.
        let first = tokio::time::timeout(Duration::from_secs(20), read_frame(&mut socket)).await.expect("sent without the linger");
        assert_eq!(first["data"], 0, "{first}");
        // While it is unanswered, one publish after another waits for the others.
        let calls: Vec<_> = (1..=3).map(|n| publish(&batcher, n, Value::Null)).collect();
        let batch = read_frame(&mut socket).await;
        assert_eq!(batch["batch"], json!([1, 2, 3]), "{batch}");
        send_frame(&mut socket, json!({ "op": "ok", "id": first["id"], "seq": 1 })).await;
        send_frame(&mut socket, json!({ "op": "ok", "id": batch["id"], "seqs": [2, 3, 4], "duplicates": [] })).await;
        assert_eq!(alone.await.unwrap().unwrap(), 1);
        for (n, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap().unwrap(), n as u64 + 2);
        }
        // Everything answered: the next publish goes out at once again.
        let again = publish(&batcher, 4, Value::Null);
        let frame = read_frame(&mut socket).await;
        assert_eq!(frame["data"], 4, "{frame}");
        send_frame(&mut socket, json!({ "op": "ok", "id": frame["id"], "seq": 5 })).await;
        assert_eq!(again.await.unwrap().unwrap(), 5);
    }

    #[tokio::test]
    async fn batches_keep_the_order_of_the_publishes_and_their_size_bound() {
        // Each entry counts 1 (data) + 4 (null headers) + 4 (id) + 8 bytes: two fit in 34.
        let (server, batcher) = batcher(bounded(100).max_bytes(34)).await;
        let sender = batcher.clone();
        let calls = tokio::spawn(async move {
            futures_util::future::join_all((0..4).map(|n| sender.publish(json!(n), Value::Null, format!("id-{n}")))).await
        });
        let mut socket = server.accept().await;
        let mut sent = Vec::new();
        for _ in 0..2 {
            let frame = read_frame(&mut socket).await;
            sent.push(frame["batch"].clone());
            let seqs: Vec<Value> = frame["batch"].as_array().unwrap().iter().map(|n| json!(n.as_u64().unwrap() + 1)).collect();
            send_frame(&mut socket, json!({ "op": "ok", "id": frame["id"], "seqs": seqs, "duplicates": [] })).await;
        }
        assert_eq!(sent, [json!([0, 1]), json!([2, 3])]);
        let seqs: Vec<Seq> = calls.await.unwrap().into_iter().map(Result::unwrap).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_batch_resent_after_a_reconnect_is_the_same_frame_and_duplicates_answer_their_sequences() {
        let (server, batcher) = batcher(bounded(3)).await;
        let calls: Vec<_> = (0..3).map(|n| publish(&batcher, n, Value::Null)).collect();
        let mut first = server.accept().await;
        let sent_first = read_frame(&mut first).await;
        drop(first); // the connection drops before the reply: maybe stored, maybe not
        let mut second = server.accept().await;
        let sent_again = read_frame(&mut second).await;
        assert_eq!(sent_again, sent_first, "same id, same entries, same msgIds");
        let entries: Vec<u64> = sent_again["batch"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        let seqs: Vec<u64> = entries.iter().map(|n| n + 1).collect();
        send_frame(&mut second, json!({ "op": "ok", "id": sent_again["id"], "seqs": seqs, "duplicates": [0, 1, 2] })).await;
        for (n, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap().unwrap(), n as u64 + 1);
        }
    }

    #[tokio::test]
    async fn a_batch_refused_for_one_entry_is_sent_again_entry_by_entry() {
        let (server, batcher) = batcher(bounded(2)).await;
        let calls: Vec<_> = (0..2).map(|n| publish(&batcher, n, Value::Null)).collect();
        let mut socket = server.accept().await;
        let frame = read_frame(&mut socket).await;
        let refusal = json!({ "op": "err", "id": frame["id"], "code": "too_large", "message": "`headers[1]`: too many" });
        send_frame(&mut socket, refusal).await;
        for _ in 0..2 {
            let single = read_frame(&mut socket).await;
            let reply = match single["data"].as_i64().unwrap() {
                0 => json!({ "op": "ok", "id": single["id"], "seq": 1 }),
                _ => json!({ "op": "err", "id": single["id"], "code": "too_large", "message": "`headers`: too many" }),
            };
            send_frame(&mut socket, reply).await;
        }
        let mut calls = calls.into_iter();
        assert_eq!(calls.next().unwrap().await.unwrap().unwrap(), 1);
        assert!(matches!(calls.next().unwrap().await.unwrap(), Err(Error::TooLarge(m)) if m == "`headers`: too many"));
    }

    #[tokio::test]
    async fn a_reply_with_the_wrong_number_of_sequences_fails_every_publish_of_the_batch() {
        let (server, batcher) = batcher(bounded(2)).await;
        let calls: Vec<_> = (0..2).map(|n| publish(&batcher, n, Value::Null)).collect();
        let mut socket = server.accept().await;
        let frame = read_frame(&mut socket).await;
        send_frame(&mut socket, json!({ "op": "ok", "id": frame["id"], "seqs": [1], "duplicates": [] })).await;
        for call in calls {
            assert!(matches!(call.await.unwrap(), Err(Error::InvalidResponse(m)) if m.contains("a batch of 2 answered 1")));
        }
    }
}
