//! WebSocket frames: parsing what clients send (with an explicit error for every way it can be
//! wrong) and encoding what the server sends.
//!
//! Message payloads stay raw JSON text end to end: the server validates them once and never
//! re-serializes them, so what a subscriber receives is byte for byte what was published.

use crate::config::Config;
use crate::error::{ErrorCode, ProtocolError};
use crate::get::MessageRef;
use crate::headers::{parse_headers, Headers};
use crate::sequence::{Seq, MAX_SEQ};
use crate::strict_json;
use crate::subject::validate_subject;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;

/// Longest request id string and `msgId` accepted.
pub const MAX_ID_LEN: usize = 256;

/// A client's request id: a string or a number, echoed in the reply. Numbers are at most
/// 2^53 − 1 in magnitude (see [`MAX_SEQ`]), so every client reads the echo as the number it sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(serde_json::Number),
    Text(String),
}

impl From<u64> for RequestId {
    fn from(n: u64) -> Self {
        RequestId::Number(n.into())
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId::Text(s.to_owned())
    }
}

/// One message of a `pub` frame: its data, verbatim, and its headers.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub data: Box<RawValue>,
    pub headers: Option<Headers>,
}

/// What a `pub` frame carries: one message (`data`) or a batch.
#[derive(Debug, Clone)]
pub struct Payload {
    pub messages: Vec<NewMessage>,
    pub batch: bool,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// At this sequence (inclusive); clamped up to the oldest retained message.
    Seq(Seq),
    /// At the oldest retained message.
    First,
    /// At the newest existing message (or the next one when the subject is empty).
    Last,
    /// Only messages published after the subscription.
    New,
    /// At the first message stored at or after this time (ms since the Unix epoch); when there
    /// is none yet, at the next message published.
    Time(u64),
}

/// A request from a client.
#[derive(Debug, Clone)]
pub enum ClientFrame {
    /// `msg_id` keys the whole publish; `msg_ids` (a batch only) keys each entry on its own.
    Publish {
        id: Option<RequestId>,
        payload: Payload,
        msg_id: Option<String>,
        msg_ids: Option<Vec<Option<String>>>,
        expect_last_seq: Option<Seq>,
    },
    Subscribe { id: Option<RequestId>, from: Option<StartPosition>, consumer: Option<String>, window: Option<u32> },
    Ack { id: Option<RequestId>, seq: Seq },
    Unsubscribe { id: Option<RequestId> },
    Info { id: Option<RequestId> },
    Trim { id: Option<RequestId>, upto: Seq },
    StateGet { id: Option<RequestId> },
    StatePut { id: Option<RequestId>, state: Box<RawValue>, version: Option<u64> },
    Get { id: Option<RequestId>, message: MessageRef },
    /// Replaces the connection's access token in-band (before the old one expires).
    Auth { id: Option<RequestId>, token: String },
    /// Lists the subject's durable consumers.
    Consumers { id: Option<RequestId> },
    ConsumerDelete { id: Option<RequestId>, name: String },
    /// Moves a durable consumer's acknowledged position (see `consumers`).
    ConsumerReset { id: Option<RequestId>, name: String, acked: Seq },
}

impl ClientFrame {
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            ClientFrame::Publish { id, .. }
            | ClientFrame::Subscribe { id, .. }
            | ClientFrame::Ack { id, .. }
            | ClientFrame::Unsubscribe { id }
            | ClientFrame::Info { id }
            | ClientFrame::Trim { id, .. }
            | ClientFrame::StateGet { id }
            | ClientFrame::StatePut { id, .. }
            | ClientFrame::Get { id, .. }
            | ClientFrame::Auth { id, .. }
            | ClientFrame::Consumers { id }
            | ClientFrame::ConsumerDelete { id, .. }
            | ClientFrame::ConsumerReset { id, .. } => id.as_ref(),
        }
    }
}

/// A frame that could not be accepted, with the request id when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub id: Option<RequestId>,
    pub error: ProtocolError,
}

pub(crate) type Fields<'a> = BTreeMap<String, &'a RawValue>;

/// A frame's fields, and the first name that occurred twice: a repeated field is refused
/// instead of letting one of them silently win (a proxy might pick the other).
pub(crate) struct FrameFields<'a> {
    pub fields: Fields<'a>,
    pub repeated: Option<String>,
}

impl<'de> Deserialize<'de> for FrameFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = FrameFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut frame = FrameFields { fields: Fields::new(), repeated: None };
                while let Some((name, value)) = map.next_entry::<String, &'de RawValue>()? {
                    match frame.fields.entry(name) {
                        Entry::Occupied(field) => {
                            frame.repeated.get_or_insert_with(|| field.key().clone());
                        }
                        Entry::Vacant(field) => {
                            field.insert(value);
                        }
                    }
                }
                Ok(frame)
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// Parses and validates one text frame from a client.
pub fn parse_client_frame(text: &str, config: &Config) -> Result<ClientFrame, FrameError> {
    if text.len() > config.max_frame_bytes {
        return Err(FrameError {
            id: None,
            error: ProtocolError::too_large(format!(
                "frame is {} bytes; the limit is {}",
                text.len(),
                config.max_frame_bytes
            )),
        });
    }
    let FrameFields { fields, repeated } = serde_json::from_str(text).map_err(|e| FrameError {
        id: None,
        error: ProtocolError::bad_request(if e.is_data() {
            "frame must be a JSON object".to_string()
        } else {
            format!("malformed JSON: {e}")
        }),
    })?;
    let id = match fields.get("id") {
        None => None,
        Some(raw) => Some(parse_request_id(raw).map_err(|error| FrameError { id: None, error })?),
    };
    if let Some(name) = repeated {
        // When `id` itself is repeated, neither copy is echoed.
        let id = id.filter(|_| name != "id");
        return Err(FrameError { id, error: ProtocolError::bad_request(format!("field `{name}` is given more than once")) });
    }
    parse_op(&fields, id.clone(), config).map_err(|error| FrameError { id, error })
}

fn parse_request_id(raw: &RawValue) -> Result<RequestId, ProtocolError> {
    if raw.get().starts_with('"') {
        let id = parse_string(raw, "id")?;
        if id.len() > MAX_ID_LEN {
            return Err(ProtocolError::bad_request(format!("id must be at most {MAX_ID_LEN} bytes")));
        }
        return Ok(RequestId::Text(id));
    }
    // Beyond 2^53 − 1, JavaScript (and serde_json beyond 64 bits) reads another number than
    // the one sent, so the reply could not be matched: such ids are refused, not rounded.
    match serde_json::from_str::<serde_json::Number>(raw.get()) {
        Ok(n) if n.as_f64().is_some_and(|v| v.abs() <= MAX_SEQ as f64) => Ok(RequestId::Number(n)),
        _ => Err(ProtocolError::bad_request(format!("id must be a string or a number between -{MAX_SEQ} and {MAX_SEQ}"))),
    }
}

/// A string field; a malformed string (say, a lone surrogate escape) is reported as such.
fn parse_string(raw: &RawValue, field: &str) -> Result<String, ProtocolError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        ProtocolError::bad_request(if raw.get().starts_with('"') {
            format!("`{field}` is not a valid string: {e}")
        } else {
            format!("`{field}` must be a string")
        })
    })
}

fn parse_op(fields: &Fields, id: Option<RequestId>, config: &Config) -> Result<ClientFrame, ProtocolError> {
    let op: String = match fields.get("op") {
        None => return Err(ProtocolError::bad_request("missing field `op`")),
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|_| ProtocolError::bad_request("`op` must be a string"))?,
    };
    let allowed: &[&str] = match op.as_str() {
        "pub" => &["data", "batch", "headers", "msgId", "msgIds", "expectLastSeq"],
        "sub" => &["from", "consumer", "window"],
        "ack" => &["seq"],
        "unsub" | "info" | "state.get" | "consumers" => &[],
        "trim" => &["upto"],
        "state.put" => &["state", "version"],
        "get" => &["seq"],
        "auth" => &["token"],
        "consumer.delete" => &["name"],
        "consumer.reset" => &["name", "acked"],
        _ => return Err(ProtocolError::bad_request(format!("unknown op {op:?}"))),
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_ref(), "op" | "id") && !allowed.contains(&k.as_ref()))
    {
        return Err(ProtocolError::bad_request(format!("unknown field `{unknown}` for op {op:?}")));
    }
    let frame = match op.as_str() {
        "pub" => {
            let payload = parse_payload(fields, config)?;
            let msg_ids = optional(fields, "msgIds", |raw| parse_entry_msg_ids(raw, &payload))?;
            if msg_ids.is_some() && fields.contains_key("msgId") {
                return Err(ProtocolError::bad_request("`msgId` and `msgIds` are mutually exclusive"));
            }
            ClientFrame::Publish {
                id,
                payload,
                msg_id: optional(fields, "msgId", parse_msg_id)?,
                msg_ids,
                expect_last_seq: optional(fields, "expectLastSeq", |raw| parse_seq(raw, "expectLastSeq", 0))?,
            }
        }
        "sub" => ClientFrame::Subscribe {
            id,
            from: optional(fields, "from", |raw| parse_start(raw, config))?,
            consumer: optional(fields, "consumer", |raw| parse_name(raw, "consumer"))?,
            window: optional(fields, "window", |raw| parse_window(raw, config))?,
        },
        "ack" => ClientFrame::Ack { id, seq: required(fields, "seq", |raw| parse_seq(raw, "seq", 1))? },
        "unsub" => ClientFrame::Unsubscribe { id },
        "info" => ClientFrame::Info { id },
        "trim" => ClientFrame::Trim { id, upto: required(fields, "upto", |raw| parse_seq(raw, "upto", 0))? },
        "state.get" => ClientFrame::StateGet { id },
        "state.put" => ClientFrame::StatePut {
            id,
            state: required(fields, "state", |raw| parse_state(raw, config))?,
            version: optional(fields, "version", |raw| parse_seq(raw, "version", 0))?,
        },
        "get" => ClientFrame::Get { id, message: required(fields, "seq", parse_message_ref)? },
        "auth" => ClientFrame::Auth { id, token: required(fields, "token", parse_token)? },
        "consumers" => ClientFrame::Consumers { id },
        "consumer.delete" => ClientFrame::ConsumerDelete { id, name: required(fields, "name", |raw| parse_name(raw, "name"))? },
        "consumer.reset" => ClientFrame::ConsumerReset {
            id,
            name: required(fields, "name", |raw| parse_name(raw, "name"))?,
            acked: required(fields, "acked", |raw| parse_seq(raw, "acked", 0))?,
        },
        _ => unreachable!("op was checked against the allowed list above"),
    };
    Ok(frame)
}

fn parse_token(raw: &RawValue) -> Result<String, ProtocolError> {
    let token = parse_string(raw, "token")?;
    if token.is_empty() || token.len() > crate::token::jwt::MAX_TOKEN_BYTES {
        return Err(ProtocolError::bad_request(format!(
            "`token` must be a JWT of 1 to {} bytes",
            crate::token::jwt::MAX_TOKEN_BYTES
        )));
    }
    Ok(token)
}

fn optional<T>(
    fields: &Fields,
    name: &str,
    parse: impl FnOnce(&RawValue) -> Result<T, ProtocolError>,
) -> Result<Option<T>, ProtocolError> {
    fields.get(name).map(|raw| parse(raw)).transpose()
}

fn required<T>(
    fields: &Fields,
    name: &str,
    parse: impl FnOnce(&RawValue) -> Result<T, ProtocolError>,
) -> Result<T, ProtocolError> {
    optional(fields, name, parse)?.ok_or_else(|| ProtocolError::bad_request(format!("missing field `{name}`")))
}

fn parse_payload(fields: &Fields, config: &Config) -> Result<Payload, ProtocolError> {
    let headers = fields.get("headers");
    match (fields.get("data"), fields.get("batch")) {
        (Some(_), Some(_)) => Err(ProtocolError::bad_request("`data` and `batch` are mutually exclusive")),
        (None, None) => Err(ProtocolError::bad_request("`pub` needs `data` or `batch`")),
        (Some(data), None) => {
            strict_json::check(data.get(), config, "`data`")?;
            let headers = headers.map(|raw| parse_headers(raw.get(), config, "`headers`")).transpose()?.flatten();
            Ok(Payload { messages: vec![NewMessage { data: (*data).to_owned(), headers }], batch: false })
        }
        (None, Some(batch)) => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(batch.get())
                .map_err(|_| ProtocolError::bad_request("`batch` must be an array of JSON values"))?;
            validate_batch_len(items.len(), config)?;
            strict_json::check_each(items.iter().map(|item| item.get()), config, "batch")?;
            let mut headers = match headers {
                Some(raw) => parse_batch_headers(raw, items.len(), config)?,
                None => Vec::new(),
            };
            headers.resize(items.len(), None);
            let messages = items.into_iter().zip(headers).map(|(data, headers)| NewMessage { data, headers }).collect();
            Ok(Payload { messages, batch: true })
        }
    }
}

/// The `headers` of a batch: an array with one object (or `null`) per entry.
fn parse_batch_headers(raw: &RawValue, len: usize, config: &Config) -> Result<Vec<Option<Headers>>, ProtocolError> {
    let shape = format!("with `batch`, `headers` must be an array of {len} objects or nulls, one per entry");
    per_entry(raw, len, &shape, |i, entry| parse_headers(entry.get(), config, &format!("`headers[{i}]`")))
}

/// A field that holds one value or `null` per batch entry: `shape` is the error when it is not
/// an array of `len`, and `parse` reads entry `i`'s value.
fn per_entry<T>(
    raw: &RawValue,
    len: usize,
    shape: &str,
    parse: impl Fn(usize, &RawValue) -> Result<Option<T>, ProtocolError>,
) -> Result<Vec<Option<T>>, ProtocolError> {
    let entries: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| ProtocolError::bad_request(shape))?;
    if entries.len() != len {
        return Err(ProtocolError::bad_request(shape));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| match entry.get() {
            "null" => Ok(None),
            _ => parse(i, entry),
        })
        .collect()
}

/// Checks a batch's message count against the limit (shared by the WebSocket and HTTP batch).
pub fn validate_batch_len(len: usize, config: &Config) -> Result<(), ProtocolError> {
    if len == 0 {
        return Err(ProtocolError::bad_request("`batch` must not be empty"));
    }
    if len > config.max_batch_messages {
        return Err(ProtocolError::too_large(format!(
            "batch has {len} messages; the limit is {}",
            config.max_batch_messages
        )));
    }
    Ok(())
}

/// Validates an idempotency key (`msgId` on WebSockets, `Idempotency-Key` over HTTP).
pub fn validate_msg_id(msg_id: &str) -> Result<(), ProtocolError> {
    if msg_id.is_empty() || msg_id.len() > MAX_ID_LEN {
        return Err(ProtocolError::bad_request(format!("msgId must be 1 to {MAX_ID_LEN} bytes")));
    }
    Ok(())
}

fn parse_msg_id(raw: &RawValue) -> Result<String, ProtocolError> {
    let msg_id = parse_string(raw, "msgId")?;
    validate_msg_id(&msg_id)?;
    Ok(msg_id)
}

/// The `msgIds` of a batch: an array with one key (or `null` for none) per entry, in order.
fn parse_entry_msg_ids(raw: &RawValue, payload: &Payload) -> Result<Vec<Option<String>>, ProtocolError> {
    let len = payload.messages.len();
    if !payload.batch {
        return Err(ProtocolError::bad_request("`msgIds` needs `batch` (a single message takes `msgId`)"));
    }
    let shape = format!("`msgIds` must be an array of {len} strings or nulls, one per `batch` entry");
    per_entry(raw, len, &shape, |i, entry| {
        parse_msg_id(entry).map(Some).map_err(|e| ProtocolError::bad_request(format!("`msgIds[{i}]`: {}", e.message)))
    })
}

fn parse_start(raw: &RawValue, config: &Config) -> Result<StartPosition, ProtocolError> {
    const EXPECTED: &str =
        "`from` must be a sequence number, one of \"first\", \"last\", \"new\", or {\"time\": ms since the Unix epoch}";
    if raw.get().starts_with('{') {
        // Strict JSON first: `{"time":1,"time":2}` has no one meaning.
        strict_json::check(raw.get(), config, "`from`")?;
        let time: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get()).map_err(|_| ProtocolError::bad_request(EXPECTED))?;
        return match (time.get("time"), time.len()) {
            (Some(ms), 1) => parse_integer(ms, "from.time", 0, MAX_SEQ).map(StartPosition::Time),
            _ => Err(ProtocolError::bad_request(EXPECTED)),
        };
    }
    match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(serde_json::Value::String(s)) => match s.as_str() {
            "first" => Ok(StartPosition::First),
            "last" => Ok(StartPosition::Last),
            "new" => Ok(StartPosition::New),
            _ => Err(ProtocolError::bad_request(EXPECTED)),
        },
        Ok(serde_json::Value::Number(_)) => parse_seq(raw, "from", 0).map(StartPosition::Seq),
        _ => Err(ProtocolError::bad_request(EXPECTED)),
    }
}

/// `seq` of a `get`: a sequence number or `"last"`.
fn parse_message_ref(raw: &RawValue) -> Result<MessageRef, ProtocolError> {
    if raw.get().starts_with('"') {
        // Only "last": a number in a string is refused, so "5" and 5 are never confused.
        return match parse_string(raw, "seq")?.as_str() {
            "last" => Ok(MessageRef::Last),
            _ => Err(MessageRef::invalid()),
        };
    }
    parse_integer(raw, "seq", 1, MAX_SEQ).map_err(|_| MessageRef::invalid()).map(MessageRef::Seq)
}

/// Durable consumer names follow the subject alphabet.
fn parse_name(raw: &RawValue, field: &str) -> Result<String, ProtocolError> {
    let name = parse_string(raw, field)?;
    validate_subject(&name).map_err(|e| ProtocolError::bad_request(e.message.replacen("subject", field, 1)))?;
    Ok(name)
}

fn parse_window(raw: &RawValue, config: &Config) -> Result<u32, ProtocolError> {
    Ok(parse_integer(raw, "window", 1, config.max_window.into())? as u32)
}

/// A sequence number (or version): an integer from `min` to [`MAX_SEQ`].
fn parse_seq(raw: &RawValue, field: &str, min: u64) -> Result<u64, ProtocolError> {
    parse_integer(raw, field, min, MAX_SEQ)
}

/// Parses an integer from `min` to `max`; the error names both, the real bounds of `field`.
/// Strings are refused, so `"5"` and `5` are never confused.
fn parse_integer(raw: &RawValue, field: &str, min: u64, max: u64) -> Result<u64, ProtocolError> {
    serde_json::from_str::<u64>(raw.get())
        .ok()
        .filter(|value| (min..=max).contains(value))
        .ok_or_else(|| ProtocolError::bad_request(format!("`{field}` must be an integer between {min} and {max}")))
}

fn parse_state(raw: &RawValue, config: &Config) -> Result<Box<RawValue>, ProtocolError> {
    crate::state::validate_state(raw.get(), config)?;
    Ok(raw.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Server → client

/// `{"op":"hello",…}`: sent once when a connection opens.
/// `{"op":"hello",…}`; a connection opened with an access token also learns the token's `sub`
/// and expiry (seconds), so that it knows when to refresh.
pub fn encode_hello(subject: &str, last: Seq, epoch: &str, token: Option<&crate::token::TokenInfo>) -> String {
    let mut hello = serde_json::json!({ "op": "hello", "subject": subject, "last": last, "epoch": epoch });
    if let Some(token) = token {
        hello["sub"] = token.sub.clone().into();
        hello["exp"] = token.exp.into();
    }
    hello.to_string()
}

/// `{"op":"ok","id":…, …fields}`: the reply to a request. `fields` must be a JSON object.
pub fn encode_ok(id: Option<&RequestId>, fields: serde_json::Value) -> String {
    let mut reply = serde_json::Map::new();
    reply.insert("op".into(), "ok".into());
    reply.insert("id".into(), serde_json::to_value(id).expect("request ids serialize"));
    if let serde_json::Value::Object(fields) = fields {
        reply.extend(fields);
    }
    serde_json::Value::Object(reply).to_string()
}

/// `{"op":"err","id":…,"code":…,"message":…}`, and the error's details (`"lastSeq":7`).
pub fn encode_error(id: Option<&RequestId>, error: &ProtocolError) -> String {
    let mut frame = serde_json::Map::new();
    frame.insert("op".into(), "err".into());
    frame.insert("id".into(), serde_json::to_value(id).expect("request ids serialize"));
    frame.extend(error.fields());
    serde_json::Value::Object(frame).to_string()
}

/// One stored message as it is sent to readers.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingMessage<'a> {
    pub seq: Seq,
    pub ts: u64,
    /// The headers as a JSON object text (see [`Headers`]); None: the message has none, and
    /// no `headers` key is sent.
    pub headers: Option<&'a str>,
    /// The published JSON, verbatim.
    pub data: &'a str,
}

impl OutgoingMessage<'_> {
    /// The bytes a message adds to a frame: its data, its headers and about 48 of envelope.
    pub fn frame_size(data: &str, headers: Option<&str>) -> usize {
        data.len() + headers.map_or(0, |h| h.len() + 12) + 48
    }

    fn write_fields(&self, out: &mut String, redelivered: bool) {
        use std::fmt::Write;
        let _ = write!(out, "\"seq\":{},\"ts\":{},", self.seq, self.ts);
        if let Some(headers) = self.headers {
            let _ = write!(out, "\"headers\":{headers},");
        }
        let _ = write!(out, "\"data\":{}", self.data);
        if redelivered {
            out.push_str(",\"redelivered\":true");
        }
    }
}

/// One message on its own, `{"seq":…,"ts":…,"headers":…,"data":…}` (a read of one message
/// over HTTP).
pub fn encode_message(message: &OutgoingMessage) -> String {
    let mut out = String::with_capacity(OutgoingMessage::frame_size(message.data, message.headers));
    out.push('{');
    message.write_fields(&mut out, false);
    out.push('}');
    out
}

/// The reply to `get`: `{"op":"ok","id":…,"seq":…,"ts":…,"headers":…,"data":…}`.
pub fn encode_message_reply(id: Option<&RequestId>, message: &OutgoingMessage) -> String {
    let head = encode_ok(id, serde_json::json!({}));
    let head = head.strip_suffix('}').unwrap_or(&head);
    format!("{head},{}", &encode_message(message)[1..])
}

/// `{"op":"msg",…}` for one message, `{"op":"msgs","messages":[…]}` for several.
pub fn encode_messages(messages: &[OutgoingMessage], redelivered: bool) -> String {
    let size: usize = messages.iter().map(|m| OutgoingMessage::frame_size(m.data, m.headers)).sum();
    let mut out = String::with_capacity(size + 32);
    if let [one] = messages {
        out.push_str("{\"op\":\"msg\",");
        one.write_fields(&mut out, redelivered);
        out.push('}');
        return out;
    }
    out.push_str("{\"op\":\"msgs\",\"messages\":");
    write_message_array(&mut out, messages, redelivered);
    out.push('}');
    out
}

/// `[{"seq":…,"ts":…,"data":…}, …]`
fn write_message_array(out: &mut String, messages: &[OutgoingMessage], redelivered: bool) {
    out.push('[');
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        message.write_fields(out, redelivered);
        out.push('}');
    }
    out.push(']');
}

/// One page of stored messages for the HTTP API: `{"messages":[…],"next":K,"last":L}`, where
/// `next` is the sequence to ask for next and `last` the newest stored.
pub fn encode_page(messages: &[OutgoingMessage], next: Seq, last: Seq) -> String {
    let size: usize = messages.iter().map(|m| OutgoingMessage::frame_size(m.data, m.headers)).sum();
    let mut out = String::with_capacity(size + 64);
    out.push_str("{\"messages\":");
    write_message_array(&mut out, messages, false);
    out.push_str(&format!(",\"next\":{next},\"last\":{last}}}"));
    out
}

/// `{"op":"skipped","first":F,"last":L}`: messages that reached the max-deliver count without
/// an ack; the subscription moves past them.
pub fn encode_skipped(first: Seq, last: Seq) -> String {
    serde_json::json!({ "op": "skipped", "first": first, "last": last }).to_string()
}

/// `{"op":"reset","consumer":…,"acked":N}`: the subscription's durable consumer was moved to
/// `acked`; what was in flight is dropped and delivery continues at `acked + 1`.
pub fn encode_reset(consumer: &str, acked: Seq) -> String {
    serde_json::json!({ "op": "reset", "consumer": consumer, "acked": acked }).to_string()
}

/// A message as clients decode it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    pub seq: Seq,
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    pub data: serde_json::Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redelivered: bool,
}

/// Every frame the server sends, as clients decode it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op")]
pub enum ServerFrame {
    #[serde(rename = "hello")]
    Hello { subject: String, last: Seq, epoch: String },
    #[serde(rename = "ok")]
    Ok {
        id: Option<RequestId>,
        #[serde(flatten)]
        fields: serde_json::Map<String, serde_json::Value>,
    },
    #[serde(rename = "err")]
    Err { id: Option<RequestId>, code: ErrorCode, message: String },
    #[serde(rename = "msg")]
    Msg(Message),
    #[serde(rename = "msgs")]
    Msgs { messages: Vec<Message> },
    #[serde(rename = "skipped")]
    Skipped { first: Seq, last: Seq },
    #[serde(rename = "reset")]
    Reset { consumer: String, acked: Seq },
}

impl ServerFrame {
    pub fn parse(text: &str) -> Result<ServerFrame, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        parse_client_frame(text, &Config::default())
    }

    fn err(text: &str) -> FrameError {
        parse(text).expect_err(text)
    }

    #[test]
    fn publish_keeps_the_payload_verbatim() {
        let ClientFrame::Publish { id, payload, msg_id, msg_ids, expect_last_seq } =
            parse(r#"{"op":"pub","id":1,"data":{"b": [1, 2.50]},"msgId":"m-1"}"#).unwrap()
        else {
            panic!("not a publish")
        };
        assert_eq!(id, Some(RequestId::from(1)));
        assert!(!payload.batch);
        assert_eq!(payload.messages[0].data.get(), r#"{"b": [1, 2.50]}"#);
        assert_eq!(payload.messages[0].headers, None);
        assert_eq!((msg_id.as_deref(), msg_ids, expect_last_seq), (Some("m-1"), None, None));
    }

    #[test]
    fn batch_entries_carry_their_own_msg_ids() {
        let ClientFrame::Publish { payload, msg_id, msg_ids, .. } =
            parse(r#"{"op":"pub","batch":[1,2,3],"headers":[null,{"a":"b"},null],"msgIds":["k-1",null,"k-3"]}"#).unwrap()
        else {
            panic!("not a publish")
        };
        assert_eq!((payload.messages.len(), msg_id), (3, None));
        assert_eq!(msg_ids, Some(vec![Some("k-1".to_owned()), None, Some("k-3".to_owned())]));
        let long = "k".repeat(MAX_ID_LEN + 1);
        for (bad, message) in [
            (r#""data":1,"msgIds":["a"]"#.to_owned(), "`msgIds` needs `batch` (a single message takes `msgId`)".to_owned()),
            (r#""batch":[1,2],"msgIds":["a"]"#.to_owned(), "`msgIds` must be an array of 2 strings or nulls, one per `batch` entry".to_owned()),
            (r#""batch":[1],"msgIds":"a""#.to_owned(), "`msgIds` must be an array of 1 strings or nulls, one per `batch` entry".to_owned()),
            (r#""batch":[1,2],"msgIds":["a",7]"#.to_owned(), "`msgIds[1]`: `msgId` must be a string".to_owned()),
            (r#""batch":[1,2],"msgIds":["a",""]"#.to_owned(), format!("`msgIds[1]`: msgId must be 1 to {MAX_ID_LEN} bytes")),
            (format!(r#""batch":[1],"msgIds":["{long}"]"#), format!("`msgIds[0]`: msgId must be 1 to {MAX_ID_LEN} bytes")),
            (r#""batch":[1],"msgIds":["a"],"msgId":"b""#.to_owned(), "`msgId` and `msgIds` are mutually exclusive".to_owned()),
        ] {
            let e = err(&format!(r#"{{"op":"pub","id":"k",{bad}}}"#));
            assert_eq!((e.id, e.error.code, e.error.message), (Some(RequestId::from("k")), ErrorCode::BadRequest, message), "{bad}");
        }
    }

    fn published(text: &str) -> (Payload, Option<Seq>) {
        match parse(text).unwrap() {
            ClientFrame::Publish { payload, expect_last_seq, .. } => (payload, expect_last_seq),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn publish_with_an_expected_last_sequence() {
        assert_eq!(published(r#"{"op":"pub","data":1,"expectLastSeq":0}"#).1, Some(0));
        assert_eq!(published(r#"{"op":"pub","batch":[1,2],"expectLastSeq":9007199254740991}"#).1, Some(MAX_SEQ));
        for bad in ["-1", "1.5", "\"3\"", "null", "9007199254740992"] {
            let e = err(&format!(r#"{{"op":"pub","id":5,"data":1,"expectLastSeq":{bad}}}"#));
            assert_eq!(e.error.message, "`expectLastSeq` must be an integer between 0 and 9007199254740991", "{bad}");
            assert_eq!(e.id, Some(RequestId::from(5)));
        }
    }

    #[test]
    fn publish_with_headers() {
        let headers = |payload: &Payload| payload.messages.iter().map(|m| m.headers.as_ref().map(|h| h.as_json().to_owned())).collect::<Vec<_>>();
        let (one, _) = published(r#"{"op":"pub","data":1,"headers":{"type":"OrderCreated","trace":"t-1"}}"#);
        assert_eq!(headers(&one), [Some(r#"{"type":"OrderCreated","trace":"t-1"}"#.to_owned())]);
        let (batch, _) = published(r#"{"op":"pub","batch":[1,2,3],"headers":[{"a":"1"},null,{}]}"#);
        assert_eq!(headers(&batch), [Some(r#"{"a":"1"}"#.to_owned()), None, None]);
        assert_eq!(batch.messages[2].data.get(), "3");
        for (bad, message) in [
            (r#""headers":[{"a":"1"}],"data":1"#, r#"`headers` must be an object of strings, e.g. {"type":"OrderCreated"}"#),
            (r#""headers":{"a":"1"},"batch":[1]"#, "with `batch`, `headers` must be an array of 1 objects or nulls, one per entry"),
            (r#""headers":[null],"batch":[1,2]"#, "with `batch`, `headers` must be an array of 2 objects or nulls, one per entry"),
            (r#""headers":[null,{"a":2}],"batch":[1,2]"#, r#"`headers[1]`: the value of "a" must be a string"#),
            (r#""headers":{"a":"1","a":"2"},"data":1"#, "`headers`: duplicate key \"a\": keys of an object must be unique (at byte 0)"),
        ] {
            let e = err(&format!(r#"{{"op":"pub","id":"h",{bad}}}"#));
            assert_eq!((e.id, e.error.message.as_str()), (Some(RequestId::from("h")), message), "{bad}");
        }
        let few = Config { max_headers: 1, ..Config::default() };
        let e = parse_client_frame(r#"{"op":"pub","batch":[1,2],"headers":[null,{"a":"1","b":"2"}]}"#, &few).unwrap_err();
        assert_eq!((e.error.code, e.error.message.as_str()), (ErrorCode::TooLarge, "`headers[1]`: 2 headers; the limit is 1 (MAX_HEADERS)"));
    }

    #[test]
    fn publish_batch_and_null_data() {
        let (payload, _) = published(r#"{"op":"pub","id":"b","batch":[1,"two",null,{"x":3}]}"#);
        assert!(payload.batch);
        let raw: Vec<&str> = payload.messages.iter().map(|m| m.data.get()).collect();
        assert_eq!(raw, ["1", "\"two\"", "null", "{\"x\":3}"]);
        assert!(matches!(parse(r#"{"op":"pub","data":null}"#).unwrap(), ClientFrame::Publish { .. }));
    }

    #[test]
    fn publish_errors() {
        assert_eq!(err(r#"{"op":"pub","id":3}"#).error.message, "`pub` needs `data` or `batch`");
        assert_eq!(err(r#"{"op":"pub","id":3}"#).id, Some(RequestId::from(3)));
        assert!(err(r#"{"op":"pub","data":1,"batch":[1]}"#).error.message.contains("mutually exclusive"));
        assert!(err(r#"{"op":"pub","batch":[]}"#).error.message.contains("must not be empty"));
        assert!(err(r#"{"op":"pub","batch":{"a":1}}"#).error.message.contains("array"));
        assert!(err(r#"{"op":"pub","data":1,"msgId":5}"#).error.message.contains("msgId"));
        assert!(err(r#"{"op":"pub","data":1,"msgId":""}"#).error.message.contains("msgId"));
        let big_batch = format!(r#"{{"op":"pub","batch":[{}]}}"#, vec!["1"; 1001].join(","));
        assert_eq!(err(&big_batch).error.code, ErrorCode::TooLarge);
    }

    #[test]
    fn auth_carries_a_token() {
        let ClientFrame::Auth { id, token } = parse(r#"{"op":"auth","id":9,"token":"eyJ.a.b"}"#).unwrap() else {
            panic!("not auth")
        };
        assert_eq!((id, token.as_str()), (Some(RequestId::from(9)), "eyJ.a.b"));
        assert_eq!(err(r#"{"op":"auth","id":1}"#).error.message, "missing field `token`");
        assert!(err(r#"{"op":"auth","token":""}"#).error.message.contains("1 to 8192"));
        assert!(err(r#"{"op":"auth","token":5}"#).error.message.contains("must be a string"));
        assert!(err(r#"{"op":"auth","token":"t","ttl":5}"#).error.message.contains("unknown field `ttl`"));
    }

    #[test]
    fn oversized_frames_are_refused_before_parsing() {
        let config = Config { max_frame_bytes: 1024, ..Config::default() };
        let text = format!(r#"{{"op":"pub","id":1,"data":"{}"}}"#, "x".repeat(2000));
        let e = parse_client_frame(&text, &config).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::TooLarge);
        assert!(e.error.message.contains("1024"));
    }

    #[test]
    fn malformed_json_and_non_objects() {
        for text in ["", "{", "nope", "{\"op\":\"pub\",}", "[1,2]", "42", "\"pub\"", "null"] {
            let e = err(text);
            assert_eq!(e.error.code, ErrorCode::BadRequest, "{text:?}");
            assert_eq!(e.id, None);
        }
        assert_eq!(err("[1]").error.message, "frame must be a JSON object");
        assert!(err("{").error.message.starts_with("malformed JSON"));
    }

    #[test]
    fn op_and_fields_are_checked() {
        assert_eq!(err(r#"{"id":1}"#).error.message, "missing field `op`");
        assert_eq!(err(r#"{"op":7}"#).error.message, "`op` must be a string");
        let e = err(r#"{"op":"publish","id":"x"}"#);
        assert_eq!(e.error.message, "unknown op \"publish\"");
        assert_eq!(e.id, Some(RequestId::from("x")));
        assert_eq!(err(r#"{"op":"info","fron":1}"#).error.message, "unknown field `fron` for op \"info\"");
    }

    #[test]
    fn request_ids_are_strings_or_numbers() {
        assert_eq!(parse(r#"{"op":"info","id":"abc"}"#).unwrap().id(), Some(&RequestId::from("abc")));
        assert_eq!(parse(r#"{"op":"info","id":1.5}"#).unwrap().id().unwrap(), &RequestId::Number(serde_json::Number::from_f64(1.5).unwrap()));
        assert_eq!(parse(r#"{"op":"info"}"#).unwrap().id(), None);
        for bad in [r#"{"op":"info","id":null}"#, r#"{"op":"info","id":[1]}"#, r#"{"op":"info","id":true}"#] {
            assert_eq!(err(bad).error.message, "id must be a string or a number between -9007199254740991 and 9007199254740991");
        }
        let long = format!(r#"{{"op":"info","id":"{}"}}"#, "i".repeat(MAX_ID_LEN + 1));
        assert!(err(&long).error.message.contains("at most"));
        let e = err(r#"{"op":"info","id":"\ud800"}"#);
        assert!(e.error.message.starts_with("`id` is not a valid string: "), "{}", e.error.message);
    }

    #[test]
    fn numeric_ids_beyond_2_pow_53_are_refused_not_rounded() {
        for (sent, echoed) in [("9007199254740991", "9007199254740991"), ("-9007199254740991", "-9007199254740991"), ("7", "7"), ("1.5", "1.5")] {
            let id = parse(&format!(r#"{{"op":"info","id":{sent}}}"#)).unwrap().id().cloned();
            assert_eq!(encode_ok(id.as_ref(), json!({})), format!(r#"{{"op":"ok","id":{echoed}}}"#));
        }
        for beyond in ["9007199254740992", "9007199254740993", "-9007199254740992", "18446744073709551616", "1e300", "1e400"] {
            let e = err(&format!(r#"{{"op":"info","id":{beyond}}}"#));
            assert_eq!((e.id, e.error.code), (None, ErrorCode::BadRequest), "{beyond}");
            assert!(e.error.message.contains("between -9007199254740991 and 9007199254740991"), "{beyond}");
        }
    }

    #[test]
    fn repeated_fields_are_refused() {
        let e = err(r#"{"op":"pub","id":4,"msgId":"a","msgId":"b","data":1}"#);
        assert_eq!(e.error.message, "field `msgId` is given more than once");
        assert_eq!((e.id, e.error.code), (Some(RequestId::from(4)), ErrorCode::BadRequest));
        assert_eq!(err(r#"{"op":"pub","op":"info"}"#).error.message, "field `op` is given more than once");
        assert_eq!(err(r#"{"op":"ack","seq":1,"seq":1}"#).error.message, "field `seq` is given more than once");
        let e = err(r#"{"op":"info","id":1,"id":2}"#);
        assert_eq!((e.id, e.error.message.as_str()), (None, "field `id` is given more than once"));
    }

    #[test]
    fn message_data_and_state_must_be_strict_json() {
        let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse(&format!(r#"{{"op":"pub","data":{}}}"#, deep(64))).is_ok());
        let e = err(&format!(r#"{{"op":"pub","id":"d","data":{}}}"#, deep(65)));
        assert_eq!(e.id, Some(RequestId::from("d")));
        assert!(e.error.message.starts_with("`data`: arrays and objects nested more than 64 deep"), "{}", e.error.message);
        let e = err(&format!(r#"{{"op":"pub","data":{}}}"#, deep(100_000)));
        assert!(e.error.message.contains("nested more than 64 deep"));
        assert!(err(r#"{"op":"pub","data":1e400}"#).error.message.starts_with("`data`: number 1e400 is out of range"));
        assert!(err(r#"{"op":"pub","data":"\ud800"}"#).error.message.contains("lone UTF-16 surrogate"));
        assert!(err(r#"{"op":"pub","data":{"k":1,"k":2}}"#).error.message.contains("duplicate key \"k\""));
        let e = err(r#"{"op":"pub","batch":[1,{"a":[1e999]}]}"#);
        assert!(e.error.message.starts_with("`batch[1]`: number 1e999 is out of range"), "{}", e.error.message);
        let e = err(r#"{"op":"state.put","id":8,"state":{"a":"\udfff"}}"#);
        assert_eq!(e.id, Some(RequestId::from(8)));
        assert!(e.error.message.starts_with("`state`: escape \\udfff is a lone UTF-16 surrogate"), "{}", e.error.message);
        let shallow = Config { max_json_depth: 1, ..Config::default() };
        assert!(parse_client_frame(r#"{"op":"pub","data":[1]}"#, &shallow).is_ok());
        assert!(parse_client_frame(r#"{"op":"pub","data":[[1]]}"#, &shallow).is_err());
    }

    #[test]
    fn messages_at_the_deepest_allowed_depth_decode_in_every_envelope() {
        let depth = crate::config::MAX_JSON_DEPTH_LIMIT as usize;
        let data = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let config = Config { max_json_depth: depth, ..Config::default() };
        assert!(parse_client_frame(&format!(r#"{{"op":"pub","data":{data}}}"#), &config).is_ok());
        let message = OutgoingMessage { seq: 1, ts: 1, headers: None, data: &data };
        let frame = encode_messages(&[message, message], false);
        assert!(matches!(ServerFrame::parse(&frame), Ok(ServerFrame::Msgs { .. })));
        assert!(serde_json::from_str::<serde_json::Value>(&encode_page(&[message], 2, 1)).is_ok());
        // One level more and serde_json's default limit refuses the envelope.
        let deeper = format!("[{data}]");
        let message = OutgoingMessage { seq: 1, ts: 1, headers: None, data: &deeper };
        assert!(serde_json::from_str::<serde_json::Value>(&encode_page(&[message], 2, 1)).is_err());
    }

    #[test]
    fn subscribe_positions() {
        let from = |text: &str| match parse(text).unwrap() {
            ClientFrame::Subscribe { from, .. } => from,
            other => panic!("{other:?}"),
        };
        assert_eq!(from(r#"{"op":"sub"}"#), None);
        assert_eq!(from(r#"{"op":"sub","from":7}"#), Some(StartPosition::Seq(7)));
        assert_eq!(from(r#"{"op":"sub","from":0}"#), Some(StartPosition::Seq(0)));
        assert_eq!(from(r#"{"op":"sub","from":"first"}"#), Some(StartPosition::First));
        assert_eq!(from(r#"{"op":"sub","from":"last"}"#), Some(StartPosition::Last));
        assert_eq!(from(r#"{"op":"sub","from":"new"}"#), Some(StartPosition::New));
        assert_eq!(from(r#"{"op":"sub","from":{"time":1732350000000}}"#), Some(StartPosition::Time(1_732_350_000_000)));
        assert_eq!(from(r#"{"op":"sub","from":{ "time" : 0 }}"#), Some(StartPosition::Time(0)));
        let e = err(r#"{"op":"sub","from":{"time":-5}}"#);
        assert_eq!(e.error.message, "`from.time` must be an integer between 0 and 9007199254740991");
        assert!(err(r#"{"op":"sub","from":{"time":1,"time":2}}"#).error.message.contains("duplicate key \"time\""));
        for bad in [r#""7""#, "-1", "1.5", r#""oldest""#, "null", "9007199254740992", "{}", r#"{"time":1,"seq":2}"#, r#"{"ts":1}"#, "[1]"] {
            let e = err(&format!(r#"{{"op":"sub","id":9,"from":{bad}}}"#));
            assert_eq!(e.error.code, ErrorCode::BadRequest, "{bad}");
            assert_eq!(e.id, Some(RequestId::from(9)));
        }
    }

    #[test]
    fn subscribe_consumer_and_window() {
        let ClientFrame::Subscribe { consumer, window, .. } =
            parse(r#"{"op":"sub","consumer":"billing-1","window":50}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(consumer.as_deref(), Some("billing-1"));
        assert_eq!(window, Some(50));
        assert!(err(r#"{"op":"sub","consumer":"a/b"}"#).error.message.starts_with("consumer may only contain"));
        assert!(err(r#"{"op":"sub","consumer":""}"#).error.message.contains("consumer must be 1 to 128"));
        for bad in ["0", "10001", "-1", "1.5", "\"5\"", "9007199254740992"] {
            let e = err(&format!(r#"{{"op":"sub","window":{bad}}}"#));
            assert_eq!(e.error.message, "`window` must be an integer between 1 and 10000", "{bad}");
        }
        let small = Config { max_window: 20, default_window: 10, ..Config::default() };
        let e = parse_client_frame(r#"{"op":"sub","window":21}"#, &small).unwrap_err();
        assert_eq!(e.error.message, "`window` must be an integer between 1 and 20");
    }

    #[test]
    fn ack_trim_and_state() {
        assert!(matches!(parse(r#"{"op":"ack","seq":3}"#).unwrap(), ClientFrame::Ack { seq: 3, id: None }));
        assert!(err(r#"{"op":"ack"}"#).error.message.contains("missing field `seq`"));
        assert!(err(r#"{"op":"ack","seq":0}"#).error.message.contains("between 1"));
        assert!(err(r#"{"op":"ack","seq":"3"}"#).error.message.contains("`seq`"));
        assert!(matches!(parse(r#"{"op":"trim","upto":0}"#).unwrap(), ClientFrame::Trim { upto: 0, .. }));
        assert!(err(r#"{"op":"trim"}"#).error.message.contains("`upto`"));
        let ClientFrame::StatePut { state, version, .. } =
            parse(r#"{"op":"state.put","state":{"a":1},"version":2}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((state.get(), version), (r#"{"a":1}"#, Some(2)));
        assert!(err(r#"{"op":"state.put","version":1}"#).error.message.contains("`state`"));
        assert!(err(r#"{"op":"state.put","state":1,"version":-1}"#).error.message.contains("`version`"));
        let config = Config { max_state_bytes: 10, ..Config::default() };
        let e = parse_client_frame(r#"{"op":"state.put","state":"0123456789abc"}"#, &config).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::TooLarge);
        assert!(matches!(parse(r#"{"op":"unsub","id":4}"#).unwrap(), ClientFrame::Unsubscribe { .. }));
        assert!(matches!(parse(r#"{"op":"state.get"}"#).unwrap(), ClientFrame::StateGet { .. }));
    }

    #[test]
    fn consumer_operations() {
        assert!(matches!(parse(r#"{"op":"consumers","id":1}"#).unwrap(), ClientFrame::Consumers { .. }));
        let ClientFrame::ConsumerDelete { name, .. } = parse(r#"{"op":"consumer.delete","name":"billing"}"#).unwrap() else { panic!() };
        assert_eq!(name, "billing");
        let ClientFrame::ConsumerReset { id, name, acked } = parse(r#"{"op":"consumer.reset","id":"r","name":"b-1","acked":0}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((id, name.as_str(), acked), (Some(RequestId::from("r")), "b-1", 0));
        assert_eq!(err(r#"{"op":"consumer.delete"}"#).error.message, "missing field `name`");
        assert!(err(r#"{"op":"consumer.delete","name":"a/b"}"#).error.message.starts_with("name may only contain"));
        assert!(err(r#"{"op":"consumer.reset","name":"b"}"#).error.message.contains("`acked`"));
        assert!(err(r#"{"op":"consumer.reset","name":"b","acked":-1}"#).error.message.contains("`acked` must be an integer between 0"));
        assert!(err(r#"{"op":"consumers","name":"b"}"#).error.message.contains("unknown field `name`"));
    }

    #[test]
    fn server_frames_decode_as_encoded() {
        let hello = ServerFrame::parse(&encode_hello("orders", 12, "e1", None)).unwrap();
        assert_eq!(hello, ServerFrame::Hello { subject: "orders".into(), last: 12, epoch: "e1".into() });
        let token = crate::token::TokenInfo { sub: "web".into(), jti: Some("j".into()), iat: None, exp: 99, limits: Default::default() };
        let with_token: serde_json::Value = serde_json::from_str(&encode_hello("orders", 12, "e1", Some(&token))).unwrap();
        assert_eq!((with_token["sub"].as_str(), with_token["exp"].as_u64(), with_token.get("jti")), (Some("web"), Some(99), None));

        let ok = encode_ok(Some(&RequestId::from("r")), json!({ "seq": 5, "duplicate": true }));
        let ServerFrame::Ok { id, fields } = ServerFrame::parse(&ok).unwrap() else { panic!() };
        assert_eq!(id, Some(RequestId::from("r")));
        assert_eq!(fields["seq"], 5);
        assert_eq!(ServerFrame::parse(&encode_ok(None, json!({}))).unwrap(), ServerFrame::Ok { id: None, fields: Default::default() });

        let e = encode_error(Some(&RequestId::from(2)), &ProtocolError::conflict("version is 3"));
        assert_eq!(
            ServerFrame::parse(&e).unwrap(),
            ServerFrame::Err { id: Some(RequestId::from(2)), code: ErrorCode::Conflict, message: "version is 3".into() }
        );
        assert_eq!(serde_json::from_str::<serde_json::Value>(&encode_error(None, &ProtocolError::internal())).unwrap()["id"], json!(null));

        let one = encode_messages(&[OutgoingMessage { seq: 1, ts: 10, headers: None, data: r#"{"a": 1}"# }], false);
        assert_eq!(one, r#"{"op":"msg","seq":1,"ts":10,"data":{"a": 1}}"#);
        let many = encode_messages(
            &[
                OutgoingMessage { seq: 2, ts: 11, headers: Some(r#"{"t":"x"}"#), data: "2" },
                OutgoingMessage { seq: 3, ts: 12, headers: None, data: "\"x\"" },
            ],
            true,
        );
        assert!(many.starts_with(r#"{"op":"msgs","messages":[{"seq":2,"ts":11,"headers":{"t":"x"},"data":2,"redelivered":true},"#), "{many}");
        let ServerFrame::Msgs { messages } = ServerFrame::parse(&many).unwrap() else { panic!() };
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].headers, Some([("t".to_owned(), "x".to_owned())].into()));
        assert_eq!(messages[1], Message { seq: 3, ts: 12, headers: None, data: json!("x"), redelivered: true });
        assert_eq!(ServerFrame::parse(&encode_skipped(4, 9)).unwrap(), ServerFrame::Skipped { first: 4, last: 9 });
        assert_eq!(ServerFrame::parse(&encode_reset("billing", 3)).unwrap(), ServerFrame::Reset { consumer: "billing".into(), acked: 3 });
        let page: serde_json::Value = serde_json::from_str(&encode_page(
            &[OutgoingMessage { seq: 7, ts: 1, headers: None, data: "[1]" }, OutgoingMessage { seq: 8, ts: 2, headers: Some(r#"{"a":"b"}"#), data: "{}" }],
            9,
            12,
        ))
        .unwrap();
        assert_eq!(page, json!({ "messages": [{ "seq": 7, "ts": 1, "data": [1] }, { "seq": 8, "ts": 2, "headers": { "a": "b" }, "data": {} }], "next": 9, "last": 12 }));
        assert_eq!(encode_page(&[], 3, 2), r#"{"messages":[],"next":3,"last":2}"#);
    }

    #[test]
    fn single_messages_and_errors_with_details() {
        let message = OutgoingMessage { seq: 5, ts: 9, headers: Some(r#"{"k":"v"}"#), data: r#"{"a": 1}"# };
        assert_eq!(encode_message(&message), r#"{"seq":5,"ts":9,"headers":{"k":"v"},"data":{"a": 1}}"#);
        assert_eq!(encode_message_reply(Some(&RequestId::from(3)), &message), r#"{"op":"ok","id":3,"seq":5,"ts":9,"headers":{"k":"v"},"data":{"a": 1}}"#);
        let bare = OutgoingMessage { seq: 6, ts: 9, headers: None, data: "null" };
        assert_eq!(encode_message_reply(None, &bare), r#"{"op":"ok","id":null,"seq":6,"ts":9,"data":null}"#);
        let conflict = crate::publish::expectation_failed(3, 7);
        let frame: serde_json::Value = serde_json::from_str(&encode_error(Some(&RequestId::from("p")), &conflict)).unwrap();
        assert_eq!((frame["code"].as_str(), frame["lastSeq"].as_u64(), frame["id"].as_str()), (Some("conflict"), Some(7), Some("p")));
    }

    #[test]
    fn get_names_a_sequence_or_last() {
        let get = |text: &str| match parse(text).unwrap() {
            ClientFrame::Get { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(get(r#"{"op":"get","seq":42}"#), MessageRef::Seq(42));
        assert_eq!(get(r#"{"op":"get","seq":"last"}"#), MessageRef::Last);
        for bad in ["0", "-1", "\"5\"", "\"first\"", "null", "1.5", "9007199254740992"] {
            let e = err(&format!(r#"{{"op":"get","id":1,"seq":{bad}}}"#));
            assert_eq!(e.error.message, "`seq` must be an integer between 1 and 9007199254740991, or \"last\"", "{bad}");
        }
        assert_eq!(err(r#"{"op":"get"}"#).error.message, "missing field `seq`");
    }
}
