//! The subject's SQLite storage. Synchronous: every write made within one event commits
//! atomically, and replies sent in that event are held by the runtime until the commit is
//! durable, so an `ok` always means "stored".

use durable_stream_protocol::consumers::StoredConsumer;
use durable_stream_protocol::dedup::DedupRecord;
use durable_stream_protocol::frame::OutgoingMessage;
use durable_stream_protocol::headers::Headers;
use durable_stream_protocol::retention::StreamBounds;
use durable_stream_protocol::{NewMessage, Seq};
use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::JsValue;
use worker::{SqlStorage, SqlStorageValue, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  subject TEXT NOT NULL,
  epoch TEXT NOT NULL,
  last_seq INTEGER NOT NULL,
  first_seq INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  last_ts INTEGER NOT NULL,
  state TEXT,
  state_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, data TEXT NOT NULL, headers TEXT, msg_id TEXT, msg_last INTEGER
);
-- Releases before 2026-11-30 kept an index of timestamps; starts by time now binary-search the
-- sequence (Store::first_seq_since), so a publish writes one B-tree less.
DROP INDEX IF EXISTS messages_by_ts;
CREATE TABLE IF NOT EXISTS dedup (
  msg_id TEXT PRIMARY KEY, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dedup_by_ts ON dedup (ts);
CREATE TABLE IF NOT EXISTS consumers (
  name TEXT PRIMARY KEY, acked INTEGER NOT NULL, updated INTEGER NOT NULL, redelivered INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ds_stream (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  content_type TEXT NOT NULL,
  ttl INTEGER,
  expires_at TEXT,
  expires_ms INTEGER,
  closed INTEGER NOT NULL,
  closed_by TEXT,
  last_access INTEGER NOT NULL,
  stream_seq TEXT,
  refs INTEGER NOT NULL,
  gone INTEGER NOT NULL,
  forked_from TEXT,
  fork_offset INTEGER,
  fork_sub INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ds_producers (
  id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, last_seq INTEGER NOT NULL, updated INTEGER NOT NULL
);
";

/// The subject's counters. The sequence counter lives here, apart from the messages, so that
/// trimming every message never resets it.
#[derive(Debug, Clone)]
pub struct Meta {
    pub subject: String,
    pub epoch: String,
    pub last_seq: Seq,
    pub first_seq: Seq,
    pub bytes: u64,
    /// Timestamps never go backwards, so age-based retention can trim from the front.
    pub last_ts: u64,
    pub state_version: u64,
}

impl Meta {
    pub fn bounds(&self) -> StreamBounds {
        StreamBounds { first: self.first_seq, last: self.last_seq }
    }
}

/// Columns added after the first release, with their definitions: a table created before
/// gets them on open (`ALTER TABLE … ADD COLUMN`), and its existing rows read NULL or the default.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("messages", "headers", "TEXT"),
    ("consumers", "redelivered", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "msg_id", "TEXT"),
    ("messages", "msg_last", "INTEGER"),
];

/// Idempotency keys live in the row of the message they were published with (`msg_id`, and
/// `msg_last` when the key covers a batch), so that storing a message and its key is one
/// statement and a key can never outlive or precede its message. Unique among the rows that
/// have one: a single publish's insert finds a duplicate by failing to insert.
const KEY_INDEX: &str = "CREATE UNIQUE INDEX IF NOT EXISTS messages_by_msg_id ON messages (msg_id) WHERE msg_id IS NOT NULL";

/// The counters are saved once this many messages or bytes were appended since the last save;
/// the appends in between are counted again on load from the rows after the saved last sequence
/// (so a publish writes its row and nothing else, and a crash loses no count).
const SAVE_COUNTERS_EVERY_MESSAGES: u64 = 1024;
const SAVE_COUNTERS_EVERY_BYTES: u64 = 1 << 20;

/// A stored message, data as the published JSON text.
pub struct StoredMessage {
    pub seq: Seq,
    pub ts: u64,
    /// The headers as a JSON object text; None when the message has none.
    pub headers: Option<String>,
    pub data: String,
}

impl StoredMessage {
    /// What the message counts for in pages and byte retention: its data and headers.
    pub fn size(&self) -> usize {
        self.data.len() + self.headers.as_ref().map_or(0, String::len)
    }

    pub fn outgoing(&self) -> OutgoingMessage<'_> {
        OutgoingMessage { seq: self.seq, ts: self.ts, headers: self.headers.as_deref(), data: &self.data }
    }
}

/// A message to store: its JSON data and its headers as a JSON object text.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    pub data: &'a str,
    pub headers: Option<&'a str>,
}

impl<'a> From<&'a NewMessage> for Draft<'a> {
    fn from(message: &'a NewMessage) -> Self {
        Draft { data: message.data.get(), headers: message.headers.as_ref().map(Headers::as_json) }
    }
}

impl Draft<'_> {
    /// What the message counts for in the subject's `bytes` (and byte retention).
    pub fn size(&self) -> u64 {
        (self.data.len() + self.headers.map_or(0, str::len)) as u64
    }
}

/// The size of a stored row's data and headers in SQL, matching [`Draft::size`].
const ROW_SIZE: &str = "length(CAST(data AS BLOB)) + coalesce(length(CAST(headers AS BLOB)), 0)";

#[derive(Clone)]
pub struct Store {
    sql: SqlStorage,
    /// The oldest idempotency key's timestamp once read (`Some(None)`: there is none). It is
    /// asked for after every event, to schedule the alarm that forgets keys, so it is kept
    /// here rather than queried each time. A key replaced by a newer one can leave it too old:
    /// that only makes the alarm fire early, and pruning reads it again.
    oldest_dedup: Rc<Cell<Option<Option<u64>>>>,
    /// Messages and bytes appended since the counters were last saved.
    unsaved: Rc<Cell<(u64, u64)>>,
}

/// Whether a comma-separated list of sequences (`group_concat(seq)`) is in ascending order.
fn ascending(seqs: &str) -> bool {
    let mut previous = 0;
    seqs.split(',').all(|seq| seq.parse::<Seq>().is_ok_and(|seq| std::mem::replace(&mut previous, seq) < seq))
}

/// A sequence, count or timestamp as a SQLite integer (all stay below 2^63).
pub(crate) fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(value as i64)
}

fn as_u64(value: &SqlStorageValue) -> u64 {
    match value {
        SqlStorageValue::Integer(i) => (*i).max(0) as u64,
        SqlStorageValue::Float(f) => f.max(0.0) as u64,
        _ => 0,
    }
}

fn json_text(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| worker::Error::RustError(e.to_string()))
}

fn into_string(value: SqlStorageValue) -> Option<String> {
    match value {
        SqlStorageValue::String(s) => Some(s),
        _ => None,
    }
}

impl Store {
    /// The first row a query returns, if any.
    fn first_row(&self, query: &str, bindings: impl Into<Option<Vec<SqlStorageValue>>>) -> Result<Option<Vec<SqlStorageValue>>> {
        self.sql.exec(query, bindings)?.raw().next().transpose()
    }

    /// Opens the schema and loads the counters, creating them for a new subject.
    pub fn open(sql: SqlStorage, subject: &str, new_epoch: impl FnOnce() -> String) -> Result<(Store, Meta)> {
        let store = Store { sql, oldest_dedup: Rc::default(), unsaved: Rc::default() };
        store.sql.exec(SCHEMA, None)?;
        store.add_missing_columns()?;
        store.sql.exec(KEY_INDEX, None)?;
        let meta = match store.load_meta()? {
            Some(mut meta) => {
                store.count_unsaved(&mut meta)?;
                meta
            }
            None => store.create_meta(subject, new_epoch())?,
        };
        Ok((store, meta))
    }

    /// Brings tables created by an earlier version up to [`ADDED_COLUMNS`].
    fn add_missing_columns(&self) -> Result<()> {
        for (table, column, definition) in ADDED_COLUMNS {
            let present = self.first_row("SELECT 1 FROM pragma_table_info(?) WHERE name = ?", vec![(*table).into(), (*column).into()])?;
            if present.is_none() {
                self.sql.exec(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"), None)?;
            }
        }
        Ok(())
    }

    fn create_meta(&self, subject: &str, epoch: String) -> Result<Meta> {
        self.sql.exec(
            "INSERT INTO meta (id, subject, epoch, last_seq, first_seq, bytes, last_ts, state, state_version)
             VALUES (1, ?, ?, 0, 1, 0, 0, NULL, 0)",
            vec![subject.into(), epoch.as_str().into()],
        )?;
        Ok(Meta { subject: subject.into(), epoch, last_seq: 0, first_seq: 1, bytes: 0, last_ts: 0, state_version: 0 })
    }

    fn load_meta(&self) -> Result<Option<Meta>> {
        let row = self.first_row("SELECT subject, epoch, last_seq, first_seq, bytes, last_ts, state_version FROM meta WHERE id = 1", None)?;
        Ok(row.map(|row| {
            let mut values = row.into_iter();
            let mut next = || values.next().unwrap_or(SqlStorageValue::Null);
            Meta {
                subject: into_string(next()).unwrap_or_default(),
                epoch: into_string(next()).unwrap_or_default(),
                last_seq: as_u64(&next()),
                first_seq: as_u64(&next()),
                bytes: as_u64(&next()),
                last_ts: as_u64(&next()),
                state_version: as_u64(&next()),
            }
        }))
    }

    /// Adds the messages stored after the saved counters (the appends since the last save).
    fn count_unsaved(&self, meta: &mut Meta) -> Result<()> {
        let row = self
            .first_row(
                &format!("SELECT count(*), min(seq), max(seq), max(ts), coalesce(sum({ROW_SIZE}), 0) FROM messages WHERE seq > ?"),
                vec![int(meta.last_seq)],
            )?
            .unwrap_or_default();
        let value = |i: usize| as_u64(row.get(i).unwrap_or(&SqlStorageValue::Null));
        let (count, bytes) = (value(0), value(4));
        if count > 0 {
            if meta.first_seq > meta.last_seq {
                meta.first_seq = value(1);
            }
            meta.last_seq = value(2);
            meta.last_ts = meta.last_ts.max(value(3));
            meta.bytes += bytes;
        }
        self.unsaved.set((count, bytes));
        Ok(())
    }

    fn save_counters(&self, meta: &Meta) -> Result<()> {
        self.sql.exec(
            "UPDATE meta SET last_seq = ?, first_seq = ?, bytes = ?, last_ts = ? WHERE id = 1",
            vec![int(meta.last_seq), int(meta.first_seq), int(meta.bytes), int(meta.last_ts)],
        )?;
        self.unsaved.set((0, 0));
        Ok(())
    }

    /// Stores messages `first..=last` (already assigned) with one timestamp, and `key` (the
    /// publish's idempotency key) in the first one's row. Returns false, storing nothing, when
    /// a single message's key is already in a stored row; a batch's key must have been looked
    /// up (and released if expired) before, as its rows are inserted by one statement.
    pub fn append(&self, meta: &mut Meta, first: Seq, last: Seq, ts: u64, messages: &[Draft], key: Option<&str>) -> Result<bool> {
        debug_assert_eq!((last - first + 1) as usize, messages.len());
        let key_value = || key.map_or(SqlStorageValue::Null, Into::into);
        if let [one] = messages {
            let headers = one.headers.map_or(SqlStorageValue::Null, Into::into);
            let inserted = self.sql.exec(
                "INSERT INTO messages (seq, ts, data, headers, msg_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                vec![int(first), int(ts), one.data.into(), headers, key_value()],
            )?;
            if inserted.rows_written() == 0 {
                // Nothing else can conflict: sequences are assigned past every stored one.
                return match key {
                    Some(_) => Ok(false),
                    None => Err(worker::Error::RustError(format!("message {first} is already stored"))),
                };
            }
        } else {
            // One statement for the whole batch: the payloads travel as a JSON array of strings
            // (the verbatim JSON texts, or [data, headers] pairs when some have headers), which
            // keeps each message byte for byte as published.
            let (columns, batch) = if messages.iter().all(|m| m.headers.is_none()) {
                let texts: Vec<&str> = messages.iter().map(|m| m.data).collect();
                ("value, NULL", json_text(&texts)?)
            } else {
                let pairs: Vec<(&str, Option<&str>)> = messages.iter().map(|m| (m.data, m.headers)).collect();
                ("json_extract(value, '$[0]'), json_extract(value, '$[1]')", json_text(&pairs)?)
            };
            self.sql.exec(
                &format!(
                    "INSERT INTO messages (seq, ts, data, headers, msg_id, msg_last)
                     SELECT ?1 + key, ?2, {columns}, CASE key WHEN 0 THEN ?3 END, CASE key WHEN 0 THEN ?4 END FROM json_each(?5)"
                ),
                vec![int(first), int(ts), key_value(), key.map_or(SqlStorageValue::Null, |_| int(last)), batch.into()],
            )?;
        }
        self.count_appended(meta, first, last, ts, messages.iter().map(Draft::size).sum())?;
        Ok(true)
    }

    /// Stores messages `first..=last` (already assigned) with one timestamp, each with its own
    /// idempotency key (or none) in its row, in one statement. The keys must have been looked up
    /// (and the expired ones released) before: none may be in a stored row.
    pub fn append_keyed(&self, meta: &mut Meta, first: Seq, last: Seq, ts: u64, messages: &[Draft], keys: &[Option<&str>]) -> Result<()> {
        debug_assert_eq!(((last - first + 1) as usize, messages.len()), (keys.len(), keys.len()));
        let rows: Vec<(&str, Option<&str>, Option<&str>)> = messages.iter().zip(keys).map(|(m, key)| (m.data, m.headers, *key)).collect();
        self.sql.exec(
            "INSERT INTO messages (seq, ts, data, headers, msg_id)
             SELECT ?1 + key, ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?3)",
            vec![int(first), int(ts), json_text(&rows)?.into()],
        )?;
        self.count_appended(meta, first, last, ts, messages.iter().map(Draft::size).sum())
    }

    /// Stores one opaque chunk as message `seq` (the data of a Durable Streams byte or text
    /// stream, kept as a BLOB in the same table as JSON messages).
    pub fn append_blob(&self, meta: &mut Meta, seq: Seq, ts: u64, data: &[u8]) -> Result<()> {
        self.sql.exec(
            "INSERT INTO messages (seq, ts, data) VALUES (?, ?, ?)",
            vec![int(seq), int(ts), SqlStorageValue::Blob(data.to_vec())],
        )?;
        self.count_appended(meta, seq, seq, ts, data.len() as u64)
    }

    /// Moves the counters over messages `first..=last` just stored (`bytes` of data in all),
    /// saving them when enough went unsaved.
    fn count_appended(&self, meta: &mut Meta, first: Seq, last: Seq, ts: u64, bytes: u64) -> Result<()> {
        if meta.first_seq > meta.last_seq {
            meta.first_seq = first;
        }
        meta.last_seq = last;
        meta.last_ts = ts;
        meta.bytes += bytes;
        let (messages, unsaved_bytes) = self.unsaved.get();
        let unsaved = (messages + (last - first + 1), unsaved_bytes + bytes);
        if unsaved.0 >= SAVE_COUNTERS_EVERY_MESSAGES || unsaved.1 >= SAVE_COUNTERS_EVERY_BYTES {
            return self.save_counters(meta);
        }
        self.unsaved.set(unsaved);
        Ok(())
    }

    /// Moves an empty subject's counter to `last` without storing anything (a fork whose
    /// inherited positions hold no retained data).
    pub fn advance_to(&self, meta: &mut Meta, last: Seq) -> Result<()> {
        if last > meta.last_seq {
            if meta.first_seq > meta.last_seq {
                meta.first_seq = last + 1;
            }
            meta.last_seq = last;
        }
        self.save_counters(meta)
    }

    /// The next replay frame of messages `from..=to`, made by SQLite: the first messages (at
    /// most `limit`) that fit in `max_bytes` (at least one), encoded as
    /// [`durable_stream_protocol::frame::encode_messages`] encodes them and sized as
    /// [`OutgoingMessage::frame_size`] sizes them. The frame stays a JavaScript string, sent
    /// as it is: a catch-up never copies message data through the Worker's memory. Returns the
    /// last sequence in the frame and the frame; None when nothing is stored in the range.
    ///
    /// `whole_page` first tries all `limit` messages as one frame (cheap: no running sum);
    /// when they do not fit, it is set to false and the frame is cut by a running sum.
    pub fn read_frame(
        &self,
        from: Seq,
        to: Seq,
        limit: usize,
        max_bytes: usize,
        redelivered: bool,
        whole_page: &mut bool,
    ) -> Result<Option<(Seq, JsValue)>> {
        // One message's fields and its size, over the columns of `messages`.
        macro_rules! fields {
            () => {
                "'\"seq\":' || seq || ',\"ts\":' || ts || coalesce(',\"headers\":' || headers, '') || ',\"data\":' || data || ?4"
            };
        }
        macro_rules! size {
            () => {
                "length(CAST(data AS BLOB)) + coalesce(length(CAST(headers AS BLOB)) + 12, 0) + 48"
            };
        }
        // `{"op":"msg",…}` for one message, `{"op":"msgs","messages":[…]}` for several, the
        // messages concatenated in the order given (`ORDER BY seq`, or nothing).
        macro_rules! frame {
            ($order:literal) => {
                concat!(
                    "max(seq) AS last,
                     CASE count(*) WHEN 1 THEN '{\"op\":\"msg\",' || max(fields) || '}'
                     ELSE '{\"op\":\"msgs\",\"messages\":[{' || group_concat(fields, '},{' ",
                    $order,
                    ") || '}]}' END AS frame"
                )
            };
        }
        macro_rules! page {
            ($order:literal) => {
                concat!(
                    "SELECT sum(size) <= ?5 AS fits, group_concat(seq) AS seqs, ", frame!($order), " FROM (
                       SELECT seq, ", fields!(), " AS fields, ", size!(), " AS size
                       FROM messages WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3)
                     HAVING count(*) > 0"
                )
            };
        }
        // The subquery's rows come in `seq` order, and an aggregate without ORDER BY takes them
        // as they come; `ORDER BY seq` in the aggregate would sort them again in a temporary
        // B-tree (about a third of the query's cost). SQLite does not promise that order, so
        // `seqs`, concatenated in the same pass, is checked, and the sorted query is the fallback.
        const PAGE: &str = page!("");
        const PAGE_SORTED: &str = page!("ORDER BY seq");
        const FITTING: &str = concat!(
            "SELECT ", frame!("ORDER BY seq"), " FROM (
               SELECT seq, fields, size, sum(size) OVER (ORDER BY seq) AS upto FROM (
                 SELECT seq, ", fields!(), " AS fields, ", size!(), " AS size
                 FROM messages WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3))
             WHERE upto <= ?5 OR upto = size
             HAVING count(*) > 0"
        );
        let flag = if redelivered { ",\"redelivered\":true" } else { "" };
        let bindings = || vec![int(from), int(to), int(limit as u64), flag.into(), int(max_bytes as u64)];
        let get = |row: &JsValue, column: &str| js_sys::Reflect::get(row, &JsValue::from_str(column));
        // The row as a JavaScript object (the cursor's own iterator), not copied into Rust.
        let frame_row = |query: &str| -> Result<Option<JsValue>> { Iterator::next(&mut self.sql.exec(query, bindings())?).transpose() };
        let mut row = if *whole_page { frame_row(PAGE)? } else { None };
        if let Some(page) = &row {
            if get(page, "fits")?.as_f64() != Some(1.0) {
                *whole_page = false;
                row = None;
            } else if !get(page, "seqs")?.as_string().is_some_and(|seqs| ascending(&seqs)) {
                row = frame_row(PAGE_SORTED)?;
            }
        }
        if !*whole_page {
            row = frame_row(FITTING)?;
        }
        let Some(row) = row else { return Ok(None) };
        Ok(Some((get(&row, "last")?.as_f64().unwrap_or_default() as Seq, get(&row, "frame")?)))
    }

    /// Messages `from..=to`, at most `limit` of them, in order.
    pub fn read(&self, from: Seq, to: Seq, limit: usize) -> Result<Vec<StoredMessage>> {
        let cursor = self.sql.exec(
            "SELECT seq, ts, data, headers FROM messages WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
            vec![int(from), int(to), int(limit as u64)],
        )?;
        let mut out = Vec::new();
        for row in cursor.raw() {
            let mut values = row?.into_iter();
            let (Some(seq), Some(ts), Some(data), Some(headers)) = (values.next(), values.next(), values.next(), values.next()) else {
                continue;
            };
            out.push(StoredMessage {
                seq: as_u64(&seq),
                ts: as_u64(&ts),
                headers: into_string(headers),
                data: into_string(data).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Deletes every message with `seq <= upto`; returns how many went. Their idempotency keys
    /// published at or after `keep_keys_since` are kept apart, so that a retry within the dedup
    /// window is still recognised after its message was trimmed.
    pub fn delete_upto(&self, meta: &mut Meta, upto: Seq, keep_keys_since: u64) -> Result<u64> {
        let kept = self.sql.exec(
            "INSERT OR REPLACE INTO dedup (msg_id, first_seq, last_seq, ts)
             SELECT msg_id, seq, coalesce(msg_last, seq), ts FROM messages WHERE seq <= ? AND msg_id IS NOT NULL AND ts >= ?",
            vec![int(upto), int(keep_keys_since)],
        )?;
        if kept.rows_written() > 0 {
            self.oldest_dedup.set(None);
        }
        let row = self.first_row(&format!("SELECT count(*), coalesce(sum({ROW_SIZE}), 0) FROM messages WHERE seq <= ?"), vec![int(upto)])?
            .unwrap_or_default();
        let (deleted, bytes) = (as_u64(row.first().unwrap_or(&SqlStorageValue::Null)), as_u64(row.get(1).unwrap_or(&SqlStorageValue::Null)));
        self.sql.exec("DELETE FROM messages WHERE seq <= ?", vec![int(upto)])?;
        meta.first_seq = meta.first_seq.max(upto + 1);
        meta.bytes = meta.bytes.saturating_sub(bytes);
        self.save_counters(meta)?;
        Ok(deleted)
    }

    /// The oldest messages' `(seq, size in bytes)`, for byte-based retention.
    pub fn oldest_sizes(&self, after: Seq, limit: usize) -> Result<Vec<(Seq, u64)>> {
        let cursor = self.sql.exec(
            &format!("SELECT seq, {ROW_SIZE} FROM messages WHERE seq > ? ORDER BY seq LIMIT ?"),
            vec![int(after), int(limit as u64)],
        )?;
        cursor
            .raw()
            .map(|row| row.map(|r| (as_u64(&r[0]), as_u64(&r[1]))))
            .collect()
    }

    /// The oldest message's timestamp.
    pub fn oldest_ts(&self) -> Result<Option<u64>> {
        let row = self.first_row("SELECT ts FROM messages ORDER BY seq LIMIT 1", None)?;
        Ok(row.map(|r| as_u64(&r[0])))
    }

    /// The first sequence published at or after `ts` (None when every message is older), for
    /// starts by time. Timestamps never decrease along the sequence, so this is a binary search
    /// over `seq` in one statement (two seeks in the primary key per halving) rather than an
    /// index on `ts`, which would cost every publish another B-tree write. `lo..hi` narrows to
    /// the first sequence whose next stored message is at or after `ts` (or that has none).
    pub fn first_seq_since(&self, ts: u64) -> Result<Option<Seq>> {
        const SEARCH: &str = "
            WITH RECURSIVE search(lo, hi) AS (
              SELECT (SELECT min(seq) FROM messages), (SELECT max(seq) FROM messages) + 1
              UNION ALL
              SELECT CASE WHEN coalesce((SELECT ts >= ?1 FROM messages WHERE seq >= (lo + hi) / 2 ORDER BY seq LIMIT 1), 1)
                          THEN lo ELSE (lo + hi) / 2 + 1 END,
                     CASE WHEN coalesce((SELECT ts >= ?1 FROM messages WHERE seq >= (lo + hi) / 2 ORDER BY seq LIMIT 1), 1)
                          THEN (lo + hi) / 2 ELSE hi END
              FROM search WHERE lo < hi
            )
            SELECT seq FROM messages WHERE seq >= (SELECT max(lo) FROM search) AND ts >= ?1 ORDER BY seq LIMIT 1";
        let row = self.first_row(SEARCH, vec![int(ts)])?;
        Ok(row.map(|r| as_u64(&r[0])))
    }

    /// The first sequence published at or after `cutoff`, for age retention: read from the
    /// oldest message on, so it costs the expired rows it passes, which are deleted next.
    pub fn first_unexpired(&self, cutoff: u64) -> Result<Option<Seq>> {
        let row = self.first_row("SELECT seq FROM messages WHERE ts >= ? ORDER BY seq LIMIT 1", vec![int(cutoff)])?;
        Ok(row.map(|r| as_u64(&r[0])))
    }

    /// What is stored of an idempotency key: the row it was published with, or the kept copy
    /// of a key whose message was trimmed (the newer of the two if both exist).
    pub fn key_record(&self, msg_id: &str) -> Result<Option<DedupRecord>> {
        Ok(self.key_records(&[msg_id])?.remove(msg_id))
    }

    /// What is stored of each of `msg_ids` that storage knows, by key, as [`Store::key_record`]
    /// finds it for one: one statement for a whole batch keyed entry by entry (the keys travel
    /// as one JSON array).
    pub fn key_records(&self, msg_ids: &[&str]) -> Result<HashMap<String, DedupRecord>> {
        let cursor = self.sql.exec(
            "SELECT seq, coalesce(msg_last, seq), ts, msg_id FROM messages WHERE msg_id IN (SELECT value FROM json_each(?1))
             UNION ALL SELECT first_seq, last_seq, ts, msg_id FROM dedup WHERE msg_id IN (SELECT value FROM json_each(?1))",
            vec![json_text(&msg_ids)?.into()],
        )?;
        let mut records: HashMap<String, DedupRecord> = HashMap::new();
        for row in cursor.raw() {
            let mut row = row?;
            let record = DedupRecord { first: as_u64(&row[0]), last: as_u64(&row[1]), ts: as_u64(&row[2]) };
            let Some(msg_id) = row.pop().and_then(into_string) else { continue };
            // The newer of a row's key and a kept copy of it.
            let known = records.entry(msg_id).or_insert(record);
            if record.ts > known.ts {
                *known = record;
            }
        }
        Ok(records)
    }

    /// Frees expired keys for new publishes, in one statement.
    pub fn release_keys(&self, msg_ids: &[&str]) -> Result<()> {
        self.sql.exec(
            "UPDATE messages SET msg_id = NULL, msg_last = NULL WHERE msg_id IN (SELECT value FROM json_each(?))",
            vec![json_text(&msg_ids)?.into()],
        )?;
        Ok(())
    }

    /// Whether keys are kept apart from their messages (trimmed within the dedup window, or
    /// stored by an earlier version): a new key must then be looked up there before its insert.
    pub fn keeps_keys_apart(&self) -> Result<bool> {
        Ok(self.oldest_dedup_ts()?.is_some())
    }

    /// Forgets idempotency keys older than `cutoff`.
    pub fn dedup_prune(&self, cutoff: u64) -> Result<()> {
        self.sql.exec("DELETE FROM dedup WHERE ts < ?", vec![int(cutoff)])?;
        self.oldest_dedup.set(None);
        Ok(())
    }

    pub fn oldest_dedup_ts(&self) -> Result<Option<u64>> {
        if let Some(known) = self.oldest_dedup.get() {
            return Ok(known);
        }
        let row = self.first_row("SELECT min(ts) FROM dedup", None)?;
        let oldest = row.and_then(|r| match r[0] {
            SqlStorageValue::Null => None,
            ref v => Some(as_u64(v)),
        });
        self.oldest_dedup.set(Some(oldest));
        Ok(oldest)
    }

    pub fn consumer_acked(&self, name: &str) -> Result<Option<Seq>> {
        let row = self.first_row("SELECT acked FROM consumers WHERE name = ?", vec![name.into()])?;
        Ok(row.map(|r| as_u64(&r[0])))
    }

    pub fn set_consumer_acked(&self, name: &str, acked: Seq, now: u64) -> Result<()> {
        self.sql.exec(
            "INSERT INTO consumers (name, acked, updated) VALUES (?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET acked = excluded.acked, updated = excluded.updated",
            vec![name.into(), int(acked), int(now)],
        )?;
        Ok(())
    }

    /// The first `limit` consumers by name.
    pub fn consumers(&self, limit: usize) -> Result<Vec<StoredConsumer>> {
        let cursor = self.sql.exec(
            "SELECT name, acked, redelivered, updated FROM consumers ORDER BY name LIMIT ?",
            vec![int(limit as u64)],
        )?;
        cursor
            .raw()
            .map(|row| {
                let mut values = row?.into_iter();
                let mut next = || values.next().unwrap_or(SqlStorageValue::Null);
                let name = into_string(next()).unwrap_or_default();
                Ok(StoredConsumer { name, acked: as_u64(&next()), redelivered: as_u64(&next()), updated: as_u64(&next()) })
            })
            .collect()
    }

    /// Deletes a consumer; returns whether it existed.
    pub fn delete_consumer(&self, name: &str) -> Result<bool> {
        Ok(self.sql.exec("DELETE FROM consumers WHERE name = ?", vec![name.into()])?.rows_written() > 0)
    }

    /// Counts `messages` more redelivered messages for the consumer.
    pub fn count_redelivered(&self, name: &str, messages: u64) -> Result<()> {
        self.sql.exec("UPDATE consumers SET redelivered = redelivered + ? WHERE name = ?", vec![int(messages), name.into()])?;
        Ok(())
    }

    pub fn consumer_count(&self) -> Result<u64> {
        let row = self.first_row("SELECT count(*) FROM consumers", None)?;
        Ok(row.map_or(0, |r| as_u64(&r[0])))
    }

    /// The state document (JSON text) and its version; version 0 means never written.
    pub fn state(&self) -> Result<(Option<String>, u64)> {
        let row = self.first_row("SELECT state, state_version FROM meta WHERE id = 1", None)?;
        Ok(row.map_or((None, 0), |mut r| {
            let version = as_u64(&r[1]);
            (into_string(std::mem::replace(&mut r[0], SqlStorageValue::Null)), version)
        }))
    }

    pub fn set_state(&self, meta: &mut Meta, state: &str, version: u64) -> Result<()> {
        self.sql.exec(
            "UPDATE meta SET state = ?, state_version = ? WHERE id = 1",
            vec![state.into(), int(version)],
        )?;
        meta.state_version = version;
        Ok(())
    }

    /// Deletes everything the subject holds and starts it over under a new epoch.
    pub fn wipe(&self, meta: &mut Meta, epoch: String) -> Result<()> {
        self.sql.exec("DELETE FROM messages", None)?;
        self.sql.exec("DELETE FROM dedup", None)?;
        self.oldest_dedup.set(Some(None));
        self.sql.exec("DELETE FROM consumers", None)?;
        self.sql.exec(
            "UPDATE meta SET epoch = ?, last_seq = 0, first_seq = 1, bytes = 0, last_ts = 0, state = NULL, state_version = 0
             WHERE id = 1",
            vec![epoch.as_str().into()],
        )?;
        *meta = Meta { subject: std::mem::take(&mut meta.subject), epoch, last_seq: 0, first_seq: 1, bytes: 0, last_ts: 0, state_version: 0 };
        self.unsaved.set((0, 0));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ascending;

    #[test]
    fn sequence_lists_are_checked_for_order() {
        assert!(ascending("7"));
        assert!(ascending("1,2,3,10,11"));
        assert!(ascending("5,9,200"), "gaps are fine");
        assert!(!ascending("1,3,2"));
        assert!(!ascending("4,4"));
        assert!(!ascending(""));
        assert!(!ascending("1,x"));
    }
}
