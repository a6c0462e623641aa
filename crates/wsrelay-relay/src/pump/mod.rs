//! One direction of a relay: read from a source, check with a [`Forwarder`], write to a
//! destination. This file is the pass-through pump, which forwards checked bytes straight from
//! its read buffer; the re-encoding path used when a frame hook is set is in `hooked.rs`, and
//! what the pump writes besides forwarded bytes (its own control frames) in `write.rs`.

mod hooked;
mod own;
mod rate;
mod write;

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wsrelay_codec::random::RandomError;

use crate::forwarder::{ClosePayload, Event, Forwarder, MAX_CONTROL_FRAME};
use crate::hook::FrameHook;
use crate::rate::{RateLimit, Throttle};
use crate::{pool, CloseInfo, Side, Traffic, Violation};
use hooked::HookState;
use write::{poll_write_from, OwnFrame};

/// Something the relay must act on.
#[derive(Debug)]
pub(crate) enum PumpEvent {
    /// The source sent a valid close frame (forwarded unless the pump was discarding).
    Close(ClosePayload),
    /// The source broke a rule; it is no longer read.
    Violation(Violation),
    /// The source ended (or failed) without a close frame.
    SourceEnded(Option<io::ErrorKind>),
    /// Writing to the destination failed; it is abandoned.
    DestinationFailed(io::ErrorKind),
    /// The frame hook asked to close both sides (or broke a chunked frame, which closes with
    /// 1011); the source is no longer read.
    HookClose {
        /// Close code for both sides (valid on the wire).
        code: u16,
        /// Reason for both sides.
        reason: String,
        /// The source's own close frame, when that was the frame the hook answered with a close.
        peer_close: Option<ClosePayload>,
    },
    /// No masking key could be drawn for a frame the hook path encodes towards the upstream;
    /// the source is no longer read and the connection ends (see [`wsrelay_codec::random`]).
    RandomFailed(RandomError),
}

/// A keep-alive ping on the wire: a masked 2-byte header and the 8-byte token.
type Ping = OwnFrame<14>;

/// A close frame of the relay's own on the wire: a masked header and at most 125 bytes.
type OwnClose = OwnFrame<MAX_CONTROL_FRAME>;

/// How far the destination is in closing (RFC 6455 §7.1): one state, where flags once said
/// "told", "abandoned", "discarding" and "a close is queued".
enum Destination {
    /// Frames are forwarded to it.
    Open,
    /// Frames are forwarded to it, but it broke the protocol and this close of the relay's own
    /// (1002 / 1007 / 1009) is its last frame: the source was told to close, and what it sends
    /// until its close arrives still reaches the destination (RFC 6455 §7.1.7 fails the
    /// connection with the code of the failure; nothing stops the replies the source had sent
    /// before it learned of it from being delivered first). The source's close is absorbed and
    /// this one goes out instead (§5.5.1: one close each way).
    Deferred(OwnClose),
    /// The relay's own close waits for the frame under way to end, then goes out; nothing of
    /// the source is forwarded after it.
    Injecting(OwnClose),
    /// The source's close frame ends what is queued for the destination: once that is written,
    /// the destination was told.
    ForwardingClose,
    /// A close frame reached it: nothing more is written. The source is read on only to find
    /// its own close; what it sends meanwhile is dropped.
    Told,
    /// It can take no more writes: it failed, its peer is gone, or it was left inside a frame
    /// that no close frame can follow.
    Abandoned,
}

/// Whether the source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Read as fast as the destination takes what was read (back-pressure).
    Reading,
    /// Read, but bytes already in the buffer are checked first: they were pipelined before
    /// the relay ran, or held back behind a queued close or behind the hook's output.
    Held,
    /// No longer read: it ended, broke a rule or sent its close, or the relay is finishing.
    Stopped,
}

pub(crate) struct Pump {
    forwarder: Forwarder,
    /// The side whose frames this pump reads.
    from: Side,
    /// Present once a frame hook is set.
    hooked: Option<Box<HookState>>,
    /// Present when this direction has a rate limit (one branch on the path otherwise).
    rate: Option<Box<(Throttle, RateLimit)>>,
    /// A keep-alive ping waiting for a frame boundary.
    ping: Option<Ping>,
    /// Buffer, taken from the pool only while data is in flight.
    buf: Option<Box<[u8]>>,
    capacity: usize,
    /// `buf[start..ready]` is checked and waits to be written; `buf[ready..end]` is an unconsumed
    /// partial header or control frame.
    start: usize,
    ready: usize,
    end: usize,
    /// Whether the forwarded bytes up to `ready` end inside a frame.
    mid_frame: bool,
    source: Source,
    destination: Destination,
    /// Bytes were written since the last flush.
    unflushed: bool,
    /// Close sent to the destination by the relay itself, for the outcome.
    pub(crate) injected: Option<CloseInfo>,
    /// Traffic forwarded.
    pub(crate) traffic: Traffic,
    /// Set whenever the source's frames pass (not pongs to the relay's pings); the relay clears
    /// it to track idleness.
    pub(crate) active: bool,
    /// Set whenever bytes arrive from the source at all; the relay clears it for keep-alive.
    pub(crate) heard: bool,
}

impl Pump {
    /// A pump reading `from`'s frames through `forwarder`, with a buffer of `capacity` bytes.
    pub(crate) fn new(forwarder: Forwarder, from: Side, capacity: usize) -> Pump {
        Pump {
            forwarder,
            from,
            hooked: None,
            rate: None,
            ping: None,
            buf: None,
            capacity,
            start: 0,
            ready: 0,
            end: 0,
            mid_frame: false,
            source: Source::Reading,
            destination: Destination::Open,
            unflushed: false,
            injected: None,
            traffic: Traffic::default(),
            active: false,
            heard: false,
        }
    }

    /// Shows every frame to a hook from now on; with `aggregate`, whole messages of at most
    /// `max_message` bytes instead of fragments.
    pub(crate) fn enable_hook(&mut self, aggregate: bool, max_message: u64) {
        if aggregate {
            self.forwarder.set_max_message_size(max_message);
        }
        self.hooked = Some(Box::new(HookState::new(aggregate)));
    }

    /// The forwarder, to arm pong absorption.
    pub(crate) fn forwarder_mut(&mut self) -> &mut Forwarder {
        &mut self.forwarder
    }

    /// Seeds the buffer with bytes read before the relay started (pipelined behind the handshake).
    pub(crate) fn preload(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut buf = pool::take(self.capacity.max(bytes.len()));
        buf[..bytes.len()].copy_from_slice(bytes);
        self.capacity = self.capacity.max(bytes.len());
        self.buf = Some(buf);
        self.end = bytes.len();
        // Checked by the first poll, once the relay (and its hook, if any) is complete.
        self.hold(true);
    }

    /// True while the source is still read.
    pub(crate) fn reading(&self) -> bool {
        self.source != Source::Stopped
    }

    /// True once the destination got a close frame or can take no more.
    pub(crate) fn destination_settled(&self) -> bool {
        matches!(self.destination, Destination::Told | Destination::Abandoned)
    }

    /// Whether nothing more will ever be written to the destination.
    pub(crate) fn destination_abandoned(&self) -> bool {
        matches!(self.destination, Destination::Abandoned)
    }

    /// True when nothing waits to be written or flushed.
    pub(crate) fn idle_output(&self) -> bool {
        (!self.queued() || self.destination_abandoned())
            && !matches!(self.destination, Destination::Injecting(_))
            && !self.unflushed
    }

    /// Stops reading the source (it vanished, or the relay is finishing).
    pub(crate) fn stop_reading(&mut self) {
        self.source = Source::Stopped;
    }

    /// Gives up on the destination: nothing more is written to it (its peer is gone).
    pub(crate) fn abandon_destination(&mut self) {
        self.destination = Destination::Abandoned;
        self.ping = None;
        if let Some(h) = self.hooked.as_deref_mut() {
            h.out.clear();
        }
        self.start = self.ready;
        self.unflushed = false;
    }

    /// Moves data: writes what is checked, reads more when there is room, until both would block
    /// or something happens that the relay must handle.
    pub(crate) fn poll_io<S, D, H>(
        &mut self,
        cx: &mut Context<'_>,
        mut src: Pin<&mut S>,
        mut dst: Pin<&mut D>,
        hook: &mut H,
    ) -> Poll<PumpEvent>
    where
        S: AsyncRead + ?Sized,
        D: AsyncWrite + ?Sized,
        H: FrameHook,
    {
        loop {
            let mut blocked_writing = false;
            match self.poll_write_side::<D, H>(cx, dst.as_mut()) {
                Poll::Ready(Ok(true)) => continue,
                Poll::Ready(Ok(false)) => {}
                Poll::Ready(Err(e)) => {
                    self.abandon_destination();
                    return Poll::Ready(PumpEvent::DestinationFailed(e.kind()));
                }
                Poll::Pending => blocked_writing = true,
            }
            if self.source == Source::Stopped || self.must_wait_for_close() {
                self.release_if_empty();
                return Poll::Pending;
            }
            if self.start == self.ready && self.ready > 0 {
                self.compact();
            }
            if self.rate.is_some() && self.poll_rate(cx).is_pending() {
                // Over its budget: the sender is not read until it has one again.
                self.release_if_empty();
                return Poll::Pending;
            }
            if self.source == Source::Held {
                self.source = Source::Reading;
                // Bytes held back (pipelined before the relay ran, behind a queued close, or
                // behind a hook's pending output) are checked now.
                if let Some(event) = self.process(hook) {
                    return Poll::Ready(event);
                }
                // What was just checked is written before reading more.
                continue;
            }
            if self.end == self.capacity {
                // Full: the destination's pace now sets the source's (back-pressure).
                debug_assert!(blocked_writing || H::ENABLED || self.rate.is_some());
                return Poll::Pending;
            }
            let buf = self.buf.get_or_insert_with(|| pool::take(self.capacity));
            let mut read_buf = ReadBuf::new(&mut buf[self.end..]);
            match src.as_mut().poll_read(cx, &mut read_buf) {
                Poll::Ready(Ok(())) => {
                    let n = read_buf.filled().len();
                    if n == 0 {
                        self.source = Source::Stopped;
                        return Poll::Ready(PumpEvent::SourceEnded(None));
                    }
                    self.end += n;
                    self.heard = true;
                    if let Some(event) = self.process(hook) {
                        return Poll::Ready(event);
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.source = Source::Stopped;
                    return Poll::Ready(PumpEvent::SourceEnded(Some(e.kind())));
                }
                Poll::Pending => {
                    self.release_if_empty();
                    return Poll::Pending;
                }
            }
        }
    }

    /// Reads and discards the source until it ends, so closing does not reset the connection
    /// while the peer still has bytes in flight. Ready when the source ended or failed.
    pub(crate) fn poll_drain<S: AsyncRead + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut src: Pin<&mut S>,
    ) -> Poll<()> {
        let buf = self.buf.get_or_insert_with(|| pool::take(self.capacity));
        loop {
            let mut read_buf = ReadBuf::new(&mut buf[..]);
            match src.as_mut().poll_read(cx, &mut read_buf) {
                Poll::Ready(Ok(())) if !read_buf.filled().is_empty() => continue,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Writes, in this order: a ping already started, checked bytes from the buffer, the hook's
    /// output, the relay's own close (at a frame boundary), a ping (at a frame boundary); then
    /// flushes. `Ok(true)`: progress, call again.
    fn poll_write_side<D: AsyncWrite + ?Sized, H: FrameHook>(
        &mut self,
        cx: &mut Context<'_>,
        mut dst: Pin<&mut D>,
    ) -> Poll<io::Result<bool>> {
        if self.destination_abandoned() {
            return Poll::Ready(Ok(false));
        }
        if self.ping.as_ref().is_some_and(Ping::started) {
            // A ping half written is finished before anything else.
            return self.poll_write_ping(cx, dst);
        }
        if self.start < self.ready {
            let Some(buf) = self.buf.as_deref() else {
                return Poll::Ready(Ok(false));
            };
            let checked = &buf[..self.ready];
            let n = ready!(poll_write_from(dst, cx, checked, &mut self.start))?;
            self.wrote(n);
            return Poll::Ready(Ok(true));
        }
        if H::ENABLED {
            if let Some(h) = self.hooked.as_deref_mut() {
                if !h.out.is_empty() {
                    let n = ready!(h.out.poll_write(cx, dst))?;
                    if h.out.is_empty() && self.ready < self.end {
                        // Input held back while the output was full can go now.
                        self.hold(true);
                    }
                    self.wrote(n);
                    return Poll::Ready(Ok(true));
                }
            }
        }
        if let Destination::Injecting(close) = &mut self.destination {
            if !self.mid_frame {
                let done = ready!(close.poll_write(cx, dst.as_mut()))?;
                self.unflushed = true;
                if done {
                    self.destination = Destination::Told;
                    // What follows is read only to find the source's own close.
                    self.hold(self.ready < self.end);
                }
                return Poll::Ready(Ok(true));
            }
            if self.source == Source::Stopped {
                // The frame under way will never complete: no close frame can follow it.
                self.destination = Destination::Abandoned;
            }
        }
        if self.ping.is_some() && !self.mid_frame && !self.must_wait_for_close() {
            return self.poll_write_ping(cx, dst);
        }
        if self.unflushed {
            ready!(dst.as_mut().poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(false))
    }

    /// Writes the queued keep-alive ping (there is one). `Ok(true)`: progress.
    fn poll_write_ping<D: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        dst: Pin<&mut D>,
    ) -> Poll<io::Result<bool>> {
        let Some(ping) = self.ping.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        let done = ready!(ping.poll_write(cx, dst))?;
        self.unflushed = true;
        if done {
            self.ping = None;
        }
        Poll::Ready(Ok(true))
    }

    /// Counts `n` forwarded bytes written; once all that was queued went out behind a
    /// forwarded close, the destination was told.
    fn wrote(&mut self, n: usize) {
        self.traffic.bytes += n as u64;
        self.unflushed = true;
        if matches!(self.destination, Destination::ForwardingClose) && !self.queued() {
            self.destination = Destination::Told;
        }
    }

    /// True while checked bytes (from the buffer or the hook's output) wait to be written.
    fn queued(&self) -> bool {
        self.start < self.ready || self.hooked.as_deref().is_some_and(|h| !h.out.is_empty())
    }

    /// True once nothing of the source is forwarded any more: it is read only for its close.
    fn discarding(&self) -> bool {
        matches!(self.destination, Destination::Told | Destination::Abandoned)
    }

    /// Marks the unconsumed bytes for checking before more is read (`held`), or clears the
    /// mark; a stopped source stays stopped.
    fn hold(&mut self, held: bool) {
        match (self.source, held) {
            (Source::Reading, true) => self.source = Source::Held,
            (Source::Held, false) => self.source = Source::Reading,
            _ => {}
        }
    }

    /// With a close queued, only the rest of the frame under way may still be forwarded.
    fn must_wait_for_close(&self) -> bool {
        matches!(self.destination, Destination::Injecting(_)) && !self.mid_frame
    }

    /// How many unconsumed bytes may be checked now: all of them, or with a close of the
    /// relay's own queued, only the rest of the frame under way (then the close goes out and
    /// forwarding stops).
    fn input_limit(&self) -> usize {
        if matches!(self.destination, Destination::Injecting(_)) {
            let rest = self.forwarder.payload_remaining();
            usize::try_from(rest).unwrap_or(usize::MAX)
        } else {
            usize::MAX
        }
    }

    /// Runs the forwarder (and the hook, if any) over newly read bytes; returns an event that
    /// stops reading.
    fn process<H: FrameHook>(&mut self, hook: &mut H) -> Option<PumpEvent> {
        if H::ENABLED && self.hooked.is_some() {
            return self.process_hooked(hook);
        }
        self.process_plain()
    }

    /// The pass-through path: checked bytes are forwarded from the read buffer unchanged.
    fn process_plain(&mut self) -> Option<PumpEvent> {
        loop {
            let limit = match self.admitted_input() {
                Ok(limit) => limit,
                Err(violation) => return Some(PumpEvent::Violation(violation)),
            };
            let (ready, end) = (self.ready, self.end);
            let buf = self.buf.as_deref_mut()?;
            let input = &mut buf[ready..end];
            let take = input.len().min(limit);
            let step = self.forwarder.process_mut(&mut input[..take]);
            self.rate_consumed(step.consumed);
            self.mid_frame = step.mid_frame;
            self.active |= step.forward > 0
                || matches!(step.event, Some(Event::Close(_) | Event::Violation(_)));
            let discarding = self.discarding();
            if discarding {
                self.ready += step.consumed;
                self.start = self.ready;
            } else {
                self.ready += step.forward;
                self.traffic.frames += step.frames;
                self.traffic.remasked += step.remasked;
                self.traffic.messages += step.messages;
                self.traffic.header_bytes += step.header_bytes;
            }
            match step.event? {
                Event::OwnPong => {
                    if !discarding {
                        // Cut the pong out of the buffer; the bytes before it still go out.
                        let skip = step.consumed - step.forward;
                        let (ready, end) = (self.ready, self.end);
                        if let Some(buf) = self.buf.as_deref_mut() {
                            buf.copy_within(ready + skip..end, ready);
                        }
                        self.end -= skip;
                    }
                }
                Event::Close(payload) => {
                    match self.destination {
                        // The close is the last of the checked bytes: written, it told the
                        // destination.
                        Destination::Open => self.destination = Destination::ForwardingClose,
                        Destination::Deferred(_) => {
                            // It is cut off the end of the checked bytes: the destination gets
                            // the relay's own close, with the code of its failure, instead.
                            let len = payload.frame_len();
                            self.ready = self.ready.saturating_sub(len).max(self.start);
                            self.traffic.frames = self.traffic.frames.saturating_sub(1);
                            let header = len.saturating_sub(payload.as_bytes().len());
                            self.traffic.header_bytes =
                                self.traffic.header_bytes.saturating_sub(header as u64);
                            self.release_deferred_close();
                        }
                        _ => {}
                    }
                    self.finish_reading();
                    return Some(PumpEvent::Close(payload));
                }
                Event::Violation(v) => {
                    self.finish_reading();
                    return Some(PumpEvent::Violation(v));
                }
                Event::RandomFailed(error) => {
                    self.finish_reading();
                    return Some(PumpEvent::RandomFailed(error));
                }
            }
        }
    }

    /// Stops reading and drops whatever followed the last forwarded byte.
    fn finish_reading(&mut self) {
        self.source = Source::Stopped;
        self.end = self.ready;
    }

    fn compact(&mut self) {
        if let Some(buf) = self.buf.as_deref_mut() {
            buf.copy_within(self.ready..self.end, 0);
        }
        self.end -= self.ready;
        self.start = 0;
        self.ready = 0;
    }

    /// Hands the buffer back to the pool when it holds nothing, so idle connections cost no buffer.
    fn release_if_empty(&mut self) {
        // start <= ready <= end, so this means: nothing to write and nothing unconsumed.
        if self.start == self.end {
            if let Some(buf) = self.buf.take() {
                self.start = 0;
                self.ready = 0;
                self.end = 0;
                pool::give(buf);
            }
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            pool::give(buf);
        }
    }
}
