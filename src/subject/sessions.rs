//! Connected sockets, their grants and their subscriptions. The grant and the subscription
//! state are written to the socket's attachment when they change (the subscription only when
//! it changes in more than how far delivery got, see [`Subscription::needs_saving`]), so they
//! survive the object hibernating; this map is the in-memory index, rebuilt from the
//! attachments when the object wakes up.

use durable_stream_protocol::rate::Limiter;
use durable_stream_protocol::token::Grant;
use durable_stream_protocol::Subscription;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use wasm_bindgen::{JsCast, JsValue};
use worker::{console_error, State, WebSocket};

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A WebSocket seen as a plain JavaScript object, to send a JavaScript string as it is.
    type RawSocket;
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send_value(this: &RawSocket, data: &JsValue) -> Result<(), JsValue>;
}

pub struct Session {
    pub ws: WebSocket,
    pub sub: Option<Subscription>,
    /// What the connection's credentials allow on this subject.
    pub grant: Grant,
    /// The connection's publish rate limit (`PUB_RATE_PER_CONNECTION`), made on its first
    /// publish; not saved (after hibernation a connection starts with a full bucket).
    pub limiter: Option<Limiter>,
    /// Speaks the original durable-stream protocol (`/stream/{subject}`, `subject::legacy`).
    pub legacy: bool,
    /// The subscription the attachment holds (None: the attachment is not up to date).
    saved: Option<Option<Subscription>>,
}

/// A socket's attachment.
#[derive(Serialize)]
struct Attachment<'a> {
    subscription: &'a Option<Subscription>,
    grant: &'a Grant,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    legacy: bool,
}

#[derive(Deserialize)]
struct SavedAttachment {
    subscription: Option<Subscription>,
    grant: Grant,
    #[serde(default)]
    legacy: bool,
}

/// Reads an attachment; one written before grants existed holds only the subscription, and
/// its socket was opened with the API key.
fn read_attachment(text: &str) -> Option<SavedAttachment> {
    serde_json::from_str(text).ok().or_else(|| {
        let subscription = serde_json::from_str::<Option<Subscription>>(text).ok()?;
        Some(SavedAttachment { subscription, grant: Grant::master(), legacy: false })
    })
}

impl Session {
    fn new(ws: WebSocket, sub: Option<Subscription>, grant: Grant, legacy: bool, saved: Option<Option<Subscription>>) -> Self {
        Session { ws, sub, grant, limiter: None, legacy, saved }
    }

    /// Replaces the grant (an in-band token refresh) and saves it.
    pub fn set_grant(&mut self, grant: Grant) {
        self.grant = grant;
        self.saved = None;
        self.save();
    }

    /// Persists the grant and subscription into the socket's attachment, unless the
    /// attachment already holds them up to how far delivery got (`sent`, which is not worth a
    /// write per delivery). A legacy socket saves `sent` too: its client cannot drop the
    /// duplicates a resend after hibernation would bring.
    pub fn save(&mut self) {
        let unchanged = match (&self.saved, &self.sub) {
            (Some(None), None) => true,
            (Some(Some(saved)), Some(sub)) => !(sub.needs_saving(saved) || self.legacy && sub.sent != saved.sent),
            _ => false,
        };
        if unchanged {
            return;
        }
        let attachment = Attachment { subscription: &self.sub, grant: &self.grant, legacy: self.legacy };
        let Ok(encoded) = serde_json::to_string(&attachment) else { return };
        match self.ws.serialize_attachment(encoded) {
            Ok(()) => self.saved = Some(self.sub.clone()),
            Err(e) => console_error!("could not save subscription state: {e}"),
        }
    }

    /// Sends a frame; a socket that is already closing is cleaned up by its close event.
    pub fn send(&self, frame: &str) {
        let _ = self.ws.send_with_str(frame);
    }

    /// Sends a frame already made into a JavaScript string. `send` copies the frame out of
    /// the Worker's memory into a new string for every socket; a publish fanned out to many
    /// subscribers makes that string once (see `delivery::Recent`).
    pub fn send_js(&self, frame: &JsValue) {
        let socket: &JsValue = self.ws.as_ref();
        let _ = socket.unchecked_ref::<RawSocket>().send_value(frame);
    }
}

#[derive(Default)]
pub struct Sessions {
    by_conn: HashMap<String, Session>,
}

impl Sessions {
    /// Rebuilds the index from the sockets the runtime still holds for this object. A saved
    /// subscription continues as [`Subscription::restored`] describes.
    pub fn load(state: &State) -> Sessions {
        let mut sessions = Sessions::default();
        for ws in state.get_websockets() {
            let Some(conn) = state.get_tags(&ws).into_iter().next() else { continue };
            let attachment = ws.deserialize_attachment::<String>().ok().flatten().and_then(|text| read_attachment(&text));
            let session = match attachment {
                Some(SavedAttachment { subscription, grant, legacy }) => {
                    Session::new(ws, subscription.clone().map(Subscription::restored), grant, legacy, Some(subscription))
                }
                // Unreadable: the socket keeps no rights, so its next frame is refused.
                None => Session::new(ws, None, Grant { actions: Default::default(), token: None }, false, None),
            };
            sessions.by_conn.insert(conn, session);
        }
        sessions
    }

    /// Whether connection `conn` speaks the original protocol.
    pub fn is_legacy(&self, conn: &str) -> bool {
        self.by_conn.get(conn).is_some_and(|s| s.legacy)
    }

    pub fn conn_id(state: &State, ws: &WebSocket) -> Option<String> {
        state.get_tags(ws).into_iter().next()
    }

    pub fn insert(&mut self, conn: String, ws: WebSocket, grant: Grant, legacy: bool) {
        let mut session = Session::new(ws, None, grant, legacy, None);
        session.save();
        self.by_conn.insert(conn, session);
    }

    pub fn remove(&mut self, conn: &str) -> Option<Session> {
        self.by_conn.remove(conn)
    }

    pub fn get_mut(&mut self, conn: &str) -> Option<&mut Session> {
        self.by_conn.get_mut(conn)
    }

    pub fn len(&self) -> usize {
        self.by_conn.len()
    }

    pub fn subscribed_mut(&mut self) -> impl Iterator<Item = (&String, &mut Session)> {
        self.by_conn.iter_mut().filter(|(_, s)| s.sub.is_some())
    }

    /// Every connection's subscription.
    pub fn subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        self.by_conn.values().filter_map(|s| s.sub.as_ref())
    }

    /// The connections subscribed as durable consumer `name` (one at most: the newest takes
    /// over), except `except`.
    pub fn consumer_mut<'a>(&'a mut self, name: &'a str, except: Option<&'a str>) -> impl Iterator<Item = &'a mut Session> + 'a {
        self.by_conn
            .iter_mut()
            .filter(move |(conn, s)| Some(conn.as_str()) != except && s.sub.as_ref().and_then(|sub| sub.consumer.as_deref()) == Some(name))
            .map(|(_, s)| s)
    }

    pub fn subscriber_count(&self) -> usize {
        self.by_conn.values().filter(|s| s.sub.is_some()).count()
    }

    /// Removes every socket, e.g. to close them all when the subject is deleted.
    pub fn drain(&mut self) -> impl Iterator<Item = Session> + '_ {
        self.by_conn.drain().map(|(_, s)| s)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Session)> {
        self.by_conn.iter_mut()
    }

    /// Whether any socket holds a token (expiry and revocations to watch).
    pub fn any_token(&self) -> bool {
        self.by_conn.values().any(|s| s.grant.token.is_some())
    }

    /// The sockets opened with a token of this `sub`.
    pub fn token_connections(&self, sub: &str) -> usize {
        self.by_conn.values().filter(|s| s.grant.token.as_ref().is_some_and(|t| t.sub == sub)).count()
    }

    /// When the first token of a socket expires.
    pub fn earliest_expiry(&self) -> Option<u64> {
        self.by_conn.values().filter_map(|s| s.grant.expires_at_ms()).min()
    }

    /// The earliest redelivery deadline among the subscriptions.
    pub fn earliest_deadline(&self) -> Option<u64> {
        self.by_conn.values().filter_map(|s| s.sub.as_ref()?.deadline).min()
    }
}
