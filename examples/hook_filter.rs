//! A message-type filter: only text messages from the client reach the upstream; binary
//! messages are dropped (whole, with all their fragments).
//!
//! `cargo run --example hook_filter -- --demo` shows it against the echo upstream.

mod support;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use wsrelay::codec::OpCode;
use wsrelay::relay::{Frame, RelayOptions, Side, Verdict};

fn text_only(frame: &mut Frame<'_>) -> Verdict {
    // Continuation frames of a dropped binary message are dropped by the relay itself.
    if frame.from() == Side::Client && frame.opcode() == OpCode::Binary {
        return Verdict::Drop;
    }
    Verdict::Forward
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = support::start_proxy(RelayOptions::default(), || text_only).await;
    if !support::demo_mode() {
        return support::serve_forever(addr).await;
    }
    let mut ws = support::connect(addr).await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    support::send_text(&mut ws, "text passes").await;
    let echoed = support::next(&mut ws).await.expect("echo");
    println!("client got: {echoed}");
    assert_eq!(
        echoed.to_text().unwrap(),
        "text passes",
        "the binary message was dropped"
    );
    ws.close(None).await.unwrap();
}
