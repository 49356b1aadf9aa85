//! The stream configuration (`ds_stream`, one row) and producer states (`ds_producers`) of a
//! Durable Streams stream, beside the subject's own tables (schema in `subject/store.rs`).
//! No row means "no protocol configuration": the subject is an implicit `application/json`
//! stream once it has had a message, and does not exist as a stream before.

use durable_stream_protocol::durable_streams::content_type;
use durable_stream_protocol::durable_streams::create::StreamConfig;
use durable_stream_protocol::durable_streams::expiry::{self, Lifetime};
use durable_stream_protocol::durable_streams::producer::ProducerState;
use durable_stream_protocol::Seq;
use crate::subject::store::int;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Result, SqlStorage, SqlStorageValue};

/// The producer tuple that closed a stream (a retry of it is a duplicate, not a conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedBy {
    pub producer: String,
    pub epoch: u64,
    pub seq: u64,
}

/// A stream's protocol state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRow {
    /// `config.closed` is the current closed state.
    pub config: StreamConfig,
    pub closed_by: Option<ClosedBy>,
    /// Last read or write (ms), for `Stream-TTL`.
    pub last_access: u64,
    /// The last `Stream-Seq` accepted.
    pub stream_seq: Option<String>,
    /// Forks that were taken from this stream and still exist.
    pub refs: u64,
    /// Deleted (or expired) while forks still referred to it: answers 410 until they are gone.
    pub gone: bool,
}

impl StreamRow {
    /// What a subject with messages and no protocol configuration is.
    pub fn implicit() -> StreamRow {
        StreamRow::new(StreamConfig { content_type: Some(content_type::JSON.into()), ..Default::default() }, 0)
    }

    pub fn new(config: StreamConfig, now: u64) -> StreamRow {
        StreamRow { config, closed_by: None, last_access: now, stream_seq: None, refs: 0, gone: false }
    }

    pub fn content_type(&self) -> &str {
        self.config.content_type_or_default()
    }

    pub fn is_json(&self) -> bool {
        content_type::is_json(self.content_type())
    }

    /// When the stream expires (ms), if it has a lifetime.
    pub fn deadline(&self) -> Option<u64> {
        let lifetime = &self.config.lifetime;
        expiry::deadline(lifetime.ttl_seconds, self.last_access, lifetime.expires_at.as_ref().map(|e| e.1))
    }
}

/// Where the protocol tables live (a handle on the object's SQLite; cheap to clone, so live
/// SSE responses carry their own).
#[derive(Clone)]
pub struct DsStore {
    sql: SqlStorage,
    /// The `ds_stream` row as last read or written (outer None: not read yet). Every append
    /// consults it several times; all writes to the table go through this store, and clones
    /// share the cache, so it never goes stale.
    row_cache: Rc<RefCell<Option<Option<StreamRow>>>>,
}

fn opt_int(value: Option<u64>) -> SqlStorageValue {
    value.map_or(SqlStorageValue::Null, int)
}

fn opt_text(value: Option<&str>) -> SqlStorageValue {
    value.map_or(SqlStorageValue::Null, Into::into)
}

fn as_u64(value: &SqlStorageValue) -> Option<u64> {
    match value {
        SqlStorageValue::Integer(i) => Some((*i).max(0) as u64),
        SqlStorageValue::Float(f) => Some(f.max(0.0) as u64),
        _ => None,
    }
}

fn as_text(value: &SqlStorageValue) -> Option<String> {
    match value {
        SqlStorageValue::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Message data as bytes: JSON messages are TEXT, byte-stream chunks BLOBs.
fn as_bytes(value: SqlStorageValue) -> Vec<u8> {
    match value {
        SqlStorageValue::String(s) => s.into_bytes(),
        SqlStorageValue::Blob(b) => b,
        _ => Vec::new(),
    }
}

/// Counters of the subject, read straight from storage (live SSE responses run outside the
/// object's events and cannot borrow its in-memory state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub first_seq: Seq,
    pub last_seq: Seq,
}

impl DsStore {
    pub fn new(sql: SqlStorage) -> DsStore {
        DsStore { sql, row_cache: Rc::default() }
    }

    fn first_row(&self, query: &str, bindings: Option<Vec<SqlStorageValue>>) -> Result<Option<Vec<SqlStorageValue>>> {
        self.sql.exec(query, bindings)?.raw().next().transpose()
    }

    pub fn row(&self) -> Result<Option<StreamRow>> {
        if let Some(row) = self.row_cache.borrow().as_ref() {
            return Ok(row.clone());
        }
        let row = self.read_row()?;
        *self.row_cache.borrow_mut() = Some(row.clone());
        Ok(row)
    }

    fn read_row(&self) -> Result<Option<StreamRow>> {
        let Some(r) = self.first_row(
            "SELECT content_type, ttl, expires_at, expires_ms, closed, closed_by, last_access, stream_seq, refs, gone,
                    forked_from, fork_offset, fork_sub FROM ds_stream WHERE id = 1",
            None,
        )?
        else {
            return Ok(None);
        };
        let expires_at = as_text(&r[2]).zip(as_u64(&r[3]));
        let closed_by = as_text(&r[5]).and_then(|text| {
            let (producer, epoch, seq): (String, u64, u64) = serde_json::from_str(&text).ok()?;
            Some(ClosedBy { producer, epoch, seq })
        });
        Ok(Some(StreamRow {
            config: StreamConfig {
                content_type: as_text(&r[0]),
                lifetime: Lifetime { ttl_seconds: as_u64(&r[1]), expires_at },
                closed: as_u64(&r[4]) == Some(1),
                forked_from: as_text(&r[10]),
                fork_offset: as_u64(&r[11]),
                fork_sub_offset: as_u64(&r[12]).unwrap_or(0),
            },
            closed_by,
            last_access: as_u64(&r[6]).unwrap_or(0),
            stream_seq: as_text(&r[7]),
            refs: as_u64(&r[8]).unwrap_or(0),
            gone: as_u64(&r[9]) == Some(1),
        }))
    }

    pub fn put_row(&self, row: &StreamRow) -> Result<()> {
        let c = &row.config;
        let closed_by = row
            .closed_by
            .as_ref()
            .map(|b| serde_json::json!([b.producer, b.epoch, b.seq]).to_string());
        self.sql.exec(
            "INSERT OR REPLACE INTO ds_stream (id, content_type, ttl, expires_at, expires_ms, closed, closed_by, last_access,
                 stream_seq, refs, gone, forked_from, fork_offset, fork_sub)
             VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                row.content_type().into(),
                opt_int(c.lifetime.ttl_seconds),
                opt_text(c.lifetime.expires_at.as_ref().map(|e| e.0.as_str())),
                opt_int(c.lifetime.expires_at.as_ref().map(|e| e.1)),
                int(u64::from(c.closed)),
                opt_text(closed_by.as_deref()),
                int(row.last_access),
                opt_text(row.stream_seq.as_deref()),
                int(row.refs),
                int(u64::from(row.gone)),
                opt_text(c.forked_from.as_deref()),
                opt_int(c.fork_offset),
                int(c.fork_sub_offset),
            ],
        )?;
        *self.row_cache.borrow_mut() = Some(Some(row.clone()));
        Ok(())
    }

    /// Forgets the stream's protocol state (its data goes with `Store::wipe`).
    pub fn delete_row(&self) -> Result<()> {
        self.sql.exec("DELETE FROM ds_stream", None)?;
        self.sql.exec("DELETE FROM ds_producers", None)?;
        *self.row_cache.borrow_mut() = Some(None);
        Ok(())
    }

    pub fn delete_producers(&self) -> Result<()> {
        self.sql.exec("DELETE FROM ds_producers", None)?;
        Ok(())
    }

    pub fn producer(&self, id: &str) -> Result<Option<ProducerState>> {
        let row = self.first_row("SELECT epoch, last_seq FROM ds_producers WHERE id = ?", Some(vec![id.into()]))?;
        Ok(row.map(|r| ProducerState { epoch: as_u64(&r[0]).unwrap_or(0), last_seq: as_u64(&r[1]).unwrap_or(0) }))
    }

    pub fn put_producer(&self, id: &str, state: ProducerState, now: u64) -> Result<()> {
        self.sql.exec(
            "INSERT OR REPLACE INTO ds_producers (id, epoch, last_seq, updated) VALUES (?, ?, ?, ?)",
            vec![id.into(), int(state.epoch), int(state.last_seq), int(now)],
        )?;
        Ok(())
    }

    /// The counters as of now. The saved ones lag behind the appends since their last save
    /// (see `store::Store::append`), so the last sequence and the first one of a subject that
    /// was empty at that save come from the message rows (seeks at either end of the table).
    pub fn position(&self) -> Result<Position> {
        let row = self
            .first_row(
                "SELECT epoch,
                        CASE WHEN first_seq > last_seq THEN coalesce((SELECT min(seq) FROM messages WHERE seq > meta.last_seq), first_seq)
                        ELSE first_seq END,
                        max(last_seq, coalesce((SELECT max(seq) FROM messages), 0))
                 FROM meta WHERE id = 1",
                None,
            )?
            .unwrap_or_default();
        let value = |i: usize| row.get(i).cloned().unwrap_or(SqlStorageValue::Null);
        Ok(Position {
            epoch: as_text(&value(0)).unwrap_or_default(),
            first_seq: as_u64(&value(1)).unwrap_or(1),
            last_seq: as_u64(&value(2)).unwrap_or(0),
        })
    }

    /// Messages after `after` up to `last`, in order, as raw bytes: at most `max_bytes` of data
    /// (but always at least one message, so readers progress) and at most `max_count` messages.
    pub fn read(&self, after: Seq, last: Seq, max_bytes: usize, max_count: usize) -> Result<Vec<(Seq, Vec<u8>)>> {
        let cursor = self.sql.exec(
            "SELECT seq, data FROM messages WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            vec![int(after), int(last), int(max_count.min(i64::MAX as usize) as u64)],
        )?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for row in cursor.raw() {
            let mut values = row?.into_iter();
            let (Some(seq), Some(data)) = (values.next(), values.next()) else { continue };
            let data = as_bytes(data);
            if !out.is_empty() && bytes + data.len() > max_bytes {
                break;
            }
            bytes += data.len();
            out.push((as_u64(&seq).unwrap_or(0), data));
        }
        Ok(out)
    }

    /// Bytes of data stored at or before `upto` (what a fork there would copy).
    pub fn bytes_upto(&self, upto: Seq) -> Result<u64> {
        let row = self.first_row(
            "SELECT coalesce(sum(length(CAST(data AS BLOB))), 0) FROM messages WHERE seq <= ?",
            Some(vec![int(upto)]),
        )?;
        Ok(row.and_then(|r| as_u64(&r[0])).unwrap_or(0))
    }
}
