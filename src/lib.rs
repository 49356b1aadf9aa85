//! durable-stream: persistent subject-based message streams on Cloudflare Workers.
//!
//! The Worker authenticates, validates the subject and forwards each stream request to that
//! subject's Durable Object ([`subject::Subject`]); the decisions live in the `protocol` crate.

mod auth;
mod files;
mod http;
mod subject;

use durable_stream_protocol::subject::validate_subject;
use durable_stream_protocol::{ProtocolError, PROTOCOL_VERSION};
use worker::{event, Context, Env, Request, Response, Result};

pub use subject::Subject;

/// Binding of the per-subject Durable Object namespace (wrangler.toml).
const SUBJECT_BINDING: &str = "SUBJECT";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Ok(http::or_error_response(route(req, env).await))
}

async fn route(req: Request, env: Env) -> std::result::Result<Response, http::Failure> {
    let path = req.path();
    if path == "/health" {
        return Ok(http::json_response(
            200,
            &serde_json::json!({
                "ok": true,
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": PROTOCOL_VERSION,
            }),
        )?);
    }
    if path == "/ds" || path.starts_with("/ds/") {
        return Ok(subject::ds::route(req, &env).await);
    }
    if path == "/v1/files" || path.starts_with("/v1/files/") {
        auth::require_api_key(&req, &env)?;
        return files::handle(req, &env).await;
    }
    let Some(rest) = path.strip_prefix("/v1/stream/") else {
        return Err(ProtocolError::not_found(format!("no route for {path}")).into());
    };
    auth::require_api_key(&req, &env)?;
    let subject = rest.split('/').next().unwrap_or_default();
    validate_subject(subject)?;
    let stub = env.durable_object(SUBJECT_BINDING)?.id_from_name(subject)?.get_stub()?;
    Ok(stub.fetch_with_request(req).await?)
}
