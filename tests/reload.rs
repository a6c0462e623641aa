//! Live reconfiguration and draining, end to end on the real binary: reloads (SIGHUP and
//! `POST /reload`) under traffic, routes and listeners added and removed, a rotated
//! certificate, the drain choreography's timings, and a binary upgrade on the same port.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::Message;

type Ws = WsClient;

/// A configuration with an admin listener, `listeners` and `routes` (TOML tables), and
/// `server` keys.
fn config(server: &str, listeners: &[String], routes: &[(&str, &str, SocketAddr)]) -> String {
    let mut toml = format!("[server]\nworkers = 2\nshutdown_timeout = \"5s\"\n{server}\n[admin]\naddress = \"127.0.0.1:0\"\n");
    for l in listeners {
        toml.push_str(&format!("[[listeners]]\naddress = \"{l}\"\n"));
    }
    for (name, prefix, upstream) in routes {
        toml.push_str(&format!(
            "[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"ws://{upstream}/\"\n"
        ));
    }
    toml
}

/// Starts the binary on the configuration file at `path`.
fn start(path: &Path, listeners: usize) -> Binary {
    let path = path.to_str().unwrap().to_owned();
    Binary::spawn(
        env!("CARGO_BIN_EXE_wsrelay"),
        &["--config", &path],
        listeners,
    )
}

fn signal(binary: &Binary, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &binary.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `POST /reload` on the admin listener: the status and the body.
async fn post_reload(binary: &Binary) -> (u16, String) {
    let admin = binary.admin.expect("admin listener");
    let response = http_exchange(
        admin,
        "POST /reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// The status of `GET path` on the admin listener.
async fn admin_status(binary: &Binary, path: &str) -> u16 {
    let admin = binary.admin.expect("admin listener");
    let response = http_exchange(
        admin,
        &format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n"),
    )
    .await;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A WebSocket client through the gateway.
async fn open(addr: SocketAddr, path: &str) -> Result<Ws, String> {
    open_ws(addr, path).await
}

/// Sends `text` and expects it back.
async fn echo(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(back)))) if back.as_str() == text => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// Waits for a close frame; its code.
async fn closed_with(ws: &mut Ws, within: Duration) -> Option<u16> {
    let wait = async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(within, wait).await.ok().flatten()
}

/// A free port on loopback address `ip`, as `ip:port`. Each test listens on an address of its
/// own (127.0.0.2, .3, ...): the gateway binds with `SO_REUSEPORT`, so two tests' processes that
/// drew the same free port on one address would share its connections.
fn free_address(ip: &str) -> String {
    let port = std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("{ip}:{port}")
}

/// An echo upstream, a listener address on a free port of `ip`, and a configuration file with
/// `server` keys and one route.
struct Setup {
    upstream: SocketAddr,
    listener: Vec<String>,
    path: PathBuf,
}

async fn setup(ip: &str, server: &str, route: &str, prefix: &str) -> Setup {
    let upstream = wsrelay::echo::spawn(loopback()).await.unwrap();
    let listener = vec![free_address(ip)];
    let toml = config(server, &listener, &[(route, prefix, upstream)]);
    let path = write_temp("wsrelay.toml", &toml);
    Setup {
        upstream,
        listener,
        path,
    }
}

fn rewrite(path: &Path, toml: &str) {
    std::fs::write(path, toml).unwrap();
}

/// Counts of a continuous stream of short connections (handshake, one echo, close).
#[derive(Default)]
struct Churn {
    attempts: AtomicUsize,
    failed_handshakes: AtomicUsize,
    failed_echoes: AtomicUsize,
}

/// Opens a connection every `every` until `stop`, counting in `churn`.
async fn churn(
    addr: SocketAddr,
    every: Duration,
    churn: Arc<Churn>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        let churn = Arc::clone(&churn);
        tasks.spawn(async move {
            let n = churn.attempts.fetch_add(1, Ordering::Relaxed);
            match open(addr, "/").await {
                Ok(mut ws) => {
                    if let Err(e) = echo(&mut ws, &format!("churn {n}")).await {
                        // A drained tunnel closes with 1001 right after its 101: not a refusal.
                        if !e.contains("Close") {
                            churn.failed_echoes.fetch_add(1, Ordering::Relaxed);
                            eprintln!("churn echo failed: {e}");
                        }
                    }
                    let _ = ws.close(None).await;
                }
                Err(e) => {
                    churn.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                    eprintln!("churn handshake failed: {e}");
                }
            }
        });
        tokio::time::sleep(every).await;
    }
    while tasks.join_next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_reloads_under_traffic_close_nothing_and_report_the_invalid_one() {
    let Setup {
        upstream,
        listener,
        path,
    } = setup("127.0.0.2", "", "main", "/").await;
    let gateway = start(&path, 1);
    let addr = gateway.addr();
    // Twenty tunnels, each echoing a numbered message every 20 ms through all the reloads.
    let mut tunnels = Vec::new();
    for _ in 0..20 {
        tunnels.push(open(addr, "/").await.expect("tunnel"));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut traffic = tokio::task::JoinSet::new();
    for (t, mut ws) in tunnels.into_iter().enumerate() {
        let stop = Arc::clone(&stop);
        traffic.spawn(async move {
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) {
                echo(&mut ws, &format!("tunnel {t} message {sent}")).await?;
                sent += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = ws.close(None).await;
            Ok::<usize, String>(sent)
        });
    }
    let counts = Arc::new(Churn::default());
    let churning = tokio::spawn(churn(
        addr,
        Duration::from_millis(20),
        Arc::clone(&counts),
        Arc::clone(&stop),
    ));
    let mut invalid_body = String::new();
    for n in 1..=10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if n == 5 {
            // Line 4, column 21: the bad duration.
            let mut text = config("", &listener, &[("main", "/", upstream)]);
            text = text.replacen(
                "shutdown_timeout = \"5s\"\n",
                "shutdown_timeout = \"5s\"\ndrain_window = \"soon\"\n",
                1,
            );
            rewrite(&path, &text);
            let (status, body) = post_reload(&gateway).await;
            assert_eq!(status, 400, "{body}");
            invalid_body = body;
            continue;
        }
        // Each reload changes something real: one more route each time.
        let extra = format!("extra{n}");
        let extra_prefix = format!("/{extra}");
        let routes = [
            ("main", "/", upstream),
            (extra.as_str(), extra_prefix.as_str(), upstream),
        ];
        rewrite(&path, &config("", &listener, &routes));
        if n % 2 == 0 {
            let (status, body) = post_reload(&gateway).await;
            assert_eq!(status, 200, "{body}");
        } else {
            signal(&gateway, "HUP");
            let applied = gateway
                .wait_for_log(&format!("routes added: {extra}"), Duration::from_secs(5))
                .await;
            assert!(
                applied.is_some(),
                "SIGHUP reload {n} not applied: {:?}",
                gateway.log_lines("reload")
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    churning.await.unwrap();
    let mut messages = 0;
    let mut closed = 0;
    while let Some(done) = traffic.join_next().await {
        match done.unwrap() {
            Ok(sent) => messages += sent,
            Err(e) => {
                closed += 1;
                eprintln!("tunnel failed: {e}");
            }
        }
    }
    let attempts = counts.attempts.load(Ordering::Relaxed);
    let failed = counts.failed_handshakes.load(Ordering::Relaxed);
    let lost = counts.failed_echoes.load(Ordering::Relaxed);
    println!(
        "10 reloads (4 SIGHUP, 5 POST /reload, 1 invalid POST /reload): 20 tunnels, {messages} messages echoed, \
         {closed} tunnels closed; {attempts} new connections, {failed} failed handshakes, {lost} lost echoes"
    );
    assert_eq!(closed, 0);
    assert_eq!(failed, 0);
    assert_eq!(lost, 0);
    assert!(messages > 20 * 20, "{messages}");
    // The invalid file: answered and logged with its position, as `wsrelay check` prints it.
    let position = format!("{}:4:16: error: invalid duration", path.display());
    assert!(invalid_body.contains(&position), "{invalid_body}");
    assert!(
        invalid_body.contains("the running configuration stays"),
        "{invalid_body}"
    );
    let logged = gateway.log_lines("reload refused");
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(!gateway.log_lines(&position).is_empty());
    println!("invalid reload answered:\n{invalid_body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_added_serves_a_route_removed_refuses_and_its_tunnel_stays_until_the_grace() {
    let Setup {
        upstream,
        listener,
        path,
    } = setup("127.0.0.3", "", "a", "/a").await;
    let gateway = start(&path, 1);
    let addr = gateway.addr();
    let mut on_a = open(addr, "/a").await.expect("route a");
    assert!(open(addr, "/b").await.unwrap_err().contains("404"));

    // Added: served at once.
    rewrite(
        &path,
        &config(
            "",
            &listener,
            &[("a", "/a", upstream), ("b", "/b", upstream)],
        ),
    );
    assert_eq!(post_reload(&gateway).await.0, 200);
    let mut on_b = open(addr, "/b").await.expect("route b after the reload");
    echo(&mut on_b, "b").await.unwrap();

    // Removed: new requests get 404, the open tunnel stays (no grace by default).
    rewrite(&path, &config("", &listener, &[("b", "/b", upstream)]));
    let (status, body) = post_reload(&gateway).await;
    assert_eq!(status, 200);
    assert!(body.contains("routes removed: a"), "{body}");
    assert!(open(addr, "/a").await.unwrap_err().contains("404"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    echo(&mut on_a, "still here")
        .await
        .expect("the removed route's tunnel stays");

    // With a grace: the orphaned tunnel gets 1001 within grace + window; route b's stays.
    let (grace, window) = (Duration::from_millis(300), Duration::from_millis(400));
    let server = "orphaned_tunnel_grace = \"300ms\"\norphaned_tunnel_window = \"400ms\"";
    rewrite(&path, &config(server, &listener, &[("b", "/b", upstream)]));
    let reloaded = Instant::now();
    assert_eq!(post_reload(&gateway).await.0, 200);
    let code = closed_with(&mut on_a, Duration::from_secs(5)).await;
    let took = reloaded.elapsed();
    println!(
        "orphaned tunnel closed with {code:?} after {took:?} (grace {grace:?}, window {window:?})"
    );
    assert_eq!(code, Some(1001));
    assert!(
        took >= grace && took <= grace + window + Duration::from_millis(1000),
        "{took:?}"
    );
    echo(&mut on_b, "b stays")
        .await
        .expect("route b's tunnel stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_are_added_and_removed_and_a_bind_failure_changes_nothing() {
    let upstream = wsrelay::echo::spawn(loopback()).await.unwrap();
    let first = free_address("127.0.0.4");
    let second = free_address("127.0.0.4");
    let routes = [("main", "/", upstream)];
    let path = write_temp(
        "wsrelay.toml",
        &config("", std::slice::from_ref(&first), &routes),
    );
    let gateway = start(&path, 1);
    let second_addr: SocketAddr = second.parse().unwrap();
    assert!(open(second_addr, "/").await.is_err());

    rewrite(
        &path,
        &config("", &[first.clone(), second.clone()], &routes),
    );
    let (status, body) = post_reload(&gateway).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("listeners added: {second}")),
        "{body}"
    );
    let mut on_second = open(second_addr, "/")
        .await
        .expect("the added listener serves");
    echo(&mut on_second, "hello").await.unwrap();

    rewrite(&path, &config("", std::slice::from_ref(&first), &routes));
    let (status, body) = post_reload(&gateway).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = tokio::net::TcpStream::connect(second_addr).await;
    assert!(refused.is_err(), "the removed listener still accepts");
    echo(&mut on_second, "still open")
        .await
        .expect("its tunnel stays");

    // An address held by someone else (no SO_REUSEPORT): the whole reload fails, nothing changes.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    let routes_plus = [("main", "/", upstream), ("new", "/new", upstream)];
    rewrite(
        &path,
        &config("", &[first.clone(), taken.clone()], &routes_plus),
    );
    let (status, body) = post_reload(&gateway).await;
    println!("bind failure answered {status}: {body}");
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains(&format!("cannot bind the new listener {taken}")),
        "{body}"
    );
    let first_addr: SocketAddr = first.parse().unwrap();
    let mut ws = open(first_addr, "/new")
        .await
        .expect("served by the catch-all route");
    echo(&mut ws, "old routes").await.unwrap();
    assert_eq!(gateway.log_lines("routes added: new").len(), 0);
    // The first listener's gauge still counts its own connections (the one open: `ws`).
    let admin = gateway.admin.unwrap();
    let metrics = http_exchange(admin, "GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n").await;
    let gauge = format!("wsrelay_client_connections{{listener=\"{first}\"}} 1");
    assert!(metrics.contains(&gauge), "{metrics}");

    // A setting that cannot change while running: kept, with a warning.
    let more_workers =
        config("", std::slice::from_ref(&first), &routes).replace("workers = 2", "workers = 3");
    rewrite(&path, &more_workers);
    let (status, body) = post_reload(&gateway).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("warning: workers cannot change while running: 2 kept"),
        "{body}"
    );
    // Two reloads at once, the first adding a listener: a worker that sees only the second
    // generation still serves its socket of the new listener (2 workers; 20 connections spread
    // over both sockets by the kernel).
    let third = free_address("127.0.0.4");
    let both = [first.clone(), third.clone()];
    rewrite(&path, &config("", &both, &routes));
    let (a, b) = tokio::join!(post_reload(&gateway), post_reload(&gateway));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let third: SocketAddr = third.parse().unwrap();
    for n in 0..20 {
        let mut ws = open(third, "/")
            .await
            .expect("every worker serves the added listener");
        echo(&mut ws, &format!("third {n}")).await.unwrap();
    }
}

/// A CA and leaves signed by it, for a TLS listener whose certificate is rotated.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            der: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Writes a leaf for `localhost` to `cert` and `key`; its DER.
    fn leaf(&self, cert: &Path, key: &Path) -> Vec<u8> {
        let pair = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&pair, &self.issuer)
            .unwrap();
        std::fs::write(cert, leaf.pem()).unwrap();
        std::fs::write(key, pair.serialize_pem()).unwrap();
        leaf.der().to_vec()
    }
}

/// The certificate a TLS listener serves now.
async fn served_certificate(addr: SocketAddr, ca: &TestCa) -> Vec<u8> {
    let config = tls_client_config(&ca.der);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_after_a_reload() {
    let upstream = wsrelay::echo::spawn(loopback()).await.unwrap();
    let ca = TestCa::new();
    let dir: PathBuf = write_temp("ca.txt", "").parent().unwrap().to_owned();
    let (cert, key) = (dir.join("leaf.pem"), dir.join("leaf.key"));
    let before = ca.leaf(&cert, &key);
    let toml = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[listeners.tls.certificates]]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{upstream}/\"\n",
        cert.display(),
        key.display()
    );
    let path = dir.join("wsrelay.toml");
    std::fs::write(&path, toml).unwrap();
    let gateway = start(&path, 1);
    assert_eq!(served_certificate(gateway.addr(), &ca).await, before);
    let after = ca.leaf(&cert, &key);
    assert_ne!(before, after);
    // Not before the reload: the files are read when the configuration is.
    assert_eq!(served_certificate(gateway.addr(), &ca).await, before);
    signal(&gateway, "HUP");
    assert!(gateway
        .wait_for_log("reloaded: generation 1", Duration::from_secs(5))
        .await
        .is_some());
    assert_eq!(served_certificate(gateway.addr(), &ca).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_goes_unready_keeps_accepting_then_spreads_its_closes() {
    let (delay, window) = (Duration::from_millis(1000), Duration::from_millis(1500));
    let server = "drain_delay = \"1s\"\ndrain_window = \"1500ms\"";
    let path = setup("127.0.0.5", server, "main", "/").await.path;
    let gateway = start(&path, 1);
    let addr = gateway.addr();
    let mut tunnels = Vec::new();
    for _ in 0..12 {
        tunnels.push(open(addr, "/").await.expect("tunnel"));
    }
    assert_eq!(admin_status(&gateway, "/readyz").await, 200);
    signal(&gateway, "TERM");
    let signalled = Instant::now();
    // Each tunnel's close, timed from the signal.
    let mut closes = tokio::task::JoinSet::new();
    for mut ws in tunnels {
        closes.spawn(async move {
            let code = closed_with(&mut ws, Duration::from_secs(10)).await;
            (code, signalled.elapsed())
        });
    }
    // The signal is handled on the gateway's own time: readiness is polled until it turns
    // (a single look right after `kill` raced with the handler on a loaded machine).
    let mut unready = admin_status(&gateway, "/readyz").await;
    while unready != 503 && signalled.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        unready = admin_status(&gateway, "/readyz").await;
    }
    let unready_after = signalled.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut during_delay = open(addr, "/")
        .await
        .expect("accepting during the drain delay");
    echo(&mut during_delay, "late").await.unwrap();
    tokio::time::sleep(delay).await;
    let after_delay = tokio::net::TcpStream::connect(addr).await;
    let mut times = Vec::new();
    while let Some(done) = closes.join_next().await {
        let (code, at) = done.unwrap();
        assert_eq!(code, Some(1001));
        times.push(at);
    }
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    println!(
        "drain: readyz {unready} after {unready_after:?}; accepted during the delay; 12 closes \
         1001 from {first:?} to {last:?} after the signal (delay {delay:?}, window {window:?})"
    );
    assert_eq!(unready, 503);
    assert!(
        unready_after < Duration::from_millis(500),
        "{unready_after:?}"
    );
    assert!(
        after_delay.is_err(),
        "still accepting after the drain delay"
    );
    assert!(first >= delay, "closed before the drain delay: {first:?}");
    assert!(
        last <= delay + window + Duration::from_millis(1000),
        "{last:?}"
    );
    assert!(
        last - first >= Duration::from_millis(100),
        "closes not spread: {times:?}"
    );
}

/// Sets `net.ipv4.tcp_migrate_req` for the test and puts the old value back when dropped.
struct MigrateReq {
    old: Option<String>,
}

const MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

impl MigrateReq {
    fn enable() -> MigrateReq {
        let old = std::fs::read_to_string(MIGRATE_REQ).ok();
        match std::fs::write(MIGRATE_REQ, "1") {
            Ok(()) => println!(
                "net.ipv4.tcp_migrate_req = 1 for the test (was {:?})",
                old.as_deref().map(str::trim)
            ),
            Err(e) => println!(
                "NOTE: cannot set net.ipv4.tcp_migrate_req ({e}): connections queued in the old \
                 process's accept queue may be reset when it stops listening"
            ),
        }
        MigrateReq { old }
    }
}

impl Drop for MigrateReq {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = std::fs::write(MIGRATE_REQ, old.trim());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_upgrade_on_the_same_port_refuses_no_connection() {
    let _migrate = MigrateReq::enable();
    let path = setup("127.0.0.6", "", "main", "/").await.path;
    let old = start(&path, 1);
    let addr = old.addr();
    let counts = Arc::new(Churn::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // 100 new connections a second, across the handover.
    let started = Instant::now();
    let churning = tokio::spawn(churn(
        addr,
        Duration::from_millis(10),
        Arc::clone(&counts),
        Arc::clone(&stop),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let new = start(&path, 1);
    assert_eq!(new.addr(), addr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&old, "TERM");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop.store(true, Ordering::Relaxed);
    churning.await.unwrap();
    let took = started.elapsed();
    let mut old = old;
    let (exited, old_served) = tokio::task::spawn_blocking(move || {
        let exited = old.child.wait().unwrap();
        (exited, old.log_lines("connection finished").len())
    })
    .await
    .unwrap();
    let new_served = new.log_lines("connection finished").len();
    let attempts = counts.attempts.load(Ordering::Relaxed);
    let failed = counts.failed_handshakes.load(Ordering::Relaxed);
    let rate = attempts as f64 / took.as_secs_f64();
    println!(
        "binary upgrade: {attempts} connections in {took:?} ({rate:.0}/s), {failed} failed handshakes, \
         {} failed echoes (a tunnel that got 1001 right after its 101 is not one); access log \
         lines: old process {old_served}, new one {new_served}; old process exited {exited}",
        counts.failed_echoes.load(Ordering::Relaxed),
    );
    assert!(new_served > 0, "the new process served nothing");
    assert!(rate >= 50.0, "{rate}");
    assert_eq!(failed, 0);
    assert!(exited.success());
    let mut ws = open(addr, "/").await.expect("the new process serves");
    echo(&mut ws, "after").await.unwrap();
    drop(new);
}

/// The Kubernetes manifests as JSON documents, parsed by python3's yaml module; `None` (and a
/// visible note) when that is not installed.
fn kubernetes_manifests() -> Option<Vec<serde_json::Value>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let script = "import json, sys, yaml\n\
                  docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]\n\
                  print(json.dumps(docs))";
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output();
    match output {
        Ok(out) if out.status.success() => Some(serde_json::from_slice(&out.stdout).unwrap()),
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No module named 'yaml'") => None,
        Ok(out) => panic!(
            "YAML does not parse: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => None,
    }
}

#[test]
fn the_kubernetes_manifests_parse_and_their_grace_period_covers_the_drain() {
    let Some(docs) = kubernetes_manifests() else {
        println!("SKIPPED: python3 with the yaml module is needed to parse deploy/kubernetes");
        return;
    };
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k} in deploy/kubernetes"))
    };
    for k in ["Deployment", "Service", "ConfigMap", "PodDisruptionBudget"] {
        kind(k);
    }
    let toml = kind("ConfigMap")["data"]["wsrelay.toml"].as_str().unwrap();
    let config = wsrelay::config::parse(toml, "configmap.yaml", Path::new("."))
        .unwrap_or_else(|e| panic!("the ConfigMap's configuration is refused:\n{e}"));
    let pod = &kind("Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    let admin_port = (container["ports"].as_array().unwrap().iter())
        .find(|p| p["name"] == "admin")
        .unwrap()["containerPort"]
        .as_u64();
    assert_eq!(admin_port, config.admin.map(|a| u64::from(a.port())));
    let pre_stop = container["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let drain = config.winding_down.longest_drain(config.shutdown_timeout);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    println!(
        "deploy/kubernetes: {} documents; grace {grace}s >= preStop {pre_stop}s + drain {drain:?}",
        docs.len()
    );
    assert!(Duration::from_secs(grace) >= Duration::from_secs(pre_stop) + drain);
}

/// A TCP server that counts the connections it accepts (a health-checked backend).
async fn counting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
        }
    });
    (addr, count)
}

/// Health checks seen by `count` over `time`.
async fn checks_during(count: &AtomicUsize, time: Duration) -> usize {
    let before = count.load(Ordering::Relaxed);
    tokio::time::sleep(time).await;
    count.load(Ordering::Relaxed) - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_and_pool_state_follows_names_and_health_checks_follow_pools() {
    let upstream = wsrelay::echo::spawn(loopback()).await.unwrap();
    let (checked, probes) = counting_backend().await;
    let listener = free_address("127.0.0.7");
    let document = |first: &str, with_checked: bool| {
        let mut toml = format!(
            "[admin]\naddress = \"127.0.0.1:0\"\n[[listeners]]\naddress = \"{listener}\"\n\
             {first}\
             [[routes]]\nname = \"capped\"\npath_prefix = \"/capped\"\nupstream = \"ws://{upstream}/\"\nmax_tunnels = 1\n\
             [[routes]]\nname = \"pooled\"\npath_prefix = \"/pooled\"\npool = \"main\"\n\
             [[pools]]\nname = \"main\"\nbackends = [{{ uri = \"ws://{upstream}/\" }}]\nmax_tunnels_per_backend = 1\n"
        );
        if with_checked {
            toml.push_str(&format!(
                "[[routes]]\nname = \"checked\"\npath_prefix = \"/checked\"\npool = \"checked\"\n\
                 [[pools]]\nname = \"checked\"\nbackends = [{{ uri = \"ws://{checked}/\" }}]\n\
                 [pools.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\n"
            ));
        }
        toml
    };
    let path = write_temp("wsrelay.toml", &document("", false));
    let gateway = start(&path, 1);
    let addr = gateway.addr();
    let mut capped = open(addr, "/capped").await.expect("capped");
    let mut pooled = open(addr, "/pooled").await.expect("pooled");
    assert!(open(addr, "/capped").await.unwrap_err().contains("503"));
    assert!(open(addr, "/pooled").await.unwrap_err().contains("503"));

    // A route put first moves the others' positions; a pool added starts its checks.
    let first = format!(
        "[[routes]]\nname = \"first\"\npath_prefix = \"/first\"\nupstream = \"ws://{upstream}/\"\n"
    );
    rewrite(&path, &document(&first, true));
    let (status, body) = post_reload(&gateway).await;
    assert_eq!(status, 200, "{body}");
    let capped_after = open(addr, "/capped").await.unwrap_err();
    let pooled_after = open(addr, "/pooled").await.unwrap_err();
    let checks_while_configured = checks_during(&probes, Duration::from_millis(600)).await;

    // The pool removed: its checks stop.
    rewrite(&path, &document(&first, false));
    assert_eq!(post_reload(&gateway).await.0, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let checks_after_removal = checks_during(&probes, Duration::from_millis(600)).await;
    println!(
        "after a reload: capped route {capped_after:?}, pooled route {pooled_after:?}; health \
         checks of the added pool in 600 ms: {checks_while_configured}, after its removal: \
         {checks_after_removal}"
    );
    assert!(
        capped_after.contains("503"),
        "the route's open tunnel was forgotten"
    );
    assert!(
        pooled_after.contains("503"),
        "the pool's open tunnel was forgotten"
    );
    assert!(checks_while_configured >= 3, "{checks_while_configured}");
    assert_eq!(checks_after_removal, 0);

    // The tunnels opened before the reloads give their places back to the same counts.
    echo(&mut capped, "old").await.unwrap();
    echo(&mut pooled, "old").await.unwrap();
    capped.close(None).await.unwrap();
    pooled.close(None).await.unwrap();
    let _ = closed_with(&mut capped, Duration::from_secs(2)).await;
    let _ = closed_with(&mut pooled, Duration::from_secs(2)).await;
    // The client side ends its TCP connection too, so both tunnels finish now.
    drop((capped, pooled));
    let deadline = Instant::now() + Duration::from_secs(5);
    while gateway.log_lines("connection finished").len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut again = open(addr, "/capped")
        .await
        .expect("the route's place was given back");
    echo(&mut again, "new").await.unwrap();
    let mut again = open(addr, "/pooled")
        .await
        .expect("the pool's place was given back");
    echo(&mut again, "new").await.unwrap();
}
