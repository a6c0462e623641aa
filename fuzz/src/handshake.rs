//! Handshake targets: parsing a client's request and an upstream's response.

use wsrelay_handshake::{
    accept_key, parse_upgrade_request, Limits, Parsed, RequestHead, UpgradeRequest,
    UpstreamResponse, WsUri,
};

const LIMITS: Limits = Limits {
    max_header_bytes: 4096,
    max_headers: 32,
};

/// Request parsing never claims more than it got, is stable on its own head, and a validated
/// request's accept matches the RFC computation; errors always map to a 4xx status.
pub fn handshake_request(data: &[u8]) {
    match RequestHead::parse(data, &LIMITS) {
        Ok(Parsed::Complete { value, consumed }) => {
            assert!(consumed <= data.len() && consumed <= LIMITS.max_header_bytes);
            // The head alone parses to the same thing: nothing after it was read.
            assert_eq!(
                RequestHead::parse(&data[..consumed], &LIMITS),
                Ok(Parsed::Complete {
                    value: value.clone(),
                    consumed
                })
            );
            match value.validate_websocket() {
                Ok(ws) => {
                    assert_eq!(ws.accept(), accept_key(ws.key.as_bytes()));
                    assert_eq!(value.method, "GET");
                }
                Err(e) => assert!((400..500).contains(&e.status())),
            }
        }
        Ok(Parsed::Partial) => assert!(data.len() <= LIMITS.max_header_bytes),
        Err(e) => assert!((400..500).contains(&e.status())),
    }
    let _ = parse_upgrade_request(data, &LIMITS);
}

/// Response parsing: never claims more than it got; refusals carry a final status (200-999); every error maps to 502 for the proxy's client.
pub fn handshake_response(data: &[u8]) {
    let uri = WsUri {
        secure: false,
        host: "upstream".into(),
        port: 80,
        path_and_query: "/".into(),
    };
    let request = UpgradeRequest::new(&uri).with_protocols(&["mqtt".into()]);
    match request.parse_response(data, &LIMITS) {
        Ok(Parsed::Complete { value, consumed }) => {
            assert!(consumed <= data.len());
            match value {
                UpstreamResponse::Refused { status, .. } => {
                    assert!((200..1000).contains(&status))
                }
                UpstreamResponse::Accepted { protocol, .. } => {
                    // A random key makes an accepted answer all but impossible; if one appears,
                    // it must have chosen an offered protocol.
                    assert!(protocol.is_none_or(|p| p == "mqtt"));
                }
            }
        }
        Ok(Parsed::Partial) => {}
        Err(e) => assert_eq!(e.status(), 502),
    }
}
