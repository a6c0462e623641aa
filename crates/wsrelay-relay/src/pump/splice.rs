//! The pump's splice path (Linux): the rest of a large payload goes source socket → pipe →
//! destination socket with `splice(2)`, driven by tokio's readiness (see [`crate::splice`]).

use std::io;
use std::task::{Context, Poll};

use rustix::pipe::{splice as splice_fds, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;
use wsrelay_codec::MAX_HEADER_LEN;

use super::{Destination, Pump, PumpEvent, Source};
use crate::pipes::{self, Pipe};

/// Rounds of one [`Pump::poll_splice`] before it yields to other tasks: each round moves up to
/// a pipe's worth of bytes, so a fast pair of sockets cannot hold the worker forever.
const MAX_ROUNDS: usize = 32;

/// Splicing state of one direction, boxed in the pump only when splicing is on.
pub(crate) struct Splice {
    /// Payload bytes that must be left for a splice to start (0: any).
    threshold: u64,
    /// Pipe capacity asked for.
    pipe_size: usize,
    /// The pipe, held only while a spliced payload is in flight.
    pipe: Option<Pipe>,
    /// Bytes in the pipe: consumed from the source, not yet written to the destination.
    in_pipe: usize,
    /// The last attempt stopped on a socket that would block (the task is registered for it):
    /// the buffered path does not take over the payload meanwhile.
    parked: bool,
    /// A payload was spliced and no small frame followed yet: frame headers are read alone.
    bulk: bool,
    /// The frame under way is being spliced: its rest is, even below the threshold (the
    /// threshold decides whether a frame's splicing starts, not where it stops).
    in_frame: bool,
}

impl Splice {
    fn new(threshold: u64, pipe_size: usize) -> Splice {
        Splice {
            threshold,
            pipe_size,
            pipe: None,
            in_pipe: 0,
            parked: false,
            bulk: false,
            in_frame: false,
        }
    }

    /// True while the pipe holds bytes the destination has not taken.
    pub(super) fn holds_bytes(&self) -> bool {
        self.in_pipe > 0
    }

    /// Gives an empty pipe back to the pool, so a quiet connection holds none.
    fn release_pipe(&mut self) {
        if self.in_pipe == 0 {
            if let Some(pipe) = self.pipe.take() {
                pipes::give(pipe);
            }
        }
    }

    /// Closes the pipe with whatever it holds (the destination is gone).
    pub(super) fn discard_pipe(&mut self) {
        self.pipe = None;
        self.in_pipe = 0;
    }
}

impl Drop for Splice {
    fn drop(&mut self) {
        self.release_pipe();
    }
}

/// What a splice step asked of a socket: it moved bytes, the socket would block, or it failed.
fn splice_step(
    socket: &TcpStream,
    interest: Interest,
    op: impl FnOnce() -> rustix::io::Result<usize>,
) -> io::Result<usize> {
    socket.try_io(interest, || op().map_err(io::Error::from))
}

impl Pump {
    /// Splices this direction's large payloads from now on (see [`crate::splice`]).
    pub(crate) fn enable_splice(&mut self, threshold: u64, pipe_size: usize) {
        self.splice = Some(Box::new(Splice::new(threshold, pipe_size)));
    }

    /// How many payload bytes may be spliced now, or 0 (see [`crate::splice`] for when).
    fn spliceable(&self, splice: &Splice) -> u64 {
        let plain = self.hooked.is_none() && self.rate.is_none();
        let quiet = self.source == Source::Reading && self.start == self.end;
        let open = matches!(
            self.destination,
            Destination::Open | Destination::Deferred(_) | Destination::Injecting(_)
        );
        if !(plain && quiet && open) {
            return 0;
        }
        let unseen = self.forwarder.unseen_payload();
        if unseen == 0 || (unseen < splice.threshold && !splice.in_frame) {
            return 0;
        }
        unseen
    }

    /// At the read point of [`poll_io`](Pump::poll_io): `Some(true)` if the payload under way
    /// is to be spliced and the splice path has not stopped on a socket since it was last
    /// called (the relay then calls [`poll_splice`](Pump::poll_splice)), `Some(false)` if it
    /// is to be spliced but waits for a socket, `None` if the buffer takes it.
    pub(super) fn splice_turn(&self) -> Option<bool> {
        let splice = self.splice.as_deref()?;
        (self.spliceable(splice) > 0).then_some(!splice.parked)
    }

    /// How much the next read into the buffer may take: once a payload was spliced, a frame
    /// header at a frame boundary is read alone, so a large frame's payload is left to splice.
    pub(super) fn read_cap(&self) -> usize {
        match self.splice.as_deref() {
            Some(s) if s.bulk && self.end == 0 && self.forwarder.at_frame_boundary() => {
                self.end + MAX_HEADER_LEN
            }
            _ => self.capacity,
        }
    }

    /// After bytes read with [`read_cap`](Pump::read_cap) were checked: anything but the
    /// header of another large payload (or a header still incomplete) ends the reading of
    /// headers alone.
    pub(super) fn note_capped_read(&mut self) {
        let boundary = self.forwarder.at_frame_boundary();
        let unseen = self.forwarder.unseen_payload();
        let nothing_taken = boundary && self.ready == 0;
        if let Some(s) = self.splice.as_deref_mut() {
            let large = !boundary && unseen > 0 && unseen >= s.threshold;
            if !large && !nothing_taken {
                s.bulk = false;
            }
        }
    }

    /// Moves spliced bytes: drains the pipe into the destination, then, while the payload
    /// under way may be spliced, splices more of it from the source into the pipe. Pending
    /// when a socket would block (the task is registered for it), when there is nothing to
    /// splice, or after a bounded number of rounds (the task is woken to go on); ready with an
    /// event the relay must handle.
    pub(crate) fn poll_splice(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
    ) -> Poll<PumpEvent> {
        let Some(mut splice) = self.splice.take() else {
            return Poll::Pending;
        };
        splice.parked = false;
        let polled = self.splice_rounds(&mut splice, cx, src, dst);
        // An empty pipe goes back at once: a connection waiting for its sender holds none.
        splice.release_pipe();
        self.splice = Some(splice);
        polled
    }

    fn splice_rounds(
        &mut self,
        splice: &mut Splice,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
    ) -> Poll<PumpEvent> {
        for _ in 0..MAX_ROUNDS {
            if splice.in_pipe > 0 {
                if self.destination_abandoned() {
                    splice.discard_pipe();
                    continue;
                }
                match dst.poll_write_ready(cx) {
                    Poll::Pending => {
                        splice.parked = true;
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return self.splice_destination_failed(splice, e),
                    Poll::Ready(Ok(())) => {}
                }
                let Some(pipe) = splice.pipe.as_ref() else {
                    splice.in_pipe = 0;
                    continue;
                };
                let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
                let moved = splice_step(dst, Interest::WRITABLE, || {
                    splice_fds(&pipe.read, None, dst, None, splice.in_pipe, flags)
                });
                match moved {
                    Ok(0) => {
                        let e = io::Error::from(io::ErrorKind::WriteZero);
                        return self.splice_destination_failed(splice, e);
                    }
                    Ok(n) => {
                        splice.in_pipe -= n.min(splice.in_pipe);
                        self.wrote(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return self.splice_destination_failed(splice, e),
                }
                continue;
            }
            let unseen = self.spliceable(splice);
            if unseen == 0 {
                return Poll::Pending;
            }
            match src.poll_read_ready(cx) {
                Poll::Pending => {
                    splice.parked = true;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return self.splice_source_ended(Some(e.kind())),
                Poll::Ready(Ok(())) => {}
            }
            if splice.pipe.is_none() {
                match pipes::take(splice.pipe_size) {
                    Ok(pipe) => splice.pipe = Some(pipe),
                    Err(_) => {
                        // No pipe to be had (out of descriptors): this direction copies.
                        splice.threshold = u64::MAX;
                        return Poll::Pending;
                    }
                }
            }
            let Some(pipe) = splice.pipe.as_ref() else {
                return Poll::Pending;
            };
            // The pipe is empty, so a would-block can only be the socket's: tokio clears the
            // socket's readiness then, as it must.
            let want = usize::try_from(unseen)
                .unwrap_or(usize::MAX)
                .min(pipe.capacity);
            let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
            match splice_step(src, Interest::READABLE, || {
                splice_fds(src, None, &pipe.write, None, want, flags)
            }) {
                Ok(0) => return self.splice_source_ended(None),
                Ok(n) => {
                    #[cfg(test)]
                    tests::SPLICED.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    let step = self.forwarder.skip_payload(n);
                    splice.in_pipe = n;
                    splice.bulk = true;
                    splice.in_frame = step.mid_frame;
                    self.heard = true;
                    self.active = true;
                    self.mid_frame = step.mid_frame;
                    self.traffic.messages += step.messages;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return self.splice_source_ended(Some(e.kind())),
            }
        }
        // More to move: go on after other tasks had their turn (parked until then, so the
        // relay does not call straight back).
        splice.parked = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The source ended or failed in a spliced payload: what is in the pipe still goes out.
    fn splice_source_ended(&mut self, error: Option<io::ErrorKind>) -> Poll<PumpEvent> {
        self.source = Source::Stopped;
        Poll::Ready(PumpEvent::SourceEnded(error))
    }

    /// Writing to the destination failed: it is abandoned, and the pipe closed with its bytes.
    fn splice_destination_failed(&mut self, splice: &mut Splice, e: io::Error) -> Poll<PumpEvent> {
        splice.discard_pipe();
        self.abandon_destination();
        Poll::Ready(PumpEvent::DestinationFailed(e.kind()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use wsrelay_codec::{write_frame, FrameHeader, OpCode};

    use crate::{Relay, RelayOptions};

    /// Payload bytes spliced into pipes by this test binary (counted in tests only).
    pub(crate) static SPLICED: AtomicU64 = AtomicU64::new(0);

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    /// The payload of a large binary frame really goes through the pipe (all of it not read
    /// with the header at threshold 0), and arrives intact.
    #[tokio::test]
    async fn large_payloads_are_spliced() {
        let (mut client, relay_client) = pair().await;
        let (relay_upstream, mut upstream) = pair().await;
        let options = RelayOptions {
            splice_threshold: Some(0),
            ..RelayOptions::default()
        };
        let relay = tokio::spawn(async move {
            Relay::new(relay_client, relay_upstream, &options)
                .with_splice()
                .run()
                .await
        });
        let payload: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        let header = FrameHeader {
            mask: Some([9, 8, 7, 6]),
            ..FrameHeader::new(OpCode::Binary, 0)
        };
        write_frame(&mut wire, header, &payload);
        let before = SPLICED.load(Ordering::Relaxed);
        let sent = wire.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client
        });
        let mut got = vec![0u8; wire.len()];
        upstream.read_exact(&mut got).await.unwrap();
        assert!(got == wire, "the frame differs");
        let spliced = SPLICED.load(Ordering::Relaxed) - before;
        assert!(
            spliced >= (1 << 20) - 65_536,
            "only {spliced} bytes spliced"
        );
        drop((writer.await.unwrap(), upstream));
        relay.await.unwrap();
    }
}
