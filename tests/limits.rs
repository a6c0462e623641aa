//! Admission and rate limits end to end, against the real `wsrelay` binary where the process
//! matters (descriptor limits, churn) and a gateway on a real socket elsewhere.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wsrelay::codec::OpCode;

/// One upgrade attempt from `source`: the status answered (0 when the gateway closed without
/// an answer), the response head, and the connection (open after a 101).
async fn attempt(addr: SocketAddr, source: IpAddr) -> (u16, String, TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut s = socket.connect(addr).await.expect("connect");
    let request = upgrade_request("/", "localhost", "");
    if s.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new(), s);
    }
    let mut head = Vec::new();
    let mut chunk = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("an answer in time, not a stall");
        match read {
            Ok(1) => head.push(chunk[0]),
            _ => return (0, String::from_utf8_lossy(&head).into_owned(), s),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text, s)
}

/// The built-in echo server on a thread and runtime of its own, so its work does not delay
/// the test's clients (whose timings are measured).
fn echo_on_its_own_thread() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tx.send(wsrelay::echo::spawn(loopback()).await.unwrap())
                .unwrap();
            std::future::pending::<()>().await
        })
    });
    rx.recv().unwrap()
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const SECOND: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A configuration with one plain listener on a free loopback port and one route to
/// `upstream`; `limits` is added to the document, `route` to the route.
fn config(upstream: SocketAddr, limits: &str, route: &str) -> String {
    format!(
        "{limits}\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npath_prefix = \"/\"\n\
         upstream = \"ws://{upstream}\"\n{route}\n"
    )
}

fn retry_after(head: &str) -> Option<u64> {
    head.lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn per_address_cap_holds_against_1000_attempts_while_another_address_is_served() {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let toml = config(echo, "[limits]\nper_address_connections = 10", "");
    let relay = Binary::with_config(&toml, 1);
    let addr = relay.addr();
    let attempts: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(attempt(addr, LOCAL)))
        .collect();
    let mut held = Vec::new();
    let (mut refused, mut unanswered) = (0, 0);
    for a in attempts {
        let (status, head, stream) = a.await.unwrap();
        match status {
            101 => held.push(stream),
            429 => {
                assert_eq!(retry_after(&head), Some(1), "{head}");
                refused += 1;
            }
            0 => unanswered += 1,
            other => panic!("unexpected {other}: {head}"),
        }
    }
    eprintln!(
        "1000 attempts from 127.0.0.1: {} tunnels, {refused} x 429, {unanswered} closed unanswered",
        held.len()
    );
    assert_eq!(held.len(), 10, "the cap of 10 per address holds");
    assert!(refused >= 900, "refusals are answered with 429: {refused}");
    // Another address is served while the first holds its ten.
    let (status, head, _other) = attempt(addr, SECOND).await;
    assert_eq!(status, 101, "127.0.0.2 is served: {head}");
}

#[tokio::test]
async fn route_listener_and_handshake_caps_answer_503_at_once() {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let toml = config(
        echo,
        "[server]\nhandshake_timeout = \"1s\"\n[limits]\nmax_handshakes = 2\nretry_after = \"3s\"",
        "max_tunnels = 2",
    );
    let gateway = gateway_from(load_config(&toml)).await;
    let addr = gateway.addr;
    // Route: two tunnels, the third is refused before the upstream is contacted.
    let (a, _, first) = attempt(addr, LOCAL).await;
    let (b, _, second) = attempt(addr, LOCAL).await;
    assert_eq!((a, b), (101, 101));
    let (status, head, _) = attempt(addr, LOCAL).await;
    assert_eq!(status, 503, "{head}");
    assert_eq!(retry_after(&head), Some(3), "{head}");
    drop((first, second));
    // Places are given back when tunnels end.
    let mut served = false;
    for _ in 0..100 {
        if attempt(addr, LOCAL).await.0 == 101 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served, "a tunnel's place is given back when it ends");
    // Handshakes in progress: two silent clients hold both places; the third gets 503 at
    // once; the silent ones still time out with 408 at the handshake timeout.
    let mut silent1 = TcpStream::connect(addr).await.unwrap();
    let mut silent2 = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (status, head, mut refused) = attempt(addr, LOCAL).await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(status, 503, "{head}");
    let mut body = String::new();
    refused.read_to_string(&mut body).await.unwrap();
    assert!(body.contains("handshakes are in progress"), "{body}");
    for silent in [&mut silent1, &mut silent2] {
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), silent.read_to_string(&mut answer))
            .await
            .expect("the silent client times out")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let (status, head, _) = attempt(addr, LOCAL).await;
    assert_eq!(status, 101, "after the timeouts: {head}");
    gateway.stop().await;
}

#[tokio::test]
async fn a_listener_cap_and_the_per_address_rate_refuse_with_their_statuses() {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let toml = format!(
        "[limits]\nper_address_rate = 5\nper_address_burst = 5\n[[listeners]]\n\
         address = \"127.0.0.1:0\"\nmax_connections = 1\n[[routes]]\npath_prefix = \"/\"\n\
         upstream = \"ws://{echo}\"\n"
    );
    let gateway = gateway_from(load_config(&toml)).await;
    let (status, _, held) = attempt(gateway.addr, LOCAL).await;
    assert_eq!(status, 101);
    let (status, head, _) = attempt(gateway.addr, SECOND).await;
    assert_eq!(status, 503, "the listener's one place is taken: {head}");
    drop(held);
    // Five a second, five at once, from one address: the rest of a quick series get 429.
    // (A 503 means the previous tunnel's listener place was not given back yet: that attempt
    // took no token; it is tried again.)
    let mut statuses = Vec::new();
    for _ in 0..100 {
        if statuses.len() == 8 {
            break;
        }
        let (status, head, _) = attempt(gateway.addr, LOCAL).await;
        match status {
            503 => {}
            429 => assert!(retry_after(&head).is_some_and(|s| s >= 1), "{head}"),
            101 => {}
            other => panic!("unexpected {other}: {head}"),
        }
        if status != 503 {
            statuses.push(status);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(statuses.len(), 8, "the listener's place came back");
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert!(refused >= 3, "{statuses:?}");
    gateway.stop().await;
}

/// Descriptors and resident memory of a process, from /proc.
fn footprint(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (fds, rss)
}

#[tokio::test]
async fn at_its_descriptor_limit_the_relay_answers_503_at_once_and_recovers() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    let echo = echo_on_its_own_thread();
    let path = write_temp("wsrelay.toml", &config(echo, "", ""));
    let relay = Binary::spawn(
        "prlimit",
        &[
            "--nofile=1024:1024",
            env!("CARGO_BIN_EXE_wsrelay"),
            "--config",
            path.to_str().unwrap(),
        ],
        1,
    );
    let addr = relay.addr();
    let (idle_fds, _) = footprint(relay.child.id());
    // The log (stderr) is read on a thread of its own: the line may trail the announced address.
    let logged = relay.wait_for_log("descriptor budget", Duration::from_secs(5));
    assert!(logged.await.is_some(), "the figures are logged at start");
    let budget = relay.log_lines("descriptor budget");
    assert_eq!(budget.len(), 1, "the figures are logged once");
    eprintln!("{}", budget[0]);
    // One client holds as many tunnels as it gets out of 600.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..12 {
        let batch: Vec<_> = (0..50)
            .map(|_| tokio::spawn(attempt(addr, LOCAL)))
            .collect();
        for a in batch {
            let (status, head, stream) = a.await.unwrap();
            match status {
                101 => held.push(stream),
                503 => refused += 1,
                other => panic!("unexpected {other}: {head}"),
            }
        }
    }
    let (fds, _) = footprint(relay.child.id());
    eprintln!(
        "600 attempts: {} tunnels, {refused} x 503; the relay holds {fds} descriptors of 1024",
        held.len()
    );
    assert!(
        refused > 0 && held.len() > 400,
        "the cap is below 512 tunnels"
    );
    assert!(fds < 1024);
    // New clients get 503 at once, not a stall.
    for _ in 0..5 {
        let started = Instant::now();
        let (status, head, _) = attempt(addr, SECOND).await;
        let took = started.elapsed();
        eprintln!("a new client during the flood: {status} in {took:?}");
        assert_eq!(status, 503, "{head}");
        assert!(
            took < Duration::from_millis(500),
            "answered at once: {took:?}"
        );
    }
    // The flood lets go: the relay winds its tunnels down (their descriptors are closed),
    // then a normal client is served within 100 ms, with no back-off left over.
    drop(held);
    let released = Instant::now();
    while footprint(relay.child.id()).0 > idle_fds + 4 {
        assert!(
            released.elapsed() < Duration::from_secs(5),
            "tunnels never released"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let wound_down = released.elapsed();
    let started = Instant::now();
    let (status, head, _) = attempt(addr, SECOND).await;
    let served = started.elapsed();
    eprintln!(
        "after the release: tunnels closed in {wound_down:?}; a new client served in {served:?} \
         ({:?} after the release)",
        released.elapsed()
    );
    assert_eq!(status, 101, "{head}");
    assert!(served < Duration::from_millis(100), "{served:?}");
}

#[tokio::test]
async fn a_sender_at_ten_times_its_budget_is_throttled_to_it_and_loses_nothing() {
    let (upstream, mut accepted) = raw_upstream().await;
    let route = "client_rate_limit = { messages_per_second = 500, burst_messages = 10 }";
    let relay = Binary::with_config(&config(upstream, "", route), 1);
    let url = format!("ws://{}/", relay.addr());
    let mut client = RawPeer::connect(&url, &[], b"")
        .await
        .unwrap_or_else(|a| panic!("{}", a.head));
    let mut server = accepted.recv().await.unwrap();
    const COUNT: u32 = 1500;
    // The sender: 5,000 messages a second (ten a 2 ms tick), ten times its budget.
    let sender = tokio::spawn(async move {
        let started = Instant::now();
        for i in 0..COUNT {
            client.send(OpCode::Binary, true, &i.to_be_bytes()).await;
            if i % 10 == 9 {
                let due = started + Duration::from_millis(u64::from(i / 10 + 1) * 2);
                tokio::time::sleep_until(due.into()).await;
            }
        }
        eprintln!("sent {COUNT} in {:?}", started.elapsed());
        client
    });
    let mut arrivals = Vec::new();
    for i in 0..COUNT {
        let (h, payload) = server.recv().await.expect("every message arrives");
        assert_eq!(h.opcode, OpCode::Binary);
        assert_eq!(payload, i.to_be_bytes(), "in order, none lost");
        arrivals.push(Instant::now());
    }
    let _client = sender.await.unwrap();
    // Past the burst: the rate the upstream saw over about three seconds.
    let from = 100;
    let window = arrivals[COUNT as usize - 1] - arrivals[from];
    let rate = f64::from(COUNT - 1 - from as u32) / window.as_secs_f64();
    eprintln!("budget 500/s: {rate:.1} messages/s over {window:?}");
    assert!((450.0..=550.0).contains(&rate), "{rate}");
}

#[tokio::test]
async fn the_close_action_closes_a_sender_over_its_budget_with_1008() {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let route = "client_rate_limit = { messages_per_second = 10, action = \"close\" }";
    let gateway = gateway_from(load_config(&config(echo, "", route))).await;
    let mut client = RawPeer::connect(&gateway.url("/"), &[], b"")
        .await
        .unwrap_or_else(|a| panic!("{}", a.head));
    for i in 0u32..30 {
        client
            .send(OpCode::Text, true, format!("{i}").as_bytes())
            .await;
    }
    let mut echoed = 0;
    let (code, reason) = loop {
        let (h, payload) = client.recv().await.expect("a close");
        if h.opcode == OpCode::Close {
            let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
            break (u16::from_be_bytes([payload[0], payload[1]]), reason);
        }
        echoed += 1;
    };
    eprintln!("{echoed} echoed, then close {code} {reason:?}");
    assert_eq!(code, 1008);
    assert!(reason.contains("rate limit"), "{reason}");
    assert!(echoed <= 10, "at most the burst passed: {echoed}");
    gateway.stop().await;
}

#[test]
fn check_reports_bad_limits_at_their_place() {
    let toml = "[limits]\nper_address_burst = 5\nretry_after = \"soon\"\n\n[[listeners]]\n\
                address = \"127.0.0.1:0\"\n\n[[routes]]\npath_prefix = \"/\"\n\
                upstream = \"ws://127.0.0.1:9\"\n\
                client_rate_limit = { messages_per_second = 5, burst_messages = 0, action = \"drop\" }\n";
    let path = write_temp("limits.toml", toml);
    let checked = check_config(&path, &[]);
    let text = checked.stderr;
    assert_ne!(checked.code, Some(0), "{text}");
    for (message, line) in [
        ("per_address_burst without per_address_rate", ":2:"),
        ("invalid duration \"soon\"", ":3:"),
        ("burst_messages cannot be 0", ":11:"),
        ("unknown rate limit action \"drop\"", ":11:"),
    ] {
        let at = text
            .lines()
            .position(|l| l.contains(message))
            .unwrap_or_else(|| panic!("{message} missing:\n{text}"));
        let place = text.lines().skip(at).take(3).collect::<Vec<_>>().join("\n");
        assert!(place.contains(line), "{message} at line {line}:\n{text}");
    }
}

/// One short tunnel: upgrade, a close each way, hang up. Panics on anything else.
async fn short_tunnel(addr: SocketAddr, request: &[u8], close: &[u8]) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.unwrap();
    let mut got = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    let head_end = loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed during the handshake");
        got.extend_from_slice(&chunk[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    s.write_all(close).await.unwrap();
    let mut rest = got.split_off(head_end);
    s.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest.first(), Some(&0x88), "the close comes back");
}

/// `count` short tunnels, `parallel` at a time.
async fn churn(addr: SocketAddr, count: usize, parallel: usize) {
    let request = upgrade_request("/", "localhost", "").into_bytes();
    let close = frame(OpCode::Close, true, &close_payload(1000, ""), true);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..parallel)
        .map(|_| {
            let (request, close, next) = (request.clone(), close.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                    short_tunnel(addr, &request, &close).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}

/// Connections of the churn test: the 100,000 with `WSRELAY_CHURN=100000` (see the
/// README for how long it takes here); fewer by default to keep `cargo test` within budget.
fn churn_count() -> usize {
    std::env::var("WSRELAY_CHURN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_churn_descriptors_and_memory_return_to_where_they_were() {
    let echo = echo_on_its_own_thread();
    // glibc's dynamic mmap threshold moves up after the first 256 KiB relay buffer is freed,
    // after which freed buffers stay in the heap or go back to the OS by chance (seen: +10%
    // in a 5,000-connection run with no trend, -5% in the next). A fixed threshold makes every
    // buffer an mmap returned when freed, so what is measured is what the relay keeps.
    let path = write_temp("wsrelay.toml", &config(echo, "", ""));
    let relay = Binary::spawn_with_env(
        env!("CARGO_BIN_EXE_wsrelay"),
        &["--config", path.to_str().unwrap()],
        1,
        &[("MALLOC_MMAP_THRESHOLD_", "131072")],
    );
    let (addr, pid) = (relay.addr(), relay.child.id());
    let settle = |pause| async move {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        footprint(pid)
    };
    // Warm up (buffers pooled, allocator arenas and the runtimes' structures at their size),
    // in five steps: the resident size of an idle moment varies by several per cent from one
    // to the next (the allocator's heap around the 256 KiB relay buffers), so where the
    // process started is the highest footprint it showed under this load.
    let mut warm = Vec::new();
    for _ in 0..5 {
        churn(addr, 1_000, 32).await;
        warm.push(settle(300).await);
    }
    let fds_before = warm.iter().map(|f| f.0).max().unwrap();
    let rss_before = warm.iter().map(|f| f.1).max().unwrap();
    let count = churn_count();
    let started = Instant::now();
    // In tenths, with the footprint after each, to tell growth from a plateau.
    let mut series = Vec::new();
    for _ in 0..10 {
        churn(addr, count / 10, 32).await;
        series.push(settle(300).await.1);
    }
    let took = started.elapsed();
    let (fds_after, rss_after) = settle(1000).await;
    let warm_rss: Vec<u64> = warm.iter().map(|f| f.1).collect();
    eprintln!(
        "{count} short connections in {took:?} ({:.0}/s): descriptors {fds_before} -> \
         {fds_after}, RSS {rss_before} kB -> {rss_after} kB (kB during the warm-up: \
         {warm_rss:?}, after each tenth: {series:?})",
        count as f64 / took.as_secs_f64()
    );
    assert!(fds_after <= fds_before, "descriptors leaked");
    let grown = rss_after as f64 / rss_before as f64;
    assert!(grown <= 1.05, "RSS {rss_before} kB -> {rss_after} kB");
}
