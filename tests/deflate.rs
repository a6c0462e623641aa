//! permessage-deflate pass-through, proven with Python `websockets` (which compresses by
//! default) as the client and as the upstream, through the `wsrelay` binary and a config file.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::write_temp;

/// Kills the child on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The venv's python, or `None` (test skipped, visibly) when python3 is missing.
fn python() -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/python-env.sh");
    let env = Command::new("bash")
        .arg(script)
        .output()
        .expect("run python-env.sh");
    if env.status.code() == Some(3) {
        return None;
    }
    assert!(
        env.status.success(),
        "python-env.sh failed: {}",
        String::from_utf8_lossy(&env.stderr)
    );
    Some(String::from_utf8(env.stdout).unwrap().trim().to_owned())
}

fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("a first line").expect("readable");
    std::thread::spawn(move || for _ in lines {});
    line
}

#[test]
fn permessage_deflate_is_negotiated_end_to_end_and_frames_pass_compressed() {
    let Some(python) = python() else {
        eprintln!("SKIPPED permessage_deflate_is_negotiated_end_to_end: python3 is not installed");
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");
    let mut server = Killed(
        Command::new(&python)
            .arg(format!("{dir}/deflate_echo_server.py"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python upstream"),
    );
    let started: serde_json::Value = serde_json::from_str(&first_line(&mut server.0)).unwrap();
    let port = started["port"].as_u64().expect("port");

    let config = write_temp(
        "deflate.toml",
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:{port}\"\n"
        ),
    );
    let mut relay = Killed(
        Command::new(env!("CARGO_BIN_EXE_wsrelay"))
            .arg("--config")
            .arg(&config)
            .env("WSRELAY_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsrelay"),
    );
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = relay.0.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let line = first_line(&mut relay.0);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no url in {line:?}"))
        .to_owned();

    let output = Command::new(&python)
        .arg(format!("{dir}/deflate_client.py"))
        .arg(&url)
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(result["messages"], 5, "{result}");
    // Negotiated on both ends: the upstream got the client's offer and the client got the
    // upstream's accepted parameters, unchanged.
    let client_side = result["client_accepted"].as_str().unwrap_or_default();
    let offer = result["upstream"]["offer"].as_str().unwrap_or_default();
    let upstream_side = result["upstream"]["accepted"].as_str().unwrap_or_default();
    assert!(offer.starts_with("permessage-deflate"), "{result}");
    assert!(upstream_side.starts_with("permessage-deflate"), "{result}");
    assert_eq!(client_side, upstream_side, "{result}");

    // Frames crossed the relay compressed: far fewer bytes than the payload sent.
    let payload = result["payload_bytes"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let finished = loop {
        let text = log.lock().unwrap().clone();
        if let Some(line) = text.lines().find(|l| l.contains("connection finished")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no connection log line:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let field = |name: &str| -> u64 {
        finished
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in {finished}"))
    };
    let (up, down) = (field("c2u_bytes"), field("u2c_bytes"));
    eprintln!("payload {payload} bytes; on the wire through the relay: {up} up, {down} down");
    assert!(
        up < payload / 4,
        "client frames not compressed: {up} of {payload}"
    );
    assert!(
        down < payload / 4,
        "upstream frames not compressed: {down} of {payload}"
    );
    assert!(finished.contains("closed by client"), "{finished}");
}
