//! The [`Client`]: publishing, subscribing and subject operations.

use crate::backoff::Backoff;
use crate::batching::{AutoBatch, Batcher};
use crate::connection::{base_urls, endpoint, ConnectionEvent, Settings};
use crate::credentials::{Credentials, TokenProvider};
use crate::error::{Error, Result};
use crate::http::Http;
use crate::frames::Reply;
use crate::publish::{Headers, PublishOptions, StoredMessage};
use crate::requests::{RequestConnection, Resend};
use crate::subscription::{self, SubscribeOptions, Subscription};
use durable_stream_protocol::subject::validate_subject;
use durable_stream_protocol::Seq;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// A connection to a durable-stream server. Cheap to clone; clones share connections.
///
/// Requests (publishes, [`info`](Client::info), [`trim`](Client::trim), state) for a subject
/// share one WebSocket, opened on first use and pipelined; each
/// [`subscribe`](Client::subscribe) opens its own. Files go over HTTP.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub settings: Arc<Settings>,
    pub http: Http,
    connections: Mutex<HashMap<String, RequestConnection>>,
    auto_batch: AutoBatch,
    batchers: Mutex<HashMap<String, Batcher>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.inner.settings.http_base.as_str()).finish_non_exhaustive()
    }
}

/// Configures and creates a [`Client`]; see [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    url: String,
    api_key: Option<String>,
    token: Option<String>,
    token_provider: Option<TokenProvider>,
    connect_timeout: Duration,
    request_timeout: Duration,
    backoff: Backoff,
    max_frame_bytes: usize,
    auto_batch: AutoBatch,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Says which credentials are set, never what they are.
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("token_provider", &self.token_provider.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("backoff", &self.backoff)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("auto_batch", &self.auto_batch)
            .finish()
    }
}

impl ClientBuilder {
    /// The API key, sent as `Authorization: Bearer <key>`. A token, if also set, is used
    /// instead.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// An access token (a JWT, e.g. from [`TokenBuilder`](crate::TokenBuilder) or
    /// `POST /v1/tokens`), sent as `Authorization: Bearer <token>` on every connection and
    /// request. It takes precedence over an API key.
    ///
    /// Without a [`token_provider`](Self::token_provider) it is used until it expires: then
    /// open connections are closed by the server and requests fail with
    /// [`Error::TokenExpired`] (the client does not reconnect with a token it knows expired).
    /// With one, it is the first token, and the provider's replace it.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Keeps the token fresh with `provider`, an async callback returning a new token (from
    /// your token service, or minted with [`TokenBuilder`](crate::TokenBuilder)).
    ///
    /// The client asks for the first token when it is created (unless [`token`](Self::token)
    /// gave one), then for the next one when 80% of the current one's lifetime has passed or
    /// 30 s before it expires, whichever is earlier (read from its `iat` and `exp`, not
    /// verified). A new token is sent in-band on every open WebSocket (`{"op":"auth"}`: no
    /// reconnect, nothing missed or repeated) and used by every later connection and HTTP
    /// request. If the provider fails, it is asked again after 1 s, then up to every 30 s, and
    /// each failure is reported as [`ConnectionEvent::TokenRefreshFailed`]. When the server
    /// refuses a connection's token as expired or invalid, the provider is asked at once, and
    /// the connection is opened again with the new token.
    ///
    /// ```no_run
    /// # use durable_stream_client::{Action, Client, TokenBuilder};
    /// # use std::time::Duration;
    /// # async fn example() -> durable_stream_client::Result<()> {
    /// let secret = b"the TOKEN_SECRET".to_vec();
    /// let client = Client::builder("https://streams.example.com")
    ///     .token_provider(move || {
    ///         let secret = secret.clone();
    ///         async move {
    ///             TokenBuilder::new("billing")
    ///                 .ttl(Duration::from_secs(600))
    ///                 .allow_subjects(["orders.>"], [Action::Sub])
    ///                 .sign_hs256(&secret)
    ///         }
    ///     })
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn token_provider<F, Fut, E>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<String, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let provider: TokenProvider = Arc::new(move || {
            let token = provider();
            Box::pin(async move { token.await.map_err(Into::into) })
        });
        self.token_provider = Some(provider);
        self
    }

    /// How long opening a connection may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a request may wait for its reply, reconnects included (default 30 s). For
    /// file transfers it bounds the wait for each chunk rather than the whole transfer.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How reconnects are paced (default: 100 ms doubling to 10 s, 30% jitter, forever).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Largest frame this client sends (default 1 MiB, the server's default limit); larger
    /// requests fail with [`Error::TooLarge`] without being sent.
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// How concurrent [`publish`](Client::publish) calls to one subject are coalesced into batch
    /// frames (default: [`AutoBatch::default`], on; [`AutoBatch::off`] sends each alone). Each
    /// message keeps its own message id and gets its own sequence, in the order of the calls.
    pub fn auto_batch(mut self, auto_batch: AutoBatch) -> Self {
        self.auto_batch = auto_batch;
        self
    }

    /// Creates the client. Connections open lazily, per subject, on first use; this only
    /// checks the configuration (and gets the first token from the provider, if there is one
    /// and no token was given). Without any credentials it fails with
    /// [`Error::Unauthorized`]: the server would refuse every request.
    pub async fn connect(self) -> Result<Client> {
        let (http_base, ws_base) = base_urls(&self.url)?;
        let (events, _) = broadcast::channel(256);
        let credentials = match (self.token_provider, self.token.or(self.api_key)) {
            (Some(provider), first) => Credentials::provided(first, provider, events.clone()).await?,
            (None, Some(fixed)) => Credentials::fixed(fixed, events.clone())?,
            (None, None) => {
                return Err(Error::Unauthorized(
                    "no credentials: give the client builder an API key, a token or a token provider".into(),
                ))
            }
        };
        let http = reqwest::Client::builder().connect_timeout(self.connect_timeout).read_timeout(self.request_timeout).build()?;
        let http = Http::new(http, credentials.clone(), self.request_timeout);
        let settings = Settings {
            http_base,
            ws_base,
            credentials,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            backoff: self.backoff,
            max_frame_bytes: self.max_frame_bytes,
            events,
            http: http.clone(),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                settings: Arc::new(settings),
                http,
                connections: Mutex::new(HashMap::new()),
                auto_batch: self.auto_batch,
                batchers: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// A subject's statistics, from [`Client::info`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectInfo {
    /// The subject's name.
    pub subject: String,
    /// The oldest retained sequence (`last + 1` when empty).
    pub first: Seq,
    /// The newest sequence (0 when nothing was ever published).
    pub last: Seq,
    /// Messages retained.
    pub count: u64,
    /// Bytes of message data retained.
    pub bytes: u64,
    /// Connected subscribers.
    pub subscribers: u64,
    /// Open connections (subscribed or not).
    #[serde(default)]
    pub connections: u64,
    /// Durable consumers known.
    pub consumers: u64,
    /// Changes whenever the subject is wiped; sequences from another epoch are unrelated.
    pub epoch: String,
    /// Fields this client version does not know (from newer servers), kept as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The outcome of [`Client::trim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trimmed {
    /// The oldest retained sequence after trimming.
    pub first: Seq,
    /// The newest sequence (trimming never changes it).
    pub last: Seq,
    /// How many messages were deleted.
    pub deleted: u64,
}

impl Client {
    /// Creates a client for the server at `url` (e.g. `http://127.0.0.1:8787`) with default
    /// settings and the given API key.
    pub async fn connect(url: impl Into<String>, api_key: impl Into<String>) -> Result<Client> {
        Client::builder(url).api_key(api_key).connect().await
    }

    /// Starts configuring a client for the server at `url` (`http`, `https`, `ws` or `wss`; a
    /// path prefix is kept).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            api_key: None,
            token: None,
            token_provider: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            backoff: Backoff::default(),
            max_frame_bytes: 1024 * 1024,
            auto_batch: AutoBatch::default(),
        }
    }

    /// Connection state changes of every connection this client opens from now on.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.settings.events.subscribe()
    }

    /// Publishes one message and returns its sequence number once the server has stored it.
    ///
    /// A fresh random message id makes the publish idempotent: if the connection drops before
    /// the reply, the client sends it again and the server stores it once. Publishes made
    /// concurrently (from many tasks) go out together in batch frames, each message with its
    /// own id and sequence (see [`ClientBuilder::auto_batch`]).
    pub async fn publish(&self, subject: &str, data: impl Serialize) -> Result<Seq> {
        self.publish_with_id(subject, data, &new_msg_id()).await
    }

    /// Publishes one message with an application-chosen idempotency key: publishing the same
    /// `msg_id` again within the server's dedup window returns the original sequence.
    pub async fn publish_with_id(&self, subject: &str, data: impl Serialize, msg_id: &str) -> Result<Seq> {
        self.publish_with_options(subject, data, PublishOptions::new().msg_id(msg_id)).await
    }

    /// Publishes one message only if the subject's last sequence is `expect_last_seq` (`0`: only
    /// if the subject never had a message). Otherwise nothing is stored and it fails with
    /// [`Error::Conflict`] whose `last_seq` is the subject's real last sequence:
    ///
    /// ```no_run
    /// # use durable_stream_client::{Client, Error};
    /// # async fn example(client: Client) -> Result<(), Error> {
    /// match client.publish_if("order-17", serde_json::json!({ "type": "OrderShipped" }), 41).await {
    ///     Ok(seq) => println!("appended as #{seq}"),
    ///     Err(Error::Conflict { last_seq: Some(last), .. }) => println!("someone appended up to #{last}: read and decide again"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Like every publish it carries a message id, so a resend after a dropped connection
    /// answers the original sequence rather than a conflict with its own append.
    pub async fn publish_if(&self, subject: &str, data: impl Serialize, expect_last_seq: Seq) -> Result<Seq> {
        self.publish_with_options(subject, data, PublishOptions::new().expect_last_seq(expect_last_seq)).await
    }

    /// Publishes one message with headers, an expected last sequence or a chosen message id
    /// (see [`PublishOptions`]); returns its sequence number.
    pub async fn publish_with_options(&self, subject: &str, data: impl Serialize, options: PublishOptions) -> Result<Seq> {
        // A conditional publish expects the subject's last sequence: it goes alone.
        if self.inner.auto_batch.enabled && options.expect_last_seq.is_none() {
            let headers = if options.headers.is_empty() { Value::Null } else { to_json(&options.headers)? };
            let msg_id = options.msg_id.unwrap_or_else(new_msg_id);
            return self.batcher(subject)?.publish(to_json(data)?, headers, msg_id).await;
        }
        let mut frame = publish_frame(&options);
        frame.insert("data".into(), to_json(data)?);
        if !options.headers.is_empty() {
            frame.insert("headers".into(), to_json(&options.headers)?);
        }
        let reply = self.request(subject, frame, Resend::Safe).await?;
        field(&reply, "seq")
    }

    /// Publishes several messages atomically, in order, under one message id; returns the
    /// first and last sequence numbers assigned.
    pub async fn publish_batch<T: Serialize>(
        &self,
        subject: &str,
        messages: impl IntoIterator<Item = T>,
    ) -> Result<(Seq, Seq)> {
        let messages = messages.into_iter().map(|data| (data, Headers::new()));
        self.publish_batch_with_options(subject, messages, PublishOptions::new()).await
    }

    /// Publishes several messages atomically, each with its own headers (on top of those of
    /// `options`, which go on every message), under one message id and, with
    /// [`PublishOptions::expect_last_seq`], only if the subject's last sequence is that. Returns
    /// the first and last sequence numbers assigned.
    pub async fn publish_batch_with_options<T: Serialize>(
        &self,
        subject: &str,
        messages: impl IntoIterator<Item = (T, Headers)>,
        options: PublishOptions,
    ) -> Result<(Seq, Seq)> {
        let (mut batch, mut headers) = (Vec::new(), Vec::new());
        for (data, own) in messages {
            batch.push(to_json(data)?);
            let mut all = options.headers.clone();
            all.extend(own);
            headers.push(if all.is_empty() { Value::Null } else { to_json(all)? });
        }
        let mut frame = publish_frame(&options);
        frame.insert("batch".into(), Value::Array(batch));
        if headers.iter().any(|h| !h.is_null()) {
            frame.insert("headers".into(), Value::Array(headers));
        }
        let reply = self.request(subject, frame, Resend::Safe).await?;
        Ok((field(&reply, "seq")?, field(&reply, "last")?))
    }

    /// Reads the message `seq` of the subject. [`Error::NotFound`] when it was trimmed or is
    /// not written yet (the message says which, and what the subject holds).
    pub async fn get_message(&self, subject: &str, seq: Seq) -> Result<StoredMessage> {
        self.read_one(subject, seq.into()).await
    }

    /// Reads the subject's newest retained message ([`Error::NotFound`] when it holds none).
    pub async fn get_last_message(&self, subject: &str) -> Result<StoredMessage> {
        self.read_one(subject, "last".into()).await
    }

    async fn read_one(&self, subject: &str, seq: Value) -> Result<StoredMessage> {
        let reply = self.request(subject, op_frame("get", [("seq", seq)]), Resend::Safe).await?;
        serde_json::from_value(Value::Object(reply)).map_err(|e| Error::InvalidResponse(format!("get reply: {e}")))
    }

    /// Subscribes to `subject`. Returns once the server accepted the subscription.
    pub async fn subscribe(&self, subject: &str, options: SubscribeOptions) -> Result<Subscription> {
        validate_subject(subject).map_err(|e| Error::BadRequest(e.message))?;
        subscription::subscribe(self.inner.settings.clone(), subject, options).await
    }

    /// The subject's statistics.
    pub async fn info(&self, subject: &str) -> Result<SubjectInfo> {
        let reply = self.request(subject, op_frame("info", []), Resend::Safe).await?;
        serde_json::from_value(Value::Object(reply)).map_err(|e| Error::InvalidResponse(format!("info reply: {e}")))
    }

    /// Deletes every message up to and including `upto`. Trimming is idempotent: if it is
    /// resent after a disconnect, `deleted` counts only what the resend deleted.
    pub async fn trim(&self, subject: &str, upto: Seq) -> Result<Trimmed> {
        let reply = self.request(subject, op_frame("trim", [("upto", upto.into())]), Resend::Safe).await?;
        Ok(Trimmed { first: field(&reply, "first")?, last: field(&reply, "last")?, deleted: field(&reply, "deleted")? })
    }

    /// The subject's state object and its version (`(Value::Null, 0)` when never written).
    pub async fn state_get(&self, subject: &str) -> Result<(Value, u64)> {
        let mut reply = self.request(subject, op_frame("state.get", []), Resend::Safe).await?;
        let version = field(&reply, "version")?;
        Ok((reply.remove("state").unwrap_or(Value::Null), version))
    }

    /// Replaces the subject's state object and returns its new version. With
    /// `expected_version`, it is a compare-and-set: [`Error::Conflict`] if the version is not
    /// that. If the connection drops before the reply the outcome is unknown and the call
    /// fails with [`Error::Closed`] (read the state to find out).
    pub async fn state_put(&self, subject: &str, state: impl Serialize, expected_version: Option<u64>) -> Result<u64> {
        let mut frame = op_frame("state.put", [("state", to_json(state)?)]);
        if let Some(version) = expected_version {
            frame.insert("version".into(), version.into());
        }
        let reply = self.request(subject, frame, Resend::Never).await?;
        field(&reply, "version")
    }

    /// Wipes the subject: its messages, consumers and state are deleted, its subscribers are
    /// disconnected, and its epoch changes. Returns the new epoch. (Over HTTP: the WebSocket
    /// protocol has no such op.)
    pub async fn delete_subject(&self, subject: &str) -> Result<String> {
        validate_subject(subject).map_err(|e| Error::BadRequest(e.message))?;
        let url = endpoint(&self.inner.settings.http_base, ["v1", "stream", subject]);
        let response = self.inner.http.send(self.inner.http.delete(url).timeout(self.inner.settings.request_timeout)).await?;
        let body = crate::files::check(response).await?.bytes().await?;
        #[derive(Deserialize)]
        struct Deleted {
            epoch: String,
        }
        let deleted: Deleted =
            serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse(format!("subject deletion reply: {e}")))?;
        Ok(deleted.epoch)
    }

    /// Opens a new WebSocket to `subject` with the current credentials and closes it once the
    /// server said hello: checks that the server is reachable and lets these credentials
    /// connect to the subject (a token must grant something on it), without using or
    /// disturbing the shared connections. `dstream bench` times connection set-up with it.
    pub async fn check_connection(&self, subject: &str) -> Result<()> {
        validate_subject(subject).map_err(|e| Error::BadRequest(e.message))?;
        let (mut socket, _hello, _tokens) = self.inner.settings.open(subject).await?;
        // Said hello, so the check passed; a failed goodbye changes nothing.
        let _ = socket.close(None).await;
        Ok(())
    }

    /// Sends a request on the subject's shared connection.
    async fn request(&self, subject: &str, frame: Map<String, Value>, resend: Resend) -> Result<Reply> {
        self.connection(subject)?.call(frame, resend).await
    }

    /// The subject's shared connection (its task starts on first use).
    fn connection(&self, subject: &str) -> Result<RequestConnection> {
        validate_subject(subject).map_err(|e| Error::BadRequest(e.message))?;
        let mut connections = self.inner.connections.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match connections.get(subject) {
            Some(connection) if connection.is_alive() => connection.clone(),
            _ => {
                let connection = RequestConnection::spawn(self.inner.settings.clone(), subject.to_owned());
                connections.insert(subject.to_owned(), connection.clone());
                connection
            }
        })
    }

    /// The subject's publish batcher, on its shared connection.
    fn batcher(&self, subject: &str) -> Result<Batcher> {
        let connection = self.connection(subject)?;
        let mut batchers = self.inner.batchers.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match batchers.get(subject) {
            Some(batcher) if batcher.is_alive() => batcher.clone(),
            _ => {
                let batcher = Batcher::spawn(connection, self.inner.auto_batch.clone());
                batchers.insert(subject.to_owned(), batcher.clone());
                batcher
            }
        })
    }
}

/// A `pub` frame without its payload: the message id (a fresh one unless chosen) and the
/// expected last sequence.
fn publish_frame(options: &PublishOptions) -> Map<String, Value> {
    let msg_id = options.msg_id.clone().unwrap_or_else(new_msg_id);
    let mut frame = op_frame("pub", [("msgId", msg_id.into())]);
    if let Some(last_seq) = options.expect_last_seq {
        frame.insert("expectLastSeq".into(), last_seq.into());
    }
    frame
}

/// A message id unique to this publish: a random 64-bit prefix drawn once per process and a
/// counter, 32 hex digits (as NATS clients make theirs). A client's ids sort in publish order, so
/// the server's index of keys grows at one end rather than at random places as the stream grows.
pub(crate) fn new_msg_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:016x}{count:016x}", PREFIX.get_or_init(rand::random::<u64>))
}

fn op_frame<const N: usize>(op: &str, fields: [(&str, Value); N]) -> Map<String, Value> {
    let mut frame = Map::new();
    frame.insert("op".into(), op.into());
    for (name, value) in fields {
        frame.insert(name.into(), value);
    }
    frame
}

fn to_json(data: impl Serialize) -> Result<Value> {
    serde_json::to_value(data).map_err(|e| Error::BadRequest(format!("data cannot be serialized as JSON: {e}")))
}

pub(crate) fn field<T: serde::de::DeserializeOwned>(reply: &Reply, name: &str) -> Result<T> {
    let value = reply.get(name).ok_or_else(|| Error::InvalidResponse(format!("reply without `{name}`: {reply:?}")))?;
    T::deserialize(value).map_err(|e| Error::InvalidResponse(format!("reply field `{name}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_ids_are_128_bit_hex_unique_and_in_publish_order() {
        let (a, b) = (new_msg_id(), new_msg_id());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16], "one prefix per process");
        assert!(a < b, "a later id sorts after an earlier one");
    }

    #[test]
    fn publish_frames_carry_the_options() {
        let plain = publish_frame(&PublishOptions::new());
        assert_eq!(plain.len(), 2);
        assert_eq!(plain["msgId"].as_str().map(str::len), Some(32), "a fresh id");
        let conditional = publish_frame(&PublishOptions::new().msg_id("m").expect_last_seq(0));
        assert_eq!(Value::Object(conditional), json!({"op": "pub", "msgId": "m", "expectLastSeq": 0}));
    }

    #[test]
    fn frames_and_reply_fields() {
        let frame = op_frame("pub", [("data", json!({"a": 1})), ("msgId", "m".into())]);
        assert_eq!(Value::Object(frame), json!({"op": "pub", "data": {"a": 1}, "msgId": "m"}));
        let reply: Reply = serde_json::from_value(json!({"seq": 5, "last": "x"})).unwrap();
        assert_eq!(field::<u64>(&reply, "seq").unwrap(), 5);
        assert!(matches!(field::<u64>(&reply, "last"), Err(Error::InvalidResponse(_))));
        assert!(matches!(field::<u64>(&reply, "first"), Err(Error::InvalidResponse(_))));
    }

    #[test]
    fn subject_info_keeps_fields_this_client_does_not_know() {
        let reply = json!({"subject": "s", "first": 1, "last": 2, "count": 2, "bytes": 9, "subscribers": 0,
            "connections": 1, "consumers": 0, "epoch": "e", "retention": {"maxMessages": 5}});
        let info: SubjectInfo = serde_json::from_value(reply.clone()).unwrap();
        assert_eq!(info.connections, 1);
        assert_eq!(info.other.get("retention"), Some(&json!({"maxMessages": 5})));
        assert_eq!(serde_json::to_value(&info).unwrap(), reply, "printed back with every field");
    }

    #[tokio::test]
    async fn bad_configuration_is_refused_before_any_connection() {
        assert!(matches!(Client::connect("nope", "k").await, Err(Error::InvalidUrl(_))));
        let client = Client::connect("http://127.0.0.1:9", "k").await.unwrap();
        assert!(matches!(client.publish("a/b", 1).await, Err(Error::BadRequest(_))));
        assert!(matches!(client.subscribe("", SubscribeOptions::default()).await, Err(Error::BadRequest(_))));
        assert!(matches!(Client::connect("http://h", "bad\nkey").await, Err(Error::BadRequest(_))));
    }
}
