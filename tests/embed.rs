//! The embedding API end to end: `wsrelay::embed::accept_and_relay` on a listener of the
//! test's own, in front of real upstreams, runs the gateway's pipeline (refusals relayed as they
//! came, negotiation on the 101, timeouts).

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wsrelay::codec::OpCode;
use wsrelay::refusal::Refusal;
use wsrelay::route::Route;
use wsrelay::upstream::Upstream;

fn route_to(uri: &str) -> Route {
    Route::catch_all(Upstream::new(uri.parse().unwrap()).unwrap())
}

#[tokio::test]
async fn an_upstream_401_reaches_the_client_as_it_came() {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let body = "token expired";
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nWWW-Authenticate: Bearer realm=\"chat\"\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(response.as_bytes()).await;
        }
    });
    let (addr, mut results) = embedded(route_to(&format!("ws://{upstream}/"))).await;
    let answer = RawPeer::connect(&format!("ws://{addr}/chat"), &[], b"")
        .await
        .err()
        .expect("refused");
    assert_eq!(answer.status, 401);
    assert!(
        answer.head.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{}",
        answer.head
    );
    assert!(
        answer
            .head
            .contains("WWW-Authenticate: Bearer realm=\"chat\""),
        "{}",
        answer.head
    );
    assert_eq!(answer.body, body.as_bytes());
    // The embedder learns the same: refused, with the upstream's status.
    let result = results.recv().await.unwrap();
    match result {
        Err(wsrelay::Error::Refused(Refusal::UpstreamRefused { status: 401, .. })) => {}
        other => panic!("expected the upstream's 401 as the refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_upstreams_subprotocol_choice_reaches_the_client_and_frames_flow() {
    let (upstream, mut upstreams) = recording_upstream(first_protocol).await;
    let (addr, mut results) = embedded(route_to(&format!("ws://{upstream}/app"))).await;
    let mut client = RawPeer::connect(&format!("ws://{addr}/room?x=1"), &["stomp", "mqtt"], b"")
        .await
        .ok()
        .expect("upgraded");
    let (head, mut server) = upstreams.recv().await.unwrap();
    // The route's target rules and the forwarding headers apply, as in the gateway.
    assert_eq!(head.target, "/app/room?x=1");
    assert_eq!(
        header_of(&head, "X-Forwarded-For").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        header_of(&head, "Sec-WebSocket-Protocol").as_deref(),
        Some("stomp, mqtt")
    );
    client.send(OpCode::Text, true, b"hello").await;
    let (h, payload) = server.recv().await.expect("the text frame");
    assert_eq!((h.opcode, &payload[..]), (OpCode::Text, &b"hello"[..]));
    client
        .send(OpCode::Close, true, &close_payload(1000, "bye"))
        .await;
    assert_eq!(server.expect_close().await, Some(1000));
    server
        .send(OpCode::Close, true, &close_payload(1000, "bye"))
        .await;
    assert_eq!(client.expect_close().await, Some(1000));
    drop((client, server));
    let outcome = tokio::time::timeout(Duration::from_secs(10), results.recv())
        .await
        .expect("relay ends")
        .unwrap()
        .expect("relayed");
    assert_eq!(outcome.client_to_upstream.frames, 2);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_within_the_connect_timeout() {
    let closed = TcpListener::bind(loopback()).await.unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let (addr, mut results) = embedded(route_to(&format!("ws://{gone}/"))).await;
    let answer = RawPeer::connect(&format!("ws://{addr}/"), &[], b"")
        .await
        .err()
        .expect("refused");
    assert_eq!(answer.status, 502);
    assert!(matches!(
        results.recv().await.unwrap(),
        Err(wsrelay::Error::Refused(Refusal::Connect(..)))
    ));
}
