//! A scripted stand-in for the server in unit tests: accepts WebSocket connections and greets
//! them; the test reads the frames the client sends and answers them.

use crate::backoff::Backoff;
use crate::connection::Settings;
use crate::credentials::Credentials;
use crate::http::Http;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

pub(crate) type ServerSocket = WebSocketStream<tokio::net::TcpStream>;

pub(crate) struct FakeServer {
    pub listener: TcpListener,
}

impl FakeServer {
    /// Listens on a free port; returns the client settings that connect to it.
    pub async fn start(request_timeout: Duration) -> (FakeServer, Arc<Settings>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (http_base, ws_base) = crate::connection::base_urls(&url).unwrap();
        let events = broadcast::channel(16).0;
        let credentials = Credentials::fixed("k".into(), events.clone()).unwrap();
        let settings = Settings {
            http_base,
            ws_base,
            credentials: credentials.clone(),
            connect_timeout: Duration::from_secs(5),
            request_timeout,
            backoff: Backoff { initial_delay: Duration::from_millis(10), ..Backoff::default() },
            max_frame_bytes: 1024,
            events,
            http: Http::new(reqwest::Client::new(), credentials, request_timeout),
        };
        (FakeServer { listener }, Arc::new(settings))
    }

    /// Accepts the next connection and says hello.
    pub async fn accept(&self) -> ServerSocket {
        let (tcp, _) = self.listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        socket.send(WsMessage::text(r#"{"op":"hello","subject":"s","last":0,"epoch":"e"}"#)).await.unwrap();
        socket
    }
}

/// The next text frame the client sent.
pub(crate) async fn read_frame(socket: &mut ServerSocket) -> Value {
    loop {
        match socket.next().await.unwrap().unwrap() {
            WsMessage::Text(text) => return serde_json::from_str(&text).unwrap(),
            _ => continue,
        }
    }
}

/// Sends `frame` to the client.
pub(crate) async fn send_frame(socket: &mut ServerSocket, frame: Value) {
    socket.send(WsMessage::text(frame.to_string())).await.unwrap();
}
