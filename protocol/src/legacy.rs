//! The original durable-stream wire protocol (`/stream/{subject}`), for apps built on the
//! original JavaScript client: its frames parsed and encoded, and its sequence numbers mapped to
//! ours. docs/PROTOCOL.md ("Legacy routes") is the contract; `SPEC.md` of the original is the
//! reference it follows (with the original's bugs fixed).
//!
//! A request is `{"data":D,"cMsgId":C,"clientId":K}`: a publish of `D`, or one of six commands
//! when `D` is an object whose `cmd` is exactly one of their names. A frame with a truthy
//! `sMsgId` is an ack, whatever else it holds. Replies echo the request with `sequence`;
//! deliveries are the publishing request with `sequence`, `pub:1` and `sMsgId`.

use crate::config::Config;
use crate::error::ProtocolError;
use crate::frame::OutgoingMessage;
use crate::sequence::{Seq, MAX_SEQ};
use crate::strict_json;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt::Write;

/// The original numbered messages from `BASE + 1`; an empty subject reports `BASE`. Legacy
/// sequence = `BASE` + native sequence, both directions.
pub const BASE: u64 = 100_000_000_000;
/// Message header holding the publishing request's `clientId` (its JSON text).
pub const CLIENT_ID_HEADER: &str = "legacy-client-id";
/// Message header holding the publishing request's `cMsgId` (its JSON text).
pub const CMSG_ID_HEADER: &str = "legacy-cmsg-id";
/// Longest `cMsgId` / `clientId` accepted, as JSON text (the client sends doubles, ~20 bytes).
pub const MAX_ID_BYTES: usize = 64;
/// The largest frame the original client takes (WebSocket-Node's `maxReceivedFrameSize`); it
/// drops the connection on a larger one, and would get the same frame again after reconnecting.
pub const CLIENT_MAX_FRAME_BYTES: usize = 1 << 20;
/// What a reply or a delivery adds around `data` at most (ids of `MAX_ID_BYTES`, sequences,
/// field names), with room to spare.
const ENVELOPE_BYTES: usize = 512;
/// The largest `data` (JSON text) a legacy frame can carry to the original client.
pub const MAX_DATA_BYTES: usize = CLIENT_MAX_FRAME_BYTES - ENVELOPE_BYTES;
/// The state an app reads before anything was written: the original's default.
pub const DEFAULT_STATE: &str = r#"{"lock":false,"sequence":100000000000}"#;

/// The legacy number of native sequence `seq` (0, nothing yet, is `BASE`).
pub fn legacy_seq(seq: Seq) -> u64 {
    BASE.saturating_add(seq)
}

/// The native sequence a legacy number names; numbers at or below the base (and anything that is
/// not a positive number) name nothing, 0. Fractions round down, so `> S` stays `> S`.
pub fn native_seq(legacy: f64) -> Seq {
    // NaN compares as nothing: it names nothing, like any number at or below the base.
    if legacy.partial_cmp(&(BASE as f64)) != Some(std::cmp::Ordering::Greater) {
        return 0;
    }
    ((legacy - BASE as f64).floor() as Seq).min(MAX_SEQ)
}

/// Where a `subscribe(S)` starts: right after `S` (exclusive), but never past what the next
/// publish gets, so `S` at or beyond the end means "only new messages".
pub fn subscription_start(after: Seq, last: Seq) -> Seq {
    after.min(last) + 1
}

/// Whether `subscribe(after)` on a connection that already has a subscription, delivered up to
/// `sent`, keeps it: a start the running subscription has already reached repeats it (the
/// original client can send two subscribes after one reconnect, one per close and error event),
/// and restarting it would deliver again what the app has. A later start moves it ahead.
pub fn keeps_subscription(after: Seq, sent: Option<Seq>) -> bool {
    sent.is_some_and(|sent| after <= sent)
}

/// One frame from a legacy client.
#[derive(Debug, PartialEq)]
pub enum LegacyFrame {
    /// A frame with a truthy `sMsgId`: the native sequence it acknowledges, or None when the
    /// `sMsgId` names no message (a stray ack, ignored).
    Ack(Option<Seq>),
    Request(Request),
}

/// A request and what it asks for.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub echo: Echo,
    pub command: Command,
}

/// What every reply to a request repeats: its `data`, `cMsgId` and `clientId`, as JSON text.
#[derive(Debug, Clone)]
pub struct Echo {
    pub data: Option<Box<RawValue>>,
    pub c_msg_id: Box<RawValue>,
    pub client_id: Option<Box<RawValue>>,
}

/// Compared by JSON text (`RawValue` has no `PartialEq`).
impl PartialEq for Echo {
    fn eq(&self, other: &Self) -> bool {
        let text = |value: &Option<Box<RawValue>>| value.as_deref().map(RawValue::get).map(str::to_owned);
        text(&self.data) == text(&other.data) && self.c_msg_id.get() == other.c_msg_id.get() && text(&self.client_id) == text(&other.client_id)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Anything that is not one of the six commands is a message, stored as it is.
    Publish,
    Info,
    /// Deliver what comes after this native sequence (0: everything).
    Subscribe {
        after: Seq,
    },
    Unsubscribe,
    /// Delete up to this native sequence (None: nothing to delete).
    DeleteMessages {
        upto: Option<Seq>,
    },
    GetState,
    /// The new state, JSON text.
    PutState {
        state: String,
    },
}

/// A frame that could not be run: the error, and the echo of the request when it had a
/// `cMsgId` (so the reply resolves the client's pending request).
#[derive(Debug)]
pub struct LegacyError {
    pub echo: Option<Echo>,
    pub error: ProtocolError,
}

impl LegacyError {
    fn new(echo: Option<Echo>, error: ProtocolError) -> Self {
        LegacyError { echo, error }
    }
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    #[serde(rename = "cMsgId", default, deserialize_with = "present")]
    c_msg_id: Option<Box<RawValue>>,
    #[serde(rename = "clientId", default, deserialize_with = "present")]
    client_id: Option<Box<RawValue>>,
    #[serde(rename = "sMsgId", default, deserialize_with = "present")]
    s_msg_id: Option<Box<RawValue>>,
}

/// A field that is present keeps its JSON text, `null` included (serde's `Option` would make
/// `null` absent, and `data: null` is a message).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

/// The fields of `data` that make it a command.
#[derive(Deserialize)]
struct CommandFields<'a> {
    #[serde(borrow, default)]
    cmd: Option<&'a RawValue>,
    #[serde(rename = "startSequence", default, deserialize_with = "present")]
    start_sequence: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    sequence: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    state: Option<Box<RawValue>>,
}

/// JavaScript truthiness of a JSON value: `null`, `false`, `0` and `""` are falsy.
pub fn is_truthy(value: &RawValue) -> bool {
    match value.get() {
        "null" | "false" | "\"\"" => false,
        text => !text.parse::<f64>().is_ok_and(|n| n == 0.0),
    }
}

/// A JSON number as a double, None for anything else.
fn number(value: &RawValue) -> Option<f64> {
    let text = value.get();
    text.starts_with(|c: char| c == '-' || c.is_ascii_digit()).then(|| text.parse().ok()).flatten()
}

/// Parses one client frame. Size and JSON limits are the native ones (`MAX_FRAME_BYTES`,
/// strict JSON); everything the original accepted as a message is still a message.
pub fn parse_frame(text: &str, config: &Config) -> Result<LegacyFrame, LegacyError> {
    let refuse = |message: String| LegacyError::new(None, ProtocolError::bad_request(message));
    if text.len() > config.max_frame_bytes {
        return Err(LegacyError::new(
            None,
            ProtocolError::too_large(format!("frame is {} bytes; the limit is {}", text.len(), config.max_frame_bytes)),
        ));
    }
    strict_json::check(text, config, "frame").map_err(|error| LegacyError::new(None, error))?;
    let not_an_object = || refuse("a frame is a JSON object {\"data\":…,\"cMsgId\":…,\"clientId\":…}".into());
    // serde would also read a struct from an array (`[data, cMsgId]`).
    if !text.trim_start().starts_with('{') {
        return Err(not_an_object());
    }
    let raw: RawFrame = serde_json::from_str(text).map_err(|_| not_an_object())?;
    if let Some(s_msg_id) = raw.s_msg_id.as_deref().filter(|id| is_truthy(id)) {
        let seq = number(s_msg_id).filter(|n| n.fract() == 0.0).map(native_seq).filter(|seq| *seq > 0);
        return Ok(LegacyFrame::Ack(seq));
    }
    let Some(c_msg_id) = raw.c_msg_id.filter(|id| is_truthy(id)) else {
        return Err(refuse("a request needs a non-zero `cMsgId`".into()));
    };
    for (name, id) in [("cMsgId", Some(&c_msg_id)), ("clientId", raw.client_id.as_ref())] {
        if id.is_some_and(|id| id.get().len() > MAX_ID_BYTES) {
            return Err(refuse(format!("`{name}` is longer than {MAX_ID_BYTES} bytes")));
        }
    }
    let mut echo = Echo { data: raw.data, c_msg_id, client_id: raw.client_id };
    // The reply echoes `data`: one the client could not take back is refused before anything
    // is stored, with an echo that leaves it out.
    if let Some(size) = echo.data.as_ref().map(|data| data.get().len()).filter(|size| *size > MAX_DATA_BYTES) {
        echo.data = None;
        let message = format!("`data` is {size} bytes; the original client takes at most {MAX_DATA_BYTES} in a frame");
        return Err(LegacyError::new(Some(echo), ProtocolError::too_large(message)));
    }
    match command(echo.data.as_deref(), config) {
        Ok(command) => Ok(LegacyFrame::Request(Request { echo, command })),
        Err(error) => Err(LegacyError::new(Some(echo), error)),
    }
}

/// What a request's `data` asks for.
fn command(data: Option<&RawValue>, config: &Config) -> Result<Command, ProtocolError> {
    let Some(data) = data else {
        return Err(ProtocolError::bad_request("a request needs `data`: the message, or a command"));
    };
    // Only an object with a `cmd` key can be a command; most messages are told apart without a
    // second parse (a key spelled with escapes, `"\u0063md"`, still gets one).
    let text = data.get();
    if !text.starts_with('{') || !(text.contains("\"cmd\"") || text.contains('\\')) {
        return Ok(Command::Publish);
    }
    let fields: CommandFields = serde_json::from_str(data.get()).map_err(|e| ProtocolError::bad_request(format!("`data`: {e}")))?;
    let Some(name) = fields.cmd.and_then(|cmd| serde_json::from_str::<&str>(cmd.get()).ok()) else {
        return Ok(Command::Publish);
    };
    let sequence = |value: Option<Box<RawValue>>, what: &str| match value.as_deref() {
        None => Ok(None),
        Some(value) if value.get() == "null" => Ok(None),
        Some(value) => number(value).map(Some).ok_or_else(|| ProtocolError::bad_request(format!("`{what}` must be a number (a sequence)"))),
    };
    Ok(match name {
        "getStreamInfo" => Command::Info,
        "subscribe" => Command::Subscribe { after: sequence(fields.start_sequence, "startSequence")?.map_or(0, native_seq) },
        "unsubscribe" => Command::Unsubscribe,
        "deleteMessages" => {
            let Some(sequence) = sequence(fields.sequence, "sequence")? else {
                return Err(ProtocolError::bad_request("deleteMessages needs `sequence`: delete up to this one"));
            };
            Command::DeleteMessages { upto: Some(native_seq(sequence)).filter(|upto| *upto > 0) }
        }
        "getState" => Command::GetState,
        "putState" => {
            let Some(state) = fields.state else {
                return Err(ProtocolError::bad_request("putState needs `state`: any JSON value"));
            };
            crate::state::validate_state(state.get(), config)?;
            Command::PutState { state: state.get().to_owned() }
        }
        _ => Command::Publish,
    })
}

impl Request {
    /// The headers a published message keeps, so that deliveries carry the publisher's ids.
    pub fn publisher_headers(&self) -> String {
        let quoted = |raw: &RawValue| serde_json::to_string(raw.get()).expect("strings serialize");
        let c_msg_id = quoted(&self.echo.c_msg_id);
        match self.echo.client_id.as_deref() {
            Some(client_id) => format!("{{\"{CLIENT_ID_HEADER}\":{},\"{CMSG_ID_HEADER}\":{c_msg_id}}}", quoted(client_id)),
            None => format!("{{\"{CMSG_ID_HEADER}\":{c_msg_id}}}"),
        }
    }

    /// The message a publish stores (`data` is always there for a publish).
    pub fn data(&self) -> &str {
        self.echo.data.as_deref().map_or("null", RawValue::get)
    }
}

impl Echo {
    /// `{"data":…,"cMsgId":…,"clientId":…,"ip":null,"sequence":…` (left open for more fields).
    fn open(&self, seq: Seq) -> String {
        let data = self.data.as_deref().map_or("null", RawValue::get);
        let client_id = self.client_id.as_deref().map_or("null", RawValue::get);
        let mut out = String::with_capacity(data.len() + 128);
        let _ =
            write!(out, "{{\"data\":{data},\"cMsgId\":{},\"clientId\":{client_id},\"ip\":null,\"sequence\":{}", self.c_msg_id.get(), legacy_seq(seq));
        out
    }

    /// The reply to a request: the echo with `sequence` (the new message's for a publish, the
    /// last one for a command) and, for `getState`, the `state` (JSON text).
    pub fn reply(&self, seq: Seq, state: Option<&str>) -> String {
        let mut out = self.open(seq);
        if let Some(state) = state {
            let _ = write!(out, ",\"state\":{state}");
        }
        out.push('}');
        out
    }
}

/// The answer to a frame that failed: with the request's echo (so the client's promise settles
/// with it), `{"error":{"code","message"}}` alone otherwise, which the client ignores.
pub fn encode_error(echo: Option<&Echo>, last: Seq, error: &ProtocolError) -> String {
    let error = serde_json::Value::Object(error.fields()).to_string();
    match echo {
        Some(echo) => format!("{},\"error\":{error}}}", echo.open(last)),
        None => format!("{{\"error\":{error}}}"),
    }
}

/// A delivery: `{"data":…,"cMsgId":…,"clientId":…,"ip":null,"sequence":…,"pub":1,"sMsgId":…}`.
/// The ids are the publisher's (`null` for a message published natively); `sMsgId` is the legacy
/// sequence, unique per message, so an ack names its message without any state kept for it.
///
/// A message too large for the client (published natively, up to `MAX_FRAME_BYTES`) goes with
/// `data: null` and an `error` saying where to read it, so that the app sees it and can ack it
/// rather than the client reconnecting for it forever.
pub fn encode_delivery(message: &OutgoingMessage) -> String {
    let (client_id, c_msg_id) = message.headers.map(publisher_ids).unwrap_or_default();
    let seq = legacy_seq(message.seq);
    let oversized = message.data.len() > MAX_DATA_BYTES;
    let mut out = String::with_capacity(message.data.len().min(MAX_DATA_BYTES) + ENVELOPE_BYTES);
    let _ = write!(
        out,
        "{{\"data\":{},\"cMsgId\":{},\"clientId\":{},\"ip\":null,\"sequence\":{seq},\"pub\":1,\"sMsgId\":{seq}",
        if oversized { "null" } else { message.data },
        c_msg_id.as_deref().unwrap_or("null"),
        client_id.as_deref().unwrap_or("null"),
    );
    if oversized {
        let error = ProtocolError::too_large(format!(
            "message {} is {} bytes, more than the original client takes in a frame; read it over HTTP (GET /v1/stream/{{subject}}/messages/{})",
            message.seq,
            message.data.len(),
            message.seq
        ));
        let _ = write!(out, ",\"error\":{}", serde_json::Value::Object(error.fields()));
    }
    out.push('}');
    out
}

/// The reply if the client can take it, else a `too_large` error (a state document larger than
/// a client frame, when `MAX_STATE_BYTES` allows one).
pub fn fit_reply(reply: String, echo: &Echo, last: Seq) -> String {
    if reply.len() <= CLIENT_MAX_FRAME_BYTES {
        return reply;
    }
    let message = format!("the reply is {} bytes, more than the original client takes in a frame; use the HTTP API", reply.len());
    encode_error(Some(echo), last, &ProtocolError::too_large(message))
}

/// The publisher's `clientId` and `cMsgId` from a message's headers, as JSON text. A header
/// value that is not JSON (a native publisher may set anything) goes out as a JSON string.
fn publisher_ids(headers: &str) -> (Option<String>, Option<String>) {
    let Ok(map) = serde_json::from_str::<std::collections::BTreeMap<String, String>>(headers) else {
        return (None, None);
    };
    let id = |name: &str| {
        let value = map.get(name)?;
        Some(match serde_json::from_str::<&RawValue>(value) {
            Ok(json) => json.get().to_owned(),
            Err(_) => serde_json::Value::from(value.as_str()).to_string(),
        })
    };
    (id(CLIENT_ID_HEADER), id(CMSG_ID_HEADER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LegacyFrame, LegacyError> {
        parse_frame(text, &Config::default())
    }

    fn request(text: &str) -> Request {
        match parse(text).unwrap() {
            LegacyFrame::Request(request) => request,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn sequences_are_offset_by_the_original_base() {
        assert_eq!(legacy_seq(0), 100_000_000_000);
        assert_eq!(legacy_seq(1), 100_000_000_001);
        assert_eq!(native_seq(100_000_000_001.0), 1);
        assert_eq!(native_seq(100_000_000_000.0), 0);
        assert_eq!(native_seq(0.0), 0);
        assert_eq!(native_seq(-5.0), 0);
        assert_eq!(native_seq(f64::NAN), 0);
        assert_eq!(native_seq(100_000_000_002.5), 2);
        assert_eq!(native_seq(1e300), MAX_SEQ);
        for seq in [1, 7, 123_456] {
            assert_eq!(native_seq(legacy_seq(seq) as f64), seq);
        }
    }

    #[test]
    fn subscribing_is_exclusive_and_never_past_the_next_message() {
        assert_eq!(subscription_start(0, 10), 1);
        assert_eq!(subscription_start(4, 10), 5);
        assert_eq!(subscription_start(10, 10), 11);
        assert_eq!(subscription_start(99, 10), 11);
        assert_eq!(subscription_start(0, 0), 1);
    }

    #[test]
    fn a_repeated_subscribe_keeps_the_running_subscription() {
        assert!(!keeps_subscription(0, None));
        assert!(keeps_subscription(3, Some(3)));
        assert!(keeps_subscription(0, Some(3)));
        assert!(!keeps_subscription(4, Some(3)));
    }

    #[test]
    fn the_six_commands_are_recognised_by_their_exact_names() {
        let cases = [
            (r#"{"cmd":"getStreamInfo"}"#, Command::Info),
            (r#"{"cmd":"subscribe","startSequence":100000000004}"#, Command::Subscribe { after: 4 }),
            (r#"{"cmd":"subscribe","startSequence":0}"#, Command::Subscribe { after: 0 }),
            (r#"{"cmd":"subscribe"}"#, Command::Subscribe { after: 0 }),
            (r#"{"cmd":"unsubscribe"}"#, Command::Unsubscribe),
            (r#"{"cmd":"deleteMessages","sequence":100000000003}"#, Command::DeleteMessages { upto: Some(3) }),
            (r#"{"cmd":"deleteMessages","sequence":0}"#, Command::DeleteMessages { upto: None }),
            (r#"{"cmd":"getState"}"#, Command::GetState),
            (r#"{"cmd":"putState","state":null}"#, Command::PutState { state: "null".into() }),
            (r#"{"cmd":"putState","state":[1,"x"]}"#, Command::PutState { state: r#"[1,"x"]"#.into() }),
        ];
        for (data, command) in cases {
            let text = format!(r#"{{"data":{data},"cMsgId":1.5,"clientId":0.5}}"#);
            assert_eq!(request(&text).command, command, "{data}");
        }
    }

    #[test]
    fn a_command_name_spelled_with_escapes_is_still_the_command() {
        let text = r#"{"data":{"\u0063md":"getStreamInfo"},"cMsgId":1.5}"#;
        assert_eq!(request(text).command, Command::Info);
        let text = r#"{"data":{"note":"says \"cmd\" but is not one"},"cMsgId":1.5}"#;
        assert_eq!(request(text).command, Command::Publish);
    }

    #[test]
    fn the_publishers_ids_are_kept_as_string_headers() {
        let with = request(r#"{"data":1,"cMsgId":2.25,"clientId":0.25}"#);
        assert_eq!(with.publisher_headers(), r#"{"legacy-client-id":"0.25","legacy-cmsg-id":"2.25"}"#);
        let without = request(r#"{"data":1,"cMsgId":"a\"b"}"#);
        let headers: serde_json::Value = serde_json::from_str(&without.publisher_headers()).unwrap();
        assert_eq!(headers, serde_json::json!({"legacy-cmsg-id": "\"a\\\"b\""}));
    }

    #[test]
    fn everything_else_is_a_message() {
        for data in [
            r#"{"cmd":"somethingElse"}"#,
            r#"{"cmd":"GetStreamInfo"}"#,
            r#"{"cmd":1}"#,
            r#"{"order":17}"#,
            "0",
            "\"\"",
            "false",
            "null",
            "[1,2]",
            "\"getState\"",
        ] {
            let text = format!(r#"{{"data":{data},"cMsgId":1.5,"clientId":0.5}}"#);
            let request = request(&text);
            assert_eq!(request.command, Command::Publish, "{data}");
            assert_eq!(request.data(), data);
        }
    }

    #[test]
    fn an_ack_is_recognised_by_its_smsgid_first() {
        let ack = r#"{"data":{"cmd":"subscribe"},"cMsgId":2.25,"clientId":0.25,"ip":null,"sequence":100000000002,"sMsgId":100000000002}"#;
        assert_eq!(parse(ack).unwrap(), LegacyFrame::Ack(Some(2)));
        // Falsy data is still an ack.
        assert_eq!(parse(r#"{"data":0,"sMsgId":100000000009}"#).unwrap(), LegacyFrame::Ack(Some(9)));
        // Ids that name no message are stray acks.
        for stray in [r#"{"sMsgId":1.49}"#, r#"{"sMsgId":"x"}"#, r#"{"sMsgId":100000000000}"#, r#"{"sMsgId":true}"#] {
            assert_eq!(parse(stray).unwrap(), LegacyFrame::Ack(None), "{stray}");
        }
        // A falsy sMsgId is not an ack.
        assert!(matches!(parse(r#"{"data":1,"cMsgId":3.5,"sMsgId":0}"#).unwrap(), LegacyFrame::Request(_)));
    }

    #[test]
    fn malformed_frames_are_refused_with_the_echo_when_there_is_one() {
        for bad in [
            "not json",
            "[1]",
            "[1,2]",
            "[{\"x\":1},2.5,0.5]",
            "{\"data\":1}",
            r#"{"data":1,"cMsgId":0}"#,
            r#"{"data":1,"cMsgId":""}"#,
            r#"{"a":1,"a":2}"#,
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.echo.is_none(), "{bad}");
            assert_eq!(error.error.code.as_str(), "bad_request", "{bad}");
        }
        for bad in [
            r#"{"cMsgId":2.5,"clientId":0.5}"#,
            r#"{"data":{"cmd":"subscribe","startSequence":"x"},"cMsgId":2.5}"#,
            r#"{"data":{"cmd":"deleteMessages"},"cMsgId":2.5}"#,
            r#"{"data":{"cmd":"putState"},"cMsgId":2.5}"#,
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.echo.as_ref().map(|e| e.c_msg_id.get()), Some("2.5"), "{bad}");
        }
        let long_id = format!(r#"{{"data":1,"cMsgId":"{}"}}"#, "x".repeat(MAX_ID_BYTES));
        assert!(parse(&long_id).is_err());
        let config = Config { max_frame_bytes: 64, ..Config::default() };
        let big = format!(r#"{{"data":"{}","cMsgId":1.5}}"#, "x".repeat(64));
        assert_eq!(parse_frame(&big, &config).unwrap_err().error.code.as_str(), "too_large");
    }

    #[test]
    fn replies_echo_the_request_exactly() {
        let request = request(r#"{"data":{"hello":1},"cMsgId":3.8236017712,"clientId":0.8236017712}"#);
        assert_eq!(
            request.echo.reply(1, None),
            r#"{"data":{"hello":1},"cMsgId":3.8236017712,"clientId":0.8236017712,"ip":null,"sequence":100000000001}"#
        );
        let get_state = self::request(r#"{"data":{"cmd":"getState"},"cMsgId":4.25,"clientId":0.25}"#);
        let reply: serde_json::Value = serde_json::from_str(&get_state.echo.reply(2, Some(DEFAULT_STATE))).unwrap();
        assert_eq!(reply["state"], serde_json::json!({"lock": false, "sequence": 100000000000u64}));
        assert_eq!(reply["sequence"], 100000000002u64);
        assert_eq!(reply["cMsgId"], 4.25);
        assert!(reply.get("pub").is_none());
    }

    #[test]
    fn errors_carry_the_echo_or_nothing_the_client_would_act_on() {
        let echo = request(r#"{"data":7,"cMsgId":2.5,"clientId":0.5}"#).echo;
        let error = ProtocolError::bad_request("no");
        let with: serde_json::Value = serde_json::from_str(&encode_error(Some(&echo), 3, &error)).unwrap();
        assert_eq!((with["cMsgId"].as_f64(), with["error"]["code"].as_str()), (Some(2.5), Some("bad_request")));
        let without: serde_json::Value = serde_json::from_str(&encode_error(None, 3, &error)).unwrap();
        for field in ["pub", "cMsgId", "sMsgId"] {
            assert!(without.get(field).is_none(), "{field}");
        }
    }

    #[test]
    fn deliveries_carry_the_publishers_ids_and_the_sequence_as_smsgid() {
        let request = request(r#"{"data":{"order":17},"cMsgId":2.25,"clientId":0.25}"#);
        let headers = request.publisher_headers();
        let message = OutgoingMessage { seq: 2, ts: 9, headers: Some(&headers), data: request.data() };
        let delivery: serde_json::Value = serde_json::from_str(&encode_delivery(&message)).unwrap();
        assert_eq!(
            delivery,
            serde_json::json!({"data":{"order":17},"cMsgId":2.25,"clientId":0.25,"ip":null,"sequence":100000000002u64,"pub":1,"sMsgId":100000000002u64})
        );
        // The ack the client sends back names the message.
        let mut ack = delivery.clone();
        ack.as_object_mut().unwrap().remove("pub");
        assert_eq!(parse(&ack.to_string()).unwrap(), LegacyFrame::Ack(Some(2)));
        // A message published natively: no ids; odd header values stay valid JSON.
        let native = OutgoingMessage { seq: 3, ts: 9, headers: Some(r#"{"legacy-cmsg-id":"not json"}"#), data: "false" };
        let delivery: serde_json::Value = serde_json::from_str(&encode_delivery(&native)).unwrap();
        assert_eq!((delivery["data"].clone(), delivery["clientId"].clone()), (serde_json::json!(false), serde_json::Value::Null));
        assert_eq!(delivery["cMsgId"], "not json");
        let plain = OutgoingMessage { seq: 4, ts: 9, headers: None, data: "1" };
        assert!(encode_delivery(&plain).contains("\"cMsgId\":null,\"clientId\":null"));
    }

    #[test]
    fn nothing_larger_than_the_client_takes_goes_out() {
        let big = format!("\"{}\"", "x".repeat(MAX_DATA_BYTES));
        let error = parse(&format!(r#"{{"data":{big},"cMsgId":2.5,"clientId":0.5}}"#)).unwrap_err();
        assert_eq!(error.error.code.as_str(), "too_large");
        let reply = encode_error(error.echo.as_ref(), 0, &error.error);
        assert!(reply.len() < 1024 && reply.contains("\"cMsgId\":2.5,") && reply.contains("\"data\":null"), "{reply}");
        let fits = format!("\"{}\"", "x".repeat(MAX_DATA_BYTES - 2));
        let request = request(&format!(r#"{{"data":{fits},"cMsgId":2.5,"clientId":0.5}}"#));
        assert!(request.echo.reply(1, None).len() <= CLIENT_MAX_FRAME_BYTES);
        let delivery = encode_delivery(&OutgoingMessage { seq: 1, ts: 0, headers: None, data: request.data() });
        assert!(delivery.len() <= CLIENT_MAX_FRAME_BYTES && delivery.contains(&fits));

        let native = OutgoingMessage { seq: 7, ts: 0, headers: None, data: &big };
        let delivery: serde_json::Value = serde_json::from_str(&encode_delivery(&native)).unwrap();
        assert_eq!((delivery["data"].clone(), delivery["sMsgId"].as_u64()), (serde_json::Value::Null, Some(BASE + 7)));
        assert_eq!(delivery["error"]["code"], "too_large");

        let echo = self::request(r#"{"data":{"cmd":"getState"},"cMsgId":2.5}"#).echo;
        assert_eq!(fit_reply("{}".into(), &echo, 0), "{}");
        let refused: serde_json::Value = serde_json::from_str(&fit_reply("x".repeat(CLIENT_MAX_FRAME_BYTES + 1), &echo, 0)).unwrap();
        assert_eq!(refused["error"]["code"], "too_large");
    }

    #[test]
    fn truthiness_follows_javascript() {
        for falsy in ["null", "false", "0", "0.0", "-0", "\"\""] {
            assert!(!is_truthy(&RawValue::from_string(falsy.into()).unwrap()), "{falsy}");
        }
        for truthy in ["1", "0.5", "\"0\"", "true", "{}", "[]"] {
            assert!(is_truthy(&RawValue::from_string(truthy.into()).unwrap()), "{truthy}");
        }
    }
}
