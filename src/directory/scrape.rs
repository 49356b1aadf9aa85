//! `GET /metrics` (API key only): the Prometheus text format, rendered by the directory from
//! what the subjects last reported. `?prefix=a.,b.` chooses the subjects with series for this
//! scrape instead of `METRICS_SUBJECT_PREFIXES`.

use super::call;
use crate::http::{self, Failure};
use durable_stream_protocol::directory::parse_metrics_params;
use durable_stream_protocol::metrics::CONTENT_TYPE;
use worker::{Env, Method, Request, Response};

pub async fn handle(req: &Request, env: &Env) -> Result<Response, Failure> {
    let query = http::query(req);
    let path = match parse_metrics_params(http::pairs(&query))? {
        // Prefixes are of the subject alphabet: nothing in them needs escaping in a URL.
        Some(prefixes) => format!("/metrics?prefix={}", prefixes.join(",")),
        None => "/metrics".to_owned(),
    };
    let text = call(env, &path, Method::Get, None).await?.text().await?;
    let mut response = Response::ok(text)?;
    response.headers_mut().set("content-type", CONTENT_TYPE)?;
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}
