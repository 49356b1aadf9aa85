//! Reading one message by its sequence (`get` over WebSocket, `GET …/messages/{seq}` over
//! HTTP): which sequence is meant, and why it cannot be read when it cannot.

use crate::error::ProtocolError;
use crate::retention::StreamBounds;
use crate::sequence::{Seq, MAX_SEQ};
use std::str::FromStr;

/// Which message a `get` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRef {
    Seq(Seq),
    /// The newest retained message.
    Last,
}

impl MessageRef {
    pub(crate) fn invalid() -> ProtocolError {
        ProtocolError::bad_request(format!("`seq` must be an integer between 1 and {MAX_SEQ}, or \"last\""))
    }

    /// The sequence to read, or `not_found` with the subject's `first` and `last` when that
    /// message was trimmed, was never written, or (for `last`) the subject holds none.
    pub fn locate(self, bounds: StreamBounds) -> Result<Seq, ProtocolError> {
        let StreamBounds { first, last } = bounds;
        let holds = if bounds.is_empty() { "the subject holds no message".to_owned() } else { format!("the subject holds {first} to {last}") };
        let missing = match self {
            MessageRef::Seq(seq) if (first..=last).contains(&seq) => return Ok(seq),
            MessageRef::Last if !bounds.is_empty() => return Ok(last),
            MessageRef::Seq(seq) if seq <= last => format!("message {seq} was trimmed; {holds}"),
            MessageRef::Seq(seq) => format!("message {seq} does not exist yet; {holds} (last is {last})"),
            MessageRef::Last if last == 0 => "the subject has no messages yet".to_owned(),
            MessageRef::Last => format!("every message up to {last} was trimmed; {holds}"),
        };
        Err(ProtocolError::not_found(missing).with_detail("first", first).with_detail("last", last))
    }
}

/// The form in a URL path (`…/messages/42`, `…/messages/last`) and in a `get` frame's string.
impl FromStr for MessageRef {
    type Err = ProtocolError;

    fn from_str(text: &str) -> Result<MessageRef, ProtocolError> {
        if text == "last" {
            return Ok(MessageRef::Last);
        }
        // Digits only: u64's parser would also take a leading '+'.
        Some(text)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<Seq>().ok())
            .filter(|seq| (1..=MAX_SEQ).contains(seq))
            .map(MessageRef::Seq)
            .ok_or_else(MessageRef::invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn bounds(first: Seq, last: Seq) -> StreamBounds {
        StreamBounds { first, last }
    }

    #[test]
    fn retained_messages_are_found() {
        assert_eq!(MessageRef::Seq(5).locate(bounds(5, 9)), Ok(5));
        assert_eq!(MessageRef::Seq(9).locate(bounds(5, 9)), Ok(9));
        assert_eq!(MessageRef::Last.locate(bounds(5, 9)), Ok(9));
        assert_eq!(MessageRef::Last.locate(bounds(1, 1)), Ok(1));
    }

    #[test]
    fn missing_messages_say_why_with_the_bounds() {
        let cases = [
            (MessageRef::Seq(4), bounds(5, 9), "message 4 was trimmed; the subject holds 5 to 9"),
            (MessageRef::Seq(10), bounds(5, 9), "message 10 does not exist yet; the subject holds 5 to 9 (last is 9)"),
            (MessageRef::Seq(1), bounds(1, 0), "message 1 does not exist yet; the subject holds no message (last is 0)"),
            (MessageRef::Seq(3), bounds(8, 7), "message 3 was trimmed; the subject holds no message"),
            (MessageRef::Last, bounds(1, 0), "the subject has no messages yet"),
            (MessageRef::Last, bounds(8, 7), "every message up to 7 was trimmed; the subject holds no message"),
        ];
        for (wanted, bounds, message) in cases {
            let e = wanted.locate(bounds).unwrap_err();
            assert_eq!((e.code, e.message.as_str()), (ErrorCode::NotFound, message));
            assert_eq!((e.detail("first"), e.detail("last")), (Some(bounds.first), Some(bounds.last)));
        }
    }

    #[test]
    fn references_parse_from_paths() {
        assert_eq!("42".parse(), Ok(MessageRef::Seq(42)));
        assert_eq!("last".parse(), Ok(MessageRef::Last));
        assert_eq!("9007199254740991".parse(), Ok(MessageRef::Seq(MAX_SEQ)));
        for bad in ["0", "-1", "+1", "", "Last", "1.0", "9007199254740992", " 1"] {
            let e = bad.parse::<MessageRef>().unwrap_err();
            assert_eq!(e.message, "`seq` must be an integer between 1 and 9007199254740991, or \"last\"", "{bad:?}");
        }
    }
}
