//! Writers for the responses a WebSocket server or proxy sends: 101, errors, relayed refusals.

use crate::policy::is_hop_by_hop;
use crate::Header;

/// The standard reason phrase for `status` (RFC 9110 §15), or "Unknown".
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes a `101 Switching Protocols` answer accepting a WebSocket upgrade (RFC 6455 §4.2.2).
///
/// ```
/// let mut out = Vec::new();
/// wsrelay_handshake::write_switching_protocols(&mut out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", Some("mqtt"), None, &[]);
/// assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
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

/// Writes a complete error response with a short plain-text body; the connection is then closed.
pub fn write_error_response(out: &mut Vec<u8>, status: u16, extra: &[(&str, &str)], body: &str) {
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    for (name, value) in extra {
        header_line(out, name, value.as_bytes());
    }
    out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
}

/// Writes an upstream's refusal for the client: its status and reason, its end-to-end headers,
/// and `body` with a matching `Content-Length`; the connection is then closed.
pub fn write_relayed_response(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[Header],
    body: &[u8],
) {
    let reason = if reason.is_empty() || reason.bytes().any(|b| b == b'\r' || b == b'\n') {
        reason_phrase(status)
    } else {
        reason
    };
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    for h in headers {
        if is_hop_by_hop(&h.name) || h.name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        header_line(out, &h.name, &h.value);
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
}
