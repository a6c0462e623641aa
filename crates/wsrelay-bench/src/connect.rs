//! Opening the load tool's WebSockets: over a TCP connection each (an HTTP/1.1 upgrade) or as
//! streams of one HTTP/2 connection (RFC 8441 extended CONNECT), each within a time limit.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wsrelay::handshake::{Limits, UpgradeRequest, UpstreamResponse, WsUri};
use wsrelay::head::{read_head, HeadError};

/// Longest wait for one connection (or HTTP/2 stream) to open: a system that neither accepts
/// nor refuses (a full stream limit, a stalled handshake) fails it instead of holding the run.
pub(crate) const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// `opening`, failed if not done within `limit`.
pub(crate) async fn within<T>(
    limit: Duration,
    opening: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, opening)
        .await
        .unwrap_or_else(|_| Err(format!("not open within {limit:?}")))
}

/// Opens a connection and completes the WebSocket handshake; returns bytes read past it.
pub async fn connect(addr: SocketAddr, url: &WsUri) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let request = UpgradeRequest::new(url).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    request.encode(&mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let parse = |b: &[u8]| request.parse_response(b, &Limits::default());
    match read_head(&mut stream, &mut buf, parse).await {
        Ok((UpstreamResponse::Accepted { .. }, consumed)) => Ok((stream, buf.split_off(consumed))),
        Ok((UpstreamResponse::Refused { status, .. }, _)) => {
            Err(format!("upgrade refused with {status}"))
        }
        Err(HeadError::Closed) => Err("closed during the handshake".into()),
        Err(HeadError::Io(e)) => Err(e.to_string()),
        Err(HeadError::Parse(e)) => Err(e.to_string()),
    }
}

/// A WebSocket the load runs on: its own TCP connection (with bytes read past the 101), or a
/// stream of the run's one HTTP/2 connection.
pub(crate) enum Opened {
    Tcp(TcpStream, Vec<u8>),
    Http2(TokioIo<Upgraded>),
}

/// One HTTP/2 connection with prior knowledge to `addr`; its driver runs as a task.
pub(crate) async fn http2_client(addr: SocketAddr) -> Result<Http2Sender, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The request side of the run's HTTP/2 connection.
pub(crate) type Http2Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// Opens a WebSocket as an extended CONNECT stream (RFC 8441) on `client`.
pub(crate) async fn connect_http2(
    client: &mut Http2Sender,
    url: &WsUri,
) -> Result<TokioIo<Upgraded>, String> {
    // The server's SETTINGS (which enable extended CONNECT) may trail the handshake: a few
    // tries, 20 ms apart, before the first stream.
    let mut tries = 0;
    loop {
        let mut request = hyper::Request::builder()
            .method(hyper::Method::CONNECT)
            .uri(format!("http://{}{}", url.authority(), url.path_and_query))
            .header("sec-websocket-version", "13")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        request
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        client.ready().await.map_err(|e| e.to_string())?;
        match client.send_request(request).await {
            Ok(response) if response.status() == hyper::StatusCode::OK => {
                let upgraded = hyper::upgrade::on(response)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(TokioIo::new(upgraded));
            }
            Ok(response) => return Err(format!("CONNECT refused with {}", response.status())),
            Err(e) if tries < 10 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("CONNECT failed: {e}")),
        }
    }
}
