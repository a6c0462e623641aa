//! Re-masking towards the upstream (RFC 6455 §5.3, §10.3), end to end: the real `wsrelay`
//! binary between a raw client that chooses its masking keys and a recording upstream that
//! sees the keys as they arrive.

mod support;

use std::time::Duration;

use support::*;
use wsrelay::codec::OpCode;

/// Routes `/auto` (no setting: the default), `/always` and `/never` to one recording upstream.
fn relay(upstream: std::net::SocketAddr) -> Binary {
    Binary::with_config(
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[routes]]\npath_prefix = \"/auto\"\nupstream = \"ws://{upstream}\"\n\
             [[routes]]\npath_prefix = \"/always\"\nupstream = \"ws://{upstream}\"\nremask = \"always\"\n\
             [[routes]]\npath_prefix = \"/never\"\nupstream = \"ws://{upstream}\"\nremask = \"never\"\n"
        ),
        1,
    )
}

/// A client on `path` and the upstream side of its connection.
async fn pair(
    relay: &Binary,
    upstream: &mut tokio::sync::mpsc::Receiver<(wsrelay::handshake::RequestHead, RawPeer)>,
    path: &str,
) -> (RawPeer, RawPeer) {
    let url = format!("ws://{}{path}", relay.addr());
    let client = RawPeer::connect(&url, &[], b"")
        .await
        .ok()
        .expect("upgrade");
    let (_, server) = tokio::time::timeout(Duration::from_secs(5), upstream.recv())
        .await
        .expect("a request at the upstream")
        .expect("the upstream runs");
    (client, server)
}

/// Sends each payload with its key; returns the keys the upstream saw, checking every payload
/// arrived as sent (the upstream's reader unmasks with the key on the wire).
async fn send_and_see(
    client: &mut RawPeer,
    upstream: &mut RawPeer,
    frames: &[(&[u8], [u8; 4])],
) -> Vec<[u8; 4]> {
    let mut seen = Vec::new();
    for (payload, key) in frames {
        client
            .send_masked(OpCode::Binary, true, payload, Some(*key))
            .await;
        let (header, got) = upstream.recv().await.expect("the frame arrives");
        assert_eq!(got, *payload, "the payload changed on the way");
        seen.push(header.mask.expect("frames towards the upstream are masked"));
    }
    seen
}

fn distinct(keys: &[[u8; 4]]) -> bool {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.len() == keys.len()
}

#[tokio::test]
async fn zero_and_repeated_keys_leave_with_fresh_keys_and_the_same_payload() {
    let (addr, mut upstream) = recording_upstream(first_protocol).await;
    let relay = relay(addr);
    let (mut client, mut server) = pair(&relay, &mut upstream, "/auto").await;
    let repeated = [0x11, 0x22, 0x33, 0x44];
    // A frame larger than the relay's buffer is re-masked as it streams through, in pieces.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let frames: Vec<(&[u8], [u8; 4])> = vec![
        (b"GET / HTTP/1.1\r\nHost: victim\r\n\r\n", [0; 4]),
        (b"second", [0; 4]),
        (&big, [0; 4]),
        (b"third", repeated),
        (b"fourth", repeated),
        (b"fifth", repeated),
    ];
    let seen = send_and_see(&mut client, &mut server, &frames).await;
    assert!(seen.iter().all(|k| *k != [0; 4]), "{seen:?}");
    assert!(seen.iter().all(|k| *k != repeated), "{seen:?}");
    assert!(distinct(&seen), "keys repeat: {seen:?}");

    // The close is re-masked too, and the access log counts every re-masked frame.
    client
        .send(OpCode::Close, true, &close_payload(1000, ""))
        .await;
    let (header, _) = server.recv().await.expect("the close arrives");
    assert_eq!(header.opcode, OpCode::Close);
    server
        .send(OpCode::Close, true, &close_payload(1000, ""))
        .await;
    assert_eq!(client.expect_close().await, Some(1000));
    let logged = relay
        .wait_for_log("connection finished", Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no finished line: {:?}", relay.log_lines("")));
    assert!(logged.contains("c2u_remasked=7"), "{logged}");
}

#[tokio::test]
async fn a_key_becomes_predictable_when_it_repeats() {
    let (addr, mut upstream) = recording_upstream(first_protocol).await;
    let relay = relay(addr);
    let (mut client, mut server) = pair(&relay, &mut upstream, "/auto").await;
    let key = [9, 8, 7, 6];
    let seen = send_and_see(
        &mut client,
        &mut server,
        &[(b"one", key), (b"two", key), (b"three", key)],
    )
    .await;
    assert_eq!(seen[0], key, "a first key cannot be known to repeat");
    assert!(seen[1..].iter().all(|k| *k != key && *k != [0; 4]));
    assert!(distinct(&seen), "{seen:?}");
}

#[tokio::test]
async fn a_browser_keeps_its_keys_under_auto_and_always_replaces_every_key() {
    let (addr, mut upstream) = recording_upstream(first_protocol).await;
    let relay = relay(addr);
    for (path, kept) in [("/auto", true), ("/always", false)] {
        let (mut client, mut server) = pair(&relay, &mut upstream, path).await;
        let keys: Vec<[u8; 4]> = (0..20).map(|_| random_key()).collect();
        let frames: Vec<(&[u8], [u8; 4])> = keys.iter().map(|k| (&b"tick"[..], *k)).collect();
        let seen = send_and_see(&mut client, &mut server, &frames).await;
        if kept {
            assert_eq!(seen, keys, "{path}: a browser's random keys pass unchanged");
        } else {
            let changed = seen.iter().zip(&keys).filter(|(a, b)| a != b).count();
            assert_eq!(changed, keys.len(), "{path}: every key is the relay's own");
            assert!(distinct(&seen));
        }
    }
}

#[tokio::test]
async fn never_forwards_even_a_zero_key_unchanged() {
    let (addr, mut upstream) = recording_upstream(first_protocol).await;
    let relay = relay(addr);
    let (mut client, mut server) = pair(&relay, &mut upstream, "/never").await;
    let seen = send_and_see(
        &mut client,
        &mut server,
        &[
            (b"a", [0; 4]),
            (b"b", [0; 4]),
            (b"c", [5; 4]),
            (b"d", [5; 4]),
        ],
    )
    .await;
    assert_eq!(seen, [[0; 4], [0; 4], [5; 4], [5; 4]]);
}
