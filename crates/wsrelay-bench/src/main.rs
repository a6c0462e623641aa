//! `wsrelay-bench`: a WebSocket load generator, the peer systems it compares wsrelay with, and
//! a runner that measures them all side by side in one run. Loopback only, bounded in time.

mod compare;
mod connect;
mod cpu;
mod flame;
mod load;
mod memory;
mod peers;
mod plot;
mod sweep;
mod systems;
mod table;
#[cfg(feature = "io-uring")]
mod uring;
mod workload;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "wsrelay-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send messages to an echo endpoint and report throughput and latency.
    Load {
        #[command(flatten)]
        config: load::LoadConfig,
        /// Print JSON instead of a table line.
        #[arg(long)]
        json: bool,
    },
    /// Run the built-in echo server (the upstream of every measurement).
    Echo {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Run a raw TCP proxy (64 KiB buffers per direction).
    RawProxy {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        upstream: SocketAddr,
    },
    /// Run a message-by-message tokio-tungstenite relay.
    TungsteniteRelay {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        upstream: String,
    },
    /// Measure every system on every workload, interleaved, and write the tables.
    Compare(compare::CompareArgs),
    /// Run the io_uring relay prototype (see URING.md; built with `--features io-uring`).
    #[cfg(feature = "io-uring")]
    UringRelay(uring::UringArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "io-uring")]
    if let Command::UringRelay(args) = cli.command {
        // Threads and rings of its own: no tokio runtime.
        return match uring::run(args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wsrelay-bench: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsrelay-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async move {
        match cli.command {
            Command::Load { config, json } => {
                let report = load::run(config).await?;
                if json {
                    println!("{}", report.to_json());
                } else {
                    println!("{}", report.to_table());
                }
                Ok(())
            }
            Command::Echo { listen } => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| e.to_string())?;
                wsrelay::echo::serve(listener).await;
                Ok(())
            }
            Command::RawProxy { listen, upstream } => peers::raw_proxy(listen, upstream)
                .await
                .map_err(|e| e.to_string()),
            Command::TungsteniteRelay { listen, upstream } => {
                peers::tungstenite_relay(listen, upstream)
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::Compare(args) => compare::run(args).await,
            #[cfg(feature = "io-uring")]
            Command::UringRelay(_) => Err("uring-relay runs without the runtime".into()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsrelay-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
