//! Socket.IO behind wsrelay, with the real thing on both ends: Node's `socket.io` server (two
//! backends in a round-robin pool with a sticky cookie) and the official `socket.io-client` in
//! its default mode, which opens each session with HTTP long-polling and upgrades it to a
//! WebSocket afterwards. Both packages come from the npm registry through
//! `scripts/install-socketio.sh`; where they cannot be installed the test prints SKIPPED.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The folder whose node_modules holds socket.io and socket.io-client, or why there is none.
fn install() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-socketio.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(PathBuf::from(dir))
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/socketio")
        .join(name)
}

/// Starts both Socket.IO backends and waits for their "ready".
fn backends(modules: &Path, a: SocketAddr, b: SocketAddr) -> Killed {
    let mut child = Command::new("node")
        .arg(script("server.js"))
        .arg(a.port().to_string())
        .arg(b.port().to_string())
        .env("NODE_PATH", modules)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("the Socket.IO servers start");
    assert_eq!(line, "ready");
    Killed(child)
}

/// One client session through the gateway: what the client saw, as JSON.
async fn session(modules: &Path, gateway: SocketAddr) -> Value {
    let (modules, gateway) = (modules.to_owned(), gateway);
    let run = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("30")
            .arg("node")
            .arg(script("client.js"))
            .arg(format!("http://{gateway}"))
            .env("NODE_PATH", &modules)
            .output()
            .expect("node runs")
    });
    let out = tokio::time::timeout(Duration::from_secs(40), run)
        .await
        .expect("the client finishes")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).expect("one JSON line")
}

#[tokio::test]
async fn socket_io_sessions_poll_then_upgrade_through_wsrelay_on_one_backend() {
    let modules = match install() {
        Ok(dir) => dir.join("node_modules"),
        Err(why) => {
            println!("SKIPPED: socket.io is not available: {why}");
            eprintln!("SKIPPED: socket.io is not available: {why}");
            return;
        }
    };
    let (a, b) = (free_port(), free_port());
    let _node = backends(&modules, a, b);
    let gateway = Binary::with_config(
        &format!(
            r#"
[server]
workers = 1
[[listeners]]
address = "127.0.0.1:0"
[[pools]]
name = "io"
policy = "round_robin"
sticky_cookie = "io_backend"
backends = [{{ uri = "ws://{a}" }}, {{ uri = "ws://{b}" }}]
[[routes]]
name = "socketio"
path_prefix = "/socket.io/"
pool = "io"
http = true
"#
        ),
        1,
    );
    let names = |backend: &str| match backend {
        "backend-0" => a.to_string(),
        "backend-1" => b.to_string(),
        other => panic!("unknown backend {other}"),
    };
    let mut used = Vec::new();
    for round in 0..3 {
        let polls_before = gateway.log_lines("http request finished").len();
        let tunnels_before = gateway.log_lines("connection finished").len();
        let seen = session(&modules, gateway.addr()).await;
        eprintln!("session {round}: {seen}");
        // Default mode: the session opened over polling (the server saw it connect on polling)
        // and upgraded to a WebSocket.
        assert_eq!(seen["welcome"]["transport"], "polling", "{seen}");
        assert_eq!(seen["upgraded"], "websocket", "{seen}");
        assert_eq!(seen["final_transport"], "websocket", "{seen}");
        // Events both ways, before and after the upgrade, all from the one backend.
        let backend = seen["welcome"]["backend"].as_str().unwrap().to_owned();
        assert_eq!(seen["first"]["backend"], backend.as_str(), "{seen}");
        assert_eq!(seen["first"]["payload"]["text"], "first", "{seen}");
        let after = seen["after"].as_array().unwrap();
        assert_eq!(after.len(), 3, "{seen}");
        for reply in after {
            assert_eq!(reply["backend"], backend.as_str(), "{seen}");
            assert_eq!(reply["transport"], "websocket", "{seen}");
            assert_eq!(reply["payload"]["text"], "over websocket", "{seen}");
        }
        let pushed = seen["pushed"].as_array().unwrap();
        assert!(pushed.len() >= 3, "server-sent events arrived: {seen}");
        // The gateway's log: the polling requests and the 101 tunnel, all on that backend.
        let addr = names(&backend);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while gateway.log_lines("connection finished").len() == tunnels_before {
            assert!(std::time::Instant::now() < deadline, "no tunnel line");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let tunnels = gateway.log_lines("connection finished");
        assert_eq!(tunnels.len(), tunnels_before + 1, "{tunnels:?}");
        let line = &tunnels[tunnels_before];
        assert!(line.contains(&format!("backend=\"{addr}\"")), "{line}");
        assert!(line.contains("route=\"socketio\""), "{line}");
        let polls = gateway.log_lines("http request finished");
        let polls = &polls[polls_before..];
        assert!(polls.len() >= 2, "{polls:?}");
        for poll in polls {
            assert!(poll.contains(&format!("backend=\"{addr}\"")), "{poll}");
            assert!(poll.contains("status=200"), "{poll}");
        }
        eprintln!(
            "session {round}: {} polling requests and one tunnel, all on {addr}",
            polls.len()
        );
        used.push(addr);
    }
    // Round robin spreads new sessions over both backends; the cookie kept each on its own.
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 2, "sessions landed on {used:?}");
}
