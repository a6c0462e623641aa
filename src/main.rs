//! The `wsrelay` binary: a WebSocket gateway configured by a TOML file, or by flags in front
//! of one upstream.
//!
//! The flags are not a second configuration model: each sets one key of a configuration
//! document ([`FlagDocument`]) that goes through the file's loader, so a bad value gets the
//! file's message and every default comes from `config::defaults`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use wsrelay::config::{self, defaults, FlagDocument, Kind, Table};
use wsrelay::gateway::Gateway;

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
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, env = "WSRELAY_LOG")]
    log: Option<String>,
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

/// A flag of the one-upstream case: the key of the configuration document it sets.
struct Flag {
    /// The flag's name, without the dashes.
    long: &'static str,
    /// The table and key the flag sets, as a file would.
    table: Table,
    key: &'static str,
    /// What it takes, with the default `--help` shows.
    value: Value,
    help: &'static str,
}

/// What a flag takes, and its default (formatted for `--help` from `config::defaults`; the
/// loader applies the same constants when the flag is absent).
enum Value {
    Address(&'static str),
    /// The upstream's URI; without it, the built-in echo.
    Uri,
    Duration(Duration),
    Number(u64),
    /// A switch that sets its key to `false`.
    Off,
    /// A value without a default of its own (the value's name, what applies without it).
    Text(&'static str, &'static str),
}

/// The one-upstream flags, in `--help` order.
const FLAGS: [Flag; 16] = [
    Flag {
        long: "listen",
        table: Table::Listener,
        key: "address",
        value: Value::Address(defaults::LISTEN),
        help: "Address to accept WebSocket clients on",
    },
    Flag {
        long: "upstream",
        table: Table::Route,
        key: "upstream",
        value: Value::Uri,
        help:
            "Upstream WebSocket server (ws://HOST:PORT/PATH); its path prefixes the client's path",
    },
    Flag {
        long: "handshake-timeout",
        table: Table::Server,
        key: "handshake_timeout",
        value: Value::Duration(defaults::HANDSHAKE_TIMEOUT),
        help: "Time a client has to send its upgrade request (408 after it)",
    },
    Flag {
        long: "connect-timeout",
        table: Table::Defaults,
        key: "connect_timeout",
        value: Value::Duration(defaults::CONNECT_TIMEOUT),
        help: "Time to connect to the upstream (504 after it)",
    },
    Flag {
        long: "upgrade-timeout",
        table: Table::Defaults,
        key: "upgrade_timeout",
        value: Value::Duration(defaults::UPGRADE_TIMEOUT),
        help: "Time the upstream has to answer the upgrade (504 after it)",
    },
    Flag {
        long: "close-timeout",
        table: Table::Defaults,
        key: "close_timeout",
        value: Value::Duration(defaults::CLOSE_TIMEOUT),
        help: "Time to wait for the other side's close once closing starts",
    },
    Flag {
        long: "idle-timeout",
        table: Table::Defaults,
        key: "idle_timeout",
        value: Value::Duration(defaults::IDLE_TIMEOUT),
        help: "Close both sides with 1001 after this long without a frame; 0 disables",
    },
    Flag {
        long: "keepalive-interval",
        table: Table::Defaults,
        key: "keepalive_interval",
        value: Value::Duration(defaults::KEEPALIVE_INTERVAL),
        help: "Ping a side (and absorb its pong) after it has sent nothing for this long, so \
               load balancers in between keep the connection; 0 disables",
    },
    Flag {
        long: "shutdown-timeout",
        table: Table::Server,
        key: "shutdown_timeout",
        value: Value::Duration(defaults::SHUTDOWN_TIMEOUT),
        help: "After SIGINT/SIGTERM, time open connections get to close",
    },
    Flag {
        long: "max-frame-size",
        table: Table::Defaults,
        key: "max_frame_size",
        value: Value::Number(defaults::MAX_FRAME_SIZE),
        help: "Largest frame payload accepted from either side, in bytes (close 1009 beyond); \
               0: no limit",
    },
    Flag {
        long: "max-message-size",
        table: Table::Defaults,
        key: "max_message_size",
        value: Value::Number(defaults::MAX_MESSAGE_SIZE),
        help: "Largest message accepted from either side, in bytes (close 1009 beyond); \
               0: no limit",
    },
    Flag {
        long: "buffer-size",
        table: Table::Defaults,
        key: "buffer_size",
        value: Value::Number(defaults::BUFFER_SIZE as u64),
        help: "Bytes buffered per direction of each connection (at least 256)",
    },
    Flag {
        long: "no-utf8-validation",
        table: Table::Defaults,
        key: "validate_utf8",
        value: Value::Off,
        help: "Do not validate UTF-8 of text messages",
    },
    Flag {
        long: "workers",
        table: Table::Server,
        key: "workers",
        value: Value::Number(defaults::WORKERS as u64),
        help: "Worker threads, each with its own runtime and listening socket; 0: one per CPU",
    },
    Flag {
        long: "admin",
        table: Table::Admin,
        key: "address",
        value: Value::Text("ADDR", "off"),
        help: "Admin listener (GET /metrics, /livez, /readyz), best on loopback: 127.0.0.1:9090",
    },
    Flag {
        long: "log-format",
        table: Table::Server,
        key: "log_format",
        value: Value::Text("FORMAT", defaults::LOG_FORMAT),
        help: "Access log lines: text, or json (one object a line)",
    },
];

impl Flag {
    /// The clap argument: a raw value, checked by the loader, not by clap. A file replaces
    /// every one of these flags, so each conflicts with `--config`.
    fn arg(&self) -> Arg {
        let arg = Arg::new(self.long).long(self.long).conflicts_with("config");
        let (name, default) = match self.value {
            Value::Off => return arg.action(ArgAction::SetTrue).help(self.help),
            Value::Address(address) => ("ADDR", address.to_owned()),
            Value::Uri => ("URI", "a built-in echo server".to_owned()),
            Value::Duration(d) => ("DURATION", humantime::format_duration(d).to_string()),
            Value::Number(n) => ("N", n.to_string()),
            Value::Text(name, default) => (name, default.to_owned()),
        };
        arg.value_name(name)
            .help(format!("{} [default: {default}]", self.help))
    }

    /// How the value is written into the document: as a user would write it in a file.
    fn kind(&self) -> Kind {
        match self.value {
            Value::Address(_) | Value::Uri | Value::Duration(_) | Value::Text(..) => Kind::Text,
            Value::Number(_) => Kind::Integer,
            Value::Off => Kind::Switch,
        }
    }
}

/// The command line: [`Cli`] and the one-upstream [`FLAGS`].
fn command() -> clap::Command {
    let command = FLAGS
        .iter()
        .fold(Cli::command(), |c, flag| c.arg(flag.arg()));
    command.mut_arg("log", |arg| {
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        arg.help(format!("{help} [default: {}]", defaults::LOG_FILTER))
    })
}

/// The configuration document the given one-upstream flags write.
fn flag_document(matches: &ArgMatches) -> FlagDocument {
    let mut document = FlagDocument::new();
    for flag in &FLAGS {
        let (value, named) = match flag.value {
            Value::Off if matches.get_flag(flag.long) => {
                ("false".to_owned(), format!("--{}", flag.long))
            }
            Value::Off => continue,
            _ => match matches.get_one::<String>(flag.long) {
                Some(value) => (value.clone(), format!("--{} {value}", flag.long)),
                None => continue,
            },
        };
        document.set(flag.table, flag.key, &value, flag.kind(), Some(named));
    }
    document
}

/// Why the binary stops: the message, and the exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A bad flag value: exit 2, as for clap's own usage errors.
    fn usage(e: impl std::fmt::Display) -> Failure {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }

    /// Anything else (a bad configuration file, a socket that cannot be bound): exit 1.
    fn runtime(e: impl std::fmt::Display) -> Failure {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(Command::Check { config }) = &cli.command {
        return check(config);
    }
    let log = cli.log.as_deref().unwrap_or(defaults::LOG_FILTER);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(defaults::LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs piped to a file or a collector stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Limited by what the administrator allows (the hard limit), not by a soft default.
    let (before, after) = wsrelay::admission::fd::raise_descriptor_limit();
    tracing::info!(
        was = ?before.soft,
        now = ?after.soft,
        hard = ?after.hard,
        "descriptor limit (soft) raised to the hard limit"
    );
    // Thread-per-core: this thread is the first worker; the gateway starts the others.
    let result = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(&cli, &matches)),
        Err(e) => Err(Failure::runtime(e)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("wsrelay: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// `wsrelay check`: exit 0 and a summary when the file is valid, else 1 and every error.
fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("{warning}");
            }
            println!(
                "{}: OK ({} listener(s), {} route(s))",
                path.display(),
                config.listeners.len(),
                config.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli, matches: &ArgMatches) -> Result<(), Failure> {
    match &cli.config {
        Some(path) => run_config(path).await,
        None => run_flags(matches).await,
    }
}

/// Serves the gateway a configuration file describes.
async fn run_config(path: &Path) -> Result<(), Failure> {
    let config = config::load(path).map_err(Failure::runtime)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let schemes: Vec<&str> = config
        .listeners
        .iter()
        .map(|l| if l.tls.is_some() { "wss" } else { "ws" })
        .collect();
    let routes = config.routes.len();
    let gateway = Gateway::bind(config).await.map_err(Failure::runtime)?;
    // SIGHUP and POST /reload read the file again (see wsrelay::reload).
    let gateway = gateway.reload_from(path);
    announce_admin(&gateway);
    for (addr, scheme) in gateway.local_addrs().iter().zip(schemes) {
        println!("wsrelay: listening on {scheme}://{addr}/ ({routes} route(s))");
    }
    gateway
        .run(shutdown_signal())
        .await
        .map_err(Failure::runtime)
}

/// Serves one listener in front of one upstream, as the flags describe it; without
/// `--upstream`, in front of a built-in echo server.
async fn run_flags(matches: &ArgMatches) -> Result<(), Failure> {
    let mut document = flag_document(matches);
    let demo = matches.get_one::<String>("upstream").is_none();
    if demo {
        let echo = wsrelay::echo::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(Failure::runtime)?;
        let uri = format!("ws://{echo}/");
        document.set(Table::Route, "upstream", &uri, Kind::Text, None);
    }
    let config = config::from_flags(&document).map_err(Failure::usage)?;
    let upstream = config.routes[0]
        .upstream
        .as_ref()
        .map(|u| u.uri.to_string())
        .unwrap_or_default();
    let gateway = Gateway::bind(config).await.map_err(Failure::runtime)?;
    // The routes API edits the flags' document, in memory.
    let gateway = gateway.with_document(document.text());
    announce_admin(&gateway);
    let local = gateway.local_addr().map_err(Failure::runtime)?;
    if demo {
        println!("wsrelay: relaying ws://{local}/ -> built-in echo server at {upstream}");
        println!("wsrelay: try it:  python3 -m websockets ws://{local}/   (Ctrl-C to stop)");
    } else {
        println!("wsrelay: relaying ws://{local}/ -> {upstream}");
    }
    gateway
        .run(shutdown_signal())
        .await
        .map_err(Failure::runtime)
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

/// Says where the admin listener is, if there is one (before the listeners' lines).
fn announce_admin(gateway: &Gateway) {
    if let Some(admin) = gateway.admin_addr() {
        println!("wsrelay: admin on http://{admin}/ (/metrics, /livez, /readyz)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag with a valid value, so a flag whose key the loader does not know (a typo in
    /// [`FLAGS`], a key renamed in the schema) fails here rather than for a user.
    #[test]
    fn every_flag_sets_a_key_the_loader_knows() {
        command().debug_assert();
        let mut args = vec!["wsrelay".to_owned()];
        for flag in &FLAGS {
            args.push(format!("--{}", flag.long));
            let value = match flag.value {
                Value::Address(_) => "127.0.0.1:0",
                Value::Uri => "ws://127.0.0.1:9/",
                Value::Duration(_) => "3s",
                Value::Number(_) => "4096",
                Value::Text(..) if flag.long == "admin" => "127.0.0.1:0",
                Value::Text(..) => "json",
                Value::Off => continue,
            };
            args.push(value.to_owned());
        }
        let matches = command().try_get_matches_from(args).unwrap();
        let config = config::from_flags(&flag_document(&matches)).unwrap();
        let route = &config.routes[0];
        assert_eq!(config.workers, 4096);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(route.connect_timeout, Duration::from_secs(3));
        assert_eq!(route.relay.idle_timeout, Some(Duration::from_secs(3)));
        assert_eq!(route.relay.client_max_message_size, Some(4096));
        assert_eq!(route.relay.buffer_size, 4096);
        assert!(!route.relay.validate_utf8);
        assert!(config.admin.is_some());
        assert_eq!(config.access_log.format, config::LogFormat::Json);
    }

    #[test]
    fn help_shows_the_defaults_the_loader_applies() {
        let help = command().render_help().to_string();
        let buffer = format!("[default: {}]", defaults::BUFFER_SIZE);
        assert!(help.contains(&buffer), "{help}");
        assert!(help.contains("[default: 10s]"), "{help}");
        assert!(help.contains(&format!("[default: {}]", defaults::LISTEN)));
    }
}
