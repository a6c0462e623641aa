//! The gateway: accepts clients, completes both handshakes, then relays.
//!
//! A client's upgrade is answered only after the upstream accepted its own: an upstream that
//! cannot be reached gives 502, one that is too slow gives 504, and one that refuses (401, 403,
//! 404 ...) has its response relayed. The client never sees a 101 the upstream did not give.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant as Deadline;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use wsrelay_handshake::{
    extension_name, forward_request_headers, forward_response_headers, split_list,
    write_error_response, write_relayed_response, write_switching_protocols, ForwardContext,
    HandshakeError, Limits, Parsed, RequestHead, UpgradeRequest, UpstreamResponse,
    WebSocketRequest,
};
use wsrelay_relay::{EndReason, Relay, RelayOptions, RelayOutcome};

use crate::config::GatewayConfig;
use crate::route::{Route, Upstream, PERMESSAGE_DEFLATE};
use crate::stream::Stream;

/// Largest body of an upstream's refusal that is relayed to the client.
pub const MAX_RELAYED_BODY: usize = 64 * 1024;

/// A bound gateway, ready to serve.
///
/// With `workers` > 1 it runs thread-per-core, as nginx does: one single-threaded runtime per
/// worker, each accepting on its own sockets bound to the same addresses with `SO_REUSEPORT`,
/// so the kernel spreads connections over workers and a connection's two directions, its
/// buffers and its wake-ups all stay on one thread.
pub struct Gateway {
    /// The first worker's listeners, on the caller's runtime.
    listeners: Vec<TcpListener>,
    /// The other workers' listeners, handed to their own runtimes.
    others: Vec<Vec<std::net::TcpListener>>,
    local: Vec<SocketAddr>,
    config: Arc<GatewayConfig>,
}

/// A listening socket that other workers may bind too.
fn reusable_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    Ok(socket)
}

/// Connections a listener queues before accepting.
const BACKLOG: u32 = 1024;

impl Gateway {
    /// Binds and listens on one socket per listener and worker (a port of 0 is resolved
    /// once, so all workers share the port the first one got). Connections queue from here
    /// on. Routes that skip certificate verification are logged as warnings.
    pub async fn bind(config: GatewayConfig) -> io::Result<Gateway> {
        for route in &config.routes {
            if route
                .upstream
                .as_ref()
                .is_some_and(|u| u.insecure_skip_verify)
            {
                tracing::warn!(
                    route = %route.name,
                    "insecure_skip_verify: the upstream's TLS certificate is NOT verified"
                );
            }
        }
        let mut listeners = Vec::new();
        let mut local = Vec::new();
        for l in &config.listeners {
            let first = reusable_socket(l.address)?;
            first.bind(l.address)?;
            local.push(first.local_addr()?);
            listeners.push(first.listen(BACKLOG)?);
        }
        let mut others = Vec::new();
        for _ in 1..config.workers.max(1) {
            let mut mine = Vec::new();
            for addr in &local {
                let socket = reusable_socket(*addr)?;
                socket.bind(*addr)?;
                // Moved out of this runtime; the worker's own runtime takes it back in `run`.
                mine.push(socket.listen(BACKLOG)?.into_std()?);
            }
            others.push(mine);
        }
        Ok(Gateway {
            listeners,
            others,
            local,
            config: Arc::new(config),
        })
    }

    /// The address actually bound by the first listener (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.local
            .first()
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no listener"))
    }

    /// The addresses actually bound, in the order of the configured listeners.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Serves until `shutdown` completes; then every worker stops accepting, sends 1001 to both
    /// sides of each open relay and waits for them, at most the shutdown timeout.
    ///
    /// The first worker runs on the caller's runtime; the others get a thread and a
    /// single-threaded runtime each.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut threads = Vec::new();
        for (n, listeners) in self.others.into_iter().enumerate() {
            let config = Arc::clone(&self.config);
            let stop = stop_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("wsrelay-worker-{}", n + 1))
                .spawn(move || -> io::Result<()> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async move {
                        let listeners = listeners
                            .into_iter()
                            .map(TcpListener::from_std)
                            .collect::<io::Result<Vec<_>>>()?;
                        worker(listeners, config, stop).await
                    })
                })?;
            threads.push(thread);
        }
        let first = worker(self.listeners, Arc::clone(&self.config), stop_rx);
        let signal = async {
            shutdown.await;
            tracing::info!("shutting down: closing open connections with 1001");
            let _ = stop_tx.send(true);
        };
        let (served, ()) = tokio::join!(first, signal);
        let joined = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(io::Error::other("worker panicked")))
                })
                .collect::<io::Result<Vec<()>>>()
        })
        .await
        .map_err(io::Error::other)?;
        served.and(joined.map(drop))
    }
}

/// One worker: serves each of its listeners (same order as the configured ones) until stopped.
async fn worker(
    listeners: Vec<TcpListener>,
    config: Arc<GatewayConfig>,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut serving = JoinSet::new();
    for (listener, settings) in listeners.into_iter().zip(&config.listeners) {
        let tls = settings.tls.clone().map(TlsAcceptor::from);
        serving.spawn(serve(listener, tls, Arc::clone(&config), stop.clone()));
    }
    let mut result = Ok(());
    while let Some(done) = serving.join_next().await {
        let done = done.map_err(io::Error::other).and_then(|r| r);
        result = result.and(done);
    }
    result
}

/// Accepts and serves one listener's connections until `stop` turns true, then winds them down.
async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    config: Arc<GatewayConfig>,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut tasks = JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(serve_connection(
                        stream, peer, tls.clone(), Arc::clone(&config), stop.clone(),
                    ));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            // Mapped to a bool: the watch guard it yields must not live in the select's output.
            _ = async { stopping.wait_for(|stopping| *stopping).await.is_ok() } => break,
        }
    }
    drop(listener);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            left = tasks.len(),
            "shutdown deadline passed; cutting connections"
        );
        tasks.abort_all();
    }
    Ok(())
}

/// Why a connection never reached the relay; each maps to the HTTP status the client gets.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    #[error("no route matches this request")]
    NoRoute,
    #[error("WebSocket is switched off on this route")]
    RouteDisabled,
    #[error("this endpoint speaks WebSocket only: send a GET with Upgrade: websocket")]
    NotAnUpgrade,
    #[error("Origin {0:?} is not allowed to open a WebSocket here")]
    OriginNotAllowed(String),
    #[error("no complete upgrade request within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("upstream {0} unreachable: {1}")]
    Connect(String, io::Error),
    #[error("upstream {0} did not accept the connection within {1:?}")]
    ConnectTimeout(String, Duration),
    #[error("TLS with upstream {0} failed: {1}")]
    UpstreamTls(String, io::Error),
    #[error("upstream did not answer the upgrade within {0:?}")]
    UpgradeTimeout(Duration),
    #[error("upstream failed during the upgrade: {0}")]
    UpstreamIo(io::Error),
    #[error("upstream answered the upgrade with an invalid response: {0}")]
    UpstreamHandshake(HandshakeError),
}

impl Refusal {
    fn status(&self) -> u16 {
        match self {
            Refusal::Handshake(e) => e.status(),
            Refusal::NoRoute => 404,
            Refusal::RouteDisabled | Refusal::OriginNotAllowed(_) => 403,
            Refusal::NotAnUpgrade => 426,
            Refusal::HandshakeTimeout(_) => 408,
            Refusal::ConnectTimeout(..) | Refusal::UpgradeTimeout(_) => 504,
            Refusal::Connect(..)
            | Refusal::UpstreamTls(..)
            | Refusal::UpstreamIo(_)
            | Refusal::UpstreamHandshake(_) => 502,
        }
    }

    fn write_response(&self, out: &mut Vec<u8>) {
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
            Refusal::NoRoute | Refusal::RouteDisabled | Refusal::HandshakeTimeout(_) => {
                write_error_response(out, self.status(), &[], &format!("{self}\n"))
            }
            // Upstream failures: the client learns the status, not the internal address or
            // error (those go to the log line).
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
        }
    }
}

/// A request head read from a client, with whatever arrived after it.
struct ClientHello {
    head: RequestHead,
    buf: Vec<u8>,
    consumed: usize,
    /// The client came over TLS (`X-Forwarded-Proto: https`).
    secure: bool,
}

/// One client connection from accept to the end of its relay.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    config: Arc<GatewayConfig>,
    stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    // The handshakes run in a future of their own on the heap, dropped before the relay starts:
    // their read chunks and request buffers are not kept for the life of the connection, so an
    // idle relayed connection holds little more than the relay's own state.
    let Some(ready) = Box::pin(handshake(tcp, peer, tls, &config)).await else {
        return;
    };
    let mut stop = stop;
    // One expression: the relay's builder and its running future never both take room in this
    // future's state. The preread vectors are empty (unallocated) unless a peer pipelined.
    let outcome = Relay::new(ready.client, ready.upstream, &ready.options)
        .client_preread(&ready.client_preread)
        .upstream_preread(&ready.upstream_preread)
        .with_shutdown(async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        })
        .run()
        .await;
    log_outcome(peer, &ready.route, &ready.target, started, &outcome);
}

/// A connection past both handshakes, ready to relay.
struct Ready {
    client: Stream,
    upstream: Stream,
    options: RelayOptions,
    /// Bytes the client sent behind its request, already read.
    client_preread: Vec<u8>,
    /// Bytes the upstream sent behind its 101, already read.
    upstream_preread: Vec<u8>,
    /// Route name and request target, for the connection's log line.
    route: String,
    target: String,
}

/// TLS (if any), the client's upgrade request, routing, the upstream's upgrade and the 101 to
/// the client; refusals are answered here. `None` when the connection ended.
async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    config: &GatewayConfig,
) -> Option<Ready> {
    let _ = tcp.set_nodelay(true);
    // One deadline for the TLS handshake and the upgrade request.
    let deadline = Deadline::now() + config.handshake_timeout;
    let secure = tls.is_some();
    let mut client = match tls {
        None => Stream::Plain(tcp),
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Stream::Tls(Box::new(tls.into())),
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "TLS handshake with the client failed");
                return None;
            }
            Err(_) => {
                tracing::info!(%peer, "TLS handshake with the client timed out");
                return None;
            }
        },
    };
    let hello = match read_request(&mut client, config, deadline, secure).await {
        Ok(Some(hello)) => hello,
        Ok(None) => return None,
        Err(refusal) => {
            refuse(&mut client, peer, "-", None, &refusal).await;
            return None;
        }
    };
    let target = hello.head.target.clone();
    let (route, upstream, request) = match select_route(config, &hello.head) {
        Ok(chosen) => chosen,
        Err((route, refusal)) => {
            refuse(&mut client, peer, route, Some(&target), &refusal).await;
            return None;
        }
    };
    let upgraded = connect_upstream(route, upstream, &config.limits, &hello, &request, peer).await;
    let upstream = match upgraded {
        Ok(Upgraded::Accepted(upstream)) => upstream,
        Ok(Upgraded::Refused((status, response))) => {
            tracing::info!(%peer, route = %route.name, target, status, "upstream refused the upgrade; relayed");
            let _ = client.write_all(&response).await;
            let _ = client.shutdown().await;
            return None;
        }
        Err(refusal) => {
            refuse(&mut client, peer, &route.name, Some(&target), &refusal).await;
            return None;
        }
    };
    let mut response = Vec::new();
    write_switching_protocols(
        &mut response,
        &request.accept(),
        upstream.protocol.as_deref(),
        upstream.extensions.as_deref(),
        &[],
    );
    if let Err(e) = client.write_all(&response).await {
        tracing::info!(%peer, route = %route.name, target, error = %e, "client left before the 101");
        return None;
    }
    let mut options = route.relay.clone();
    options.allowed_rsv |= upstream.allowed_rsv;
    Some(Ready {
        client,
        upstream: upstream.stream,
        options,
        client_preread: hello.buf[hello.consumed..].to_vec(),
        upstream_preread: upstream.preread,
        route: route.name.clone(),
        target,
    })
}

/// Picks the route (the first that matches) and checks the request against it: 404 without a
/// route, 403 where WebSocket is off, 426 for plain HTTP, the handshake's own errors, then
/// 403 for an Origin the route does not allow. On refusal, also the route's name for the log.
fn select_route<'c>(
    config: &'c GatewayConfig,
    head: &RequestHead,
) -> Result<(&'c Route, &'c Upstream, WebSocketRequest), (&'c str, Refusal)> {
    let route = config
        .routes
        .iter()
        .find(|r| r.matches(head.host(), head.path()))
        .ok_or(("-", Refusal::NoRoute))?;
    let name = route.name.as_str();
    let upstream = match &route.upstream {
        Some(upstream) if route.websocket => upstream,
        _ => return Err((name, Refusal::RouteDisabled)),
    };
    if !head.is_upgrade_attempt() {
        return Err((name, Refusal::NotAnUpgrade));
    }
    let request = head
        .validate_websocket()
        .map_err(|e| (name, Refusal::Handshake(e)))?;
    if !route.origin_allowed(request.origin.as_deref()) {
        let origin = request.origin.clone().unwrap_or_default();
        return Err((name, Refusal::OriginNotAllowed(origin)));
    }
    Ok((route, upstream, request))
}

fn log_outcome(peer: SocketAddr, route: &str, target: &str, started: Instant, o: &RelayOutcome) {
    let code = |c: &Option<wsrelay_relay::CloseInfo>| c.as_ref().and_then(|c| c.code);
    let end = match &o.end {
        EndReason::Closed { initiator } => format!("closed by {initiator}"),
        EndReason::Violation { side, violation } => format!("{side} violation: {violation}"),
        EndReason::Vanished { side, error } => match error {
            Some(kind) => format!("{side} vanished ({kind})"),
            None => format!("{side} vanished"),
        },
        EndReason::IdleTimeout => "idle timeout".to_owned(),
        EndReason::Shutdown => "shutdown".to_owned(),
        EndReason::Hook { side, code } => format!("frame hook closed ({code}) on a {side} frame"),
        EndReason::RandomSource { error } => format!("closed with 1011: {error}"),
    };
    tracing::info!(
        %peer,
        route,
        target,
        end,
        duration_ms = started.elapsed().as_millis() as u64,
        c2u_frames = o.client_to_upstream.frames,
        c2u_bytes = o.client_to_upstream.bytes,
        u2c_frames = o.upstream_to_client.frames,
        u2c_bytes = o.upstream_to_client.bytes,
        client_close = ?code(&o.client_close),
        upstream_close = ?code(&o.upstream_close),
        sent_to_client = ?code(&o.sent_to_client),
        sent_to_upstream = ?code(&o.sent_to_upstream),
        close_timed_out = o.close_timed_out,
        "connection finished"
    );
}

async fn refuse(
    client: &mut Stream,
    peer: SocketAddr,
    route: &str,
    target: Option<&str>,
    refusal: &Refusal,
) {
    let status = refusal.status();
    tracing::info!(%peer, route, target = target.unwrap_or("-"), status, reason = %refusal, "handshake refused");
    let mut out = Vec::new();
    refusal.write_response(&mut out);
    let _ = client.write_all(&out).await;
    let _ = client.shutdown().await;
}

/// Reads the client's request head until `deadline`. `Ok(None)`: the client left.
async fn read_request(
    client: &mut Stream,
    config: &GatewayConfig,
    deadline: Deadline,
    secure: bool,
) -> Result<Option<ClientHello>, Refusal> {
    let limits = &config.limits;
    let read = async {
        let mut buf = Vec::with_capacity(4096);
        loop {
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
            match RequestHead::parse(&buf, limits)? {
                Parsed::Complete { value, consumed } => {
                    return Ok(Some(ClientHello {
                        head: value,
                        buf,
                        consumed,
                        secure,
                    }))
                }
                // The parser rejects a head over the byte limit, so this loop is bounded.
                Parsed::Partial => continue,
            }
        }
    };
    tokio::time::timeout_at(deadline, read)
        .await
        .map_err(|_| Refusal::HandshakeTimeout(config.handshake_timeout))?
}

/// The upstream after its 101.
struct UpstreamConn {
    stream: Stream,
    protocol: Option<String>,
    extensions: Option<String>,
    /// RSV bits the accepted extensions allow.
    allowed_rsv: u8,
    preread: Vec<u8>,
}

enum Upgraded {
    Accepted(UpstreamConn),
    /// The status and the response to relay to the client.
    Refused((u16, Vec<u8>)),
}

/// Opens TCP, and TLS for `wss://`, within the route's connect timeout.
async fn open_upstream(route: &Route, upstream: &Upstream) -> Result<Stream, Refusal> {
    let uri = &upstream.uri;
    let authority = uri.authority();
    let deadline = Deadline::now() + route.connect_timeout;
    let timed_out = || Refusal::ConnectTimeout(uri.authority(), route.connect_timeout);
    let host = uri.host.trim_start_matches('[').trim_end_matches(']');
    let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect((host, uri.port))).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(Refusal::Connect(authority, e)),
        Err(_) => return Err(timed_out()),
    };
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &upstream.tls else {
        return Ok(Stream::Plain(tcp));
    };
    let name =
        crate::tls::server_name(host).map_err(|e| Refusal::UpstreamTls(uri.authority(), e))?;
    let connecting = TlsConnector::from(Arc::clone(tls)).connect(name, tcp);
    match tokio::time::timeout_at(deadline, connecting).await {
        Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream.into()))),
        Ok(Err(e)) => Err(Refusal::UpstreamTls(authority, e)),
        Err(_) => Err(timed_out()),
    }
}

async fn connect_upstream(
    route: &Route,
    upstream: &Upstream,
    limits: &Limits,
    hello: &ClientHello,
    request: &WebSocketRequest,
    peer: SocketAddr,
) -> Result<Upgraded, Refusal> {
    let mut stream = open_upstream(route, upstream).await?;
    let uri = &upstream.uri;
    // Only the extensions the route forwards; the others the client offered are dropped, so
    // the upstream cannot accept one whose framing the relay does not allow.
    let offers: Vec<String> = request
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
    let context = ForwardContext {
        client_ip: peer.ip(),
        secure: hello.secure,
        host: hello.head.host(),
    };
    let mut upgrade = UpgradeRequest::new(uri)?
        .with_target(&route.upstream_target(uri, &hello.head.target))
        .with_protocols(&request.protocols)
        .with_extensions(&offers);
    if !route.change_origin {
        if let Some(host) = hello.head.host() {
            upgrade = upgrade.with_host(host);
        }
    }
    let headers = route.shape_headers(forward_request_headers(&hello.head, &context), uri);
    for header in headers {
        upgrade = upgrade.with_header(&header.name, &header.value)?;
    }
    let mut out = Vec::new();
    upgrade.encode(&mut out);

    let exchange = async {
        stream.write_all(&out).await.map_err(Refusal::UpstreamIo)?;
        let mut buf = Vec::with_capacity(4096);
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.map_err(Refusal::UpstreamIo)?;
            if n == 0 {
                return Err(Refusal::UpstreamIo(io::ErrorKind::UnexpectedEof.into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            match upgrade.parse_response(&buf, limits) {
                Ok(Parsed::Partial) => continue,
                Ok(Parsed::Complete { value, consumed }) => {
                    return Ok((value, buf.split_off(consumed)));
                }
                Err(e) => return Err(Refusal::UpstreamHandshake(e)),
            }
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
            let mut allowed_rsv = 0;
            // A list whose parameters may hold quoted commas (RFC 9110 §5.6.1).
            for accepted in extensions.as_deref().map(split_list).into_iter().flatten() {
                allowed_rsv |= if extension_name(accepted).eq_ignore_ascii_case(PERMESSAGE_DEFLATE)
                {
                    wsrelay_codec::RSV1
                } else {
                    // An extension the operator chose to forward; its use of the RSV bits is
                    // not known here, so all three pass.
                    wsrelay_codec::RSV1 | wsrelay_codec::RSV2 | wsrelay_codec::RSV3
                };
            }
            Ok(Upgraded::Accepted(UpstreamConn {
                stream,
                protocol,
                extensions,
                allowed_rsv,
                preread: rest,
            }))
        }
        refused @ UpstreamResponse::Refused { .. } => {
            let body = read_body(&mut stream, &refused, rest, route.upgrade_timeout).await;
            let UpstreamResponse::Refused {
                status,
                reason,
                headers,
            } = refused
            else {
                unreachable!("matched as Refused above")
            };
            let mut out = Vec::new();
            write_relayed_response(
                &mut out,
                status,
                &reason,
                &forward_response_headers(&headers),
                &body,
            );
            Ok(Upgraded::Refused((status, out)))
        }
    }
}

/// Reads a refusal's body, at most [`MAX_RELAYED_BODY`] bytes and only as long as the timeout allows.
async fn read_body<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    response: &UpstreamResponse,
    mut body: Vec<u8>,
    timeout: Duration,
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
    let _ = tokio::time::timeout(timeout, read).await;
    body.truncate(want);
    body
}

#[cfg(test)]
mod footprint {
    use super::*;
    use crate::route::Upstream;

    /// What an idle relayed connection costs is mostly this future, which its task holds: the
    /// handshakes run in a boxed future of their own, so their buffers are not part of it
    /// (before that it was 5,368 bytes, and 11.9 KB of RSS per idle connection).
    #[tokio::test]
    async fn a_connection_future_holds_little_more_than_the_relay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tcp, peer) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (tcp, _keep) = (tcp.unwrap(), peer.unwrap());
        let upstream = Upstream::new("ws://127.0.0.1:9/".parse().unwrap()).unwrap();
        let config = Arc::new(GatewayConfig::new(addr, upstream));
        let (_tx, stop) = watch::channel(false);
        let future = serve_connection(tcp, addr, None, config, stop);
        let size = std::mem::size_of_val(&future);
        eprintln!("serve_connection future: {size} bytes");
        assert!(size <= 2400, "a connection's future takes {size} bytes");
    }
}
