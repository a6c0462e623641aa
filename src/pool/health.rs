//! Active health checks: each backend of a pool probed every `interval` (plus jitter) by a TCP
//! connect, an HTTP GET expecting 2xx, or a full WebSocket upgrade closed with 1000. `fall`
//! failures in a row mark it down, `rise` successes in a row up again. A backend that accepts
//! TCP but never answers the upgrade fails by the check's timeout.
//!
//! Checks run on fixed starts (`interval` apart), each cut at `min(timeout, interval)`, so a
//! hung backend is marked down within `interval × fall`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use wsrelay_codec::{write_frame, FrameHeader, OpCode, Parse, ParseConfig, Role};
use wsrelay_handshake::{Limits, UpgradeRequest, UpstreamResponse};

use super::{balance, Pool};
use crate::head::read_head;
use crate::stream::Stream;
use crate::upstream::{self, Upstream};

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthKind {
    /// A TCP connection (and TLS for `wss://`) is accepted.
    Tcp,
    /// `GET path` answers 2xx.
    Http {
        /// The request target, from `/`.
        path: String,
    },
    /// A WebSocket upgrade on `path` gets its 101, and a close with 1000 gets 1000 back.
    WebSocket {
        /// The request target, from `/`.
        path: String,
    },
}

/// A pool's active health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The probe.
    pub kind: HealthKind,
    /// Time between the starts of two checks of one backend.
    pub interval: Duration,
    /// Up to this much is added at random to each interval.
    pub jitter: Duration,
    /// A check not done within this (or the interval, if shorter) fails.
    pub timeout: Duration,
    /// Successes in a row that mark a down backend up.
    pub rise: u32,
    /// Failures in a row that mark an up backend down.
    pub fall: u32,
}

/// Starts the health checks of `pool` (one task per backend) on the current runtime; they end
/// when `stop` turns true. Nothing when the pool has no check.
pub fn spawn(pool: &Arc<Pool>, stop: &watch::Receiver<bool>) {
    if pool.settings.health_check.is_none() {
        return;
    }
    for index in 0..pool.backends.len() {
        tokio::spawn(check_loop(Arc::clone(pool), index, stop.clone()));
    }
}

/// Checks one backend until stopped.
async fn check_loop(pool: Arc<Pool>, index: usize, mut stop: watch::Receiver<bool>) {
    let Some(check) = pool.settings.health_check.clone() else {
        return;
    };
    let (mut successes, mut failures) = (0u32, 0u32);
    let mut next = Instant::now() + balance::jitter(check.jitter);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        let started = Instant::now();
        next += check.interval + balance::jitter(check.jitter);
        if next < started {
            next = started + check.interval;
        }
        let limit = check.timeout.min(check.interval);
        let backend = &pool.backends[index];
        let outcome = tokio::time::timeout(limit, probe(&backend.upstream, &check.kind)).await;
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
        };
        match result {
            Ok(()) => {
                successes += 1;
                failures = 0;
                if pool.is_down(index) && successes >= check.rise {
                    pool.set_down(index, false);
                }
            }
            Err(e) => {
                failures += 1;
                successes = 0;
                tracing::debug!(pool = %pool.name, backend = %backend.name, error = %e, "health check failed");
                if !pool.is_down(index) && failures >= check.fall {
                    pool.set_down(index, true);
                }
            }
        }
    }
}

/// Bytes of an answer a check reads at most.
const MAX_ANSWER: usize = 16 * 1024;

/// One probe of `upstream`.
pub async fn probe(upstream: &Upstream, kind: &HealthKind) -> io::Result<()> {
    // The caller's timeout bounds the whole probe; this one only has to be longer.
    let mut stream = upstream::open_with(upstream, Duration::from_secs(3600))
        .await
        .map_err(io::Error::other)?;
    match kind {
        HealthKind::Tcp => Ok(()),
        HealthKind::Http { path } => http(&mut stream, upstream, path).await,
        HealthKind::WebSocket { path } => websocket(&mut stream, upstream, path).await,
    }
}

/// `GET path` expecting 2xx.
async fn http(stream: &mut Stream, upstream: &Upstream, path: &str) -> io::Result<()> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wsrelay-health-check\r\nConnection: close\r\n\r\n",
        upstream.uri.authority()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < MAX_ANSWER {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        Some(status) => Err(io::Error::other(format!("answered {status}"))),
        None => Err(io::Error::other("no HTTP status line")),
    }
}

/// An upgrade on `path` that gets its 101, then a close 1000 answered by a close 1000.
async fn websocket(stream: &mut Stream, upstream: &Upstream, path: &str) -> io::Result<()> {
    let upgrade = UpgradeRequest::new(&upstream.uri)
        .map_err(io::Error::other)?
        .with_target(path);
    let mut out = Vec::new();
    upgrade.encode(&mut out);
    stream.write_all(&out).await?;
    let mut buf = Vec::new();
    let limits = Limits::default();
    let parse = |b: &[u8]| upgrade.parse_response(b, &limits);
    let (response, consumed) = read_head(stream, &mut buf, parse)
        .await
        .map_err(|e| io::Error::other(format!("{e:?}")))?;
    if let UpstreamResponse::Refused { status, .. } = response {
        return Err(io::Error::other(format!(
            "refused the upgrade with {status}"
        )));
    }
    buf.drain(..consumed);
    let key = wsrelay_codec::random::masking_key().map_err(io::Error::other)?;
    let header = FrameHeader {
        mask: Some(key),
        ..FrameHeader::new(OpCode::Close, 0)
    };
    let mut close = Vec::new();
    write_frame(&mut close, header, &1000u16.to_be_bytes());
    stream.write_all(&close).await?;
    // Frames the backend sent before its close are skipped; bounded by MAX_ANSWER.
    let mut chunk = [0u8; 1024];
    loop {
        match FrameHeader::parse(&buf, ParseConfig::new(Role::Client)) {
            Ok(Parse::Complete(h, n)) if buf.len() as u64 >= n as u64 + h.payload_len => {
                let end = n + h.payload_len as usize;
                if h.opcode == OpCode::Close {
                    let code = buf.get(n..n + 2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    return match code {
                        Some(1000) => Ok(()),
                        other => Err(io::Error::other(format!("closed with {other:?}"))),
                    };
                }
                buf.drain(..end);
                continue;
            }
            Ok(_) => {}
            Err(e) => return Err(io::Error::other(e.to_string())),
        }
        if buf.len() >= MAX_ANSWER {
            return Err(io::Error::other("no close frame"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
