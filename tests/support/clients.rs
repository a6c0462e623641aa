//! The setting the real-client tests (tests/browser.rs, tests/node_ws.rs) share: the Python
//! scenario upstream (tests/python/client_scenarios_server.py), a test certificate for the TLS
//! listener, the `wsrelay` binary with a plain and a TLS listener in front of that upstream, and
//! the install scripts' outcome (a path, or the reason the test is skipped).
//!
//! Included with `#[path = "support/clients.rs"] mod clients;` next to `mod support;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use rcgen::{CertificateParams, KeyPair, PublicKeyData};
use serde_json::Value;
use sha2::Digest;

use crate::support::{write_temp, Binary};

/// A child process in a process group of its own, killed (the whole group) on drop: Chromium
/// starts helpers that must not outlive the test.
pub struct Group(pub Child);

impl Group {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> std::io::Result<Group> {
        command.process_group(0).spawn().map(Group)
    }

    /// The first line the child writes on stdout (piped); the rest is drained on a thread so
    /// the child never blocks on a full pipe.
    pub fn first_line(&mut self) -> Option<String> {
        let stdout = self.0.stdout.take()?;
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next()?.ok()?;
        std::thread::spawn(move || for _ in lines {});
        Some(line)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let group = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.0.wait();
    }
}

/// Runs one of the project's install scripts; its stdout lines on success, or why the
/// component is missing (the script's last stderr lines) when it failed. The script's stderr
/// (apt-get's and npm's progress) shows as it comes, even from a passing test.
pub fn install(script: &str) -> Result<Vec<String>, String> {
    use std::io::Read;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let mut child = Command::new("bash")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let name = script.to_owned();
    let progress = std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .inspect(|line| visibly(&format!("{name}: {line}")))
            .collect();
        lines
    });
    let mut stdout = String::new();
    let read = child
        .stdout
        .take()
        .map(|mut out| out.read_to_string(&mut stdout));
    let status = child.wait().map_err(|e| format!("{script}: {e}"))?;
    let stderr = progress.join().unwrap_or_default();
    if !status.success() || !matches!(read, Some(Ok(_))) {
        let tail = stderr[stderr.len().saturating_sub(3)..].join(" / ");
        return Err(format!("{script} failed ({status}): {tail}"));
    }
    Ok(stdout.lines().map(str::to_owned).collect())
}

/// Writes `text` to the process's stderr directly, past the test harness's output capture, so
/// it shows in `cargo test`'s output even when the test passes.
pub fn visibly(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Says, visibly, that `test` did not run and why: `SKIPPED: <why>`.
pub fn skipped(test: &str, why: &str) {
    visibly(&format!("SKIPPED: {why} ({test})"));
}

/// The Python scenario upstream, running on a loopback port.
pub struct ScenarioUpstream {
    pub port: u16,
    _process: Group,
}

impl ScenarioUpstream {
    /// Prepares the Python environment (scripts/python-env.sh) and starts the upstream; `Err`
    /// says why it cannot run here.
    pub fn start() -> Result<ScenarioUpstream, String> {
        let python = install("python-env.sh")?
            .pop()
            .ok_or("python-env.sh printed no interpreter")?;
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/client_scenarios_server.py"
        );
        let mut process = Group::spawn(
            Command::new(&python)
                .arg(script)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )
        .map_err(|e| format!("cannot start {python}: {e}"))?;
        let line = process
            .first_line()
            .ok_or("the Python upstream exited before announcing its port")?;
        let started: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("bad first line {line:?}: {e}"))?;
        let port = started["port"].as_u64().ok_or("no port announced")? as u16;
        Ok(ScenarioUpstream {
            port,
            _process: process,
        })
    }
}

/// A self-signed CA and a `localhost` leaf it signed, as PEM files, for the TLS listener.
pub struct TestCert {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// base64(SHA-256(SubjectPublicKeyInfo)) of the leaf: what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes to accept this one key and no other.
    pub spki_sha256: String,
}

impl TestCert {
    /// Makes the CA and the leaf (names `localhost` and `127.0.0.1`).
    pub fn new() -> TestCert {
        let dir = write_temp("ca.txt", "real-client tests")
            .parent()
            .expect("a temporary directory")
            .to_owned();
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "wsrelay real-client test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params")
            .signed_by(&key, &issuer)
            .expect("leaf certificate");
        let (ca_file, cert_file, key_file) = (
            dir.join("ca.pem"),
            dir.join("localhost.pem"),
            dir.join("localhost.key"),
        );
        std::fs::write(&ca_file, ca_cert.pem()).expect("write CA");
        std::fs::write(&cert_file, leaf.pem()).expect("write leaf");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        let spki = sha2::Sha256::digest(key.subject_public_key_info());
        TestCert {
            ca_file,
            cert_file,
            key_file,
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki),
        }
    }
}

/// Largest frame the test routes accept. A 16 MiB message of incompressible bytes grows a little
/// under permessage-deflate: Chromium sends it in 129 frames, but the Python upstream echoes it
/// as one compressed frame of 16,818,182 bytes, past the default `max_frame_size` of exactly
/// 16 MiB (the relay then closes with 1009 upstream and 1014 to the client).
pub const MAX_FRAME_SIZE: u64 = 32 * 1024 * 1024;

/// `wsrelay` with a plain listener (first address) and a TLS listener for `localhost` (second),
/// one route to the upstream on `upstream_port`, and a short shutdown grace.
pub fn relay(upstream_port: u16, cert: &TestCert) -> Binary {
    relay_with(upstream_port, cert, "")
}

/// [`relay`] with `tls_listener` (TOML keys, e.g. `"http2 = true\n"`) added to the TLS
/// listener's table.
pub fn relay_with(upstream_port: u16, cert: &TestCert, tls_listener: &str) -> Binary {
    Binary::with_config(
        &format!(
            "[server]\nshutdown_timeout = \"5s\"\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\n{tls_listener}\
             [[listeners.tls.certificates]]\ncert_file = \"{}\"\nkey_file = \"{}\"\nserver_names = [\"localhost\"]\n\
             [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:{upstream_port}\"\nmax_frame_size = {MAX_FRAME_SIZE}\n",
            cert.cert_file.display(),
            cert.key_file.display()
        ),
        2,
    )
}

/// The two WebSocket origins of [`relay`]'s listeners: `ws://127.0.0.1:P` and
/// `wss://localhost:Q` (the certificate's name, so SNI and Host match).
pub fn origins(relay: &Binary) -> [String; 2] {
    [
        format!("ws://{}", relay.addrs[0]),
        format!("wss://localhost:{}", relay.addrs[1].port()),
    ]
}

/// Sends SIGTERM to the relay: it closes open connections with 1001 and exits.
pub fn sigterm(relay: &Binary) {
    let pid = rustix::process::Pid::from_child(&relay.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM wsrelay");
}

/// Waits for the relay process to exit; its exit status.
pub fn wait_exit(relay: &mut Binary, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = relay.child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `key=value` field of a text log line, as a number.
pub fn log_field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.trim_matches('"').parse().ok())
}

/// What every real-client test runs on: the Python scenario upstream and `wsrelay` in front of
/// it with a plain and a TLS listener.
pub struct Setting {
    pub upstream: ScenarioUpstream,
    pub cert: TestCert,
    pub relay: Binary,
    /// The listeners' WebSocket origins, plain first (see [`origins`]).
    pub origins: [String; 2],
}

impl Setting {
    /// Starts the upstream and the relay; `None` (after saying `SKIPPED` for `test`) when the
    /// Python upstream cannot run here.
    pub fn start(test: &str) -> Option<Setting> {
        Setting::start_with(test, "")
    }

    /// [`Setting::start`] with `tls_listener` added to the TLS listener (see [`relay_with`]).
    pub fn start_with(test: &str, tls_listener: &str) -> Option<Setting> {
        let upstream = match ScenarioUpstream::start() {
            Ok(upstream) => upstream,
            Err(why) => {
                skipped(test, &format!("no Python upstream: {why}"));
                return None;
            }
        };
        let cert = TestCert::new();
        let relay = relay_with(upstream.port, &cert, tls_listener);
        let origins = origins(&relay);
        Some(Setting {
            upstream,
            cert,
            relay,
            origins,
        })
    }

    /// Checks the relay's log: each listener's `/deflate` tunnel carried the page's
    /// `payload_bytes` of text in a small fraction of that, both ways, so the compressed frames
    /// passed through as they were.
    pub fn check_deflate_passed_compressed(&self, report: &Value) {
        let payload = report["runs"][&self.origins[0]]["deflate"]["payload_bytes"]
            .as_u64()
            .expect("payload_bytes");
        assert_eq!(payload, 256 * 1024);
        let lines = self.relay.log_lines("target=/deflate");
        let finished: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("connection finished"))
            .collect();
        assert_eq!(
            finished.len(),
            2,
            "one /deflate tunnel per listener: {lines:?}"
        );
        for line in finished {
            let up = log_field(line, "c2u_bytes").expect("c2u_bytes");
            let down = log_field(line, "u2c_bytes").expect("u2c_bytes");
            eprintln!(
                "/deflate: {payload} bytes of text; through the relay {up} bytes up, {down} down"
            );
            assert!(up < payload / 4, "client frames not compressed: {line}");
            assert!(down < payload / 4, "upstream frames not compressed: {line}");
        }
    }
}

/// One scenario's result in a client's report (tests/clients/scenarios.js), after checking
/// that the client judged it `ok`; the caller checks what else the client recorded.
pub fn item<'a>(report: &'a Value, origin: &str, name: &str) -> &'a Value {
    let entry = &report["runs"][origin][name];
    assert_eq!(
        entry["ok"],
        Value::Bool(true),
        "{origin} {name}: {entry}\nwhole report: {report}"
    );
    entry
}

/// Checks, item by item, the scenarios every client runs (tests/clients/scenarios.js) as
/// `report` recorded them for `origin`.
pub fn check_common_scenarios(report: &Value, origin: &str) {
    let text = item(report, origin, "text");
    assert_eq!(text["got"], text["sent"], "{origin}");

    let binary = item(report, origin, "binary");
    assert_eq!(binary["length"], 256, "{origin}");
    assert_eq!(binary["binary"], Value::Bool(true), "{origin}");

    let big = item(report, origin, "big");
    assert_eq!(big["got_length"], 16 * 1024 * 1024, "{origin}");
    assert_eq!(big["got_fnv1a"], big["sent_fnv1a"], "{origin}");

    let proto = item(report, origin, "subprotocol");
    assert_eq!(proto["protocol"], "wsrelay.v2", "{origin}");
    assert_eq!(proto["upstream_chose"], "wsrelay.v2", "{origin}");

    let deflate = item(report, origin, "deflate");
    for key in ["extensions", "upstream_offer", "upstream_accepted"] {
        let value = deflate[key].as_str().unwrap_or_default();
        assert!(
            value.starts_with("permessage-deflate"),
            "{origin} {key}: {deflate}"
        );
    }
    assert_eq!(deflate["echoed"], Value::Bool(true), "{origin}");

    let close = item(report, origin, "upstream_close");
    assert_eq!(close["code"], 4000, "{origin}");
    assert_eq!(close["reason"], "bye", "{origin}");

    let ping = item(report, origin, "upstream_ping");
    assert_eq!(ping["answer"]["pong"], Value::Bool(true), "{origin}");
}

/// Checks that the client saw 1001 on the socket it held on `origin` when the relay stopped.
pub fn check_shutdown_close(report: &Value, origin: &str) {
    let close = &report["hold"][origin]["close"];
    eprintln!("{origin}: on shutdown the client saw {close}");
    assert_eq!(close["code"], 1001, "{origin}: {report}");
}
