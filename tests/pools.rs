//! Backend pools end to end: the `wsrelay` binary in front of real backends on loopback
//! (`wsrelay` processes in their demo mode, and in-process servers that count what reaches
//! them, hang, or answer a fixed status): balancing, retries, health, breakers, affinity.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wsrelay::codec::OpCode;

const BIN: &str = env!("CARGO_BIN_EXE_wsrelay");

/// The gateway's settings shared by these tests: one worker, short timeouts.
const HEAD: &str = r#"
[server]
workers = 1
[[listeners]]
address = "127.0.0.1:0"
[defaults]
close_timeout = "300ms"
connect_timeout = "1s"
upgrade_timeout = "1s"
"#;

/// A backend process: `wsrelay` in its demo mode (a relay in front of its own echo server).
fn backend_process() -> Binary {
    Binary::spawn(BIN, &["--listen", "127.0.0.1:0"], 1)
}

/// `backends = [...]` of `addrs` with `weights`.
fn backends(addrs: &[SocketAddr], weights: &[u32]) -> String {
    let list: Vec<String> = addrs
        .iter()
        .zip(weights)
        .map(|(a, w)| format!("{{ uri = \"ws://{a}\", weight = {w} }}"))
        .collect();
    format!("backends = [{}]", list.join(", "))
}

/// What an in-process backend does with a connection.
const ECHO: u8 = 0;
const HANG: u8 = 1;

/// An in-process backend that counts the gateway's connections (those with
/// `X-Forwarded-For`; health checks have none) and their open tunnels; it echoes, or hangs
/// (accepts TCP, reads the request, never answers).
struct Counting {
    addr: SocketAddr,
    /// Gateway connections that reached it.
    reached: Arc<AtomicUsize>,
    /// Gateway connections open now.
    open: Arc<AtomicUsize>,
    mode: Arc<AtomicU8>,
    accept: JoinHandle<()>,
    /// The `X-User` header of each gateway connection, in order.
    users: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Counting {
    async fn start(mode: u8) -> Counting {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reached = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(AtomicU8::new(mode));
        let users = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (r, o, m, u) = (reached.clone(), open.clone(), mode.clone(), users.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (r, o, m, u) = (r.clone(), o.clone(), m.clone(), u.clone());
                tokio::spawn(async move {
                    let Some(head) = peek_head(&stream).await else {
                        return;
                    };
                    let from_gateway = head.to_ascii_lowercase().contains("x-forwarded-for");
                    if let Some(user) = head.lines().find_map(|l| {
                        l.get(..8)
                            .filter(|n| n.eq_ignore_ascii_case("x-user: "))
                            .map(|_| &l[8..])
                    }) {
                        u.lock().unwrap().push(user.to_owned());
                    }
                    if from_gateway {
                        r.fetch_add(1, Ordering::SeqCst);
                        o.fetch_add(1, Ordering::SeqCst);
                    }
                    if m.load(Ordering::SeqCst) == HANG {
                        let mut stream = stream;
                        let mut sink = Vec::new();
                        let _ = stream.read_to_end(&mut sink).await;
                    } else {
                        let _ = wsrelay::echo::echo_connection(stream).await;
                    }
                    if from_gateway {
                        o.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        Counting {
            addr,
            reached,
            open,
            mode,
            accept,
            users,
        }
    }

    fn reached(&self) -> usize {
        self.reached.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Stops accepting: new connections are refused (open ones stay).
    fn stop(&self) {
        self.accept.abort();
    }
}

/// The request head a connection sent, read without consuming it.
async fn peek_head(stream: &TcpStream) -> Option<String> {
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        if text.contains("\r\n\r\n") || n == buf.len() {
            return Some(text.into_owned());
        }
        if started.elapsed() > Duration::from_secs(5) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A backend that answers every request with `status` and no body.
async fn status_backend(status: u16) -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if peek_head(&stream).await.is_some() {
                    let answer =
                        format!("HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    addr
}

/// An upgrade through the gateway: the response head, and the connection after a 101; the
/// head alone (as an error) for anything else, or the failure.
async fn upgrade(addr: SocketAddr, extra: &str) -> Result<(String, RawPeer), String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let request = upgrade_request("/", "gateway.test", extra);
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            Ok(Ok(_)) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&head))),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no answer in 10 s".to_owned()),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if head.starts_with("HTTP/1.1 101 ") {
        Ok((head, RawPeer::client(s)))
    } else {
        Err(head)
    }
}

/// Ends a tunnel properly: close 1000, its echo, EOF.
async fn close(mut peer: RawPeer) {
    peer.send(OpCode::Close, true, &close_payload(1000, ""))
        .await;
    let _ = peer.recv().await;
}

/// The `Set-Cookie` value (name=value) of a response head.
fn set_cookie(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}

/// Waits until `done` holds, at most `limit`.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_3_2_1_over_3000_connections_land_within_5_percent() {
    let procs: Vec<Binary> = (0..3).map(|_| backend_process()).collect();
    let addrs: Vec<SocketAddr> = procs.iter().map(Binary::addr).collect();
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"p\"\npolicy = \"round_robin\"\n{}\n\n[[routes]]\npath_prefix = \"/\"\npool = \"p\"\n",
            backends(&addrs, &[3, 2, 1])
        ),
        1,
    );
    let addr = gateway.addr();
    const TOTAL: usize = 3000;
    const CONCURRENCY: usize = 24;
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            for _ in (worker..TOTAL).step_by(CONCURRENCY) {
                match upgrade(addr, "").await {
                    Ok((_, peer)) => close(peer).await,
                    Err(e) => {
                        eprintln!("handshake failed: {e}");
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    let count = |p: &Binary| p.log_lines("connection finished").len();
    let all_logged = wait_for(Duration::from_secs(20), || {
        procs.iter().map(count).sum::<usize>() >= TOTAL
    })
    .await;
    let counts: Vec<usize> = procs.iter().map(count).collect();
    assert!(all_logged, "backends logged {counts:?}");
    let expected = [0.5, 1.0 / 3.0, 1.0 / 6.0];
    for (n, want) in counts.iter().zip(expected) {
        let share = *n as f64 / TOTAL as f64;
        eprintln!("backend share {share:.4} (expected {want:.4}): {n} of {TOTAL}");
        assert!(
            (share - want).abs() <= 0.05 * want,
            "{counts:?} is not 3:2:1 within 5%"
        );
    }
    // The gateway's log line names the backend of each connection.
    let named = gateway
        .log_lines(&format!("backend=\"{}\"", addrs[2]))
        .len();
    assert!(
        named > 0,
        "no log line names {}: {:?}",
        addrs[2],
        gateway.log_lines("connection finished").first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_keeps_open_tunnels_within_one_under_churn() {
    let servers = [
        Counting::start(ECHO).await,
        Counting::start(ECHO).await,
        Counting::start(ECHO).await,
    ];
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"p\"\n{}\n\n[[routes]]\npath_prefix = \"/\"\npool = \"p\"\n",
            backends(&addrs, &[1, 1, 1])
        ),
        1,
    );
    let addr = gateway.addr();
    let opens = || servers.iter().map(Counting::open).collect::<Vec<_>>();
    let spread = |v: &[usize]| v.iter().max().unwrap() - v.iter().min().unwrap();
    // Tunnels with lifetimes from a few milliseconds to the whole test, opened and closed in
    // a fixed pseudo-random order.
    let mut seed = 0x2545_f491u64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut tunnels: Vec<(RawPeer, u64)> = Vec::new();
    let mut worst_after_open = 0;
    for round in 0..12u64 {
        // Open until 36 tunnels are up, each new one on a least-loaded backend.
        while tunnels.len() < 36 {
            let before = opens();
            let (_, peer) = upgrade(addr, "").await.expect("101");
            assert!(
                wait_for(Duration::from_secs(5), || opens().iter().sum::<usize>()
                    > before.iter().sum::<usize>())
                .await
            );
            let after = opens();
            let chosen = (0..3).find(|&i| after[i] > before[i]).unwrap();
            assert_eq!(
                before[chosen],
                *before.iter().min().unwrap(),
                "a new tunnel went to a busier backend: {before:?} -> {after:?}"
            );
            worst_after_open = worst_after_open.max(spread(&after));
            // Lifetimes in rounds: 1 (short), 3, or the whole test.
            let life = [1, 1, 1, 3, 12][next(5) as usize];
            tunnels.push((peer, round + life));
        }
        // Refilled: every backend is back within one of the others, whatever closed where.
        let refilled = opens();
        assert!(
            spread(&refilled) <= 1,
            "round {round}: after refill {refilled:?}"
        );
        // The tunnels whose time has come close, plus a few at random: the counts drift.
        let mut kept = Vec::new();
        for (peer, end) in tunnels.drain(..) {
            if end <= round || next(6) == 0 {
                close(peer).await;
            } else {
                kept.push((peer, end));
            }
        }
        tunnels = kept;
        let expected: usize = tunnels.len();
        assert!(
            wait_for(Duration::from_secs(5), || opens().iter().sum::<usize>()
                == expected)
            .await
        );
        // The gateway's lease ends a moment after the backend's side.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    eprintln!("largest spread of open tunnels right after an open, mid-refill: {worst_after_open}");
    // Refilled, the counts are within one of each other.
    while tunnels.len() < 36 {
        let (_, peer) = upgrade(addr, "").await.expect("101");
        tunnels.push((peer, 0));
    }
    assert!(
        wait_for(Duration::from_secs(5), || opens().iter().sum::<usize>()
            == 36)
        .await
    );
    let last = opens();
    eprintln!("open tunnels per backend at the end: {last:?}");
    assert!(spread(&last) <= 1, "{last:?}");
}

/// Which backend (address) each key reaches through a gateway over `servers` hashing the
/// header X-User; each key is sent `times` times, and must reach the same backend each time.
/// `concurrency` connections at once; with more than one, the load bound is switched off (a
/// bounded key may move off a backend that is busy at that moment, which is its purpose).
async fn hash_placement(
    servers: &[&Counting],
    keys: &[String],
    times: usize,
    concurrency: usize,
) -> std::collections::HashMap<String, SocketAddr> {
    for s in servers {
        s.users.lock().unwrap().clear();
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"p\"\npolicy = \"hash\"\nhash_key = \"header:X-User\"\n{}\n{}\n\n[[routes]]\npath_prefix = \"/\"\npool = \"p\"\n",
            backends(&addrs, &vec![1; addrs.len()]),
            if concurrency > 1 { "hash_balance_factor = 0" } else { "" },
        ),
        1,
    );
    let addr = gateway.addr();
    if concurrency == 1 {
        for key in keys {
            for _ in 0..times {
                let (_, peer) = upgrade(addr, &format!("X-User: {key}\r\n"))
                    .await
                    .expect("101");
                close(peer).await;
                // The backends idle again (the gateway's count ends a moment after theirs),
                // so the load bound never moves a key here.
                let idle = || servers.iter().all(|s| s.open() == 0);
                assert!(wait_for(Duration::from_secs(5), idle).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let keys = Arc::new(keys.to_vec());
    let mut tasks = Vec::new();
    for worker in (0..concurrency).filter(|_| concurrency > 1) {
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            for k in (worker..keys.len()).step_by(concurrency) {
                for _ in 0..times {
                    let (_, peer) = upgrade(addr, &format!("X-User: {}\r\n", keys[k]))
                        .await
                        .expect("101");
                    close(peer).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut placed = std::collections::HashMap::new();
    for s in servers {
        for user in s.users.lock().unwrap().iter() {
            let before = placed.insert(user.clone(), s.addr);
            assert!(
                before.is_none_or(|b| b == s.addr),
                "key {user} reached two backends"
            );
        }
    }
    assert_eq!(placed.len(), keys.len());
    placed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_keeps_keys_and_removing_one_of_four_moves_only_its_keys() {
    let s = [
        Counting::start(ECHO).await,
        Counting::start(ECHO).await,
        Counting::start(ECHO).await,
        Counting::start(ECHO).await,
    ];
    // The same key always reaches the same backend.
    let few: Vec<String> = (0..20).map(|i| format!("stable-{i}")).collect();
    hash_placement(&[&s[0], &s[1], &s[2], &s[3]], &few, 3, 1).await;
    let keys: Vec<String> = (0..1500).map(|i| format!("user-{i}")).collect();
    let four = hash_placement(&[&s[0], &s[1], &s[2], &s[3]], &keys, 1, 16).await;
    let three = hash_placement(&[&s[0], &s[1], &s[3]], &keys, 1, 16).await;
    let mut moved = 0;
    for key in &keys {
        if four[key] != three[key] {
            moved += 1;
            assert_eq!(four[key], s[2].addr, "a key of a backend still there moved");
        }
    }
    let per: Vec<usize> = s
        .iter()
        .map(|b| four.values().filter(|a| **a == b.addr).count())
        .collect();
    eprintln!(
        "keys per backend {per:?}; moved after removing the third: {moved} of {}",
        keys.len()
    );
    assert!(per.iter().all(|&n| n > 0), "{per:?}");
    assert!(moved as f64 <= 0.30 * keys.len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_run_costs_no_client_handshake() {
    let mut procs: Vec<Binary> = (0..3).map(|_| backend_process()).collect();
    let addrs: Vec<SocketAddr> = procs.iter().map(Binary::addr).collect();
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"p\"\n{}\n\n[[routes]]\npath_prefix = \"/\"\npool = \"p\"\n",
            backends(&addrs, &[1, 1, 1])
        ),
        1,
    );
    let addr = gateway.addr();
    const TOTAL: usize = 600;
    const CONCURRENCY: usize = 8;
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let (done, failed, broken) = (done.clone(), failed.clone(), broken.clone());
        tasks.push(tokio::spawn(async move {
            for _ in (worker..TOTAL).step_by(CONCURRENCY) {
                match upgrade(addr, "").await {
                    Ok((_, mut peer)) => {
                        peer.send(OpCode::Text, true, b"hello").await;
                        match peer.recv().await {
                            Some((h, p)) if h.opcode == OpCode::Text && p == b"hello" => {
                                close(peer).await
                            }
                            // A tunnel to the backend as it died: after the 101, not a
                            // failed handshake.
                            _ => {
                                broken.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("handshake failed: {e}");
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    assert!(
        wait_for(Duration::from_secs(30), || done.load(Ordering::SeqCst)
            >= TOTAL / 4)
        .await
    );
    // SIGKILL: the process and its sockets vanish at once.
    let killed = procs.remove(1);
    drop(killed);
    let killed_at = done.load(Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let retried = gateway.log_lines("backend failed before the 101").len();
    eprintln!(
        "killed a backend after {killed_at} of {TOTAL} connections; {} handshakes failed, {} tunnels broke, {retried} retries",
        failed.load(Ordering::SeqCst),
        broken.load(Ordering::SeqCst)
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(retried > 0, "the killed backend was never tried again");
    let ejected = wait_for(Duration::from_secs(2), || {
        !gateway.log_lines("backend ejected").is_empty()
    })
    .await;
    assert!(ejected, "the killed backend was not ejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_backend_is_marked_down_in_interval_times_fall_and_comes_back_after_rise() {
    let up = [Counting::start(ECHO).await, Counting::start(ECHO).await];
    let hung = Counting::start(HANG).await;
    let addrs = [up[0].addr, up[1].addr, hung.addr];
    const INTERVAL_MS: u64 = 400;
    const FALL: u64 = 2;
    const RISE: u64 = 2;
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"p\"\n{}\n[pools.health_check]\nkind = \"websocket\"\npath = \"/health\"\ninterval = \"{INTERVAL_MS}ms\"\ntimeout = \"250ms\"\nrise = {RISE}\nfall = {FALL}\n\n[[routes]]\npath_prefix = \"/\"\npool = \"p\"\n",
            backends(&addrs, &[1, 1, 1])
        ),
        1,
    );
    let started = Instant::now();
    let down = format!("backend={}", hung.addr);
    let marked = |what: &str| gateway.log_lines(what).iter().any(|l| l.contains(&down));
    assert!(wait_for(Duration::from_secs(10), || marked("marked down")).await);
    let took = started.elapsed();
    eprintln!(
        "hung backend marked down {} ms after the gateway started (interval × fall = {} ms)",
        took.as_millis(),
        INTERVAL_MS * FALL
    );
    // The log line travels through a pipe and a reader thread: a little slack.
    assert!(
        took <= Duration::from_millis(INTERVAL_MS * FALL + 150),
        "{took:?}"
    );
    // No new tunnel goes there.
    let before = hung.reached();
    for _ in 0..30 {
        let (_, peer) = upgrade(gateway.addr(), "").await.expect("101");
        close(peer).await;
    }
    assert_eq!(hung.reached(), before, "a down backend got new tunnels");
    // It answers again: up after `rise` good checks, then it takes tunnels.
    hung.mode.store(ECHO, Ordering::SeqCst);
    let answering = Instant::now();
    assert!(wait_for(Duration::from_secs(10), || marked("marked up")).await);
    let back = answering.elapsed();
    eprintln!(
        "back up {} ms after it answered (interval × rise = {} ms)",
        back.as_millis(),
        INTERVAL_MS * RISE
    );
    assert!(
        back <= Duration::from_millis(INTERVAL_MS * (RISE + 1) + 150),
        "{back:?}"
    );
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(upgrade(gateway.addr(), "").await.expect("101").1);
    }
    assert!(
        hung.reached() > before,
        "the recovered backend got no tunnel"
    );
    for peer in held {
        close(peer).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_answers_503_with_retry_after_at_once() {
    let s = [Counting::start(ECHO).await, Counting::start(ECHO).await];
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"p\"\nmax_tunnels_per_backend = 1\n{}\n\n[[routes]]\npath_prefix = \"/\"\npool = \"p\"\n",
            backends(&[s[0].addr, s[1].addr], &[1, 1])
        ),
        1,
    );
    let a = upgrade(gateway.addr(), "").await.expect("101").1;
    let b = upgrade(gateway.addr(), "").await.expect("101").1;
    let asked = Instant::now();
    let refused = upgrade(gateway.addr(), "").await.err().expect("refused");
    let took = asked.elapsed();
    eprintln!("third tunnel refused in {} ms", took.as_millis());
    assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
    assert!(refused.contains("Retry-After: 1"), "{refused}");
    assert!(took < Duration::from_secs(1));
    close(a).await;
    assert!(wait_for(Duration::from_secs(5), || s[0].open() + s[1].open() == 1).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let c = upgrade(gateway.addr(), "")
        .await
        .expect("a freed slot is used again")
        .1;
    close(b).await;
    close(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_take_another_backend_for_503_but_relay_403() {
    let echo = Counting::start(ECHO).await;
    let busy = status_backend(503).await;
    let forbidding = status_backend(403).await;
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"busy\"\npolicy = \"round_robin\"\neject_after = 0\n{}\n\n[[pools]]\nname = \"strict\"\npolicy = \"round_robin\"\n{}\n\n[[routes]]\nname = \"busy\"\npath_prefix = \"/busy\"\npool = \"busy\"\n\n[[routes]]\npath_prefix = \"/\"\npool = \"strict\"\n",
            backends(&[busy, echo.addr], &[1, 1]),
            backends(&[forbidding, echo.addr], &[1, 1]),
        ),
        1,
    );
    let connect = |path: &'static str| {
        let addr = gateway.addr();
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(upgrade_request(path, "g", "").as_bytes())
                .await
                .unwrap();
            let mut head = vec![0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head))
                .await
                .unwrap()
                .unwrap();
            String::from_utf8_lossy(&head[..n]).into_owned()
        }
    };
    for _ in 0..10 {
        let head = connect("/busy").await;
        assert!(
            head.starts_with("HTTP/1.1 101 "),
            "503 was not retried: {head}"
        );
    }
    let mut relayed = 0;
    for _ in 0..10 {
        let head = connect("/x").await;
        if head.starts_with("HTTP/1.1 403 ") {
            relayed += 1;
        } else {
            assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        }
    }
    assert_eq!(
        relayed, 5,
        "round robin over [403, echo]: every other answer is the 403"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_sticky_cookie_keeps_a_client_on_its_backend_while_it_is_up() {
    let s = [
        Counting::start(ECHO).await,
        Counting::start(ECHO).await,
        Counting::start(ECHO).await,
    ];
    let addrs: Vec<SocketAddr> = s.iter().map(|s| s.addr).collect();
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"p\"\npolicy = \"round_robin\"\nsticky_cookie = \"wsb\"\n{}\n\n[[routes]]\npath_prefix = \"/\"\npool = \"p\"\n",
            backends(&addrs, &[1, 1, 1])
        ),
        1,
    );
    let reached = || s.iter().map(Counting::reached).collect::<Vec<_>>();
    let which = |before: &[usize], after: &[usize]| (0..3).find(|&i| after[i] > before[i]).unwrap();
    let before = reached();
    let (head, peer) = upgrade(gateway.addr(), "").await.expect("101");
    let first = which(&before, &reached());
    close(peer).await;
    let cookie = set_cookie(&head).expect("the 101 sets the sticky cookie");
    for _ in 0..6 {
        let before = reached();
        let (head, peer) = upgrade(gateway.addr(), &format!("Cookie: a=1; {cookie}\r\n"))
            .await
            .expect("101");
        assert_eq!(which(&before, &reached()), first, "the cookie's backend");
        assert!(
            set_cookie(&head).is_none(),
            "a valid cookie is not set again"
        );
        close(peer).await;
    }
    // A cookie written by the client (another index, same tag) is ignored: a new one is set.
    let (index, tag) = cookie.split_once('.').unwrap();
    let other = (index.rsplit('=').next().unwrap().parse::<usize>().unwrap() + 1) % 3;
    let forged = format!("wsb={other}.{tag}");
    let (head, peer) = upgrade(gateway.addr(), &format!("Cookie: {forged}\r\n"))
        .await
        .expect("101");
    assert!(set_cookie(&head).is_some_and(|c| c != forged), "{head}");
    close(peer).await;
    // Its backend gone, the client goes elsewhere and gets a new cookie.
    s[first].stop();
    let before = reached();
    let (head, peer) = upgrade(gateway.addr(), &format!("Cookie: {cookie}\r\n"))
        .await
        .expect("a cookie naming a down backend still gets a 101");
    let now = which(&before, &reached());
    assert_ne!(now, first);
    let renewed = set_cookie(&head).expect("a new cookie");
    assert_ne!(renewed, cookie);
    close(peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_end_with_1001_at_their_lifetime_or_when_their_backend_goes_down() {
    let aging = Counting::start(ECHO).await;
    let failing = Counting::start(ECHO).await;
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"aging\"\nmax_tunnel_lifetime = \"400ms\"\nlifetime_jitter = \"100ms\"\n{}\n\n[[pools]]\nname = \"failing\"\non_marked_down = \"close\"\n{}\n[pools.health_check]\nkind = \"websocket\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfall = 2\n\n[[routes]]\npath_prefix = \"/\"\npool = \"aging\"\n\n[[routes]]\npath_prefix = \"/\"\npool = \"failing\"\n",
            backends(&[aging.addr], &[1]),
            backends(&[failing.addr], &[1]),
        ),
        1,
    );
    let opened = Instant::now();
    let (_, mut peer) = upgrade(gateway.addr(), "").await.expect("101");
    peer.send(OpCode::Text, true, b"still here").await;
    assert_eq!(peer.recv().await.unwrap().1, b"still here");
    assert_eq!(peer.expect_close().await, Some(1001));
    let lived = opened.elapsed();
    eprintln!(
        "tunnel closed with 1001 after {} ms (lifetime 400 ms + up to 100 ms)",
        lived.as_millis()
    );
    assert!(
        lived >= Duration::from_millis(400) && lived < Duration::from_secs(3),
        "{lived:?}"
    );
    drop(peer);
    // The second route is never reached (the first takes "/"); a route of its own for it:
    drop(gateway);
    let gateway = Binary::with_config(
        &format!(
            "{HEAD}\n[[pools]]\nname = \"failing\"\non_marked_down = \"close\"\n{}\n[pools.health_check]\nkind = \"websocket\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfall = 2\n\n[[routes]]\npath_prefix = \"/\"\npool = \"failing\"\n",
            backends(&[failing.addr], &[1]),
        ),
        1,
    );
    let (_, mut peer) = upgrade(gateway.addr(), "").await.expect("101");
    // New connections (the health checks) now hang; the open tunnel still works until the
    // backend is marked down.
    failing.mode.store(HANG, Ordering::SeqCst);
    peer.send(OpCode::Text, true, b"ok").await;
    assert_eq!(peer.recv().await.unwrap().1, b"ok");
    assert_eq!(peer.expect_close().await, Some(1001));
    let logged = wait_for(Duration::from_secs(2), || {
        !gateway.log_lines("backend was marked down").is_empty()
    })
    .await;
    assert!(logged, "{:?}", gateway.log.lock().unwrap());
}

#[test]
fn check_points_at_pool_mistakes() {
    let bad = write_temp(
        "pools.toml",
        r#"[[listeners]]
address = "127.0.0.1:0"

[[pools]]
name = "chat"
policy = "hash"
backends = [{ uri = "ws://127.0.0.1:9001", weight = 0 }]
[pools.health_check]
path = "health"

[[routes]]
path_prefix = "/"
pool = "caht"
"#,
    );
    let checked = check_config(&bad, &[]);
    let stderr = checked.stderr;
    assert_eq!(checked.code, Some(1), "{stderr}");
    let file = bad.display().to_string();
    for expected in [
        format!("{file}:6:10: error: policy = \"hash\" without a hash key"),
        format!("{file}:7:53: error: a backend's weight must be from 1 to 1000"),
        format!("{file}:9:8: error: health check path \"health\" is not a path"),
        format!("{file}:13:8: error: unknown pool \"caht\""),
        "hint: pools defined: chat".to_owned(),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn the_example_pool_loads_with_its_health_check() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wsrelay.toml");
    let config = wsrelay::config::load(std::path::Path::new(path)).expect("example loads");
    let game = config.routes.iter().find(|r| r.name == "game").unwrap();
    let pool = game.pool.as_ref().expect("the game route names a pool");
    let weights: Vec<u32> = pool.backends.iter().map(|b| b.weight).collect();
    assert_eq!(weights, [3, 2, 1]);
    let check = pool.settings.health_check.as_ref().expect("a health check");
    assert_eq!(check.fall, 3);
    assert!(pool.settings.sticky.is_some());
}
