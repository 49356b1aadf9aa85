//! Creates (incl. forks), appends, closes and deletes.

use super::respond::{offset_headers, respond, DsError, DsResult};
use super::store::{ClosedBy, StreamRow};
use crate::body::read_limited;
use super::{live, lookup, remove, Lookup};
use crate::subject::grant_of;
use crate::subject::ops::publish;
use crate::subject::store::Draft;
use crate::subject::{now_ms, Core, Subject};
use durable_stream_protocol::durable_streams::create::{fork_lifetime, StreamConfig};
use durable_stream_protocol::durable_streams::expiry::{parse_lifetime, parse_rfc3339_ms, Lifetime};
use durable_stream_protocol::durable_streams::headers as h;
use durable_stream_protocol::durable_streams::producer::{self, ProducerDecision, ProducerHeaders, ProducerState};
use durable_stream_protocol::durable_streams::{base64, check_stream_seq, content_type, name, offset, parse_closed, parse_header_uint};
use durable_stream_protocol::{sequence, strict_json, ErrorCode, ProtocolError, Seq};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use worker::{Request, Response};

/// What a fork asks its source for.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ForkRequest {
    offset: Option<Seq>,
    sub_offset: u64,
    content_type: Option<String>,
}

/// What the source lends a new fork: its configuration and a copy of the inherited messages
/// (JSON texts, or base64 for byte streams), each under its original sequence.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ForkGrant {
    content_type: String,
    ttl_seconds: Option<u64>,
    expires_at: Option<String>,
    /// The fork point; a sub-offset prefix follows it in `messages`.
    offset: Seq,
    messages: Vec<(Seq, String)>,
}

fn header(req: &Request, name: &str) -> worker::Result<Option<String>> {
    req.headers().get(name)
}

/// The JSON values of a body: an array contributes its elements, anything else is one value.
/// Each value is a message of the subject, so it must be strict JSON like any other.
fn json_values<'a>(core: &Core, body: &'a [u8], allow_empty: bool) -> DsResult<Vec<&'a str>> {
    if body.is_empty() && allow_empty {
        return Ok(Vec::new());
    }
    let text = std::str::from_utf8(body).map_err(|_| ProtocolError::bad_request("body is not UTF-8 JSON"))?;
    let value: &RawValue =
        serde_json::from_str(text).map_err(|e| ProtocolError::bad_request(format!("body is not JSON: {e}")))?;
    let values: Vec<&str> = if value.get().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(value.get()).map_err(|e| ProtocolError::bad_request(e.to_string()))?;
        let values: Vec<&str> = items.into_iter().map(RawValue::get).collect();
        strict_json::check_each(values.iter().copied(), &core.config, "body")?;
        values
    } else {
        strict_json::check(value.get(), &core.config, "body")?;
        vec![value.get()]
    };
    if values.is_empty() && !allow_empty {
        return Err(ProtocolError::bad_request("an empty JSON array appends nothing").into());
    }
    if values.len() > core.config.max_batch_messages {
        return Err(ProtocolError::too_large(format!(
            "{} values in one append; the limit is {}",
            values.len(),
            core.config.max_batch_messages
        ))
        .into());
    }
    Ok(values)
}

/// Appends a body to the stream (JSON values through the subject's publish path, so WebSocket
/// subscribers get them; bytes as one chunk) and returns the new last sequence.
fn append_data(core: &mut Core, json: Option<&[&str]>, bytes: &[u8], now: u64) -> DsResult<Seq> {
    match json {
        Some([]) => Ok(core.meta.last_seq),
        Some(values) => {
            let drafts: Vec<Draft> = values.iter().map(|&data| Draft { data, headers: None }).collect();
            let published = publish::store(core, &drafts, publish::Conditions::default(), now)?;
            publish::fan_out(core, &published, &drafts, now)?;
            Ok(published.last)
        }
        None if bytes.is_empty() => Ok(core.meta.last_seq),
        None => {
            let (seq, _) = sequence::assign(core.meta.last_seq, 1)?;
            let ts = now.max(core.meta.last_ts);
            core.store.append_blob(&mut core.meta, seq, ts, bytes)?;
            // The subject's retention limits hold for byte streams as for JSON ones.
            publish::enforce_retention(core, now)?;
            super::on_append(core, now)?;
            Ok(seq)
        }
    }
}

fn producer_headers(p: &ProducerHeaders, seq: u64) -> Vec<(&'static str, String)> {
    vec![(h::PRODUCER_EPOCH, p.epoch.to_string()), (h::PRODUCER_SEQ, seq.to_string())]
}

/// The state to commit for an accepted producer append, or the answer to send instead: a
/// duplicate is acknowledged (204), anything else refused.
fn accept(decision: ProducerDecision, p: &ProducerHeaders, tail: &str) -> Result<ProducerState, DsResult<Response>> {
    let refusal = match decision {
        ProducerDecision::Accept(state) => return Ok(state),
        ProducerDecision::Duplicate { last_seq } => {
            let mut headers = producer_headers(p, last_seq);
            headers.push((h::NEXT_OFFSET, tail.to_owned()));
            return Err(respond(204, &headers, None).map_err(Into::into));
        }
        ProducerDecision::StaleEpoch { current } => {
            DsError::new(403, ErrorCode::Conflict, format!("producer epoch {} is fenced by epoch {current}", p.epoch))
                .with(h::PRODUCER_EPOCH, current)
        }
        ProducerDecision::EpochMustStartAtZero => ProtocolError::bad_request("a new producer epoch must start at Producer-Seq 0").into(),
        ProducerDecision::Gap { expected, received } => {
            DsError::from(ProtocolError::conflict(format!("producer sequence gap: expected {expected}, got {received}")))
                .with(h::PRODUCER_EXPECTED_SEQ, expected)
                .with(h::PRODUCER_RECEIVED_SEQ, received)
        }
    };
    Err(Err(refusal))
}

fn closed_conflict(tail: String) -> DsError {
    DsError::from(ProtocolError::conflict("stream is closed")).with(h::CLOSED, "true").with(h::NEXT_OFFSET, tail)
}

impl ClosedBy {
    fn is(&self, p: &ProducerHeaders) -> bool {
        self.producer == p.id && self.epoch == p.epoch && self.seq == p.seq
    }
}

/// One append request, validated.
struct Append {
    producer: Option<ProducerHeaders>,
    close: bool,
    stream_seq: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn append_now(core: &mut Core, req: Append, now: u64) -> DsResult<Response> {
    let mut row = live(core)?;
    row.last_access = now;
    let tail = offset::encode(core.meta.last_seq);
    let decide = |core: &Core, p: &ProducerHeaders| -> worker::Result<ProducerDecision> {
        Ok(producer::decide(core.ds.store.producer(&p.id)?, p.epoch, p.seq))
    };
    if req.body.is_empty() {
        if !req.close {
            return Err(ProtocolError::bad_request("empty body: send data, or Stream-Closed: true to close").into());
        }
        // Close only: no content-type check, but producers are sequenced like appends.
        let mut headers = offset_headers(tail.clone(), false, true);
        if let Some(p) = &req.producer {
            if row.config.closed {
                return match &row.closed_by {
                    Some(by) if by.is(p) => {
                        headers.extend(producer_headers(p, p.seq));
                        Ok(respond(204, &headers, None)?)
                    }
                    _ => Err(closed_conflict(tail)),
                };
            }
            match accept(decide(core, p)?, p, &tail) {
                Ok(state) => core.ds.store.put_producer(&p.id, state, now)?,
                Err(answer) => return answer,
            }
            row.closed_by = Some(ClosedBy { producer: p.id.clone(), epoch: p.epoch, seq: p.seq });
            headers.extend(producer_headers(p, p.seq));
        }
        row.config.closed = true;
        core.ds.store.put_row(&row)?;
        core.ds.ring();
        return Ok(respond(204, &headers, None)?);
    }
    let Some(sent_type) = req.content_type.as_deref() else {
        return Err(ProtocolError::bad_request("Content-Type is required with a body").into());
    };
    if row.config.closed {
        return match (&row.closed_by, &req.producer) {
            (Some(by), Some(p)) if by.is(p) => {
                let mut headers = offset_headers(tail, false, true);
                headers.extend(producer_headers(p, p.seq));
                Ok(respond(204, &headers, None)?)
            }
            _ => Err(closed_conflict(tail)),
        };
    }
    if !content_type::same(sent_type, row.content_type()) {
        return Err(ProtocolError::conflict(format!("content type mismatch: the stream is {}", row.content_type())).into());
    }
    let accepted = match &req.producer {
        Some(p) => match accept(decide(core, p)?, p, &tail) {
            Ok(state) => Some((p, state)),
            Err(answer) => return answer,
        },
        None => None,
    };
    // The row is written back only when something in it changed.
    let mut dirty = row.config.lifetime.ttl_seconds.is_some() || req.close;
    if let Some(seq) = req.stream_seq {
        check_stream_seq(row.stream_seq.as_deref(), &seq)?;
        row.stream_seq = Some(seq);
        dirty = true;
    }
    let values = if row.is_json() { Some(json_values(core, &req.body, false)?) } else { None };
    let last = append_data(core, values.as_deref(), &req.body, now)?;
    let mut headers = offset_headers(offset::encode(last), false, req.close);
    if let Some((p, state)) = accepted {
        core.ds.store.put_producer(&p.id, state, now)?;
        headers.extend(producer_headers(p, p.seq));
        if req.close {
            row.closed_by = Some(ClosedBy { producer: p.id.clone(), epoch: p.epoch, seq: p.seq });
        }
    }
    row.config.closed = req.close;
    if dirty {
        core.ds.store.put_row(&row)?;
    }
    if req.close {
        core.ds.ring();
    }
    Ok(respond(if req.producer.is_some() { 200 } else { 204 }, &headers, None)?)
}

/// Creates the stream in this (empty) object: configuration, inherited messages of a fork,
/// then the initial body.
fn create_now(core: &mut Core, row: StreamRow, grant: Option<&ForkGrant>, body: &[u8], now: u64) -> DsResult<()> {
    let values = if row.is_json() { Some(json_values(core, body, true)?) } else { None };
    core.ds.store.put_row(&row)?;
    if let Some(grant) = grant {
        let ts = now.max(core.meta.last_ts);
        for (seq, data) in &grant.messages {
            if row.is_json() {
                core.store.append(&mut core.meta, *seq, *seq, ts, &[Draft { data, headers: None }], None)?;
            } else {
                let bytes = base64::decode(data).ok_or_else(ProtocolError::internal)?;
                core.store.append_blob(&mut core.meta, *seq, ts, &bytes)?;
            }
        }
        core.store.advance_to(&mut core.meta, grant.offset)?;
    }
    append_data(core, values.as_deref(), body, now)?;
    core.ds.ring();
    Ok(())
}

fn created_headers(row: &StreamRow, core: &Core) -> Vec<(&'static str, String)> {
    let mut headers = offset_headers(offset::encode(core.meta.last_seq), false, row.config.closed);
    headers.push(("content-type", row.content_type().to_owned()));
    headers
}

impl Subject {
    pub(super) async fn create_stream(&self, req: &mut Request, stream: &str) -> DsResult<Response> {
        let forked_from = header(req, h::FORKED_FROM)?.map(|v| name::from_path(v.trim())).transpose()?;
        let sub_offset = header(req, h::FORK_SUB_OFFSET)?;
        let fork_offset = header(req, h::FORK_OFFSET)?;
        if forked_from.is_none() && (sub_offset.is_some() || fork_offset.is_some()) {
            return Err(ProtocolError::bad_request("Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From").into());
        }
        if forked_from.as_deref() == Some(stream) {
            return Err(ProtocolError::bad_request("a stream cannot be forked from itself").into());
        }
        let fork_sub_offset = match sub_offset {
            Some(v) => parse_header_uint(h::FORK_SUB_OFFSET, v.trim())?,
            None => 0,
        };
        let fork_offset = fork_offset.map(|v| offset::parse(v.trim())).transpose()?;
        if fork_sub_offset > 0 && fork_offset.is_none() {
            return Err(ProtocolError::bad_request("Stream-Fork-Sub-Offset needs an explicit Stream-Fork-Offset").into());
        }
        let requested = StreamConfig {
            content_type: content_type::validate(header(req, "content-type")?.as_deref())?,
            lifetime: parse_lifetime(header(req, h::TTL)?.as_deref(), header(req, h::EXPIRES_AT)?.as_deref())?,
            closed: parse_closed(header(req, h::CLOSED)?.as_deref())?,
            forked_from,
            fork_offset,
            fork_sub_offset,
        };
        let limit = self.with_core(None, |core| core.config.max_frame_bytes)?;
        let body = read_limited(req, limit).await?;
        let location = crate::request_url::without_query(&req.inner().url()).to_owned();
        if let Some(existing) = self.existing_answer(&requested)? {
            return Ok(existing);
        }
        let grant = match &requested.forked_from {
            Some(source) => Some(self.borrow_from(source, &requested).await?),
            None => None,
        };
        let outcome = self.with_core(None, |core| -> DsResult<(Response, Option<u64>)> {
            // Someone may have created it while the fork copy was in flight.
            if !matches!(lookup(core)?, Lookup::Missing) {
                return Err(ProtocolError::conflict("stream was created concurrently").into());
            }
            let now = now_ms();
            let mut config = requested.clone();
            if let Some(grant) = &grant {
                let source_expiry = grant.expires_at.as_ref().and_then(|e| parse_rfc3339_ms(e).map(|ms| (e.clone(), ms)));
                let source = Lifetime { ttl_seconds: grant.ttl_seconds, expires_at: source_expiry };
                config.lifetime = fork_lifetime(&requested.lifetime, &source);
                config.content_type = Some(requested.content_type.clone().unwrap_or_else(|| grant.content_type.clone()));
                config.fork_offset = Some(grant.offset);
            }
            let row = StreamRow::new(config, now);
            create_now(core, row.clone(), grant.as_ref(), &body, now)?;
            let mut headers = created_headers(&row, core);
            headers.push(("location", location));
            Ok((respond(201, &headers, None)?, row.deadline()))
        })?;
        match outcome {
            Ok((response, deadline)) => {
                self.alarm.schedule(deadline).await?;
                Ok(response)
            }
            Err(error) => {
                // The source lent this fork a reference: give it back.
                if grant.is_some() {
                    self.release_source(requested.forked_from.clone()).await?;
                }
                Err(error)
            }
        }
    }

    /// The answer to a create of a stream that already exists: 200 for the same configuration,
    /// 409 for another or for a tombstone; None when there is no such stream yet.
    fn existing_answer(&self, requested: &StreamConfig) -> DsResult<Option<Response>> {
        self.with_core(None, |core| -> DsResult<Option<Response>> {
            match lookup(core)? {
                Lookup::Missing => Ok(None),
                Lookup::Gone => Err(ProtocolError::conflict(
                    "stream was deleted but forks of it still exist; the name cannot be reused until they are gone",
                )
                .into()),
                Lookup::Live(row) if row.config.accepts_repeat(requested) => {
                    Ok(Some(respond(200, &created_headers(&row, core), None)?))
                }
                Lookup::Live(_) => Err(ProtocolError::conflict("stream already exists with a different configuration").into()),
            }
        })?
    }

    /// Asks the source for a fork's inherited data (and a reference that keeps it alive).
    async fn borrow_from(&self, source: &str, requested: &StreamConfig) -> DsResult<ForkGrant> {
        let request = ForkRequest {
            offset: requested.fork_offset,
            sub_offset: requested.fork_sub_offset,
            content_type: requested.content_type.clone(),
        };
        let body = serde_json::to_string(&request).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let mut response = self.call_stream(source, "fork", Some(body)).await?;
        let text = response.text().await?;
        if response.status_code() != 200 {
            // Relay the source's refusal (404 no source, 409 deleted or other type, 400 offset).
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(|m| format!("source stream: {m}")))
                .unwrap_or_else(|| "source stream refused the fork".into());
            let code = match response.status_code() {
                404 => ErrorCode::NotFound,
                409 => ErrorCode::Conflict,
                413 => ErrorCode::TooLarge,
                400 => ErrorCode::BadRequest,
                _ => ErrorCode::Internal,
            };
            return Err(DsError::new(response.status_code(), code, message));
        }
        serde_json::from_str(&text).map_err(|e| worker::Error::RustError(format!("fork grant: {e}")).into())
    }

    /// The source side of a fork: validates the fork point, takes a reference and copies out
    /// what the fork inherits.
    pub(super) async fn lend_to_fork(&self, req: &mut Request) -> DsResult<Response> {
        let request: ForkRequest = serde_json::from_str(&req.text().await?)
            .map_err(|e| ProtocolError::bad_request(format!("fork request: {e}")))?;
        self.with_core(None, |core| -> DsResult<Response> {
            let mut row = match lookup(core)? {
                Lookup::Missing => return Err(ProtocolError::not_found("no such stream").into()),
                Lookup::Gone => return Err(ProtocolError::conflict("it was deleted; it cannot be forked").into()),
                Lookup::Live(row) => row,
            };
            if let Some(wanted) = &request.content_type {
                if !content_type::same(wanted, row.content_type()) {
                    return Err(ProtocolError::conflict(format!("content type is {}, not {wanted}", row.content_type())).into());
                }
            }
            let last = core.meta.last_seq;
            let at = request.offset.unwrap_or(last);
            if at > last {
                return Err(ProtocolError::bad_request("fork offset is beyond the end of the stream").into());
            }
            let limit = core.ds.config.max_fork_bytes;
            if core.ds.store.bytes_upto(at)? > limit {
                return Err(ProtocolError::too_large(format!("a fork may copy at most {limit} bytes")).into());
            }
            let mut messages = core.ds.store.read(0, at, usize::MAX, usize::MAX)?;
            let sub = request.sub_offset as usize;
            if sub > 0 {
                let next = core.ds.store.read(at, last, usize::MAX, if row.is_json() { sub } else { 1 })?;
                let overshoot = || ProtocolError::bad_request("fork sub-offset is beyond the data after the fork offset");
                if row.is_json() {
                    if next.len() < sub {
                        return Err(overshoot().into());
                    }
                    messages.extend(next);
                } else {
                    match next.into_iter().next() {
                        Some((seq, data)) if data.len() >= sub => messages.push((seq, data[..sub].to_vec())),
                        _ => return Err(overshoot().into()),
                    }
                }
            }
            let json = row.is_json();
            let grant = ForkGrant {
                content_type: row.content_type().to_owned(),
                ttl_seconds: row.config.lifetime.ttl_seconds,
                expires_at: row.config.lifetime.expires_at.as_ref().map(|e| e.0.clone()),
                offset: at,
                messages: messages
                    .into_iter()
                    .map(|(seq, data)| {
                        let text = if json { String::from_utf8_lossy(&data).into_owned() } else { base64::encode(&data) };
                        (seq, text)
                    })
                    .collect(),
            };
            row.refs += 1;
            core.ds.store.put_row(&row)?;
            let body = serde_json::to_vec(&grant).map_err(|e| worker::Error::RustError(e.to_string()))?;
            Ok(respond(200, &[("content-type", "application/json".into())], Some(body))?)
        })?
    }

    /// A fork of this stream is gone; a tombstone with no forks left goes for good.
    pub(super) async fn release_fork(&self) -> DsResult<Response> {
        let source = self.with_core(None, |core| -> worker::Result<Option<String>> {
            let Some(mut row) = core.ds.store.row()? else { return Ok(None) };
            row.refs = row.refs.saturating_sub(1);
            if row.refs == 0 && row.gone {
                core.ds.store.delete_row()?;
                return Ok(row.config.forked_from);
            }
            core.ds.store.put_row(&row)?;
            Ok(None)
        })??;
        self.release_source(source).await?;
        Ok(respond(204, &[], None)?)
    }

    pub(super) async fn append(&self, req: &mut Request) -> DsResult<Response> {
        let producer = producer::parse_headers(
            header(req, h::PRODUCER_ID)?.as_deref(),
            header(req, h::PRODUCER_EPOCH)?.as_deref(),
            header(req, h::PRODUCER_SEQ)?.as_deref(),
        )?;
        let close = parse_closed(header(req, h::CLOSED)?.as_deref())?;
        let stream_seq = header(req, h::SEQ)?;
        let content_type = header(req, "content-type")?.filter(|t| !t.trim().is_empty());
        let token = grant_of(req)?.token;
        let limit = self.with_core(None, |core| core.config.max_frame_bytes)?;
        let body = read_limited(req, limit).await?;
        let append = Append { producer, close, stream_seq, content_type, body };
        let (response, wakeup) = self.with_core(None, |core| -> DsResult<_> {
            let now = now_ms();
            // One append is one publish for the rate limits, whatever number of values it holds.
            core.admit_publish(None, token.as_ref(), 1, append.body.len(), now)?;
            let response = append_now(core, append, now)?;
            Ok((response, self.wanted_alarm(core)?))
        })??;
        self.alarm.schedule(wakeup).await?;
        Ok(response)
    }

    pub(super) async fn delete_stream(&self) -> DsResult<Response> {
        let source = self.with_core(None, |core| -> DsResult<Option<String>> {
            let row = live(core)?;
            Ok(remove(core, row)?)
        })??;
        self.release_source(source).await?;
        Ok(respond(204, &[], None)?)
    }
}
