//! Group 5: fragmentation.

use std::time::Duration;

use super::{
    binary, binary_of, c, chunked, fragments, pause, pong, send, text, text_of,
    PY_ECHO_CLOSES_FIRST,
};
use crate::case::{Case, Expect, Group, Step};
use crate::wire::{close_payload, op};

/// Group 5.
pub fn cases() -> Vec<Case> {
    let g = Group::Fragmentation;
    let paced = |frames: &[Vec<u8>]| -> Vec<Step> {
        frames
            .iter()
            .flat_map(|f| [Step::Send(f.clone()), pause(50)])
            .collect()
    };
    let mut cases = vec![
        Case::client(
            "5.1",
            g,
            "ping in two fragments fails the connection",
            vec![send(&[
                c(op::PING, false, "frag"),
                c(op::CONT, true, "ment"),
            ])],
            Expect::fail(1002),
        ),
        Case::client(
            "5.2",
            g,
            "pong in two fragments fails the connection",
            vec![send(&[
                c(op::PONG, false, "frag"),
                c(op::CONT, true, "ment"),
            ])],
            Expect::fail(1002),
        ),
        Case::client(
            "5.3",
            g,
            "text in two fragments, one write",
            vec![send(&[
                c(op::TEXT, false, "frag"),
                c(op::CONT, true, "ment"),
            ])],
            Expect::Echo(vec![text("fragment")]),
        ),
        Case::client(
            "5.4",
            g,
            "text in two fragments, 50 ms apart",
            paced(&[c(op::TEXT, false, "frag"), c(op::CONT, true, "ment")]),
            Expect::Echo(vec![text("fragment")]),
        ),
        Case::client(
            "5.5",
            g,
            "text in 20 one-byte fragments",
            vec![Step::Send(fragments(op::TEXT, &text_of(20), 1, true))],
            Expect::Echo(vec![text(text_of(20))]),
        ),
        Case::client(
            "5.6",
            g,
            "text in two fragments with a ping between them, one write",
            vec![send(&[
                c(op::TEXT, false, "frag"),
                c(op::PING, true, "between"),
                c(op::CONT, true, "ment"),
            ])],
            Expect::Echo(vec![pong("between"), text("fragment")]),
        ),
        Case::client(
            "5.7",
            g,
            "text in two fragments with a ping between them, 50 ms apart",
            paced(&[
                c(op::TEXT, false, "frag"),
                c(op::PING, true, "between"),
                c(op::CONT, true, "ment"),
            ]),
            Expect::Echo(vec![pong("between"), text("fragment")]),
        ),
        Case::client(
            "5.8",
            g,
            "text in two fragments with an unsolicited pong between them",
            vec![send(&[
                c(op::TEXT, false, "frag"),
                c(op::PONG, true, "between"),
                c(op::CONT, true, "ment"),
            ])],
            Expect::Echo(vec![text("fragment")]),
        ),
        Case::client(
            "5.9",
            g,
            "continuation (FIN) without a message fails the connection",
            vec![send(&[c(op::CONT, true, "orphan")])],
            Expect::fail(1002),
        ),
        Case::client(
            "5.10",
            g,
            "continuation (no FIN) without a message fails the connection",
            vec![send(&[c(op::CONT, false, "orphan")])],
            Expect::fail(1002),
        ),
        Case::client(
            "5.11",
            g,
            "continuation without a message, then a valid message",
            vec![send(&[
                c(op::CONT, false, "orphan"),
                c(op::TEXT, true, "valid"),
            ])],
            Expect::fail(1002),
        ),
        Case::client(
            "5.12",
            g,
            "a new text frame inside an open text message fails the connection",
            vec![send(&[
                c(op::TEXT, false, "open"),
                c(op::TEXT, true, "new"),
            ])],
            Expect::fail(1002),
        ),
        Case::client(
            "5.13",
            g,
            "a new binary frame inside an open text message fails the connection",
            vec![send(&[
                c(op::TEXT, false, "open"),
                c(op::BINARY, false, "new"),
            ])],
            Expect::fail(1002),
        ),
        Case::client(
            "5.14",
            g,
            "a new text frame inside an open binary message fails the connection",
            vec![send(&[
                c(op::BINARY, false, "open"),
                c(op::TEXT, false, "new"),
            ])],
            Expect::fail(1002),
        ),
        // The echo of the complete message is on its way when the orphan arrives: it is
        // delivered before the close (Autobahn 5.15).
        Case::client(
            "5.15",
            g,
            "a complete fragmented message, then an orphan continuation, in one write: the echo comes before the close",
            vec![send(&[
                c(op::TEXT, false, "frag"),
                c(op::CONT, true, "ment"),
                c(op::CONT, true, "orphan"),
                c(op::TEXT, true, "never"),
            ])],
            Expect::fail_after(vec![text("fragment")], 1002),
        )
        .python_echo_non_strict(PY_ECHO_CLOSES_FIRST),
        Case::client(
            "5.16",
            g,
            "a complete fragmented message, its echo awaited, then an orphan continuation",
            vec![
                send(&[c(op::TEXT, false, "frag"), c(op::CONT, true, "ment")]),
                Step::Await(text("fragment")),
                send(&[c(op::CONT, true, "orphan")]),
            ],
            Expect::fail_after(vec![text("fragment")], 1002),
        ),
        Case::client(
            "5.17",
            g,
            "close between the fragments of a message ends it cleanly",
            vec![send(&[
                c(op::TEXT, false, "never"),
                c(op::CLOSE, true, close_payload(1000, b"")),
            ])],
            Expect::Close {
                before: Vec::new(),
                codes: vec![Some(1000)],
            },
        )
        .python_echo_differs(super::PY_CLOSE_MID_MESSAGE),
        Case::client(
            "5.18",
            g,
            "binary in 100 fragments of 100 bytes",
            vec![Step::Send(fragments(
                op::BINARY,
                &binary_of(10_000),
                100,
                true,
            ))],
            Expect::Echo(vec![binary(binary_of(10_000))]),
        ),
        Case::client(
            "5.19",
            g,
            "binary in 1000 one-byte fragments",
            vec![Step::Send(fragments(op::BINARY, &binary_of(1000), 1, true))],
            Expect::Echo(vec![binary(binary_of(1000))]),
        ),
        Case::client(
            "5.20",
            g,
            "empty first and middle fragments",
            vec![send(&[
                c(op::TEXT, false, ""),
                c(op::CONT, false, ""),
                c(op::CONT, true, "x"),
            ])],
            Expect::Echo(vec![text("x")]),
        ),
        Case::client(
            "5.21",
            g,
            "a message made of empty fragments only",
            vec![send(&[
                c(op::BINARY, false, ""),
                c(op::CONT, false, ""),
                c(op::CONT, true, ""),
            ])],
            Expect::Echo(vec![binary("")]),
        ),
        Case::client(
            "5.22",
            g,
            "close frame without FIN fails the connection",
            vec![send(&[c(op::CLOSE, false, close_payload(1000, b""))])],
            Expect::fail(1002),
        ),
        Case::client(
            "5.23",
            g,
            "10 pings between the fragments of one binary message",
            vec![Step::Send(
                (0..10)
                    .flat_map(|i| {
                        let code = if i == 0 { op::BINARY } else { op::CONT };
                        [
                            c(code, false, vec![i as u8; 10]),
                            c(op::PING, true, format!("{i}")),
                        ]
                    })
                    .chain([c(op::CONT, true, "end")])
                    .collect::<Vec<_>>()
                    .concat(),
            )],
            Expect::Echo({
                let mut body: Vec<u8> = (0..10u8).flat_map(|i| [i; 10]).collect();
                body.extend_from_slice(b"end");
                let mut replies: Vec<_> = (0..10).map(|i| pong(format!("{i}"))).collect();
                replies.push(binary(body));
                replies
            }),
        ),
        Case::client(
            "5.24",
            g,
            "fragments of 1, 70000 and 1 bytes (a fragment larger than the relay's buffer)",
            vec![send(&[
                c(op::BINARY, false, vec![1u8]),
                c(op::CONT, false, binary_of(70_000)),
                c(op::CONT, true, vec![2u8]),
            ])],
            Expect::Echo(vec![binary(
                [vec![1u8], binary_of(70_000), vec![2u8]].concat(),
            )]),
        ),
        Case::client(
            "5.25",
            g,
            "a fragmented text message with a ping between, written one byte at a time",
            vec![chunked(
                [
                    c(op::TEXT, false, "frag"),
                    c(op::PING, true, "between"),
                    c(op::CONT, true, "ment"),
                ]
                .concat(),
                1,
            )],
            Expect::Echo(vec![pong("between"), text("fragment")]),
        ),
        Case::client(
            "5.26",
            g,
            "two fragmented messages back to back",
            vec![send(&[
                c(op::TEXT, false, "one-"),
                c(op::CONT, true, "a"),
                c(op::BINARY, false, "two-"),
                c(op::CONT, true, "b"),
            ])],
            Expect::Echo(vec![text("one-a"), binary("two-b")]),
        ),
    ];
    for case in &mut cases {
        case.deadline = Duration::from_secs(10);
    }
    cases
}
