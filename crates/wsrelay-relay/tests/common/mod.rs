//! Peers for relay tests over in-memory pipes: frame builders and readers.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use wsrelay_codec::{apply_mask, write_frame, FrameHeader, OpCode, Parse, ParseConfig, Role};
use wsrelay_relay::{relay, Relay, RelayOptions, RelayOutcome};

pub const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// Encodes a frame; masked when `mask` is set (as a client sends).
pub fn frame(opcode: OpCode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    let header = FrameHeader {
        fin,
        mask,
        ..FrameHeader::new(opcode, 0)
    };
    write_frame(&mut out, header, payload);
    out
}

/// A whole frame as a browser sends it: masked with a fresh random key, which the relay
/// forwards unchanged (`Remask::Auto`).
pub fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    frame(opcode, true, payload, Some(random_key()))
}

/// A random masking key, as a browser picks one per frame.
pub fn random_key() -> [u8; 4] {
    wsrelay_codec::random::masking_key().expect("random key")
}

pub fn server_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    frame(opcode, true, payload, None)
}

pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// Reads one frame; returns the header and the unmasked payload.
pub async fn read_frame(stream: &mut DuplexStream, role: Role) -> Option<(FrameHeader, Vec<u8>)> {
    let mut buf = Vec::new();
    let (header, len) = loop {
        match FrameHeader::parse(&buf, ParseConfig::new(role)) {
            Ok(Parse::Complete(h, n)) => break (h, n),
            Ok(Parse::Incomplete(n)) => {
                let mut more = vec![0u8; n];
                if stream.read_exact(&mut more).await.is_err() {
                    return None;
                }
                buf.extend_from_slice(&more);
            }
            Err(e) => panic!("relay sent an invalid frame: {e}"),
        }
    };
    assert_eq!(len, buf.len());
    let mut payload = vec![0u8; header.payload_len as usize];
    stream.read_exact(&mut payload).await.ok()?;
    if let Some(key) = header.mask {
        apply_mask(&mut payload, key, 0);
    }
    Some((header, payload))
}

/// Reads a frame and expects a close with `code`.
pub async fn expect_close(stream: &mut DuplexStream, role: Role, code: u16) {
    let (h, payload) = read_frame(stream, role).await.expect("a close frame");
    assert_eq!(h.opcode, OpCode::Close, "expected close, got {h:?}");
    assert_eq!(
        u16::from_be_bytes([payload[0], payload[1]]),
        code,
        "reason: {}",
        String::from_utf8_lossy(&payload[2..])
    );
}

pub async fn expect_eof(stream: &mut DuplexStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(_))), "stream not closed: {read:?}");
    assert!(rest.is_empty(), "unexpected bytes after close: {rest:?}");
}

pub struct Setup {
    pub client: DuplexStream,
    pub upstream: DuplexStream,
    pub relay: JoinHandle<RelayOutcome>,
}

pub fn start(options: RelayOptions) -> Setup {
    let (client, client_side) = duplex(64 * 1024);
    let (upstream, upstream_side) = duplex(64 * 1024);
    let relay = tokio::spawn(async move { relay(client_side, upstream_side, &options).await });
    Setup {
        client,
        upstream,
        relay,
    }
}

/// Like [`start`], with a shutdown signal fired by sending on the returned channel.
pub fn start_with_shutdown(options: RelayOptions) -> (Setup, tokio::sync::oneshot::Sender<()>) {
    let (client, client_side) = duplex(256 * 1024);
    let (upstream, upstream_side) = duplex(256 * 1024);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(async move {
        Relay::new(client_side, upstream_side, &options)
            .with_shutdown(async move {
                let _ = rx.await;
            })
            .run()
            .await
    });
    let setup = Setup {
        client,
        upstream,
        relay,
    };
    (setup, tx)
}

impl Setup {
    /// A clean close initiated by the client; returns the outcome.
    pub async fn close_from_client(mut self, code: u16) -> RelayOutcome {
        let payload = close_payload(code, "bye");
        self.client
            .write_all(&client_frame(OpCode::Close, &payload))
            .await
            .unwrap();
        let (h, p) = read_frame(&mut self.upstream, Role::Server).await.unwrap();
        assert_eq!(
            (h.opcode, p.as_slice()),
            (OpCode::Close, payload.as_slice())
        );
        self.upstream
            .write_all(&server_frame(OpCode::Close, &payload))
            .await
            .unwrap();
        expect_close(&mut self.client, Role::Client, code).await;
        drop(self.client);
        drop(self.upstream);
        self.relay.await.unwrap()
    }
}

/// Like [`start`], with a frame hook.
pub fn start_hooked<H>(options: RelayOptions, hook: H) -> Setup
where
    H: wsrelay_relay::FrameHook + Unpin + Send + 'static,
{
    let (client, client_side) = duplex(1 << 20);
    let (upstream, upstream_side) = duplex(1 << 20);
    let relay = tokio::spawn(async move {
        Relay::new(client_side, upstream_side, &options)
            .with_hook(hook)
            .run()
            .await
    });
    Setup {
        client,
        upstream,
        relay,
    }
}

/// Writes `wire` from a side's stream while the other reads one frame (so large frames do not
/// stall on the pipes), returning that frame.
pub async fn send_and_read(
    from: &mut DuplexStream,
    to: &mut DuplexStream,
    to_role: Role,
    wire: &[u8],
) -> (FrameHeader, Vec<u8>) {
    let (w, r) = tokio::join!(from.write_all(wire), read_frame(to, to_role));
    w.unwrap();
    r.expect("a frame")
}
