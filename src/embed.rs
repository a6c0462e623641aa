//! The relay inside someone else's tokio server: one call runs a connection through the same
//! [`pipeline`](crate::pipeline) as the gateway's workers, then relays.
//!
//! [`accept_and_relay`] takes a connection (a `TcpStream` from your own listener, a TLS stream,
//! anything `AsyncRead + AsyncWrite`) and a [`Route`]: it answers the upgrade request, connects
//! the route's upstream (`ws://` or `wss://`, with the route's timeouts, header rules and
//! extension negotiation) and relays until the close, returning the [`RelayOutcome`]. A refusal
//! (the request's own 4xx, an upstream's 502/504, or the upstream's refusal relayed as it came)
//! is answered to the client and returned as [`Error::Refused`].
//!
//! When an HTTP framework already did the server side of the handshake (hyper's or axum's
//! upgrade), build a [`ClientRequest`](crate::request::ClientRequest) from its request and call
//! [`upstream::connect`](crate::upstream::connect), then [`Relay`]: see
//! `examples/hyper_route.rs`.
//!
//! ```no_run
//! use wsrelay::embed::accept_and_relay;
//! use wsrelay::relay::NoHook;
//! use wsrelay::route::Route;
//! use wsrelay::upstream::Upstream;
//!
//! # async fn serve() -> Result<(), wsrelay::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let uri = "ws://127.0.0.1:9000/".parse().map_err(std::io::Error::other)?;
//! let route = std::sync::Arc::new(Route::catch_all(Upstream::new(uri)?));
//! loop {
//!     let (stream, peer) = listener.accept().await?;
//!     let route = route.clone();
//!     tokio::spawn(async move {
//!         let outcome = accept_and_relay(stream, peer, &route, NoHook).await;
//!         println!("{outcome:?}");
//!     });
//! }
//! # }
//! ```

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use wsrelay_codec::close::code;
use wsrelay_handshake::Limits;
use wsrelay_relay::{FrameHook, Relay, RelayOutcome};

use crate::config::{defaults, EdgePolicy};
use crate::pipeline::Pipeline;
use crate::request::Peer;
use crate::route::Route;
use crate::Error;

/// Answers the WebSocket upgrade on `client` (who connected from `peer`), connects the upstream
/// of `route`, then relays with the route's relay options and `hook` until the connection ends.
///
/// The client gets its 101 only after the upstream accepted. The request must match `route`
/// (its host and path, in canonical form), as it would in the gateway; the default handshake
/// timeout, header limits and edge rules apply, and `peer` is taken as a plain-TCP client that
/// is no trusted proxy. For TLS, SNI or trusted proxies, run a [`Pipeline`] of your own with
/// a [`Peer`] that says so.
pub async fn accept_and_relay<S, H>(
    client: S,
    peer: SocketAddr,
    route: &Route,
    hook: H,
) -> Result<RelayOutcome, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FrameHook + Unpin,
{
    let (limits, edge) = (Limits::default(), EdgePolicy::default());
    let pipeline = Pipeline {
        routes: std::slice::from_ref(route),
        limits: &limits,
        handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
        edge: &edge,
        admission: None,
        metrics: None,
        access_log: Default::default(),
    };
    let ready = pipeline
        .handshake(client, Peer::plain(peer), Instant::now())
        .await?;
    Ok(Relay::new(ready.client, ready.upstream, &ready.options)
        .client_preread(&ready.client_preread)
        .upstream_preread(&ready.upstream_preread)
        .close_at(ready.close_at, code::POLICY_VIOLATION, crate::auth::EXPIRED)
        .with_hook(hook)
        .run()
        .await)
}
