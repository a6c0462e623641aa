//! The routes API of the admin listener, end to end on the real binary: routes and pools
//! created, used, replaced and deleted while tunnels on them stay open; invalid changes refused
//! with the diagnostics of `wsrelay check`; write-back to the file; the bearer token.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::Message;

type Ws = WsClient;

/// An echo server on loopback.
async fn echo_server() -> SocketAddr {
    wsrelay::echo::spawn(loopback()).await.unwrap()
}

/// A configuration with an admin listener (`admin` keys added), one listener and a route
/// `base` on `/base` to `upstream`.
fn config(admin: &str, upstream: SocketAddr) -> String {
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n{admin}\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [[routes]]\nname = \"base\"\npath_prefix = \"/base\"\nupstream = \"ws://{upstream}/\"\n"
    )
}

fn start(path: &Path) -> Binary {
    let path = path.to_str().unwrap().to_owned();
    Binary::spawn(env!("CARGO_BIN_EXE_wsrelay"), &["--config", &path], 1)
}

/// One request to the admin listener at `admin`: the status and the body.
async fn call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = http_exchange(admin, &request).await;
    let status = (response.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

async fn api(binary: &Binary, method: &str, path: &str, body: &str) -> (u16, String) {
    call(binary.admin.expect("admin"), method, path, body, None).await
}

/// A WebSocket through the gateway; the error text (with the status) if refused.
async fn open(addr: SocketAddr, path: &str) -> Result<Ws, String> {
    open_ws(addr, path).await
}

/// Sends `text` and expects it back.
async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(back)))) => assert_eq!(back.as_str(), text),
        other => panic!("no echo of {text:?}: {other:?}"),
    }
}

/// The status a refused WebSocket got.
async fn refused(addr: SocketAddr, path: &str) -> String {
    match open(addr, path).await {
        Ok(_) => panic!("{path} was accepted"),
        Err(e) => e,
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn a_route_is_created_used_replaced_and_deleted_while_its_tunnel_stays() {
    let (first, second) = (echo_server().await, echo_server().await);
    let binary = start(&write_temp("wsrelay.toml", &config("", first)));
    let addr = binary.addr();

    let route = format!(r#"{{"name":"chat","path_prefix":"/chat","upstream":"ws://{first}/"}}"#);
    let (status, body) = api(&binary, "POST", "/routes", &route).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body)["path_prefix"], "/chat");
    let mut tunnel = open(addr, "/chat/room").await.unwrap();
    echo(&mut tunnel, "on the created route").await;

    // Creating it again: 409, nothing changes.
    let (status, body) = api(&binary, "POST", "/routes", &route).await;
    assert_eq!(status, 409, "{body}");

    // Replaced while the tunnel is open: the tunnel stays, new connections see the new route.
    let replacement = format!(r#"{{"path_prefix":"/talk","upstream":"ws://{second}/"}}"#);
    let (status, body) = api(&binary, "PUT", "/routes/chat", &replacement).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["name"], "chat");
    assert_eq!(json(&body)["path_prefix"], "/talk");
    echo(&mut tunnel, "still open after the replacement").await;
    assert!(refused(addr, "/chat/room").await.contains("404"));
    let mut talk = open(addr, "/talk/room").await.unwrap();
    echo(&mut talk, "on the replaced route").await;
    let (status, body) = api(&binary, "GET", "/routes/chat", "").await;
    assert_eq!(
        (status, json(&body)["upstream"].clone()),
        (200, format!("ws://{second}/").into())
    );
    let (status, body) = api(&binary, "GET", "/routes", "").await;
    assert_eq!(status, 200);
    let names: Vec<_> = (json(&body).as_array().unwrap().iter())
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["base", "chat"]);
    assert_eq!(api(&binary, "PUT", "/routes/none", "{}").await.0, 404);

    // Deleted: new requests 404, the open tunnels stay.
    let (status, body) = api(&binary, "DELETE", "/routes/chat", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(refused(addr, "/talk/room").await.contains("404"));
    echo(&mut tunnel, "still open after the deletion").await;
    echo(&mut talk, "this one too").await;
    assert_eq!(api(&binary, "DELETE", "/routes/chat", "").await.0, 404);
    assert_eq!(api(&binary, "GET", "/routes/chat", "").await.0, 404);
    let mut base = open(addr, "/base").await.unwrap();
    echo(&mut base, "the file's route is untouched").await;

    // The log says what each change did.
    assert!(!binary
        .log_lines("routes API: replaced route \"chat\"")
        .is_empty());
    assert!(!binary.log_lines("routes removed: chat").is_empty());
}

#[tokio::test]
async fn an_invalid_route_is_refused_with_the_diagnostics_of_check() {
    let upstream = echo_server().await;
    let file = config("", upstream);
    let binary = start(&write_temp("wsrelay.toml", &file));
    let bad = format!(r#"{{"name":"bad","path_prefix":"chat","upstream":"ws://{upstream}/"}}"#);
    let (status, body) = api(&binary, "POST", "/routes", &bad).await;
    assert_eq!(status, 400, "{body}");
    let (diagnostics, candidate) = body.split_once("\nnothing changed.").unwrap();
    // candidate:LINE:COLUMN: error: ..., then the line itself, as `wsrelay check` writes them.
    let mut lines = diagnostics.lines();
    let first = lines.next().unwrap();
    let place = first.strip_prefix("candidate:").unwrap();
    let (line, rest) = place.split_once(':').unwrap();
    let (_column, message) = rest.split_once(':').unwrap();
    assert_eq!(
        message, " error: a path prefix starts with /",
        "{diagnostics}"
    );
    let quoted = lines.next().unwrap();
    assert_eq!(quoted, format!("{line} | path_prefix = \"chat\""));
    // The answer shows the candidate's routes with their line numbers: the same line there.
    assert!(candidate.lines().any(|l| l == quoted), "{body}");
    // `wsrelay check` of a file with the same route says the same, at that file's place.
    let path = write_temp(
        "wsrelay.toml",
        &format!("{file}\n[[routes]]\nname = \"bad\"\npath_prefix = \"chat\"\nupstream = \"ws://{upstream}/\"\n"),
    );
    let checked = check_config(&path, &[]);
    assert_eq!(checked.code, Some(1));
    let strip = |text: &str| -> Vec<String> {
        // The place (file:line:column, "N |") differs; the rest is the same text.
        text.lines()
            .map(|l| match l.split_once(": error: ") {
                Some((_, message)) => format!("error: {message}"),
                None => l
                    .split_once(" | ")
                    .map_or(l.to_owned(), |(_, t)| t.to_owned()),
            })
            .map(|l| l.trim().to_owned())
            .collect()
    };
    assert_eq!(
        strip(checked.stderr.trim_end()),
        strip(diagnostics.trim_end())
    );
    // Nothing changed.
    let (_, list) = api(&binary, "GET", "/routes", "").await;
    assert_eq!(json(&list).as_array().unwrap().len(), 1);
    // A body that is not a table, a missing name: 400 too.
    assert_eq!(api(&binary, "POST", "/routes", "[]").await.0, 400);
    assert_eq!(
        api(&binary, "POST", "/routes", "{\"path_prefix\":\"/x\"}")
            .await
            .0,
        400
    );
    assert_eq!(
        api(&binary, "POST", "/routes", "{\"name\":null}").await.0,
        400
    );
    let mut ws = open(binary.addr(), "/base").await.unwrap();
    echo(&mut ws, "still served").await;
}

#[tokio::test]
async fn pools_are_created_replaced_and_deleted_with_a_route_on_them() {
    let (first, second) = (echo_server().await, echo_server().await);
    let binary = start(&write_temp("wsrelay.toml", &config("", first)));
    let addr = binary.addr();
    let pool = format!(r#"{{"name":"game","backends":[{{"uri":"ws://{first}/"}}]}}"#);
    let (status, body) = api(&binary, "POST", "/pools", &pool).await;
    assert_eq!(status, 201, "{body}");
    let route = r#"{"name":"play","path_prefix":"/play","pool":"game"}"#;
    let (status, body) = api(&binary, "POST", "/routes", route).await;
    assert_eq!(status, 201, "{body}");
    let mut tunnel = open(addr, "/play").await.unwrap();
    echo(&mut tunnel, "through the pool").await;

    // A pool a route names cannot go: the loader's error, nothing changes.
    let (status, body) = api(&binary, "DELETE", "/pools/game", "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("candidate:"), "{body}");

    let replaced = format!(r#"{{"backends":[{{"uri":"ws://{second}/"}}],"policy":"round_robin"}}"#);
    let (status, body) = api(&binary, "PUT", "/pools/game", &replaced).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["policy"], "round_robin");
    echo(&mut tunnel, "the open tunnel stays").await;
    let mut again = open(addr, "/play").await.unwrap();
    echo(&mut again, "through the replaced pool").await;
    let (_, list) = api(&binary, "GET", "/pools", "").await;
    assert_eq!(
        json(&list)[0]["backends"][0]["uri"],
        format!("ws://{second}/")
    );

    assert_eq!(api(&binary, "DELETE", "/routes/play", "").await.0, 200);
    assert_eq!(api(&binary, "DELETE", "/pools/game", "").await.0, 200);
    let (_, list) = api(&binary, "GET", "/pools", "").await;
    assert_eq!(json(&list), serde_json::json!([]));
    echo(&mut tunnel, "still open").await;
}

#[tokio::test]
async fn write_back_puts_the_change_in_the_file() {
    let upstream = echo_server().await;
    let path = write_temp("wsrelay.toml", &config("write_back = true", upstream));
    let binary = start(&path);
    let route = format!(r#"{{"name":"chat","path_prefix":"/chat","upstream":"ws://{upstream}/"}}"#);
    assert_eq!(api(&binary, "POST", "/routes", &route).await.0, 201);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("name = \"chat\""), "{text}");
    let checked = check_config(&path, &[]);
    assert_eq!(checked.code, Some(0), "{}", checked.stderr);
    assert!(
        checked.stdout.contains("OK (1 listener(s), 2 route(s))"),
        "{}",
        checked.stdout
    );
    // No temporary file left beside it.
    let dir = path.parent().unwrap();
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);
    // A reload from the file keeps it (it is in the file now).
    let (status, _) = api(&binary, "POST", "/reload", "").await;
    assert_eq!(status, 200);
    assert_eq!(api(&binary, "GET", "/routes/chat", "").await.0, 200);
}

#[tokio::test]
async fn without_write_back_a_reload_from_the_file_replaces_api_changes() {
    let upstream = echo_server().await;
    let path = write_temp("wsrelay.toml", &config("", upstream));
    let before = std::fs::read_to_string(&path).unwrap();
    let binary = start(&path);
    let route = format!(r#"{{"name":"chat","path_prefix":"/chat","upstream":"ws://{upstream}/"}}"#);
    assert_eq!(api(&binary, "POST", "/routes", &route).await.0, 201);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    let mut tunnel = open(binary.addr(), "/chat").await.unwrap();
    assert_eq!(api(&binary, "POST", "/reload", "").await.0, 200);
    assert_eq!(api(&binary, "GET", "/routes/chat", "").await.0, 404);
    assert!(refused(binary.addr(), "/chat").await.contains("404"));
    echo(&mut tunnel, "the open tunnel stays").await;
}

#[tokio::test]
async fn a_gateway_without_a_file_changes_in_memory() {
    let upstream = echo_server().await;
    let binary = Binary::spawn(
        env!("CARGO_BIN_EXE_wsrelay"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--upstream",
            &format!("ws://{upstream}/"),
        ],
        1,
    );
    // The flags' catch-all route comes first: this one is tried after it, so it is read back.
    let route = format!(r#"{{"name":"chat","path_prefix":"/chat","upstream":"ws://{upstream}/"}}"#);
    let (status, body) = api(&binary, "POST", "/routes", &route).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(api(&binary, "GET", "/routes/chat", "").await.0, 200);
    let mut ws = open(binary.addr(), "/chat").await.unwrap();
    echo(&mut ws, "in memory").await;
}

#[tokio::test]
async fn a_token_guards_the_api() {
    let upstream = echo_server().await;
    // The token from the environment (token_env); `token` and `token_file` load the same way.
    let path = write_temp(
        "wsrelay.toml",
        &config("token_env = \"WSRELAY_ADMIN_TOKEN\"", upstream),
    );
    let binary = Binary::spawn_with_env(
        env!("CARGO_BIN_EXE_wsrelay"),
        &["--config", path.to_str().unwrap()],
        1,
        &[("WSRELAY_ADMIN_TOKEN", "s3cret\n")],
    );
    let admin = binary.admin.unwrap();
    let response = http_exchange(admin, "GET /routes HTTP/1.1\r\nHost: admin\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("WWW-Authenticate: Bearer"), "{response}");
    assert_eq!(
        call(admin, "GET", "/routes", "", Some("wrong")).await.0,
        401
    );
    let route = r#"{"name":"x","path_prefix":"/x","upstream":"ws://127.0.0.1:1/"}"#;
    assert_eq!(
        call(admin, "POST", "/routes", route, Some("s3cre")).await.0,
        401
    );
    assert_eq!(
        call(admin, "GET", "/routes", "", Some("s3cret")).await.0,
        200
    );
    assert_eq!(
        call(admin, "POST", "/routes", route, Some("s3cret"))
            .await
            .0,
        201
    );
    // The other endpoints stay open.
    assert_eq!(call(admin, "GET", "/metrics", "", None).await.0, 200);
    assert_eq!(call(admin, "GET", "/livez", "", None).await.0, 200);
}

/// A non-loopback address of this host, if it has one.
fn non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn on_a_non_loopback_address_the_api_needs_a_token() {
    let Some(ip) = non_loopback_address() else {
        println!("SKIPPED: this host has no non-loopback address (the rule is unit-tested)");
        return;
    };
    let upstream = echo_server().await;
    let toml = format!(
        "[admin]\naddress = \"{}\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"base\"\npath_prefix = \"/\"\nupstream = \"ws://{upstream}/\"\n",
        SocketAddr::new(ip, 0)
    );
    let path = write_temp("wsrelay.toml", &toml);
    let checked = check_config(&path, &[]);
    assert!(
        checked.stderr.contains("warning: the routes API is off"),
        "{}",
        checked.stderr
    );
    let binary = start(&path);
    let admin = binary.admin.unwrap();
    assert_eq!(call(admin, "GET", "/routes", "", None).await.0, 403);
    assert_eq!(call(admin, "GET", "/metrics", "", None).await.0, 200);

    let with_token = format!("{toml}\n").replace("[admin]\n", "[admin]\ntoken = \"s3cret\"\n");
    let binary = start(&write_temp("wsrelay.toml", &with_token));
    let admin = binary.admin.unwrap();
    assert_eq!(call(admin, "GET", "/routes", "", None).await.0, 401);
    assert_eq!(
        call(admin, "GET", "/routes", "", Some("s3cret")).await.0,
        200
    );
}
