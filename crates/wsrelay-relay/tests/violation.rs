//! When one side breaks the protocol, what the other side already sent still reaches it: the
//! relay stops reading the offending side, closes the other side, keeps delivering that side's
//! frames until its close comes back (or the close timeout passes), and only then fails the
//! offending side with 1002 / 1007 / 1009 (issue 12, item 7; Autobahn 3.2–3.4, 4.1.3–4.1.5,
//! 4.2.3–4.2.5, 5.15).

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use wsrelay_codec::{OpCode, Role};
use wsrelay_relay::{EndReason, Frame, RelayOptions, RelayOutcome, Side, Verdict};

/// No test here should come near this; a relay that drops the replies makes them wait for it.
const PATIENCE: Duration = Duration::from_secs(10);

/// A peer that echoes every text and binary frame it reads (masked when it plays the client)
/// and answers a close with the same code; it returns the data it received, in order, and the
/// code of the close it was sent. With `answer_close` false it echoes but never closes.
fn echo_peer(
    mut stream: DuplexStream,
    reads_as: Role,
    answer_close: bool,
) -> JoinHandle<(DuplexStream, Vec<Vec<u8>>, Option<u16>)> {
    let mask = match reads_as {
        Role::Server => None,
        Role::Client => Some(KEY),
    };
    tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            let Some((h, p)) = read_frame(&mut stream, reads_as).await else {
                return (stream, got, None);
            };
            match h.opcode {
                OpCode::Text | OpCode::Binary => {
                    got.push(p.clone());
                    let echo = frame(h.opcode, true, &p, mask);
                    if stream.write_all(&echo).await.is_err() {
                        return (stream, got, None);
                    }
                }
                OpCode::Close => {
                    let code = u16::from_be_bytes([p[0], p[1]]);
                    if answer_close {
                        let close = frame(OpCode::Close, true, &close_payload(code, ""), mask);
                        let _ = stream.write_all(&close).await;
                    }
                    return (stream, got, Some(code));
                }
                _ => {}
            }
        }
    })
}

/// Reads data frames from `stream` until a close; returns the payloads and the close code.
async fn data_then_close(stream: &mut DuplexStream, reads_as: Role) -> (Vec<Vec<u8>>, u16) {
    let mut got = Vec::new();
    loop {
        let (h, p) = read_frame(stream, reads_as).await.expect("a frame");
        match h.opcode {
            OpCode::Close => return (got, u16::from_be_bytes([p[0], p[1]])),
            OpCode::Text | OpCode::Binary => got.push(p),
            _ => {}
        }
    }
}

/// The client sends "one", "two" and then `bad` in one write to an upstream that echoes; the
/// client must see both echoes and then its close `code`, the upstream must see both messages
/// and then 1001. Returns the outcome after both sides closed.
async fn client_breaks_after_two_messages(mut s: Setup, bad: Vec<u8>, code: u16) -> RelayOutcome {
    let upstream = echo_peer(s.upstream, Role::Server, true);
    let wire = [
        client_frame(OpCode::Text, b"one"),
        client_frame(OpCode::Text, b"two"),
        bad,
    ]
    .concat();
    s.client.write_all(&wire).await.unwrap();
    let (echoes, got_code) =
        tokio::time::timeout(PATIENCE, data_then_close(&mut s.client, Role::Client))
            .await
            .expect("a close in time");
    assert_eq!(
        (echoes, got_code),
        (vec![b"one".to_vec(), b"two".to_vec()], code),
        "both echoes come before the client's close"
    );
    let (mut upstream, received, upstream_code) = upstream.await.unwrap();
    assert_eq!(received, vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(
        upstream_code,
        Some(1001),
        "the upstream is told the client went away"
    );
    s.client
        .write_all(&client_frame(OpCode::Close, &close_payload(code, "")))
        .await
        .unwrap();
    let (c, u) = tokio::join!(expect_eof(&mut s.client), expect_eof(&mut upstream));
    let _ = (c, u);
    drop((s.client, upstream));
    let outcome = s.relay.await.unwrap();
    assert!(
        matches!(outcome.end, EndReason::Violation { side: Side::Client, violation } if violation.close_code() == code),
        "{:?}",
        outcome.end
    );
    assert_eq!(outcome.sent_to_client.as_ref().unwrap().code, Some(code));
    assert_eq!(outcome.sent_to_upstream.as_ref().unwrap().code, Some(1001));
    assert_eq!(
        outcome.upstream_close.as_ref().unwrap().code,
        Some(1001),
        "the upstream's close is recorded"
    );
    assert_eq!(
        outcome.upstream_to_client.frames, 2,
        "the echoes were forwarded, the upstream's close was absorbed"
    );
    assert!(!outcome.close_timed_out);
    outcome
}

#[tokio::test]
async fn echoes_of_earlier_messages_reach_the_client_before_its_1002() {
    let reserved_opcode = vec![0x83, 0x80, 1, 2, 3, 4];
    let s = start(RelayOptions::default());
    client_breaks_after_two_messages(s, reserved_opcode, 1002).await;
}

#[tokio::test]
async fn echoes_of_earlier_messages_reach_the_client_before_its_1007() {
    let s = start(RelayOptions::default());
    client_breaks_after_two_messages(s, client_frame(OpCode::Text, b"\xff\xfe"), 1007).await;
}

#[tokio::test]
async fn echoes_of_earlier_messages_reach_the_client_before_its_1009() {
    let s = start(RelayOptions {
        client_max_frame_size: Some(10),
        ..RelayOptions::default()
    });
    client_breaks_after_two_messages(s, client_frame(OpCode::Binary, &[0; 11]), 1009).await;
}

#[tokio::test]
async fn the_hook_path_delivers_the_echoes_first_too() {
    let s = start_hooked(RelayOptions::default(), |_: &mut Frame<'_>| {
        Verdict::Forward
    });
    client_breaks_after_two_messages(s, vec![0x83, 0x80, 1, 2, 3, 4], 1002).await;
}

#[tokio::test]
async fn what_the_client_sent_reaches_the_upstream_before_its_1002() {
    let mut s = start(RelayOptions::default());
    let client = echo_peer(s.client, Role::Client, true);
    let wire = [
        server_frame(OpCode::Text, b"one"),
        server_frame(OpCode::Text, b"two"),
        vec![0x83, 0x00], // reserved opcode
    ]
    .concat();
    s.upstream.write_all(&wire).await.unwrap();
    let (echoes, code) =
        tokio::time::timeout(PATIENCE, data_then_close(&mut s.upstream, Role::Server))
            .await
            .expect("a close in time");
    assert_eq!(
        (echoes, code),
        (vec![b"one".to_vec(), b"two".to_vec()], 1002),
        "the client's echoes come before the upstream's close"
    );
    let (mut client, received, client_code) = client.await.unwrap();
    assert_eq!(received, vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(
        client_code,
        Some(1014),
        "the client is told the upstream failed"
    );
    s.upstream
        .write_all(&server_frame(OpCode::Close, &close_payload(1002, "")))
        .await
        .unwrap();
    let (c, u) = tokio::join!(expect_eof(&mut client), expect_eof(&mut s.upstream));
    let _ = (c, u);
    drop((client, s.upstream));
    let outcome = s.relay.await.unwrap();
    assert!(
        matches!(
            outcome.end,
            EndReason::Violation {
                side: Side::Upstream,
                ..
            }
        ),
        "{:?}",
        outcome.end
    );
    assert_eq!(outcome.sent_to_upstream.unwrap().code, Some(1002));
    assert_eq!(outcome.sent_to_client.unwrap().code, Some(1014));
    assert_eq!(outcome.client_close.unwrap().code, Some(1014));
    assert_eq!(outcome.client_to_upstream.frames, 2);
    assert!(!outcome.close_timed_out);
}

/// The other side never closes: the close timeout bounds the wait, then the offending side
/// gets its close anyway, and everything the other side sent until then was delivered.
#[tokio::test(start_paused = true)]
async fn the_close_timeout_bounds_the_wait_for_the_other_sides_close() {
    let mut s = start(RelayOptions {
        close_timeout: Duration::from_secs(2),
        ..RelayOptions::default()
    });
    let upstream = echo_peer(s.upstream, Role::Server, false);
    let wire = [
        client_frame(OpCode::Text, b"one"),
        vec![0x83, 0x80, 1, 2, 3, 4],
    ]
    .concat();
    s.client.write_all(&wire).await.unwrap();
    let started = tokio::time::Instant::now();
    let (echoes, code) = data_then_close(&mut s.client, Role::Client).await;
    assert_eq!((echoes, code), (vec![b"one".to_vec()], 1002));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the client's close waited for the upstream's: {:?}",
        started.elapsed()
    );
    let (upstream, _, upstream_code) = upstream.await.unwrap();
    assert_eq!(upstream_code, Some(1001));
    // Neither peer answers: the relay gives up on both.
    let outcome = tokio::time::timeout(Duration::from_secs(10), s.relay)
        .await
        .expect("the relay ends")
        .unwrap();
    drop((s.client, upstream));
    assert!(outcome.close_timed_out);
    assert_eq!(outcome.sent_to_client.unwrap().code, Some(1002));
    assert_eq!(outcome.upstream_close, None);
    assert!(
        outcome.duration <= Duration::from_secs(5),
        "{:?}",
        outcome.duration
    );
}

/// The other side vanishes instead of closing: the offending side gets its close at once.
#[tokio::test(start_paused = true)]
async fn the_other_side_vanishing_releases_the_offending_sides_close() {
    let mut s = start(RelayOptions {
        close_timeout: Duration::from_secs(30),
        ..RelayOptions::default()
    });
    let wire = [
        client_frame(OpCode::Text, b"one"),
        vec![0x83, 0x80, 1, 2, 3, 4],
    ]
    .concat();
    s.client.write_all(&wire).await.unwrap();
    let (got, code) = data_then_close(&mut s.upstream, Role::Server).await;
    assert_eq!((got, code), (vec![b"one".to_vec()], 1001));
    s.upstream
        .write_all(&server_frame(OpCode::Text, b"late reply"))
        .await
        .unwrap();
    drop(s.upstream);
    let started = tokio::time::Instant::now();
    let (echoes, code) = data_then_close(&mut s.client, Role::Client).await;
    assert_eq!((echoes, code), (vec![b"late reply".to_vec()], 1002));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// Invalid UTF-8 deep inside a text frame whose start already went upstream: the upstream is
/// mid-frame, where no close can follow, so it gets none (it is shut down) and, since no close
/// will come back from it, the client gets its 1007 at once.
#[tokio::test(start_paused = true)]
async fn a_violation_inside_a_forwarded_frame_fails_the_client_at_once() {
    let mut s = start(RelayOptions {
        close_timeout: Duration::from_secs(3),
        ..RelayOptions::default()
    });
    let mut payload = vec![b'a'; 1000];
    payload.extend_from_slice(b"\xff and more");
    let wire = client_frame(OpCode::Text, &payload);
    s.client.write_all(&wire[..900]).await.unwrap();
    let mut seen = vec![0u8; 900];
    tokio::io::AsyncReadExt::read_exact(&mut s.upstream, &mut seen)
        .await
        .unwrap();
    s.client.write_all(&wire[900..]).await.unwrap();
    let started = tokio::time::Instant::now();
    expect_close(&mut s.client, Role::Client, 1007).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The valid bytes of the frame up to the bad one arrive, then the end of the stream: no
    // close frame could follow them.
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut s.upstream, &mut rest)
        .await
        .unwrap();
    assert!(
        wire[900..].starts_with(&rest) && rest.len() < wire.len() - 900,
        "only the checked bytes of the frame follow, no close frame: {rest:x?}"
    );
    drop((s.client, s.upstream));
    let outcome = s.relay.await.unwrap();
    assert_eq!(outcome.sent_to_client.unwrap().code, Some(1007));
}
