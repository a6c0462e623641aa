//! The gateway's sockets and threads: listeners bound on every worker, the accept loops that
//! hand each connection to the [`pipeline`](crate::pipeline), and the graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::admin::AdminServer;
use crate::admission::Admission;
use crate::config::GatewayConfig;
use crate::generation::{Generation, Generations};
use crate::metrics::Metrics;
use crate::pipeline::{serve_connection, Accepted, Listening};
use crate::reload::Reloader;

/// A bound gateway, ready to serve.
///
/// With `workers` > 1 it runs thread-per-core, as nginx does: one single-threaded runtime per
/// worker, each accepting on its own sockets bound to the same addresses with `SO_REUSEPORT`,
/// so the kernel spreads connections over workers and a connection's two directions, its
/// buffers and its wake-ups all stay on one thread.
pub struct Gateway {
    /// The first worker's listeners, on the caller's runtime.
    listeners: Vec<TcpListener>,
    /// The other workers' listeners, handed to their own runtimes.
    others: Vec<Vec<std::net::TcpListener>>,
    local: Vec<SocketAddr>,
    config: Arc<GatewayConfig>,
    /// The admission limits' state, shared by every worker.
    admission: Arc<Admission>,
    /// The admin listener and the metrics it serves, when `admin` is configured.
    admin: Option<(AdminServer, Arc<Metrics>)>,
    /// The configuration file SIGHUP and `POST /reload` read again; `None`: no reloads.
    reload_from: Option<std::path::PathBuf>,
    /// The document a gateway without a file was configured from (the routes API edits it).
    document: Option<String>,
}

/// A listening socket that other workers may bind too.
pub(crate) fn reusable_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    Ok(socket)
}

/// Connections a listener queues before accepting.
pub(crate) const BACKLOG: u32 = 1024;

impl Gateway {
    /// Binds and listens on one socket per listener and worker (a port of 0 is resolved
    /// once, so all workers share the port the first one got). Connections queue from here
    /// on. Routes that skip certificate verification are logged as warnings. Fails when the
    /// OS random source does not work: every upgrade and re-masked frame needs it.
    pub async fn bind(config: GatewayConfig) -> io::Result<Gateway> {
        wsrelay_codec::random::seed_this_thread()
            .map_err(|e| io::Error::other(format!("cannot start: {e}")))?;
        for route in &config.routes {
            if route
                .upstream
                .as_ref()
                .is_some_and(|u| u.insecure_skip_verify)
            {
                tracing::warn!(
                    route = %route.name,
                    "insecure_skip_verify: the upstream's TLS certificate is NOT verified"
                );
            }
        }
        let mut listeners = Vec::new();
        let mut local = Vec::new();
        for l in &config.listeners {
            let first = reusable_socket(l.address)?;
            first.bind(l.address)?;
            local.push(first.local_addr()?);
            listeners.push(first.listen(BACKLOG)?);
        }
        let mut others = Vec::new();
        for _ in 1..config.workers.max(1) {
            let mut mine = Vec::new();
            for addr in &local {
                let socket = reusable_socket(*addr)?;
                socket.bind(*addr)?;
                // Moved out of this runtime; the worker's own runtime takes it back in `run`.
                mine.push(socket.listen(BACKLOG)?.into_std()?);
            }
            others.push(mine);
        }
        // Once the listeners are bound: a derived connection cap counts their descriptors.
        let admission = Arc::new(Admission::new(&config.admission));
        let admin = match config.admin {
            Some(address) => {
                let metrics = Arc::new(Metrics::new(&config, &local));
                Some((AdminServer::bind(address, Arc::clone(&metrics))?, metrics))
            }
            None => None,
        };
        Ok(Gateway {
            listeners,
            others,
            local,
            config: Arc::new(config),
            admission,
            admin,
            reload_from: None,
            document: None,
        })
    }

    /// Reloads the configuration from `path` on SIGHUP and on `POST /reload` of the admin
    /// listener (see [`crate::reload`]).
    pub fn reload_from(self, path: impl Into<std::path::PathBuf>) -> Gateway {
        Gateway {
            reload_from: Some(path.into()),
            ..self
        }
    }

    /// The configuration document of a gateway without a file (the flags' document): what the
    /// routes API edits, in memory only (see [`crate::routes_api`]).
    pub fn with_document(self, text: impl Into<String>) -> Gateway {
        Gateway {
            document: Some(text.into()),
            ..self
        }
    }

    /// The address actually bound by the first listener (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.local
            .first()
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no listener"))
    }

    /// The addresses actually bound, in the order of the configured listeners.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// The admin listener's address, if the gateway has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(a, _)| a.local_addr().ok())
    }

    /// Serves until `shutdown` completes; then every worker stops accepting, sends 1001 to both
    /// sides of each open relay and waits for them, at most the shutdown timeout.
    ///
    /// The first worker runs on the caller's runtime; the others get a thread and a
    /// single-threaded runtime each.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let winding_down = self.config.winding_down;
        let first = Generation::first(
            Arc::clone(&self.config),
            Arc::clone(&self.admission),
            self.local.clone(),
        );
        let (reloader, generations) = Reloader::new(self.reload_from, first, stop_rx.clone());
        if let Some(document) = self.document {
            reloader.set_document(document);
        }
        let (admin, metrics) = match self.admin {
            Some((server, metrics)) => {
                let server = server.with_reloader(Arc::clone(&reloader));
                (Some(server.spawn()?), Some(metrics))
            }
            None => (None, None),
        };
        let mut threads = Vec::new();
        for (n, listeners) in self.others.into_iter().enumerate() {
            let generations = generations.clone();
            let stop = stop_rx.clone();
            let metrics = metrics.clone();
            let thread = std::thread::Builder::new()
                .name(format!("wsrelay-worker-{}", n + 1))
                .spawn(move || -> io::Result<()> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async move {
                        let listeners = listeners
                            .into_iter()
                            .map(TcpListener::from_std)
                            .collect::<io::Result<Vec<_>>>()?;
                        worker(n + 1, listeners, generations, stop, metrics).await
                    })
                })?;
            threads.push(thread);
        }
        let hangups = crate::reload::on_hangup(&reloader, stop_rx.clone());
        let first = worker(0, self.listeners, generations, stop_rx, metrics.clone());
        let signal = async {
            shutdown.await;
            // Readiness turns 503 at once; the listeners keep accepting for the drain delay.
            if let Some(metrics) = &metrics {
                metrics.set_draining();
            }
            if !winding_down.drain_delay.is_zero() {
                tracing::info!(
                    delay_ms = winding_down.drain_delay.as_millis() as u64,
                    "draining: readiness 503, still accepting for the drain delay"
                );
                tokio::time::sleep(winding_down.drain_delay).await;
            }
            tracing::info!(
                window_ms = winding_down.drain_window.as_millis() as u64,
                "shutting down: no longer accepting; closing open connections with 1001 over the drain window"
            );
            let _ = stop_tx.send(true);
            reloader.stop_health_checks();
        };
        let (served, (), ()) = tokio::join!(first, signal, hangups);
        let joined = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(io::Error::other("worker panicked")))
                })
                .collect::<io::Result<Vec<()>>>()
        })
        .await
        .map_err(io::Error::other)?;
        // The admin listener served through the drain (readiness 503); it stops here.
        drop(admin);
        served.and(joined.map(drop))
    }
}

/// One worker (number `n`): serves each of its listeners (same order as the configured ones)
/// until stopped, and the listeners reloads add (their sockets come with the generation).
async fn worker(
    n: usize,
    listeners: Vec<TcpListener>,
    mut generations: Generations,
    mut stop: watch::Receiver<bool>,
    metrics: Option<Arc<Metrics>>,
) -> io::Result<()> {
    let mut serving = JoinSet::new();
    let first = Arc::clone(&generations.borrow_and_update());
    let mut served: Vec<SocketAddr> = Vec::new();
    for (listener, address) in listeners.into_iter().zip(&first.bound) {
        served.push(*address);
        serving.spawn(serve(
            listener,
            *address,
            generations.clone(),
            stop.clone(),
            metrics.clone(),
        ));
    }
    let mut result = Ok(());
    let mut stopping = false;
    loop {
        tokio::select! {
            Some(done) = serving.join_next() => {
                let done = done.map_err(io::Error::other).and_then(|r| r);
                result = result.and(done);
            }
            Ok(()) = generations.changed(), if !stopping => {
                let generation = Arc::clone(&generations.borrow_and_update());
                served.retain(|a| generation.listener_index(*a).is_some());
                for address in &generation.bound {
                    if served.contains(address) {
                        continue;
                    }
                    let Some(socket) = generation.take_socket(*address, n) else {
                        continue;
                    };
                    served.push(*address);
                    match TcpListener::from_std(socket) {
                        Ok(listener) => {
                            serving.spawn(serve(
                                listener,
                                *address,
                                generations.clone(),
                                stop.clone(),
                                metrics.clone(),
                            ));
                        }
                        Err(e) => tracing::error!(error = %e, "added listener not served"),
                    }
                }
            }
            _ = async { stop.wait_for(|s| *s).await.is_ok() }, if !stopping => stopping = true,
            else => break,
        }
        if stopping && serving.is_empty() {
            break;
        }
    }
    result
}

/// What the connections a listener accepts next share: the current generation's settings for
/// the listener bound at `address`; `None` once a reload removed it.
fn listening(
    generations: &mut Generations,
    address: SocketAddr,
    stop: &watch::Receiver<bool>,
    metrics: &Option<Arc<Metrics>>,
) -> Option<Arc<Listening>> {
    let generation = Arc::clone(&generations.borrow_and_update());
    let index = generation.listener_index(address)?;
    Some(Arc::new(Listening {
        index,
        tls: (generation.config.listeners[index].tls.clone()).map(TlsAcceptor::from),
        config: Arc::clone(&generation.config),
        stop: stop.clone(),
        admission: Arc::clone(&generation.admission),
        metrics: metrics.clone(),
        gauge: generation.gauge_slot(address),
        generations: Some(generations.clone()),
    }))
}

/// Accepts and serves the connections of the listener bound at `address` until `stop`
/// turns true, then winds them down. Each connection runs with the generation current when it
/// was accepted; once a reload removes the listener it stops accepting, and ends when its
/// connections have.
async fn serve(
    listener: TcpListener,
    address: SocketAddr,
    mut generations: Generations,
    stop: watch::Receiver<bool>,
    metrics: Option<Arc<Metrics>>,
) -> io::Result<()> {
    let mut tasks = JoinSet::new();
    let mut stopping = stop.clone();
    let mut failures = AcceptFailures::default();
    let Some(mut listening) = listening(&mut generations, address, &stop, &metrics) else {
        return Ok(());
    };
    let mut listener = Some(listener);
    loop {
        tokio::select! {
            Ok(()) = generations.changed(), if listener.is_some() => {
                match self::listening(&mut generations, address, &stop, &metrics) {
                    Some(next) => listening = next,
                    None => {
                        tracing::info!(%address, open = tasks.len(), "listener removed by a reload: no longer accepting; its open connections stay");
                        listener = None;
                        if tasks.is_empty() {
                            return Ok(());
                        }
                    }
                }
            }
            accepted = async {
                match &listener {
                    Some(listener) => listener.accept().await,
                    None => std::future::pending().await,
                }
            } => match accepted {
                Ok((stream, peer)) => {
                    failures.recovered();
                    // A generation published while this connection waited to be accepted is
                    // its generation: a reload (or routes API change) answered before the
                    // client connected applies to it. (A removal is left to the branch above.)
                    let published = generations.has_changed().unwrap_or(false)
                        && generations.borrow().listener_index(address).is_some();
                    if published {
                        if let Some(next) = self::listening(&mut generations, address, &stop, &metrics) {
                            listening = next;
                        }
                    }
                    // Refused connections are answered (503 / 429) or closed at once.
                    let tls = listening.tls.is_some();
                    if let Some((stream, permit)) =
                        listening.admission.admit_accepted(listening.index, stream, peer, tls)
                    {
                        tasks.spawn(serve_connection(Accepted {
                            tcp: stream,
                            listening: Arc::clone(&listening),
                            permit,
                        }));
                    }
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    let pause = failures.failed(&e, Instant::now());
                    tokio::time::sleep(pause).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                if listener.is_none() && tasks.is_empty() {
                    return Ok(());
                }
            }
            // Mapped to a bool: the watch guard it yields must not live in the select's output.
            _ = async { stopping.wait_for(|stopping| *stopping).await.is_ok() } => break,
        }
    }
    drop(listener);
    let drain = async { while tasks.join_next().await.is_some() {} };
    // The tunnels' 1001s are spread over the drain window; shutdown_timeout counts from its end.
    let config = &listening.config;
    let budget = config.winding_down.drain_window + config.shutdown_timeout;
    if tokio::time::timeout(budget, drain).await.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "shutdown deadline passed; cutting connections"
        );
        tasks.abort_all();
    }
    Ok(())
}

/// A listener's accept failures (out of descriptors, mostly): how long to pause before the
/// next try, and one warning a second at most, counting the ones it stands for, so a gateway at
/// its descriptor limit neither spins nor floods its log.
#[derive(Debug, Default)]
struct AcceptFailures {
    /// The current pause; doubles on each failure in a row, up to [`MAX_ACCEPT_PAUSE`].
    pause: Duration,
    /// When the last warning was logged.
    warned: Option<Instant>,
    /// Failures since that warning that were not logged.
    suppressed: u64,
}

/// The first pause after an accept failure.
const MIN_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between accept tries while they keep failing.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// At most one accept warning per listener and worker in this time.
const ACCEPT_WARNING_EVERY: Duration = Duration::from_secs(1);

impl AcceptFailures {
    /// Records a failure at `now`; logs it if no warning was logged in the last second, and
    /// returns how long to pause.
    fn failed(&mut self, error: &io::Error, now: Instant) -> Duration {
        self.pause = (self.pause * 2).clamp(MIN_ACCEPT_PAUSE, MAX_ACCEPT_PAUSE);
        match self.warned {
            Some(at) if now.duration_since(at) < ACCEPT_WARNING_EVERY => self.suppressed += 1,
            _ => {
                tracing::warn!(
                    error = %error,
                    suppressed = self.suppressed,
                    pause_ms = self.pause.as_millis() as u64,
                    "accept failed (suppressed: failures since the last warning)"
                );
                self.warned = Some(now);
                self.suppressed = 0;
            }
        }
        self.pause
    }

    /// An accept succeeded: the next failure starts again from the shortest pause.
    fn recovered(&mut self) {
        self.pause = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_and_warn_once_a_second() {
        let mut f = AcceptFailures::default();
        let error = io::Error::from_raw_os_error(24);
        let start = Instant::now();
        // Pauses double from the shortest up to the longest.
        let pauses: Vec<Duration> = (0..10).map(|_| f.failed(&error, start)).collect();
        assert_eq!(pauses[0], MIN_ACCEPT_PAUSE);
        assert_eq!(pauses[1], MIN_ACCEPT_PAUSE * 2);
        assert_eq!(pauses[9], MAX_ACCEPT_PAUSE);
        // Ten failures within one second: the first was logged, nine are counted.
        assert_eq!((f.warned, f.suppressed), (Some(start), 9));
        let later = start + ACCEPT_WARNING_EVERY;
        f.failed(&error, later);
        assert_eq!((f.warned, f.suppressed), (Some(later), 0));
        f.recovered();
        assert_eq!(f.failed(&error, later), MIN_ACCEPT_PAUSE);
    }
}
