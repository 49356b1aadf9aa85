//! durable-stream: persistent subject-based message streams on Cloudflare Workers.
//!
//! The Worker checks the route and method, answers CORS, authenticates, validates the subject and
//! forwards each stream request to that subject's Durable Object ([`subject::Subject`]); the
//! decisions live in the `protocol` crate.

mod auth;
mod cors;
mod files;
mod hex;
mod http;
mod panic_guard;
mod random;
mod routes;
mod subject;

use cors::Cors;
use durable_stream_protocol::subject::validate_subject;
use durable_stream_protocol::{ProtocolError, PROTOCOL_VERSION};
use routes::Route;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::{self, web_sys};
use worker::{event, Context, Env, Request, Response};

pub use files::FileUploads;
pub use subject::Subject;

/// Binding of the per-subject Durable Object namespace (wrangler.toml).
const SUBJECT_BINDING: &str = "SUBJECT";

#[event(start)]
fn start() {
    panic_guard::install();
}

/// The Worker's fetch handler (written out instead of `#[event(fetch)]` so that a panic still
/// answers the request: see `panic_guard`).
#[wasm_bindgen]
pub fn fetch(req: web_sys::Request, env: Env, ctx: worker_sys::Context) -> js_sys::Promise {
    let req = Request::from(req);
    let ctx = Context::new(ctx);
    let cors = match Cors::for_request(&req, &env) {
        Ok(cors) => cors,
        Err(error) => {
            let refused = web_sys::Response::from(http::or_error_response(Err(error.into())));
            return js_sys::Promise::resolve(&wasm_bindgen::JsValue::from(refused));
        }
    };
    let on_panic = cors.finish(http::error_response(&ProtocolError::internal()));
    panic_guard::respond(async move { cors.finish(http::or_error_response(route(req, &env, &ctx).await)) }, on_panic)
}

async fn route(req: Request, env: &Env, ctx: &Context) -> Result<Response, http::Failure> {
    let path = req.path();
    #[cfg(feature = "test-panic")]
    if let Some(place) = path.strip_prefix("/test/panic") {
        return test_panic(place, env).await;
    }
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
        // A signed link is the credential for its one file (checked by `files`).
        Route::File if files::is_signed(&req)? => files::handle_signed(req, env, ctx).await,
        Route::FileList | Route::File => {
            auth::require_api_key(&req, env)?;
            files::handle(req, env, ctx).await
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

/// Test builds only: `/test/panic` panics in the Worker, `/test/panic/{subject}` in that
/// subject's Durable Object.
#[cfg(feature = "test-panic")]
async fn test_panic(place: &str, env: &Env) -> Result<Response, http::Failure> {
    let Some(subject) = place.strip_prefix('/') else { panic!("panic requested by a test") };
    let stub = env.durable_object(SUBJECT_BINDING)?.id_from_name(subject)?.get_stub()?;
    Ok(stub.fetch_with_str(&format!("https://subject/v1/stream/{subject}/test-panic")).await?)
}
