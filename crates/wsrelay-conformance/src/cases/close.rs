//! Group 7: the closing handshake.

use std::time::{Duration, Instant};

use super::{c, send, text, text_of};
use crate::case::{Case, CustomResult, Expect, Group, Msg, Profile, Step};
use crate::harness::{Env, LIMITED_CLOSE_TIMEOUT};
use crate::peer::Event;
use crate::wire::{close_payload, op};

/// Why an echo may answer a close before echoing the message that came just before it.
const CLOSE_FIRST: &str = "RFC 6455 §5.5.1: \"the endpoint MUST send a Close frame in response. ... It SHOULD do \
so as soon as practical. An endpoint MAY delay sending a Close frame until its current message is sent\" — an echo \
that answers the close first never sends the echo (no data frames after a Close).";

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    c(op::CLOSE, true, close_payload(code, reason))
}

fn closes_with(code: Option<u16>) -> Expect {
    Expect::Close {
        before: Vec::new(),
        codes: vec![code],
    }
}

/// Group 7.
pub fn cases() -> Vec<Case> {
    let g = Group::Close;
    let mut cases = vec![
        Case::client(
            "7.1.1",
            g,
            "text then close 1000: the text comes back, then the close",
            vec![send(&[c(op::TEXT, true, "Hello"), close(1000, b"")])],
            Expect::fail_after(vec![text("Hello")], 1000),
        )
        .non_strict(CLOSE_FIRST),
        Case::client(
            "7.1.2",
            g,
            "close, then a second close: one close comes back",
            vec![send(&[close(1000, b""), close(1000, b"")])],
            closes_with(Some(1000)),
        ),
        Case::client(
            "7.1.3",
            g,
            "close, then a ping: no pong after the close",
            vec![send(&[close(1000, b""), c(op::PING, true, "late")])],
            closes_with(Some(1000)),
        ),
        Case::client(
            "7.1.4",
            g,
            "close, then a text message: not echoed",
            vec![send(&[close(1000, b""), c(op::TEXT, true, "late")])],
            closes_with(Some(1000)),
        ),
        Case::client(
            "7.1.5",
            g,
            "a fragment, a close, then the last fragment: only the close comes back",
            vec![send(&[
                c(op::TEXT, false, "frag"),
                close(1000, b""),
                c(op::CONT, true, "ment"),
            ])],
            closes_with(Some(1000)),
        )
        .python_echo_differs(super::PY_CLOSE_MID_MESSAGE),
        Case::client(
            "7.1.6",
            g,
            "a 256 KiB text, a close, then a ping: the text comes back before the close",
            vec![send(&[
                c(op::TEXT, true, text_of(256 * 1024)),
                close(1000, b""),
                c(op::PING, true, ""),
            ])],
            Expect::fail_after(vec![text(text_of(256 * 1024))], 1000),
        )
        .non_strict(CLOSE_FIRST),
        Case::client(
            "7.3.1",
            g,
            "close without payload: a close comes back (echoing no code, or 1000)",
            vec![send(&[c(op::CLOSE, true, "")])],
            Expect::Close {
                before: Vec::new(),
                codes: vec![None, Some(1000)],
            },
        ),
        Case::client(
            "7.3.2",
            g,
            "close with a 1-byte payload fails the connection",
            vec![send(&[c(op::CLOSE, true, [0x03])])],
            Expect::fail(1002),
        ),
        Case::client(
            "7.3.3",
            g,
            "close 1000 without a reason",
            vec![send(&[close(1000, b"")])],
            closes_with(Some(1000)),
        ),
        Case::client(
            "7.3.4",
            g,
            "close 1000 with a reason",
            vec![send(&[close(1000, b"Hello World!")])],
            closes_with(Some(1000)),
        ),
        Case::client(
            "7.3.5",
            g,
            "close with a 123-byte reason (125 bytes of payload)",
            vec![send(&[close(1000, &text_of(123))])],
            closes_with(Some(1000)),
        ),
        Case::client(
            "7.3.6",
            g,
            "close with a 124-byte reason (126 bytes: too long for a control frame)",
            vec![send(&[close(1000, &text_of(124))])],
            Expect::fail(1002),
        ),
        Case::client(
            "7.5.1",
            g,
            "close with a reason that is not UTF-8",
            vec![send(&[close(
                1000,
                &[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xed, 0xa0, 0x80],
            )])],
            Expect::fail(1007),
        ),
    ];
    let valid = [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ];
    for (i, code) in valid.into_iter().enumerate() {
        cases.push(Case::client(
            format!("7.7.{}", i + 1),
            g,
            format!("close with valid code {code} is relayed and answered"),
            vec![send(&[close(code, b"")])],
            closes_with(Some(code)),
        ));
    }
    let invalid = [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ];
    for (i, code) in invalid.into_iter().enumerate() {
        cases.push(Case::client(
            format!("7.9.{}", i + 1),
            g,
            format!("close with code {code}, which must not be sent, fails the connection"),
            vec![send(&[close(code, b"")])],
            Expect::fail(1002),
        ));
    }
    cases.push(Case::custom(
        "7.13.1",
        g,
        "the upstream closes and the client never answers the forwarded close",
        "client gets close 1000, then tcp close within the close timeout (1 s) + 1 s",
        |env| Box::pin(close_timeout(env)),
    ));
    cases.push(
        Case::client(
            "7.13.2",
            g,
            "close while a 1 MiB message is still arriving from the echo",
            vec![send(&[
                c(op::BINARY, true, vec![7u8; 1 << 20]),
                close(1000, b"bye"),
            ])],
            Expect::Close {
                before: vec![Msg::Binary(vec![7u8; 1 << 20])],
                codes: vec![Some(1000)],
            },
        )
        .non_strict(CLOSE_FIRST),
    );
    cases.push(Case::client(
        "7.13.3",
        g,
        "close code 1000 with a reason is answered after a pause",
        vec![
            Step::Pause(Duration::from_millis(100)),
            send(&[close(1000, b"after a pause")]),
        ],
        closes_with(Some(1000)),
    ));
    cases
}

/// 7.13.1: the upstream closes; the client reads the forwarded close and never answers.
async fn close_timeout(_env: Env) -> CustomResult {
    let pair = match super::intermediary::pair_with(&[], Profile::Limited).await {
        Ok(p) => p,
        Err(e) => {
            return CustomResult {
                observed: e.clone(),
                verdict: Err(e),
            }
        }
    };
    let (_relay, mut client, mut upstream) = super::intermediary::drivers(pair);
    upstream
        .send(&super::s(op::CLOSE, true, close_payload(1000, b"upstream")))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut closed_at = None;
    let mut ended_at = None;
    while let Some(event) = client.next(deadline).await {
        match event {
            Event::Close { .. } => closed_at = Some(Instant::now()),
            Event::Eof | Event::Reset(_) => {
                ended_at = Some(Instant::now());
                break;
            }
            _ => {}
        }
    }
    let mut observed = format!("client: {}", client.seen.describe());
    let verdict = match (client.seen.close(), closed_at, ended_at) {
        (Some((_, Some(1000))), Some(closed), Some(ended)) => {
            let waited = ended.duration_since(closed);
            observed.push_str(&format!(
                ", tcp close {} ms after the close frame",
                waited.as_millis()
            ));
            if waited <= LIMITED_CLOSE_TIMEOUT + Duration::from_secs(1) {
                Ok(())
            } else {
                Err(format!(
                    "the relay held the connection {} ms",
                    waited.as_millis()
                ))
            }
        }
        (Some((_, code)), _, None) => Err(format!("close {code:?} but the connection stayed open")),
        (close, _, _) => Err(format!(
            "expected close 1000 and a tcp close, got {close:?}"
        )),
    };
    CustomResult { observed, verdict }
}
