//! Group 12: the driver plays the upstream and sends crafted frames towards a real client
//! (Python `websockets`, echoing what it receives).

use super::{binary, binary_of, fragments, pong, s, send, text, text_of};
use crate::case::{Case, Expect, Step};
use crate::wire::{close_payload, op, Frame};

/// Group 12.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let sizes = [0usize, 125, 126, 65535, 65536, 1 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        cases.push(Case::upstream(
            format!("12.1.{}", i + 1),
            format!("text message of {n} bytes from the upstream is echoed by the client"),
            vec![send(&[s(op::TEXT, true, text_of(n))])],
            Expect::Echo(vec![text(text_of(n))]),
            1000,
        ));
    }
    for (i, &n) in sizes.iter().enumerate() {
        cases.push(Case::upstream(
            format!("12.2.{}", i + 1),
            format!("binary message of {n} bytes from the upstream is echoed by the client"),
            vec![send(&[s(op::BINARY, true, binary_of(n))])],
            Expect::Echo(vec![binary(binary_of(n))]),
            1000,
        ));
    }
    cases.push(Case::upstream(
        "12.3.1",
        "fragmented text from the upstream (3 fragments) arrives whole",
        vec![send(&[
            s(op::TEXT, false, "one "),
            s(op::CONT, false, "two "),
            s(op::CONT, true, "three"),
        ])],
        Expect::Echo(vec![text("one two three")]),
        1000,
    ));
    cases.push(Case::upstream(
        "12.3.2",
        "a 1 MiB binary message from the upstream in 4 KiB fragments arrives whole",
        vec![Step::Send(fragments(
            op::BINARY,
            &binary_of(1 << 20),
            4096,
            false,
        ))],
        Expect::Echo(vec![binary(binary_of(1 << 20))]),
        1000,
    ));
    cases.push(Case::upstream(
        "12.4.1",
        "a ping from the upstream is answered by the client's pong",
        vec![send(&[s(op::PING, true, "from upstream")])],
        Expect::Echo(vec![pong("from upstream")]),
        1000,
    ));
    cases.push(Case::upstream(
        "12.4.2",
        "a 125-byte ping from the upstream is answered",
        vec![send(&[s(op::PING, true, binary_of(125))])],
        Expect::Echo(vec![pong(binary_of(125))]),
        1000,
    ));
    let violations: [(&str, Vec<u8>, u16); 11] = [
        (
            "a masked frame from the upstream",
            Frame::client(op::TEXT, true, "masked").encode(),
            1002,
        ),
        (
            "a frame with RSV1 from the upstream",
            Frame::server(op::TEXT, true, "rsv").rsv(4).encode(),
            1002,
        ),
        (
            "reserved data opcode 0x3 from the upstream",
            s(0x3, true, ""),
            1002,
        ),
        (
            "reserved control opcode 0xB from the upstream",
            s(0xB, true, ""),
            1002,
        ),
        (
            "invalid UTF-8 in text from the upstream",
            s(op::TEXT, true, [0x61, 0xed, 0xa0, 0x80]),
            1007,
        ),
        (
            "a fragmented ping from the upstream",
            [s(op::PING, false, "a"), s(op::CONT, true, "b")].concat(),
            1002,
        ),
        (
            "a continuation without a message from the upstream",
            s(op::CONT, true, "orphan"),
            1002,
        ),
        (
            "a 126-byte ping from the upstream",
            s(op::PING, true, binary_of(126)),
            1002,
        ),
        (
            "close code 1005 from the upstream",
            s(op::CLOSE, true, close_payload(1005, b"")),
            1002,
        ),
        (
            "a close reason that is not UTF-8 from the upstream",
            s(op::CLOSE, true, close_payload(1000, &[0xff])),
            1007,
        ),
        (
            "a new text frame inside an open message from the upstream",
            [s(op::TEXT, false, "a"), s(op::TEXT, true, "b")].concat(),
            1002,
        ),
    ];
    for (i, (what, bytes, code)) in violations.into_iter().enumerate() {
        cases.push(Case::upstream(
            format!("12.5.{}", i + 1),
            format!("{what}: close {code} to the upstream, 1014 to the client"),
            vec![Step::Send(bytes)],
            Expect::fail(code),
            1014,
        ));
    }
    for (i, code) in [1000u16, 1001, 3000, 4999].into_iter().enumerate() {
        cases.push(Case::upstream(
            format!("12.6.{}", i + 1),
            format!("close {code} from the upstream reaches the client, whose answer comes back"),
            vec![send(&[s(
                op::CLOSE,
                true,
                close_payload(code, b"upstream"),
            )])],
            Expect::Close {
                before: Vec::new(),
                codes: vec![Some(code)],
            },
            code,
        ));
    }
    cases.push(
        Case::upstream(
            "12.7.1",
            "limited relay: an upstream frame over the upstream frame limit gets 1009; the client 1014",
            vec![send(&[s(op::BINARY, true, binary_of(crate::harness::LIMITED_UPSTREAM_FRAME as usize + 1))])],
            Expect::fail(1009),
            1014,
        )
        .limited(),
    );
    cases
}
