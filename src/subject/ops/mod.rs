//! One module per operation, each a function from a parsed request to its reply.

pub mod auth;
pub mod get;
pub mod consumers;
pub mod info;
pub mod publish;
pub mod state;
pub mod subscribe;
pub mod trim;

use super::Core;
use crate::http::Failure;
use durable_stream_protocol::ClientFrame;
use worker::Env;

/// Runs one client request from connection `conn`, sending its reply on that connection.
pub fn run(core: &mut Core, env: &Env, conn: &str, frame: ClientFrame, now: u64) -> Result<(), Failure> {
    let reply = match frame {
        ClientFrame::Publish { id, payload, msg_ids: Some(msg_ids), expect_last_seq, .. } => {
            return publish::keyed_batch_over_websocket(core, conn, id.as_ref(), &payload, &msg_ids, expect_last_seq, now);
        }
        ClientFrame::Publish { id, payload, msg_id, msg_ids: None, expect_last_seq } => {
            let conditions = publish::Conditions { msg_id: msg_id.as_deref(), expect_last_seq };
            return publish::over_websocket(core, conn, id.as_ref(), &payload, conditions, now);
        }
        ClientFrame::Subscribe { id, from, consumer, window } => {
            return subscribe::subscribe(core, conn, id.as_ref(), from, consumer, window, now)
        }
        ClientFrame::Ack { id, seq } => return subscribe::ack(core, conn, id.as_ref(), seq, now),
        ClientFrame::Unsubscribe { id } => subscribe::unsubscribe(core, conn, id.as_ref())?,
        ClientFrame::Info { id } => info::over_websocket(core, id.as_ref())?,
        ClientFrame::Trim { id, upto } => trim::over_websocket(core, id.as_ref(), upto, now)?,
        ClientFrame::StateGet { id } => state::get_over_websocket(core, id.as_ref())?,
        ClientFrame::StatePut { id, state, version } => {
            state::put_over_websocket(core, id.as_ref(), state.get(), version)?
        }
        ClientFrame::Auth { id, token } => auth::refresh(core, env, conn, id.as_ref(), &token)?,
        ClientFrame::Get { id, message } => get::over_websocket(core, id.as_ref(), message)?,
        ClientFrame::Consumers { id } => consumers::list_over_websocket(core, id.as_ref())?,
        ClientFrame::ConsumerDelete { id, name } => consumers::delete_over_websocket(core, id.as_ref(), &name)?,
        ClientFrame::ConsumerReset { id, name, acked } => consumers::reset_over_websocket(core, id.as_ref(), &name, acked, now)?,
    };
    reply_to(core, conn, &reply);
    Ok(())
}

/// Sends a frame to one connection.
pub fn reply_to(core: &mut Core, conn: &str, frame: &str) {
    if let Some(session) = core.sessions.get_mut(conn) {
        session.send(frame);
    }
}
