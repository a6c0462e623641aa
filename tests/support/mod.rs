//! Shared helpers for end-to-end tests: a gateway on a real socket and a raw-bytes WebSocket client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsrelay::codec::{apply_mask, write_frame, FrameHeader, OpCode, Parse, ParseConfig, Role};
use wsrelay::gateway::{Gateway, GatewayConfig};
use wsrelay::handshake::{Limits, Parsed, UpgradeRequest, UpstreamResponse, WsUri};
use wsrelay::route::Upstream;

/// The masking key the raw client uses.
pub const KEY: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];

/// A gateway running on a loopback port until dropped or stopped.
pub struct RunningGateway {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl RunningGateway {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Sends the shutdown signal and waits for the gateway to exit.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("gateway exits in time")
            .expect("gateway task")
            .expect("gateway result");
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts a gateway in front of `upstream`, letting `tune` adjust the config.
pub async fn gateway_with(upstream: &str, tune: impl FnOnce(&mut GatewayConfig)) -> RunningGateway {
    let upstream = Upstream::new(WsUri::parse(upstream).expect("upstream uri")).expect("upstream");
    let mut config = GatewayConfig::new(loopback(), upstream);
    config.routes[0].relay.close_timeout = Duration::from_secs(3);
    tune(&mut config);
    let gateway = Gateway::bind(config).await.expect("bind gateway");
    let addr = gateway.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = rx.await;
    }));
    RunningGateway {
        addr,
        stop: Some(tx),
        task,
    }
}

/// Starts a gateway in front of a fresh built-in echo server.
pub async fn gateway_to_echo() -> RunningGateway {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    gateway_with(&format!("ws://{echo}/"), |_| {}).await
}

/// Encodes one frame; masked with [`KEY`] when `masked`.
pub fn frame(opcode: OpCode, fin: bool, payload: &[u8], masked: bool) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        mask: masked.then_some(KEY),
        ..FrameHeader::new(opcode, 0)
    };
    let mut out = Vec::new();
    write_frame(&mut out, header, payload);
    out
}

pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    [code.to_be_bytes().as_slice(), reason.as_bytes()].concat()
}

/// A WebSocket peer that speaks raw bytes, so tests can send anything, valid or not.
pub struct RawPeer {
    pub stream: TcpStream,
    pub role: Role,
    buf: Vec<u8>,
}

/// The HTTP response a raw client got to its upgrade.
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawPeer {
    /// Connects as a client and completes the upgrade; `extra` bytes are sent right behind the request.
    pub async fn connect(
        url: &str,
        protocols: &[&str],
        extra: &[u8],
    ) -> Result<RawPeer, HttpAnswer> {
        let uri = WsUri::parse(url).unwrap();
        let mut stream = TcpStream::connect((uri.host.as_str(), uri.port))
            .await
            .unwrap();
        let protocols: Vec<String> = protocols.iter().map(|p| p.to_string()).collect();
        let request = UpgradeRequest::new(&uri).with_protocols(&protocols);
        let mut out = Vec::new();
        request.encode(&mut out);
        out.extend_from_slice(extra);
        stream.write_all(&out).await.unwrap();
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "connection closed during the handshake: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
            match request
                .parse_response(&buf, &Limits::default())
                .expect("valid response")
            {
                Parsed::Partial => continue,
                Parsed::Complete {
                    value: UpstreamResponse::Accepted { .. },
                    consumed,
                } => {
                    buf.drain(..consumed);
                    return Ok(RawPeer {
                        stream,
                        role: Role::Client,
                        buf,
                    });
                }
                Parsed::Complete {
                    value: UpstreamResponse::Refused { status, .. },
                    consumed,
                } => {
                    let head = String::from_utf8_lossy(&buf[..consumed]).into_owned();
                    let mut body = buf[consumed..].to_vec();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut body))
                            .await;
                    return Err(HttpAnswer { status, head, body });
                }
            }
        }
    }

    /// Wraps an accepted upstream-side connection (after its handshake).
    pub fn server(stream: TcpStream, leftover: Vec<u8>) -> RawPeer {
        RawPeer {
            stream,
            role: Role::Server,
            buf: leftover,
        }
    }

    /// Whether frames this peer sends are masked.
    fn masks(&self) -> bool {
        self.role == Role::Client
    }

    pub async fn send(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        let wire = frame(opcode, fin, payload, self.masks());
        self.stream.write_all(&wire).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads the next frame (header and unmasked payload); `None` on EOF or timeout.
    pub async fn recv(&mut self) -> Option<(FrameHeader, Vec<u8>)> {
        tokio::time::timeout(Duration::from_secs(20), self.recv_inner())
            .await
            .ok()?
    }

    async fn recv_inner(&mut self) -> Option<(FrameHeader, Vec<u8>)> {
        loop {
            match FrameHeader::parse(&self.buf, ParseConfig::new(self.role)) {
                Ok(Parse::Complete(h, n)) if self.buf.len() as u64 >= n as u64 + h.payload_len => {
                    let end = n + h.payload_len as usize;
                    let mut payload = self.buf[n..end].to_vec();
                    self.buf.drain(..end);
                    if let Some(key) = h.mask {
                        apply_mask(&mut payload, key, 0);
                    }
                    return Some((h, payload));
                }
                Ok(_) => {}
                Err(e) => panic!("peer received an invalid frame: {e}"),
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Expects a close frame; returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        let (h, p) = self.recv().await.expect("a close frame, got EOF");
        assert_eq!(
            h.opcode,
            OpCode::Close,
            "expected close, got {h:?} {:?}",
            String::from_utf8_lossy(&p)
        );
        (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]))
    }

    /// Expects the connection to end (EOF) within a few seconds, with no more frames.
    pub async fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "connection still open");
        assert!(
            self.buf.is_empty() && rest.is_empty(),
            "unexpected bytes: {:?} {:?}",
            self.buf,
            rest
        );
    }
}

/// A tiny upstream that accepts one connection with our handshake crate and hands it to the test.
pub async fn raw_upstream() -> (SocketAddr, tokio::sync::mpsc::Receiver<RawPeer>) {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let parsed = loop {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                match wsrelay::handshake::parse_upgrade_request(&buf, &Limits::default()) {
                    Ok(Parsed::Complete { value, consumed }) => break Some((value, consumed)),
                    Ok(Parsed::Partial) => continue,
                    Err(e) => panic!("gateway sent an invalid upgrade: {e}"),
                }
            };
            let Some(((_, request), consumed)) = parsed else {
                continue;
            };
            let mut out = Vec::new();
            let protocol = request.protocols.first().map(String::as_str);
            wsrelay::handshake::write_switching_protocols(
                &mut out,
                &request.accept(),
                protocol,
                None,
                &[],
            );
            stream.write_all(&out).await.unwrap();
            let _ = tx
                .send(RawPeer::server(stream, buf.split_off(consumed)))
                .await;
        }
    });
    (addr, rx)
}
