//! Splicing end to end: the `wsrelay` binary between a real WebSocket client
//! (tokio-tungstenite) and an echo, both over plain TCP, so large payloads are spliced both
//! ways (Linux); every byte of every echo is checked. Once through the command line with every
//! payload spliced, once through a configuration file with the default threshold, and once
//! with splicing off, the same bytes.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// A payload whose every byte depends on its position.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ (i >> 9) as u8 ^ seed)
        .collect()
}

/// Sends binary messages of these sizes (a small one between each) and checks each echo
/// byte for byte, then closes.
async fn echo_round_trips(binary: &Binary) {
    let mut ws = open_ws(binary.addr(), "/").await.expect("connect");
    let sizes = [64 * 1024, 1 << 20, 3 * (1 << 20) + 7, 200_000];
    for (i, size) in sizes.into_iter().enumerate() {
        let payload = pattern(size, i as u8);
        ws.send(Message::binary(payload.clone())).await.unwrap();
        ws.send(Message::text("between")).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an echo in time")
            .expect("an echo")
            .expect("a message");
        let Message::Binary(echoed) = echoed else {
            panic!("expected binary, got {echoed:?}");
        };
        assert_eq!(echoed.len(), size);
        if let Some(at) = echoed.iter().zip(&payload).position(|(a, b)| a != b) {
            panic!("the echo of {size} bytes differs from byte {at} on");
        }
        let text = ws.next().await.expect("a message").expect("a message");
        assert_eq!(text, Message::text("between"));
    }
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

/// `--splice-threshold 0`: every payload byte not read with its header is spliced, both ways
/// (client → gateway → built-in echo → gateway → client).
#[tokio::test]
async fn large_messages_echo_intact_with_every_payload_spliced() {
    let binary = Binary::spawn(
        env!("CARGO_BIN_EXE_wsrelay"),
        &["--listen", "127.0.0.1:0", "--splice-threshold", "0"],
        1,
    );
    echo_round_trips(&binary).await;
}

/// The configuration file's keys: splicing on at the default threshold (from `[defaults]`),
/// and a route that turns it off; both echo the same bytes.
#[tokio::test]
async fn large_messages_echo_intact_with_splicing_on_and_off_by_configuration() {
    let echo = wsrelay::echo::spawn(loopback()).await.expect("echo");
    let toml = format!(
        "[defaults]\nsplice = true\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [[routes]]\npath_prefix = \"/off\"\nupstream = \"ws://{echo}/\"\nsplice = false\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{echo}/\"\n"
    );
    let binary = Binary::with_config(&toml, 1);
    echo_round_trips(&binary).await;
    let mut ws = open_ws(binary.addr(), "/off").await.expect("connect");
    let payload = pattern(2 << 20, 9);
    ws.send(Message::binary(payload.clone())).await.unwrap();
    let echoed = ws.next().await.expect("an echo").expect("a message");
    assert!(
        echoed == Message::binary(payload),
        "the copied echo differs"
    );
}
