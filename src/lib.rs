//! durable-stream: persistent subject-based message streams on Cloudflare Workers.
//!
//! The Worker checks the route and method, answers CORS, authenticates, validates the subject and
//! forwards each stream request to that subject's Durable Object ([`subject::Subject`]); the
//! decisions live in the `protocol` crate.

mod access;
mod auth;
mod body;
mod cors;
mod directory;
mod files;
mod hex;
mod http;
mod legacy;
mod panic_guard;
mod random;
mod request_url;
mod revocations;
mod routes;
mod subject;
mod tokens;

use cors::Cors;
use durable_stream_protocol::subject::validate_subject;
use durable_stream_protocol::token::Grant;
use durable_stream_protocol::{ProtocolError, PROTOCOL_VERSION};
use routes::Route;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::{self, web_sys};
use worker::{event, Context, Env, Request, RequestInit, Response};

pub use files::FileUploads;
pub use directory::Directory;
pub use revocations::Revocations;
pub use subject::Subject;

/// Binding of the per-subject Durable Object namespace (wrangler.toml).
const SUBJECT_BINDING: &str = "SUBJECT";
/// Carries the caller's [`Grant`] from the Worker to the subject's Durable Object. The Worker
/// sets it on every request it forwards, replacing whatever a client sent under that name.
pub(crate) const GRANT_HEADER: &str = "x-dstream-grant";

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
    let on_panic = http::panic_response(&cors);
    panic_guard::respond(async move { cors.finish(http::or_error_response(route(req, &env, &ctx).await)) }, on_panic)
}

async fn route(req: Request, env: &Env, ctx: &Context) -> Result<Response, http::Failure> {
    let path = req.path();
    #[cfg(feature = "test-hooks")]
    if let Some(hook) = path.strip_prefix("/test/") {
        return test_hook(hook, env).await;
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
        Route::LegacyStream => legacy::stream(req, env, &path).await,
        Route::LegacyFiles => {
            let principal = auth::authenticate(&req, env).await?;
            files::legacy::handle(req, env, ctx, &principal).await
        }
        // A signed link is the credential for its one file (checked by `files`).
        Route::File if files::is_signed(&req) => files::handle_signed(req, env, ctx).await,
        Route::FileList | Route::File => {
            let principal = auth::authenticate(&req, env).await?;
            files::handle(req, env, ctx, &principal).await
        }
        Route::Tokens | Route::TokenRevoke | Route::TokenRevocations => {
            let principal = auth::authenticate(&req, env).await?;
            principal.require_master("token administration")?;
            match route {
                Route::Tokens => tokens::mint(req, env).await,
                Route::TokenRevoke => tokens::revoke(req, env).await,
                _ => tokens::list_revocations(env).await,
            }
        }
        Route::Subjects => {
            let principal = auth::authenticate(&req, env).await?;
            directory::listing::handle(&req, env, &principal).await
        }
        Route::Metrics => {
            let principal = auth::authenticate(&req, env).await?;
            principal.require_master("metrics")?;
            directory::scrape::handle(&req, env).await
        }
        Route::Subject | Route::SubjectMessages | Route::SubjectMessage | Route::SubjectState | Route::SubjectConsumers | Route::SubjectConsumer => {
            let principal = auth::authenticate(&req, env).await?;
            let subject = path.trim_start_matches("/v1/stream/").split('/').next().unwrap_or_default();
            validate_subject(subject)?;
            let upgrade = req.headers().get("upgrade")?.is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
            let grant = principal.require_subject(subject, access::subject_request(route, &method, upgrade))?;
            forward_to_subject(&req, &req.inner().url(), env, subject, &grant).await
        }
    }
}

/// Sends a request on to the subject's Durable Object at `url`, with the caller's grant. The
/// forwarded request is made of the method, headers and body alone: a copy of the request
/// (`clone_mut`) would carry its `cf` object, which workerd copies, sends to the object and
/// parses again there, ~15 µs of a `/ds` append (bench/RESULTS.md, "The Worker's share of a
/// `/ds` append").
pub(crate) async fn forward_to_subject(req: &Request, url: &str, env: &Env, subject: &str, grant: &Grant) -> Result<Response, http::Failure> {
    let grant = serde_json::to_string(grant).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let headers = req.headers().clone();
    headers.set(GRANT_HEADER, &grant)?;
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    init.body = req.inner().body().map(Into::into);
    let forwarded = Request::new_with_init(url, &init)?;
    let stub = env.durable_object(SUBJECT_BINDING)?.id_from_name(subject)?.get_stub()?;
    Ok(stub.fetch_with_request(forwarded).await?)
}

/// Test builds only: `/test/panic` panics in the Worker; `/test/panic/{subject}` panics in that
/// subject's Durable Object and `/test/evict/{subject}` makes it forget its memory;
/// `/test/r2-abort/{uploadId}/{key}` aborts an upload in R2 alone, as R2's lifecycle rule does.
#[cfg(feature = "test-hooks")]
async fn test_hook(hook: &str, env: &Env) -> Result<Response, http::Failure> {
    if hook == "panic" {
        panic!("panic requested by a test");
    }
    if let Some(upload) = hook.strip_prefix("r2-abort/") {
        return files::abort_in_r2_only(env, upload).await;
    }
    let Some((hook @ ("panic" | "evict"), subject)) = hook.split_once('/') else {
        return Err(ProtocolError::not_found(format!("no test hook {hook:?}")).into());
    };
    let stub = env.durable_object(SUBJECT_BINDING)?.id_from_name(subject)?.get_stub()?;
    Ok(stub.fetch_with_str(&format!("https://subject/v1/stream/{subject}/test-{hook}")).await?)
}
