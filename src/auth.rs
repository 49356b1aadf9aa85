//! API-key authentication: `Authorization: Bearer`, `X-API-Key`, or `?apiKey=` (browsers cannot
//! set headers on a WebSocket). Fails closed when no key is configured; never logs a key.

use crate::http::Failure;
use durable_stream_protocol::auth::{authorize, bearer_token, AuthDecision};
use durable_stream_protocol::{ErrorCode, ProtocolError};
use worker::{Env, Request};

const API_KEY_SECRET: &str = "API_KEY";

pub fn require_api_key(req: &Request, env: &Env) -> Result<(), Failure> {
    let configured = env.secret(API_KEY_SECRET).ok().map(|s| s.to_string());
    let headers = req.headers();
    let bearer = headers.get("authorization")?;
    let header_key = headers.get("x-api-key")?;
    let query_key = req
        .url()?
        .query_pairs()
        .find(|(name, _)| name == "apiKey")
        .map(|(_, value)| value.into_owned());
    let presented = bearer.as_deref().and_then(bearer_token).into_iter().chain(header_key.as_deref()).chain(query_key.as_deref());
    let message = match authorize(configured.as_deref(), presented) {
        AuthDecision::Allowed => return Ok(()),
        AuthDecision::NotConfigured => "the server has no API key configured; every request is refused",
        AuthDecision::Missing => "missing API key (Authorization: Bearer, X-API-Key or ?apiKey=)",
        AuthDecision::Wrong => "invalid API key",
    };
    Err(ProtocolError::new(ErrorCode::Unauthorized, message).into())
}
