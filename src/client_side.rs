//! The client's side of a handshake, per transport: how an accepted upgrade is answered (an
//! HTTP/1.1 101, or an HTTP/2 200 on the CONNECT stream) and how a refusal is answered, logged
//! and counted. The pipeline's stages run the same way over either; only this differs.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use wsrelay_handshake::write_switching_protocols;

use crate::access_log;
use crate::metrics;
use crate::refusal::Refusal;
use crate::request::ClientRequest;
use crate::upstream::UpstreamConnection;
use crate::Error;

/// The client's end of a handshake, as the shared stages see it: how the upgrade is accepted
/// and how a refusal is answered. HTTP/1.1 writes a 101 or the refusal's response bytes
/// ([`Http1`]); HTTP/2 answers the CONNECT stream with a 200 or the refusal's status
/// (`crate::http2`).
pub(crate) trait ClientSide {
    /// Accepts the upgrade, with the subprotocol and extensions the upstream chose and the
    /// pool's sticky cookie.
    fn accept(
        &mut self,
        request: &ClientRequest,
        upstream: &UpstreamConnection,
        set_cookie: Option<&str>,
    ) -> impl Future<Output = io::Result<()>>;

    /// Answers `refusal` (its status, headers and short body) and ends the client's request.
    fn refuse(&mut self, refusal: &Refusal) -> impl Future<Output = ()>;

    /// The status `refusal` has on this transport, for logs and metrics.
    fn status(&self, refusal: &Refusal) -> u16 {
        refusal.status()
    }
}

/// An HTTP/1.1 client connection as the client's side of its one handshake.
pub(crate) struct Http1<'s, S>(pub(crate) &'s mut S);

impl<S: AsyncWrite + Unpin> ClientSide for Http1<'_, S> {
    async fn accept(
        &mut self,
        request: &ClientRequest,
        upstream: &UpstreamConnection,
        set_cookie: Option<&str>,
    ) -> io::Result<()> {
        answer(self.0, request, upstream, set_cookie).await
    }

    async fn refuse(&mut self, refusal: &Refusal) {
        let mut out = Vec::new();
        refusal.write_response(&mut out);
        let _ = self.0.write_all(&out).await;
        let _ = self.0.shutdown().await;
    }
}

/// Writes the client's 101: its key's accept, and the subprotocol and extensions the upstream
/// chose (pass-through negotiation).
async fn answer<S: AsyncWrite + Unpin>(
    client: &mut S,
    request: &ClientRequest,
    upstream: &UpstreamConnection,
    set_cookie: Option<&str>,
) -> io::Result<()> {
    let mut response = Vec::new();
    let cookie = set_cookie.map(|c| ("Set-Cookie", c));
    write_switching_protocols(
        &mut response,
        &request.websocket.accept(),
        upstream.protocol.as_deref(),
        upstream.extensions.as_deref(),
        cookie.as_slice(),
    );
    client.write_all(&response).await
}

/// Answers a refusal (its one response), logs it, closes the client's side, and returns it.
pub(crate) async fn refuse<C: ClientSide>(
    client: &mut C,
    peer: SocketAddr,
    route: &str,
    target: &str,
    refusal: Refusal,
) -> Error {
    let status = client.status(&refusal);
    metrics::count_refusal(route, status);
    // Query values are left out (tokens travel there); a refused request's most of all.
    let target = &*access_log::loggable_target(target, false);
    match &refusal {
        Refusal::UpstreamRefused { .. } => {
            tracing::info!(%peer, route, target, status, "upstream refused the upgrade; relayed")
        }
        _ => {
            tracing::info!(%peer, route, target, status, reason = %refusal, "handshake refused")
        }
    }
    client.refuse(&refusal).await;
    Error::Refused(refusal)
}
