//! The relay: two pumps over one client and one upstream stream, and the closing rules.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, Instant, Sleep};
use wsrelay_codec::close::code;
use wsrelay_codec::RandomError;
use wsrelay_codec::{ParseConfig, Role};

use crate::forwarder::{Forwarder, ForwarderConfig};
use crate::gate::Gate;
use crate::hook::{FrameHook, NoHook, DEFAULT_AGGREGATE_LIMIT};
use crate::keep_alive::KeepAlive;
use crate::live::LiveTraffic;
use crate::pump::{Pump, PumpEvent};
use crate::side::{PerSide, SIDES};
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
    /// The pump reading each side (and writing to the other).
    pumps: PerSide<Pump>,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    hook: H,
    /// When the owner's deadline passes, and the close both sides then get (boxed: most
    /// relays have none, and an idle relay should stay small).
    deadline: Option<Box<DeadlineClose>>,
    /// Where the traffic so far is published once per wake-up, if anyone reads it.
    live: Option<Arc<LiveTraffic>>,
}

/// A deadline set with [`Relay::close_at`].
struct DeadlineClose {
    timer: Pin<Box<Sleep>>,
    code: u16,
    reason: &'static str,
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
            remask: options.remask,
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
        let mut pumps = PerSide::new(
            Pump::new(Forwarder::new(from_client), Side::Client, buffer),
            Pump::new(Forwarder::new(from_upstream), Side::Upstream, buffer),
        );
        let rates = [
            (Side::Client, Role::Server, &options.client_rate_limit),
            (Side::Upstream, Role::Client, &options.upstream_rate_limit),
        ];
        for (side, role, limit) in rates {
            if let Some(limit) = limit {
                let parse = ParseConfig {
                    role,
                    allowed_rsv: options.allowed_rsv,
                };
                pumps[side].limit_rate(limit, parse);
            }
        }
        Relay {
            client,
            upstream,
            options: options.clone(),
            pumps,
            shutdown: None,
            hook: NoHook,
            deadline: None,
            live: None,
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
            mut pumps,
            shutdown,
            hook: _,
            deadline,
            live,
        } = self;
        if H2::ENABLED {
            // "No limit" is bounded for aggregation, which holds whole messages in memory.
            let limit = |l: Option<u64>| l.unwrap_or(DEFAULT_AGGREGATE_LIMIT);
            let aggregate = options.aggregate_fragments;
            let max_message = PerSide::new(
                options.client_max_message_size,
                options.upstream_max_message_size,
            );
            for side in SIDES {
                pumps[side].enable_hook(aggregate, limit(max_message[side]));
            }
        }
        Relay {
            client,
            upstream,
            options,
            pumps,
            shutdown,
            hook,
            deadline,
            live,
        }
    }

    /// Publishes the traffic so far (frames, messages, bytes each way) into `live` as the relay
    /// runs, once per wake-up rather than per frame, for a reader on another thread (metrics).
    /// `None` leaves the relay without (the gateway's case when metrics are off).
    pub fn with_live_traffic(mut self, live: impl Into<Option<Arc<LiveTraffic>>>) -> Self {
        self.live = live.into();
        self
    }

    /// Bytes the client sent right behind its handshake, already read: relayed first, never lost.
    pub fn client_preread(mut self, bytes: &[u8]) -> Self {
        self.pumps[Side::Client].preload(bytes);
        self
    }

    /// Bytes the upstream sent right behind its 101 response, already read.
    pub fn upstream_preread(mut self, bytes: &[u8]) -> Self {
        self.pumps[Side::Upstream].preload(bytes);
        self
    }

    /// When `signal` completes, both sides get close 1001 and the relay winds down.
    pub fn with_shutdown(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// At `at` (if given), both sides get a close with `code` and `reason` and the relay winds
    /// down, the outcome saying [`EndReason::Deadline`]: e.g. 1008 when the credentials the
    /// tunnel was opened with expire. `None` sets no deadline.
    ///
    /// ```no_run
    /// # async fn example(client: tokio::net::TcpStream, upstream: tokio::net::TcpStream) {
    /// use tokio::time::{Duration, Instant};
    /// use wsrelay_relay::{Relay, RelayOptions};
    /// let expiry = Some(Instant::now() + Duration::from_secs(300));
    /// let outcome = Relay::new(client, upstream, &RelayOptions::default())
    ///     .close_at(expiry, 1008, "token expired")
    ///     .run()
    ///     .await;
    /// # }
    /// ```
    pub fn close_at(mut self, at: Option<Instant>, code: u16, reason: &'static str) -> Self {
        self.deadline = at.map(|at| {
            Box::new(DeadlineClose {
                timer: Box::pin(sleep_until(at)),
                code,
                reason,
            })
        });
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
            .map(|interval| KeepAlive::start(interval, now, &mut relay.pumps))
            .transpose();
        let (keep_alive, failure) = match keep_alive {
            Ok(keep_alive) => (keep_alive, None),
            Err(error) => (None, Some(error)),
        };
        let signals = (relay.shutdown.is_some() || relay.deadline.is_some()).then(Gate::new);
        let mut running = Running {
            relay,
            keep_alive,
            stage: Stage::Relaying,
            started: now,
            last_activity: now,
            signals,
            idle,
            close_deadline: None,
            end: None,
            first_close: None,
            closes: PerSide::default(),
            close_timed_out: false,
        };
        if let Some(error) = failure {
            running.random_failed(error);
        }
        running
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

struct Running<C, U, H> {
    relay: Relay<C, U, H>,
    keep_alive: Option<KeepAlive>,
    stage: Stage,
    started: Instant,
    last_activity: Instant,
    idle: Option<Pin<Box<Sleep>>>,
    close_deadline: Option<Pin<Box<Sleep>>>,
    /// The shutdown signal and the deadline are polled only after they woke the task (present
    /// when the relay has either).
    signals: Option<Gate>,
    end: Option<EndReason>,
    first_close: Option<Side>,
    /// The close frame each side sent, if any.
    closes: PerSide<Option<CloseInfo>>,
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
        &mut self.relay.pumps[side]
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
                self.closes[from] = Some(info);
                self.first_close.get_or_insert(from);
                self.start_close_timer();
            }
            PumpEvent::Violation(violation) => {
                let (code, why) = match from {
                    Side::Client => (code::GOING_AWAY, "client broke the protocol"),
                    Side::Upstream => (code::BAD_GATEWAY, "upstream broke the protocol"),
                };
                self.inject_close(from.other(), code, why);
                let reason = violation.to_string();
                if self.reader_of(from).stranded_mid_frame() {
                    // The other side was left inside a frame of the offender's: it gets no
                    // close, so no close will come back; the offender is failed at once.
                    self.inject_close(from, violation.close_code(), &reason);
                } else {
                    // What the other side sent before it reads our close (replies to the
                    // offender's valid messages) still goes to the offender, which gets its
                    // 1002 / 1007 / 1009 once the other side's close arrives (absorbed) or the
                    // close timeout passes (RFC 6455 §7.1.7 asks for the failure's code, not
                    // for dropping frames already on their way).
                    let close = self
                        .writer_to(from)
                        .defer_close(violation.close_code(), &reason);
                    if let Err(error) = close {
                        self.random_failed(error);
                    }
                }
                self.set_end(EndReason::Violation {
                    side: from,
                    violation,
                });
                self.start_close_timer();
            }
            PumpEvent::SourceEnded(error) => {
                if self.closes[from].is_none() {
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
                    self.closes[from] = Some(info);
                    self.first_close.get_or_insert(from);
                }
                self.inject_close(from, code, &reason);
                self.inject_close(from.other(), code, &reason);
                self.set_end(EndReason::Hook { side: from, code });
                self.start_close_timer();
            }
            PumpEvent::DestinationFailed(kind) => {
                let gone = from.other();
                self.reader_of(gone).stop_reading();
                self.vanished(gone, Some(kind));
            }
            PumpEvent::RandomFailed(error) => self.random_failed(error),
        }
    }

    /// Queues a close frame for `to`; a close that cannot be masked for lack of randomness
    /// ends the connection as [`random_failed`](Self::random_failed) says.
    fn inject_close(&mut self, to: Side, code: u16, why: &str) {
        if let Err(error) = self.writer_to(to).inject_close(code, why) {
            self.random_failed(error);
        }
    }

    /// The OS random source failed when a masking key or a ping token was needed (see
    /// [`wsrelay_codec::random`]): never sending a predictable one, the relay ends the
    /// connection with 1011 to both sides (a side whose close cannot be masked either is shut
    /// down without one; a side that broke the protocol and whose 1002 / 1007 / 1009 is held
    /// back gets that one) and the outcome names the failure, whatever else happened.
    fn random_failed(&mut self, error: RandomError) {
        if !matches!(self.end, Some(EndReason::RandomSource { .. })) {
            self.end = Some(EndReason::RandomSource { error });
        }
        for side in SIDES {
            // On a second failure the pump has abandoned that side already: nothing to add.
            let _ = self
                .writer_to(side)
                .inject_close(code::INTERNAL_ERROR, "relay has no random source");
        }
        self.start_close_timer();
    }

    /// `side` went away without a close: the other side gets a close frame saying so.
    fn vanished(&mut self, side: Side, error: Option<std::io::ErrorKind>) {
        self.writer_to(side).abandon_destination();
        let (code, why) = match side {
            Side::Client => (code::GOING_AWAY, "client went away"),
            Side::Upstream => (code::BAD_GATEWAY, "upstream went away"),
        };
        self.inject_close(side.other(), code, why);
        self.set_end(EndReason::Vanished { side, error });
        self.start_close_timer();
    }

    /// Sends a close held back for a side that broke the protocol (see
    /// [`Pump::defer_close`]); true if there was one.
    fn release_held_close(&mut self) -> bool {
        let mut released = false;
        for side in SIDES {
            released |= self.writer_to(side).release_deferred_close();
        }
        released
    }

    /// The relay itself ends the connection (shutdown, idle): 1001 to both sides.
    fn close_both(&mut self, reason: EndReason, why: &str) {
        for side in SIDES {
            self.inject_close(side, code::GOING_AWAY, why);
        }
        self.set_end(reason);
        self.start_close_timer();
    }

    /// The relay ends the connection with `code` to both sides (its owner's deadline).
    fn close_both_with(&mut self, code: u16, reason: EndReason, why: &str) {
        for side in SIDES {
            self.inject_close(side, code, why);
        }
        self.set_end(reason);
        self.start_close_timer();
    }

    /// Both sides have said their last word and been told to close, and nothing waits to be
    /// written; or neither side can be written to any more (both abandoned, e.g. one vanished
    /// and the other was left mid-frame), so reading on would serve nothing.
    fn settled(&self) -> bool {
        let pumps = &self.relay.pumps;
        if SIDES.iter().all(|&s| pumps[s].destination_abandoned()) {
            return true;
        }
        SIDES.iter().all(|&s| {
            let pump = &pumps[s];
            !pump.reading() && pump.destination_settled() && pump.idle_output()
        })
    }

    /// Copies the traffic so far into the live counters, if the relay has them.
    fn publish(&self) {
        if let Some(live) = &self.relay.live {
            let pumps = &self.relay.pumps;
            live.publish(&pumps[Side::Client].traffic, &pumps[Side::Upstream].traffic);
        }
    }

    fn outcome(&mut self) -> RelayOutcome {
        self.publish();
        let end = self.end.take().unwrap_or(EndReason::Closed {
            initiator: self.first_close.unwrap_or(Side::Client),
        });
        RelayOutcome {
            end,
            client_close: self.closes[Side::Client].take(),
            upstream_close: self.closes[Side::Upstream].take(),
            sent_to_client: self.writer_to(Side::Client).injected.take(),
            sent_to_upstream: self.writer_to(Side::Upstream).injected.take(),
            client_to_upstream: self.reader_of(Side::Client).traffic,
            upstream_to_client: self.reader_of(Side::Upstream).traffic,
            close_timed_out: self.close_timed_out,
            duration: self.started.elapsed(),
        }
    }

    /// Moves frames and handles events until everything would block. Ready once settled.
    fn poll_relaying(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let relay = &mut self.relay;
            let c2u = relay.pumps[Side::Client].poll_io(
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
            let u2c = relay.pumps[Side::Upstream].poll_io(
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
            if self.poll_signals(cx) {
                continue;
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

    /// The owner's shutdown signal and deadline, polled when they woke the task; true when one
    /// fired and closing began.
    fn poll_signals(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(waker) = self.signals.as_ref().and_then(|gate| gate.open(cx)) else {
            return false;
        };
        let mut cx = Context::from_waker(&waker);
        if let Some(signal) = self.relay.shutdown.as_mut() {
            if signal.as_mut().poll(&mut cx).is_ready() {
                self.relay.shutdown = None;
                self.close_both(EndReason::Shutdown, "relay shutting down");
                if let Some(gate) = &self.signals {
                    // The deadline was not polled in this pass.
                    gate.reopen();
                }
                return true;
            }
        }
        if let Some(deadline) = self.relay.deadline.as_mut() {
            if deadline.timer.as_mut().poll(&mut cx).is_ready() {
                let (code, reason) = (deadline.code, deadline.reason);
                self.relay.deadline = None;
                self.close_both_with(code, EndReason::Deadline { code }, reason);
                return true;
            }
        }
        false
    }

    /// Tracks activity; true when the idle timeout just fired and closing began.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle.is_none() {
            // No idle timeout (or it fired): no clock read per wake-up to track activity.
            return false;
        }
        let pumps = &mut self.relay.pumps;
        if SIDES.iter().any(|&s| pumps[s].active) {
            for side in SIDES {
                pumps[side].active = false;
            }
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

    /// Keep-alive pings for quiet sides; true if one was queued. None once closing began.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(ka) = self.keep_alive.as_mut() else {
            return false;
        };
        ka.note_heard(&mut self.relay.pumps);
        if self.close_deadline.is_some() {
            return false;
        }
        match ka.poll_ping(cx, &mut self.relay.pumps) {
            Ok(fired) => fired,
            Err(error) => {
                self.random_failed(error);
                true
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
                    let client =
                        relay.pumps[Side::Client].poll_drain(cx, Pin::new(&mut relay.client));
                    let upstream =
                        relay.pumps[Side::Upstream].poll_drain(cx, Pin::new(&mut relay.upstream));
                    if client.is_ready() && upstream.is_ready() {
                        return Poll::Ready(this.outcome());
                    }
                }
            }
            if let Some(deadline) = this.close_deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    let timed_out = this.stage == Stage::Relaying;
                    this.close_timed_out |= timed_out;
                    if timed_out && this.release_held_close() {
                        // The side that broke the protocol waited for the other side's close
                        // long enough: it gets its own close now, with one more close timeout
                        // to take it and answer.
                        let at = Instant::now() + this.relay.options.close_timeout;
                        if let Some(deadline) = this.close_deadline.as_mut() {
                            deadline.as_mut().reset(at);
                        }
                        continue;
                    }
                    // Peers that do not finish closing in time are cut off.
                    return Poll::Ready(this.outcome());
                }
            }
            this.publish();
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

    /// The owner's deadline closes both sides with its code and reason; the client's close
    /// comes first on its wire (unmasked), and the outcome names the deadline.
    #[tokio::test]
    async fn a_deadline_closes_both_sides_with_its_code() {
        use tokio::io::AsyncReadExt;
        let (client, mut client_peer) = tokio::io::duplex(1024);
        let (upstream, _upstream_peer) = tokio::io::duplex(1024);
        let options = RelayOptions {
            close_timeout: std::time::Duration::from_millis(100),
            ..RelayOptions::default()
        };
        let at = Instant::now() + std::time::Duration::from_millis(20);
        let relay = Relay::new(client, upstream, &options)
            .close_at(Some(at), code::POLICY_VIOLATION, "token expired")
            .run();
        let read = async {
            let mut frame = [0u8; 17];
            client_peer.read_exact(&mut frame).await.unwrap();
            frame
        };
        let (outcome, frame) = tokio::join!(relay, read);
        assert_eq!(&frame[..4], &[0x88, 15, 0x03, 0xf0]);
        assert_eq!(&frame[4..], b"token expired");
        assert_eq!(outcome.end, EndReason::Deadline { code: 1008 });
        let sent = outcome.sent_to_upstream.and_then(|c| c.code);
        assert_eq!(sent, Some(1008));
    }
}
