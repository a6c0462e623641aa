//! A client connection carrying plain HTTP: a loop of messages, each head read and checked by
//! the gateway's own parser before hyper's HTTP/1 server takes that one message (and only its
//! bytes, where its length is known), so every head passes the same checks as the first.
//!
//! hyper decides the framing of each message (one parser for where a body ends); the gateway's
//! parser only reads heads, which end at the first empty line. A head that asks for a
//! WebSocket upgrade leaves the loop and goes back to the pipeline's upgrade path, as on a
//! connection of its own.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use wsrelay_handshake::{write_error_response, Authority, RequestHead};

use super::exchange::Exchanges;
use super::rewind::Rewind;
use super::ResponseBody;
use crate::head::{read_head, HeadError};
use crate::pipeline::Pipeline;
use crate::refusal::Refusal;
use crate::request::Peer;
use crate::route::Route;
use crate::Error;

/// True when the connection's first request goes to plain HTTP: it is not an upgrade attempt,
/// and the route it matches has `http = true`.
pub(crate) fn wants(routes: &[Route], head: &RequestHead, authority: &Authority) -> bool {
    !head.is_upgrade_attempt()
        && routes
            .iter()
            .find(|r| r.matches(Some(&authority.host), head.path()))
            .is_some_and(|r| r.http.is_some())
}

/// How a plain-HTTP connection left the loop.
pub(crate) enum Handoff<S> {
    /// It ended (every request answered and logged): nothing to relay.
    Ended(Error),
    /// A WebSocket upgrade request arrived: the client and the bytes read (its head first),
    /// for the pipeline's upgrade path.
    Upgrade {
        /// The client.
        client: S,
        /// The upgrade request's head and whatever followed it.
        read: Vec<u8>,
        /// The head, parsed and in canonical form.
        head: RequestHead,
        /// Its length in `read`.
        consumed: usize,
        /// Its canonical authority.
        authority: Authority,
    },
}

/// Serves a client connection's plain HTTP requests, `read` holding the bytes already read
/// (the first head, and whatever followed it), until the connection ends or asks for an
/// upgrade.
pub(crate) async fn serve<S>(
    pipeline: Pipeline<'_>,
    mut client: S,
    mut read: Vec<u8>,
    peer: Peer,
) -> Handoff<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchanges = Exchanges {
        pipeline,
        peer,
        closing: AtomicBool::new(false),
    };
    let parse = |b: &[u8]| RequestHead::parse(b, pipeline.limits);
    loop {
        let next = read_head(&mut client, &mut read, parse);
        let (mut head, consumed) =
            match tokio::time::timeout(pipeline.handshake_timeout, next).await {
                Ok(Ok(parsed)) => parsed,
                // A kept-alive connection that stays quiet, or leaves, just ends.
                Err(_) | Ok(Err(HeadError::Closed)) => return Handoff::Ended(Error::HttpServed),
                Ok(Err(HeadError::Io(e))) => return Handoff::Ended(e.into()),
                Ok(Err(HeadError::Parse(e))) => {
                    let refusal = Refusal::from(e);
                    let (status, reason) = (refusal.status(), refusal.to_string());
                    let mut out = Vec::new();
                    refusal.write_response(&mut out);
                    return refuse(&exchanges, &mut client, "-", status, &reason, &out).await;
                }
            };
        if let Some(why) = framing_conflict(&head) {
            let mut out = Vec::new();
            write_error_response(&mut out, 400, &[], &format!("{why}\n"));
            return refuse(&exchanges, &mut client, "-", 400, why, &out).await;
        }
        if head.is_upgrade_attempt() {
            let authority =
                match crate::edge::canonicalize(&mut head, pipeline.edge, &exchanges.peer) {
                    Ok(authority) => authority,
                    Err(refusal) => {
                        let (status, reason) = (refusal.status(), refusal.to_string());
                        let mut out = Vec::new();
                        refusal.write_response(&mut out);
                        return refuse(&exchanges, &mut client, "-", status, &reason, &out).await;
                    }
                };
            return Handoff::Upgrade {
                client,
                read,
                head,
                consumed,
                authority,
            };
        }
        let close = wants_close(&head);
        // hyper gets this message's bytes only, where its length is known: the head and its
        // Content-Length. A chunked body's end is hyper's to find (it may read past it).
        let allowance = if head.header("Transfer-Encoding").is_some() {
            None
        } else {
            let length = head
                .header_str("Content-Length")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            Some((consumed as u64).saturating_add(length))
        };
        let io = Rewind::new(std::mem::take(&mut read), client).limit(allowance);
        match one_message(&exchanges, io).await {
            Ok((back, rest)) => {
                client = back;
                read = rest;
            }
            Err(e) => return Handoff::Ended(e),
        }
        if close || exchanges.closing.load(Ordering::Relaxed) {
            linger(&mut client).await;
            return Handoff::Ended(Error::HttpServed);
        }
    }
}

/// Answers a request refused before hyper saw it, logs it, and ends the connection.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    exchanges: &Exchanges<'_>,
    client: &mut S,
    route: &str,
    status: u16,
    reason: &str,
    response: &[u8],
) -> Handoff<S> {
    let config = &exchanges.pipeline.access_log;
    super::log::refused(config, exchanges.peer.addr, route, "-", "-", status, reason);
    let _ = client.write_all(response).await;
    linger(client).await;
    Handoff::Ended(Error::HttpServed)
}

/// Bytes of a client's unread request a closing connection reads and drops at most.
const LINGER_BYTES: usize = 8 * 1024 * 1024;
/// Time a closing connection keeps reading a client's unread request at most.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Closes the sending side, then reads (and drops) what the client still sends, bounded in
/// bytes and time: closing with unread bytes would reset the connection, and a reset can
/// discard the answer (a 413, a 400) before the client reads it.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S) {
    let _ = client.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 8192];
        let mut total = 0;
        while total < LINGER_BYTES {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// Why a head's framing is ambiguous, if it is: `Content-Length` with `Transfer-Encoding`
/// (RFC 9112 §6.3 calls it a smuggling attempt), or two lengths that differ, or a length that
/// is not a number. Such a request is refused (400) and the connection closed.
fn framing_conflict(head: &RequestHead) -> Option<&'static str> {
    let lengths: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Content-Length"))
        .map(|h| h.value.trim_ascii())
        .collect();
    let chunked = head.header("Transfer-Encoding").is_some();
    if chunked && !lengths.is_empty() {
        return Some("a request has Content-Length or Transfer-Encoding, not both");
    }
    if lengths
        .iter()
        .any(|l| l.is_empty() || !l.iter().all(u8::is_ascii_digit) || l.len() > 19)
    {
        return Some("Content-Length is not a number");
    }
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Some("two different Content-Length values");
    }
    None
}

/// True if the client asked to close after this request (`Connection: close`, or HTTP/1.0
/// without `keep-alive`).
fn wants_close(head: &RequestHead) -> bool {
    let has = |token: &str| {
        head.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("Connection"))
            .filter_map(|h| std::str::from_utf8(&h.value).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has("close") || (head.version == 0 && !has("keep-alive"))
}

/// One message through hyper's server: its response written, the connection handed back with
/// the bytes hyper read beyond the message (when it could).
async fn one_message<S>(exchanges: &Exchanges<'_>, io: Rewind<S>) -> Result<(S, Vec<u8>), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let done = Arc::new(Notify::new());
    let calls = AtomicUsize::new(0);
    let service = service_fn(|request| {
        let first = calls.fetch_add(1, Ordering::Relaxed) == 0;
        let done = Arc::clone(&done);
        let answer: Pin<Box<dyn Future<Output = _> + Send + '_>> = Box::pin(async move {
            if !first {
                // A request pipelined behind a chunked body, parsed by hyper before the
                // gateway could check its head: not answered; the connection closes and a
                // client retries it on a new one.
                return Err(io::Error::other("request pipelined behind a chunked body"));
            }
            let response = exchanges.exchange(request).await;
            Ok(response.map(|body| Signalled { body, done }))
        });
        answer
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(exchanges.pipeline.handshake_timeout)
        .max_headers(exchanges.pipeline.limits.max_headers);
    let mut connection = builder.serve_connection(TokioIo::new(io), service);
    let notified = done.notified();
    tokio::pin!(notified);
    let mut shutting = false;
    let result = std::future::poll_fn(|cx| {
        // Once the response is out, hyper stops after it instead of reading another head.
        if !shutting && notified.as_mut().poll(cx).is_ready() {
            Pin::new(&mut connection).graceful_shutdown();
            shutting = true;
        }
        connection.poll_without_shutdown(cx)
    })
    .await;
    if let Err(e) = result {
        tracing::debug!(peer = %exchanges.peer.addr, error = %e, "plain HTTP connection ended");
        return Err(
            if e.is_parse() || e.is_parse_status() || e.is_timeout() || e.is_user() {
                Error::HttpServed
            } else {
                Error::Io(io::Error::other(e))
            },
        );
    }
    let parts = connection.into_parts();
    let (rest, client) = parts.io.into_inner().into_parts();
    let mut read = parts.read_buf.to_vec();
    read.extend_from_slice(&rest);
    Ok((client, read))
}

/// A response body that says when it is done (dropped: all of it written, or abandoned).
struct Signalled {
    body: ResponseBody,
    done: Arc<Notify>,
}

impl Drop for Signalled {
    fn drop(&mut self) {
        self.done.notify_one();
    }
}

impl Body for Signalled {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
