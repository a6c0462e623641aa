//! Group 6: UTF-8 in text messages.

use std::time::Duration;

use super::{binary, c, fragments, pause, send, text};
use crate::case::{Case, Expect, Group, Step};
use crate::wire::op;

/// Valid UTF-8, named.
const VALID: [(&str, &[u8]); 16] = [
    (
        "ASCII with Latin-1 letters",
        "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
    ),
    ("Greek \"kosme\"", "κόσμε".as_bytes()),
    ("U+0080, the first 2-byte code point", &[0xc2, 0x80]),
    ("U+07FF, the last 2-byte code point", &[0xdf, 0xbf]),
    ("U+0800, the first 3-byte code point", &[0xe0, 0xa0, 0x80]),
    ("U+FFFF, the last 3-byte code point", &[0xef, 0xbf, 0xbf]),
    (
        "U+10000, the first 4-byte code point",
        &[0xf0, 0x90, 0x80, 0x80],
    ),
    ("U+10FFFF, the last code point", &[0xf4, 0x8f, 0xbf, 0xbf]),
    ("U+D7FF, just below the surrogates", &[0xed, 0x9f, 0xbf]),
    ("U+E000, just above the surrogates", &[0xee, 0x80, 0x80]),
    ("U+FFFD, the replacement character", &[0xef, 0xbf, 0xbd]),
    ("U+FEFF, a byte order mark", &[0xef, 0xbb, 0xbf]),
    ("NUL characters", &[0, 0, 0]),
    ("an emoji", "😀".as_bytes()),
    ("mixed widths", "a€𝄞é".as_bytes()),
    (
        "U+FFFE and U+FFFF (noncharacters are valid)",
        &[0xef, 0xbf, 0xbe, 0xef, 0xbf, 0xbf],
    ),
];

/// Invalid UTF-8, named.
const INVALID: [(&str, &[u8]); 36] = [
    ("a lone continuation byte 0x80", &[0x80]),
    ("a lone continuation byte 0xBF", &[0xbf]),
    ("two continuation bytes", &[0x80, 0xbf]),
    ("four continuation bytes", &[0x80, 0xbf, 0x80, 0xbf]),
    ("a 2-byte start followed by a space", &[0xc2, 0x20]),
    ("a 3-byte start followed by a space", &[0xe0, 0x20]),
    ("a 4-byte start followed by a space", &[0xf0, 0x20]),
    ("the byte 0xF8", &[0xf8]),
    ("the byte 0xFC", &[0xfc]),
    ("the byte 0xFE", &[0xfe]),
    ("the byte 0xFF", &[0xff]),
    ("0xFE 0xFE 0xFF 0xFF", &[0xfe, 0xfe, 0xff, 0xff]),
    ("a 2-byte sequence cut at the end", &[0x41, 0xc2]),
    ("a 3-byte sequence cut at the end", &[0x41, 0xe0, 0xa0]),
    (
        "a 4-byte sequence cut at the end",
        &[0x41, 0xf0, 0x90, 0x80],
    ),
    ("overlong '/' in 2 bytes", &[0xc0, 0xaf]),
    ("overlong '/' in 3 bytes", &[0xe0, 0x80, 0xaf]),
    ("overlong '/' in 4 bytes", &[0xf0, 0x80, 0x80, 0xaf]),
    ("overlong NUL in 2 bytes", &[0xc0, 0x80]),
    ("largest overlong 2-byte sequence", &[0xc1, 0xbf]),
    ("largest overlong 3-byte sequence", &[0xe0, 0x9f, 0xbf]),
    (
        "largest overlong 4-byte sequence",
        &[0xf0, 0x8f, 0xbf, 0xbf],
    ),
    ("a 5-byte form", &[0xf8, 0x88, 0x80, 0x80, 0x80]),
    ("surrogate U+D800", &[0xed, 0xa0, 0x80]),
    ("surrogate U+DB7F", &[0xed, 0xad, 0xbf]),
    ("surrogate U+DB80", &[0xed, 0xae, 0x80]),
    ("surrogate U+DBFF", &[0xed, 0xaf, 0xbf]),
    ("surrogate U+DC00", &[0xed, 0xb0, 0x80]),
    ("surrogate U+DF80", &[0xed, 0xbe, 0x80]),
    ("surrogate U+DFFF", &[0xed, 0xbf, 0xbf]),
    (
        "a surrogate pair U+D800 U+DC00",
        &[0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80],
    ),
    (
        "U+110000, above the last code point",
        &[0xf4, 0x90, 0x80, 0x80],
    ),
    ("a 4-byte start 0xF5", &[0xf5, 0x80, 0x80, 0x80]),
    ("a 4-byte start 0xF7", &[0xf7, 0xbf, 0xbf, 0xbf]),
    (
        "\"kosme\" then a surrogate then \"edited\"",
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            0x65, 0x64, 0x69, 0x74, 0x65, 0x64,
        ],
    ),
    (
        "valid text with one 0xFF in the middle",
        &[0x61, 0x62, 0x63, 0xff, 0x64, 0x65],
    ),
];

/// Group 6.
pub fn cases() -> Vec<Case> {
    let g = Group::Utf8;
    let mut cases = Vec::new();
    for (i, (what, bytes)) in VALID.iter().enumerate() {
        cases.push(Case::client(
            format!("6.1.{}", i + 1),
            g,
            format!("valid: {what}, one frame"),
            vec![send(&[c(op::TEXT, true, *bytes)])],
            Expect::Echo(vec![text(*bytes)]),
        ));
    }
    for (i, (what, bytes)) in VALID.iter().enumerate() {
        cases.push(Case::client(
            format!("6.2.{}", i + 1),
            g,
            format!("valid: {what}, one byte per fragment"),
            vec![Step::Send(fragments(op::TEXT, bytes, 1, true))],
            Expect::Echo(vec![text(*bytes)]),
        ));
    }
    for (i, (what, bytes)) in INVALID.iter().enumerate() {
        cases.push(Case::client(
            format!("6.3.{}", i + 1),
            g,
            format!("invalid: {what}, one frame"),
            vec![send(&[c(op::TEXT, true, *bytes)])],
            Expect::fail(1007),
        ));
    }
    for (i, (what, bytes)) in INVALID.iter().enumerate() {
        cases.push(Case::client(
            format!("6.4.{}", i + 1),
            g,
            format!("invalid: {what}, one byte per fragment"),
            vec![Step::Send(fragments(op::TEXT, bytes, 1, true))],
            Expect::fail(1007),
        ));
    }
    let straddling = "κόσμε𝄞".as_bytes();
    for split in 1..straddling.len() {
        cases.push(Case::client(
            format!("6.5.{split}"),
            g,
            format!("\"κόσμε𝄞\" in two fragments split after byte {split}"),
            vec![send(&[
                c(op::TEXT, false, &straddling[..split]),
                c(op::CONT, true, &straddling[split..]),
            ])],
            Expect::Echo(vec![text(straddling)]),
        ));
    }
    // Fail fast: the message never ends, so only a relay that checks as bytes arrive answers.
    let fast = Duration::from_millis(800);
    let fail_fast: [(&str, Vec<Step>); 4] = [
        (
            "invalid byte in the first fragment of a message that never ends",
            vec![
                send(&[c(op::TEXT, false, [0x61, 0xf4, 0x90, 0x80, 0x80])]),
                pause(1000),
            ],
        ),
        (
            "invalid byte in the second fragment of a message that never ends",
            vec![
                send(&[
                    c(op::TEXT, false, "κόσμε"),
                    c(op::CONT, false, [0xed, 0xa0, 0x80]),
                ]),
                pause(1000),
            ],
        ),
        (
            "invalid byte inside a frame whose rest is never sent",
            vec![
                Step::Send({
                    let frame = c(
                        op::TEXT,
                        true,
                        [b"abc".as_slice(), &[0xff], &[b'x'; 60]].concat(),
                    );
                    frame[..10].to_vec()
                }),
                pause(1000),
            ],
        ),
        (
            "a code point cut between fragments, then an invalid continuation",
            vec![
                send(&[c(op::TEXT, false, [0xce]), c(op::CONT, false, [0x41])]),
                pause(1000),
            ],
        ),
    ];
    for (i, (what, steps)) in fail_fast.into_iter().enumerate() {
        cases.push(
            Case::client(
                format!("6.6.{}", i + 1),
                g,
                format!("fail fast: {what}"),
                steps,
                Expect::fail(1007),
            )
            .fail_within(fast),
        );
    }
    cases.push(Case::client(
        "6.7.1",
        g,
        "binary message with invalid UTF-8 is not checked",
        vec![send(&[c(op::BINARY, true, [0xff, 0xfe, 0xed, 0xa0, 0x80])])],
        Expect::Echo(vec![binary([0xff, 0xfe, 0xed, 0xa0, 0x80])]),
    ));
    cases.push(Case::client(
        "6.7.2",
        g,
        "valid text, then an invalid one: the first is echoed, then 1007",
        vec![
            send(&[c(op::TEXT, true, "valid")]),
            Step::Await(text("valid")),
            send(&[c(op::TEXT, true, [0xc0, 0xaf])]),
        ],
        Expect::fail_after(vec![text("valid")], 1007),
    ));
    cases
}
