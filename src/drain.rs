//! Winding tunnels down without a stampede: after SIGTERM (the drain), and after a reload
//! removed a tunnel's route or backend (orphaned tunnels).
//!
//! ```text
//! SIGTERM ─ /readyz 503 ─ drain_delay: still accepting ─ listeners stop ─┐
//!   open tunnels get 1001, each at a random point of drain_window ───────┤
//!   whatever is still open shutdown_timeout after the window is cut ─────┘
//! ```
//! So the longest a drain takes is `drain_delay + drain_window + shutdown_timeout`
//! ([`WindingDown::longest_drain`]): an orchestrator's grace period (Kubernetes'
//! `terminationGracePeriodSeconds`) should be at least that. With both new keys at 0 (their
//! default) the drain is what it always was: stop at once, 1001 to every tunnel, cut after
//! `shutdown_timeout`.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::defaults;
use crate::generation::Generations;

/// A future a tunnel may close on, boxed: see [`closing`].
pub(crate) type Signal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// `future` as a [`Signal`].
pub(crate) fn signal(future: impl Future<Output = ()> + Send + 'static) -> Signal {
    Box::pin(future)
}

/// How tunnels are wound down (`[server]` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindingDown {
    /// After SIGTERM, time the listeners keep accepting while `/readyz` already answers 503,
    /// so load balancers take the instance out before it stops (`drain_delay`).
    pub drain_delay: Duration,
    /// Once the listeners stopped, open tunnels get their 1001 at random points of this window
    /// rather than all at once, so their clients do not reconnect together (`drain_window`).
    pub drain_window: Duration,
    /// After a reload removed a tunnel's route (or the backend it is connected to), time before
    /// it gets 1001 (`orphaned_tunnel_grace`); `None` (the default): it stays open.
    pub orphaned_grace: Option<Duration>,
    /// Those 1001s are spread over this window after the grace (`orphaned_tunnel_window`).
    pub orphaned_window: Duration,
}

impl Default for WindingDown {
    fn default() -> WindingDown {
        WindingDown {
            drain_delay: defaults::DRAIN_DELAY,
            drain_window: defaults::DRAIN_WINDOW,
            orphaned_grace: None,
            orphaned_window: defaults::ORPHANED_TUNNEL_WINDOW,
        }
    }
}

impl WindingDown {
    /// The longest a drain takes from the signal to the process's exit, given the
    /// `shutdown_timeout` (which counts from the end of the drain window).
    pub fn longest_drain(&self, shutdown_timeout: Duration) -> Duration {
        self.drain_delay + self.drain_window + shutdown_timeout
    }
}

/// A random point of `window` (from its start): where one tunnel's 1001 falls.
pub fn spread(window: Duration) -> Duration {
    crate::pool::balance::jitter(window)
}

/// What a relay closes on (1001 to both sides): the gateway stopping (`stop` turning true, then
/// a random point of `drain_window`), the pool ending the tunnel (`ending`), or a reload having
/// orphaned it (`orphaned`). Only the one that fires allocates (the drain's sleep is boxed then),
/// so an open tunnel's state does not grow with it.
///
/// `ending` and `orphaned` come boxed ([`Signal`]): this future is itself boxed for every
/// tunnel (the relay's shutdown signal), and an async fn keeps its arguments in its state
/// beside what it awaits, so futures taken by value took room two or three times over, present
/// or not (an `Option` of a future is as large as the future): 2,200 bytes of heap per idle
/// tunnel, where the stop alone took about 170. Boxed, each costs a pointer here and its own
/// size only when there is one.
pub(crate) async fn closing(
    mut stop: watch::Receiver<bool>,
    drain_window: Duration,
    ending: Option<Signal>,
    orphaned: Option<Signal>,
) {
    let stopping = async {
        let _ = stop.wait_for(|stopping| *stopping).await;
        let delay = spread(drain_window);
        if !delay.is_zero() {
            Box::pin(tokio::time::sleep(delay)).await;
        }
    };
    let ending = async {
        match ending {
            Some(ending) => ending.await,
            None => std::future::pending().await,
        }
    };
    let orphaned = async {
        match orphaned {
            Some(orphaned) => orphaned.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = stopping => {}
        () = ending => {}
        () = orphaned => {}
    }
}

/// Completes when a reload has orphaned the tunnel of `route` to `backend` (removed the route,
/// or the backend from it) and the grace of the configuration that did, plus a random point of
/// its window, has passed. Without a grace (the default) an orphaned tunnel stays open.
pub(crate) async fn orphaned(mut generations: Generations, route: String, backend: String) {
    loop {
        if generations.changed().await.is_err() {
            // The gateway is gone; its own shutdown closes the tunnel.
            return std::future::pending().await;
        }
        let (orphaned, winding_down) = {
            let generation = generations.borrow_and_update();
            let orphaned = !generation.serves(&route, &backend);
            (orphaned, generation.config.winding_down)
        };
        if let (true, Some(grace)) = (orphaned, winding_down.orphaned_grace) {
            let delay = grace + spread(winding_down.orphaned_window);
            tracing::info!(
                route,
                backend,
                after_ms = delay.as_millis() as u64,
                "a reload removed this tunnel's route or backend: closing it with 1001"
            );
            // Boxed: only the tunnel it fires for pays for the timer.
            Box::pin(tokio::time::sleep(delay)).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_drain_adds_the_delay_the_window_and_the_timeout() {
        let w = WindingDown {
            drain_delay: Duration::from_secs(5),
            drain_window: Duration::from_secs(20),
            ..WindingDown::default()
        };
        assert_eq!(
            w.longest_drain(Duration::from_secs(10)),
            Duration::from_secs(35)
        );
        assert_eq!(
            WindingDown::default().longest_drain(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn spread_points_fall_inside_the_window_and_differ() {
        let window = Duration::from_secs(2);
        let points: Vec<Duration> = (0..64).map(|_| spread(window)).collect();
        assert!(points.iter().all(|p| *p <= window));
        assert!(points.iter().any(|p| *p != points[0]));
        assert_eq!(spread(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_stop_closes_within_the_drain_window() {
        let (tx, stop) = watch::channel(false);
        let none = || None::<Signal>;
        let window = Duration::from_millis(300);
        let closing = tokio::spawn(closing(stop, window, none(), none()));
        tokio::task::yield_now().await;
        assert!(!closing.is_finished());
        let start = tokio::time::Instant::now();
        tx.send(true).unwrap();
        closing.await.unwrap();
        // The window plus scheduling slack; never the 10 s a missed stop would take.
        assert!(start.elapsed() <= window + Duration::from_secs(2));
    }

    /// The relay boxes this future for every tunnel, idle ones included: it stays a few
    /// pointers and the stop's wait, whatever may end the tunnel (it was 2,200 bytes of heap
    /// per tunnel with the pool's and the reload's futures held by value).
    #[tokio::test]
    async fn the_closing_future_stays_small() {
        let (_tx, stop) = watch::channel(false);
        let some = || Some(signal(std::future::pending()));
        let closing = closing(stop, Duration::from_secs(1), some(), some());
        let size = std::mem::size_of_val(&closing);
        eprintln!("closing future: {size} bytes");
        // 368 in a release build; the bound leaves room for a debug build's layout.
        assert!(size <= 640, "the closing future takes {size} bytes");
    }
}
