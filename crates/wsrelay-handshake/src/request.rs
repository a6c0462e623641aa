//! Server side: parsing a client's upgrade request and validating it (RFC 6455 §4.2.1).

use crate::accept::{accept_key, is_valid_key};
use crate::header::{
    check_size, find, has_token, header_slots, list_items, offending_header, own_headers,
    too_many_headers, values,
};
use crate::{HandshakeError, Header, Limits, Parsed};

/// An HTTP request head: request line and headers, nothing WebSocket-specific yet, so a
/// gateway can route on it (and answer non-upgrade requests) before validating the upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request target as sent: path and query.
    pub target: String,
    /// Minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header lines in order.
    pub headers: Vec<Header>,
}

impl RequestHead {
    /// Parses an HTTP request head (httparse). `Partial` until the blank line.
    ///
    /// Errors: a head over `limits` is [`HandshakeError::HeaderTooLarge`] (431), checked on
    /// incomplete input too, so a peer sending an endless header block fails as soon as the
    /// buffer passes the byte limit; a control character (CR, LF, NUL…) inside a header value is
    /// [`HandshakeError::InvalidHeader`]; anything else that is not HTTP/1.x is
    /// [`HandshakeError::MalformedRequest`] (both 400).
    ///
    /// ```
    /// use wsrelay_handshake::{Limits, Parsed, RequestHead};
    /// let bytes = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    /// let Parsed::Complete { value, consumed } = RequestHead::parse(bytes, &Limits::default())? else {
    ///     panic!("complete");
    /// };
    /// assert_eq!((value.path(), value.query(), consumed), ("/chat", Some("room=1"), bytes.len()));
    /// assert_eq!(RequestHead::parse(&bytes[..20], &Limits::default())?, Parsed::Partial);
    /// # Ok::<(), wsrelay_handshake::HandshakeError>(())
    /// ```
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed<RequestHead>, HandshakeError> {
        let mut slots = header_slots(buf.len(), limits);
        let slot_count = slots.len();
        let mut request = httparse::Request::new(&mut slots);
        let consumed = match request.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                // The slow-loris guard: an incomplete head may not outgrow the limit.
                check_size(buf.len(), limits)?;
                return Ok(Parsed::Partial);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(too_many_headers(slot_count, limits))
            }
            Err(httparse::Error::HeaderValue) => {
                check_size(buf.len(), limits)?;
                return Err(HandshakeError::InvalidHeader {
                    name: offending_header(buf),
                });
            }
            Err(e) => {
                check_size(buf.len(), limits)?;
                return Err(HandshakeError::MalformedRequest(e.to_string()));
            }
        };
        check_size(consumed, limits)?;
        let (Some(method), Some(target), Some(version)) =
            (request.method, request.path, request.version)
        else {
            return Err(HandshakeError::MalformedRequest(
                "incomplete request line".into(),
            ));
        };
        Ok(Parsed::Complete {
            value: RequestHead {
                method: method.to_owned(),
                target: target.to_owned(),
                version,
                headers: own_headers(request.headers)?,
            },
            consumed,
        })
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&Header> {
        find(&self.headers, name)
    }

    /// The first header called `name`, as text (`None` if absent or not UTF-8).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(Header::value_str)
    }

    /// The target's path (before `?`), for routing.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The target's query (after `?`, without it), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The `Host` header, for virtual hosting and `X-Forwarded-Host`.
    pub fn host(&self) -> Option<&str> {
        self.header_str("Host")
    }

    /// True if the request carries an `Upgrade` header (any value) or `upgrade` in
    /// `Connection`: lets a gateway answer plain HTTP requests on a WebSocket route with 426
    /// instead of 400.
    pub fn is_upgrade_attempt(&self) -> bool {
        self.header("Upgrade").is_some() || has_token(&self.headers, "Connection", "upgrade")
    }

    /// Validates the head as a WebSocket opening handshake (RFC 6455 §4.2.1), one error per
    /// failure, checked in the order of that section, then that no body follows the head.
    pub fn validate_websocket(&self) -> Result<WebSocketRequest, HandshakeError> {
        // §4.2.1 item 1: "An HTTP/1.1 or higher GET request". Methods are case-sensitive.
        if self.method != "GET" {
            return Err(HandshakeError::MethodNotAllowed(self.method.clone()));
        }
        if self.version < 1 {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }
        // Item 2, and RFC 9112 §3.2: exactly one Host, or proxies may disagree about the target.
        match values(&self.headers, "Host").count() {
            0 => return Err(HandshakeError::MissingHost),
            1 => {}
            _ => return Err(HandshakeError::DuplicateHost),
        }
        // Item 3: Upgrade lists the token "websocket" (case-insensitive).
        let Some(upgrade) = self.header("Upgrade") else {
            return Err(HandshakeError::MissingUpgrade);
        };
        if !has_token(&self.headers, "Upgrade", "websocket") {
            let shown = String::from_utf8_lossy(&upgrade.value).into_owned();
            return Err(HandshakeError::UnsupportedUpgrade(shown));
        }
        // Item 4: Connection lists the token "Upgrade", possibly beside others ("keep-alive").
        if !has_token(&self.headers, "Connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // Item 5: one key, base64 of 16 bytes. Raw values, so a non-UTF-8 key is a bad key.
        let mut keys = values(&self.headers, "Sec-WebSocket-Key");
        let key = match (keys.next(), keys.next()) {
            (None, _) => return Err(HandshakeError::MissingKey),
            (Some(raw), None) => std::str::from_utf8(raw)
                .ok()
                .map(|k| k.trim_matches([' ', '\t']))
                .filter(|k| is_valid_key(k))
                .ok_or(HandshakeError::BadKey)?
                .to_owned(),
            (Some(_), Some(_)) => return Err(HandshakeError::BadKey),
        };
        // Item 6: version 13; anything else gets 426 naming 13 (§4.4).
        if self.header("Sec-WebSocket-Version").is_none() {
            return Err(HandshakeError::MissingVersion);
        }
        let versions = list_items(&self.headers, "Sec-WebSocket-Version");
        if versions != ["13"] {
            return Err(HandshakeError::UnsupportedVersion(versions.join(", ")));
        }
        // After the head, the connection speaks WebSocket: a body would be read as frames by
        // one party and as HTTP by another, which is how request smuggling starts.
        let has_body = self.header("Transfer-Encoding").is_some()
            || values(&self.headers, "Content-Length").any(|v| !is_zero(v));
        if has_body {
            return Err(HandshakeError::RequestHasBody);
        }
        Ok(WebSocketRequest {
            key,
            protocols: list_items(&self.headers, "Sec-WebSocket-Protocol"),
            extensions: list_items(&self.headers, "Sec-WebSocket-Extensions"),
            origin: self.header_str("Origin").map(str::to_owned),
        })
    }
}

/// True for a `Content-Length` of zero; anything else, malformed values included, counts as a
/// body (a downstream server might read a malformed length as one).
fn is_zero(value: &[u8]) -> bool {
    let digits = value.trim_ascii();
    !digits.is_empty() && digits.iter().all(|&b| b == b'0')
}

/// The WebSocket-specific part of a valid upgrade request (RFC 6455 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketRequest {
    /// `Sec-WebSocket-Key` as sent (trimmed).
    pub key: String,
    /// Offered subprotocols from every `Sec-WebSocket-Protocol` line, in order of preference.
    pub protocols: Vec<String>,
    /// Offered extensions from every `Sec-WebSocket-Extensions` line, in order, each with its
    /// parameters as raw trimmed text (e.g. `permessage-deflate; client_max_window_bits`).
    pub extensions: Vec<String>,
    /// The `Origin` header, if sent (browsers always send it; check it against CSRF, §10.2).
    pub origin: Option<String>,
}

impl WebSocketRequest {
    /// The `Sec-WebSocket-Accept` value answering this request (RFC 6455 §4.2.2 item 5.4).
    pub fn accept(&self) -> String {
        accept_key(self.key.as_bytes())
    }
}

/// Parses a request head and validates it as a WebSocket upgrade in one step
/// ([`RequestHead::parse`], then [`RequestHead::validate_websocket`]).
///
/// ```
/// use wsrelay_handshake::{parse_upgrade_request, Limits, Parsed};
/// let request = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///     Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\n\r\n";
/// let Parsed::Complete { value: (_head, ws), .. } = parse_upgrade_request(request, &Limits::default())? else {
///     panic!("complete");
/// };
/// assert_eq!(ws.accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// # Ok::<(), wsrelay_handshake::HandshakeError>(())
/// ```
pub fn parse_upgrade_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Parsed<(RequestHead, WebSocketRequest)>, HandshakeError> {
    match RequestHead::parse(buf, limits)? {
        Parsed::Partial => Ok(Parsed::Partial),
        Parsed::Complete { value, consumed } => {
            let ws = value.validate_websocket()?;
            Ok(Parsed::Complete {
                value: (value, ws),
                consumed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HandshakeError::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// The RFC 6455 §1.2 example request, with an extension offer and a query.
    const VALID: [&str; 9] = [
        "GET /chat?room=1 HTTP/1.1",
        "Host: server.example.com",
        "Upgrade: websocket",
        "Connection: keep-alive, Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Origin: http://example.com",
        "Sec-WebSocket-Protocol: chat, superchat",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo; a=\"1,2\"",
        "Sec-WebSocket-Version: 13",
    ];

    fn request(lines: &[&str]) -> Vec<u8> {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    /// The valid request with the line starting with `prefix` replaced (or removed).
    fn replaced(prefix: &str, with: Option<&str>) -> Vec<u8> {
        let lines: Vec<&str> = VALID
            .iter()
            .filter_map(|&l| if l.starts_with(prefix) { with } else { Some(l) })
            .collect();
        request(&lines)
    }

    /// The valid request with `line` added before the blank line.
    fn with_line(line: &str) -> Vec<u8> {
        let mut lines = VALID.to_vec();
        lines.push(line);
        request(&lines)
    }

    fn head(bytes: &[u8]) -> RequestHead {
        match RequestHead::parse(bytes, &Limits::default()) {
            Ok(Parsed::Complete { value, .. }) => value,
            other => panic!("{other:?}"),
        }
    }

    fn validate(bytes: &[u8]) -> Result<WebSocketRequest, HandshakeError> {
        head(bytes).validate_websocket()
    }

    #[test]
    fn a_valid_request_yields_its_offers_and_the_rfc_accept() {
        let ws = validate(&request(&VALID)).unwrap();
        assert_eq!(ws.key, KEY);
        assert_eq!(ws.accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(ws.protocols, ["chat", "superchat"]);
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
    fn every_validation_failure_has_its_own_error_and_status() {
        let cases: Vec<(Vec<u8>, HandshakeError, u16)> = vec![
            (
                replaced("GET", Some("POST /chat HTTP/1.1")),
                MethodNotAllowed("POST".into()),
                405,
            ),
            (
                replaced("GET", Some("get /chat HTTP/1.1")),
                MethodNotAllowed("get".into()),
                405,
            ),
            (
                replaced("GET", Some("GET /chat HTTP/1.0")),
                UnsupportedHttpVersion,
                400,
            ),
            (replaced("Host", None), MissingHost, 400),
            (with_line("host: other.example"), DuplicateHost, 400),
            (replaced("Upgrade", None), MissingUpgrade, 400),
            (
                replaced("Upgrade", Some("Upgrade: h2c")),
                UnsupportedUpgrade("h2c".into()),
                400,
            ),
            (
                replaced("Connection", Some("Connection: keep-alive")),
                MissingConnectionUpgrade,
                400,
            ),
            (replaced("Connection", None), MissingConnectionUpgrade, 400),
            (replaced("Sec-WebSocket-Key", None), MissingKey, 400),
            (
                replaced("Sec-WebSocket-Key", Some("Sec-WebSocket-Key: c2hvcnQ=")),
                BadKey,
                400,
            ),
            (
                replaced(
                    "Sec-WebSocket-Key",
                    Some("Sec-WebSocket-Key: not base64 at all!!"),
                ),
                BadKey,
                400,
            ),
            (with_line(&format!("Sec-WebSocket-Key: {KEY}")), BadKey, 400),
            (replaced("Sec-WebSocket-Version", None), MissingVersion, 400),
            (
                replaced("Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8")),
                UnsupportedVersion("8".into()),
                426,
            ),
            (
                with_line("Sec-WebSocket-Version: 8"),
                UnsupportedVersion("13, 8".into()),
                426,
            ),
            (
                replaced("Sec-WebSocket-Version", Some("Sec-WebSocket-Version:")),
                UnsupportedVersion(String::new()),
                426,
            ),
            (with_line("Content-Length: 5"), RequestHasBody, 400),
            (with_line("Content-Length: nonsense"), RequestHasBody, 400),
            (with_line("Transfer-Encoding: chunked"), RequestHasBody, 400),
            (
                with_line("Transfer-Encoding: identity"),
                RequestHasBody,
                400,
            ),
        ];
        for (bytes, error, status) in cases {
            let got = validate(&bytes).unwrap_err();
            assert_eq!(got, error, "{}", String::from_utf8_lossy(&bytes));
            assert_eq!(got.status(), status, "{got:?}");
        }
        // A zero Content-Length is no body.
        assert!(validate(&with_line("Content-Length: 0")).is_ok());
    }

    #[test]
    fn a_non_utf8_key_is_a_bad_key_not_a_missing_one() {
        let bytes = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: \xff\xfe\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(validate(bytes), Err(BadKey));
    }

    #[test]
    fn tokens_are_case_insensitive_lists() {
        let bytes = request(&[
            "GET / HTTP/1.1",
            "Host: h",
            "upgrade: WebSocket",
            "CONNECTION: keep-alive",
            "Connection: UPGRADE",
            &format!("sec-websocket-key:   {KEY}  "),
            "sec-websocket-version: 13",
        ]);
        let ws = validate(&bytes).unwrap();
        assert_eq!(ws.key, KEY);
        assert!(ws.protocols.is_empty() && ws.extensions.is_empty() && ws.origin.is_none());
        let listed = replaced("Upgrade", Some("Upgrade: h2c, websocket"));
        assert!(validate(&listed).is_ok());
    }

    #[test]
    fn offers_are_gathered_from_every_header_line() {
        let ws = validate(&with_line("Sec-WebSocket-Protocol: v2.chat")).unwrap();
        assert_eq!(ws.protocols, ["chat", "superchat", "v2.chat"]);
        let ws = validate(&with_line("Sec-WebSocket-Extensions: x-bar")).unwrap();
        assert_eq!(ws.extensions.last().map(String::as_str), Some("x-bar"));
    }

    #[test]
    fn partial_on_every_proper_prefix() {
        let bytes = request(&VALID);
        for cut in 0..bytes.len() {
            assert_eq!(
                parse_upgrade_request(&bytes[..cut], &Limits::default()),
                Ok(Parsed::Partial),
                "prefix of {cut} bytes"
            );
        }
    }

    #[test]
    fn pipelined_frame_bytes_stay_in_the_buffer() {
        let head_bytes = request(&VALID);
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut buf = head_bytes.clone();
        buf.extend_from_slice(&frame);
        match parse_upgrade_request(&buf, &Limits::default()) {
            Ok(Parsed::Complete { consumed, .. }) => {
                assert_eq!(consumed, head_bytes.len());
                assert_eq!(buf.get(consumed..), Some(&frame[..]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_never_ending_header_block_gets_431_once_past_the_limit() {
        let limits = Limits::default();
        let mut endless = b"GET / HTTP/1.1\r\n".to_vec();
        let mut first_error = None;
        while first_error.is_none() {
            // Long lines, so the byte limit comes before the header-count limit.
            endless.extend_from_slice(format!("X-Padding: {}\r\n", "a".repeat(250)).as_bytes());
            match RequestHead::parse(&endless, &limits) {
                Ok(Parsed::Partial) => assert!(endless.len() <= limits.max_header_bytes),
                Ok(Parsed::Complete { .. }) => panic!("no blank line was sent"),
                Err(e) => first_error = Some(e),
            }
        }
        assert!(endless.len() > limits.max_header_bytes);
        assert!(endless.len() < limits.max_header_bytes + 300);
        let err = first_error.unwrap();
        assert_eq!(
            err,
            HeaderTooLarge {
                limit: 16 * 1024,
                unit: "bytes"
            }
        );
        assert_eq!(err.status(), 431);

        // One long line without any newline is caught the same way.
        let long = vec![b'a'; limits.max_header_bytes + 1];
        assert_eq!(
            RequestHead::parse(&long, &limits).unwrap_err().status(),
            431
        );
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut lines = vec!["GET / HTTP/1.1".to_owned()];
        lines.extend((0..101).map(|i| format!("X-{i}: v")));
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let err = RequestHead::parse(&request(&lines), &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            HeaderTooLarge {
                limit: 100,
                unit: "headers"
            }
        );
        assert_eq!(err.status(), 431);
        // Exactly at the limit is fine.
        let at_limit = request(&lines[..101]);
        assert!(RequestHead::parse(&at_limit, &Limits::default()).is_ok());
        // A complete head over the byte limit is refused even though it ended.
        let tight = Limits {
            max_header_bytes: 40,
            max_headers: 100,
        };
        let err = RequestHead::parse(&request(&VALID), &tight).unwrap_err();
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn control_characters_in_values_are_invalid_headers() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n",
        ] {
            let err = RequestHead::parse(bad, &Limits::default()).unwrap_err();
            assert_eq!(err, InvalidHeader { name: "X-A".into() });
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn malformed_http_is_400() {
        for bytes in [
            &b"GET\r\n\r\n"[..],
            b"\x00\x01\x02\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: x\r\n folded\r\n\r\n",
        ] {
            let err = RequestHead::parse(bytes, &Limits::default()).unwrap_err();
            assert!(matches!(err, MalformedRequest(_)), "{bytes:?}: {err:?}");
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn accessors() {
        let plain = head(&request(&["GET / HTTP/1.1", "Host: h", "X-Raw: \u{e9}"]));
        assert!(!plain.is_upgrade_attempt());
        assert_eq!(
            (plain.path(), plain.query(), plain.host()),
            ("/", None, Some("h"))
        );
        assert_eq!(
            plain.header("x-raw").map(|h| h.name.as_str()),
            Some("X-Raw")
        );
        assert_eq!(plain.header_str("X-RAW"), Some("\u{e9}"));
        assert_eq!(plain.header("Missing"), None);

        let ws = head(&request(&VALID));
        assert!(ws.is_upgrade_attempt());
        assert_eq!((ws.path(), ws.query()), ("/chat", Some("room=1")));
        assert_eq!((ws.method.as_str(), ws.version), ("GET", 1));
        assert_eq!(ws.headers.len(), VALID.len() - 1);

        let only_upgrade = head(&request(&["GET / HTTP/1.1", "Upgrade: h2c"]));
        assert!(only_upgrade.is_upgrade_attempt());
        let only_connection = head(&request(&["GET / HTTP/1.1", "Connection: Upgrade"]));
        assert!(only_connection.is_upgrade_attempt());
        let empty_query = head(&request(&["GET /a? HTTP/1.1"]));
        assert_eq!((empty_query.path(), empty_query.query()), ("/a", Some("")));
    }

    #[test]
    fn non_utf8_values_are_kept_raw() {
        let bytes = b"GET / HTTP/1.1\r\nHost: h\r\nX-Latin1: caf\xe9\r\n\r\n";
        let head = head(bytes);
        let header = head.header("X-Latin1").unwrap();
        assert_eq!(header.value, b"caf\xe9");
        assert_eq!(header.value_str(), None);
    }
}
