//! A generation: one configuration as the gateway runs it, with the admission state that goes
//! with it and the sockets of the listeners it added. The gateway starts with the first; each
//! reload ([`crate::reload`]) publishes the next, and every connection keeps the one it was
//! accepted with, start to end.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::admission::Admission;
use crate::config::GatewayConfig;

/// One configuration as the gateway runs it, with the admission state that goes with it.
pub struct Generation {
    /// Counts reloads: 0 for the configuration the gateway started with.
    pub number: u64,
    /// The configuration.
    pub config: Arc<GatewayConfig>,
    /// Its admission state (its route and listener slots sit at this configuration's positions).
    pub(crate) admission: Arc<Admission>,
    /// The addresses the listeners are bound to, in the configuration's order.
    pub bound: Vec<SocketAddr>,
    /// The addresses of the listeners the gateway started with: the metrics' per-listener
    /// gauges, in this order.
    started_with: Arc<[SocketAddr]>,
    /// Sockets of the listeners this generation added, by bound address: one per worker, each
    /// taken by its worker.
    added: Mutex<Vec<(SocketAddr, Vec<Option<std::net::TcpListener>>)>>,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("number", &self.number)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

/// Where the current generation is published; every accept loop and open tunnel watches it.
pub type Generations = watch::Receiver<Arc<Generation>>;

impl Generation {
    /// The generation a gateway starts with.
    pub(crate) fn first(
        config: Arc<GatewayConfig>,
        admission: Arc<Admission>,
        bound: Vec<SocketAddr>,
    ) -> Generation {
        Generation {
            number: 0,
            config,
            admission,
            started_with: bound.clone().into(),
            bound,
            added: Mutex::new(Vec::new()),
        }
    }

    /// The generation after this one: `config` with its `admission` state, its listeners bound
    /// at `bound`, the sockets of those it `added` (per worker). The metrics' per-listener
    /// gauges stay those of the listeners the gateway started with.
    pub(crate) fn next(
        &self,
        number: u64,
        config: Arc<GatewayConfig>,
        admission: Arc<Admission>,
        bound: Vec<SocketAddr>,
        added: Vec<(SocketAddr, Vec<Option<std::net::TcpListener>>)>,
    ) -> Generation {
        Generation {
            number,
            config,
            admission,
            started_with: Arc::clone(&self.started_with),
            bound,
            added: Mutex::new(added),
        }
    }

    /// The position of the listener bound at `address`, if this generation has it. (Bound, not
    /// configured: two listeners configured on port 0 are two listeners.)
    pub(crate) fn listener_index(&self, address: SocketAddr) -> Option<usize> {
        self.bound.iter().position(|a| *a == address)
    }

    /// The sockets of the listener this generation added at `address` that no worker took yet,
    /// moved out for the next generation: a worker that skips this one (watch channels keep only
    /// the latest value) takes them there.
    pub(crate) fn untaken_sockets(
        &self,
        address: SocketAddr,
    ) -> Option<(SocketAddr, Vec<Option<std::net::TcpListener>>)> {
        let mut added = self.added.lock().unwrap_or_else(|p| p.into_inner());
        let at = added.iter().position(|(a, _)| *a == address)?;
        let (address, sockets) = added.swap_remove(at);
        sockets
            .iter()
            .any(Option::is_some)
            .then_some((address, sockets))
    }

    /// The slot of the listener bound at `address` in the metrics' per-listener gauges;
    /// `usize::MAX` (none) for a listener a reload added.
    pub(crate) fn gauge_slot(&self, address: SocketAddr) -> usize {
        (self.started_with.iter())
            .position(|a| *a == address)
            .unwrap_or(usize::MAX)
    }

    /// Worker `worker`'s socket for the listener this generation added at `address` (once).
    pub(crate) fn take_socket(
        &self,
        address: SocketAddr,
        worker: usize,
    ) -> Option<std::net::TcpListener> {
        let mut added = self.added.lock().unwrap_or_else(|p| p.into_inner());
        let (_, sockets) = added.iter_mut().find(|(a, _)| *a == address)?;
        sockets.get_mut(worker)?.take()
    }

    /// True if a tunnel of route `route` to `backend` still has both in this configuration.
    pub(crate) fn serves(&self, route: &str, backend: &str) -> bool {
        (self.config.routes.iter())
            .filter(|r| r.name == route)
            .any(|r| crate::metrics::backends_of(r).iter().any(|b| b == backend))
    }
}
