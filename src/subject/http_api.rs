//! The subject's HTTP API: the same operations as the WebSocket frames, for clients that do not
//! hold a connection open (cron jobs, webhooks, backends).

use super::ops::{consumers, get, info, publish, state, trim};
use super::store::{Draft, StoredMessage};
use super::{ds, grant_of, now_ms, Subject};
use crate::body::read_limited;
use crate::http::{self, error_response, json_response, json_text_response, pairs, Failure};
use durable_stream_protocol::consumers::{parse_reset_body, validate_name};
use durable_stream_protocol::frame::{encode_message, encode_page, OutgoingMessage};
use durable_stream_protocol::get::MessageRef;
use durable_stream_protocol::http_params::{
    parse_expected_last_seq, parse_idempotency_key, parse_if_match, parse_no_params, parse_publish_params,
    parse_read_params, parse_upto, state_etag, ReadParams, EXPECTED_LAST_SEQ_HEADERS,
};
use durable_stream_protocol::publish_body::parse_publish_body;
use durable_stream_protocol::state::validate_state;
use durable_stream_protocol::subscription::resolve_start;
use durable_stream_protocol::{ErrorCode, ProtocolError, StartPosition};
use futures_channel::oneshot;
use futures_util::future::{select, Either};
use serde_json::value::RawValue;
use serde_json::json;
use std::time::Duration;
use worker::{Delay, Method, Request, Response};

/// Close code sent to every socket of a subject that is deleted.
pub const SUBJECT_DELETED_CLOSE_CODE: u16 = 4001;
/// Largest body of a consumer reset (`{"acked":N}`).
const MAX_RESET_BODY_BYTES: usize = 1024;

type Query = Vec<(String, String)>;

impl Subject {
    pub(super) async fn handle_http(&self, mut req: Request, rest: &[&str]) -> Result<Response, Failure> {
        let query: Query = http::query(&req);
        match (req.method(), rest) {
            (Method::Post, []) => self.publish(&mut req, &query).await,
            (Method::Get, []) => Ok(json_response(200, &self.with_core(None, |core| info::info(core))??)?),
            (Method::Delete, []) => self.wipe().await,
            (Method::Get, ["messages"]) => self.read_messages(parse_read_params(pairs(&query))?).await,
            (Method::Get, ["messages", message]) => {
                parse_no_params(pairs(&query))?;
                let message: MessageRef = message.parse()?;
                let found = self.with_core(None, |core| get::get(core, message))??;
                Ok(json_text_response(200, encode_message(&found.outgoing()))?)
            }
            (Method::Delete, ["messages"]) => {
                let upto = parse_upto(pairs(&query))?;
                let result = self.with_core(None, |core| trim::trim(core, upto, now_ms()))??;
                Ok(json_response(200, &result)?)
            }
            (Method::Get, ["consumers"]) => {
                parse_no_params(pairs(&query))?;
                Ok(json_response(200, &self.with_core(None, |core| consumers::list(core))??)?)
            }
            (Method::Put | Method::Delete, ["consumers", name]) => {
                parse_no_params(pairs(&query))?;
                validate_name(name)?;
                self.change_consumer(&mut req, name).await
            }
            (Method::Get, ["state"]) => self.get_state(),
            (Method::Put, ["state"]) => self.put_state(&mut req).await,
            #[cfg(feature = "test-hooks")]
            (Method::Get, ["test-panic"]) => panic!("panic requested by a test in a subject's object"),
            #[cfg(feature = "test-hooks")]
            (Method::Get, ["test-evict"]) => {
                self.forget_memory();
                Ok(json_response(200, &json!({ "evicted": true }))?)
            }
            // Other methods never get here: the Worker's route table (`routes.rs`) refuses them.
            _ => Err(ProtocolError::not_found(format!("no route for {}", req.path())).into()),
        }
    }

    async fn publish(&self, req: &mut Request, query: &Query) -> Result<Response, Failure> {
        let params = parse_publish_params(pairs(query))?;
        let msg_id = req.headers().get("idempotency-key")?;
        if let Some(msg_id) = msg_id.as_deref() {
            parse_idempotency_key(msg_id)?;
        }
        let [ours, jetstream] = EXPECTED_LAST_SEQ_HEADERS;
        let expect_last_seq =
            parse_expected_last_seq([req.headers().get(ours)?.as_deref(), req.headers().get(jetstream)?.as_deref()])?;
        let config = self.with_core(None, |core| core.config.clone())?;
        let body = read_body(req, config.max_frame_bytes).await?;
        let messages = parse_publish_body(&body, params, &config)?;
        let drafts: Vec<Draft> = messages.iter().map(Draft::from).collect();
        let conditions = publish::Conditions { msg_id: msg_id.as_deref(), expect_last_seq };
        let token = grant_of(req)?.token;
        let (published, wakeup) = self.with_core(None, |core| -> Result<_, Failure> {
            let now = now_ms();
            core.admit_publish(None, token.as_ref(), drafts.len(), drafts.iter().map(|d| d.size() as usize).sum(), now)?;
            let published = publish::store(core, &drafts, conditions, now)?;
            if !published.duplicate {
                publish::fan_out(core, &published, &drafts, now)?;
            }
            Ok((published, self.wanted_alarm(core)?))
        })??;
        self.alarm.schedule(wakeup).await?;
        let status = if published.duplicate { 200 } else { 201 };
        Ok(json_response(status, &published.reply_fields(params.batch))?)
    }

    /// A page of messages from `from` (or `fromTime`); with `wait`, holds the request until one
    /// arrives.
    async fn read_messages(&self, params: ReadParams) -> Result<Response, Failure> {
        let deadline = now_ms() + params.wait_ms;
        let mut start = params.start();
        loop {
            let outcome = self.with_core(None, |core| -> Result<Result<String, oneshot::Receiver<()>>, Failure> {
                let bounds = core.meta.bounds();
                let from = resolve_start(Some(start), None, bounds, |ms| core.store.first_seq_since(ms))?;
                // A time resolves to a sequence once, when the read arrives (like a subscription).
                start = StartPosition::Seq(from);
                let page = core.store.read(from, bounds.last, params.limit)?;
                if page.is_empty() && now_ms() < deadline {
                    core.waiters.retain(|w| !w.is_canceled());
                    if core.waiters.len() >= core.config.max_connections {
                        return Err(ProtocolError::new(ErrorCode::RateLimited, "too many waiting reads on this subject").into());
                    }
                    let (wake, woken) = oneshot::channel();
                    core.waiters.push(wake);
                    return Ok(Err(woken));
                }
                // Bound the page by bytes too (always at least one message, so reads progress).
                let mut bytes = 0;
                let fitting = page
                    .iter()
                    .take_while(|m| {
                        bytes += m.size();
                        bytes <= core.config.max_frame_bytes || bytes == m.size()
                    })
                    .count();
                let messages: Vec<OutgoingMessage> = page[..fitting].iter().map(StoredMessage::outgoing).collect();
                let next = messages.last().map_or(from, |m| m.seq + 1);
                Ok(Ok(encode_page(&messages, next, bounds.last)))
            })??;
            match outcome {
                Ok(page) => return Ok(json_text_response(200, page)?),
                Err(woken) => {
                    let remaining = deadline.saturating_sub(now_ms());
                    let timeout = Delay::from(Duration::from_millis(remaining));
                    if let Either::Right(_) = select(woken, timeout).await {
                        // Timed out: one last read answers with whatever is there (usually nothing).
                    }
                }
            }
        }
    }

    /// Deletes the subject's messages, consumers and state, closes its sockets and starts a new
    /// epoch so clients can tell their positions are stale. The subject comes back open and
    /// JSON whatever the Durable Streams mount had made of it (`ds::reset_for_wipe`).
    async fn wipe(&self) -> Result<Response, Failure> {
        let (epoch, fork_source) = self.with_core(None, |core| -> Result<_, Failure> {
            core.start_over("subject deleted")?;
            let fork_source = ds::reset_for_wipe(core)?;
            Ok((core.meta.epoch.clone(), fork_source))
        })??;
        self.release_source(fork_source).await?;
        Ok(json_response(200, &json!({ "deleted": true, "epoch": epoch }))?)
    }

    /// `PUT …/consumers/{name}` with `{"acked":N}` (reset), or `DELETE` (delete).
    async fn change_consumer(&self, req: &mut Request, name: &str) -> Result<Response, Failure> {
        let reset_to = match req.method() {
            Method::Put => Some(parse_reset_body(&read_body(req, MAX_RESET_BODY_BYTES).await?)?),
            _ => None,
        };
        let (result, wakeup) = self.with_core(None, |core| -> Result<_, Failure> {
            let result = match reset_to {
                Some(acked) => consumers::reset(core, name, acked, now_ms())?,
                None => consumers::delete(core, name)?,
            };
            Ok((result, self.wanted_alarm(core)?))
        })??;
        // A reset subscription may have messages in flight again: their redelivery needs the alarm.
        self.alarm.schedule(wakeup).await?;
        Ok(json_response(200, &result)?)
    }

    fn get_state(&self) -> Result<Response, Failure> {
        let (state, version) = self.with_core(None, |core| state::get(core))??;
        let mut response = json_text_response(200, state)?;
        response.headers_mut().set("etag", &state_etag(version))?;
        Ok(response)
    }

    async fn put_state(&self, req: &mut Request) -> Result<Response, Failure> {
        let expected = match req.headers().get("if-match")? {
            Some(header) => parse_if_match(&header)?,
            None => None,
        };
        let config = self.with_core(None, |core| core.config.clone())?;
        let body = read_body(req, config.max_state_bytes).await?;
        if body.trim().is_empty() {
            return Err(ProtocolError::bad_request(r#"body is empty: the state must be JSON, e.g. {"cursor":"abc"}"#).into());
        }
        let document: &RawValue =
            serde_json::from_str(&body).map_err(|e| ProtocolError::bad_request(format!("state is not JSON: {e}")))?;
        validate_state(document.get(), &config)?;
        match self.with_core(None, |core| state::put(core, document.get(), expected))? {
            Ok(version) => {
                let mut response = json_response(200, &json!({ "version": version }))?;
                response.headers_mut().set("etag", &state_etag(version))?;
                Ok(response)
            }
            // A failed If-Match is a precondition failure in HTTP terms.
            Err(Failure::Client(e)) if e.code == ErrorCode::Conflict => {
                self.count_error(e.code);
                Ok(error_response(&e).with_status(412))
            }
            Err(other) => Err(other),
        }
    }
}

/// Reads a request body of at most `limit` bytes, refusing larger ones without reading them.
async fn read_body(req: &mut Request, limit: usize) -> Result<String, Failure> {
    let body = read_limited(req, limit).await?;
    String::from_utf8(body).map_err(|_| ProtocolError::bad_request("body must be UTF-8 JSON").into())
}
