//! Query parameters and headers of the HTTP stream API, validated with explicit errors.

use crate::error::ProtocolError;
use crate::frame::{validate_msg_id, StartPosition};
use crate::sequence::{Seq, MAX_SEQ};

/// Messages per page when `limit` is not given, and the most a page may ask for.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
pub const MAX_PAGE_LIMIT: usize = 1000;
/// The longest a read may wait for new messages (`wait`, in seconds).
pub const MAX_WAIT_SECONDS: u64 = 60;

/// `GET /v1/stream/{subject}/messages?from=&fromTime=&limit=&wait=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadParams {
    /// First sequence wanted; None = the oldest retained.
    pub from: Option<Seq>,
    /// Or the first message stored at or after this time (ms since the Unix epoch).
    pub from_time: Option<u64>,
    pub limit: usize,
    pub wait_ms: u64,
}

impl ReadParams {
    /// Where the page starts: at `from`, at `fromTime`, or at the oldest retained message.
    pub fn start(&self) -> StartPosition {
        match (self.from, self.from_time) {
            (Some(seq), _) => StartPosition::Seq(seq),
            (None, Some(ms)) => StartPosition::Time(ms),
            (None, None) => StartPosition::First,
        }
    }
}

pub(crate) fn number(name: &str, value: &str, min: u64, max: u64) -> Result<u64, ProtocolError> {
    // Digits only: u64's parser would also accept a leading '+'.
    Some(value)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| ProtocolError::bad_request(format!("`{name}` must be an integer between {min} and {max}")))
}

pub(crate) fn unknown(name: &str) -> ProtocolError {
    ProtocolError::bad_request(format!("unknown query parameter `{name}`"))
}

/// Query parameters the router consumed itself (authentication) and every route ignores.
pub fn is_shared(name: &str) -> bool {
    matches!(name, "apiKey" | "token")
}

/// The refusal of a parameter given twice (`?from=1&from=2`): it has no one meaning, and a
/// proxy or cache in front of the server might read the other copy. Shared with the files API.
pub fn repeated_parameter(name: &str) -> ProtocolError {
    ProtocolError::bad_request(format!("query parameter `{name}` is given more than once"))
}

/// The route's own parameters: shared ones left out, each name at most once.
pub(crate) fn route_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Vec<(&'a str, &'a str)>, ProtocolError> {
    let mut params: Vec<(&str, &str)> = Vec::new();
    for (name, value) in pairs.into_iter().filter(|(name, _)| !is_shared(name)) {
        if params.iter().any(|(seen, _)| *seen == name) {
            return Err(repeated_parameter(name));
        }
        params.push((name, value));
    }
    Ok(params)
}

pub fn parse_read_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<ReadParams, ProtocolError> {
    let mut params = ReadParams { from: None, from_time: None, limit: DEFAULT_PAGE_LIMIT, wait_ms: 0 };
    for (name, value) in route_params(pairs)? {
        match name {
            "from" => params.from = Some(number(name, value, 0, MAX_SEQ)?),
            "fromTime" => params.from_time = Some(number(name, value, 0, MAX_SEQ)?),
            "limit" => params.limit = number(name, value, 1, MAX_PAGE_LIMIT as u64)? as usize,
            "wait" => params.wait_ms = number(name, value, 0, MAX_WAIT_SECONDS)? * 1000,
            _ => return Err(unknown(name)),
        }
    }
    if params.from.is_some() && params.from_time.is_some() {
        return Err(ProtocolError::bad_request("`from` and `fromTime` are mutually exclusive: give one start"));
    }
    Ok(params)
}

/// A route without parameters of its own (`GET …/messages/{seq}`, the consumer routes): any is refused.
pub fn parse_no_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(), ProtocolError> {
    match route_params(pairs)?.first() {
        Some((name, _)) => Err(unknown(name)),
        None => Ok(()),
    }
}

/// `DELETE /v1/stream/{subject}/messages?upto=N`.
pub fn parse_upto<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Seq, ProtocolError> {
    let mut upto = None;
    for (name, value) in route_params(pairs)? {
        match name {
            "upto" => upto = Some(number(name, value, 0, MAX_SEQ)?),
            _ => return Err(unknown(name)),
        }
    }
    upto.ok_or_else(|| ProtocolError::bad_request("missing query parameter `upto`"))
}

/// `POST /v1/stream/{subject}?batch=1&envelope=1`: how the body is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishParams {
    /// The body is a JSON array of messages.
    pub batch: bool,
    /// Each message is an envelope `{"data":…,"headers":{…}}`.
    pub envelope: bool,
}

pub fn parse_publish_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<PublishParams, ProtocolError> {
    let mut params = PublishParams::default();
    for (name, value) in route_params(pairs)? {
        let flag = match name {
            "batch" => &mut params.batch,
            "envelope" => &mut params.envelope,
            _ => return Err(unknown(name)),
        };
        *flag = match value {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return Err(ProtocolError::bad_request(format!("`{name}` must be 1, true, 0 or false"))),
        };
    }
    Ok(params)
}

/// The request headers that carry the last sequence a publisher expects: ours, and JetStream's
/// name for the same thing.
pub const EXPECTED_LAST_SEQ_HEADERS: [&str; 2] = ["Expected-Last-Seq", "Nats-Expected-Last-Sequence"];

/// The expected last sequence of an HTTP publish, from the values of
/// [`EXPECTED_LAST_SEQ_HEADERS`] (None where a header is absent). Both may be given if they agree.
pub fn parse_expected_last_seq(values: [Option<&str>; 2]) -> Result<Option<Seq>, ProtocolError> {
    let mut expected = None;
    for (name, value) in EXPECTED_LAST_SEQ_HEADERS.iter().zip(values) {
        let Some(value) = value else { continue };
        // A header sent twice arrives joined by commas, which is no number either.
        let seq = Some(value.trim())
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<Seq>().ok())
            .filter(|seq| *seq <= MAX_SEQ)
            .ok_or_else(|| {
                ProtocolError::bad_request(format!("{name} must be one integer between 0 and {MAX_SEQ} (0: the subject must be empty)"))
            })?;
        if expected.is_some_and(|other| other != seq) {
            return Err(ProtocolError::bad_request(format!(
                "{} and {} disagree; send one of them",
                EXPECTED_LAST_SEQ_HEADERS[0], EXPECTED_LAST_SEQ_HEADERS[1]
            )));
        }
        expected = Some(seq);
    }
    Ok(expected)
}

/// A state version from an `If-Match` header: `"3"` (or `W/"3"`); `*` means any version.
pub fn parse_if_match(header: &str) -> Result<Option<u64>, ProtocolError> {
    let tag = header.trim();
    if tag == "*" {
        return Ok(None);
    }
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ProtocolError::bad_request("If-Match must be a state ETag such as \"3\", or *"))
}

/// The `Idempotency-Key` header of an HTTP publish. A header sent twice reaches the server as
/// one value joined by ", " — and a proxy that keeps the first copy would disagree with us about
/// the key — so a key with a comma is refused rather than guessed at.
pub fn parse_idempotency_key(header: &str) -> Result<&str, ProtocolError> {
    if header.contains(',') {
        return Err(ProtocolError::bad_request(
            "Idempotency-Key must be sent once and contain no comma (a header given twice arrives joined by commas)",
        ));
    }
    validate_msg_id(header)?;
    Ok(header)
}

/// The ETag of a state version.
pub fn state_etag(version: u64) -> String {
    format!("\"{version}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_given_twice_are_refused() {
        assert_eq!(parse_idempotency_key("order-17"), Ok("order-17"));
        let joined = parse_idempotency_key("a, b").unwrap_err();
        assert!(joined.message.contains("sent once"), "{}", joined.message);
        assert!(parse_idempotency_key("a,b").is_err());
        assert!(parse_idempotency_key("").is_err());
    }

    #[test]
    fn read_params_defaults_and_bounds() {
        assert_eq!(parse_read_params([]).unwrap(), ReadParams { from: None, from_time: None, limit: 100, wait_ms: 0 });
        assert_eq!(
            parse_read_params([("from", "5"), ("limit", "1000"), ("wait", "60"), ("apiKey", "k")]).unwrap(),
            ReadParams { from: Some(5), from_time: None, limit: 1000, wait_ms: 60_000 }
        );
        assert_eq!(parse_read_params([("fromTime", "1732350000000")]).unwrap().start(), StartPosition::Time(1_732_350_000_000));
        assert_eq!(parse_read_params([("from", "4")]).unwrap().start(), StartPosition::Seq(4));
        assert_eq!(parse_read_params([]).unwrap().start(), StartPosition::First);
        assert_eq!(parse_no_params([("apiKey", "k")]), Ok(()));
        assert_eq!(parse_no_params([("from", "1")]).unwrap_err().message, "unknown query parameter `from`");
        assert!(parse_read_params([("fromTime", "-1")]).unwrap_err().message.contains("`fromTime` must be an integer"));
        assert_eq!(
            parse_read_params([("from", "1"), ("fromTime", "1")]).unwrap_err().message,
            "`from` and `fromTime` are mutually exclusive: give one start"
        );
        for (name, bad) in [("from", "-1"), ("from", "x"), ("from", "9007199254740992"), ("limit", "0"), ("limit", "1001"), ("limit", ""), ("wait", "61"), ("wait", "1.5"), ("from", "+5"), ("limit", " 5")] {
            let e = parse_read_params([(name, bad)]).unwrap_err();
            assert!(e.message.contains(&format!("`{name}`")), "{name}={bad}: {}", e.message);
        }
        assert_eq!(parse_read_params([("form", "1")]).unwrap_err().message, "unknown query parameter `form`");
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let repeated = "query parameter `from` is given more than once";
        assert_eq!(parse_read_params([("from", "1"), ("limit", "5"), ("from", "2")]).unwrap_err().message, repeated);
        assert_eq!(parse_read_params([("from", "1"), ("from", "1")]).unwrap_err().message, repeated);
        assert!(parse_upto([("upto", "1"), ("upto", "2")]).unwrap_err().message.contains("`upto` is given more than once"));
        assert!(parse_publish_params([("batch", "1"), ("batch", "0")]).unwrap_err().message.contains("`batch` is given more than once"));
        assert!(parse_publish_params([("envelope", "1"), ("envelope", "1")]).unwrap_err().message.contains("`envelope` is given more than once"));
        // The key may be repeated (authentication checks that the copies agree).
        assert_eq!(parse_upto([("apiKey", "k"), ("upto", "3"), ("apiKey", "k")]).unwrap(), 3);
        assert_eq!(parse_upto([("token", "t"), ("upto", "4")]).unwrap(), 4);
    }

    #[test]
    fn upto_is_required() {
        assert_eq!(parse_upto([("upto", "7")]).unwrap(), 7);
        assert!(parse_upto([]).unwrap_err().message.contains("missing"));
        assert!(parse_upto([("upto", "seven")]).is_err());
    }

    #[test]
    fn batch_and_envelope_flags() {
        assert_eq!(parse_publish_params([]).unwrap(), PublishParams { batch: false, envelope: false });
        assert_eq!(parse_publish_params([("batch", "1")]).unwrap(), PublishParams { batch: true, envelope: false });
        assert_eq!(parse_publish_params([("batch", "true"), ("envelope", "1")]).unwrap(), PublishParams { batch: true, envelope: true });
        assert_eq!(parse_publish_params([("envelope", "false")]).unwrap(), PublishParams::default());
        assert_eq!(parse_publish_params([("batch", "yes")]).unwrap_err().message, "`batch` must be 1, true, 0 or false");
        assert_eq!(parse_publish_params([("envelope", "")]).unwrap_err().message, "`envelope` must be 1, true, 0 or false");
        assert!(parse_publish_params([("x", "1")]).is_err());
    }

    #[test]
    fn expected_last_sequence_headers() {
        assert_eq!(parse_expected_last_seq([None, None]), Ok(None));
        assert_eq!(parse_expected_last_seq([Some("0"), None]), Ok(Some(0)));
        assert_eq!(parse_expected_last_seq([None, Some(" 42 ")]), Ok(Some(42)));
        assert_eq!(parse_expected_last_seq([Some("7"), Some("7")]), Ok(Some(7)));
        assert_eq!(parse_expected_last_seq([Some("9007199254740991"), None]), Ok(Some(MAX_SEQ)));
        assert!(parse_expected_last_seq([Some("7"), Some("8")]).unwrap_err().message.contains("disagree"));
        for bad in ["", "-1", "+1", "1.0", "x", "5, 5", "9007199254740992"] {
            let e = parse_expected_last_seq([Some(bad), None]).unwrap_err();
            assert!(e.message.starts_with("Expected-Last-Seq must be one integer between 0 and 9007199254740991"), "{bad:?}: {}", e.message);
        }
        assert!(parse_expected_last_seq([None, Some("x")]).unwrap_err().message.starts_with("Nats-Expected-Last-Sequence must be"));
    }

    #[test]
    fn if_match_versions() {
        assert_eq!(parse_if_match("\"3\"").unwrap(), Some(3));
        assert_eq!(parse_if_match(" W/\"0\" ").unwrap(), Some(0));
        assert_eq!(parse_if_match("*").unwrap(), None);
        assert!(parse_if_match("3").is_err());
        assert!(parse_if_match("\"x\"").is_err());
        assert_eq!(state_etag(4), "\"4\"");
    }
}
