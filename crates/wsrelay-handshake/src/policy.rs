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
/// side (RFC 6455 §4.1), and `Host`, `Content-Length` and `X-Forwarded-*` are rewritten.
const REWRITTEN: [&str; 9] = [
    "Host",
    "Content-Length",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
];

/// Facts about the client connection that the upstream learns through `X-Forwarded-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardContext<'a> {
    /// The client's address (appended to `X-Forwarded-For`).
    pub client_ip: IpAddr,
    /// The client connected over TLS (`X-Forwarded-Proto: https`).
    pub secure: bool,
    /// The `Host` the client asked for (`X-Forwarded-Host`).
    pub host: Option<&'a str>,
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
/// the client's `Connection` names), `Host`, `Content-Length` and the handshake headers; then
/// `X-Forwarded-For` (the client's list with its address appended), `X-Forwarded-Host` (the
/// client's `Host`) and `X-Forwarded-Proto`, replacing any the client sent.
pub fn forward_request_headers(head: &RequestHead, ctx: &ForwardContext<'_>) -> Vec<Header> {
    let named_by_connection = list_items(&head.headers, "Connection");
    let dropped = |name: &str| {
        is_hop_by_hop(name)
            || listed(&named_by_connection, name)
            || listed(&REWRITTEN, name)
            || name.eq_ignore_ascii_case("X-Forwarded-For")
    };
    let mut out: Vec<Header> = head
        .headers
        .iter()
        .filter(|h| !dropped(&h.name))
        .cloned()
        .collect();

    // The proxies before us, kept as sent (raw bytes), then the address we saw.
    let mut xff = Vec::new();
    if !listed(&named_by_connection, "X-Forwarded-For") {
        for prior in values(&head.headers, "X-Forwarded-For") {
            let prior = prior.trim_ascii();
            if !prior.is_empty() {
                xff.extend_from_slice(prior);
                xff.extend_from_slice(b", ");
            }
        }
    }
    // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; forward a.b.c.d.
    xff.extend_from_slice(ctx.client_ip.to_canonical().to_string().as_bytes());
    out.push(Header {
        name: "X-Forwarded-For".into(),
        value: xff,
    });
    if let Some(host) = ctx.host {
        if validate_header("X-Forwarded-Host", host.as_bytes()).is_ok() {
            out.push(Header {
                name: "X-Forwarded-Host".into(),
                value: host.as_bytes().to_vec(),
            });
        }
    }
    out.push(Header {
        name: "X-Forwarded-Proto".into(),
        value: if ctx.secure { &b"https"[..] } else { b"http" }.to_vec(),
    });
    out
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
        assert_eq!(
            get(&out, "X-Forwarded-For"),
            ["10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7"]
        );
        assert_eq!(get(&out, "X-Forwarded-Host"), ["public.example"]);
        assert_eq!(get(&out, "X-Forwarded-Proto"), ["https"]);
    }

    #[test]
    fn forwarded_headers_without_prior_proxies_or_host() {
        let head = head(&["GET / HTTP/1.1", "X-Forwarded-Host: spoofed"]);
        let ctx = ForwardContext {
            client_ip: "::ffff:198.51.100.1".parse().unwrap(),
            secure: false,
            host: None,
        };
        let out = forward_request_headers(&head, &ctx);
        assert_eq!(get(&out, "X-Forwarded-For"), ["198.51.100.1"]);
        assert!(get(&out, "X-Forwarded-Host").is_empty());
        assert_eq!(get(&out, "X-Forwarded-Proto"), ["http"]);

        let v6 = ForwardContext {
            client_ip: "2001:db8::7".parse().unwrap(),
            secure: false,
            host: Some("bad\r\nX-Injected: 1"),
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
