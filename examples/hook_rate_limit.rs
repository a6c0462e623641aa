//! A per-connection message rate limit: each connection may send `LIMIT` messages per second
//! (a token bucket); the next one closes it with 1008 (policy violation).
//!
//! `cargo run --example hook_rate_limit -- --demo` sends a burst and shows the close.

mod support;

use std::time::Instant;

use wsrelay::codec::OpCode;
use wsrelay::relay::{Frame, FrameHook, RelayOptions, Side, Verdict};

const LIMIT: f64 = 5.0;

/// A token bucket per connection: `LIMIT` tokens, refilled at `LIMIT` per second.
struct RateLimit {
    tokens: f64,
    refilled: Instant,
}

impl FrameHook for RateLimit {
    fn on_frame(&mut self, frame: &mut Frame<'_>) -> Verdict {
        // Count messages (first frames), not fragments or control frames.
        if frame.from() != Side::Client || !matches!(frame.opcode(), OpCode::Text | OpCode::Binary)
        {
            return Verdict::Forward;
        }
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * LIMIT;
        self.tokens = (self.tokens + earned).min(LIMIT);
        self.refilled = now;
        if self.tokens < 1.0 {
            return Verdict::Close {
                code: 1008,
                reason: format!("more than {LIMIT} messages per second"),
            };
        }
        self.tokens -= 1.0;
        Verdict::Forward
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = support::start_proxy(RelayOptions::default(), || RateLimit {
        tokens: LIMIT,
        refilled: Instant::now(),
    })
    .await;
    if !support::demo_mode() {
        return support::serve_forever(addr).await;
    }
    let mut ws = support::connect(addr).await;
    for i in 0..20 {
        support::send_text(&mut ws, &format!("message {i}")).await;
    }
    let mut echoed = 0;
    let close = loop {
        match support::next(&mut ws).await {
            Some(tokio_tungstenite::tungstenite::Message::Close(frame)) => break frame,
            Some(_) => echoed += 1,
            None => panic!("no close frame"),
        }
    };
    let close = close.expect("a close code");
    println!(
        "{echoed} messages echoed, then close {} {:?}",
        u16::from(close.code),
        close.reason
    );
    assert_eq!(u16::from(close.code), 1008);
    // Echoes still on their way back when the close went out are not delivered after it.
    assert!(echoed <= 6, "{echoed}");
}
