//! Upstreams: where a route's connections go ([`Upstream`]), and reaching one: TCP, TLS for
//! `wss://`, the upgrade request shaped by the route, and its answer checked ([`connect`]).
//!
//! Only a verified 101 gives an [`UpstreamConnection`]; a refusal (401, 403 ...) comes back as
//! [`Refusal::UpstreamRefused`] holding the response to relay, and failures as the 502/504
//! refusals. The client's upgrade is answered only after this returns.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant as Deadline;
use tokio_rustls::TlsConnector;
use wsrelay_handshake::{
    extension_name, forward_request_headers, forward_response_headers, split_list,
    write_relayed_response, ForwardContext, Limits, UpgradeRequest, UpstreamResponse, WsUri,
};

use crate::head::{read_head, HeadError};
use crate::refusal::Refusal;
use crate::request::ClientRequest;
use crate::route::{Route, PERMESSAGE_DEFLATE};
use crate::stream::Stream;

/// Largest body of an upstream's refusal that is relayed to the client.
pub const MAX_RELAYED_BODY: usize = 64 * 1024;

/// Where a route's connections go: the URI, and for `wss://` the TLS client settings.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The upstream's URI; its path is put before the (rewritten) client path.
    pub uri: WsUri,
    /// TLS settings for `wss://` (roots, client certificate, verification); `None` for `ws://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Certificates are not verified (`insecure_skip_verify`); logged as a warning at start.
    pub insecure_skip_verify: bool,
}

impl Upstream {
    /// A `ws://` upstream, or a `wss://` one verified against the system's roots.
    pub fn new(uri: WsUri) -> Result<Upstream, crate::Error> {
        let tls = if uri.secure {
            Some(Arc::new(crate::tls::client_config(&Default::default())?))
        } else {
            None
        };
        Ok(Upstream {
            uri,
            tls,
            insecure_skip_verify: false,
        })
    }
}

/// An upstream past its 101: the connection, and what it agreed to.
#[derive(Debug)]
pub struct UpstreamConnection {
    /// The connection, ready for frames.
    pub stream: Stream,
    /// The subprotocol the upstream chose, if any (for the client's 101).
    pub protocol: Option<String>,
    /// The extensions the upstream accepted, as it wrote them (for the client's 101).
    pub extensions: Option<String>,
    /// RSV bits the accepted extensions allow; add them to the relay's `allowed_rsv`.
    pub allowed_rsv: u8,
    /// Bytes the upstream sent right behind its 101 (frames), already read.
    pub preread: Vec<u8>,
}

/// Connects to the upstream of `route` for a client's `request` and upgrades: TCP and TLS
/// within the route's connect timeout, then the upgrade request (the route's rewrite and header
/// rules, the forwarding headers, the extensions the route forwards) and its answer within the
/// upgrade timeout. A route without WebSocket is [`Refusal::RouteDisabled`].
pub async fn connect(
    route: &Route,
    request: &ClientRequest,
    limits: &Limits,
) -> Result<UpstreamConnection, Refusal> {
    let upstream = route.websocket_upstream().ok_or(Refusal::RouteDisabled)?;
    connect_to(route, upstream, request, limits).await
}

/// [`connect`] to a given `upstream` (one backend of the route's pool) with the route's
/// timeouts and request shaping.
pub async fn connect_to(
    route: &Route,
    upstream: &Upstream,
    request: &ClientRequest,
    limits: &Limits,
) -> Result<UpstreamConnection, Refusal> {
    let mut stream = open(route, upstream, request).await?;
    let upgrade = upgrade_request(route, &upstream.uri, request)?;
    let mut out = Vec::new();
    upgrade.encode(&mut out);
    let exchange = async {
        stream.write_all(&out).await.map_err(Refusal::UpstreamIo)?;
        let mut buf = Vec::new();
        let parse = |b: &[u8]| upgrade.parse_response(b, limits);
        match read_head(&mut stream, &mut buf, parse).await {
            Ok((response, consumed)) => Ok((response, buf.split_off(consumed))),
            Err(HeadError::Closed) => Err(Refusal::UpstreamIo(io::ErrorKind::UnexpectedEof.into())),
            Err(HeadError::Io(e)) => Err(Refusal::UpstreamIo(e)),
            Err(HeadError::Parse(e)) => Err(Refusal::UpstreamHandshake(e)),
        }
    };
    let (response, rest) = tokio::time::timeout(route.upgrade_timeout, exchange)
        .await
        .map_err(|_| Refusal::UpgradeTimeout(route.upgrade_timeout))??;
    match response {
        UpstreamResponse::Accepted {
            protocol,
            extensions,
            ..
        } => {
            let allowed_rsv = extensions.as_deref().map_or(0, rsv_allowed_by);
            Ok(UpstreamConnection {
                stream,
                protocol,
                extensions,
                allowed_rsv,
                preread: rest,
            })
        }
        refused @ UpstreamResponse::Refused { .. } => {
            let body = read_body(&mut stream, &refused, rest, route).await;
            let UpstreamResponse::Refused {
                status,
                reason,
                headers,
            } = refused
            else {
                unreachable!("matched as Refused above")
            };
            let mut response = Vec::new();
            write_relayed_response(
                &mut response,
                status,
                &reason,
                &forward_response_headers(&headers),
                &body,
            );
            Err(Refusal::UpstreamRefused { status, response })
        }
    }
}

/// Opens TCP, and TLS for `wss://`, within the route's connect timeout.
/// With the route's `send_proxy_protocol`, a PROXY v2 header for the client goes first.
async fn open(
    route: &Route,
    upstream: &Upstream,
    request: &ClientRequest,
) -> Result<Stream, Refusal> {
    let proxy = route.send_proxy_protocol.then_some(&request.peer);
    open_sending(upstream, route.connect_timeout, proxy).await
}

/// Opens TCP, and TLS for `wss://`, within `connect_timeout` (also used by health checks).
pub(crate) async fn open_with(
    upstream: &Upstream,
    connect_timeout: std::time::Duration,
) -> Result<Stream, Refusal> {
    open_sending(upstream, connect_timeout, None).await
}

/// [`open_with`], writing a PROXY v2 header for `proxy` (the client) right after TCP connects.
async fn open_sending(
    upstream: &Upstream,
    connect_timeout: std::time::Duration,
    proxy: Option<&crate::request::Peer>,
) -> Result<Stream, Refusal> {
    let uri = &upstream.uri;
    let deadline = Deadline::now() + connect_timeout;
    let timed_out = || Refusal::ConnectTimeout(uri.authority(), connect_timeout);
    let host = uri.host.trim_start_matches('[').trim_end_matches(']');
    let mut tcp =
        match tokio::time::timeout_at(deadline, TcpStream::connect((host, uri.port))).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Refusal::Connect(uri.authority(), e)),
            Err(_) => return Err(timed_out()),
        };
    let _ = tcp.set_nodelay(true);
    if let Some(peer) = proxy {
        let sending = crate::proxy_protocol::send_v2(&mut tcp, peer.addr, peer.local);
        match tokio::time::timeout_at(deadline, sending).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Refusal::Connect(uri.authority(), e)),
            Err(_) => return Err(timed_out()),
        }
    }
    let Some(tls) = &upstream.tls else {
        return Ok(Stream::Plain(tcp));
    };
    let name =
        crate::tls::server_name(host).map_err(|e| Refusal::UpstreamTls(uri.authority(), e))?;
    let connecting = TlsConnector::from(Arc::clone(tls)).connect(name, tcp);
    match tokio::time::timeout_at(deadline, connecting).await {
        Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream.into()))),
        Ok(Err(e)) => Err(Refusal::UpstreamTls(uri.authority(), e)),
        Err(_) => Err(timed_out()),
    }
}

/// The upgrade request for the upstream: target after the route's rewrite, the client's
/// subprotocols, the extension offers the route forwards, and the client's headers after the
/// forwarding policy and the route's header rules.
fn upgrade_request(
    route: &Route,
    uri: &WsUri,
    request: &ClientRequest,
) -> Result<UpgradeRequest, Refusal> {
    let head = &request.head;
    // Only the extensions the route forwards; the others the client offered are dropped, so
    // the upstream cannot accept one whose framing the relay does not allow.
    let offers: Vec<String> = request
        .websocket
        .extensions
        .iter()
        .filter(|e| {
            route
                .extensions
                .iter()
                .any(|name| extension_name(e).eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect();
    let context = forward_context(route, request);
    // A fresh key from the OS random source; if it fails, a 500 and no request (never a
    // predictable key).
    let mut upgrade = UpgradeRequest::new(uri)?
        .with_target(&route.upstream_target(uri, &head.target))
        .with_protocols(&request.websocket.protocols)
        .with_extensions(&offers);
    if !route.change_origin {
        if let Some(host) = head.host() {
            upgrade = upgrade.with_host(host);
        }
    }
    for header in route.shape_headers(forward_request_headers(head, &context), uri) {
        upgrade = upgrade.with_header(&header.name, &header.value)?;
    }
    Ok(upgrade)
}

/// What the forwarding headers tell the upstream about `request` on `route` (plain HTTP
/// requests use it too).
pub(crate) fn forward_context<'a>(route: &Route, request: &'a ClientRequest) -> ForwardContext<'a> {
    ForwardContext {
        client_ip: request.peer.addr.ip(),
        secure: request.peer.secure,
        trusted: request.peer.trusted,
        forwarded: route.forwarded_header,
        host: request.head.host(),
    }
}

/// The RSV bits an upstream's accepted `Sec-WebSocket-Extensions` allow on the wire.
fn rsv_allowed_by(extensions: &str) -> u8 {
    // A list whose parameters may hold quoted commas (RFC 9110 §5.6.1).
    split_list(extensions).fold(0, |bits, accepted| {
        bits | if extension_name(accepted).eq_ignore_ascii_case(PERMESSAGE_DEFLATE) {
            wsrelay_codec::RSV1
        } else {
            // An extension the operator chose to forward; its use of the RSV bits is not known
            // here, so all three pass.
            wsrelay_codec::RSV1 | wsrelay_codec::RSV2 | wsrelay_codec::RSV3
        }
    })
}

/// Reads a refusal's body, at most [`MAX_RELAYED_BODY`] bytes and only as long as the route's
/// upgrade timeout allows.
async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    response: &UpstreamResponse,
    mut body: Vec<u8>,
    route: &Route,
) -> Vec<u8> {
    let want = response
        .content_length()
        .map_or(body.len(), |n| usize::try_from(n).unwrap_or(usize::MAX))
        .min(MAX_RELAYED_BODY);
    let read = async {
        let mut chunk = [0u8; 4096];
        while body.len() < want {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(route.upgrade_timeout, read).await;
    body.truncate(want);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflate_allows_rsv1_and_an_unknown_forwarded_extension_all_three() {
        assert_eq!(
            rsv_allowed_by("permessage-deflate; client_max_window_bits"),
            wsrelay_codec::RSV1
        );
        assert_eq!(
            rsv_allowed_by("x-custom; a=\"1,2\""),
            wsrelay_codec::RSV1 | wsrelay_codec::RSV2 | wsrelay_codec::RSV3
        );
    }
}
