//! Client for durable-stream: persistent, subject-based message streams on Cloudflare
//! Workers and Durable Objects.
//!
//! * [`Client::publish`] resolves once the server has durably stored the message, and is
//!   idempotent across reconnects (every publish carries a message id). Publishes made at the
//!   same time to one subject go out together in batch frames, each message keeping its own id
//!   and getting its own sequence ([`AutoBatch`]).
//! * [`Client::subscribe`] returns a [`Subscription`], a [`Stream`](futures_core::Stream) of
//!   [`Message`]s that reconnects on its own, resumes where the application stopped, never
//!   yields a sequence twice (manual-mode redeliveries aside) and detects subject wipes.
//! * Subject operations ([`info`](Client::info), [`trim`](Client::trim),
//!   [`state_get`](Client::state_get), [`state_put`](Client::state_put)) share the subject's
//!   WebSocket with its publishes; files ([`put_file`](Client::put_file),
//!   [`get_file`](Client::get_file), ...) use HTTP and stream their bodies.
//!
//! ```no_run
//! use durable_stream_client::{AckMode, Client, Error, StartPosition, SubscribeOptions};
//! use futures_util::StreamExt;
//! use serde_json::json;
//!
//! # async fn example() -> Result<(), Error> {
//! let client = Client::connect("http://127.0.0.1:8787", "my-api-key").await?;
//!
//! let seq = client.publish("orders", json!({ "id": 1, "total": 9.5 })).await?;
//! println!("stored as #{seq}");
//!
//! let options = SubscribeOptions::default()
//!     .start(StartPosition::First)
//!     .consumer("billing")
//!     .ack(AckMode::Manual);
//! let mut orders = client.subscribe("orders", options).await?;
//! while let Some(item) = orders.next().await {
//!     let message = match item {
//!         Ok(message) => message,
//!         // Data this client cannot decode: reported in its place, counted as consumed.
//!         Err(Error::Undecodable { seq, reason }) => {
//!             eprintln!("skipping #{seq}: {reason}");
//!             continue;
//!         }
//!         Err(e) => return Err(e),
//!     };
//!     println!("#{} {}", message.seq, message.data);
//!     message.ack();
//! }
//! # Ok(())
//! # }
//! ```
//!

#![warn(missing_docs)]

mod backoff;
mod batching;
mod client;
mod connection;
mod credentials;
mod cursor;
mod error;
#[cfg(test)]
mod fake_server;
mod files;
mod frames;
mod http;
mod publish;
mod requests;
mod subscription;
mod token;
mod uploads;

pub use backoff::Backoff;
pub use batching::AutoBatch;
pub use client::{Client, ClientBuilder, SubjectInfo, Trimmed};
pub use connection::ConnectionEvent;
pub use cursor::{cursor_key, Cursor, CursorStore, FileCursorStore};
pub use durable_stream_protocol::{ErrorCode, Seq, StartPosition};
pub use error::{Error, Result};
pub use files::{AtomicFile, ByteRange, Download, FileLink, FileList, FileMeta, FileObject, LinkMethod, LinkOptions, ListFiles, Upload};
pub use publish::{Headers, PublishOptions, StoredMessage};
pub use subscription::{AckMode, Message, OnEpochChange, SubscribeOptions, Subscription};
pub use token::{Action, Ed25519Key, IssuedToken, Revocation, Revoke, Revoked, TokenBuilder, TokenLimits};
pub use uploads::{Callback, CreatedUpload, PartListing, PartOptions, UnfinishedUpload, UploadListing, UploadedPart};

/// Compiles the README's Rust example as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
