//! A logging hook: one line per frame, both ways, with the proxy embedded in a plain tokio
//! server through `wsrelay::embed::accept_and_relay`.
//!
//! `cargo run --example hook_logging` serves until Ctrl-C; `-- --demo` sends one message
//! through it and exits.

mod support;

use wsrelay::relay::{Frame, FrameHook, RelayOptions, Verdict};

/// Logs every frame it sees and forwards it unchanged.
struct LogFrames {
    frames: u64,
}

impl FrameHook for LogFrames {
    fn on_frame(&mut self, frame: &mut Frame<'_>) -> Verdict {
        self.frames += 1;
        println!(
            "frame #{} from {}: {:?} fin={} {} bytes{}",
            self.frames,
            frame.from(),
            frame.opcode(),
            frame.fin(),
            frame.payload().len(),
            frame
                .close_code()
                .map(|c| format!(" close {c} {:?}", frame.close_reason()))
                .unwrap_or_default(),
        );
        Verdict::Forward
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = support::start_proxy(RelayOptions::default(), || LogFrames { frames: 0 }).await;
    if !support::demo_mode() {
        return support::serve_forever(addr).await;
    }
    let mut ws = support::connect(addr).await;
    support::send_text(&mut ws, "hello").await;
    let echoed = support::next(&mut ws).await.expect("echo");
    println!("client got: {echoed}");
    assert_eq!(echoed.to_text().unwrap(), "hello");
    ws.close(None).await.unwrap();
    while support::next(&mut ws).await.is_some() {}
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}
