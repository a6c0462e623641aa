//! The handshake's one error type, each variant mapped to the HTTP status the client gets.

/// Why an opening handshake failed. [`HandshakeError::status`] gives the HTTP status to answer
/// the proxy's client with; failures on the upstream side map to 502.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The header block exceeds the byte or header-count limit (431, RFC 6585 §5).
    #[error("header block exceeds {limit} {unit}")]
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
        /// The offending header's name (lossy, at most 64 characters).
        name: String,
    },
    /// The upgrade must be a GET (405 with `Allow: GET`, RFC 6455 §4.2.1 item 1).
    #[error("WebSocket upgrade must use GET, not {0:?}")]
    MethodNotAllowed(String),
    /// The upgrade must be HTTP/1.1 or later (400, RFC 6455 §4.2.1 item 1).
    #[error("WebSocket upgrade requires HTTP/1.1, not HTTP/1.0")]
    UnsupportedHttpVersion,
    /// No `Host` header (400, RFC 6455 §4.2.1 item 2; RFC 9112 §3.2).
    #[error("missing Host header")]
    MissingHost,
    /// More than one `Host` header: proxies could disagree on which one counts (400, RFC 9112 §3.2).
    #[error("more than one Host header")]
    DuplicateHost,
    /// No `Upgrade` header (400, RFC 6455 §4.2.1 item 3).
    #[error("missing \"Upgrade: websocket\" header")]
    MissingUpgrade,
    /// `Upgrade` names something other than websocket, such as h2c (400).
    #[error("unsupported upgrade {0:?}: only websocket is accepted")]
    UnsupportedUpgrade(String),
    /// `Connection` lacks the `upgrade` token (400, RFC 6455 §4.2.1 item 4).
    #[error("Connection header must contain the token \"Upgrade\"")]
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` (400, RFC 6455 §4.2.1 item 5).
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes, or appears twice (400).
    #[error("Sec-WebSocket-Key must be base64 of 16 bytes, sent once")]
    BadKey,
    /// No `Sec-WebSocket-Version` (400, RFC 6455 §4.2.1 item 6).
    #[error("missing Sec-WebSocket-Version header (this server speaks 13)")]
    MissingVersion,
    /// A version other than 13 (426 with `Sec-WebSocket-Version: 13`, RFC 6455 §4.4).
    #[error("unsupported Sec-WebSocket-Version {0:?}: this server speaks 13")]
    UnsupportedVersion(String),
    /// An upgrade request with a body (`Content-Length` > 0 or any `Transfer-Encoding`): the
    /// body would be read as WebSocket frames, the shape of request smuggling (400).
    #[error("WebSocket upgrade requests must not carry a body")]
    RequestHasBody,
    /// An unusable `ws://` or `wss://` URI (a configuration error; 502 if it reaches a client).
    #[error("invalid WebSocket URI: {0}")]
    InvalidUri(String),
    /// The upstream's response is not parseable HTTP, too large, or has an unusable status (502).
    #[error("malformed upstream response: {0}")]
    MalformedResponse(String),
    /// The upstream answered 101 without the headers that make it a WebSocket upgrade (502).
    #[error("upstream 101 response is not a WebSocket upgrade: {0}")]
    BadUpgradeResponse(&'static str),
    /// The upstream's `Sec-WebSocket-Accept` is missing, repeated or does not match our key (502).
    #[error("upstream Sec-WebSocket-Accept does not match the key sent")]
    AcceptMismatch,
    /// The upstream chose a subprotocol that was not offered, or several (502, RFC 6455 §4.1).
    #[error("upstream chose subprotocol {0:?}, which was not offered")]
    UnofferedProtocol(String),
    /// The upstream accepted an extension that was not offered (502, RFC 6455 §4.1).
    #[error("upstream accepted extension {0:?}, which was not offered")]
    UnofferedExtension(String),
    /// The OS random source failed, so no `Sec-WebSocket-Key` could be drawn for the upstream
    /// request (500: the proxy's own failure; the upstream is not contacted with a guessable key).
    #[error("cannot make a Sec-WebSocket-Key: {0}")]
    Randomness(#[from] wsrelay_codec::RandomError),
}

impl HandshakeError {
    /// The HTTP status to answer the proxy's client with: 4xx for the client's own mistakes,
    /// 502 for everything that went wrong on the upstream side, 500 for the proxy's own.
    pub fn status(&self) -> u16 {
        use HandshakeError::*;
        match self {
            HeaderTooLarge { .. } => 431,
            Randomness(_) => 500,
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

    /// Headers the error response must carry: a 426 names the version spoken (RFC 6455 §4.4),
    /// a 405 the method allowed (RFC 9110 §15.5.6).
    pub fn response_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            HandshakeError::UnsupportedVersion(_) => &[("Sec-WebSocket-Version", "13")],
            HandshakeError::MethodNotAllowed(_) => &[("Allow", "GET")],
            _ => &[],
        }
    }

    /// Writes the complete HTTP error response for this failure: its status, its
    /// [`response_headers`](Self::response_headers) and the message as a one-line body.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        crate::response::write_error_response(
            out,
            self.status(),
            self.response_headers(),
            &format!("{self}\n"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::HandshakeError::*;

    /// The error a failing OS random source gives (made to fail for this test only).
    fn random_failure() -> wsrelay_codec::RandomError {
        let _failing = wsrelay_codec::random::fault::fail_on_this_thread();
        wsrelay_codec::random::masking_key().unwrap_err()
    }

    #[test]
    fn every_variant_has_its_status() {
        let cases = [
            (
                HeaderTooLarge {
                    limit: 1,
                    unit: "bytes",
                },
                431,
            ),
            (MalformedRequest("x".into()), 400),
            (InvalidHeader { name: "X".into() }, 400),
            (MethodNotAllowed("POST".into()), 405),
            (UnsupportedHttpVersion, 400),
            (MissingHost, 400),
            (DuplicateHost, 400),
            (MissingUpgrade, 400),
            (UnsupportedUpgrade("h2c".into()), 400),
            (MissingConnectionUpgrade, 400),
            (MissingKey, 400),
            (BadKey, 400),
            (MissingVersion, 400),
            (UnsupportedVersion("8".into()), 426),
            (RequestHasBody, 400),
            (InvalidUri("x".into()), 502),
            (MalformedResponse("x".into()), 502),
            (BadUpgradeResponse("x"), 502),
            (AcceptMismatch, 502),
            (UnofferedProtocol("x".into()), 502),
            (UnofferedExtension("x".into()), 502),
            (Randomness(random_failure()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn response_headers_and_written_response() {
        assert_eq!(
            UnsupportedVersion("8".into()).response_headers(),
            &[("Sec-WebSocket-Version", "13")]
        );
        assert_eq!(
            MethodNotAllowed("POST".into()).response_headers(),
            &[("Allow", "GET")]
        );
        assert!(BadKey.response_headers().is_empty());

        let mut out = Vec::new();
        UnsupportedVersion("8".into()).write_response(&mut out);
        let body = "unsupported Sec-WebSocket-Version \"8\": this server speaks 13\n";
        let expected = format!(
            "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn messages_quote_untrusted_text() {
        // Debug formatting escapes control characters, so a hostile method cannot shape the body.
        let shown = MethodNotAllowed("P\u{1b}[2J".into()).to_string();
        assert!(!shown.contains('\u{1b}'), "{shown}");
    }
}
