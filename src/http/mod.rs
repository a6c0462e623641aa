//! Plain HTTP beside WebSocket: a route with `http = true` passes its non-upgrade requests
//! (Socket.IO's long-polling, SignalR's negotiate, health checks) to its backend over HTTP/1.1.
//!
//! Once a connection's first head shows a plain request for such a route, the connection is
//! served as HTTP/1.1 (`connection`): each head is read and checked by the gateway's own
//! parser, then hyper's HTTP/1 server takes that one message (its bytes put back in front of
//! the stream, and no more of them than its length, `rewind`) and frames its body: one parser,
//! hyper's, decides where a body ends. Every request goes through the pipeline's stages
//! (`exchange`: canonical form, route, Origin, admission, auth, backend choice with the pool's
//! affinity) and is written anew for the upstream by hyper's pooled keep-alive client
//! (`connector` opens its connections with the route's TLS and connect timeout). Bodies stream
//! both ways under a size limit and idle timeouts (`body`); each exchange writes one
//! access-log line and is counted in the metrics (`log`).
//!
//! What is refused (400, connection closed, nothing sent upstream): `Content-Length` with
//! `Transfer-Encoding`, two different lengths, folded header lines, a bad chunk size at the
//! start of a body; a body over the limit is 413. A WebSocket upgrade arriving on the
//! connection leaves it for the pipeline's upgrade path. An upstream's 1xx/101 to a plain
//! request becomes 502: nothing here ever turns into a tunnel.

mod body;
mod connection;
mod connector;
mod exchange;
mod log;
mod rewind;

use std::time::Duration;

use http_body_util::Either;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::upstream::Upstream;

pub(crate) use connection::{serve, wants, Handoff};

/// Idle upstream connections are kept this long for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A route's plain-HTTP limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// Largest request body passed upstream (413 beyond); `None`: no limit.
    pub max_body: Option<u64>,
    /// Time the upstream has to send its response head once the request is sent (504 after).
    pub response_timeout: Duration,
    /// Time a body, either way, may go without a byte before the exchange is cut.
    pub idle_timeout: Duration,
    /// Time to connect to the upstream, TLS included (504 after it): the route's.
    pub connect_timeout: Duration,
}

/// The HTTP side of a route: its settings and one pooled keep-alive client per backend.
pub struct HttpRoute {
    /// Limits and timeouts.
    pub settings: HttpSettings,
    /// One per backend, in the pool's order (or the one upstream).
    targets: Vec<Target>,
    /// The targets are the route's pool's backends: pick them as the pool picks.
    uses_pool: bool,
}

/// One upstream and its client (whose pool keeps idle connections to it).
struct Target {
    upstream: Upstream,
    client: Client<connector::Connector, body::RequestBody>,
}

impl std::fmt::Debug for HttpRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRoute")
            .field("settings", &self.settings)
            .field(
                "targets",
                &self
                    .targets
                    .iter()
                    .map(|t| t.upstream.uri.authority())
                    .collect::<Vec<_>>(),
            )
            .field("uses_pool", &self.uses_pool)
            .finish()
    }
}

impl HttpRoute {
    /// The HTTP side over `upstreams` (a pool's backends in order when `uses_pool`).
    pub fn new(settings: HttpSettings, upstreams: Vec<Upstream>, uses_pool: bool) -> HttpRoute {
        let targets = upstreams
            .into_iter()
            .map(|upstream| {
                let connector =
                    connector::Connector::new(upstream.clone(), settings.connect_timeout);
                let client = Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                    .build(connector);
                Target { upstream, client }
            })
            .collect();
        HttpRoute {
            settings,
            targets,
            uses_pool,
        }
    }
}

/// The body of a response to the client: the upstream's, streamed, or one of ours.
type ResponseBody = Either<body::Tracked, http_body_util::Full<bytes::Bytes>>;
