//! Shared by the examples: an echo upstream, a proxy on a free port built with
//! `wsrelay::embed::accept_and_relay`, and a WebSocket client for the `--demo` runs.
#![allow(dead_code)]

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsrelay::relay::{FrameHook, RelayOptions};
use wsrelay::route::Route;
use wsrelay::upstream::Upstream;

/// A WebSocket client connection, as the demos use it.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Starts the built-in echo server as the upstream and a proxy in front of it; every accepted
/// connection gets a fresh hook from `make_hook`. Returns the proxy's address.
pub async fn start_proxy<H, F>(options: RelayOptions, make_hook: F) -> SocketAddr
where
    H: FrameHook + Unpin + Send + 'static,
    F: Fn() -> H + Send + 'static,
{
    let echo = wsrelay::echo::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .expect("echo server");
    let uri = format!("ws://{echo}/").parse().expect("uri");
    let mut route = Route::catch_all(Upstream::new(uri).expect("a ws:// upstream"));
    route.relay = options;
    let route = std::sync::Arc::new(route);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let (route, hook) = (route.clone(), make_hook());
            tokio::spawn(async move {
                match wsrelay::embed::accept_and_relay(stream, peer, &route, hook).await {
                    Ok(outcome) => println!("{peer}: {:?}", outcome.end),
                    Err(e) => println!("{peer}: {e}"),
                }
            });
        }
    });
    addr
}

/// Connects a client to `addr`.
pub async fn connect(addr: SocketAddr) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .expect("connect through the proxy");
    ws
}

/// Sends a text message.
pub async fn send_text(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

/// The next message, skipping pings and pongs.
pub async fn next(ws: &mut Client) -> Option<Message> {
    loop {
        match ws.next().await? {
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(m) => return Some(m),
            Err(_) => return None,
        }
    }
}

/// True when the example was asked to run its demo and exit.
pub fn demo_mode() -> bool {
    std::env::args().any(|a| a == "--demo")
}

/// Waits for Ctrl-C, for the examples run by hand.
pub async fn serve_forever(addr: SocketAddr) {
    println!("proxy on ws://{addr}/ (Ctrl-C to stop)");
    let _ = tokio::signal::ctrl_c().await;
}
