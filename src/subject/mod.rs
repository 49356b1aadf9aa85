//! The per-subject Durable Object: a thin shell that feeds storage and sockets to the
//! decisions in the `protocol` crate.

mod access;
mod alarm_clock;
mod delivery;
pub(crate) mod ds;
mod events;
mod http_api;
mod legacy;
mod ops;
mod sessions;
mod store;
mod telemetry;

use crate::http::{self, Failure};
use crate::panic_guard::abort_on_panic;
use crate::{auth, GRANT_HEADER};
use crate::random::random_hex;
use alarm_clock::AlarmClock;
use delivery::pump;
use durable_stream_protocol::frame::{encode_hello, encode_skipped};
use durable_stream_protocol::subscription::Redelivery;
use durable_stream_protocol::wakeup::rearm_time;
use durable_stream_protocol::directory::DirectoryConfig;
use durable_stream_protocol::rate::Limiter;
use durable_stream_protocol::token::{Grant, RevocationList};
use durable_stream_protocol::{dedup, retention, Config, ErrorCode, ProtocolError};
use sessions::Sessions;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use store::{Meta, Store};
use telemetry::Telemetry;
use worker::{
    console_error, durable_object, Date, DurableObject, Env, Method, Request, Response, Result, State, WebSocketPair,
};

/// `fetch` and `alarm` are exported by the macro, the WebSocket events by `events`.
#[durable_object(alarm)]
pub struct Subject {
    state: State,
    /// The runtime's handle on `state`, to abort the object if it panics (`panic_guard`).
    runtime_state: js_sys::Object,
    env: Env,
    core: RefCell<Option<Core>>,
    alarm: AlarmClock,
}

/// Everything an operation needs: limits, storage, counters and connected sockets.
pub(crate) struct Core {
    pub config: Config,
    pub store: Store,
    pub meta: Meta,
    pub sessions: Sessions,
    /// Long-polling HTTP reads waiting for the next publish.
    pub waiters: Vec<futures_channel::oneshot::Sender<()>>,
    /// The Durable Streams protocol's state (`/ds`).
    pub ds: ds::DsCore,
    /// The revocations last read, and when (re-read every `REVOCATION_CHECK_MS` while a
    /// socket holds a token).
    pub revocations: Rc<RevocationList>,
    pub revocations_checked_at: u64,
    /// Publish rate limits per token `sub`.
    pub token_limiters: HashMap<String, Limiter>,
    /// What the subject reports to the directory, and when.
    pub telemetry: Telemetry,
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

impl Core {
    /// Deletes the subject's messages, consumers and state under a new epoch, closes its
    /// sockets (code 4001 with `reason`) and answers waiting readers.
    fn start_over(&mut self, reason: &str) -> Result<()> {
        self.store.wipe(&mut self.meta, random_hex(8))?;
        self.telemetry.mark_changed();
        for session in self.sessions.drain() {
            let _ = session.ws.close(Some(http_api::SUBJECT_DELETED_CLOSE_CODE), Some(reason));
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(());
        }
        Ok(())
    }

    /// Wakes the subscriptions whose window allows more and sends them what is stored.
    fn pump_all(&mut self, now: u64) -> Result<()> {
        let bounds = self.meta.bounds();
        for (_, session) in self.sessions.subscribed_mut() {
            if pump(session, &self.store, &self.config, bounds, None, now)? {
                session.save();
            }
        }
        Ok(())
    }

    /// When the object next has work to do on its own: a redelivery, an age-based trim, or
    /// forgetting idempotency keys.
    fn next_wakeup(&self) -> Result<Option<u64>> {
        let mut candidates = vec![self.sessions.earliest_deadline()];
        if self.config.retention_max_age_ms > 0 {
            candidates.push(self.store.oldest_ts()?.and_then(|ts| retention::age_expiry(ts, &self.config)));
        }
        candidates.push(self.store.oldest_dedup_ts()?.map(|ts| dedup::forget_at(ts, self.config.dedup_window_ms)));
        candidates.push(ds::expiry_deadline(self)?);
        candidates.push(self.token_wakeup());
        candidates.push(self.telemetry.next_report());
        Ok(candidates.into_iter().flatten().min())
    }

    /// Redelivers or skips what has waited too long for an ack, and applies age retention.
    fn on_alarm(&mut self, now: u64) -> Result<()> {
        let before = (self.meta.first_seq, self.sessions.len());
        self.enforce_tokens(now);
        ops::publish::enforce_retention(self, now)?;
        if before != (self.meta.first_seq, self.sessions.len()) {
            self.telemetry.mark_changed();
        }
        self.store.dedup_prune(dedup::expiry_cutoff(now, self.config.dedup_window_ms))?;
        let bounds = self.meta.bounds();
        for (_, session) in self.sessions.subscribed_mut() {
            let Some(sub) = session.sub.as_mut() else { continue };
            sub.skip_trimmed(bounds);
            match sub.redeliver(now, self.config.ack_wait_ms, self.config.max_deliver) {
                Some(Redelivery::Resend(range)) => {
                    if let Some(consumer) = sub.consumer.as_deref() {
                        self.store.count_redelivered(consumer, *range.end() - *range.start() + 1)?;
                    }
                    self.telemetry.mark_changed();
                    delivery::send_range(session, &self.store, &self.config, range, true, None)?;
                }
                Some(Redelivery::Skip(range)) => {
                    self.telemetry.mark_changed();
                    if let Some(consumer) = sub.consumer.as_deref() {
                        self.store.set_consumer_acked(consumer, *range.end(), now)?;
                    }
                    session.send(&encode_skipped(*range.start(), *range.end()));
                }
                None => {}
            }
            session.save();
        }
        self.pump_all(now)
    }
}

impl Subject {
    /// Loads the subject's storage and sockets on the first event after a (re)start.
    fn with_core<T>(&self, subject: Option<&str>, f: impl FnOnce(&mut Core) -> T) -> Result<T> {
        let mut slot = self.core.borrow_mut();
        if slot.is_none() {
            let lookup = |name: &str| self.env.var(name).ok().map(|v| v.to_string());
            let config = Config::from_lookup(lookup).map_err(|e| worker::Error::RustError(e.to_string()))?;
            let directory = DirectoryConfig::from_lookup(lookup).map_err(|e| worker::Error::RustError(e.to_string()))?;
            let (store, meta) = Store::open(self.state.storage().sql(), subject.unwrap_or_default(), || random_hex(8))?;
            let ds = ds::DsCore::load(self.state.storage().sql(), lookup)?;
            let telemetry = Telemetry::new(&meta.subject, directory.report_ms, self.state.storage());
            *slot = Some(Core {
                config,
                store,
                meta,
                sessions: Sessions::load(&self.state),
                waiters: Vec::new(),
                ds,
                revocations: Rc::default(),
                revocations_checked_at: 0,
                token_limiters: HashMap::new(),
                telemetry,
            });
        }
        Ok(f(slot.as_mut().expect("core was just loaded")))
    }

    /// Counts an error answered by this subject, if it is loaded (a request refused before it
    /// loaded the subject is not worth loading it for).
    fn count_error(&self, code: ErrorCode) {
        if let Some(core) = self.core.borrow_mut().as_mut() {
            core.telemetry.count_error(code);
        }
    }

    /// Drops everything held in memory, as hibernation does: the next event reloads the
    /// subject from storage and its sockets from their attachments (test builds only).
    #[cfg(feature = "test-hooks")]
    fn forget_memory(&self) {
        *self.core.borrow_mut() = None;
        self.alarm.forget();
    }

    /// When the next alarm must fire after an event. Recomputed from scratch every time: a
    /// publish can make an earlier deadline (age retention, redelivery, expiry) than the alarm
    /// already pending, and `schedule` only ever moves the alarm earlier.
    fn wanted_alarm(&self, core: &Core) -> Result<Option<u64>> {
        core.next_wakeup()
    }

    /// Makes sure the alarm reports what an event changed (events that schedule nothing else:
    /// those that do include the report in [`Core::next_wakeup`]).
    async fn schedule_report(&self) -> Result<()> {
        self.alarm.schedule(self.report_due()).await
    }

    /// When the alarm must report to the directory, if the subject has something to report.
    fn report_due(&self) -> Option<u64> {
        self.core.borrow().as_ref().and_then(|core| core.telemetry.next_report())
    }

    /// Accepts a WebSocket; a legacy one (the original protocol) gets no hello, as the original
    /// sent nothing on connect.
    fn accept_websocket(&self, subject: &str, grant: Grant, legacy: bool) -> std::result::Result<(Response, Option<u64>), Failure> {
        let hello = self.with_core(Some(subject), |core| {
            if core.sessions.len() >= core.config.max_connections {
                return Err(ProtocolError::new(
                    ErrorCode::RateLimited,
                    format!("subject has reached its limit of {} connections", core.config.max_connections),
                ));
            }
            if let Some(token) = grant.token.as_ref() {
                let limit = token.limits.connections.map_or(usize::MAX, |n| n as usize);
                if core.sessions.token_connections(&token.sub) >= limit {
                    return Err(ProtocolError::new(
                        ErrorCode::RateLimited,
                        format!("the token of {:?} may hold {limit} connections to this subject; close one first", token.sub),
                    ));
                }
            }
            Ok(encode_hello(&core.meta.subject, core.meta.last_seq, &core.meta.epoch, grant.token.as_ref()))
        })??;
        let pair = WebSocketPair::new()?;
        let conn = random_hex(12);
        self.state.accept_websocket_with_tags(&pair.server, &[&conn]);
        let wakeup = self.with_core(None, |core| {
            core.sessions.insert(conn, pair.server.clone(), grant, legacy);
            core.telemetry.mark_changed();
            core.next_wakeup()
        })??;
        if !legacy {
            pair.server.send_with_str(hello)?;
        }
        Ok((Response::from_websocket(pair.client)?, wakeup))
    }

    /// Re-reads the revocation list when a socket holds a token (the revoked ones are closed
    /// by `Core::enforce_tokens`). Read at most half a check interval old, so a revocation
    /// reaches the sockets within about one and a half intervals.
    async fn check_revocations(&self) -> Result<()> {
        let Some(interval) = self.with_core(None, |core| core.sessions.any_token().then_some(core.config.revocation_check_ms))? else {
            return Ok(());
        };
        let list = auth::revocation_list(&self.env, interval / 2).await;
        self.with_core(None, |core| {
            // Checked or not, the next check waits an interval (no tight retry loop).
            core.revocations_checked_at = now_ms();
            match list {
                Ok(list) => core.revocations = list,
                Err(failure) => console_error!("could not read the revocation list: {failure:?}"),
            }
        })
    }

    async fn handle_fetch(&self, req: Request) -> std::result::Result<Response, Failure> {
        let path = req.path();
        if ds::is_ds_path(&path) {
            return Ok(self.handle_ds(req).await);
        }
        let mut segments = path.trim_start_matches('/').split('/').skip(2);
        let subject = segments.next().unwrap_or_default().to_string();
        let rest: Vec<&str> = segments.collect();
        let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
        if rest.is_empty() && upgrade.eq_ignore_ascii_case("websocket") {
            let legacy = path.starts_with(crate::legacy::SUBJECT_PATH);
            let (response, wakeup) = self.accept_websocket(&subject, grant_of(&req)?, legacy)?;
            // A token's expiry (and revocation checks) need the alarm.
            self.alarm.schedule(wakeup).await?;
            return Ok(response);
        }
        // Loads the subject (creating it under its name) before any HTTP operation, and refuses
        // what a Durable Streams configuration forbids (see `ds::admit`).
        // A wipe is always allowed: it is how a subject the protocol closed or deleted is reopened.
        let publish = req.method() == Method::Post && rest.is_empty();
        let wipe = req.method() == Method::Delete && rest.is_empty();
        self.with_core(Some(&subject), |core| {
            core.telemetry.mark_changed();
            if wipe { Ok(()) } else { ds::admit(core, publish, now_ms()) }
        })??;
        self.handle_http(req, &rest).await
    }
}

/// The caller's grant, which the Worker puts on every request it forwards.
pub(crate) fn grant_of(req: &Request) -> std::result::Result<Grant, Failure> {
    let header = req
        .headers()
        .get(GRANT_HEADER)?
        .ok_or_else(|| worker::Error::RustError("a request reached the subject without a grant".into()))?;
    serde_json::from_str(&header).map_err(|e| worker::Error::RustError(format!("unreadable grant: {e}")).into())
}

impl DurableObject for Subject {
    fn new(state: State, env: Env) -> Self {
        let handle = state._inner();
        let runtime_state = handle.clone();
        let alarm = AlarmClock::new(handle.clone());
        Subject { state: State::from(handle), runtime_state, env, core: RefCell::new(None), alarm }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let outcome = abort_on_panic(&self.runtime_state, self.handle_fetch(req)).await;
        if let Err(failure) = &outcome {
            self.count_error(failure.code());
        }
        self.schedule_report().await?;
        Ok(http::or_error_response(outcome))
    }

    async fn alarm(&self) -> Result<Response> {
        let running = self.alarm.fired();
        self.ds_expire(now_ms()).await?;
        self.check_revocations().await?;
        let report = self.with_core(None, |core| {
            core.on_alarm(now_ms())?;
            core.due_report(now_ms())
        })??;
        if let Some(report) = report {
            telemetry::send(&self.env, report, &self.core).await;
        }
        let wakeup = self.with_core(None, |core| {
            let now = now_ms();
            Ok::<_, worker::Error>(core.next_wakeup()?.map(|wanted| rearm_time(wanted, now, running)))
        })??;
        self.alarm.schedule(wakeup).await?;
        Response::ok("")
    }
}

