//! The relay inside someone else's tokio server: accept a connection, run both handshakes, relay.
//!
//! [`accept_and_relay`] takes a connection (a `TcpStream` from your own listener, a TLS stream,
//! anything `AsyncRead + AsyncWrite`), answers its upgrade request, connects the upstream and
//! relays until the close, returning the [`RelayOutcome`]. When an HTTP framework already did
//! the server side of the handshake (hyper's or axum's upgrade), use [`connect_upstream`] and
//! [`Relay`] directly: see `examples/hyper_route.rs`.
//!
//! Errors are `std::io::Error`s: the transport's own, or `InvalidData` carrying the
//! [`HandshakeError`] (the client got its HTTP error response first), or `ConnectionRefused`
//! when the upstream refused the upgrade (the client got a 502).
//!
//! ```no_run
//! use wsrelay::embed::accept_and_relay;
//! use wsrelay::handshake::WsUri;
//! use wsrelay::relay::{NoHook, RelayOptions};
//!
//! # async fn serve() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let upstream: WsUri = "ws://127.0.0.1:9000/".parse().map_err(std::io::Error::other)?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let upstream = upstream.clone();
//!     tokio::spawn(async move {
//!         let outcome = accept_and_relay(stream, &upstream, &RelayOptions::default(), NoHook).await;
//!         println!("{outcome:?}");
//!     });
//! }
//! # }
//! ```

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wsrelay_handshake::{
    parse_upgrade_request, write_switching_protocols, HandshakeError, Limits, Parsed,
    UpgradeRequest, UpstreamResponse, WsUri,
};
use wsrelay_relay::{FrameHook, Relay, RelayOptions, RelayOutcome};

/// An upstream connection past its opening handshake.
#[derive(Debug)]
pub struct Upstream {
    /// The connection, ready for frames.
    pub stream: TcpStream,
    /// The subprotocol the upstream chose, if any.
    pub protocol: Option<String>,
    /// Bytes the upstream sent right behind its 101 (frames): give them to
    /// [`Relay::upstream_preread`].
    pub preread: Vec<u8>,
}

fn handshake_error(e: HandshakeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Connects to `uri` (plain `ws://` only) and upgrades, asking for `target` (path and query) and
/// offering `protocols`. A refusal is `ConnectionRefused` naming the upstream's status.
pub async fn connect_upstream(
    uri: &WsUri,
    target: &str,
    protocols: &[String],
) -> io::Result<Upstream> {
    if uri.secure {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "wss:// upstreams need TLS, which this helper does not set up",
        ));
    }
    let mut stream = TcpStream::connect((uri.host.as_str(), uri.port)).await?;
    let _ = stream.set_nodelay(true);
    let request = UpgradeRequest::new(uri)
        .map_err(handshake_error)?
        .with_target(target)
        .with_protocols(protocols);
    let mut wire = Vec::new();
    request.encode(&mut wire);
    stream.write_all(&wire).await?;
    let limits = Limits::default();
    let mut buf = Vec::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match request
            .parse_response(&buf, &limits)
            .map_err(handshake_error)?
        {
            Parsed::Partial => continue,
            Parsed::Complete {
                value: UpstreamResponse::Accepted { protocol, .. },
                consumed,
            } => {
                buf.drain(..consumed);
                return Ok(Upstream {
                    stream,
                    protocol,
                    preread: buf,
                });
            }
            Parsed::Complete {
                value: UpstreamResponse::Refused { status, .. },
                ..
            } => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("upstream refused the upgrade with {status}"),
                ))
            }
        }
    }
}

/// Answers the WebSocket upgrade on `client`, connects `upstream` (the client's path and query
/// are appended to its path), then relays with `options` and `hook` until the connection ends.
///
/// The client gets its 101 only after the upstream accepted; a bad request gets its HTTP
/// error (400, 405, 426, 431), an unreachable or refusing upstream a 502.
pub async fn accept_and_relay<S, H>(
    mut client: S,
    upstream: &WsUri,
    options: &RelayOptions,
    hook: H,
) -> io::Result<RelayOutcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FrameHook + Unpin,
{
    let limits = Limits::default();
    let mut buf = Vec::with_capacity(1024);
    let (head, request, consumed) = loop {
        if client.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match parse_upgrade_request(&buf, &limits) {
            Ok(Parsed::Partial) => continue,
            Ok(Parsed::Complete {
                value: (head, request),
                consumed,
            }) => break (head, request, consumed),
            Err(e) => {
                let mut out = Vec::new();
                e.write_response(&mut out);
                client.write_all(&out).await?;
                let _ = client.shutdown().await;
                return Err(handshake_error(e));
            }
        }
    };
    let target = format!(
        "{}{}",
        upstream.path_and_query.trim_end_matches('/'),
        head.target
    );
    let up = match connect_upstream(upstream, &target, &request.protocols).await {
        Ok(up) => up,
        Err(e) => {
            let _ = client
                .write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            let _ = client.shutdown().await;
            return Err(e);
        }
    };
    let mut response = Vec::new();
    write_switching_protocols(
        &mut response,
        &request.accept(),
        up.protocol.as_deref(),
        None,
        &[],
    );
    client.write_all(&response).await?;
    Ok(Relay::new(client, up.stream, options)
        .client_preread(&buf[consumed..])
        .upstream_preread(&up.preread)
        .with_hook(hook)
        .run()
        .await)
}
