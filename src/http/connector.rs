//! How the HTTP client reaches a backend: the gateway's own TCP + TLS opening (the route's
//! `upstream_tls`, its connect timeout), so HTTP and WebSocket reach a backend the same way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;

use crate::refusal::Refusal;
use crate::stream::Stream;
use crate::upstream::{open_with, Upstream};

/// Opens connections to one backend, whatever URI the client asks for (its own, always).
#[derive(Clone)]
pub(crate) struct Connector {
    upstream: Upstream,
    timeout: Duration,
}

impl Connector {
    /// Connections to `upstream` within `timeout`.
    pub(crate) fn new(upstream: Upstream, timeout: Duration) -> Connector {
        Connector { upstream, timeout }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = Refusal;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Stream>, Refusal>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (upstream, timeout) = (self.upstream.clone(), self.timeout);
        Box::pin(async move { open_with(&upstream, timeout).await.map(TokioIo::new) })
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}
