//! The Rust client and the original durable-stream protocol (`/stream/{subject}`) on the same
//! subject: what a legacy socket publishes reaches a Rust subscriber with the publisher's ids as
//! headers, and what the Rust client publishes reaches a legacy subscriber numbered from the
//! original's base. (The original JavaScript client itself is driven by miniflare-tests/legacy-*.)

mod support;

use durable_stream_client::{Client, StartPosition, SubscribeOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use support::{unique_subject, Server, API_KEY};
use tokio_tungstenite::tungstenite::Message as Frame;

const BASE: u64 = 100_000_000_000;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn legacy_socket(server: &Server, subject: &str) -> Socket {
    let url = format!("{}/stream/{subject}?apiKey={API_KEY}", server.url().replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.expect("the legacy route upgrades").0
}

/// The next JSON text frame, within a generous bound.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), socket.next()).await.expect("a frame in time");
        if let Frame::Text(text) = frame.expect("the socket is open").expect("a frame") {
            return serde_json::from_str(&text).expect("legacy frames are JSON");
        }
    }
}

#[tokio::test]
async fn legacy_publishes_reach_the_rust_client_and_rust_publishes_reach_legacy_subscribers() {
    let server = Server::start().await;
    let client = Client::connect(server.url(), API_KEY).await.unwrap();
    let subject = unique_subject("legacy-rust");

    let mut legacy = legacy_socket(&server, &subject).await;
    legacy.send(Frame::text(r#"{"data":{"cmd":"subscribe","startSequence":0},"cMsgId":1.5,"clientId":0.5}"#)).await.unwrap();
    assert_eq!(next_json(&mut legacy).await["sequence"], BASE);
    legacy.send(Frame::text(r#"{"data":{"from":"legacy"},"cMsgId":2.5,"clientId":0.5}"#)).await.unwrap();
    let reply = next_json(&mut legacy).await;
    assert_eq!((reply["sequence"].as_u64(), reply["cMsgId"].as_f64()), (Some(BASE + 1), Some(2.5)));
    let own = next_json(&mut legacy).await;
    assert_eq!((own["pub"].as_u64(), own["sMsgId"].as_u64(), own["clientId"].as_f64()), (Some(1), Some(BASE + 1), Some(0.5)));

    let mut messages = client.subscribe(&subject, SubscribeOptions::default().start(StartPosition::First)).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(20), messages.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((first.seq, first.data.clone()), (1, json!({ "from": "legacy" })));
    assert_eq!(first.headers.get("legacy-client-id").map(String::as_str), Some("0.5"));
    assert_eq!(first.headers.get("legacy-cmsg-id").map(String::as_str), Some("2.5"));

    assert_eq!(client.publish(&subject, json!({ "from": "rust" })).await.unwrap(), 2);
    let delivered = next_json(&mut legacy).await;
    assert_eq!(delivered["data"], json!({ "from": "rust" }));
    assert_eq!((delivered["sequence"].as_u64(), delivered["pub"].as_u64()), (Some(BASE + 2), Some(1)));
    assert_eq!((delivered["clientId"].clone(), delivered["cMsgId"].clone()), (Value::Null, Value::Null));
    let second = tokio::time::timeout(Duration::from_secs(20), messages.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(second.seq, 2);
}
