//! Which headers cross the proxy: hop-by-hop rules (RFC 9110 §7.6.1) and `X-Forwarded-*`.

use std::net::IpAddr;

use crate::grammar::validate_header;
use crate::header::{list_items, values};
use crate::{Header, RequestHead};

/// Headers that describe one connection and never cross a proxy (RFC 9110 §7.6.1, plus the
/// RFC 2616 §13.5.1 proxy-authentication pair and the non-standard `Proxy-Connection`).
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

/// Request headers the proxy writes itself: the handshake is negotiated separately on each
/// side (RFC 6455 §4.1), and `Host` and `Content-Length` are rewritten.
const REWRITTEN: [&str; 7] = [
    "Host",
    "Content-Length",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
];

/// Headers by which proxies tell their upstreams about the client. From a client that is not
/// a trusted proxy they are lies until proven otherwise: replaced, never passed on.
const FORWARDING: [&str; 5] = [
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "Forwarded",
    "X-Real-IP",
];

/// Headers a client's `Connection` header can never have removed: the ones the handshake and
/// its checks read (RFC 6455 §4.1). Nominating `Origin` would strip it after the allow-list
/// passed it.
fn protected(name: &str) -> bool {
    ["Host", "Origin", "Upgrade"]
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
        || name
            .get(..14)
            .is_some_and(|p| p.eq_ignore_ascii_case("Sec-WebSocket-"))
}

/// Facts about the client connection that the upstream learns through `X-Forwarded-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardContext<'a> {
    /// The client's address (appended to `X-Forwarded-For`).
    pub client_ip: IpAddr,
    /// The client connected over TLS (`X-Forwarded-Proto: https`).
    pub secure: bool,
    /// The `Host` the client asked for (`X-Forwarded-Host`).
    pub host: Option<&'a str>,
    /// The client is a proxy the operator trusts: its forwarding headers are kept and
    /// extended. Otherwise they are replaced by the relay's own.
    pub trusted: bool,
    /// Also send an RFC 7239 `Forwarded` header.
    pub forwarded: bool,
}

/// True for the hop-by-hop headers (case-insensitive), which a proxy must not forward.
/// Headers named in a message's `Connection` header are hop-by-hop too; the forwarding
/// functions drop those as well.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// True if `name` is one of `names` (case-insensitive).
fn listed(names: &[impl AsRef<str>], name: &str) -> bool {
    names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(name))
}

/// The client headers to send upstream, in their order: all but hop-by-hop headers (and those
/// the client's `Connection` names, except `Host`, `Origin`, `Upgrade` and `Sec-WebSocket-*`),
/// `Host`, `Content-Length` and the handshake headers; then the forwarding headers.
///
/// From an untrusted client, any `X-Forwarded-*`, `Forwarded` and `X-Real-IP` it sent are
/// dropped and the relay's own written: `X-Forwarded-For` (the client's address),
/// `X-Forwarded-Host` (its `Host`), `X-Forwarded-Proto`, and `Forwarded` if asked for. From a
/// trusted proxy, its `X-Forwarded-For` and `Forwarded` lists are extended with its address
/// and its `X-Forwarded-Host`, `X-Forwarded-Proto` and `X-Real-IP` kept (ours where absent).
pub fn forward_request_headers(head: &RequestHead, ctx: &ForwardContext<'_>) -> Vec<Header> {
    let named_by_connection = list_items(&head.headers, "Connection");
    let nominated = |name: &str| listed(&named_by_connection, name) && !protected(name);
    let kept_from_proxy = |name: &str| ctx.trusted && !nominated(name);
    let dropped = |name: &str| {
        is_hop_by_hop(name)
            || nominated(name)
            || listed(&REWRITTEN, name)
            || listed(&FORWARDING, name)
    };
    let mut out: Vec<Header> = head
        .headers
        .iter()
        .filter(|h| !dropped(&h.name))
        .cloned()
        .collect();
    // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; forward a.b.c.d.
    let client = ctx.client_ip.to_canonical();
    let mut push = |name: &str, value: Vec<u8>| {
        out.push(Header {
            name: name.into(),
            value,
        })
    };

    // The proxies before us (from a trusted one, kept as sent), then the address we saw.
    let mut xff = Vec::new();
    if kept_from_proxy("X-Forwarded-For") {
        for prior in values(&head.headers, "X-Forwarded-For") {
            let prior = prior.trim_ascii();
            if !prior.is_empty() {
                xff.extend_from_slice(prior);
                xff.extend_from_slice(b", ");
            }
        }
    }
    xff.extend_from_slice(client.to_string().as_bytes());
    push("X-Forwarded-For", xff);
    let host = ctx
        .host
        .filter(|host| validate_header("X-Forwarded-Host", host.as_bytes()).is_ok());
    let proto: &[u8] = if ctx.secure { b"https" } else { b"http" };
    let theirs = |name: &str| {
        kept_from_proxy(name)
            .then(|| head.header(name).map(|h| h.value.clone()))
            .flatten()
    };
    if let Some(host) = theirs("X-Forwarded-Host").or(host.map(|h| h.as_bytes().to_vec())) {
        push("X-Forwarded-Host", host);
    }
    push(
        "X-Forwarded-Proto",
        theirs("X-Forwarded-Proto").unwrap_or(proto.to_vec()),
    );
    if let Some(real_ip) = theirs("X-Real-IP") {
        push("X-Real-IP", real_ip);
    }
    let prior_forwarded = if kept_from_proxy("Forwarded") {
        let mut prior = Vec::new();
        for element in values(&head.headers, "Forwarded") {
            let element = element.trim_ascii();
            if !element.is_empty() {
                prior.extend_from_slice(element);
                prior.extend_from_slice(b", ");
            }
        }
        prior
    } else {
        Vec::new()
    };
    if ctx.forwarded || !prior_forwarded.is_empty() {
        let mut forwarded = prior_forwarded;
        forwarded.extend_from_slice(forwarded_element(client, host, proto).as_bytes());
        push("Forwarded", forwarded);
    }
    out
}

/// One RFC 7239 element for this hop: `for=` the client (IPv6 bracketed and quoted, §6),
/// `host=` quoted (it may hold a port's `:`), `proto=`.
fn forwarded_element(client: IpAddr, host: Option<&str>, proto: &[u8]) -> String {
    let mut element = match client {
        IpAddr::V4(v4) => format!("for={v4}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    };
    // A validated header value may still hold '"' or '\'; such a Host is left out.
    if let Some(host) = host.filter(|h| !h.contains(['"', '\\'])) {
        element.push_str(&format!(";host=\"{host}\""));
    }
    element.push_str(";proto=");
    element.push_str(if proto == b"https" { "https" } else { "http" });
    element
}

/// The headers of an upstream's refusal that may go back to the client: all but hop-by-hop
/// headers (and those its `Connection` names) and `Content-Length` — the proxy re-frames the
/// body itself ([`write_relayed_response`](crate::write_relayed_response)).
pub fn forward_response_headers(headers: &[Header]) -> Vec<Header> {
    let named_by_connection = list_items(headers, "Connection");
    headers
        .iter()
        .filter(|h| {
            !is_hop_by_hop(&h.name)
                && !h.name.eq_ignore_ascii_case("Content-Length")
                && !listed(&named_by_connection, &h.name)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Parsed};

    fn head(lines: &[&str]) -> RequestHead {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n\r\n");
        match RequestHead::parse(s.as_bytes(), &Limits::default()) {
            Ok(Parsed::Complete { value, .. }) => value,
            other => panic!("{other:?}"),
        }
    }

    fn get(headers: &[Header], name: &str) -> Vec<String> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
            .collect()
    }

    fn header(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: value.as_bytes().to_vec(),
        }
    }

    #[test]
    fn request_headers_drop_hop_by_hop_and_handshake_headers() {
        let head = head(&[
            "GET /x HTTP/1.1",
            "Host: public.example",
            "Upgrade: websocket",
            "Connection: Upgrade, X-Secret",
            "connection: x-other",
            "X-Secret: hop",
            "X-Other: hop",
            "Keep-Alive: timeout=5",
            "Proxy-Connection: keep-alive",
            "Proxy-Authorization: Basic Zm9v",
            "TE: trailers",
            "Trailer: X-Checksum",
            "Content-Length: 0",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: chat",
            "Sec-WebSocket-Extensions: permessage-deflate",
            "Cookie: session=1",
            "X-Forwarded-For: 10.0.0.1, 10.0.0.2",
            "X-Forwarded-For: 10.0.0.3",
            "X-Forwarded-Host: spoofed.example",
            "X-Forwarded-Proto: spoofed",
            "Authorization: Bearer t",
            "Origin: https://public.example",
        ]);
        let ctx = ForwardContext {
            client_ip: "192.0.2.7".parse().unwrap(),
            secure: true,
            host: head.host(),
            trusted: true,
            forwarded: false,
        };
        let out = forward_request_headers(&head, &ctx);
        let names: Vec<&str> = out.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Cookie",
                "Authorization",
                "Origin",
                "X-Forwarded-For",
                "X-Forwarded-Host",
                "X-Forwarded-Proto"
            ]
        );
        // A trusted proxy's list is extended; its host and scheme are kept.
        assert_eq!(
            get(&out, "X-Forwarded-For"),
            ["10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7"]
        );
        assert_eq!(get(&out, "X-Forwarded-Host"), ["spoofed.example"]);
        assert_eq!(get(&out, "X-Forwarded-Proto"), ["spoofed"]);
        // From anyone else, they are replaced by the relay's own.
        let untrusted = ForwardContext {
            trusted: false,
            ..ctx
        };
        let out = forward_request_headers(&head, &untrusted);
        assert_eq!(get(&out, "X-Forwarded-For"), ["192.0.2.7"]);
        assert_eq!(get(&out, "X-Forwarded-Host"), ["public.example"]);
        assert_eq!(get(&out, "X-Forwarded-Proto"), ["https"]);
    }

    #[test]
    fn an_untrusted_client_cannot_spoof_any_forwarding_header() {
        let head = head(&[
            "GET / HTTP/1.1",
            "Host: public.example",
            "X-Forwarded-For: 10.9.9.9",
            "Forwarded: for=10.9.9.9;proto=https",
            "X-Real-IP: 10.9.9.9",
            "X-Forwarded-Proto: https",
        ]);
        let ctx = ForwardContext {
            client_ip: "2001:db8::7".parse().unwrap(),
            secure: false,
            host: head.host(),
            trusted: false,
            forwarded: true,
        };
        let out = forward_request_headers(&head, &ctx);
        assert_eq!(get(&out, "X-Forwarded-For"), ["2001:db8::7"]);
        assert_eq!(get(&out, "X-Forwarded-Proto"), ["http"]);
        assert!(get(&out, "X-Real-IP").is_empty());
        assert_eq!(
            get(&out, "Forwarded"),
            ["for=\"[2001:db8::7]\";host=\"public.example\";proto=http"]
        );
        // A trusted proxy's Forwarded list is extended with this hop, without being asked.
        let trusted = ForwardContext {
            trusted: true,
            forwarded: false,
            client_ip: "192.0.2.1".parse().unwrap(),
            ..ctx
        };
        let out = forward_request_headers(&head, &trusted);
        assert_eq!(
            get(&out, "Forwarded"),
            ["for=10.9.9.9;proto=https, for=192.0.2.1;host=\"public.example\";proto=http"]
        );
        assert_eq!(get(&out, "X-Real-IP"), ["10.9.9.9"]);
    }

    #[test]
    fn connection_cannot_nominate_the_handshake_headers() {
        let head = head(&[
            "GET / HTTP/1.1",
            "Host: public.example",
            "Connection: Upgrade, Origin, Host, Sec-WebSocket-Protocol, X-Gone",
            "Origin: https://public.example",
            "X-Gone: 1",
        ]);
        let ctx = ForwardContext {
            client_ip: "192.0.2.7".parse().unwrap(),
            secure: false,
            host: head.host(),
            trusted: false,
            forwarded: false,
        };
        let out = forward_request_headers(&head, &ctx);
        assert_eq!(get(&out, "Origin"), ["https://public.example"]);
        assert!(get(&out, "X-Gone").is_empty());
        assert!(protected("sec-websocket-key") && protected("UPGRADE"));
        assert!(!protected("Sec-WebSocket") && !protected("X-Origin"));
    }

    #[test]
    fn forwarded_headers_without_prior_proxies_or_host() {
        let head = head(&["GET / HTTP/1.1", "X-Forwarded-Host: spoofed"]);
        let ctx = ForwardContext {
            client_ip: "::ffff:198.51.100.1".parse().unwrap(),
            secure: false,
            host: None,
            trusted: false,
            forwarded: false,
        };
        let out = forward_request_headers(&head, &ctx);
        assert_eq!(get(&out, "X-Forwarded-For"), ["198.51.100.1"]);
        assert!(get(&out, "X-Forwarded-Host").is_empty());
        assert_eq!(get(&out, "X-Forwarded-Proto"), ["http"]);

        let v6 = ForwardContext {
            client_ip: "2001:db8::7".parse().unwrap(),
            secure: false,
            host: Some("bad\r\nX-Injected: 1"),
            trusted: false,
            forwarded: true,
        };
        let out = forward_request_headers(&head, &v6);
        assert_eq!(get(&out, "X-Forwarded-For"), ["2001:db8::7"]);
        assert!(get(&out, "X-Forwarded-Host").is_empty());
        assert!(out
            .iter()
            .all(|h| validate_header(&h.name, &h.value).is_ok()));
    }

    #[test]
    fn response_headers_drop_framing_and_hop_by_hop() {
        let response = [
            header("Connection", "close, X-Private"),
            header("X-Private", "1"),
            header("Transfer-Encoding", "chunked"),
            header("Content-Length", "12"),
            header("Keep-Alive", "timeout=5"),
            header("WWW-Authenticate", "Bearer"),
            header("Sec-WebSocket-Version", "13"),
        ];
        let kept: Vec<String> = forward_response_headers(&response)
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(kept, ["WWW-Authenticate", "Sec-WebSocket-Version"]);
    }

    #[test]
    fn hop_by_hop_names() {
        for name in [
            "connection",
            "KEEP-ALIVE",
            "Te",
            "trailer",
            "Upgrade",
            "proxy-authorization",
        ] {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in ["Cookie", "Host", "Trailers-X", "Sec-WebSocket-Key"] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }
}
