//! The RFC 6455 opening handshake, for a WebSocket server or proxy.
//!
//! - Server side: [`RequestHead::parse`] reads a client's request incrementally (httparse, with
//!   size limits), [`RequestHead::validate_websocket`] checks it against RFC 6455 §4.2.1 with one
//!   error per failure, each mapped to an HTTP status by [`HandshakeError::status`];
//!   [`write_switching_protocols`] and [`write_error_response`] write the answers.
//! - Client side: [`UpgradeRequest`] builds the request to an upstream ([`WsUri`]) with a fresh
//!   key and validates the answer; a refusal comes back as data, for the proxy to relay.
//! - Policy: [`forward_request_headers`] decides which client headers go upstream.
//!
//! Bytes that follow a header block (frames pipelined behind it) are never consumed: every parse
//! reports how many bytes the head used.
//!
//! ```
//! use wsrelay_handshake::*;
//!
//! // A proxy's upstream request, answered by a server using the same crate.
//! let uri = WsUri::parse("ws://127.0.0.1:9000/chat")?;
//! let request = UpgradeRequest::new(&uri).with_protocols(&["mqtt".to_owned()]);
//! let mut wire = Vec::new();
//! request.encode(&mut wire);
//!
//! let Parsed::Complete { value: (_head, ws), consumed } = parse_upgrade_request(&wire, &Limits::default())? else {
//!     panic!("a whole request");
//! };
//! assert_eq!(consumed, wire.len());
//! let mut answer = Vec::new();
//! write_switching_protocols(&mut answer, &ws.accept(), ws.protocols.first().map(String::as_str), None, &[]);
//!
//! match request.parse_response(&answer, &Limits::default())? {
//!     Parsed::Complete { value: UpstreamResponse::Accepted { protocol, .. }, .. } => {
//!         assert_eq!(protocol.as_deref(), Some("mqtt"))
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), HandshakeError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod accept;
mod client;
mod error;
mod policy;
mod request;
mod response;
mod uri;

pub use accept::accept_key;
pub use client::{extension_name, UpgradeRequest, UpstreamResponse};
pub use error::HandshakeError;
pub use policy::{
    forward_request_headers, forward_response_headers, is_hop_by_hop, validate_header,
    ForwardContext,
};
pub use request::{parse_upgrade_request, Header, Limits, Parsed, RequestHead, WebSocketRequest};
pub use response::{
    reason_phrase, write_error_response, write_relayed_response, write_switching_protocols,
};
pub use uri::WsUri;
