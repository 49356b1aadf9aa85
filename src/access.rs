//! Which actions a request needs (docs/PROTOCOL.md § Access tokens): plain functions of the
//! route, the method and the few headers that change the answer, checked in the Worker
//! before anything reaches a Durable Object.

use crate::routes::Route;
use durable_stream_protocol::token::Actions;
use durable_stream_protocol::ClientFrame;

/// What a WebSocket frame needs. Acks and `unsub` need nothing more: they act on a
/// subscription, which needed `sub`; `auth` brings its own credentials.
pub fn frame(frame: &ClientFrame) -> Actions {
    match frame {
        ClientFrame::Publish { .. } => Actions::PUB,
        ClientFrame::Subscribe { .. } | ClientFrame::Info { .. } | ClientFrame::Get { .. } | ClientFrame::Consumers { .. } => Actions::SUB,
        ClientFrame::Trim { .. } | ClientFrame::ConsumerDelete { .. } | ClientFrame::ConsumerReset { .. } => Actions::ADMIN,
        ClientFrame::StateGet { .. } | ClientFrame::StatePut { .. } => Actions::STATE,
        ClientFrame::Ack { .. } | ClientFrame::Unsubscribe { .. } | ClientFrame::Auth { .. } => Actions::NONE,
    }
}

/// The actions a request on a subject route needs; [`Actions::NONE`] for a WebSocket upgrade,
/// which needs any action on the subject (each frame is checked by the subject itself).
pub fn subject_request(route: Route, method: &str, upgrade: bool) -> Actions {
    match (route, method) {
        (Route::Subject, "GET") if upgrade => Actions::NONE,
        (Route::Subject, "POST") => Actions::PUB,
        (Route::Subject | Route::SubjectMessages, "DELETE") | (Route::SubjectConsumer, _) => Actions::ADMIN,
        (Route::SubjectState, _) => Actions::STATE,
        // Info, reads and the consumer listing.
        _ => Actions::SUB,
    }
}

/// What a Durable Streams request needs: reads `sub`, appends `pub`, closing, creating and
/// deleting `admin` (a close that also appends: both).
pub fn ds_request(method: &str, closes: bool, has_body: bool) -> Actions {
    match method {
        "GET" | "HEAD" => Actions::SUB,
        "POST" if closes && has_body => Actions::PUB.union(Actions::ADMIN),
        "POST" if closes => Actions::ADMIN,
        "POST" => Actions::PUB,
        _ => Actions::ADMIN,
    }
}

/// What a request on a file needs.
pub fn file_request(method: &str) -> Actions {
    match method {
        "GET" | "HEAD" => Actions::FILES_READ,
        _ => Actions::FILES_WRITE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_routes_map_to_their_actions() {
        let cases = [
            (Route::Subject, "GET", true, Actions::NONE),
            (Route::Subject, "GET", false, Actions::SUB),
            (Route::Subject, "POST", false, Actions::PUB),
            (Route::Subject, "DELETE", false, Actions::ADMIN),
            (Route::SubjectMessages, "GET", false, Actions::SUB),
            (Route::SubjectMessage, "GET", false, Actions::SUB),
            (Route::SubjectMessages, "DELETE", false, Actions::ADMIN),
            (Route::SubjectState, "GET", false, Actions::STATE),
            (Route::SubjectState, "PUT", false, Actions::STATE),
            (Route::SubjectConsumers, "GET", false, Actions::SUB),
            (Route::SubjectConsumer, "PUT", false, Actions::ADMIN),
            (Route::SubjectConsumer, "DELETE", false, Actions::ADMIN),
        ];
        for (route, method, upgrade, needed) in cases {
            assert_eq!(subject_request(route, method, upgrade), needed, "{route:?} {method}");
        }
    }

    #[test]
    fn durable_streams_requests_map_to_their_actions() {
        assert_eq!(ds_request("GET", false, false), Actions::SUB);
        assert_eq!(ds_request("HEAD", false, false), Actions::SUB);
        assert_eq!(ds_request("POST", false, true), Actions::PUB);
        assert_eq!(ds_request("POST", true, false), Actions::ADMIN);
        assert_eq!(ds_request("POST", true, true), Actions::PUB.union(Actions::ADMIN));
        assert_eq!(ds_request("PUT", false, true), Actions::ADMIN);
        assert_eq!(ds_request("DELETE", false, false), Actions::ADMIN);
    }

    #[test]
    fn frames_map_to_their_actions() {
        let config = durable_stream_protocol::Config::default();
        let cases = [
            (r#"{"op":"pub","data":1}"#, Actions::PUB),
            (r#"{"op":"sub"}"#, Actions::SUB),
            (r#"{"op":"info"}"#, Actions::SUB),
            (r#"{"op":"get","seq":1}"#, Actions::SUB),
            (r#"{"op":"trim","upto":1}"#, Actions::ADMIN),
            (r#"{"op":"state.get"}"#, Actions::STATE),
            (r#"{"op":"state.put","state":1}"#, Actions::STATE),
            (r#"{"op":"ack","seq":1}"#, Actions::NONE),
            (r#"{"op":"unsub"}"#, Actions::NONE),
            (r#"{"op":"auth","token":"t"}"#, Actions::NONE),
            (r#"{"op":"consumers"}"#, Actions::SUB),
            (r#"{"op":"consumer.delete","name":"c"}"#, Actions::ADMIN),
            (r#"{"op":"consumer.reset","name":"c","acked":0}"#, Actions::ADMIN),
        ];
        for (text, needed) in cases {
            let parsed = durable_stream_protocol::frame::parse_client_frame(text, &config).unwrap();
            assert_eq!(frame(&parsed), needed, "{text}");
        }
    }

    #[test]
    fn file_reads_and_writes() {
        assert_eq!(file_request("GET"), Actions::FILES_READ);
        assert_eq!(file_request("HEAD"), Actions::FILES_READ);
        for write in ["PUT", "POST", "DELETE"] {
            assert_eq!(file_request(write), Actions::FILES_WRITE);
        }
    }
}
