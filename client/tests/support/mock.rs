//! Scripted stand-ins for the server, for what the real one no longer sends (undecodable
//! messages) or cannot be made to do on cue (stall in the middle of a download).

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Data nested 200 levels deep: beyond serde_json's recursion limit of 128.
pub fn too_deep() -> String {
    format!("{}{}", "[".repeat(200), "]".repeat(200))
}

/// A WebSocket server for one subject: greets every connection, answers its `sub` with
/// `from: 1`, then sends `frames` in order. Every frame the client sends is reported.
pub struct MockStream {
    addr: SocketAddr,
    task: AbortHandle,
    received: mpsc::UnboundedReceiver<Value>,
}

impl MockStream {
    pub async fn start(frames: Vec<String>) -> MockStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (report, received) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (frames, report) = (frames.clone(), report.clone());
                tokio::spawn(async move {
                    let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
                    let hello = r#"{"op":"hello","subject":"poisoned","last":3,"epoch":"mock-epoch"}"#;
                    socket.send(WsMessage::text(hello)).await.unwrap();
                    while let Some(Ok(message)) = socket.next().await {
                        let WsMessage::Text(text) = message else { continue };
                        let frame: Value = serde_json::from_str(&text).unwrap();
                        let _ = report.send(frame.clone());
                        if frame["op"] == "sub" {
                            let reply = r#"{"op":"ok","id":"sub","first":1,"last":3,"from":1}"#;
                            socket.send(WsMessage::text(reply)).await.unwrap();
                            for frame in &frames {
                                socket.send(WsMessage::text(frame.clone())).await.unwrap();
                            }
                        }
                    }
                });
            }
        })
        .abort_handle();
        MockStream { addr, task, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for the client's first ack at or beyond `seq` and returns its sequence (acks are
    /// cumulative, and when earlier ones go out depends on timers).
    pub async fn ack_reaching(&mut self, seq: u64) -> u64 {
        let wait = async {
            loop {
                let frame = self.received.recv().await.expect("the mock server runs until dropped");
                match frame["seq"].as_u64() {
                    Some(acked) if frame["op"] == "ack" && acked >= seq => return acked,
                    _ => continue,
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), wait).await.expect("an ack within 20 s")
    }
}

impl Drop for MockStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP server that answers every request with the start of a `declared`-byte body (`sent`
/// bytes of it), then either keeps the connection open without sending more or closes it.
pub struct PartialBody {
    addr: SocketAddr,
    task: AbortHandle,
}

impl PartialBody {
    pub async fn start(declared: usize, sent: usize, then_close: bool) -> PartialBody {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                read_head(&mut tcp).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nContent-Type: application/octet-stream\r\n\r\n"
                );
                let _ = tcp.write_all(head.as_bytes()).await;
                let _ = tcp.write_all(&vec![b'x'; sent]).await;
                let _ = tcp.flush().await;
                if !then_close {
                    held.push(tcp);
                }
            }
        })
        .abort_handle();
        PartialBody { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for PartialBody {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads an HTTP request's line and headers, up to the blank line (or the end of the stream).
async fn read_head(tcp: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    head
}

/// A local address where nothing listens, so connecting is refused at once.
pub async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// What [`MockSubject`] does with a WebSocket upgrade.
pub enum Upgrade {
    Accept,
    /// Refuse with this status and JSON error body.
    Refuse(u16, &'static str),
}

/// What [`MockSubject`] sends in answer to a frame.
pub enum Answer {
    Frame(String),
    /// A close frame with this code and reason (the connection then ends).
    Close(u16, &'static str),
}

/// Everything a [`MockSubject`] saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The `Authorization` header of each upgrade request, accepted or not, in order.
    pub upgrades: Vec<String>,
    /// Each frame received, with the index of its upgrade in `upgrades`.
    pub frames: Vec<(usize, Value)>,
}

impl Seen {
    /// The frames with this `op`, with their connection.
    pub fn ops(&self, op: &str) -> Vec<(usize, Value)> {
        self.frames.iter().filter(|(_, frame)| frame["op"] == op).cloned().collect()
    }
}

type Decide = dyn Fn(usize, &str) -> Upgrade + Send + Sync;
type Script = dyn Fn(usize, &Value) -> Vec<Answer> + Send + Sync;

/// A WebSocket server for any subject, scripted per test: `upgrade` decides on each upgrade
/// (given its index and `Authorization` header), every accepted connection is greeted with a
/// hello, and `script` answers each frame (given the connection's index).
pub struct MockSubject {
    addr: SocketAddr,
    task: AbortHandle,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
}

impl MockSubject {
    pub async fn start(
        upgrade: impl Fn(usize, &str) -> Upgrade + Send + Sync + 'static,
        script: impl Fn(usize, &Value) -> Vec<Answer> + Send + Sync + 'static,
    ) -> MockSubject {
        use std::sync::{Arc, Mutex};
        use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (upgrade, script): (Arc<Decide>, Arc<Script>) = (Arc::new(upgrade), Arc::new(script));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (seen, upgrade, script) = (log.clone(), upgrade.clone(), script.clone());
                tokio::spawn(async move {
                    let index = Arc::new(Mutex::new(None));
                    let decided = index.clone();
                    #[allow(clippy::result_large_err)] // the signature tungstenite asks for
                    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
                        let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                        let authorization = header("authorization");
                        let mut seen = seen.lock().unwrap();
                        let n = seen.upgrades.len();
                        seen.upgrades.push(authorization.clone());
                        match upgrade(n, &authorization) {
                            Upgrade::Accept => {
                                *decided.lock().unwrap() = Some(n);
                                Ok(response)
                            }
                            Upgrade::Refuse(status, body) => {
                                let mut refusal = ErrorResponse::new(Some(body.to_owned()));
                                *refusal.status_mut() = status.try_into().unwrap();
                                Err(refusal)
                            }
                        }
                    };
                    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
                    let Some(n) = *index.lock().unwrap() else { return };
                    let hello = r#"{"op":"hello","subject":"s","last":0,"epoch":"mock-epoch"}"#;
                    socket.send(WsMessage::text(hello)).await.unwrap();
                    while let Some(Ok(message)) = socket.next().await {
                        let WsMessage::Text(text) = message else { continue };
                        let frame: Value = serde_json::from_str(&text).unwrap();
                        seen.lock().unwrap().frames.push((n, frame.clone()));
                        for answer in script(n, &frame) {
                            match answer {
                                Answer::Frame(text) => socket.send(WsMessage::text(text)).await.unwrap(),
                                Answer::Close(code, reason) => {
                                    let close = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                                    let _ = socket.close(Some(close)).await;
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        })
        .abort_handle();
        MockSubject { addr, task, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until what the server saw satisfies `condition`, failing after a bound no
    /// working run comes near.
    pub async fn wait_for(&self, what: &str, condition: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let seen = self.seen();
            if condition(&seen) {
                return seen;
            }
            assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}; saw {seen:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for MockSubject {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request a [`MockHttp`] received.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// The request line and headers, as sent.
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// An HTTP server that answers the requests it gets with `responses`, in order (raw HTTP/1.1
/// responses; the last one is repeated), one request per connection, and records them.
pub struct MockHttp {
    addr: SocketAddr,
    task: AbortHandle,
    requests: std::sync::Arc<std::sync::Mutex<Vec<HttpRequest>>>,
}

impl MockHttp {
    pub async fn start(responses: Vec<String>) -> MockHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            for n in 0.. {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let head = read_head(&mut tcp).await;
                let mut request = HttpRequest { head: String::from_utf8_lossy(&head).into_owned(), body: Vec::new() };
                let length = request.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                request.body = vec![0; length];
                let _ = tcp.read_exact(&mut request.body).await;
                log.lock().unwrap().push(request);
                let response = &responses[n.min(responses.len() - 1)];
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.shutdown().await;
            }
        })
        .abort_handle();
        MockHttp { addr, task, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for MockHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A raw HTTP/1.1 response with a JSON body and extra header lines (each ending in `\r\n`).
pub fn http_response(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}", body.len())
}
