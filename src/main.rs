//! The `wsrelay` binary: a WebSocket gateway configured by a TOML file, or by flags in front
//! of one upstream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use wsrelay::config::GatewayConfig;
use wsrelay::gateway::Gateway;
use wsrelay::handshake::WsUri;
use wsrelay::route::Upstream;

/// The flags that describe the one-upstream case, which a configuration file replaces.
const ONE_UPSTREAM_FLAGS: [&str; 13] = [
    "listen",
    "upstream",
    "connect_timeout",
    "upgrade_timeout",
    "close_timeout",
    "idle_timeout",
    "keepalive_interval",
    "handshake_timeout",
    "shutdown_timeout",
    "max_frame_size",
    "max_message_size",
    "buffer_size",
    "no_utf8_validation",
];

/// A WebSocket reverse proxy that relays frames cut-through, without reassembling messages.
///
/// With `--config FILE`, listeners and routes come from a TOML file (`wsrelay check --config
/// FILE` validates one). Without it, wsrelay relays one listener to one upstream; with no
/// --upstream either, to a built-in echo server on a free loopback port, so
/// `cargo run --release` gives a working demo at once.
#[derive(Debug, Parser)]
#[command(name = "wsrelay", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file (listeners, routes, TLS); replaces the one-upstream flags.
    #[arg(long, conflicts_with_all = ONE_UPSTREAM_FLAGS)]
    config: Option<PathBuf>,
    /// Address to accept WebSocket clients on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Upstream WebSocket server (ws://HOST:PORT/PATH); its path prefixes the client's path.
    /// Default: a built-in echo server.
    #[arg(long)]
    upstream: Option<WsUri>,
    /// Time a client has to send its upgrade request (408 after it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    handshake_timeout: Duration,
    /// Time to connect to the upstream (504 after it).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Time the upstream has to answer the upgrade (504 after it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    upgrade_timeout: Duration,
    /// Time to wait for the other side's close once closing starts.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    close_timeout: Duration,
    /// Close both sides with 1001 after this long without a frame; 0 disables.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Ping a side (and absorb its pong) after it has sent nothing for this long, so load
    /// balancers in between keep the connection; 0 disables.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    keepalive_interval: Duration,
    /// After SIGINT/SIGTERM, time open connections get to close.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,
    /// Largest frame payload accepted from either side, in bytes (close 1009 beyond); 0: no limit.
    #[arg(long, default_value_t = 0)]
    max_frame_size: u64,
    /// Largest message accepted from either side, in bytes (close 1009 beyond); 0: no limit.
    #[arg(long, default_value_t = 0)]
    max_message_size: u64,
    /// Bytes buffered per direction of each connection.
    #[arg(long, default_value_t = wsrelay::config::defaults::BUFFER_SIZE)]
    buffer_size: usize,
    /// Do not validate UTF-8 of text messages.
    #[arg(long)]
    no_utf8_validation: bool,
    /// Worker threads, each with its own runtime and listening socket; 0: one per CPU.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, default_value = "info", env = "WSRELAY_LOG")]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration file: prints each error with its line, column and a hint.
    Check {
        /// The TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

fn limit(value: u64) -> Option<u64> {
    (value != 0).then_some(value)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Check { config }) = &cli.command {
        return check(config);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs piped to a file or a collector stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Thread-per-core: this thread is the first worker; the gateway starts the others.
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsrelay: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `wsrelay check`: exit 0 and a summary when the file is valid, else 1 and every error.
fn check(path: &std::path::Path) -> std::process::ExitCode {
    match wsrelay::config::load(path) {
        Ok(config) => {
            println!(
                "{}: OK ({} listener(s), {} route(s))",
                path.display(),
                config.listeners.len(),
                config.routes.len()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves the gateway a configuration file describes.
async fn run_config(path: &std::path::Path) -> std::io::Result<()> {
    let config = wsrelay::config::load(path).map_err(std::io::Error::other)?;
    let schemes: Vec<&str> = config
        .listeners
        .iter()
        .map(|l| if l.tls.is_some() { "wss" } else { "ws" })
        .collect();
    let routes = config.routes.len();
    let gateway = Gateway::bind(config).await?;
    for (addr, scheme) in gateway.local_addrs().iter().zip(schemes) {
        println!("wsrelay: listening on {scheme}://{addr}/ ({routes} route(s))");
    }
    gateway.run(shutdown_signal()).await
}

async fn run(cli: Cli) -> std::io::Result<()> {
    if let Some(path) = &cli.config {
        return run_config(path).await;
    }
    let demo = cli.upstream.is_none();
    let upstream = match cli.upstream {
        Some(uri) => uri,
        None => {
            let echo = wsrelay::echo::spawn(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            WsUri::parse(&format!("ws://{echo}/"))
                .map_err(|e| std::io::Error::other(e.to_string()))?
        }
    };
    let upstream = Upstream::new(upstream).map_err(std::io::Error::other)?;
    let mut config = GatewayConfig::new(cli.listen, upstream);
    config.handshake_timeout = cli.handshake_timeout;
    config.shutdown_timeout = cli.shutdown_timeout;
    for route in &mut config.routes {
        route.connect_timeout = cli.connect_timeout;
        route.upgrade_timeout = cli.upgrade_timeout;
        let relay = &mut route.relay;
        relay.close_timeout = cli.close_timeout;
        relay.idle_timeout = (!cli.idle_timeout.is_zero()).then_some(cli.idle_timeout);
        relay.keep_alive = (!cli.keepalive_interval.is_zero()).then_some(cli.keepalive_interval);
        relay.client_max_frame_size = limit(cli.max_frame_size);
        relay.upstream_max_frame_size = limit(cli.max_frame_size);
        relay.client_max_message_size = limit(cli.max_message_size);
        relay.upstream_max_message_size = limit(cli.max_message_size);
        relay.buffer_size = cli.buffer_size;
        relay.validate_utf8 = !cli.no_utf8_validation;
    }
    config.workers = match cli.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let upstream = config.routes[0]
        .upstream
        .as_ref()
        .map(|u| u.uri.to_string())
        .unwrap_or_default();
    let gateway = Gateway::bind(config).await?;
    let local = gateway.local_addr()?;
    if demo {
        println!("wsrelay: relaying ws://{local}/ -> built-in echo server at {upstream}");
        println!("wsrelay: try it:  python3 -m websockets ws://{local}/   (Ctrl-C to stop)");
    } else {
        println!("wsrelay: relaying ws://{local}/ -> {upstream}");
    }
    gateway.run(shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("signal received");
}
