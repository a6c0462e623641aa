//! Server side: parsing a client's upgrade request and validating it (RFC 6455 §4.2.1).

use crate::accept::{accept_key, is_valid_key};
use crate::HandshakeError;

/// Outcome of an incremental parse: wait for more bytes, or a value and the bytes it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The header block is not complete yet; call again with more bytes.
    Partial,
    /// The parsed value, and the length of the header block (through the blank line).
    /// Bytes after it (frames pipelined behind the head) stay in the caller's buffer.
    Complete {
        /// What was parsed.
        value: T,
        /// Bytes of the header block.
        consumed: usize,
    },
}

/// Bounds on a header block, so a slow or hostile peer cannot make it grow without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest header block in bytes, request line included (431 beyond).
    pub max_header_bytes: usize,
    /// Most header lines (431 beyond).
    pub max_headers: usize,
}

impl Default for Limits {
    /// 16 KiB and 100 headers.
    fn default() -> Limits {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// One header line; the value is kept as raw bytes (HTTP allows non-UTF-8 values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name as sent.
    pub name: String,
    /// Raw header value.
    pub value: Vec<u8>,
}

impl Header {
    /// The value as text, if it is UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// An HTTP request head: request line and headers, nothing WebSocket-specific yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Request method.
    pub method: String,
    /// Request target as sent: path and query.
    pub target: String,
    /// Minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header lines in order.
    pub headers: Vec<Header>,
}

/// Parses a header block with httparse into owned headers. Shared by requests and responses.
pub(crate) fn check_size(buf_len: usize, limits: &Limits) -> Result<(), HandshakeError> {
    if buf_len > limits.max_header_bytes {
        return Err(HandshakeError::HeaderTooLarge {
            limit: limits.max_header_bytes,
            unit: "bytes",
        });
    }
    Ok(())
}

/// Copies httparse headers into owned ones, checking names and values.
pub(crate) fn own_headers(headers: &[httparse::Header<'_>]) -> Result<Vec<Header>, HandshakeError> {
    headers
        .iter()
        .map(|h| {
            crate::policy::validate_header(h.name, h.value)?;
            Ok(Header {
                name: h.name.to_owned(),
                value: h.value.to_vec(),
            })
        })
        .collect()
}

/// Finds the first header called `name` (case-insensitive).
pub(crate) fn find<'a>(headers: &'a [Header], name: &str) -> Option<&'a Header> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))
}

/// All values of the headers called `name`, as text (non-UTF-8 values are skipped).
pub(crate) fn all_values<'a>(
    headers: &'a [Header],
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(Header::value_str)
}

/// Splits a comma-separated header list, respecting quoted strings; items are trimmed, empties dropped.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(value[start..].trim());
    items.retain(|s| !s.is_empty());
    items
}

/// True if any header called `name` lists `token` (case-insensitive token list, RFC 9110 §5.6.1).
pub(crate) fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    all_values(headers, name)
        .flat_map(split_list)
        .any(|t| t.eq_ignore_ascii_case(token))
}

impl RequestHead {
    /// Parses an HTTP request head. `Partial` until the blank line; errors on a head over the
    /// limits (checked on partial input too, so an endless header block fails early), on
    /// malformed HTTP, and on CR, LF or NUL inside a header.
    ///
    /// ```
    /// use wsrelay_handshake::{Limits, Parsed, RequestHead};
    /// let bytes = b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n";
    /// let Parsed::Complete { value, consumed } = RequestHead::parse(bytes, &Limits::default())? else {
    ///     panic!("complete");
    /// };
    /// assert_eq!((value.path(), consumed), ("/chat", bytes.len()));
    /// # Ok::<(), wsrelay_handshake::HandshakeError>(())
    /// ```
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed<RequestHead>, HandshakeError> {
        let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut request = httparse::Request::new(&mut slots);
        let status = match request.parse(buf) {
            Ok(status) => status,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HandshakeError::HeaderTooLarge {
                    limit: limits.max_headers,
                    unit: "headers",
                })
            }
            Err(e) => {
                check_size(buf.len(), limits)?;
                return Err(HandshakeError::MalformedRequest(e.to_string()));
            }
        };
        let consumed = match status {
            httparse::Status::Partial => {
                check_size(buf.len(), limits)?;
                return Ok(Parsed::Partial);
            }
            httparse::Status::Complete(n) => n,
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

    /// The first header called `name`, as text.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(Header::value_str)
    }

    /// The target's path (before `?`).
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The target's query (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The `Host` header.
    pub fn host(&self) -> Option<&str> {
        self.header_str("Host")
    }

    /// True if the request tries to upgrade at all (an `Upgrade` header, or `upgrade` in
    /// `Connection`), so a gateway can answer plain HTTP on a WebSocket endpoint with 426.
    pub fn is_upgrade_attempt(&self) -> bool {
        self.header("Upgrade").is_some() || has_token(&self.headers, "Connection", "upgrade")
    }

    /// Validates the head as a WebSocket upgrade (RFC 6455 §4.2.1), one error per failure.
    pub fn validate_websocket(&self) -> Result<WebSocketRequest, HandshakeError> {
        if self.method != "GET" {
            return Err(HandshakeError::MethodNotAllowed(self.method.clone()));
        }
        if self.version < 1 {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }
        match self
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("Host"))
            .count()
        {
            0 => return Err(HandshakeError::MissingHost),
            1 => {}
            _ => return Err(HandshakeError::DuplicateHost),
        }
        let Some(upgrade) = self.header("Upgrade") else {
            return Err(HandshakeError::MissingUpgrade);
        };
        if !has_token(&self.headers, "Upgrade", "websocket") {
            let shown = String::from_utf8_lossy(&upgrade.value).into_owned();
            return Err(HandshakeError::UnsupportedUpgrade(shown));
        }
        if !has_token(&self.headers, "Connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // A body behind an upgrade request is how smuggling through proxies starts.
        let has_body = self.header("Transfer-Encoding").is_some()
            || all_values(&self.headers, "Content-Length").any(|v| v.trim() != "0");
        if has_body {
            return Err(HandshakeError::RequestHasBody);
        }
        let mut keys = all_values(&self.headers, "Sec-WebSocket-Key");
        let key = match (keys.next(), keys.next()) {
            (None, _) => return Err(HandshakeError::MissingKey),
            (Some(key), None) if is_valid_key(key.trim()) => key.trim().to_owned(),
            _ => return Err(HandshakeError::BadKey),
        };
        let versions: Vec<&str> = all_values(&self.headers, "Sec-WebSocket-Version")
            .flat_map(split_list)
            .collect();
        match versions.as_slice() {
            [] => return Err(HandshakeError::MissingVersion),
            ["13"] => {}
            other => return Err(HandshakeError::UnsupportedVersion(other.join(", "))),
        }
        let list = |name| -> Vec<String> {
            all_values(&self.headers, name)
                .flat_map(split_list)
                .map(str::to_owned)
                .collect()
        };
        Ok(WebSocketRequest {
            key,
            protocols: list("Sec-WebSocket-Protocol"),
            extensions: list("Sec-WebSocket-Extensions"),
            origin: self.header_str("Origin").map(str::to_owned),
        })
    }
}

/// The WebSocket-specific part of a valid upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketRequest {
    /// `Sec-WebSocket-Key` as sent (trimmed).
    pub key: String,
    /// Offered subprotocols in order of preference.
    pub protocols: Vec<String>,
    /// Offered extensions, each with its parameters as raw text
    /// (e.g. `permessage-deflate; client_max_window_bits`).
    pub extensions: Vec<String>,
    /// The `Origin` header, if sent (browsers always send it).
    pub origin: Option<String>,
}

impl WebSocketRequest {
    /// The `Sec-WebSocket-Accept` value answering this request.
    pub fn accept(&self) -> String {
        accept_key(self.key.as_bytes())
    }
}

/// Parses a request head and validates it as a WebSocket upgrade in one step.
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
