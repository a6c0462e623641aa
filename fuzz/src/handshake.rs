//! Handshake targets: a client's request (server side) and an upstream's response (client side).
//!
//! `handshake_request` asserts:
//! - `RequestHead::parse` never claims more than it got nor more than the byte limit; a
//!   complete head parses to the same value from `data[..consumed]` alone (nothing after the
//!   blank line was read); `Partial` only while the input is within the byte limit; its headers
//!   are all writable (`validate_header`); `path` and `query` rebuild the target;
//! - `parse_upgrade_request` agrees exactly with `parse` followed by `validate_websocket`;
//! - a validated request is a GET over HTTP/1.1 whose `accept()` is `accept_key(key)`, and its
//!   forwarded headers carry no hop-by-hop or handshake header and are accepted by
//!   `UpgradeRequest::with_header`;
//! - every error is a 4xx, and its written response reads back (through the client-side
//!   parser) as a refusal with that status and a body of the declared length.
//!
//! `handshake_response` asserts, for a request offering `mqtt` and `permessage-deflate`:
//! - `parse_response` never claims more than it got; a complete answer parses the same from
//!   `data[..consumed]`; `Partial` only within the byte limit; every error is a 502;
//! - a refusal has a final status (200-999, so never 101 nor an interim 1xx), and relaying it
//!   (`forward_response_headers` + `write_relayed_response`) gives a response that parses back
//!   to the same status, with the body's length as `Content-Length` and no hop-by-hop header;
//! - an acceptance only ever names an offered subprotocol and offered extensions.
//!
//! Every `{accept}` in the response input is replaced by the `Sec-WebSocket-Accept` value of
//! the (randomly keyed) request first, so the corpus can reach the acceptance checks.

use wsrelay_handshake::{
    accept_key, extension_name, forward_request_headers, forward_response_headers, is_hop_by_hop,
    parse_upgrade_request, split_list, validate_header, write_relayed_response, ForwardContext,
    HandshakeError, Limits, Parsed, RequestHead, UpgradeRequest, UpstreamResponse, WsUri,
};

const LIMITS: Limits = Limits {
    max_header_bytes: 4096,
    max_headers: 32,
};

/// Room for what the writers add to a head (status line, `Content-Length`, `Connection`).
const RELAY_LIMITS: Limits = Limits {
    max_header_bytes: 2 * 4096 + 256,
    max_headers: 32 + 4,
};

fn upstream() -> WsUri {
    WsUri {
        secure: false,
        host: "upstream".into(),
        port: 80,
        path_and_query: "/".into(),
    }
}

/// Parses a written response back and checks its status and body framing.
fn assert_reads_back(out: &[u8], status: u16) -> Vec<wsrelay_handshake::Header> {
    let probe = UpgradeRequest::new(&upstream()).expect("random key");
    match probe.parse_response(out, &RELAY_LIMITS) {
        Ok(Parsed::Complete { value, consumed }) => {
            assert_eq!(
                value.content_length(),
                Some((out.len() - consumed) as u64),
                "body length"
            );
            match value {
                UpstreamResponse::Refused {
                    status: read,
                    headers,
                    ..
                } => {
                    assert_eq!(read, status);
                    headers
                }
                other => panic!("a written {status} read back as {other:?}"),
            }
        }
        other => panic!("a written {status} does not parse: {other:?}"),
    }
}

fn assert_client_error(error: &HandshakeError) {
    assert!((400..500).contains(&error.status()), "{error:?}");
    let mut out = Vec::new();
    error.write_response(&mut out);
    assert_reads_back(&out, error.status());
}

/// Server side: see the module documentation.
pub fn handshake_request(data: &[u8]) {
    let parsed = RequestHead::parse(data, &LIMITS);
    match &parsed {
        Ok(Parsed::Complete { value, consumed }) => {
            let consumed = *consumed;
            assert!(consumed <= data.len() && consumed <= LIMITS.max_header_bytes);
            // The head alone parses to the same thing: nothing after it was read.
            assert_eq!(
                RequestHead::parse(&data[..consumed], &LIMITS),
                Ok(Parsed::Complete {
                    value: value.clone(),
                    consumed
                })
            );
            assert!(value.version <= 1);
            assert!(value.headers.len() <= LIMITS.max_headers);
            for h in &value.headers {
                assert_eq!(validate_header(&h.name, &h.value), Ok(()), "{h:?}");
            }
            let rebuilt = match value.query() {
                Some(query) => format!("{}?{query}", value.path()),
                None => value.path().to_owned(),
            };
            assert_eq!(rebuilt, value.target);

            let validated = value.validate_websocket();
            match &validated {
                Ok(ws) => {
                    assert_eq!(ws.accept(), accept_key(ws.key.as_bytes()));
                    assert_eq!((value.method.as_str(), value.version), ("GET", 1));
                    assert_eq!(ws.key.len(), 24);
                    check_forwarding(value);
                }
                Err(e) => assert_client_error(e),
            }
            // The one-step parse agrees with the two steps.
            let expected = validated.map(|ws| Parsed::Complete {
                value: (value.clone(), ws),
                consumed,
            });
            assert_eq!(parse_upgrade_request(data, &LIMITS), expected);
        }
        Ok(Parsed::Partial) => {
            assert!(data.len() <= LIMITS.max_header_bytes);
            assert_eq!(parse_upgrade_request(data, &LIMITS), Ok(Parsed::Partial));
        }
        Err(e) => {
            assert_client_error(e);
            assert_eq!(parse_upgrade_request(data, &LIMITS), Err(e.clone()));
        }
    }
}

/// The forwarded headers of a valid request are clean and an upstream request accepts them.
fn check_forwarding(head: &RequestHead) {
    let ctx = ForwardContext {
        client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        secure: true,
        host: head.host(),
        // Both trust paths, and the RFC 7239 element, from the input's own bits.
        trusted: head.target.len() % 2 == 0,
        forwarded: head.headers.len() % 2 == 0,
    };
    let forwarded = forward_request_headers(head, &ctx);
    let mut request = UpgradeRequest::new(&upstream())
        .expect("random key")
        .with_target(&head.target);
    for h in &forwarded {
        assert!(!is_hop_by_hop(&h.name), "{h:?}");
        for own in [
            "Host",
            "Content-Length",
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Version",
        ] {
            assert!(!h.name.eq_ignore_ascii_case(own), "{h:?}");
        }
        request = match request.with_header(&h.name, &h.value) {
            Ok(request) => request,
            Err(e) => panic!("forwarded header {h:?} refused: {e}"),
        };
    }
    let proto = forwarded
        .iter()
        .filter(|h| h.name == "X-Forwarded-Proto")
        .count();
    assert_eq!(proto, 1);
}

/// Replaces every `marker` in `data` with `with`.
fn substitute(data: &[u8], marker: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(marker) {
            out.extend_from_slice(with);
            rest = &rest[marker.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Client side: see the module documentation.
pub fn handshake_response(data: &[u8]) {
    let request = UpgradeRequest::new(&upstream())
        .expect("random key")
        .with_protocols(&["mqtt".into()])
        .with_extensions(&["permessage-deflate; client_max_window_bits".into()]);
    let accept = accept_key(request.key().as_bytes());
    let data = &substitute(data, b"{accept}", accept.as_bytes())[..];

    let parsed = request.parse_response(data, &LIMITS);
    match &parsed {
        Ok(Parsed::Complete { value, consumed }) => {
            let consumed = *consumed;
            assert!(consumed <= data.len() && consumed <= LIMITS.max_header_bytes);
            assert_eq!(request.parse_response(&data[..consumed], &LIMITS), parsed);
            match value {
                UpstreamResponse::Refused {
                    status,
                    reason,
                    headers,
                } => {
                    assert!((200..1000).contains(status), "{status}");
                    // Relay it the way the gateway does, with whatever body is at hand.
                    let rest = &data[consumed..];
                    let body_len = value
                        .content_length()
                        .map_or(rest.len(), |n| rest.len().min(n as usize));
                    let mut out = Vec::new();
                    write_relayed_response(
                        &mut out,
                        *status,
                        reason,
                        &forward_response_headers(headers),
                        &rest[..body_len],
                    );
                    let relayed = assert_reads_back(&out, *status);
                    let connection = relayed
                        .iter()
                        .filter(|h| is_hop_by_hop(&h.name))
                        .map(|h| (h.name.as_str(), h.value.as_slice()))
                        .collect::<Vec<_>>();
                    assert_eq!(connection, [("Connection", &b"close"[..])]);
                }
                UpstreamResponse::Accepted {
                    protocol,
                    extensions,
                    ..
                } => {
                    assert!(protocol.as_deref().is_none_or(|p| p == "mqtt"));
                    if let Some(extensions) = extensions {
                        for offer in split_list(extensions) {
                            let name = extension_name(offer);
                            assert!(name.eq_ignore_ascii_case("permessage-deflate"), "{offer}");
                        }
                    }
                    assert_eq!(value.content_length(), None);
                }
            }
        }
        Ok(Parsed::Partial) => assert!(data.len() <= LIMITS.max_header_bytes),
        Err(e) => assert_eq!(e.status(), 502, "{e:?}"),
    }
}
