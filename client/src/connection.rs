//! Opening a subject's WebSocket: URL, auth header, timeouts, and the `hello` frame.

use crate::backoff::Backoff;
use crate::credentials::{Credential, Credentials, TokenWatch};
use crate::error::{Error, Result};
use crate::frames::{self, Incoming};
use crate::http::Http;
use durable_stream_protocol::token::{TOKEN_EXPIRED_CLOSE_CODE, TOKEN_REVOKED_CLOSE_CODE};
use durable_stream_protocol::Seq;
use futures_util::StreamExt;
use reqwest::Url;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open WebSocket to one subject.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A change in the state of one of the client's WebSocket connections, as reported by
/// [`Client::events`](crate::Client::events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A connection to `subject` is being opened.
    Connecting {
        /// The subject the connection is for.
        subject: String,
    },
    /// The connection is open and the server said hello.
    Connected {
        /// The subject the connection is for.
        subject: String,
        /// The subject's epoch as reported by the server.
        epoch: String,
    },
    /// The connection was lost or could not be opened.
    Disconnected {
        /// The subject the connection is for.
        subject: String,
        /// Why, in words (including the close code when the server sent one).
        reason: String,
    },
    /// The client waits `delay` before reconnect attempt number `attempt` (1-based).
    Reconnecting {
        /// The subject the connection is for.
        subject: String,
        /// Consecutive attempt number, reset by every successful connection.
        attempt: u32,
        /// How long the client waits before this attempt.
        delay: Duration,
    },
    /// An administrator reset the durable consumer of a subscription to `subject` (see
    /// PROTOCOL.md, "Resets under a live subscription"): the subscription forgets what it received
    /// after `acked` and not yet yielded, and yields every message after `acked` again (once more
    /// for a rewind) as the server delivers it.
    ConsumerReset {
        /// The subject the subscription is for.
        subject: String,
        /// The consumer's name.
        consumer: String,
        /// The consumer's new position: delivery goes on at `acked + 1`.
        acked: Seq,
    },
    /// A token refresh failed: the [token provider](crate::ClientBuilder::token_provider) failed
    /// (`subject` is `None`; it is asked again shortly), or the server refused the new token on
    /// `subject`'s connection, which keeps its current token until it expires.
    TokenRefreshFailed {
        /// The subject whose connection refused the token, if that is what failed.
        subject: Option<String>,
        /// Why, in words (never the token).
        reason: String,
    },
}

/// Settings shared by every connection of a [`Client`](crate::Client).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `http(s)://host[:port][/prefix]`, without a trailing slash.
    pub http_base: Url,
    /// The same with `ws(s)://`.
    pub ws_base: Url,
    pub credentials: Credentials,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub backoff: Backoff,
    pub max_frame_bytes: usize,
    pub events: broadcast::Sender<ConnectionEvent>,
    /// Used to read refusal bodies the upgrade did not capture.
    pub http: Http,
}

/// What the server says first on every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub epoch: String,
}

/// Splits a server URL into its HTTP and WebSocket forms (`http`↔`ws`, `https`↔`wss`).
pub(crate) fn base_urls(url: &str) -> Result<(Url, Url)> {
    let parsed = Url::parse(url).map_err(|e| Error::InvalidUrl(format!("{url}: {e}")))?;
    let (http_scheme, ws_scheme) = match parsed.scheme() {
        "http" | "ws" => ("http", "ws"),
        "https" | "wss" => ("https", "wss"),
        other => return Err(Error::InvalidUrl(format!("{url}: unsupported scheme {other:?} (use http or https)"))),
    };
    if parsed.host_str().is_none() || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::InvalidUrl(format!("{url}: expected scheme://host[:port][/path]")));
    }
    let rebase = |scheme: &str| -> Result<Url> {
        let mut text = format!("{scheme}{}", &parsed.as_str()[parsed.scheme().len()..]);
        while text.ends_with('/') {
            text.pop();
        }
        Url::parse(&text).map_err(|e| Error::InvalidUrl(format!("{url}: {e}")))
    };
    Ok((rebase(http_scheme)?, rebase(ws_scheme)?))
}

/// `{base}/{segments...}` with each segment percent-encoded.
pub(crate) fn endpoint<'a>(base: &Url, segments: impl IntoIterator<Item = &'a str>) -> Url {
    let mut url = base.clone();
    url.path_segments_mut().expect("base URLs have a host, so they can have a path").pop_if_empty().extend(segments);
    url
}

impl Settings {
    pub fn emit(&self, event: ConnectionEvent) {
        // Nobody listening is fine: events are for observers.
        let _ = self.events.send(event);
    }

    /// Opens the WebSocket for `subject` and waits for its `hello`, within the connect timeout.
    /// Failing to get that far is [`Error::Connect`] (naming the URL), unless the server
    /// refused the connection with an error of its own (e.g. [`Error::Unauthorized`]). A token
    /// the server refuses as expired or invalid is renewed once, if there is a provider.
    /// Returns the socket, the server's hello and the token updates the socket must follow.
    pub async fn open(&self, subject: &str) -> Result<(Socket, Hello, TokenWatch)> {
        self.emit(ConnectionEvent::Connecting { subject: subject.to_owned() });
        let tokens = self.credentials.watch();
        let opened = match self.open_with(subject, &tokens.current).await {
            Err(refused @ (Error::TokenExpired(_) | Error::Unauthorized(_))) => {
                match self.credentials.renew(&tokens.current).await {
                    Ok(Some(_)) => {
                        let tokens = self.credentials.watch();
                        self.open_with(subject, &tokens.current).await.map(|(socket, hello)| (socket, hello, tokens))
                    }
                    Ok(None) => Err(refused),
                    Err(e) => Err(e),
                }
            }
            opened => opened.map(|(socket, hello)| (socket, hello, tokens)),
        };
        match &opened {
            Ok((_, hello, _)) => {
                self.emit(ConnectionEvent::Connected { subject: subject.to_owned(), epoch: hello.epoch.clone() })
            }
            Err(e) => self.emit(ConnectionEvent::Disconnected { subject: subject.to_owned(), reason: e.to_string() }),
        }
        opened
    }

    /// One attempt to open the socket with `credential`, within the connect timeout.
    async fn open_with(&self, subject: &str, credential: &Credential) -> Result<(Socket, Hello)> {
        let url = endpoint(&self.ws_base, ["v1", "stream", subject]);
        match tokio::time::timeout(self.connect_timeout, self.open_untimed(subject, &url, credential)).await {
            Ok(opened) => opened,
            Err(_) => Err(Error::connect(
                url.as_str(),
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no hello within the connect timeout of {:?}", self.connect_timeout),
                ),
            )),
        }
    }

    async fn open_untimed(&self, subject: &str, url: &Url, credential: &Credential) -> Result<(Socket, Hello)> {
        use tokio_tungstenite::tungstenite::Error as WsError;
        let connect_error = |source: WsError| match source {
            WsError::Io(io) => Error::connect(url.as_str(), io),
            other => Error::connect(url.as_str(), other),
        };
        let mut request = url.as_str().into_client_request().map_err(connect_error)?;
        request.headers_mut().insert("Authorization", credential.header.clone());
        let (mut socket, _response) = match tokio_tungstenite::connect_async_tls_with_config(request, None, true, None).await {
            Ok(connected) => connected,
            Err(WsError::Http(response)) if response.body().as_ref().is_none_or(Vec::is_empty) => {
                return Err(self.refusal(subject, response.status().as_u16()).await)
            }
            // The upgrade was answered with an HTTP error: report the server's typed error.
            Err(refused @ WsError::Http(_)) => return Err(refused.into()),
            Err(e) => return Err(connect_error(e)),
        };
        loop {
            let ended_before_hello = match socket.next().await {
                Some(Ok(WsMessage::Text(text))) => match frames::decode(&text)? {
                    Incoming::Hello { epoch } => return Ok((socket, Hello { epoch })),
                    // An error before hello (e.g. the subject refused the connection).
                    Incoming::Reply { outcome: Err(e), .. } => return Err(e),
                    _ => return Err(Error::InvalidResponse(format!("expected hello, got {text}"))),
                },
                Some(Ok(WsMessage::Close(frame))) => close_reason(frame.as_ref()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(connect_error(e)),
                None => "connection ended".to_owned(),
            };
            let reason = format!("{ended_before_hello} before the server's hello");
            return Err(Error::connect(url.as_str(), std::io::Error::new(std::io::ErrorKind::ConnectionAborted, reason)));
        }
    }
}

impl Settings {
    /// The typed error for an upgrade refused with `status`. The WebSocket handshake keeps
    /// only the body bytes that arrived with the headers, often none, so the server's message
    /// is read by asking again over plain HTTP (the same route and checks answer).
    async fn refusal(&self, subject: &str, status: u16) -> Error {
        let url = endpoint(&self.http_base, ["v1", "stream", subject]);
        let retried = self.http.get(url).header("Upgrade", "websocket").timeout(self.connect_timeout).send().await;
        if let Ok(response) = retried {
            if response.status().as_u16() == status {
                if let Ok(body) = response.bytes().await {
                    return Error::from_http(status, &body);
                }
            }
        }
        Error::from_http(status, b"")
    }
}

/// The error behind a close that ends the credential's use rather than the connection's:
/// reconnecting with the same token is pointless.
pub(crate) fn credential_closed(frame: Option<&CloseFrame>) -> Option<Error> {
    let frame = frame?;
    let reason = close_reason(Some(frame));
    match u16::from(frame.code) {
        TOKEN_EXPIRED_CLOSE_CODE => Some(Error::TokenExpired(reason)),
        TOKEN_REVOKED_CLOSE_CODE => Some(Error::Unauthorized(reason)),
        _ => None,
    }
}

/// Describes a close frame for events and errors.
pub(crate) fn close_reason(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("closed by server (code {}: {})", u16::from(frame.code), frame.reason),
        None => "closed by server".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_map_to_http_and_websocket_forms() {
        let (http, ws) = base_urls("http://127.0.0.1:8787").unwrap();
        assert_eq!((http.as_str(), ws.as_str()), ("http://127.0.0.1:8787/", "ws://127.0.0.1:8787/"));
        let (http, ws) = base_urls("wss://example.com/streams/").unwrap();
        assert_eq!((http.as_str(), ws.as_str()), ("https://example.com/streams", "wss://example.com/streams"));
        assert!(matches!(base_urls("ftp://x"), Err(Error::InvalidUrl(_))));
        assert!(matches!(base_urls("not a url"), Err(Error::InvalidUrl(_))));
        assert!(matches!(base_urls("http://x/?a=1"), Err(Error::InvalidUrl(_))));
    }

    #[test]
    fn endpoints_append_encoded_segments() {
        let (http, ws) = base_urls("https://example.com/streams").unwrap();
        assert_eq!(endpoint(&ws, ["v1", "stream", "orders"]).as_str(), "wss://example.com/streams/v1/stream/orders");
        let (root, _) = base_urls("http://h:1").unwrap();
        assert_eq!(endpoint(&root, ["v1", "files", "a b", "c?"]).as_str(), "http://h:1/v1/files/a%20b/c%3F");
        assert_eq!(endpoint(&http, ["v1"]).as_str(), "https://example.com/streams/v1");
    }
}
