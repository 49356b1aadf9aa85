//! The Worker side of the `/ds` mount, after the Worker's route, method and CORS checks:
//! authentication and the stream name, then the request goes to the stream's Durable Object —
//! the same `Subject` object a subject of that name uses.

use super::respond::{or_error, DsError};
use crate::auth::require_api_key;
use durable_stream_protocol::durable_streams::name;
use worker::{Env, Request, Response};

pub use crate::routes::DS_STREAM_PREFIX as STREAM_PREFIX;

pub async fn route(req: Request, env: &Env) -> Response {
    or_error(forward(req, env).await)
}

async fn forward(req: Request, env: &Env) -> Result<Response, DsError> {
    require_api_key(&req, env)?;
    let stream = name::from_path(&req.path())?;
    let stub = env.durable_object(crate::SUBJECT_BINDING)?.id_from_name(&stream)?.get_stub()?;
    Ok(stub.fetch_with_request(req).await?)
}
