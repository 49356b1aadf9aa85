//! Connected sockets and their subscriptions. The subscription state is written to the socket's
//! attachment when it changes in more than how far delivery got (see
//! [`Subscription::needs_saving`]), so it survives the object hibernating; this map is the
//! in-memory index, rebuilt from the attachments when the object wakes up.

use durable_stream_protocol::Subscription;
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
    /// What the attachment holds (None: nothing written yet).
    saved: Option<Option<Subscription>>,
}

impl Session {
    fn new(ws: WebSocket, sub: Option<Subscription>, saved: Option<Option<Subscription>>) -> Self {
        Session { ws, sub, saved }
    }

    /// Persists the subscription into the socket's attachment, unless the attachment already
    /// holds it up to how far delivery got (`sent`, which is not worth a write per delivery).
    pub fn save(&mut self) {
        let unchanged = match (&self.saved, &self.sub) {
            (Some(None), None) => true,
            (Some(Some(saved)), Some(sub)) => !sub.needs_saving(saved),
            _ => false,
        };
        if unchanged {
            return;
        }
        let encoded = serde_json::to_string(&self.sub).unwrap_or_else(|_| "null".into());
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
            let sub = ws
                .deserialize_attachment::<String>()
                .ok()
                .flatten()
                .and_then(|text| serde_json::from_str::<Option<Subscription>>(&text).ok());
            let session = match sub {
                Some(saved) => Session::new(ws, saved.clone().map(Subscription::restored), Some(saved)),
                None => Session::new(ws, None, None),
            };
            sessions.by_conn.insert(conn, session);
        }
        sessions
    }

    pub fn conn_id(state: &State, ws: &WebSocket) -> Option<String> {
        state.get_tags(ws).into_iter().next()
    }

    pub fn insert(&mut self, conn: String, ws: WebSocket) {
        let mut session = Session::new(ws, None, None);
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

    pub fn subscriber_count(&self) -> usize {
        self.by_conn.values().filter(|s| s.sub.is_some()).count()
    }

    /// Removes every socket, e.g. to close them all when the subject is deleted.
    pub fn drain(&mut self) -> impl Iterator<Item = Session> + '_ {
        self.by_conn.drain().map(|(_, s)| s)
    }

    /// The earliest redelivery deadline among the subscriptions.
    pub fn earliest_deadline(&self) -> Option<u64> {
        self.by_conn.values().filter_map(|s| s.sub.as_ref()?.deadline).min()
    }
}
