//! The files API against the real Worker (R2 under workerd).

mod support;

use durable_stream_client::{ByteRange, Client, Error, ListFiles};
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

    // Compare as it streams in rather than buffering 12 MiB.
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
    let mut checker = Checker { position: 0, mismatches: 0 };
    let download = client.get_file(&key, &mut checker, None).await.unwrap();
    assert_eq!((download.written, checker.position, checker.mismatches), (LEN, LEN, 0));
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
