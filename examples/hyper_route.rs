//! A hyper 1 web app that proxies one route, `/ws`, as WebSocket through the relay; every other
//! path is the app's own. hyper does the HTTP side (its upgrade mechanism hands over the
//! connection, which is `AsyncRead + AsyncWrite`); wsrelay validates the request, connects and
//! upgrades the upstream through the gateway's own pipeline stage, and relays.
//! In axum the same handler body works: take the request and call `hyper::upgrade::on` on it.
//!
//! `cargo run --example hyper_route` serves until Ctrl-C; `-- --demo` runs a client and exits.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wsrelay::handshake::{Header, Limits, RequestHead};
use wsrelay::relay::Relay;
use wsrelay::request::{ClientRequest, Peer};
use wsrelay::route::Route;
use wsrelay::upstream::Upstream;

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY)
}

/// hyper's parsed request as the head wsrelay's pipeline reads (names and values as sent).
fn head_of(req: &Request<Incoming>) -> RequestHead {
    RequestHead {
        method: req.method().as_str().to_owned(),
        target: req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        version: 1,
        headers: req
            .headers()
            .iter()
            .map(|(name, value)| Header {
                name: name.as_str().to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect(),
    }
}

/// The app: `/ws` is relayed over `route`, the rest answered here.
async fn app(
    mut req: Request<Incoming>,
    route: Arc<Route>,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/ws" {
        return Ok(plain(StatusCode::OK, "hello from the web app\n"));
    }
    // The same checks as the gateway's (RFC 6455 §4.2.1), with the same statuses.
    let request = match ClientRequest::new(head_of(&req), Peer::plain(peer)) {
        Ok(request) => request,
        Err(e) => return Ok(plain(status(e.status()), "not a valid WebSocket upgrade\n")),
    };
    // The upstream first: the client gets its 101 only if the upstream accepted.
    let up = match wsrelay::upstream::connect(&route, &request, &Limits::default()).await {
        Ok(up) => up,
        Err(refusal) => return Ok(plain(status(refusal.status()), "upstream refused\n")),
    };
    let mut options = route.relay.clone();
    options.allowed_rsv |= up.allowed_rsv;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let mut response = plain(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = request.websocket.accept();
    let chosen = [
        (SEC_WEBSOCKET_ACCEPT, Some(accept.as_str())),
        (SEC_WEBSOCKET_PROTOCOL, up.protocol.as_deref()),
        (SEC_WEBSOCKET_EXTENSIONS, up.extensions.as_deref()),
    ];
    for (name, value) in chosen {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let outcome = Relay::new(TokioIo::new(upgraded), up.stream, &options)
            .upstream_preread(&up.preread)
            .run()
            .await;
        println!("relay ended: {:?}", outcome.end);
    });
    Ok(response)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let echo = wsrelay::echo::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .expect("echo");
    let uri = format!("ws://{echo}/").parse().expect("uri");
    let route = Arc::new(Route::catch_all(
        Upstream::new(uri).expect("a ws:// upstream"),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let route = route.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| app(req, route.clone(), peer));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    if !support::demo_mode() {
        println!("web app on http://{addr}/, WebSocket route ws://{addr}/ws");
        let _ = tokio::signal::ctrl_c().await;
        return;
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("upgrade through hyper");
    support::send_text(&mut ws, "through hyper").await;
    let echoed = support::next(&mut ws).await.expect("echo");
    println!("client got: {echoed}");
    assert_eq!(echoed.to_text().unwrap(), "through hyper");
    ws.close(None).await.unwrap();
}
