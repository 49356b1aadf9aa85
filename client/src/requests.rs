//! One multiplexed WebSocket per subject for requests (publishes, info, trim, state).
//!
//! Requests are pipelined: each gets a numeric `id`, many are in flight at once, and replies are
//! matched by `id`. A background task owns the socket. When the connection drops it reconnects
//! with backoff and sends every request still waiting again, verbatim: a publish keeps its
//! `msgId`, so the server stores it once however many times it is sent. A request refused as
//! rate limited is sent again, verbatim too, after the wait the server asks for. A refreshed
//! token is sent in-band (`auth`) on the open socket.

use crate::connection::{close_reason, credential_closed, ConnectionEvent, Settings, Socket};
use crate::credentials::{auth_request, Credential, TokenWatch};
use crate::error::{Error, Result};
use crate::frames::{self, Incoming, Reply};
use durable_stream_protocol::RequestId;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Whether a request may be sent again after the connection dropped before its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Sending it twice has the effect of sending it once (publishes with a `msgId`, reads).
    Safe,
    /// Its outcome is unknown after a disconnect (a compare-and-set), so fail it with `Closed`.
    Never,
}

struct Request {
    /// The frame's fields without `id`.
    frame: Map<String, Value>,
    resend: Resend,
    reply: oneshot::Sender<Result<Reply>>,
}

/// A handle to a subject's request connection; cheap to clone.
#[derive(Clone)]
pub(crate) struct RequestConnection {
    requests: mpsc::UnboundedSender<Request>,
}

impl RequestConnection {
    /// Starts the connection task. The socket opens on the first request.
    pub fn spawn(settings: Arc<Settings>, subject: String) -> Self {
        let (requests, inbox) = mpsc::unbounded_channel();
        tokio::spawn(Multiplexer::new(settings, subject, inbox).run());
        RequestConnection { requests }
    }

    /// Whether the task is still running (it stops only when every handle is dropped).
    pub fn is_alive(&self) -> bool {
        !self.requests.is_closed()
    }

    /// Sends a request and waits for its reply, a server error, or the request timeout.
    pub async fn call(&self, frame: Map<String, Value>, resend: Resend) -> Result<Reply> {
        self.submit(frame, resend).await
    }

    /// Queues a request at once (requests go out in the order they were submitted) and returns
    /// its reply, a server error, or the request timeout when awaited.
    pub fn submit(&self, frame: Map<String, Value>, resend: Resend) -> impl std::future::Future<Output = Result<Reply>> {
        let (reply, answer) = oneshot::channel();
        let queued = self.requests.send(Request { frame, resend, reply }).map_err(|_| Error::Closed);
        async move {
            queued?;
            answer.await.unwrap_or(Err(Error::Closed))
        }
    }
}

/// Most requests written to the socket before it is flushed.
const WRITE_COALESCE_FRAMES: usize = 128;

/// Whether writing to the socket worked.
type Sent = Result<(), tokio_tungstenite::tungstenite::Error>;

struct Pending {
    text: String,
    resend: Resend,
    /// Whether it went out on some connection (else its failure is the failed connect).
    sent: bool,
    deadline: Instant,
    reply: oneshot::Sender<Result<Reply>>,
}

struct Multiplexer {
    settings: Arc<Settings>,
    subject: String,
    inbox: mpsc::UnboundedReceiver<Request>,
    inbox_open: bool,
    /// Requests sent (or waiting to be) without a reply yet, by id: ids grow, so this is also
    /// the order they were made in and the order of their deadlines.
    pending: BTreeMap<u64, Pending>,
    /// Requests refused as rate limited, by when to send them again (ids that are no longer
    /// pending are skipped).
    retries: BTreeSet<(Instant, u64)>,
    next_id: u64,
    /// Consecutive failed connection attempts since the last good connection.
    failures: u32,
    /// Whether the next connection is a reconnect (and so waits for a backoff delay).
    reconnecting: bool,
    /// Why the last connection attempt failed, while no connection is open: requests that
    /// expire meanwhile report it rather than a bare timeout.
    connect_error: Option<Error>,
}

impl Multiplexer {
    fn new(settings: Arc<Settings>, subject: String, inbox: mpsc::UnboundedReceiver<Request>) -> Self {
        Multiplexer {
            settings,
            subject,
            inbox,
            inbox_open: true,
            pending: BTreeMap::new(),
            retries: BTreeSet::new(),
            next_id: 1,
            failures: 0,
            reconnecting: false,
            connect_error: None,
        }
    }

    async fn run(mut self) {
        loop {
            if !self.inbox_open && self.pending.is_empty() {
                return;
            }
            if self.pending.is_empty() {
                // Idle and disconnected: open a socket only when there is something to send.
                match self.inbox.recv().await {
                    Some(request) => drop(self.enqueue(request)),
                    None => return,
                }
                continue;
            }
            if self.reconnecting && !self.wait_before_reconnect().await {
                continue;
            }
            match self.settings.open(&self.subject).await {
                Ok((socket, _hello, tokens)) => {
                    self.connect_error = None;
                    self.failures = 0;
                    self.reconnecting = true;
                    self.serve(socket, tokens).await;
                }
                Err(e) if e.is_transient() => {
                    self.connect_error = Some(e.clone());
                    self.failures += 1;
                    self.reconnecting = true;
                    if !self.settings.backoff.allows(self.failures) {
                        self.fail_all(&e);
                        self.failures = 0;
                    }
                }
                Err(e) => {
                    // Refused (e.g. unauthorized): retrying will not help these requests.
                    self.fail_all(&e);
                    self.reconnecting = false;
                }
            }
        }
    }

    /// Sleeps for the backoff delay while still accepting requests and expiring old ones.
    /// Returns false when nothing is left to send.
    async fn wait_before_reconnect(&mut self) -> bool {
        let attempt = self.failures + 1;
        let delay = self.settings.backoff.delay(attempt);
        self.settings.emit(ConnectionEvent::Reconnecting { subject: self.subject.clone(), attempt, delay });
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                _ = &mut wake => return !self.pending.is_empty(),
                request = self.inbox.recv(), if self.inbox_open => match request {
                    Some(request) => drop(self.enqueue(request)),
                    None => self.inbox_open = false,
                },
                _ = tokio::time::sleep_until(deadline), if !self.pending.is_empty() => {
                    self.expire();
                    if self.pending.is_empty() {
                        return false;
                    }
                }
            }
        }
    }

    /// Uses an open socket until it drops or there is nothing left to do.
    async fn serve(&mut self, mut socket: Socket, mut tokens: TokenWatch) {
        // Everything waiting goes out now, also what waited out a rate limit on the last socket.
        self.retries.clear();
        for pending in self.pending.values_mut() {
            if let Err(e) = socket.feed(WsMessage::text(pending.text.clone())).await {
                return self.disconnected(e.to_string());
            }
            pending.sent = true;
        }
        if let Err(e) = socket.flush().await {
            return self.disconnected(e.to_string());
        }
        loop {
            if !self.inbox_open && self.pending.is_empty() {
                let _ = socket.close(None).await;
                return;
            }
            let deadline = self.next_deadline();
            let retry_due = self.retries.first().map(|(at, _)| *at);
            let sent = tokio::select! {
                request = self.inbox.recv(), if self.inbox_open => match request {
                    Some(request) => self.send_new(&mut socket, request).await,
                    None => {
                        self.inbox_open = false;
                        Ok(())
                    }
                },
                frame = socket.next() => match frame {
                    Some(Ok(WsMessage::Text(text))) => {
                        self.on_frame(&text);
                        Ok(())
                    }
                    Some(Ok(WsMessage::Close(frame))) => return self.closed(frame.as_ref()),
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => return self.disconnected(e.to_string()),
                    None => return self.disconnected("connection ended".into()),
                },
                credential = tokens.changed() => self.send_token(&mut socket, &credential).await,
                _ = tokio::time::sleep_until(retry_due.unwrap_or_else(Instant::now)), if retry_due.is_some() => {
                    self.send_retries(&mut socket).await
                }
                _ = tokio::time::sleep_until(deadline), if !self.pending.is_empty() => {
                    self.expire();
                    Ok(())
                }
            };
            if let Err(e) = sent {
                return self.disconnected(e.to_string());
            }
        }
    }

    /// Registers a request from a caller and sends it, with every other request already
    /// waiting in the inbox (up to [`WRITE_COALESCE_FRAMES`]) in the same write: frames that
    /// reach the server together are handled in one turn of its event loop and share one storage
    /// commit, where one write per frame spreads them over many.
    async fn send_new(&mut self, socket: &mut Socket, request: Request) -> Sent {
        let mut next = Some(request);
        let mut queued = 0;
        while let Some(request) = next.take() {
            if let Some((id, text)) = self.enqueue(request) {
                socket.feed(WsMessage::text(text)).await?;
                if let Some(pending) = self.pending.get_mut(&id) {
                    pending.sent = true;
                }
            }
            queued += 1;
            if queued < WRITE_COALESCE_FRAMES {
                match self.inbox.try_recv() {
                    Ok(request) => next = Some(request),
                    Err(mpsc::error::TryRecvError::Disconnected) => self.inbox_open = false,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
            }
        }
        socket.flush().await
    }

    /// Sends a refreshed token in-band. If the server refuses it, the socket keeps its current
    /// token (until that expires), so the refusal is only reported.
    async fn send_token(&mut self, socket: &mut Socket, credential: &Credential) -> Sent {
        let (reply, answer) = oneshot::channel();
        let (settings, subject) = (self.settings.clone(), self.subject.clone());
        tokio::spawn(async move {
            if let Ok(Err(refused)) = answer.await {
                if !matches!(refused, Error::Closed) {
                    settings.emit(ConnectionEvent::TokenRefreshFailed { subject: Some(subject), reason: refused.to_string() });
                }
            }
        });
        self.send_new(socket, Request { frame: auth_request(credential), resend: Resend::Never, reply }).await
    }

    /// Sends again the rate-limited requests whose wait is over.
    async fn send_retries(&mut self, socket: &mut Socket) -> Sent {
        let now = Instant::now();
        while let Some(&(at, id)) = self.retries.first() {
            if at > now {
                break;
            }
            self.retries.pop_first();
            if let Some(pending) = self.pending.get(&id) {
                socket.send(WsMessage::text(pending.text.clone())).await?;
            }
        }
        Ok(())
    }

    /// Registers a request; returns its id and the text to send, or None if it was refused
    /// locally.
    fn enqueue(&mut self, request: Request) -> Option<(u64, String)> {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = request.frame;
        frame.insert("id".into(), id.into());
        let text = Value::Object(frame).to_string();
        // Oversized frames are refused here: the server could not name the request in its
        // error (it stops reading before the id) and might close the socket instead.
        if text.len() > self.settings.max_frame_bytes {
            let _ = request.reply.send(Err(Error::TooLarge(format!(
                "frame is {} bytes; the limit is {}",
                text.len(),
                self.settings.max_frame_bytes
            ))));
            return None;
        }
        let deadline = Instant::now() + self.settings.request_timeout;
        self.pending
            .insert(id, Pending { text: text.clone(), resend: request.resend, sent: false, deadline, reply: request.reply });
        Some((id, text))
    }

    fn on_frame(&mut self, text: &str) {
        let (id, outcome) = match frames::decode(text) {
            Ok(Incoming::Reply { id: Some(id), outcome }) => (id, outcome),
            // hello, errors the server could not attribute to a request, and frames whose id
            // cannot be read: nothing to answer (the request times out).
            _ => return,
        };
        let RequestId::Number(number) = id else { return };
        let Some(id) = number.as_u64() else { return };
        if let (Err(Error::RateLimited { retry_after: Some(wait), .. }), Some(pending)) = (&outcome, self.pending.get(&id)) {
            // Nothing was stored: send it again (the same text, so a publish keeps its msgId)
            // once the wait is over, if that is before the request's deadline.
            let at = Instant::now() + *wait;
            if at < pending.deadline {
                self.retries.insert((at, id));
                return;
            }
        }
        if let Some(pending) = self.pending.remove(&id) {
            let _ = pending.reply.send(outcome);
        }
    }

    fn next_deadline(&self) -> Instant {
        self.pending.values().next().map_or_else(Instant::now, |p| p.deadline)
    }

    fn expire(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.pending.first_entry() {
            if entry.get().deadline > now {
                break;
            }
            let error = match (&self.connect_error, entry.get().sent) {
                // Never sent, so certainly not applied: the failed connection is the reason.
                (Some(e), false) => e.clone(),
                (Some(e @ (Error::RateLimited { .. } | Error::Internal(_))), true) => e.clone(),
                _ => Error::Timeout,
            };
            let _ = entry.remove().reply.send(Err(error));
        }
    }

    /// The server closed the socket. When it closed it because the token expired or was
    /// revoked and no provider can replace the token, reconnecting is pointless: everything
    /// waiting fails with that error, and the next request tries again.
    fn closed(&mut self, frame: Option<&CloseFrame>) {
        match credential_closed(frame) {
            Some(error) if !self.settings.credentials.renewable() => {
                self.settings.emit(ConnectionEvent::Disconnected { subject: self.subject.clone(), reason: error.to_string() });
                self.fail_all(&error);
                self.reconnecting = false;
            }
            _ => self.disconnected(close_reason(frame)),
        }
    }

    fn disconnected(&mut self, reason: String) {
        self.settings.emit(ConnectionEvent::Disconnected { subject: self.subject.clone(), reason });
        let unsafe_ids: Vec<u64> =
            self.pending.iter().filter(|(_, p)| p.resend == Resend::Never).map(|(id, _)| *id).collect();
        for id in unsafe_ids {
            if let Some(pending) = self.pending.remove(&id) {
                let _ = pending.reply.send(Err(Error::Closed));
            }
        }
        self.reconnecting = true;
    }

    fn fail_all(&mut self, error: &Error) {
        for (_, pending) in std::mem::take(&mut self.pending) {
            let _ = pending.reply.send(Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;
    use crate::fake_server::{read_frame, FakeServer};
    use serde_json::json;
    use std::time::Duration;

    fn publish(data: i32, msg_id: &str) -> Map<String, Value> {
        json!({ "op": "pub", "data": data, "msgId": msg_id }).as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn pipelined_replies_are_matched_by_id() {
        let (server, settings) = FakeServer::start(Duration::from_secs(5)).await;
        let connection = RequestConnection::spawn(settings, "s".into());
        let calls: Vec<_> = (0..3)
            .map(|n| {
                let connection = connection.clone();
                tokio::spawn(async move { connection.call(publish(n, &format!("m{n}")), Resend::Safe).await })
            })
            .collect();
        let mut socket = server.accept().await;
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(read_frame(&mut socket).await);
        }
        // Answer in reverse order; each caller must still get its own reply.
        for frame in frames.iter().rev() {
            let seq = 100 + frame["data"].as_i64().unwrap();
            socket.send(WsMessage::text(json!({ "op": "ok", "id": frame["id"], "seq": seq }).to_string())).await.unwrap();
        }
        for (n, call) in calls.into_iter().enumerate() {
            let reply = call.await.unwrap().unwrap();
            assert_eq!(reply["seq"], json!(100 + n as i64));
        }
    }

    #[tokio::test]
    async fn unanswered_requests_are_resent_verbatim_after_a_disconnect() {
        let (server, settings) = FakeServer::start(Duration::from_secs(5)).await;
        let connection = RequestConnection::spawn(settings, "s".into());
        let publish_call = {
            let connection = connection.clone();
            tokio::spawn(async move { connection.call(publish(7, "keep-me"), Resend::Safe).await })
        };
        let mut first = server.accept().await;
        let sent_first = read_frame(&mut first).await;
        let state_put = {
            let connection = connection.clone();
            let frame = json!({ "op": "state.put", "state": 1, "version": 0 }).as_object().unwrap().clone();
            tokio::spawn(async move { connection.call(frame, Resend::Never).await })
        };
        read_frame(&mut first).await;
        drop(first); // the connection drops before any reply

        assert!(matches!(state_put.await.unwrap(), Err(Error::Closed)), "a compare-and-set is not resent");
        let mut second = server.accept().await;
        let sent_again = read_frame(&mut second).await;
        assert_eq!(sent_again, sent_first, "same id, same msgId, same data");
        second.send(WsMessage::text(json!({ "op": "ok", "id": sent_again["id"], "seq": 1 }).to_string())).await.unwrap();
        assert_eq!(publish_call.await.unwrap().unwrap()["seq"], 1);
    }

    #[tokio::test]
    async fn errors_timeouts_and_oversized_frames() {
        let (server, settings) = FakeServer::start(Duration::from_millis(300)).await;
        let connection = RequestConnection::spawn(settings, "s".into());
        let refused = {
            let connection = connection.clone();
            tokio::spawn(async move { connection.call(publish(1, "a"), Resend::Safe).await })
        };
        let mut socket = server.accept().await;
        let frame = read_frame(&mut socket).await;
        let reply = json!({ "op": "err", "id": frame["id"], "code": "conflict", "message": "no" });
        socket.send(WsMessage::text(reply.to_string())).await.unwrap();
        assert!(matches!(refused.await.unwrap(), Err(Error::Conflict { message, .. }) if message == "no"));

        // Unattributable errors (id null) and unknown frames are ignored; the request times out.
        let ignored = {
            let connection = connection.clone();
            tokio::spawn(async move { connection.call(publish(2, "b"), Resend::Safe).await })
        };
        read_frame(&mut socket).await;
        socket.send(WsMessage::text(r#"{"op":"err","id":null,"code":"bad_request","message":"?"}"#)).await.unwrap();
        socket.send(WsMessage::text(r#"{"op":"future-op"}"#)).await.unwrap();
        assert!(matches!(ignored.await.unwrap(), Err(Error::Timeout)));

        // A reply this client cannot decode still answers its request, as an error.
        let undecodable = {
            let connection = connection.clone();
            tokio::spawn(async move { connection.call(publish(3, "c"), Resend::Safe).await })
        };
        let frame = read_frame(&mut socket).await;
        socket.send(WsMessage::text(format!(r#"{{"op":"ok","id":{},"seq":1e400}}"#, frame["id"]))).await.unwrap();
        assert!(matches!(undecodable.await.unwrap(), Err(Error::InvalidResponse(m)) if m.contains("`seq`")));

        let big = json!({ "op": "pub", "data": "x".repeat(2000) }).as_object().unwrap().clone();
        assert!(matches!(connection.call(big, Resend::Safe).await, Err(Error::TooLarge(_))));
    }

    #[tokio::test]
    async fn requests_that_never_got_a_connection_fail_with_its_cause_and_url() {
        let (server, settings) = FakeServer::start(Duration::from_millis(300)).await;
        let port = server.listener.local_addr().unwrap().port();
        drop(server); // nothing listens on the port any more
        let patient = RequestConnection::spawn(settings.clone(), "s".into());
        let limited = Settings { backoff: Backoff { max_attempts: Some(2), ..settings.backoff.clone() }, ..(*settings).clone() };
        let impatient = RequestConnection::spawn(Arc::new(limited), "s".into());
        for connection in [patient, impatient] {
            let Err(Error::Connect { url, source }) = connection.call(publish(1, "a"), Resend::Safe).await else {
                panic!("expected a connect error")
            };
            assert_eq!(url, format!("ws://127.0.0.1:{port}/v1/stream/s"));
            let io = source.downcast_ref::<std::io::Error>().expect("the cause is the socket's error");
            assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        }
    }
}
