//! Zero-copy RFC 6455 frame codec.
//!
//! The pieces a WebSocket relay needs on its hot path, none of which allocates:
//!
//! - [`FrameHeader::parse`] decodes a header from the front of a byte slice and checks it
//!   (reserved opcodes and bits, control-frame rules, minimal lengths, masking for the [`Role`]);
//!   [`FrameHeader::encode`] writes one into a fixed `[u8; 14]`.
//! - [`apply_mask`] masks or unmasks payload bytes at any offset, so payloads stream in chunks.
//! - [`CloseFrame`] parses and builds close payloads with the code rules of RFC 6455 §7.4.
//! - [`Utf8Validator`] checks text messages chunk by chunk, across fragments, failing fast.
//! - [`random`] is the one source of random bytes (masking keys, nonces) with one failure
//!   policy: a failing OS source is a [`RandomError`], never a constant.
//!
//! ```
//! use wsrelay_codec::{apply_mask, FrameHeader, OpCode, Parse, ParseConfig, Role};
//!
//! // Encode a masked frame as a client would send it...
//! let key = [7, 7, 7, 7];
//! let mut payload = *b"ping me";
//! let header = FrameHeader { mask: Some(key), ..FrameHeader::new(OpCode::Text, payload.len() as u64) };
//! let mut hbuf = [0u8; 14];
//! let mut wire = header.encode(&mut hbuf).to_vec();
//! apply_mask(&mut payload, key, 0);
//! wire.extend_from_slice(&payload);
//!
//! // ...and parse it as a server.
//! match FrameHeader::parse(&wire, ParseConfig::new(Role::Server))? {
//!     Parse::Complete(h, len) => {
//!         let mut body = wire[len..].to_vec();
//!         apply_mask(&mut body, h.mask.unwrap_or_default(), 0);
//!         assert_eq!(&body, b"ping me");
//!     }
//!     Parse::Incomplete(n) => unreachable!("{n} more bytes needed"),
//! }
//! # Ok::<(), wsrelay_codec::ProtocolError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod close;
mod error;
mod header;
mod mask;
pub mod random;
mod utf8;

pub use close::{is_valid_close_code, CloseFrame, MAX_REASON_LEN};
pub use error::ProtocolError;
pub use header::{
    write_frame, FrameHeader, OpCode, Parse, ParseConfig, Role, MAX_CONTROL_PAYLOAD,
    MAX_HEADER_LEN, RSV1, RSV2, RSV3,
};
pub use mask::{apply_mask, apply_mask_reference, rotate_key};
pub use random::RandomError;
pub use utf8::Utf8Validator;
