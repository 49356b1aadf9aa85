//! durable-stream: persistent subject-based message streams on Cloudflare Workers.
//!
//! The Worker checks the route and method, answers CORS, authenticates, validates the subject and
//! forwards each stream request to that subject's Durable Object ([`subject::Subject`]); the
//! decisions live in the `protocol` crate.

mod auth;
mod cors;
mod files;
mod http;
mod routes;
mod subject;

use cors::Cors;
use durable_stream_protocol::subject::validate_subject;
use durable_stream_protocol::{ProtocolError, PROTOCOL_VERSION};
use routes::Route;
use worker::worker_sys::web_sys;
use worker::{event, Context, Env, Request, Response};

pub use subject::Subject;

/// Binding of the per-subject Durable Object namespace (wrangler.toml).
const SUBJECT_BINDING: &str = "SUBJECT";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<web_sys::Response> {
    let cors = match Cors::for_request(&req, &env) {
        Ok(cors) => cors,
        Err(error) => return Ok(http::or_error_response(Err(error.into())).into()),
    };
    Ok(cors.finish(http::or_error_response(route(req, &env).await)))
}

async fn route(req: Request, env: &Env) -> Result<Response, http::Failure> {
    let path = req.path();
    let Some(route) = Route::parse(&path) else {
        return Err(ProtocolError::not_found(format!("no route for {path}")).into());
    };
    let method = req.inner().method();
    if routes::is_preflight(&method) {
        // Browsers send preflights without credentials; a preflight reveals nothing, and every
        // real request is still authenticated.
        return Ok(cors::preflight(route)?);
    }
    if !route.serves(&method) {
        return Ok(http::method_not_allowed(&route.allow())?);
    }
    match route {
        Route::Health => Ok(http::json_response(
            200,
            &serde_json::json!({
                "ok": true,
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": PROTOCOL_VERSION,
            }),
        )?),
        Route::DsStream => Ok(subject::ds::route(req, env).await),
        Route::FileList | Route::File => {
            auth::require_api_key(&req, env)?;
            files::handle(req, env).await
        }
        Route::Subject | Route::SubjectMessages | Route::SubjectState => {
            auth::require_api_key(&req, env)?;
            let subject = path.trim_start_matches("/v1/stream/").split('/').next().unwrap_or_default();
            validate_subject(subject)?;
            let stub = env.durable_object(SUBJECT_BINDING)?.id_from_name(subject)?.get_stub()?;
            Ok(stub.fetch_with_request(req).await?)
        }
    }
}

