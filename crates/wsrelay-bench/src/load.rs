//! The load generator: WebSocket clients sending messages to an echo endpoint and timing them.
//!
//! Each message carries its send time in its first 8 bytes; the echo brings it back, so latency
//! needs no shared state between a connection's writer and reader. In open-loop mode, messages
//! are sent on a fixed schedule; a writer held up by the system under test stamps the scheduled
//! time, so a stall is charged to every message it delayed (no coordinated omission).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use wsrelay::codec::{
    apply_mask, random::masking_key, write_frame, FrameHeader, OpCode, Parse, ParseConfig, Role,
    MAX_HEADER_LEN,
};
use wsrelay::handshake::WsUri;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

use crate::connect::{connect, connect_http2, http2_client, within, Opened, CONNECT_LIMIT};

/// Hard bounds, so no run can go on without end.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most connections one run may open.
pub const MAX_CONNECTIONS: usize = 20_000;
/// Largest message size.
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Bytes of each message that carry its send time.
const STAMP: usize = 8;
/// Lateness beyond timer granularity: a writer this far behind its schedule is being held up.
const BEHIND_SCHEDULE: Duration = Duration::from_millis(2);
/// Pre-masked copies of the message each connection sends in turn, each with a random key of
/// its own (two for messages over 1 MiB, to bound memory), so no two consecutive frames share a
/// key, as with a browser, whose keys are random per frame. A fixed key would make wsrelay's
/// `Remask::Auto` re-mask every frame (a predictable key), which browser traffic never does.
fn masked_copies(size: usize) -> usize {
    if size <= 1 << 20 {
        4
    } else {
        2
    }
}

/// What to send (also the `load` subcommand's options).
#[derive(Debug, Clone, clap::Args)]
pub struct LoadConfig {
    /// Echo endpoint (loopback only).
    #[arg(long)]
    pub url: WsUri,
    /// Connections, each with its own writer and reader.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Payload bytes per message (at least 8 to carry the send time).
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Text instead of binary messages.
    #[arg(long)]
    pub text: bool,
    /// Closed loop: messages in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Open loop: total messages per second over all connections (closed loop when absent).
    #[arg(long, conflicts_with = "interval")]
    pub rate: Option<u64>,
    /// Open loop per connection: every connection sends one message per interval (chat-like
    /// traffic), the connections' send times spread evenly over one interval.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// How long to send.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many messages per connection (closed loop), if set.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Open every connection as a stream of ONE HTTP/2 connection (prior knowledge, extended
    /// CONNECT of RFC 8441) instead of a TCP connection each; the endpoint must speak HTTP/2.
    #[arg(long)]
    pub http2: bool,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Messages echoed back.
    pub messages: u64,
    /// Payload bytes echoed back.
    pub bytes: u64,
    /// Time from the first send to the end of measuring.
    pub elapsed: Duration,
    /// Round-trip latency of every echoed message, in microseconds.
    pub latency: Histogram<u64>,
    /// Connections that failed (handshake or I/O).
    pub failed_connections: usize,
    /// User plus system CPU time the proxy's process tree spent during the measurement, in
    /// microseconds (set by the runner; `None` for the load tool alone and for `direct`).
    pub proxy_cpu_us: Option<u64>,
    /// Resident set of the proxy's process tree at the end of the measurement, connections
    /// still open, in KiB (set by the runner).
    pub proxy_rss_kib: Option<u64>,
}

impl Report {
    /// Echoed messages per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// Echoed payload megabytes (10^6) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    /// The proxy's CPU time per echoed message (one frame each way through the proxy), in
    /// microseconds; NaN when not measured.
    pub fn cpu_us_per_message(&self) -> f64 {
        match self.proxy_cpu_us {
            Some(us) if self.messages > 0 => us as f64 / self.messages as f64,
            _ => f64::NAN,
        }
    }

    /// The proxy's CPU time per MB (10^6 bytes) of payload echoed (each byte crosses the proxy
    /// once each way), in milliseconds; NaN when not measured.
    pub fn cpu_ms_per_mb(&self) -> f64 {
        match self.proxy_cpu_us {
            Some(us) if self.bytes > 0 => us as f64 / 1e3 / (self.bytes as f64 / 1e6),
            _ => f64::NAN,
        }
    }

    /// Latency at quantile `q` (0..=1), microseconds.
    pub fn latency_us(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "messages": self.messages,
            "bytes": self.bytes,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "msgs_per_s": self.msgs_per_sec(),
            "mb_per_s": self.mb_per_sec(),
            "latency_us": {
                "p50": self.latency_us(0.5),
                "p90": self.latency_us(0.9),
                "p99": self.latency_us(0.99),
                "p999": self.latency_us(0.999),
                "max": self.latency.max(),
            },
            "failed_connections": self.failed_connections,
            "proxy_cpu_us": self.proxy_cpu_us,
            "proxy_rss_kib": self.proxy_rss_kib,
        })
    }

    /// The report as a small table.
    pub fn to_table(&self) -> String {
        format!(
            "messages {:>10}  msgs/s {:>12.0}  MB/s {:>9.1}  latency us p50 {} p90 {} p99 {} p99.9 {} max {}{}{}",
            self.messages,
            self.msgs_per_sec(),
            self.mb_per_sec(),
            self.latency_us(0.5),
            self.latency_us(0.9),
            self.latency_us(0.99),
            self.latency_us(0.999),
            self.latency.max(),
            match self.proxy_cpu_us {
                Some(us) => format!(
                    "  proxy CPU {:.1} ms ({:.2} us/msg, {:.2} ms/MB)",
                    us as f64 / 1e3,
                    self.cpu_us_per_message(),
                    self.cpu_ms_per_mb()
                ),
                None => String::new(),
            },
            if self.failed_connections > 0 {
                format!("  FAILED CONNECTIONS {}", self.failed_connections)
            } else {
                String::new()
            }
        )
    }
}

/// Refuses anything but loopback targets and out-of-bounds settings.
pub fn check(config: &LoadConfig) -> Result<SocketAddr, String> {
    let ip: IpAddr = config.url.host.parse().map_err(|_| {
        format!(
            "{}: the load tool takes a loopback IP address, not a name",
            config.url
        )
    })?;
    if !ip.is_loopback() {
        return Err(format!(
            "{ip} is not a loopback address: load runs target 127.0.0.0/8 or ::1 only"
        ));
    }
    if config.url.secure {
        return Err("wss:// is not supported by the load tool".into());
    }
    if config.connections == 0 || config.connections > MAX_CONNECTIONS {
        return Err(format!("connections must be 1..={MAX_CONNECTIONS}"));
    }
    if !(STAMP..=MAX_MESSAGE).contains(&config.size) {
        return Err(format!("size must be {STAMP}..={MAX_MESSAGE} bytes"));
    }
    if config.duration > MAX_DURATION || config.duration.is_zero() {
        return Err(format!("duration must be within (0, {MAX_DURATION:?}]"));
    }
    if config.window == 0 {
        return Err("window must be at least 1".into());
    }
    if config
        .interval
        .is_some_and(|i| i.is_zero() || i > MAX_DURATION)
    {
        return Err(format!("interval must be within (0, {MAX_DURATION:?}]"));
    }
    Ok(SocketAddr::new(ip, config.url.port))
}

/// Runs a load and returns what it measured.
pub async fn run(config: LoadConfig) -> Result<Report, String> {
    run_sampled(config, || ())
        .await
        .map(|(report, _, _)| report)
}

/// Runs a load and calls `sample` at the edges of the measurement: once when every connection
/// is open, right before the first message, and once when the last echo is in, before any
/// connection closes. So what `sample` reads (a proxy's CPU time, its RSS) covers exactly the
/// messages of the report: no handshake, no teardown.
pub async fn run_sampled<T>(
    config: LoadConfig,
    mut sample: impl FnMut() -> T,
) -> Result<(Report, T, T), String> {
    let addr = check(&config)?;
    let mut streams = Vec::with_capacity(config.connections);
    if config.http2 {
        let mut client = Some(http2_client(addr).await?);
        for _ in 0..config.connections {
            // A failed stream counts as a failed connection; the HTTP/2 connection lives on.
            streams.push(match client.as_mut() {
                Some(client) => within(CONNECT_LIMIT, connect_http2(client, &config.url))
                    .await
                    .map(Opened::Http2),
                None => Err("no HTTP/2 connection".into()),
            });
        }
    } else {
        for _ in 0..config.connections {
            streams.push(
                within(CONNECT_LIMIT, connect(addr, &config.url))
                    .await
                    .map(|(s, l)| Opened::Tcp(s, l)),
            );
        }
    }
    let before = sample();
    let start = Instant::now();
    let deadline = start + config.duration;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let per_connection_rate = match config.interval {
        Some(interval) => Some(1.0 / interval.as_secs_f64()),
        None => config
            .rate
            .map(|r| (r as f64 / config.connections as f64).max(1e-3)),
    };
    let read_buffer = read_buffer_len(config.size);
    let latencies = Arc::new(Latencies::new(config.connections));
    let mut tasks = Vec::new();
    let mut failed = 0usize;
    for (i, stream) in streams.into_iter().enumerate() {
        let Ok(stream) = stream else {
            failed += 1;
            continue;
        };
        let window = Arc::new(Semaphore::new(config.window));
        let cfg = config.clone();
        // Spread open-loop schedules so connections do not fire in lockstep.
        let phase = per_connection_rate
            .map(|r| Duration::from_secs_f64(i as f64 / config.connections as f64 / r));
        let schedule = per_connection_rate.zip(phase);
        let stopped = stopped.clone();
        // Each transport's halves get loops of their own type: no dynamic dispatch per write.
        // The writer halves come back from the tasks and are held until after the last
        // sample: dropping one would close the connection inside the measurement.
        let (writer_task, reader_task) = match stream {
            Opened::Tcp(stream, leftover) => {
                let (reader, writer) = stream.into_split();
                let writer = write_loop(writer, cfg, start, deadline, window.clone(), schedule);
                let timing = (start, i, latencies.clone());
                let reader = read_loop(reader, leftover, read_buffer, timing, window, stopped);
                let writer = async { writer.await.map(|(sent, w)| (sent, Held::Tcp { _open: w })) };
                (tokio::spawn(writer), tokio::spawn(reader))
            }
            Opened::Http2(stream) => {
                let (reader, writer) = tokio::io::split(stream);
                let writer = write_loop(writer, cfg, start, deadline, window.clone(), schedule);
                let timing = (start, i, latencies.clone());
                let reader = read_loop(reader, Vec::new(), read_buffer, timing, window, stopped);
                let writer = async {
                    writer
                        .await
                        .map(|(sent, w)| (sent, Held::Http2 { _open: w }))
                };
                (tokio::spawn(writer), tokio::spawn(reader))
            }
        };
        tasks.push((writer_task, reader_task));
    }
    let mut readers = Vec::with_capacity(tasks.len());
    let mut held = Vec::with_capacity(tasks.len());
    for (writer, reader) in tasks {
        match writer.await.ok().flatten() {
            Some((_, half)) => held.push(half),
            None => failed += 1,
        }
        readers.push(reader);
    }
    let elapsed = start.elapsed();
    // Sending is over: readers collect what is still in flight, then end.
    let _ = stop.send(true);
    let (mut messages, mut bytes) = (0u64, 0u64);
    for reader in readers {
        match tokio::time::timeout(Duration::from_secs(10), reader).await {
            Ok(Ok(result)) => {
                messages += result.messages;
                bytes += result.bytes;
                failed += usize::from(result.failed);
            }
            _ => failed += 1,
        }
    }
    let after = sample();
    let latency = latencies.merged();
    drop(held);
    let report = Report {
        messages,
        bytes,
        elapsed: elapsed.max(Duration::from_millis(1)),
        latency,
        failed_connections: failed,
        proxy_cpu_us: None,
        proxy_rss_kib: None,
    };
    Ok((report, before, after))
}

/// The read buffer of a connection for messages of `size` bytes: 256 KiB for large messages,
/// 16 KiB for small ones (ample for a few in flight, and 9,900 connections stay cheap).
fn read_buffer_len(size: usize) -> usize {
    if size > 1024 {
        256 * 1024
    } else {
        16 * 1024
    }
}

/// The sending half of a connection, held open until the measurement's last sample.
enum Held {
    Tcp {
        _open: tokio::net::tcp::OwnedWriteHalf,
    },
    Http2 {
        _open: tokio::io::WriteHalf<TokioIo<Upgraded>>,
    },
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Sends messages until the deadline (or message count); returns how many were sent and the
/// writer (still open), or `None` if the connection failed. `schedule` is the open-loop rate
/// (per connection) and phase.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    config: LoadConfig,
    start: Instant,
    deadline: Instant,
    window: Arc<Semaphore>,
    schedule: Option<(f64, Duration)>,
) -> Option<(u64, W)> {
    let opcode = if config.text {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    // Pre-masked frames; only the 8 stamp bytes change per message (ASCII digits stay valid text).
    let payload = vec![b'0'; config.size];
    let mut frames = Vec::with_capacity(masked_copies(config.size));
    for _ in 0..masked_copies(config.size) {
        let key = masking_key().ok()?;
        let header = FrameHeader {
            mask: Some(key),
            ..FrameHeader::new(opcode, config.size as u64)
        };
        let mut frame = Vec::with_capacity(config.size + MAX_HEADER_LEN);
        write_frame(&mut frame, header, &payload);
        frames.push((key, frame));
    }
    drop(payload);
    let at = frames[0].1.len() - config.size;
    let mut sent = 0u64;
    loop {
        let scheduled = match schedule {
            Some((rate, phase)) => {
                let interval = Duration::from_secs_f64(1.0 / rate);
                let due = start + phase + interval.mul_f64(sent as f64);
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                // Timers fire up to a millisecond late: that is the load tool, not the system, so
                // the actual send time counts. A writer further behind than that is held up by
                // the system; then the schedule counts (no coordinated omission).
                let now = Instant::now();
                if now.duration_since(due) > BEHIND_SCHEDULE {
                    due
                } else {
                    now
                }
            }
            None => {
                if Instant::now() >= deadline || config.messages.is_some_and(|m| sent >= m) {
                    break;
                }
                match window.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => break,
                }
                Instant::now()
            }
        };
        let stamp = encode_stamp(scheduled.duration_since(start).as_nanos() as u64);
        let turn = (sent % frames.len() as u64) as usize;
        let (key, frame) = &mut frames[turn];
        frame[at..at + STAMP].copy_from_slice(&stamp);
        apply_mask(&mut frame[at..at + STAMP], *key, 0);
        if writer.write_all(frame).await.is_err() {
            return None;
        }
        sent += 1;
    }
    Some((sent, writer))
}

/// Characters of the stamp encoding: 64 ASCII symbols, so text messages stay valid UTF-8.
const STAMP_SYMBOLS: &[u8; 64] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/";

/// Nanoseconds since the start as 8 symbols of 6 bits (48 bits: 78 hours, far past any run).
fn encode_stamp(nanos: u64) -> [u8; STAMP] {
    let mut out = [0u8; STAMP];
    for (i, symbol) in out.iter_mut().enumerate() {
        *symbol = STAMP_SYMBOLS[((nanos >> (6 * (STAMP - 1 - i))) & 63) as usize];
    }
    out
}

fn decode_stamp(stamp: &[u8; STAMP]) -> Option<u64> {
    stamp.iter().try_fold(0u64, |acc, &c| {
        let v = STAMP_SYMBOLS.iter().position(|&s| s == c)?;
        Some(acc << 6 | v as u64)
    })
}

struct ReadResult {
    messages: u64,
    bytes: u64,
    failed: bool,
}

/// Latency histograms shared by a run's readers: a few shards behind locks of their own rather
/// than one per connection. A histogram of this range holds 140 KB of counts, all written when
/// it is made; one per connection of a 9,900-tunnel run cost the load tool itself seconds of
/// page faults, which showed up as latency.
struct Latencies {
    shards: Vec<std::sync::Mutex<Histogram<u64>>>,
}

/// Most latency shards: more than the load tool's threads, so readers seldom wait on a lock.
const LATENCY_SHARDS: usize = 16;

impl Latencies {
    fn new(connections: usize) -> Self {
        let n = connections.clamp(1, LATENCY_SHARDS);
        Latencies {
            shards: (0..n)
                .map(|_| std::sync::Mutex::new(new_histogram()))
                .collect(),
        }
    }

    /// Records `us` microseconds in the shard of connection `connection`.
    fn record(&self, connection: usize, us: u64) {
        if let Ok(mut h) = self.shards[connection % self.shards.len()].lock() {
            let _ = h.record(us);
        }
    }

    /// All shards as one histogram.
    fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.shards {
            if let Ok(h) = shard.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }
}

/// Reads echoed frames, timing each message by the stamp it carries.
async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    leftover: Vec<u8>,
    buffer: usize,
    (start, connection, latencies): (Instant, usize, Arc<Latencies>),
    window: Arc<Semaphore>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> ReadResult {
    let mut result = ReadResult {
        messages: 0,
        bytes: 0,
        failed: false,
    };
    let mut buf = vec![0u8; buffer.max(leftover.len())];
    buf[..leftover.len()].copy_from_slice(&leftover);
    let mut filled = leftover.len();
    // The frame being read: payload bytes left, and its stamp so far.
    let mut remaining = 0u64;
    let mut stamp = [0u8; STAMP];
    let mut stamp_len = 0usize;
    loop {
        let mut pos = 0;
        while pos < filled {
            if remaining == 0 {
                match FrameHeader::parse(&buf[pos..filled], ParseConfig::new(Role::Client)) {
                    Ok(Parse::Complete(h, n)) => {
                        pos += n;
                        if h.opcode == OpCode::Close {
                            return result;
                        }
                        remaining = h.payload_len;
                        stamp_len = 0;
                        if remaining == 0 {
                            continue;
                        }
                    }
                    Ok(Parse::Incomplete(_)) => break,
                    Err(_) => {
                        result.failed = true;
                        return result;
                    }
                }
            }
            let take = remaining.min((filled - pos) as u64) as usize;
            let chunk = &buf[pos..pos + take];
            if stamp_len < STAMP {
                let n = (STAMP - stamp_len).min(chunk.len());
                stamp[stamp_len..stamp_len + n].copy_from_slice(&chunk[..n]);
                stamp_len += n;
            }
            pos += take;
            remaining -= take as u64;
            result.bytes += take as u64;
            if remaining == 0 {
                result.messages += 1;
                if let Some(sent) = decode_stamp(&stamp) {
                    let now = start.elapsed().as_nanos() as u64;
                    latencies.record(connection, (now.saturating_sub(sent) / 1000).max(1));
                }
                window.add_permits(1);
            }
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        let read = if *stopped.borrow() {
            // Sending is over: stop once nothing more arrives for a moment.
            match tokio::time::timeout(Duration::from_millis(300), reader.read(&mut buf[filled..]))
                .await
            {
                Ok(r) => r,
                Err(_) => return result,
            }
        } else {
            tokio::select! {
                r = reader.read(&mut buf[filled..]) => r,
                _ = stopped.changed() => continue,
            }
        };
        match read {
            Ok(0) => return result,
            Ok(n) => filled += n,
            Err(_) => {
                result.failed = true;
                return result;
            }
        }
    }
}
