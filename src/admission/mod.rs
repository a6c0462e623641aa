//! Admission control: which connections the gateway takes on, decided before any upstream is
//! contacted and answered at once (503 or 429 with `Retry-After`), never by a stalled accept.
//!
//! ```text
//! accept -> [global, listener, handshakes in progress, per address: open and rate] -> Permit
//!   -> read head -> route -> [per route: open tunnels] -> upstream ...
//! ```
//! A [`Permit`] is held for the connection's whole life (its handshake, then its tunnel) and
//! gives its places back when dropped. The process-wide cap defaults to what the descriptor
//! limit allows ([`fd`]), so the gateway refuses with 503 long before `accept` fails with
//! "too many open files".

pub mod fd;
pub mod limits;
pub mod rate;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsrelay_handshake::write_error_response;

pub use limits::AdmissionLimits;
use rate::{AddressRefusal, AddressTable};

/// The longest a refused client's request is waited for and read before its answer, so
/// closing does not reset the connection under the answer.
const TURN_AWAY_READ: Duration = Duration::from_secs(1);
/// The most request bytes read from a refused client.
const TURN_AWAY_BYTES: usize = 16 * 1024;

/// Why a connection was refused, and how long the client is told to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Which limit refused it.
    pub reason: RejectionReason,
    /// Sent as `Retry-After` (whole seconds, rounded up, at least 1).
    pub retry_after: Duration,
}

/// The limit a refused connection hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RejectionReason {
    /// The process's open connections (503).
    #[error("the gateway has {0} connections open, its limit")]
    Connections(usize),
    /// The listener's open connections (503).
    #[error("this listener has {0} connections open, its limit")]
    Listener(usize),
    /// Handshakes in progress (503).
    #[error("{0} handshakes are in progress, the limit")]
    Handshakes(usize),
    /// The route's open tunnels (503).
    #[error("this route has {0} tunnels open, its limit")]
    Route(usize),
    /// The client address's open connections (429).
    #[error("this address has {0} connections open, its limit")]
    AddressConnections(usize),
    /// The client address's new connections per second (429).
    #[error("this address opens connections faster than {0} per second")]
    AddressRate(u64),
}

impl Rejection {
    /// 429 for limits of one client address, 503 for the gateway's own capacity.
    pub fn status(&self) -> u16 {
        match self.reason {
            RejectionReason::AddressConnections(_) | RejectionReason::AddressRate(_) => 429,
            _ => 503,
        }
    }

    /// Appends the response the client gets, with `Retry-After`.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        let millis = self.retry_after.as_millis().max(1);
        let seconds = millis.div_ceil(1000).to_string();
        let body = format!("{}; retry after {seconds}s\n", self.reason);
        write_error_response(out, self.status(), &[("Retry-After", &seconds)], &body);
    }
}

/// A per-listener or per-route cap and its count. The count is shared with the slot of the
/// same listener or route in the admission state a reload builds ([`Admission::carried_over`]),
/// so connections admitted before and after it count together.
#[derive(Debug)]
struct Slot {
    max: Option<usize>,
    open: Arc<AtomicUsize>,
}

impl Slot {
    fn new(max: Option<usize>) -> Slot {
        Slot {
            max,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The slot with a new cap, counting with `from` when there is one.
    fn carried(max: Option<usize>, from: Option<&Slot>) -> Slot {
        match from {
            Some(old) => Slot {
                max,
                open: Arc::clone(&old.open),
            },
            None => Slot::new(max),
        }
    }
}

/// The counts every admission state of one gateway shares, across reloads.
#[derive(Debug, Default)]
struct Shared {
    connections: AtomicUsize,
    handshakes: AtomicUsize,
    turning_away: AtomicUsize,
}

/// Takes one place of `count` if fewer than `max` are taken.
fn take(count: &AtomicUsize, max: Option<usize>) -> bool {
    match max {
        None => {
            count.fetch_add(1, Ordering::Relaxed);
            true
        }
        Some(max) => count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok(),
    }
}

fn give(count: &AtomicUsize) {
    count.fetch_sub(1, Ordering::AcqRel);
}

/// The gateway's admission state, shared by every worker and listener.
#[derive(Debug)]
pub struct Admission {
    max_connections: Option<usize>,
    max_handshakes: Option<usize>,
    retry_after: Duration,
    /// Open connections, handshakes in progress, refusals being answered (the last bounded by
    /// `max_turning_away`: beyond it refused connections are closed without an answer, so
    /// refusals cannot use up the descriptors they protect).
    shared: Arc<Shared>,
    listeners: Box<[Slot]>,
    routes: Box<[Slot]>,
    /// Present when a per-address limit is set.
    addresses: Option<Arc<AddressLimits>>,
    /// Per listener: its clients' addresses come in a PROXY header, so per-address limits
    /// wait for [`Permit::admit_address`].
    proxied: Box<[bool]>,
    max_turning_away: usize,
    /// The limits this state was built from (a reload compares them).
    limits: AdmissionLimits,
}

/// The per-address table and its rate, for the refusal's text.
type AddressLimits = (Mutex<AddressTable>, Option<u64>);

impl Admission {
    /// The admission state for `limits`; a derived `max_connections` is worked out from the
    /// descriptor limit and the descriptors open now (call it once the listeners are bound),
    /// and the figures are logged.
    pub fn new(limits: &AdmissionLimits) -> Admission {
        let max_connections = match limits.max_connections {
            Some(usize::MAX) => None,
            Some(n) => Some(n),
            None => {
                let limit = fd::descriptor_limit();
                let open = fd::open_descriptors().unwrap_or(0);
                let budget = fd::connection_budget(limit, open, limits.reserved_descriptors);
                tracing::info!(
                    soft_limit = ?limit.soft,
                    hard_limit = ?limit.hard,
                    open,
                    reserved = limits.reserved_descriptors,
                    max_connections = ?budget,
                    "descriptor budget: 2 per connection (client and upstream)"
                );
                budget
            }
        };
        let addresses = (limits.per_address_connections.is_some()
            || limits.per_address_rate.is_some())
        .then(|| {
            let table = AddressTable::new(limits.per_address_connections, limits.per_address_rate);
            Arc::new((Mutex::new(table), limits.per_address_rate.map(|(r, _)| r)))
        });
        Admission {
            max_connections,
            max_handshakes: limits.max_handshakes,
            retry_after: limits.retry_after,
            shared: Arc::default(),
            listeners: limits.listeners.iter().map(|&m| Slot::new(m)).collect(),
            routes: limits.routes.iter().map(|&m| Slot::new(m)).collect(),
            addresses,
            proxied: limits.proxied_listeners.clone().into_boxed_slice(),
            max_turning_away: (limits.reserved_descriptors / 2).max(1),
            limits: limits.clone(),
        }
    }

    /// The admission state of a reloaded configuration with `limits`: the process's counts
    /// carry on; the listener `i` of the new configuration counts with the old listener
    /// `listeners_from[i]` (`None`: a new listener, from 0), and likewise for routes, so a
    /// route's open tunnels still count against its cap after a reload. The process-wide
    /// connection cap stays what it was when it was derived from the descriptor limit (the
    /// descriptors open now include the connections it counts); the per-address table carries
    /// on unless its limits changed.
    pub fn carried_over(
        &self,
        limits: &AdmissionLimits,
        listeners_from: &[Option<usize>],
        routes_from: &[Option<usize>],
    ) -> Admission {
        let max_connections = match limits.max_connections {
            None => self.max_connections,
            Some(usize::MAX) => None,
            Some(n) => Some(n),
        };
        let same_addresses = limits.per_address_connections == self.limits.per_address_connections
            && limits.per_address_rate == self.limits.per_address_rate;
        let addresses = match &self.addresses {
            Some(table) if same_addresses => Some(Arc::clone(table)),
            _ => {
                Admission::new(&AdmissionLimits {
                    max_connections: Some(usize::MAX),
                    ..limits.clone()
                })
                .addresses
            }
        };
        let carried = |old: &[Slot], caps: &[Option<usize>], from: &[Option<usize>]| {
            caps.iter()
                .enumerate()
                .map(|(i, &max)| {
                    let from = from.get(i).copied().flatten().and_then(|j| old.get(j));
                    Slot::carried(max, from)
                })
                .collect()
        };
        Admission {
            max_connections,
            max_handshakes: limits.max_handshakes,
            retry_after: limits.retry_after,
            shared: Arc::clone(&self.shared),
            listeners: carried(&self.listeners, &limits.listeners, listeners_from),
            routes: carried(&self.routes, &limits.routes, routes_from),
            addresses,
            proxied: limits.proxied_listeners.clone().into_boxed_slice(),
            max_turning_away: (limits.reserved_descriptors / 2).max(1),
            limits: limits.clone(),
        }
    }

    /// Open tunnels of route `index` (counted from routing on).
    pub fn route_tunnels(&self, index: usize) -> usize {
        self.routes
            .get(index)
            .map_or(0, |slot| slot.open.load(Ordering::Relaxed))
    }

    /// The process-wide cap on open connections in force (`None`: no cap).
    pub fn max_connections(&self) -> Option<usize> {
        self.max_connections
    }

    /// Open client connections now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    fn reject(&self, reason: RejectionReason) -> Rejection {
        Rejection {
            reason,
            retry_after: self.retry_after,
        }
    }

    /// Admits a connection accepted on `listener` from `addr`, or refuses it: the process's
    /// and the listener's caps, handshakes in progress, the address's open connections and
    /// rate. The permit holds its places until dropped.
    pub fn admit(self: &Arc<Self>, listener: usize, addr: IpAddr) -> Result<Permit, Rejection> {
        let mut permit = Permit {
            admission: Arc::clone(self),
            held: Held::default(),
            listener,
            addr: None,
            handshaking: AtomicBool::new(false),
            route: AtomicUsize::new(NO_ROUTE),
        };
        if !take(&self.shared.connections, self.max_connections) {
            let max = self.max_connections.unwrap_or(usize::MAX);
            return Err(self.reject(RejectionReason::Connections(max)));
        }
        permit.held.connection = true;
        if let Some(slot) = self.listeners.get(listener) {
            if !take(&slot.open, slot.max) {
                let max = slot.max.unwrap_or(usize::MAX);
                return Err(self.reject(RejectionReason::Listener(max)));
            }
            permit.held.listener = true;
        }
        if !take(&self.shared.handshakes, self.max_handshakes) {
            let max = self.max_handshakes.unwrap_or(usize::MAX);
            return Err(self.reject(RejectionReason::Handshakes(max)));
        }
        permit.handshaking = AtomicBool::new(true);
        // Behind a PROXY protocol balancer the address is known once the header is read.
        if !self.proxied.get(listener).copied().unwrap_or(false) {
            permit.addr = self.open_address(addr)?;
        }
        Ok(permit)
    }

    /// Counts a connection from `addr` under the per-address limits (open connections and
    /// rate), or refuses it (429); `None` when there are no per-address limits.
    fn open_address(&self, addr: IpAddr) -> Result<Option<IpAddr>, Rejection> {
        let Some((table, rate)) = self.addresses.as_deref() else {
            return Ok(None);
        };
        let addr = addr.to_canonical();
        let opened = match table.lock() {
            Ok(mut table) => table.open(addr, Instant::now()),
            Err(poisoned) => poisoned.into_inner().open(addr, Instant::now()),
        };
        match opened {
            Ok(()) => Ok(Some(addr)),
            Err(AddressRefusal::TooManyOpen) => {
                let max = table_max(table);
                Err(self.reject(RejectionReason::AddressConnections(max)))
            }
            Err(AddressRefusal::TooFast(wait)) => {
                let mut rejection = self.reject(RejectionReason::AddressRate(rate.unwrap_or(0)));
                rejection.retry_after = rejection.retry_after.max(wait);
                Err(rejection)
            }
        }
    }

    /// Admits a connection the gateway just accepted, or answers it at once and returns
    /// `None`: on a plain listener the refusal (503 or 429 with `Retry-After`) is written
    /// after the client's request was read (at most a second's wait); on a TLS listener, or
    /// when too many refusals are being answered already, it is closed.
    pub(crate) fn admit_accepted(
        self: &Arc<Self>,
        listener: usize,
        stream: TcpStream,
        peer: SocketAddr,
        tls: bool,
    ) -> Option<(TcpStream, Permit)> {
        let rejection = match self.admit(listener, peer.ip()) {
            Ok(permit) => return Some((stream, permit)),
            Err(rejection) => rejection,
        };
        tracing::debug!(%peer, status = rejection.status(), reason = %rejection.reason, "connection refused at admission");
        if tls {
            return None;
        }
        // The answer holds a descriptor for a moment: it takes a place of the connections
        // when one is free (a client address over its own limit), else one of the few kept
        // in reserve for refusals; with neither, the connection is closed unanswered.
        let admission = Arc::clone(self);
        let counter: fn(&Admission) = if take(&self.shared.connections, self.max_connections) {
            |a: &Admission| give(&a.shared.connections)
        } else if take(&self.shared.turning_away, Some(self.max_turning_away)) {
            |a: &Admission| give(&a.shared.turning_away)
        } else {
            return None;
        };
        tokio::spawn(async move {
            turn_away(stream, &rejection).await;
            counter(&admission);
        });
        None
    }
}

/// The per-address connection cap of a table, for the refusal's text.
fn table_max(table: &Mutex<AddressTable>) -> usize {
    match table.lock() {
        Ok(t) => t.max_open(),
        Err(poisoned) => poisoned.into_inner().max_open(),
    }
}

/// Reads the refused client's request (bounded in time and size), answers it and closes.
pub(crate) async fn turn_away(mut stream: TcpStream, rejection: &Rejection) {
    let mut chunk = [0u8; 2048];
    let mut seen = 0usize;
    let mut tail = [0u8; 4];
    let read = async {
        while seen < TURN_AWAY_BYTES {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            seen += n;
            for &b in &chunk[..n] {
                tail = [tail[1], tail[2], tail[3], b];
            }
            if chunk[..n].windows(4).any(|w| w == b"\r\n\r\n") || &tail == b"\r\n\r\n" {
                break;
            }
        }
        true
    };
    if let Ok(false) = tokio::time::timeout(TURN_AWAY_READ, read).await {
        return;
    }
    let mut out = Vec::new();
    rejection.write_response(&mut out);
    let _ = tokio::time::timeout(TURN_AWAY_READ, async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// No route entered yet.
const NO_ROUTE: usize = usize::MAX;

/// The places a permit holds.
#[derive(Debug, Default)]
struct Held {
    connection: bool,
    listener: bool,
}

/// One admitted connection's places (process, listener, handshake, address, then route);
/// each is given back when the permit is dropped, at the end of the connection.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    held: Held,
    listener: usize,
    /// The address counted in the per-address table, if there is one.
    addr: Option<IpAddr>,
    handshaking: AtomicBool,
    route: AtomicUsize,
}

impl Permit {
    /// The client's request is complete and routed to `routes[index]`: its handshake place is
    /// given back, and it takes a place of the route's tunnels, or is refused (503) when the
    /// route is full. Called before the upstream is contacted.
    pub fn enter_route(&self, index: usize) -> Result<(), Rejection> {
        self.end_handshake();
        let admission = &self.admission;
        if let Some(slot) = admission.routes.get(index) {
            if self.route.load(Ordering::Acquire) == NO_ROUTE {
                if !take(&slot.open, slot.max) {
                    let max = slot.max.unwrap_or(usize::MAX);
                    return Err(admission.reject(RejectionReason::Route(max)));
                }
                self.route.store(index, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Counts the connection under the per-address limits as coming from `addr`, the client
    /// address a PROXY header carried (on listeners whose addresses are counted then, not at
    /// accept); refused (429) when that address is over its limits. Once per permit.
    pub fn admit_address(&mut self, addr: IpAddr) -> Result<(), Rejection> {
        if self.addr.is_none() {
            self.addr = self.admission.open_address(addr)?;
        }
        Ok(())
    }

    /// The connection's handshake is over without a route (an HTTP/2 connection, whose
    /// streams are admitted one by one): its handshake place is given back.
    pub(crate) fn end_handshake(&self) {
        if self.handshaking.swap(false, Ordering::AcqRel) {
            give(&self.admission.shared.handshakes);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.end_handshake();
        let admission = &self.admission;
        if self.held.connection {
            give(&admission.shared.connections);
        }
        if self.held.listener {
            if let Some(slot) = admission.listeners.get(self.listener) {
                give(&slot.open);
            }
        }
        let route = *self.route.get_mut();
        if let Some(slot) = admission.routes.get(route) {
            give(&slot.open);
        }
        if let (Some(addr), Some((table, _))) = (self.addr, admission.addresses.as_deref()) {
            match table.lock() {
                Ok(mut t) => t.close(addr),
                Err(poisoned) => poisoned.into_inner().close(addr),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            max_connections: Some(3),
            listeners: vec![None],
            routes: vec![Some(1)],
            ..AdmissionLimits::default()
        }
    }

    #[test]
    fn permits_give_their_places_back_when_dropped() {
        let admission = Arc::new(Admission::new(&limits()));
        let permits: Vec<Permit> = (0..3).map(|_| admission.admit(0, A).unwrap()).collect();
        let refused = admission.admit(0, A).unwrap_err();
        assert_eq!(refused.reason, RejectionReason::Connections(3));
        assert_eq!(refused.status(), 503);
        assert!(permits[0].enter_route(0).is_ok());
        assert_eq!(
            permits[1].enter_route(0).unwrap_err().reason,
            RejectionReason::Route(1)
        );
        assert_eq!(admission.shared.handshakes.load(Ordering::Relaxed), 1);
        drop(permits);
        assert_eq!(admission.connections(), 0);
        assert_eq!(admission.routes[0].open.load(Ordering::Relaxed), 0);
        assert_eq!(admission.shared.handshakes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_reload_keeps_the_counts_of_routes_that_stay() {
        let admission = Arc::new(Admission::new(&limits()));
        let tunnel = admission.admit(0, A).unwrap();
        tunnel.enter_route(0).unwrap();
        // The reloaded configuration puts a new route first; the old one moves to index 1.
        let reloaded = AdmissionLimits {
            routes: vec![Some(1), Some(1)],
            ..limits()
        };
        let next = Arc::new(admission.carried_over(&reloaded, &[Some(0)], &[None, Some(0)]));
        assert_eq!((next.route_tunnels(0), next.route_tunnels(1)), (0, 1));
        let later = next.admit(0, A).unwrap();
        assert_eq!(
            later.enter_route(1).unwrap_err().reason,
            RejectionReason::Route(1)
        );
        assert_eq!(next.connections(), 2);
        drop(tunnel);
        assert_eq!((next.route_tunnels(1), next.connections()), (0, 1));
        assert!(later.enter_route(0).is_ok());
    }

    #[test]
    fn behind_a_proxy_protocol_listener_addresses_are_counted_from_the_header() {
        let limits = AdmissionLimits {
            per_address_connections: Some(1),
            listeners: vec![None, None],
            proxied_listeners: vec![false, true],
            ..limits()
        };
        let admission = Arc::new(Admission::new(&limits));
        // Accepts from the balancer's one address are not counted against it ...
        let mut first = admission.admit(1, A).unwrap();
        let mut second = admission.admit(1, A).unwrap();
        // ... the clients' carried addresses are, and refused over their limit (429).
        let client: IpAddr = [192, 0, 2, 7].into();
        first.admit_address(client).unwrap();
        let refused = second.admit_address(client).unwrap_err();
        assert_eq!(refused.status(), 429);
        second.admit_address([192, 0, 2, 8].into()).unwrap();
        drop(first);
        let mut third = admission.admit(1, A).unwrap();
        third.admit_address(client).unwrap();
        // A listener without the PROXY protocol counts at accept, as before.
        let _direct = admission.admit(0, A).unwrap();
        assert!(admission.admit(0, A).is_err());
    }

    #[test]
    fn per_address_refusals_are_429_with_retry_after() {
        let limits = AdmissionLimits {
            per_address_connections: Some(1),
            ..limits()
        };
        let admission = Arc::new(Admission::new(&limits));
        let _held = admission.admit(0, A).unwrap();
        let refused = admission.admit(0, A).unwrap_err();
        assert_eq!(refused.status(), 429);
        let mut out = Vec::new();
        refused.write_response(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(text.contains("Retry-After: 1\r\n"), "{text}");
        // The refused one gave its places back.
        assert_eq!(admission.connections(), 1);
    }
}
