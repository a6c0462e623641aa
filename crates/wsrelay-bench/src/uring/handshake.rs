//! The opening handshakes of the prototype, on blocking std sockets in the acceptor thread: the
//! client's upgrade request is parsed and validated with the project's own
//! `wsrelay::handshake` functions, the upstream is asked with an [`UpgradeRequest`], and its
//! 101 is checked before the client gets one. Blocking and one connection at a time: fine for
//! a benchmark that opens its connections before it measures, not for a gateway.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use wsrelay::handshake::{
    parse_upgrade_request, write_error_response, write_switching_protocols, Limits, Parsed,
    UpgradeRequest, UpstreamResponse, WsUri,
};

/// How long a peer may take over its half of a handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection pair past both handshakes, with the bytes each peer sent behind its head.
pub(crate) struct Upgraded {
    pub(crate) client: TcpStream,
    pub(crate) upstream: TcpStream,
    /// Frames the client pipelined behind its request.
    pub(crate) client_early: Vec<u8>,
    /// Frames the upstream sent behind its 101.
    pub(crate) upstream_early: Vec<u8>,
}

/// Reads from `stream` into `buf` until `parse` finds a complete head (bounded by the header
/// limit); returns the parsed value and the bytes that followed it.
fn read_head<T>(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limits: &Limits,
    mut parse: impl FnMut(&[u8]) -> Result<Parsed<T>, String>,
) -> Result<(T, Vec<u8>), String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Parsed::Complete { value, consumed } = parse(buf)? {
            let rest = buf.get(consumed..).unwrap_or_default().to_vec();
            return Ok((value, rest));
        }
        if buf.len() > limits.max_header_bytes {
            return Err("head too large".into());
        }
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("peer closed during the handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Upgrades `client`: reads and validates its request, opens `upstream` and upgrades it, then
/// answers the client with a 101 (or an error status, returning `Err`).
pub(crate) fn upgrade(mut client: TcpStream, upstream: &WsUri) -> Result<Upgraded, String> {
    let limits = Limits::default();
    client
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let _ = client.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    let request = read_head(&mut client, &mut buf, &limits, |b| {
        parse_upgrade_request(b, &limits).map_err(|e| e.to_string())
    });
    let ((head, ws), client_early) = match request {
        Ok(parsed) => parsed,
        Err(e) => {
            refuse(&mut client, 400, &e);
            return Err(e);
        }
    };
    match connect_upstream(upstream, head.target.as_str(), &ws.protocols) {
        Ok((stream, protocol, upstream_early)) => {
            let mut out = Vec::with_capacity(256);
            write_switching_protocols(&mut out, &ws.accept(), protocol.as_deref(), None, &[]);
            client.write_all(&out).map_err(|e| e.to_string())?;
            client.set_read_timeout(None).map_err(|e| e.to_string())?;
            Ok(Upgraded {
                client,
                upstream: stream,
                client_early,
                upstream_early,
            })
        }
        Err(e) => {
            refuse(&mut client, 502, &e);
            Err(e)
        }
    }
}

/// Opens the upstream and upgrades it; returns the stream, the chosen subprotocol and the bytes
/// behind its 101.
fn connect_upstream(
    uri: &WsUri,
    target: &str,
    protocols: &[String],
) -> Result<(TcpStream, Option<String>, Vec<u8>), String> {
    let limits = Limits::default();
    let mut stream =
        TcpStream::connect((uri.host.as_str(), uri.port)).map_err(|e| format!("upstream: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request = UpgradeRequest::new(uri)
        .map_err(|e| e.to_string())?
        .with_target(target)
        .with_protocols(protocols);
    let mut out = Vec::with_capacity(256);
    request.encode(&mut out);
    stream.write_all(&out).map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    let (response, early) = read_head(&mut stream, &mut buf, &limits, |b| {
        request
            .parse_response(b, &limits)
            .map_err(|e| e.to_string())
    })?;
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    match response {
        UpstreamResponse::Accepted { protocol, .. } => Ok((stream, protocol, early)),
        UpstreamResponse::Refused { status, .. } => Err(format!("upstream answered {status}")),
    }
}

/// Answers the client with `status` before closing (best effort).
fn refuse(client: &mut TcpStream, status: u16, why: &str) {
    let mut out = Vec::with_capacity(256);
    write_error_response(&mut out, status, &[], why);
    let _ = client.write_all(&out);
}
