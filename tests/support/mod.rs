//! Shared helpers for end-to-end tests: a gateway on a real socket and a raw-bytes WebSocket client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsrelay::codec::{apply_mask, write_frame, FrameHeader, OpCode, Parse, ParseConfig, Role};
use wsrelay::config::GatewayConfig;
use wsrelay::gateway::Gateway;
use wsrelay::handshake::{Limits, UpgradeRequest, UpstreamResponse, WsUri};
use wsrelay::head::{read_head, HeadError};
use wsrelay::upstream::Upstream;

/// The masking key the raw client uses.
pub const KEY: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];

/// A gateway running on a loopback port until dropped or stopped.
pub struct RunningGateway {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl RunningGateway {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Sends the shutdown signal and waits for the gateway to exit.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("gateway exits in time")
            .expect("gateway task")
            .expect("gateway result");
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts a gateway in front of `upstream`, letting `tune` adjust the config.
pub async fn gateway_with(upstream: &str, tune: impl FnOnce(&mut GatewayConfig)) -> RunningGateway {
    let upstream = Upstream::new(WsUri::parse(upstream).expect("upstream uri")).expect("upstream");
    let mut config = GatewayConfig::new(loopback(), upstream);
    config.routes[0].relay.close_timeout = Duration::from_secs(3);
    tune(&mut config);
    let gateway = Gateway::bind(config).await.expect("bind gateway");
    let addr = gateway.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = rx.await;
    }));
    RunningGateway {
        addr,
        stop: Some(tx),
        task,
    }
}

/// Starts a gateway in front of a fresh built-in echo server.
pub async fn gateway_to_echo() -> RunningGateway {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    gateway_with(&format!("ws://{echo}/"), |_| {}).await
}

/// Encodes one frame; masked with [`KEY`] when `masked`.
pub fn frame(opcode: OpCode, fin: bool, payload: &[u8], masked: bool) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        mask: masked.then_some(KEY),
        ..FrameHeader::new(opcode, 0)
    };
    let mut out = Vec::new();
    write_frame(&mut out, header, payload);
    out
}

pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    [code.to_be_bytes().as_slice(), reason.as_bytes()].concat()
}

/// A WebSocket peer that speaks raw bytes, so tests can send anything, valid or not.
pub struct RawPeer {
    pub stream: TcpStream,
    pub role: Role,
    /// RSV bits accepted in received frames (an extension was negotiated).
    pub allowed_rsv: u8,
    buf: Vec<u8>,
}

/// The HTTP response a raw client got to its upgrade.
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawPeer {
    /// Connects as a client and completes the upgrade; `extra` bytes are sent right behind the request.
    pub async fn connect(
        url: &str,
        protocols: &[&str],
        extra: &[u8],
    ) -> Result<RawPeer, HttpAnswer> {
        let uri = WsUri::parse(url).unwrap();
        let mut stream = TcpStream::connect((uri.host.as_str(), uri.port))
            .await
            .unwrap();
        let protocols: Vec<String> = protocols.iter().map(|p| p.to_string()).collect();
        let request = UpgradeRequest::new(&uri)
            .expect("random key")
            .with_protocols(&protocols);
        let mut out = Vec::new();
        request.encode(&mut out);
        out.extend_from_slice(extra);
        stream.write_all(&out).await.unwrap();
        let mut buf = Vec::new();
        let parse = |b: &[u8]| request.parse_response(b, &Limits::default());
        let (response, consumed) = match read_head(&mut stream, &mut buf, parse).await {
            Ok(done) => done,
            Err(HeadError::Parse(e)) => panic!("invalid response: {e}"),
            Err(e) => panic!(
                "connection closed during the handshake ({e:?}): {:?}",
                String::from_utf8_lossy(&buf)
            ),
        };
        match response {
            UpstreamResponse::Accepted { .. } => {
                buf.drain(..consumed);
                Ok(RawPeer {
                    stream,
                    role: Role::Client,
                    allowed_rsv: 0,
                    buf,
                })
            }
            UpstreamResponse::Refused { status, .. } => {
                let head = String::from_utf8_lossy(&buf[..consumed]).into_owned();
                let mut body = buf[consumed..].to_vec();
                let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut body))
                    .await;
                Err(HttpAnswer { status, head, body })
            }
        }
    }

    /// Wraps a client connection whose upgrade was already done (e.g. by [`http_head`]).
    pub fn client(stream: TcpStream) -> RawPeer {
        RawPeer {
            stream,
            role: Role::Client,
            allowed_rsv: 0,
            buf: Vec::new(),
        }
    }

    /// Wraps an accepted upstream-side connection (after its handshake).
    pub fn server(stream: TcpStream, leftover: Vec<u8>) -> RawPeer {
        RawPeer {
            stream,
            role: Role::Server,
            allowed_rsv: 0,
            buf: leftover,
        }
    }

    /// Whether frames this peer sends are masked.
    fn masks(&self) -> bool {
        self.role == Role::Client
    }

    /// Sends one frame, masked like a browser's (a fresh random key) when this peer is a
    /// client; returns the key used.
    pub async fn send(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Option<[u8; 4]> {
        let key = self.masks().then(random_key);
        self.send_masked(opcode, fin, payload, key).await;
        key
    }

    /// Sends one frame masked with `key` (`None`: unmasked), e.g. a predictable key.
    pub async fn send_masked(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        key: Option<[u8; 4]>,
    ) {
        let header = FrameHeader {
            fin,
            mask: key,
            ..FrameHeader::new(opcode, 0)
        };
        let mut wire = Vec::new();
        write_frame(&mut wire, header, payload);
        self.stream.write_all(&wire).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads the next frame (header and unmasked payload); `None` on EOF or timeout.
    pub async fn recv(&mut self) -> Option<(FrameHeader, Vec<u8>)> {
        tokio::time::timeout(Duration::from_secs(20), self.recv_inner())
            .await
            .ok()?
    }

    async fn recv_inner(&mut self) -> Option<(FrameHeader, Vec<u8>)> {
        loop {
            let config = ParseConfig {
                allowed_rsv: self.allowed_rsv,
                ..ParseConfig::new(self.role)
            };
            if let Some(frame) = take_frame(&mut self.buf, config) {
                return Some(frame);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Expects a close frame; returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        let (h, p) = self.recv().await.expect("a close frame, got EOF");
        assert_eq!(
            h.opcode,
            OpCode::Close,
            "expected close, got {h:?} {:?}",
            String::from_utf8_lossy(&p)
        );
        (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]))
    }

    /// Expects the connection to end (EOF) within a few seconds, with no more frames.
    pub async fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "connection still open");
        assert!(
            self.buf.is_empty() && rest.is_empty(),
            "unexpected bytes: {:?} {:?}",
            self.buf,
            rest
        );
    }
}

/// A tiny upstream that accepts connections with our handshake crate (first offered
/// subprotocol, no extension) and hands each to the test.
pub async fn raw_upstream() -> (SocketAddr, tokio::sync::mpsc::Receiver<RawPeer>) {
    let (addr, mut recorded) = recording_upstream(first_protocol).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Some((_, peer)) = recorded.recv().await {
            if tx.send(peer).await.is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// Starts a gateway from a loaded configuration.
pub async fn gateway_from(config: GatewayConfig) -> RunningGateway {
    let gateway = Gateway::bind(config).await.expect("bind gateway");
    let addr = gateway.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = rx.await;
    }));
    RunningGateway {
        addr,
        stop: Some(tx),
        task,
    }
}

/// Writes `text` to a fresh file under the test's temporary directory and returns its path.
pub fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "wsrelay-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a TOML configuration to a temporary file and loads it, as `wsrelay --config` does.
pub fn load_config(toml: &str) -> GatewayConfig {
    let path = write_temp("wsrelay.toml", toml);
    wsrelay::config::load(&path).unwrap_or_else(|e| panic!("config refused:\n{e}"))
}

/// What an upstream answers to an upgrade: the subprotocol and extensions it accepts.
pub type Answer = fn(&wsrelay::handshake::WebSocketRequest) -> (Option<String>, Option<String>);

/// Picks the first offered subprotocol and accepts no extension.
pub fn first_protocol(
    request: &wsrelay::handshake::WebSocketRequest,
) -> (Option<String>, Option<String>) {
    (request.protocols.first().cloned(), None)
}

/// An upstream that accepts upgrades as `answer` says and hands each request head and
/// connection to the test.
pub async fn recording_upstream(
    answer: Answer,
) -> (
    SocketAddr,
    tokio::sync::mpsc::Receiver<(wsrelay::handshake::RequestHead, RawPeer)>,
) {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let parse = |b: &[u8]| wsrelay::handshake::parse_upgrade_request(b, &Limits::default());
            let ((head, request), consumed) = match read_head(&mut stream, &mut buf, parse).await {
                Ok(done) => done,
                Err(HeadError::Parse(e)) => panic!("gateway sent an invalid upgrade: {e}"),
                Err(_) => continue,
            };
            let (protocol, extensions) = answer(&request);
            let mut out = Vec::new();
            wsrelay::handshake::write_switching_protocols(
                &mut out,
                &request.accept(),
                protocol.as_deref(),
                extensions.as_deref(),
                &[],
            );
            stream.write_all(&out).await.unwrap();
            let _ = tx
                .send((head, RawPeer::server(stream, buf.split_off(consumed))))
                .await;
        }
    });
    (addr, rx)
}

/// A random masking key, as a browser picks one per frame.
pub fn random_key() -> [u8; 4] {
    wsrelay_codec::random::masking_key().expect("random key")
}

/// What `wsrelay check` said of a configuration file.
pub struct Checked {
    /// The exit code: 0 when the file is valid, 1 when it has errors.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `wsrelay check --config path` with `env` added to its environment.
pub fn check_config(path: impl AsRef<std::ffi::OsStr>, env: &[(&str, &str)]) -> Checked {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsrelay"))
        .args(["check", "--config"])
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .expect("run wsrelay check");
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sends raw request bytes and returns the whole response text (the gateway closes after it).
pub async fn http_exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read response");
    String::from_utf8_lossy(&response).into_owned()
}

/// An upgrade request with `extra` header lines (each ending in \r\n).
pub fn upgrade_request(target: &str, host: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// The value of a header in a request head, as text.
pub fn header_of(head: &wsrelay::handshake::RequestHead, name: &str) -> Option<String> {
    head.header(name)
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
}

/// Sends raw request bytes and reads the response head only (up to the blank line); the
/// connection stays open for frames after a 101.
pub async fn http_head(addr: SocketAddr, request: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("response in time")
            .expect("read response");
        assert!(n > 0, "closed mid-head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), s)
}

/// A `wsrelay` process started as a user would; killed on drop. Its stderr (the log) is
/// collected for tests that read it.
pub struct Binary {
    pub child: std::process::Child,
    /// The addresses it announced, in the order of its listeners.
    pub addrs: Vec<SocketAddr>,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The admin listener it announced ("admin on http://ADDR/"), if any.
    pub admin: Option<SocketAddr>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    /// Runs `program` (the binary, or a shell wrapping it) with `args` and waits until it has
    /// announced `listeners` addresses on stdout ("... ws://ADDR/ ...").
    pub fn spawn(program: &str, args: &[&str], listeners: usize) -> Binary {
        Binary::spawn_with_env(program, args, listeners, &[])
    }

    /// [`spawn`](Self::spawn) with extra environment variables.
    pub fn spawn_with_env(
        program: &str,
        args: &[&str],
        listeners: usize,
        env: &[(&str, &str)],
    ) -> Binary {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .env("WSRELAY_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn wsrelay");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut addrs = Vec::new();
        let mut admin = None;
        while addrs.len() < listeners {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("wsrelay exited: {:?}", log.lock().unwrap()))
                .expect("readable stdout");
            let addr: Option<SocketAddr> = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("ws://").or_else(|| w.strip_prefix("wss://")))
                .and_then(|rest| rest.trim_end_matches('/').parse().ok());
            addrs.extend(addr);
            // The admin line comes before the listeners' lines.
            admin = admin.or_else(|| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix("http://"))
                    .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            });
        }
        // Keep reading stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Binary {
            child,
            addrs,
            log,
            admin,
        }
    }

    /// The binary with a configuration file holding `toml`.
    pub fn with_config(toml: &str, listeners: usize) -> Binary {
        let path = write_temp("wsrelay.toml", toml);
        let path = path.to_str().unwrap().to_owned();
        Binary::spawn(
            env!("CARGO_BIN_EXE_wsrelay"),
            &["--config", &path],
            listeners,
        )
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Log lines so far that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// The last log line that contains `needle`, looking every 50 ms for up to `within`.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(line) = self.log_lines(needle).pop() {
                return Some(line);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Serves `route` through the embedding API on a free port; each connection's result goes to
/// the returned channel.
pub async fn embedded(
    route: wsrelay::route::Route,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Result<wsrelay::relay::RelayOutcome, wsrelay::Error>>,
) {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let route = std::sync::Arc::new(route);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let (route, tx) = (route.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send(
                    wsrelay::embed::accept_and_relay(stream, peer, &route, wsrelay::relay::NoHook)
                        .await,
                );
            });
        }
    });
    (addr, rx)
}

/// Runs one of the project's install scripts (`scripts/NAME`) and returns what it printed on
/// stdout (the installed tools' paths), or why it failed: the caller prints `SKIPPED` with it.
pub fn run_install_script(name: &str) -> Result<String, String> {
    let script = format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A free loopback port (bound, then released for the process that takes it).
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Takes the next complete frame off the front of `buf`, its payload unmasked; `None` until
/// `buf` holds one whole frame. Panics on an invalid frame (the peer is a test's).
pub fn take_frame(buf: &mut Vec<u8>, config: ParseConfig) -> Option<(FrameHeader, Vec<u8>)> {
    match FrameHeader::parse(buf, config) {
        Ok(Parse::Complete(h, n)) if buf.len() as u64 >= n as u64 + h.payload_len => {
            let end = n + h.payload_len as usize;
            let mut payload = buf[n..end].to_vec();
            buf.drain(..end);
            if let Some(key) = h.mask {
                apply_mask(&mut payload, key, 0);
            }
            Some((h, payload))
        }
        Ok(_) => None,
        Err(e) => panic!("peer received an invalid frame: {e}"),
    }
}

/// The PROXY protocol v2 signature (the first 12 bytes of every v2 header).
pub const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 PROXY header for TCP over IPv4, written by hand from the specification (§2.2).
pub fn v2_ipv4(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (source, destination) else {
        panic!("IPv4 addresses")
    };
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, 0x11, 0x00, 0x0C]);
    out.extend_from_slice(&s.ip().octets());
    out.extend_from_slice(&d.ip().octets());
    out.extend_from_slice(&s.port().to_be_bytes());
    out.extend_from_slice(&d.port().to_be_bytes());
    out
}

/// A tokio-tungstenite client connection, as [`open_ws`] returns it.
pub type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A WebSocket client through the gateway at `addr` (`ws://addr{path}`), within 5 s; the
/// error's text (with the status of a refusal) if it is not opened.
pub async fn open_ws(addr: SocketAddr, path: &str) -> Result<WsClient, String> {
    let url = format!("ws://{addr}{path}");
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timed out".to_owned()),
    }
}

/// A TLS client configuration (ring, safe defaults, no client certificate) that trusts `root`
/// alone; callers set ALPN where they need it.
pub fn tls_client_config(
    root: &rustls::pki_types::CertificateDer<'static>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}
