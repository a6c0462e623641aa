//! wsrelay: a WebSocket reverse proxy built on a cut-through frame relay.
//!
//! The library crates do the work and can be used on their own:
//! [`codec`] (RFC 6455 frames), [`handshake`] (the opening handshake, both sides) and
//! [`relay`] (two-way frame relaying). This crate adds the [`gateway`] that puts them on a
//! socket, a built-in [`echo`] server used as the demo upstream and in tests, and [`embed`]:
//! the relay inside your own tokio server in one call.
#![deny(missing_docs)]

pub mod echo;
pub mod embed;
pub mod gateway;

pub use wsrelay_codec as codec;
pub use wsrelay_handshake as handshake;
pub use wsrelay_relay as relay;
