//! Subscriptions: a stream of messages that survives disconnects without losing or repeating
//! messages, acknowledges them so the server keeps sending, and notices when the subject was
//! wiped (its epoch changed).

use crate::connection::{close_reason, credential_closed, ConnectionEvent, Hello, Settings, Socket};
use crate::credentials::{auth_request, TokenWatch};
use crate::cursor::{cursor_key, Cursor, CursorStore};
use crate::error::{Error, Result};
use crate::frames::{self, Incoming, Received};
use crate::Headers;
use durable_stream_protocol::{RequestId, Seq, StartPosition};
use futures_core::Stream;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How messages are acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckMode {
    /// Every message is acknowledged as the subscription yields it. After a disconnect the
    /// subscription resumes after the last message yielded.
    #[default]
    Auto,
    /// The application calls [`Message::ack`]; acks are cumulative. Messages not acknowledged
    /// within the server's ack wait are delivered again (`redelivered == true`), and after a
    /// disconnect the subscription resumes after the last acknowledged message.
    Manual,
}

/// What a subscription does when the subject's epoch changes (it was wiped and recreated, so
/// sequence numbers started over).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnEpochChange {
    /// Yield [`Error::EpochChanged`] and end the stream.
    #[default]
    Error,
    /// Continue with the new epoch from its first message.
    RestartFromFirst,
}

/// Options for [`Client::subscribe`](crate::Client::subscribe).
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    /// Where to start. `None`: a durable consumer resumes after its acknowledged position,
    /// anything else starts at the oldest retained message. A saved cursor (see
    /// `cursor_store`) takes precedence. With a `consumer`, an explicit start resets the
    /// consumer's position.
    pub from: Option<StartPosition>,
    /// Durable consumer name: the server remembers its acknowledged position.
    pub consumer: Option<String>,
    /// Most unacknowledged messages in flight (server default 1000, maximum 10000).
    pub window: Option<u32>,
    /// How messages are acknowledged.
    pub ack: AckMode,
    /// What to do when the subject's epoch changes.
    pub on_epoch_change: OnEpochChange,
    /// Where to save the position, so a new process resumes from it.
    pub cursor_store: Option<Arc<dyn CursorStore>>,
}

impl SubscribeOptions {
    /// Starts at `from` (see [`SubscribeOptions::from`](#structfield.from)).
    pub fn start(mut self, from: StartPosition) -> Self {
        self.from = Some(from);
        self
    }

    /// Subscribes as the durable consumer `name`.
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// Sets the flow-control window.
    pub fn window(mut self, window: u32) -> Self {
        self.window = Some(window);
        self
    }

    /// Sets the acknowledgement mode.
    pub fn ack(mut self, mode: AckMode) -> Self {
        self.ack = mode;
        self
    }

    /// Sets the reaction to an epoch change.
    pub fn on_epoch_change(mut self, reaction: OnEpochChange) -> Self {
        self.on_epoch_change = reaction;
        self
    }

    /// Saves and restores the position with `store`.
    pub fn cursor_store(mut self, store: Arc<dyn CursorStore>) -> Self {
        self.cursor_store = Some(store);
        self
    }
}

/// A message received by a [`Subscription`].
#[derive(Clone)]
pub struct Message {
    /// The message's sequence number in its subject (from 1).
    pub seq: Seq,
    /// When the server stored it, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// The headers it was published with (empty when none).
    pub headers: Headers,
    /// The published JSON value.
    pub data: Value,
    /// Whether it was delivered before without being acknowledged.
    pub redelivered: bool,
    acker: Acker,
}

impl Message {
    /// Acknowledges this message and every earlier one (acks are cumulative). Needed only in
    /// [`AckMode::Manual`]; a no-op in auto mode. The ack is sent in the background.
    pub fn ack(&self) {
        self.acker.ack(self.seq);
    }

    /// Deserializes the payload into `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.data).map_err(|e| Error::InvalidResponse(format!("message {}: {e}", self.seq)))
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.seq)
            .field("ts", &self.ts)
            .field("headers", &self.headers)
            .field("data", &self.data)
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

#[derive(Clone)]
struct Acker {
    shared: Arc<Shared>,
    generation: u64,
}

impl Acker {
    fn ack(&self, seq: Seq) {
        let mut progress = self.shared.progress();
        if progress.generation == self.generation && progress.acknowledge(seq) && progress.ack_wanted() {
            drop(progress);
            self.shared.ack_wakeup.notify_one();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Positions

/// What the application has consumed, which decides what is yielded and where to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    mode: AckMode,
    /// Start for the next `sub` while there is no concrete position.
    initial_from: Option<StartPosition>,
    /// Whether `acked` is a real position (set by the first `ok` to `sub` or a saved cursor).
    positioned: bool,
    /// Everything up to here is consumed; the next subscription starts after it.
    acked: Seq,
    /// The highest sequence yielded to the application.
    yielded: Seq,
    /// The subject's epoch, once known.
    epoch: Option<String>,
    /// Bumped when the epoch changes: anything from an older generation is stale.
    generation: u64,
    /// The position last written to the cursor store.
    saved: Option<Cursor>,
    /// Manual mode: yielded messages that could not be decoded, so the application cannot
    /// acknowledge them; each counts as acknowledged once everything before it is.
    undecodable: BTreeSet<Seq>,
    /// Whether the connection task's ack timer runs, and the position at which it sends an ack
    /// at once (`AckSender`). Kept under the same lock as `acked`, so a move is never missed:
    /// the task is woken for a move only when neither will send it.
    ack_timer_armed: bool,
    ack_send_at: Seq,
}

impl Progress {
    pub fn new(mode: AckMode, from: Option<StartPosition>, cursor: Option<Cursor>) -> Self {
        let mut progress = Progress {
            mode,
            initial_from: from,
            positioned: false,
            acked: 0,
            yielded: 0,
            epoch: None,
            generation: 0,
            saved: None,
            undecodable: BTreeSet::new(),
            ack_timer_armed: false,
            ack_send_at: 0,
        };
        if let Some(cursor) = cursor {
            progress.positioned = true;
            progress.acked = cursor.seq;
            progress.yielded = cursor.seq;
            progress.epoch = Some(cursor.epoch.clone());
            progress.saved = Some(cursor);
        }
        progress
    }

    /// The `from` of the next `sub`: right after the consumed position once there is one.
    pub fn resume_from(&self) -> Option<StartPosition> {
        if self.positioned {
            Some(StartPosition::Seq(self.acked + 1))
        } else {
            self.initial_from
        }
    }

    /// The server resolved the subscription's start to `start`: messages before it are gone
    /// (consumed, trimmed, or before "new"), so the position is at least `start - 1`.
    pub fn subscribed(&mut self, start: Seq) {
        let before = start.saturating_sub(1);
        self.positioned = true;
        self.acked = self.acked.max(before);
        self.yielded = self.yielded.max(before);
        self.pass_undecodable();
    }

    /// Whether to yield a received message, and with which `redelivered` flag. Never yields a
    /// sequence at or below one already yielded, except, in manual mode, one not yet
    /// acknowledged (that is a redelivery).
    pub fn admit(&mut self, seq: Seq, redelivered: bool) -> Option<bool> {
        if seq > self.yielded {
            self.yielded = seq;
            if self.mode == AckMode::Auto {
                self.acked = seq;
            }
            Some(redelivered)
        } else if self.mode == AckMode::Manual && seq > self.acked {
            Some(true)
        } else {
            None
        }
    }

    /// Whether the connection task must be woken to send the position: its ack timer is not
    /// running, or the position reached the point of sending at once.
    fn ack_wanted(&self) -> bool {
        !self.ack_timer_armed || self.acked >= self.ack_send_at
    }

    /// Applies a cumulative ack from the application; returns whether the position moved.
    /// Acks beyond what was yielded are limited to it.
    pub fn acknowledge(&mut self, seq: Seq) -> bool {
        let seq = seq.min(self.yielded);
        if self.mode == AckMode::Manual && seq > self.acked {
            self.acked = seq;
            self.pass_undecodable();
            return true;
        }
        false
    }

    /// Message `seq`, just admitted, could not be decoded. In manual mode the application has
    /// no message to acknowledge, so it counts as acknowledged as soon as everything before it
    /// is (acks are cumulative: acking it now would acknowledge earlier messages too). Returns
    /// whether the position moved.
    pub fn admitted_undecodable(&mut self, seq: Seq) -> bool {
        if self.mode == AckMode::Auto || seq <= self.acked {
            return false;
        }
        self.undecodable.insert(seq);
        let before = self.acked;
        self.pass_undecodable();
        self.acked > before
    }

    /// Moves the position over undecodable messages right after it.
    fn pass_undecodable(&mut self) {
        while self.undecodable.remove(&(self.acked + 1)) {
            self.acked += 1;
        }
        let acked = self.acked;
        self.undecodable.retain(|&seq| seq > acked);
    }

    /// The server gave up on `first..=last` (max deliveries without an ack): move past them.
    pub fn skipped(&mut self, last: Seq) {
        self.acked = self.acked.max(last);
        self.yielded = self.yielded.max(last);
        self.pass_undecodable();
    }

    /// The server reset the subscription's consumer to `acked`: that is the position now, in
    /// either direction. What was received and not yet yielded belongs to the old position and
    /// is dropped (a new generation); every sequence after `acked` is yielded again as the
    /// server delivers it. Returns the new generation.
    pub fn reset(&mut self, acked: Seq) -> u64 {
        self.positioned = true;
        self.acked = acked;
        self.yielded = acked;
        self.undecodable.clear();
        self.generation += 1;
        self.generation
    }

    /// Checks the epoch a connection reports against the one seen before. On a change,
    /// either fails or starts over from the first message of the new epoch.
    pub fn check_epoch(&mut self, epoch: &str, reaction: OnEpochChange) -> Result<()> {
        match &self.epoch {
            Some(known) if known != epoch => match reaction {
                OnEpochChange::Error => {
                    return Err(Error::EpochChanged { previous: known.clone(), current: epoch.to_owned() })
                }
                OnEpochChange::RestartFromFirst => {
                    self.undecodable.clear();
                    self.positioned = false;
                    self.initial_from = Some(StartPosition::First);
                    self.acked = 0;
                    self.yielded = 0;
                    self.generation += 1;
                }
            },
            _ => {}
        }
        self.epoch = Some(epoch.to_owned());
        Ok(())
    }

    /// The cursor to save, if the position changed since the last save.
    pub fn unsaved_cursor(&self) -> Option<Cursor> {
        let epoch = self.epoch.clone()?;
        if !self.positioned {
            return None;
        }
        let cursor = Cursor { epoch, seq: self.acked };
        (self.saved.as_ref() != Some(&cursor)).then_some(cursor)
    }
}

// ---------------------------------------------------------------------------------------------
// The stream

/// State shared by a [`Subscription`], its messages (for acks) and its task.
struct Shared {
    progress: Mutex<Progress>,
    /// Wakes the task when there may be a new ack to send.
    ack_wakeup: Notify,
    cursor: Option<(Arc<dyn CursorStore>, String)>,
}

impl Shared {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        // A panic while holding the lock cannot leave Progress half-updated in a way that
        // matters more than losing the subscription, so keep going.
        self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the cursor if it changed. The lock is held so saves never overtake each other.
    fn save_cursor(&self) -> Result<()> {
        let Some((store, key)) = &self.cursor else { return Ok(()) };
        let mut progress = self.progress();
        if let Some(cursor) = progress.unsaved_cursor() {
            store.save(key, &cursor)?;
            progress.saved = Some(cursor);
        }
        Ok(())
    }
}

/// What the task hands to the stream, in order.
enum Delivery {
    Messages { generation: u64, messages: Vec<Received> },
    Skipped { generation: u64, last: Seq },
    Failed(Error),
}

/// A live subscription: a [`Stream`] of [`Message`]s.
///
/// It reconnects on its own after disconnects (with the client's backoff) and resumes after
/// the last consumed message, yielding each sequence once (manual-mode redeliveries aside, and
/// the messages after a durable consumer's new position when an administrator resets it: see
/// [`ConnectionEvent::ConsumerReset`]). The
/// stream yields an error and ends when the server refuses the subscription, when reconnecting
/// gives up (see [`Backoff::max_attempts`](crate::Backoff::max_attempts)), or on an epoch change
/// with [`OnEpochChange::Error`].
///
/// Some errors are yielded while the stream goes on:
/// * [`Error::Undecodable`] for a message whose data this client cannot decode. It takes the
///   message's place in the sequence and counts as consumed: in auto mode it is acknowledged
///   like any message; in manual mode it is acknowledged once every message before it is, so it
///   never holds up the window, redelivery or a saved cursor.
/// * [`Error::InvalidResponse`] for a frame that cannot be read at all (its messages are lost
///   to this subscription; the ones after it are delivered as usual).
/// * A failed cursor save ([`Error::Io`]): the server-side position is intact.
///
/// Dropping it closes the connection; [`Subscription::close`] also waits until the socket is
/// closed and the cursor saved.
pub struct Subscription {
    subject: String,
    shared: Arc<Shared>,
    deliveries: mpsc::Receiver<Delivery>,
    buffer: VecDeque<(u64, Received)>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").field("subject", &self.subject).field("progress", &*self.shared.progress()).finish()
    }
}

impl Subscription {
    /// The subject subscribed to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The last consumed sequence: acknowledged (manual mode) or yielded (auto mode).
    pub fn position(&self) -> Seq {
        self.shared.progress().acked
    }

    /// The subject's epoch as last reported by the server.
    pub fn epoch(&self) -> Option<String> {
        self.shared.progress().epoch.clone()
    }

    /// Closes the connection, sends the last ack and saves the cursor.
    pub async fn close(mut self) -> Result<()> {
        // Closing the channel is the task's signal to stop.
        self.deliveries.close();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.shared.save_cursor()
    }

    fn to_message(&self, generation: u64, received: Received, redelivered: bool) -> Result<Message> {
        let Received { seq, ts, headers, data, .. } = received;
        let data = data.map_err(|reason| Error::Undecodable { seq, reason })?;
        Ok(Message { seq, ts, headers, data, redelivered, acker: Acker { shared: self.shared.clone(), generation } })
    }
}

impl Stream for Subscription {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some((generation, received)) = self.buffer.pop_front() {
                let (admitted, wake_acks) = {
                    let mut progress = self.shared.progress();
                    if progress.generation != generation {
                        continue;
                    }
                    let admitted = progress.admit(received.seq, received.redelivered);
                    let ack_moved = match (admitted, &received.data) {
                        (None, _) => false,
                        (Some(_), Ok(_)) => progress.mode == AckMode::Auto,
                        (Some(_), Err(_)) => progress.mode == AckMode::Auto || progress.admitted_undecodable(received.seq),
                    };
                    // Not per message: a wake-up across threads for an ack that is combined anyway.
                    (admitted, ack_moved && progress.ack_wanted())
                };
                if wake_acks {
                    self.shared.ack_wakeup.notify_one();
                }
                let Some(redelivered) = admitted else { continue };
                return Poll::Ready(Some(self.to_message(generation, received, redelivered)));
            }
            match self.deliveries.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Delivery::Failed(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Delivery::Messages { generation, messages })) => {
                    self.buffer.extend(messages.into_iter().map(|m| (generation, m)));
                }
                Poll::Ready(Some(Delivery::Skipped { generation, last })) => {
                    let mut progress = self.shared.progress();
                    if progress.generation == generation {
                        progress.skipped(last);
                    }
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The task may not get to run again (e.g. the runtime is shutting down): save here too.
        let _ = self.shared.save_cursor();
    }
}

// ---------------------------------------------------------------------------------------------
// The task

/// The request id of the `sub` frame.
const SUB_ID: &str = "sub";
/// The request id of `auth` frames (refreshed tokens), the only other requests a subscription
/// connection carries.
const AUTH_ID: &str = "auth";
/// How often a changed position is written to the cursor store.
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// Frames buffered between the task and the stream.
const DELIVERY_BUFFER: usize = 16;
/// How long an ack may wait to be combined with later ones. Every ack is an event for the
/// subject's Durable Object, which handles one event at a time (and workerd slows down badly
/// when many events queue up): one ack per received frame from 100 subscribers swamps it.
/// Auto mode acks only keep the window open and stop redelivery (after the server's ack wait,
/// default 30 s), so they can wait long; an application's own acks go out sooner.
fn ack_delay(mode: AckMode) -> Duration {
    match mode {
        AckMode::Auto => Duration::from_secs(1),
        AckMode::Manual => Duration::from_millis(50),
    }
}
/// The server's default window (`DEFAULT_WINDOW`), assumed when the subscription sets none.
const SERVER_DEFAULT_WINDOW: u32 = 1000;

struct Subscriber {
    settings: Arc<Settings>,
    subject: String,
    consumer: Option<String>,
    window: Option<u32>,
    on_epoch_change: OnEpochChange,
    shared: Arc<Shared>,
    deliveries: mpsc::Sender<Delivery>,
}

/// How a connection ended.
enum Ended {
    /// The application dropped or closed the subscription.
    Stopped,
    Disconnected(String),
    /// The server closed it for good: the token expired or was revoked, and there is no
    /// provider to replace it.
    Refused(Error),
}

/// Opens a subscription: the first connection happens here so that refusals (bad options,
/// wrong key) are returned to the caller; later ones happen in the background.
pub(crate) async fn subscribe(settings: Arc<Settings>, subject: &str, options: SubscribeOptions) -> Result<Subscription> {
    let key = cursor_key(subject, options.consumer.as_deref());
    let saved = match &options.cursor_store {
        Some(store) => store.load(&key)?,
        None => None,
    };
    let shared = Arc::new(Shared {
        progress: Mutex::new(Progress::new(options.ack, options.from, saved)),
        ack_wakeup: Notify::new(),
        cursor: options.cursor_store.map(|store| (store, key)),
    });
    let (deliveries, receiver) = mpsc::channel(DELIVERY_BUFFER);
    let subscriber = Subscriber {
        settings,
        subject: subject.to_owned(),
        consumer: options.consumer,
        window: options.window,
        on_epoch_change: options.on_epoch_change,
        shared: shared.clone(),
        deliveries,
    };
    let (socket, early, tokens) = subscriber.establish().await?;
    let task = tokio::spawn(subscriber.run(socket, early, tokens));
    Ok(Subscription { subject: subject.to_owned(), shared, deliveries: receiver, buffer: VecDeque::new(), task: Some(task) })
}

impl Subscriber {
    async fn run(self, mut socket: Socket, mut early: Vec<Received>, mut tokens: TokenWatch) {
        let mut failures = 0u32;
        loop {
            let (acked, mode) = {
                let progress = self.shared.progress();
                (progress.acked, progress.mode)
            };
            let mut acks = AckSender::new(acked, self.window.unwrap_or(SERVER_DEFAULT_WINDOW), ack_delay(mode));
            let reason = match self.serve(&mut socket, &mut acks, std::mem::take(&mut early), &mut tokens).await {
                Ended::Stopped => {
                    // The application may have acknowledged messages just before stopping.
                    let _ = acks.flush(&mut socket, &self.shared, None).await;
                    let _ = socket.close(None).await;
                    let _ = self.shared.save_cursor();
                    return;
                }
                Ended::Disconnected(reason) => reason,
                Ended::Refused(error) => {
                    self.settings.emit(ConnectionEvent::Disconnected { subject: self.subject.clone(), reason: error.to_string() });
                    return self.give_up(error).await;
                }
            };
            self.settings.emit(ConnectionEvent::Disconnected { subject: self.subject.clone(), reason });
            loop {
                let attempt = failures + 1;
                let delay = self.settings.backoff.delay(attempt);
                self.settings.emit(ConnectionEvent::Reconnecting { subject: self.subject.clone(), attempt, delay });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.deliveries.closed() => return,
                }
                let established = tokio::select! {
                    established = self.establish() => established,
                    _ = self.deliveries.closed() => return,
                };
                match established {
                    Ok((fresh, messages, fresh_tokens)) => {
                        socket = fresh;
                        early = messages;
                        tokens = fresh_tokens;
                        failures = 0;
                        break;
                    }
                    Err(e) if e.is_transient() && self.settings.backoff.allows(failures + 1) => failures += 1,
                    Err(e) => return self.give_up(e).await,
                }
            }
        }
    }

    /// Ends the stream with `error`.
    async fn give_up(&self, error: Error) {
        let _ = self.deliveries.send(Delivery::Failed(error)).await;
        let _ = self.shared.save_cursor();
    }

    /// Connects, checks the epoch, and subscribes from the current position. Returns the open
    /// socket, any messages that arrived with the subscription's reply, and the token updates
    /// the socket must follow.
    async fn establish(&self) -> Result<(Socket, Vec<Received>, TokenWatch)> {
        let (mut socket, Hello { epoch, .. }, tokens) = self.settings.open(&self.subject).await?;
        let from = {
            let mut progress = self.shared.progress();
            progress.check_epoch(&epoch, self.on_epoch_change)?;
            progress.resume_from()
        };
        let mut frame = json!({ "op": "sub", "id": SUB_ID });
        if let Some(from) = from {
            frame["from"] = start_to_json(from);
        }
        if let Some(consumer) = &self.consumer {
            frame["consumer"] = consumer.as_str().into();
        }
        if let Some(window) = self.window {
            frame["window"] = window.into();
        }
        socket.send(WsMessage::text(frame.to_string())).await?;
        let reply = tokio::time::timeout(self.settings.request_timeout, Self::await_subscribed(&mut socket))
            .await
            .unwrap_or(Err(Error::Timeout));
        let (start, early) = reply?;
        self.shared.progress().subscribed(start);
        Ok((socket, early, tokens))
    }

    async fn await_subscribed(socket: &mut Socket) -> Result<(Seq, Vec<Received>)> {
        let mut early = Vec::new();
        let is_sub = |id: &Option<RequestId>| matches!(id, Some(RequestId::Text(id)) if id == SUB_ID);
        loop {
            let text = match socket.next().await {
                Some(Ok(WsMessage::Text(text))) => text,
                Some(Ok(WsMessage::Close(_))) => return Err(Error::Closed),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Error::Closed),
            };
            match frames::decode(&text)? {
                Incoming::Reply { id, outcome } if is_sub(&id) => {
                    let start = outcome?.get("from").and_then(Value::as_u64).ok_or_else(|| {
                        Error::InvalidResponse(format!("subscription reply without `from`: {text}"))
                    })?;
                    return Ok((start, early));
                }
                Incoming::Messages(messages) => early.extend(messages),
                _ => {}
            }
        }
    }

    /// Delivers messages, sends acks and refreshed tokens until the connection ends or the
    /// application stops.
    async fn serve(&self, socket: &mut Socket, acks: &mut AckSender, early: Vec<Received>, tokens: &mut TokenWatch) -> Ended {
        let mut generation = self.shared.progress().generation;
        // This connection's acks start with no timer running: say so before anything is consumed.
        if let Err(e) = acks.flush(socket, &self.shared, Some(Instant::now())).await {
            return Ended::Disconnected(e.to_string());
        }
        if !early.is_empty() {
            acks.received(&early);
            if self.deliver(Delivery::Messages { generation, messages: early }).await.is_err() {
                return Ended::Stopped;
            }
        }
        let mut save_timer = tokio::time::interval(CURSOR_SAVE_INTERVAL);
        save_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let ack_due = acks.due;
            tokio::select! {
                _ = self.deliveries.closed() => return Ended::Stopped,
                _ = self.shared.ack_wakeup.notified() => {}
                credential = tokens.changed() => {
                    let mut frame = auth_request(&credential);
                    frame.insert("id".into(), AUTH_ID.into());
                    if let Err(e) = socket.send(WsMessage::text(Value::Object(frame).to_string())).await {
                        return Ended::Disconnected(e.to_string());
                    }
                }
                _ = tokio::time::sleep_until(ack_due.unwrap_or_else(Instant::now)), if ack_due.is_some() => {}
                _ = save_timer.tick() => {
                    if let Err(e) = self.shared.save_cursor() {
                        // Report it but keep delivering: the server-side position is intact.
                        if self.deliver(Delivery::Failed(e)).await.is_err() {
                            return Ended::Stopped;
                        }
                    }
                }
                frame = socket.next() => {
                    let delivery = match frame {
                        Some(Ok(WsMessage::Text(text))) => match frames::decode(&text) {
                            Ok(Incoming::Messages(messages)) => Some(messages),
                            Ok(Incoming::Skipped { last }) => {
                                if self.deliver(Delivery::Skipped { generation, last }).await.is_err() {
                                    return Ended::Stopped;
                                }
                                None
                            }
                            // The server's position for the consumer is `acked` now; so is ours.
                            Ok(Incoming::Reset { consumer, acked }) => {
                                generation = self.shared.progress().reset(acked);
                                acks.reset(acked);
                                self.settings.emit(ConnectionEvent::ConsumerReset { subject: self.subject.clone(), consumer, acked });
                                None
                            }
                            // The socket keeps its current token until that expires.
                            Ok(Incoming::Reply { id: Some(RequestId::Text(id)), outcome: Err(refused) }) if id == AUTH_ID => {
                                let reason = refused.to_string();
                                self.settings.emit(ConnectionEvent::TokenRefreshFailed { subject: Some(self.subject.clone()), reason });
                                None
                            }
                            // Replies to nothing we asked, and frames from newer servers.
                            Ok(_) => None,
                            // Nothing in it can be delivered, but it must not pass unnoticed.
                            Err(unreadable) => {
                                if self.deliver(Delivery::Failed(unreadable)).await.is_err() {
                                    return Ended::Stopped;
                                }
                                None
                            }
                        },
                        Some(Ok(WsMessage::Close(frame))) => {
                            return match credential_closed(frame.as_ref()) {
                                Some(error) if !self.settings.credentials.renewable() => Ended::Refused(error),
                                _ => Ended::Disconnected(close_reason(frame.as_ref())),
                            };
                        }
                        Some(Ok(_)) => None,
                        Some(Err(e)) => return Ended::Disconnected(e.to_string()),
                        None => return Ended::Disconnected("connection ended".into()),
                    };
                    if let Some(messages) = delivery {
                        acks.received(&messages);
                        if self.deliver(Delivery::Messages { generation, messages }).await.is_err() {
                            return Ended::Stopped;
                        }
                    }
                }
            }
            if let Err(e) = acks.flush(socket, &self.shared, Some(Instant::now())).await {
                return Ended::Disconnected(e.to_string());
            }
        }
    }

    async fn deliver(&self, delivery: Delivery) -> Result<(), ()> {
        self.deliveries.send(delivery).await.map_err(|_| ())
    }
}

/// Sends cumulative acks on one connection, never beyond what that connection delivered (the
/// application may ack messages it got from an earlier connection before this one resent
/// them, and the server refuses acks past its last delivery).
///
/// Acks are combined: one goes out when half the window is waiting for it (so the server
/// never runs out of window) or `delay` after the oldest position not yet acked.
#[derive(Debug)]
struct AckSender {
    received: Seq,
    sent: Seq,
    /// Send at once when the position is this far past the last ack sent.
    batch: u64,
    delay: Duration,
    /// When the position not acked yet must be sent, if there is one.
    due: Option<Instant>,
}

impl AckSender {
    fn new(position: Seq, window: u32, delay: Duration) -> Self {
        AckSender { received: position, sent: position, batch: u64::from(window / 2).max(1), delay, due: None }
    }

    /// The consumer was reset to `acked`: the server holds that position, and nothing after it
    /// was delivered on the new one yet.
    fn reset(&mut self, acked: Seq) {
        self.received = acked;
        self.sent = acked;
        self.due = None;
    }

    fn received(&mut self, messages: &[Received]) {
        if let Some(highest) = messages.iter().map(|m| m.seq).max() {
            self.received = self.received.max(highest);
        }
    }

    /// The ack to send at `now` for the application's position `acked`, if any; `None` for
    /// `now` means at once (the connection is closing).
    fn next(&mut self, acked: Seq, now: Option<Instant>) -> Option<Seq> {
        let seq = acked.min(self.received);
        if seq <= self.sent {
            self.due = None;
            return None;
        }
        if let Some(now) = now {
            let due = *self.due.get_or_insert(now + self.delay);
            if seq - self.sent < self.batch && now < due {
                return None;
            }
        }
        self.sent = seq;
        self.due = None;
        Some(seq)
    }

    async fn flush(&mut self, socket: &mut Socket, shared: &Shared, now: Option<Instant>) -> Result<()> {
        let next = {
            let mut progress = shared.progress();
            let next = self.next(progress.acked, now);
            progress.ack_timer_armed = self.due.is_some();
            progress.ack_send_at = self.sent + self.batch;
            next
        };
        if let Some(seq) = next {
            socket.send(WsMessage::text(json!({ "op": "ack", "seq": seq }).to_string())).await?;
        }
        Ok(())
    }
}

/// The JSON form of a start position in a `sub` frame.
pub(crate) fn start_to_json(from: StartPosition) -> Value {
    match from {
        StartPosition::Seq(seq) => seq.into(),
        StartPosition::First => "first".into(),
        StartPosition::Last => "last".into(),
        StartPosition::New => "new".into(),
        StartPosition::Time(ms) => json!({ "time": ms }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(seq: Seq) -> Received {
        Received { seq, ts: 0, data: Ok(Value::Null), redelivered: false, headers: Headers::new() }
    }

    /// A subscription to a scripted server that answered its `sub` (shown to `check`) from 1.
    async fn subscribed(
        options: SubscribeOptions,
        check: impl FnOnce(&Value),
    ) -> (Subscription, crate::fake_server::ServerSocket, Arc<Settings>) {
        use crate::fake_server::{read_frame, send_frame, FakeServer};
        let (server, settings) = FakeServer::start(Duration::from_secs(30)).await;
        let (subscription, socket) = tokio::join!(subscribe(settings.clone(), "s", options), async {
            let mut socket = server.accept().await;
            let sub = read_frame(&mut socket).await;
            check(&sub);
            send_frame(&mut socket, json!({ "op": "ok", "id": sub["id"], "from": 1 })).await;
            socket
        });
        (subscription.unwrap(), socket, settings)
    }

    /// A `msgs` frame of `seqs`, each message's data its sequence.
    fn messages_frame(seqs: std::ops::RangeInclusive<Seq>) -> Value {
        let messages: Vec<Value> = seqs.map(|seq| json!({ "seq": seq, "ts": 0, "data": seq })).collect();
        json!({ "op": "msgs", "messages": messages })
    }

    /// Manual-mode progress from 1, with 1 to `last` yielded and none acknowledged.
    fn manual_having_yielded(last: Seq) -> Progress {
        let mut p = Progress::new(AckMode::Manual, Some(StartPosition::First), None);
        p.subscribed(1);
        for seq in 1..=last {
            p.admit(seq, false);
        }
        p
    }

    /// A frame as large as the window: an ack for what was consumed goes out while the rest of
    /// the frame is still buffered, so the server can send more before the application has
    /// taken the whole frame.
    #[tokio::test]
    async fn an_ack_goes_out_before_a_window_sized_frame_is_consumed() {
        use crate::fake_server::{read_frame, send_frame};
        let options = SubscribeOptions::default().start(StartPosition::First).window(1000);
        let (mut subscription, mut socket, _) = subscribed(options, |sub| assert_eq!(sub["window"], 1000)).await;
        send_frame(&mut socket, messages_frame(1..=1000)).await;
        for _ in 0..600 {
            subscription.next().await.unwrap().unwrap();
        }
        let ack = tokio::time::timeout(Duration::from_secs(20), read_frame(&mut socket)).await.expect("an ack within 20 s");
        assert_eq!(ack["op"], "ack", "{ack}");
        let seq = ack["seq"].as_u64().unwrap();
        assert!((500..=600).contains(&seq), "acked {seq} after 600 of 1000 consumed");
    }

    /// A consumer reset under a live subscription: the subscription takes the server's new
    /// position, yields the rewound messages again and acknowledges them again.
    #[tokio::test]
    async fn a_consumer_reset_rewinds_the_subscription_and_its_acks() {
        use crate::fake_server::{read_frame, send_frame};
        let options = SubscribeOptions::default().consumer("billing");
        let (mut subscription, mut socket, settings) = subscribed(options, |sub| assert_eq!(sub["consumer"], "billing")).await;
        let mut events = settings.events.subscribe();
        send_frame(&mut socket, messages_frame(1..=5)).await;
        let seqs = |messages: Vec<Message>| messages.iter().map(|m| m.seq).collect::<Vec<_>>();
        let mut next = async |count: usize| {
            let mut got = Vec::new();
            for _ in 0..count {
                got.push(tokio::time::timeout(Duration::from_secs(20), subscription.next()).await.unwrap().unwrap().unwrap());
            }
            got
        };
        assert_eq!(seqs(next(5).await), [1, 2, 3, 4, 5]);
        let ack = tokio::time::timeout(Duration::from_secs(20), read_frame(&mut socket)).await.expect("an ack within 20 s");
        assert_eq!(ack, json!({ "op": "ack", "seq": 5 }));

        // Moved back to 2: messages 3 to 5 come again, are yielded again and acknowledged again.
        send_frame(&mut socket, json!({ "op": "reset", "consumer": "billing", "acked": 2 })).await;
        send_frame(&mut socket, messages_frame(3..=5)).await;
        assert_eq!(seqs(next(3).await), [3, 4, 5]);
        let ack = tokio::time::timeout(Duration::from_secs(20), read_frame(&mut socket)).await.expect("an ack within 20 s");
        assert_eq!(ack, json!({ "op": "ack", "seq": 5 }));
        loop {
            match events.recv().await.unwrap() {
                ConnectionEvent::ConsumerReset { subject, consumer, acked } => {
                    assert_eq!((subject.as_str(), consumer.as_str(), acked), ("s", "billing", 2));
                    break;
                }
                _ => continue,
            }
        }
    }

    /// One message a frame, as live delivery sends them: the last ones consumed are acknowledged
    /// by the ack timer, although consuming them does not wake the connection task each time.
    #[tokio::test]
    async fn messages_arriving_one_a_frame_are_acknowledged_after_a_quiet_moment() {
        use crate::fake_server::{read_frame, send_frame};
        let options = SubscribeOptions::default().start(StartPosition::First).window(1000);
        let (mut subscription, mut socket, _) = subscribed(options, |_| {}).await;
        for seq in 1..=5 {
            send_frame(&mut socket, json!({ "op": "msg", "seq": seq, "ts": 0, "data": seq })).await;
            let message = tokio::time::timeout(Duration::from_secs(20), subscription.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(message.seq, seq);
        }
        // Usually one ack for the five; a slow machine may see the timer fire in between.
        let mut acked = 0;
        while acked < 5 {
            let ack = tokio::time::timeout(Duration::from_secs(20), read_frame(&mut socket)).await.expect("an ack within 20 s");
            assert_eq!(ack["op"], "ack", "{ack}");
            let seq = ack["seq"].as_u64().unwrap();
            assert!(seq > acked && seq <= 5, "acks move forward within what was consumed: {seq} after {acked}");
            acked = seq;
        }
    }

    #[test]
    fn a_reset_moves_the_position_either_way_and_drops_the_old_generation() {
        let mut p = manual_having_yielded(6);
        assert!(p.acknowledge(4));
        let generation = p.reset(2);
        assert_eq!(generation, p.generation);
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(3)));
        assert_eq!(p.admit(3, false), Some(false), "rewound: yielded again, as a new delivery");
        let generation = p.reset(10);
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(11)));
        assert_eq!(p.admit(9, false), None, "moved ahead: what lies before the position is not yielded");
        assert_eq!(p.admit(11, false), Some(false));
        assert_eq!(generation, p.generation);
    }

    #[test]
    fn auto_mode_yields_each_sequence_once_and_resumes_after_it() {
        let mut p = Progress::new(AckMode::Auto, Some(StartPosition::New), None);
        assert_eq!(p.resume_from(), Some(StartPosition::New));
        p.subscribed(10);
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(10)), "'new' is pinned once resolved");
        assert_eq!(p.admit(10, false), Some(false));
        assert_eq!(p.admit(11, false), Some(false));
        assert_eq!(p.admit(11, false), None, "duplicate");
        assert_eq!(p.admit(10, true), None, "auto mode never repeats");
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(12)));
        assert!(!p.acknowledge(11), "acks are implicit in auto mode");
    }

    #[test]
    fn manual_mode_resumes_after_the_last_ack_and_repeats_only_unacked() {
        let mut p = Progress::new(AckMode::Manual, Some(StartPosition::First), None);
        p.subscribed(1);
        for seq in 1..=5 {
            assert_eq!(p.admit(seq, false), Some(false));
        }
        assert!(p.acknowledge(3));
        assert!(!p.acknowledge(2), "older acks do not move the position");
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(4)));
        assert_eq!(p.admit(3, false), None, "acknowledged: never again");
        assert_eq!(p.admit(4, false), Some(true), "unacknowledged: a redelivery");
        assert_eq!(p.admit(6, false), Some(false));
        assert!(p.acknowledge(100));
        assert_eq!(p.acked, 6, "acks are limited to what was yielded");
    }

    #[test]
    fn a_consumer_without_from_lets_the_server_choose_then_pins_it() {
        let mut p = Progress::new(AckMode::Manual, None, None);
        assert_eq!(p.resume_from(), None);
        p.subscribed(42);
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(42)));
        assert_eq!(p.admit(41, false), None);
    }

    #[test]
    fn trimmed_starts_and_skips_move_the_position_forward() {
        let mut p = Progress::new(AckMode::Manual, None, None);
        p.subscribed(1);
        p.admit(1, false);
        p.acknowledge(1);
        p.subscribed(50);
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(50)));
        p.subscribed(20);
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(50)), "never backwards");
        p.skipped(60);
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(61)));
        assert_eq!(p.admit(60, true), None);
    }

    #[test]
    fn undecodable_messages_count_as_acknowledged_once_everything_before_them_is() {
        let mut p = manual_having_yielded(3);
        assert!(!p.admitted_undecodable(3), "1 and 2 are not acknowledged yet");
        assert_eq!(p.acked, 0);
        assert!(p.acknowledge(2));
        assert_eq!(p.acked, 3, "acknowledging 2 passes the undecodable 3");
        p.admit(4, false);
        assert!(p.admitted_undecodable(4), "right after the position: passed at once");
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(5)));

        let mut skipping = manual_having_yielded(3);
        skipping.admitted_undecodable(3);
        skipping.skipped(2);
        assert_eq!(skipping.acked, 3, "skipping past 2 passes the undecodable 3 too");

        let mut auto = Progress::new(AckMode::Auto, Some(StartPosition::First), None);
        auto.subscribed(1);
        auto.admit(1, false);
        assert!(!auto.admitted_undecodable(1), "auto mode acknowledged it when it was admitted");
        assert_eq!(auto.acked, 1);
    }

    #[test]
    fn a_saved_cursor_positions_the_subscription() {
        let cursor = Cursor { epoch: "e1".into(), seq: 7 };
        let mut p = Progress::new(AckMode::Auto, Some(StartPosition::First), Some(cursor.clone()));
        assert_eq!(p.resume_from(), Some(StartPosition::Seq(8)));
        assert_eq!(p.unsaved_cursor(), None, "nothing new to save");
        p.check_epoch("e1", OnEpochChange::Error).unwrap();
        p.admit(8, false);
        assert_eq!(p.unsaved_cursor(), Some(Cursor { epoch: "e1".into(), seq: 8 }));
    }

    #[test]
    fn epoch_changes_fail_or_restart_from_first() {
        let mut p = Progress::new(AckMode::Auto, None, Some(Cursor { epoch: "e1".into(), seq: 7 }));
        let e = p.clone().check_epoch("e2", OnEpochChange::Error).unwrap_err();
        assert!(matches!(e, Error::EpochChanged { previous, current } if previous == "e1" && current == "e2"));
        p.check_epoch("e2", OnEpochChange::RestartFromFirst).unwrap();
        assert_eq!(p.resume_from(), Some(StartPosition::First));
        assert_eq!(p.generation, 1);
        assert_eq!(p.admit(1, false), Some(false), "sequences start over");
        let mut fresh = Progress::new(AckMode::Auto, None, None);
        fresh.check_epoch("e9", OnEpochChange::Error).unwrap();
        assert_eq!(fresh.epoch.as_deref(), Some("e9"), "the first epoch seen is just recorded");
        assert_eq!(fresh.unsaved_cursor(), None, "no position yet");
    }

    const DELAY: Duration = Duration::from_millis(50);

    #[test]
    fn acks_never_pass_what_this_connection_delivered() {
        let mut acks = AckSender::new(10, 2, DELAY);
        assert_eq!(acks.next(15, None), None, "15 came from an earlier connection");
        acks.received(&[wire(11), wire(12)]);
        assert_eq!(acks.next(15, None), Some(12));
        assert_eq!(acks.next(15, None), None, "already sent");
        acks.received(&[wire(13), wire(14), wire(15), wire(16)]);
        assert_eq!(acks.next(15, None), Some(15));
        assert_eq!(acks.next(9, None), None);
    }

    #[test]
    fn acks_are_combined_until_half_the_window_or_the_delay() {
        let t0 = Instant::now();
        let mut acks = AckSender::new(0, 10, DELAY);
        acks.received(&(1..=20).map(wire).collect::<Vec<_>>());
        assert_eq!(acks.next(1, Some(t0)), None, "one message: wait for more");
        assert_eq!(acks.due, Some(t0 + DELAY));
        assert_eq!(acks.next(4, Some(t0 + DELAY / 2)), None);
        assert_eq!(acks.due, Some(t0 + DELAY), "the oldest unsent position sets the deadline");
        assert_eq!(acks.next(5, Some(t0 + DELAY / 2)), Some(5), "half the window waits: at once");
        assert_eq!(acks.due, None);
        let t1 = t0 + DELAY;
        assert_eq!(acks.next(6, Some(t1)), None);
        assert_eq!(acks.next(7, Some(t1 + DELAY)), Some(7), "the delay has passed");
        assert_eq!(acks.next(7, Some(t1 + DELAY * 3)), None, "nothing new");
        assert_eq!(acks.due, None);
        assert_eq!(acks.next(8, Some(t1 + DELAY * 3)), None);
        assert_eq!(acks.next(8, None), Some(8), "closing: at once");
        let mut single = AckSender::new(0, 1, DELAY);
        single.received(&[wire(1)]);
        assert_eq!(single.next(1, Some(t0)), Some(1), "a window of one is acked message by message");
    }

    #[test]
    fn start_positions_encode_as_the_protocol_expects() {
        assert_eq!(start_to_json(StartPosition::Seq(5)), json!(5));
        assert_eq!(start_to_json(StartPosition::First), json!("first"));
        assert_eq!(start_to_json(StartPosition::Last), json!("last"));
        assert_eq!(start_to_json(StartPosition::New), json!("new"));
        assert_eq!(start_to_json(StartPosition::Time(1_795_946_400_000)), json!({ "time": 1_795_946_400_000u64 }));
    }
}
