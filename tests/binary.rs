//! The `wsrelay` binary as a user runs it: the no-config demo, a real Python client, signals,
//! and bounded memory while a 64 MiB frame streams through.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;
use tokio::io::AsyncWriteExt;
use wsrelay::codec::{apply_mask, FrameHeader, OpCode, MAX_HEADER_LEN};

/// A `wsrelay` process; killed on drop.
struct Relay {
    child: Child,
    url: String,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port with `args` and waits for its "relaying" line.
fn start_binary(args: &[&str]) -> Relay {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsrelay"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("WSRELAY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wsrelay");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("a first line").expect("readable");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no url in {line:?}"))
        .to_owned();
    // Keep reading stdout in the background so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Relay { child, url }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing"))
}

#[tokio::test]
async fn demo_mode_relays_to_the_builtin_echo() {
    let relay = start_binary(&[]);
    let mut client = RawPeer::connect(&relay.url, &[], b"")
        .await
        .ok()
        .expect("upgrade");
    client.send(OpCode::Text, true, b"hello demo").await;
    let (h, p) = client.recv().await.unwrap();
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Text, &b"hello demo"[..]));
    client
        .send(OpCode::Close, true, &close_payload(1000, ""))
        .await;
    assert_eq!(client.expect_close().await, Some(1000));
    client.expect_eof().await;
}

#[tokio::test]
async fn sigterm_closes_open_connections_with_1001_and_exits() {
    let mut relay = start_binary(&["--shutdown-timeout", "3s"]);
    let mut client = RawPeer::connect(&relay.url, &[], b"")
        .await
        .ok()
        .expect("upgrade");
    let status = Command::new("kill")
        .args(["-TERM", &relay.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(client.expect_close().await, Some(1001));
    client
        .send(OpCode::Close, true, &close_payload(1001, ""))
        .await;
    client.expect_eof().await;
    let started = Instant::now();
    loop {
        if let Some(status) = relay.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "wsrelay did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_64_mib_frame_streams_through_with_bounded_memory() {
    let (addr, mut accepted) = raw_upstream().await;
    // Above the default 16 MiB frame limit, so the limit is lifted (0: none) for this frame.
    let upstream = format!("ws://{addr}/");
    let unlimited = ["--max-frame-size", "0", "--max-message-size", "0"];
    let relay = start_binary(&[&["--upstream", &upstream][..], &unlimited].concat());
    let pid = relay.child.id();
    let mut client = RawPeer::connect(&relay.url, &[], b"")
        .await
        .ok()
        .expect("upgrade");
    let mut upstream = accepted.recv().await.unwrap();
    // Warm up so the baseline includes the connection's buffers.
    client.send(OpCode::Binary, true, &[0; 100_000]).await;
    assert_eq!(upstream.recv().await.unwrap().1.len(), 100_000);
    let baseline = proc_status_kib(pid, "VmRSS:");

    const LEN: u64 = 64 * 1024 * 1024;
    let header = FrameHeader {
        mask: Some(KEY),
        ..FrameHeader::new(OpCode::Binary, LEN)
    };
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let head = header.encode(&mut hbuf).to_vec();
    let mut writer = client.stream;
    let sender = tokio::spawn(async move {
        writer.write_all(&head).await.unwrap();
        let chunk = vec![0x5a_u8; 256 * 1024];
        let mut sent = 0u64;
        while sent < LEN {
            let mut masked = chunk.clone();
            apply_mask(&mut masked, KEY, sent);
            writer.write_all(&masked).await.unwrap();
            sent += chunk.len() as u64;
        }
        writer
    });
    // The upstream reads the frame in pieces, checking every byte.
    let (h, _) = {
        // Read the header only, then stream the payload.
        use tokio::io::AsyncReadExt;
        let mut hdr = [0u8; 14];
        upstream.stream.read_exact(&mut hdr).await.unwrap();
        let parsed = wsrelay::codec::FrameHeader::parse(
            &hdr,
            wsrelay::codec::ParseConfig::new(wsrelay::codec::Role::Server),
        )
        .unwrap();
        let wsrelay::codec::Parse::Complete(h, 14) = parsed else {
            panic!("{parsed:?}")
        };
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        while got < h.payload_len {
            let want = ((h.payload_len - got) as usize).min(buf.len());
            let n = upstream.stream.read(&mut buf[..want]).await.unwrap();
            assert!(n > 0);
            apply_mask(&mut buf[..n], h.mask.unwrap(), got);
            assert!(buf[..n].iter().all(|&b| b == 0x5a));
            got += n as u64;
        }
        (h, got)
    };
    assert_eq!(h.payload_len, LEN);
    sender.await.unwrap();
    let peak = proc_status_kib(pid, "VmHWM:");
    let growth = peak.saturating_sub(baseline);
    eprintln!("wsrelay RSS: baseline {baseline} KiB, peak {peak} KiB, growth {growth} KiB for a 64 MiB frame");
    assert!(
        growth < 8 * 1024,
        "relay memory grew by {growth} KiB while streaming 64 MiB"
    );
}

#[tokio::test]
async fn python_websockets_client_through_the_binary() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/python-env.sh");
    let env = Command::new("bash")
        .arg(script)
        .output()
        .expect("run python-env.sh");
    if env.status.code() == Some(3) {
        eprintln!("SKIPPED python_websockets_client_through_the_binary: python3 is not installed");
        return;
    }
    assert!(
        env.status.success(),
        "python-env.sh failed: {}",
        String::from_utf8_lossy(&env.stderr)
    );
    let python = String::from_utf8(env.stdout).unwrap().trim().to_owned();

    // Upstream: our echo, which picks the first offered subprotocol.
    let relay = start_binary(&[]);
    let client = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/echo_client.py");
    let url = relay.url.clone();
    let output =
        tokio::task::spawn_blocking(move || Command::new(python).args([client, &url]).output())
            .await
            .unwrap()
            .expect("run python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    assert!(line.contains("\"messages\": 15"), "{line}");
    assert!(line.contains("\"subprotocol\": \"v12.stomp\""), "{line}");
    assert!(line.contains("\"pong\": true"), "{line}");
    assert!(line.contains("\"close_code\": 4000"), "{line}");
    assert!(line.contains("\"close_reason\": \"python done\""), "{line}");
}

/// Runs the binary to completion with `args`; its exit code and standard error.
fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wsrelay"))
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("run wsrelay");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_buffer_below_256_bytes_is_refused_from_a_flag_as_from_a_file() {
    let (code, stderr) = run_binary(&["--listen", "127.0.0.1:0", "--buffer-size", "100"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("wsrelay: --buffer-size 100: error: buffer_size below 256 bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: a buffer must hold a whole control frame"),
        "{stderr}"
    );
}

#[test]
fn a_bad_flag_gets_the_message_and_hint_of_the_same_bad_key_in_a_file() {
    let file = write_temp(
        "bad.toml",
        "[defaults]\nconnect_timeout = \"abc\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:9\"\n",
    );
    let (code, from_file) = run_binary(&["check", "--config", &file.display().to_string()]);
    assert_eq!(code, Some(1), "{from_file}");
    let (code, from_flag) = run_binary(&["--listen", "127.0.0.1:0", "--connect-timeout", "abc"]);
    assert_eq!(code, Some(2), "{from_flag}");
    // The message after "error:" and the hint line are the same; only the place differs.
    let message = |stderr: &str| {
        let line = stderr
            .lines()
            .find(|l| l.contains(" error: "))
            .unwrap_or("");
        line[line.find(" error: ").unwrap_or(0)..].to_owned()
    };
    let hint = |stderr: &str| {
        stderr
            .lines()
            .find(|l| l.contains("hint:"))
            .map(str::to_owned)
    };
    assert!(
        message(&from_file).contains("invalid duration \"abc\""),
        "{from_file}"
    );
    assert_eq!(
        message(&from_flag),
        message(&from_file),
        "{from_flag}\n{from_file}"
    );
    assert_eq!(hint(&from_flag), hint(&from_file));
    assert!(from_file.contains(":2:19: error: "), "{from_file}");
    assert!(
        from_flag.contains("wsrelay: --connect-timeout abc: error: "),
        "{from_flag}"
    );
    // Addresses and URIs are the loader's too.
    let (code, stderr) = run_binary(&["--listen", "nowhere", "--upstream", "http://x/"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--listen nowhere: error: invalid listen address"),
        "{stderr}"
    );
    assert!(stderr.contains("--upstream http://x/: error: "), "{stderr}");
    assert!(
        stderr.contains("2 error(s) in the configuration"),
        "{stderr}"
    );
}

#[test]
fn the_one_upstream_flags_cannot_be_combined_with_a_config_file() {
    let (code, stderr) = run_binary(&["--config", "x.toml", "--workers", "2"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert!(stderr.contains("--workers"), "{stderr}");
}

#[tokio::test]
async fn max_frame_size_reaches_the_route() {
    let relay = start_binary(&["--max-frame-size", "100", "--close-timeout", "300ms"]);
    let mut client = RawPeer::connect(&relay.url, &[], b"")
        .await
        .ok()
        .expect("upgrade");
    client.send(OpCode::Binary, true, &[1; 100]).await;
    assert_eq!(client.recv().await.unwrap().1.len(), 100);
    client.send(OpCode::Binary, true, &[1; 101]).await;
    assert_eq!(client.expect_close().await, Some(1009));
}
