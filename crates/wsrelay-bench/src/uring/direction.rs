//! One direction of a relayed connection under io_uring: a bounded buffer the receives land in
//! (directly, or copied from a provided buffer), the project's [`Forwarder`] checking them as
//! the tokio pump's pass-through path does, and the bookkeeping of which bytes are checked and
//! wait to be sent.

use wsrelay::relay::forwarder::Event;
use wsrelay::relay::Forwarder;

/// What checking newly received bytes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Frames (or parts of one) are ready to send; keep reading.
    Forward,
    /// A valid close frame ends the checked bytes: send them, then stop reading this side.
    Close,
    /// The peer broke a rule (or no masking key could be drawn): end the connection.
    Fail,
}

/// One direction: `buf[start..ready]` is checked and waits to be sent, `buf[ready..end]` is an
/// unconsumed partial header or control frame, `buf[end..]` is room for the next receive.
pub(crate) struct Direction {
    forwarder: Forwarder,
    buf: Box<[u8]>,
    pub(crate) start: usize,
    pub(crate) ready: usize,
    pub(crate) end: usize,
    /// A receive into `buf[end..]` is in flight (single-shot mode) or a multishot receive is armed.
    pub(crate) recv_in_flight: bool,
    /// A send of `buf[start..ready]` is in flight.
    pub(crate) send_in_flight: bool,
    /// The source is still read (no close, EOF or error yet).
    pub(crate) reading: bool,
    /// The source's close frame was checked: once `start == ready`, it was forwarded.
    pub(crate) close_seen: bool,
    /// Receives land in `buf` itself (single-shot mode), so it is not moved while one is in
    /// flight; multishot receives land in provided buffers and are copied in.
    recv_into_buf: bool,
}

impl Direction {
    /// A direction checking frames with `forwarder`, buffering at most `capacity` bytes,
    /// seeded with `early` bytes that arrived behind the handshake (at most `capacity`).
    pub(crate) fn new(
        forwarder: Forwarder,
        capacity: usize,
        early: &[u8],
        recv_into_buf: bool,
    ) -> Direction {
        let capacity = capacity.max(early.len());
        let mut buf = vec![0u8; capacity].into_boxed_slice();
        buf[..early.len()].copy_from_slice(early);
        Direction {
            forwarder,
            buf,
            start: 0,
            ready: 0,
            end: early.len(),
            recv_in_flight: false,
            send_in_flight: false,
            reading: true,
            close_seen: false,
            recv_into_buf,
        }
    }

    /// The buffer's size.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The room for the next receive, as a pointer and length for an SQE. The buffer is boxed
    /// and lives as long as the connection, which outlives every operation on it.
    pub(crate) fn room(&mut self) -> (*mut u8, u32) {
        let room = &mut self.buf[self.end..];
        (
            room.as_mut_ptr(),
            u32::try_from(room.len()).unwrap_or(u32::MAX),
        )
    }

    /// The checked bytes waiting to be sent, as a pointer and length for an SQE.
    pub(crate) fn checked(&self) -> (*const u8, u32) {
        let checked = &self.buf[self.start..self.ready];
        (
            checked.as_ptr(),
            u32::try_from(checked.len()).unwrap_or(u32::MAX),
        )
    }

    /// Moves the unconsumed bytes to the front when everything checked was sent and nothing
    /// is in flight on the buffer; only when that frees useful room (or costs no copy).
    pub(crate) fn compact(&mut self) {
        let receiving_here = self.recv_in_flight && self.recv_into_buf;
        if self.send_in_flight || receiving_here || self.start != self.ready || self.ready == 0 {
            return;
        }
        let pending = self.end - self.ready;
        if pending > 0 && self.buf.len() - self.end >= self.buf.len() / 2 {
            return;
        }
        self.buf.copy_within(self.ready..self.end, 0);
        self.start = 0;
        self.ready = 0;
        self.end = pending;
    }

    /// Appends received bytes copied from a provided buffer; returns how many fit.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.buf.len() - self.end);
        self.buf[self.end..self.end + n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }

    /// Counts `n` received bytes that landed in `buf[end..]`.
    pub(crate) fn received(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Runs the forwarder over the unconsumed bytes, as the tokio pump's pass-through path
    /// (`process_plain`) does: checked bytes stay in place (re-masked if needed) and wait to be
    /// sent; a partial header stays for the next receive.
    pub(crate) fn check(&mut self) -> Checked {
        let (ready, end) = (self.ready, self.end);
        let step = self.forwarder.process_mut(&mut self.buf[ready..end]);
        self.ready += step.forward;
        match step.event {
            None => Checked::Forward,
            Some(Event::Close(_)) => {
                // Nothing after the close is forwarded (RFC 6455 §5.5.1).
                self.end = self.ready;
                self.reading = false;
                self.close_seen = true;
                Checked::Close
            }
            // No keep-alive pings are sent, so no pong is ever absorbed: a pong that is one is a
            // protocol matter of the pump, out of this prototype's scope.
            Some(Event::OwnPong) | Some(Event::Violation(_)) | Some(Event::RandomFailed(_)) => {
                self.reading = false;
                Checked::Fail
            }
        }
    }

    /// Counts `n` sent bytes; true once a checked close went out in full.
    pub(crate) fn sent(&mut self, n: usize) -> bool {
        self.start = (self.start + n).min(self.ready);
        self.close_seen && self.start == self.ready
    }
}
