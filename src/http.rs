//! JSON responses and the one place where failures become HTTP errors.

use durable_stream_protocol::ProtocolError;
use worker::{console_error, Headers, Response};

/// Why a request failed: an error for the client, or an internal fault that is logged and
/// answered with a generic `internal` error (never with its details or a stack trace).
#[derive(Debug)]
pub enum Failure {
    Client(ProtocolError),
    Internal(worker::Error),
}

impl From<ProtocolError> for Failure {
    fn from(e: ProtocolError) -> Self {
        Failure::Client(e)
    }
}

impl From<worker::Error> for Failure {
    fn from(e: worker::Error) -> Self {
        Failure::Internal(e)
    }
}

pub fn json_response(status: u16, body: &serde_json::Value) -> worker::Result<Response> {
    json_text_response(status, body.to_string())
}

pub fn json_text_response(status: u16, body: String) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::ok(body)?.with_status(status).with_headers(headers))
}

pub fn error_response(error: &ProtocolError) -> Response {
    json_text_response(error.code.http_status(), error.to_http_body())
        // Building a small JSON response only fails if the runtime itself is broken.
        .unwrap_or_else(|_| Response::empty().expect("empty response").with_status(500))
}

/// 405 for a method the route does not serve, with the route's `Allow` header.
pub fn method_not_allowed(allow: &str) -> worker::Result<Response> {
    let error = ProtocolError::bad_request(format!("method not allowed; use {allow}"));
    let mut response = json_text_response(405, error.to_http_body())?;
    response.headers_mut().set("allow", allow)?;
    Ok(response)
}

/// Turns a handler's outcome into the response sent to the client.
pub fn or_error_response(outcome: Result<Response, Failure>) -> Response {
    match outcome {
        Ok(response) => response,
        Err(Failure::Client(error)) => error_response(&error),
        Err(Failure::Internal(error)) => {
            console_error!("internal error: {error}");
            error_response(&ProtocolError::internal())
        }
    }
}
