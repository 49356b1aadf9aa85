//! Error codes shared by every surface (WebSocket `err` frames and HTTP error bodies).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The closed set of error codes a client can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    /// Valid credentials that do not grant the action (access tokens).
    Forbidden,
    /// The access token has expired (a socket closes with it unless refreshed in-band).
    TokenExpired,
    NotFound,
    TooLarge,
    Conflict,
    RateLimited,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::NotFound => "not_found",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status used when this error answers an HTTP request.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized | ErrorCode::TokenExpired => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::TooLarge => 413,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
        }
    }

    pub fn parse(code: &str) -> Option<ErrorCode> {
        serde_json::from_value(serde_json::Value::String(code.to_owned())).ok()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error meant for the client: a code and a human-readable message without internals, and
/// for some codes a machine-readable detail (e.g. `retryAfterMs` with `rate_limited`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    /// Positions the client can act on, sent next to `code` and `message` under their names:
    /// `lastSeq` for a failed `expectLastSeq`, `first` and `last` for a message not found.
    pub details: Vec<(&'static str, u64)>,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError { code, message: message.into(), details: Vec::new() }
    }
    /// Adds a named number to the error (see [`ProtocolError::details`]).
    pub fn with_detail(mut self, name: &'static str, value: u64) -> Self {
        self.details.push((name, value));
        self
    }
    /// The value of a detail, if the error has it.
    pub fn detail(&self, name: &str) -> Option<u64> {
        self.details.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    /// `rate_limited` with how long to wait before trying again.
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: u64) -> Self {
        Self::new(ErrorCode::RateLimited, message).with_detail("retryAfterMs", retry_after_ms)
    }

    /// The error's fields: `code`, `message` and the details.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        fields.insert("code".into(), self.code.as_str().into());
        fields.insert("message".into(), self.message.as_str().into());
        for (name, value) in &self.details {
            fields.insert((*name).into(), (*value).into());
        }
        fields
    }

    /// The HTTP error body: `{"error":{"code":"…","message":"…"}}`, with the details next to
    /// `message` (`{"error":{"code":"conflict","message":"…","lastSeq":7}}`).
    pub fn to_http_body(&self) -> String {
        serde_json::json!({ "error": self.fields() }).to_string()
    }

    /// Reads an HTTP error body back, `retryAfterMs` included; `None` when it is not one (or
    /// names an unknown code).
    pub fn from_http_body(body: &[u8]) -> Option<ProtocolError> {
        #[derive(Deserialize)]
        struct Body {
            error: serde_json::Map<String, serde_json::Value>,
        }
        let Body { error } = serde_json::from_slice(body).ok()?;
        let code = ErrorCode::parse(error.get("code")?.as_str()?)?;
        let message = error.get("message")?.as_str()?;
        let read = ProtocolError::new(code, message);
        Some(DETAILS.iter().fold(read, |read, name| match error.get(*name).and_then(serde_json::Value::as_u64) {
            Some(value) => read.with_detail(name, value),
            None => read,
        }))
    }
}

/// The details a server sends (see [`ProtocolError::details`]).
const DETAILS: [&str; 4] = ["retryAfterMs", "lastSeq", "first", "last"];

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_wire_names() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::TokenExpired,
            ErrorCode::NotFound,
            ErrorCode::TooLarge,
            ErrorCode::Conflict,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
        ] {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn http_body_has_code_and_message() {
        let body = ProtocolError::too_large("frame is 2000000 bytes").to_http_body();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "too_large");
        assert_eq!(v["error"]["message"], "frame is 2000000 bytes");
        assert_eq!(ErrorCode::TooLarge.http_status(), 413);
    }

    #[test]
    fn details_go_next_to_code_and_message() {
        let error = ProtocolError::rate_limited("slow down", 250);
        assert_eq!(error.detail("retryAfterMs"), Some(250));
        let v: serde_json::Value = serde_json::from_str(&error.to_http_body()).unwrap();
        assert_eq!(v, serde_json::json!({"error": {"code": "rate_limited", "message": "slow down", "retryAfterMs": 250}}));
        assert_eq!((ErrorCode::Forbidden.http_status(), ErrorCode::TokenExpired.http_status()), (403, 401));
    }

    #[test]
    fn details_go_next_to_the_message() {
        let error = ProtocolError::not_found("message 3 was trimmed").with_detail("first", 5).with_detail("last", 9);
        assert_eq!((error.detail("first"), error.detail("last"), error.detail("lastSeq")), (Some(5), Some(9), None));
        let body: serde_json::Value = serde_json::from_str(&error.to_http_body()).unwrap();
        assert_eq!(body, serde_json::json!({ "error": { "code": "not_found", "message": "message 3 was trimmed", "first": 5, "last": 9 } }));
    }

    #[test]
    fn http_bodies_read_back() {
        let trimmed = ProtocolError::not_found("message 3 was trimmed").with_detail("first", 5).with_detail("last", 9);
        let moved_on = ProtocolError::conflict("last is 7").with_detail("lastSeq", 7);
        for error in [ProtocolError::not_found("no file \"a\""), ProtocolError::rate_limited("slow down", 250), trimmed, moved_on] {
            assert_eq!(ProtocolError::from_http_body(error.to_http_body().as_bytes()), Some(error));
        }
        for other in [&b"not json"[..], br#"{"error":{"code":"nope","message":"m"}}"#, br#"{"error":"x"}"#] {
            assert_eq!(ProtocolError::from_http_body(other), None);
        }
    }
}
