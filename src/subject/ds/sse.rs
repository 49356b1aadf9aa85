//! Live reads over server-sent events. The response body is a stream that reads the object's
//! storage itself (it outlives the request's event) and sleeps on a doorbell that every append,
//! close and delete rings; a keep-alive control event goes out every heartbeat, and the server
//! ends the response after `sse_max_ms` (clients reconnect from their last offset), when the
//! stream is closed and fully read, or when it is deleted.

use super::read::{body_of, cursor, resolve};
use super::respond::{decorate, DsResult};
use super::store::{DsStore, StreamRow};
use super::live;
use crate::subject::{now_ms, Subject};
use durable_stream_protocol::durable_streams::headers as h;
use durable_stream_protocol::durable_streams::offset::{self, ReadFrom};
use durable_stream_protocol::durable_streams::sse::{control_event, event, Control};
use durable_stream_protocol::durable_streams::{base64, content_type};
use durable_stream_protocol::Seq;
use futures_channel::mpsc::UnboundedReceiver;
use futures_util::future::{select, Either};
use futures_util::{stream, StreamExt};
use std::time::Duration;
use worker::{console_error, Delay, Headers, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Text,
    Base64,
}

/// One SSE response's reader.
struct Reader {
    store: DsStore,
    /// The subject's epoch when the response started: a different one means it was deleted.
    epoch: String,
    after: Seq,
    encoding: Encoding,
    row: StreamRow,
    cursor: Option<String>,
    doorbell: UnboundedReceiver<()>,
    heartbeat_ms: u64,
    ends_at: u64,
    page_bytes: usize,
    page_messages: usize,
    sent_any: bool,
    done: bool,
}

/// What the reader has to say now.
enum Step {
    Send(String),
    /// The last words, then the response ends.
    End(String),
    Idle,
}

impl Reader {
    fn cursor(&self) -> String {
        cursor(self.cursor.as_deref())
    }

    fn step(&mut self) -> worker::Result<Step> {
        // Rings that arrived while busy are covered by this read.
        while self.doorbell.try_recv().is_ok() {}
        let position = self.store.position()?;
        let row = self.store.row()?;
        let exists = match &row {
            Some(row) => !row.gone,
            None => position.last_seq > 0,
        };
        if position.epoch != self.epoch || !exists {
            return Ok(Step::End(String::new()));
        }
        let closed = row.is_some_and(|row| row.config.closed);
        let page = self.store.read(self.after, position.last_seq, self.page_bytes, self.page_messages)?;
        let mut out = String::new();
        if let Some((last, _)) = page.last() {
            self.after = *last;
            let body = body_of(&self.row, &page);
            let payload = match self.encoding {
                Encoding::Base64 => base64::encode(&body),
                Encoding::Json | Encoding::Text => String::from_utf8_lossy(&body).into_owned(),
            };
            out.push_str(&event("data", &payload));
        }
        let next = offset::encode(self.after);
        let at_tail = self.after >= position.last_seq;
        if closed && at_tail {
            out.push_str(&control_event(&next, Control::Closed));
            return Ok(Step::End(out));
        }
        if !page.is_empty() || !self.sent_any {
            let cursor = self.cursor();
            out.push_str(&control_event(&next, Control::Open { cursor: &cursor, up_to_date: at_tail }));
            self.sent_any = true;
            return Ok(Step::Send(out));
        }
        Ok(Step::Idle)
    }

    /// The next piece of the response body; None ends it.
    async fn next_chunk(&mut self) -> Option<String> {
        while !self.done {
            match self.step() {
                Ok(Step::Send(chunk)) => return Some(chunk),
                Ok(Step::End(chunk)) => {
                    self.done = true;
                    return (!chunk.is_empty()).then_some(chunk);
                }
                Ok(Step::Idle) => {}
                Err(error) => {
                    console_error!("SSE read failed: {error}");
                    self.done = true;
                    return None;
                }
            }
            let now = now_ms();
            if now >= self.ends_at {
                self.done = true;
                return None;
            }
            let wait = Delay::from(Duration::from_millis(self.heartbeat_ms.min(self.ends_at - now)));
            match select(self.doorbell.next(), wait).await {
                Either::Left((Some(()), _)) => {}
                // The object dropped its doorbells (it is shutting down): end cleanly.
                Either::Left((None, _)) => self.done = true,
                Either::Right(_) if now_ms() < self.ends_at => {
                    let cursor = self.cursor();
                    let next = offset::encode(self.after);
                    return Some(control_event(&next, Control::Open { cursor: &cursor, up_to_date: true }));
                }
                Either::Right(_) => self.done = true,
            }
        }
        None
    }
}

impl Subject {
    pub(super) async fn sse(&self, from: ReadFrom, cursor: Option<String>) -> DsResult<Response> {
        let reader = self.with_core(None, |core| -> DsResult<Reader> {
            let now = now_ms();
            let mut row = live(core)?;
            super::touch(core, &mut row, now)?;
            let encoding = if row.is_json() {
                Encoding::Json
            } else if content_type::is_text(row.content_type()) {
                Encoding::Text
            } else {
                Encoding::Base64
            };
            Ok(Reader {
                store: core.ds.store.clone(),
                epoch: core.meta.epoch.clone(),
                after: resolve(core, from)?,
                encoding,
                row,
                cursor,
                doorbell: core.ds.doorbell()?,
                heartbeat_ms: core.ds.config.sse_heartbeat_ms,
                ends_at: now + core.ds.config.sse_max_ms,
                page_bytes: core.config.replay_frame_bytes,
                page_messages: core.config.replay_page_messages,
                sent_any: false,
                done: false,
            })
        })??;
        let headers = Headers::new();
        decorate(&headers)?;
        headers.set("content-type", "text/event-stream")?;
        headers.set("cache-control", "no-cache")?;
        if reader.encoding == Encoding::Base64 {
            headers.set(h::SSE_DATA_ENCODING, "base64")?;
        }
        let body = stream::unfold(reader, |mut reader| async move {
            let chunk = reader.next_chunk().await?;
            Some((Ok::<Vec<u8>, worker::Error>(chunk.into_bytes()), reader))
        });
        Ok(Response::from_stream(body)?.with_headers(headers))
    }
}
