//! The connect stage over a pool: pick a backend, connect and upgrade, and on a failure that
//! is the backend's (no connection, TLS, no answer in time, 502/503/504) try another one, a
//! bounded number of times and never the same one twice. An upstream's own answer (401, 403,
//! 404 ...) is relayed, never retried; nothing is retried once the client has its 101.

use wsrelay_handshake::Limits;

use super::{Lease, Policy, Unavailable};
use crate::refusal::Refusal;
use crate::request::ClientRequest;
use crate::route::Route;
use crate::upstream::{self, UpstreamConnection};

/// An upstream past its 101, and which backend it is.
#[derive(Debug)]
pub struct Connected {
    /// The connection and what it agreed to.
    pub connection: UpstreamConnection,
    /// The backend's claim in its pool (open tunnels are counted while it lives); `None` for
    /// a route with one `upstream`.
    pub lease: Option<Lease>,
    /// The backend as logs name it.
    pub backend: String,
    /// A `Set-Cookie` value for the client's 101 (the pool's sticky cookie).
    pub set_cookie: Option<String>,
}

/// True for the failures another backend may not have: the backend's, not the request's.
pub fn retryable(refusal: &Refusal) -> bool {
    match refusal {
        Refusal::Connect(..)
        | Refusal::ConnectTimeout(..)
        | Refusal::UpstreamTls(..)
        | Refusal::UpgradeTimeout(_)
        | Refusal::UpstreamIo(_)
        | Refusal::UpstreamHandshake(_) => true,
        Refusal::UpstreamRefused { status, .. } => matches!(status, 502..=504),
        _ => false,
    }
}

/// Connects the upstream of `route` for `request`: its pool's backends as the pool's policy,
/// health and breakers allow, retrying on another backend; or its one `upstream`.
pub async fn connect(
    route: &Route,
    request: &ClientRequest,
    limits: &Limits,
) -> Result<Connected, Refusal> {
    let Some(pool) = route.pool.as_ref().filter(|_| route.websocket) else {
        let upstream = route.websocket_upstream().ok_or(Refusal::RouteDisabled)?;
        let connection = upstream::connect(route, request, limits).await?;
        return Ok(Connected {
            connection,
            lease: None,
            backend: upstream.uri.authority(),
            set_cookie: None,
        });
    };
    let key = match &pool.policy {
        Policy::Hash { key, .. } => key.hash(request),
        _ => None,
    };
    let sticky = pool.sticky_choice(request);
    let mut tried = Vec::with_capacity(pool.settings.retries + 1);
    let mut last: Option<Refusal> = None;
    for attempt in 0..=pool.settings.retries {
        let index = match (attempt, sticky) {
            (0, Some(i)) => i,
            _ => match pool.pick(key, &tried) {
                Ok(i) => i,
                Err(Unavailable::Saturated) if last.is_none() => {
                    return Err(Refusal::PoolSaturated(pool.name.clone()))
                }
                Err(_) => break,
            },
        };
        tried.push(index);
        let mut lease = pool.lease(index);
        let backend = &pool.backends[index];
        match upstream::connect_to(route, &backend.upstream, request, limits).await {
            Ok(connection) => {
                pool.record_success(index);
                lease.establish();
                let set_cookie = if sticky == Some(index) {
                    None
                } else {
                    pool.set_cookie(index, request.peer.secure)
                };
                return Ok(Connected {
                    connection,
                    lease: Some(lease),
                    backend: backend.name.clone(),
                    set_cookie,
                });
            }
            Err(refusal) if retryable(&refusal) => {
                pool.record_failure(index);
                tracing::info!(
                    peer = %request.peer.addr,
                    route = %route.name,
                    pool = %pool.name,
                    backend = %backend.name,
                    attempt = attempt + 1,
                    error = %refusal,
                    "backend failed before the 101"
                );
                last = Some(refusal);
            }
            Err(refusal) => {
                // The backend answered: it is alive, and its answer is the client's.
                pool.record_success(index);
                tracing::info!(pool = %pool.name, backend = %backend.name, "backend refused the upgrade");
                return Err(refusal);
            }
        }
    }
    Err(last.unwrap_or_else(|| Refusal::PoolSaturated(pool.name.clone())))
}
