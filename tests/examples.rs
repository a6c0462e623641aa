//! The examples in `examples/`, run in their `--demo` mode: each starts an echo upstream and a
//! proxy (embedded with `wsrelay::embed`, or behind a hyper route), drives a real WebSocket
//! client through it, asserts what the hook did, and exits 0.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `target/<profile>/examples/<name>`, which `cargo test` builds before running tests.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    profile_dir.join("examples").join(name)
}

/// Runs an example's demo; returns its stdout.
fn run_demo(name: &str) -> String {
    let path = example(name);
    assert!(path.exists(), "{} not built", path.display());
    let started = Instant::now();
    let mut child = Command::new(&path)
        .arg("--demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn example");
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("{name} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn logging_hook_logs_both_directions() {
    let out = run_demo("hook_logging");
    assert!(out.contains("from client: Text fin=true 5 bytes"), "{out}");
    assert!(
        out.contains("from upstream: Text fin=true 5 bytes"),
        "{out}"
    );
    assert!(out.contains("client got: hello"), "{out}");
}

#[test]
fn redaction_hook_hides_the_password() {
    let out = run_demo("hook_redact");
    assert!(
        out.contains(r#""password":"***""#) && !out.contains("hunter2"),
        "{out}"
    );
}

#[test]
fn filter_hook_drops_binary_messages() {
    let out = run_demo("hook_filter");
    assert!(out.contains("client got: text passes"), "{out}");
}

#[test]
fn rate_limit_hook_closes_with_1008() {
    let out = run_demo("hook_rate_limit");
    assert!(out.contains("then close 1008"), "{out}");
}

#[test]
fn hyper_route_relays_through_an_upgraded_connection() {
    let out = run_demo("hyper_route");
    assert!(out.contains("client got: through hyper"), "{out}");
}
