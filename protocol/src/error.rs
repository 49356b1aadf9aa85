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
    pub details: Vec<(&'static str, u64)>,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError { code, message: message.into(), details: Vec::new() }
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

    pub fn with_detail(mut self, name: &'static str, value: u64) -> Self {
        self.details.push((name, value));
        self
    }

    pub fn detail(&self, name: &str) -> Option<u64> {
        self.details.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// The error's fields as a JSON object: code, message and details.
    pub fn to_json_object(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut object = serde_json::Map::new();
        object.insert("code".into(), self.code.as_str().into());
        object.insert("message".into(), self.message.clone().into());
        for (name, value) in &self.details {
            object.insert((*name).into(), (*value).into());
        }
        object
    }

    /// The HTTP error body: `{"error":{"code":"…","message":"…"}}` (and any details).
    pub fn to_http_body(&self) -> String {
        serde_json::json!({ "error": self.to_json_object() }).to_string()
    }

    /// Reads an HTTP error body back, `retryAfterMs` included; `None` when it is not one (or
    /// names an unknown code).
    pub fn from_http_body(body: &[u8]) -> Option<ProtocolError> {
        #[derive(Deserialize)]
        struct Body {
            error: Detail,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Detail {
            code: String,
            message: String,
            retry_after_ms: Option<u64>,
        }
        let Body { error } = serde_json::from_slice(body).ok()?;
        let read = ProtocolError::new(ErrorCode::parse(&error.code)?, error.message);
        Some(match error.retry_after_ms {
            Some(ms) => read.with_detail("retryAfterMs", ms),
            None => read,
        })
    }
}

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
    fn http_bodies_read_back() {
        for error in [ProtocolError::not_found("no file \"a\""), ProtocolError::rate_limited("slow down", 250)] {
            assert_eq!(ProtocolError::from_http_body(error.to_http_body().as_bytes()), Some(error));
        }
        for other in [&b"not json"[..], br#"{"error":{"code":"nope","message":"m"}}"#, br#"{"error":"x"}"#] {
            assert_eq!(ProtocolError::from_http_body(other), None);
        }
    }
}
