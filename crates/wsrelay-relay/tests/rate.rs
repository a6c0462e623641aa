//! Rate limits over in-memory streams, on the paused clock: the throttle forwards everything,
//! unchanged and in order, at the budget's pace; the close action fails the sender with 1008.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use wsrelay_codec::{OpCode, Role};
use wsrelay_relay::{
    Budget, EndReason, Frame, RateAction, RateLimit, RelayOptions, Side, Verdict, Violation,
};

fn throttled(limit: RateLimit) -> RelayOptions {
    RelayOptions {
        client_rate_limit: Some(limit),
        ..RelayOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_byte_budget_streams_a_large_frame_unchanged_at_its_pace() {
    let limit = RateLimit {
        bytes: Some(Budget {
            per_second: 10_000,
            burst: 1_000,
        }),
        ..RateLimit::default()
    };
    let mut s = start(throttled(limit));
    let payload: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let wire = client_frame(OpCode::Binary, &payload);
    let started = Instant::now();
    let mut got = vec![0u8; wire.len()];
    let (w, r) = tokio::join!(s.client.write_all(&wire), s.upstream.read_exact(&mut got));
    w.unwrap();
    r.unwrap();
    assert_eq!(got, wire, "cut through, unchanged");
    // 40,008 bytes at 10,000 a second after a burst of 1,000.
    let took = started.elapsed();
    let expected = Duration::from_millis(3_900);
    assert!(
        took >= expected - Duration::from_millis(50)
            && took <= expected + Duration::from_millis(150),
        "{took:?}"
    );
    s.close_from_client(1000).await;
}

#[tokio::test(start_paused = true)]
async fn a_message_budget_delivers_every_message_in_order_at_its_pace() {
    let limit = RateLimit {
        messages: Some(Budget {
            per_second: 100,
            burst: 5,
        }),
        ..RateLimit::default()
    };
    let mut s = start(throttled(limit));
    let mut wire = Vec::new();
    for i in 0..205u32 {
        wire.extend(client_frame(OpCode::Binary, &i.to_be_bytes()));
        // Control frames and continuations do not count as messages.
        if i % 50 == 0 {
            wire.extend(client_frame(OpCode::Ping, b"p"));
        }
    }
    let started = Instant::now();
    s.client.write_all(&wire).await.unwrap();
    let mut i = 0u32;
    while i < 205 {
        let (h, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
        if h.opcode == OpCode::Ping {
            continue;
        }
        assert_eq!(p, i.to_be_bytes(), "in order, none lost");
        i += 1;
    }
    // 200 messages after the burst of 5, at 100 a second.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_990) && took <= Duration::from_millis(2_100),
        "{took:?}"
    );
    s.close_from_client(1000).await;
}

#[tokio::test(start_paused = true)]
async fn the_close_action_fails_the_sender_with_1008_after_what_it_was_allowed() {
    let limit = RateLimit {
        messages: Some(Budget {
            per_second: 2,
            burst: 2,
        }),
        action: RateAction::Close,
        ..RateLimit::default()
    };
    let mut s = start(throttled(limit));
    let mut wire = Vec::new();
    for i in 0..3u8 {
        wire.extend(client_frame(OpCode::Binary, &[i]));
    }
    s.client.write_all(&wire).await.unwrap();
    for i in 0..2u8 {
        let (_, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
        assert_eq!(p, [i]);
    }
    // The upstream hears that the client went away and answers; then the client gets 1008.
    expect_close(&mut s.upstream, Role::Server, 1001).await;
    let reply = server_frame(OpCode::Close, &close_payload(1001, ""));
    s.upstream.write_all(&reply).await.unwrap();
    expect_close(&mut s.client, Role::Client, 1008).await;
    drop((s.client, s.upstream));
    let outcome = s.relay.await.unwrap();
    assert_eq!(
        outcome.end,
        EndReason::Violation {
            side: Side::Client,
            violation: Violation::RateLimited {
                what: "messages",
                per_second: 2
            }
        }
    );
    assert_eq!(outcome.client_to_upstream.frames, 2);
}

#[tokio::test(start_paused = true)]
async fn with_a_frame_hook_the_budget_holds_too() {
    let limit = RateLimit {
        messages: Some(Budget {
            per_second: 50,
            burst: 1,
        }),
        ..RateLimit::default()
    };
    let mut s = start_hooked(throttled(limit), |_: &mut Frame<'_>| Verdict::Forward);
    let mut wire = Vec::new();
    for i in 0..51u32 {
        wire.extend(client_frame(OpCode::Binary, &i.to_be_bytes()));
    }
    let started = Instant::now();
    s.client.write_all(&wire).await.unwrap();
    for i in 0..51u32 {
        let (_, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
        assert_eq!(p, i.to_be_bytes());
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(990) && took <= Duration::from_millis(1_100),
        "{took:?}"
    );
    s.close_from_client(1000).await;
}
