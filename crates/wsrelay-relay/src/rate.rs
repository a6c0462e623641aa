//! Rate limits of one direction of a tunnel: messages and bytes per second, each a token
//! bucket with a burst, and what happens to a sender over its budget.
//!
//! The relay checks the budget before it lets the forwarder see bytes it has read: with
//! [`RateAction::Throttle`] it stops at the budget's edge and reads the sender no further until
//! the buckets have refilled (back-pressure through TCP: nothing is buffered beyond the relay's
//! own buffer, nothing is dropped); with [`RateAction::Close`] the sender gets close 1008.
//! Messages are counted at their first frame; control frames count as bytes only.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Sleep};
use wsrelay_codec::{FrameHeader, OpCode, Parse, ParseConfig};

/// A rate and the burst above it: `per_second` tokens flow in, at most `burst` are saved up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Tokens (messages or bytes) added each second; at least 1.
    pub per_second: u64,
    /// Most tokens saved up while the sender is quiet (what it may send at once); at least 1.
    pub burst: u64,
}

/// What the relay does with a sender over its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateAction {
    /// Stop reading the sender until it is within its budget again (the default): the sender's
    /// own TCP window fills and it slows down; nothing is lost.
    #[default]
    Throttle,
    /// Close the sender with 1008 (policy violation) and a reason; the other side gets the
    /// close a violation gives it (1001 towards the upstream, 1014 towards the client).
    Close,
}

/// The rate limit of one direction: either budget may be absent (no limit on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    /// Messages per second (counted at a message's first frame); `None` for no limit.
    pub messages: Option<Budget>,
    /// Bytes per second on the wire (headers included); `None` for no limit.
    pub bytes: Option<Budget>,
    /// What a sender over its budget gets.
    pub action: RateAction,
}

/// One token bucket.
#[derive(Debug)]
struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
}

impl Bucket {
    fn new(budget: Budget) -> Bucket {
        let burst = budget.burst.max(1) as f64;
        Bucket {
            per_second: budget.per_second.max(1) as f64,
            burst,
            tokens: burst,
        }
    }

    fn refill(&mut self, seconds: f64) {
        self.tokens = (self.tokens + self.per_second * seconds).min(self.burst);
    }

    /// Time until at least one whole token is there.
    fn wait(&self) -> Duration {
        let missing = 1.0 - self.tokens;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.per_second)
        }
    }
}

/// How much of a pump's unconsumed input the budget lets through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// Bytes at the front of the input that may be checked and forwarded.
    pub(crate) len: usize,
    /// The budget, not the input, ended the admitted bytes.
    pub(crate) over: bool,
}

/// The running state of one direction's rate limit: the buckets, what was already paid for,
/// and the timer a throttled sender waits on.
pub(crate) struct Throttle {
    action: RateAction,
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
    refilled: Instant,
    /// How the sender's headers are read (only their opcode and length matter here).
    parse: ParseConfig,
    /// Bytes after the pump's read cursor already admitted and paid for.
    paid: usize,
    /// The rest of a frame whose whole length was paid at its header (close action).
    prepaid_payload: u64,
    /// The last scan stopped at the budget: wait (throttle) or fail (close) before the next.
    starved: bool,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Throttle {
    /// The state of `limit` for frames read with `parse`; `None` when it limits nothing.
    pub(crate) fn new(limit: &RateLimit, parse: ParseConfig) -> Option<Throttle> {
        if limit.messages.is_none() && limit.bytes.is_none() {
            return None;
        }
        Some(Throttle {
            action: limit.action,
            messages: limit.messages.map(Bucket::new),
            bytes: limit.bytes.map(Bucket::new),
            refilled: Instant::now(),
            parse,
            paid: 0,
            prepaid_payload: 0,
            starved: false,
            timer: None,
        })
    }

    /// The action for a sender over its budget.
    pub(crate) fn action(&self) -> RateAction {
        self.action
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let seconds = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        for bucket in [self.messages.as_mut(), self.bytes.as_mut()]
            .into_iter()
            .flatten()
        {
            bucket.refill(seconds);
        }
    }

    /// How much of `input` (the pump's unconsumed bytes) may pass now. `in_payload` is what is
    /// left of the frame under way (0 at a frame boundary). Walks frame headers only, never
    /// payload bytes; stops before a partial header (the forwarder would keep it anyway) and
    /// never inside a control frame (the forwarder takes those whole).
    pub(crate) fn admit(&mut self, input: &[u8], in_payload: u64) -> Admitted {
        if self.paid > 0 {
            return Admitted {
                len: self.paid.min(input.len()),
                over: false,
            };
        }
        self.refill();
        let close = self.action == RateAction::Close;
        let mut byte_tokens = self.bytes.as_ref().map_or(f64::INFINITY, |b| b.tokens);
        let mut message_tokens = self.messages.as_ref().map_or(f64::INFINITY, |b| b.tokens);
        let mut pos = 0usize;
        let mut over = false;
        let rest = usize::try_from(in_payload)
            .unwrap_or(usize::MAX)
            .min(input.len());
        if rest > 0 {
            if close {
                // Paid with its header.
                let prepaid = usize::try_from(self.prepaid_payload).unwrap_or(usize::MAX);
                let free = rest.min(prepaid);
                self.prepaid_payload -= free as u64;
                pos = free;
            }
            let due = rest - pos;
            if due > 0 {
                let can = (byte_tokens.max(0.0).floor() as usize).min(due);
                byte_tokens -= can as f64;
                pos += can;
                over = can < due;
            }
        }
        while !over && pos < input.len() {
            let (header, header_len) = match FrameHeader::parse(&input[pos..], self.parse) {
                Ok(Parse::Complete(header, len)) => (header, len),
                Ok(Parse::Incomplete(_)) => break,
                // The forwarder reports the broken rule: let it see the header.
                Err(_) => {
                    pos = input.len();
                    break;
                }
            };
            let available = input.len() - pos - header_len;
            let payload = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
            let message = matches!(header.opcode, OpCode::Text | OpCode::Binary);
            if message && message_tokens < 1.0 {
                over = true;
                break;
            }
            let frame_len = header.payload_len.saturating_add(header_len as u64);
            if header.opcode.is_control() {
                if available < payload {
                    // The forwarder takes a control frame whole: wait for all of it.
                    break;
                }
                if byte_tokens < 1.0 || (close && frame_len as f64 > byte_tokens) {
                    over = true;
                    break;
                }
                byte_tokens -= frame_len as f64;
                pos += header_len + payload;
                continue;
            }
            if close {
                if frame_len as f64 > byte_tokens {
                    over = true;
                    break;
                }
                byte_tokens -= frame_len as f64;
                let now = available.min(payload);
                self.prepaid_payload = header.payload_len - now as u64;
                pos += header_len + now;
            } else {
                if byte_tokens < 1.0 {
                    over = true;
                    break;
                }
                // The header passes whole (a few bytes of debt at most), the payload up to the
                // budget.
                byte_tokens -= header_len as f64;
                let can = (byte_tokens.max(0.0).floor() as usize).min(available.min(payload));
                byte_tokens -= can as f64;
                pos += header_len + can;
                if can < payload.min(available) {
                    over = true;
                }
            }
            if message {
                message_tokens -= 1.0;
            }
        }
        if let Some(bucket) = self.bytes.as_mut() {
            bucket.tokens = byte_tokens;
        }
        if let Some(bucket) = self.messages.as_mut() {
            bucket.tokens = message_tokens;
        }
        self.paid = pos;
        self.starved = over;
        Admitted { len: pos, over }
    }

    /// The forwarder took in `n` bytes of what was admitted.
    pub(crate) fn consumed(&mut self, n: usize) {
        self.paid = self.paid.saturating_sub(n);
    }

    /// Ready when the sender may be read (`true`: it had been held back at its budget, and the
    /// bytes left over must be checked again now). A starved sender under the throttle action
    /// waits until every bucket holds a whole token; under the close action it is ready at
    /// once, to be failed by the next [`admit`](Throttle::admit).
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if !self.starved {
            return Poll::Ready(false);
        }
        if self.action == RateAction::Close {
            self.starved = false;
            return Poll::Ready(true);
        }
        loop {
            self.refill();
            let wait = [self.messages.as_ref(), self.bytes.as_ref()]
                .into_iter()
                .flatten()
                .map(Bucket::wait)
                .max()
                .unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                self.starved = false;
                return Poll::Ready(true);
            }
            let at = Instant::now() + wait;
            let timer = self.timer.get_or_insert_with(|| Box::pin(sleep_until(at)));
            timer.as_mut().reset(at);
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

/// Describes the budget a sender went over, for the 1008 close reason.
pub(crate) fn describe(limit: &RateLimit) -> (&'static str, u64) {
    match (limit.messages, limit.bytes) {
        (Some(m), _) => ("messages", m.per_second),
        (None, Some(b)) => ("bytes", b.per_second),
        (None, None) => ("messages", 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsrelay_codec::{write_frame, Role};

    fn frames(n: usize, len: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for _ in 0..n {
            let header = FrameHeader {
                mask: Some([1, 2, 3, 4]),
                ..FrameHeader::new(OpCode::Binary, len as u64)
            };
            write_frame(&mut wire, header, &vec![7u8; len]);
        }
        wire
    }

    fn limit(messages: Option<u64>, bytes: Option<u64>, action: RateAction) -> RateLimit {
        let budget = |n| Budget {
            per_second: n,
            burst: n,
        };
        RateLimit {
            messages: messages.map(budget),
            bytes: bytes.map(budget),
            action,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_budget_admits_whole_messages_up_to_the_burst() {
        let parse = ParseConfig::new(Role::Server);
        let mut t = Throttle::new(&limit(Some(3), None, RateAction::Throttle), parse).unwrap();
        let wire = frames(5, 10);
        let a = t.admit(&wire, 0);
        // Three frames of 6 + 10 bytes.
        assert_eq!(
            a,
            Admitted {
                len: 48,
                over: true
            }
        );
        // Already paid: asked again, the same bytes pass without paying twice.
        assert_eq!(t.admit(&wire, 0).len, 48);
        t.consumed(48);
        assert_eq!(t.admit(&wire[48..], 0), Admitted { len: 0, over: true });
        tokio::time::advance(Duration::from_millis(340)).await;
        assert_eq!(
            t.admit(&wire[48..], 0),
            Admitted {
                len: 16,
                over: true
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_byte_budget_cuts_payloads_but_never_control_frames() {
        let parse = ParseConfig::new(Role::Server);
        let mut t = Throttle::new(&limit(None, Some(20), RateAction::Throttle), parse).unwrap();
        let wire = frames(2, 100);
        // The header (6) and 14 payload bytes.
        assert_eq!(
            t.admit(&wire, 0),
            Admitted {
                len: 20,
                over: true
            }
        );
        t.consumed(20);
        tokio::time::advance(Duration::from_secs(1)).await;
        // The rest of the frame under way, 20 bytes of it.
        assert_eq!(
            t.admit(&wire[20..], 86),
            Admitted {
                len: 20,
                over: true
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_close_action_pays_whole_frames_and_reports_the_excess() {
        let parse = ParseConfig::new(Role::Server);
        let mut t = Throttle::new(&limit(None, Some(40), RateAction::Close), parse).unwrap();
        let wire = frames(3, 10);
        // Two frames of 16 bytes fit in 40; the third does not.
        assert_eq!(
            t.admit(&wire, 0),
            Admitted {
                len: 32,
                over: true
            }
        );
    }
}
