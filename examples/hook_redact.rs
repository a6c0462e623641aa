//! A hook that redacts a JSON field: the value of every `"password"` string in text messages
//! from the client is replaced by `"***"` before the upstream sees it. Messages are aggregated
//! (`aggregate_fragments`), so a field split across fragments is still found.
//!
//! `cargo run --example hook_redact -- --demo` shows it against the echo upstream.

mod support;

use wsrelay::codec::OpCode;
use wsrelay::relay::{Frame, RelayOptions, Side, Verdict};

/// Replaces the string value of every `"<field>"` key in `json` with `"***"`; returns whether
/// anything changed. A plain scan, enough for an example: it does not parse the JSON.
fn redact(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\"");
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    let mut changed = false;
    while let Some(at) = rest.find(&key) {
        let after_key = &rest[at + key.len()..];
        let trimmed = after_key.trim_start();
        let Some(value) = trimmed.strip_prefix(':').map(str::trim_start) else {
            out.push_str(&rest[..at + key.len()]);
            rest = after_key;
            continue;
        };
        let Some(body) = value.strip_prefix('"') else {
            out.push_str(&rest[..at + key.len()]);
            rest = after_key;
            continue;
        };
        // The closing quote: the first one not escaped by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { break };
        out.push_str(&rest[..at]);
        out.push_str(&key);
        out.push_str(":\"***\"");
        rest = &body[end + 1..];
        changed = true;
    }
    out.push_str(rest);
    changed.then_some(out)
}

fn redact_passwords(frame: &mut Frame<'_>) -> Verdict {
    if frame.from() != Side::Client || frame.opcode() != OpCode::Text {
        return Verdict::Forward;
    }
    let Ok(text) = std::str::from_utf8(frame.payload()) else {
        return Verdict::Forward;
    };
    match redact(text, "password") {
        Some(redacted) => {
            frame.set_payload(redacted.as_bytes());
            Verdict::Replace
        }
        None => Verdict::Forward,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = RelayOptions {
        aggregate_fragments: true,
        client_max_message_size: Some(64 * 1024),
        ..RelayOptions::default()
    };
    let addr = support::start_proxy(options, || redact_passwords).await;
    if !support::demo_mode() {
        return support::serve_forever(addr).await;
    }
    let mut ws = support::connect(addr).await;
    support::send_text(
        &mut ws,
        r#"{"user":"ann","password":"hunter2","note":"hi"}"#,
    )
    .await;
    let echoed = support::next(&mut ws).await.expect("echo");
    println!("upstream saw: {echoed}");
    assert_eq!(
        echoed.to_text().unwrap(),
        r#"{"user":"ann","password":"***","note":"hi"}"#
    );
    ws.close(None).await.unwrap();
}
