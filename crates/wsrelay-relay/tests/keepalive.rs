//! Keep-alive pings of the relay's own: sent to quiet sides at frame boundaries, answers
//! absorbed, other pongs passed, and the idle timeout unaffected by them.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsrelay_codec::{OpCode, Role};
use wsrelay_relay::{EndReason, RelayOptions};

fn keep_alive(secs: u64) -> RelayOptions {
    RelayOptions {
        keep_alive: Some(Duration::from_secs(secs)),
        ..RelayOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn quiet_sides_get_pings_whose_pongs_are_absorbed() {
    let mut s = start(keep_alive(10));
    tokio::time::sleep(Duration::from_secs(11)).await;
    // Masked towards the upstream, unmasked towards the client; 8 bytes of payload.
    let (h, up_token) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!(
        (h.opcode, h.mask.is_some(), up_token.len()),
        (OpCode::Ping, true, 8)
    );
    let (h, client_token) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!(
        (h.opcode, h.mask, client_token.len()),
        (OpCode::Ping, None, 8)
    );
    // Each side answers; the answers stop at the relay. An unrelated pong passes.
    s.upstream
        .write_all(&server_frame(OpCode::Pong, &up_token))
        .await
        .unwrap();
    s.upstream
        .write_all(&server_frame(OpCode::Pong, b"mine"))
        .await
        .unwrap();
    s.upstream
        .write_all(&server_frame(OpCode::Text, b"after"))
        .await
        .unwrap();
    s.client
        .write_all(&client_frame(OpCode::Pong, &client_token))
        .await
        .unwrap();
    s.client
        .write_all(&client_frame(OpCode::Text, b"up"))
        .await
        .unwrap();
    let (h, p) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Pong, &b"mine"[..]));
    let (h, p) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Text, &b"after"[..]));
    let (h, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Text, &b"up"[..]));
    let outcome = s.close_from_client(1000).await;
    // Neither our pings nor their answers count as forwarded frames.
    assert_eq!(outcome.client_to_upstream.frames, 2, "text and close");
    assert_eq!(outcome.upstream_to_client.frames, 3, "pong, text and close");
}

#[tokio::test(start_paused = true)]
async fn a_ping_waits_for_the_frame_under_way_to_end() {
    let mut s = start(RelayOptions {
        buffer_size: 4096,
        ..keep_alive(10)
    });
    let big = server_frame(OpCode::Binary, &[9u8; 100_000]);
    s.upstream.write_all(&big[..50_000]).await.unwrap();
    let mut first = vec![0u8; 50_000];
    s.client.read_exact(&mut first).await.unwrap();
    // The client has been quiet past the interval while its stream is mid-frame.
    tokio::time::sleep(Duration::from_secs(15)).await;
    s.upstream.write_all(&big[50_000..]).await.unwrap();
    let mut second = vec![0u8; big.len() - 50_000];
    s.client.read_exact(&mut second).await.unwrap();
    assert_eq!([first, second].concat(), big, "no ping inside the frame");
    let (h, p) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!(
        (h.opcode, p.len()),
        (OpCode::Ping, 8),
        "the ping follows the frame"
    );
    // The upstream, quiet as long, was pinged too.
    let (h, _) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!(h.opcode, OpCode::Ping);
    drop((s.client, s.upstream));
    s.relay.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_fires_when_peers_only_answer_our_pings() {
    let mut s = start(RelayOptions {
        idle_timeout: Some(Duration::from_secs(30)),
        ..keep_alive(5)
    });
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    loop {
        let (h, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
        match h.opcode {
            OpCode::Ping => {
                pings += 1;
                s.upstream
                    .write_all(&server_frame(OpCode::Pong, &p))
                    .await
                    .unwrap();
            }
            OpCode::Close => {
                assert_eq!(u16::from_be_bytes([p[0], p[1]]), 1001);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(30) && elapsed < Duration::from_secs(36),
        "{elapsed:?}"
    );
    assert!(pings >= 5, "{pings} pings");
    drop((s.client, s.upstream));
    assert_eq!(s.relay.await.unwrap().end, EndReason::IdleTimeout);
}
