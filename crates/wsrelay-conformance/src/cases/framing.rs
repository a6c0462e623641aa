//! Groups 1 (framing) and 2 (pings and pongs).

use std::time::Duration;

use super::{binary, binary_of, c, chunked, pong, send, text, text_of};
use crate::case::{Case, Expect, Group, Step};
use crate::wire::{op, Frame, LenForm};

/// Payload sizes around every length-encoding boundary.
const SIZES: [usize; 10] = [0, 1, 125, 126, 127, 128, 65535, 65536, 65537, 1 << 20];

/// Group 1.
pub fn framing() -> Vec<Case> {
    let g = Group::Framing;
    let mut cases = Vec::new();
    for (i, &n) in SIZES.iter().enumerate() {
        cases.push(Case::client(
            format!("1.1.{}", i + 1),
            g,
            format!("text message of {n} bytes in one frame"),
            vec![send(&[c(op::TEXT, true, text_of(n))])],
            Expect::Echo(vec![text(text_of(n))]),
        ));
    }
    for (i, &n) in SIZES.iter().enumerate() {
        cases.push(Case::client(
            format!("1.2.{}", i + 1),
            g,
            format!("binary message of {n} bytes in one frame"),
            vec![send(&[c(op::BINARY, true, binary_of(n))])],
            Expect::Echo(vec![binary(binary_of(n))]),
        ));
    }
    let chunkings: [(u8, usize, usize); 10] = [
        (op::TEXT, 130, 1),
        (op::TEXT, 4099, 1),
        (op::BINARY, 4099, 2),
        (op::BINARY, 4099, 3),
        (op::TEXT, 4099, 5),
        (op::BINARY, 4099, 7),
        (op::BINARY, 70000, 13),
        (op::TEXT, 70000, 64),
        (op::BINARY, 70000, 1000),
        (op::BINARY, 1 << 20, 4093),
    ];
    for (i, &(opcode, n, chunk)) in chunkings.iter().enumerate() {
        let (payload, want) = if opcode == op::TEXT {
            (text_of(n), text(text_of(n)))
        } else {
            (binary_of(n), binary(binary_of(n)))
        };
        let kind = if opcode == op::TEXT { "text" } else { "binary" };
        cases.push(
            Case::client(
                format!("1.3.{}", i + 1),
                g,
                format!(
                    "{kind} frame of {n} bytes written {chunk} byte(s) at a time, header included"
                ),
                vec![chunked(c(opcode, true, payload), chunk)],
                Expect::Echo(vec![want]),
            )
            .deadline(Duration::from_secs(30)),
        );
    }
    // (what, bytes, the echo expected or None for a 1002)
    type Encoding = (&'static str, Vec<u8>, Option<Vec<u8>>);
    let encodings: [Encoding; 7] = [
        (
            "5-byte payload with a 16-bit length (non-minimal)",
            Frame::client(op::TEXT, true, "hello")
                .len_form(LenForm::Force16)
                .encode(),
            None,
        ),
        (
            "5-byte payload with a 64-bit length (non-minimal)",
            Frame::client(op::TEXT, true, "hello")
                .len_form(LenForm::Force64)
                .encode(),
            None,
        ),
        (
            "200-byte payload with a 64-bit length (non-minimal)",
            Frame::client(op::BINARY, true, binary_of(200))
                .len_form(LenForm::Force64)
                .encode(),
            None,
        ),
        (
            "64-bit length with the most significant bit set",
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
            None,
        ),
        (
            "unmasked frame from the client",
            Frame::client(op::TEXT, true, "hello").mask(None).encode(),
            None,
        ),
        (
            "masking key of all zero bits (valid)",
            Frame::client(op::TEXT, true, "hello")
                .mask(Some([0; 4]))
                .encode(),
            Some(b"hello".to_vec()),
        ),
        (
            "masking key of all one bits (valid)",
            Frame::client(op::TEXT, true, "hello")
                .mask(Some([0xff; 4]))
                .encode(),
            Some(b"hello".to_vec()),
        ),
    ];
    for (i, (what, bytes, echo)) in encodings.into_iter().enumerate() {
        let expect = match echo {
            Some(p) => Expect::Echo(vec![text(p)]),
            None => Expect::fail(1002),
        };
        cases.push(Case::client(
            format!("1.4.{}", i + 1),
            g,
            what,
            vec![Step::Send(bytes)],
            expect,
        ));
    }
    let ten: Vec<Vec<u8>> = (0..10)
        .map(|i| c(op::TEXT, true, text_of(i * 10)))
        .collect();
    cases.push(Case::client(
        "1.5.1",
        g,
        "10 text messages of growing size in one write",
        vec![send(&ten)],
        Expect::Echo((0..10).map(|i| text(text_of(i * 10))).collect()),
    ));
    let hundred: Vec<Vec<u8>> = (0..100)
        .map(|i| c(op::BINARY, true, vec![i as u8]))
        .collect();
    cases.push(Case::client(
        "1.5.2",
        g,
        "100 one-byte binary messages in one write",
        vec![send(&hundred)],
        Expect::Echo((0..100).map(|i| binary(vec![i as u8])).collect()),
    ));
    cases
}

/// Group 2.
pub fn ping_pong() -> Vec<Case> {
    let g = Group::PingPong;
    let bin8 = vec![0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff];
    let mut cases = vec![
        Case::client(
            "2.1",
            g,
            "ping without payload gets an empty pong",
            vec![send(&[c(op::PING, true, "")])],
            Expect::Echo(vec![pong("")]),
        ),
        Case::client(
            "2.2",
            g,
            "ping with a text payload gets the same pong",
            vec![send(&[c(op::PING, true, "Hello, world!")])],
            Expect::Echo(vec![pong("Hello, world!")]),
        ),
        Case::client(
            "2.3",
            g,
            "ping with a binary payload gets the same pong",
            vec![send(&[c(op::PING, true, bin8.clone())])],
            Expect::Echo(vec![pong(bin8)]),
        ),
        Case::client(
            "2.4",
            g,
            "ping with 125 bytes (the most a control frame holds)",
            vec![send(&[c(op::PING, true, binary_of(125))])],
            Expect::Echo(vec![pong(binary_of(125))]),
        ),
        Case::client(
            "2.5",
            g,
            "ping with 126 bytes fails the connection",
            vec![send(&[c(op::PING, true, binary_of(126))])],
            Expect::fail(1002),
        ),
        Case::client(
            "2.6",
            g,
            "ping with 125 bytes written one byte at a time",
            vec![chunked(c(op::PING, true, binary_of(125)), 1)],
            Expect::Echo(vec![pong(binary_of(125))]),
        ),
        Case::client(
            "2.7",
            g,
            "unsolicited pong without payload: no reply",
            vec![send(&[c(op::PONG, true, "")])],
            Expect::Echo(vec![]),
        ),
        Case::client(
            "2.8",
            g,
            "unsolicited pong with payload: no reply",
            vec![send(&[c(op::PONG, true, "unsolicited")])],
            Expect::Echo(vec![]),
        ),
        Case::client(
            "2.9",
            g,
            "unsolicited pong, then a ping: only the ping's pong comes back",
            vec![send(&[
                c(op::PONG, true, "unsolicited"),
                c(op::PING, true, "solicited"),
            ])],
            Expect::Echo(vec![pong("solicited")]),
        ),
        Case::client(
            "2.10",
            g,
            "10 pings in one write get 10 pongs in order",
            vec![send(
                &(0..10)
                    .map(|i| c(op::PING, true, format!("ping {i}")))
                    .collect::<Vec<_>>(),
            )],
            Expect::Echo((0..10).map(|i| pong(format!("ping {i}"))).collect()),
        ),
        Case::client(
            "2.11",
            g,
            "10 pings written one byte at a time get 10 pongs in order",
            vec![chunked(
                (0..10)
                    .map(|i| c(op::PING, true, format!("ping {i}")))
                    .collect::<Vec<_>>()
                    .concat(),
                1,
            )],
            Expect::Echo((0..10).map(|i| pong(format!("ping {i}"))).collect()),
        ),
        Case::client(
            "2.12",
            g,
            "text, ping, text: replies keep their order",
            vec![send(&[
                c(op::TEXT, true, "one"),
                c(op::PING, true, "p"),
                c(op::TEXT, true, "two"),
            ])],
            Expect::Echo(vec![text("one"), pong("p"), text("two")]),
        ),
    ];
    for (i, n) in [1usize, 2, 63, 64, 124].into_iter().enumerate() {
        cases.push(Case::client(
            format!("2.13.{}", i + 1),
            g,
            format!("ping with {n} bytes of payload"),
            vec![send(&[c(op::PING, true, binary_of(n))])],
            Expect::Echo(vec![pong(binary_of(n))]),
        ));
    }
    cases.push(Case::client(
        "2.14",
        g,
        "ping with a 64-bit length field holding 2^32 fails the connection (control frame too long)",
        vec![Step::Send(vec![0x89, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4])],
        Expect::fail(1002),
    ));
    cases
}
