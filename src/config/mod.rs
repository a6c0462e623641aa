//! The gateway's configuration: one value, whether it comes from a TOML file or from flags.
//!
//! [`GatewayConfig`] is what the server runs on. [`load`] and [`parse`] build it from a file,
//! [`from_flags`] from the one-upstream command line written as the same kind of document
//! ([`FlagDocument`]), so both take the same checks and fail with the same messages. Every
//! default is written once, in [`defaults`].
//!
//! Inside: `schema` is the file's format (serde structs), `diagnostics` turns problems into
//! positioned errors with hints, `load` gives the keys their meaning.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use std::sync::Arc;
use std::time::Duration;

use wsrelay_handshake::{Limits, PathPolicy};

pub use crate::access_log::{AccessLogConfig, LogFormat};
use crate::admission::AdmissionLimits;
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
    /// What the listener does with a request before routing it.
    pub edge: EdgePolicy,
    /// `proxy_protocol = true`: the peers that must start with a PROXY header (and the only
    /// ones accepted); `None`: no PROXY protocol on this listener.
    pub proxy_protocol: Option<crate::proxy_protocol::AcceptProxy>,
    /// HTTP/2 beside HTTP/1.1 (WebSockets by extended CONNECT, RFC 8441); `None`: off.
    pub http2: Option<crate::http2::Http2Settings>,
}

/// What a listener does with a request before routing: the canonical form of its path, whether
/// its Host must name the TLS server the client reached, and whose forwarding headers it believes.
#[derive(Debug, Clone)]
pub struct EdgePolicy {
    /// How paths are made canonical (dot segments, slashes, escapes); routing, rewriting, logs
    /// and the upstream all see that form.
    pub paths: PathPolicy,
    /// On a TLS listener, a request whose Host is not the name the client asked for in SNI
    /// gets 421 Misdirected Request: a certificate for `chat.example` must not open a route of
    /// `admin.example` (RFC 9110 §15.5.20).
    pub sni_host_check: bool,
    /// Peers (load balancers, other proxies) whose `X-Forwarded-*`, `Forwarded` and
    /// `X-Real-IP` headers are believed; from anyone else they are replaced. Empty: nobody.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for EdgePolicy {
    fn default() -> EdgePolicy {
        EdgePolicy {
            paths: PathPolicy::default(),
            sni_host_check: defaults::SNI_HOST_CHECK,
            trusted_proxies: Vec::new(),
        }
    }
}

impl EdgePolicy {
    /// True if `peer` is one of the trusted proxies.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
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
    /// After a shutdown signal, time open relays get to close before they are cut (counted from
    /// the end of the drain window, see [`crate::drain`]).
    pub shutdown_timeout: Duration,
    /// Header size and count limits for both handshakes.
    pub limits: Limits,
    /// Worker threads, each with its own runtime and listening sockets (thread-per-core).
    pub workers: usize,
    /// Caps on connections, handshakes and tunnels (`[limits]`, listeners' and routes' own).
    pub admission: AdmissionLimits,
    /// Problems found that do not stop the gateway (a short HMAC secret): `wsrelay check`
    /// prints them, `wsrelay --config` logs them at start.
    pub warnings: Vec<crate::ConfigWarning>,
    /// The admin listener's address (metrics, health endpoints); `None`: no admin listener,
    /// and no metrics are collected.
    pub admin: Option<SocketAddr>,
    /// The access log: its form, whether tunnels get an open line, how queries are written.
    pub access_log: AccessLogConfig,
    /// How tunnels are wound down: the drain after SIGTERM, and tunnels a reload orphaned.
    pub winding_down: crate::drain::WindingDown,
    /// The routes API of the admin listener: its token and whether it writes back.
    pub routes_api: crate::routes_api::ApiSettings,
}

impl GatewayConfig {
    /// One plain listener and one route taking every request to `upstream` (the CLI's case),
    /// with the [`defaults`] and one worker.
    pub fn new(listen: SocketAddr, upstream: Upstream) -> GatewayConfig {
        GatewayConfig {
            listeners: vec![ListenerConfig {
                address: listen,
                tls: None,
                edge: EdgePolicy::default(),
                proxy_protocol: None,
                http2: None,
            }],
            routes: vec![Route::catch_all(upstream)],
            handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT,
            limits: Limits::default(),
            workers: 1,
            admission: AdmissionLimits::default(),
            warnings: Vec::new(),
            admin: None,
            access_log: AccessLogConfig::default(),
            winding_down: crate::drain::WindingDown::default(),
            routes_api: crate::routes_api::ApiSettings::default(),
        }
    }
}
