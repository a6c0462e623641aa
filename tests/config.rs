//! The gateway configured by a TOML file, end to end on loopback: routing, rewrites, header
//! policy, Origins, per-route timeouts and limits, extension and subprotocol negotiation, and
//! `wsrelay check` / `wsrelay --config` as a user runs them.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;
use tokio::io::AsyncWriteExt;
use wsrelay::codec::OpCode;
use wsrelay::handshake::WebSocketRequest;

const LISTENER: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n";

/// Test peers that hold a connection open never answer the close the gateway sends on
/// shutdown; a short close timeout keeps `stop` quick.
const QUICK_CLOSE: &str = "[defaults]\nclose_timeout = \"300ms\"\n";

#[test]
fn the_example_config_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wsrelay.toml");
    let config = wsrelay::config::load(std::path::Path::new(path)).expect("example loads");
    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["chat", "admin", "internal", "feed", "game", "default"]
    );
    let chat = &config.routes[0];
    assert!(chat.matches(Some("x"), "/ws/chat/room-1"));
    let up = &chat.upstream.as_ref().unwrap().uri;
    assert_eq!(
        chat.upstream_target(up, "/ws/chat/room-1?since=5"),
        "/chat/room-1?since=5"
    );
    assert_eq!(chat.relay.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(chat.relay.client_max_message_size, Some(1_048_576));
    assert!(!config.routes[2].websocket);
    assert!(config.routes[3].upstream.as_ref().unwrap().tls.is_some());
}

#[tokio::test]
async fn routes_are_tried_in_order_with_host_regex_prefix_and_rewrite() {
    let (chat, mut chat_rx) = recording_upstream(first_protocol).await;
    let (admin, mut admin_rx) = recording_upstream(first_protocol).await;
    let (rest, mut rest_rx) = recording_upstream(first_protocol).await;
    let config = load_config(&format!(
        r#"{LISTENER}
[[routes]]
name = "admin"
host = "admin.example"
path_prefix = "/"
upstream = "ws://{admin}/admin"

[[routes]]
name = "chat"
path_regex = "^/ws/chat(/.*)?$"
upstream = "ws://{chat}"
rewrite = "/chat$1"

[[routes]]
name = "named"
path_regex = "^/rooms/(?P<room>[^/]+)$"
upstream = "ws://{chat}"
rewrite = "/r/${{room}}/x"

[[routes]]
path_prefix = "/api"
upstream = "ws://{rest}/v1?k=v"
"#
    ));
    let gw = gateway_from(config).await;
    let cases: [(&str, &str, usize, &str); 6] = [
        ("/ws/chat/room-1?since=5", "x", 0, "/chat/room-1?since=5"),
        ("/ws/chat", "x", 0, "/chat"),
        ("/rooms/lobby", "x", 0, "/r/lobby/x"),
        (
            "/ws/chat/room-1",
            "Admin.Example:8080",
            1,
            "/admin/ws/chat/room-1",
        ),
        ("/api/stream?a=1", "x", 2, "/v1/api/stream?k=v&a=1"),
        ("/api", "x", 2, "/v1/api?k=v"),
    ];
    for (target, host, upstream, expected) in cases {
        let (head, _conn) = http_head(gw.addr, &upgrade_request(target, host, "")).await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{target}: {head}");
        let rx = match upstream {
            0 => &mut chat_rx,
            1 => &mut admin_rx,
            _ => &mut rest_rx,
        };
        let (request, _) = rx.recv().await.unwrap();
        assert_eq!(request.target, expected, "{target} on {host}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn no_route_is_404_plain_http_is_426_disabled_route_is_403() {
    let (up, _rx) = recording_upstream(first_protocol).await;
    let config = load_config(&format!(
        r#"{LISTENER}{QUICK_CLOSE}
[[routes]]
path_prefix = "/ws/internal"
websocket = false

[[routes]]
path_prefix = "/ws"
upstream = "ws://{up}"
"#
    ));
    let gw = gateway_from(config).await;
    let not_found = http_exchange(gw.addr, &upgrade_request("/other", "x", "")).await;
    assert!(not_found.starts_with("HTTP/1.1 404 "), "{not_found}");
    let plain = http_exchange(gw.addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(plain.starts_with("HTTP/1.1 426 "), "{plain}");
    assert!(plain.contains("Upgrade: websocket"), "{plain}");
    assert!(plain.contains("speaks WebSocket only"), "{plain}");
    let disabled = http_exchange(gw.addr, &upgrade_request("/ws/internal/x", "x", "")).await;
    assert!(disabled.starts_with("HTTP/1.1 403 "), "{disabled}");
    assert!(disabled.contains("switched off"), "{disabled}");
    // A route's WebSocket still works next to it.
    let (ok, _conn) = http_head(gw.addr, &upgrade_request("/ws/x", "x", "")).await;
    assert!(ok.starts_with("HTTP/1.1 101 "), "{ok}");
    gw.stop().await;
}

#[tokio::test]
async fn foreign_origins_get_403_before_the_upstream_is_contacted() {
    let (up, mut rx) = recording_upstream(first_protocol).await;
    let config = load_config(&format!(
        r#"{LISTENER}
[[routes]]
path_prefix = "/"
upstream = "ws://{up}"
allowed_origins = ["https://app.example", "http://localhost:3000/"]
"#
    ));
    let gw = gateway_from(config).await;
    let evil = http_exchange(
        gw.addr,
        &upgrade_request("/", "x", "Origin: https://evil.example\r\n"),
    )
    .await;
    assert!(evil.starts_with("HTTP/1.1 403 "), "{evil}");
    assert!(!evil.contains("evil.example"), "Origin echoed: {evil}");
    for origin in ["https://app.example", "http://localhost:3000"] {
        let (head, _c) = http_head(
            gw.addr,
            &upgrade_request("/", "x", &format!("Origin: {origin}\r\n")),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{origin}: {head}");
        let (request, _) = rx.recv().await.unwrap();
        assert_eq!(header_of(&request, "Origin").as_deref(), Some(origin));
    }
    // Only the two allowed upgrades reached the upstream.
    assert!(rx.try_recv().is_err());
    gw.stop().await;
}

#[tokio::test]
async fn header_policy_forwarded_added_removed_and_change_origin() {
    let (up, mut rx) = recording_upstream(first_protocol).await;
    // The test client plays a trusted proxy, whose X-Forwarded-For list is extended (from an
    // untrusted client it is replaced: tests/edge.rs, finding 4).
    let trusting = format!("{LISTENER}trusted_proxies = [\"127.0.0.1\"]\n");
    let config = load_config(&format!(
        r#"{trusting}{QUICK_CLOSE}
[[routes]]
path_prefix = "/kept"
upstream = "ws://{up}"
add_headers = {{ "X-Gateway" = "wsrelay", "X-User" = "fixed" }}
remove_headers = ["cookie"]

[[routes]]
path_prefix = "/changed"
upstream = "ws://{up}"
change_origin = true
"#
    ));
    let gw = gateway_from(config).await;
    let extra = "Origin: https://app.example\r\nCookie: s=1\r\nX-User: spoofed\r\n\
                 X-Forwarded-For: 203.0.113.9\r\nConnection: Upgrade, X-Hop\r\nX-Hop: 1\r\n\
                 Keep-Alive: 5\r\nAuthorization: Bearer t\r\n";
    // The raw request repeats Connection; the handshake reads both lines as one list.
    let (head, _c) = http_head(
        gw.addr,
        &upgrade_request("/kept", "public.example:8080", extra),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let (request, _) = rx.recv().await.unwrap();
    let get = |name| header_of(&request, name);
    assert_eq!(get("Host").as_deref(), Some("public.example:8080"));
    assert_eq!(get("Origin").as_deref(), Some("https://app.example"));
    assert_eq!(get("Cookie"), None, "removed by remove_headers");
    assert_eq!(get("X-Gateway").as_deref(), Some("wsrelay"));
    assert_eq!(
        get("X-User").as_deref(),
        Some("fixed"),
        "added replaces the client's"
    );
    assert_eq!(get("X-Hop"), None, "named by Connection: hop-by-hop");
    assert_eq!(get("Keep-Alive"), None);
    assert_eq!(get("Authorization").as_deref(), Some("Bearer t"));
    assert_eq!(
        get("X-Forwarded-For").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(
        get("X-Forwarded-Host").as_deref(),
        Some("public.example:8080")
    );
    assert_eq!(get("X-Forwarded-Proto").as_deref(), Some("http"));

    let (head, _c) = http_head(
        gw.addr,
        &upgrade_request(
            "/changed",
            "public.example",
            "Origin: https://app.example\r\n",
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let (request, _) = rx.recv().await.unwrap();
    assert_eq!(header_of(&request, "Host"), Some(up.to_string()));
    assert_eq!(header_of(&request, "Origin"), Some(format!("http://{up}")));
    assert_eq!(
        header_of(&request, "X-Forwarded-Host").as_deref(),
        Some("public.example")
    );
    gw.stop().await;
}

#[tokio::test]
async fn per_route_limits_and_utf8_switch_override_the_defaults() {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    // The echo checks UTF-8 itself; this upstream does not.
    let (raw, mut raw_rx) = recording_upstream(first_protocol).await;
    let config = load_config(&format!(
        r#"{LISTENER}
[defaults]
max_frame_size = 100
max_message_size = 150
close_timeout = "300ms"

[[routes]]
path_prefix = "/big"
upstream = "ws://{echo}"
max_frame_size = 0
max_message_size = 0
buffer_size = 256

[[routes]]
path_prefix = "/raw"
upstream = "ws://{raw}"
validate_utf8 = false

[[routes]]
path_prefix = "/"
upstream = "ws://{echo}"
"#
    ));
    let gw = gateway_from(config).await;
    // Defaults: a 101-byte frame is too big.
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    client.send(OpCode::Binary, true, &[1; 100]).await;
    assert_eq!(client.recv().await.unwrap().1.len(), 100);
    client.send(OpCode::Binary, true, &[1; 101]).await;
    assert_eq!(client.expect_close().await, Some(1009));
    // Defaults: two frames of 80 make a message over 150.
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    client.send(OpCode::Binary, false, &[1; 80]).await;
    assert_eq!(
        client.recv().await.unwrap().1.len(),
        80,
        "first fragment echoed"
    );
    client.send(OpCode::Continuation, true, &[1; 80]).await;
    assert_eq!(client.expect_close().await, Some(1009));
    // The /big route lifts both limits, and relays 100 KB through a 256-byte buffer.
    let mut client = RawPeer::connect(&gw.url("/big"), &[], b"")
        .await
        .ok()
        .unwrap();
    client.send(OpCode::Binary, true, &[7; 100_000]).await;
    assert_eq!(client.recv().await.unwrap().1, vec![7; 100_000]);
    // UTF-8 validation: on by default (1007), off on /raw.
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    client.send(OpCode::Text, true, b"\xc0\xaf").await;
    assert_eq!(client.expect_close().await, Some(1007));
    let mut client = RawPeer::connect(&gw.url("/raw"), &[], b"")
        .await
        .ok()
        .unwrap();
    client.send(OpCode::Text, true, b"\xc0\xaf").await;
    let (_, mut upstream) = raw_rx.recv().await.unwrap();
    let (h, p) = upstream.recv().await.unwrap();
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Text, &b"\xc0\xaf"[..]));
    gw.stop().await;
}

#[tokio::test]
async fn per_route_idle_close_and_upgrade_timeouts() {
    let (up, mut rx) = recording_upstream(first_protocol).await;
    let silent = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let config = load_config(&format!(
        r#"{LISTENER}
[defaults]
idle_timeout = "300ms"
close_timeout = "300ms"

[[routes]]
path_prefix = "/silent"
upstream = "ws://{silent_addr}"
upgrade_timeout = "300ms"

[[routes]]
path_prefix = "/patient"
upstream = "ws://{up}"
idle_timeout = "0s"

[[routes]]
path_prefix = "/"
upstream = "ws://{up}"
"#
    ));
    let gw = gateway_from(config).await;

    // Idle: no frame for 300 ms closes both sides with 1001.
    let started = Instant::now();
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let (_, mut upstream) = rx.recv().await.unwrap();
    assert_eq!(client.expect_close().await, Some(1001));
    assert_eq!(upstream.expect_close().await, Some(1001));
    assert!(started.elapsed() < Duration::from_secs(3));
    // Neither side answers: the close timeout (300 ms) ends the connection.
    client.expect_eof().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // "0s" on the route switches idle closing off.
    let mut client = RawPeer::connect(&gw.url("/patient"), &[], b"")
        .await
        .ok()
        .unwrap();
    let (_, mut upstream) = rx.recv().await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    client.send(OpCode::Text, true, b"still here").await;
    assert_eq!(upstream.recv().await.unwrap().1, b"still here");

    // An upstream that never answers the upgrade: 504 after the route's 300 ms.
    let started = Instant::now();
    let answer = RawPeer::connect(&gw.url("/silent"), &[], b"")
        .await
        .err()
        .expect("refused");
    assert_eq!(answer.status, 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    gw.stop().await;
    hold.abort();
}

fn accept_all_extensions(request: &WebSocketRequest) -> (Option<String>, Option<String>) {
    (
        None,
        (!request.extensions.is_empty()).then(|| request.extensions.join(", ")),
    )
}

#[tokio::test]
async fn extension_offers_are_forwarded_only_as_configured() {
    let (up, mut rx) = recording_upstream(accept_all_extensions).await;
    let config = load_config(&format!(
        r#"{LISTENER}{QUICK_CLOSE}
[[routes]]
path_prefix = "/none"
upstream = "ws://{up}"
extensions = []

[[routes]]
path_prefix = "/custom"
upstream = "ws://{up}"
extensions = ["x-custom"]

[[routes]]
path_prefix = "/"
upstream = "ws://{up}"
"#
    ));
    let gw = gateway_from(config).await;
    let offer =
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-custom\r\n";
    let cases = [
        ("/", Some("permessage-deflate; client_max_window_bits")),
        ("/none", None),
        ("/custom", Some("x-custom")),
    ];
    for (path, forwarded) in cases {
        let (head, _c) = http_head(gw.addr, &upgrade_request(path, "x", offer)).await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        let (request, _) = rx.recv().await.unwrap();
        assert_eq!(
            header_of(&request, "Sec-WebSocket-Extensions").as_deref(),
            forwarded,
            "{path}"
        );
        // The upstream's acceptance comes back to the client.
        match forwarded {
            Some(ext) => assert!(
                head.contains(&format!("Sec-WebSocket-Extensions: {ext}\r\n")),
                "{head}"
            ),
            None => assert!(!head.contains("Sec-WebSocket-Extensions"), "{head}"),
        }
    }
    // Once permessage-deflate is accepted, RSV1 frames pass untouched both ways.
    let (head, mut conn) = http_head(gw.addr, &upgrade_request("/", "x", offer)).await;
    assert!(head.contains("permessage-deflate"), "{head}");
    let (_, mut upstream) = rx.recv().await.unwrap();
    upstream.allowed_rsv = wsrelay::codec::RSV1;
    let mut compressed = frame(OpCode::Text, true, b"\xf2\x48\xcd\xc9\xc9\x07\x00", true);
    compressed[0] |= 0x40; // RSV1
    conn.write_all(&compressed).await.unwrap();
    let (h, p) = upstream.recv().await.unwrap();
    assert_eq!(
        (h.rsv, p.as_slice()),
        (wsrelay::codec::RSV1, &b"\xf2\x48\xcd\xc9\xc9\x07\x00"[..])
    );
    // Without deflate accepted, the same frame is a protocol error (1002).
    let (_, conn) = http_head(gw.addr, &upgrade_request("/none", "x", offer)).await;
    let (_, _upstream) = rx.recv().await.unwrap();
    let mut client = RawPeer::client(conn);
    client.send_raw(&compressed).await;
    assert_eq!(client.expect_close().await, Some(1002));
    gw.stop().await;
}

fn choose_stomp(_: &WebSocketRequest) -> (Option<String>, Option<String>) {
    (Some("v12.stomp".to_owned()), None)
}

#[tokio::test]
async fn an_upstream_choosing_an_unoffered_subprotocol_gives_502() {
    let (up, _rx) = recording_upstream(choose_stomp).await;
    let config = load_config(&format!(
        "{LISTENER}{QUICK_CLOSE}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{up}\"\n"
    ));
    let gw = gateway_from(config).await;
    let refused = RawPeer::connect(&gw.url("/"), &["mqtt"], b"")
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, 502);
    // Offered, the same choice is accepted and returned.
    let response = http_head(
        gw.addr,
        &upgrade_request("/", "x", "Sec-WebSocket-Protocol: mqtt, v12.stomp\r\n"),
    )
    .await
    .0;
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    assert!(
        response.contains("Sec-WebSocket-Protocol: v12.stomp\r\n"),
        "{response}"
    );
    gw.stop().await;
}

#[test]
fn check_prints_each_error_with_line_column_and_hint() {
    let bad = write_temp(
        "bad.toml",
        "[[listeners]]\naddress = \"localhost\"\n\n[[routes]]\npath_regex = \"^/ws/(\"\nupstream = \"ws://127.0.0.1:9\"\nconnect_timeout = \"5 s\"\n",
    );
    let checked = check_config(&bad, &[]);
    let stderr = checked.stderr;
    assert_eq!(checked.code, Some(1), "{stderr}");
    let file = bad.display().to_string();
    for expected in [
        format!("{file}:2:11: error: invalid listen address"),
        format!("{file}:5:14: error: invalid regular expression"),
        "hint: an IP address and a port".to_owned(),
        "hint: Rust regex syntax".to_owned(),
        "2 error(s) in the configuration".to_owned(),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    let unknown = write_temp(
        "unknown.toml",
        &format!("{LISTENER}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://a\"\nidle_timout = \"1s\"\n"),
    );
    let checked = check_config(&unknown, &[]);
    let stderr = checked.stderr;
    assert_eq!(checked.code, Some(1), "{stderr}");
    assert!(
        stderr.contains(":7:1: error: unknown field `idle_timout`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: did you mean `idle_timeout`?"),
        "{stderr}"
    );

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wsrelay.toml");
    let checked = check_config(example, &[]);
    assert_eq!(checked.code, Some(0), "{}", checked.stderr);
    assert!(checked.stdout.contains("OK (1 listener(s), 6 route(s))"));
}

#[tokio::test]
async fn the_binary_serves_a_config_file() {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let path = write_temp(
        "wsrelay.toml",
        &format!(
            "{LISTENER}\n[[routes]]\npath_regex = \"^/echo(/.*)?$\"\nupstream = \"ws://{echo}\"\nrewrite = \"$1\"\n"
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsrelay"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no url in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    let mut client = RawPeer::connect(&format!("{url}/echo/x"), &[], b"")
        .await
        .ok()
        .unwrap();
    client.send(OpCode::Text, true, b"via config").await;
    assert_eq!(client.recv().await.unwrap().1, b"via config");
    let not_found = http_exchange(
        url.trim_start_matches("ws://").parse().unwrap(),
        &upgrade_request("/elsewhere", "x", ""),
    )
    .await;
    assert!(not_found.starts_with("HTTP/1.1 404 "), "{not_found}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn server_handshake_timeout_gives_408() {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let config = load_config(&format!(
        "[server]\nhandshake_timeout = \"300ms\"\n{LISTENER}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{echo}\"\n"
    ));
    let gw = gateway_from(config).await;
    let started = Instant::now();
    // Half a request, then silence.
    let response = http_exchange(gw.addr, "GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_timeout_cuts_connections_whose_peers_do_not_close() {
    let (up, mut rx) = recording_upstream(first_protocol).await;
    let config = load_config(&format!(
        "[server]\nshutdown_timeout = \"300ms\"\n{LISTENER}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{up}\"\n"
    ));
    let gw = gateway_from(config).await;
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let (_, mut upstream) = rx.recv().await.unwrap();
    let started = Instant::now();
    let stopping = tokio::spawn(gw.stop());
    assert_eq!(client.expect_close().await, Some(1001));
    assert_eq!(upstream.expect_close().await, Some(1001));
    // Neither side answers its close; the relay would wait close_timeout (5 s), the shutdown
    // deadline (300 ms) cuts it first.
    stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn keepalive_interval_pings_quiet_sides_and_absorbs_their_pongs() {
    let (up, mut rx) = recording_upstream(first_protocol).await;
    let config = load_config(&format!(
        r#"{LISTENER}{QUICK_CLOSE}keepalive_interval = "200ms"

[[routes]]
path_prefix = "/quiet"
upstream = "ws://{up}"
keepalive_interval = "0s"

[[routes]]
path_prefix = "/"
upstream = "ws://{up}"
"#
    ));
    let gw = gateway_from(config).await;

    // Both sides stay quiet: each gets the relay's own ping (masked only towards the upstream).
    let mut client = RawPeer::connect(&gw.url("/"), &[], b"").await.ok().unwrap();
    let (_, mut upstream) = rx.recv().await.unwrap();
    let (h, token) = client.recv().await.expect("a ping for the client");
    assert_eq!(
        (h.opcode, h.mask.is_none(), token.len()),
        (OpCode::Ping, true, 8)
    );
    let (h, up_token) = upstream.recv().await.expect("a ping for the upstream");
    assert_eq!(
        (h.opcode, h.mask.is_some(), up_token.len()),
        (OpCode::Ping, true, 8)
    );
    // The pong that answers the relay's ping is absorbed: the upstream next sees the text, not
    // the pong (its own next ping may come first; a pong never does).
    client.send(OpCode::Pong, true, &token).await;
    client.send(OpCode::Text, true, b"after the pong").await;
    loop {
        let (h, payload) = upstream.recv().await.expect("a frame");
        assert_ne!(h.opcode, OpCode::Pong, "the relay's pong leaked upstream");
        if h.opcode == OpCode::Text {
            assert_eq!(payload, b"after the pong");
            break;
        }
    }

    // "0s" on the route switches keep-alive off: a quiet client gets nothing.
    let mut quiet = RawPeer::connect(&gw.url("/quiet"), &[], b"")
        .await
        .ok()
        .unwrap();
    let (_, _quiet_upstream) = rx.recv().await.unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(700), quiet.recv()).await;
    assert!(nothing.is_err(), "a frame arrived: {nothing:?}");
    gw.stop().await;
}

#[test]
fn check_reports_every_unknown_key_at_once() {
    let path = write_temp(
        "unknown-keys.toml",
        &format!(
            "[server]\nworker = 2\n\n[defaults]\nbufer_size = 4096\n{LISTENER}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"wss://a\"\nidle_timout = \"1s\"\nupstream_tls = {{ ca = \"x\" }}\nmax_frame_size = 10\n"
        ),
    );
    let checked = check_config(&path, &[]);
    let stderr = checked.stderr;
    assert_eq!(checked.code, Some(1), "{stderr}");
    for expected in [
        ":2:1: error: unknown field `worker`",
        "hint: did you mean `workers`?",
        ":5:1: error: unknown field `bufer_size`",
        "hint: did you mean `buffer_size`?",
        ":12:1: error: unknown field `idle_timout`",
        "hint: did you mean `idle_timeout`?",
        ":13:18: error: unknown field `ca`",
        "hint: did you mean `ca_file`?",
        "4 error(s) in the configuration",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}
