//! The gateway's configuration: one value, whether it comes from a TOML file or from flags.
//!
//! [`GatewayConfig`] is what the server runs on. [`load`] and [`parse`] build it from a file,
//! [`from_flags`] from the one-upstream command line written as the same kind of document
//! ([`FlagDocument`]), so both take the same checks and fail with the same messages. Every
//! default is written once, in [`defaults`].
//!
//! Inside: `schema` is the file's format (serde structs), `diagnostics` turns problems into
//! positioned errors with hints, `load` gives the keys their meaning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use wsrelay_handshake::Limits;

use crate::route::Route;
use crate::upstream::Upstream;

pub mod defaults;
mod diagnostics;
mod flags;
mod load;
mod schema;

pub use flags::{FlagDocument, Kind, Table};
pub use load::{from_flags, load, parse};

/// One address to accept clients on, with TLS settings when it terminates TLS (`wss://`).
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Address to accept clients on.
    pub address: SocketAddr,
    /// Certificates (chosen by SNI) and ALPN; `None` for plain `ws://`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Everything the gateway needs: listeners, routes tried in order, process-wide timeouts.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Addresses to accept clients on; each is served by every worker.
    pub listeners: Vec<ListenerConfig>,
    /// Routes, tried in order; the first that matches a request takes it (404 if none).
    pub routes: Vec<Route>,
    /// Time a client has to complete TLS and send its upgrade request (408 after it).
    pub handshake_timeout: Duration,
    /// After a shutdown signal, time open relays get to close before they are cut.
    pub shutdown_timeout: Duration,
    /// Header size and count limits for both handshakes.
    pub limits: Limits,
    /// Worker threads, each with its own runtime and listening sockets (thread-per-core).
    pub workers: usize,
}

impl GatewayConfig {
    /// One plain listener and one route taking every request to `upstream` (the CLI's case),
    /// with the [`defaults`] and one worker.
    pub fn new(listen: SocketAddr, upstream: Upstream) -> GatewayConfig {
        GatewayConfig {
            listeners: vec![ListenerConfig {
                address: listen,
                tls: None,
            }],
            routes: vec![Route::catch_all(upstream)],
            handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT,
            limits: Limits::default(),
            workers: 1,
        }
    }
}
