//! Decoding what the server sends over a WebSocket.
//!
//! A frame is first read as an envelope whose values stay raw JSON text, and message frames are
//! split into messages before any payload is decoded. So a payload this client cannot decode
//! (nested deeper than serde_json's recursion limit of 128, or a number beyond `f64` such as
//! `1e400`) spoils only its own message: it is reported with its sequence number and the other
//! messages of the frame arrive as usual. Only a frame whose envelope cannot be read is an error
//! as a whole.

use crate::error::{Error, Result};
use crate::Headers;
use durable_stream_protocol::{ErrorCode, RequestId, Seq};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The fields of a successful reply (`op` and `id` removed).
pub(crate) type Reply = Map<String, Value>;

/// One frame from the server.
#[derive(Debug)]
pub(crate) enum Incoming {
    Hello { epoch: String },
    /// An `ok` or `err` frame; `outcome` is an error too when the reply's fields cannot be decoded.
    Reply { id: Option<RequestId>, outcome: Result<Reply> },
    /// A `msg` or `msgs` frame, in order.
    Messages(Vec<Received>),
    /// The server gave up redelivering everything up to `last`.
    Skipped { last: Seq },
    /// An administrator reset the subscription's consumer to `acked`: delivery goes on after it.
    Reset { consumer: String, acked: Seq },
    /// An op this client does not know (from a newer server).
    Other,
}

/// One message of a `msg` or `msgs` frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Received {
    pub seq: Seq,
    pub ts: u64,
    pub redelivered: bool,
    /// Empty when the message has none.
    pub headers: Headers,
    /// The payload, or why it could not be decoded.
    pub data: Result<Value, String>,
}

type Fields<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

/// A `msgs` frame read in one pass: the catch-up path, where frames hold a thousand messages.
#[derive(Deserialize)]
struct MessagesFrame<'a> {
    #[serde(borrow)]
    messages: Vec<Envelope<'a>>,
}

/// One message's envelope, its headers and payload still raw.
#[derive(Deserialize)]
struct Envelope<'a> {
    seq: Seq,
    ts: u64,
    #[serde(default)]
    redelivered: bool,
    #[serde(borrow, default)]
    headers: Option<&'a RawValue>,
    #[serde(borrow)]
    data: &'a RawValue,
}

impl Envelope<'_> {
    /// Only the payload may fail without failing the message.
    fn received(self) -> Result<Received, String> {
        let headers = match self.headers {
            Some(raw) => serde_json::from_str(raw.get()).map_err(|e| format!("`headers`: {e}"))?,
            None => Headers::new(),
        };
        let data = serde_json::from_str(self.data.get()).map_err(|e| e.to_string());
        Ok(Received { seq: self.seq, ts: self.ts, redelivered: self.redelivered, headers, data })
    }
}

/// How the server begins every `msgs` frame.
const MESSAGES_FRAME_START: &str = r#"{"op":"msgs","#;

/// Decodes one text frame. An error means not even the frame's envelope could be read.
pub(crate) fn decode(text: &str) -> Result<Incoming> {
    if text.starts_with(MESSAGES_FRAME_START) {
        return messages_frame(text);
    }
    let fields: Fields = serde_json::from_str(text).map_err(|e| bad_frame(text, &e.to_string()))?;
    let op: String = field(&fields, "op").map_err(|e| bad_frame(text, &e))?;
    let incoming = match op.as_str() {
        "hello" => Incoming::Hello { epoch: field(&fields, "epoch").map_err(|e| bad_frame(text, &e))? },
        "ok" | "err" => {
            let id = match fields.get("id") {
                Some(raw) => serde_json::from_str(raw.get()).map_err(|e| bad_frame(text, &format!("`id`: {e}")))?,
                None => None,
            };
            let outcome = match op.as_str() {
                "ok" => ok_fields(&fields).map_err(|e| Error::InvalidResponse(format!("{e} in {}", excerpt(text)))),
                _ => Err(err_fields(&fields)),
            };
            Incoming::Reply { id, outcome }
        }
        "msg" => {
            let envelope: Envelope = serde_json::from_str(text).map_err(|e| bad_frame(text, &e.to_string()))?;
            Incoming::Messages(vec![envelope.received().map_err(|e| bad_frame(text, &e))?])
        }
        "msgs" => return messages_frame(text),
        "skipped" => Incoming::Skipped { last: field(&fields, "last").map_err(|e| bad_frame(text, &e))? },
        "reset" => Incoming::Reset {
            consumer: field(&fields, "consumer").map_err(|e| bad_frame(text, &e))?,
            acked: field(&fields, "acked").map_err(|e| bad_frame(text, &e))?,
        },
        _ => Incoming::Other,
    };
    Ok(incoming)
}

/// A `msgs` frame, in one pass over its text.
fn messages_frame(text: &str) -> Result<Incoming> {
    let frame: MessagesFrame = serde_json::from_str(text).map_err(|e| bad_frame(text, &e.to_string()))?;
    let messages = frame.messages.into_iter().map(Envelope::received).collect::<Result<Vec<_>, String>>();
    Ok(Incoming::Messages(messages.map_err(|e| bad_frame(text, &e))?))
}

fn ok_fields(fields: &Fields) -> Result<Reply, String> {
    fields
        .iter()
        .filter(|(name, _)| !matches!(name.as_ref(), "op" | "id"))
        .map(|(name, raw)| {
            let value = serde_json::from_str(raw.get()).map_err(|e| format!("reply field `{name}`: {e}"))?;
            Ok((name.to_string(), value))
        })
        .collect()
}

/// The error an `err` frame reports (with `lastSeq` when a conditional publish was refused).
fn err_fields(fields: &Fields) -> Error {
    let (code, message) = match (field::<String>(fields, "code"), field::<String>(fields, "message")) {
        (Ok(code), Ok(message)) => (code, message),
        (Err(e), _) | (_, Err(e)) => return Error::InvalidResponse(format!("error reply: {e}")),
    };
    match ErrorCode::parse(&code) {
        Some(code) => Error::from_reply(code, message, field(fields, "retryAfterMs").ok()).with_last_seq(field(fields, "lastSeq").ok()),
        None => Error::InvalidResponse(format!("unknown error code {code:?}: {message}")),
    }
}

fn field<'a, T: Deserialize<'a>>(fields: &Fields<'a>, name: &str) -> Result<T, String> {
    let raw = fields.get(name).ok_or_else(|| format!("missing `{name}`"))?;
    serde_json::from_str(raw.get()).map_err(|e| format!("`{name}`: {e}"))
}

fn bad_frame(text: &str, reason: &str) -> Error {
    Error::InvalidResponse(format!("undecodable frame ({reason}): {}", excerpt(text)))
}

/// The start of a frame, for error messages (frames can be a megabyte).
fn excerpt(text: &str) -> Cow<'_, str> {
    const SHOWN: usize = 200;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    fn messages(text: &str) -> Vec<Received> {
        match decode(text).unwrap() {
            Incoming::Messages(messages) => messages,
            other => panic!("not messages: {other:?}"),
        }
    }

    #[test]
    fn one_undecodable_payload_spoils_only_its_own_message() {
        let text = format!(
            r#"{{"op":"msgs","messages":[{{"seq":6,"ts":1,"data":{{"a":1}}}},{{"seq":7,"ts":2,"data":{}}},{{"seq":8,"ts":3,"data":1e400,"redelivered":true}},{{"seq":9,"ts":4,"data":"ok"}}]}}"#,
            nested(200)
        );
        let received = messages(&text);
        assert_eq!(received.iter().map(|m| m.seq).collect::<Vec<_>>(), [6, 7, 8, 9]);
        assert_eq!(received[0].data, Ok(json!({"a": 1})));
        assert!(received[1].data.as_ref().unwrap_err().contains("recursion limit"), "{:?}", received[1].data);
        assert!(received[2].data.as_ref().unwrap_err().contains("number out of range"), "{:?}", received[2].data);
        assert!(received[2].redelivered);
        assert_eq!((received[3].ts, &received[3].data), (4, &Ok(json!("ok"))));
    }

    #[test]
    fn headers_are_decoded_and_absent_headers_are_empty() {
        let received = messages(r#"{"op":"msgs","messages":[{"seq":1,"ts":1,"headers":{"type":"A","trace":"t"},"data":1},{"seq":2,"ts":1,"data":2}]}"#);
        assert_eq!(received[0].headers, Headers::from([("type".into(), "A".into()), ("trace".into(), "t".into())]));
        assert!(received[1].headers.is_empty());
        assert!(matches!(decode(r#"{"op":"msg","seq":1,"ts":1,"headers":{"a":1},"data":1}"#), Err(Error::InvalidResponse(m)) if m.contains("`headers`")));
    }

    #[test]
    fn a_messages_frame_reads_the_same_whatever_the_order_of_its_keys() {
        let server_order = messages(r#"{"op":"msgs","messages":[{"seq":1,"ts":2,"data":[1]},{"seq":2,"ts":2,"data":{"b":null},"redelivered":true}]}"#);
        let other_order = messages(r#"{"messages":[{"data":[1],"ts":2,"seq":1},{"redelivered":true,"seq":2,"data":{"b":null},"ts":2}],"op":"msgs"}"#);
        assert_eq!(server_order, other_order);
        assert_eq!(server_order[1].data, Ok(json!({"b": null})));
        assert!(server_order[1].redelivered && !server_order[0].redelivered);
    }

    #[test]
    fn a_single_message_frame_with_an_undecodable_payload_keeps_its_sequence() {
        let received = messages(&format!(r#"{{"op":"msg","seq":3,"ts":5,"data":{}}}"#, nested(500)));
        assert_eq!((received[0].seq, received[0].ts, received[0].redelivered), (3, 5, false));
        assert!(received[0].data.is_err());
    }

    #[test]
    fn unreadable_envelopes_are_errors() {
        for text in [
            "not json",
            "[1]",
            r#"{"seq":1}"#,
            r#"{"op":"msg","ts":1,"data":1}"#,
            r#"{"op":"msgs","messages":[{"seq":1,"ts":1,"data":1},{"seq":"2","ts":1,"data":1}]}"#,
            r#"{"op":"msgs","messages":{}}"#,
            r#"{"op":"hello"}"#,
        ] {
            assert!(matches!(decode(text), Err(Error::InvalidResponse(m)) if m.starts_with("undecodable frame")), "{text}");
        }
    }

    #[test]
    fn replies_errors_and_other_frames() {
        let Incoming::Reply { id, outcome } = decode(r#"{"op":"ok","id":4,"seq":9,"last":10}"#).unwrap() else { panic!() };
        assert_eq!(id, Some(RequestId::from(4)));
        assert_eq!(Value::Object(outcome.unwrap()), json!({"seq": 9, "last": 10}));

        let Incoming::Reply { id, outcome } =
            decode(r#"{"op":"err","id":null,"code":"conflict","message":"no"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(id, None);
        assert!(matches!(outcome, Err(Error::Conflict { message, last_seq: None }) if message == "no"));
        let Incoming::Reply { outcome, .. } =
            decode(r#"{"op":"err","id":2,"code":"conflict","message":"expected last sequence 3","lastSeq":5}"#).unwrap()
        else {
            panic!()
        };
        assert!(matches!(outcome, Err(Error::Conflict { last_seq: Some(5), .. })));

        // A reply whose fields cannot be decoded still reaches its request, as an error.
        let text = format!(r#"{{"op":"ok","id":"s","state":{},"version":2}}"#, nested(300));
        let Incoming::Reply { id, outcome } = decode(&text).unwrap() else { panic!() };
        assert_eq!(id, Some(RequestId::from("s")));
        assert!(matches!(outcome, Err(Error::InvalidResponse(m)) if m.contains("reply field `state`")));

        let Incoming::Reply { outcome, .. } = decode(r#"{"op":"err","id":1,"code":"teapot","message":"m"}"#).unwrap() else {
            panic!()
        };
        assert!(matches!(outcome, Err(Error::InvalidResponse(m)) if m.contains("teapot")));

        let Incoming::Reply { outcome, .. } =
            decode(r#"{"op":"err","id":1,"code":"rate_limited","message":"m","retryAfterMs":250}"#).unwrap()
        else {
            panic!()
        };
        assert!(matches!(outcome, Err(Error::RateLimited { retry_after: Some(wait), .. }) if wait == Duration::from_millis(250)));

        assert!(matches!(decode(r#"{"op":"hello","subject":"s","last":0,"epoch":"e"}"#), Ok(Incoming::Hello { epoch }) if epoch == "e"));
        assert!(matches!(decode(r#"{"op":"skipped","first":3,"last":5}"#), Ok(Incoming::Skipped { last: 5 })));
        assert!(matches!(decode(r#"{"op":"reset","consumer":"billing","acked":30}"#), Ok(Incoming::Reset { consumer, acked: 30 }) if consumer == "billing"));
        assert!(matches!(decode(r#"{"op":"reset","consumer":"billing"}"#), Err(Error::InvalidResponse(_))));
        assert!(matches!(decode(r#"{"op":"future","x":1}"#), Ok(Incoming::Other)));
    }

    #[test]
    fn long_frames_are_shortened_in_errors() {
        let text = format!("{{\"op\":1,\"pad\":\"{}\"}}", "x".repeat(10_000));
        let Err(Error::InvalidResponse(message)) = decode(&text) else { panic!() };
        assert!(message.len() < 400 && message.ends_with('…'), "{message}");
    }
}
