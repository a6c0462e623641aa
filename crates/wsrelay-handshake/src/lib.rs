//! The RFC 6455 opening handshake for a WebSocket server or reverse proxy, both sides.
//!
//! - Server side: [`RequestHead::parse`] reads a client's request incrementally (httparse, with
//!   [`Limits`]); [`RequestHead::validate_websocket`] checks it against RFC 6455 §4.2.1 with one
//!   error per failure, each mapped to an HTTP status by [`HandshakeError::status`];
//!   [`write_switching_protocols`] and [`HandshakeError::write_response`] write the answers.
//! - Client side: [`UpgradeRequest`] builds the request to an upstream ([`WsUri`]) with a fresh
//!   key and validates the answer; a refusal comes back as data, for the proxy to relay with
//!   [`write_relayed_response`].
//! - Policy: [`forward_request_headers`] and [`forward_response_headers`] decide which headers
//!   cross the proxy.
//!
//! Bytes that follow a header block (frames pipelined behind it) are never consumed: every
//! parse reports how long the head was, and the rest of the buffer belongs to the caller.
//! Nothing panics on any input.
//!
//! # Server side
//!
//! ```
//! use wsrelay_handshake::{parse_upgrade_request, write_switching_protocols, Limits, Parsed};
//!
//! // One read brought the request and, right behind it, the client's first frame.
//! let mut buf = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n"
//!     .to_vec();
//! let frame = [0x81, 0x80, 0x01, 0x02, 0x03, 0x04]; // an empty masked text frame
//! buf.extend_from_slice(&frame);
//!
//! let mut out = Vec::new();
//! match parse_upgrade_request(&buf, &Limits::default()) {
//!     Ok(Parsed::Partial) => { /* read more, then call again with the whole buffer */ }
//!     Ok(Parsed::Complete { value: (head, ws), consumed }) => {
//!         assert_eq!(head.path(), "/chat");
//!         let protocol = ws.protocols.iter().find(|p| *p == "chat").map(String::as_str);
//!         write_switching_protocols(&mut out, &ws.accept(), protocol, None, &[]);
//!         buf.drain(..consumed); // what is left is WebSocket data
//!         assert_eq!(buf, frame);
//!     }
//!     // 400, 405, 426 or 431 with a one-line explanation; then close the connection.
//!     Err(e) => e.write_response(&mut out),
//! }
//! assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! assert!(out.windows(40).any(|w| w == b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzz"));
//! ```
//!
//! # Client side
//!
//! ```
//! use wsrelay_handshake::{
//!     accept_key, write_switching_protocols, HandshakeError, Limits, Parsed, UpgradeRequest,
//!     UpstreamResponse, WsUri,
//! };
//!
//! let uri: WsUri = "ws://127.0.0.1:9000/feed".parse()?;
//! let request = UpgradeRequest::new(&uri)?
//!     .with_target("/feed/prices?since=0")
//!     .with_protocols(&["mqtt".to_owned()])
//!     .with_header("X-Request-Id", b"42")?;
//! let mut wire = Vec::new();
//! request.encode(&mut wire); // send this to the upstream
//! assert!(wire.starts_with(b"GET /feed/prices?since=0 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"));
//!
//! // What the upstream answers (here made up by hand).
//! let mut answer = Vec::new();
//! let accept = accept_key(request.key().as_bytes());
//! write_switching_protocols(&mut answer, &accept, Some("mqtt"), None, &[]);
//!
//! match request.parse_response(&answer, &Limits::default())? {
//!     Parsed::Partial => unreachable!("read more, then call again"),
//!     Parsed::Complete { value: UpstreamResponse::Accepted { protocol, .. }, consumed } => {
//!         assert_eq!(protocol.as_deref(), Some("mqtt"));
//!         assert_eq!(consumed, answer.len()); // frames would follow here
//!     }
//!     Parsed::Complete { value: UpstreamResponse::Refused { status, .. }, .. } => {
//!         unreachable!("relay the {status} to the client")
//!     }
//! }
//!
//! // A 101 that does not prove it read our key is refused (502 for the proxy's client).
//! let mut forged = Vec::new();
//! write_switching_protocols(&mut forged, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", None, None, &[]);
//! assert_eq!(
//!     request.parse_response(&forged, &Limits::default()),
//!     Err(HandshakeError::AcceptMismatch)
//! );
//! # Ok::<(), HandshakeError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod accept;
mod client;
mod error;
mod grammar;
mod header;
mod host;
mod policy;
mod request;
mod response;
mod target;
mod uri;

pub use accept::accept_key;
pub use client::{extension_name, UpgradeRequest, UpstreamResponse};
pub use error::HandshakeError;
pub use grammar::validate_header;
pub use header::{split_list, Header, Limits, ListItems, Parsed};
pub use host::{canonical_host, Authority, HostError};
pub use policy::{
    forward_request_headers, forward_response_headers, is_hop_by_hop, ForwardContext,
};
pub use request::{parse_upgrade_request, RequestHead, WebSocketRequest};
pub use response::{
    reason_phrase, write_error_response, write_relayed_response, write_switching_protocols,
};
pub use target::{canonical_target, EscapedSlashes, PathPolicy, TargetError};
pub use uri::WsUri;
