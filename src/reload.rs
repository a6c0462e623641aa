//! Hot reload: the configuration file read again on SIGHUP or `POST /reload` (admin listener),
//! applied to new connections without touching the open ones.
//!
//! ```text
//! read + validate (the loader of `wsrelay check`) ─ invalid: logged, answered, nothing changes
//!   └ valid: bind the listeners it adds (every worker) ─ one fails: nothing changes
//!       └ carry state over by name (route slots, pools) ─ publish the new Generation
//!           ├ each listener's accept loop takes it for the connections it accepts next
//!           ├ workers start accepting on added listeners; removed ones stop accepting
//!           └ tunnels keep the generation they were accepted with, start to end
//! ```
//! A [`Generation`] is everything a connection runs with: the configuration (certificates
//! included: the loader reads them, so a rotated certificate is served to the next client) and
//! the admission state. Each accept loop holds the current one in the `Listening` its
//! connections share, so a connection's snapshot costs it nothing: it is the `Arc` it already
//! held.
//!
//! State indexed by position follows its name: a route's count of open tunnels (and its cap), a
//! listener's count, and a pool whose definition did not change (its health, its
//! least-connections counts, its sticky cookies and its health checks carry on). New routes and
//! pools start fresh; removed ones are dropped once their last tunnel ends; the health checks
//! of a pool that is gone stop. Settings that cannot change live (`workers`, the admin address)
//! keep their value, with a warning.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::config::{self, GatewayConfig};
use crate::generation::{Generation, Generations};
use crate::pool::Pool;
use crate::Error;

/// Which state a reload carries over, from names to positions: for each listener and route of
/// the new configuration, the position of the same one (same address, same name) in the old,
/// each old one taken once (two listeners configured on port 0 stay two).
fn positions<T, K: PartialEq>(old: &[T], new: &[T], key: impl Fn(&T) -> K) -> Vec<Option<usize>> {
    let mut taken = vec![false; old.len()];
    new.iter()
        .map(|n| {
            let i = (0..old.len()).find(|&i| !taken[i] && key(&old[i]) == key(n))?;
            taken[i] = true;
            Some(i)
        })
        .collect()
}

/// What identifies a pool's definition: two pools of one name with the same fingerprint are the
/// same pool, so a reload keeps the running one (and its state). Backends are compared by URI,
/// weight and verification, not by their TLS files' contents, and a changed `sticky_key` alone
/// is not seen (the key stays out of the settings' `Debug`): restart for those.
fn fingerprint(pool: &Pool) -> String {
    let backends: Vec<(String, u32, bool)> = (pool.backends.iter())
        .map(|b| {
            let u = &b.upstream;
            (u.uri.to_string(), b.weight, u.insecure_skip_verify)
        })
        .collect();
    format!("{backends:?} {:?} {:?}", pool.policy, pool.settings)
}

/// The health checks of the pools in use, each stopped when its pool leaves the configuration.
#[derive(Default)]
struct HealthChecks {
    /// Each pool with checks running, and what stops them (dropped: they stop).
    running: Vec<(Arc<Pool>, watch::Sender<bool>)>,
}

impl HealthChecks {
    /// Starts the checks of the pools of `config` not checked yet; stops those of pools it no
    /// longer has.
    fn follow(&mut self, config: &GatewayConfig) {
        let pools: Vec<&Arc<Pool>> = config
            .routes
            .iter()
            .filter_map(|r| r.pool.as_ref())
            .collect();
        self.running
            .retain(|(pool, _)| pools.iter().any(|p| Arc::ptr_eq(p, pool)));
        for pool in pools {
            if !self.running.iter().any(|(p, _)| Arc::ptr_eq(p, pool)) {
                let (stop, stopped) = watch::channel(false);
                crate::pool::health::spawn(pool, &stopped);
                self.running.push((Arc::clone(pool), stop));
            }
        }
    }
}

/// What a reload did, for the log and the answer to `POST /reload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The new generation's number.
    pub generation: u64,
    /// Listeners and routes now.
    pub listeners: usize,
    /// Routes now.
    pub routes: usize,
    /// Listeners added, then removed (their addresses).
    pub listeners_added: Vec<SocketAddr>,
    /// Listeners removed.
    pub listeners_removed: Vec<SocketAddr>,
    /// Routes added, then removed (their names).
    pub routes_added: Vec<String>,
    /// Routes removed.
    pub routes_removed: Vec<String>,
    /// Settings that cannot change while running, and warnings of the configuration.
    pub warnings: Vec<String>,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "reloaded: generation {}, {} listener(s), {} route(s)",
            self.generation, self.listeners, self.routes
        )?;
        let list = |items: Vec<String>| items.join(" ");
        let lines = [
            (
                "listeners added",
                list(
                    self.listeners_added
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                ),
            ),
            (
                "listeners removed",
                list(
                    self.listeners_removed
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                ),
            ),
            ("routes added", self.routes_added.join(" ")),
            ("routes removed", self.routes_removed.join(" ")),
        ];
        for (what, items) in lines {
            if !items.is_empty() {
                writeln!(f, "{what}: {items}")?;
            }
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

/// Reloads the gateway's configuration file: shared by the SIGHUP handler and the admin
/// listener. One reload runs at a time.
pub struct Reloader {
    /// The configuration file; `None` for a gateway configured by flags (nothing to re-read).
    path: Option<PathBuf>,
    current: watch::Sender<Arc<Generation>>,
    /// Workers (sockets bound per added listener).
    workers: usize,
    /// The runtime health checks run on (the first worker's).
    runtime: Handle,
    health: Mutex<HealthChecks>,
    /// Turns true when the gateway stops: reloads are refused from then on.
    stop: watch::Receiver<bool>,
    reloads: AtomicU64,
    /// The text of the document the current generation was loaded from (the routes API
    /// edits it); `None`: unknown.
    document: Mutex<Option<String>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// The reloader of a gateway starting with `first`, on the current runtime (whose
    /// health checks it starts).
    pub(crate) fn new(
        path: Option<PathBuf>,
        first: Generation,
        stop: watch::Receiver<bool>,
    ) -> (Arc<Reloader>, Generations) {
        let workers = first.config.workers.max(1);
        let mut health = HealthChecks::default();
        health.follow(&first.config);
        let (current, generations) = watch::channel(Arc::new(first));
        let document = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
        let reloader = Reloader {
            path,
            current,
            workers,
            runtime: Handle::current(),
            health: Mutex::new(health),
            stop,
            reloads: AtomicU64::new(0),
            document: Mutex::new(document),
        };
        (Arc::new(reloader), generations)
    }

    /// True if SIGHUP and `POST /reload` have a file to read.
    pub fn has_file(&self) -> bool {
        self.path.is_some()
    }

    /// The generation new connections get now.
    pub fn current(&self) -> Arc<Generation> {
        Arc::clone(&self.current.borrow())
    }

    /// Reads, validates and applies the configuration file. An invalid file ([`Error::Config`],
    /// [`Error::Read`], with the positioned diagnostics of `wsrelay check`), a listener that
    /// cannot be bound ([`Error::Io`]) or a gateway that is stopping change nothing. The
    /// outcome is logged here.
    pub fn reload(&self) -> Result<Applied, Error> {
        let applied = self.try_reload();
        match &applied {
            Ok(applied) => {
                for line in applied.to_string().lines() {
                    tracing::info!("{line}");
                }
            }
            Err(e) => tracing::warn!("reload refused, the running configuration stays:\n{e}"),
        }
        applied
    }

    fn try_reload(&self) -> Result<Applied, Error> {
        let Some(path) = &self.path else {
            return Err(Error::Io(std::io::Error::other(
                "no configuration file to reload (started with flags)",
            )));
        };
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if *self.stop.borrow() {
            return Err(Error::Io(std::io::Error::other("the gateway is stopping")));
        }
        // The text is kept: the routes API edits the document the gateway runs.
        let source = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let config = config::parse(&source, &path.display().to_string(), base)?;
        let applied = self.apply(&mut health, config)?;
        *self.document.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
        Ok(applied)
    }

    /// Applies a change of the running document by the routes API, one at a time with
    /// reloads: `change` gets the document the gateway runs (and the file it came from) and
    /// returns what it did, the candidate document and its loaded configuration (or why not: nothing
    /// changes). Applied like a reload; then the candidate is the running document, written to
    /// the file when `write_back` (an error there is returned with what was applied).
    pub(crate) fn change<E: From<Error>>(
        &self,
        write_back: bool,
        change: impl FnOnce(
            &str,
            Option<&std::path::Path>,
        ) -> Result<(String, String, GatewayConfig), E>,
    ) -> Result<(Applied, Option<std::io::Error>), E> {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if *self.stop.borrow() {
            return Err(Error::Io(std::io::Error::other("the gateway is stopping")).into());
        }
        let running = self
            .document
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(running) = running else {
            return Err(Error::Io(std::io::Error::other(
                "the running configuration has no document to edit",
            ))
            .into());
        };
        let (what, candidate, config) = change(&running, self.path.as_deref())?;
        let applied = self.apply(&mut health, config)?;
        let written = match &self.path {
            Some(path) if write_back => crate::routes_api::write_atomically(path, &candidate).err(),
            _ => None,
        };
        *self.document.lock().unwrap_or_else(|p| p.into_inner()) = Some(candidate);
        tracing::info!("routes API: {what}");
        for line in applied.to_string().lines() {
            tracing::info!("{line}");
        }
        if let Some(e) = &written {
            tracing::warn!(error = %e, "routes API: applied, but not written back to the file");
        }
        Ok((applied, written))
    }

    /// The text of the document the running configuration was loaded from, if known.
    pub(crate) fn document(&self) -> Option<String> {
        self.document
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the document the running configuration was loaded from (the flags' document of a
    /// gateway without a file), which the routes API edits.
    pub(crate) fn set_document(&self, text: String) {
        *self.document.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    /// Applies a loaded configuration (the reload lock held): state carried over by name,
    /// listeners bound, the new generation published.
    fn apply(
        &self,
        health: &mut HealthChecks,
        mut config: GatewayConfig,
    ) -> Result<Applied, Error> {
        let old = self.current();
        let mut warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
        if config.workers != old.config.workers {
            warnings.push(format!(
                "workers cannot change while running: {} kept (restart to change it)",
                old.config.workers
            ));
            config.workers = old.config.workers;
        }
        if config.admin != old.config.admin {
            warnings.push(format!(
                "the admin address cannot change while running: {} kept",
                old.config
                    .admin
                    .map_or("none".to_owned(), |a| a.to_string())
            ));
            config.admin = old.config.admin;
        }
        // Pools whose definition did not change stay the running ones, with their state.
        let old_pools: Vec<&Arc<Pool>> = old
            .config
            .routes
            .iter()
            .filter_map(|r| r.pool.as_ref())
            .collect();
        for route in &mut config.routes {
            let Some(pool) = &route.pool else { continue };
            let same = old_pools
                .iter()
                .find(|p| p.name == pool.name && fingerprint(p) == fingerprint(pool));
            if let Some(same) = same {
                route.pool = Some(Arc::clone(same));
            }
        }
        let (old_listeners, new_listeners) = (&old.config.listeners, &config.listeners);
        let listeners_from = positions(old_listeners, new_listeners, |l| l.address);
        // Bound before anything changes: one address that fails fails the reload.
        let mut added = Vec::new();
        let mut bound = Vec::new();
        for (listener, from) in new_listeners.iter().zip(&listeners_from) {
            match from {
                Some(i) => {
                    bound.push(old.bound[*i]);
                    // Sockets a worker has not taken yet (it sees only the latest generation).
                    added.extend(old.untaken_sockets(old.bound[*i]));
                }
                None => {
                    let _runtime = self.runtime.enter();
                    let sockets = bind_everywhere(listener.address, self.workers).map_err(|e| {
                        Error::Io(std::io::Error::new(
                            e.kind(),
                            format!("cannot bind the new listener {}: {e}", listener.address),
                        ))
                    })?;
                    bound.push(sockets.0);
                    added.push((sockets.0, sockets.1.into_iter().map(Some).collect()));
                }
            }
        }
        let routes_from = positions(&old.config.routes, &config.routes, |r| r.name.clone());
        let admission =
            old.admission
                .carried_over(&config.admission, &listeners_from, &routes_from);
        let names = |c: &GatewayConfig| c.routes.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        let (old_names, new_names) = (names(&old.config), names(&config));
        let removed = (0..old.bound.len()).filter(|i| !listeners_from.contains(&Some(*i)));
        let generation = self.reloads.fetch_add(1, Ordering::Relaxed) + 1;
        let applied = Applied {
            generation,
            listeners: config.listeners.len(),
            routes: config.routes.len(),
            listeners_added: (bound.iter().zip(&listeners_from))
                .filter(|(_, from)| from.is_none())
                .map(|(a, _)| *a)
                .collect(),
            listeners_removed: removed.map(|i| old.bound[i]).collect(),
            routes_added: new_names
                .iter()
                .filter(|n| !old_names.contains(n))
                .cloned()
                .collect(),
            routes_removed: old_names
                .iter()
                .filter(|n| !new_names.contains(n))
                .cloned()
                .collect(),
            warnings,
        };
        {
            let _runtime = self.runtime.enter();
            health.follow(&config);
        }
        self.current.send_replace(Arc::new(old.next(
            generation,
            Arc::new(config),
            Arc::new(admission),
            bound,
            added,
        )));
        Ok(applied)
    }
}

impl Reloader {
    /// Stops every pool's health checks (the gateway is stopping).
    pub(crate) fn stop_health_checks(&self) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        health.running.clear();
    }
}

/// Reloads on each SIGHUP until `stop` turns true (nothing when there is no file to read).
pub(crate) async fn on_hangup(reloader: &Arc<Reloader>, mut stop: watch::Receiver<bool>) {
    if !reloader.has_file() {
        return;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: reload with POST /reload only");
                return;
            }
        };
        loop {
            tokio::select! {
                Some(()) = hangups.recv() => {}
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
            tracing::info!("SIGHUP: reloading the configuration");
            let reloader = Arc::clone(reloader);
            // Reading files and binding sockets: off the worker's thread.
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
    }
    #[cfg(not(unix))]
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Binds `address` once per worker with `SO_REUSEPORT`, as the gateway binds at start (a port
/// of 0 is resolved by the first): the resolved address and the listening sockets.
fn bind_everywhere(
    address: SocketAddr,
    workers: usize,
) -> std::io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let mut local = address;
    let mut sockets = Vec::new();
    for _ in 0..workers.max(1) {
        let socket = crate::gateway::reusable_socket(local)?;
        socket.bind(local)?;
        local = socket.local_addr()?;
        sockets.push(socket.listen(crate::gateway::BACKLOG)?.into_std()?);
    }
    Ok((local, sockets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_names_not_places() {
        let old = ["a", "b", "c"];
        let new = ["c", "d", "a"];
        assert_eq!(positions(&old, &new, |s| *s), vec![Some(2), None, Some(0)]);
        let twice = ["127.0.0.1:0", "127.0.0.1:0"];
        assert_eq!(positions(&twice, &twice, |s| *s), vec![Some(0), Some(1)]);
    }

    #[test]
    fn the_summary_lists_what_changed() {
        let applied = Applied {
            generation: 3,
            listeners: 2,
            routes: 1,
            listeners_added: vec!["127.0.0.1:8081".parse().unwrap()],
            listeners_removed: Vec::new(),
            routes_added: Vec::new(),
            routes_removed: vec!["old".to_owned()],
            warnings: vec!["workers cannot change".to_owned()],
        };
        let text = applied.to_string();
        assert!(text.starts_with("reloaded: generation 3, 2 listener(s), 1 route(s)\n"));
        assert!(text.contains("listeners added: 127.0.0.1:8081\n"));
        assert!(text.contains("routes removed: old\n"));
        assert!(!text.contains("routes added"));
        assert!(text.contains("warning: workers cannot change\n"));
    }
}
