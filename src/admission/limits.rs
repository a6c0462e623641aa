//! The admission settings: the caps on connections and handshakes, per process, listener,
//! route and client address, as the configuration gives them.

use std::time::Duration;

/// Default `retry_after`: what a refused client is told to wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Descriptors kept free by default for what is not a client connection: listeners, the
/// runtimes' own descriptors, log files, admin and health traffic, refusals being answered.
pub const RESERVED_DESCRIPTORS: usize = 128;

/// How many connections the gateway admits, and from whom. Every cap is `None` for "no limit"
/// (written `0` in the file), except `max_connections`, whose `None` means "derived from the
/// descriptor limit at start" ([`fd::connection_budget`](super::fd::connection_budget)).
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionLimits {
    /// Open client connections in the whole process, in handshake or relaying (503 beyond it).
    /// `None`: derived from the descriptor limit; `Some(0)` is never stored (0 means no cap,
    /// kept as `Some(usize::MAX)`).
    pub max_connections: Option<usize>,
    /// Connections whose upgrade request is not complete yet (503 beyond it); slow clients
    /// still time out at the handshake timeout, so they cannot hold it for long. `None` (the
    /// default): only `max_connections` bounds them.
    pub max_handshakes: Option<usize>,
    /// Open connections from one client address (429 beyond it).
    pub per_address_connections: Option<usize>,
    /// New connections per second from one client address, and the burst above it (429).
    pub per_address_rate: Option<(u64, u64)>,
    /// The `Retry-After` a refused client gets (for the handshake rate: the time until the
    /// next one is allowed, if longer).
    pub retry_after: Duration,
    /// Descriptors kept free when `max_connections` is derived.
    pub reserved_descriptors: usize,
    /// Per listener (in configuration order): its open connections (503 beyond it).
    pub listeners: Vec<Option<usize>>,
    /// Per route (in configuration order): its open tunnels, counted from routing on (503).
    pub routes: Vec<Option<usize>>,
    /// Per listener: true where clients' addresses arrive in a PROXY header. Their
    /// per-address limits are checked once it is read ([`Permit::admit_address`]), not at
    /// accept, where the address is the balancer's.
    ///
    /// [`Permit::admit_address`]: super::Permit::admit_address
    pub proxied_listeners: Vec<bool>,
}

impl Default for AdmissionLimits {
    fn default() -> AdmissionLimits {
        AdmissionLimits {
            max_connections: None,
            // Bounded by `max_connections` alone unless set: a low default would let a few
            // thousand silent connections turn every new client away until they time out.
            max_handshakes: None,
            per_address_connections: None,
            per_address_rate: None,
            retry_after: RETRY_AFTER,
            reserved_descriptors: RESERVED_DESCRIPTORS,
            listeners: Vec::new(),
            routes: Vec::new(),
            proxied_listeners: Vec::new(),
        }
    }
}
