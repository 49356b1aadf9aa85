//! The directory's SQLite storage: one row per listed subject (primary key: its name, so pages
//! and prefixes are index range scans), the consumers of each as its last report gave them,
//! and the counter totals. Every query is bounded by a `LIMIT`; only the three gauges of a
//! scrape read every row, summing in SQLite without bringing the rows into memory.

use durable_stream_protocol::directory::{prefix_end, Report, SubjectEntry, SubjectStats};
use durable_stream_protocol::metrics::{ConsumerSeries, Counters, Snapshot, SubjectSeries};
use worker::{console_error, Result, SqlStorage, SqlStorageValue};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subjects (
  name TEXT PRIMARY KEY,
  first INTEGER NOT NULL, last INTEGER NOT NULL, count INTEGER NOT NULL, bytes INTEGER NOT NULL,
  connections INTEGER NOT NULL, subscribers INTEGER NOT NULL, consumers INTEGER NOT NULL,
  last_publish_ts INTEGER NOT NULL, epoch TEXT NOT NULL, reported_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumers (
  subject TEXT NOT NULL, name TEXT NOT NULL,
  pending INTEGER NOT NULL, ack_pending INTEGER NOT NULL, redelivered INTEGER NOT NULL,
  PRIMARY KEY (subject, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 1), counters TEXT NOT NULL);
";

const SUBJECT_COLUMNS: &str =
    "name, first, last, count, bytes, connections, subscribers, consumers, last_publish_ts, epoch, reported_at";

fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(value as i64)
}

fn as_u64(value: &SqlStorageValue) -> u64 {
    match value {
        SqlStorageValue::Integer(i) => (*i).max(0) as u64,
        _ => 0,
    }
}

fn text(value: SqlStorageValue) -> String {
    match value {
        SqlStorageValue::String(s) => s,
        _ => String::new(),
    }
}

/// The first `N` values of a row as numbers (0 for a missing one).
fn numbers<const N: usize>(values: impl Iterator<Item = SqlStorageValue>) -> [u64; N] {
    let mut out = [0; N];
    for (slot, value) in out.iter_mut().zip(values) {
        *slot = as_u64(&value);
    }
    out
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| worker::Error::RustError(e.to_string()))
}

/// One page of the listing.
pub struct Page {
    pub subjects: Vec<SubjectEntry>,
    /// Whether more subjects follow the last one of the page.
    pub more: bool,
}

pub struct DirectoryStore {
    sql: SqlStorage,
}

impl DirectoryStore {
    pub fn open(sql: SqlStorage) -> DirectoryStore {
        if let Err(e) = sql.exec(SCHEMA, None) {
            console_error!("directory schema: {e}");
        }
        DirectoryStore { sql }
    }

    fn rows(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<Vec<SqlStorageValue>>> {
        self.sql.exec(query, bindings)?.raw().collect()
    }

    /// Applies a report: the subject's row and consumers replaced (or removed, for a vacant
    /// subject). The counters are the caller's (see `Directory::take_report`).
    pub fn apply(&self, report: &Report, now: u64) -> Result<()> {
        let subject = report.subject.as_str();
        self.sql.exec("DELETE FROM consumers WHERE subject = ?", vec![subject.into()])?;
        let Some(stats) = &report.stats else {
            self.sql.exec("DELETE FROM subjects WHERE name = ?", vec![subject.into()])?;
            return Ok(());
        };
        self.sql.exec(
            &format!("INSERT OR REPLACE INTO subjects ({SUBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            vec![
                subject.into(),
                int(stats.first),
                int(stats.last),
                int(stats.count),
                int(stats.bytes),
                int(stats.connections),
                int(stats.subscribers),
                int(stats.consumers),
                int(stats.last_publish_ts),
                stats.epoch.as_str().into(),
                int(now),
            ],
        )?;
        if !report.consumers.is_empty() {
            // One statement for all of them: the report's consumers as a JSON array.
            self.sql.exec(
                "INSERT INTO consumers (subject, name, pending, ack_pending, redelivered)
                 SELECT ?, value ->> 'name', value ->> 'pending', value ->> 'ackPending', value ->> 'redelivered' FROM json_each(?)",
                vec![subject.into(), json(&report.consumers)?.into()],
            )?;
        }
        Ok(())
    }

    /// Up to `limit` subjects whose names start with `prefix`, after `after`, by name.
    pub fn list(&self, prefix: &str, after: &str, limit: usize) -> Result<Page> {
        let rows = self.rows(
            &format!("SELECT {SUBJECT_COLUMNS} FROM subjects WHERE name >= ? AND name < ? AND name > ? ORDER BY name LIMIT ?"),
            vec![prefix.into(), prefix_end(prefix).into(), after.into(), int(limit as u64 + 1)],
        )?;
        let more = rows.len() > limit;
        let subjects = rows.into_iter().take(limit).map(entry).collect();
        Ok(Page { subjects, more })
    }

    pub fn totals(&self) -> Result<Counters> {
        let row = self.rows("SELECT counters FROM totals WHERE id = 1", vec![])?.into_iter().next();
        Ok(match row.and_then(|r| r.into_iter().next()).map(text) {
            Some(counters) => serde_json::from_str(&counters).unwrap_or_else(|e| {
                console_error!("unreadable counter totals, starting again from zero: {e}");
                Counters::default()
            }),
            None => Counters::default(),
        })
    }

    pub fn save_totals(&self, totals: &Counters) -> Result<()> {
        self.sql.exec("INSERT OR REPLACE INTO totals (id, counters) VALUES (1, ?)", vec![json(totals)?.into()])?;
        Ok(())
    }

    /// What a scrape shows: the gauges over every subject, series for the first subjects (by
    /// name) under each prefix and their consumers, within the caps, and the totals.
    pub fn snapshot(&self, prefixes: &[String], max_subjects: usize, max_consumers: usize, counters: Counters) -> Result<Snapshot> {
        let sums = self.rows("SELECT count(*), coalesce(sum(connections), 0), coalesce(sum(subscribers), 0) FROM subjects", vec![])?;
        let [subjects, connections, subscriptions] = numbers(sums.into_iter().flatten());
        let mut snapshot = Snapshot {
            subjects,
            connections,
            subscriptions,
            counters,
            ..Snapshot::default()
        };
        for prefix in prefixes {
            let room = max_subjects - snapshot.subject_series.len();
            if room == 0 {
                break;
            }
            let rows = self.rows(
                "SELECT name, count, bytes, last FROM subjects WHERE name >= ? AND name < ? ORDER BY name LIMIT ?",
                vec![prefix.as_str().into(), prefix_end(prefix).into(), int(room as u64)],
            )?;
            let Some(last_name) = rows.last().and_then(|r| r.first()).cloned() else { continue };
            snapshot.subject_series.extend(rows.into_iter().map(|row| {
                let mut values = row.into_iter();
                let subject = text(values.next().unwrap_or(SqlStorageValue::Null));
                let [messages, bytes, last_seq] = numbers(values);
                SubjectSeries { subject, messages, bytes, last_seq }
            }));
            // The consumers of exactly the subjects that got series: those up to the last one.
            let room = max_consumers - snapshot.consumer_series.len();
            let rows = self.rows(
                "SELECT subject, name, pending, ack_pending, redelivered FROM consumers
                 WHERE subject >= ? AND subject <= ? ORDER BY subject, name LIMIT ?",
                vec![prefix.as_str().into(), last_name, int(room as u64)],
            )?;
            snapshot.consumer_series.extend(rows.into_iter().map(|row| {
                let mut values = row.into_iter();
                let subject = text(values.next().unwrap_or(SqlStorageValue::Null));
                let consumer = text(values.next().unwrap_or(SqlStorageValue::Null));
                let [num_pending, num_ack_pending, redelivered] = numbers(values);
                ConsumerSeries { subject, consumer, num_pending, num_ack_pending, redelivered }
            }));
        }
        Ok(snapshot)
    }
}

/// A listing entry from a row of [`SUBJECT_COLUMNS`].
fn entry(row: Vec<SqlStorageValue>) -> SubjectEntry {
    let mut values = row.into_iter();
    let subject = values.next().map(text).unwrap_or_default();
    let [first, last, count, bytes, connections, subscribers, consumers, last_publish_ts] = numbers(values.by_ref().take(8));
    let epoch = values.next().map(text).unwrap_or_default();
    let as_of = values.next().map_or(0, |v| as_u64(&v));
    SubjectEntry {
        subject,
        stats: SubjectStats { first, last, count, bytes, connections, subscribers, consumers, last_publish_ts, epoch },
        as_of,
    }
}
