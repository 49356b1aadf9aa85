//! Frames, validation and decisions shared by the durable-stream server and its clients.
//!
//! Everything here is plain Rust with no I/O: the Worker feeds it what it read from storage and
//! sockets, and does what the functions decide. The wire format is documented in
//! `docs/PROTOCOL.md`; the types here are its executable form.

pub mod auth;
pub mod config;
pub mod consumers;
pub mod dedup;
pub mod directory;
pub mod durable_streams;
pub mod error;
pub mod files;
pub mod frame;
pub mod get;
pub mod headers;
pub mod legacy;
pub mod http_params;
pub mod metrics;
pub mod publish;
pub mod publish_body;
pub mod rate;
pub mod retention;
pub mod sequence;
pub mod state;
pub mod strict_json;
pub mod subject;
pub mod subscription;
pub mod token;
pub mod wakeup;

pub use config::Config;
pub use error::{ErrorCode, ProtocolError};
pub use frame::{ClientFrame, NewMessage, Payload, RequestId, StartPosition};
pub use sequence::{Seq, MAX_SEQ};
pub use subscription::Subscription;

/// Version of the WebSocket protocol spoken by this crate (reported by `/health`).
pub const PROTOCOL_VERSION: u32 = 1;
