//! wsrelay: a WebSocket reverse proxy built on a cut-through frame relay.
//!
//! The library crates do the work and can be used on their own:
//! [`codec`] (RFC 6455 frames), [`handshake`] (the opening handshake, both sides) and
//! [`relay`] (two-way frame relaying). This crate adds the [`gateway`] that puts them on a
//! socket, its [`config`] file, [`route`]s and [`tls`], a built-in [`echo`] server used as the
//! demo upstream and in tests, and [`embed`]: the relay inside your own tokio server in one call.
#![deny(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod auth;
mod client_side;
pub mod config;
pub mod drain;
pub mod echo;
pub mod edge;
pub mod embed;
mod error;
pub mod gateway;
pub mod generation;
pub mod head;
pub mod http;
pub mod http2;
pub mod metrics;
pub mod pipeline;
pub mod pool;
pub mod proxy_protocol;
pub mod refusal;
pub mod reload;
pub mod request;
pub mod route;
pub mod routes_api;
pub mod stream;
pub mod tls;
pub mod upstream;

pub use error::{ConfigError, ConfigWarning, Error};

pub use wsrelay_codec as codec;
pub use wsrelay_handshake as handshake;
pub use wsrelay_relay as relay;
