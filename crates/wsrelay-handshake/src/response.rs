//! Writers for the responses a WebSocket server or proxy sends: 101, errors, relayed refusals.
//!
//! The writers never emit a header that could split the response: a header whose name is not a
//! token or whose value holds CR, LF or NUL is left out (see [`validate_header`]).

use crate::grammar::{is_value_byte, validate_header};
use crate::policy::is_hop_by_hop;
use crate::Header;

/// The standard reason phrase for `status` (RFC 9110 §15, RFC 6585), or "Unknown".
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        511 => "Network Authentication Required",
        _ => "Unknown",
    }
}

/// Appends `name: value\r\n`, or nothing if the pair could break the header block.
fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    if validate_header(name, value).is_err() {
        return;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the status line `HTTP/1.1 {status} {reason}\r\n`.
fn status_line(out: &mut Vec<u8>, status: u16, reason: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the framing every non-101 answer ends with: the body's length, `Connection: close`
/// (the connection carried a failed upgrade, so it is not reused), the blank line, the body.
fn close_with_body(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(body);
}

/// Writes a `101 Switching Protocols` answer accepting a WebSocket upgrade (RFC 6455 §4.2.2):
/// `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, the chosen subprotocol and extensions if
/// any, then `extra` headers and the blank line.
///
/// ```
/// let mut out = Vec::new();
/// wsrelay_handshake::write_switching_protocols(&mut out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", Some("chat"), None, &[]);
/// assert_eq!(
///     out,
///     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
/// );
/// ```
pub fn write_switching_protocols(
    out: &mut Vec<u8>,
    accept: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra: &[(&str, &str)],
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    header_line(out, "Sec-WebSocket-Accept", accept.as_bytes());
    if let Some(protocol) = protocol {
        header_line(out, "Sec-WebSocket-Protocol", protocol.as_bytes());
    }
    if let Some(extensions) = extensions {
        header_line(out, "Sec-WebSocket-Extensions", extensions.as_bytes());
    }
    for (name, value) in extra {
        header_line(out, name, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a complete error response: the status line with its standard reason phrase, the
/// `extra` headers, `Content-Type: text/plain; charset=utf-8`, `Content-Length`,
/// `Connection: close`, then `body`. The caller closes the connection after sending it.
pub fn write_error_response(out: &mut Vec<u8>, status: u16, extra: &[(&str, &str)], body: &str) {
    status_line(out, status, reason_phrase(status));
    for (name, value) in extra {
        header_line(out, name, value.as_bytes());
    }
    out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    close_with_body(out, body.as_bytes());
}

/// Writes an upstream's refusal for the client: its status and reason (the standard phrase if
/// the reason is empty or holds control characters), its headers minus any framing of their own
/// (`Content-Length`, `Transfer-Encoding`, `Connection` and other hop-by-hop headers), then
/// `Content-Length: body.len()`, `Connection: close` and `body`.
pub fn write_relayed_response(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[Header],
    body: &[u8],
) {
    let printable = reason.bytes().all(is_value_byte);
    let reason = if reason.is_empty() || !printable {
        reason_phrase(status)
    } else {
        reason
    };
    status_line(out, status, reason);
    for h in headers {
        // The body is re-framed here, so the upstream's own framing must not survive.
        if is_hop_by_hop(&h.name) || h.name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        header_line(out, &h.name, &h.value);
    }
    close_with_body(out, body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
    }

    fn header(name: &str, value: &[u8]) -> Header {
        Header {
            name: name.into(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn switching_protocols_with_everything() {
        let mut out = Vec::new();
        write_switching_protocols(
            &mut out,
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            Some("chat"),
            Some("permessage-deflate; server_no_context_takeover"),
            &[("X-Served-By", "wsrelay")],
        );
        assert_eq!(
            text(out),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
             X-Served-By: wsrelay\r\n\r\n"
        );
    }

    #[test]
    fn error_response_layout() {
        let mut out = b"kept".to_vec();
        write_error_response(
            &mut out,
            403,
            &[("X-Reason", "origin")],
            "forbidden origin\n",
        );
        assert_eq!(
            text(out),
            "keptHTTP/1.1 403 Forbidden\r\nX-Reason: origin\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 17\r\n\
             Connection: close\r\n\r\nforbidden origin\n"
        );
    }

    #[test]
    fn headers_that_would_split_the_response_are_left_out() {
        let mut out = Vec::new();
        write_error_response(
            &mut out,
            400,
            &[
                ("X-A", "a\r\nSet-Cookie: x=1"),
                ("Bad Name", "v"),
                ("X-B", "ok"),
            ],
            "",
        );
        let out = text(out);
        assert!(
            !out.contains("Set-Cookie") && !out.contains("Bad Name"),
            "{out}"
        );
        assert!(out.contains("\r\nX-B: ok\r\n"), "{out}");

        let mut out = Vec::new();
        write_switching_protocols(&mut out, "a", Some("p\r\nX: y"), None, &[]);
        assert!(!text(out).contains("X: y"));
    }

    #[test]
    fn relayed_response_reframes_the_body() {
        let headers = [
            header("Content-Length", b"999"),
            header("Transfer-Encoding", b"chunked"),
            header("Connection", b"keep-alive"),
            header("Keep-Alive", b"timeout=5"),
            header("WWW-Authenticate", b"Bearer realm=\"x\""),
            header("X-Latin1", b"caf\xe9"),
        ];
        let mut out = Vec::new();
        write_relayed_response(&mut out, 401, "Nope", &headers, b"who?");
        assert_eq!(
            out,
            b"HTTP/1.1 401 Nope\r\nWWW-Authenticate: Bearer realm=\"x\"\r\nX-Latin1: caf\xe9\r\n\
              Content-Length: 4\r\nConnection: close\r\n\r\nwho?"
        );
    }

    #[test]
    fn relayed_reason_falls_back_to_the_standard_phrase() {
        for reason in ["", "bad\r\nX-Injected: 1", "nul\0"] {
            let mut out = Vec::new();
            write_relayed_response(&mut out, 404, reason, &[], b"");
            assert!(
                out.starts_with(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(101), "Switching Protocols");
        assert_eq!(reason_phrase(426), "Upgrade Required");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(502), "Bad Gateway");
        assert_eq!(reason_phrase(799), "Unknown");
    }
}
