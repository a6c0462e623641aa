//! Refusals: every reason a client's connection does not reach the relay, each rendered as the
//! one HTTP response the client gets.

use std::io;
use std::time::Duration;

use wsrelay_handshake::{write_error_response, HandshakeError, HostError, TargetError};

use crate::admission::Rejection;

/// Why a connection never reached the relay; each maps to the HTTP status the client gets.
///
/// Upstream failures keep their detail (address, error) for the log, while the client's
/// response names only the status: internal addresses and errors are not shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The request is not a valid WebSocket upgrade (400, 405, 426, 431 ...).
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    /// The request target has no canonical form (400): not a path, above the root, a refused
    /// encoded slash, a byte no path has.
    #[error("bad request target: {0}")]
    BadTarget(TargetError),
    /// The Host header is missing or invalid (400).
    #[error("bad Host: {0}")]
    BadHost(HostError),
    /// A header that must appear once appeared more often (400): two Hosts or two Origins
    /// would let a check read one and the upstream another.
    #[error("more than one {0} header")]
    RepeatedHeader(&'static str),
    /// On TLS, the Host names another server than the one the client asked for in SNI (421).
    #[error("Host {host:?} is not the server {sni:?} named in TLS (SNI)")]
    Misdirected {
        /// The request's canonical host.
        host: String,
        /// The SNI name of the TLS handshake.
        sni: String,
    },
    /// No route matches the request (404).
    #[error("no route matches this request")]
    NoRoute,
    /// The route that matches has WebSocket switched off (403).
    #[error("WebSocket is switched off on this route")]
    RouteDisabled,
    /// A plain HTTP request on a WebSocket route (426).
    #[error("this endpoint speaks WebSocket only: send a GET with Upgrade: websocket")]
    NotAnUpgrade,
    /// The request's `Origin` is not on the route's allow-list (403).
    #[error("Origin {0:?} is not allowed to open a WebSocket here")]
    OriginNotAllowed(String),
    /// The client did not complete its TLS handshake and request in time (408).
    #[error("no complete upgrade request within {0:?}")]
    HandshakeTimeout(Duration),
    /// The upstream could not be reached (502).
    #[error("upstream {0} unreachable: {1}")]
    Connect(String, io::Error),
    /// The upstream did not accept the connection in time (504).
    #[error("upstream {0} did not accept the connection within {1:?}")]
    ConnectTimeout(String, Duration),
    /// TLS with the upstream failed, e.g. its certificate was not verified (502).
    #[error("TLS with upstream {0} failed: {1}")]
    UpstreamTls(String, io::Error),
    /// The upstream did not answer the upgrade in time (504).
    #[error("upstream did not answer the upgrade within {0:?}")]
    UpgradeTimeout(Duration),
    /// The upstream's connection failed during the upgrade (502).
    #[error("upstream failed during the upgrade: {0}")]
    UpstreamIo(io::Error),
    /// The upstream answered with something that is not a valid 101 or HTTP response (502).
    #[error("upstream answered the upgrade with an invalid response: {0}")]
    UpstreamHandshake(HandshakeError),
    /// The route requires a token (`auth = "NAME"`) and none came in the provider's place, or
    /// not in a usable form (401, `WWW-Authenticate: Bearer error="invalid_request"`).
    #[error("no token for auth provider {provider:?}: {why}")]
    TokenMissing {
        /// The provider's name.
        provider: String,
        /// What was missing.
        why: &'static str,
    },
    /// The token was not accepted: signature, algorithm, `exp`, `nbf`, `iss`, `aud` or a
    /// required claim (401, `WWW-Authenticate: Bearer error="invalid_token"`). The reason is
    /// logged, never sent to the client.
    #[error("token refused by auth provider {provider:?}: {why}")]
    TokenInvalid {
        /// The provider's name.
        provider: String,
        /// Why, without the token.
        why: String,
    },
    /// The upstream refused the upgrade (401, 403, 404 ...): its response goes to the client as
    /// it came (status, end-to-end headers, body), so the client's own error handling works.
    #[error("upstream refused the upgrade with {status}")]
    UpstreamRefused {
        /// The upstream's status.
        status: u16,
        /// The response to relay, already encoded.
        response: Vec<u8>,
    },
    /// An admission limit refused the connection (503 for the gateway's capacity, 429 for a
    /// client address's), with `Retry-After`.
    #[error("{}", .0.reason)]
    Admission(Rejection),
    /// The route's pool is at its breaker limits: every backend at its tunnel cap, or the
    /// pool at its handshake cap (503 with `Retry-After`, at once rather than a wait).
    #[error("pool {0} is at its connection limits")]
    PoolSaturated(String),
}

/// Seconds a client refused by a saturated pool is told to wait (`Retry-After`).
pub const POOL_RETRY_AFTER: &str = "1";

impl Refusal {
    /// The HTTP status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Handshake(e) => e.status(),
            Refusal::BadTarget(_) | Refusal::BadHost(_) | Refusal::RepeatedHeader(_) => 400,
            Refusal::Misdirected { .. } => 421,
            Refusal::NoRoute => 404,
            Refusal::RouteDisabled | Refusal::OriginNotAllowed(_) => 403,
            Refusal::NotAnUpgrade => 426,
            Refusal::HandshakeTimeout(_) => 408,
            Refusal::ConnectTimeout(..) | Refusal::UpgradeTimeout(_) => 504,
            Refusal::Connect(..)
            | Refusal::UpstreamTls(..)
            | Refusal::UpstreamIo(_)
            | Refusal::UpstreamHandshake(_) => 502,
            Refusal::UpstreamRefused { status, .. } => *status,
            Refusal::Admission(rejection) => rejection.status(),
            Refusal::TokenMissing { .. } | Refusal::TokenInvalid { .. } => 401,
            Refusal::PoolSaturated(_) => 503,
        }
    }

    /// Appends the response the client gets (status line, headers, a short text body).
    pub fn write_response(&self, out: &mut Vec<u8>) {
        match self {
            Refusal::Handshake(e) => e.write_response(out),
            Refusal::NotAnUpgrade => write_error_response(
                out,
                426,
                &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
                &format!("{self}\n"),
            ),
            // The client's own Origin is not echoed back: the body stays a fixed text.
            Refusal::OriginNotAllowed(_) => write_error_response(
                out,
                403,
                &[],
                "this Origin is not allowed to open a WebSocket here\n",
            ),
            Refusal::BadTarget(_)
            | Refusal::BadHost(_)
            | Refusal::RepeatedHeader(_)
            | Refusal::NoRoute
            | Refusal::RouteDisabled
            | Refusal::HandshakeTimeout(_) => {
                write_error_response(out, self.status(), &[], &format!("{self}\n"))
            }
            // The names are the client's own (its SNI, its Host): a fixed text, no echo.
            Refusal::Misdirected { .. } => write_error_response(
                out,
                421,
                &[],
                "this connection's TLS server name does not match the Host\n",
            ),
            Refusal::ConnectTimeout(..) | Refusal::UpgradeTimeout(_) => write_error_response(
                out,
                504,
                &[],
                "the upstream server did not answer in time\n",
            ),
            Refusal::Connect(..)
            | Refusal::UpstreamTls(..)
            | Refusal::UpstreamIo(_)
            | Refusal::UpstreamHandshake(_) => write_error_response(
                out,
                502,
                &[],
                "the upstream server could not complete the WebSocket handshake\n",
            ),
            Refusal::UpstreamRefused { response, .. } => out.extend_from_slice(response),
            Refusal::Admission(rejection) => rejection.write_response(out),
            // RFC 6750 §3: the error code, and no detail that would help a forger.
            Refusal::TokenMissing { .. } => write_error_response(
                out,
                401,
                &[("WWW-Authenticate", "Bearer error=\"invalid_request\"")],
                "a bearer token is required\n",
            ),
            Refusal::TokenInvalid { .. } => write_error_response(
                out,
                401,
                &[("WWW-Authenticate", "Bearer error=\"invalid_token\"")],
                "the token was not accepted\n",
            ),
            Refusal::PoolSaturated(_) => write_error_response(
                out,
                503,
                &[("Retry-After", POOL_RETRY_AFTER)],
                "the upstream servers are at their connection limits; retry shortly\n",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(refusal: &Refusal) -> String {
        let mut out = Vec::new();
        refusal.write_response(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_status_line_carries_the_status() {
        for refusal in [
            Refusal::NoRoute,
            Refusal::RouteDisabled,
            Refusal::NotAnUpgrade,
            Refusal::HandshakeTimeout(Duration::from_secs(1)),
            Refusal::UpgradeTimeout(Duration::from_secs(1)),
            Refusal::UpstreamIo(io::ErrorKind::UnexpectedEof.into()),
        ] {
            let text = rendered(&refusal);
            let status = refusal.status().to_string();
            assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        }
    }

    #[test]
    fn upstream_failures_do_not_show_the_internal_address() {
        let refusal = Refusal::Connect(
            "10.1.2.3:9000".to_owned(),
            io::ErrorKind::ConnectionRefused.into(),
        );
        let text = rendered(&refusal);
        assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
        assert!(!text.contains("10.1.2.3"), "{text}");
    }

    #[test]
    fn auth_refusals_are_401_with_the_bearer_error_and_no_reason() {
        let missing = Refusal::TokenMissing {
            provider: "users".into(),
            why: "no Authorization header",
        };
        let text = rendered(&missing);
        assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
        assert!(
            text.contains("WWW-Authenticate: Bearer error=\"invalid_request\"\r\n"),
            "{text}"
        );
        let invalid = Refusal::TokenInvalid {
            provider: "users".into(),
            why: "wrong audience (aud)".into(),
        };
        let text = rendered(&invalid);
        assert!(
            text.contains("WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"),
            "{text}"
        );
        assert!(
            !text.contains("audience") && !text.contains("users"),
            "{text}"
        );
    }

    #[test]
    fn a_relayed_refusal_is_sent_as_it_came() {
        let response = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\nno".to_vec();
        let refusal = Refusal::UpstreamRefused {
            status: 401,
            response: response.clone(),
        };
        assert_eq!(refusal.status(), 401);
        assert_eq!(rendered(&refusal).as_bytes(), &response[..]);
    }
}
