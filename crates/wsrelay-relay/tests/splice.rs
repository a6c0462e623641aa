//! Splicing (Linux `splice(2)`) over real loopback TCP sockets: large payloads go from socket to
//! socket through a pipe, and everything around them (headers, control frames, closes, pings,
//! back-pressure, a failing destination) behaves as on the buffered path. Every test runs with
//! the threshold at 0 (every payload byte not read with its header is spliced) and at the
//! default.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::{close_payload, frame, random_key, server_frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};
use wsrelay_codec::close::code;
use wsrelay_codec::{apply_mask, FrameHeader, OpCode, Parse, ParseConfig, Role};
use wsrelay_relay::splice::DEFAULT_THRESHOLD;
use wsrelay_relay::{EndReason, Relay, RelayOptions, RelayOutcome, Side};

/// The thresholds every test runs with.
const THRESHOLDS: [u32; 2] = [0, DEFAULT_THRESHOLD];

/// A relay over loopback TCP: the client's and the upstream's ends, and the relay task.
struct Tcp {
    client: TcpStream,
    upstream: TcpStream,
    relay: JoinHandle<RelayOutcome>,
}

/// A connected pair of loopback sockets.
async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (a, b) = (a.unwrap(), b.unwrap().0);
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

/// Starts a splicing relay with `threshold` between two fresh socket pairs.
async fn start(threshold: u32, options: RelayOptions) -> Tcp {
    start_with(threshold, options, false).await
}

/// [`start`], with the kernel's buffers along the client → upstream path shrunk to 64 KiB if
/// `small` (no autotuning up to 32 MiB), so a few MiB in flight fill them.
async fn start_with(threshold: u32, options: RelayOptions, small: bool) -> Tcp {
    use rustix::net::sockopt::{set_socket_recv_buffer_size, set_socket_send_buffer_size};
    let (client, relay_client) = socket_pair().await;
    let (relay_upstream, upstream) = socket_pair().await;
    if small {
        set_socket_send_buffer_size(&client, 64 * 1024).unwrap();
        set_socket_recv_buffer_size(&relay_client, 64 * 1024).unwrap();
        set_socket_send_buffer_size(&relay_upstream, 64 * 1024).unwrap();
        set_socket_recv_buffer_size(&upstream, 64 * 1024).unwrap();
    }
    let options = RelayOptions {
        splice_threshold: Some(threshold),
        ..options
    };
    let relay = tokio::spawn(async move {
        Relay::new(relay_client, relay_upstream, &options)
            .with_splice()
            .run()
            .await
    });
    Tcp {
        client,
        upstream,
        relay,
    }
}

/// Options with a short close timeout, so a test that ends badly ends fast.
fn options() -> RelayOptions {
    RelayOptions {
        close_timeout: Duration::from_secs(2),
        ..RelayOptions::default()
    }
}

/// A payload whose every byte depends on its position, so a lost, doubled or moved byte shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ seed)
        .collect()
}

/// Reads one frame; the header and the unmasked payload (`None` at EOF or on an error).
async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    role: Role,
) -> Option<(FrameHeader, Vec<u8>)> {
    let mut buf = Vec::new();
    let header = loop {
        match FrameHeader::parse(&buf, ParseConfig::new(role)) {
            Ok(Parse::Complete(h, _)) => break h,
            Ok(Parse::Incomplete(n)) => {
                let mut more = vec![0u8; n];
                stream.read_exact(&mut more).await.ok()?;
                buf.extend_from_slice(&more);
            }
            Err(e) => panic!("relay sent an invalid frame: {e}"),
        }
    };
    let mut payload = vec![0u8; header.payload_len as usize];
    stream.read_exact(&mut payload).await.ok()?;
    if let Some(key) = header.mask {
        apply_mask(&mut payload, key, 0);
    }
    Some((header, payload))
}

/// Reads a frame and checks its opcode and payload byte for byte.
async fn expect_frame<R: AsyncRead + Unpin>(stream: &mut R, role: Role, op: OpCode, want: &[u8]) {
    let (h, payload) = timeout(Duration::from_secs(10), read_frame(stream, role))
        .await
        .expect("a frame in time")
        .expect("a frame");
    assert_eq!(h.opcode, op, "{h:?}");
    assert_eq!(payload.len(), want.len(), "payload length");
    if let Some(at) = payload.iter().zip(want).position(|(a, b)| a != b) {
        panic!("payload differs from byte {at} on");
    }
}

/// Reads a close (past keep-alive pings of the relay's own) and checks its code.
async fn expect_close<R: AsyncRead + Unpin>(stream: &mut R, role: Role, want: u16) {
    let (h, payload) = loop {
        let (h, payload) = timeout(Duration::from_secs(10), read_frame(stream, role))
            .await
            .expect("a close in time")
            .expect("a close frame");
        if h.opcode != OpCode::Ping {
            break (h, payload);
        }
    };
    assert_eq!(h.opcode, OpCode::Close, "expected a close, got {h:?}");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), want);
}

/// A client's masked frame.
fn client_frame(op: OpCode, payload: &[u8]) -> Vec<u8> {
    frame(op, true, payload, Some(random_key()))
}

/// Both sides close in turn; the relay's outcome.
async fn close_both(mut tcp: Tcp) -> RelayOutcome {
    let close = client_frame(OpCode::Close, &close_payload(code::NORMAL, "bye"));
    tcp.client.write_all(&close).await.unwrap();
    expect_close(&mut tcp.upstream, Role::Server, code::NORMAL).await;
    let reply = server_frame(OpCode::Close, &close_payload(code::NORMAL, ""));
    tcp.upstream.write_all(&reply).await.unwrap();
    expect_close(&mut tcp.client, Role::Client, code::NORMAL).await;
    timeout(Duration::from_secs(10), tcp.relay)
        .await
        .expect("the relay ends")
        .unwrap()
}

/// Payloads of 1 MiB and more, both ways, with small and text frames between them, arrive byte
/// for byte, and the traffic counters are those of the buffered path.
#[tokio::test]
async fn large_payloads_arrive_byte_for_byte_both_ways() {
    for threshold in THRESHOLDS {
        let mut tcp = start(threshold, options()).await;
        let big = pattern(1_300_000, 1);
        let medium = pattern(64 * 1024, 2);
        let mut wire = client_frame(OpCode::Binary, &big);
        wire.extend(client_frame(OpCode::Text, b"between"));
        wire.extend(client_frame(OpCode::Binary, &medium));
        wire.extend(client_frame(OpCode::Binary, b"small"));
        let sender = {
            let mut client = tcp.client;
            let wire = wire.clone();
            tokio::spawn(async move {
                client.write_all(&wire).await.unwrap();
                client
            })
        };
        expect_frame(&mut tcp.upstream, Role::Server, OpCode::Binary, &big).await;
        expect_frame(&mut tcp.upstream, Role::Server, OpCode::Text, b"between").await;
        expect_frame(&mut tcp.upstream, Role::Server, OpCode::Binary, &medium).await;
        expect_frame(&mut tcp.upstream, Role::Server, OpCode::Binary, b"small").await;
        tcp.client = sender.await.unwrap();
        // And back: unmasked frames from the upstream.
        let back = pattern(2_000_000, 3);
        let mut reply = server_frame(OpCode::Binary, &back);
        reply.extend(server_frame(OpCode::Binary, &medium));
        let sender = {
            let mut upstream = tcp.upstream;
            tokio::spawn(async move {
                upstream.write_all(&reply).await.unwrap();
                upstream
            })
        };
        expect_frame(&mut tcp.client, Role::Client, OpCode::Binary, &back).await;
        expect_frame(&mut tcp.client, Role::Client, OpCode::Binary, &medium).await;
        tcp.upstream = sender.await.unwrap();
        let outcome = close_both(tcp).await;
        assert_eq!(
            outcome.end,
            EndReason::Closed {
                initiator: Side::Client
            }
        );
        let up = outcome.client_to_upstream;
        assert_eq!((up.frames, up.messages), (5, 4), "threshold {threshold}");
        assert_eq!(up.bytes, wire.len() as u64 + 11, "threshold {threshold}");
        let down = outcome.upstream_to_client;
        assert_eq!(
            (down.frames, down.messages),
            (3, 2),
            "threshold {threshold}"
        );
    }
}

/// A large frame written in uneven pieces with pauses (its header split too) arrives whole;
/// so does a fragmented message whose fragments are spliced one by one.
#[tokio::test]
async fn frames_split_across_reads_arrive_whole() {
    for threshold in THRESHOLDS {
        let mut tcp = start(threshold, options()).await;
        let big = pattern(300_000, 4);
        let wire = client_frame(OpCode::Binary, &big);
        let first = pattern(100_000, 5);
        let second = pattern(90_000, 6);
        let mut fragments = frame(OpCode::Binary, false, &first, Some(random_key()));
        fragments.extend(frame(
            OpCode::Continuation,
            true,
            &second,
            Some(random_key()),
        ));
        let sender = {
            let mut client = tcp.client;
            tokio::spawn(async move {
                let pieces = [1, 3, 7, 1000, 65_536, 100_003];
                let mut at = 0;
                for piece in pieces.iter().cycle() {
                    if at == wire.len() {
                        break;
                    }
                    let end = (at + piece).min(wire.len());
                    client.write_all(&wire[at..end]).await.unwrap();
                    at = end;
                    sleep(Duration::from_millis(2)).await;
                }
                for chunk in fragments.chunks(70_001) {
                    client.write_all(chunk).await.unwrap();
                    sleep(Duration::from_millis(2)).await;
                }
                client
            })
        };
        expect_frame(&mut tcp.upstream, Role::Server, OpCode::Binary, &big).await;
        let (h, payload) = read_frame(&mut tcp.upstream, Role::Server).await.unwrap();
        assert_eq!((h.opcode, h.fin), (OpCode::Binary, false));
        assert!(payload == first, "first fragment differs");
        let (h, payload) = read_frame(&mut tcp.upstream, Role::Server).await.unwrap();
        assert_eq!((h.opcode, h.fin), (OpCode::Continuation, true));
        assert!(payload == second, "second fragment differs");
        tcp.client = sender.await.unwrap();
        let outcome = close_both(tcp).await;
        assert_eq!(
            outcome.client_to_upstream.messages, 2,
            "threshold {threshold}"
        );
    }
}

/// A close written right behind a spliced frame, in the same write, is forwarded after all of
/// the frame, and closing goes on as usual.
#[tokio::test]
async fn a_close_right_after_a_spliced_frame_follows_it() {
    for threshold in THRESHOLDS {
        let mut tcp = start(threshold, options()).await;
        let big = pattern(1 << 20, 7);
        let mut wire = client_frame(OpCode::Binary, &big);
        wire.extend(client_frame(
            OpCode::Close,
            &close_payload(code::NORMAL, "done"),
        ));
        let sender = {
            let mut client = tcp.client;
            tokio::spawn(async move {
                client.write_all(&wire).await.unwrap();
                client
            })
        };
        expect_frame(&mut tcp.upstream, Role::Server, OpCode::Binary, &big).await;
        expect_close(&mut tcp.upstream, Role::Server, code::NORMAL).await;
        let mut client = sender.await.unwrap();
        let reply = server_frame(OpCode::Close, &close_payload(code::NORMAL, ""));
        tcp.upstream.write_all(&reply).await.unwrap();
        expect_close(&mut client, Role::Client, code::NORMAL).await;
        let outcome = timeout(Duration::from_secs(10), tcp.relay)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            outcome.end,
            EndReason::Closed {
                initiator: Side::Client
            }
        );
        assert_eq!(
            outcome.client_close.and_then(|c| c.code),
            Some(code::NORMAL)
        );
    }
}

/// A keep-alive ping that falls due while a frame is being spliced goes out after the whole
/// frame (never inside it); the client's own ping behind the frame passes too.
#[tokio::test]
async fn a_ping_waits_for_the_spliced_frame_to_end() {
    for threshold in THRESHOLDS {
        let options = RelayOptions {
            keep_alive: Some(Duration::from_millis(30)),
            ..options()
        };
        let mut tcp = start(threshold, options).await;
        let big = pattern(600_000, 8);
        let wire = client_frame(OpCode::Binary, &big);
        let sender = {
            let mut client = tcp.client;
            tokio::spawn(async move {
                // Slowly, so pings fall due while the frame is under way.
                for chunk in wire.chunks(100_000) {
                    client.write_all(chunk).await.unwrap();
                    sleep(Duration::from_millis(40)).await;
                }
                client
                    .write_all(&client_frame(OpCode::Ping, b"mine"))
                    .await
                    .unwrap();
                client
            })
        };
        // Pings of the relay's own may come first (the upstream was quiet), then the frame
        // whole, then pings again and the client's.
        let mut seen_data = false;
        let mut seen_client_ping = false;
        while !seen_client_ping {
            let (h, payload) = timeout(
                Duration::from_secs(10),
                read_frame(&mut tcp.upstream, Role::Server),
            )
            .await
            .unwrap()
            .unwrap();
            match h.opcode {
                OpCode::Binary => {
                    assert!(payload == big, "the spliced frame differs");
                    seen_data = true;
                }
                OpCode::Ping if payload == b"mine" => {
                    assert!(seen_data);
                    seen_client_ping = true;
                }
                OpCode::Ping => {
                    // The relay's own: answered, so the connection stays healthy.
                    let pong = server_frame(OpCode::Pong, &payload);
                    tcp.upstream.write_all(&pong).await.unwrap();
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        tcp.client = sender.await.unwrap();
        close_both(tcp).await;
    }
}

/// An upstream that reads slowly holds the client back (the relay keeps at most its pipe and
/// its buffer in flight), and every byte arrives.
#[tokio::test]
async fn a_slow_reader_holds_the_sender_back() {
    for threshold in THRESHOLDS {
        let mut tcp = start_with(threshold, options(), true).await;
        let frames: Vec<Vec<u8>> = (0..8).map(|i| pattern(1 << 20, 10 + i)).collect();
        let wire: Vec<u8> = frames
            .iter()
            .flat_map(|f| client_frame(OpCode::Binary, f))
            .collect();
        let sender = {
            let mut client = tcp.client;
            tokio::spawn(async move {
                client.write_all(&wire).await.unwrap();
                client
            })
        };
        // Nothing read yet: the sockets' buffers and the relay's pipe fill up, and stay full.
        sleep(Duration::from_millis(200)).await;
        assert!(!sender.is_finished(), "the sender was not held back");
        for f in &frames {
            let (h, payload) = read_frame(&mut tcp.upstream, Role::Server).await.unwrap();
            assert_eq!(h.opcode, OpCode::Binary);
            assert!(&payload == f, "a frame differs");
            sleep(Duration::from_millis(10)).await;
        }
        tcp.client = sender.await.unwrap();
        close_both(tcp).await;
    }
}

/// An upstream that resets the connection in the middle of a spliced frame: the relay abandons
/// what is in its pipe, tells the client with 1014 and ends.
#[tokio::test]
async fn a_destination_reset_mid_splice_ends_the_relay() {
    for threshold in THRESHOLDS {
        let mut tcp = start(threshold, options()).await;
        let big = pattern(8 << 20, 20);
        let wire = client_frame(OpCode::Binary, &big);
        let sender = {
            let mut client = tcp.client;
            tokio::spawn(async move {
                // The write fails part way once the relay is gone.
                let _ = client.write_all(&wire).await;
                client
            })
        };
        let mut some = vec![0u8; 200_000];
        tcp.upstream.read_exact(&mut some).await.unwrap();
        tcp.upstream.set_zero_linger().unwrap();
        drop(tcp.upstream);
        let mut client = sender.await.unwrap();
        expect_close(&mut client, Role::Client, code::BAD_GATEWAY).await;
        drop(client);
        let outcome = timeout(Duration::from_secs(10), tcp.relay)
            .await
            .expect("the relay ends")
            .unwrap();
        assert!(
            matches!(
                outcome.end,
                EndReason::Vanished {
                    side: Side::Upstream,
                    ..
                }
            ),
            "{:?}",
            outcome.end
        );
    }
}

/// What must be seen is not spliced: large text is still validated (1007 for bad UTF-8), and a
/// client whose keys are predictable still gets its payload re-masked.
#[tokio::test]
async fn payloads_that_must_be_seen_take_the_buffer() {
    for threshold in THRESHOLDS {
        // Predictable keys (zero): re-masked, and the upstream unmasks the original payload.
        let mut tcp = start(threshold, options()).await;
        let big = pattern(500_000, 30);
        let wire = frame(OpCode::Binary, true, &big, Some([0, 0, 0, 0]));
        let sender = {
            let mut client = tcp.client;
            tokio::spawn(async move {
                client.write_all(&wire).await.unwrap();
                client
            })
        };
        let (h, payload) = read_frame(&mut tcp.upstream, Role::Server).await.unwrap();
        assert_ne!(h.mask, Some([0, 0, 0, 0]));
        assert!(payload == big, "the re-masked payload differs");
        tcp.client = sender.await.unwrap();
        let outcome = close_both(tcp).await;
        assert_eq!(outcome.client_to_upstream.remasked, 2);

        // Invalid UTF-8 deep inside a large text frame: 1007, as on the buffered path.
        let mut tcp = start(threshold, options()).await;
        let mut text = vec![b'a'; 400_000];
        text[300_000] = 0xFF;
        let wire = client_frame(OpCode::Text, &text);
        let sender = {
            let mut client = tcp.client;
            tokio::spawn(async move {
                let _ = client.write_all(&wire).await;
                client
            })
        };
        let mut client = sender.await.unwrap();
        let (h, _) = read_frame(&mut tcp.upstream, Role::Server)
            .await
            .unwrap_or_else(|| (FrameHeader::new(OpCode::Close, 0), Vec::new()));
        // The upstream was left mid-frame (shut down without a close) or got close 1001.
        let _ = h;
        expect_close(&mut client, Role::Client, code::INVALID_PAYLOAD).await;
        let outcome = timeout(Duration::from_secs(10), tcp.relay)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            outcome.end,
            EndReason::Violation {
                side: Side::Client,
                ..
            }
        ));
    }
}
