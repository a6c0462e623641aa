//! Groups 9 (limits and throughput) and 10 (miscellaneous).

use std::time::Duration;

use super::{binary, binary_of, c, fragments, pause, send, text, text_of};
use crate::case::{Case, Expect, Group, Step};
use crate::harness::{LIMITED_FRAME, LIMITED_MESSAGE};
use crate::wire::{op, Frame};

const MIB: usize = 1 << 20;

/// Group 9.
pub fn limits() -> Vec<Case> {
    let g = Group::Limits;
    let long = Duration::from_secs(60);
    let mut cases = Vec::new();
    let sizes = [64 * 1024, 256 * 1024, MIB, 4 * MIB, 16 * MIB];
    for (i, &n) in sizes.iter().enumerate() {
        cases.push(
            Case::client(
                format!("9.1.{}", i + 1),
                g,
                format!("text message of {} KiB in one frame", n / 1024),
                vec![send(&[c(op::TEXT, true, text_of(n))])],
                Expect::Echo(vec![text(text_of(n))]),
            )
            .deadline(long),
        );
    }
    for (i, &n) in sizes.iter().enumerate() {
        cases.push(
            Case::client(
                format!("9.2.{}", i + 1),
                g,
                format!("binary message of {} KiB in one frame", n / 1024),
                vec![send(&[c(op::BINARY, true, binary_of(n))])],
                Expect::Echo(vec![binary(binary_of(n))]),
            )
            .deadline(long),
        );
    }
    let fragment_sizes = [64usize, 256, 1024, 4096, 65536, MIB];
    for (i, &f) in fragment_sizes.iter().enumerate() {
        let n = if f < 1024 { MIB } else { 4 * MIB };
        cases.push(
            Case::client(
                format!("9.3.{}", i + 1),
                g,
                format!("text message of {} KiB in fragments of {f} bytes", n / 1024),
                vec![Step::Send(fragments(op::TEXT, &text_of(n), f, true))],
                Expect::Echo(vec![text(text_of(n))]),
            )
            .deadline(long),
        );
    }
    for (i, &f) in fragment_sizes.iter().enumerate() {
        let n = if f < 1024 { MIB } else { 4 * MIB };
        cases.push(
            Case::client(
                format!("9.4.{}", i + 1),
                g,
                format!(
                    "binary message of {} KiB in fragments of {f} bytes",
                    n / 1024
                ),
                vec![Step::Send(fragments(op::BINARY, &binary_of(n), f, true))],
                Expect::Echo(vec![binary(binary_of(n))]),
            )
            .deadline(long),
        );
    }
    let small: Vec<Vec<u8>> = (0..1000).map(|_| c(op::TEXT, true, text_of(32))).collect();
    cases.push(
        Case::client(
            "9.5.1",
            g,
            "1000 text messages of 32 bytes in one write",
            vec![send(&small)],
            Expect::Echo(vec![text(text_of(32)); 1000]),
        )
        .deadline(long),
    );
    let tiny: Vec<Vec<u8>> = (0..10_000)
        .map(|i| c(op::BINARY, true, vec![i as u8; 16]))
        .collect();
    cases.push(
        Case::client(
            "9.5.2",
            g,
            "10000 binary messages of 16 bytes in one write",
            vec![send(&tiny)],
            Expect::Echo((0..10_000).map(|i| binary(vec![i as u8; 16])).collect()),
        )
        .deadline(long),
    );
    let frame = LIMITED_FRAME as usize;
    let message = LIMITED_MESSAGE as usize;
    let limited = vec![
        Case::client(
            "9.6.1",
            g,
            format!(
                "limited relay: a frame of exactly the limit ({} KiB) passes",
                frame / 1024
            ),
            vec![send(&[c(op::BINARY, true, binary_of(frame))])],
            Expect::Echo(vec![binary(binary_of(frame))]),
        ),
        Case::client(
            "9.6.2",
            g,
            "limited relay: a frame one byte over the limit gets 1009",
            vec![send(&[c(op::BINARY, true, binary_of(frame + 1))])],
            Expect::fail(1009),
        ),
        Case::client(
            "9.6.3",
            g,
            "limited relay: a frame header announcing 2^40 bytes gets 1009 at once",
            vec![
                Step::Send({
                    let mut h = vec![0x82, 0xff];
                    h.extend_from_slice(&(1u64 << 40).to_be_bytes());
                    h.extend_from_slice(&[1, 2, 3, 4]);
                    h
                }),
                pause(1000),
            ],
            Expect::fail(1009),
        )
        .fail_within(Duration::from_millis(800)),
        Case::client(
            "9.6.4",
            g,
            format!(
                "limited relay: a message of exactly the limit ({} KiB) in 1 MiB fragments passes",
                message / 1024
            ),
            vec![Step::Send(fragments(
                op::BINARY,
                &binary_of(message),
                frame,
                true,
            ))],
            Expect::Echo(vec![binary(binary_of(message))]),
        ),
        Case::client(
            "9.6.5",
            g,
            "limited relay: a message one byte over the limit gets 1009",
            vec![Step::Send(fragments(
                op::BINARY,
                &binary_of(message + 1),
                frame,
                true,
            ))],
            Expect::fail(1009),
        ),
        Case::client(
            "9.6.6",
            g,
            "limited relay: text over the frame limit gets 1009, not 1007",
            vec![send(&[c(op::TEXT, true, text_of(frame + 10))])],
            Expect::fail(1009),
        ),
    ];
    cases.extend(limited.into_iter().map(|c| c.limited().deadline(long)));
    cases
}

/// Group 10.
pub fn misc() -> Vec<Case> {
    let g = Group::Misc;
    let payload = binary_of(65536);
    let mut cases = Vec::new();
    for (i, size) in [1usize, 10, 100, 1000, 4096, 65535].into_iter().enumerate() {
        cases.push(
            Case::client(
                format!("10.1.{}", i + 1),
                g,
                format!(
                    "64 KiB binary message fragmented into {size}-byte frames arrives unchanged"
                ),
                vec![Step::Send(fragments(op::BINARY, &payload, size, true))],
                Expect::Echo(vec![binary(payload.clone())]),
            )
            .deadline(Duration::from_secs(30)),
        );
    }
    let keys: [[u8; 4]; 3] = [
        [1, 2, 3, 4],
        [0x80, 0, 0xff, 0x7f],
        [0xaa, 0x55, 0xaa, 0x55],
    ];
    cases.push(Case::client(
        "10.2.1",
        g,
        "a different masking key on every fragment",
        vec![Step::Send(
            keys.iter()
                .enumerate()
                .map(|(i, k)| {
                    let code = if i == 0 { op::TEXT } else { op::CONT };
                    Frame::client(code, i == 2, "abcdefg")
                        .mask(Some(*k))
                        .encode()
                })
                .collect::<Vec<_>>()
                .concat(),
        )],
        Expect::Echo(vec![text("abcdefgabcdefgabcdefg")]),
    ));
    cases.push(Case::client(
        "10.2.2",
        g,
        "payload bytes that equal the masking key",
        vec![Step::Send(
            Frame::client(op::BINARY, true, crate::wire::MASK_KEY.repeat(20)).encode(),
        )],
        Expect::Echo(vec![binary(crate::wire::MASK_KEY.repeat(20))]),
    ));
    cases.push(Case::client(
        "10.3.1",
        g,
        "text and binary messages interleaved with pings, 200 in one write",
        vec![Step::Send(
            (0..200)
                .map(|i| match i % 3 {
                    0 => c(op::TEXT, true, text_of(i)),
                    1 => c(op::BINARY, true, binary_of(i)),
                    _ => c(op::PING, true, format!("{i}")),
                })
                .collect::<Vec<_>>()
                .concat(),
        )],
        Expect::Echo(
            (0..200)
                .map(|i| match i % 3 {
                    0 => text(text_of(i)),
                    1 => binary(binary_of(i)),
                    _ => super::pong(format!("{i}")),
                })
                .collect(),
        ),
    ));
    cases
}
