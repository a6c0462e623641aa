//! The public API as a gateway uses it (both handshakes end to end), and property tests: no
//! parser panics on any input, `consumed` never exceeds the input, and a valid head split at
//! any point is `Partial` until its last byte.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use proptest::prelude::*;
use wsrelay_handshake::*;

fn complete<T: std::fmt::Debug>(parsed: Result<Parsed<T>, HandshakeError>) -> (T, usize) {
    match parsed {
        Ok(Parsed::Complete { value, consumed }) => (value, consumed),
        other => panic!("expected a complete head, got {other:?}"),
    }
}

/// A browser's request through the gateway to an upstream that refuses it, then to one that
/// accepts it: every step a gateway takes, with this crate only.
#[test]
fn gateway_flow_end_to_end() {
    let limits = Limits::default();
    let client_bytes =
        b"GET /chat?room=7 HTTP/1.1\r\nHost: chat.example\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nOrigin: https://chat.example\r\nSec-WebSocket-Version: 13\r\n\
        Cookie: session=abc\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
        Sec-WebSocket-Protocol: v2.chat, v1.chat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    let (head, consumed) = complete(RequestHead::parse(client_bytes, &limits));
    assert_eq!(consumed, client_bytes.len());
    assert!(head.is_upgrade_attempt());
    let ws = head.validate_websocket().unwrap();
    assert_eq!(ws.accept(), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");

    // The upstream leg.
    let ctx = ForwardContext {
        client_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        secure: true,
        host: head.host(),
        trusted: false,
        forwarded: false,
    };
    let upstream = WsUri::parse("ws://10.0.0.5:8080/backend").unwrap();
    let mut request = UpgradeRequest::new(&upstream)
        .unwrap()
        .with_target(&format!("/backend{}", head.target))
        .with_protocols(&ws.protocols)
        .with_extensions(&ws.extensions);
    for header in forward_request_headers(&head, &ctx) {
        request = request.with_header(&header.name, &header.value).unwrap();
    }
    let mut wire = Vec::new();
    request.encode(&mut wire);

    // The upstream (this crate again) sees a clean request.
    let ((up_head, up_ws), _) = complete(parse_upgrade_request(&wire, &limits));
    assert_eq!(up_head.target, "/backend/chat?room=7");
    assert_eq!(up_head.host(), Some("10.0.0.5:8080"));
    assert_eq!(up_head.header_str("Cookie"), Some("session=abc"));
    assert_eq!(up_head.header_str("X-Forwarded-For"), Some("203.0.113.9"));
    assert_eq!(up_head.header_str("X-Forwarded-Host"), Some("chat.example"));
    assert_eq!(up_head.header_str("X-Forwarded-Proto"), Some("https"));
    assert_eq!(up_ws.protocols, ws.protocols);
    assert_eq!(up_ws.extensions, ws.extensions);
    assert_ne!(up_ws.key, ws.key, "each leg has its own key");

    // First upstream: refuses with a body; the gateway relays it.
    let refusal = b"HTTP/1.1 403 Forbidden\r\nConnection: keep-alive\r\nContent-Length: 9\r\n\
        X-Reason: origin\r\n\r\nforbidden";
    let (answer, used) = complete(request.parse_response(refusal, &limits));
    let length = answer.content_length().unwrap();
    let body = &refusal[used..used + length as usize];
    let UpstreamResponse::Refused {
        status,
        reason,
        headers,
    } = answer
    else {
        panic!("a refusal");
    };
    let mut to_client = Vec::new();
    write_relayed_response(
        &mut to_client,
        status,
        &reason,
        &forward_response_headers(&headers),
        body,
    );
    assert_eq!(
        String::from_utf8(to_client).unwrap(),
        "HTTP/1.1 403 Forbidden\r\nX-Reason: origin\r\nContent-Length: 9\r\n\
         Connection: close\r\n\r\nforbidden"
    );

    // Second upstream: accepts, with a frame right behind its 101.
    let mut accepted = Vec::new();
    write_switching_protocols(
        &mut accepted,
        &up_ws.accept(),
        Some("v1.chat"),
        Some("permessage-deflate"),
        &[],
    );
    let head_len = accepted.len();
    accepted.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
    let (answer, used) = complete(request.parse_response(&accepted, &limits));
    assert_eq!(used, head_len);
    let UpstreamResponse::Accepted {
        protocol,
        extensions,
        ..
    } = answer
    else {
        panic!("accepted");
    };

    // The gateway answers its client with what the upstream chose.
    let mut to_client = Vec::new();
    write_switching_protocols(
        &mut to_client,
        &ws.accept(),
        protocol.as_deref(),
        extensions.as_deref(),
        &[],
    );
    let text = String::from_utf8(to_client).unwrap();
    assert!(text.contains("\r\nSec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n"));
    assert!(text.contains("\r\nSec-WebSocket-Protocol: v1.chat\r\n"));
}

/// Every error's written response reads back as a refusal with the same status and a body of
/// the declared length.
#[test]
fn error_responses_are_well_formed_http() {
    let request = UpgradeRequest::new(&WsUri::parse("ws://h/").unwrap()).unwrap();
    let errors = [
        HandshakeError::HeaderTooLarge {
            limit: 100,
            unit: "headers",
        },
        HandshakeError::MethodNotAllowed("POST\r\n".into()),
        HandshakeError::UnsupportedVersion("8".into()),
        HandshakeError::BadKey,
        HandshakeError::AcceptMismatch,
    ];
    for error in errors {
        let mut out = Vec::new();
        error.write_response(&mut out);
        let (answer, used) = complete(request.parse_response(&out, &Limits::default()));
        assert_eq!(answer.content_length(), Some((out.len() - used) as u64));
        let UpstreamResponse::Refused {
            status, headers, ..
        } = answer
        else {
            panic!("{error:?}");
        };
        assert_eq!(status, error.status());
        for (name, value) in error.response_headers() {
            assert!(headers
                .iter()
                .any(|h| h.name == *name && h.value == value.as_bytes()));
        }
    }
}

/// A valid upgrade request with generated target, offers and extra headers.
fn valid_request() -> impl Strategy<Value = Vec<u8>> {
    let token = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}";
    let value = "[ -~]{0,40}";
    (
        "/[A-Za-z0-9/._~%?&=-]{0,40}",
        proptest::collection::vec(token, 0..4),
        proptest::collection::vec((token, value), 0..8),
        any::<[u8; 16]>(),
    )
        .prop_map(|(target, protocols, extra, key)| {
            // The crate's own dependency encodes the key, independently of its code.
            let key = base64::engine::general_purpose::STANDARD.encode(key);
            let mut s = format!(
                "GET {target} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            );
            if !protocols.is_empty() {
                s.push_str(&format!(
                    "Sec-WebSocket-Protocol: {}\r\n",
                    protocols.join(", ")
                ));
            }
            for (name, value) in extra {
                s.push_str(&format!("X-{name}: {}\r\n", value.trim()));
            }
            s.push_str("\r\n");
            s.into_bytes()
        })
}

proptest! {
    #[test]
    fn parsers_never_panic_and_never_overclaim(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let limits = Limits { max_header_bytes: 256, max_headers: 8 };
        match RequestHead::parse(&bytes, &limits) {
            Ok(Parsed::Complete { value, consumed }) => {
                prop_assert!(consumed <= bytes.len() && consumed <= limits.max_header_bytes);
                let again = RequestHead::parse(&bytes[..consumed], &limits);
                prop_assert_eq!(again, Ok(Parsed::Complete { value: value.clone(), consumed }));
                let _ = value.validate_websocket();
            }
            Ok(Parsed::Partial) => prop_assert!(bytes.len() <= limits.max_header_bytes),
            Err(e) => prop_assert!((400..500).contains(&e.status())),
        }
        if let Ok(Parsed::Complete { consumed, .. }) = parse_upgrade_request(&bytes, &limits) {
            prop_assert!(consumed <= bytes.len());
        }
        let request = UpgradeRequest::new(&WsUri::parse("ws://h/").unwrap()).unwrap();
        match request.parse_response(&bytes, &limits) {
            Ok(Parsed::Complete { value, consumed }) => {
                prop_assert!(consumed <= bytes.len());
                if let UpstreamResponse::Refused { status, .. } = value {
                    prop_assert!((200..=999).contains(&status));
                }
            }
            Ok(Parsed::Partial) => prop_assert!(bytes.len() <= limits.max_header_bytes),
            Err(e) => prop_assert_eq!(e.status(), 502),
        }
    }

    #[test]
    fn a_valid_request_is_partial_until_its_end(
        bytes in valid_request(),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let limits = Limits::default();
        let cut = cut.index(bytes.len());
        prop_assert_eq!(parse_upgrade_request(&bytes[..cut], &limits), Ok(Parsed::Partial));
        prop_assert_eq!(RequestHead::parse(&bytes[..cut], &limits), Ok(Parsed::Partial));
        let mut pipelined = bytes.clone();
        pipelined.extend_from_slice(&tail);
        match parse_upgrade_request(&pipelined, &limits) {
            Ok(Parsed::Complete { value: (_, ws), consumed }) => {
                prop_assert_eq!(consumed, bytes.len());
                prop_assert_eq!(ws.accept(), accept_key(ws.key.as_bytes()));
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn mutated_valid_requests_never_panic(
        bytes in valid_request(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = bytes;
        let at = at.index(bytes.len());
        bytes[at] = byte;
        let cut = cut.index(bytes.len() + 1);
        if let Ok(Parsed::Complete { consumed, .. }) = parse_upgrade_request(&bytes[..cut], &Limits::default()) {
            prop_assert!(consumed <= cut);
        }
    }

    #[test]
    fn any_builder_input_gives_a_request_our_server_accepts(
        target in ".{0,40}",
        host in ".{0,20}",
        protocols in proptest::collection::vec(".{0,10}", 0..4),
        extensions in proptest::collection::vec(".{0,20}", 0..4),
    ) {
        let request = UpgradeRequest::new(&WsUri::parse("ws://h/").unwrap())
            .unwrap()
            .with_target(&target)
            .with_host(&host)
            .with_protocols(&protocols)
            .with_extensions(&extensions);
        let mut wire = Vec::new();
        request.encode(&mut wire);
        let parsed = parse_upgrade_request(&wire, &Limits { max_header_bytes: 1 << 20, max_headers: 100 });
        let Ok(Parsed::Complete { value: (_, ws), consumed }) = parsed else {
            return Err(TestCaseError::fail(format!("{parsed:?}")));
        };
        prop_assert_eq!(consumed, wire.len());
        let mut answer = Vec::new();
        write_switching_protocols(&mut answer, &ws.accept(), ws.protocols.first().map(String::as_str), None, &[]);
        let accepted = request.parse_response(&answer, &Limits::default());
        let is_accepted = matches!(accepted, Ok(Parsed::Complete { value: UpstreamResponse::Accepted { .. }, .. }));
        prop_assert!(is_accepted, "{:?}", accepted);
    }
}

#[test]
fn an_extension_offer_with_a_control_character_never_reaches_the_wire() {
    // Found by the builder proptest: "A;\x7f" passed the builder's header check (which then
    // refused only CR, LF and NUL) but not our own request parser.
    let uri = WsUri::parse("ws://h/").unwrap();
    let request = UpgradeRequest::new(&uri)
        .unwrap()
        .with_extensions(&["A;\u{7f}".to_owned()]);
    let mut wire = Vec::new();
    request.encode(&mut wire);
    assert!(
        parse_upgrade_request(&wire, &Limits::default()).is_ok(),
        "{}",
        String::from_utf8_lossy(&wire)
    );
    assert!(validate_header("X-A", b"a\x7fb").is_err());
    assert!(validate_header("X-A", b"tab\tok").is_ok());
}
