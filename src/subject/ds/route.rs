//! The Worker side of the `/ds` mount, after the Worker's route, method and CORS checks:
//! authentication and the stream name, then the request goes to the stream's Durable Object —
//! the same `Subject` object a subject of that name uses.

use super::respond::{or_error, DsError};
use crate::{access, auth};
use durable_stream_protocol::durable_streams::headers as h;
use durable_stream_protocol::durable_streams::{name, parse_closed};
use durable_stream_protocol::token::Actions;
use worker::{Env, Request, Response};

pub use crate::routes::DS_STREAM_PREFIX as STREAM_PREFIX;

pub async fn route(req: Request, env: &Env) -> Response {
    or_error(forward(req, env).await)
}

async fn forward(req: Request, env: &Env) -> Result<Response, DsError> {
    let principal = auth::authenticate(&req, env).await?;
    let stream = name::from_path(&req.path())?;
    let headers = req.headers();
    let closes = parse_closed(headers.get(h::CLOSED)?.as_deref())?;
    let has_body = headers.get("content-length")?.is_some_and(|l| l.trim() != "0") || headers.has("transfer-encoding")?;
    let grant = principal.require_subject(&stream, access::ds_request(&req.inner().method(), closes, has_body))?;
    // A fork copies its source: the caller must be able to read that too.
    if let Some(source) = headers.get(h::FORKED_FROM)? {
        principal.require_subject(&name::from_path(source.trim())?, Actions::SUB)?;
    }
    Ok(crate::forward_to_subject(&req, &req.inner().url(), env, &stream, &grant).await?)
}
