//! Frame hooks: every verdict in both directions, fragments, header-size boundaries, close-code
//! rewriting, aggregation and chunked frames, over in-memory pipes with real frame peers.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::AsyncWriteExt;
use wsrelay_codec::{OpCode, Role};
use wsrelay_relay::{EndReason, Frame, RelayOptions, Remask, Side, Verdict};

/// Options with a buffer large enough for whole 64 KiB frames.
fn big_buffer() -> RelayOptions {
    RelayOptions {
        buffer_size: 256 * 1024,
        ..RelayOptions::default()
    }
}

/// The wire bytes a side sends, and the role that reads them on the other side.
fn sent_by(side: Side, opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    match side {
        Side::Client => frame(opcode, fin, payload, Some(KEY)),
        Side::Upstream => frame(opcode, fin, payload, None),
    }
}

fn streams(
    s: &mut Setup,
    from: Side,
) -> (
    &mut tokio::io::DuplexStream,
    &mut tokio::io::DuplexStream,
    Role,
) {
    match from {
        Side::Client => (&mut s.client, &mut s.upstream, Role::Server),
        Side::Upstream => (&mut s.upstream, &mut s.client, Role::Client),
    }
}

#[tokio::test]
async fn replaced_payloads_cross_header_size_boundaries_both_ways() {
    // (length in, length out): 7-bit <-> 16-bit and 16-bit <-> 64-bit length encodings.
    let cases = [
        (125usize, 126usize),
        (126, 125),
        (65535, 65536),
        (65536, 65535),
        (10, 0),
        (0, 300),
    ];
    for from in [Side::Client, Side::Upstream] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let mut s = start_hooked(big_buffer(), move |f: &mut Frame<'_>| {
            log.lock()
                .unwrap()
                .push((f.from(), f.opcode(), f.payload().to_vec()));
            if f.opcode() != OpCode::Binary {
                return Verdict::Forward;
            }
            let wanted = u32::from_be_bytes(f.payload()[..4].try_into().unwrap()) as usize;
            f.set_payload(&vec![b'r'; wanted]);
            Verdict::Replace
        });
        for (len_in, len_out) in cases {
            let mut payload = vec![b'i'; len_in.max(4)];
            payload[..4].copy_from_slice(&(len_out as u32).to_be_bytes());
            payload.truncate(len_in.max(4));
            let wire = sent_by(from, OpCode::Binary, true, &payload);
            let (src, dst, role) = streams(&mut s, from);
            let (h, p) = send_and_read(src, dst, role, &wire).await;
            assert_eq!(
                (h.opcode, h.fin, h.payload_len),
                (OpCode::Binary, true, len_out as u64)
            );
            assert_eq!(p, vec![b'r'; len_out], "{from} {len_in} -> {len_out}");
            // Masked towards the upstream (with a fresh key), unmasked towards the client.
            assert_eq!(h.mask.is_some(), from == Side::Client);
            let last = seen.lock().unwrap().last().cloned().unwrap();
            assert_eq!((last.0, last.1, last.2), (from, OpCode::Binary, payload));
        }
        let outcome = s.close_from_client(1000).await;
        assert_eq!(
            outcome.end,
            EndReason::Closed {
                initiator: Side::Client
            }
        );
    }
}

#[tokio::test]
async fn forward_keeps_the_bytes_and_drop_and_close_act_both_ways() {
    // This client sends one key every time, which `Remask::Auto` would replace.
    let options = RelayOptions {
        remask: Remask::Never,
        ..RelayOptions::default()
    };
    for from in [Side::Client, Side::Upstream] {
        let mut s = start_hooked(options.clone(), |f: &mut Frame<'_>| match f.payload() {
            b"drop me" => Verdict::Drop,
            b"close" => Verdict::Close {
                code: 4000,
                reason: "no".into(),
            },
            _ => Verdict::Forward,
        });
        let (src, dst, role) = streams(&mut s, from);
        let keep = sent_by(from, OpCode::Text, true, b"keep");
        let mut wire = sent_by(from, OpCode::Binary, true, b"drop me");
        wire.extend(&keep);
        let (h, p) = send_and_read(src, dst, role, &wire).await;
        assert_eq!((h.opcode, p.as_slice()), (OpCode::Text, &b"keep"[..]));
        assert_eq!(
            h.mask,
            (from == Side::Client).then_some(KEY),
            "forwarded with the sender's key"
        );
        src.write_all(&sent_by(from, OpCode::Text, true, b"close"))
            .await
            .unwrap();
        expect_close(&mut s.client, Role::Client, 4000).await;
        expect_close(&mut s.upstream, Role::Server, 4000).await;
        drop((s.client, s.upstream));
        let outcome = s.relay.await.unwrap();
        assert_eq!(
            outcome.end,
            EndReason::Hook {
                side: from,
                code: 4000
            }
        );
        let traffic = match from {
            Side::Client => outcome.client_to_upstream,
            Side::Upstream => outcome.upstream_to_client,
        };
        assert_eq!(traffic.frames, 1, "only the kept frame went through");
    }
}

/// Sends a three-fragment text message "a" "b" "c" from `from` through a hook that drops the
/// fragment `drop`, and returns the frames the other side got before a final marker frame.
async fn fragments_with_drop(from: Side, drop: &'static [u8]) -> Vec<(OpCode, bool, Vec<u8>)> {
    let mut s = start_hooked(RelayOptions::default(), move |f: &mut Frame<'_>| {
        if f.payload() == drop {
            Verdict::Drop
        } else {
            Verdict::Forward
        }
    });
    let mut wire = sent_by(from, OpCode::Text, false, b"a");
    wire.extend(sent_by(from, OpCode::Ping, true, b"between"));
    wire.extend(sent_by(from, OpCode::Continuation, false, b"b"));
    wire.extend(sent_by(from, OpCode::Continuation, true, b"c"));
    wire.extend(sent_by(from, OpCode::Binary, true, b"end"));
    let (src, dst, role) = streams(&mut s, from);
    src.write_all(&wire).await.unwrap();
    let mut got = Vec::new();
    loop {
        let (h, p) = read_frame(dst, role).await.unwrap();
        if p == b"end" {
            break;
        }
        got.push((h.opcode, h.fin, p));
    }
    s.close_from_client(1000).await;
    got
}

#[tokio::test]
async fn dropping_fragments_keeps_the_sequence_valid() {
    use OpCode::*;
    for from in [Side::Client, Side::Upstream] {
        let ping = (Ping, true, b"between".to_vec());
        // The first fragment: the whole message goes (the ping between its fragments stays).
        assert_eq!(fragments_with_drop(from, b"a").await, vec![ping.clone()]);
        // A middle one: just left out.
        assert_eq!(
            fragments_with_drop(from, b"b").await,
            vec![
                (Text, false, b"a".to_vec()),
                ping.clone(),
                (Continuation, true, b"c".to_vec())
            ]
        );
        // The last one: an empty final fragment ends the message.
        assert_eq!(
            fragments_with_drop(from, b"c").await,
            vec![
                (Text, false, b"a".to_vec()),
                ping.clone(),
                (Continuation, false, b"b".to_vec()),
                (Continuation, true, vec![])
            ]
        );
    }
}

#[tokio::test]
async fn fragments_are_shown_one_by_one_and_may_grow_past_65535() {
    for from in [Side::Client, Side::Upstream] {
        let mut s = start_hooked(big_buffer(), |f: &mut Frame<'_>| {
            if f.opcode() == OpCode::Continuation && !f.fin() {
                f.set_payload(&vec![b'g'; 70_000]);
                return Verdict::Replace;
            }
            Verdict::Forward
        });
        let mut wire = sent_by(from, OpCode::Binary, false, b"1");
        wire.extend(sent_by(from, OpCode::Continuation, false, &[2; 65535]));
        wire.extend(sent_by(from, OpCode::Continuation, true, b"3"));
        let (src, dst, role) = streams(&mut s, from);
        let (h, p) = send_and_read(src, dst, role, &wire).await;
        assert_eq!(
            (h.opcode, h.fin, p.as_slice()),
            (OpCode::Binary, false, &b"1"[..])
        );
        let (h, p) = read_frame(dst, role).await.unwrap();
        assert_eq!(
            (h.opcode, h.fin, p.len()),
            (OpCode::Continuation, false, 70_000)
        );
        let (h, p) = read_frame(dst, role).await.unwrap();
        assert_eq!(
            (h.opcode, h.fin, p.as_slice()),
            (OpCode::Continuation, true, &b"3"[..])
        );
        s.close_from_client(1000).await;
    }
}

#[tokio::test]
async fn close_codes_and_reasons_can_be_rewritten() {
    let mut s = start_hooked(RelayOptions::default(), |f: &mut Frame<'_>| {
        if f.opcode() == OpCode::Close && f.close_code() == Some(1000) {
            let reason = format!("was {}", f.close_reason());
            assert!(f.set_close(4001, &reason));
            assert!(!f.set_close(1005, "never on the wire"));
            return Verdict::Replace;
        }
        Verdict::Forward
    });
    s.client
        .write_all(&client_frame(OpCode::Close, &close_payload(1000, "bye")))
        .await
        .unwrap();
    let (h, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!(
        (h.opcode, p),
        (OpCode::Close, close_payload(4001, "was bye"))
    );
    assert!(h.mask.is_some());
    s.upstream
        .write_all(&server_frame(OpCode::Close, &close_payload(1000, "ok")))
        .await
        .unwrap();
    let (h, p) = read_frame(&mut s.client, Role::Client).await.unwrap();
    assert_eq!(
        (h.opcode, p),
        (OpCode::Close, close_payload(4001, "was ok"))
    );
    drop((s.client, s.upstream));
    let outcome = s.relay.await.unwrap();
    assert_eq!(
        outcome.end,
        EndReason::Closed {
            initiator: Side::Client
        }
    );
    assert_eq!(
        outcome.client_close.unwrap().code,
        Some(1000),
        "the outcome reports what the peer sent"
    );
}

#[tokio::test]
async fn aggregation_shows_whole_messages_and_bounds_them_with_1009() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let options = RelayOptions {
        aggregate_fragments: true,
        client_max_message_size: Some(100_000),
        buffer_size: 4096,
        ..RelayOptions::default()
    };
    let mut s = start_hooked(options, move |f: &mut Frame<'_>| {
        log.lock()
            .unwrap()
            .push((f.opcode(), f.fin(), f.payload().len()));
        if f.opcode() == OpCode::Text {
            f.payload_mut().make_ascii_uppercase();
            return Verdict::Replace;
        }
        Verdict::Forward
    });
    // Fragments, one larger than the buffer, with a ping between them.
    let mut wire = frame(OpCode::Text, false, b"ab", Some(KEY));
    wire.extend(client_frame(OpCode::Ping, b"p"));
    wire.extend(frame(
        OpCode::Continuation,
        false,
        &[b'x'; 10_000],
        Some(KEY),
    ));
    wire.extend(frame(OpCode::Continuation, true, b"cd", Some(KEY)));
    let (h, p) = send_and_read(&mut s.client, &mut s.upstream, Role::Server, &wire).await;
    assert_eq!(
        (h.opcode, p.as_slice()),
        (OpCode::Ping, &b"p"[..]),
        "control frames pass at once"
    );
    let (h, p) = read_frame(&mut s.upstream, Role::Server).await.unwrap();
    assert_eq!((h.opcode, h.fin, p.len()), (OpCode::Text, true, 10_004));
    assert!(p.starts_with(b"ABXX") && p.ends_with(b"XCD"));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(OpCode::Ping, true, 1), (OpCode::Text, true, 10_004)]
    );
    // Beyond the message limit: 1009 to the client, 1001 to the upstream.
    let wire = [
        frame(OpCode::Binary, false, &[0; 60_000], Some(KEY)),
        frame(OpCode::Continuation, true, &[0; 60_000], Some(KEY)),
    ]
    .concat();
    s.client.write_all(&wire).await.unwrap();
    expect_close(&mut s.upstream, Role::Server, 1001).await;
    // The client's 1009 waits for the upstream's answer to its 1001.
    s.upstream
        .write_all(&server_frame(OpCode::Close, &close_payload(1001, "")))
        .await
        .unwrap();
    expect_close(&mut s.client, Role::Client, 1009).await;
}

#[tokio::test]
async fn chunks_of_a_frame_larger_than_the_buffer_may_be_rewritten_in_place() {
    let options = RelayOptions {
        buffer_size: 4096,
        ..RelayOptions::default()
    };
    let chunks = Arc::new(Mutex::new(0u64));
    let count = chunks.clone();
    let mut s = start_hooked(options.clone(), move |f: &mut Frame<'_>| {
        if let Some(chunk) = f.chunk() {
            assert_eq!(chunk.frame_len, 100_000);
            *count.lock().unwrap() += f.payload().len() as u64;
            f.payload_mut().make_ascii_uppercase();
            return Verdict::Replace;
        }
        Verdict::Forward
    });
    let key = random_key();
    let wire = frame(OpCode::Binary, true, &[b'q'; 100_000], Some(key));
    let (h, p) = send_and_read(&mut s.client, &mut s.upstream, Role::Server, &wire).await;
    assert_eq!(h.mask, Some(key), "same length: the header and key stay");
    assert!(p.len() == 100_000 && p.iter().all(|&b| b == b'Q'));
    assert_eq!(
        *chunks.lock().unwrap(),
        100_000,
        "every byte was shown once"
    );
    s.close_from_client(1000).await;

    // Changing a chunk's length cannot be done mid-frame: 1011 to both sides.
    let mut s = start_hooked(options, |f: &mut Frame<'_>| {
        if f.chunk().is_some() {
            f.payload_mut().push(b'!');
            return Verdict::Replace;
        }
        Verdict::Forward
    });
    s.upstream
        .write_all(&server_frame(OpCode::Binary, &[1; 100_000]))
        .await
        .unwrap();
    expect_close(&mut s.client, Role::Client, 1011).await;
    expect_close(&mut s.upstream, Role::Server, 1011).await;
    drop((s.client, s.upstream));
    let outcome = s.relay.await.unwrap();
    assert_eq!(
        outcome.end,
        EndReason::Hook {
            side: Side::Upstream,
            code: 1011
        }
    );
}

#[tokio::test]
async fn a_chunked_frame_dropped_on_its_first_chunk_is_skipped() {
    let options = RelayOptions {
        buffer_size: 4096,
        ..RelayOptions::default()
    };
    let mut s = start_hooked(options, |f: &mut Frame<'_>| {
        if f.chunk().is_some() {
            Verdict::Drop
        } else {
            Verdict::Forward
        }
    });
    let mut wire = server_frame(OpCode::Binary, &[1; 50_000]);
    wire.extend(server_frame(OpCode::Text, b"after"));
    let (h, p) = send_and_read(&mut s.upstream, &mut s.client, Role::Client, &wire).await;
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Text, &b"after"[..]));
    s.close_from_client(1000).await;
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// A hook that replaces every payload with itself delivers every frame's payload unchanged,
    /// whole frames and chunked ones alike, in both directions.
    #[test]
    fn identity_replacement_round_trips(
        sizes in proptest::collection::vec(0usize..12_000, 1..6),
        from_client in proptest::bool::ANY,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let from = if from_client { Side::Client } else { Side::Upstream };
            let options = RelayOptions { buffer_size: 4096, ..RelayOptions::default() };
            let mut s = start_hooked(options, |_: &mut Frame<'_>| Verdict::Replace);
            let payloads: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
                .collect();
            let wire: Vec<u8> = payloads
                .iter()
                .flat_map(|p| sent_by(from, OpCode::Binary, true, p))
                .collect();
            let (src, dst, role) = streams(&mut s, from);
            let (w, got) = tokio::join!(src.write_all(&wire), async {
                let mut got = Vec::new();
                for _ in 0..payloads.len() {
                    got.push(read_frame(dst, role).await.expect("a frame").1);
                }
                got
            });
            w.unwrap();
            assert_eq!(got, payloads);
            s.close_from_client(1000).await;
        });
    }
}

#[tokio::test]
async fn a_control_frame_the_hook_makes_too_long_closes_with_1011() {
    let mut s = start_hooked(RelayOptions::default(), |f: &mut Frame<'_>| {
        if f.opcode() == OpCode::Ping {
            f.set_payload(&[0; 200]);
            return Verdict::Replace;
        }
        Verdict::Forward
    });
    s.client
        .write_all(&client_frame(OpCode::Ping, b"p"))
        .await
        .unwrap();
    expect_close(&mut s.client, Role::Client, 1011).await;
    expect_close(&mut s.upstream, Role::Server, 1011).await;
    drop((s.client, s.upstream));
    let outcome = s.relay.await.unwrap();
    assert_eq!(
        outcome.end,
        EndReason::Hook {
            side: Side::Client,
            code: 1011
        }
    );
}

/// With a hook, a frame passed through unchanged still leaves with a key of the relay's own
/// once the client's key repeats (`Remask::Auto`), and the hook sees the client's payload.
#[tokio::test]
async fn a_repeated_key_is_replaced_on_the_hook_path_too() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut s = start_hooked(RelayOptions::default(), move |f: &mut Frame<'_>| {
        log.lock().unwrap().push(f.payload().to_vec());
        Verdict::Forward
    });
    let mut keys = Vec::new();
    for payload in [&b"first"[..], b"second", b"third"] {
        let wire = sent_by(Side::Client, OpCode::Text, true, payload);
        let (h, p) = send_and_read(&mut s.client, &mut s.upstream, Role::Server, &wire).await;
        assert_eq!(p, payload);
        keys.push(h.mask.expect("masked towards the upstream"));
    }
    assert_eq!(keys[0], KEY, "a first key cannot be known to repeat");
    assert!(
        keys[1] != KEY && keys[2] != KEY && keys[1] != keys[2],
        "{keys:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
    let outcome = s.close_from_client(1000).await;
    // The two repeats and the close (sent with the same key).
    assert_eq!(outcome.client_to_upstream.remasked, 3);
}
