//! `auth`: replaces the connection's access token in-band (see `Core::refresh_token`).

use super::super::Core;
use crate::http::Failure;
use durable_stream_protocol::frame::encode_ok;
use durable_stream_protocol::RequestId;
use worker::Env;

/// The reply: `{"op":"ok","id":…,"exp":…}` with the new token's expiry (seconds).
pub fn refresh(core: &mut Core, env: &Env, conn: &str, id: Option<&RequestId>, token: &str) -> Result<String, Failure> {
    let subject = core.meta.subject.clone();
    let exp = core.refresh_token(env, conn, token, &subject)?;
    Ok(encode_ok(id, serde_json::json!({ "exp": exp })))
}
