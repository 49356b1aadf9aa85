//! The subject directory: one Durable Object (`DIRECTORY`, instance "directory") holding the
//! numbers each subject reports from its alarm, in a SQLite table indexed by name, so that the
//! listing (`GET /v1/subjects`, [`listing`]) and `GET /metrics` ([`scrape`]) page through them
//! without loading them all. Subjects never write here per publish: see `subject::telemetry`.

pub mod listing;
pub mod scrape;
mod store;

use crate::http::{self, Failure};
use durable_stream_protocol::directory::{parse_prefixes, DirectoryConfig, Report};
use durable_stream_protocol::metrics::{self, Counters};
use durable_stream_protocol::ProtocolError;
use std::cell::RefCell;
use store::DirectoryStore;
use worker::{durable_object, Date, DurableObject, Env, Method, Request, RequestInit, Response, Result, State};

const BINDING: &str = "DIRECTORY";
const INSTANCE: &str = "directory";
/// Largest report a subject sends (its consumers are capped, so reports stay far below).
const MAX_REPORT_BYTES: usize = 256 * 1024;

fn stub(env: &Env) -> Result<worker::Stub> {
    env.durable_object(BINDING)?.id_from_name(INSTANCE)?.get_stub()
}

/// An internal request to the directory; anything but a 2xx answer is an error.
async fn call(env: &Env, path: &str, method: Method, body: Option<String>) -> std::result::Result<Response, Failure> {
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(body) = body {
        init.with_body(Some(body.into()));
    }
    let response = stub(env)?.fetch_with_request(Request::new_with_init(&format!("https://directory{path}"), &init)?).await?;
    if !(200..300).contains(&response.status_code()) {
        return Err(worker::Error::RustError(format!("the directory answered {} to {path}", response.status_code())).into());
    }
    Ok(response)
}

/// Sends a subject's report.
pub async fn report(env: &Env, report: &Report) -> std::result::Result<(), Failure> {
    let body = serde_json::to_string(report).map_err(|e| worker::Error::RustError(e.to_string()))?;
    call(env, "/report", Method::Post, Some(body)).await.map(drop)
}

#[durable_object]
pub struct Directory {
    store: DirectoryStore,
    config: std::result::Result<DirectoryConfig, String>,
    /// The counter totals, read once and written through.
    totals: RefCell<Option<Counters>>,
}

impl Directory {
    fn config(&self) -> std::result::Result<&DirectoryConfig, Failure> {
        self.config.as_ref().map_err(|e| worker::Error::RustError(e.clone()).into())
    }

    fn take_report(&self, report: &Report, now: u64) -> std::result::Result<(), Failure> {
        self.store.apply(report, now)?;
        if !report.counters.is_empty() {
            let mut totals = self.totals.borrow_mut();
            let totals = match totals.as_mut() {
                Some(totals) => totals,
                None => totals.insert(self.store.totals()?),
            };
            totals.add(&report.counters);
            self.store.save_totals(totals)?;
        }
        Ok(())
    }

    async fn handle(&self, mut req: Request) -> std::result::Result<Response, Failure> {
        let now = Date::now().as_millis();
        let pairs = http::query(&req);
        let query = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/report") => {
                let body = crate::body::read_limited(&mut req, MAX_REPORT_BYTES).await?;
                let report: Report = serde_json::from_slice(&body).map_err(|e| ProtocolError::bad_request(format!("unreadable report: {e}")))?;
                self.take_report(&report, now)?;
                Ok(Response::empty()?.with_status(204))
            }
            (Method::Get, "/list") => {
                let prefix = query("prefix").unwrap_or_default();
                let after = query("after").unwrap_or_default();
                let limit = query("limit").and_then(|l| l.parse().ok()).unwrap_or(1);
                let page = self.store.list(&prefix, &after, limit)?;
                Ok(http::json_response(200, &serde_json::json!({ "subjects": page.subjects, "more": page.more, "asOf": now }))?)
            }
            (Method::Get, "/metrics") => {
                let config = self.config()?;
                let prefixes = match query("prefix") {
                    Some(list) => parse_prefixes(&list)?,
                    None => config.metrics_subject_prefixes.clone(),
                };
                let totals = match self.totals.borrow().clone() {
                    Some(totals) => totals,
                    None => self.store.totals()?,
                };
                let snapshot = self.store.snapshot(&prefixes, config.metrics_max_subjects, config.metrics_max_consumers, totals)?;
                let mut response = Response::ok(metrics::render(&snapshot))?;
                response.headers_mut().set("content-type", metrics::CONTENT_TYPE)?;
                Ok(response)
            }
            _ => Err(ProtocolError::not_found("no such directory operation").into()),
        }
    }
}

impl DurableObject for Directory {
    fn new(state: State, env: Env) -> Self {
        let store = DirectoryStore::open(state.storage().sql());
        let config = DirectoryConfig::from_lookup(|name| env.var(name).ok().map(|v| v.to_string())).map_err(|e| e.to_string());
        Directory { store, config, totals: RefCell::new(None) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        Ok(http::or_error_response(self.handle(req).await))
    }
}
