//! The platform floor's wire: a minimal JavaScript Durable Object (not part of this project)
//! that measures what workerd itself can do per published message. A publish is
//! `{"id":n,"data":…}`, answered with `{"op":"puback","id":n,"seq":s}`; every other socket of
//! the subject gets `{"op":"msg","seq":s,"data":…}`. There are no subscriptions, acks or
//! replays: connecting is subscribing.

use durable_stream_client::Error;
use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the floor runs: `http://host:port/<variant>` (variant `sql`, `kv`, `none`, …).
#[derive(Debug, Clone)]
pub struct Floor {
    ws_base: String,
}

/// A frame from the floor.
#[derive(Deserialize)]
struct Frame {
    op: String,
    id: Option<u64>,
    data: Option<Value>,
}

impl Floor {
    pub fn new(url: &str) -> Result<Floor, Error> {
        let rest = url
            .strip_prefix("http://")
            .map(|rest| format!("ws://{rest}"))
            .or_else(|| url.strip_prefix("https://").map(|rest| format!("wss://{rest}")))
            .or_else(|| (url.starts_with("ws://") || url.starts_with("wss://")).then(|| url.to_owned()))
            .ok_or_else(|| Error::InvalidUrl(format!("{url}: expected http(s)://host:port/<variant>")))?;
        Ok(Floor { ws_base: rest.trim_end_matches('/').to_owned() })
    }

    async fn connect(&self, subject: &str) -> Result<Socket, Error> {
        let url = format!("{}/{subject}", self.ws_base);
        let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, true, None).await?;
        Ok(socket)
    }

    /// Opens a publishing connection: publishes are pipelined and matched to acks by id.
    pub async fn publisher(&self, subject: &str) -> Result<Publisher, Error> {
        let (sink, mut stream) = self.connect(subject).await?.split();
        let pending: Pending = Arc::default();
        let acks = pending.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let WsMessage::Text(text) = message else { continue };
                if let Ok(Frame { op, id: Some(id), .. }) = serde_json::from_str(&text) {
                    if op == "puback" {
                        let waiter = acks.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(());
                        }
                    }
                }
            }
            // The connection ended: dropping the waiters fails their publishes.
            acks.lock().unwrap_or_else(|p| p.into_inner()).clear();
        });
        Ok(Publisher { sink: tokio::sync::Mutex::new(sink), pending, next_id: AtomicU64::new(1), reader })
    }

    /// Opens a subscribing connection: it gets every message published from now on.
    pub async fn subscriber(&self, subject: &str) -> Result<Subscriber, Error> {
        Ok(Subscriber { socket: Box::new(self.connect(subject).await?) })
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

pub struct Publisher {
    sink: tokio::sync::Mutex<SplitSink<Socket, WsMessage>>,
    pending: Pending,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

impl Publisher {
    /// Publishes `data` and waits for the floor's ack.
    pub async fn publish(&self, data: Value) -> Result<(), Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (acked, ack) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, acked);
        let frame = json!({ "id": id, "data": data }).to_string();
        self.sink.lock().await.send(WsMessage::text(frame)).await?;
        ack.await.map_err(|_| Error::Closed)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub struct Subscriber {
    socket: Box<Socket>,
}

impl Subscriber {
    /// The next message's data; `None` when the connection ends.
    pub async fn next(&mut self) -> Option<Result<Value, Error>> {
        loop {
            match self.socket.next().await? {
                Ok(WsMessage::Text(text)) => match serde_json::from_str::<Frame>(&text) {
                    Ok(Frame { op, data: Some(data), .. }) if op == "msg" => return Some(Ok(data)),
                    Ok(_) => continue,
                    Err(e) => return Some(Err(Error::InvalidResponse(format!("floor frame {text}: {e}")))),
                },
                Ok(WsMessage::Close(_)) => return None,
                Ok(_) => continue,
                Err(e) => return Some(Err(e.into())),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = (*self.socket).close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn urls_become_websocket_bases() {
        assert_eq!(Floor::new("http://127.0.0.1:8788/sql/").unwrap().ws_base, "ws://127.0.0.1:8788/sql");
        assert_eq!(Floor::new("https://h/kv").unwrap().ws_base, "wss://h/kv");
        assert_eq!(Floor::new("ws://h:1/none").unwrap().ws_base, "ws://h:1/none");
        assert!(matches!(Floor::new("ftp://h"), Err(Error::InvalidUrl(_))));
    }

    /// A stand-in floor for one publisher and one subscriber: acks publishes in reverse order
    /// of arrival (pairs), forwarding each to the subscriber.
    async fn fake_floor(listener: TcpListener) {
        let (subscriber, _) = listener.accept().await.unwrap();
        let mut subscriber = tokio_tungstenite::accept_async(subscriber).await.unwrap();
        let (publisher, _) = listener.accept().await.unwrap();
        let mut publisher = tokio_tungstenite::accept_async(publisher).await.unwrap();
        let mut seq = 0;
        loop {
            let mut pair = Vec::new();
            while pair.len() < 2 {
                match publisher.next().await {
                    Some(Ok(WsMessage::Text(text))) => pair.push(serde_json::from_str::<Value>(&text).unwrap()),
                    Some(Ok(_)) => continue,
                    _ => return,
                }
            }
            for frame in pair.iter().rev() {
                seq += 1;
                let ack = json!({ "op": "puback", "id": frame["id"], "seq": seq });
                publisher.send(WsMessage::text(ack.to_string())).await.unwrap();
                subscriber.send(WsMessage::text(r#"{"op":"other"}"#)).await.unwrap();
                let msg = json!({ "op": "msg", "seq": seq, "data": frame["data"] });
                subscriber.send(WsMessage::text(msg.to_string())).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn publishes_are_matched_to_acks_and_messages_reach_subscribers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let floor = Floor::new(&format!("http://{}/sql", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(fake_floor(listener));
        let mut subscriber = floor.subscriber("s").await.unwrap();
        let publisher = floor.publisher("s").await.unwrap();
        let (a, b) = tokio::join!(publisher.publish(json!(1)), publisher.publish(json!(2)));
        a.unwrap();
        b.unwrap();
        let mut got = vec![subscriber.next().await.unwrap().unwrap(), subscriber.next().await.unwrap().unwrap()];
        got.sort_by_key(|v| v.as_i64());
        assert_eq!(got, [json!(1), json!(2)]);
        drop(publisher);
        subscriber.close().await;
    }
}
