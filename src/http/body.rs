//! The bodies of a proxied exchange, streamed frame by frame (hyper's back-pressure: a frame
//! is read from one side only when the other side took the last one): the client's request
//! body under the route's size limit and idle timeout, and the upstream's response body under
//! the idle timeout, counted for the access log.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::log::Exchange;

/// Why a body stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The request body went over the route's limit (413).
    TooLarge,
    /// The client's body was malformed (a bad chunk) or cut short (400).
    Malformed,
    /// No byte for the idle timeout (408 for a request body).
    Idle,
}

impl Fault {
    fn code(self) -> u8 {
        match self {
            Fault::TooLarge => 1,
            Fault::Malformed => 2,
            Fault::Idle => 3,
        }
    }

    fn from_code(code: u8) -> Option<Fault> {
        match code {
            1 => Some(Fault::TooLarge),
            2 => Some(Fault::Malformed),
            3 => Some(Fault::Idle),
            _ => None,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::TooLarge => "the request body is over the route's limit",
            Fault::Malformed => "the body is malformed or was cut short",
            Fault::Idle => "the body sent nothing for the idle timeout",
        })
    }
}

impl std::error::Error for Fault {}

/// What the request body did, shared between the body (in the client's connection task) and
/// the exchange that reads it after the upstream answered or failed.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Body bytes passed upstream.
    pub(crate) bytes: AtomicU64,
    fault: AtomicU8,
}

impl Tally {
    /// Why the request body stopped early, if it did.
    pub(crate) fn fault(&self) -> Option<Fault> {
        Fault::from_code(self.fault.load(Ordering::Acquire))
    }

    fn set(&self, fault: Fault) {
        self.fault.store(fault.code(), Ordering::Release);
    }
}

/// The client's request body on its way upstream.
pub(crate) struct RequestBody {
    inner: Incoming,
    /// The first frame, read before the upstream was contacted.
    first: Option<Frame<Bytes>>,
    seen: u64,
    limit: Option<u64>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    tally: Arc<Tally>,
}

impl RequestBody {
    /// Reads the body's first frame (for a body that has one) before anything is sent upstream,
    /// so that a malformed start (a bad chunk size), a body over the limit at once, or a client
    /// that sends nothing is refused without the upstream seeing the request. Reading it is
    /// what makes hyper answer `Expect: 100-continue`.
    pub(crate) async fn start(
        mut inner: Incoming,
        limit: Option<u64>,
        idle: Duration,
    ) -> Result<RequestBody, Fault> {
        let tally = Arc::new(Tally::default());
        let mut first = None;
        let mut seen = 0;
        if !inner.is_end_stream() {
            match tokio::time::timeout(idle, inner.frame()).await {
                Err(_) => return Err(Fault::Idle),
                Ok(Some(Err(_))) => return Err(Fault::Malformed),
                Ok(None) => {}
                Ok(Some(Ok(frame))) => {
                    seen = frame.data_ref().map_or(0, |d| d.len() as u64);
                    if limit.is_some_and(|max| seen > max) {
                        return Err(Fault::TooLarge);
                    }
                    first = Some(frame);
                }
            }
        }
        tally.bytes.store(seen, Ordering::Relaxed);
        Ok(RequestBody {
            inner,
            first,
            seen,
            limit,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            tally,
        })
    }

    /// The shared record of this body.
    pub(crate) fn tally(&self) -> Arc<Tally> {
        Arc::clone(&self.tally)
    }

    fn fail(&self, fault: Fault) -> Poll<Option<Result<Frame<Bytes>, Fault>>> {
        self.tally.set(fault);
        Poll::Ready(Some(Err(fault)))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Fault;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Fault>>> {
        let this = self.get_mut();
        if let Some(frame) = this.first.take() {
            this.timer.as_mut().reset(Instant::now() + this.idle);
            return Poll::Ready(Some(Ok(frame)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                this.seen += n;
                if this.limit.is_some_and(|max| this.seen > max) {
                    return this.fail(Fault::TooLarge);
                }
                this.tally.bytes.fetch_add(n, Ordering::Relaxed);
                this.timer.as_mut().reset(Instant::now() + this.idle);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => this.fail(Fault::Malformed),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => this.fail(Fault::Idle),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first = self
            .first
            .as_ref()
            .and_then(Frame::data_ref)
            .map_or(0, |d| d.len() as u64);
        let inner = self.inner.size_hint();
        match inner.exact() {
            Some(n) => SizeHint::with_exact(n + first),
            None => {
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + first);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + first);
                }
                hint
            }
        }
    }
}

/// The upstream's response body on its way to the client; it writes the exchange's access-log
/// line when it ends (or is dropped, when the client left first).
pub(crate) struct Tracked {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    sent: u64,
    complete: bool,
    log: Exchange,
}

impl Tracked {
    /// `inner` under the idle timeout, logged as `log` when it ends.
    pub(crate) fn new(inner: Incoming, idle: Duration, log: Exchange) -> Tracked {
        Tracked {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            sent: 0,
            complete: false,
            log,
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sent += frame.data_ref().map_or(0, |d| d.len() as u64);
                this.timer.as_mut().reset(Instant::now() + this.idle);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.complete = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Fault::Idle)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let complete = self.complete || self.inner.is_end_stream();
        self.log.finished(self.sent, complete);
    }
}
