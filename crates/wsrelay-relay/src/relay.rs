//! The relay: two pumps over one client and one upstream stream, and the closing rules.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, Instant, Sleep};
use wsrelay_codec::close::code;
use wsrelay_codec::Role;

use crate::forwarder::{Forwarder, ForwarderConfig};
use crate::hook::{FrameHook, NoHook, DEFAULT_AGGREGATE_LIMIT};
use crate::pump::{Pump, PumpEvent};
use crate::{CloseInfo, EndReason, RelayOptions, RelayOutcome, Side};

/// Smallest buffer: a whole control frame must fit, with room for a following header.
const MIN_BUFFER: usize = 256;

/// A relay between one client and one upstream connection, ready to run.
///
/// Both streams must already be past the opening handshake. Build it, optionally hand it bytes
/// that were read past the handshake, a shutdown signal and a [frame hook](crate::hook), then
/// [`run`](Relay::run) it.
///
/// `H` is the hook's type; the default, [`NoHook`], is the plain cut-through relay with no
/// hook code compiled in at all.
pub struct Relay<C, U, H = NoHook> {
    client: C,
    upstream: U,
    options: RelayOptions,
    c2u: Pump,
    u2c: Pump,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    hook: H,
}

impl<C, U> Relay<C, U>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    /// Prepares a relay between `client` and `upstream` with `options`.
    pub fn new(client: C, upstream: U, options: &RelayOptions) -> Relay<C, U> {
        let buffer = options.buffer_size.max(MIN_BUFFER);
        let side_config = |role, max_frame_size, max_message_size| ForwarderConfig {
            role,
            allowed_rsv: options.allowed_rsv,
            max_frame_size,
            max_message_size,
            validate_utf8: options.validate_utf8,
        };
        let from_client = side_config(
            Role::Server,
            options.client_max_frame_size,
            options.client_max_message_size,
        );
        let from_upstream = side_config(
            Role::Client,
            options.upstream_max_frame_size,
            options.upstream_max_message_size,
        );
        Relay {
            client,
            upstream,
            options: options.clone(),
            c2u: Pump::new(Forwarder::new(from_client), Side::Client, buffer, true),
            u2c: Pump::new(Forwarder::new(from_upstream), Side::Upstream, buffer, false),
            shutdown: None,
            hook: NoHook,
        }
    }
}

impl<C, U, H> Relay<C, U, H>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    H: FrameHook + Unpin,
{
    /// Shows every frame, both ways, to `hook`, which may forward, rewrite or drop it, or close
    /// the connection; see [`crate::hook`] for what it sees and what each verdict does.
    ///
    /// ```no_run
    /// # async fn example(client: tokio::net::TcpStream, upstream: tokio::net::TcpStream) {
    /// use wsrelay_relay::{Frame, Relay, RelayOptions, Verdict};
    /// let outcome = Relay::new(client, upstream, &RelayOptions::default())
    ///     .with_hook(|frame: &mut Frame<'_>| {
    ///         println!("{} sent {:?}, {} bytes", frame.from(), frame.opcode(), frame.payload().len());
    ///         Verdict::Forward
    ///     })
    ///     .run()
    ///     .await;
    /// # }
    /// ```
    pub fn with_hook<H2: FrameHook + Unpin>(self, hook: H2) -> Relay<C, U, H2> {
        let Relay {
            client,
            upstream,
            options,
            mut c2u,
            mut u2c,
            shutdown,
            hook: _,
        } = self;
        if H2::ENABLED {
            // "No limit" is bounded for aggregation, which holds whole messages in memory.
            let limit = |l: Option<u64>| l.unwrap_or(DEFAULT_AGGREGATE_LIMIT);
            let aggregate = options.aggregate_fragments;
            c2u.enable_hook(aggregate, limit(options.client_max_message_size));
            u2c.enable_hook(aggregate, limit(options.upstream_max_message_size));
        }
        Relay {
            client,
            upstream,
            options,
            c2u,
            u2c,
            shutdown,
            hook,
        }
    }

    /// Bytes the client sent right behind its handshake, already read: relayed first, never lost.
    pub fn client_preread(mut self, bytes: &[u8]) -> Self {
        self.c2u.preload(bytes);
        self
    }

    /// Bytes the upstream sent right behind its 101 response, already read.
    pub fn upstream_preread(mut self, bytes: &[u8]) -> Self {
        self.u2c.preload(bytes);
        self
    }

    /// When `signal` completes, both sides get close 1001 and the relay winds down.
    pub fn with_shutdown(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// Relays until both sides are closed, then reports what happened.
    pub fn run(self) -> impl Future<Output = RelayOutcome> {
        let now = Instant::now();
        let idle = self
            .options
            .idle_timeout
            .map(|t| Box::pin(sleep_until(now + t)));
        let mut relay = self;
        let keep_alive = relay
            .options
            .keep_alive
            .filter(|t| !t.is_zero())
            .map(|interval| {
                let token = [random_token(), random_token()];
                // Pongs from a side answer the pings sent to it.
                relay.c2u.forwarder_mut().absorb_pongs(token[0]);
                relay.u2c.forwarder_mut().absorb_pongs(token[1]);
                KeepAlive {
                    interval,
                    timer: Box::pin(sleep_until(now + interval)),
                    last_heard: [now; 2],
                    last_ping: [now; 2],
                    token,
                }
            });
        Running {
            relay,
            keep_alive,
            stage: Stage::Relaying,
            started: now,
            last_activity: now,
            idle,
            close_deadline: None,
            end: None,
            first_close: None,
            client_close: None,
            upstream_close: None,
            close_timed_out: false,
        }
    }
}

/// Relays frames between `client` and `upstream` until the connection closes.
///
/// ```no_run
/// # async fn example() -> std::io::Result<()> {
/// use tokio::net::TcpStream;
/// use wsrelay_relay::{relay, RelayOptions};
/// // Both streams are past their opening handshakes.
/// let client = TcpStream::connect("127.0.0.1:9001").await?;
/// let upstream = TcpStream::connect("127.0.0.1:9002").await?;
/// let outcome = relay(client, upstream, &RelayOptions::default()).await;
/// println!("{:?}: {} frames up", outcome.end, outcome.client_to_upstream.frames);
/// # Ok(()) }
/// ```
pub async fn relay<C, U>(client: C, upstream: U, options: &RelayOptions) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    Relay::new(client, upstream, options).run().await
}

/// Where a running relay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Frames flow; closing may be under way.
    Relaying,
    /// Both sides closed: shutting down the write halves.
    ShuttingDown,
    /// Reading until both peers hang up, so no unread bytes turn the close into a reset.
    Draining,
}

/// Keep-alive pings: per side (client, upstream), when it was last heard from and last pinged.
struct KeepAlive {
    interval: std::time::Duration,
    timer: Pin<Box<Sleep>>,
    last_heard: [Instant; 2],
    last_ping: [Instant; 2],
    /// The payload of the pings sent to each side.
    token: [[u8; 8]; 2],
}

/// An 8-byte ping payload that no peer can guess, so only the answer to our ping matches it.
fn random_token() -> [u8; 8] {
    let mut token = *b"wsrelay!";
    let _ = getrandom::fill(&mut token);
    token
}

struct Running<C, U, H> {
    relay: Relay<C, U, H>,
    keep_alive: Option<KeepAlive>,
    stage: Stage,
    started: Instant,
    last_activity: Instant,
    idle: Option<Pin<Box<Sleep>>>,
    close_deadline: Option<Pin<Box<Sleep>>>,
    end: Option<EndReason>,
    first_close: Option<Side>,
    client_close: Option<CloseInfo>,
    upstream_close: Option<CloseInfo>,
    close_timed_out: bool,
}

impl<C, U, H> Running<C, U, H>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    H: FrameHook + Unpin,
{
    /// The pump that reads from `side`.
    fn reader_of(&mut self, side: Side) -> &mut Pump {
        match side {
            Side::Client => &mut self.relay.c2u,
            Side::Upstream => &mut self.relay.u2c,
        }
    }

    /// The pump that writes to `side`.
    fn writer_to(&mut self, side: Side) -> &mut Pump {
        self.reader_of(side.other())
    }

    fn set_end(&mut self, reason: EndReason) {
        if self.end.is_none() {
            self.end = Some(reason);
        }
    }

    fn start_close_timer(&mut self) {
        if self.close_deadline.is_none() {
            let at = Instant::now() + self.relay.options.close_timeout;
            self.close_deadline = Some(Box::pin(sleep_until(at)));
        }
    }

    /// Applies the closing rules to what a pump reported about `from`'s traffic.
    fn on_event(&mut self, from: Side, event: PumpEvent) {
        match event {
            PumpEvent::Close(payload) => {
                let info = CloseInfo {
                    code: payload.code(),
                    reason: payload.reason().to_owned(),
                };
                match from {
                    Side::Client => self.client_close = Some(info),
                    Side::Upstream => self.upstream_close = Some(info),
                }
                self.first_close.get_or_insert(from);
                self.start_close_timer();
            }
            PumpEvent::Violation(violation) => {
                let reason = violation.to_string();
                self.writer_to(from)
                    .inject_close(violation.close_code(), &reason);
                let (code, why) = match from {
                    Side::Client => (code::GOING_AWAY, "client broke the protocol"),
                    Side::Upstream => (code::BAD_GATEWAY, "upstream broke the protocol"),
                };
                self.writer_to(from.other()).inject_close(code, why);
                self.set_end(EndReason::Violation {
                    side: from,
                    violation,
                });
                self.start_close_timer();
            }
            PumpEvent::SourceEnded(error) => {
                let closed = match from {
                    Side::Client => self.client_close.is_some(),
                    Side::Upstream => self.upstream_close.is_some(),
                };
                if !closed {
                    self.vanished(from, error);
                }
            }
            PumpEvent::HookClose {
                code,
                reason,
                peer_close,
            } => {
                if let Some(payload) = peer_close {
                    let info = CloseInfo {
                        code: payload.code(),
                        reason: payload.reason().to_owned(),
                    };
                    match from {
                        Side::Client => self.client_close = Some(info),
                        Side::Upstream => self.upstream_close = Some(info),
                    }
                    self.first_close.get_or_insert(from);
                }
                self.writer_to(from).inject_close(code, &reason);
                self.writer_to(from.other()).inject_close(code, &reason);
                self.set_end(EndReason::Hook { side: from, code });
                self.start_close_timer();
            }
            PumpEvent::DestinationFailed(kind) => {
                let gone = from.other();
                self.reader_of(gone).stop_reading();
                self.vanished(gone, Some(kind));
            }
        }
    }

    /// `side` went away without a close: the other side gets a close frame saying so.
    fn vanished(&mut self, side: Side, error: Option<std::io::ErrorKind>) {
        self.writer_to(side).abandon_destination();
        let (code, why) = match side {
            Side::Client => (code::GOING_AWAY, "client went away"),
            Side::Upstream => (code::BAD_GATEWAY, "upstream went away"),
        };
        self.writer_to(side.other()).inject_close(code, why);
        self.set_end(EndReason::Vanished { side, error });
        self.start_close_timer();
    }

    /// The relay itself ends the connection (shutdown, idle): 1001 to both sides.
    fn close_both(&mut self, reason: EndReason, why: &str) {
        self.relay.c2u.inject_close(code::GOING_AWAY, why);
        self.relay.u2c.inject_close(code::GOING_AWAY, why);
        self.set_end(reason);
        self.start_close_timer();
    }

    /// Both sides have said their last word and been told to close, and nothing waits to be
    /// written; or neither side can be written to any more (both abandoned, e.g. one vanished
    /// and the other was left mid-frame), so reading on would serve nothing.
    fn settled(&self) -> bool {
        let (c2u, u2c) = (&self.relay.c2u, &self.relay.u2c);
        if c2u.destination_abandoned() && u2c.destination_abandoned() {
            return true;
        }
        !c2u.reading()
            && !u2c.reading()
            && c2u.destination_settled()
            && u2c.destination_settled()
            && c2u.idle_output()
            && u2c.idle_output()
    }

    fn outcome(&mut self) -> RelayOutcome {
        let end = self.end.take().unwrap_or(EndReason::Closed {
            initiator: self.first_close.unwrap_or(Side::Client),
        });
        RelayOutcome {
            end,
            client_close: self.client_close.take(),
            upstream_close: self.upstream_close.take(),
            sent_to_client: self.relay.u2c.injected.take(),
            sent_to_upstream: self.relay.c2u.injected.take(),
            client_to_upstream: self.relay.c2u.traffic,
            upstream_to_client: self.relay.u2c.traffic,
            close_timed_out: self.close_timed_out,
            duration: self.started.elapsed(),
        }
    }

    /// Moves frames and handles events until everything would block. Ready once settled.
    fn poll_relaying(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let relay = &mut self.relay;
            let c2u = relay.c2u.poll_io(
                cx,
                Pin::new(&mut relay.client),
                Pin::new(&mut relay.upstream),
                &mut relay.hook,
            );
            if let Poll::Ready(event) = c2u {
                self.on_event(Side::Client, event);
                continue;
            }
            let relay = &mut self.relay;
            let u2c = relay.u2c.poll_io(
                cx,
                Pin::new(&mut relay.upstream),
                Pin::new(&mut relay.client),
                &mut relay.hook,
            );
            if let Poll::Ready(event) = u2c {
                self.on_event(Side::Upstream, event);
                continue;
            }
            if self.settled() {
                return Poll::Ready(());
            }
            if let Some(signal) = self.relay.shutdown.as_mut() {
                if signal.as_mut().poll(cx).is_ready() {
                    self.relay.shutdown = None;
                    self.close_both(EndReason::Shutdown, "relay shutting down");
                    continue;
                }
            }
            if self.poll_idle(cx) {
                continue;
            }
            if self.poll_keep_alive(cx) {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Tracks activity; true when the idle timeout just fired and closing began.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        let (c2u, u2c) = (&mut self.relay.c2u, &mut self.relay.u2c);
        if c2u.active || u2c.active {
            c2u.active = false;
            u2c.active = false;
            self.last_activity = Instant::now();
        }
        let (Some(timer), Some(limit)) = (self.idle.as_mut(), self.relay.options.idle_timeout)
        else {
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        let due = self.last_activity + limit;
        if Instant::now() < due {
            timer.as_mut().reset(due);
            // Register the re-armed timer with this task.
            return timer.as_mut().poll(cx).is_ready() && self.idle_fire();
        }
        self.idle_fire()
    }

    /// Sends a ping to each side that has been quiet for the keep-alive interval (and was not
    /// pinged within it); true if one was queued. Nothing is sent once closing began.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(ka) = self.keep_alive.as_mut() else {
            return false;
        };
        let now = Instant::now();
        let pumps = [&mut self.relay.c2u, &mut self.relay.u2c];
        for (i, pump) in pumps.into_iter().enumerate() {
            if std::mem::take(&mut pump.heard) {
                ka.last_heard[i] = now;
            }
        }
        if self.close_deadline.is_some() {
            return false;
        }
        let mut fired = false;
        loop {
            let now = Instant::now();
            let mut next = now + ka.interval;
            for i in 0..2 {
                let mut due = ka.last_heard[i].max(ka.last_ping[i]) + ka.interval;
                if due <= now {
                    // The pump writing to the client is u2c; to the upstream, c2u.
                    let writer = if i == 0 {
                        &mut self.relay.u2c
                    } else {
                        &mut self.relay.c2u
                    };
                    writer.inject_ping(ka.token[i]);
                    ka.last_ping[i] = now;
                    due = now + ka.interval;
                    fired = true;
                }
                next = next.min(due);
            }
            ka.timer.as_mut().reset(next);
            if ka.timer.as_mut().poll(cx).is_pending() {
                return fired;
            }
        }
    }

    fn idle_fire(&mut self) -> bool {
        self.idle = None;
        self.close_both(EndReason::IdleTimeout, "idle timeout");
        true
    }
}

impl<C, U, H> Future for Running<C, U, H>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    H: FrameHook + Unpin,
{
    type Output = RelayOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RelayOutcome> {
        let this = self.get_mut();
        loop {
            match this.stage {
                Stage::Relaying => {
                    if this.poll_relaying(cx).is_ready() {
                        this.stage = Stage::ShuttingDown;
                        this.start_close_timer();
                        continue;
                    }
                }
                Stage::ShuttingDown => {
                    let relay = &mut this.relay;
                    // Errors here mean the peer is already gone, which is where we are heading.
                    let client = Pin::new(&mut relay.client).poll_shutdown(cx).is_ready();
                    let upstream = Pin::new(&mut relay.upstream).poll_shutdown(cx).is_ready();
                    if client && upstream {
                        this.stage = Stage::Draining;
                        continue;
                    }
                }
                Stage::Draining => {
                    let relay = &mut this.relay;
                    let client = relay.c2u.poll_drain(cx, Pin::new(&mut relay.client));
                    let upstream = relay.u2c.poll_drain(cx, Pin::new(&mut relay.upstream));
                    if client.is_ready() && upstream.is_ready() {
                        return Poll::Ready(this.outcome());
                    }
                }
            }
            if let Some(deadline) = this.close_deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    // Peers that do not finish closing in time are cut off.
                    this.close_timed_out = this.stage == Stage::Relaying;
                    return Poll::Ready(this.outcome());
                }
            }
            return Poll::Pending;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle relayed connection costs about the size of this future (it is what a spawned
    /// task holds): `run` returns the state machine itself rather than an `async fn` that would
    /// hold the `Relay` and the running state side by side (it was 2,900+ bytes that way).
    #[tokio::test]
    async fn the_running_relay_is_compact() {
        let (client, _a) = tokio::io::duplex(64);
        let (upstream, _b) = tokio::io::duplex(64);
        let running = Relay::new(client, upstream, &RelayOptions::default()).run();
        let size = std::mem::size_of_val(&running);
        assert!(size <= 1800, "the running relay takes {size} bytes");
    }
}
