//! The R2 file API under `/v1/files` (being written: see issue 3).

use crate::http::Failure;
use durable_stream_protocol::ProtocolError;
use worker::{Env, Request, Response};

pub async fn handle(req: Request, _env: &Env) -> Result<Response, Failure> {
    Err(ProtocolError::not_found(format!("no route for {}", req.path())).into())
}
