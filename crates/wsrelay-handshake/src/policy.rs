//! Which headers cross the proxy: hop-by-hop rules (RFC 9110 §7.6.1) and `X-Forwarded-*`.

use std::net::IpAddr;

use crate::request::{all_values, split_list};
use crate::{HandshakeError, Header, RequestHead};

/// Headers that describe one connection and never cross a proxy.
const HOP_BY_HOP: [&str; 9] = [
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
];

/// Handshake headers the proxy sets itself or negotiates separately.
const HANDSHAKE: [&str; 5] = [
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
];

/// Facts about the client connection that the upstream learns through `X-Forwarded-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardContext<'a> {
    /// The client's address.
    pub client_ip: IpAddr,
    /// The client connected over TLS.
    pub secure: bool,
    /// The `Host` the client asked for.
    pub host: Option<&'a str>,
}

/// True for the hop-by-hop headers of RFC 9110 §7.6.1 (case-insensitive).
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks a header for the wire: the name a token, the value free of CR, LF and NUL
/// (which would let one header smuggle another).
pub fn validate_header(name: &str, value: &[u8]) -> Result<(), HandshakeError> {
    let name_ok = !name.is_empty() && name.bytes().all(is_token_char);
    let value_ok = !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0);
    if name_ok && value_ok {
        Ok(())
    } else {
        Err(HandshakeError::InvalidHeader {
            name: name.chars().take(64).collect(),
        })
    }
}

/// The client headers to send upstream: end-to-end headers as they came, minus hop-by-hop
/// headers (and those the client's `Connection` names), `Host`, `Content-Length`, the handshake
/// headers, and any client-sent `X-Forwarded-Host`/`-Proto`; plus `X-Forwarded-For` (the
/// client's list with its address appended), `X-Forwarded-Host` and `X-Forwarded-Proto`.
pub fn forward_request_headers(head: &RequestHead, ctx: &ForwardContext<'_>) -> Vec<Header> {
    let named_by_connection: Vec<&str> = all_values(&head.headers, "Connection")
        .flat_map(split_list)
        .collect();
    let dropped = |name: &str| {
        is_hop_by_hop(name)
            || named_by_connection
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
            || HANDSHAKE.iter().any(|h| h.eq_ignore_ascii_case(name))
            || [
                "Host",
                "Content-Length",
                "X-Forwarded-For",
                "X-Forwarded-Host",
                "X-Forwarded-Proto",
            ]
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    };
    let mut out: Vec<Header> = head
        .headers
        .iter()
        .filter(|h| !dropped(&h.name))
        .cloned()
        .collect();
    let prior: Vec<&str> = all_values(&head.headers, "X-Forwarded-For").collect();
    let mut xff = prior.join(", ");
    if !xff.is_empty() {
        xff.push_str(", ");
    }
    xff.push_str(&ctx.client_ip.to_string());
    let mut add = |name: &str, value: &str| {
        out.push(Header {
            name: name.to_owned(),
            value: value.as_bytes().to_vec(),
        })
    };
    add("X-Forwarded-For", &xff);
    if let Some(host) = ctx.host {
        add("X-Forwarded-Host", host);
    }
    add(
        "X-Forwarded-Proto",
        if ctx.secure { "https" } else { "http" },
    );
    out
}

/// The headers of an upstream's refusal that may go back to the client: all but hop-by-hop
/// headers, `Content-Length` and `Transfer-Encoding` (the proxy frames the body itself).
pub fn forward_response_headers(headers: &[Header]) -> Vec<Header> {
    let named_by_connection: Vec<&str> = all_values(headers, "Connection")
        .flat_map(split_list)
        .collect();
    headers
        .iter()
        .filter(|h| {
            !is_hop_by_hop(&h.name)
                && !h.name.eq_ignore_ascii_case("Content-Length")
                && !named_by_connection
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&h.name))
        })
        .cloned()
        .collect()
}
