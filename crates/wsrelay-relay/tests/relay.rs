//! The relay over in-memory streams: forwarding, fragmentation, closing rules, limits, timeouts.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
use wsrelay_codec::{apply_mask, FrameHeader, OpCode, Role, MAX_HEADER_LEN};
use wsrelay_relay::{relay, EndReason, Relay, RelayOptions, RelayOutcome, Side, Violation};

#[tokio::test]
async fn frames_pass_unchanged_both_ways() {
    let mut s = start(RelayOptions::default());
    for len in [0usize, 1, 125, 126, 65535, 65536, 200_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        // Written and read concurrently: the relay's back-pressure would otherwise stall the writer.
        let wire = client_frame(OpCode::Binary, &payload);
        let mut got = vec![0u8; wire.len()];
        let (w, r) = tokio::join!(s.client.write_all(&wire), s.upstream.read_exact(&mut got));
        w.unwrap();
        r.unwrap();
        assert_eq!(
            got, wire,
            "client frame of {len} bytes changed (mask key included)"
        );

        let wire = server_frame(OpCode::Text, &vec![b'x'; len]);
        let mut got = vec![0u8; wire.len()];
        let (w, r) = tokio::join!(s.upstream.write_all(&wire), s.client.read_exact(&mut got));
        w.unwrap();
        r.unwrap();
        assert_eq!(got, wire);
    }
    let outcome = s.close_from_client(1000).await;
    assert_eq!(
        outcome.end,
        EndReason::Closed {
            initiator: Side::Client
        }
    );
    assert_eq!(outcome.client_close.unwrap().code, Some(1000));
    assert_eq!(outcome.upstream_close.unwrap().reason, "bye");
    assert_eq!(outcome.client_to_upstream.frames, 8);
    assert_eq!(outcome.upstream_to_client.frames, 8);
    assert!(outcome.sent_to_client.is_none() && outcome.sent_to_upstream.is_none());
}

#[tokio::test]
async fn fragments_with_pings_between_them_keep_their_boundaries() {
    let mut s = start(RelayOptions::default());
    let expected = [
        (OpCode::Text, false, "héllo ".as_bytes().to_vec()),
        (OpCode::Ping, true, b"p1".to_vec()),
        // A character split across fragments is still valid text.
        (OpCode::Continuation, false, b"\xc3".to_vec()),
        (OpCode::Pong, true, vec![]),
        (OpCode::Continuation, true, b"\xa9!".to_vec()),
    ];
    let keys: Vec<[u8; 4]> = expected.iter().map(|_| random_key()).collect();
    let mut wire = Vec::new();
    for ((opcode, fin, payload), key) in expected.iter().zip(&keys) {
        wire.extend(frame(*opcode, *fin, payload, Some(*key)));
    }
    s.client.write_all(&wire).await.unwrap();
    for ((opcode, fin, payload), key) in expected.into_iter().zip(keys) {
        let (h, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
        assert_eq!((h.opcode, h.fin, p), (opcode, fin, payload));
        assert_eq!(h.mask, Some(key), "a random key passes unchanged");
    }
    s.close_from_client(1000).await;
}

#[tokio::test]
async fn a_ping_inside_a_large_frame_stream_is_not_held_back() {
    // The upstream starts a fragmented message, sends a ping mid-message, then finishes it.
    let mut s = start(RelayOptions {
        buffer_size: 4096,
        ..RelayOptions::default()
    });
    s.upstream
        .write_all(&frame(OpCode::Binary, false, &[7u8; 100_000], None))
        .await
        .unwrap();
    s.upstream
        .write_all(&server_frame(OpCode::Ping, b"still here"))
        .await
        .unwrap();
    let (h, p) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!((h.opcode, p.len()), (OpCode::Binary, 100_000));
    let (h, p) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Ping, &b"still here"[..]));
    s.upstream
        .write_all(&frame(OpCode::Continuation, true, b"end", None))
        .await
        .unwrap();
    let (h, _) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!((h.opcode, h.fin), (OpCode::Continuation, true));
    s.close_from_client(1000).await;
}

#[tokio::test]
async fn large_frame_streams_through_a_small_buffer() {
    let (mut client, client_side) = duplex(8 * 1024);
    let (mut upstream, upstream_side) = duplex(8 * 1024);
    let options = RelayOptions {
        buffer_size: 4096,
        ..RelayOptions::default()
    };
    let relay = tokio::spawn(async move { relay(client_side, upstream_side, &options).await });
    let len = 16 * 1024 * 1024;
    let writer = tokio::spawn(async move {
        let header = FrameHeader {
            mask: Some(KEY),
            ..FrameHeader::new(OpCode::Text, len as u64)
        };
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        client.write_all(header.encode(&mut hbuf)).await.unwrap();
        let mut chunk = vec![b'a'; 64 * 1024];
        let mut offset = 0u64;
        while offset < len as u64 {
            let mut masked = chunk.clone();
            apply_mask(&mut masked, KEY, offset);
            client.write_all(&masked).await.unwrap();
            offset += chunk.len() as u64;
        }
        chunk.clear();
        client
    });
    let (h, p) = read_frame(&mut upstream, Role::Server).await.unwrap();
    assert_eq!(h.payload_len, len as u64);
    assert!(p.iter().all(|&b| b == b'a'));
    let client = writer.await.unwrap();
    drop(client);
    expect_close(&mut upstream, Role::Server, 1001).await;
    drop(upstream);
    let outcome = relay.await.unwrap();
    assert!(matches!(
        outcome.end,
        EndReason::Vanished {
            side: Side::Client,
            ..
        }
    ));
}

async fn client_violation(wire: Vec<u8>, options: RelayOptions, code: u16) -> RelayOutcome {
    let mut s = start(options);
    s.client.write_all(&wire).await.unwrap();
    // Frames before the offending one were valid and pass; then comes the close.
    loop {
        let (h, p) = read_frame(&mut s.upstream, Role::Server)
            .await
            .expect("a close");
        if h.opcode == OpCode::Close {
            assert_eq!(u16::from_be_bytes([p[0], p[1]]), 1001);
            break;
        }
    }
    // Peers answer the relay's closes; the relay absorbs the answers. The client's close waits
    // for the upstream's answer (whatever the upstream sent before it still reaches the client).
    s.upstream
        .write_all(&server_frame(OpCode::Close, &close_payload(1001, "")))
        .await
        .unwrap();
    expect_close(&mut s.client, Role::Client, code).await;
    s.client
        .write_all(&client_frame(OpCode::Close, &close_payload(code, "")))
        .await
        .unwrap();
    let (mut client, mut upstream) = (s.client, s.upstream);
    let (c, u) = tokio::join!(expect_eof(&mut client), expect_eof(&mut upstream));
    let _ = (c, u);
    drop((client, upstream));
    let outcome = s.relay.await.unwrap();
    assert!(!outcome.close_timed_out);
    assert_eq!(outcome.upstream_close.as_ref().unwrap().code, Some(1001));
    outcome
}

#[tokio::test]
async fn client_protocol_violations_get_rfc_close_codes() {
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (frame(OpCode::Binary, true, b"x", None), 1002), // unmasked client frame
        (vec![0x83, 0x80, 1, 2, 3, 4], 1002),            // reserved opcode
        (vec![0xC2, 0x80, 1, 2, 3, 4], 1002),            // RSV1 without extension
        (frame(OpCode::Continuation, true, b"x", Some(KEY)), 1002),
        (frame(OpCode::Ping, false, b"", Some(KEY)), 1002),
        (client_frame(OpCode::Close, &[3]), 1002),
        (client_frame(OpCode::Close, &close_payload(1005, "")), 1002),
        (client_frame(OpCode::Text, b"\xff"), 1007),
        (client_frame(OpCode::Close, &[3, 232, 0xff]), 1007),
        (
            [
                frame(OpCode::Text, false, b"a", Some(KEY)),
                client_frame(OpCode::Text, b"b"),
            ]
            .concat(),
            1002,
        ),
    ];
    for (wire, code) in cases {
        let outcome = client_violation(wire.clone(), RelayOptions::default(), code).await;
        assert!(
            matches!(outcome.end, EndReason::Violation { side: Side::Client, violation } if violation.close_code() == code),
            "{wire:x?}: {:?}",
            outcome.end
        );
        assert_eq!(outcome.sent_to_client.unwrap().code, Some(code));
        assert_eq!(outcome.sent_to_upstream.unwrap().code, Some(1001));
        let valid_frames_before = u64::from(wire.len() > 12);
        assert_eq!(
            outcome.client_to_upstream.frames, valid_frames_before,
            "{wire:x?}"
        );
    }
}

#[tokio::test]
async fn size_limits_give_1009() {
    let options = RelayOptions {
        client_max_frame_size: Some(10),
        client_max_message_size: Some(15),
        ..RelayOptions::default()
    };
    let outcome = client_violation(
        client_frame(OpCode::Binary, &[0; 11]),
        options.clone(),
        1009,
    )
    .await;
    assert!(matches!(
        outcome.end,
        EndReason::Violation {
            violation: Violation::FrameTooBig {
                size: 11,
                limit: 10
            },
            ..
        }
    ));
    let wire = [
        frame(OpCode::Binary, false, &[0; 10], Some(KEY)),
        frame(OpCode::Continuation, true, &[0; 6], Some(KEY)),
    ]
    .concat();
    let mut s = start(options);
    s.client.write_all(&wire).await.unwrap();
    let (h, _) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!(
        h.payload_len, 10,
        "the first fragment was within limits and passes"
    );
    expect_close(&mut s.upstream, Role::Server, 1001).await;
    s.upstream
        .write_all(&server_frame(OpCode::Close, &close_payload(1001, "")))
        .await
        .unwrap();
    expect_close(&mut s.client, Role::Client, 1009).await;
}

#[tokio::test]
async fn upstream_garbage_gives_1014_to_the_client() {
    let mut s = start(RelayOptions::default());
    s.upstream
        .write_all(&server_frame(OpCode::Text, b"ok"))
        .await
        .unwrap();
    s.upstream
        .write_all(&server_frame(OpCode::Text, b"\xed\xa0\x80"))
        .await
        .unwrap();
    let (h, p) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Text, &b"ok"[..]));
    expect_close(&mut s.client, Role::Client, 1014).await;
    // The upstream's 1007 waits for the client's answer to its 1014.
    s.client
        .write_all(&client_frame(OpCode::Close, &close_payload(1014, "")))
        .await
        .unwrap();
    expect_close(&mut s.upstream, Role::Server, 1007).await;
    drop(s.client);
    drop(s.upstream);
    let outcome = s.relay.await.unwrap();
    assert!(matches!(
        outcome.end,
        EndReason::Violation {
            side: Side::Upstream,
            ..
        }
    ));
}

#[tokio::test]
async fn vanishing_sides_get_close_frames_not_resets() {
    // Client vanishes: the upstream gets 1001.
    let mut s = start(RelayOptions::default());
    s.client
        .write_all(&client_frame(OpCode::Text, b"last words"))
        .await
        .unwrap();
    drop(s.client);
    let (_, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!(p, b"last words");
    expect_close(&mut s.upstream, Role::Server, 1001).await;
    s.upstream
        .write_all(&server_frame(OpCode::Close, &close_payload(1001, "")))
        .await
        .unwrap();
    expect_eof(&mut s.upstream).await;
    drop(s.upstream);
    let outcome = s.relay.await.unwrap();
    assert!(matches!(
        outcome.end,
        EndReason::Vanished {
            side: Side::Client,
            error: None
        }
    ));
    assert!(!outcome.close_timed_out);

    // Upstream vanishes: an upstream failure after the upgrade, so the client gets 1014.
    let mut s = start(RelayOptions::default());
    drop(s.upstream);
    expect_close(&mut s.client, Role::Client, 1014).await;
    s.client
        .write_all(&client_frame(OpCode::Close, &close_payload(1014, "")))
        .await
        .unwrap();
    expect_eof(&mut s.client).await;
    drop(s.client);
    let outcome = s.relay.await.unwrap();
    assert!(!outcome.close_timed_out);
    assert!(matches!(
        outcome.end,
        EndReason::Vanished {
            side: Side::Upstream,
            ..
        }
    ));
}

#[tokio::test]
async fn close_from_upstream_is_forwarded_with_code_and_reason() {
    let mut s = start(RelayOptions::default());
    let payload = close_payload(4001, "room closed ✓");
    s.upstream
        .write_all(&server_frame(OpCode::Close, &payload))
        .await
        .unwrap();
    let (h, p) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!(
        (h.opcode, p.as_slice()),
        (OpCode::Close, payload.as_slice())
    );
    // The client may still send data before answering.
    s.client
        .write_all(&client_frame(OpCode::Text, b"late"))
        .await
        .unwrap();
    s.client
        .write_all(&client_frame(OpCode::Close, &payload))
        .await
        .unwrap();
    let (_, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!(p, b"late");
    let (h, _) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!(h.opcode, OpCode::Close);
    drop(s.upstream);
    expect_eof(&mut s.client).await;
    drop(s.client);
    let outcome = s.relay.await.unwrap();
    assert_eq!(
        outcome.end,
        EndReason::Closed {
            initiator: Side::Upstream
        }
    );
    assert_eq!(outcome.upstream_close.unwrap().code, Some(4001));
}

#[tokio::test]
async fn pipelined_bytes_are_relayed_first() {
    let (mut client, client_side) = duplex(64 * 1024);
    let (mut upstream, upstream_side) = duplex(64 * 1024);
    let bird = client_frame(OpCode::Text, b"bird");
    let early = [client_frame(OpCode::Text, b"early"), bird[..3].to_vec()].concat();
    let rest = bird[3..].to_vec();
    let options = RelayOptions::default();
    let relay = tokio::spawn(async move {
        Relay::new(client_side, upstream_side, &options)
            .client_preread(&early)
            .upstream_preread(&server_frame(OpCode::Binary, b"hi"))
            .run()
            .await
    });
    client.write_all(&rest).await.unwrap();
    let (_, p) = read_frame(&mut upstream, Role::Server).await.unwrap();
    assert_eq!(p, b"early");
    let (_, p) = read_frame(&mut upstream, Role::Server).await.unwrap();
    assert_eq!(p, b"bird");
    let (_, p) = read_frame(&mut client, Role::Client).await.unwrap();
    assert_eq!(p, b"hi");
    drop(client);
    drop(upstream);
    relay.await.unwrap();
}

/// Regression (conformance case 11.7): the upstream vanished inside a frame it had started to
/// send, so no close frame can reach the client; the relay used to keep the client connection
/// open until the close timeout instead of ending it at once.
#[tokio::test(start_paused = true)]
async fn upstream_vanishing_mid_frame_ends_the_client_connection_at_once() {
    let mut s = start(RelayOptions {
        close_timeout: Duration::from_secs(30),
        ..RelayOptions::default()
    });
    let frame = server_frame(OpCode::Binary, &[9u8; 1000]);
    s.upstream.write_all(&frame[..500]).await.unwrap();
    let mut seen = vec![0u8; 500];
    s.client.read_exact(&mut seen).await.unwrap();
    drop(s.upstream);
    let started = tokio::time::Instant::now();
    expect_eof(&mut s.client).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(s.client);
    let outcome = s.relay.await.unwrap();
    assert!(!outcome.close_timed_out);
    assert!(matches!(
        outcome.end,
        EndReason::Vanished {
            side: Side::Upstream,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn close_timeout_bounds_an_unanswered_close() {
    let mut s = start(RelayOptions {
        close_timeout: Duration::from_secs(2),
        ..RelayOptions::default()
    });
    s.client
        .write_all(&client_frame(OpCode::Close, &close_payload(1000, "")))
        .await
        .unwrap();
    let (h, _) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!(h.opcode, OpCode::Close);
    // The upstream never answers.
    let outcome = s.relay.await.unwrap();
    assert!(outcome.close_timed_out);
    assert!(outcome.duration >= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_both_sides_with_1001() {
    let mut s = start(RelayOptions {
        idle_timeout: Some(Duration::from_secs(30)),
        ..RelayOptions::default()
    });
    tokio::time::sleep(Duration::from_secs(20)).await;
    s.client
        .write_all(&client_frame(OpCode::Text, b"keeps it alive"))
        .await
        .unwrap();
    read_frame(&mut s.upstream, Role::Server).await.unwrap();
    let before = tokio::time::Instant::now();
    expect_close(&mut s.client, Role::Client, 1001).await;
    expect_close(&mut s.upstream, Role::Server, 1001).await;
    assert!(
        before.elapsed() >= Duration::from_secs(29),
        "{:?}",
        before.elapsed()
    );
    drop(s.client);
    drop(s.upstream);
    assert_eq!(s.relay.await.unwrap().end, EndReason::IdleTimeout);
}

#[tokio::test]
async fn shutdown_signal_sends_1001_both_ways() {
    let (s, tx) = start_with_shutdown(RelayOptions::default());
    let Setup {
        mut client,
        mut upstream,
        relay,
    } = s;
    tx.send(()).unwrap();
    expect_close(&mut client, Role::Client, 1001).await;
    expect_close(&mut upstream, Role::Server, 1001).await;
    client
        .write_all(&client_frame(OpCode::Close, &close_payload(1001, "")))
        .await
        .unwrap();
    upstream
        .write_all(&server_frame(OpCode::Close, &close_payload(1001, "")))
        .await
        .unwrap();
    expect_eof(&mut client).await;
    expect_eof(&mut upstream).await;
    drop((client, upstream));
    let outcome = relay.await.unwrap();
    assert_eq!(outcome.end, EndReason::Shutdown);
    assert!(!outcome.close_timed_out);
    // The answers to the relay's own closes were absorbed, not forwarded.
    assert_eq!(outcome.client_to_upstream.frames, 0);
}

#[tokio::test]
async fn invalid_utf8_in_a_later_chop_of_a_forwarded_frame_fails_fast() {
    // Autobahn 6.4.3: one text frame sent in three chops; the second holds F4 90 80 80
    // (beyond U+10FFFF). The client must get 1007 at once, although the frame's start already
    // went upstream (which is left mid-frame and cannot be sent a close).
    let mut s = start(RelayOptions::default());
    let mut payload = "κόσμε".as_bytes().to_vec();
    let first_len = payload.len();
    payload.extend_from_slice(b"\xf4\x90\x80\x80edited");
    let wire = client_frame(OpCode::Text, &payload);
    let header_len = wire.len() - payload.len();
    s.client
        .write_all(&wire[..header_len + first_len])
        .await
        .unwrap();
    let mut got = vec![0u8; header_len + first_len];
    s.upstream.read_exact(&mut got).await.unwrap();
    s.client
        .write_all(&wire[header_len + first_len..header_len + first_len + 4])
        .await
        .unwrap();
    let close = tokio::time::timeout(
        Duration::from_secs(2),
        expect_close(&mut s.client, Role::Client, 1007),
    )
    .await;
    assert!(close.is_ok(), "no close frame reached the client in time");
}

#[tokio::test]
async fn a_queued_close_waits_for_the_frame_in_flight_and_absorbs_what_follows() {
    let (s, tx) = start_with_shutdown(RelayOptions {
        close_timeout: Duration::from_secs(30),
        ..RelayOptions::default()
    });
    let Setup {
        mut client,
        mut upstream,
        relay,
    } = s;
    let big = server_frame(OpCode::Binary, &[3u8; 100_000]);
    upstream.write_all(&big[..50_000]).await.unwrap();
    // Let the first half through, so the client's stream is mid-frame when shutdown comes.
    let mut first = vec![0u8; 50_000];
    client.read_exact(&mut first).await.unwrap();
    tx.send(()).unwrap();
    expect_close(&mut upstream, Role::Server, 1001).await;
    // The rest of the frame and the upstream's answer to the relay's close, in one write.
    let mut rest = big[50_000..].to_vec();
    rest.extend(server_frame(OpCode::Close, &close_payload(1001, "")));
    upstream.write_all(&rest).await.unwrap();
    let mut second = vec![0u8; big.len() - 50_000];
    client.read_exact(&mut second).await.unwrap();
    assert_eq!(
        [first, second].concat(),
        big,
        "the frame in flight completes first"
    );
    expect_close(&mut client, Role::Client, 1001).await;
    client
        .write_all(&client_frame(OpCode::Close, &close_payload(1001, "")))
        .await
        .unwrap();
    expect_eof(&mut client).await;
    drop((client, upstream));
    let outcome = tokio::time::timeout(Duration::from_secs(5), relay)
        .await
        .expect("no close timeout")
        .unwrap();
    assert_eq!(outcome.end, EndReason::Shutdown);
    assert!(!outcome.close_timed_out);
    assert_eq!(
        outcome.upstream_close.unwrap().code,
        Some(1001),
        "the answer was seen"
    );
    assert_eq!(
        outcome.upstream_to_client.frames, 1,
        "and absorbed, not forwarded"
    );
}

#[tokio::test]
async fn a_stalled_reader_stalls_the_writer_on_the_other_side() {
    // Pipes of 16 KiB and a 16 KiB relay buffer: with the upstream not reading, the client can
    // get at most the two pipes and the relay's buffer ahead before its writes block.
    let (mut client, client_side) = duplex(16 * 1024);
    let (mut upstream, upstream_side) = duplex(16 * 1024);
    let options = RelayOptions {
        buffer_size: 16 * 1024,
        ..RelayOptions::default()
    };
    let relay = tokio::spawn(async move { relay(client_side, upstream_side, &options).await });
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = written.clone();
    let writer = tokio::spawn(async move {
        let header = FrameHeader {
            mask: Some(KEY),
            ..FrameHeader::new(OpCode::Binary, 10 * 1024 * 1024)
        };
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        client.write_all(header.encode(&mut hbuf)).await.unwrap();
        let chunk = [0u8; 1024];
        for _ in 0..10 * 1024 {
            client.write_all(&chunk).await.unwrap();
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
        }
        client
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ahead = written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(!writer.is_finished(), "the writer was never slowed down");
    assert!(
        ahead <= 3 * 16 * 1024,
        "{ahead} bytes got ahead of a reader that reads nothing"
    );
    // Once the upstream reads, everything flows.
    let mut sink = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    while total < 10 * 1024 * 1024 + 14 {
        total += upstream.read(&mut sink).await.unwrap();
    }
    let client = writer.await.unwrap();
    drop((client, upstream));
    relay.await.unwrap();
}
