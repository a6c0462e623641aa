//! The gateway's metrics, exported on the admin listener's `/metrics` (see [`crate::admin`]).
//!
//! Built with the Prometheus organisation's `prometheus-client` crate: its registry, metric
//! types and OpenMetrics encoder. What is counted once per connection (connections, handshakes,
//! durations) uses its metric types directly. What is counted per frame is not: the relay
//! keeps those numbers in the connection's own state ([`LiveTraffic`]), and the tunnel registry
//! sums them when `/metrics` is scraped, so forwarding a frame touches no memory another core
//! writes.
//!
//! Label values come from the configuration only (route names, their backends, listener
//! addresses) or from fixed sets (directions, sides, registered close codes and HTTP statuses,
//! else `other`): what clients send never adds a series.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use wsrelay_relay::{LiveTraffic, RelayOutcome};

use crate::config::GatewayConfig;
use crate::route::Route;

pub mod exposition;
mod http;
mod process;
mod tunnels;

pub use exposition::Format;
use tunnels::Tunnels;

tokio::task_local! {
    /// The metrics of the gateway whose connection the current task serves; see [`scope`].
    static CONNECTION_METRICS: Option<Arc<Metrics>>;
}

/// Runs a connection's future with `metrics` as the place its refusals are counted: the
/// pipeline's one `refuse` counts every refusal it answers there, by route and rendered status,
/// so a refusal added later is counted without a change here.
pub(crate) fn scope<F: std::future::Future>(
    metrics: Option<Arc<Metrics>>,
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    CONNECTION_METRICS.scope(metrics, future)
}

/// Counts a refusal with `status` on `route` in the current connection's metrics, if it has any
/// (the embedding API's connections have none).
pub(crate) fn count_refusal(route: &str, status: u16) {
    let _ = CONNECTION_METRICS.try_with(|metrics| {
        if let Some(metrics) = metrics {
            metrics.handshake(route, status, None);
        }
    });
}

/// Counts a plain-HTTP exchange on `route` (its status, duration and body bytes each way) in
/// the current connection's metrics, if it has any.
pub(crate) fn count_http(route: &str, status: u16, took: Duration, received: u64, sent: u64) {
    let _ = CONNECTION_METRICS.try_with(|metrics| {
        if let Some(metrics) = metrics {
            let slot = metrics.route(route);
            let route = &metrics.route_names[slot];
            metrics
                .http
                .exchange(route, status, took.as_secs_f64(), received, sent);
        }
    });
}

/// The `route` label of what happened before a route was chosen (404, 400, 408...).
pub const NO_ROUTE: &str = "-";

/// The `backend` labels of a route: where its tunnels can go, as the pipeline names the backend
/// of each tunnel. A route with one upstream has its authority (`host:port`); a route with a
/// pool has each of the pool's backends (`host:port/path`), so the configuration bounds them.
pub fn backends_of(route: &Route) -> Vec<String> {
    if let Some(pool) = &route.pool {
        return pool.backends.iter().map(|b| b.name.clone()).collect();
    }
    vec![route
        .upstream
        .as_ref()
        .map_or_else(|| NO_ROUTE.to_owned(), |u| u.uri.authority())]
}

/// A label set of `N` pairs.
type Labels<const N: usize> = [(&'static str, String); N];

/// The metrics of one gateway: created with it when it has an admin listener, shared by its
/// workers and the admin listener's thread.
pub struct Metrics {
    registry: Registry,
    /// Route names to their index in the configuration; unknown names take the last slot.
    route_index: HashMap<String, usize>,
    /// Route names, in configuration order, then [`NO_ROUTE`].
    route_names: Vec<String>,
    /// `wsrelay_client_connections`, one gauge per listener.
    connections: Vec<Gauge>,
    handshakes: Family<Labels<2>, Counter>,
    /// Per route (and the no-route slot): handshake, upstream connect and tunnel durations.
    handshake_seconds: Vec<Histogram>,
    connect_seconds: Vec<Histogram>,
    tunnel_seconds: Vec<Histogram>,
    tunnels: Arc<Tunnels>,
    draining: AtomicBool,
    /// Plain-HTTP exchanges (`http = true` routes).
    http: http::HttpMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("routes", &self.route_names)
            .finish_non_exhaustive()
    }
}

/// Buckets of the handshake and upstream connect histograms: 0.5 ms to about 16 s.
fn handshake_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Buckets of the tunnel duration histogram: 10 ms to about 12 h.
fn tunnel_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 12))
}

/// HTTP statuses that get their own `outcome` label (the registered ones a gateway answers
/// with, or relays); any other status an upstream sends is counted as `other`.
const KNOWN_STATUSES: [u16; 36] = [
    101, 200, 301, 302, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412,
    413, 414, 415, 421, 422, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 511,
];

/// The `outcome` label of a handshake that ended with `status`.
fn outcome_label(status: u16) -> String {
    if KNOWN_STATUSES.contains(&status) {
        status.to_string()
    } else {
        "other".to_owned()
    }
}

impl Metrics {
    /// The metrics of a gateway running `config`, its listeners bound at `listeners`.
    pub fn new(config: &GatewayConfig, listeners: &[SocketAddr]) -> Metrics {
        let mut registry = Registry::default();
        let mut route_names: Vec<String> = config.routes.iter().map(|r| r.name.clone()).collect();
        let mut backends: Vec<Vec<String>> = config.routes.iter().map(backends_of).collect();
        route_names.push(NO_ROUTE.to_owned());
        backends.push(vec![NO_ROUTE.to_owned()]);
        let mut route_index = HashMap::new();
        for (i, name) in route_names.iter().enumerate() {
            route_index.entry(name.clone()).or_insert(i);
        }

        let connections_family = Family::<Labels<1>, Gauge>::default();
        let connections = listeners
            .iter()
            .map(|a| connections_family.get_or_create_owned(&[("listener", a.to_string())]))
            .collect();
        registry.register(
            "wsrelay_client_connections",
            "Client connections open, per listener (from the accept to the end of the relay)",
            connections_family,
        );

        let handshakes = Family::<Labels<2>, Counter>::default();
        // Every route's 101 series exists from the start, so rates are right from the first.
        for route in &config.routes {
            let _ = handshakes.get_or_create(&[
                ("route", route.name.clone()),
                ("outcome", outcome_label(101)),
            ]);
        }
        registry.register(
            "wsrelay_handshakes",
            "Opening handshakes by route and outcome: 101, or the HTTP status of the refusal",
            handshakes.clone(),
        );

        let per_route =
            |registry: &mut Registry, name: &str, help: &str, make: fn() -> Histogram| {
                let family =
                    Family::<Labels<1>, Histogram, fn() -> Histogram>::new_with_constructor(make);
                // The no-route slot is never observed (no upstream, no 101): kept out of the family.
                let mut handles = config
                    .routes
                    .iter()
                    .map(|r| family.get_or_create_owned(&[("route", r.name.clone())]))
                    .collect::<Vec<_>>();
                handles.push(make());
                registry.register(name, help, family);
                handles
            };
        let handshake_seconds = per_route(
            &mut registry,
            "wsrelay_handshake_duration_seconds",
            "Time from a client's request head received to its 101 sent, per route",
            handshake_buckets,
        );
        let connect_seconds = per_route(
            &mut registry,
            "wsrelay_upstream_connect_duration_seconds",
            "Time to connect to the upstream and have its 101 (TCP, TLS, upgrade), per route",
            handshake_buckets,
        );
        let tunnel_seconds = per_route(
            &mut registry,
            "wsrelay_tunnel_duration_seconds",
            "Time from a tunnel's 101 to the end of its relay, per route",
            tunnel_buckets,
        );

        let http = http::HttpMetrics::new(&mut registry, config);
        let tunnels = Arc::new(Tunnels::new(route_names.clone(), backends));
        registry.register_collector(Box::new(Arc::clone(&tunnels)));
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        Metrics {
            registry,
            route_index,
            route_names,
            connections,
            handshakes,
            handshake_seconds,
            connect_seconds,
            tunnel_seconds,
            tunnels,
            draining: AtomicBool::new(false),
            http,
        }
    }

    /// The slot of the route named `route` ([`NO_ROUTE`]'s for an unknown name).
    fn route(&self, route: &str) -> usize {
        self.route_index
            .get(route)
            .copied()
            .unwrap_or(self.route_names.len() - 1)
    }

    /// A client connection was accepted on listener `listener`: counted open until the guard
    /// is dropped.
    pub fn client_connected(&self, listener: usize) -> Option<ConnectionGuard> {
        let gauge = self.connections.get(listener)?.clone();
        gauge.inc();
        Some(ConnectionGuard { gauge })
    }

    /// A handshake on `route` ended with `status` (101, or the refusal's status); `took` is
    /// the time from its head to its 101, for handshakes that got one.
    pub fn handshake(&self, route: &str, status: u16, took: Option<Duration>) {
        let slot = self.route(route);
        let labels = [
            ("route", self.route_names[slot].clone()),
            ("outcome", outcome_label(status)),
        ];
        self.handshakes.get_or_create(&labels).inc();
        if let Some(took) = took {
            self.handshake_seconds[slot].observe(took.as_secs_f64());
        }
    }

    /// Connecting to `route`'s upstream (up to its verified 101) took `took`.
    pub fn upstream_connected(&self, route: &str, took: Duration) {
        self.connect_seconds[self.route(route)].observe(took.as_secs_f64());
    }

    /// A tunnel of `route` to `backend` opened: counted open, its live traffic summed at each
    /// scrape, until [`TunnelGuard::finish`] (or the guard's drop, if its task was cut off).
    pub fn tunnel_opened(self: &Arc<Self>, route: &str, backend: &str) -> TunnelGuard {
        let slot = self.route(route);
        let live = Arc::new(LiveTraffic::default());
        self.tunnels.open(slot, backend, &live);
        TunnelGuard {
            metrics: Arc::clone(self),
            route: slot,
            live,
            finished: false,
        }
    }

    /// Shutdown has begun: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// True once shutdown has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The exposition of every metric in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing into a String cannot fail; an encoder error would be a bug of ours.
            out.clear();
        }
        match format {
            Format::OpenMetrics => out,
            Format::Text => exposition::to_text_format(&out),
        }
    }
}

/// An open client connection, counted in `wsrelay_client_connections` until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// An open tunnel, counted until finished or dropped; hand [`live`](TunnelGuard::live) to the
/// relay ([`Relay::with_live_traffic`](wsrelay_relay::Relay::with_live_traffic)).
#[derive(Debug)]
pub struct TunnelGuard {
    metrics: Arc<Metrics>,
    route: usize,
    live: Arc<LiveTraffic>,
    finished: bool,
}

impl TunnelGuard {
    /// The live counters the relay publishes into.
    pub fn live(&self) -> Arc<LiveTraffic> {
        Arc::clone(&self.live)
    }

    /// The tunnel ended with `outcome`: its traffic and closes join the route's totals, its
    /// duration the histogram.
    pub fn finish(mut self, outcome: &RelayOutcome) {
        self.finished = true;
        let metrics = &self.metrics;
        metrics.tunnel_seconds[self.route].observe(outcome.duration.as_secs_f64());
        metrics.tunnels.close(self.route, &self.live, Some(outcome));
    }
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        if !self.finished {
            // Cut off (the shutdown deadline aborted its task): what it published is kept.
            self.metrics.tunnels.close(self.route, &self.live, None);
        }
    }
}
