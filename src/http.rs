//! JSON responses and the one place where failures become HTTP errors.

use crate::cors::Cors;
use durable_stream_protocol::ProtocolError;
use std::cell::RefCell;
use wasm_bindgen::JsValue;
use worker::worker_sys::web_sys;
use worker::{console_error, Headers, Response};

/// Why a request failed: an error for the client, or an internal fault that is logged and
/// answered with a generic `internal` error (never with its details or a stack trace).
#[derive(Debug)]
pub enum Failure {
    Client(ProtocolError),
    Internal(worker::Error),
}

impl Failure {
    /// The error code the client is answered with.
    pub fn code(&self) -> durable_stream_protocol::ErrorCode {
        match self {
            Failure::Client(error) => error.code,
            Failure::Internal(_) => durable_stream_protocol::ErrorCode::Internal,
        }
    }

    /// What the client is told: the error itself, or (logged here, never shown) `internal`.
    pub fn into_client_error(self) -> ProtocolError {
        match self {
            Failure::Client(error) => error,
            Failure::Internal(error) => {
                console_error!("internal error: {error}");
                ProtocolError::internal()
            }
        }
    }
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

/// The headers of every JSON response: typed, and never cached.
const JSON_HEADERS: [(&str, &str); 2] = [("content-type", "application/json"), ("cache-control", "no-store")];

pub fn json_text_response(status: u16, body: String) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in JSON_HEADERS {
        headers.set(name, value)?;
    }
    Ok(Response::ok(body)?.with_status(status).with_headers(headers))
}

/// A request's query parameters, decoded, in order.
pub fn query(req: &worker::Request) -> Vec<(String, String)> {
    crate::request_url::query_pairs(&req.inner().url())
}

/// The parameters of [`query`] as borrowed pairs, as the parsers in `protocol` take them.
pub fn pairs(query: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    query.iter().map(|(name, value)| (name.as_str(), value.as_str()))
}

/// `Retry-After` (whole seconds, at least 1) for an error that says how long to wait.
pub fn retry_after(error: &ProtocolError) -> Option<String> {
    error.detail("retryAfterMs").map(|ms| ms.div_ceil(1000).max(1).to_string())
}

pub fn error_response(error: &ProtocolError) -> Response {
    let mut response = json_text_response(error.code.http_status(), error.to_http_body())
        // Building a small JSON response only fails if the runtime itself is broken.
        .unwrap_or_else(|_| Response::empty().expect("empty response").with_status(500));
    if let Some(seconds) = retry_after(error) {
        let _ = response.headers_mut().set("retry-after", &seconds);
    }
    response
}

thread_local! {
    /// The status and headers of the last [`panic_response`], with the CORS answer they carry.
    static PANIC_INIT: RefCell<Option<(Cors, web_sys::ResponseInit)>> = const { RefCell::new(None) };
    static INTERNAL_ERROR_BODY: String = ProtocolError::internal().to_http_body();
}

/// The answer to a request that a panic cuts short (see `panic_guard::respond`): `internal` as
/// JSON, with the request's CORS headers. Every request makes one in advance, so it is a single
/// `new Response` of a string, with the init object of the request before when the CORS answer
/// is the same (plain JavaScript data, which unlike a response belongs to no request): half the
/// cost of a `worker::Response` converted and then decorated (bench/RESULTS.md, "The Worker's
/// share of a `/ds` append").
pub fn panic_response(cors: &Cors) -> web_sys::Response {
    let init = PANIC_INIT.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((made_for, init)) if made_for == cors => init.clone(),
            _ => {
                let init = panic_init(cors);
                *last = Some((cors.clone(), init.clone()));
                init
            }
        }
    });
    INTERNAL_ERROR_BODY
        .with(|body| web_sys::Response::new_with_opt_str_and_init(Some(body), &init))
        .expect("a response with a string body can always be made")
}

/// The status and headers of [`panic_response`], CORS included.
fn panic_init(cors: &Cors) -> web_sys::ResponseInit {
    let headers = js_sys::Object::new();
    for (name, value) in JSON_HEADERS.into_iter().chain(cors.headers()) {
        let _ = js_sys::Reflect::set(&headers, &JsValue::from_str(name), &JsValue::from_str(value));
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(durable_stream_protocol::ErrorCode::Internal.http_status());
    init.set_headers(&headers);
    init
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
        Err(failure) => error_response(&failure.into_client_error()),
    }
}

// Responses are JavaScript objects: these run under Node (wasm-bindgen-test, scripts/test.sh).
#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    async fn body(mut response: Response) -> serde_json::Value {
        serde_json::from_str(&response.text().await.unwrap()).unwrap()
    }

    #[wasm_bindgen_test]
    async fn json_responses_are_json_and_never_cached() {
        let response = json_response(201, &serde_json::json!({ "seq": 1 })).unwrap();
        assert_eq!(response.status_code(), 201);
        assert_eq!(response.headers().get("content-type").unwrap().as_deref(), Some("application/json"));
        assert_eq!(response.headers().get("cache-control").unwrap().as_deref(), Some("no-store"));
        assert_eq!(body(response).await, serde_json::json!({ "seq": 1 }));
    }

    #[wasm_bindgen_test]
    async fn method_not_allowed_is_405_with_allow_and_a_json_error() {
        let response = method_not_allowed("GET, PUT, OPTIONS").unwrap();
        assert_eq!(response.status_code(), 405);
        assert_eq!(response.headers().get("allow").unwrap().as_deref(), Some("GET, PUT, OPTIONS"));
        let error = body(response).await;
        assert_eq!(error["error"]["code"], "bad_request");
        assert_eq!(error["error"]["message"], "method not allowed; use GET, PUT, OPTIONS");
    }

    #[wasm_bindgen_test]
    async fn rate_limited_errors_say_when_to_retry() {
        let response = error_response(&ProtocolError::rate_limited("slow down", 1200));
        assert_eq!(response.status_code(), 429);
        assert_eq!(response.headers().get("retry-after").unwrap().as_deref(), Some("2"));
        assert_eq!(body(response).await["error"]["retryAfterMs"], 1200);
        let no_wait = error_response(&ProtocolError::not_found("x"));
        assert_eq!(no_wait.headers().get("retry-after").unwrap(), None);
    }

    #[wasm_bindgen_test]
    async fn a_request_cut_short_by_a_panic_gets_internal_with_its_own_cors_headers() {
        use crate::cors::AllowedOrigins;
        let any = Cors::new(&AllowedOrigins::Any, None);
        let listed = Cors::new(&AllowedOrigins::parse(Some("https://app.example")).unwrap(), Some("https://app.example"));
        // Twice each, in turns: the init kept from the request before must not leak its CORS.
        for cors in [&any, &listed, &any, &listed] {
            let response = Response::from(panic_response(cors));
            assert_eq!(response.status_code(), 500);
            let header = |name: &str| response.headers().get(name).unwrap();
            assert_eq!(header("content-type").as_deref(), Some("application/json"));
            assert_eq!(header("cache-control").as_deref(), Some("no-store"));
            let (origin, vary) = if cors == &any { ("*", None) } else { ("https://app.example", Some("Origin")) };
            assert_eq!(header("access-control-allow-origin").as_deref(), Some(origin));
            assert_eq!(header("vary").as_deref(), vary);
            assert_eq!(body(response).await, serde_json::json!({ "error": { "code": "internal", "message": "internal error" } }));
        }
    }

    #[wasm_bindgen_test]
    async fn client_errors_keep_their_code_and_internal_faults_reveal_nothing() {
        let refused = or_error_response(Err(ProtocolError::not_found("no file \"a\"").into()));
        assert_eq!(refused.status_code(), 404);
        assert_eq!(body(refused).await["error"]["message"], "no file \"a\"");
        let fault = or_error_response(Err(Failure::Internal(worker::Error::RustError("table t is locked".into()))));
        assert_eq!(fault.status_code(), 500);
        assert_eq!(body(fault).await, serde_json::json!({ "error": { "code": "internal", "message": "internal error" } }));
    }
}
