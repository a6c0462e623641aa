//! Observability end to end: the admin listener's endpoints, every metric family after a known
//! exchange (checked by `promtool check metrics`), the JSON access log, and a real Prometheus
//! server scraping a running `wsrelay` (components installed by `scripts/install-prometheus.sh`;
//! a test that cannot have them says `SKIPPED` and returns).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;
use wsrelay::codec::OpCode;

/// A response: status code, head, body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP request to `addr` (the connection closes after the response).
async fn http(addr: SocketAddr, method: &str, path: &str, accept: Option<&str>) -> Answer {
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
    let response = http_exchange(addr, &request).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// The samples of a text exposition: (name, labels) -> value.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = value.parse().expect("sample value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').expect("label");
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        out.push((name.to_owned(), labels, value));
    }
    out
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
}

/// Scrapes until `check` holds on the text exposition (the relay publishes as it goes, and a
/// tunnel's end is counted once its task finishes), at most 10 s; returns the last scrape.
async fn scrape_until(admin: SocketAddr, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http(admin, "GET", "/metrics", None).await.body;
        if check(&body) || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// promtool and prometheus from `scripts/install-prometheus.sh`, or why not; the script runs
/// once for all tests (two package installs at once would fight over the package lock).
fn prometheus_tools() -> Result<(PathBuf, PathBuf), String> {
    static TOOLS: std::sync::OnceLock<Result<(PathBuf, PathBuf), String>> =
        std::sync::OnceLock::new();
    TOOLS.get_or_init(install_prometheus).clone()
}

fn install_prometheus() -> Result<(PathBuf, PathBuf), String> {
    let paths = run_install_script("install-prometheus.sh")?;
    let mut lines = paths.lines().map(PathBuf::from);
    match (lines.next(), lines.next()) {
        (Some(promtool), Some(prometheus)) => Ok((promtool, prometheus)),
        _ => Err(format!("install-prometheus.sh printed {paths:?}")),
    }
}

/// The binary in front of its built-in echo server, with an admin listener on a free port.
fn binary_with_admin(extra: &[&str]) -> (Binary, SocketAddr) {
    let mut args = vec!["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let binary = Binary::spawn(env!("CARGO_BIN_EXE_wsrelay"), &args, 1);
    let admin = binary
        .admin
        .expect("the binary announces its admin listener");
    (binary, admin)
}

#[tokio::test]
async fn admin_endpoints_answer_get_only_and_404_elsewhere() {
    let (_binary, admin) = binary_with_admin(&[]);
    let livez = http(admin, "GET", "/livez", None).await;
    assert_eq!((livez.status, livez.body.as_str()), (200, "ok\n"));
    assert_eq!(http(admin, "GET", "/readyz", None).await.status, 200);
    assert_eq!(http(admin, "GET", "/nothing", None).await.status, 404);
    assert_eq!(http(admin, "GET", "/metrics/x", None).await.status, 404);
    let post = http(admin, "POST", "/metrics", None).await;
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET"), "{}", post.head);
    assert_eq!(http(admin, "HEAD", "/livez", None).await.status, 405);
    // A malformed head: 400, not a hang.
    let garbage = http_exchange(admin, "\x01\x02 nonsense\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");

    let text = http(admin, "GET", "/metrics", None).await;
    assert_eq!(text.status, 200);
    assert!(
        text.head.contains("text/plain; version=0.0.4"),
        "{}",
        text.head
    );
    assert!(!text.body.contains("# EOF"));
    assert!(text
        .body
        .contains("# TYPE wsrelay_handshakes_total counter"));
    let prometheus_accept =
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let om = http(admin, "GET", "/metrics", Some(prometheus_accept)).await;
    assert!(
        om.head.contains("application/openmetrics-text"),
        "{}",
        om.head
    );
    assert!(om.body.ends_with("# EOF\n"));
    assert!(om.body.contains("# TYPE wsrelay_handshakes counter"));
}

#[tokio::test]
async fn readyz_turns_503_once_shutdown_begins_while_tunnels_drain() {
    // An upstream that never answers a close keeps the drain going for its close timeout.
    let (upstream, mut peers) = raw_upstream().await;
    let mut config = load_config(&format!(
        "[server]\nshutdown_timeout = \"10s\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{upstream}\"\nclose_timeout = \"3s\"\n"
    ));
    config.admin = Some(loopback());
    let gateway = wsrelay::gateway::Gateway::bind(config).await.unwrap();
    let (addr, admin) = (gateway.local_addr().unwrap(), gateway.admin_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(gateway.run(async {
        let _ = stopped.await;
    }));
    let mut client = RawPeer::connect(&format!("ws://{addr}/"), &[], b"")
        .await
        .unwrap_or_else(|_| panic!("upgrade refused"));
    let _upstream_side = peers.recv().await.unwrap();
    assert_eq!(http(admin, "GET", "/readyz", None).await.status, 200);
    stop.send(()).unwrap();
    assert_eq!(client.expect_close().await, Some(1001));
    let readyz = http(admin, "GET", "/readyz", None).await;
    assert_eq!((readyz.status, readyz.body.as_str()), (503, "draining\n"));
    // Still live, and still scraped, while draining.
    assert_eq!(http(admin, "GET", "/livez", None).await.status, 200);
    let metrics = http(admin, "GET", "/metrics", None).await.body;
    assert_eq!(value(&metrics, "wsrelay_open_tunnels", &[]), Some(1.0));
    drop(client);
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("gateway exits")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn every_metric_family_has_the_values_of_a_known_exchange() {
    let (binary, admin) = binary_with_admin(&[]);
    let url = format!("ws://{}/chat", binary.addr());
    let mut client = RawPeer::connect(&url, &[], b"")
        .await
        .unwrap_or_else(|_| panic!("upgrade refused"));
    // Three one-frame messages of 5 bytes, one message in two fragments (3 + 2 bytes).
    for _ in 0..3 {
        client.send(OpCode::Text, true, b"hello").await;
        assert_eq!(client.recv().await.unwrap().1, b"hello");
    }
    client.send(OpCode::Binary, false, b"abc").await;
    client.send(OpCode::Continuation, true, b"de").await;
    let mut echoed = Vec::new();
    while echoed.len() < 5 {
        echoed.extend(client.recv().await.unwrap().1);
    }
    // While the tunnel is open, its live counts are scraped already.
    let open = scrape_until(admin, |m| {
        value(
            m,
            "wsrelay_frames_total",
            &[("direction", "client_to_upstream")],
        ) == Some(5.0)
    })
    .await;
    let tunnel = [("route", "default"), ("backend", "")];
    let open_tunnels = samples(&open)
        .into_iter()
        .find(|(n, l, _)| n == "wsrelay_open_tunnels" && l["route"] == tunnel[0].1)
        .expect("open tunnels of the route");
    assert_eq!(open_tunnels.2, 1.0, "{open}");
    assert!(
        open_tunnels.1["backend"].starts_with("127.0.0.1:"),
        "{open}"
    );
    assert_eq!(value(&open, "wsrelay_client_connections", &[]), Some(1.0));

    client
        .send(OpCode::Close, true, &close_payload(1000, "bye"))
        .await;
    assert_eq!(client.expect_close().await, Some(1000));
    client.expect_eof().await;
    // A plain GET is refused with 426 on the route; the refusal is counted by its status.
    let refused = http_exchange(binary.addr(), "GET /chat HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 426"), "{refused}");
    // A request that is not HTTP is refused before any route: 400 on route "-".
    let bad = http_exchange(binary.addr(), "NOT HTTP\r\n\r\n").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");

    let m = scrape_until(admin, |m| {
        value(m, "wsrelay_tunnel_duration_seconds_count", &[]) == Some(1.0)
            && value(m, "wsrelay_handshakes_total", &[("outcome", "426")]) == Some(1.0)
            && value(m, "wsrelay_handshakes_total", &[("outcome", "400")]) == Some(1.0)
            && value(m, "wsrelay_client_connections", &[]) == Some(0.0)
    })
    .await;
    let route = ("route", "default");
    let c2u = [route, ("direction", "client_to_upstream")];
    let u2c = [route, ("direction", "upstream_to_client")];
    let get = |name: &str, labels: &[(&str, &str)]| {
        value(&m, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{m}"))
    };
    assert_eq!(
        get("wsrelay_handshakes_total", &[route, ("outcome", "101")]),
        1.0
    );
    assert_eq!(
        get("wsrelay_handshakes_total", &[route, ("outcome", "426")]),
        1.0
    );
    let no_route = [("route", "-"), ("outcome", "400")];
    assert_eq!(get("wsrelay_handshakes_total", &no_route), 1.0);
    assert_eq!(get("wsrelay_client_connections", &[]), 0.0);
    assert_eq!(get("wsrelay_open_tunnels", &[route]), 0.0);
    // Client to upstream: 5 data frames and the close; 4 messages; 3*5 + 3 + 2 payload bytes
    // and the close's 2-byte code and 3-byte reason.
    assert_eq!(get("wsrelay_frames_total", &c2u), 6.0);
    assert_eq!(get("wsrelay_messages_total", &c2u), 4.0);
    assert_eq!(get("wsrelay_payload_bytes_total", &c2u), 25.0);
    // The echo answered each message and the close.
    assert!(get("wsrelay_frames_total", &u2c) >= 5.0);
    assert_eq!(get("wsrelay_messages_total", &u2c), 4.0);
    assert!(get("wsrelay_payload_bytes_total", &u2c) >= 20.0);
    let closes = [route, ("side", "client"), ("code", "1000")];
    assert_eq!(get("wsrelay_closes_total", &closes), 1.0);
    assert_eq!(
        get("wsrelay_closes_total", &[route, ("side", "upstream")]),
        1.0
    );
    for histogram in [
        "wsrelay_handshake_duration_seconds",
        "wsrelay_upstream_connect_duration_seconds",
        "wsrelay_tunnel_duration_seconds",
    ] {
        assert_eq!(
            get(&format!("{histogram}_count"), &[route]),
            1.0,
            "{histogram}"
        );
        let inf = [route, ("le", "+Inf")];
        assert_eq!(
            get(&format!("{histogram}_bucket"), &inf),
            1.0,
            "{histogram}"
        );
    }
    assert!(get("process_resident_memory_bytes", &[]) > 0.0);
    assert!(get("process_open_fds", &[]) > 0.0);
    assert!(get("process_cpu_seconds_total", &[]) >= 0.0);
    assert!(get("process_start_time_seconds", &[]) > 1.6e9);

    match prometheus_tools() {
        Err(why) => eprintln!("SKIPPED promtool check metrics: {why}"),
        Ok((promtool, _)) => {
            let mut check = Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run promtool");
            use std::io::Write;
            check.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
            let out = check.wait_with_output().unwrap();
            assert!(
                out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[tokio::test]
async fn json_access_log_lines_have_the_schema_and_no_query_values() {
    let (binary, _admin) = binary_with_admin(&["--log-format", "json"]);
    let url = format!("ws://{}/chat?token=s3cret&room=7", binary.addr());
    let mut client = RawPeer::connect(&url, &[], b"")
        .await
        .unwrap_or_else(|_| panic!("upgrade refused"));
    client.send(OpCode::Text, true, b"hi").await;
    assert_eq!(client.recv().await.unwrap().1, b"hi");
    client
        .send(OpCode::Close, true, &close_payload(1000, ""))
        .await;
    assert_eq!(client.expect_close().await, Some(1000));
    client.expect_eof().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let lines = binary.log_lines("\"event\":\"finished\"");
        if let Some(line) = lines.first() {
            break line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no JSON line: {:?}",
            binary.log_lines("")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!line.contains("s3cret"), "{line}");
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
    assert!(
        v["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{v}"
    );
    assert_eq!(
        v["client"]
            .as_str()
            .map(|c| c.parse::<SocketAddr>().is_ok()),
        Some(true)
    );
    assert_eq!(v["listener"], binary.addr().to_string());
    assert_eq!(v["route"], "default");
    assert!(
        v["backend"]
            .as_str()
            .is_some_and(|b| b.starts_with("127.0.0.1:")),
        "{v}"
    );
    assert_eq!(v["target"], "/chat?token=&room=");
    assert_eq!(v["upstream_status"], 101);
    assert!(
        v["subprotocol"].is_null() && v["extensions"].is_null(),
        "{v}"
    );
    assert!(v["duration_ms"].is_u64());
    let c2u = &v["client_to_upstream"];
    assert_eq!(
        (c2u["frames"].as_u64(), c2u["messages"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (c2u["payload_bytes"].as_u64(), c2u["bytes"].as_u64()),
        (Some(4), Some(16))
    );
    assert_eq!(v["upstream_to_client"]["messages"], 1);
    assert_eq!(
        (v["client_close"].as_u64(), v["upstream_close"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert!(
        v["sent_to_client"].is_null() && v["sent_to_upstream"].is_null(),
        "{v}"
    );
    assert_eq!(
        (v["closed_by"].as_str(), v["end"].as_str()),
        (Some("client"), Some("closed by client"))
    );
    assert_eq!(v["close_timed_out"], false);
}

/// A child process killed (and its files removed) when the test ends, however it ends.
struct Scraper {
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for Scraper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of an instant query's single result, if there is one.
async fn query(prometheus: SocketAddr, promql: &str) -> Option<f64> {
    let path = format!("/api/v1/query?query={promql}");
    let answer = http(prometheus, "GET", &path, None).await;
    let v: serde_json::Value = serde_json::from_str(&answer.body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test]
async fn a_real_prometheus_sees_open_tunnels_come_and_go() {
    const TUNNELS: usize = 5;
    let prometheus = match prometheus_tools() {
        Ok((_, prometheus)) => prometheus,
        Err(why) => {
            eprintln!("SKIPPED a_real_prometheus_sees_open_tunnels_come_and_go: {why}");
            return;
        }
    };
    let (binary, admin) = binary_with_admin(&[]);
    let dir = std::env::temp_dir().join(format!("wsrelay-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: wsrelay\n    static_configs:\n      - targets: ['{admin}']\n"
        ),
    )
    .unwrap();
    let web = SocketAddr::from(([127, 0, 0, 1], free_loopback_port()));
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prometheus = Scraper { child, dir };

    let open = "sum(wsrelay_open_tunnels)";
    let wait_for = |want: f64| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = match tokio::net::TcpStream::connect(web).await {
                Ok(_) => query(web, open).await,
                Err(_) => None,
            };
            if seen == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus saw {seen:?} open tunnels, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    wait_for(0.0).await;
    let url = format!("ws://{}/", binary.addr());
    let mut clients = Vec::new();
    for _ in 0..TUNNELS {
        let peer = RawPeer::connect(&url, &[], b"").await;
        clients.push(peer.unwrap_or_else(|_| panic!("upgrade refused")));
    }
    wait_for(TUNNELS as f64).await;
    for mut client in clients {
        client
            .send(OpCode::Close, true, &close_payload(1000, ""))
            .await;
        assert_eq!(client.expect_close().await, Some(1000));
    }
    wait_for(0.0).await;
    let handshakes = query(web, "sum(wsrelay_handshakes_total{outcome=\"101\"})").await;
    assert_eq!(handshakes, Some(TUNNELS as f64));
}

#[tokio::test]
async fn stalled_scrapers_hold_the_admin_listener_briefly_and_the_relay_not_at_all() {
    let (binary, admin) = binary_with_admin(&[]);
    // More silent connections than the admin listener serves at once (8): the first ones are
    // dropped after its 5 s read timeout, the rest wait in the backlog meanwhile.
    let mut stalled = Vec::new();
    for _ in 0..10 {
        stalled.push(tokio::net::TcpStream::connect(admin).await.unwrap());
    }
    // The relay is not held up by them.
    let started = Instant::now();
    let mut client = RawPeer::connect(&format!("ws://{}/", binary.addr()), &[], b"")
        .await
        .unwrap_or_else(|_| panic!("upgrade refused"));
    client.send(OpCode::Text, true, b"still here").await;
    assert_eq!(client.recv().await.unwrap().1, b"still here");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A silent scraper is cut off by the read timeout...
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(12), stalled[0].read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    // ...and the admin listener answers again.
    assert_eq!(http(admin, "GET", "/livez", None).await.status, 200);
    let metrics = http(admin, "GET", "/metrics", None).await.body;
    assert_eq!(value(&metrics, "wsrelay_open_tunnels", &[]), Some(1.0));
}

#[tokio::test]
async fn open_lines_and_query_values_when_asked_for() {
    let (upstream, mut peers) = raw_upstream().await;
    let binary = Binary::with_config(
        &format!(
            "[server]\nlog_format = \"json\"\nlog_open = true\nlog_query_values = true\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[routes]]\nname = \"chat\"\npath_prefix = \"/\"\nupstream = \"ws://{upstream}\"\n"
        ),
        1,
    );
    assert_eq!(binary.admin, None, "no admin listener unless configured");
    let url = format!("ws://{}/room?id=42", binary.addr());
    let _client = RawPeer::connect(&url, &[], b"")
        .await
        .unwrap_or_else(|_| panic!("upgrade refused"));
    let _upstream_side = peers.recv().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some(line) = binary.log_lines("\"event\":\"open\"").first() {
            break line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no open line: {:?}",
            binary.log_lines("")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
    assert_eq!(v["route"], "chat");
    assert_eq!(v["backend"], upstream.to_string());
    assert_eq!(v["target"], "/room?id=42");
    assert_eq!(v["upstream_status"], 101);
    assert!(v.get("duration_ms").is_none(), "{v}");
}

/// A pool route's open tunnels are counted per backend of the pool, each backend a series of
/// its own from the start (the configuration bounds them).
#[tokio::test]
async fn a_pool_routes_open_tunnels_are_counted_per_backend() {
    let (a, mut a_peers) = raw_upstream().await;
    let (b, mut b_peers) = raw_upstream().await;
    let binary = Binary::with_config(
        &format!(
            "[admin]\naddress = \"127.0.0.1:0\"\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[pools]]\nname = \"game\"\npolicy = \"round_robin\"\n\
             backends = [{{ uri = \"ws://{a}\" }}, {{ uri = \"ws://{b}\" }}]\n\
             [[routes]]\nname = \"game\"\npath_prefix = \"/\"\npool = \"game\"\n"
        ),
        1,
    );
    let admin = binary.admin.expect("an admin listener");
    let per_backend = |text: &str| -> Vec<f64> {
        let mut open: Vec<(String, f64)> = samples(text)
            .into_iter()
            .filter(|(n, l, _)| n == "wsrelay_open_tunnels" && l["route"] == "game")
            .map(|(_, l, v)| (l["backend"].clone(), v))
            .collect();
        open.sort_by(|x, y| x.0.cmp(&y.0));
        open.into_iter().map(|(_, v)| v).collect()
    };
    let before = http(admin, "GET", "/metrics", None).await.body;
    assert_eq!(per_backend(&before), [0.0, 0.0], "one series per backend");
    let url = format!("ws://{}/", binary.addr());
    let mut clients = Vec::new();
    let mut upstreams = Vec::new();
    for _ in 0..4 {
        clients.push(RawPeer::connect(&url, &[], b"").await.ok().expect("101"));
    }
    for _ in 0..2 {
        upstreams.push(a_peers.recv().await.unwrap());
        upstreams.push(b_peers.recv().await.unwrap());
    }
    let open = scrape_until(admin, |t| per_backend(t) == [2.0, 2.0]).await;
    assert_eq!(per_backend(&open), [2.0, 2.0], "{open}");
    let with_names = samples(&open);
    let names: Vec<&String> = with_names
        .iter()
        .filter(|(n, l, _)| n == "wsrelay_open_tunnels" && l["route"] == "game")
        .map(|(_, l, _)| &l["backend"])
        .collect();
    assert!(
        names.iter().any(|n| n.contains(&a.to_string())),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.contains(&b.to_string())),
        "{names:?}"
    );
    drop(clients);
    drop(upstreams);
    let closed = scrape_until(admin, |t| per_backend(t) == [0.0, 0.0]).await;
    assert_eq!(per_backend(&closed), [0.0, 0.0], "{closed}");
}
