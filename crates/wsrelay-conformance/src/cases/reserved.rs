//! Groups 3 (reserved bits) and 4 (reserved opcodes).

use std::time::Duration;

use super::{c, send, text, PY_ECHO_CLOSES_FIRST};
use crate::case::{Case, Expect, Group, Msg, Step};
use crate::wire::{close_payload, op, Frame};

fn with_rsv(opcode: u8, payload: &str, rsv: u8) -> Vec<u8> {
    Frame::client(opcode, true, payload).rsv(rsv).encode()
}

/// Group 3.
pub fn bits() -> Vec<Case> {
    let g = Group::ReservedBits;
    let mut cases = Vec::new();
    for rsv in 1..=7u8 {
        cases.push(Case::client(
            format!("3.1.{rsv}"),
            g,
            format!("text frame with RSV bits {rsv:03b} fails the connection"),
            vec![Step::Send(with_rsv(op::TEXT, "hello", rsv))],
            Expect::fail(1002),
        ));
    }
    for rsv in 1..=7u8 {
        cases.push(Case::client(
            format!("3.2.{rsv}"),
            g,
            format!("binary frame with RSV bits {rsv:03b} fails the connection"),
            vec![Step::Send(
                Frame::client(op::BINARY, true, vec![0u8, 1, 2])
                    .rsv(rsv)
                    .encode(),
            )],
            Expect::fail(1002),
        ));
    }
    // The echo of "Hello" is on its way when the bad frame arrives: the relay delivers it
    // before failing the client (it waits for the upstream's answer to its 1001), so it must
    // come back before the close. Autobahn 3.2 is 3.3.2 here.
    for (i, rsv) in [4u8, 2, 1].into_iter().enumerate() {
        cases.push(
            Case::client(
                format!("3.3.{}", i + 1),
                g,
                format!(
                    "text, then a text frame with RSV {rsv:03b}, then a ping, in one write: the echo comes before the close"
                ),
                vec![send(&[
                    c(op::TEXT, true, "Hello"),
                    with_rsv(op::TEXT, "bad", rsv),
                    c(op::PING, true, ""),
                ])],
                Expect::fail_after(vec![text("Hello")], 1002),
            )
            .python_echo_non_strict(PY_ECHO_CLOSES_FIRST),
        );
    }
    for (i, rsv) in [4u8, 2, 1].into_iter().enumerate() {
        cases.push(Case::client(
            format!("3.4.{}", i + 1),
            g,
            format!("text, its echo awaited, then a text frame with RSV {rsv:03b}"),
            vec![
                send(&[c(op::TEXT, true, "Hello")]),
                Step::Await(text("Hello")),
                Step::Send(with_rsv(op::TEXT, "bad", rsv)),
            ],
            Expect::fail_after(vec![text("Hello")], 1002),
        ));
    }
    // Autobahn 3.3 and 3.4: the same with the frames written one by one, and byte by byte.
    let frames = [
        c(op::TEXT, true, "Hello"),
        with_rsv(op::TEXT, "bad", 3),
        c(op::PING, true, ""),
    ];
    cases.push(
        Case::client(
            "3.6.1",
            g,
            "text, then a text frame with RSV 011, then a ping, one write per frame: the echo comes before the close (Autobahn 3.3)",
            frames.iter().map(|f| Step::Send(f.clone())).collect(),
            Expect::fail_after(vec![text("Hello")], 1002),
        )
        .python_echo_non_strict(PY_ECHO_CLOSES_FIRST),
    );
    cases.push(Case::client(
        "3.6.2",
        g,
        "text, then a text frame with RSV 100, then a ping, one byte per write: the echo comes before the close (Autobahn 3.4)",
        vec![Step::SendChunked {
            bytes: [
                c(op::TEXT, true, "Hello"),
                with_rsv(op::TEXT, "bad", 4),
                c(op::PING, true, ""),
            ]
            .concat(),
            chunk: 1,
            pause: Duration::from_millis(1),
        }],
        Expect::fail_after(vec![text("Hello")], 1002),
    ).python_echo_non_strict(PY_ECHO_CLOSES_FIRST));
    let controls: [(&str, Vec<u8>); 4] = [
        ("ping with RSV1", with_rsv(op::PING, "p", 4)),
        ("pong with RSV2", with_rsv(op::PONG, "p", 2)),
        (
            "close with RSV3",
            Frame::client(op::CLOSE, true, close_payload(1000, b""))
                .rsv(1)
                .encode(),
        ),
        (
            "continuation with RSV1 inside a fragmented text message",
            [
                c(op::TEXT, false, "frag"),
                Frame::client(op::CONT, true, "ment").rsv(4).encode(),
            ]
            .concat(),
        ),
    ];
    for (i, (what, bytes)) in controls.into_iter().enumerate() {
        cases.push(Case::client(
            format!("3.5.{}", i + 1),
            g,
            format!("{what} fails the connection"),
            vec![Step::Send(bytes)],
            Expect::fail(1002),
        ));
    }
    cases
}

/// Group 4.
pub fn opcodes() -> Vec<Case> {
    let g = Group::Opcodes;
    let reserved: Vec<u8> = (3..=7).chain(0xB..=0xF).collect();
    let mut cases = Vec::new();
    for (i, &code) in reserved.iter().enumerate() {
        let kind = if code < 8 { "data" } else { "control" };
        cases.push(Case::client(
            format!("4.1.{}", i + 1),
            g,
            format!("reserved {kind} opcode {code:#x}, empty payload, fails the connection"),
            vec![Step::Send(c(code, true, ""))],
            Expect::fail(1002),
        ));
    }
    for (i, &code) in reserved.iter().enumerate() {
        let kind = if code < 8 { "data" } else { "control" };
        cases.push(Case::client(
            format!("4.2.{}", i + 1),
            g,
            format!("reserved {kind} opcode {code:#x} with a payload fails the connection"),
            vec![Step::Send(c(code, true, "reserved opcode"))],
            Expect::fail(1002),
        ));
    }
    // A message, then a reserved opcode: the echo of the message is delivered before the
    // relay's 1002 (it waits for the upstream's answer to its 1001). 4.3.3–4.3.5 are Autobahn
    // 4.1.3–4.1.5, 4.3.6–4.3.8 are Autobahn 4.2.3–4.2.5 (opcodes 6, 7, 0xD, 0xE with a payload).
    let after_text: [(u8, &str); 8] = [
        (3, ""),
        (0xB, ""),
        (5, ""),
        (6, "reserved"),
        (7, "reserved"),
        (0xC, ""),
        (0xD, "reserved"),
        (0xE, "reserved"),
    ];
    for (i, (code, payload)) in after_text.into_iter().enumerate() {
        let with = if payload.is_empty() {
            ""
        } else {
            " with a payload"
        };
        cases.push(
            Case::client(
                format!("4.3.{}", i + 1),
                g,
                format!(
                    "text, then opcode {code:#x}{with}, then a ping, in one write: the echo comes before the close"
                ),
                vec![send(&[
                    c(op::TEXT, true, "Hello"),
                    c(code, true, payload),
                    c(op::PING, true, ""),
                ])],
                Expect::fail_after(vec![text("Hello")], 1002),
            )
            .python_echo_non_strict(PY_ECHO_CLOSES_FIRST),
        );
    }
    cases.push(Case::client(
        "4.4.1",
        g,
        "reserved opcode 0xF inside a fragmented message fails the connection",
        vec![send(&[
            c(op::BINARY, false, "a"),
            c(0xF, true, ""),
            c(op::CONT, true, "b"),
        ])],
        Expect::Close {
            before: Vec::<Msg>::new(),
            codes: vec![Some(1002)],
        },
    ));
    cases
}
