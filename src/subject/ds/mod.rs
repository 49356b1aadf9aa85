//! The Durable Streams protocol on the subject's own Durable Object and storage.
//!
//! A stream and the subject of the same name are one object: JSON streams keep one message per
//! JSON value in the subject's `messages` table (so WebSocket subscribers see protocol appends
//! and protocol readers see WebSocket publishes), byte and text streams keep one BLOB per
//! append in the same table. Offsets are message sequences (`protocol::durable_streams::offset`).
//! The stream's protocol configuration lives in `ds_stream` (see `store.rs`).

mod read;
mod respond;
mod route;
mod sse;
mod store;
mod write;

pub use route::route;

use super::{now_ms, Core, Subject};
use crate::http::Failure;
use durable_stream_protocol::durable_streams::config::DsConfig;
use durable_stream_protocol::durable_streams::name;
use durable_stream_protocol::{ErrorCode, ProtocolError};
use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use respond::{or_error, DsError, DsResult};
use store::{DsStore, StreamRow};
use worker::{Method, Request, RequestInit, Response, SqlStorage};

/// Requests between stream objects (fork copies, reference counts). The Worker never forwards a
/// client request here: it only routes `/ds/v1/stream/…` and `/v1/stream/…`.
const INTERNAL_PREFIX: &str = "/ds-internal/";

pub fn is_ds_path(path: &str) -> bool {
    path.starts_with(route::STREAM_PREFIX) || path.starts_with(INTERNAL_PREFIX)
}

/// The protocol's part of the object's in-memory state.
pub struct DsCore {
    pub store: DsStore,
    pub config: DsConfig,
    /// Long-polls and SSE responses waiting for the stream to change (rung on every append,
    /// close and delete).
    doorbells: Vec<UnboundedSender<()>>,
}

impl DsCore {
    pub fn load(sql: SqlStorage, lookup: impl Fn(&str) -> Option<String>) -> worker::Result<DsCore> {
        let config = DsConfig::from_lookup(lookup).map_err(|e| worker::Error::RustError(e.to_string()))?;
        Ok(DsCore { store: DsStore::new(sql), config, doorbells: Vec::new() })
    }

    fn ring(&mut self) {
        self.doorbells.retain(|bell| bell.unbounded_send(()).is_ok());
    }

    /// A doorbell for one more live reader, within the per-stream limit.
    fn doorbell(&mut self) -> DsResult<UnboundedReceiver<()>> {
        self.doorbells.retain(|bell| !bell.is_closed());
        if self.doorbells.len() >= self.config.max_live_readers {
            return Err(DsError::new(
                429,
                ErrorCode::RateLimited,
                format!("stream has reached its limit of {} live readers", self.config.max_live_readers),
            )
            .with("retry-after", 1));
        }
        let (bell, rings) = unbounded();
        self.doorbells.push(bell);
        Ok(rings)
    }
}

/// The stream a subject is, as the protocol sees it.
// Returned and matched at once, never stored: boxing the row would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Lookup {
    Missing,
    Gone,
    Live(StreamRow),
}

fn lookup(core: &Core) -> worker::Result<Lookup> {
    Ok(match core.ds.store.row()? {
        Some(row) if row.gone => Lookup::Gone,
        Some(row) => Lookup::Live(row),
        // A subject that has had messages is a JSON stream even if the protocol never created it.
        None if core.meta.last_seq > 0 => Lookup::Live(StreamRow::implicit()),
        None => Lookup::Missing,
    })
}

fn live(core: &Core) -> DsResult<StreamRow> {
    match lookup(core)? {
        Lookup::Live(row) => Ok(row),
        Lookup::Gone => Err(DsError::gone()),
        Lookup::Missing => Err(DsError::missing()),
    }
}

/// Renews a `Stream-TTL` (reads and writes do; HEAD does not).
fn touch(core: &Core, row: &mut StreamRow, now: u64) -> worker::Result<()> {
    if row.config.lifetime.ttl_seconds.is_some() {
        row.last_access = now;
        core.ds.store.put_row(row)?;
    }
    Ok(())
}

/// Whether WebSocket frames and the native HTTP API may use this subject: not when it is a
/// byte/text stream, deleted-but-forked or expired, and no publishes once it is closed.
pub fn admit(core: &Core, publish: bool, now: u64) -> Result<(), Failure> {
    let Some(row) = core.ds.store.row()? else { return Ok(()) };
    let refusal = if row.gone {
        "stream was deleted; it is kept only while forks of it exist".to_owned()
    } else if !row.is_json() {
        format!("stream is not JSON (content type {}); use the Durable Streams protocol under /ds", row.content_type())
    } else if row.deadline().is_some_and(|deadline| deadline <= now) {
        "stream has expired".to_owned()
    } else if publish && row.config.closed {
        "stream is closed".to_owned()
    } else {
        return Ok(());
    };
    Err(ProtocolError::conflict(refusal).into())
}

/// Called by every append (protocol, WebSocket or native HTTP): wakes live readers and renews
/// a `Stream-TTL`.
pub fn on_append(core: &mut Core, now: u64) -> worker::Result<()> {
    core.ds.ring();
    if let Some(mut row) = core.ds.store.row()? {
        touch(core, &mut row, now)?;
    }
    Ok(())
}

/// When the stream expires, for the object's alarm.
pub fn expiry_deadline(core: &Core) -> worker::Result<Option<u64>> {
    Ok(core.ds.store.row()?.filter(|row| !row.gone).and_then(|row| row.deadline()))
}

/// Deletes the stream and its data. With forks still referring to it, it stays as a tombstone
/// (410) until the last one goes. Returns the source whose reference this stream held, which
/// the caller must release.
fn remove(core: &mut Core, row: StreamRow) -> worker::Result<Option<String>> {
    core.start_over("stream deleted")?;
    core.ds.ring();
    if row.refs > 0 {
        core.ds.store.delete_producers()?;
        let tombstone = StreamRow { gone: true, closed_by: None, stream_seq: None, ..row };
        core.ds.store.put_row(&tombstone)?;
        return Ok(None);
    }
    core.ds.store.delete_row()?;
    Ok(row.config.forked_from)
}

/// The protocol's side of a native wipe (`DELETE /v1/stream/{subject}`), after the subject's
/// data is gone: whatever the protocol had made of the subject (closed, a byte stream, expired,
/// deleted while forked), it starts over as a fresh, open subject. Only the number of forks
/// taken from it survives, so that their later deletions are still counted. Returns the source
/// this stream was forked from, whose reference the caller must release.
pub fn reset_for_wipe(core: &mut Core) -> worker::Result<Option<String>> {
    core.ds.ring();
    let Some(row) = core.ds.store.row()? else { return Ok(None) };
    if row.refs > 0 {
        core.ds.store.delete_producers()?;
        core.ds.store.put_row(&StreamRow { refs: row.refs, ..StreamRow::implicit() })?;
    } else {
        core.ds.store.delete_row()?;
    }
    Ok(row.config.forked_from)
}

impl Subject {
    pub(super) async fn handle_ds(&self, req: Request) -> Response {
        let outcome = self.dispatch_ds(req).await;
        if let Err(refused) = &outcome {
            self.count_error(refused.error.code);
        }
        or_error(outcome)
    }

    async fn dispatch_ds(&self, mut req: Request) -> DsResult<Response> {
        let path = req.path();
        if let Some(rest) = path.strip_prefix(INTERNAL_PREFIX) {
            let (op, encoded) = rest.split_once('/').unwrap_or((rest, ""));
            let stream = name::from_path(encoded)?;
            self.with_core(Some(&stream), |core| core.telemetry.mark_changed())?;
            self.ds_expire(now_ms()).await?;
            return match op {
                "fork" => self.lend_to_fork(&mut req).await,
                "unref" => self.release_fork().await,
                _ => Err(ProtocolError::not_found(format!("no internal operation {op:?}")).into()),
            };
        }
        let stream = name::from_path(&path)?;
        self.with_core(Some(&stream), |core| core.telemetry.mark_changed())?;
        self.ds_expire(now_ms()).await?;
        match req.method() {
            Method::Put => self.create_stream(&mut req, &stream).await,
            Method::Post => self.append(&mut req).await,
            Method::Delete => self.delete_stream().await,
            Method::Head => self.head(),
            Method::Get => self.read(&req).await,
            _ => Err(DsError::method_not_allowed()),
        }
    }

    /// Deletes the stream if its lifetime has run out (on access and from the alarm).
    pub(super) async fn ds_expire(&self, now: u64) -> worker::Result<()> {
        let source = self.with_core(None, |core| -> worker::Result<Option<String>> {
            match core.ds.store.row()? {
                Some(row) if !row.gone && row.deadline().is_some_and(|deadline| deadline <= now) => remove(core, row),
                _ => Ok(None),
            }
        })??;
        self.release_source(source).await
    }

    /// Tells a fork's source that the fork is gone (which may complete the source's deletion,
    /// and so on up the chain).
    pub(super) async fn release_source(&self, source: Option<String>) -> worker::Result<()> {
        if let Some(source) = source {
            let response = self.call_stream(&source, "unref", None).await?;
            if response.status_code() >= 500 {
                worker::console_error!("releasing fork source {source:?} failed: {}", response.status_code());
            }
        }
        Ok(())
    }

    /// An internal request to another stream's object.
    async fn call_stream(&self, stream: &str, op: &str, body: Option<String>) -> worker::Result<Response> {
        let url = format!("https://ds.internal{INTERNAL_PREFIX}{op}/{}", name::to_path(stream));
        let mut init = RequestInit::new();
        init.with_method(Method::Post);
        if let Some(body) = body {
            init.with_body(Some(body.into()));
        }
        let request = Request::new_with_init(&url, &init)?;
        let stub = self.env.durable_object(crate::SUBJECT_BINDING)?.id_from_name(stream)?.get_stub()?;
        stub.fetch_with_request(request).await
    }
}
