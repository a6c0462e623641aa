//! Many instances behind a real L4 balancer: HAProxy (Debian's package, installed by
//! `scripts/install-haproxy.sh`) in TCP mode with `send-proxy-v2`, in front of three `wsrelay`
//! processes sharing one configuration file (PROXY protocol on, trusting 127.0.0.0/8), in
//! front of an echo upstream. Loopback only; every process is killed at the end.
//!
//! One test runs the scenarios in order on one cluster, each printing its numbers:
//! - `spread`: 300 clients spread over the three; each instance logs the clients' own
//!   addresses (from the PROXY header), never HAProxy's;
//! - `drain_one`: one instance gets SIGTERM, nothing else: its `/readyz` turns 503 and
//!   HAProxy's health check takes it out of rotation during its `drain_delay`; then its
//!   clients get 1001, reconnect through HAProxy and land on the other two, with no failed
//!   handshake;
//! - `rolling_restart`: each instance replaced in turn (a new process on a new port, added
//!   through HAProxy's runtime API; then SIGTERM to the old one, as above) while new
//!   clients connect at more than 50 a second and steady tunnels keep echoing: no failed
//!   handshake, no message lost on a tunnel that was not drained;
//! - `reloads`: ten SIGHUP reloads of every instance under the same traffic, one of them an
//!   invalid file: no tunnel closed, no failed handshake, the invalid one reported.
//!
//! Another scenario is one more `async fn(&mut Cluster)` called from the test: the cluster
//! (`Cluster::start`, `start_instance`, `replace`, `terminate`), clients (`open_tunnel`,
//! `Tunnel::echo`) and the logs (`Cluster::logged_clients`) are shared.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use wsrelay::codec::OpCode;

/// Where our clients connect from: HAProxy connects to the instances from 127.0.0.1, so an
/// address the instances log is either ours (127.0.0.2) or HAProxy's, never ambiguous.
const CLIENT_IP: [u8; 4] = [127, 0, 0, 2];
/// Server slots in HAProxy's backend: three in use, the rest free for replacements.
const SLOTS: usize = 8;

// ---------------------------------------------------------------------------------------------
// HAProxy

/// `haproxy` from the install script, or why not.
fn haproxy_binary() -> Result<PathBuf, String> {
    let printed = run_install_script("install-haproxy.sh")?;
    Ok(PathBuf::from(printed.trim()))
}

/// A free loopback port (bound and released: HAProxy binds it right after).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// HAProxy in the foreground, killed on drop, with its runtime API on a UNIX socket.
struct Haproxy {
    child: Child,
    /// Where clients connect.
    front: SocketAddr,
    socket: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// Starts HAProxy with `instances` in the first slots of backend `wsrelay`, the other
    /// slots disabled until a replacement takes one; `instances` are (listener, admin listener)
    /// pairs. What a deployment would set: a health check every 100 ms on each instance's
    /// `/readyz` (so an instance that starts draining is out at once), a refused connection
    /// retried and redispatched to another server.
    fn start(binary: &Path, dir: &Path, instances: &[(SocketAddr, SocketAddr)]) -> Haproxy {
        let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let socket = dir.join("haproxy.sock");
        let mut servers = String::new();
        for slot in 0..SLOTS {
            match instances.get(slot) {
                // `port`: where the health check goes (the instance's admin listener).
                Some((addr, admin)) => {
                    servers += &format!("    server s{slot} {addr} port {}\n", admin.port())
                }
                // A free slot has a check port of its own from the start too: HAProxy sends the PROXY
                // header on checks only to servers without one (the admin listener takes none).
                None => servers += &format!("    server s{slot} 127.0.0.1:9 port 9 disabled\n"),
            }
        }
        let config = format!(
            "global\n    stats socket {socket} mode 600 level admin\n    maxconn 4096\n\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n\
             \x20   timeout server 60s\n    retries 3\n    option redispatch 1\n\n\
             frontend front\n    bind {front}\n    default_backend wsrelay\n\n\
             backend wsrelay\n    balance roundrobin\n\
             \x20   option httpchk\n    http-check send meth GET uri /readyz\n\
             \x20   default-server send-proxy-v2 check inter 100ms fall 2 rise 1 source 127.0.0.1\n\
             {servers}",
            socket = socket.display()
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        // Its warnings (servers going down and up) go to a file beside its configuration.
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        let haproxy = Haproxy {
            child,
            front,
            socket,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(front).is_err() || !haproxy.socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "haproxy did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }

    /// One runtime API command and its answer.
    fn command(&self, command: &str) -> String {
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).expect("haproxy socket");
        s.write_all(format!("{command}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    }

    /// Each server's status (`UP`, `DOWN`, `DRAIN`, `MAINT`) and its retries and
    /// redispatches, from `show stat`.
    fn servers(&self) -> BTreeMap<String, (String, u64, u64)> {
        let stat = self.command("show stat");
        let mut servers = BTreeMap::new();
        for line in stat.lines().filter(|l| l.starts_with("wsrelay,s")) {
            let f: Vec<&str> = line.split(',').collect();
            let n = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
            servers.insert(f[1].to_owned(), (f[17].to_owned(), n(15), n(16)));
        }
        servers
    }

    /// Waits until server `slot` has the status `status` (as `show stat` writes it).
    async fn wait_status(&self, slot: usize, status: &str) {
        let name = format!("s{slot}");
        let started = Instant::now();
        loop {
            let now = self.servers().get(&name).map(|s| s.0.clone());
            if now.as_deref().is_some_and(|s| s.starts_with(status)) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name} is {now:?}, not {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Points free slot `slot` at `addr` (health-checked on `admin`) and puts it in service
    /// once its check passes.
    async fn add(&self, slot: usize, addr: SocketAddr, admin: SocketAddr) {
        let set = self.command(&format!(
            "set server wsrelay/s{slot} addr {} port {}",
            addr.ip(),
            addr.port()
        ));
        assert!(!set.contains("No such"), "{set}");
        let set = self.command(&format!(
            "set server wsrelay/s{slot} check-port {}",
            admin.port()
        ));
        assert!(!set.contains("No such"), "{set}");
        self.command(&format!("set server wsrelay/s{slot} state ready"));
        self.wait_status(slot, "UP").await;
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster

/// An instance of the cluster: its process and the HAProxy slot it has.
struct Instance {
    binary: Binary,
    slot: usize,
}

/// HAProxy, the `wsrelay` instances behind it (all from one configuration file), the echo
/// upstream behind them.
struct Cluster {
    haproxy: Haproxy,
    config: PathBuf,
    instances: Vec<Instance>,
    /// Instances stopped so far (their logs stay readable).
    retired: Vec<Binary>,
}

/// The one configuration every instance runs: port 0, so each gets its own ports (announced
/// on stdout) from the same file; PROXY protocol from loopback; JSON access log with a line
/// when a tunnel opens, which is where the client's address is read; the drain an
/// orchestrator would configure: `/readyz` 503 and still accepting for 500 ms after SIGTERM
/// (five of HAProxy's checks), then the 1001s spread over 300 ms.
fn shared_config(echo: SocketAddr) -> String {
    format!(
        "[server]\nworkers = 1\nshutdown_timeout = \"5s\"\nlog_format = \"json\"\nlog_open = true\n\
         drain_delay = \"500ms\"\ndrain_window = \"300ms\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n\
         proxy_protocol_from = [\"127.0.0.0/8\"]\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{echo}\"\n"
    )
}

/// A `wsrelay` process on `config`.
fn start_instance(config: &Path) -> Binary {
    Binary::spawn(
        env!("CARGO_BIN_EXE_wsrelay"),
        &["--config", config.to_str().unwrap()],
        1,
    )
}

impl Cluster {
    /// Three instances behind HAProxy; `None` (SKIPPED printed) where HAProxy cannot be had.
    async fn start() -> Option<Cluster> {
        let haproxy = match haproxy_binary() {
            Ok(path) => path,
            Err(why) => {
                println!("SKIPPED: the scale-out test needs HAProxy: {why}");
                return None;
            }
        };
        let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
        let config = write_temp("wsrelay.toml", &shared_config(echo));
        let dir = config.parent().unwrap().to_owned();
        let binaries: Vec<Binary> = (0..3).map(|_| start_instance(&config)).collect();
        let addrs: Vec<(SocketAddr, SocketAddr)> = binaries.iter().map(addresses).collect();
        let haproxy = Haproxy::start(&haproxy, &dir, &addrs);
        for slot in 0..3 {
            haproxy.wait_status(slot, "UP").await;
        }
        let instances = binaries
            .into_iter()
            .enumerate()
            .map(|(slot, binary)| Instance { binary, slot })
            .collect();
        Some(Cluster {
            haproxy,
            config,
            instances,
            retired: Vec::new(),
        })
    }

    /// The client addresses instance `i` logged as opening a tunnel.
    fn logged_clients(&self, i: usize) -> Vec<SocketAddr> {
        clients_in(&self.instances[i].binary)
    }

    /// Waits until the instances have logged `n` tunnel openings in all since the start.
    async fn wait_logged(&self, n: usize) {
        let started = Instant::now();
        loop {
            let live: usize = (0..self.instances.len())
                .map(|i| self.logged_clients(i).len())
                .sum();
            let retired: usize = self.retired.iter().map(|b| clients_in(b).len()).sum();
            if live + retired >= n || started.elapsed() > Duration::from_secs(10) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Takes instance `i` out as an orchestrator would: SIGTERM and nothing else. Its
    /// `/readyz` turns 503 at once, so HAProxy's check takes it out of rotation while it still
    /// accepts (`drain_delay`); then it stops accepting and closes its tunnels with 1001 over
    /// `drain_window`, and the clients reconnect to the others. Once it has exited its slot is
    /// put in maintenance, free for a replacement. Returns the process (its log).
    async fn terminate(&mut self, i: usize) -> Binary {
        let Instance { mut binary, slot } = self.instances.remove(i);
        let pid = binary.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        // Out of rotation by its readiness alone, while it still accepts.
        self.haproxy.wait_status(slot, "DOWN").await;
        let started = Instant::now();
        while binary.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "instance did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.haproxy
            .command(&format!("set server wsrelay/s{slot} state maint"));
        binary
    }

    /// Replaces instance `i` as an operator would: a new process (same file, new port) put in
    /// a free HAProxy slot and checked up, then the old one [terminated](Self::terminate).
    /// Returns the old one (its log).
    async fn replace(&mut self, i: usize) -> Binary {
        self.add_instance().await;
        self.terminate(i).await
    }

    /// A new instance (the same file, a new port) in a free HAProxy slot, once its health
    /// check passes; it goes last in `instances`.
    async fn add_instance(&mut self) {
        let used: BTreeSet<usize> = self.instances.iter().map(|inst| inst.slot).collect();
        let slot = (0..SLOTS)
            .find(|s| !used.contains(s))
            .expect("a free HAProxy slot");
        let binary = start_instance(&self.config);
        let (addr, admin) = addresses(&binary);
        self.haproxy.add(slot, addr, admin).await;
        self.instances.push(Instance { binary, slot });
    }
}

/// An instance's listener and admin listener.
fn addresses(binary: &Binary) -> (SocketAddr, SocketAddr) {
    let admin = binary
        .admin
        .expect("the instance announces its admin listener");
    (binary.addr(), admin)
}

/// The client addresses a `wsrelay` process logged as opening a tunnel (JSON access log).
fn clients_in(binary: &Binary) -> Vec<SocketAddr> {
    binary
        .log_lines("\"event\":\"open\"")
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| v["client"].as_str().and_then(|c| c.parse().ok()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A client's tunnel through HAProxy, and its own address.
struct Tunnel {
    peer: RawPeer,
    local: SocketAddr,
}

/// What one echo round trip on a tunnel gave.
#[derive(Debug, PartialEq)]
enum Echo {
    /// The message came back.
    Back,
    /// The tunnel was closed with this code (1001: drained) instead.
    Closed(Option<u16>),
    /// Anything else: no answer, the wrong answer, a broken connection.
    Lost(String),
}

/// Connects from [`CLIENT_IP`] to `front` and upgrades; `Err` is a failed handshake.
async fn open_tunnel(front: SocketAddr) -> Result<Tunnel, String> {
    let opening = async {
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .bind(SocketAddr::from((CLIENT_IP, 0)))
            .map_err(|e| e.to_string())?;
        let mut stream = socket.connect(front).await.map_err(|e| e.to_string())?;
        let local = stream.local_addr().map_err(|e| e.to_string())?;
        let request = upgrade_request("/", "scale.test", "");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        // The echo sends nothing before our first frame: reading in chunks takes the head only.
        let mut head = Vec::new();
        let mut chunk = [0u8; 512];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!(
                    "closed during the handshake: {:?}",
                    String::from_utf8_lossy(&head)
                ));
            }
            head.extend_from_slice(&chunk[..n]);
        }
        if !head.starts_with(b"HTTP/1.1 101") {
            return Err(String::from_utf8_lossy(&head).into_owned());
        }
        Ok(Tunnel {
            peer: RawPeer::client(stream),
            local,
        })
    };
    match tokio::time::timeout(Duration::from_secs(10), opening).await {
        Ok(result) => result,
        Err(_) => Err("handshake timed out".into()),
    }
}

impl Tunnel {
    /// Sends `text` and waits for its echo.
    async fn echo(&mut self, text: &str) -> Echo {
        let wire = frame(OpCode::Text, true, text.as_bytes(), true);
        if let Err(e) = self.peer.stream.write_all(&wire).await {
            return Echo::Lost(format!("write: {e}"));
        }
        match self.peer.recv().await {
            Some((h, p)) if h.opcode == OpCode::Text && p == text.as_bytes() => Echo::Back,
            Some((h, p)) if h.opcode == OpCode::Close => {
                // Answer the close, as a client does.
                let reply = frame(OpCode::Close, true, &p[..p.len().min(2)], true);
                let _ = self.peer.stream.write_all(&reply).await;
                Echo::Closed((p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])))
            }
            Some((h, p)) => Echo::Lost(format!("{:?} {:?}", h.opcode, p)),
            None => Echo::Lost("no answer".into()),
        }
    }

    /// Waits for the tunnel's close frame (sent without a message of ours); its code.
    async fn closed(&mut self) -> Option<u16> {
        match self.peer.recv().await {
            Some((h, p)) if h.opcode == OpCode::Close && p.len() >= 2 => {
                let reply = frame(OpCode::Close, true, &p[..2], true);
                let _ = self.peer.stream.write_all(&reply).await;
                Some(u16::from_be_bytes([p[0], p[1]]))
            }
            _ => None,
        }
    }

    /// Closes with 1000, as a client that is done does.
    async fn close(mut self) {
        let wire = frame(OpCode::Close, true, &1000u16.to_be_bytes(), true);
        let _ = self.peer.stream.write_all(&wire).await;
        let _ = self.peer.recv().await;
    }
}

/// Opens `n` tunnels, `parallel` at a time, and echoes once on each; the tunnels and the
/// number of failed handshakes.
async fn open_many(front: SocketAddr, n: usize, parallel: usize) -> (Vec<Tunnel>, usize) {
    let mut tunnels = Vec::new();
    let mut failed = 0;
    for batch in (0..n).collect::<Vec<_>>().chunks(parallel) {
        let opened = futures_join(batch.iter().map(|&i| async move {
            let mut tunnel = open_tunnel(front).await?;
            match tunnel.echo(&format!("hello {i}")).await {
                Echo::Back => Ok(tunnel),
                other => Err(format!("first echo: {other:?}")),
            }
        }))
        .await;
        for result in opened {
            match result {
                Ok(tunnel) => tunnels.push(tunnel),
                Err(e) => {
                    eprintln!("failed handshake: {e}");
                    failed += 1;
                }
            }
        }
    }
    (tunnels, failed)
}

/// Runs futures concurrently on the runtime and collects their outputs in order.
async fn futures_join<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("client task"));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// 300 clients through HAProxy: each instance gets a share, and logs exactly our clients'
/// own addresses. The tunnels stay open for the next scenario.
async fn spread(cluster: &mut Cluster) -> Vec<Tunnel> {
    let started = Instant::now();
    let (tunnels, failed) = open_many(cluster.haproxy.front, 300, 50).await;
    let took = started.elapsed();
    cluster.wait_logged(300).await;
    let ours: BTreeSet<SocketAddr> = tunnels.iter().map(|t| t.local).collect();
    let shares: Vec<usize> = (0..3).map(|i| cluster.logged_clients(i).len()).collect();
    println!(
        "spread: {} clients opened in {took:?} ({failed} failed); tunnels per instance {shares:?}",
        tunnels.len()
    );
    assert_eq!((tunnels.len(), failed), (300, 0));
    assert!(shares.iter().all(|&n| n > 0), "{shares:?}");
    let logged: Vec<(usize, SocketAddr)> = (0..3)
        .flat_map(|i| cluster.logged_clients(i).into_iter().map(move |c| (i, c)))
        .collect();
    let haproxys = logged
        .iter()
        .filter(|(_, c)| c.ip() != std::net::IpAddr::from(CLIENT_IP))
        .count();
    let matched = logged.iter().filter(|(_, c)| ours.contains(c)).count();
    println!(
        "spread: {} client addresses logged, {matched} of them our clients' own ip:port, \
         {haproxys} from HAProxy's side (127.0.0.1)",
        logged.len()
    );
    for (i, client) in &logged {
        assert!(
            ours.contains(client),
            "instance {i} logged {client}, not one of our clients (HAProxy's own address?)"
        );
    }
    let distinct: BTreeSet<SocketAddr> = logged.iter().map(|(_, c)| *c).collect();
    assert_eq!(logged.len(), 300, "one line per client");
    assert_eq!(
        distinct, ours,
        "every client logged, by the instance it reached"
    );
    tunnels
}

/// One instance drained with SIGTERM: its clients get 1001, reconnect through HAProxy and
/// land on the other two; no reconnect fails.
async fn drain_one(cluster: &mut Cluster, tunnels: Vec<Tunnel>) {
    let front = cluster.haproxy.front;
    let on_first: BTreeSet<SocketAddr> = cluster.logged_clients(0).into_iter().collect();
    let (mut leaving, staying): (Vec<Tunnel>, Vec<Tunnel>) = tunnels
        .into_iter()
        .partition(|t| on_first.contains(&t.local));
    // Tunnels the other two logged so far: every one they log from here on is a reconnect.
    // (Counted, not matched by address: a reconnecting client may get its old port again.)
    let before: Vec<usize> = (1..3).map(|i| cluster.logged_clients(i).len()).collect();
    let started = Instant::now();
    // Each leaving client waits for its close and reconnects on its own task, so none waits
    // for another; they are running before the signal goes.
    let closes: Vec<_> = leaving
        .drain(..)
        .map(|mut t| {
            tokio::spawn(async move {
                let code = t.closed().await;
                let reconnected = match open_tunnel(front).await {
                    Ok(mut tunnel) => match tunnel.echo("back").await {
                        Echo::Back => Ok(tunnel),
                        other => Err(format!("echo after reconnecting: {other:?}")),
                    },
                    Err(e) => Err(e),
                };
                (code, reconnected)
            })
        })
        .collect();
    let retired = cluster.terminate(0).await;
    let mut results = Vec::new();
    for c in closes {
        results.push(c.await.expect("client task"));
    }
    let took = started.elapsed();
    let codes: BTreeMap<Option<u16>, usize> = results.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.0).or_default() += 1;
        m
    });
    let mut failed = 0;
    let mut back = Vec::new();
    for (_, r) in results {
        match r {
            Ok(t) => back.push(t),
            Err(e) => {
                eprintln!("failed reconnect: {e}");
                failed += 1;
            }
        }
    }
    let on_retired = clients_in(&retired).len() - on_first.len();
    cluster.retired.push(retired);
    cluster.wait_logged(300 + back.len()).await;
    let landed: Vec<usize> = (0..2)
        .map(|i| cluster.logged_clients(i).len() - before[i])
        .collect();
    let stats = cluster.haproxy.servers();
    let (retries, redispatches) = stats.values().fold((0, 0), |(r, d), s| (r + s.1, d + s.2));
    println!(
        "drain_one: {} tunnels on the drained instance, close codes {codes:?}; {} reconnected \
         in {took:?}, {failed} failed, landed {landed:?} on the other two, {on_retired} on the \
         drained one; HAProxy retries {retries}, redispatches {redispatches}",
        on_first.len(),
        back.len()
    );
    assert_eq!(
        codes.get(&Some(1001)).copied(),
        Some(on_first.len()),
        "{codes:?}"
    );
    assert_eq!(failed, 0);
    assert_eq!(landed.iter().sum::<usize>(), on_first.len());
    assert!(landed.iter().all(|&n| n > 0), "{landed:?}");
    assert_eq!(on_retired, 0);
    // The remaining tunnels were not touched.
    for (i, mut t) in staying.into_iter().chain(back).enumerate() {
        assert_eq!(t.echo(&format!("still {i}")).await, Echo::Back);
        t.close().await;
    }
}

/// Counts of the rolling restart's traffic.
#[derive(Default)]
struct Counts {
    opened: AtomicUsize,
    failed: AtomicUsize,
    echoed: AtomicUsize,
    lost: AtomicUsize,
    drained: AtomicUsize,
}

/// Steady traffic through the balancer while a scenario runs: 30 tunnels echoing every 50 ms
/// (a tunnel closed with 1001 reconnects) and a new client every 15 ms (an upgrade, an echo
/// and a close), counted.
struct Traffic {
    counts: Arc<Counts>,
    stop: tokio::sync::watch::Sender<bool>,
    steady: Vec<tokio::task::JoinHandle<()>>,
    arrivals: tokio::task::JoinHandle<u64>,
}

impl Traffic {
    /// Starts the traffic towards `front`.
    fn start(front: SocketAddr) -> Traffic {
        let counts = Arc::new(Counts::default());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        // Steady tunnels: echo every 50 ms; a 1001 (their instance drained) means reconnect.
        let mut steady = Vec::new();
        for id in 0..30 {
            let (counts, mut stop) = (counts.clone(), stop.clone());
            steady.push(tokio::spawn(async move {
                let mut seq = 0u64;
                'tunnels: loop {
                    let mut tunnel = match open_tunnel(front).await {
                        Ok(t) => t,
                        Err(e) => {
                            eprintln!("steady {id}: failed handshake: {e}");
                            counts.failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    counts.opened.fetch_add(1, Ordering::Relaxed);
                    loop {
                        if *stop.borrow() {
                            tunnel.close().await;
                            break 'tunnels;
                        }
                        seq += 1;
                        match tunnel.echo(&format!("steady {id} {seq}")).await {
                            Echo::Back => counts.echoed.fetch_add(1, Ordering::Relaxed),
                            Echo::Closed(Some(1001)) => {
                                counts.drained.fetch_add(1, Ordering::Relaxed);
                                continue 'tunnels;
                            }
                            other => {
                                eprintln!("steady {id}: lost: {other:?}");
                                counts.lost.fetch_add(1, Ordering::Relaxed);
                                continue 'tunnels;
                            }
                        };
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
            }));
        }
        // New clients: one every 15 ms, each an upgrade, an echo and a close.
        let arrivals = {
            let (counts, stop) = (counts.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(15));
                let mut clients = tokio::task::JoinSet::new();
                let mut n = 0u64;
                while !*stop.borrow() {
                    tick.tick().await;
                    n += 1;
                    let counts = counts.clone();
                    clients.spawn(async move {
                        match open_tunnel(front).await {
                            Ok(mut t) => {
                                counts.opened.fetch_add(1, Ordering::Relaxed);
                                match t.echo(&format!("new {n}")).await {
                                    Echo::Back => {
                                        counts.echoed.fetch_add(1, Ordering::Relaxed);
                                        t.close().await;
                                    }
                                    Echo::Closed(Some(1001)) => {
                                        counts.drained.fetch_add(1, Ordering::Relaxed);
                                    }
                                    other => {
                                        eprintln!("new client {n}: lost: {other:?}");
                                        counts.lost.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                            Err(e) => {
                                eprintln!("new client {n}: failed handshake: {e}");
                                counts.failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                    while clients.try_join_next().is_some() {}
                }
                while clients.join_next().await.is_some() {}
                n
            })
        };
        Traffic {
            counts,
            stop: stop_tx,
            steady,
            arrivals,
        }
    }

    /// Stops the traffic and waits for every client; the counts and the number of new clients.
    async fn stop(self) -> (Arc<Counts>, u64) {
        let _ = self.stop.send(true);
        let arrived = self.arrivals.await.unwrap();
        for s in self.steady {
            s.await.unwrap();
        }
        (self.counts, arrived)
    }
}

/// Every instance replaced in turn while new clients connect at about 66 a second and steady
/// tunnels echo every 50 ms: no failed handshake, no message lost outside drained tunnels.
async fn rolling_restart(cluster: &mut Cluster) {
    let front = cluster.haproxy.front;
    let traffic = Traffic::start(front);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut steps = Vec::new();
    for _ in 0..cluster.instances.len() {
        // The oldest instance is first in the list; its replacement goes to the end.
        let step = Instant::now();
        let old = cluster.replace(0).await;
        steps.push(step.elapsed());
        cluster.retired.push(old);
        // Traffic goes on between steps, as in a real rollout.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (counts, arrived) = traffic.stop().await;
    let took = started.elapsed();
    let rate = arrived as f64 / took.as_secs_f64();
    let load = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    println!(
        "rolling_restart: 3 instances replaced in {took:?} (steps {steps:?}); {arrived} new \
         clients ({rate:.0}/s); handshakes {} ok, {} failed; echoes {}; tunnels drained with \
         1001 {}; messages lost elsewhere {}",
        load(&counts.opened),
        load(&counts.failed),
        load(&counts.echoed),
        load(&counts.drained),
        load(&counts.lost)
    );
    assert!(rate >= 50.0, "{rate:.1} new clients per second");
    assert_eq!(load(&counts.failed), 0, "failed handshakes");
    assert_eq!(
        load(&counts.lost),
        0,
        "messages lost outside drained tunnels"
    );
    // The three replacements in rotation (a check may be between two answers: waited for).
    for inst in &cluster.instances {
        cluster.haproxy.wait_status(inst.slot, "UP").await;
    }
    let servers = cluster.haproxy.servers();
    let up: Vec<&String> = servers
        .iter()
        .filter(|(_, s)| s.0.starts_with("UP"))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(up.len(), 3, "{servers:?}");
}

/// Ten reloads (SIGHUP to every instance) while traffic flows, the configuration changing
/// each time (a timeout, a route added and removed) and the sixth file invalid: no tunnel
/// closed, no failed handshake, no message lost; the invalid file reported by every instance
/// with its position, and the running configuration kept.
async fn reloads(cluster: &mut Cluster) {
    let base = std::fs::read_to_string(&cluster.config).unwrap();
    let upstream = base
        .lines()
        .find(|l| l.starts_with("upstream = "))
        .expect("the shared file's upstream")
        .to_owned();
    let traffic = Traffic::start(cluster.haproxy.front);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let count = |cluster: &Cluster, needle: &str| -> Vec<usize> {
        (cluster.instances.iter())
            .map(|inst| inst.binary.log_lines(needle).len())
            .collect()
    };
    let (applied_before, refused_before) = (
        count(cluster, "reloaded: generation"),
        count(cluster, "reload refused"),
    );
    const INVALID: usize = 5;
    for k in 0..10 {
        let timeout = if k == INVALID {
            "soon".to_owned()
        } else {
            format!("{}s", 5 + k)
        };
        let mut text = base.replacen(
            "[server]\n",
            &format!("[server]\nhandshake_timeout = \"{timeout}\"\n"),
            1,
        );
        if k % 2 == 1 {
            text +=
                &format!("\n[[routes]]\nname = \"extra\"\npath_prefix = \"/extra/\"\n{upstream}\n");
        }
        // Written whole, then renamed over the file: no instance reads half a file.
        let next = cluster.config.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &cluster.config).unwrap();
        let needle = if k == INVALID {
            "reload refused"
        } else {
            "reloaded: generation"
        };
        let before = count(cluster, needle);
        for inst in &cluster.instances {
            let pid = inst.binary.child.id().to_string();
            assert!(Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success());
        }
        let waiting = Instant::now();
        while count(cluster, needle)
            .iter()
            .zip(&before)
            .any(|(a, b)| a <= b)
        {
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "reload {k}: not every instance logged {needle:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (counts, arrived) = traffic.stop().await;
    let took = started.elapsed();
    std::fs::write(&cluster.config, &base).unwrap();
    let applied: Vec<usize> = (count(cluster, "reloaded: generation").iter())
        .zip(&applied_before)
        .map(|(a, b)| a - b)
        .collect();
    let refused: Vec<usize> = (count(cluster, "reload refused").iter())
        .zip(&refused_before)
        .map(|(a, b)| a - b)
        .collect();
    let positioned: Vec<usize> = (cluster.instances.iter())
        .map(|inst| {
            inst.binary
                .log_lines("invalid duration \"soon\"")
                .iter()
                .filter(|l| l.contains("wsrelay.toml:"))
                .count()
        })
        .collect();
    let load = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    println!(
        "reloads: 10 SIGHUPs to each of 3 instances in {took:?}; applied per instance \
         {applied:?}, refused {refused:?} (positioned diagnostics {positioned:?}); {arrived} new \
         clients; handshakes {} ok, {} failed; echoes {}; tunnels closed {}; messages lost {}",
        load(&counts.opened),
        load(&counts.failed),
        load(&counts.echoed),
        load(&counts.drained),
        load(&counts.lost)
    );
    assert_eq!(applied, vec![9; 3]);
    assert_eq!(refused, vec![1; 3]);
    assert!(positioned.iter().all(|&n| n >= 1), "{positioned:?}");
    assert_eq!(load(&counts.failed), 0, "failed handshakes");
    assert_eq!(load(&counts.drained), 0, "tunnels closed by a reload");
    assert_eq!(load(&counts.lost), 0, "messages lost");
    assert!(load(&counts.echoed) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behind_haproxy_with_the_proxy_protocol() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let started = Instant::now();
    let tunnels = spread(&mut cluster).await;
    drain_one(&mut cluster, tunnels).await;
    // Back to three for the next scenario: a fresh instance in a free slot.
    cluster.add_instance().await;
    rolling_restart(&mut cluster).await;
    reloads(&mut cluster).await;
    println!("scale-out scenarios took {:?}", started.elapsed());
}
