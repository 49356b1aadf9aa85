//! What a publish can carry besides its data, and what a read of one message returns.

use durable_stream_protocol::Seq;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A message's headers: names to values, e.g. `{"type": "OrderCreated", "trace-id": "…"}`.
/// The server bounds their number and size (`MAX_HEADERS`, `MAX_HEADER_BYTES`).
pub type Headers = BTreeMap<String, String>;

/// Options of [`Client::publish_with_options`](crate::Client::publish_with_options) and
/// [`Client::publish_batch_with_options`](crate::Client::publish_batch_with_options).
///
/// ```
/// use durable_stream_client::PublishOptions;
///
/// // Append OrderShipped only if the order's subject still ends at sequence 41.
/// let options = PublishOptions::new().expect_last_seq(41).header("type", "OrderShipped");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    pub(crate) msg_id: Option<String>,
    pub(crate) expect_last_seq: Option<Seq>,
    pub(crate) headers: Headers,
}

impl PublishOptions {
    /// No options: a fresh random message id, no expectation, no headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The idempotency key (default: a fresh random one). Publishing the same key again within
    /// the server's dedup window returns the original sequences.
    pub fn msg_id(mut self, msg_id: impl Into<String>) -> Self {
        self.msg_id = Some(msg_id.into());
        self
    }

    /// Publishes only if the subject's last sequence is `last_seq` (`0`: the subject never had a
    /// message). Otherwise nothing is stored and the publish fails with
    /// [`Error::Conflict`](crate::Error::Conflict) carrying the real `last_seq`. Resending the
    /// publish after a dropped connection is safe: its message id makes the server answer the
    /// original sequence instead of a conflict.
    pub fn expect_last_seq(mut self, last_seq: Seq) -> Self {
        self.expect_last_seq = Some(last_seq);
        self
    }

    /// Adds a header (a batch: to every message; a message's own header of the same name wins).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Adds headers (see [`PublishOptions::header`]).
    pub fn headers(mut self, headers: Headers) -> Self {
        self.headers.extend(headers);
        self
    }
}

/// One message read by its sequence ([`Client::get_message`](crate::Client::get_message)).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StoredMessage {
    /// Its sequence number.
    pub seq: Seq,
    /// When the server stored it, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// Its headers (empty when none).
    #[serde(default)]
    pub headers: Headers,
    /// The published JSON value.
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_build_up() {
        let options = PublishOptions::new()
            .msg_id("order-17-shipped")
            .expect_last_seq(41)
            .header("type", "OrderShipped")
            .headers(Headers::from([("trace".into(), "t-1".into()), ("type".into(), "Shipped".into())]));
        assert_eq!(options.msg_id.as_deref(), Some("order-17-shipped"));
        assert_eq!(options.expect_last_seq, Some(41));
        assert_eq!(options.headers, Headers::from([("trace".into(), "t-1".into()), ("type".into(), "Shipped".into())]));
    }

    #[test]
    fn stored_messages_decode_with_and_without_headers() {
        let with: StoredMessage = serde_json::from_str(r#"{"seq":4,"ts":9,"headers":{"a":"b"},"data":[1]}"#).unwrap();
        assert_eq!((with.seq, with.headers.get("a").map(String::as_str)), (4, Some("b")));
        let without: StoredMessage = serde_json::from_str(r#"{"seq":5,"ts":9,"data":null}"#).unwrap();
        assert!(without.headers.is_empty());
    }
}
