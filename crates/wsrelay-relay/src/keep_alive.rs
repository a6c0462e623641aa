//! Keep-alive pings ([`RelayOptions::keep_alive`](crate::RelayOptions::keep_alive)): when each
//! side was last heard from and last pinged, and the unguessable token its pongs must carry.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Sleep};
use wsrelay_codec::random::{self, RandomError};

use crate::pump::Pump;
use crate::side::{PerSide, SIDES};

/// Keep-alive state of one relayed connection; the pumps are indexed by the side they read.
pub(crate) struct KeepAlive {
    interval: Duration,
    timer: Pin<Box<Sleep>>,
    last_heard: PerSide<Instant>,
    last_ping: PerSide<Instant>,
    /// The payload of the pings sent to each side.
    token: PerSide<[u8; 8]>,
}

impl KeepAlive {
    /// Pings every `interval` from `now` on; each pump is armed to absorb the pongs that answer
    /// the relay's pings. An error when no tokens can be drawn: then there are no pings at all,
    /// since a constant token would let a peer forge the answers.
    pub(crate) fn start(
        interval: Duration,
        now: Instant,
        pumps: &mut PerSide<Pump>,
    ) -> Result<KeepAlive, RandomError> {
        let token = PerSide::new(random_token()?, random_token()?);
        for side in SIDES {
            // Pongs from a side answer the pings sent to it.
            pumps[side].forwarder_mut().absorb_pongs(token[side]);
        }
        Ok(KeepAlive {
            interval,
            timer: Box::pin(sleep_until(now + interval)),
            last_heard: PerSide::both(now),
            last_ping: PerSide::both(now),
            token,
        })
    }

    /// Notes which sides were heard from since the last call.
    pub(crate) fn note_heard(&mut self, pumps: &mut PerSide<Pump>) {
        let now = Instant::now();
        for side in SIDES {
            if std::mem::take(&mut pumps[side].heard) {
                self.last_heard[side] = now;
            }
        }
    }

    /// Queues a ping for each side that has been quiet for the interval (and was not pinged
    /// within it) and re-arms the timer; `Ok(true)` if one was queued. An error when no
    /// masking key could be drawn for a ping to the upstream.
    pub(crate) fn poll_ping(
        &mut self,
        cx: &mut Context<'_>,
        pumps: &mut PerSide<Pump>,
    ) -> Result<bool, RandomError> {
        let mut fired = false;
        loop {
            let now = Instant::now();
            let mut next = now + self.interval;
            for side in SIDES {
                let mut due = self.last_heard[side].max(self.last_ping[side]) + self.interval;
                if due <= now {
                    // The pump writing to `side` is the one reading the other side.
                    pumps[side.other()].inject_ping(self.token[side])?;
                    self.last_ping[side] = now;
                    due = now + self.interval;
                    fired = true;
                }
                next = next.min(due);
            }
            self.timer.as_mut().reset(next);
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(fired);
            }
        }
    }
}

/// An 8-byte ping payload that no peer can guess, so only the answer to our ping matches it.
/// A failing random source is an error, never a constant token.
fn random_token() -> Result<[u8; 8], RandomError> {
    let mut token = [0u8; 8];
    random::fill(&mut token)?;
    Ok(token)
}
