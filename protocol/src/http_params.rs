//! Query parameters and headers of the HTTP stream API, validated with explicit errors.

use crate::error::ProtocolError;
use crate::frame::validate_msg_id;
use crate::sequence::{Seq, MAX_SEQ};

/// Messages per page when `limit` is not given, and the most a page may ask for.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
pub const MAX_PAGE_LIMIT: usize = 1000;
/// The longest a read may wait for new messages (`wait`, in seconds).
pub const MAX_WAIT_SECONDS: u64 = 60;

/// `GET /v1/stream/{subject}/messages?from=&limit=&wait=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadParams {
    /// First sequence wanted; None = the oldest retained.
    pub from: Option<Seq>,
    pub limit: usize,
    pub wait_ms: u64,
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
    let mut params = ReadParams { from: None, limit: DEFAULT_PAGE_LIMIT, wait_ms: 0 };
    for (name, value) in route_params(pairs)? {
        match name {
            "from" => params.from = Some(number(name, value, 0, MAX_SEQ)?),
            "limit" => params.limit = number(name, value, 1, MAX_PAGE_LIMIT as u64)? as usize,
            "wait" => params.wait_ms = number(name, value, 0, MAX_WAIT_SECONDS)? * 1000,
            _ => return Err(unknown(name)),
        }
    }
    Ok(params)
}

/// A route without parameters of its own (the consumer routes): any is refused.
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

/// `POST /v1/stream/{subject}?batch=1`: whether the body is an array of messages.
pub fn parse_publish_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<bool, ProtocolError> {
    let mut batch = false;
    for (name, value) in route_params(pairs)? {
        match (name, value) {
            ("batch", "1" | "true") => batch = true,
            ("batch", "0" | "false") => batch = false,
            ("batch", _) => return Err(ProtocolError::bad_request("`batch` must be 1, true, 0 or false")),
            _ => return Err(unknown(name)),
        }
    }
    Ok(batch)
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
        assert_eq!(parse_read_params([]).unwrap(), ReadParams { from: None, limit: 100, wait_ms: 0 });
        assert_eq!(
            parse_read_params([("from", "5"), ("limit", "1000"), ("wait", "60"), ("apiKey", "k")]).unwrap(),
            ReadParams { from: Some(5), limit: 1000, wait_ms: 60_000 }
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
    fn batch_flag() {
        assert!(!parse_publish_params([]).unwrap());
        assert!(parse_publish_params([("batch", "1")]).unwrap());
        assert!(parse_publish_params([("batch", "true")]).unwrap());
        assert!(parse_publish_params([("batch", "yes")]).is_err());
        assert!(parse_publish_params([("x", "1")]).is_err());
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
