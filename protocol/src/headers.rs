//! Message headers: an optional map of string → string stored with each message (trace ids,
//! content types, event types), bounded in count and bytes.
//!
//! Headers are validated once when published and kept as compact JSON text, which goes out
//! verbatim on every read. A message without headers stores and sends nothing for them.

use crate::config::Config;
use crate::error::ProtocolError;
use crate::strict_json;
use serde_json::{Map, Value};

/// A message's headers: a non-empty JSON object whose values are strings, as compact JSON text
/// in the order the publisher gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers(String);

impl Headers {
    /// The headers as a JSON object text, e.g. `{"type":"OrderCreated"}`.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// Validates the `headers` of a message (`what` names it in errors, e.g. "`headers`"). An empty
/// object is no headers: it costs nothing, like leaving `headers` out.
///
/// Refused with `bad_request`: anything but an object of strings (strict JSON: no key twice),
/// an empty name. With `too_large`: more than `MAX_HEADERS` headers, or more than
/// `MAX_HEADER_BYTES` bytes of names and values together (UTF-8).
pub fn parse_headers(raw: &str, config: &Config, what: &str) -> Result<Option<Headers>, ProtocolError> {
    let not_an_object = || ProtocolError::bad_request(format!("{what} must be an object of strings, e.g. {{\"type\":\"OrderCreated\"}}"));
    // Strict JSON refuses a name given twice and lone surrogates; the shape is checked below.
    strict_json::check(raw, config, what)?;
    let map: Map<String, Value> = serde_json::from_str(raw).map_err(|_| not_an_object())?;
    if map.is_empty() {
        return Ok(None);
    }
    let mut bytes = 0;
    for (name, value) in &map {
        let Value::String(value) = value else {
            return Err(ProtocolError::bad_request(format!("{what}: the value of {name:?} must be a string")));
        };
        if name.is_empty() {
            return Err(ProtocolError::bad_request(format!("{what}: a header name must not be empty")));
        }
        bytes += name.len() + value.len();
    }
    if map.len() > config.max_headers {
        return Err(ProtocolError::too_large(format!(
            "{what}: {} headers; the limit is {} (MAX_HEADERS)",
            map.len(),
            config.max_headers
        )));
    }
    if bytes > config.max_header_bytes {
        return Err(ProtocolError::too_large(format!(
            "{what}: {bytes} bytes of names and values; the limit is {} (MAX_HEADER_BYTES)",
            config.max_header_bytes
        )));
    }
    Ok(Some(Headers(Value::Object(map).to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn parse(raw: &str) -> Result<Option<Headers>, ProtocolError> {
        parse_headers(raw, &Config::default(), "`headers`")
    }

    #[test]
    fn objects_of_strings_become_compact_json_in_their_order() {
        let headers = parse(r#"{ "type" : "OrderCreated", "trace-id":"t\u00e9-1", "A":"" }"#).unwrap().unwrap();
        assert_eq!(headers.as_json(), r#"{"type":"OrderCreated","trace-id":"té-1","A":""}"#);
        assert_eq!(parse("{}").unwrap(), None, "an empty object is no headers");
        assert_eq!(parse(" {} ").unwrap(), None);
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for bad in ["[]", "\"a\"", "null", "1", r#"[{"a":"b"}]"#] {
            let e = parse(bad).unwrap_err();
            assert_eq!((e.code, e.message.as_str()), (ErrorCode::BadRequest, r#"`headers` must be an object of strings, e.g. {"type":"OrderCreated"}"#), "{bad}");
        }
        assert_eq!(parse(r#"{"a":1}"#).unwrap_err().message, r#"`headers`: the value of "a" must be a string"#);
        assert_eq!(parse(r#"{"a":null}"#).unwrap_err().message, r#"`headers`: the value of "a" must be a string"#);
        assert_eq!(parse(r#"{"a":{"b":"c"}}"#).unwrap_err().message, r#"`headers`: the value of "a" must be a string"#);
        assert_eq!(parse(r#"{"":"x"}"#).unwrap_err().message, "`headers`: a header name must not be empty");
        assert!(parse(r#"{"a":"1","a":"2"}"#).unwrap_err().message.contains("duplicate key \"a\""));
        assert!(parse(r#"{"a":"\ud800"}"#).unwrap_err().message.contains("lone UTF-16 surrogate"));
    }

    #[test]
    fn count_and_bytes_are_bounded() {
        let config = Config { max_headers: 2, max_header_bytes: 10, ..Config::default() };
        let parse = |raw: &str| parse_headers(raw, &config, "`batch[1].headers`");
        assert!(parse(r#"{"a":"1","b":"2"}"#).unwrap().is_some());
        let e = parse(r#"{"a":"1","b":"2","c":"3"}"#).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::TooLarge, "`batch[1].headers`: 3 headers; the limit is 2 (MAX_HEADERS)"));
        assert!(parse(r#"{"name":"é2345"}"#).is_ok(), "4 + 6 bytes");
        assert_eq!(parse(r#"{"name":"é23456"}"#).unwrap_err().message, "`batch[1].headers`: 11 bytes of names and values; the limit is 10 (MAX_HEADER_BYTES)");
        let none = Config { max_headers: 0, ..Config::default() };
        assert_eq!(parse_headers(r#"{"a":"b"}"#, &none, "`headers`").unwrap_err().code, ErrorCode::TooLarge);
        assert_eq!(parse_headers("{}", &none, "`headers`").unwrap(), None);
    }
}
