//! Sockets that speak the original durable-stream protocol (`/stream/{subject}`): a thin
//! adapter from its frames (`protocol::legacy`) to the same operations native frames run, on
//! the same storage and sequence. Its deliveries are encoded by `delivery` (the session is
//! marked legacy).

use super::ops::{self, publish, reply_to, subscribe};
use super::store::Draft;
use super::{ds, Core};
use crate::http::Failure;
use durable_stream_protocol::legacy::{
    encode_error, fit_reply, keeps_subscription, parse_frame, subscription_start, Command, LegacyError, LegacyFrame, Request, DEFAULT_STATE,
};
use durable_stream_protocol::token::Actions;
use durable_stream_protocol::Subscription;
use worker::console_error;

/// Handles one text frame of legacy connection `conn`. Every refusal is answered on the socket
/// (nothing is left for the caller to answer).
pub fn on_frame(core: &mut Core, conn: &str, text: &str, now: u64) {
    let failure = match parse_frame(text, &core.config) {
        Ok(LegacyFrame::Ack(seq)) => return ack(core, conn, seq, now),
        Ok(LegacyFrame::Request(request)) => match run(core, conn, &request, now) {
            Ok(()) => return,
            Err(failure) => {
                core.telemetry.count_error(failure.code());
                LegacyError { echo: Some(request.echo), error: failure.into_client_error() }
            }
        },
        Err(refusal) => {
            core.telemetry.count_error(refusal.error.code);
            refusal
        }
    };
    reply_to(core, conn, &encode_error(failure.echo.as_ref(), core.meta.last_seq, &failure.error));
}

/// What a command needs of the connection's grant (as the native frame it stands for).
fn needed(command: &Command) -> Actions {
    match command {
        Command::Publish => Actions::PUB,
        Command::Info | Command::Subscribe { .. } => Actions::SUB,
        Command::Unsubscribe => Actions::NONE,
        Command::DeleteMessages { .. } => Actions::ADMIN,
        Command::GetState | Command::PutState { .. } => Actions::STATE,
    }
}

fn run(core: &mut Core, conn: &str, request: &Request, now: u64) -> Result<(), Failure> {
    match core.check_frame(conn, needed(&request.command), now) {
        Ok(()) => {}
        // The socket was closed (its token expired): nothing to answer.
        Err(None) => return Ok(()),
        Err(Some(refusal)) => return Err(refusal.into()),
    }
    let echo = &request.echo;
    ds::admit(core, request.command == Command::Publish, now)?;
    let reply = match &request.command {
        Command::Publish => {
            let headers = request.publisher_headers();
            let messages = [Draft { data: request.data(), headers: Some(&headers) }];
            let token = core.rate_limited_token(conn);
            core.admit_publish(Some(conn), token.as_ref(), 1, messages[0].size() as usize, now)?;
            let published = publish::store(core, &messages, publish::Conditions::default(), now)?;
            // Replied once stored, before the fan-out: the publisher may be subscribed too.
            reply_to(core, conn, &echo.reply(published.first, None));
            return Ok(publish::fan_out(core, &published, &messages, now)?);
        }
        Command::Subscribe { after } => {
            let sent = core.sessions.get_mut(conn).and_then(|s| s.sub.as_ref()).map(|sub| sub.sent);
            if keeps_subscription(*after, sent) {
                echo.reply(core.meta.last_seq, None)
            } else {
                // Replaces any running subscription (the original replayed on top of it).
                let start = subscription_start(*after, core.meta.last_seq);
                let sub = Subscription::new(start, core.config.default_window, None);
                return subscribe::begin(core, conn, sub, &echo.reply(core.meta.last_seq, None), now);
            }
        }
        Command::Info => echo.reply(core.meta.last_seq, None),
        Command::Unsubscribe => {
            subscribe::unsubscribe(core, conn, None)?;
            echo.reply(core.meta.last_seq, None)
        }
        Command::DeleteMessages { upto } => {
            if let Some(upto) = upto {
                ops::trim::trim(core, *upto, now)?;
            }
            echo.reply(core.meta.last_seq, None)
        }
        Command::GetState => {
            let (state, version) = ops::state::get(core)?;
            // Never written: the original's default, which apps read as a resume point.
            let state = if version == 0 { DEFAULT_STATE } else { &state };
            echo.reply(core.meta.last_seq, Some(state))
        }
        Command::PutState { state } => {
            ops::state::put(core, state, None)?;
            echo.reply(core.meta.last_seq, None)
        }
    };
    reply_to(core, conn, &fit_reply(reply, echo, core.meta.last_seq));
    Ok(())
}

/// Applies an ack (cumulative, as native acks are). Acks never get an answer, and a stray one
/// (no subscription, a message never delivered, a repeat) is ignored.
fn ack(core: &mut Core, conn: &str, seq: Option<u64>, now: u64) {
    let subscribed = core.sessions.get_mut(conn).is_some_and(|s| s.sub.is_some());
    let Some(seq) = seq.filter(|_| subscribed) else {
        return;
    };
    if let Err(Failure::Internal(error)) = subscribe::ack(core, conn, None, seq, now) {
        console_error!("internal error on an ack: {error}");
    }
}
