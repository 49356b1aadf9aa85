//! The object's WebSocket events, exported by hand instead of by `#[durable_object]`: each runs
//! synchronously and returns nothing, as a JavaScript handler does, unless its alarm must be read
//! or moved, which only a promise can wait for. An async export costs every frame a promise, a
//! microtask and the wasm-bindgen closures around its future (bench/RESULTS.md, "What runs in
//! the isolate").

use super::sessions::Sessions;
use super::{legacy, now_ms, ops, ds, Subject};
use crate::http::Failure;
use durable_stream_protocol::frame::{encode_error, parse_client_frame};
use durable_stream_protocol::{ClientFrame, ProtocolError};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::future_to_promise;
use worker::worker_sys::web_sys;
use worker::{Result, WebSocket};

#[wasm_bindgen]
impl Subject {
    /// A frame from a socket: text, or `ArrayBuffer` for a binary frame (refused).
    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn web_socket_message(&self, ws: web_sys::WebSocket, message: JsValue) -> JsValue {
        self.settle(self.on_message(ws.into(), message.as_string()))
    }

    #[wasm_bindgen(js_name = webSocketClose)]
    pub fn web_socket_close(&self, ws: web_sys::WebSocket, code: u16, _reason: String, _was_clean: bool) -> JsValue {
        self.settle(self.on_close(ws.into(), code))
    }

    #[wasm_bindgen(js_name = webSocketError)]
    pub fn web_socket_error(&self, ws: web_sys::WebSocket, _error: JsValue) -> JsValue {
        self.settle(self.on_socket_error(ws.into()))
    }
}

impl Subject {
    /// The event's answer to the runtime, given the alarm it wants: nothing when that alarm is
    /// in place already, else the promise of scheduling it. A failed event rejects, as the
    /// promise of an async handler would.
    fn settle(&self, wanted: Result<Option<u64>>) -> JsValue {
        match wanted {
            Ok(wanted) if !self.alarm.must_move(wanted) => JsValue::UNDEFINED,
            Ok(wanted) => {
                let alarm = self.alarm.clone();
                future_to_promise(async move { alarm.schedule(wanted).await.map(|()| JsValue::UNDEFINED).map_err(JsValue::from) })
                    .into()
            }
            Err(error) => js_sys::Promise::reject(&JsValue::from(error)).into(),
        }
    }

    /// Runs one frame (`text`; `None` for a binary one). Returns when the alarm must fire next.
    fn on_message(&self, ws: WebSocket, text: Option<String>) -> Result<Option<u64>> {
        let Some(conn) = Sessions::conn_id(&self.state, &ws) else { return Ok(None) };
        self.with_core(None, |core| {
            let now = now_ms();
            core.telemetry.mark_changed();
            let outcome = match text {
                Some(text) if core.sessions.is_legacy(&conn) => {
                    legacy::on_frame(core, &conn, &text, now);
                    Ok(())
                }
                Some(text) => parse_client_frame(&text, &core.config)
                    .map_err(|e| (e.id, Failure::Client(e.error)))
                    .and_then(|frame| {
                        let id = frame.id().cloned();
                        match core.check_frame(&conn, crate::access::frame(&frame), now) {
                            Ok(()) => {}
                            // The socket was closed (its token expired): nothing to answer.
                            Err(None) => return Ok(()),
                            Err(Some(refusal)) => return Err((id, Failure::Client(refusal))),
                        }
                        let publish = matches!(frame, ClientFrame::Publish { .. });
                        ds::admit(core, publish, now)
                            .and_then(|()| ops::run(core, &self.env, &conn, frame, now))
                            .map_err(|e| (id, e))
                    }),
                None => Err((
                    None,
                    Failure::Client(ProtocolError::bad_request("binary frames are not supported; send JSON text")),
                )),
            };
            if let Err((id, failure)) = outcome {
                core.telemetry.count_error(failure.code());
                let _ = ws.send_with_str(encode_error(id.as_ref(), &failure.into_client_error()));
            }
            self.wanted_alarm(core)
        })?
    }

    fn on_close(&self, ws: WebSocket, code: u16) -> Result<Option<u64>> {
        self.forget_socket(&ws)?;
        // Complete the closing handshake; codes the peer may not echo become a normal close.
        let code = match code {
            1000 | 1001 | 1003 | 1007..=1014 | 3000..=4999 => code,
            _ => 1000,
        };
        let _ = ws.close(Some(code), Some("closed"));
        Ok(self.report_due())
    }

    fn on_socket_error(&self, ws: WebSocket) -> Result<Option<u64>> {
        self.forget_socket(&ws)?;
        Ok(self.report_due())
    }

    fn forget_socket(&self, ws: &WebSocket) -> Result<()> {
        if let Some(conn) = Sessions::conn_id(&self.state, ws) {
            self.with_core(None, |core| {
                core.telemetry.mark_changed();
                core.sessions.remove(&conn);
            })?;
        }
        Ok(())
    }
}
