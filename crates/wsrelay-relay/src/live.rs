//! A running relay's traffic, readable from another thread while it runs (for metrics).
//!
//! The relay keeps counting in its own plain fields, as it always did; a relay given a
//! [`LiveTraffic`] copies them into it once per wake-up, not per frame, with relaxed stores
//! to memory that belongs to this one connection. A reader (a metrics scrape) loads them
//! whenever it likes: nothing is shared between connections, and the frame path is unchanged.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Side, Traffic};

/// The counters of one direction, as last published.
#[derive(Debug, Default)]
struct Direction {
    frames: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    header_bytes: AtomicU64,
    remasked: AtomicU64,
}

impl Direction {
    fn store(&self, t: &Traffic) {
        self.frames.store(t.frames, Ordering::Relaxed);
        self.messages.store(t.messages, Ordering::Relaxed);
        self.bytes.store(t.bytes, Ordering::Relaxed);
        self.header_bytes.store(t.header_bytes, Ordering::Relaxed);
        self.remasked.store(t.remasked, Ordering::Relaxed);
    }

    fn load(&self) -> Traffic {
        Traffic {
            frames: self.frames.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            header_bytes: self.header_bytes.load(Ordering::Relaxed),
            remasked: self.remasked.load(Ordering::Relaxed),
        }
    }
}

/// The traffic of a running relay so far, both ways; see [`Relay::with_live_traffic`].
///
/// Each value only grows, and the final [`RelayOutcome`](crate::RelayOutcome) has at least
/// what was last published, so a reader that adds the outcome once the relay ended (in place
/// of the live values) never sees a counter go down.
///
/// ```
/// use wsrelay_relay::{LiveTraffic, Side};
/// let live = LiveTraffic::default();
/// assert_eq!(live.from(Side::Client).frames, 0);
/// ```
///
/// [`Relay::with_live_traffic`]: crate::Relay::with_live_traffic
#[derive(Debug, Default)]
pub struct LiveTraffic {
    client_to_upstream: Direction,
    upstream_to_client: Direction,
}

impl LiveTraffic {
    /// What `side` sent that was forwarded to the other, as last published.
    pub fn from(&self, side: Side) -> Traffic {
        match side {
            Side::Client => self.client_to_upstream.load(),
            Side::Upstream => self.upstream_to_client.load(),
        }
    }

    /// Publishes both directions' counts (called by the relay once per wake-up).
    pub(crate) fn publish(&self, client_to_upstream: &Traffic, upstream_to_client: &Traffic) {
        self.client_to_upstream.store(client_to_upstream);
        self.upstream_to_client.store(upstream_to_client);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
    use wsrelay_codec::{write_frame, FrameHeader, OpCode};

    use super::*;
    use crate::{Relay, RelayOptions};

    /// A fragmented message, a ping and a one-frame message: three frames, two messages, the
    /// payload bytes are the wire bytes less the headers; the live counters show them while
    /// the relay still runs, and the outcome agrees.
    #[tokio::test]
    async fn live_counters_show_frames_messages_and_payload_while_running() {
        let (mut client, client_side) = duplex(4096);
        let (mut upstream, upstream_side) = duplex(4096);
        let live = Arc::new(LiveTraffic::default());
        let relay = tokio::spawn(
            Relay::new(client_side, upstream_side, &RelayOptions::default())
                .with_live_traffic(Arc::clone(&live))
                .run(),
        );
        let masked = |opcode, fin| FrameHeader {
            fin,
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::new(opcode, 0)
        };
        let mut wire = Vec::new();
        write_frame(&mut wire, masked(OpCode::Binary, false), b"abc");
        write_frame(&mut wire, masked(OpCode::Ping, true), b"p");
        write_frame(&mut wire, masked(OpCode::Continuation, true), b"de");
        write_frame(&mut wire, masked(OpCode::Binary, true), b"fghi");
        client.write_all(&wire).await.unwrap();
        let mut got = vec![0u8; wire.len()];
        upstream.read_exact(&mut got).await.unwrap();
        let now = live.from(Side::Client);
        assert_eq!((now.frames, now.messages), (4, 2));
        assert_eq!((now.bytes, now.payload_bytes()), (wire.len() as u64, 10));
        drop((client, upstream));
        let outcome = relay.await.unwrap();
        assert_eq!(outcome.client_to_upstream.messages, 2);
        assert_eq!(outcome.client_to_upstream.payload_bytes(), 10);
    }
}
