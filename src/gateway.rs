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
use wsrelay_handshake::{
    extension_name, forward_request_headers, forward_response_headers, split_list,
    write_error_response, write_relayed_response, write_switching_protocols, ForwardContext,
    HandshakeError, Limits, Parsed, RequestHead, UpgradeRequest, UpstreamResponse,
    WebSocketRequest, WsUri,
};
use wsrelay_relay::{EndReason, Relay, RelayOptions, RelayOutcome};

/// Largest body of an upstream's refusal that is relayed to the client.
pub const MAX_RELAYED_BODY: usize = 64 * 1024;

/// The only extension relayed (pass-through: frames with RSV1 are forwarded untouched).
const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// Everything the gateway needs to serve one listener and one upstream.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to accept clients on.
    pub listen: SocketAddr,
    /// The upstream; its path is a prefix put before the client's path.
    pub upstream: WsUri,
    /// Time a client has to send its complete upgrade request (408 after it).
    pub handshake_timeout: Duration,
    /// Time to open the TCP connection to the upstream (504 after it).
    pub connect_timeout: Duration,
    /// Time the upstream has to answer the upgrade (504 after it).
    pub upgrade_timeout: Duration,
    /// After a shutdown signal, time open relays get to close before they are cut.
    pub shutdown_timeout: Duration,
    /// Header size and count limits for both handshakes.
    pub limits: Limits,
    /// How frames are relayed.
    pub relay: RelayOptions,
    /// Worker threads, each with its own runtime and listening socket (thread-per-core).
    pub workers: usize,
}

impl GatewayConfig {
    /// Defaults for everything but the addresses: 10 s handshakes, 5 s connect, 10 s shutdown,
    /// one worker (the caller's runtime).
    pub fn new(listen: SocketAddr, upstream: WsUri) -> GatewayConfig {
        GatewayConfig {
            listen,
            upstream,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            upgrade_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            relay: RelayOptions::default(),
            workers: 1,
        }
    }
}

/// A bound gateway, ready to serve.
///
/// With `workers` > 1 it runs thread-per-core, as nginx does: one single-threaded runtime per
/// worker, each accepting on its own socket bound to the same address with `SO_REUSEPORT`, so
/// the kernel spreads connections over workers and a connection's two directions, its buffers
/// and its wake-ups all stay on one thread.
pub struct Gateway {
    /// The first worker's listener, on the caller's runtime.
    listener: TcpListener,
    /// The other workers' listeners, handed to their own runtimes.
    others: Vec<std::net::TcpListener>,
    local: SocketAddr,
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
    /// Binds and listens on one socket per worker (a port of 0 is resolved once, so all
    /// workers share the port the first one got). Connections queue from here on.
    pub async fn bind(config: GatewayConfig) -> io::Result<Gateway> {
        let first = reusable_socket(config.listen)?;
        first.bind(config.listen)?;
        let local = first.local_addr()?;
        let listener = first.listen(BACKLOG)?;
        let mut others = Vec::new();
        for _ in 1..config.workers.max(1) {
            let socket = reusable_socket(local)?;
            socket.bind(local)?;
            // Moved out of this runtime; the worker's own runtime takes it back in `run`.
            others.push(socket.listen(BACKLOG)?.into_std()?);
        }
        Ok(Gateway {
            listener,
            others,
            local,
            config: Arc::new(config),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Serves until `shutdown` completes; then every worker stops accepting, sends 1001 to both
    /// sides of each open relay and waits for them, at most the shutdown timeout.
    ///
    /// The first worker runs on the caller's runtime; the others get a thread and a
    /// single-threaded runtime each.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut threads = Vec::new();
        for (n, listener) in self.others.into_iter().enumerate() {
            let config = Arc::clone(&self.config);
            let stop = stop_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("wsrelay-worker-{}", n + 1))
                .spawn(move || -> io::Result<()> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async move {
                        serve(TcpListener::from_std(listener)?, config, stop).await
                    })
                })?;
            threads.push(thread);
        }
        let worker = serve(self.listener, Arc::clone(&self.config), stop_rx);
        let signal = async {
            shutdown.await;
            tracing::info!("shutting down: closing open connections with 1001");
            let _ = stop_tx.send(true);
        };
        let (served, ()) = tokio::join!(worker, signal);
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

/// One worker: accepts and serves connections until `stop` turns true, then winds them down.
async fn serve(
    listener: TcpListener,
    config: Arc<GatewayConfig>,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut tasks = JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(serve_connection(stream, peer, Arc::clone(&config), stop.clone()));
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
    #[error("this endpoint speaks WebSocket only: send a GET with Upgrade: websocket")]
    NotAnUpgrade,
    #[error("no complete upgrade request within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("upstream {0} unreachable: {1}")]
    Connect(String, io::Error),
    #[error("upstream {0} did not accept the connection within {1:?}")]
    ConnectTimeout(String, Duration),
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
            Refusal::NotAnUpgrade => 426,
            Refusal::HandshakeTimeout(_) => 408,
            Refusal::ConnectTimeout(..) | Refusal::UpgradeTimeout(_) => 504,
            Refusal::Connect(..) | Refusal::UpstreamIo(_) | Refusal::UpstreamHandshake(_) => 502,
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
            Refusal::HandshakeTimeout(_) => {
                write_error_response(out, 408, &[], &format!("{self}\n"))
            }
            // Upstream failures: the client learns the status, not the internal address or
            // error (those go to the log line).
            Refusal::ConnectTimeout(..) | Refusal::UpgradeTimeout(_) => write_error_response(
                out,
                504,
                &[],
                "the upstream server did not answer in time\n",
            ),
            Refusal::Connect(..) | Refusal::UpstreamIo(_) | Refusal::UpstreamHandshake(_) => {
                write_error_response(
                    out,
                    502,
                    &[],
                    "the upstream server could not complete the WebSocket handshake\n",
                )
            }
        }
    }
}

/// A request head read from a client, with whatever arrived after it.
struct ClientHello {
    head: RequestHead,
    buf: Vec<u8>,
    consumed: usize,
}

/// One client connection from accept to the end of its relay.
async fn serve_connection(
    mut client: TcpStream,
    peer: SocketAddr,
    config: Arc<GatewayConfig>,
    stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let _ = client.set_nodelay(true);
    let hello = match read_request(&mut client, &config).await {
        Ok(Some(hello)) => hello,
        Ok(None) => return,
        Err(refusal) => return refuse(&mut client, peer, None, &refusal).await,
    };
    let target = hello.head.target.clone();
    let request = match validate(&hello.head) {
        Ok(request) => request,
        Err(refusal) => return refuse(&mut client, peer, Some(&target), &refusal).await,
    };
    let upstream = match connect_upstream(&config, &hello, &request, peer).await {
        Ok(Upgraded::Accepted(upstream)) => upstream,
        Ok(Upgraded::Refused(response)) => {
            tracing::info!(%peer, route = %target, status = response.0, "upstream refused the upgrade; relayed");
            let _ = client.write_all(&response.1).await;
            let _ = client.shutdown().await;
            return;
        }
        Err(refusal) => return refuse(&mut client, peer, Some(&target), &refusal).await,
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
        tracing::info!(%peer, route = %target, error = %e, "client left before the 101");
        return;
    }
    let mut options = config.relay.clone();
    if upstream.deflate {
        options.allowed_rsv |= wsrelay_codec::RSV1;
    }
    let mut stop = stop;
    let outcome = Relay::new(client, upstream.stream, &options)
        .client_preread(&hello.buf[hello.consumed..])
        .upstream_preread(&upstream.preread)
        .with_shutdown(async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        })
        .run()
        .await;
    log_outcome(peer, &target, started, &outcome);
}

fn log_outcome(peer: SocketAddr, route: &str, started: Instant, o: &RelayOutcome) {
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
    };
    tracing::info!(
        %peer,
        route,
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

async fn refuse(client: &mut TcpStream, peer: SocketAddr, route: Option<&str>, refusal: &Refusal) {
    let status = refusal.status();
    tracing::info!(%peer, route = route.unwrap_or("-"), status, reason = %refusal, "handshake refused");
    let mut out = Vec::new();
    refusal.write_response(&mut out);
    let _ = client.write_all(&out).await;
    let _ = client.shutdown().await;
}

/// Reads the client's request head within the handshake timeout. `Ok(None)`: the client left.
async fn read_request(
    client: &mut TcpStream,
    config: &GatewayConfig,
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
                    }))
                }
                // The parser rejects a head over the byte limit, so this loop is bounded.
                Parsed::Partial => continue,
            }
        }
    };
    tokio::time::timeout(config.handshake_timeout, read)
        .await
        .map_err(|_| Refusal::HandshakeTimeout(config.handshake_timeout))?
}

/// Checks the upgrade; a plain HTTP request on the WebSocket endpoint gets 426.
fn validate(head: &RequestHead) -> Result<WebSocketRequest, Refusal> {
    if !head.is_upgrade_attempt() {
        return Err(Refusal::NotAnUpgrade);
    }
    Ok(head.validate_websocket()?)
}

/// The upstream after its 101.
struct UpstreamConn {
    stream: TcpStream,
    protocol: Option<String>,
    extensions: Option<String>,
    deflate: bool,
    preread: Vec<u8>,
}

enum Upgraded {
    Accepted(UpstreamConn),
    /// The status and the response to relay to the client.
    Refused((u16, Vec<u8>)),
}

/// The path and query to request upstream: the upstream's path as a prefix, then the client's.
pub fn upstream_target(upstream: &WsUri, client_target: &str) -> String {
    let (up_path, up_query) = split_query(&upstream.path_and_query);
    let (path, query) = split_query(client_target);
    let mut target = String::with_capacity(up_path.len() + client_target.len());
    target.push_str(up_path.trim_end_matches('/'));
    if !path.starts_with('/') {
        target.push('/');
    }
    target.push_str(path);
    let queries: Vec<&str> = [up_query, query].into_iter().flatten().collect();
    if !queries.is_empty() {
        target.push('?');
        target.push_str(&queries.join("&"));
    }
    target
}

fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query).filter(|q| !q.is_empty())),
        None => (target, None),
    }
}

async fn connect_upstream(
    config: &GatewayConfig,
    hello: &ClientHello,
    request: &WebSocketRequest,
    peer: SocketAddr,
) -> Result<Upgraded, Refusal> {
    let uri = &config.upstream;
    let authority = uri.authority();
    let address = (
        uri.host.trim_start_matches('[').trim_end_matches(']'),
        uri.port,
    );
    let mut stream =
        match tokio::time::timeout(config.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Refusal::Connect(authority, e)),
            Err(_) => return Err(Refusal::ConnectTimeout(authority, config.connect_timeout)),
        };
    let _ = stream.set_nodelay(true);

    let offers: Vec<String> = request
        .extensions
        .iter()
        .filter(|e| extension_name(e).eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        .cloned()
        .collect();
    let context = ForwardContext {
        client_ip: peer.ip(),
        secure: false,
        host: hello.head.host(),
    };
    let mut upgrade = UpgradeRequest::new(uri)
        .with_target(&upstream_target(uri, &hello.head.target))
        .with_protocols(&request.protocols)
        .with_extensions(&offers);
    for header in forward_request_headers(&hello.head, &context) {
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
            match upgrade.parse_response(&buf, &config.limits) {
                Ok(Parsed::Partial) => continue,
                Ok(Parsed::Complete { value, consumed }) => {
                    return Ok((value, buf.split_off(consumed)));
                }
                Err(e) => return Err(Refusal::UpstreamHandshake(e)),
            }
        }
    };
    let (response, rest) = tokio::time::timeout(config.upgrade_timeout, exchange)
        .await
        .map_err(|_| Refusal::UpgradeTimeout(config.upgrade_timeout))??;
    match response {
        UpstreamResponse::Accepted {
            protocol,
            extensions,
            ..
        } => {
            let deflate = extensions.as_deref().is_some_and(|e| {
                // A list whose parameters may hold quoted commas (RFC 9110 §5.6.1).
                split_list(e).any(|x| extension_name(x).eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
            });
            Ok(Upgraded::Accepted(UpstreamConn {
                stream,
                protocol,
                extensions,
                deflate,
                preread: rest,
            }))
        }
        refused @ UpstreamResponse::Refused { .. } => {
            let body = read_body(&mut stream, &refused, rest, config.upgrade_timeout).await;
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
