//! `GET /v1/subjects?prefix=&limit=&cursor=`: the directory's subjects in name order, a page at
//! a time. An access token sees only the subjects on which it has `sub`: the Worker filters the
//! directory's pages, reading at most [`TOKEN_SCAN_ROWS`] rows per request, so a page for a
//! token may hold fewer than `limit` subjects (even none) with a `cursor` to go on from.

use super::call;
use crate::auth::Principal;
use crate::http::{self, json_response, Failure};
use durable_stream_protocol::directory::{encode_cursor, parse_list_params, SubjectEntry, MAX_LIST_LIMIT};
use durable_stream_protocol::token::Actions;
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Method, Request, Response};

/// Most directory rows one listing request reads for a token before it answers.
const TOKEN_SCAN_ROWS: usize = 5 * MAX_LIST_LIMIT;

/// A page as the directory answers it.
#[derive(Deserialize)]
struct DirectoryPage {
    subjects: Vec<SubjectEntry>,
    more: bool,
    #[serde(rename = "asOf")]
    as_of: u64,
}

async fn read_page(env: &Env, prefix: &str, after: &str, limit: usize) -> Result<DirectoryPage, Failure> {
    // Names and prefixes are of the subject alphabet: nothing in them needs escaping in a URL.
    let path = format!("/list?prefix={prefix}&after={after}&limit={limit}");
    let text = call(env, &path, Method::Get, None).await?.text().await?;
    serde_json::from_str(&text).map_err(|e| worker::Error::RustError(format!("unreadable directory page: {e}")).into())
}

pub async fn handle(req: &Request, env: &Env, principal: &Principal) -> Result<Response, Failure> {
    let query = http::query(req);
    let params = parse_list_params(http::pairs(&query))?;
    let everything = matches!(principal, Principal::Master);
    // A token's pages are filtered: read whole directory pages to find enough.
    let read_limit = if everything { params.limit } else { MAX_LIST_LIMIT };
    let mut after = params.after.unwrap_or_default();
    let mut subjects = Vec::new();
    let mut scanned = 0;
    loop {
        let page = read_page(env, &params.prefix, &after, read_limit).await?;
        let mut rows = page.subjects.into_iter();
        for entry in rows.by_ref() {
            scanned += 1;
            after.clone_from(&entry.subject);
            if everything || principal.grant(&entry.subject).allows(Actions::SUB) {
                subjects.push(entry);
                if subjects.len() == params.limit {
                    break;
                }
            }
        }
        let more = page.more || rows.next().is_some();
        if !more || subjects.len() == params.limit || scanned >= TOKEN_SCAN_ROWS {
            let cursor = more.then(|| encode_cursor(&after));
            return Ok(json_response(200, &json!({ "subjects": subjects, "cursor": cursor, "asOf": page.as_of }))?);
        }
    }
}
