//! Client side: the upgrade request to an upstream and the validation of its answer
//! (RFC 6455 §4.1).

use crate::accept::{accept_key, new_key};
use crate::grammar::{is_token_char, validate_header};
use crate::header::{
    check_size, find, has_token, header_slots, list_items, own_headers, quotes_closed,
    single_value, too_many_headers,
};
use crate::{HandshakeError, Header, Limits, Parsed, WsUri};

/// An opening handshake request for an upstream, with a fresh random key: build it, write it
/// with [`encode`](Self::encode), then check the answer with
/// [`parse_response`](Self::parse_response).
///
/// Nothing given to the builder can break the request's framing: bytes of the target or host
/// that may not appear on the wire are percent-encoded, subprotocols that are not tokens and
/// extension offers with control characters are left out, and [`with_header`](Self::with_header)
/// refuses bad headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    target: String,
    host: String,
    key: String,
    protocols: Vec<String>,
    extensions: Vec<String>,
    headers: Vec<Header>,
}

/// What the upstream answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamResponse {
    /// A valid 101: the connection now speaks WebSocket.
    Accepted {
        /// The subprotocol the upstream chose (always one that was offered).
        protocol: Option<String>,
        /// The accepted extensions with their parameters, every `Sec-WebSocket-Extensions`
        /// line joined with ", " (each one's name was offered).
        extensions: Option<String>,
        /// All response headers.
        headers: Vec<Header>,
    },
    /// Any other final status (200-999): not an error, the gateway relays it to the client.
    Refused {
        /// The status code.
        status: u16,
        /// The reason phrase as sent (empty if it was not UTF-8).
        reason: String,
        /// All response headers.
        headers: Vec<Header>,
    },
}

impl UpstreamResponse {
    /// The length of a refusal's body, so the proxy can read exactly that much before relaying
    /// it: `Some(0)` for 204 and 304 (which never have one, RFC 9112 §6.3), the `Content-Length`
    /// if every one sent agrees, and `None` when there is none, when it is malformed or
    /// conflicting, or when `Transfer-Encoding` overrides it; always `None` for `Accepted`.
    pub fn content_length(&self) -> Option<u64> {
        let UpstreamResponse::Refused {
            status, headers, ..
        } = self
        else {
            return None;
        };
        if matches!(status, 204 | 304) {
            return Some(0);
        }
        if find(headers, "Transfer-Encoding").is_some() {
            return None;
        }
        let mut lengths = list_items(headers, "Content-Length").into_iter().map(|v| {
            v.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse::<u64>().ok())
                .flatten()
        });
        let first = lengths.next()??;
        lengths.all(|n| n == Some(first)).then_some(first)
    }
}

/// Percent-encodes (RFC 3986 §2.1) the bytes that may not appear in a request line or header
/// value: spaces, control characters and non-ASCII.
fn wire_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x21..=0x7e).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A wire-safe origin-form request target (RFC 9112 §3.2.1): always starts with `/`.
fn request_target(path_and_query: &str) -> String {
    if path_and_query.starts_with('/') {
        wire_safe(path_and_query)
    } else {
        wire_safe(&format!("/{path_and_query}"))
    }
}

/// The extension's name: the token before its first `;` (RFC 6455 §9.1), trimmed.
///
/// ```
/// assert_eq!(wsrelay_handshake::extension_name("permessage-deflate; client_max_window_bits"), "permessage-deflate");
/// ```
pub fn extension_name(extension: &str) -> &str {
    extension
        .split(';')
        .next()
        .unwrap_or("")
        .trim_matches([' ', '\t'])
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_char)
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Wraps an error found while parsing the upstream's answer: whatever it is, the client of
/// the proxy gets 502, not the 4xx the same error would mean for a request.
fn malformed(error: HandshakeError) -> HandshakeError {
    match error {
        HandshakeError::HeaderTooLarge { limit, unit } => HandshakeError::MalformedResponse(
            format!("response header block exceeds {limit} {unit}"),
        ),
        other => HandshakeError::MalformedResponse(other.to_string()),
    }
}

impl UpgradeRequest {
    /// A request for `uri` (its path and query, `Host` its authority) with a fresh random
    /// 16-byte key from the OS (RFC 6455 §4.1 item 7).
    ///
    /// Fails with [`HandshakeError::Randomness`] when the OS random source does: a request
    /// never goes out with a predictable key (see [`wsrelay_codec::random`]).
    pub fn new(uri: &WsUri) -> Result<UpgradeRequest, HandshakeError> {
        Ok(UpgradeRequest {
            target: request_target(&uri.path_and_query),
            host: wire_safe(&uri.authority()),
            key: new_key()?,
            protocols: Vec::new(),
            extensions: Vec::new(),
            headers: Vec::new(),
        })
    }

    /// Requests `path_and_query` instead of the URI's (after a route rewrote it).
    pub fn with_target(mut self, path_and_query: &str) -> Self {
        self.target = request_target(path_and_query);
        self
    }

    /// Sends `host` as the `Host` header instead of the URI's authority (for name-based
    /// virtual hosting upstream).
    pub fn with_host(mut self, host: &str) -> Self {
        self.host = wire_safe(host);
        self
    }

    /// Offers these subprotocols, in order of preference; entries that are not tokens
    /// (RFC 6455 §4.1 item 10) are left out, since they would corrupt the list.
    pub fn with_protocols(mut self, protocols: &[String]) -> Self {
        self.protocols = protocols.iter().filter(|p| is_token(p)).cloned().collect();
        self
    }

    /// Offers these extensions, each with its parameters (e.g.
    /// `permessage-deflate; client_max_window_bits`); entries without a token name or with
    /// CR, LF or NUL are left out.
    pub fn with_extensions(mut self, extensions: &[String]) -> Self {
        self.extensions = extensions
            .iter()
            .filter(|e| {
                is_token(extension_name(e))
                    && validate_header("Sec-WebSocket-Extensions", e.as_bytes()).is_ok()
            })
            .cloned()
            .collect();
        self
    }

    /// Adds a header (e.g. one from [`forward_request_headers`](crate::forward_request_headers));
    /// a name that is not a token or a value with CR, LF or NUL is
    /// [`HandshakeError::InvalidHeader`].
    pub fn with_header(mut self, name: &str, value: &[u8]) -> Result<Self, HandshakeError> {
        validate_header(name, value)?;
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.to_vec(),
        });
        Ok(self)
    }

    /// The `Sec-WebSocket-Key` sent (base64 of 16 random bytes).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends the request head to `out`: `GET {target} HTTP/1.1`, `Host`, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, the protocol and
    /// extension offers if any, the extra headers, and the blank line.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        push_header(out, "Host", self.host.as_bytes());
        out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
        push_header(out, "Sec-WebSocket-Key", self.key.as_bytes());
        out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
        if !self.protocols.is_empty() {
            push_header(
                out,
                "Sec-WebSocket-Protocol",
                self.protocols.join(", ").as_bytes(),
            );
        }
        if !self.extensions.is_empty() {
            push_header(
                out,
                "Sec-WebSocket-Extensions",
                self.extensions.join(", ").as_bytes(),
            );
        }
        for h in &self.headers {
            push_header(out, &h.name, &h.value);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Parses the upstream's answer incrementally (`Partial` until the blank line; limits as on
    /// the server side) and checks a 101 against this request (RFC 6455 §4.1, the client's
    /// checks): `Upgrade: websocket` and `Connection: Upgrade` or
    /// [`BadUpgradeResponse`](HandshakeError::BadUpgradeResponse), one `Sec-WebSocket-Accept`
    /// equal to [`accept_key`]`(key)` or [`AcceptMismatch`](HandshakeError::AcceptMismatch),
    /// no subprotocol or extension that was not offered
    /// ([`UnofferedProtocol`](HandshakeError::UnofferedProtocol),
    /// [`UnofferedExtension`](HandshakeError::UnofferedExtension)).
    ///
    /// Any final status other than 101 is `Ok(Refused { .. })`: not an error, the gateway
    /// relays it. Everything else, including interim 1xx statuses and statuses below 100, is
    /// [`MalformedResponse`](HandshakeError::MalformedResponse); all these errors are 502.
    pub fn parse_response(
        &self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Parsed<UpstreamResponse>, HandshakeError> {
        let mut slots = header_slots(buf.len(), limits);
        let slot_count = slots.len();
        let mut response = httparse::Response::new(&mut slots);
        let consumed = match response.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                check_size(buf.len(), limits).map_err(malformed)?;
                return Ok(Parsed::Partial);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(malformed(too_many_headers(slot_count, limits)))
            }
            Err(e) => {
                check_size(buf.len(), limits).map_err(malformed)?;
                return Err(HandshakeError::MalformedResponse(e.to_string()));
            }
        };
        check_size(consumed, limits).map_err(malformed)?;
        let status = response
            .code
            .ok_or_else(|| HandshakeError::MalformedResponse("no status code".into()))?;
        // Only 101 or a final status can be relayed: below 100 is not HTTP, and an interim 1xx
        // would leave the client waiting for a response that never follows.
        if status != 101 && !(200..=999).contains(&status) {
            return Err(HandshakeError::MalformedResponse(format!(
                "unusable status {status}"
            )));
        }
        let reason = response.reason.unwrap_or("").to_owned();
        let headers = own_headers(response.headers).map_err(malformed)?;
        let value = if status == 101 {
            self.check_accepted(headers)?
        } else {
            UpstreamResponse::Refused {
                status,
                reason,
                headers,
            }
        };
        Ok(Parsed::Complete { value, consumed })
    }

    /// The client's checks of a 101 (RFC 6455 §4.1, the numbered list after the request).
    fn check_accepted(&self, headers: Vec<Header>) -> Result<UpstreamResponse, HandshakeError> {
        if !has_token(&headers, "Upgrade", "websocket") {
            return Err(HandshakeError::BadUpgradeResponse(
                "missing \"Upgrade: websocket\"",
            ));
        }
        if !has_token(&headers, "Connection", "upgrade") {
            return Err(HandshakeError::BadUpgradeResponse(
                "missing \"Connection: Upgrade\"",
            ));
        }
        let expected = accept_key(self.key.as_bytes());
        let accept = single_value(&headers, "Sec-WebSocket-Accept");
        if accept.map(<[u8]>::trim_ascii) != Some(expected.as_bytes()) {
            return Err(HandshakeError::AcceptMismatch);
        }
        let chosen = list_items(&headers, "Sec-WebSocket-Protocol");
        let protocol = match <[String; 1]>::try_from(chosen) {
            Ok([one]) if self.protocols.contains(&one) => Some(one),
            Ok([one]) => return Err(HandshakeError::UnofferedProtocol(one)),
            Err(chosen) if chosen.is_empty() => None,
            Err(several) => return Err(HandshakeError::UnofferedProtocol(several.join(", "))),
        };
        let accepted = list_items(&headers, "Sec-WebSocket-Extensions");
        let offered = |name: &str| {
            self.extensions
                .iter()
                .any(|e| extension_name(e).eq_ignore_ascii_case(name))
        };
        if let Some(unoffered) = accepted.iter().find(|e| !offered(extension_name(e))) {
            return Err(HandshakeError::UnofferedExtension(unoffered.clone()));
        }
        // The items are joined into one list that the relay and the client split again: an
        // unterminated quoted-string (not valid, RFC 6455 §9.1) would shift the split and let
        // an unoffered extension through.
        if !accepted.iter().all(|e| quotes_closed(e)) {
            return Err(HandshakeError::BadUpgradeResponse(
                "unterminated quoted-string in Sec-WebSocket-Extensions",
            ));
        }
        let extensions = (!accepted.is_empty()).then(|| accepted.join(", "));
        Ok(UpstreamResponse::Accepted {
            protocol,
            extensions,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_upgrade_request, write_switching_protocols};
    use HandshakeError::*;

    fn uri() -> WsUri {
        WsUri::parse("ws://127.0.0.1:9000/up?x=1").unwrap()
    }

    fn offering() -> UpgradeRequest {
        UpgradeRequest::new(&uri())
            .unwrap()
            .with_protocols(&["mqtt".into(), "v12.stomp".into()])
            .with_extensions(&["permessage-deflate; client_max_window_bits".into()])
    }

    fn encoded(request: &UpgradeRequest) -> Vec<u8> {
        let mut wire = Vec::new();
        request.encode(&mut wire);
        wire
    }

    /// A 101 from a server that parsed and validated `request` with this crate.
    fn answer(
        request: &UpgradeRequest,
        protocol: Option<&str>,
        extensions: Option<&str>,
    ) -> Vec<u8> {
        let wire = encoded(request);
        let Ok(Parsed::Complete { value: (_, ws), .. }) =
            parse_upgrade_request(&wire, &Limits::default())
        else {
            panic!("our own request must validate");
        };
        let mut out = Vec::new();
        write_switching_protocols(&mut out, &ws.accept(), protocol, extensions, &[]);
        out
    }

    fn parse(request: &UpgradeRequest, bytes: &[u8]) -> Result<UpstreamResponse, HandshakeError> {
        match request.parse_response(bytes, &Limits::default())? {
            Parsed::Complete { value, .. } => Ok(value),
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn encode_writes_the_rfc_request() {
        let request = offering().with_header("X-Trace", b"abc").unwrap();
        let text = String::from_utf8(encoded(&request)).unwrap();
        let expected = format!(
            "GET /up?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mqtt, v12.stomp\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             X-Trace: abc\r\n\r\n",
            request.key()
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn round_trip_through_the_server_side() {
        let request = offering()
            .with_target("/chat/room-1?x=1")
            .with_host("public.example")
            .with_header("Origin", b"https://public.example")
            .unwrap();
        let wire = encoded(&request);
        let Ok(Parsed::Complete {
            value: (head, ws),
            consumed,
        }) = parse_upgrade_request(&wire, &Limits::default())
        else {
            panic!("validates");
        };
        assert_eq!(consumed, wire.len());
        assert_eq!(
            (head.path(), head.query(), head.host()),
            ("/chat/room-1", Some("x=1"), Some("public.example"))
        );
        assert_eq!(ws.key, request.key());
        assert_eq!(ws.accept(), accept_key(request.key().as_bytes()));
        assert_eq!(ws.protocols, ["mqtt", "v12.stomp"]);
        assert_eq!(
            ws.extensions,
            ["permessage-deflate; client_max_window_bits"]
        );
        assert_eq!(ws.origin.as_deref(), Some("https://public.example"));
    }

    #[test]
    fn a_matching_101_is_accepted_and_pipelined_bytes_stay() {
        let request = offering();
        let ok = answer(&request, Some("v12.stomp"), Some("permessage-deflate"));
        let mut buf = ok.clone();
        buf.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
        match request.parse_response(&buf, &Limits::default()) {
            Ok(Parsed::Complete {
                value:
                    UpstreamResponse::Accepted {
                        protocol,
                        extensions,
                        headers,
                    },
                consumed,
            }) => {
                assert_eq!(protocol.as_deref(), Some("v12.stomp"));
                assert_eq!(extensions.as_deref(), Some("permessage-deflate"));
                assert_eq!(headers.len(), 5);
                assert_eq!(consumed, ok.len());
                assert_eq!(buf.get(consumed..), Some(&[0x81, 0x02, b'h', b'i'][..]));
            }
            other => panic!("{other:?}"),
        }
        let plain = UpgradeRequest::new(&uri()).unwrap();
        let accepted = parse(&plain, &answer(&plain, None, None)).unwrap();
        assert!(matches!(
            accepted,
            UpstreamResponse::Accepted {
                protocol: None,
                extensions: None,
                ..
            }
        ));
        assert_eq!(accepted.content_length(), None);
    }

    #[test]
    fn partial_on_every_proper_prefix_of_the_answer() {
        let request = offering();
        let ok = answer(&request, Some("mqtt"), None);
        for cut in 0..ok.len() {
            assert_eq!(
                request.parse_response(&ok[..cut], &Limits::default()),
                Ok(Parsed::Partial),
                "prefix of {cut} bytes"
            );
        }
    }

    #[test]
    fn a_wrong_missing_or_repeated_accept_is_a_mismatch() {
        let request = offering();
        let other = UpgradeRequest::new(&uri()).unwrap();
        assert_ne!(request.key(), other.key());
        let err = parse(&other, &answer(&request, None, None)).unwrap_err();
        assert_eq!((err.clone(), err.status()), (AcceptMismatch, 502));

        let accept = accept_key(request.key().as_bytes());
        let missing = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(parse(&request, missing), Err(AcceptMismatch));
        let twice = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        assert_eq!(parse(&request, twice.as_bytes()), Err(AcceptMismatch));
        let cased = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\
             sec-websocket-accept: {accept}\r\n\r\n"
        );
        assert!(parse(&request, cased.as_bytes()).is_ok());
    }

    #[test]
    fn a_101_without_upgrade_headers_is_bad() {
        let request = offering();
        let accept = accept_key(request.key().as_bytes());
        for (lines, why) in [
            ("Connection: Upgrade", "missing \"Upgrade: websocket\""),
            (
                "Upgrade: h2c\r\nConnection: Upgrade",
                "missing \"Upgrade: websocket\"",
            ),
            ("Upgrade: websocket", "missing \"Connection: Upgrade\""),
        ] {
            let bytes = format!(
                "HTTP/1.1 101 Switching Protocols\r\n{lines}\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            let err = parse(&request, bytes.as_bytes()).unwrap_err();
            assert_eq!(err, BadUpgradeResponse(why));
            assert_eq!(err.status(), 502);
        }
    }

    /// Found by the `handshake_response` fuzz target: each header line's items were checked,
    /// but the lines are joined into one list that the relay (RSV bits) and the client split
    /// again; an unterminated quoted-string in one line shifted the quoting of the next, so an
    /// unoffered extension passed the check and appeared in the joined list.
    #[test]
    fn an_unterminated_quote_cannot_smuggle_an_unoffered_extension() {
        let request = offering();
        let mut response = answer(&request, None, Some("permessage-deflate; x=\"open"));
        let at = response.len() - 2;
        response.splice(
            at..at,
            b"Sec-WebSocket-Extensions: permessage-deflate; y=\", x-evil\r\n"
                .iter()
                .copied(),
        );
        let result = parse(&request, &response);
        assert!(matches!(result, Err(BadUpgradeResponse(_))), "{result:?}");
        // Balanced quotes, commas inside them included, stay fine.
        let fine = answer(&request, None, Some("permessage-deflate; x=\"a, b\""));
        assert!(parse(&request, &fine).is_ok());
    }

    #[test]
    fn unoffered_choices_are_refused() {
        let request = offering();
        let err = parse(&request, &answer(&request, Some("amqp"), None)).unwrap_err();
        assert_eq!(
            (err.clone(), err.status()),
            (UnofferedProtocol("amqp".into()), 502)
        );
        assert_eq!(
            parse(&request, &answer(&request, Some("mqtt, v12.stomp"), None)),
            Err(UnofferedProtocol("mqtt, v12.stomp".into()))
        );
        // Subprotocol names are compared exactly.
        assert_eq!(
            parse(&request, &answer(&request, Some("MQTT"), None)),
            Err(UnofferedProtocol("MQTT".into()))
        );
        let err = parse(&request, &answer(&request, None, Some("x-zip; level=9"))).unwrap_err();
        assert_eq!(
            (err.clone(), err.status()),
            (UnofferedExtension("x-zip; level=9".into()), 502)
        );
        let none_offered = UpgradeRequest::new(&uri()).unwrap();
        assert_eq!(
            parse(&none_offered, &answer(&none_offered, Some("mqtt"), None)),
            Err(UnofferedProtocol("mqtt".into()))
        );
        assert_eq!(
            parse(
                &none_offered,
                &answer(&none_offered, None, Some("permessage-deflate"))
            ),
            Err(UnofferedExtension("permessage-deflate".into()))
        );
        // Extension names are tokens, compared case-insensitively.
        assert!(parse(
            &request,
            &answer(&request, None, Some("PerMessage-Deflate"))
        )
        .is_ok());
    }

    #[test]
    fn other_statuses_are_refusals_to_relay() {
        let request = offering();
        let refused =
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 8\r\nX-Why: token\r\n\r\nno entry";
        match request.parse_response(refused, &Limits::default()) {
            Ok(Parsed::Complete { value, consumed }) => {
                assert_eq!(value.content_length(), Some(8));
                assert_eq!(refused.get(consumed..), Some(&b"no entry"[..]));
                let UpstreamResponse::Refused {
                    status,
                    reason,
                    headers,
                } = value
                else {
                    panic!("{value:?}")
                };
                assert_eq!((status, reason.as_str()), (403, "Forbidden"));
                let names: Vec<&str> = headers.iter().map(|h| h.name.as_str()).collect();
                assert_eq!(names, ["Content-Length", "X-Why"]);
            }
            other => panic!("{other:?}"),
        }
        let Ok(UpstreamResponse::Refused { status, reason, .. }) =
            parse(&request, b"HTTP/1.0 200 \r\n\r\n")
        else {
            panic!()
        };
        assert_eq!((status, reason.as_str()), (200, ""));
    }

    #[test]
    fn refusal_content_length() {
        let request = offering();
        let length = |bytes: &[u8]| parse(&request, bytes).unwrap().content_length();
        assert_eq!(length(b"HTTP/1.1 404 Not Found\r\n\r\n"), None);
        assert_eq!(
            length(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            Some(0)
        );
        assert_eq!(
            length(b"HTTP/1.1 404 X\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
            Some(5)
        );
        assert_eq!(
            length(b"HTTP/1.1 404 X\r\nContent-Length: 5, 5\r\n\r\n"),
            Some(5)
        );
        assert_eq!(
            length(b"HTTP/1.1 404 X\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            None
        );
        assert_eq!(
            length(b"HTTP/1.1 404 X\r\nContent-Length: -1\r\n\r\n"),
            None
        );
        assert_eq!(
            length(b"HTTP/1.1 404 X\r\nContent-Length: +1\r\n\r\n"),
            None
        );
        assert_eq!(
            length(b"HTTP/1.1 404 X\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            None
        );
        assert_eq!(
            length(b"HTTP/1.1 404 X\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            None
        );
        assert_eq!(
            length(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
            Some(0)
        );
        assert_eq!(length(b"HTTP/1.1 304 Not Modified\r\n\r\n"), Some(0));
    }

    #[test]
    fn unusable_statuses_and_bytes_are_malformed() {
        // 050 was found by the handshake_response fuzz target: httparse accepts it.
        let request = offering();
        for bytes in [
            &b"HTTP/1.1 050 Odd\r\n\r\n"[..],
            b"HTTP/1.1 000 Zero\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 199 Interim\r\n\r\n",
            b"HTTP/9 abc\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
        ] {
            let err = parse(&request, bytes).unwrap_err();
            assert!(matches!(err, MalformedResponse(_)), "{err:?}");
            assert_eq!(err.status(), 502);
        }
    }

    #[test]
    fn oversized_answers_are_502_not_431() {
        let request = offering();
        let limits = Limits::default();
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        while endless.len() <= limits.max_header_bytes {
            endless.extend_from_slice(format!("X-Padding: {}\r\n", "a".repeat(250)).as_bytes());
        }
        let err = request.parse_response(&endless, &limits).unwrap_err();
        assert_eq!(
            err,
            MalformedResponse("response header block exceeds 16384 bytes".into())
        );
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..101 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let err = request.parse_response(&many, &limits).unwrap_err();
        assert_eq!(
            err,
            MalformedResponse("response header block exceeds 100 headers".into())
        );
        assert_eq!(err.status(), 502);
    }

    #[test]
    fn builder_input_cannot_break_the_request() {
        let request = UpgradeRequest::new(&uri())
            .unwrap()
            .with_target("chat room\r\nX-Injected: 1?q=\u{e9}")
            .with_host("evil\r\nX-Injected: 2")
            .with_protocols(&["ok".into(), "two words".into(), "a,b".into(), String::new()])
            .with_extensions(&[
                "permessage-deflate".into(),
                "x\r\nX-Injected: 3".into(),
                "; no-name".into(),
            ]);
        let wire = encoded(&request);
        let text = String::from_utf8(wire.clone()).unwrap();
        assert!(
            text.starts_with("GET /chat%20room%0D%0AX-Injected:%201?q=%C3%A9 HTTP/1.1\r\nHost: evil%0D%0AX-Injected:%202\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nSec-WebSocket-Protocol: ok\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"),
            "{text}"
        );
        assert!(!text.contains("\r\nX-Injected"), "{text}");
        assert!(parse_upgrade_request(&wire, &Limits::default()).is_ok());

        // A WsUri built by hand gets the same treatment.
        let odd = WsUri {
            secure: false,
            host: "h\n".into(),
            port: 80,
            path_and_query: String::new(),
        };
        let text = String::from_utf8(encoded(&UpgradeRequest::new(&odd).unwrap())).unwrap();
        assert!(
            text.starts_with("GET / HTTP/1.1\r\nHost: h%0A\r\n"),
            "{text}"
        );
    }

    #[test]
    fn with_header_rejects_what_could_split_the_request() {
        for (name, value) in [
            ("X-A", &b"a\r\nInjected: 1"[..]),
            ("X-A", b"a\nb"),
            ("X-A", b"a\0"),
            ("Bad Name", b"v"),
            ("", b"v"),
        ] {
            let err = UpgradeRequest::new(&uri())
                .unwrap()
                .with_header(name, value)
                .unwrap_err();
            assert_eq!(err, InvalidHeader { name: name.into() });
        }
    }

    #[test]
    fn keys_are_fresh_and_valid() {
        let a = UpgradeRequest::new(&uri()).unwrap();
        let b = UpgradeRequest::new(&uri()).unwrap();
        assert_ne!(a.key(), b.key());
        assert!(crate::accept::is_valid_key(a.key()));
    }

    #[test]
    fn no_request_without_a_random_key() {
        let failing = wsrelay_codec::random::fault::fail_on_this_thread();
        let err = UpgradeRequest::new(&uri()).unwrap_err();
        assert!(matches!(err, Randomness(_)), "{err:?}");
        assert_eq!(err.status(), 500);
        drop(failing);
        assert!(UpgradeRequest::new(&uri()).is_ok());
    }

    #[test]
    fn extension_names() {
        assert_eq!(
            extension_name("permessage-deflate; a=1"),
            "permessage-deflate"
        );
        assert_eq!(extension_name(" x-foo "), "x-foo");
        assert_eq!(extension_name(""), "");
    }
}
