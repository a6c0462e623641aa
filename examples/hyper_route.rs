//! A hyper 1 web app that proxies one route, `/ws`, as WebSocket through the relay; every other
//! path is the app's own. hyper does the HTTP side (its upgrade mechanism hands over the
//! connection, which is `AsyncRead + AsyncWrite`), wsrelay connects the upstream and relays.
//! In axum the same handler body works: take the request and call `hyper::upgrade::on` on it.
//!
//! `cargo run --example hyper_route` serves until Ctrl-C; `-- --demo` runs a client and exits.

mod support;

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wsrelay::embed::connect_upstream;
use wsrelay::handshake::{accept_key, WsUri};
use wsrelay::relay::{Relay, RelayOptions};

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// The app: `/ws` is relayed to `upstream`, the rest answered here.
async fn app(
    mut req: Request<Incoming>,
    upstream: WsUri,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/ws" {
        return Ok(plain(StatusCode::OK, "hello from the web app\n"));
    }
    let is_upgrade = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).filter(|_| is_upgrade) else {
        return Ok(plain(StatusCode::UPGRADE_REQUIRED, "WebSocket only\n"));
    };
    let accept = accept_key(key.as_bytes());
    // The upstream first: the client gets its 101 only if the upstream accepted.
    let up = match connect_upstream(&upstream, "/", &[]).await {
        Ok(up) => up,
        Err(_) => return Ok(plain(StatusCode::BAD_GATEWAY, "upstream unavailable\n")),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let outcome = Relay::new(TokioIo::new(upgraded), up.stream, &RelayOptions::default())
            .upstream_preread(&up.preread)
            .run()
            .await;
        println!("relay ended: {:?}", outcome.end);
    });
    let mut response = plain(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    Ok(response)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let echo = wsrelay::echo::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .expect("echo");
    let upstream: WsUri = format!("ws://{echo}/").parse().expect("uri");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| app(req, upstream.clone()));
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
