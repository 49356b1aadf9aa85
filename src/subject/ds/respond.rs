//! Responses of the `/ds` mount: protocol headers and browser security headers on every one
//! (errors included; the Worker adds CORS to every response), and errors as the project's JSON
//! error body with the status the protocol asks for.

use crate::http::Failure;
use durable_stream_protocol::durable_streams::headers as h;
use durable_stream_protocol::{ErrorCode, ProtocolError};
use worker::{console_error, Headers, Response};

/// A failed protocol request: the error for the body, its status and extra headers.
#[derive(Debug)]
pub struct DsError {
    pub status: u16,
    pub error: ProtocolError,
    pub headers: Vec<(&'static str, String)>,
}

pub type DsResult<T> = Result<T, DsError>;

impl DsError {
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> DsError {
        DsError { status, error: ProtocolError::new(code, message), headers: Vec::new() }
    }

    pub fn gone() -> DsError {
        DsError::new(410, ErrorCode::NotFound, "stream was deleted; it is kept only while forks of it exist")
    }

    pub fn method_not_allowed() -> DsError {
        let allow = crate::routes::Route::DsStream.allow();
        DsError::new(405, ErrorCode::BadRequest, format!("method not allowed; use {allow}")).with("allow", allow)
    }

    pub fn missing() -> DsError {
        ProtocolError::not_found("no such stream").into()
    }

    pub fn with(mut self, name: &'static str, value: impl ToString) -> DsError {
        self.headers.push((name, value.to_string()));
        self
    }
}

impl From<ProtocolError> for DsError {
    fn from(error: ProtocolError) -> DsError {
        let headers = crate::http::retry_after(&error).map(|seconds| ("retry-after", seconds)).into_iter().collect();
        DsError { status: error.code.http_status(), error, headers }
    }
}

impl From<worker::Error> for DsError {
    fn from(error: worker::Error) -> DsError {
        console_error!("internal error: {error}");
        ProtocolError::internal().into()
    }
}

impl From<Failure> for DsError {
    fn from(failure: Failure) -> DsError {
        match failure {
            Failure::Client(error) => error.into(),
            Failure::Internal(error) => error.into(),
        }
    }
}

/// Browser security headers (set on every `/ds` response).
pub fn decorate(headers: &Headers) -> worker::Result<()> {
    headers.set("x-content-type-options", "nosniff")?;
    headers.set("cross-origin-resource-policy", "cross-origin")?;
    Ok(())
}

/// A response with `headers` and, unless it is None, `body`.
pub fn respond(status: u16, headers: &[(&str, String)], body: Option<Vec<u8>>) -> worker::Result<Response> {
    let out = Headers::new();
    decorate(&out)?;
    for (name, value) in headers {
        out.set(name, value)?;
    }
    let response = match body {
        Some(body) => Response::from_bytes(body)?,
        None => Response::empty()?,
    };
    Ok(response.with_status(status).with_headers(out))
}

pub fn error_response(error: &DsError) -> Response {
    let mut headers = error.headers.clone();
    headers.push(("content-type", "application/json".into()));
    headers.push(("cache-control", "no-store".into()));
    let headers: Vec<(&str, String)> = headers.into_iter().collect();
    respond(error.status, &headers, Some(error.error.to_http_body().into_bytes()))
        // Building a small response only fails if the runtime itself is broken.
        .unwrap_or_else(|_| Response::empty().expect("empty response").with_status(500))
}

pub fn or_error(outcome: DsResult<Response>) -> Response {
    outcome.unwrap_or_else(|error| error_response(&error))
}

/// The headers every read or HEAD reports about the stream's tail.
pub fn offset_headers(next_offset: String, up_to_date: bool, closed: bool) -> Vec<(&'static str, String)> {
    let mut headers = vec![(h::NEXT_OFFSET, next_offset)];
    if up_to_date {
        headers.push((h::UP_TO_DATE, "true".into()));
    }
    if closed {
        headers.push((h::CLOSED, "true".into()));
    }
    headers
}
