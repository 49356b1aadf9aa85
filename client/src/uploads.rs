//! Uploads in parts (docs/PROTOCOL.md, "Uploads in parts"): the server's routes one by one, and
//! [`Client::put_file_in_parts`], which sends a body of any size as parts in parallel, retries
//! each part, and resumes an upload after a crash.

use crate::backoff::Backoff;
use crate::client::Client;
use crate::connection::endpoint;
use crate::error::{Error, Result};
use crate::files::{check, stored_upload, ListFiles, Upload};
use bytes::Bytes;
use durable_stream_protocol::files::{Completion, PartRef, MAX_PARTS};
pub use durable_stream_protocol::files::{CreatedUpload, PartListing, UnfinishedUpload, UploadListing, UploadedPart};
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::task::JoinSet;

/// A callback of [`PartOptions`].
pub type Callback<T> = Arc<dyn Fn(T) + Send + Sync>;

/// How [`Client::put_file_in_parts`] sends a body.
#[derive(Clone)]
pub struct PartOptions {
    /// Bytes per part (the last one may be shorter): 5 MiB to 5 GiB. Each part in flight is held
    /// in memory, so memory is about `part_size × concurrency`. On Cloudflare a request body is
    /// limited by the plan (100 MB on Free and Pro), so stay below that there. Default 16 MiB.
    pub part_size: u64,
    /// Parts sent at the same time (at least 1). Default 4.
    pub concurrency: usize,
    /// Tries per part: a part whose upload fails with a transient error (connection, timeout,
    /// 429, 5xx) is sent again after a backoff, up to this many times. Default 8.
    pub attempts: u32,
    /// Continue this unfinished upload instead of creating one: the parts the server already
    /// has (same number, same size) are not sent again. The body must be the same bytes as the
    /// first time; its part size is the upload's.
    pub resume: Option<String>,
    /// Called with the upload id once the upload exists (keep it to resume after a crash). A body
    /// that fits in one part is stored with one request instead, and has none.
    pub on_upload_id: Option<Callback<String>>,
    /// Called with the bytes stored so far, after each part (parts found stored count too).
    pub on_progress: Option<Callback<u64>>,
}

impl Default for PartOptions {
    fn default() -> Self {
        PartOptions { part_size: 16 * 1024 * 1024, concurrency: 4, attempts: 8, resume: None, on_upload_id: None, on_progress: None }
    }
}

impl std::fmt::Debug for PartOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartOptions")
            .field("part_size", &self.part_size)
            .field("concurrency", &self.concurrency)
            .field("attempts", &self.attempts)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Uploads `body` in parts: read in order, `concurrency` parts in flight, each retried on
    /// transient errors, completed once all are stored. A body that fits in one part is stored
    /// with one plain upload. On failure the upload stays on the server (see
    /// [`PartOptions::on_upload_id`]): pass its id as [`PartOptions::resume`] with the same body
    /// to finish it, or [`abort_upload`](Client::abort_upload) it.
    pub async fn put_file_in_parts<R>(&self, key: &str, body: R, content_type: &str, options: &PartOptions) -> Result<Upload>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut body = BufReader::new(body);
        let (upload, first, stored) = match &options.resume {
            Some(upload_id) => {
                let listing = self.list_parts(key, upload_id).await?;
                let upload = CreatedUpload { key: key.to_owned(), upload_id: upload_id.clone(), part_size: listing.part_size };
                (upload, None, listing.parts)
            }
            None => {
                let first = read_part(&mut body, options.part_size).await?;
                if (first.len() as u64) < options.part_size || body.fill_buf().await?.is_empty() {
                    let len = first.len() as u64;
                    let upload = self.put_file(key, std::io::Cursor::new(first), content_type, Some(len)).await?;
                    report(&options.on_progress, upload.size);
                    return Ok(upload);
                }
                (self.create_upload(key, content_type, Some(options.part_size)).await?, Some(first), Vec::new())
            }
        };
        if let Some(on_upload_id) = &options.on_upload_id {
            on_upload_id(upload.upload_id.clone());
        }
        let parts = self.send_parts(&upload, first, body, stored, options).await?;
        self.complete_upload(key, &upload.upload_id, &parts).await
    }

    /// Reads and sends every part not in `stored`; returns all the file's parts in order.
    async fn send_parts<R>(
        &self,
        upload: &CreatedUpload,
        mut first: Option<Bytes>,
        mut body: BufReader<R>,
        stored: Vec<UploadedPart>,
        options: &PartOptions,
    ) -> Result<Vec<UploadedPart>>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut stored: HashMap<u16, UploadedPart> = stored.into_iter().map(|part| (part.part_number, part)).collect();
        let mut parts = Vec::new();
        let mut sending = JoinSet::new(); // dropped on an error: the parts in flight stop
        let (mut reading, mut part_number, mut progress) = (true, 0u16, 0u64);
        loop {
            while reading && sending.len() < options.concurrency.max(1) {
                let bytes = match first.take() {
                    Some(bytes) => bytes,
                    None => read_part(&mut body, upload.part_size).await?,
                };
                if bytes.is_empty() {
                    reading = false;
                    break;
                }
                if part_number == MAX_PARTS {
                    return Err(Error::TooLarge(format!(
                        "the body needs more than {MAX_PARTS} parts of {} bytes; use a larger part size",
                        upload.part_size
                    )));
                }
                part_number += 1;
                match stored.remove(&part_number).filter(|part| part.size == bytes.len() as u64) {
                    Some(already) => {
                        progress += already.size;
                        report(&options.on_progress, progress);
                        parts.push(already);
                    }
                    None => {
                        let (client, key, upload_id) = (self.clone(), upload.key.clone(), upload.upload_id.clone());
                        let (attempts, backoff) = (options.attempts, self.inner.settings.backoff.clone());
                        sending.spawn(async move {
                            retried(attempts, &backoff, || client.upload_part(&key, &upload_id, part_number, bytes.clone())).await
                        });
                    }
                }
            }
            let Some(sent) = sending.join_next().await else { break };
            let part = sent.map_err(|e| Error::InvalidResponse(format!("a part upload task failed: {e}")))??;
            progress += part.size;
            report(&options.on_progress, progress);
            parts.push(part);
        }
        parts.sort_by_key(|part| part.part_number);
        Ok(parts)
    }

    /// Starts an upload in parts of `key` (`POST …?uploads`); `part_size` defaults to the
    /// server's `FILE_PART_BYTES`.
    pub async fn create_upload(&self, key: &str, content_type: &str, part_size: Option<u64>) -> Result<CreatedUpload> {
        let mut url = self.file_url(key)?;
        url.query_pairs_mut().append_key_only("uploads");
        if let Some(part_size) = part_size {
            url.query_pairs_mut().append_pair("partSize", &part_size.to_string());
        }
        let request = self.inner.http.post(url).header(CONTENT_TYPE, content_type).timeout(self.inner.settings.request_timeout);
        json(check(request.send().await?).await?, "created upload").await
    }

    /// Stores part `part_number` of an upload (again, if it was stored before).
    pub async fn upload_part(&self, key: &str, upload_id: &str, part_number: u16, bytes: Bytes) -> Result<UploadedPart> {
        let url = self.upload_url(key, upload_id, Some(part_number))?;
        // No overall timeout: a part may take long on a slow link; stalls hit the read timeout.
        json(check(self.inner.http.put(url).body(bytes).send().await?).await?, "uploaded part").await
    }

    /// The upload and the parts the server has (`GET …?uploadId=`).
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> Result<PartListing> {
        let request = self.inner.http.get(self.upload_url(key, upload_id, None)?).timeout(self.inner.settings.request_timeout);
        json(check(request.send().await?).await?, "part listing").await
    }

    /// Joins `parts` (in part-number order) into the file.
    pub async fn complete_upload(&self, key: &str, upload_id: &str, parts: &[UploadedPart]) -> Result<Upload> {
        let completion = Completion {
            parts: parts.iter().map(|part| PartRef { part_number: part.part_number, etag: part.etag.clone() }).collect(),
        };
        let request = self
            .inner
            .http
            .post(self.upload_url(key, upload_id, None)?)
            .json(&completion)
            .timeout(self.inner.settings.request_timeout);
        stored_upload(check(request.send().await?).await?).await
    }

    /// Drops an unfinished upload and its parts.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()> {
        let request = self.inner.http.delete(self.upload_url(key, upload_id, None)?).timeout(self.inner.settings.request_timeout);
        check(request.send().await?).await.map(drop)
    }

    /// Unfinished uploads whose key starts with `options.prefix`, a page at a time (a
    /// `delimiter` is refused).
    pub async fn list_uploads(&self, options: &ListFiles) -> Result<UploadListing> {
        let mut url = endpoint(&self.inner.settings.http_base, ["v1", "files"]);
        url.query_pairs_mut().append_key_only("uploads");
        options.append_to(&mut url);
        let request = self.inner.http.get(url).timeout(self.inner.settings.request_timeout);
        json(check(request.send().await?).await?, "upload listing").await
    }

    /// `{base}/v1/files/{key}?uploadId=…[&partNumber=N]`
    fn upload_url(&self, key: &str, upload_id: &str, part_number: Option<u16>) -> Result<Url> {
        let mut url = self.file_url(key)?;
        url.query_pairs_mut().append_pair("uploadId", upload_id);
        if let Some(part_number) = part_number {
            url.query_pairs_mut().append_pair("partNumber", &part_number.to_string());
        }
        Ok(url)
    }
}

/// Up to `part_size` bytes of `body` (fewer only at its end; empty after it).
async fn read_part<R: AsyncRead + Unpin>(body: &mut R, part_size: u64) -> Result<Bytes> {
    let mut part = Vec::with_capacity(part_size.min(64 * 1024 * 1024) as usize);
    body.take(part_size).read_to_end(&mut part).await?;
    Ok(Bytes::from(part))
}

fn report(callback: &Option<Callback<u64>>, bytes: u64) {
    if let Some(callback) = callback {
        callback(bytes);
    }
}

async fn json<T: DeserializeOwned>(response: reqwest::Response, what: &str) -> Result<T> {
    let body = response.bytes().await?;
    serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse(format!("{what}: {e}")))
}

/// Runs `operation` until it succeeds, fails for good (not [`Error::is_transient`]) or has
/// failed `attempts` times, waiting `backoff`'s delays in between.
async fn retried<T, F, Fut>(attempts: u32, backoff: &Backoff, mut operation: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut failed = 0;
    loop {
        match operation().await {
            Err(error) if error.is_transient() && failed + 1 < attempts => {
                failed += 1;
                tokio::time::sleep(backoff.delay(failed)).await;
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    fn quick() -> Backoff {
        Backoff { initial_delay: Duration::from_millis(1), max_delay: Duration::from_millis(1), ..Backoff::default() }
    }

    async fn run(attempts: u32, failures: u32, error: fn() -> Error) -> (Result<u32>, u32) {
        let calls = AtomicU32::new(0);
        let outcome = retried(attempts, &quick(), || async {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if call <= failures {
                Err(error())
            } else {
                Ok(call)
            }
        })
        .await;
        (outcome, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_the_attempts() {
        let (outcome, calls) = run(3, 2, || Error::Internal("busy".into())).await;
        assert_eq!((outcome.unwrap(), calls), (3, 3));
        let (outcome, calls) = run(3, 5, || Error::Timeout).await;
        assert!(matches!(outcome, Err(Error::Timeout)));
        assert_eq!(calls, 3, "gave up after three tries");
    }

    #[tokio::test]
    async fn refusals_are_not_retried() {
        let (outcome, calls) = run(5, 1, || Error::TooLarge("part 1 is too large".into())).await;
        assert!(matches!(outcome, Err(Error::TooLarge(_))));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn parts_are_cut_to_size_until_the_end() {
        let mut body = &[7u8; 10][..];
        assert_eq!(read_part(&mut body, 4).await.unwrap().len(), 4);
        assert_eq!(read_part(&mut body, 4).await.unwrap().len(), 4);
        assert_eq!(read_part(&mut body, 4).await.unwrap().len(), 2);
        assert!(read_part(&mut body, 4).await.unwrap().is_empty());
    }
}
