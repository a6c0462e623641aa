//! One direction of a relay: read from a source, check with a [`Forwarder`], write to a destination.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wsrelay_codec::{apply_mask, CloseFrame, FrameHeader, OpCode, MAX_HEADER_LEN};

use crate::forwarder::{ClosePayload, Event, Forwarder};
use crate::{pool, CloseInfo, Traffic, Violation};

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
}

/// A close frame the relay itself sends to the destination, held inline.
struct Outbox {
    bytes: [u8; MAX_HEADER_LEN + 125],
    len: usize,
    written: usize,
}

pub(crate) struct Pump {
    forwarder: Forwarder,
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
    /// Set whenever bytes pass; the relay clears it to track idleness.
    pub(crate) active: bool,
}

impl Pump {
    pub(crate) fn new(forwarder: Forwarder, capacity: usize, mask_outgoing: bool) -> Pump {
        Pump {
            forwarder,
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
        }
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
        self.deferred = self.process();
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
        (self.start == self.ready || self.dst_abandoned) && self.outbox.is_none() && !self.unflushed
    }

    /// Stops reading the source (it vanished, or the relay is finishing).
    pub(crate) fn stop_reading(&mut self) {
        self.reading = false;
    }

    /// Queues a close frame for the destination, sent at the next frame boundary; after it,
    /// nothing more is forwarded. Does nothing if the destination was already told or is gone.
    pub(crate) fn inject_close(&mut self, code: u16, reason: &str) {
        if self.dst_told
            || self.dst_abandoned
            || self.outbox.is_some()
            || self.close_until.is_some()
        {
            return;
        }
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

    /// Whether nothing more will ever be written to the destination.
    pub(crate) fn destination_abandoned(&self) -> bool {
        self.dst_abandoned
    }

    /// Gives up on the destination: nothing more is written to it (its peer is gone).
    pub(crate) fn abandon_destination(&mut self) {
        self.dst_abandoned = true;
        self.discarding = true;
        self.outbox = None;
        self.start = self.ready;
        self.unflushed = false;
    }

    /// Moves data: writes what is checked, reads more when there is room, until both would block
    /// or something happens that the relay must handle.
    pub(crate) fn poll_io<S, D>(
        &mut self,
        cx: &mut Context<'_>,
        mut src: Pin<&mut S>,
        mut dst: Pin<&mut D>,
    ) -> Poll<PumpEvent>
    where
        S: AsyncRead + ?Sized,
        D: AsyncWrite + ?Sized,
    {
        if let Some(event) = self.deferred.take() {
            return Poll::Ready(event);
        }
        loop {
            let mut blocked_writing = false;
            match self.poll_write_side(cx, dst.as_mut()) {
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
                // Bytes held back while a queued close waited are checked now, in discard mode.
                if let Some(event) = self.process() {
                    return Poll::Ready(event);
                }
            }
            if self.end == self.capacity {
                // Full: the destination's pace now sets the source's (back-pressure).
                debug_assert!(blocked_writing);
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
                    self.active = true;
                    if let Some(event) = self.process() {
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
    fn poll_write_side<D: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut dst: Pin<&mut D>,
    ) -> Poll<io::Result<bool>> {
        if self.dst_abandoned {
            return Poll::Ready(Ok(false));
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
        if self.unflushed {
            ready!(dst.as_mut().poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(false))
    }

    /// With a close queued, only the rest of the frame under way may still be forwarded.
    fn must_wait_for_outbox(&self) -> bool {
        self.outbox.is_some() && !self.mid_frame
    }

    /// Runs the forwarder over newly read bytes; returns an event that stops reading.
    fn process(&mut self) -> Option<PumpEvent> {
        let buf = self.buf.as_deref()?;
        let mut input = &buf[self.ready..self.end];
        if self.outbox.is_some() {
            // Finish the frame under way, then the queued close goes out and forwarding stops.
            let rest = self.forwarder.payload_remaining();
            input = &input[..input.len().min(usize::try_from(rest).unwrap_or(usize::MAX))];
        }
        let step = self.forwarder.process(input);
        self.mid_frame = step.mid_frame;
        if self.discarding {
            self.ready += step.consumed;
            self.start = self.ready;
        } else {
            self.ready += step.forward;
            self.traffic.frames += step.frames;
        }
        match step.event? {
            Event::Close(payload) => {
                if !self.discarding {
                    self.close_until = Some(self.ready);
                }
                self.finish_reading();
                Some(PumpEvent::Close(payload))
            }
            Event::Violation(v) => {
                self.finish_reading();
                Some(PumpEvent::Violation(v))
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
