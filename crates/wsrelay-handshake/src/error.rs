//! The handshake's one error type, each variant mapped to the HTTP status the client gets.

/// Why an opening handshake failed. [`HandshakeError::status`] gives the HTTP status to answer
/// the proxy's client with; failures on the upstream side map to 502.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The header block exceeds the byte or header-count limit (431).
    #[error("request header block exceeds {limit} {unit}")]
    HeaderTooLarge {
        /// The limit that was exceeded.
        limit: usize,
        /// "bytes" or "headers".
        unit: &'static str,
    },
    /// Not parseable as an HTTP/1.x request (400).
    #[error("malformed HTTP request: {0}")]
    MalformedRequest(String),
    /// A header name is not a token, or a value holds CR, LF or NUL (400).
    #[error(
        "invalid header {name:?}: names must be tokens and values must not contain CR, LF or NUL"
    )]
    InvalidHeader {
        /// The offending header's name (lossy).
        name: String,
    },
    /// The upgrade must be a GET (405, RFC 6455 §4.2.1).
    #[error("WebSocket upgrade must use GET, not {0}")]
    MethodNotAllowed(String),
    /// The upgrade must be HTTP/1.1 or later (400).
    #[error("WebSocket upgrade requires HTTP/1.1")]
    UnsupportedHttpVersion,
    /// No `Host` header (400, RFC 6455 §4.2.1 item 2).
    #[error("missing Host header")]
    MissingHost,
    /// More than one `Host` header: hops could disagree on which one counts (400, RFC 9112 §3.2).
    #[error("more than one Host header")]
    DuplicateHost,
    /// No `Upgrade` header (400).
    #[error("missing Upgrade: websocket header")]
    MissingUpgrade,
    /// `Upgrade` names something other than websocket, such as h2c (400).
    #[error("unsupported upgrade {0:?}: only websocket is relayed")]
    UnsupportedUpgrade(String),
    /// `Connection` lacks the `upgrade` token (400).
    #[error("Connection header must contain the token \"upgrade\"")]
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` (400).
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes, or appears twice (400).
    #[error("Sec-WebSocket-Key must be base64 of 16 bytes, sent once")]
    BadKey,
    /// No `Sec-WebSocket-Version` (400).
    #[error("missing Sec-WebSocket-Version header")]
    MissingVersion,
    /// A version other than 13 (426 with `Sec-WebSocket-Version: 13`).
    #[error("unsupported Sec-WebSocket-Version {0:?}: this server speaks 13")]
    UnsupportedVersion(String),
    /// An upgrade request with a body, the shape of request smuggling (400).
    #[error("WebSocket upgrade requests must not carry a body")]
    RequestHasBody,
    /// An unusable `ws://` or `wss://` URI.
    #[error("invalid WebSocket URI: {0}")]
    InvalidUri(String),
    /// The upstream's response is not parseable HTTP (502).
    #[error("malformed upstream response: {0}")]
    MalformedResponse(String),
    /// The upstream answered 101 without the headers that make it a WebSocket upgrade (502).
    #[error("upstream 101 response is not a WebSocket upgrade: {0}")]
    BadUpgradeResponse(&'static str),
    /// The upstream's `Sec-WebSocket-Accept` does not match our key (502).
    #[error("upstream Sec-WebSocket-Accept does not match the key sent")]
    AcceptMismatch,
    /// The upstream chose a subprotocol that was not offered (502).
    #[error("upstream chose subprotocol {0:?}, which the client did not offer")]
    UnofferedProtocol(String),
    /// The upstream accepted an extension that was not offered (502).
    #[error("upstream accepted extension {0:?}, which was not offered")]
    UnofferedExtension(String),
}

impl HandshakeError {
    /// The HTTP status to answer the proxy's client with.
    pub fn status(&self) -> u16 {
        use HandshakeError::*;
        match self {
            HeaderTooLarge { .. } => 431,
            MethodNotAllowed(_) => 405,
            UnsupportedVersion(_) => 426,
            MalformedResponse(_)
            | BadUpgradeResponse(_)
            | AcceptMismatch
            | UnofferedProtocol(_)
            | UnofferedExtension(_)
            | InvalidUri(_) => 502,
            MalformedRequest(_)
            | InvalidHeader { .. }
            | UnsupportedHttpVersion
            | MissingHost
            | DuplicateHost
            | MissingUpgrade
            | UnsupportedUpgrade(_)
            | MissingConnectionUpgrade
            | MissingKey
            | BadKey
            | MissingVersion
            | RequestHasBody => 400,
        }
    }

    /// Headers the error response must carry (RFC 6455 §4.4: a 426 names the version spoken).
    pub fn response_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            HandshakeError::UnsupportedVersion(_) => &[("Sec-WebSocket-Version", "13")],
            HandshakeError::MethodNotAllowed(_) => &[("Allow", "GET")],
            _ => &[],
        }
    }

    /// Writes the complete HTTP error response for this failure.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        crate::response::write_error_response(
            out,
            self.status(),
            self.response_headers(),
            &format!("{self}\n"),
        );
    }
}
