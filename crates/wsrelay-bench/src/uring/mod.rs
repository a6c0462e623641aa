//! `uring-relay`: a prototype WebSocket relay on io_uring (the `io-uring` crate), built to
//! measure what a completion-based driver would save per message against the tokio gateway
//! (issue 18). Scope and limits are in `URING.md` beside this crate's manifest.
//!
//! An acceptor thread takes connections on a blocking std listener and does both opening
//! handshakes with the project's own `wsrelay::handshake` functions; each upgraded pair then
//! goes (round robin, over a channel and a wake-up socket) to a worker thread with a ring of
//! its own, which relays both directions through the project's [`wsrelay::relay::Forwarder`]
//! exactly as the tokio pump's pass-through path does.

mod direction;
mod handshake;
mod provided;
mod worker;

use std::net::{SocketAddr, TcpListener};

use clap::{Args, ValueEnum};
use wsrelay::handshake::WsUri;

/// How a worker receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RecvMode {
    /// One receive at a time per direction, straight into the direction's own buffer.
    Single,
    /// One multishot receive per direction, into the worker's provided buffer ring, copied
    /// into the direction's buffer.
    Multishot,
}

/// Options of `uring-relay`.
#[derive(Debug, Args)]
pub(crate) struct UringArgs {
    /// Address to listen on (loopback).
    #[arg(long)]
    listen: SocketAddr,
    /// The upstream's WebSocket URL (ws:// only).
    #[arg(long)]
    upstream: String,
    /// Worker threads, each with its own ring.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// How workers receive.
    #[arg(long, value_enum, default_value_t = RecvMode::Single)]
    recv: RecvMode,
    /// Bytes buffered per direction (the gateway's `--buffer-size` default, 256 KiB).
    #[arg(long, default_value_t = 256 * 1024)]
    buffer_size: usize,
    /// Rings without `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`: completion work
    /// then interrupts the worker as it arrives.
    #[arg(long)]
    plain_ring: bool,
}

/// Runs the prototype relay until the process is stopped; fails at once if io_uring cannot be
/// set up here (the kernel's error is in the message).
pub(crate) fn run(args: UringArgs) -> Result<(), String> {
    let upstream = WsUri::parse(&args.upstream).map_err(|e| e.to_string())?;
    if upstream.secure {
        return Err("uring-relay: wss:// upstreams are out of the prototype's scope".into());
    }
    let buffer_size = args.buffer_size.clamp(4 * 1024, 16 * 1024 * 1024);
    let mut handles = Vec::with_capacity(args.workers.max(1));
    let (mode, defer_taskrun) = (args.recv, !args.plain_ring);
    for i in 0..args.workers.max(1) {
        // The ring is set up on the worker's thread (which then owns it); the outcome of the
        // setup comes back here, so a kernel that refuses io_uring fails the command at once.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("uring-{i}"))
            .spawn(
                move || match worker::Worker::new(mode, buffer_size, defer_taskrun) {
                    Ok((worker, handle)) => {
                        let _ = ready_tx.send(Ok(handle));
                        if let Err(e) = worker.run() {
                            eprintln!("uring-relay worker {i}: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                },
            )
            .map_err(|e| e.to_string())?;
        let handle = ready_rx
            .recv()
            .map_err(|_| "worker thread died".to_string())??;
        handles.push(handle);
    }
    let listener = TcpListener::bind(args.listen).map_err(|e| e.to_string())?;
    eprintln!(
        "uring-relay: listening on {}, {} workers, {:?} receives, defer_taskrun {}",
        args.listen,
        handles.len(),
        args.recv,
        defer_taskrun
    );
    let mut next = 0;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("uring-relay: accept: {e}");
                continue;
            }
        };
        match handshake::upgrade(stream, &upstream) {
            Ok(upgraded) => {
                let count = handles.len();
                handles[next % count].send(upgraded)?;
                next += 1;
            }
            Err(e) => eprintln!("uring-relay: handshake: {e}"),
        }
    }
    Ok(())
}
