//! The original durable-stream's WebSocket route, `/stream/{subject}?apiKey=KEY` (docs/PROTOCOL.md,
//! "Legacy routes"): authenticated like every route, then handed to the subject's Durable Object
//! at an internal path that marks the socket as legacy. The frames are `subject::legacy`'s; the
//! file routes under `/r2/` are `files::legacy`.

use crate::auth;
use crate::http::Failure;
use durable_stream_protocol::subject::validate_subject;
use durable_stream_protocol::token::Actions;
use durable_stream_protocol::ProtocolError;
use worker::{Env, Request};

/// Where the Worker forwards a legacy upgrade inside the subject's object (not a public route:
/// the object only ever sees it from the Worker). Followed by the subject, like `/v1/stream/`.
pub const SUBJECT_PATH: &str = "/legacy/stream/";

/// `GET /stream/{subject}` with `Upgrade: websocket`. The subject is the first segment, as the
/// original took it (later ones are ignored).
pub async fn stream(req: Request, env: &Env, path: &str) -> Result<worker::Response, Failure> {
    let principal = auth::authenticate(&req, env).await?;
    let subject = path.trim_start_matches("/stream/").split('/').next().unwrap_or_default();
    validate_subject(subject)?;
    let upgrade = req.headers().get("upgrade")?.is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return Err(ProtocolError::bad_request("Expected websocket: /stream/{subject} is the original protocol's WebSocket").into());
    }
    // Any right on the subject opens the socket; each frame is checked by the subject.
    let grant = principal.require_subject(subject, Actions::NONE)?;
    // The upgrade goes on with its headers to the object's internal legacy path.
    crate::forward_to_subject(&req, &format!("https://subject{SUBJECT_PATH}{subject}"), env, subject, &grant).await
}
