//! The cases, one module per group (or pair of small groups).

mod close;
mod fragmentation;
mod framing;
mod intermediary;
mod limits;
mod reserved;
mod upstream;
mod utf8;

use std::time::Duration;

use crate::case::{Case, Msg, Step};
use crate::wire::{op, Frame};

/// Every case, in report order.
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(framing::framing());
    cases.extend(framing::ping_pong());
    cases.extend(reserved::bits());
    cases.extend(reserved::opcodes());
    cases.extend(fragmentation::cases());
    cases.extend(utf8::cases());
    cases.extend(close::cases());
    cases.extend(limits::limits());
    cases.extend(limits::misc());
    cases.extend(intermediary::cases());
    cases.extend(upstream::cases());
    cases
}

/// A masked client frame's bytes.
fn c(opcode: u8, fin: bool, payload: impl Into<Vec<u8>>) -> Vec<u8> {
    Frame::client(opcode, fin, payload).encode()
}

/// An unmasked server frame's bytes.
fn s(opcode: u8, fin: bool, payload: impl Into<Vec<u8>>) -> Vec<u8> {
    Frame::server(opcode, fin, payload).encode()
}

/// One write of several frames.
fn send(frames: &[Vec<u8>]) -> Step {
    Step::Send(frames.concat())
}

/// Writes of `chunk` bytes with no pause.
fn chunked(bytes: Vec<u8>, chunk: usize) -> Step {
    Step::SendChunked {
        bytes,
        chunk,
        pause: Duration::ZERO,
    }
}

/// A pause.
fn pause(ms: u64) -> Step {
    Step::Pause(Duration::from_millis(ms))
}

/// `n` bytes of readable text (not all the same byte, so misplaced bytes show).
fn text_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// `n` bytes covering every byte value.
fn binary_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 256) as u8).collect()
}

/// A text message expected back.
fn text(payload: impl Into<Vec<u8>>) -> Msg {
    Msg::Text(payload.into())
}

/// A binary message expected back.
fn binary(payload: impl Into<Vec<u8>>) -> Msg {
    Msg::Binary(payload.into())
}

/// A pong expected back.
fn pong(payload: impl Into<Vec<u8>>) -> Msg {
    Msg::Pong(payload.into())
}

/// `payload` as a message of `opcode` cut into fragments of `size` bytes (at least one frame).
fn fragments(opcode: u8, payload: &[u8], size: usize, client: bool) -> Vec<u8> {
    let pieces: Vec<&[u8]> = if payload.is_empty() {
        vec![&[]]
    } else {
        payload.chunks(size.max(1)).collect()
    };
    let last = pieces.len() - 1;
    let mut out = Vec::with_capacity(payload.len() + pieces.len() * 14);
    for (i, piece) in pieces.into_iter().enumerate() {
        let code = if i == 0 { opcode } else { op::CONT };
        let frame = if client {
            Frame::client(code, i == last, piece)
        } else {
            Frame::server(code, i == last, piece)
        };
        out.extend_from_slice(&frame.encode());
    }
    out
}

/// Why, against the Python echo only, the echo of a message sent just before a protocol error
/// may be missing. The relay delivers every echo the upstream sends before its answer to the
/// relay's 1001, and only then fails the driver (strict against wsrelay's echo and the blind
/// echo); Python `websockets` reads the message and the 1001 in one go and answers the close
/// before its application sends the echo, which is then never sent.
const PY_ECHO_CLOSES_FIRST: &str = "RFC 6455 §5.5.1: \"An endpoint MAY delay sending a Close frame until its current \
message is sent\" — it need not: Python websockets answers the relay's 1001 (sent when the driver broke the protocol) \
at once and never sends the echo of the earlier message; the relay delivers every echo an upstream does send before \
its close, as the strict runs against wsrelay's echo and the blind echo show";

/// Python `websockets` (16.1) fails a close that arrives between the fragments of a message
/// with 1002 ("incomplete fragmented message"), although RFC 6455 §5.4 says "Control frames
/// ... MAY be injected in the middle of a fragmented message"; the relay forwards the frames
/// unchanged either way, so the case says nothing about the relay against that echo.
const PY_CLOSE_MID_MESSAGE: &str = "Python websockets answers a close between fragments with 1002 \
(its own deviation from RFC 6455 §5.4, which allows control frames between fragments); the relay forwards the \
frames unchanged, as the run against wsrelay's echo shows";
