//! The files API (over HTTP): streaming uploads and downloads, ranges, listing.

use crate::client::Client;
use crate::connection::endpoint;
use crate::error::{Error, Result};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED, RANGE};
use reqwest::{Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use std::io;
use std::ops::{Range, RangeFrom, RangeInclusive};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::io::ReaderStream;

/// A byte range of a file to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Bytes `start..=end` (both inclusive, as in HTTP).
    Inclusive {
        /// First byte.
        start: u64,
        /// Last byte.
        end: u64,
    },
    /// From `start` to the end of the file.
    From(u64),
    /// The last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The `Range` header value.
    pub fn header_value(&self) -> String {
        match self {
            ByteRange::Inclusive { start, end } => format!("bytes={start}-{end}"),
            ByteRange::From(start) => format!("bytes={start}-"),
            ByteRange::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

impl From<Range<u64>> for ByteRange {
    /// `a..b` is bytes `a` to `b - 1`. An empty range asks for byte `a` alone (HTTP ranges
    /// cannot be empty).
    fn from(range: Range<u64>) -> Self {
        ByteRange::Inclusive { start: range.start, end: range.end.saturating_sub(1).max(range.start) }
    }
}

impl From<RangeInclusive<u64>> for ByteRange {
    fn from(range: RangeInclusive<u64>) -> Self {
        ByteRange::Inclusive { start: *range.start(), end: *range.end() }
    }
}

impl From<RangeFrom<u64>> for ByteRange {
    fn from(range: RangeFrom<u64>) -> Self {
        ByteRange::From(range.start)
    }
}

/// What the server says about a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The file's key.
    pub key: String,
    /// The whole file's size in bytes.
    pub size: u64,
    /// The entity tag, quotes included, when the server sent one.
    pub etag: Option<String>,
    /// The stored content type.
    pub content_type: Option<String>,
    /// The `Last-Modified` header, when sent.
    pub last_modified: Option<String>,
}

/// The outcome of [`Client::get_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The file's metadata (size is the whole file's).
    pub meta: FileMeta,
    /// The inclusive byte range received, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// Bytes written to the writer.
    pub written: u64,
}

/// The outcome of [`Client::put_file`] and of the other ways to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file's key.
    pub key: String,
    /// The stored file's size.
    pub size: u64,
    /// The stored file's entity tag, when the server sent one.
    pub etag: Option<String>,
}

/// One file in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileObject {
    /// The file's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its entity tag.
    #[serde(default)]
    pub etag: Option<String>,
    /// When it was stored, as the server formats it.
    #[serde(default)]
    pub uploaded: Option<String>,
    /// Its content type.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// A page of [`Client::list_files`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileList {
    /// Files on this page.
    pub objects: Vec<FileObject>,
    /// With a delimiter: the common prefixes ("directories") on this page.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Whether more pages follow.
    #[serde(default)]
    pub truncated: bool,
    /// Pass this as [`ListFiles::cursor`] to get the next page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// What a signed link allows: [`LinkMethod::Get`] (also HEAD) or [`LinkMethod::Put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LinkMethod {
    /// Download (with ranges and conditional requests).
    Get,
    /// Upload, replacing the file.
    Put,
}

/// The request for [`Client::file_link`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkOptions {
    /// Seconds the link is valid: 1 to 604800 (7 days).
    pub ttl: u64,
    /// What the link allows.
    pub method: LinkMethod,
    /// For an upload link: the only `Content-Type` it accepts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// For an upload link: the largest file it accepts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// A signed link made by [`Client::file_link`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileLink {
    /// The URL to give away.
    pub url: String,
    /// When it stops working (RFC 3339, UTC).
    pub expires: String,
    /// What it allows.
    pub method: LinkMethod,
}

/// Options for [`Client::list_files`]; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFiles {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Group keys sharing a prefix up to this string into [`FileList::prefixes`].
    pub delimiter: Option<String>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// Most entries per page.
    pub limit: Option<u32>,
}

impl ListFiles {
    /// Adds the options that are set to `url`'s query.
    pub(crate) fn append_to(&self, url: &mut Url) {
        let mut query = url.query_pairs_mut();
        for (name, value) in [("prefix", &self.prefix), ("delimiter", &self.delimiter), ("cursor", &self.cursor)] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        if let Some(limit) = self.limit {
            query.append_pair("limit", &limit.to_string());
        }
    }
}

impl Client {
    /// Uploads a file from `body`, streaming it. Pass its size as `len` when known; without it
    /// the body goes chunked and the server cuts it into parts (see
    /// [`put_file_in_parts`](Client::put_file_in_parts) for large bodies: parts are retried and
    /// can be resumed, and on Cloudflare one request body is limited by the plan).
    pub async fn put_file<R>(&self, key: &str, body: R, content_type: &str, len: Option<u64>) -> Result<Upload>
    where
        R: AsyncRead + Send + Sync + 'static,
    {
        let mut request = self
            .inner
            .http
            .put(self.file_url(key)?)
            .header(CONTENT_TYPE, content_type)
            .body(reqwest::Body::wrap_stream(ReaderStream::new(body)));
        if let Some(len) = len {
            request = request.header(CONTENT_LENGTH, len);
        }
        stored_upload(check(request.send().await?).await?).await
    }

    /// Downloads a file (or a range of it) into `writer`, streaming it. The writer is flushed
    /// but not shut down.
    pub async fn get_file<W>(&self, key: &str, writer: &mut W, range: Option<ByteRange>) -> Result<Download>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut request = self.inner.http.get(self.file_url(key)?);
        if let Some(range) = range {
            request = request.header(RANGE, range.header_value());
        }
        let response = check(request.send().await?).await?;
        let content_range = (response.status() == StatusCode::PARTIAL_CONTENT)
            .then(|| header(response.headers(), CONTENT_RANGE).and_then(|v| parse_content_range(&v)))
            .flatten();
        let mut meta = file_meta(key, response.headers());
        if let Some((_, _, total)) = content_range {
            meta.size = total;
        }
        let mut body = response.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            writer.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        writer.flush().await?;
        Ok(Download { meta, range: content_range.map(|(start, end, _)| (start, end)), written })
    }

    /// Downloads a file (or a range of it) to `path`, replacing what is there only once the
    /// whole body has arrived (see [`AtomicFile`]): on any failure, or if the future is dropped,
    /// an existing file is left as it was and no partial file remains.
    pub async fn get_file_to_path(&self, key: &str, path: impl AsRef<Path>, range: Option<ByteRange>) -> Result<Download> {
        let mut file = AtomicFile::create(path).await?;
        let download = self.get_file(key, file.writer(), range).await.map_err(|e| file.name_in(e))?;
        file.commit().await?;
        Ok(download)
    }

    /// The file's metadata, without its content.
    pub async fn head_file(&self, key: &str) -> Result<FileMeta> {
        let request = self.inner.http.head(self.file_url(key)?).timeout(self.inner.settings.request_timeout);
        let response = check(request.send().await?).await?;
        Ok(file_meta(key, response.headers()))
    }

    /// Deletes a file ([`Error::NotFound`] if there is none).
    pub async fn delete_file(&self, key: &str) -> Result<()> {
        let request = self.inner.http.delete(self.file_url(key)?).timeout(self.inner.settings.request_timeout);
        check(request.send().await?).await.map(drop)
    }

    /// Lists files, a page at a time.
    pub async fn list_files(&self, options: &ListFiles) -> Result<FileList> {
        let mut url = endpoint(&self.inner.settings.http_base, ["v1", "files"]);
        options.append_to(&mut url);
        // An empty query would leave a dangling `?`.
        if url.query() == Some("") {
            url.set_query(None);
        }
        let response = check(self.inner.http.get(url).timeout(self.inner.settings.request_timeout).send().await?).await?;
        let body = response.bytes().await?;
        serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse(format!("file listing: {e}")))
    }

    /// A signed link to `key` (`POST …?link`): a URL that reads (or, with
    /// [`LinkMethod::Put`], uploads) the file without the API key until it expires.
    pub async fn file_link(&self, key: &str, options: &LinkOptions) -> Result<FileLink> {
        let mut url = self.file_url(key)?;
        url.query_pairs_mut().append_key_only("link");
        let request = self.inner.http.post(url).json(options).timeout(self.inner.settings.request_timeout);
        let body = check(request.send().await?).await?.bytes().await?;
        serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse(format!("file link: {e}")))
    }

    /// `{base}/v1/files/{key}`, keeping the key's `/` as path separators.
    pub(crate) fn file_url(&self, key: &str) -> Result<Url> {
        if key.is_empty() {
            return Err(Error::BadRequest("file key must not be empty".into()));
        }
        Ok(endpoint(&self.inner.settings.http_base, ["v1", "files"].into_iter().chain(key.split('/'))))
    }
}

/// A file written in full before it replaces `path`: the bytes go to a temporary file in the
/// same directory (so the final rename stays on one file system and is atomic), which
/// [`commit`](AtomicFile::commit) syncs and renames over `path`. Dropped without a commit, the
/// temporary file is removed and `path` is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    temp: PathBuf,
    file: tokio::fs::File,
}

impl AtomicFile {
    /// Creates the temporary file next to `path` (`.<name>.<random>.part`).
    pub async fn create(path: impl AsRef<Path>) -> Result<AtomicFile> {
        let path = path.as_ref().to_owned();
        let name = path.file_name().ok_or_else(|| {
            Error::from(io::Error::new(io::ErrorKind::InvalidInput, format!("{} does not name a file", path.display())))
        })?;
        let temp = path.with_file_name(format!(".{}.{:016x}.part", name.to_string_lossy(), rand::random::<u64>()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(|e| io_error(format!("cannot create {}", temp.display()), e))?;
        Ok(AtomicFile { path, temp, file })
    }

    /// Where the bytes go until the commit.
    pub fn writer(&mut self) -> &mut tokio::fs::File {
        &mut self.file
    }

    /// Flushes, syncs and renames the temporary file over the target path.
    pub async fn commit(mut self) -> Result<()> {
        let written = async {
            self.file.flush().await?;
            self.file.sync_all().await?;
            tokio::fs::rename(&self.temp, &self.path).await
        };
        written.await.map_err(|e| io_error(format!("cannot write {}", self.path.display()), e))
    }

    /// Names the target path in a local I/O error (the writer's errors do not know it).
    fn name_in(&self, error: Error) -> Error {
        match error {
            Error::Io(e) => io_error(format!("cannot write {}", self.path.display()), io::Error::new(e.kind(), e.to_string())),
            other => other,
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // After a commit the temporary file is gone and this fails harmlessly.
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// An I/O error whose message says what was being done, and to which path.
fn io_error(context: String, e: io::Error) -> Error {
    Error::from(io::Error::new(e.kind(), format!("{context}: {e}")))
}

/// The answer to a stored file (`201 {"key","size","etag"}`), as an [`Upload`].
pub(crate) async fn stored_upload(response: Response) -> Result<Upload> {
    #[derive(Deserialize)]
    struct Stored {
        key: String,
        size: u64,
    }
    let etag = header(response.headers(), ETAG);
    let body = response.bytes().await?;
    let Stored { key, size } = serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse(format!("stored file: {e}")))?;
    Ok(Upload { key, size, etag })
}

/// Passes successful responses through and turns the others into typed errors.
pub(crate) async fn check(response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(Error::from_http(status.as_u16(), &body))
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn file_meta(key: &str, headers: &HeaderMap) -> FileMeta {
    FileMeta {
        key: key.to_owned(),
        size: header(headers, CONTENT_LENGTH).and_then(|v| v.parse().ok()).unwrap_or(0),
        etag: header(headers, ETAG),
        content_type: header(headers, CONTENT_TYPE),
        last_modified: header(headers, LAST_MODIFIED),
    }
}

/// Parses `bytes start-end/total` into `(start, end, total)`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, end.trim().parse().ok()?, total.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_http_range_headers() {
        assert_eq!(ByteRange::from(0..100).header_value(), "bytes=0-99");
        assert_eq!(ByteRange::from(5..=5).header_value(), "bytes=5-5");
        assert_eq!(ByteRange::from(10..).header_value(), "bytes=10-");
        assert_eq!(ByteRange::Suffix(7).header_value(), "bytes=-7");
        assert_eq!(ByteRange::from(3..3).header_value(), "bytes=3-3");
    }

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 99, 1000)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn atomic_files_replace_the_target_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        std::fs::write(&target, "old").unwrap();

        let mut abandoned = AtomicFile::create(&target).await.unwrap();
        abandoned.writer().write_all(b"half").await.unwrap();
        assert_eq!(names_in(dir.path()).len(), 2, "the temporary file sits next to the target");
        drop(abandoned);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(names_in(dir.path()), ["out.txt"]);

        let mut replacement = AtomicFile::create(&target).await.unwrap();
        replacement.writer().write_all(b"new").await.unwrap();
        replacement.commit().await.unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(names_in(dir.path()), ["out.txt"]);
    }

    #[tokio::test]
    async fn atomic_file_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing_dir = dir.path().join("nope/out.txt");
        let e = AtomicFile::create(&missing_dir).await.unwrap_err();
        assert!(e.to_string().contains(&dir.path().join("nope").display().to_string()), "{e}");
        let directory = dir.path().join("sub");
        std::fs::create_dir(&directory).unwrap();
        let e = AtomicFile::create(&directory).await.unwrap().commit().await.unwrap_err();
        assert!(e.to_string().contains(&format!("cannot write {}", directory.display())), "{e}");
        assert_eq!(names_in(dir.path()), ["sub"], "no temporary file is left");
    }

    #[test]
    fn listings_decode_with_optional_fields() {
        let list: FileList = serde_json::from_str(
            r#"{"objects":[{"key":"a/b","size":3,"etag":"\"e\"","uploaded":"2026-01-01T00:00:00Z","contentType":"text/plain"}],"prefixes":["a/"],"truncated":true,"cursor":"c1"}"#,
        )
        .unwrap();
        assert_eq!(list.objects[0].content_type.as_deref(), Some("text/plain"));
        assert_eq!((list.truncated, list.cursor.as_deref()), (true, Some("c1")));
        let minimal: FileList = serde_json::from_str(r#"{"objects":[]}"#).unwrap();
        assert!(!minimal.truncated && minimal.prefixes.is_empty());
    }
}
