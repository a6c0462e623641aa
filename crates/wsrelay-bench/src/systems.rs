//! The systems under test: starting each proxy (wsrelay, an earlier wsrelay build, the raw TCP
//! proxy, the tungstenite relay, nginx) as a process of its own on a free loopback port, and
//! stopping it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wsrelay::handshake::WsUri;

/// A configuration of the `wsrelay` binary measured as a system of its own: the arguments it
/// gets beyond the common ones (listen address, upstream, log level). Adding a variant (a
/// switch to compare on and off) is one entry in [`WSRELAY_VARIANTS`].
pub(crate) struct Variant {
    pub(crate) name: &'static str,
    pub(crate) args: &'static [&'static str],
    /// Whether smoke runs (CI) and the `--metrics-overhead` / `--http2` runs measure it too,
    /// not only full comparisons.
    pub(crate) always: bool,
}

/// The `wsrelay` variants, in the order they are measured and tabulated.
pub(crate) const WSRELAY_VARIANTS: &[Variant] = &[
    // Pass-through: headers checked, payloads untouched.
    Variant {
        name: "wsrelay",
        args: &["--no-utf8-validation"],
        always: true,
    },
    // The defaults: text validated as UTF-8 on the fly.
    Variant {
        name: "wsrelay-utf8",
        args: &[],
        always: false,
    },
];

/// The variant called `name`, if it is one.
pub(crate) fn variant(name: &str) -> Option<&'static Variant> {
    WSRELAY_VARIANTS.iter().find(|v| v.name == name)
}

/// A system under test: a name, its WebSocket URL, and the process serving it (if any).
pub(crate) struct System {
    pub(crate) name: &'static str,
    pub(crate) url: WsUri,
    pub(crate) process: Option<Child>,
}

impl Drop for System {
    fn drop(&mut self) {
        if let Some(child) = self.process.as_mut() {
            // SIGTERM first: nginx's master then stops its workers (SIGKILL would orphan them).
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(crate) fn ws(port: u16) -> WsUri {
    WsUri {
        secure: false,
        host: "127.0.0.1".into(),
        port,
        path_and_query: "/".into(),
    }
}

pub(crate) fn spawn(program: &Path, args: &[String]) -> Result<Child, String> {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", program.display()))
}

/// Waits until `port` accepts connections.
pub(crate) async fn wait_listening(port: u16) -> Result<(), String> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(loopback(port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("nothing listens on port {port}"))
}

/// Installs nginx through the project's script; `None` (with the reason printed) if it cannot be had.
pub(crate) fn nginx_binary(root: &Path) -> Option<PathBuf> {
    let script = root.join("scripts/install-nginx.sh");
    match Command::new("bash").arg(&script).output() {
        Ok(out) if out.status.success() => {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            Some(PathBuf::from(path))
        }
        Ok(out) => {
            println!(
                "SKIPPED nginx: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(e) => {
            println!("SKIPPED nginx: cannot run {}: {e}", script.display());
            None
        }
    }
}

/// Starts nginx as a WebSocket reverse proxy in front of `echo`, with a config of its own.
pub(crate) fn start_nginx(
    nginx: &Path,
    dir: &Path,
    port: u16,
    echo: u16,
    buffer: Option<&str>,
) -> Result<Child, String> {
    std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let d = dir.display();
    let config = format!(
        "{user}worker_processes 2;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
events {{ worker_connections 20000; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
  server {{\n    listen 127.0.0.1:{port} reuseport;\n    location / {{\n      proxy_pass http://127.0.0.1:{echo};\n      proxy_http_version 1.1;\n\
      proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection $connection_upgrade;\n      proxy_read_timeout 600s;\n      proxy_send_timeout 600s;\n{buffer}    }}\n  }}\n}}\n",
        user = if root_user { "user root;\n" } else { "" },
        // The upgraded tunnel uses proxy_buffer_size per direction; nginx insists the other
        // buffer settings be consistent with it.
        buffer = buffer
            .map(|b| format!("      proxy_buffer_size {b};\n      proxy_buffers 4 {b};\n      proxy_busy_buffers_size {b};\n"))
            .unwrap_or_default(),
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).map_err(|e| e.to_string())?;
    let args = vec![
        "-p".to_owned(),
        d.to_string(),
        "-c".to_owned(),
        conf.display().to_string(),
    ];
    spawn(nginx, &args)
}

/// What starting a fresh proxy needs.
pub(crate) struct Launch<'a> {
    pub(crate) exe: &'a Path,
    pub(crate) wsrelay: &'a Path,
    pub(crate) baseline: Option<&'a Path>,
    pub(crate) root: &'a Path,
    pub(crate) echo_port: u16,
    pub(crate) echo_url: &'a str,
}

/// Starts a fresh instance of the proxy called `name` in front of the echo.
pub(crate) async fn launch(l: &Launch<'_>, name: &'static str) -> Result<System, String> {
    let p = free_port()?;
    let child = match name {
        "raw-tcp-proxy" => spawn(
            l.exe,
            &[
                "raw-proxy".into(),
                "--listen".into(),
                loopback(p).to_string(),
                "--upstream".into(),
                loopback(l.echo_port).to_string(),
            ],
        )?,
        "tungstenite-relay" => spawn(
            l.exe,
            &[
                "tungstenite-relay".into(),
                "--listen".into(),
                loopback(p).to_string(),
                "--upstream".into(),
                l.echo_url.to_owned(),
            ],
        )?,
        name if variant(name).is_some() || name == "wsrelay-baseline" => {
            // The big-frame workload sends one 1 GiB frame: above the default limits (16 MiB
            // frames, 64 MiB messages), so they are lifted here, explicitly (0: none).
            let mut a: Vec<String> = vec![
                "--listen".into(),
                loopback(p).to_string(),
                "--upstream".into(),
                l.echo_url.to_owned(),
                "--log".into(),
                "warn".into(),
                "--max-frame-size".into(),
                "0".into(),
                "--max-message-size".into(),
                "0".into(),
            ];
            let (program, extra) = match variant(name) {
                Some(v) => (l.wsrelay, v.args),
                None => (
                    l.baseline.ok_or("no baseline binary")?,
                    &["--no-utf8-validation"][..],
                ),
            };
            a.extend(extra.iter().map(|s| (*s).to_owned()));
            spawn(program, &a)?
        }
        "nginx-4k" | "nginx-64k" => {
            let nginx = nginx_binary(l.root).ok_or("nginx vanished")?;
            let dir = std::fs::canonicalize(l.root)
                .map_err(|e| e.to_string())?
                .join("target/bench")
                .join(name);
            let buffer = (name == "nginx-64k").then_some("64k");
            start_nginx(&nginx, &dir, p, l.echo_port, buffer)?
        }
        other => return Err(format!("unknown system {other}")),
    };
    let system = System {
        name,
        url: ws(p),
        process: Some(child),
    };
    wait_listening(p)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    // Let nginx's workers come up and the process settle before the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(system)
}
