//! The revocation list: one Durable Object (`REVOCATIONS`, instance "revocations") holding the
//! revocations in force. The Worker reads it with a short cache (`auth::revocation_list`), and
//! subjects with token-authenticated sockets re-read it from their alarm every
//! `REVOCATION_CHECK_MS` and close the sockets of revoked tokens. Entries expire with the
//! tokens they name (`protocol::token::revocation`), so the list stays small.

use crate::http::{self, Failure};
use durable_stream_protocol::token::revocation::MAX_REVOCATIONS;
use durable_stream_protocol::token::{Revocation, RevocationList};
use durable_stream_protocol::ProtocolError;
use worker::{durable_object, Date, DurableObject, Env, Method, Request, RequestInit, Response, Result, SqlStorage, SqlStorageValue, State};

const BINDING: &str = "REVOCATIONS";
const INSTANCE: &str = "revocations";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS revocations (id INTEGER PRIMARY KEY, entry TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revocation_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
";

fn stub(env: &Env) -> Result<worker::Stub> {
    env.durable_object(BINDING)?.id_from_name(INSTANCE)?.get_stub()
}

async fn read_list(mut response: Response) -> std::result::Result<RevocationList, Failure> {
    if response.status_code() != 200 {
        return Err(worker::Error::RustError(format!("revocation list answered {}", response.status_code())).into());
    }
    let text = response.text().await?;
    serde_json::from_str(&text).map_err(|e| worker::Error::RustError(format!("revocation list: {e}")).into())
}

/// The revocations in force.
pub async fn fetch(env: &Env) -> std::result::Result<RevocationList, Failure> {
    read_list(stub(env)?.fetch_with_str("https://revocations/list").await?).await
}

/// Records a revocation; returns the list with it.
pub async fn add(env: &Env, revocation: &Revocation) -> std::result::Result<RevocationList, Failure> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(serde_json::to_string(revocation).unwrap_or_default().into()));
    let response = stub(env)?.fetch_with_request(Request::new_with_init("https://revocations/revoke", &init)?).await?;
    if response.status_code() == 413 {
        return Err(ProtocolError::too_large(format!(
            "the revocation list holds {MAX_REVOCATIONS} entries; revoke by sub (every token of a client) instead of one jti at a time"
        ))
        .into());
    }
    read_list(response).await
}

#[durable_object]
pub struct Revocations {
    sql: SqlStorage,
}

impl Revocations {
    fn list(&self, now: u64) -> Result<RevocationList> {
        self.sql.exec("DELETE FROM revocations WHERE expires_at <= ?", vec![SqlStorageValue::Integer(now as i64)])?;
        let version = self
            .sql
            .exec("SELECT version FROM revocation_version WHERE id = 1", None)?
            .raw()
            .next()
            .transpose()?
            .and_then(|row| match row.first() {
                Some(SqlStorageValue::Integer(v)) => Some(*v as u64),
                _ => None,
            })
            .unwrap_or(0);
        let mut revocations = Vec::new();
        for row in self.sql.exec("SELECT entry FROM revocations ORDER BY id", None)?.raw() {
            if let Some(SqlStorageValue::String(entry)) = row?.into_iter().next() {
                match serde_json::from_str(&entry) {
                    Ok(revocation) => revocations.push(revocation),
                    Err(e) => worker::console_error!("unreadable revocation entry: {e}"),
                }
            }
        }
        Ok(RevocationList { version, revocations })
    }

    fn revoke(&self, revocation: &Revocation, now: u64) -> std::result::Result<RevocationList, Failure> {
        if self.list(now)?.revocations.len() >= MAX_REVOCATIONS {
            return Err(ProtocolError::too_large("revocation list is full").into());
        }
        let entry = serde_json::to_string(revocation).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql.exec(
            "INSERT INTO revocations (entry, expires_at) VALUES (?, ?)",
            vec![SqlStorageValue::String(entry), SqlStorageValue::Integer(revocation.expires_at as i64)],
        )?;
        self.sql.exec(
            "INSERT INTO revocation_version (id, version) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET version = version + 1",
            None,
        )?;
        Ok(self.list(now)?)
    }

    async fn handle(&self, mut req: Request) -> std::result::Result<Response, Failure> {
        let now = Date::now().as_millis();
        let list = match (req.method(), req.path().as_str()) {
            (Method::Get, "/list") => self.list(now)?,
            (Method::Post, "/revoke") => {
                let text = req.text().await?;
                let revocation: Revocation = serde_json::from_str(&text).map_err(|e| worker::Error::RustError(e.to_string()))?;
                self.revoke(&revocation, now)?
            }
            _ => return Err(ProtocolError::not_found("no such revocation operation").into()),
        };
        Ok(http::json_response(200, &serde_json::to_value(&list).unwrap_or_default())?)
    }
}

impl DurableObject for Revocations {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(SCHEMA, None) {
            worker::console_error!("revocation list schema: {e}");
        }
        Revocations { sql }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        Ok(http::or_error_response(self.handle(req).await))
    }
}
