//! The files API against the real Worker (R2 under workerd).

mod support;

use durable_stream_client::{ByteRange, Client, Error, LinkMethod, LinkOptions, ListFiles, PartOptions};
use std::sync::{Arc, Mutex};
use support::{unique_subject, Server, API_KEY};
use tokio::io::{AsyncRead, AsyncReadExt};

async fn client(server: &Server) -> Client {
    Client::connect(server.url(), API_KEY).await.unwrap()
}

/// `len` bytes of a repeating, position-dependent pattern (so misplaced ranges show).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A reader producing `len` pattern bytes without holding them all in memory.
fn pattern_reader(len: u64) -> impl AsyncRead + Send + Sync + 'static {
    // A block length that is a multiple of the pattern's period, so blocks join seamlessly.
    CycleReader { block: pattern(251 * 4096), position: 0 }.take(len)
}

/// Repeats `block` forever.
struct CycleReader {
    block: Vec<u8>,
    position: usize,
}

impl AsyncRead for CycleReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.block.len() - self.position);
        let position = self.position;
        buf.put_slice(&self.block[position..position + n]);
        self.position = (position + n) % self.block.len();
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn upload_download_ranges_list_and_delete() {
    let server = Server::start().await;
    let client = client(&server).await;
    let dir = unique_subject("dir");
    let key = format!("{dir}/notes/a b.txt");
    let body = pattern(10_000);

    let upload = client.put_file(&key, std::io::Cursor::new(body.clone()), "text/plain", Some(body.len() as u64)).await.unwrap();
    assert_eq!(upload.size, 10_000);

    let mut whole = Vec::new();
    let download = client.get_file(&key, &mut whole, None).await.unwrap();
    assert_eq!(whole, body);
    assert_eq!((download.meta.size, download.written, download.range), (10_000, 10_000, None));
    assert_eq!(download.meta.content_type.as_deref(), Some("text/plain"));

    let mut part = Vec::new();
    let download = client.get_file(&key, &mut part, Some((100..200).into())).await.unwrap();
    assert_eq!(part, body[100..200]);
    assert_eq!((download.range, download.meta.size), (Some((100, 199)), 10_000));
    let mut tail = Vec::new();
    client.get_file(&key, &mut tail, Some(ByteRange::Suffix(10))).await.unwrap();
    assert_eq!(tail, body[9_990..]);
    let unsatisfiable = client.get_file(&key, &mut Vec::new(), Some((20_000..).into())).await;
    assert!(matches!(unsatisfiable, Err(Error::BadRequest(_))), "{unsatisfiable:?}");

    let meta = client.head_file(&key).await.unwrap();
    assert_eq!(meta.size, 10_000);
    assert!(meta.etag.is_some());

    client.put_file(&format!("{dir}/top.bin"), std::io::Cursor::new(vec![1u8; 3]), "application/octet-stream", None).await.unwrap();
    let listing = client
        .list_files(&ListFiles { prefix: Some(format!("{dir}/")), delimiter: Some("/".into()), ..Default::default() })
        .await
        .unwrap();
    let keys: Vec<&str> = listing.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, [format!("{dir}/top.bin")]);
    assert_eq!(listing.prefixes, [format!("{dir}/notes/")]);

    let page = client.list_files(&ListFiles { prefix: Some(dir.clone()), limit: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(page.objects.len(), 1);
    assert!(page.truncated && page.cursor.is_some());
    let rest =
        client.list_files(&ListFiles { prefix: Some(dir.clone()), cursor: page.cursor, ..Default::default() }).await.unwrap();
    assert_eq!(rest.objects.len(), 1);
    assert_ne!(rest.objects[0].key, page.objects[0].key);

    client.delete_file(&key).await.unwrap();
    assert!(matches!(client.delete_file(&key).await, Err(Error::NotFound(_))));
    assert!(matches!(client.head_file(&key).await, Err(Error::NotFound(_))));
    assert!(matches!(client.get_file(&key, &mut Vec::new(), None).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn large_uploads_stream_in_both_directions() {
    let server = Server::start().await;
    let client = client(&server).await;
    let key = unique_subject("large");
    const LEN: u64 = 12 * 1024 * 1024 + 12_345;
    let upload = client.put_file(&key, pattern_reader(LEN), "application/octet-stream", Some(LEN)).await.unwrap();
    assert_eq!(upload.size, LEN);

    assert_pattern_download(&client, &key, LEN).await;
    assert_eq!(client.head_file(&key).await.unwrap().size, LEN);
}

#[tokio::test]
async fn downloads_to_a_path_replace_it_only_when_complete() {
    let server = Server::start().await;
    let client = client(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("existing.bin");
    std::fs::write(&target, "precious").unwrap();
    let key = format!("{}/file.bin", unique_subject("to-path"));

    let missing = client.get_file_to_path(&key, &target, None).await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");

    let body = pattern(50_000);
    client.put_file(&key, std::io::Cursor::new(body.clone()), "application/octet-stream", Some(50_000)).await.unwrap();
    let download = client.get_file_to_path(&key, &target, Some(ByteRange::From(100))).await.unwrap();
    assert_eq!(download.written, 49_900);
    assert_eq!(std::fs::read(&target).unwrap(), body[100..]);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["existing.bin"], "no temporary file is left");
}

const MIB: u64 = 1024 * 1024;
/// R2's smallest part.
const PART: u64 = 5 * MIB;

/// Streams a download through [`Checker`] and asserts it is `len` pattern bytes.
async fn assert_pattern_download(client: &Client, key: &str, len: u64) {
    let mut checker = Checker { position: 0, mismatches: 0 };
    let download = client.get_file(key, &mut checker, None).await.unwrap();
    assert_eq!((download.written, checker.position, checker.mismatches), (len, len, 0));
}

/// Compares what streams in with the pattern rather than buffering it.
struct Checker {
    position: u64,
    mismatches: u64,
}

impl tokio::io::AsyncWrite for Checker {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        for byte in buf {
            if *byte != (self.position % 251) as u8 {
                self.mismatches += 1;
            }
            self.position += 1;
        }
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A body that breaks off with an I/O error after `len` pattern bytes (a crashed producer).
fn breaking_reader(len: u64) -> impl AsyncRead + Send + Unpin {
    let broken = tokio_util::io::StreamReader::new(futures_util::stream::iter([Err::<bytes::Bytes, _>(
        std::io::Error::other("the producer crashed"),
    )]));
    Box::pin(pattern_reader(len).chain(broken))
}

type Recorded<T> = Arc<Mutex<T>>;

/// Options that record the upload id and the progress reported.
fn recording(options: PartOptions) -> (PartOptions, Recorded<Option<String>>, Recorded<Vec<u64>>) {
    let (upload_id, progress) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(Vec::new())));
    let (id, seen) = (upload_id.clone(), progress.clone());
    let options = PartOptions {
        on_upload_id: Some(Arc::new(move |value| *id.lock().unwrap() = Some(value))),
        on_progress: Some(Arc::new(move |bytes| seen.lock().unwrap().push(bytes))),
        ..options
    };
    (options, upload_id, progress)
}

#[tokio::test]
async fn uploads_in_parallel_parts_are_byte_exact() {
    let server = Server::start().await;
    let client = client(&server).await;
    let key = format!("{}/parts.bin", unique_subject("parts"));
    const LEN: u64 = 2 * PART + 12_345;
    let (options, upload_id, progress) = recording(PartOptions { part_size: PART, concurrency: 2, ..PartOptions::default() });
    let upload = client.put_file_in_parts(&key, pattern_reader(LEN), "application/x-test", &options).await.unwrap();
    assert_eq!(upload.size, LEN);
    assert!(upload.etag.as_deref().unwrap().ends_with("-3\""), "{upload:?}");
    assert!(upload_id.lock().unwrap().is_some());
    let progress = progress.lock().unwrap().clone();
    assert_eq!(progress.len(), 3);
    assert_eq!(progress.last(), Some(&LEN));
    assert_pattern_download(&client, &key, LEN).await;
    assert_eq!(client.head_file(&key).await.unwrap().content_type.as_deref(), Some("application/x-test"));
    let unfinished = client.list_uploads(&ListFiles { prefix: Some(key.clone()), ..Default::default() }).await.unwrap();
    assert!(unfinished.uploads.is_empty(), "{unfinished:?}");

    // A body within one part is one plain upload, with no upload id.
    let (options, upload_id, _) = recording(PartOptions { part_size: PART, ..PartOptions::default() });
    let small = client.put_file_in_parts(&key, pattern_reader(1000), "text/plain", &options).await.unwrap();
    assert_eq!(small.size, 1000);
    assert!(!small.etag.unwrap().contains('-'));
    assert!(upload_id.lock().unwrap().is_none());
}

#[tokio::test]
async fn an_upload_that_broke_off_resumes_from_the_stored_parts() {
    let server = Server::start().await;
    let client = client(&server).await;
    let key = format!("{}/resumed.bin", unique_subject("resume"));
    const LEN: u64 = 3 * PART + 777;
    let (options, upload_id, _) = recording(PartOptions { part_size: PART, concurrency: 1, ..PartOptions::default() });
    // The producer crashes inside the third part; one part at a time, parts 1 and 2 are stored.
    let broken = client.put_file_in_parts(&key, breaking_reader(2 * PART + 1000), "text/csv", &options).await;
    assert!(matches!(&broken, Err(Error::Io(e)) if e.to_string().contains("the producer crashed")), "{broken:?}");
    let upload_id = upload_id.lock().unwrap().clone().expect("the upload was created");
    let stored = client.list_parts(&key, &upload_id).await.unwrap().parts;
    assert_eq!(stored.iter().map(|p| (p.part_number, p.size)).collect::<Vec<_>>(), [(1, PART), (2, PART)]);

    let (options, _, progress) =
        recording(PartOptions { part_size: PART, resume: Some(upload_id.clone()), ..PartOptions::default() });
    let upload = client.put_file_in_parts(&key, pattern_reader(LEN), "ignored/when-resuming", &options).await.unwrap();
    assert_eq!(upload.size, LEN);
    let progress = progress.lock().unwrap().clone();
    assert_eq!(progress[..2], [PART, 2 * PART], "the stored parts count first, without being sent again");
    assert_eq!((progress.len(), progress.last()), (4, Some(&LEN)));
    assert_pattern_download(&client, &key, LEN).await;
    assert_eq!(client.head_file(&key).await.unwrap().content_type.as_deref(), Some("text/csv"), "the upload's type");
    assert!(matches!(client.list_parts(&key, &upload_id).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn unfinished_uploads_are_listed_and_aborted() {
    let server = Server::start().await;
    let client = client(&server).await;
    let dir = unique_subject("abort");
    let created = client.create_upload(&format!("{dir}/a"), "text/plain", None).await.unwrap();
    assert_eq!(created.part_size, 8 * MIB, "the server's FILE_PART_BYTES");
    let listing = client.list_uploads(&ListFiles { prefix: Some(format!("{dir}/")), ..Default::default() }).await.unwrap();
    assert_eq!(listing.uploads.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), [created.upload_id.as_str()]);
    client.abort_upload(&created.key, &created.upload_id).await.unwrap();
    assert!(matches!(client.abort_upload(&created.key, &created.upload_id).await, Err(Error::NotFound(_))));
    let small = client.create_upload(&format!("{dir}/b"), "text/plain", Some(1024)).await;
    assert!(matches!(&small, Err(Error::BadRequest(m)) if m.contains("partSize")), "{small:?}");
}

#[tokio::test]
async fn signed_links_work_without_the_key() {
    let server = Server::start_with(&["LINK_SIGNING_KEY=0123456789abcdef0123456789abcdef"]).await;
    let client = client(&server).await;
    let key = format!("{}/shared.txt", unique_subject("link"));
    client.put_file(&key, std::io::Cursor::new(b"shared bytes".to_vec()), "text/plain", None).await.unwrap();
    let options = LinkOptions { ttl: 600, method: LinkMethod::Get, content_type: None, max_bytes: None };
    let link = client.file_link(&key, &options).await.unwrap();
    assert_eq!(link.method, LinkMethod::Get);
    let plain = reqwest::Client::new();
    let got = plain.get(&link.url).header("range", "bytes=7-").send().await.unwrap();
    assert_eq!(got.status(), 206);
    assert_eq!(got.text().await.unwrap(), "bytes");

    let options = LinkOptions { ttl: 600, method: LinkMethod::Put, content_type: Some("text/plain".into()), max_bytes: Some(100) };
    let upload = client.file_link(&key, &options).await.unwrap();
    let put = plain.put(&upload.url).header("content-type", "text/plain").body("replaced").send().await.unwrap();
    assert_eq!(put.status(), 201);
    let mut body = Vec::new();
    client.get_file(&key, &mut body, None).await.unwrap();
    assert_eq!(body, b"replaced");
    let refused = client.file_link(&key, &LinkOptions { ttl: 0, ..options }).await;
    assert!(matches!(&refused, Err(Error::BadRequest(m)) if m.contains("`ttl`")), "{refused:?}");
}
