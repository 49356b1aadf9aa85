//! Reads: HEAD, catch-up GET (pages), long-poll GET, and the entry of SSE (`sse.rs`).

use super::respond::{offset_headers, respond, DsResult};
use super::store::StreamRow;
use super::{live, lookup, touch, Lookup};
use crate::subject::{now_ms, Core, Subject};
use durable_stream_protocol::durable_streams::headers as h;
use durable_stream_protocol::durable_streams::offset::{self, ReadFrom};
use durable_stream_protocol::durable_streams::cursor::next_cursor;
use durable_stream_protocol::http_params::repeated_parameter;
use durable_stream_protocol::{ProtocolError, Seq};
use futures_channel::mpsc::UnboundedReceiver;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use std::time::Duration;
use worker::{Delay, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Live {
    No,
    LongPoll,
    Sse,
}

/// A read request, validated.
pub(super) struct ReadRequest {
    from: ReadFrom,
    live: Live,
    cursor: Option<String>,
    if_none_match: Option<String>,
    /// The `offset` as sent, for the ETag.
    start_label: String,
}

fn parse_read(req: &Request) -> DsResult<ReadRequest> {
    let pairs = crate::http::query(req);
    let values = |name: &'static str| pairs.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str());
    // Like the native API: a parameter given twice is refused, not first-wins.
    let single = |name: &'static str| -> Result<Option<&str>, ProtocolError> {
        let mut given = values(name);
        let first = given.next();
        match given.next() {
            Some(_) => Err(repeated_parameter(name)),
            None => Ok(first),
        }
    };
    let offsets: Vec<&str> = values("offset").collect();
    let from = offset::parse_read_from(offsets.iter().copied())?;
    let live = match single("live")? {
        None => Live::No,
        Some("long-poll") => Live::LongPoll,
        Some("sse") => Live::Sse,
        Some(other) => return Err(ProtocolError::bad_request(format!("`live` must be long-poll or sse, got {other:?}")).into()),
    };
    if live != Live::No && offsets.is_empty() {
        return Err(ProtocolError::bad_request("live reads need an `offset` (-1, now, or one the server returned)").into());
    }
    Ok(ReadRequest {
        from,
        live,
        cursor: single("cursor")?.map(str::to_owned),
        if_none_match: req.headers().get("if-none-match")?,
        start_label: offsets.first().map_or("-1", |o| o).to_owned(),
    })
}

/// Where a read starts, as "after this sequence", within what is retained.
pub(super) fn resolve(core: &Core, from: ReadFrom) -> DsResult<Seq> {
    let (first, last) = (core.meta.first_seq, core.meta.last_seq);
    let floor = first.saturating_sub(1).min(last);
    match from {
        ReadFrom::Start => Ok(floor),
        ReadFrom::Now => Ok(last),
        ReadFrom::After(seq) if seq > last => {
            Err(ProtocolError::bad_request("offset is beyond the end of the stream (was it deleted and created again?)").into())
        }
        ReadFrom::After(seq) => Ok(seq.max(floor)),
    }
}

/// The `Stream-Cursor` to answer a reader that sent `client` (shared with SSE control events).
pub(super) fn cursor(client: Option<&str>) -> String {
    next_cursor(now_ms(), client, js_sys::Math::random())
}

fn etag(core: &Core, start: &str, end: &str, closed: bool) -> String {
    format!("\"{}:{start}:{end}{}\"", core.meta.epoch, if closed { ":c" } else { "" })
}

/// A page of data after `after`, as the response body for the stream's content type.
pub(super) fn body_of(row: &StreamRow, page: &[(Seq, Vec<u8>)]) -> Vec<u8> {
    if !row.is_json() {
        return page.iter().flat_map(|(_, data)| data.iter().copied()).collect();
    }
    let mut body = Vec::with_capacity(page.iter().map(|(_, d)| d.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, (_, data)) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(data);
    }
    body.push(b']');
    body
}

/// What one attempt at a read found.
enum Attempt {
    Answer(Response),
    /// Nothing yet: wait for the doorbell (or the long-poll's end).
    Wait(UnboundedReceiver<()>),
}

fn attempt(core: &mut Core, req: &ReadRequest, after: &mut Option<Seq>, timed_out: bool) -> DsResult<Attempt> {
    let now = now_ms();
    let mut row = live(core)?;
    touch(core, &mut row, now)?;
    let start = match *after {
        Some(seq) => seq,
        None => *after.insert(resolve(core, req.from)?),
    };
    let last = core.meta.last_seq;
    let closed = row.config.closed;
    let content_type = ("content-type", row.content_type().to_owned());
    if req.from == ReadFrom::Now && req.live == Live::No {
        let mut headers = offset_headers(offset::encode(last), true, closed);
        headers.extend([content_type, ("cache-control", "no-store".into())]);
        let body = if row.is_json() { b"[]".to_vec() } else { Vec::new() };
        return Ok(Attempt::Answer(respond(200, &headers, Some(body))?));
    }
    let page = core.ds.store.read(start, last, core.config.max_frame_bytes, core.config.replay_page_messages)?;
    if page.is_empty() && req.live == Live::LongPoll {
        if !closed && !timed_out {
            return Ok(Attempt::Wait(core.ds.doorbell()?));
        }
        let mut headers = offset_headers(offset::encode(start), true, closed);
        headers.push((h::CURSOR, cursor(req.cursor.as_deref())));
        return Ok(Attempt::Answer(respond(204, &headers, None)?));
    }
    let end = page.last().map_or(start, |(seq, _)| *seq);
    let up_to_date = end == last;
    let closed_at_tail = closed && up_to_date;
    let next = offset::encode(end);
    let tag = etag(core, &req.start_label, &next, closed_at_tail);
    if req.if_none_match.as_deref() == Some(tag.as_str()) {
        return Ok(Attempt::Answer(respond(304, &[("etag", tag)], None)?));
    }
    let mut headers = offset_headers(next, up_to_date, closed_at_tail);
    // Pages short of the tail never change; the tail and live answers must not be cached.
    let cache = if up_to_date || req.live != Live::No { "no-store" } else { "private, max-age=60" };
    headers.extend([content_type, ("etag", tag), ("cache-control", cache.into())]);
    if req.live == Live::LongPoll {
        headers.push((h::CURSOR, cursor(req.cursor.as_deref())));
    }
    Ok(Attempt::Answer(respond(200, &headers, Some(body_of(&row, &page)))?))
}

impl Subject {
    pub(super) fn head(&self) -> DsResult<Response> {
        self.with_core(None, |core| -> DsResult<Response> {
            let row = match lookup(core)? {
                Lookup::Live(row) => row,
                Lookup::Gone => return Ok(respond(410, &[], None)?),
                Lookup::Missing => return Ok(respond(404, &[], None)?),
            };
            let next = offset::encode(core.meta.last_seq);
            let tag = etag(core, "-1", &next, row.config.closed);
            let mut headers = offset_headers(next, false, row.config.closed);
            headers.extend([
                ("content-type", row.content_type().to_owned()),
                ("cache-control", "no-store".into()),
                ("etag", tag),
            ]);
            if let Some(ttl) = row.config.lifetime.ttl_seconds {
                headers.push((h::TTL, ttl.to_string()));
            }
            if let Some((expires_at, _)) = &row.config.lifetime.expires_at {
                headers.push((h::EXPIRES_AT, expires_at.clone()));
            }
            Ok(respond(200, &headers, None)?)
        })?
    }

    pub(super) async fn read(&self, req: &Request) -> DsResult<Response> {
        let request = parse_read(req)?;
        if request.live == Live::Sse {
            return self.sse(request.from, request.cursor).await;
        }
        let deadline = now_ms() + self.with_core(None, |core| core.ds.config.long_poll_ms)?;
        let mut after = None;
        let mut timed_out = false;
        loop {
            match self.with_core(None, |core| attempt(core, &request, &mut after, timed_out))?? {
                Attempt::Answer(response) => return Ok(response),
                Attempt::Wait(mut doorbell) => {
                    let remaining = deadline.saturating_sub(now_ms());
                    let timeout = Delay::from(Duration::from_millis(remaining));
                    timed_out = matches!(select(doorbell.next(), timeout).await, Either::Right(_)) || remaining == 0;
                }
            }
        }
    }
}
