//! The opening handshake: every validation failure and its status, incremental parsing,
//! pipelined bytes, the client round trip, the header policy, and no panics on any input.

use proptest::prelude::*;
use wsrelay_handshake::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request(lines: &[&str]) -> Vec<u8> {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n\r\n");
    s.into_bytes()
}

fn valid_lines() -> Vec<&'static str> {
    vec![
        "GET /chat?room=1 HTTP/1.1",
        "Host: server.example.com",
        "Upgrade: websocket",
        "Connection: keep-alive, Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Origin: http://example.com",
        "Sec-WebSocket-Protocol: mqtt, v12.stomp",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo; a=\"1,2\"",
        "Sec-WebSocket-Version: 13",
    ]
}

fn validate(bytes: &[u8]) -> Result<WebSocketRequest, HandshakeError> {
    match parse_upgrade_request(bytes, &Limits::default())? {
        Parsed::Complete { value, .. } => Ok(value.1),
        Parsed::Partial => panic!("partial"),
    }
}

fn replace(line: &str, with: Option<&'static str>) -> Vec<u8> {
    let lines: Vec<&str> = valid_lines()
        .into_iter()
        .filter_map(|l| if l.starts_with(line) { with } else { Some(l) })
        .collect();
    request(&lines)
}

#[test]
fn a_valid_request_yields_offers_and_accept() {
    let ws = validate(&request(&valid_lines())).unwrap();
    assert_eq!(ws.accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(ws.protocols, ["mqtt", "v12.stomp"]);
    assert_eq!(
        ws.extensions,
        [
            "permessage-deflate; client_max_window_bits",
            "x-foo; a=\"1,2\""
        ]
    );
    assert_eq!(ws.origin.as_deref(), Some("http://example.com"));
}

#[test]
fn every_failure_has_its_own_error_and_status() {
    let cases: Vec<(Vec<u8>, HandshakeError, u16)> = vec![
        (
            replace("GET", Some("POST /chat HTTP/1.1")),
            HandshakeError::MethodNotAllowed("POST".into()),
            405,
        ),
        (
            replace("GET", Some("GET /chat HTTP/1.0")),
            HandshakeError::UnsupportedHttpVersion,
            400,
        ),
        (replace("Host", None), HandshakeError::MissingHost, 400),
        (
            replace("Origin", Some("Host: second.example")),
            HandshakeError::DuplicateHost,
            400,
        ),
        (
            replace("Upgrade", None),
            HandshakeError::MissingUpgrade,
            400,
        ),
        (
            replace("Upgrade", Some("Upgrade: h2c")),
            HandshakeError::UnsupportedUpgrade("h2c".into()),
            400,
        ),
        (
            replace("Connection", Some("Connection: keep-alive")),
            HandshakeError::MissingConnectionUpgrade,
            400,
        ),
        (
            replace("Sec-WebSocket-Key", None),
            HandshakeError::MissingKey,
            400,
        ),
        (
            replace("Sec-WebSocket-Key", Some("Sec-WebSocket-Key: c2hvcnQ=")),
            HandshakeError::BadKey,
            400,
        ),
        (
            replace("Sec-WebSocket-Version", None),
            HandshakeError::MissingVersion,
            400,
        ),
        (
            replace("Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8")),
            HandshakeError::UnsupportedVersion("8".into()),
            426,
        ),
        (
            replace("Origin", Some("Content-Length: 5")),
            HandshakeError::RequestHasBody,
            400,
        ),
        (
            replace("Origin", Some("Transfer-Encoding: chunked")),
            HandshakeError::RequestHasBody,
            400,
        ),
        (
            replace(
                "Origin",
                Some("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
            ),
            HandshakeError::BadKey,
            400,
        ),
    ];
    for (bytes, error, status) in cases {
        let got = validate(&bytes).unwrap_err();
        assert_eq!(got, error, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(got.status(), status);
    }
    let mut out = Vec::new();
    HandshakeError::UnsupportedVersion("8".into()).write_response(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
    assert!(text.contains("Content-Length: "), "{text}");
}

#[test]
fn tokens_are_case_insensitive_lists() {
    let bytes = request(&[
        "GET / HTTP/1.1",
        "Host: h",
        "upgrade: WebSocket",
        "CONNECTION: keep-alive",
        "Connection: UPGRADE",
        &format!("sec-websocket-key: {KEY}"),
        "sec-websocket-version: 13",
    ]);
    assert!(validate(&bytes).is_ok());
}

#[test]
fn partial_until_the_blank_line_and_pipelined_bytes_stay() {
    let head = request(&valid_lines());
    for cut in 0..head.len() {
        assert_eq!(
            parse_upgrade_request(&head[..cut], &Limits::default()),
            Ok(Parsed::Partial),
            "prefix of {cut} bytes"
        );
    }
    let mut with_frame = head.clone();
    with_frame.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
    match parse_upgrade_request(&with_frame, &Limits::default()) {
        Ok(Parsed::Complete { consumed, .. }) => {
            assert_eq!(consumed, head.len());
            assert_eq!(&with_frame[consumed..], &[0x81, 0x80, 1, 2, 3, 4]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversized_heads_get_431_even_before_they_end() {
    let limits = Limits::default();
    let mut endless = b"GET / HTTP/1.1\r\n".to_vec();
    while endless.len() <= limits.max_header_bytes {
        endless.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let err = RequestHead::parse(&endless, &limits).unwrap_err();
    assert_eq!(err.status(), 431);

    let mut many = vec!["GET / HTTP/1.1".to_owned()];
    many.extend((0..101).map(|i| format!("X-{i}: v")));
    let lines: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = RequestHead::parse(&request(&lines), &limits).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::HeaderTooLarge {
            limit: 100,
            unit: "headers"
        }
    );
    assert_eq!(err.status(), 431);
}

#[test]
fn malformed_http_is_400() {
    for bytes in [
        &b"GET\r\n\r\n"[..],
        b"\x00\x01\x02\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let err = RequestHead::parse(bytes, &Limits::default()).unwrap_err();
        assert_eq!(err.status(), 400, "{bytes:?}");
    }
}

#[test]
fn plain_http_is_not_an_upgrade_attempt() {
    let Ok(Parsed::Complete { value, .. }) =
        RequestHead::parse(&request(&["GET / HTTP/1.1", "Host: h"]), &Limits::default())
    else {
        panic!()
    };
    assert!(!value.is_upgrade_attempt());
    assert_eq!(
        (value.path(), value.query(), value.host()),
        ("/", None, Some("h"))
    );
    let head = match RequestHead::parse(&request(&valid_lines()), &Limits::default()) {
        Ok(Parsed::Complete { value, .. }) => value,
        other => panic!("{other:?}"),
    };
    assert!(head.is_upgrade_attempt());
    assert_eq!((head.path(), head.query()), ("/chat", Some("room=1")));
}

fn answer(request: &UpgradeRequest, protocol: Option<&str>, extensions: Option<&str>) -> Vec<u8> {
    let mut wire = Vec::new();
    request.encode(&mut wire);
    let ws = validate(&wire).expect("our own request validates");
    let mut out = Vec::new();
    write_switching_protocols(
        &mut out,
        &ws.accept(),
        protocol,
        extensions,
        &[("X-Served-By", "test")],
    );
    out
}

#[test]
fn client_round_trip_and_response_validation() {
    let uri = WsUri::parse("ws://127.0.0.1:9000/up?x=1").unwrap();
    let request = UpgradeRequest::new(&uri)
        .with_target("/chat/room-1?x=1")
        .with_protocols(&["mqtt".into(), "v12.stomp".into()])
        .with_extensions(&["permessage-deflate; client_max_window_bits".into()])
        .with_header("X-Trace", b"abc")
        .unwrap();
    let mut wire = Vec::new();
    request.encode(&mut wire);
    let text = String::from_utf8(wire.clone()).unwrap();
    assert!(
        text.starts_with("GET /chat/room-1?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"),
        "{text}"
    );
    assert!(text.contains("X-Trace: abc\r\n"));

    let limits = Limits::default();
    let ok = answer(&request, Some("v12.stomp"), Some("permessage-deflate"));
    let mut pipelined = ok.clone();
    pipelined.extend_from_slice(&[0x81, 0]);
    match request.parse_response(&pipelined, &limits).unwrap() {
        Parsed::Complete {
            value:
                UpstreamResponse::Accepted {
                    protocol,
                    extensions,
                    ..
                },
            consumed,
        } => {
            assert_eq!(protocol.as_deref(), Some("v12.stomp"));
            assert_eq!(extensions.as_deref(), Some("permessage-deflate"));
            assert_eq!(consumed, ok.len());
        }
        other => panic!("{other:?}"),
    }
    for cut in 0..ok.len() {
        assert_eq!(
            request.parse_response(&ok[..cut], &limits),
            Ok(Parsed::Partial)
        );
    }
    assert_eq!(
        request.parse_response(&answer(&request, Some("amqp"), None), &limits),
        Err(HandshakeError::UnofferedProtocol("amqp".into()))
    );
    assert_eq!(
        request.parse_response(&answer(&request, None, Some("x-zip")), &limits),
        Err(HandshakeError::UnofferedExtension("x-zip".into()))
    );
    let other = UpgradeRequest::new(&uri);
    let err = other.parse_response(&ok, &limits).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::AcceptMismatch, 502)
    );
    let no_upgrade = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n";
    assert!(matches!(
        request.parse_response(no_upgrade, &limits),
        Err(HandshakeError::BadUpgradeResponse(_))
    ));

    let refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 8\r\nX-Why: token\r\n\r\nno entry";
    match request.parse_response(refused, &limits).unwrap() {
        Parsed::Complete { value, consumed } => {
            assert_eq!(value.content_length(), Some(8));
            assert_eq!(&refused[consumed..], b"no entry");
            let UpstreamResponse::Refused {
                status,
                reason,
                headers,
            } = value
            else {
                panic!()
            };
            assert_eq!(
                (status, reason.as_str(), headers.len()),
                (403, "Forbidden", 2)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn upstream_status_outside_200_999_or_interim_is_malformed() {
    // Found by the handshake_response fuzz target: httparse accepts "050" as a status, which
    // would have been relayed to the client as "HTTP/1.1 50 ...".
    let request = UpgradeRequest::new(&WsUri::parse("ws://h/").unwrap());
    for response in [
        &b"HTTP/1.1 050 Odd\r\n\r\n"[..],
        b"HTTP/1.1 000 Zero\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 199 Interim\r\n\r\n",
    ] {
        let err = request
            .parse_response(response, &Limits::default())
            .unwrap_err();
        assert!(
            matches!(err, HandshakeError::MalformedResponse(_)),
            "{err:?}"
        );
        assert_eq!(err.status(), 502);
    }
}

#[test]
fn headers_with_crlf_or_nul_are_rejected() {
    let uri = WsUri::parse("ws://h/").unwrap();
    for (name, value) in [
        ("X-A", &b"a\r\nInjected: 1"[..]),
        ("X-A", b"a\nb"),
        ("X-A", b"a\0"),
        ("Bad Name", b"v"),
        ("", b"v"),
    ] {
        assert!(matches!(
            UpgradeRequest::new(&uri).with_header(name, value),
            Err(HandshakeError::InvalidHeader { .. })
        ));
    }
}

#[test]
fn forwarding_policy() {
    let bytes = request(&[
        "GET /x HTTP/1.1",
        "Host: public.example",
        "Upgrade: websocket",
        "Connection: Upgrade, X-Secret",
        "X-Secret: hop",
        "Keep-Alive: timeout=5",
        "Proxy-Authorization: Basic Zm9v",
        &format!("Sec-WebSocket-Key: {KEY}"),
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: mqtt",
        "Cookie: session=1",
        "X-Forwarded-For: 10.0.0.1",
        "X-Forwarded-Proto: spoofed",
        "Authorization: Bearer t",
    ]);
    let Ok(Parsed::Complete { value: head, .. }) = RequestHead::parse(&bytes, &Limits::default())
    else {
        panic!()
    };
    let ctx = ForwardContext {
        client_ip: "192.0.2.7".parse().unwrap(),
        secure: true,
        host: head.host(),
    };
    let out = forward_request_headers(&head, &ctx);
    let get = |n: &str| {
        out.iter()
            .filter(|h| h.name.eq_ignore_ascii_case(n))
            .map(|h| h.value_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    for gone in [
        "Connection",
        "X-Secret",
        "Keep-Alive",
        "Proxy-Authorization",
        "Upgrade",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "Host",
    ] {
        assert!(get(gone).is_empty(), "{gone} forwarded");
    }
    assert_eq!(get("Cookie"), ["session=1"]);
    assert_eq!(get("Authorization"), ["Bearer t"]);
    assert_eq!(get("X-Forwarded-For"), ["10.0.0.1, 192.0.2.7"]);
    assert_eq!(get("X-Forwarded-Host"), ["public.example"]);
    assert_eq!(get("X-Forwarded-Proto"), ["https"]);

    let response = vec![
        Header {
            name: "Connection".into(),
            value: b"close, X-Private".to_vec(),
        },
        Header {
            name: "X-Private".into(),
            value: b"1".to_vec(),
        },
        Header {
            name: "Transfer-Encoding".into(),
            value: b"chunked".to_vec(),
        },
        Header {
            name: "WWW-Authenticate".into(),
            value: b"Bearer".to_vec(),
        },
    ];
    let kept: Vec<String> = forward_response_headers(&response)
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(kept, ["WWW-Authenticate"]);
    let mut out = Vec::new();
    write_relayed_response(
        &mut out,
        401,
        "Unauthorized",
        &forward_response_headers(&response),
        b"who?",
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 4\r\nConnection: close\r\n\r\nwho?"
    );
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let limits = Limits { max_header_bytes: 256, max_headers: 8 };
        if let Ok(Parsed::Complete { consumed, .. }) = RequestHead::parse(&bytes, &limits) {
            prop_assert!(consumed <= bytes.len());
        }
        let _ = parse_upgrade_request(&bytes, &limits);
        let request = UpgradeRequest::new(&WsUri::parse("ws://h/").unwrap());
        if let Ok(Parsed::Complete { consumed, .. }) = request.parse_response(&bytes, &limits) {
            prop_assert!(consumed <= bytes.len());
        }
    }

    #[test]
    fn mutated_valid_requests_never_panic(at in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
        let mut bytes = request(&valid_lines());
        let at = at % bytes.len();
        bytes[at] = byte;
        let cut = cut.min(bytes.len());
        let _ = parse_upgrade_request(&bytes[..cut], &Limits::default());
    }
}
