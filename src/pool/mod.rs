//! Backend pools: named sets of backends that routes share, so their load and health are shared
//! too. A pool picks one backend per connection ([`balance`]), keeps the passive health of each
//! (consecutive handshake failures eject it for a while), the active health its checks report
//! ([`health`]), the circuit breakers (tunnels per backend, handshakes per pool), and the sticky
//! cookie ([`sticky`]). [`connect`] is the pipeline's connect stage over a pool: pick, connect,
//! and on a retryable failure pick another backend, before the client has its 101.
//!
//! Shared state is atomics on the [`Pool`] (an `Arc` in every route that names it, read by every
//! worker); only the smooth weighted round robin takes a short lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::upstream::Upstream;

pub mod balance;
mod connect;
pub mod health;
pub mod sticky;

pub use balance::{HashKey, Policy, Ring};
pub use connect::{connect, Connected};
pub use health::{HealthCheck, HealthKind};
pub use sticky::Sticky;

/// One backend of a pool: where it is, its weight, and its shared state.
#[derive(Debug)]
pub struct Backend {
    /// The backend's address and TLS settings.
    pub upstream: Upstream,
    /// Its share of connections relative to the others (at least 1).
    pub weight: u32,
    /// `host:port/path` as logs name it (`backend=`).
    pub name: String,
    state: BackendState,
}

/// What every worker sees of one backend, apart from what picks read (in [`Hot`]).
#[derive(Debug)]
struct BackendState {
    /// Handshake failures in a row (passive health).
    failures: AtomicU32,
    /// How many times it was ejected in a row (the ejection time grows with it).
    ejections: AtomicU32,
    /// Counts the times it was marked down, for tunnels that close when that happens.
    down_events: watch::Sender<u64>,
}

/// What a pick reads of one backend, kept in one array per pool (24 bytes a backend, 2.4 KB
/// for 100) rather than spread over the backends' larger records: a pick scans it whole.
#[derive(Debug)]
pub(crate) struct Hot {
    /// Open tunnels plus handshakes in progress: what least connections compares.
    load: AtomicUsize,
    /// Milliseconds since the pool's epoch until which it is ejected; 0: not ejected.
    ejected_until: AtomicU64,
    /// The backend's weight.
    pub(crate) weight: u32,
    /// Marked down by the active health checks.
    down: AtomicBool,
}

impl Hot {
    /// Open tunnels plus handshakes in progress.
    #[inline]
    pub(crate) fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }
}

impl Backend {
    /// A backend of `weight` at `upstream`.
    pub fn new(upstream: Upstream, weight: u32) -> Backend {
        let name = format!(
            "{}{}",
            upstream.uri.authority(),
            if upstream.uri.path_and_query == "/" {
                ""
            } else {
                upstream.uri.path_and_query.as_str()
            }
        );
        Backend {
            upstream,
            weight: weight.max(1),
            name,
            state: BackendState {
                failures: AtomicU32::new(0),
                ejections: AtomicU32::new(0),
                down_events: watch::Sender::new(0),
            },
        }
    }
}

/// What a tunnel does when its backend is marked down by the health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMarkedDown {
    /// Open tunnels stay (the default): the backend may still serve them.
    #[default]
    Keep,
    /// Open tunnels are closed with 1001 on both sides, so clients reconnect elsewhere.
    Close,
}

/// Passive health (outlier detection): consecutive handshake failures eject a backend.
#[derive(Debug, Clone, Copy)]
pub struct Outlier {
    /// Failures in a row that eject a backend; 0: never ejected.
    pub consecutive_failures: u32,
    /// The first ejection's length; each further ejection in a row adds as much again.
    pub base_ejection_time: Duration,
    /// The longest ejection.
    pub max_ejection_time: Duration,
    /// At most this share of the pool (percent) is ejected at once.
    pub max_ejected_percent: u8,
}

impl Default for Outlier {
    fn default() -> Outlier {
        Outlier {
            consecutive_failures: 5,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
            max_ejected_percent: 50,
        }
    }
}

/// A pool's settings besides its backends and policy.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Further backends tried when one fails before the 101 (never the same one twice).
    pub retries: usize,
    /// Most tunnels (and handshakes) per backend; `None`: no limit. Past it: 503.
    pub max_tunnels_per_backend: Option<usize>,
    /// Most handshakes in progress over the whole pool; `None`: no limit. Past it: 503.
    pub max_handshakes: Option<usize>,
    /// Passive health.
    pub outlier: Outlier,
    /// Active health checks; `None`: none.
    pub health_check: Option<HealthCheck>,
    /// What open tunnels do when their backend is marked down.
    pub on_marked_down: OnMarkedDown,
    /// Tunnels are closed with 1001 after this long (plus jitter); `None`: never.
    pub max_tunnel_lifetime: Option<Duration>,
    /// Up to this much is added at random to each tunnel's lifetime, so they do not all end
    /// together.
    pub lifetime_jitter: Duration,
    /// The sticky cookie, if any: its name and signing key.
    pub sticky: Option<Sticky>,
}

impl Default for PoolSettings {
    fn default() -> PoolSettings {
        PoolSettings {
            retries: 2,
            max_tunnels_per_backend: None,
            max_handshakes: None,
            outlier: Outlier::default(),
            health_check: None,
            on_marked_down: OnMarkedDown::Keep,
            max_tunnel_lifetime: None,
            lifetime_jitter: Duration::ZERO,
            sticky: None,
        }
    }
}

/// A named set of backends with a balancing policy and shared health.
#[derive(Debug)]
pub struct Pool {
    /// The pool's name, as routes name it.
    pub name: String,
    /// The backends, in the order configured.
    pub backends: Vec<Backend>,
    /// How a backend is chosen.
    pub policy: Policy,
    /// Retries, breakers, health, lifetime, sticky cookie.
    pub settings: PoolSettings,
    /// Handshakes in progress over the pool.
    handshakes: AtomicUsize,
    /// Open tunnels plus handshakes over the pool (the sum of the backends' loads).
    total_load: AtomicUsize,
    /// Backends with an ejection time set (expired or not): 0 lets picks skip the clock.
    ejected: AtomicUsize,
    /// The smooth weighted round robin's current weights.
    current: Mutex<Vec<i64>>,
    /// Where least connections starts its scan, so ties spread.
    next: AtomicUsize,
    /// Sums of weights up to each backend, for weighted random draws.
    cumulative: Vec<u64>,
    /// The hash ring (consistent hashing only).
    ring: Option<Ring>,
    /// The zero of `ejected_until`.
    epoch: Instant,
    /// What picks read of each backend, in the backends' order.
    pub(crate) hot: Box<[Hot]>,
    /// Each backend's sticky cookie value (empty without a sticky cookie).
    tokens: Vec<String>,
}

/// Why a pool gave no backend for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Every backend is at its tunnel cap, or the pool at its handshake cap (503).
    Saturated,
    /// Every backend was tried in this attempt.
    Exhausted,
}

impl Pool {
    /// A pool of `backends` picked by `policy`.
    pub fn new(name: &str, backends: Vec<Backend>, policy: Policy, settings: PoolSettings) -> Pool {
        let mut sum = 0u64;
        let cumulative = backends
            .iter()
            .map(|b| {
                sum += u64::from(b.weight);
                sum
            })
            .collect();
        let ring = matches!(policy, Policy::Hash { .. }).then(|| Ring::new(&backends));
        let tokens = match &settings.sticky {
            Some(sticky) => backends
                .iter()
                .enumerate()
                .map(|(i, b)| sticky.token(name, i, &b.name))
                .collect(),
            None => Vec::new(),
        };
        let hot = backends
            .iter()
            .map(|b| Hot {
                load: AtomicUsize::new(0),
                ejected_until: AtomicU64::new(0),
                weight: b.weight,
                down: AtomicBool::new(false),
            })
            .collect();
        Pool {
            hot,
            tokens,
            name: name.to_owned(),
            current: Mutex::new(vec![0; backends.len()]),
            backends,
            policy,
            settings,
            handshakes: AtomicUsize::new(0),
            total_load: AtomicUsize::new(0),
            ejected: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            cumulative,
            ring,
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the pool's epoch.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The health view of one pick: the clock (read once, only when something is ejected) and
    /// the tunnel cap.
    fn view(&self) -> View {
        let now = if self.ejected.load(Ordering::Relaxed) == 0 {
            u64::MAX
        } else {
            self.now_ms()
        };
        View {
            now,
            cap: self.settings.max_tunnels_per_backend.unwrap_or(usize::MAX),
            healthy_only: true,
        }
    }

    /// True if backend `i` is up: not marked down, not ejected.
    pub fn is_healthy(&self, i: usize) -> bool {
        let until = self.hot[i].ejected_until.load(Ordering::Relaxed);
        !self.is_down(i) && (until == 0 || until <= self.now_ms())
    }

    /// Open tunnels plus handshakes in progress on backend `i`.
    pub fn load(&self, i: usize) -> usize {
        self.hot[i].load()
    }

    /// True while the active health checks hold backend `i` down.
    pub fn is_down(&self, i: usize) -> bool {
        self.hot[i].down.load(Ordering::Relaxed)
    }

    /// Picks a backend for a connection: the policy's choice among healthy backends under
    /// their cap and not in `tried`; when no healthy backend is left, among all of them (a
    /// pool whose every backend looks down still serves rather than refusing everyone).
    /// `key` is the hash of the connection's key (consistent hashing).
    pub fn pick(&self, key: Option<u64>, tried: &[usize]) -> Result<usize, Unavailable> {
        if let Some(cap) = self.settings.max_handshakes {
            if self.handshakes.load(Ordering::Relaxed) >= cap {
                return Err(Unavailable::Saturated);
            }
        }
        let mut view = self.view();
        if let Some(i) = balance::choose(self, &view, key, tried) {
            return Ok(i);
        }
        view.healthy_only = false;
        match balance::choose(self, &view, key, tried) {
            Some(i) => Ok(i),
            None if tried.len() >= self.backends.len() => Err(Unavailable::Exhausted),
            None => Err(Unavailable::Saturated),
        }
    }

    /// Starts a handshake on backend `i`: it counts in the backend's load and in the pool's
    /// handshakes until the returned lease is established or dropped.
    pub fn lease(self: &Arc<Pool>, i: usize) -> Lease {
        self.hot[i].load.fetch_add(1, Ordering::Relaxed);
        self.total_load.fetch_add(1, Ordering::Relaxed);
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        Lease {
            pool: Arc::clone(self),
            index: i,
            established: false,
        }
    }

    /// A handshake with backend `i` succeeded: its failure count restarts, and an ejection
    /// that has run out is forgotten.
    pub fn record_success(&self, i: usize) {
        let (s, h) = (&self.backends[i].state, &self.hot[i]);
        s.failures.store(0, Ordering::Relaxed);
        if h.ejected_until.load(Ordering::Relaxed) != 0 {
            let until = h.ejected_until.load(Ordering::Relaxed);
            if until <= self.now_ms() && h.ejected_until.swap(0, Ordering::Relaxed) != 0 {
                s.ejections.store(0, Ordering::Relaxed);
                self.ejected.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// A handshake with backend `i` failed (connect, TLS, timeout, 502/503/504): after enough
    /// in a row it is ejected for a time that grows with each ejection, unless that would eject
    /// more than the pool's share.
    pub fn record_failure(&self, i: usize) {
        let outlier = &self.settings.outlier;
        let (s, h) = (&self.backends[i].state, &self.hot[i]);
        let failures = s.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if outlier.consecutive_failures == 0 || failures < outlier.consecutive_failures {
            return;
        }
        let now = self.now_ms();
        if h.ejected_until.load(Ordering::Relaxed) > now {
            return;
        }
        let ejected_now = (0..self.backends.len())
            .filter(|&j| self.hot[j].ejected_until.load(Ordering::Relaxed) > now)
            .count();
        let allowed = self.backends.len() * usize::from(outlier.max_ejected_percent) / 100;
        if ejected_now >= allowed.max(1) {
            return;
        }
        let times = s.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let length = (outlier.base_ejection_time * times).min(outlier.max_ejection_time);
        let until = now
            + u64::try_from(length.as_millis())
                .unwrap_or(u64::MAX / 2)
                .max(1);
        if h.ejected_until.swap(until, Ordering::Relaxed) == 0 {
            self.ejected.fetch_add(1, Ordering::Relaxed);
        }
        s.failures.store(0, Ordering::Relaxed);
        tracing::warn!(
            pool = %self.name,
            backend = %self.backends[i].name,
            failures,
            ejection_ms = length.as_millis() as u64,
            "backend ejected after failed handshakes in a row"
        );
    }

    /// Sets backend `i` down or up (active health); a change is logged, and tunnels are told
    /// when it goes down.
    pub fn set_down(&self, i: usize, down: bool) {
        let b = &self.backends[i];
        if self.hot[i].down.swap(down, Ordering::Relaxed) == down {
            return;
        }
        if down {
            tracing::warn!(pool = %self.name, backend = %b.name, "backend marked down by its health check");
            b.state.down_events.send_modify(|n| *n += 1);
        } else {
            tracing::info!(pool = %self.name, backend = %b.name, "backend marked up by its health check");
        }
    }

    /// Handshakes in progress over the pool.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }
}

/// The health and cap a pick checks backends against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// Milliseconds since the epoch; `u64::MAX` when no backend has an ejection time (then
    /// every ejection time is in the past without reading the clock).
    now: u64,
    /// The tunnel cap per backend.
    cap: usize,
    /// Skip backends that are down or ejected.
    healthy_only: bool,
}

impl View {
    /// True if backend `b` may take a connection in this pick.
    #[inline]
    pub(crate) fn admits(&self, h: &Hot) -> bool {
        // Evaluated whole, without branches: the picks' loops select with conditional moves.
        let under_cap = h.load.load(Ordering::Relaxed) < self.cap;
        let up = !h.down.load(Ordering::Relaxed);
        let not_ejected = h.ejected_until.load(Ordering::Relaxed) <= self.now;
        under_cap & (!self.healthy_only | (up & not_ejected))
    }
}

/// One connection's claim on a backend: counted in its load (and, until established, in the
/// pool's handshakes) for as long as it lives.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    index: usize,
    established: bool,
}

impl Lease {
    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.pool.backends[self.index]
    }

    /// The backend's index in its pool.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The pool.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The handshake succeeded: from now on a tunnel, no longer a handshake in progress.
    pub fn establish(&mut self) {
        if !self.established {
            self.established = true;
            self.pool.handshakes.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Completes when the tunnel should end on the pool's account: its maximum lifetime
    /// (with jitter) has passed, or (with `on_marked_down = "close"`) its backend was marked
    /// down. `None` when neither applies (the tunnel costs nothing more). Logs why.
    pub fn ending(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let settings = &self.pool.settings;
        let lifetime = settings
            .max_tunnel_lifetime
            .map(|life| life + balance::jitter(settings.lifetime_jitter));
        let mut down = (settings.on_marked_down == OnMarkedDown::Close)
            .then(|| self.backend().state.down_events.subscribe());
        if lifetime.is_none() && down.is_none() {
            return None;
        }
        let (pool, backend) = (self.pool.name.clone(), self.backend().name.clone());
        Some(async move {
            let aged = async {
                match lifetime {
                    Some(life) => tokio::time::sleep(life).await,
                    None => std::future::pending().await,
                }
            };
            let marked_down = async {
                match down.as_mut() {
                    // A change after the subscription: the backend went down since.
                    Some(events) => {
                        if events.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = aged => tracing::info!(pool, backend, "closing a tunnel at its maximum lifetime (1001)"),
                () = marked_down => tracing::info!(pool, backend, "closing a tunnel whose backend was marked down (1001)"),
            }
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.hot[self.index]
            .load
            .fetch_sub(1, Ordering::Relaxed);
        self.pool.total_load.fetch_sub(1, Ordering::Relaxed);
        if !self.established {
            self.pool.handshakes.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Starts the active health checks of every pool the routes name (each pool once) on the
/// current runtime, until `stop` turns true.
pub fn spawn_health_checks(routes: &[crate::route::Route], stop: &watch::Receiver<bool>) {
    let mut started: Vec<&Arc<Pool>> = Vec::new();
    for pool in routes.iter().filter_map(|r| r.pool.as_ref()) {
        if !started.iter().any(|p| Arc::ptr_eq(p, pool)) {
            health::spawn(pool, stop);
            started.push(pool);
        }
    }
}
#[cfg(test)]
mod tests;
