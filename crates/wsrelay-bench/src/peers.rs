//! The systems wsrelay is measured against, as this binary's subcommands.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

/// A raw TCP proxy: bytes both ways with 64 KiB buffers per direction, nothing parsed.
/// The ceiling any WebSocket-aware proxy is compared with.
pub async fn raw_proxy(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (mut client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional_with_sizes(
                &mut client,
                &mut server,
                64 * 1024,
                64 * 1024,
            )
            .await;
        });
    }
}

/// A relay written the way most Rust users would write one with tokio-tungstenite: accept the
/// client, connect the upstream, then read a whole message and send it on, each way.
pub async fn tungstenite_relay(listen: SocketAddr, upstream: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let Ok(client) = tokio_tungstenite::accept_async(client).await else {
                return;
            };
            let Ok((server, _)) = tokio_tungstenite::connect_async(upstream).await else {
                return;
            };
            let (mut client_tx, mut client_rx) = client.split();
            let (mut server_tx, mut server_rx) = server.split();
            let up = async {
                while let Some(Ok(msg)) = client_rx.next().await {
                    if server_tx.send(msg).await.is_err() {
                        break;
                    }
                }
            };
            let down = async {
                while let Some(Ok(msg)) = server_rx.next().await {
                    if client_tx.send(msg).await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! {
                () = up => {},
                () = down => {},
            }
        });
    }
}
