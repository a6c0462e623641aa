//! The admin listener: `GET /metrics`, `GET /livez`, `GET /readyz`, `POST /reload` (see
//! [`crate::reload`]), the routes API `/routes`, `/pools` (see [`crate::routes_api`]), on an
//! address of its own
//! (`[admin] address`, `--admin`), served by a thread of its own so scrapes never take a
//! worker's time.
//!
//! Each request gets one response and the connection is closed. What a scraper can hold is
//! bounded: at most [`MAX_CONNECTIONS`] at once (more wait in the backlog), a request head of
//! at most [`MAX_HEAD`] bytes read within [`READ_TIMEOUT`], and a response written within
//! [`WRITE_TIMEOUT`] or dropped. The response is built before it is written, from the metrics'
//! current values, so a stalled scraper holds one response, never a queue of them, and never
//! anything the relays wait for.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

use crate::metrics::{Format, Metrics};
use crate::reload::Reloader;

/// Admin connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Largest request head accepted (431 beyond).
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the whole response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Headers parsed in a request.
const MAX_HEADERS: usize = 32;

/// A bound admin listener, not yet serving.
#[derive(Debug)]
pub struct AdminServer {
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
    /// What `POST /reload` (404 without a file) and the routes API call; `None`: 404.
    reloader: Option<Arc<Reloader>>,
}

/// A serving admin listener; stops serving when dropped.
#[derive(Debug)]
pub struct AdminHandle {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl AdminServer {
    /// Binds `address` (port 0 picks a free one); requests are served once [`spawn`]ed.
    ///
    /// [`spawn`]: AdminServer::spawn
    pub fn bind(address: SocketAddr, metrics: Arc<Metrics>) -> io::Result<AdminServer> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok(AdminServer {
            listener,
            metrics,
            reloader: None,
        })
    }

    /// Serves `POST /reload` with `reloader` (when it has a file to read), and the routes API.
    pub fn with_reloader(self, reloader: Arc<Reloader>) -> AdminServer {
        AdminServer {
            reloader: Some(reloader),
            ..self
        }
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves on a thread of its own (with its own single-threaded runtime) until the handle
    /// is dropped.
    pub fn spawn(self) -> io::Result<AdminHandle> {
        let (stop, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name("wsrelay-admin".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        tracing::error!(error = %e, "admin listener: no runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    match TcpListener::from_std(self.listener) {
                        Ok(listener) => serve(listener, self.metrics, self.reloader, stopped).await,
                        Err(e) => tracing::error!(error = %e, "admin listener failed"),
                    }
                });
            })?;
        Ok(AdminHandle { stop: Some(stop) })
    }
}

/// Accepts admin connections until `stopped`, [`MAX_CONNECTIONS`] at a time.
async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    reloader: Option<Arc<Reloader>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            _ = &mut stopped => return,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let metrics = Arc::clone(&metrics);
                let reloader = reloader.clone();
                tokio::spawn(async move {
                    answer(stream, &metrics, reloader).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A response: status line, content type and body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
    allow: bool,
    /// A 401 of the routes API: `WWW-Authenticate: Bearer`.
    challenge: bool,
}

impl Response {
    fn plain(status: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
            allow: false,
            challenge: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let allow = if self.allow { "Allow: GET\r\n" } else { "" };
        let challenge = if self.challenge {
            "WWW-Authenticate: Bearer realm=\"wsrelay-admin\"\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}{challenge}\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// What a request asked for, as far as the admin listener cares.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    accept: Option<String>,
    /// `Authorization` (the routes API's bearer token).
    authorization: Option<String>,
    /// `Content-Length`; `Some(None)`: present but not a number, or `Transfer-Encoding` sent.
    content_length: Option<Option<usize>>,
    /// Length of the head; the body follows it.
    head_len: usize,
    /// `Expect: 100-continue`: the client waits for a 100 before it sends the body.
    expect_continue: bool,
    /// The body (read for the routes API only, up to `Content-Length`).
    body: Vec<u8>,
}

/// Parses a request head; `Ok(None)` while incomplete.
fn parse(buf: &[u8]) -> Result<Option<Request>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = request.parse(buf)? else {
        return Ok(None);
    };
    let header = |name: &str| {
        (request.headers.iter())
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let content_length = match header("transfer-encoding") {
        Some(_) => Some(None),
        None => header("content-length").map(|v| v.trim().parse().ok()),
    };
    Ok(Some(Request {
        method: request.method.unwrap_or_default().to_owned(),
        path: request.path.unwrap_or_default().to_owned(),
        accept: header("accept"),
        authorization: header("authorization"),
        content_length,
        head_len,
        expect_continue: header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")),
        body: Vec::new(),
    }))
}

/// Reads a request head within [`READ_TIMEOUT`]; the response for one that is too large or
/// malformed, `None` if the client left.
async fn read_request(stream: &mut TcpStream) -> Option<Result<Request, Response>> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let read = async {
        loop {
            if len == buf.len() {
                return Some(Err(Response::plain(
                    "431 Request Header Fields Too Large",
                    "request head too large\n",
                )));
            }
            let n = stream.read(&mut buf[len..]).await.ok()?;
            if n == 0 {
                return None;
            }
            len += n;
            match parse(&buf[..len]) {
                Ok(Some(request)) => return read_body(stream, request, &buf[..len]).await,
                Ok(None) => {}
                Err(_) => return Some(Err(Response::plain("400 Bad Request", "bad request\n"))),
            }
        }
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .ok()
        .flatten()
}

/// Reads the body of a routes API request (`Content-Length` bytes, at most
/// [`crate::routes_api::MAX_BODY`]), `read` being what came with the head; other requests'
/// bodies are not read.
async fn read_body(
    stream: &mut TcpStream,
    mut request: Request,
    read: &[u8],
) -> Option<Result<Request, Response>> {
    let path = request.path.split('?').next().unwrap_or_default();
    if !crate::routes_api::handles(path) {
        return Some(Ok(request));
    }
    let length = match request.content_length {
        None => 0,
        Some(None) => {
            return Some(Err(Response::plain(
                "411 Length Required",
                "send the body with a Content-Length\n",
            )))
        }
        Some(Some(n)) if n > crate::routes_api::MAX_BODY => {
            return Some(Err(Response::plain(
                "413 Content Too Large",
                "the body is too large\n",
            )))
        }
        Some(Some(n)) => n,
    };
    let mut body = read.get(request.head_len..).unwrap_or_default().to_vec();
    if request.expect_continue && body.len() < length {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .ok()?;
    }
    body.truncate(length);
    let start = body.len();
    body.resize(length, 0);
    let mut filled = start;
    while filled < length {
        let n = stream.read(&mut body[filled..]).await.ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
    }
    request.body = body;
    Some(Ok(request))
}

/// The routes API (`/routes`, `/pools`), off the runtime's thread: a change loads a document.
async fn routes_api(request: Request, reloader: Arc<Reloader>, metrics: &Metrics) -> Response {
    if request.method != "GET" && metrics.draining() {
        return Response::plain("503 Service Unavailable", "draining: no changes\n");
    }
    let answered = tokio::task::spawn_blocking(move || {
        let path = request.path.split('?').next().unwrap_or_default();
        let api_request = crate::routes_api::ApiRequest {
            method: &request.method,
            path,
            authorization: request.authorization.as_deref(),
            body: &request.body,
        };
        crate::routes_api::answer(&api_request, &reloader)
    })
    .await;
    match answered {
        Ok(answer) => Response {
            status: answer.status,
            content_type: if answer.json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            },
            body: answer.body,
            allow: false,
            challenge: answer.challenge,
        },
        Err(e) => Response::plain("500 Internal Server Error", &format!("failed: {e}\n")),
    }
}

/// The response to `request`.
fn route(request: &Request, metrics: &Metrics) -> Response {
    if request.method != "GET" {
        let mut response = Response::plain("405 Method Not Allowed", "only GET\n");
        response.allow = true;
        return response;
    }
    let path = request.path.split('?').next().unwrap_or_default();
    match path {
        "/metrics" => {
            let format = Format::negotiate(request.accept.as_deref());
            Response {
                status: "200 OK",
                content_type: format.content_type(),
                body: metrics.render(format),
                allow: false,
                challenge: false,
            }
        }
        "/livez" => Response::plain("200 OK", "ok\n"),
        "/readyz" if metrics.draining() => Response::plain("503 Service Unavailable", "draining\n"),
        "/readyz" => Response::plain("200 OK", "ready\n"),
        _ => Response::plain("404 Not Found", "not found: /metrics, /livez, /readyz\n"),
    }
}

/// `POST /reload`: 200 and the summary when applied; 400 and the diagnostics of an invalid
/// file; 500 when a listener could not be bound; 503 while draining.
async fn reload(reloader: Arc<Reloader>, metrics: &Metrics) -> Response {
    if metrics.draining() {
        return Response::plain("503 Service Unavailable", "draining: no reloads\n");
    }
    let applied = tokio::task::spawn_blocking(move || reloader.reload()).await;
    match applied {
        Ok(Ok(applied)) => Response::plain("200 OK", &applied.to_string()),
        Ok(Err(
            e @ (crate::Error::Config(_) | crate::Error::Read { .. } | crate::Error::Tls(_)),
        )) => Response::plain(
            "400 Bad Request",
            &format!("{e}\nthe running configuration stays\n"),
        ),
        Ok(Err(e)) => Response::plain(
            "500 Internal Server Error",
            &format!("{e}\nthe running configuration stays\n"),
        ),
        Err(e) => Response::plain(
            "500 Internal Server Error",
            &format!("reload failed: {e}\n"),
        ),
    }
}

/// Serves one admin connection: one request, one response within [`WRITE_TIMEOUT`], close.
async fn answer(mut stream: TcpStream, metrics: &Metrics, reloader: Option<Arc<Reloader>>) {
    let response = match read_request(&mut stream).await {
        None => return,
        Some(Ok(request)) if request.path == "/reload" => match reloader {
            Some(reloader) if !reloader.has_file() => {
                Response::plain("404 Not Found", "no configuration file to reload\n")
            }
            Some(reloader) if request.method == "POST" => reload(reloader, metrics).await,
            Some(_) => Response::plain("405 Method Not Allowed", "only POST\n"),
            None => Response::plain("404 Not Found", "no configuration file to reload\n"),
        },
        Some(Ok(request))
            if crate::routes_api::handles(request.path.split('?').next().unwrap_or_default()) =>
        {
            match reloader {
                Some(reloader) => routes_api(request, reloader, metrics).await,
                None => Response::plain("404 Not Found", "no routes API here\n"),
            }
        }
        Some(Ok(request)) => route(&request, metrics),
        Some(Err(response)) => response,
    };
    let bytes = response.bytes();
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    // A scraper that does not take its response in time loses it (and its connection).
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_once_complete() {
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nAccept: x"), Ok(None));
        let request = parse(b"GET /metrics?a=1 HTTP/1.1\r\nAccept: text/plain\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(request.path, "/metrics?a=1");
        assert_eq!(request.accept.as_deref(), Some("text/plain"));
        assert!(parse(b"GET /\x01 HTTP/1.1\r\n\r\n").is_err());
    }
}
