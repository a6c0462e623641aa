//! Memory workloads: one huge frame through a proxy (peak RSS growth), and many idle proxied
//! connections (RSS growth per connection). Each is measured on a freshly started proxy, over
//! its whole process tree (nginx's master and workers).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsrelay::handshake::WsUri;

use crate::connect;

/// Bytes written per write while streaming the big frame.
const CHUNK: usize = 1 << 20;

/// The payload byte at `offset` (a pattern whose misplacement would show).
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// What one big-frame run saw.
#[derive(Debug, Clone)]
pub struct BigFrame {
    /// Whether the whole frame came back intact.
    pub intact: bool,
    /// What went wrong otherwise.
    pub error: Option<String>,
    /// Time from the first byte sent to the last byte back.
    pub elapsed: Duration,
}

/// Sends one binary frame of `size` bytes to the echo behind `url` and reads it back,
/// streaming both ways (nothing is held whole on this side either).
pub async fn big_frame(url: &WsUri, size: u64, limit: Duration) -> BigFrame {
    let started = Instant::now();
    let result = tokio::time::timeout(limit, big_frame_inner(url, size)).await;
    let (intact, error) = match result {
        Ok(Ok(())) => (true, None),
        Ok(Err(e)) => (false, Some(e)),
        Err(_) => (false, Some(format!("not done within {limit:?}"))),
    };
    BigFrame {
        intact,
        error,
        elapsed: started.elapsed(),
    }
}

async fn big_frame_inner(url: &WsUri, size: u64) -> Result<(), String> {
    let addr = resolve(url)?;
    let (stream, leftover) = connect::connect(addr, url).await?;
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        // Binary, FIN, masked with the all-zero key (valid, and the payload needs no XOR).
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&size.to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]);
        write.write_all(&header).await.map_err(|e| e.to_string())?;
        let mut chunk = vec![0u8; CHUNK];
        let mut sent = 0u64;
        while sent < size {
            let n = (size - sent).min(CHUNK as u64) as usize;
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                *b = pattern(sent + i as u64);
            }
            write
                .write_all(&chunk[..n])
                .await
                .map_err(|e| format!("write: {e}"))?;
            sent += n as u64;
        }
        Ok::<_, String>(write)
    });
    // Read the echo's header, then stream and check the payload.
    let mut buf = leftover;
    let mut chunk = vec![0u8; CHUNK];
    let header_len = loop {
        if buf.len() >= 10 {
            break 10;
        }
        let n = read.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the echo began".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if buf[0] != 0x82 || buf[1] != 127 {
        return Err(format!("unexpected echo header {:02x?}", &buf[..2]));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&buf[2..10]);
    if u64::from_be_bytes(len) != size {
        return Err(format!("echo of {} bytes", u64::from_be_bytes(len)));
    }
    let mut got = 0u64;
    let check = |bytes: &[u8], got: &mut u64| -> Result<(), String> {
        for (i, b) in bytes.iter().enumerate() {
            if *b != pattern(*got + i as u64) {
                return Err(format!("byte {} differs", *got + i as u64));
            }
        }
        *got += bytes.len() as u64;
        Ok(())
    };
    let first = buf.split_off(header_len);
    let take = first.len().min(size as usize);
    check(&first[..take], &mut got)?;
    while got < size {
        let n = read
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {got} of {size} bytes"));
        }
        let n = n.min((size - got) as usize);
        check(&chunk[..n], &mut got)?;
    }
    let _write = writer
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn resolve(url: &WsUri) -> Result<SocketAddr, String> {
    let ip: std::net::IpAddr = url
        .host
        .parse()
        .map_err(|_| format!("{}: a loopback IP address is required", url.host))?;
    if !ip.is_loopback() {
        return Err(format!("{ip} is not a loopback address"));
    }
    Ok(SocketAddr::new(ip, url.port))
}

/// Opens `count` WebSocket connections through `url` and keeps them idle; fails on the first
/// connection that cannot be opened.
pub async fn open_idle(url: &WsUri, count: usize) -> Result<Vec<TcpStream>, String> {
    let addr = resolve(url)?;
    let mut streams = Vec::with_capacity(count);
    let batch = 100;
    while streams.len() < count {
        let n = batch.min(count - streams.len());
        let opened =
            futures_util::future::join_all((0..n).map(|_| connect::connect(addr, url))).await;
        for result in opened {
            let (stream, _) =
                result.map_err(|e| format!("connection {}: {e}", streams.len() + 1))?;
            streams.push(stream);
        }
    }
    Ok(streams)
}

/// Opens `count` TCP connections to `url`'s address that never send a byte (pending
/// handshakes); fails on the first that cannot be opened.
pub async fn open_silent(url: &WsUri, count: usize) -> Result<Vec<TcpStream>, String> {
    let addr = resolve(url)?;
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        let n = 100.min(count - streams.len());
        let opened = futures_util::future::join_all((0..n).map(|_| TcpStream::connect(addr))).await;
        for result in opened {
            streams.push(result.map_err(|e| format!("connection {}: {e}", streams.len() + 1))?);
        }
    }
    Ok(streams)
}

/// The PIDs of `pid` and all its descendants.
pub(crate) fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() && all.len() < 1024 {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                all.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    all
}

/// A KiB field of `/proc/PID/status` (`"VmRSS:"`, `"VmHWM:"`); `None` if unreadable.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident set of the process tree, KiB.
pub fn tree_rss_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(|p| status_kib(p, "VmRSS:"))
        .sum()
}

/// Peak resident set of the process tree (sum of each process's high-water mark), KiB.
pub fn tree_peak_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(|p| status_kib(p, "VmHWM:"))
        .sum()
}
