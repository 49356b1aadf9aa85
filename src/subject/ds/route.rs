//! The Worker side of the `/ds` mount: CORS preflight, authentication and the stream name,
//! then the request goes to the stream's Durable Object — the same `Subject` object a subject of
//! that name uses.

use super::respond::{or_error, respond, DsError};
use crate::auth::require_api_key;
use durable_stream_protocol::durable_streams::name;
use durable_stream_protocol::ProtocolError;
use worker::{Env, Method, Request, Response};

pub const STREAM_PREFIX: &str = "/ds/v1/stream/";

pub async fn route(req: Request, env: &Env) -> Response {
    or_error(forward(req, env).await)
}

async fn forward(req: Request, env: &Env) -> Result<Response, DsError> {
    let path = req.path();
    if !path.starts_with(STREAM_PREFIX) {
        return Err(ProtocolError::not_found(format!("no route for {path}; streams live under {STREAM_PREFIX}{{name}}")).into());
    }
    // Browsers send preflights without credentials, so they are answered without a key; they
    // reveal nothing and every real request is still authenticated.
    if req.method() == Method::Options {
        return Ok(respond(204, &[("access-control-max-age", "86400".into())], None)?);
    }
    require_api_key(&req, env)?;
    let stream = name::from_path(&path)?;
    if !matches!(req.method(), Method::Get | Method::Head | Method::Put | Method::Post | Method::Delete) {
        return Err(DsError::method_not_allowed());
    }
    let stub = env.durable_object(crate::SUBJECT_BINDING)?.id_from_name(&stream)?.get_stub()?;
    Ok(stub.fetch_with_request(req).await?)
}
