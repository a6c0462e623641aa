//! The io_uring relay prototype end to end (built and run only with `--features io-uring`):
//! real sockets, the built-in echo upstream, the `wsrelay-bench uring-relay` process, in both
//! receive modes. Messages of several sizes come back intact (a 1 MiB one streams through the
//! 256 KiB buffers), a close handshake passes both ways, and a client breaking the protocol (an
//! unmasked frame) loses its connection.
#![cfg(feature = "io-uring")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The relay process, stopped when dropped.
struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Starts `uring-relay` in front of `echo`; `None` (printed) if io_uring is refused here.
fn start_relay(echo: SocketAddr, mode: &str) -> Option<(Relay, u16)> {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_wsrelay-bench"))
        .args([
            "uring-relay",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            &format!("ws://{echo}/"),
            "--workers",
            "2",
            "--recv",
            mode,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsrelay-bench");
    // Owned by the guard from here on: killed and waited for on every path.
    let mut relay = Relay(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((relay, port));
        }
        if let Ok(Some(_)) = relay.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = relay.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            println!("SKIPPED: uring-relay did not start: {}", err.trim());
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("uring-relay did not listen on {port}");
}

async fn relays_messages_and_closes(mode: &str) {
    let echo = wsrelay::echo::spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("echo");
    let Some((_relay, port)) = start_relay(echo, mode) else {
        return;
    };
    let url = format!("ws://127.0.0.1:{port}/chat");
    let (mut ws, response) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("upgrade through the relay");
    assert_eq!(response.status(), 101);
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let messages = [
        Message::text("hello"),
        Message::binary(vec![7u8; 32]),
        Message::binary(big),
        Message::text("x".repeat(70_000)),
    ];
    for message in messages {
        ws.send(message.clone()).await.expect("send");
        let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echo in time")
            .expect("a frame")
            .expect("no error");
        assert_eq!(echoed, message);
    }
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .expect("close");
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("close reply in time");
    match reply {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected the echoed close, got {other:?}"),
    }

    // A client frame without a mask breaks RFC 6455 §5.1: the relay ends the connection.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    raw.write_all(request.as_bytes()).await.expect("request");
    let mut head = vec![0u8; 1024];
    let n = raw.read(&mut head).await.expect("101");
    assert!(head[..n].starts_with(b"HTTP/1.1 101"));
    raw.write_all(&[0x82, 0x02, 1, 2]).await.expect("frame");
    let mut rest = [0u8; 64];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match raw.read(&mut rest).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the relay kept a protocol violator's connection"
    );
}

#[tokio::test]
async fn single_shot_receives_relay_messages_and_closes() {
    relays_messages_and_closes("single").await;
}

#[tokio::test]
async fn multishot_receives_relay_messages_and_closes() {
    relays_messages_and_closes("multishot").await;
}
