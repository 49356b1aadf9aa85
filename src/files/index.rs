//! The index of unfinished uploads in parts.
//!
//! R2's binding can neither list multipart uploads nor the parts of one, so the Worker keeps
//! that record itself, in one Durable Object (`FileUploads`, SQLite): an upload once R2 has
//! created it, each part once R2 has stored it; the upload is forgotten when it is completed or
//! aborted. One object serves the whole bucket: it sees one small request per part (a part is
//! megabytes), and a listing by key prefix is one indexed query. Its storage survives restarts,
//! so an upload can be resumed after the client or the server went down.

use super::json_answer;
use crate::hex;
use crate::http::{self, Failure};
use crate::panic_guard::abort_on_panic;
use durable_stream_protocol::files::{PartListing, UnfinishedUpload, UploadListing, UploadedPart};
use durable_stream_protocol::ProtocolError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, Date, DurableObject, Env, Method, Request, RequestInit, Response, SqlStorage, SqlStorageValue, State,
    Stub,
};

/// The Durable Object namespace (wrangler.toml) and the one instance in it.
const BINDING: &str = "FILE_UPLOADS";
const INSTANCE: &str = "index";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS uploads (
  upload_id TEXT PRIMARY KEY, key TEXT NOT NULL, part_size INTEGER NOT NULL, created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (key, upload_id);
CREATE TABLE IF NOT EXISTS parts (
  upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
  PRIMARY KEY (upload_id, part_number)
);
";

/// What the Worker asks of the index (JSON between the two; never seen by clients).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum Command {
    Create { key: String, upload_id: String, part_size: u64 },
    Find { key: String, upload_id: String },
    Get { key: String, upload_id: String },
    RecordPart { key: String, upload_id: String, part: UploadedPart },
    Forget { key: String, upload_id: String },
    List { prefix: String, cursor: Option<String>, limit: u32 },
}

/// The Worker's handle on the index.
pub struct UploadIndex {
    stub: Stub,
}

impl UploadIndex {
    pub fn open(env: &Env) -> Result<UploadIndex, Failure> {
        Ok(UploadIndex { stub: env.durable_object(BINDING)?.id_from_name(INSTANCE)?.get_stub()? })
    }

    pub async fn create(&self, key: &str, upload_id: &str, part_size: u64) -> Result<(), Failure> {
        self.call(Command::Create { key: key.into(), upload_id: upload_id.into(), part_size }).await
    }

    /// The upload without its parts (one row: what each part upload checks); `not_found` when
    /// it is not (or no longer) unfinished.
    pub async fn find(&self, key: &str, upload_id: &str) -> Result<UnfinishedUpload, Failure> {
        self.call(Command::Find { key: key.into(), upload_id: upload_id.into() }).await
    }

    /// The upload and its parts; `not_found` when it is not (or no longer) unfinished.
    pub async fn get(&self, key: &str, upload_id: &str) -> Result<PartListing, Failure> {
        self.call(Command::Get { key: key.into(), upload_id: upload_id.into() }).await
    }

    pub async fn record_part(&self, key: &str, upload_id: &str, part: UploadedPart) -> Result<(), Failure> {
        self.call(Command::RecordPart { key: key.into(), upload_id: upload_id.into(), part }).await
    }

    /// Removes the upload and its parts (nothing happens when it is not there).
    pub async fn forget(&self, key: &str, upload_id: &str) -> Result<(), Failure> {
        self.call(Command::Forget { key: key.into(), upload_id: upload_id.into() }).await
    }

    /// Unfinished uploads whose key starts with `prefix`, by key, `limit` at a time.
    pub async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<UploadListing, Failure> {
        self.call(Command::List { prefix: prefix.into(), cursor: cursor.map(str::to_owned), limit }).await
    }

    async fn call<T: DeserializeOwned>(&self, command: Command) -> Result<T, Failure> {
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(serde_json::to_string(&command).map_err(worker::Error::from)?.into()));
        let request = Request::new_with_init("https://file-uploads/", &init)?;
        let mut response = self.stub.fetch_with_request(request).await?;
        let body = response.text().await?;
        if response.status_code() >= 400 {
            // The index answers with the same error bodies as the API: a client error passes on.
            return Err(match ProtocolError::from_http_body(body.as_bytes()) {
                Some(error) if error.code != durable_stream_protocol::ErrorCode::Internal => error.into(),
                _ => worker::Error::RustError(format!("the upload index failed with status {}", response.status_code())).into(),
            });
        }
        Ok(serde_json::from_str(&body).map_err(worker::Error::from)?)
    }
}

/// The Durable Object behind [`UploadIndex`].
#[durable_object]
pub struct FileUploads {
    sql: SqlStorage,
    /// The runtime's handle on the state, to abort the object if it panics (`panic_guard`).
    runtime_state: js_sys::Object,
}

impl DurableObject for FileUploads {
    fn new(state: State, _env: Env) -> Self {
        let handle = state._inner();
        let runtime_state = handle.clone();
        FileUploads { sql: State::from(handle).storage().sql(), runtime_state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let outcome = abort_on_panic(&self.runtime_state, async {
            let command: Command = serde_json::from_str(&req.text().await?).map_err(worker::Error::from)?;
            self.run(command)
        });
        Ok(http::or_error_response(outcome.await))
    }
}

/// An upload's row, columns named as in the wire types.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadRow {
    key: String,
    upload_id: String,
    part_size: u64,
    created: f64,
}

impl UploadRow {
    fn summary(self) -> UnfinishedUpload {
        let created = js_sys::Date::new(&self.created.into()).to_iso_string().into();
        UnfinishedUpload { key: self.key, upload_id: self.upload_id, part_size: self.part_size, created }
    }
}

const UPLOAD_COLUMNS: &str = "key, upload_id AS uploadId, part_size AS partSize, created";

impl FileUploads {
    fn run(&self, command: Command) -> Result<Response, Failure> {
        // Every statement is idempotent: running the schema per request costs nothing measurable
        // next to an R2 part and needs no "opened" state.
        self.sql.exec(SCHEMA, None)?;
        let done = || json_answer(200, &serde_json::Value::Null);
        match command {
            Command::Create { key, upload_id, part_size } => {
                let created = Date::now().as_millis() as i64;
                self.sql.exec(
                    "INSERT INTO uploads (upload_id, key, part_size, created) VALUES (?, ?, ?, ?)",
                    vec![upload_id.into(), key.into(), integer(part_size), created.into()],
                )?;
                done()
            }
            Command::Find { key, upload_id } => json_answer(200, &self.upload(&key, &upload_id)?.summary()),
            Command::Get { key, upload_id } => {
                let upload = self.upload(&key, &upload_id)?.summary();
                let parts: Vec<UploadedPart> = self
                    .sql
                    .exec(
                        "SELECT part_number AS partNumber, etag, size FROM parts WHERE upload_id = ? ORDER BY part_number",
                        vec![upload_id.into()],
                    )?
                    .to_array()?;
                let listing = PartListing {
                    key: upload.key,
                    upload_id: upload.upload_id,
                    part_size: upload.part_size,
                    created: upload.created,
                    parts,
                };
                json_answer(200, &listing)
            }
            Command::RecordPart { key, upload_id, part } => {
                self.upload(&key, &upload_id)?;
                self.sql.exec(
                    "INSERT OR REPLACE INTO parts (upload_id, part_number, etag, size) VALUES (?, ?, ?, ?)",
                    vec![upload_id.into(), i64::from(part.part_number).into(), part.etag.into(), integer(part.size)],
                )?;
                done()
            }
            Command::Forget { key, upload_id } => {
                if self.upload(&key, &upload_id).is_ok() {
                    self.sql.exec("DELETE FROM parts WHERE upload_id = ?", vec![upload_id.as_str().into()])?;
                    self.sql.exec("DELETE FROM uploads WHERE upload_id = ?", vec![upload_id.into()])?;
                }
                done()
            }
            Command::List { prefix, cursor, limit } => self.list(&prefix, cursor.as_deref(), limit),
        }
    }

    /// The unfinished upload `upload_id` of `key`, or `not_found`.
    fn upload(&self, key: &str, upload_id: &str) -> Result<UploadRow, Failure> {
        let rows: Vec<UploadRow> = self
            .sql
            .exec(&format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE upload_id = ? AND key = ?"), vec![upload_id.into(), key.into()])?
            .to_array()?;
        rows.into_iter().next().ok_or_else(|| {
            ProtocolError::not_found(format!(
                "no unfinished upload {upload_id:?} of {key:?}: it was completed or aborted, or never created \
                 (GET /v1/files?uploads&prefix=… lists the unfinished ones)"
            ))
            .into()
        })
    }

    /// A page of uploads in (key, upload id) order. The cursor is the last entry of the previous
    /// page, hex-encoded, so a page starts in the right place even when that entry is gone.
    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Response, Failure> {
        let after = match cursor {
            None => None,
            Some(cursor) => Some(decode_cursor(cursor)?),
        };
        let (after_key, after_id) = after.map_or((SqlStorageValue::Null, SqlStorageValue::Null), |(key, id)| (key.into(), id.into()));
        let mut rows: Vec<UploadRow> = self
            .sql
            .exec(
                &format!(
                    "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE substr(key, 1, length(?)) = ? \
                     AND (? IS NULL OR (key, upload_id) > (?, ?)) ORDER BY key, upload_id LIMIT ?"
                ),
                vec![
                    prefix.into(),
                    prefix.into(),
                    after_key.clone(),
                    after_key,
                    after_id,
                    i64::from(limit + 1).into(),
                ],
            )?
            .to_array()?;
        let truncated = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let cursor = truncated.then(|| rows.last().map(|row| encode_cursor(&row.key, &row.upload_id))).flatten();
        let listing = UploadListing { uploads: rows.into_iter().map(UploadRow::summary).collect(), truncated, cursor };
        json_answer(200, &listing)
    }
}

/// Sizes stay far below 2^63.
fn integer(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(value as i64)
}

/// Keys have no control characters and upload ids are printable, so a newline separates them.
fn encode_cursor(key: &str, upload_id: &str) -> String {
    hex::encode(format!("{key}\n{upload_id}").as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<(String, String), ProtocolError> {
    let invalid = || ProtocolError::bad_request("`cursor` is not one a listing of uploads returned; start without it");
    let text = hex::decode(cursor).and_then(|bytes| String::from_utf8(bytes).ok()).ok_or_else(invalid)?;
    let (key, upload_id) = text.split_once('\n').ok_or_else(invalid)?;
    Ok((key.to_owned(), upload_id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor("a/b c.txt", "up-1");
        assert_eq!(decode_cursor(&cursor).unwrap(), ("a/b c.txt".to_owned(), "up-1".to_owned()));
        for bad in ["", "zz", "abc", &hex::encode(b"no separator")] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
