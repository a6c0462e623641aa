//! Edge hardening, end to end: the real `wsrelay` binary with a configuration file in front of
//! recording upstreams, one test per finding of the attack run (issue 12). Every refused
//! request gets its status and never reaches an upstream.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsrelay::codec::{FrameHeader, OpCode, MAX_HEADER_LEN};

/// An upstream whose requests the test reads (`None` once nothing came within a moment).
type Recorder = tokio::sync::mpsc::Receiver<(wsrelay::handshake::RequestHead, RawPeer)>;

/// Expects no request at the upstream: the gateway refused before contacting it.
async fn nothing_reached(upstream: &mut Recorder) {
    let got = tokio::time::timeout(Duration::from_millis(200), upstream.recv()).await;
    assert!(got.is_err(), "a refused request reached the upstream");
}

/// The next request at the upstream, within a few seconds.
async fn next_request(upstream: &mut Recorder) -> (wsrelay::handshake::RequestHead, RawPeer) {
    tokio::time::timeout(Duration::from_secs(5), upstream.recv())
        .await
        .expect("a request at this upstream")
        .expect("the upstream runs")
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

async fn status(addr: std::net::SocketAddr, target: &str, host: &str, extra: &str) -> u16 {
    status_of(&http_exchange(addr, &upgrade_request(target, host, extra)).await)
}

/// Finding 1: routes, rewrites and the upstream see the canonical path.
#[tokio::test]
async fn finding_1_routes_match_the_canonical_path() {
    let (open, mut open_rx) = recording_upstream(first_protocol).await;
    let (chat, mut chat_rx) = recording_upstream(first_protocol).await;
    let gw = Binary::with_config(
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[routes]]\nname = \"internal\"\npath_prefix = \"/internal\"\nwebsocket = false\n\
             [[routes]]\nname = \"chat\"\npath_prefix = \"/ws/\"\nrewrite = \"/chat/$1\"\nupstream = \"ws://{chat}\"\n\
             [[routes]]\nname = \"open\"\npath_prefix = \"/\"\nupstream = \"ws://{open}/app\"\n"
        ),
        1,
    );
    let addr = gw.addr();
    // Each of these reached the open route's upstream with 101 before.
    for sneaky in [
        "/x/../internal/x",
        "//internal/x",
        "/./internal/x",
        "/%69nternal/x",
    ] {
        assert_eq!(status(addr, sneaky, "gw.test", "").await, 403, "{sneaky}");
    }
    nothing_reached(&mut open_rx).await;
    // Above the root: 400, for the upstream never to resolve it.
    assert_eq!(
        status(addr, "/../../../etc/passwd", "gw.test", "").await,
        400
    );
    assert_eq!(
        status(addr, "/a/%2e%2e/%2e%2e/etc", "gw.test", "").await,
        400
    );
    assert_eq!(status(addr, "/a%2Fb", "gw.test", "").await, 400);
    nothing_reached(&mut open_rx).await;
    // A rewrite works on the canonical path: /ws/chat/../../admin is /admin, not the chat
    // route's "/chat/../../admin".
    let (head, _) = http_head(
        addr,
        &upgrade_request("/ws/chat/../../admin", "gw.test", ""),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (request, _peer) = next_request(&mut open_rx).await;
    assert_eq!(request.target, "/app/admin");
    nothing_reached(&mut chat_rx).await;
    // The upstream sees the path the route matched, rewritten from its canonical form.
    let (head, _) = http_head(
        addr,
        &upgrade_request("/ws/./a//b/../c?q=/..", "gw.test", ""),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (request, _peer) = next_request(&mut chat_rx).await;
    assert_eq!(request.target, "/chat/a/c?q=/..");
}

/// Finding 2: Host is canonical (case, trailing dot, port) before routing, and invalid is 400.
#[tokio::test]
async fn finding_2_host_is_canonical_before_routing() {
    let (admin, mut admin_rx) = recording_upstream(first_protocol).await;
    let (rest, mut rest_rx) = recording_upstream(first_protocol).await;
    let gw = Binary::with_config(
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[routes]]\nname = \"admin\"\nhost = \"admin.example\"\npath_prefix = \"/\"\nupstream = \"ws://{admin}\"\n\
             [[routes]]\nname = \"rest\"\npath_prefix = \"/\"\nupstream = \"ws://{rest}\"\n"
        ),
        1,
    );
    for host in ["admin.example.", "ADMIN.Example.:8080"] {
        let (head, _) = http_head(gw.addr(), &upgrade_request("/", host, "")).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{host}: {head}");
        let (request, _peer) = next_request(&mut admin_rx).await;
        let forwarded = header_of(&request, "Host").unwrap();
        assert!(forwarded.starts_with("admin.example"), "{forwarded}");
        assert!(!forwarded.contains("example.:"), "{forwarded}");
    }
    nothing_reached(&mut rest_rx).await;
    for bad in [
        "admin..example",
        "adm in.example",
        "admin.example:99999",
        "[::1",
    ] {
        assert_eq!(status(gw.addr(), "/", bad, "").await, 400, "{bad}");
    }
    let two_hosts = upgrade_request("/", "rest.example", "Host: admin.example\r\n");
    assert_eq!(status_of(&http_exchange(gw.addr(), &two_hosts).await), 400);
    nothing_reached(&mut admin_rx).await;
    nothing_reached(&mut rest_rx).await;
}

/// Finding 3: one Origin, and on an allow-list an Origin that is no origin is refused.
#[tokio::test]
async fn finding_3_origin_checks_have_no_gaps() {
    let (up, mut up_rx) = recording_upstream(first_protocol).await;
    let gw = Binary::with_config(
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{up}\"\nallowed_origins = [\"https://app.example\"]\n"
        ),
        1,
    );
    let two = "Origin: https://app.example\r\nOrigin: https://evil.example\r\n";
    assert_eq!(status(gw.addr(), "/", "gw.test", two).await, 400);
    // A non-UTF-8 Origin counted as absent before, and passed the allow-list.
    let mut raw = upgrade_request("/", "gw.test", "").into_bytes();
    let at = raw.len() - 2;
    raw.splice(
        at..at,
        b"Origin: https://app.example\xff\r\n".iter().copied(),
    );
    let mut s = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    s.write_all(&raw).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut response)).await;
    assert_eq!(status_of(&String::from_utf8_lossy(&response)), 403);
    assert_eq!(
        status(gw.addr(), "/", "gw.test", "Origin: app.example\r\n").await,
        403
    );
    nothing_reached(&mut up_rx).await;
    let (head, _) = http_head(
        gw.addr(),
        &upgrade_request("/", "gw.test", "Origin: https://app.example\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

/// Finding 4: forwarding headers are believed from trusted proxies only.
#[tokio::test]
async fn finding_4_forwarding_headers_come_from_trusted_peers_only() {
    let (up, mut up_rx) = recording_upstream(first_protocol).await;
    let gw = Binary::with_config(
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.0/8\"]\n\
             [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{up}\"\nforwarded_header = true\n"
        ),
        2,
    );
    let spoof = "X-Forwarded-For: 203.0.113.66\r\nX-Real-IP: 203.0.113.66\r\n\
                 Forwarded: for=203.0.113.66\r\nX-Forwarded-Proto: https\r\n";
    // The first listener trusts nobody: every forwarding header is the relay's own.
    let (head, _) = http_head(gw.addrs[0], &upgrade_request("/", "gw.test", spoof)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (request, _peer) = next_request(&mut up_rx).await;
    assert_eq!(
        header_of(&request, "X-Forwarded-For").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        header_of(&request, "X-Forwarded-Proto").as_deref(),
        Some("http")
    );
    assert_eq!(header_of(&request, "X-Real-IP"), None);
    assert_eq!(
        header_of(&request, "Forwarded").as_deref(),
        Some("for=127.0.0.1;host=\"gw.test\";proto=http")
    );
    // The second trusts loopback: the lists are extended, the proxy's values kept.
    let (head, _) = http_head(gw.addrs[1], &upgrade_request("/", "gw.test", spoof)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (request, _peer) = next_request(&mut up_rx).await;
    assert_eq!(
        header_of(&request, "X-Forwarded-For").as_deref(),
        Some("203.0.113.66, 127.0.0.1")
    );
    assert_eq!(
        header_of(&request, "X-Forwarded-Proto").as_deref(),
        Some("https")
    );
    assert_eq!(
        header_of(&request, "X-Real-IP").as_deref(),
        Some("203.0.113.66")
    );
    assert_eq!(
        header_of(&request, "Forwarded").as_deref(),
        Some("for=203.0.113.66, for=127.0.0.1;host=\"gw.test\";proto=http")
    );
}

/// Finding 5: size limits by default; a frame header announcing more is refused (1009) before
/// any of its payload reaches the upstream.
#[tokio::test]
async fn finding_5_frames_have_a_size_limit_by_default() {
    let (up, mut up_rx) = recording_upstream(first_protocol).await;
    let gw = Binary::with_config(
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{up}\"\nclose_timeout = \"1s\"\n"
        ),
        1,
    );
    let mut client = RawPeer::connect(&format!("ws://{}/", gw.addr()), &[], b"")
        .await
        .ok()
        .expect("upgraded");
    let (_request, mut upstream) = next_request(&mut up_rx).await;
    // A header announcing 2^63 - 1 bytes, and the start of its payload.
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: Some(KEY),
        payload_len: (1 << 63) - 1,
    };
    let mut buf = [0u8; MAX_HEADER_LEN];
    let mut wire = header.encode(&mut buf).to_vec();
    wire.extend_from_slice(&[0u8; 1024]);
    client.send_raw(&wire).await;
    assert_eq!(client.expect_close().await, Some(1009));
    // The upstream got no part of that frame: at most the relay's own close.
    if let Some((h, _)) = upstream.recv().await {
        assert_eq!(h.opcode, OpCode::Close, "{h:?}");
    }
}

/// Finding 6: at the descriptor limit the accept loop backs off and warns at most once a
/// second (with a count), where it logged every 50 ms before.
#[tokio::test]
async fn finding_6_accept_failures_are_logged_once_a_second() {
    let bin = env!("CARGO_BIN_EXE_wsrelay");
    let script = format!(
        "ulimit -n 48 && exec {bin} --listen 127.0.0.1:0 --workers 1 --upstream ws://127.0.0.1:9/"
    );
    let gw = Binary::spawn("sh", &["-c", &script], 1);
    // Silent connections: each holds a descriptor until the handshake timeout.
    let mut held = Vec::new();
    for _ in 0..80 {
        if let Ok(s) = tokio::net::TcpStream::connect(gw.addr()).await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let warnings = gw.log_lines("accept failed");
    assert!(
        !warnings.is_empty(),
        "the descriptor limit was never reached"
    );
    assert!(
        warnings.len() <= 4,
        "{} warnings in 3 s: {warnings:#?}",
        warnings.len()
    );
    assert!(
        warnings
            .iter()
            .skip(1)
            .any(|w| w.contains("suppressed=") && !w.contains("suppressed=0")),
        "{warnings:#?}"
    );
}
