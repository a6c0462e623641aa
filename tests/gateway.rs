//! The gateway end to end on loopback TCP: handshakes, relaying, closing rules, failures.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use wsrelay::codec::OpCode;

const SIZES: [usize; 8] = [0, 1, 125, 126, 65535, 65536, 200_000, 1 << 20];

/// An echo server written with tokio-tungstenite: a second, independent implementation.
async fn tungstenite_echo() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn echo_round_trips(url: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect through wsrelay");
    for size in SIZES {
        let text: String = "wsrelay ✓ ".chars().cycle().take(size).collect();
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
        let binary: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
        ws.send(Message::binary(binary.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(binary));
    }
    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4000),
        reason: "done".into(),
    }))
    .await
    .unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4000);
            assert_eq!(frame.reason.as_str(), "done");
        }
        other => panic!("expected the close echoed back, got {other:?}"),
    }
}

#[tokio::test]
async fn tungstenite_client_through_wsrelay_to_builtin_echo() {
    let gw = gateway_to_echo().await;
    echo_round_trips(&gw.url("/")).await;
    gw.stop().await;
}

#[tokio::test]
async fn tungstenite_client_through_wsrelay_to_tungstenite_echo() {
    let upstream = tungstenite_echo().await;
    let gw = gateway_with(&format!("ws://{upstream}/"), |_| {}).await;
    echo_round_trips(&gw.url("/chat?room=1")).await;
    gw.stop().await;
}

#[tokio::test]
async fn several_workers_share_the_port_and_each_relays() {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let gw = gateway_with(&format!("ws://{echo}/"), |c| c.workers = 3).await;
    let mut clients = Vec::new();
    for i in 0..24 {
        let (mut ws, _) = tokio_tungstenite::connect_async(gw.url("/"))
            .await
            .expect("connect");
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        clients.push(ws);
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text(format!("hello {i}"))
        );
    }
    let stopping = tokio::spawn(gw.stop());
    for ws in clients.iter_mut() {
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected close 1001 on shutdown, got {other:?}"),
        }
    }
    drop(clients);
    stopping.await.unwrap();
}

#[tokio::test]
async fn fragments_with_pings_between_them_arrive_in_order() {
    let (addr, mut accepted) = raw_upstream().await;
    let gw = gateway_with(&format!("ws://{addr}/"), |_| {}).await;
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let mut upstream = accepted.recv().await.unwrap();
    let expected: [(OpCode, bool, &[u8]); 5] = [
        (OpCode::Text, false, b"frag-1 "),
        (OpCode::Ping, true, b"between"),
        (OpCode::Continuation, false, b"frag-2 "),
        (OpCode::Ping, true, b""),
        (OpCode::Continuation, true, b"frag-3"),
    ];
    let mut keys = Vec::new();
    for (opcode, fin, payload) in expected {
        keys.push(client.send(opcode, fin, payload).await);
    }
    for ((opcode, fin, payload), key) in expected.into_iter().zip(keys) {
        let (h, p) = upstream.recv().await.unwrap();
        assert_eq!((h.opcode, h.fin, p.as_slice()), (opcode, fin, payload));
        assert_eq!(h.mask, key, "a random masking key is forwarded unchanged");
    }
    // And the other way, from the upstream.
    upstream.send(OpCode::Binary, false, b"a").await;
    upstream.send(OpCode::Pong, true, b"p").await;
    upstream.send(OpCode::Continuation, true, b"b").await;
    let (h, _) = client.recv().await.unwrap();
    assert_eq!((h.opcode, h.fin), (OpCode::Binary, false));
    let (h, _) = client.recv().await.unwrap();
    assert_eq!(h.opcode, OpCode::Pong);
    let (h, _) = client.recv().await.unwrap();
    assert_eq!((h.opcode, h.fin), (OpCode::Continuation, true));
    gw.stop().await;
}

#[tokio::test]
async fn close_codes_and_reasons_pass_both_ways() {
    let (addr, mut accepted) = raw_upstream().await;
    let gw = gateway_with(&format!("ws://{addr}/"), |_| {}).await;

    // Client-initiated.
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let mut upstream = accepted.recv().await.unwrap();
    client
        .send(OpCode::Close, true, &close_payload(3001, "client says bye"))
        .await;
    let (h, p) = upstream.recv().await.unwrap();
    assert_eq!(
        (h.opcode, p),
        (OpCode::Close, close_payload(3001, "client says bye"))
    );
    upstream
        .send(OpCode::Close, true, &close_payload(3001, "ok"))
        .await;
    let (_, p) = client.recv().await.unwrap();
    assert_eq!(p, close_payload(3001, "ok"));
    client.expect_eof().await;

    // Upstream-initiated.
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let mut upstream = accepted.recv().await.unwrap();
    upstream
        .send(OpCode::Close, true, &close_payload(1012, "restarting"))
        .await;
    let (_, p) = client.recv().await.unwrap();
    assert_eq!(p, close_payload(1012, "restarting"));
    client
        .send(OpCode::Close, true, &close_payload(1012, ""))
        .await;
    let (_, p) = upstream.recv().await.unwrap();
    assert_eq!(p, close_payload(1012, ""));
    drop(upstream);
    client.expect_eof().await;
    gw.stop().await;
}

#[tokio::test]
async fn protocol_violations_get_the_documented_close_codes() {
    let (addr, mut accepted) = raw_upstream().await;
    let gw = gateway_with(&format!("ws://{addr}/"), |_| {}).await;
    // (bytes from the client, code to the client, code to the upstream)
    let from_client: Vec<(Vec<u8>, u16, u16)> = vec![
        (frame(OpCode::Text, true, b"\xc0\xaf", true), 1007, 1001),
        (vec![0x85, 0x80, 0, 0, 0, 0], 1002, 1001),
        (frame(OpCode::Binary, true, b"unmasked", false), 1002, 1001),
        (frame(OpCode::Continuation, true, b"x", true), 1002, 1001),
    ];
    for (bytes, to_client, to_upstream) in from_client {
        let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
        let mut upstream = accepted.recv().await.unwrap();
        client.send_raw(&bytes).await;
        assert_eq!(upstream.expect_close().await, Some(to_upstream));
        // The client's close waits for the upstream's answer (frames on their way still reach it).
        upstream
            .send(OpCode::Close, true, &close_payload(to_upstream, ""))
            .await;
        assert_eq!(client.expect_close().await, Some(to_client));
    }
    // (bytes from the upstream, code to the upstream, code to the client)
    let from_upstream: Vec<(Vec<u8>, u16, u16)> = vec![
        (
            frame(OpCode::Text, true, b"\xed\xa0\x80", false),
            1007,
            1014,
        ),
        (frame(OpCode::Binary, true, b"masked", true), 1002, 1014),
        (vec![0x82, 126, 0, 5, 1, 2, 3, 4, 5], 1002, 1014),
    ];
    for (bytes, to_upstream, to_client) in from_upstream {
        let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
        let mut upstream = accepted.recv().await.unwrap();
        upstream.send_raw(&bytes).await;
        assert_eq!(client.expect_close().await, Some(to_client));
        // The upstream's close waits for the client's answer.
        client
            .send(OpCode::Close, true, &close_payload(to_client, ""))
            .await;
        assert_eq!(upstream.expect_close().await, Some(to_upstream));
    }
    gw.stop().await;
}

#[tokio::test]
async fn bad_utf8_in_a_later_chop_of_a_frame_closes_the_client_at_once() {
    // Autobahn 6.4.3 through the gateway to the built-in echo: the echo must not start echoing
    // a frame it has not fully received, or the client's stream is left mid-frame and the
    // relay's 1007 cannot reach it.
    let gw = gateway_to_echo().await;
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let mut payload = "κόσμε".as_bytes().to_vec();
    let first = payload.len();
    payload.extend_from_slice(b"\xf4\x90\x80\x80edited");
    let wire = frame(OpCode::Text, true, &payload, true);
    let head = wire.len() - payload.len();
    client.send_raw(&wire[..head + first]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.send_raw(&wire[head + first..head + first + 4]).await;
    let started = std::time::Instant::now();
    assert_eq!(client.expect_close().await, Some(1007));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "close took {:?}",
        started.elapsed()
    );
    gw.stop().await;
}

#[tokio::test]
async fn frame_size_limit_closes_with_1009() {
    let gw = {
        let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
        gateway_with(&format!("ws://{echo}/"), |c| {
            c.routes[0].relay.client_max_frame_size = Some(1000)
        })
        .await
    };
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    client.send(OpCode::Binary, true, &[1; 1000]).await;
    assert_eq!(client.recv().await.unwrap().1.len(), 1000);
    client.send(OpCode::Binary, true, &[1; 1001]).await;
    assert_eq!(client.expect_close().await, Some(1009));
    gw.stop().await;
}

#[tokio::test]
async fn vanishing_peers_cause_close_frames_not_resets() {
    let (addr, mut accepted) = raw_upstream().await;
    let gw = gateway_with(&format!("ws://{addr}/"), |_| {}).await;

    let client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let mut upstream = accepted.recv().await.unwrap();
    drop(client);
    assert_eq!(upstream.expect_close().await, Some(1001));

    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let upstream = accepted.recv().await.unwrap();
    drop(upstream);
    assert_eq!(client.expect_close().await, Some(1014));
    gw.stop().await;
}

#[tokio::test]
async fn frames_pipelined_behind_the_handshake_are_not_lost() {
    let gw = gateway_to_echo().await;
    let pipelined = [
        frame(OpCode::Text, true, b"right behind the request", true),
        frame(OpCode::Binary, true, &[9; 300], true),
    ]
    .concat();
    let mut client = RawPeer::connect(&gw.url("/"), &[], &pipelined)
        .await
        .ok()
        .unwrap();
    let (h, p) = client.recv().await.unwrap();
    assert_eq!(
        (h.opcode, p.as_slice()),
        (OpCode::Text, &b"right behind the request"[..])
    );
    let (h, p) = client.recv().await.unwrap();
    assert_eq!((h.opcode, p.len()), (OpCode::Binary, 300));
    gw.stop().await;
}

#[tokio::test]
async fn upstream_refusal_is_relayed_with_status_headers_and_body() {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = "no entry";
            let response = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\nX-Reason: token expired\r\nConnection: keep-alive\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(response.as_bytes()).await;
        }
    });
    let gw = gateway_with(&format!("ws://{addr}/"), |_| {}).await;
    let answer = RawPeer::connect(&gw.url("/"), &[], b"")
        .await
        .err()
        .expect("refused");
    assert_eq!(answer.status, 403);
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("x-reason: token expired"),
        "{}",
        answer.head
    );
    assert!(
        !answer.head.to_ascii_lowercase().contains("keep-alive"),
        "hop-by-hop header relayed: {}",
        answer.head
    );
    assert_eq!(answer.body, b"no entry");
    gw.stop().await;
}

#[tokio::test]
async fn upstream_down_gives_502_and_silent_upstream_gives_504() {
    // A port with nothing listening.
    let closed = tokio::net::TcpListener::bind(loopback())
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = gateway_with(&format!("ws://{closed}/"), |_| {}).await;
    let answer = RawPeer::connect(&gw.url("/"), &[], b"")
        .await
        .err()
        .expect("refused");
    assert_eq!(answer.status, 502);
    // The client learns nothing of the internal topology; the log has the details.
    let body = String::from_utf8_lossy(&answer.body);
    assert!(
        !body.contains(&closed.port().to_string()),
        "upstream address leaked: {body}"
    );
    assert!(!body.contains("refused"), "upstream error leaked: {body}");
    gw.stop().await;

    // An upstream that accepts TCP but never answers the upgrade.
    let silent = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let gw = gateway_with(&format!("ws://{addr}/"), |c| {
        c.routes[0].upgrade_timeout = Duration::from_millis(300)
    })
    .await;
    let answer = RawPeer::connect(&gw.url("/"), &[], b"")
        .await
        .err()
        .expect("refused");
    assert_eq!(answer.status, 504);
    gw.stop().await;
    hold.abort();
}

#[tokio::test]
async fn bad_handshakes_get_http_errors() {
    let gw = gateway_to_echo().await;
    let cases: [(&str, u16); 4] = [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426),
        ("POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 405),
        ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426),
    ];
    for (request, status) in cases {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut response))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?} -> {text}"
        );
        if status == 426 && request.contains("Version: 8") {
            assert!(text.contains("Sec-WebSocket-Version: 13"), "{text}");
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn subprotocol_choice_of_the_upstream_reaches_the_client() {
    let (addr, mut accepted) = raw_upstream().await;
    let gw = gateway_with(&format!("ws://{addr}/"), |_| {}).await;
    let request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(gw.url("/"))
            .map(|mut r| {
                r.headers_mut()
                    .insert("Sec-WebSocket-Protocol", "mqtt, v12.stomp".parse().unwrap());
                r
            })
            .unwrap();
    let connecting = tokio::spawn(tokio_tungstenite::connect_async(request));
    let _upstream = accepted.recv().await.unwrap();
    let (_, response) = connecting.await.unwrap().expect("upgrade");
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "mqtt"
    );
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_relays_with_1001() {
    let (addr, mut accepted) = raw_upstream().await;
    let gw = gateway_with(&format!("ws://{addr}/"), |_| {}).await;
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let mut upstream = accepted.recv().await.unwrap();
    let stopping = tokio::spawn(gw.stop());
    assert_eq!(client.expect_close().await, Some(1001));
    assert_eq!(upstream.expect_close().await, Some(1001));
    client
        .send(OpCode::Close, true, &close_payload(1001, ""))
        .await;
    upstream
        .send(OpCode::Close, true, &close_payload(1001, ""))
        .await;
    client.expect_eof().await;
    drop(upstream);
    stopping.await.unwrap();
}
