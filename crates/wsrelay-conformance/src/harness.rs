//! Puts the pieces on real sockets: relays (the in-process gateway) in front of an echo upstream
//! (ours or Python `websockets`), or in front of the driver with a real Python client before
//! them, and runs cases.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use wsrelay::config::GatewayConfig;
use wsrelay::gateway::Gateway;
use wsrelay::handshake::WsUri;
use wsrelay::upstream::Upstream;

use crate::case::{Case, CaseResult, Profile, Script, Verdict};
use crate::peer::{self, Driver, Role};
use crate::wire;

/// Largest frame payload the limited profile accepts (1009 beyond).
pub const LIMITED_FRAME: u64 = 1 << 20;
/// Largest message the limited profile accepts (1009 beyond).
pub const LIMITED_MESSAGE: u64 = 4 << 20;
/// Largest frame the limited profile accepts from the upstream: a whole message, since echo
/// servers that reassemble send a message back as one frame.
pub const LIMITED_UPSTREAM_FRAME: u64 = LIMITED_MESSAGE;
/// The limited profile's close timeout.
pub const LIMITED_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The echo endpoint behind the relay in direction 1.
#[derive(Debug, Clone)]
pub enum Echo {
    /// wsrelay's built-in echo server.
    Ours,
    /// A blind echo that checks nothing: it answers pings, echoes every other frame as it came
    /// (reserved bits and opcodes, invalid UTF-8 and all, unmasked) and closes after a close.
    /// Behind it, every protocol error the client sees must come from the relay itself.
    Blind,
    /// A Python `websockets` echo server, run by this interpreter.
    Python(PathBuf),
}

/// A gateway serving on a loopback port until dropped.
pub struct RelayHandle {
    /// Where clients connect.
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// Starts the gateway in front of `upstream` with `profile`'s settings.
pub async fn start_relay(upstream: SocketAddr, profile: Profile) -> std::io::Result<RelayHandle> {
    let uri = WsUri::parse(&format!("ws://{upstream}")).map_err(std::io::Error::other)?;
    let upstream = Upstream::new(uri).map_err(std::io::Error::other)?;
    let mut config = GatewayConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), upstream);
    let relay = &mut config.routes[0].relay;
    relay.close_timeout = Duration::from_secs(2);
    // The unlimited profile means it: the gateway's default limits (16 MiB frames, 64 MiB
    // messages) would turn the big-message cases into 1009s.
    relay.client_max_frame_size = None;
    relay.upstream_max_frame_size = None;
    relay.client_max_message_size = None;
    relay.upstream_max_message_size = None;
    if profile == Profile::Limited {
        relay.client_max_frame_size = Some(LIMITED_FRAME);
        relay.upstream_max_frame_size = Some(LIMITED_UPSTREAM_FRAME);
        relay.client_max_message_size = Some(LIMITED_MESSAGE);
        relay.upstream_max_message_size = Some(LIMITED_MESSAGE);
        relay.close_timeout = LIMITED_CLOSE_TIMEOUT;
    }
    let gateway = Gateway::bind(config).await?;
    let addr = gateway.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway.run(async move {
        let _ = stopped.await;
    }));
    Ok(RelayHandle { addr, _stop: stop })
}

/// The directory of this crate (the Python peers live under it).
fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Prepares the Python peer environment with the project's script; `None` (with the reason)
/// when python3 is not installed.
pub fn python() -> Result<PathBuf, String> {
    let script = crate_dir().join("../../scripts/python-env.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .map_err(|e| format!("running python-env.sh: {e}"))?;
    if out.status.code() == Some(3) {
        return Err("python3 is not installed".into());
    }
    if !out.status.success() {
        return Err(format!(
            "python-env.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A running echo upstream; the process (if any) dies with it.
pub struct EchoHandle {
    /// Its address.
    pub addr: SocketAddr,
    _child: Option<Child>,
}

/// Starts the echo endpoint.
pub async fn start_echo(echo: &Echo) -> Result<EchoHandle, String> {
    match echo {
        Echo::Ours => {
            let addr = wsrelay::echo::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(|e| e.to_string())?;
            Ok(EchoHandle { addr, _child: None })
        }
        Echo::Blind => {
            let (listener, addr) = raw_upstream().await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(blind_echo(stream));
                }
            });
            Ok(EchoHandle { addr, _child: None })
        }
        Echo::Python(python) => {
            let mut child = Command::new(python)
                .arg(crate_dir().join("python/echo_server.py"))
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("starting the Python echo server: {e}"))?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut line = String::new();
            tokio::time::timeout(
                Duration::from_secs(30),
                BufReader::new(stdout).read_line(&mut line),
            )
            .await
            .map_err(|_| "the Python echo server did not start")?
            .map_err(|e| e.to_string())?;
            let addr = line
                .trim()
                .parse()
                .map_err(|_| format!("the Python echo server printed {line:?}"))?;
            Ok(EchoHandle {
                addr,
                _child: Some(child),
            })
        }
    }
}

/// What custom cases get: relays in front of the echo, and a way to start more.
#[derive(Clone)]
pub struct Env {
    /// Relay (default profile) in front of the echo.
    pub relay: SocketAddr,
    /// Relay (limited profile) in front of the echo.
    pub limited: SocketAddr,
    /// The echo itself.
    pub echo: SocketAddr,
}

impl Env {
    /// The relay address for `profile`.
    pub fn relay_for(&self, profile: Profile) -> SocketAddr {
        match profile {
            Profile::Default => self.relay,
            Profile::Limited => self.limited,
        }
    }
}

/// A listener the driver accepts upstream connections on.
pub async fn raw_upstream() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Accepts one upgrade on `listener` as the upstream: returns the stream, the request path and
/// the bytes after the request head; the 101 is sent with `after_101` in the same write.
pub async fn accept_upgrade(
    listener: &TcpListener,
    after_101: &[u8],
    within: Duration,
) -> Result<(TcpStream, String, Vec<u8>), String> {
    let (mut stream, _) = tokio::time::timeout(within, listener.accept())
        .await
        .map_err(|_| "no upstream connection came".to_owned())?
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (path, rest) = answer_upgrade(&mut stream, after_101, within).await?;
    Ok((stream, path, rest))
}

/// Reads an upgrade request head on `stream` and answers 101 (with `after_101` in the same
/// write); returns the request path and the bytes read past the head.
async fn answer_upgrade(
    stream: &mut TcpStream,
    after_101: &[u8],
    within: Duration,
) -> Result<(String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        if let Some(head) = wire::parse_request(&buf)? {
            let mut reply = wire::switching_protocols(&head.key);
            reply.extend_from_slice(after_101);
            stream.write_all(&reply).await.map_err(|e| e.to_string())?;
            buf.drain(..head.len);
            return Ok((head.path, buf));
        }
        if buf.len() > 64 * 1024 {
            return Err("request head too large".into());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err("closed during the handshake".into()),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("request head never completed".into()),
        }
    }
}

fn result(
    case: &Case,
    observed: String,
    verdict: Result<Option<&'static str>, String>,
    took: Duration,
) -> CaseResult {
    let (verdict, note) = match verdict {
        Ok(None) => (Verdict::Pass, String::new()),
        Ok(Some(quote)) => (Verdict::NonStrict, quote.to_owned()),
        Err(why) => (Verdict::Fail, why),
    };
    CaseResult {
        id: case.id.clone(),
        group: case.group,
        description: case.description.clone(),
        expected: case.expected_text(),
        observed,
        verdict,
        note,
        duration: took,
    }
}

/// Runs a direction-1 or custom case.
pub async fn run_client_case(case: &Case, env: &Env) -> CaseResult {
    let started = Instant::now();
    let deadline = started + case.deadline;
    match &case.script {
        Script::Custom(run) => {
            let outcome = tokio::time::timeout(case.deadline, run(env.clone())).await;
            let took = started.elapsed();
            match outcome {
                Ok(r) => result(case, r.observed, r.verdict.map(|()| None), took),
                Err(_) => result(
                    case,
                    "deadline passed".into(),
                    Err("deadline passed".into()),
                    took,
                ),
            }
        }
        Script::Client(steps) => {
            let (pipelined, steps): (&[u8], &[crate::case::Step]) = match steps.split_first() {
                Some((crate::case::Step::Send(bytes), rest)) if case.pipelined => (bytes, rest),
                _ => (&[], steps),
            };
            let addr = env.relay_for(case.profile);
            let path = format!("/case/{}", case.id);
            let (stream, leftover) = match peer::connect(addr, &path, pipelined).await {
                Ok(ok) => ok,
                Err(e) => return result(case, e.clone(), Err(e), started.elapsed()),
            };
            let mut driver = Driver::new(stream, leftover, Role::Client);
            driver.run_steps(steps, deadline).await;
            let seen = driver.finish(&case.expect, case, deadline).await;
            let verdict = peer::judge(case, &seen);
            result(case, seen.describe(), verdict, started.elapsed())
        }
        Script::Upstream { .. } => result(
            case,
            "not run".into(),
            Err("an upstream case needs the client run".into()),
            started.elapsed(),
        ),
    }
}

/// Runs the direction-2 cases: one real Python client (which echoes every message and reports
/// the close code it saw) connects through the relay once per case, and the driver plays the
/// upstream.
pub async fn run_upstream_cases(cases: &[&Case], python: &Path) -> Result<Vec<CaseResult>, String> {
    let (listener, upstream) = raw_upstream().await.map_err(|e| e.to_string())?;
    let relay = start_relay(upstream, Profile::Default)
        .await
        .map_err(|e| e.to_string())?;
    let limited = start_relay(upstream, Profile::Limited)
        .await
        .map_err(|e| e.to_string())?;
    let urls: Vec<String> = cases
        .iter()
        .map(|c| {
            let addr = if c.profile == Profile::Limited {
                limited.addr
            } else {
                relay.addr
            };
            format!("ws://{addr}/case/{}", c.id)
        })
        .collect();
    let mut child = Command::new(python)
        .arg(crate_dir().join("python/echo_client.py"))
        .args(&urls)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting the Python client: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reports = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut by_path = HashMap::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(url) = v.get("url").and_then(|u| u.as_str()) {
                    let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}"));
                    by_path.insert(path.unwrap_or_default(), v.clone());
                }
            }
        }
        by_path
    });

    let mut results = Vec::new();
    for case in cases {
        let started = Instant::now();
        let deadline = started + case.deadline;
        let Script::Upstream { steps, .. } = &case.script else {
            continue;
        };
        let (stream, path, leftover) =
            match accept_upgrade(&listener, &[], Duration::from_secs(20)).await {
                Ok(ok) => ok,
                Err(e) => {
                    results.push(result(case, e.clone(), Err(e), started.elapsed()));
                    continue;
                }
            };
        if path != format!("/case/{}", case.id) {
            let why = format!("the client asked for {path}");
            results.push(result(case, why.clone(), Err(why), started.elapsed()));
            continue;
        }
        let mut driver = Driver::new(stream, leftover, Role::Upstream);
        driver.run_steps(steps, deadline).await;
        let observation = driver.finish(&case.expect, case, deadline).await;
        let verdict = peer::judge(case, &observation);
        results.push(result(
            case,
            observation.describe(),
            verdict,
            started.elapsed(),
        ));
    }
    // The client reports each connection's close once it ends.
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let _ = child.kill().await;
    let by_path = tokio::time::timeout(Duration::from_secs(5), reports)
        .await
        .map_err(|_| "the Python client's report never ended")?
        .map_err(|e| e.to_string())?;
    for (case, r) in cases.iter().zip(results.iter_mut()) {
        let Script::Upstream { client_close, .. } = &case.script else {
            continue;
        };
        let report = by_path.get(&format!("/case/{}", case.id));
        let code = report.and_then(|v| v.get("code")).and_then(|c| c.as_u64());
        r.observed.push_str(&match report {
            Some(v) => format!("; client: {v}"),
            None => "; client reported nothing".to_owned(),
        });
        if code != Some(u64::from(*client_close)) && r.verdict != Verdict::Fail {
            r.verdict = Verdict::Fail;
            r.note = format!("the client saw close {code:?}, expected {client_close}");
        }
    }
    Ok(results)
}

/// One connection of the blind echo ([`Echo::Blind`]).
async fn blind_echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok((_, mut buf)) = answer_upgrade(&mut stream, &[], Duration::from_secs(10)).await else {
        return;
    };
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        while let Ok(Some((frame, used))) = wire::read_frame(&buf, u64::MAX) {
            buf.drain(..used);
            let reply = match frame.opcode {
                wire::op::PONG => continue,
                wire::op::PING => wire::Frame::server(wire::op::PONG, true, frame.payload),
                opcode => wire::Frame::server(opcode, frame.fin, frame.payload).rsv(frame.rsv),
            };
            if stream.write_all(&reply.encode()).await.is_err() {
                return;
            }
            if frame.opcode == wire::op::CLOSE {
                // A server closes the TCP connection once the close handshake is done.
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}
