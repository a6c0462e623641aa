//! HTTP/2 on a listener (RFC 9113), with WebSockets opened by extended CONNECT (RFC 8441).
//!
//! A listener with `http2 = true` offers `h2` in TLS ALPN, and on plain TCP accepts HTTP/2 with
//! prior knowledge (the client's connection preface) beside HTTP/1.1. hyper's HTTP/2 server
//! runs the connection; each request stream is translated to the HTTP/1.1 head it stands for
//! (RFC 8441 §5: `:protocol = websocket` is the `Upgrade: websocket`) and goes through the one
//! pipeline (`Pipeline::upgrade`): canonical form, route, Origin, admission, auth, pool and
//! the upstream's HTTP/1.1 upgrade. The answer is a 200 on the stream, a refusal its status.
//! The relay then runs over the stream: HTTP/2 flow control gives it the back-pressure TCP
//! gives over HTTP/1.1, and it sees the same frames.
//!
//! HTTP/2's own hazards are bounded by h2's settings: concurrent streams, the rapid-reset
//! pattern (CVE-2023-44487: streams reset before they were served, and streams the server had
//! to reset), header list size, and receive windows; SETTINGS and PING are answered one at a
//! time (h2 reads the next frame only once the last acknowledgement is written), so a flood
//! is held by the client's own TCP window. A connection without a stream for the handshake
//! timeout (none opened yet, or all ended) is closed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::ext::Protocol;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant as Deadline;
use wsrelay_handshake::{HandshakeError, Header, RequestHead};

use crate::client_side::{self, ClientSide};
use crate::pipeline::{self, Listening, Pipeline};
use crate::refusal::Refusal;
use crate::request::{ClientRequest, Peer};
use crate::stream::Stream;
use crate::upstream::UpstreamConnection;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4): a plain listener with HTTP/2 on
/// takes a connection that starts with it as HTTP/2 with prior knowledge.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Default cap on the streams (WebSockets) one HTTP/2 connection may have open at once.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Streams a client may reset before the server took them, at once, before the connection is
/// closed with GOAWAY `ENHANCE_YOUR_CALM` (the rapid-reset attack, CVE-2023-44487).
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Streams the server may have to reset for a client's protocol errors before the connection
/// is closed with GOAWAY `ENHANCE_YOUR_CALM`.
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;

/// Each stream's receive window: what one WebSocket may have in flight towards the relay
/// before the client must wait (the relay's back-pressure).
pub const STREAM_WINDOW: u32 = 256 * 1024;

/// The connection's receive window, shared by its streams: the bound on data a connection
/// can have buffered in the gateway, however many streams it opens.
pub const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Placeholder `Sec-WebSocket-Key` of a translated extended CONNECT: RFC 8441 has no key, and
/// the upstream gets a fresh one of its own; this one only satisfies the head's validation.
const PLACEHOLDER_KEY: &[u8] = b"AAAAAAAAAAAAAAAAAAAAAA==";

/// A listener's HTTP/2 settings (`http2 = true` on `[[listeners]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    /// Streams (WebSockets) one connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`);
    /// more are refused by h2 with `REFUSED_STREAM`.
    pub max_concurrent_streams: u32,
}

impl Default for Http2Settings {
    fn default() -> Http2Settings {
        Http2Settings {
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
        }
    }
}

/// The listener's HTTP/2 settings if it has HTTP/2 on and the client speaks it: `h2` chosen in
/// ALPN on TLS, the connection preface on plain TCP (peeked, not read, so an HTTP/1.1 client
/// loses nothing). Waits for the preface's bytes until `deadline` at most.
pub(crate) async fn offered(
    client: &Stream,
    listening: &Listening,
    deadline: Deadline,
) -> Option<Http2Settings> {
    let settings = listening.config.listeners.get(listening.index)?.http2?;
    match client {
        Stream::Tls(tls) => (tls.get_ref().1.alpn_protocol() == Some(b"h2")).then_some(settings),
        Stream::Plain(tcp) => {
            let mut seen = [0u8; PREFACE.len()];
            loop {
                let n = tokio::time::timeout_at(deadline, tcp.peek(&mut seen))
                    .await
                    .ok()?
                    .ok()?;
                if n == 0 || seen[..n] != PREFACE[..n] {
                    return None;
                }
                if n == PREFACE.len() {
                    return Some(settings);
                }
                // A preface split across packets (rare: clients send it whole). Peeking again
                // at once would spin on the same bytes.
                if Deadline::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

/// A stream's work handed to hyper's executor: its service future, then its relay.
type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// hyper's executor for one HTTP/2 connection: tasks go to the connection's own task set, so
/// they run on the worker's runtime and end with the connection (or when it is cut).
#[derive(Clone)]
struct Streams(mpsc::UnboundedSender<Task>);

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, task: F) {
        // Fails only when the connection has ended: the task has nothing left to serve.
        let _ = self.0.send(Box::pin(task));
    }
}

/// What every stream of one HTTP/2 connection shares.
struct Connection {
    listening: Arc<Listening>,
    peer: Peer,
    local: Option<SocketAddr>,
    streams: Streams,
    /// Request streams opened so far, for the connection's log line.
    streams_opened: AtomicUsize,
    /// WebSockets accepted so far (their relays started).
    websockets: AtomicUsize,
}

/// Serves one HTTP/2 connection until the client or the gateway ends it: each extended
/// CONNECT runs the pipeline and then its relay as a task of this connection. On shutdown the
/// connection gets a GOAWAY (its relays close with 1001 as over HTTP/1.1).
pub(crate) async fn serve(
    client: Stream,
    settings: Http2Settings,
    peer: Peer,
    listening: Arc<Listening>,
    started: Deadline,
) {
    let local = match &client {
        Stream::Plain(tcp) => tcp.local_addr().ok(),
        Stream::Tls(tls) => tls.get_ref().0.local_addr().ok(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Task>();
    let streams = Streams(tx);
    let header_list = u32::try_from(listening.config.limits.max_header_bytes).unwrap_or(u32::MAX);
    let mut builder = hyper::server::conn::http2::Builder::new(streams.clone());
    builder
        .enable_connect_protocol()
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS)
        .max_header_list_size(header_list)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    let shared = Arc::new(Connection {
        listening: Arc::clone(&listening),
        peer,
        local,
        streams,
        streams_opened: AtomicUsize::new(0),
        websockets: AtomicUsize::new(0),
    });
    let service = {
        let shared = Arc::clone(&shared);
        hyper::service::service_fn(move |request| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, std::convert::Infallible>(stream(request, shared).await) }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(client), service);
    let mut conn = std::pin::pin!(conn);
    let mut tasks = JoinSet::new();
    let mut stop = listening.stop.clone();
    let mut stopping = false;
    // The handshake timeout, for a connection as a whole: one without a stream for that long
    // (none opened yet, or all of them ended) is closed with a GOAWAY, as an HTTP/1.1
    // connection without a request gets its 408 and one whose tunnel ended is closed.
    let timeout = listening.config.handshake_timeout;
    let idle = tokio::time::sleep_until(started + timeout);
    let mut idle = std::pin::pin!(idle);
    let mut idle_armed = true;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(peer = %shared.peer.addr, error = %e, "HTTP/2 connection ended with an error");
                }
                break;
            }
            Some(task) = rx.recv() => {
                tasks.spawn(task);
                idle_armed = false;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                if tasks.is_empty() && !stopping {
                    idle.as_mut().reset(Deadline::now() + timeout);
                    idle_armed = true;
                }
            }
            _ = async { stop.wait_for(|s| *s).await.is_ok() }, if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = idle.as_mut(), if idle_armed => {
                idle_armed = false;
                if tasks.is_empty() {
                    tracing::info!(peer = %shared.peer.addr, "HTTP/2 connection without a stream for the handshake timeout; closing");
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    // The connection is gone: its streams' relays end as their streams fail; their log lines
    // are written before this connection's permit is given back.
    rx.close();
    while let Some(task) = rx.recv().await {
        tasks.spawn(task);
    }
    while tasks.join_next().await.is_some() {}
    // One line per HTTP/2 connection (its tunnels have their own): how many streams and
    // WebSockets it carried, so an operator (or a test) sees HTTP/2 was used.
    tracing::info!(
        peer = %shared.peer.addr,
        streams = shared.streams_opened.load(Ordering::Relaxed),
        websockets = shared.websockets.load(Ordering::Relaxed),
        "HTTP/2 connection finished"
    );
}

/// One request stream: translated to its HTTP/1.1 head, run through the pipeline, answered;
/// an accepted WebSocket's relay is handed to the connection's tasks.
async fn stream(mut request: Request<Incoming>, shared: Arc<Connection>) -> Response<Full<Bytes>> {
    shared.streams_opened.fetch_add(1, Ordering::Relaxed);
    let started = Deadline::now();
    let listening = &shared.listening;
    let config = &listening.config;
    let peer = shared.peer.clone();
    let addr = peer.addr;
    let mut side = Http2Side::default();
    let head = match translate(&request, config.limits.max_headers) {
        Ok(head) => head,
        Err(refusal) => {
            let target = request.uri().path().to_owned();
            client_side::refuse(&mut side, addr, "-", &target, refusal).await;
            return side.into_response();
        }
    };
    // Each WebSocket counts under the admission limits as an HTTP/1.1 connection does.
    // Behind a PROXY protocol balancer, per-address limits count the carried address (a
    // no-op where the accept already counted it).
    let admitted = (listening.admission.admit(listening.index, addr.ip())).and_then(|mut p| {
        p.admit_address(addr.ip())?;
        Ok(p)
    });
    let permit = match admitted {
        Ok(permit) => permit,
        Err(rejection) => {
            let refusal = Refusal::Admission(rejection);
            client_side::refuse(&mut side, addr, "-", &head.target, refusal).await;
            return side.into_response();
        }
    };
    let upgrading = hyper::upgrade::on(&mut request);
    let pipeline = Pipeline {
        admission: Some(&permit),
        ..Pipeline::new(config, listening.index).with_metrics(listening.metrics.as_deref())
    };
    let Ok(ready) = pipeline
        .upgrade(&mut side, head, peer, Instant::now())
        .await
    else {
        return side.into_response();
    };
    let streams = shared.streams.clone();
    shared.websockets.fetch_add(1, Ordering::Relaxed);
    let relay = async move {
        match upgrading.await {
            Ok(upgraded) => {
                let client = EndsWithShutdown::new(TokioIo::new(upgraded));
                let ready = ready.with_client(client, Vec::new());
                pipeline::relay(ready, &shared.listening, addr, shared.local, started).await;
            }
            Err(e) => {
                tracing::info!(peer = %addr, route = %ready.route, error = %e, "HTTP/2 stream ended before its relay");
            }
        }
        drop(permit);
    };
    hyper::rt::Executor::execute(&streams, relay);
    side.into_response()
}

/// The HTTP/1.1 head an HTTP/2 request stands for: an extended CONNECT with
/// `:protocol = websocket` is the `GET` with `Upgrade: websocket` of RFC 8441 §5 (its
/// `:authority` the Host, `:path` the target); any other request keeps its method, and is
/// refused by the pipeline as a plain request is over HTTP/1.1. More than `max_headers` header
/// fields is 431; their size is bounded by `SETTINGS_MAX_HEADER_LIST_SIZE` already.
fn translate(request: &Request<Incoming>, max_headers: usize) -> Result<RequestHead, Refusal> {
    let websocket = request.method() == Method::CONNECT
        && request
            .extensions()
            .get::<Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if request.headers().len() > max_headers {
        return Err(HandshakeError::HeaderTooLarge {
            limit: max_headers,
            unit: "headers",
        }
        .into());
    }
    let mut headers = Vec::with_capacity(request.headers().len() + 4);
    if let Some(authority) = request.uri().authority() {
        headers.push(header("Host", authority.as_str().as_bytes()));
    }
    if websocket {
        headers.push(header("Upgrade", b"websocket"));
        headers.push(header("Connection", b"Upgrade"));
        headers.push(header("Sec-WebSocket-Key", PLACEHOLDER_KEY));
    }
    for (name, value) in request.headers() {
        // RFC 8441 §5: no key on HTTP/2; the placeholder stands for it.
        if websocket && name.as_str() == "sec-websocket-key" {
            continue;
        }
        headers.push(header(name.as_str(), value.as_bytes()));
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let method = if websocket {
        "GET"
    } else {
        request.method().as_str()
    };
    Ok(RequestHead {
        method: method.to_owned(),
        target,
        version: 1,
        headers,
    })
}

fn header(name: &str, value: &[u8]) -> Header {
    Header {
        name: name.to_owned(),
        value: value.to_vec(),
    }
}

/// An HTTP/2 request stream as the client's side of its handshake: the answer is built here
/// and sent by hyper when the stream's service returns.
#[derive(Default)]
struct Http2Side {
    response: Option<Response<Full<Bytes>>>,
}

impl Http2Side {
    /// The stream's response: what `accept` or `refuse` built (500 if neither ran, which the
    /// pipeline does not do).
    fn into_response(self) -> Response<Full<Bytes>> {
        self.response.unwrap_or_else(|| {
            let mut response = Response::new(Full::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        })
    }
}

impl ClientSide for Http2Side {
    async fn accept(
        &mut self,
        _request: &ClientRequest,
        upstream: &UpstreamConnection,
        set_cookie: Option<&str>,
    ) -> io::Result<()> {
        // RFC 8441 §5: a 2xx accepts the CONNECT; the negotiation headers are as on HTTP/1.1.
        let mut response = Response::new(Full::default());
        let headers = response.headers_mut();
        let chosen = [
            ("sec-websocket-protocol", upstream.protocol.as_deref()),
            ("sec-websocket-extensions", upstream.extensions.as_deref()),
            ("set-cookie", set_cookie),
        ];
        for (name, value) in chosen {
            if let Some(value) = value {
                let value = HeaderValue::from_str(value).map_err(io::Error::other)?;
                headers.append(HeaderName::from_static(name), value);
            }
        }
        self.response = Some(response);
        Ok(())
    }

    async fn refuse(&mut self, refusal: &Refusal) {
        self.response = Some(refusal_response(refusal));
    }

    fn status(&self, refusal: &Refusal) -> u16 {
        h2_status(refusal)
    }
}

/// The status a refusal has over HTTP/2: its HTTP/1.1 status, except 426 (a plain request on a
/// WebSocket route), which names an HTTP/1.1 upgrade HTTP/2 does not have: 405, with
/// `Allow: CONNECT` (the extended CONNECT is the one method such a route takes).
fn h2_status(refusal: &Refusal) -> u16 {
    match refusal {
        Refusal::NotAnUpgrade => 405,
        _ => refusal.status(),
    }
}

/// Headers of an HTTP/1.1 response an HTTP/2 response leaves out: connection-specific ones are
/// not allowed in HTTP/2 (RFC 9113 §8.2.2), and the length is the body's own.
const NOT_IN_HTTP2: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "te",
];

/// A refusal as an HTTP/2 response: the same status, end-to-end headers and body as its
/// HTTP/1.1 rendering (one rendering, read back), without HTTP/1.1's connection headers.
fn refusal_response(refusal: &Refusal) -> Response<Full<Bytes>> {
    let mut rendered = Vec::new();
    refusal.write_response(&mut rendered);
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut slots);
    let (headers, body) = match parsed.parse(&rendered) {
        Ok(httparse::Status::Complete(len)) => (parsed.headers.to_vec(), &rendered[len..]),
        _ => (Vec::new(), &[][..]),
    };
    let chunked = headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    let body = if chunked {
        Bytes::new()
    } else {
        Bytes::copy_from_slice(body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(h2_status(refusal)).unwrap_or(StatusCode::BAD_GATEWAY);
    let out = response.headers_mut();
    for h in &headers {
        if NOT_IN_HTTP2.iter().any(|d| h.name.eq_ignore_ascii_case(d)) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            out.append(name, value);
        }
    }
    if matches!(refusal, Refusal::NotAnUpgrade) {
        out.remove("sec-websocket-version");
        out.insert(hyper::header::ALLOW, HeaderValue::from_static("CONNECT"));
    }
    response
}

/// An HTTP/2 stream as the relay's client side: once the relay has ended its half of the
/// stream (`END_STREAM`, after the close handshake or when it cut the tunnel), reads end too.
///
/// Over TCP the relay reads the client until it closes, so that unread bytes do not turn the
/// close into a reset. Over HTTP/2 there is nothing to wait for: a WebSocket client sends
/// nothing after its close frame, and a stream dropped before the client ended it is reset
/// on its own. Chromium neither ends nor resets its stream after the close handshake, so
/// waiting for its end held every tunnel (and its stream and admission places) for the whole
/// close timeout.
struct EndsWithShutdown<S> {
    io: S,
    shut_down: bool,
}

impl<S> EndsWithShutdown<S> {
    fn new(io: S) -> EndsWithShutdown<S> {
        EndsWithShutdown {
            io,
            shut_down: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for EndsWithShutdown<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.shut_down {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EndsWithShutdown<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let ended = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        self.shut_down = true;
        Poll::Ready(ended)
    }
}
