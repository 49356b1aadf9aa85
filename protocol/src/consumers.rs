//! Durable consumers as operators see them: lag, what is in flight, and the rules of moving a
//! consumer's position (`PUT …/consumers/{name}`, `consumer.reset`) under a live subscription.

use crate::error::ProtocolError;
use crate::sequence::Seq;
use crate::subscription::Subscription;
use serde::{Deserialize, Serialize};

/// Most consumers one listing shows (by name); `truncated` says when there are more.
pub const MAX_LISTED_CONSUMERS: usize = 1000;

/// One durable consumer in a listing (`GET …/consumers`, op `consumers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerInfo {
    pub name: String,
    /// Every sequence up to this one is acknowledged.
    pub acked: Seq,
    /// Messages after the acknowledged position: `last − acked` (NATS `num_pending`).
    pub pending: u64,
    /// Delivered to the connected subscription but not acknowledged yet (NATS
    /// `num_ack_pending`); 0 when no connection is subscribed as this consumer.
    pub ack_pending: u64,
    /// Messages sent again because they were not acknowledged in time, over the consumer's life.
    pub redelivered: u64,
    /// When the consumer was created or last moved (ms since the Unix epoch).
    pub last_activity: u64,
    /// Whether a connection is subscribed as this consumer now.
    pub connected: bool,
}

/// A consumer's stored row, as storage keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConsumer {
    pub name: String,
    pub acked: Seq,
    pub redelivered: u64,
    pub updated: u64,
}

impl ConsumerInfo {
    /// The listing entry for a stored consumer, given the subject's last sequence and the
    /// subscription of the connection subscribed as it, if any.
    pub fn new(stored: StoredConsumer, last: Seq, live: Option<&Subscription>) -> ConsumerInfo {
        ConsumerInfo {
            pending: pending(last, stored.acked),
            ack_pending: live.map_or(0, ack_pending),
            connected: live.is_some(),
            name: stored.name,
            acked: stored.acked,
            redelivered: stored.redelivered,
            last_activity: stored.updated,
        }
    }
}

/// Messages after `acked` up to `last`.
pub fn pending(last: Seq, acked: Seq) -> u64 {
    last.saturating_sub(acked)
}

/// Messages a subscription has sent and not had acknowledged.
pub fn ack_pending(subscription: &Subscription) -> u64 {
    subscription.sent.saturating_sub(subscription.acked)
}

/// Consumer names follow the subject alphabet.
pub fn validate_name(name: &str) -> Result<(), ProtocolError> {
    crate::subject::validate_subject(name).map_err(|e| ProtocolError::bad_request(e.message.replacen("subject", "consumer", 1)))
}

/// The body of `PUT /v1/stream/{subject}/consumers/{name}`: `{"acked":N}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    acked: u64,
}

/// Reads a reset body: a JSON object with exactly one field, `acked`, a non-negative integer.
pub fn parse_reset_body(body: &str) -> Result<Seq, ProtocolError> {
    const EXPECTED: &str = r#"body must be {"acked":N} with N a sequence number"#;
    crate::strict_json::validate(body, 2).map_err(|e| ProtocolError::bad_request(format!("body: {e}")))?;
    // serde would also read a struct from an array (`[7]`).
    if !body.trim_start().starts_with('{') {
        return Err(ProtocolError::bad_request(EXPECTED));
    }
    serde_json::from_str::<ResetBody>(body).map(|b| b.acked).map_err(|e| ProtocolError::bad_request(format!("{EXPECTED}: {e}")))
}

/// A consumer may be moved to any position from 0 (redeliver everything retained) to `last`
/// (skip everything published so far).
pub fn check_reset(acked: Seq, last: Seq) -> Result<(), ProtocolError> {
    if acked > last {
        return Err(ProtocolError::bad_request(format!(
            "`acked` must be between 0 and {last} (the subject's last sequence); got {acked}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(acked: Seq) -> StoredConsumer {
        StoredConsumer { name: "billing".into(), acked, redelivered: 3, updated: 99 }
    }

    #[test]
    fn lag_and_in_flight() {
        let mut live = Subscription::new(6, 100, Some("billing".into()));
        live.record_sent(12, 0, 1000);
        let info = ConsumerInfo::new(stored(5), 20, Some(&live));
        assert_eq!((info.acked, info.pending, info.ack_pending, info.connected), (5, 15, 7, true));
        assert_eq!((info.redelivered, info.last_activity), (3, 99));
        let idle = ConsumerInfo::new(stored(5), 20, None);
        assert_eq!((idle.ack_pending, idle.connected), (0, false));
        assert_eq!(pending(4, 9), 0, "a position beyond last (after a trim race) is no lag");
    }

    #[test]
    fn listing_entries_use_the_documented_names() {
        let json = serde_json::to_value(ConsumerInfo::new(stored(1), 2, None)).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["name", "acked", "pending", "ackPending", "redelivered", "lastActivity", "connected"]);
    }

    #[test]
    fn reset_bodies() {
        assert_eq!(parse_reset_body(r#"{"acked":7}"#).unwrap(), 7);
        assert_eq!(parse_reset_body(r#" {"acked":0} "#).unwrap(), 0);
        for bad in [r#"{}"#, r#"{"acked":-1}"#, r#"{"acked":"7"}"#, r#"{"acked":1.5}"#, r#"{"acked":1,"x":2}"#, "[1]", "", "7"] {
            let e = parse_reset_body(bad).unwrap_err();
            assert!(e.message.contains("acked") || e.message.starts_with("body"), "{bad}: {}", e.message);
        }
        assert!(parse_reset_body(r#"{"acked":1,"acked":2}"#).unwrap_err().message.contains("duplicate key"));
    }

    #[test]
    fn names_follow_the_subject_alphabet() {
        assert!(validate_name("billing-1").is_ok());
        assert!(validate_name("a b").unwrap_err().message.starts_with("consumer may only contain"));
        assert!(validate_name("").unwrap_err().message.starts_with("consumer must be 1 to 128"));
    }

    #[test]
    fn resets_stay_within_the_subject() {
        assert!(check_reset(0, 0).is_ok());
        assert!(check_reset(10, 10).is_ok());
        assert_eq!(check_reset(11, 10).unwrap_err().message, "`acked` must be between 0 and 10 (the subject's last sequence); got 11");
    }
}
