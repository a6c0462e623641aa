//! One direction of a relay: read from a source, check with a [`Forwarder`], write to a destination.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wsrelay_codec::{
    apply_mask, is_valid_close_code, write_frame, CloseFrame, FrameHeader, OpCode, MAX_HEADER_LEN,
};

use crate::forwarder::{ClosePayload, Event, Forwarder, Piece};
use crate::hook::{Chunk, Frame, FrameHook, Verdict};
use crate::{pool, CloseInfo, Side, Traffic, Violation};

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
}

/// A keep-alive ping the relay sends to the destination: at most a 6-byte header and 8 bytes.
struct PingBox {
    bytes: [u8; 14],
    len: u8,
    written: u8,
}

/// The data frame under way in the source, when a hook is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    /// Between frames (or inside a whole frame, which is handled in one step).
    None,
    /// A frame larger than the buffer, shown to the hook chunk by chunk. `head` is its header
    /// as read; `passing` once the hook forwarded its first chunk (the destination is mid-frame).
    Chunked {
        header: FrameHeader,
        head: [u8; MAX_HEADER_LEN],
        head_len: u8,
        passing: bool,
    },
    /// Payload collected into the aggregated message.
    Collect { fin: bool },
    /// A dropped frame: its bytes are skipped unseen.
    Skip { fin: bool },
}

/// Masking keys for frames the relay encodes towards the upstream, drawn from the OS in batches
/// so a rewritten frame does not cost a system call.
struct KeyPool {
    bytes: [u8; 64],
    used: usize,
}

impl KeyPool {
    fn next(&mut self) -> [u8; 4] {
        if self.used + 4 > self.bytes.len() {
            if getrandom::fill(&mut self.bytes).is_err() {
                let key = random_key();
                for (i, b) in self.bytes.iter_mut().enumerate() {
                    *b ^= key[i % 4].wrapping_add(i as u8);
                }
            }
            self.used = 0;
        }
        let mut key = [0u8; 4];
        key.copy_from_slice(&self.bytes[self.used..self.used + 4]);
        self.used += 4;
        key
    }
}

/// What a pump with a frame hook keeps besides the plain pump's state.
struct HookState {
    /// Frames to write, built from the hook's verdicts; `out[out_start..]` is still unwritten.
    out: Vec<u8>,
    out_start: usize,
    /// A close frame in `out` ends at this offset.
    out_close_until: Option<usize>,
    /// The unmasked payload shown to the hook (a whole frame or a chunk).
    scratch: Vec<u8>,
    /// The aggregated message so far (with `aggregate`).
    message: Vec<u8>,
    /// Opcode and RSV bits of the aggregated message's first frame.
    message_head: (OpCode, u8),
    aggregate: bool,
    /// A message whose first fragment the hook dropped: its continuations are skipped.
    dropping_message: bool,
    current: Current,
    keys: KeyPool,
}

/// A close frame the relay itself sends to the destination, held inline.
struct Outbox {
    bytes: [u8; MAX_HEADER_LEN + 125],
    len: usize,
    written: usize,
}

pub(crate) struct Pump {
    forwarder: Forwarder,
    /// The side whose frames this pump reads (for the hook).
    from: Side,
    /// Present once a frame hook is set.
    hooked: Option<Box<HookState>>,
    /// A keep-alive ping waiting for a frame boundary.
    ping: Option<PingBox>,
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
    /// Still reading the source.
    reading: bool,
    /// The destination was told to close (or is gone): nothing more is written to it.
    discarding: bool,
    /// Bytes of a forwarded close frame end at this offset; written fully means the destination was told.
    close_until: Option<usize>,
    outbox: Option<Outbox>,
    /// Close sent to the destination by the relay itself, for the outcome.
    pub(crate) injected: Option<CloseInfo>,
    /// The destination can take no more writes (failed, or left mid-frame).
    dst_abandoned: bool,
    /// The destination was told to close: a close frame reached it.
    dst_told: bool,
    unflushed: bool,
    /// Frames from the relay to the destination must be masked (the destination is a server).
    mask_outgoing: bool,
    /// An event found while preloading, reported by the first poll.
    deferred: Option<PumpEvent>,
    /// Unconsumed bytes wait to be checked (held back while a queued close went out).
    recheck: bool,
    /// Traffic forwarded.
    pub(crate) traffic: Traffic,
    /// Set whenever the source's frames pass (not pongs to the relay's pings); the relay clears
    /// it to track idleness.
    pub(crate) active: bool,
    /// Set whenever bytes arrive from the source at all; the relay clears it for keep-alive.
    pub(crate) heard: bool,
}

impl Pump {
    pub(crate) fn new(
        forwarder: Forwarder,
        from: Side,
        capacity: usize,
        mask_outgoing: bool,
    ) -> Pump {
        Pump {
            forwarder,
            from,
            hooked: None,
            ping: None,
            buf: None,
            capacity,
            start: 0,
            ready: 0,
            end: 0,
            mid_frame: false,
            reading: true,
            discarding: false,
            close_until: None,
            outbox: None,
            injected: None,
            dst_abandoned: false,
            dst_told: false,
            unflushed: false,
            mask_outgoing,
            deferred: None,
            recheck: false,
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
        self.hooked = Some(Box::new(HookState {
            out: Vec::new(),
            out_start: 0,
            out_close_until: None,
            scratch: Vec::new(),
            message: Vec::new(),
            message_head: (OpCode::Binary, 0),
            aggregate,
            dropping_message: false,
            current: Current::None,
            keys: KeyPool {
                bytes: [0; 64],
                used: 64,
            },
        }));
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
        self.recheck = true;
    }

    /// True while the source is still read.
    pub(crate) fn reading(&self) -> bool {
        self.reading
    }

    /// True once the destination got a close frame or can take no more.
    pub(crate) fn destination_settled(&self) -> bool {
        self.dst_told || self.dst_abandoned
    }

    /// True when nothing waits to be written or flushed.
    pub(crate) fn idle_output(&self) -> bool {
        let hooked_out = self
            .hooked
            .as_deref()
            .is_some_and(|h| h.out_start < h.out.len());
        (self.start == self.ready && !hooked_out || self.dst_abandoned)
            && self.outbox.is_none()
            && !self.unflushed
    }

    /// Stops reading the source (it vanished, or the relay is finishing).
    pub(crate) fn stop_reading(&mut self) {
        self.reading = false;
    }

    /// Queues a close frame for the destination, sent at the next frame boundary; after it,
    /// nothing more is forwarded. Does nothing if the destination was already told or is gone.
    pub(crate) fn inject_close(&mut self, code: u16, reason: &str) {
        let hooked_close = self
            .hooked
            .as_deref()
            .is_some_and(|h| h.out_close_until.is_some());
        if self.dst_told
            || self.dst_abandoned
            || self.outbox.is_some()
            || self.close_until.is_some()
            || hooked_close
        {
            return;
        }
        self.ping = None;
        let mut payload_buf = [0u8; 125];
        let payload = CloseFrame::encode(code, reason, &mut payload_buf);
        let mut outbox = Outbox {
            bytes: [0; MAX_HEADER_LEN + 125],
            len: 0,
            written: 0,
        };
        let mut header = FrameHeader::new(OpCode::Close, payload.len() as u64);
        if self.mask_outgoing {
            header.mask = Some(random_key());
        }
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let head = header.encode(&mut hbuf);
        outbox.bytes[..head.len()].copy_from_slice(head);
        let body = &mut outbox.bytes[head.len()..head.len() + payload.len()];
        body.copy_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(body, key, 0);
        }
        outbox.len = head.len() + payload.len();
        self.outbox = Some(outbox);
        self.injected = Some(CloseInfo {
            code: Some(code),
            reason: CloseFrame::parse(payload)
                .map_or_else(|_| String::new(), |c| c.reason.to_owned()),
        });
    }

    /// Queues a keep-alive ping carrying `token` for the destination, sent at the next frame
    /// boundary. Does nothing once closing began or while a ping is still queued.
    pub(crate) fn inject_ping(&mut self, token: [u8; 8]) {
        if self.dst_told
            || self.dst_abandoned
            || self.discarding
            || self.outbox.is_some()
            || self.close_until.is_some()
            || self.ping.is_some()
        {
            return;
        }
        let mut header = FrameHeader::new(OpCode::Ping, 8);
        if self.mask_outgoing {
            header.mask = Some(random_key());
        }
        let mut ping = PingBox {
            bytes: [0; 14],
            len: 0,
            written: 0,
        };
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let head = header.encode(&mut hbuf);
        let head_len = head.len();
        ping.bytes[..head_len].copy_from_slice(head);
        ping.bytes[head_len..head_len + 8].copy_from_slice(&token);
        if let Some(key) = header.mask {
            apply_mask(&mut ping.bytes[head_len..head_len + 8], key, 0);
        }
        ping.len = (head_len + 8) as u8;
        self.ping = Some(ping);
    }

    /// Whether nothing more will ever be written to the destination.
    pub(crate) fn destination_abandoned(&self) -> bool {
        self.dst_abandoned
    }

    /// Gives up on the destination: nothing more is written to it (its peer is gone).
    pub(crate) fn abandon_destination(&mut self) {
        self.dst_abandoned = true;
        self.discarding = true;
        self.outbox = None;
        self.ping = None;
        if let Some(h) = self.hooked.as_deref_mut() {
            h.out.clear();
            h.out_start = 0;
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
        if let Some(event) = self.deferred.take() {
            return Poll::Ready(event);
        }
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
            if !self.reading || self.must_wait_for_outbox() {
                self.release_if_empty();
                return Poll::Pending;
            }
            if self.start == self.ready && self.ready > 0 {
                self.compact();
            }
            if std::mem::take(&mut self.recheck) {
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
                debug_assert!(blocked_writing || H::ENABLED);
                return Poll::Pending;
            }
            let buf = self.buf.get_or_insert_with(|| pool::take(self.capacity));
            let mut read_buf = ReadBuf::new(&mut buf[self.end..]);
            match src.as_mut().poll_read(cx, &mut read_buf) {
                Poll::Ready(Ok(())) => {
                    let n = read_buf.filled().len();
                    if n == 0 {
                        self.reading = false;
                        return Poll::Ready(PumpEvent::SourceEnded(None));
                    }
                    self.end += n;
                    self.heard = true;
                    if let Some(event) = self.process(hook) {
                        return Poll::Ready(event);
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.reading = false;
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

    /// Writes pending bytes, then the outbox, then flushes. `Ok(true)`: progress, call again.
    fn poll_write_side<D: AsyncWrite + ?Sized, H: FrameHook>(
        &mut self,
        cx: &mut Context<'_>,
        mut dst: Pin<&mut D>,
    ) -> Poll<io::Result<bool>> {
        if self.dst_abandoned {
            return Poll::Ready(Ok(false));
        }
        if self.ping.as_ref().is_some_and(|p| p.written > 0) {
            // A ping half written is finished before anything else.
            return self.poll_write_ping(cx, dst);
        }
        if self.start < self.ready {
            let Some(buf) = self.buf.as_deref() else {
                return Poll::Ready(Ok(false));
            };
            let n = ready!(dst.as_mut().poll_write(cx, &buf[self.start..self.ready]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.start += n;
            self.traffic.bytes += n as u64;
            self.unflushed = true;
            if self.close_until.is_some_and(|end| self.start >= end) {
                self.dst_told = true;
            }
            return Poll::Ready(Ok(true));
        }
        if H::ENABLED {
            if let Some(h) = self.hooked.as_deref_mut() {
                if h.out_start < h.out.len() {
                    let n = ready!(dst.as_mut().poll_write(cx, &h.out[h.out_start..]))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    h.out_start += n;
                    self.traffic.bytes += n as u64;
                    self.unflushed = true;
                    if h.out_close_until.is_some_and(|end| h.out_start >= end) {
                        self.dst_told = true;
                    }
                    if h.out_start == h.out.len() {
                        h.out.clear();
                        h.out_start = 0;
                        h.out_close_until = h.out_close_until.filter(|_| !self.dst_told);
                        // Input held back while the output was full can go now.
                        self.recheck |= self.ready < self.end;
                    }
                    return Poll::Ready(Ok(true));
                }
            }
        }
        if let Some(outbox) = self.outbox.as_mut() {
            if !self.mid_frame {
                let n = ready!(dst
                    .as_mut()
                    .poll_write(cx, &outbox.bytes[outbox.written..outbox.len]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                outbox.written += n;
                self.unflushed = true;
                if outbox.written == outbox.len {
                    self.outbox = None;
                    self.dst_told = true;
                    self.discarding = true;
                    self.recheck = self.ready < self.end;
                }
                return Poll::Ready(Ok(true));
            }
            if !self.reading {
                // The frame under way will never complete: no close frame can follow it.
                self.dst_abandoned = true;
                self.outbox = None;
            }
        }
        if self.ping.is_some() && !self.mid_frame && self.outbox.is_none() {
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
        mut dst: Pin<&mut D>,
    ) -> Poll<io::Result<bool>> {
        let Some(ping) = self.ping.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        let rest = &ping.bytes[usize::from(ping.written)..usize::from(ping.len)];
        let n = ready!(dst.as_mut().poll_write(cx, rest))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        ping.written += n as u8;
        self.unflushed = true;
        if ping.written == ping.len {
            self.ping = None;
        }
        Poll::Ready(Ok(true))
    }

    /// With a close queued, only the rest of the frame under way may still be forwarded.
    fn must_wait_for_outbox(&self) -> bool {
        self.outbox.is_some() && !self.mid_frame
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
            let buf = self.buf.as_deref()?;
            let mut input = &buf[self.ready..self.end];
            if self.outbox.is_some() {
                // Finish the frame under way, then the queued close goes out and forwarding stops.
                let rest = self.forwarder.payload_remaining();
                input = &input[..input.len().min(usize::try_from(rest).unwrap_or(usize::MAX))];
            }
            let step = self.forwarder.process(input);
            self.mid_frame = step.mid_frame;
            self.active |= step.forward > 0
                || matches!(step.event, Some(Event::Close(_) | Event::Violation(_)));
            if self.discarding {
                self.ready += step.consumed;
                self.start = self.ready;
            } else {
                self.ready += step.forward;
                self.traffic.frames += step.frames;
            }
            match step.event? {
                Event::OwnPong => {
                    if !self.discarding {
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
                    if !self.discarding {
                        self.close_until = Some(self.ready);
                    }
                    self.finish_reading();
                    return Some(PumpEvent::Close(payload));
                }
                Event::Violation(v) => {
                    self.finish_reading();
                    return Some(PumpEvent::Violation(v));
                }
            }
        }
    }

    /// The hooked path: each frame (or chunk, or message) is unmasked, shown to the hook and
    /// what it decides is encoded into the hook state's output buffer.
    fn process_hooked<H: FrameHook>(&mut self, hook: &mut H) -> Option<PumpEvent> {
        loop {
            let buf = self.buf.as_deref()?;
            let h = self.hooked.as_deref_mut()?;
            if h.out.len() - h.out_start >= self.capacity {
                // Back-pressure: the rest waits until the destination took the output.
                return None;
            }
            let mut input = &buf[self.ready..self.end];
            if self.outbox.is_some() {
                let rest = self.forwarder.payload_remaining();
                input = &input[..input.len().min(usize::try_from(rest).unwrap_or(usize::MAX))];
            }
            if input.is_empty() {
                return None;
            }
            let whole_limit = if h.aggregate { 0 } else { self.capacity };
            let (step, piece) = self.forwarder.next_piece(input, whole_limit);
            if step.consumed == 0 && step.event.is_none() {
                return None;
            }
            let bytes = &input[..step.consumed];
            self.ready += step.consumed;
            self.start = self.ready;
            let close = match step.event {
                Some(Event::OwnPong) => continue,
                Some(Event::Violation(v)) => {
                    self.active = true;
                    self.finish_reading();
                    return Some(PumpEvent::Violation(v));
                }
                Some(Event::Close(payload)) => Some(payload),
                None => None,
            };
            self.active = true;
            if self.discarding {
                if let Some(payload) = close {
                    self.finish_reading();
                    return Some(PumpEvent::Close(payload));
                }
                continue;
            }
            let result = hooked_piece(
                h,
                hook,
                self.from,
                self.mask_outgoing,
                bytes,
                &piece,
                close,
                &mut self.traffic,
            );
            self.mid_frame = matches!(h.current, Current::Chunked { passing: true, .. });
            match (result, close) {
                (Err(event), _) => {
                    self.finish_reading();
                    return Some(event);
                }
                (Ok(()), Some(payload)) => {
                    self.finish_reading();
                    return Some(PumpEvent::Close(payload));
                }
                (Ok(()), None) => {}
            }
        }
    }

    /// Stops reading and drops whatever followed the last forwarded byte.
    fn finish_reading(&mut self) {
        self.reading = false;
        self.end = self.ready;
    }

    fn compact(&mut self) {
        if let Some(buf) = self.buf.as_deref_mut() {
            buf.copy_within(self.ready..self.end, 0);
        }
        if let Some(until) = self.close_until.as_mut() {
            *until = until.saturating_sub(self.ready);
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
                if let Some(until) = self.close_until.as_mut() {
                    *until = 0;
                }
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

/// `payload` into `scratch`, unmasked (`offset` is its position in its frame's payload).
fn unmask_into(scratch: &mut Vec<u8>, payload: &[u8], mask: Option<[u8; 4]>, offset: u64) {
    scratch.clear();
    scratch.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(scratch, key, offset);
    }
}

/// The hook asked to close both sides; a code not valid on the wire becomes 1011.
fn hook_close(code: u16, reason: String, peer_close: Option<ClosePayload>) -> PumpEvent {
    let code = if is_valid_close_code(code) {
        code
    } else {
        wsrelay_codec::close::code::INTERNAL_ERROR
    };
    PumpEvent::HookClose {
        code,
        reason,
        peer_close,
    }
}

/// The hook returned something the frame under way cannot carry: both sides get 1011.
fn hook_misuse(reason: &str, peer_close: Option<ClosePayload>) -> PumpEvent {
    hook_close(
        wsrelay_codec::close::code::INTERNAL_ERROR,
        reason.to_owned(),
        peer_close,
    )
}

/// A header for a frame the relay encodes: masked with a fresh key towards the upstream.
fn out_header(h: &mut HookState, opcode: OpCode, fin: bool, rsv: u8, masked: bool) -> FrameHeader {
    FrameHeader {
        fin,
        rsv,
        opcode,
        mask: masked.then(|| h.keys.next()),
        payload_len: 0,
    }
}

/// Keeps the fragment sequence valid when the hook drops a data frame (whole, or on its first
/// chunk): a dropped first fragment drops its message, a dropped final fragment is replaced by
/// an empty one that ends the message.
fn drop_data_frame(h: &mut HookState, header: &FrameHeader, masked: bool, traffic: &mut Traffic) {
    match header.opcode {
        OpCode::Continuation if header.fin => {
            let empty = out_header(h, OpCode::Continuation, true, 0, masked);
            write_frame(&mut h.out, empty, &[]);
            traffic.frames += 1;
        }
        OpCode::Continuation => {}
        _ => h.dropping_message = !header.fin,
    }
}

/// Shows one piece (a control frame, a whole data frame, a chunk, or the end of an aggregated
/// message) to the hook and appends what it decides to the output.
// The error is the connection's last event (at most once per connection), so its size is moot.
#[allow(clippy::too_many_arguments, clippy::result_large_err)]
fn hooked_piece<H: FrameHook>(
    h: &mut HookState,
    hook: &mut H,
    from: Side,
    masked: bool,
    bytes: &[u8],
    piece: &Piece,
    close: Option<ClosePayload>,
    traffic: &mut Traffic,
) -> Result<(), PumpEvent> {
    let payload = &bytes[piece.payload.0..piece.payload.1];
    if let Some(header) = piece.header {
        if header.opcode.is_control() {
            unmask_into(&mut h.scratch, payload, piece.mask, 0);
            let mut frame = Frame {
                from,
                opcode: header.opcode,
                fin: true,
                rsv: header.rsv,
                chunk: None,
                payload: &mut h.scratch,
            };
            match hook.on_frame(&mut frame) {
                Verdict::Drop if close.is_none() => {}
                // A close cannot be dropped: the close handshake goes on.
                Verdict::Forward | Verdict::Drop => {
                    h.out.extend_from_slice(bytes);
                    traffic.frames += 1;
                }
                Verdict::Replace => {
                    let valid = h.scratch.len() <= 125
                        && (close.is_none() || CloseFrame::parse(&h.scratch).is_ok());
                    if !valid {
                        return Err(hook_misuse(
                            "frame hook made an invalid control frame",
                            close,
                        ));
                    }
                    let out = out_header(h, header.opcode, true, header.rsv, masked);
                    write_frame(&mut h.out, out, &h.scratch);
                    traffic.frames += 1;
                }
                Verdict::Close { code, reason } => return Err(hook_close(code, reason, close)),
            }
            if close.is_some() {
                h.out_close_until = Some(h.out.len());
            }
            return Ok(());
        }
        // A data frame starts.
        h.current = if h.dropping_message && header.opcode == OpCode::Continuation {
            Current::Skip { fin: header.fin }
        } else if h.aggregate {
            if header.opcode != OpCode::Continuation {
                h.message.clear();
                h.message_head = (header.opcode, header.rsv);
            }
            Current::Collect { fin: header.fin }
        } else if piece.complete {
            unmask_into(&mut h.scratch, payload, piece.mask, 0);
            let mut frame = Frame {
                from,
                opcode: header.opcode,
                fin: header.fin,
                rsv: header.rsv,
                chunk: None,
                payload: &mut h.scratch,
            };
            match hook.on_frame(&mut frame) {
                Verdict::Forward => {
                    h.out.extend_from_slice(bytes);
                    traffic.frames += 1;
                }
                Verdict::Replace => {
                    let out = out_header(h, header.opcode, header.fin, header.rsv, masked);
                    write_frame(&mut h.out, out, &h.scratch);
                    traffic.frames += 1;
                }
                Verdict::Drop => drop_data_frame(h, &header, masked, traffic),
                Verdict::Close { code, reason } => return Err(hook_close(code, reason, None)),
            }
            return Ok(());
        } else {
            let mut head = [0u8; MAX_HEADER_LEN];
            head[..piece.header_len].copy_from_slice(&bytes[..piece.header_len]);
            Current::Chunked {
                header,
                head,
                head_len: piece.header_len as u8,
                passing: false,
            }
        };
    }
    match h.current {
        Current::None => {}
        Current::Skip { fin } => {
            if piece.complete {
                h.current = Current::None;
                if fin {
                    h.dropping_message = false;
                }
            }
        }
        Current::Collect { fin } => {
            let at = h.message.len();
            h.message.extend_from_slice(payload);
            if let Some(key) = piece.mask {
                apply_mask(&mut h.message[at..], key, piece.offset);
            }
            if piece.complete {
                h.current = Current::None;
                if fin {
                    return deliver_message(h, hook, from, masked, traffic);
                }
            }
        }
        Current::Chunked {
            header,
            head,
            head_len,
            passing,
        } => {
            if payload.is_empty() && !piece.complete {
                return Ok(()); // only the header so far
            }
            unmask_into(&mut h.scratch, payload, piece.mask, piece.offset);
            let mut frame = Frame {
                from,
                opcode: header.opcode,
                fin: header.fin,
                rsv: header.rsv,
                chunk: Some(Chunk {
                    offset: piece.offset,
                    frame_len: header.payload_len,
                }),
                payload: &mut h.scratch,
            };
            let verdict = hook.on_frame(&mut frame);
            match verdict {
                Verdict::Forward | Verdict::Replace => {
                    let replace = verdict == Verdict::Replace;
                    if replace && h.scratch.len() != payload.len() {
                        return Err(hook_misuse(
                            "frame hook changed the length of a chunk",
                            None,
                        ));
                    }
                    if !passing {
                        h.out.extend_from_slice(&head[..usize::from(head_len)]);
                        traffic.frames += 1;
                        h.current = Current::Chunked {
                            header,
                            head,
                            head_len,
                            passing: true,
                        };
                    }
                    if replace {
                        // Same length, same header: masked again with the frame's own key.
                        let at = h.out.len();
                        h.out.extend_from_slice(&h.scratch);
                        if let Some(key) = piece.mask {
                            apply_mask(&mut h.out[at..], key, piece.offset);
                        }
                    } else {
                        h.out.extend_from_slice(payload);
                    }
                }
                Verdict::Drop if !passing => {
                    h.current = Current::Skip { fin: header.fin };
                    drop_data_frame(h, &header, masked, traffic);
                }
                Verdict::Drop => {
                    return Err(hook_misuse(
                        "frame hook dropped a frame already under way",
                        None,
                    ))
                }
                Verdict::Close { code, reason } => return Err(hook_close(code, reason, None)),
            }
            if piece.complete {
                if let Current::Skip { fin: true } = h.current {
                    h.dropping_message = false;
                }
                h.current = Current::None;
            }
        }
    }
    Ok(())
}

/// Shows a complete aggregated message to the hook; it leaves as one frame.
#[allow(clippy::result_large_err)]
fn deliver_message<H: FrameHook>(
    h: &mut HookState,
    hook: &mut H,
    from: Side,
    masked: bool,
    traffic: &mut Traffic,
) -> Result<(), PumpEvent> {
    let (opcode, rsv) = h.message_head;
    let mut frame = Frame {
        from,
        opcode,
        fin: true,
        rsv,
        chunk: None,
        payload: &mut h.message,
    };
    let result = match hook.on_frame(&mut frame) {
        Verdict::Forward | Verdict::Replace => {
            let out = out_header(h, opcode, true, rsv, masked);
            write_frame(&mut h.out, out, &h.message);
            traffic.frames += 1;
            Ok(())
        }
        Verdict::Drop => Ok(()),
        Verdict::Close { code, reason } => Err(hook_close(code, reason, None)),
    };
    h.message.clear();
    // A large message's memory is not kept for the rest of the connection.
    h.message.shrink_to(64 * 1024);
    result
}

/// A fresh masking key for frames the relay sends to the upstream (RFC 6455 §5.3: unpredictable).
fn random_key() -> [u8; 4] {
    let mut key = [0u8; 4];
    if getrandom::fill(&mut key).is_err() {
        // The OS source failing is not expected; fall back to a time-derived key rather than none.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        key = nanos.to_le_bytes();
    }
    key
}
