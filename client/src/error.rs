//! The client's error type: one variant per server error code, plus transport failures.

use durable_stream_protocol::{ErrorCode, ProtocolError, Seq};
use std::sync::Arc;
use std::time::Duration;

/// Shorthand for `Result<T, durable_stream_client::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a durable-stream server.
///
/// The first nine variants are the server's error codes, each carrying the server's message.
/// Every message includes the error's source chain (`HTTP error: error sending request for url
/// (…): connection closed before message completed`), so printing it with `{}` loses nothing.
/// Transport errors wrap their cause in an [`Arc`] so one failure can be reported to every
/// request that was waiting on the same connection (the type is [`Clone`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request as malformed or out of range (`bad_request`).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The credentials are missing or wrong: a wrong API key, or a token that is malformed,
    /// badly signed or revoked (`unauthorized`).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The token is valid but does not grant this action on this subject or file
    /// (`forbidden`). Retrying will not help; a token that allows it will.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The token has expired (`token_expired`). With a
    /// [`token_provider`](crate::ClientBuilder::token_provider) the client renews it before
    /// this happens and once more when the server says so; without one, get a new token.
    #[error("token expired: {0}")]
    TokenExpired(String),
    /// The subject, file or route does not exist (`not_found`).
    #[error("not found: {0}")]
    NotFound(String),
    /// A frame, body, batch or state object exceeds a server limit (`too_large`).
    #[error("too large: {0}")]
    TooLarge(String),
    /// A compare-and-set precondition failed, or the request conflicts with the current state
    /// (`conflict`; also HTTP 412).
    #[error("conflict: {message}")]
    Conflict {
        /// The server's message.
        message: String,
        /// When a conditional publish was refused (its expected last sequence was not the
        /// subject's): the subject's last sequence. Nothing was stored; read what came after
        /// the expected one and decide again.
        last_seq: Option<Seq>,
    },
    /// The server asks the client to slow down (`rate_limited`); nothing was stored. Publishes
    /// wait `retry_after` and are sent again on their own while the request timeout allows, so
    /// this reaches the caller only when it does not.
    #[error("rate limited: {message}")]
    RateLimited {
        /// The server's message.
        message: String,
        /// How long the server asks to wait before trying again, when it says.
        retry_after: Option<Duration>,
    },
    /// The server failed (`internal`).
    #[error("server error: {0}")]
    Internal(String),
    /// A local I/O operation failed (reading an upload, writing a download, the cursor file).
    #[error("I/O error: {}", chain(.0))]
    Io(#[source] Arc<std::io::Error>),
    /// The WebSocket connection failed after it was open.
    #[error("WebSocket error: {}", chain(.0))]
    WebSocket(#[source] Arc<tokio_tungstenite::tungstenite::Error>),
    /// An HTTP request failed after its connection was open, before the whole response arrived.
    #[error("HTTP error: {}", chain(.0))]
    Http(#[source] Arc<reqwest::Error>),
    /// No connection to the server could be opened: nothing was sent. `url` is the address
    /// tried; the message names the cause (e.g. `Connection refused` when no server listens).
    /// Requests keep retrying with the client's [`Backoff`](crate::Backoff) until their timeout
    /// and fail with this error if no connection was made by then.
    #[error("cannot connect to {url}: {}", chain(&**.source))]
    Connect {
        /// The URL the client tried to reach.
        url: String,
        /// Why it failed (often a [`std::io::Error`] somewhere down its source chain).
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// No reply arrived within the configured timeout after the request was sent. For a
    /// publish the outcome is unknown: publishing again with the same message id is safe within
    /// the server's dedup window.
    #[error("timed out")]
    Timeout,
    /// The connection closed before a reply that cannot be safely resent arrived, or the
    /// client or subscription was closed.
    #[error("connection closed")]
    Closed,
    /// The subject was wiped and recreated since this subscription (or its saved cursor) last
    /// saw it: sequence numbers restarted and no longer mean what they did.
    #[error("subject epoch changed from {previous:?} to {current:?}")]
    EpochChanged {
        /// The epoch seen before.
        previous: String,
        /// The epoch the server reports now.
        current: String,
    },
    /// A subscription received message `seq` but could not decode its data, e.g. because it
    /// nests deeper than serde_json's recursion limit (128) or holds a number beyond `f64`
    /// (`1e400`). The subscription goes on: the message counts as consumed (see
    /// [`Subscription`](crate::Subscription)) and the messages around it are delivered as usual.
    #[error("message #{seq} could not be decoded: {reason}")]
    Undecodable {
        /// The message's sequence number.
        seq: Seq,
        /// What the JSON decoder said.
        reason: String,
    },
    /// The server sent something this client does not understand.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// The server URL is not usable.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A token could not be built, or a token given to the client cannot be read (it is not a
    /// JWT, or has no `exp`). Nothing was sent.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The [`token_provider`](crate::ClientBuilder::token_provider) failed. The client keeps
    /// the current token and asks the provider again a little later.
    #[error("the token provider failed: {}", chain(&**.0))]
    TokenProvider(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

/// An error's message followed by its sources', each left out when the text so far already
/// says it (many errors repeat their source in their own message).
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

impl Error {
    /// A failed attempt to connect to `url`.
    pub(crate) fn connect(url: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Connect { url: url.into(), source: Arc::new(source) }
    }

    /// Builds the variant for a server error code.
    pub fn from_code(code: ErrorCode, message: impl Into<String>) -> Error {
        let message = message.into();
        match code {
            ErrorCode::BadRequest => Error::BadRequest(message),
            ErrorCode::Unauthorized => Error::Unauthorized(message),
            ErrorCode::Forbidden => Error::Forbidden(message),
            ErrorCode::TokenExpired => Error::TokenExpired(message),
            ErrorCode::NotFound => Error::NotFound(message),
            ErrorCode::TooLarge => Error::TooLarge(message),
            ErrorCode::Conflict => Error::Conflict { message, last_seq: None },
            ErrorCode::RateLimited => Error::RateLimited { message, retry_after: None },
            ErrorCode::Internal => Error::Internal(message),
        }
    }

    /// The error a server reply reports: its code, message and, for `rate_limited`, the
    /// `retryAfterMs` it asks to wait.
    pub(crate) fn from_reply(code: ErrorCode, message: String, retry_after_ms: Option<u64>) -> Error {
        match Error::from_code(code, message) {
            Error::RateLimited { message, .. } => {
                Error::RateLimited { message, retry_after: retry_after_ms.map(Duration::from_millis) }
            }
            other => other,
        }
    }

    /// The server error code behind this error, if it came from the server.
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::TokenExpired(_) => ErrorCode::TokenExpired,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::TooLarge(_) => ErrorCode::TooLarge,
            Error::Conflict { .. } => ErrorCode::Conflict,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Internal(_) => ErrorCode::Internal,
            _ => return None,
        })
    }

    /// Whether trying again later may succeed: transport failures, timeouts, rate limiting,
    /// server errors and a failed token provider. Refusals (bad request, unauthorized,
    /// forbidden, an expired token, conflict, ...) will not change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::TokenProvider(_)
                | Error::Internal(_)
                | Error::Io(_)
                | Error::WebSocket(_)
                | Error::Http(_)
                | Error::Connect { .. }
                | Error::Timeout
                | Error::Closed
        )
    }

    /// Adds the subject's last sequence that a refused conditional publish reported.
    pub(crate) fn with_last_seq(self, last_seq: Option<Seq>) -> Error {
        match self {
            Error::Conflict { message, .. } => Error::Conflict { message, last_seq },
            other => other,
        }
    }

    /// Maps an HTTP error response (status and body `{"error":{"code","message"}}`, and
    /// `lastSeq` on a refused conditional publish) to an error. Bodies without that shape
    /// (proxies, HEAD requests) fall back to the status code.
    pub(crate) fn from_http(status: u16, body: &[u8]) -> Error {
        if let Some(error) = ProtocolError::from_http_body(body) {
            let (retry_after_ms, last_seq) = (error.detail("retryAfterMs"), error.detail("lastSeq"));
            return Error::from_reply(error.code, error.message, retry_after_ms).with_last_seq(last_seq);
        }
        let text = String::from_utf8_lossy(body).trim().to_string();
        let message = if text.is_empty() { format!("HTTP status {status}") } else { format!("HTTP status {status}: {text}") };
        let code = match status {
            400 | 416 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 | 410 => ErrorCode::NotFound,
            413 => ErrorCode::TooLarge,
            409 | 412 => ErrorCode::Conflict,
            429 => ErrorCode::RateLimited,
            500..=599 => ErrorCode::Internal,
            _ => return Error::InvalidResponse(message),
        };
        Error::from_code(code, message)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        if e.is_connect() {
            let url = e.url().map_or_else(|| "the server".to_owned(), |url| url.to_string());
            return Error::connect(url, e);
        }
        if e.is_timeout() {
            return Error::Timeout;
        }
        Error::Http(Arc::new(e))
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as WsError;
        match e {
            // The upgrade was answered with an HTTP error: report the server's typed error.
            WsError::Http(response) => {
                let body = response.body().as_deref().unwrap_or_default();
                Error::from_http(response.status().as_u16(), body)
            }
            WsError::ConnectionClosed | WsError::AlreadyClosed => Error::Closed,
            WsError::Io(io) => Error::Io(Arc::new(io)),
            other => Error::WebSocket(Arc::new(other)),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::InvalidResponse(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_error_bodies_map_to_their_code() {
        let e = Error::from_http(409, br#"{"error":{"code":"conflict","message":"version is 3"}}"#);
        assert!(matches!(&e, Error::Conflict { message, last_seq: None } if message == "version is 3"), "{e:?}");
        assert_eq!(e.code(), Some(ErrorCode::Conflict));
        assert!(!e.is_transient());
        let refused = Error::from_http(409, br#"{"error":{"code":"conflict","message":"expected last sequence 4","lastSeq":7}}"#);
        assert!(matches!(refused, Error::Conflict { last_seq: Some(7), .. }), "{refused:?}");
        assert_eq!(refused.to_string(), "conflict: expected last sequence 4");
    }

    #[test]
    fn bodiless_http_errors_fall_back_to_the_status() {
        assert!(matches!(Error::from_http(404, b""), Error::NotFound(m) if m == "HTTP status 404"));
        assert!(matches!(Error::from_http(412, b""), Error::Conflict { .. }));
        assert!(matches!(Error::from_http(503, b"upstream down"), Error::Internal(m) if m.contains("upstream down")));
        assert!(Error::from_http(503, b"").is_transient());
        assert!(matches!(Error::from_http(302, b""), Error::InvalidResponse(_)));
        assert!(matches!(Error::from_http(403, b""), Error::Forbidden(_)));
    }

    #[test]
    fn rate_limits_carry_the_wait_the_server_asks_for() {
        let body = br#"{"error":{"code":"rate_limited","message":"slow down","retryAfterMs":250}}"#;
        let e = Error::from_http(429, body);
        assert!(matches!(&e, Error::RateLimited { message, retry_after: Some(wait) } if message == "slow down" && wait.as_millis() == 250), "{e:?}");
        assert_eq!(e.to_string(), "rate limited: slow down");
        assert!(e.is_transient());
        assert!(matches!(Error::from_http(429, b""), Error::RateLimited { retry_after: None, .. }));
        let expired = Error::from_http(401, br#"{"error":{"code":"token_expired","message":"refresh it"}}"#);
        assert!(matches!(&expired, Error::TokenExpired(m) if m == "refresh it"));
        assert!(!expired.is_transient());
    }

    /// Says only what it was doing, like reqwest's errors; the cause is its source.
    #[derive(Debug)]
    struct Sending(std::io::Error);

    impl std::fmt::Display for Sending {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }

    impl std::error::Error for Sending {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn messages_include_their_sources_once() {
        let refused = Error::connect("ws://h/x", std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(refused.to_string(), "cannot connect to ws://h/x: refused");
        assert!(refused.is_transient());
        let reset = Error::connect("http://h/y", Sending(std::io::Error::other("connection reset")));
        assert_eq!(reset.to_string(), "cannot connect to http://h/y: error sending request: connection reset");
        let io = Error::from(std::io::Error::other("disk on fire"));
        assert_eq!(io.to_string(), "I/O error: disk on fire", "a source already in the message is not repeated");
    }

    #[test]
    fn every_code_round_trips() {
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
            let e = Error::from_code(code, "m");
            assert_eq!(e.code(), Some(code));
            assert!(e.to_string().ends_with(": m"));
        }
        assert_eq!(Error::Timeout.code(), None);
    }
}
