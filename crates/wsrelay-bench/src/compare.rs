//! The side-by-side runner: every system on every workload in one run, interleaved, medians.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::load::{self, LoadConfig, Report};
use crate::memory;
use crate::systems::{
    free_port, launch, loopback, nginx_binary, spawn, start_nginx, wait_listening, ws, Launch,
    System,
};
use crate::table;

/// Options of a comparison run.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Repetitions of every (workload, system) pair, interleaved; medians are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Length of one measurement.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// CI smoke mode: one short repetition, wsrelay and the raw proxy only.
    #[arg(long)]
    smoke: bool,
    /// Leave nginx out even if it can be installed.
    #[arg(long)]
    no_nginx: bool,
    /// Where results.md and results.json are written.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Size of the frame of the big-frame workload (smoke mode: 64 MiB).
    #[arg(long, default_value_t = 1 << 30)]
    big_frame: u64,
    /// Idle proxied connections of the idle-memory workload (a proxy holds two descriptors
    /// each; the default fits a 20,000 descriptor limit). Smoke mode: 200.
    #[arg(long, default_value_t = 9_900)]
    idle_connections: usize,
    /// Silent connections (TCP only, no byte sent: pending handshakes) of the pending-memory
    /// workload, which must stay within the handshake timeout. Smoke mode: 200.
    #[arg(long, default_value_t = 5_000)]
    pending_connections: usize,
    /// Skip the memory workloads (big frame, idle and pending connections).
    #[arg(long)]
    no_memory: bool,
    /// Run only the memory workloads.
    #[arg(long, conflicts_with = "no_memory")]
    memory_only: bool,
    /// Another wsrelay binary (an earlier build) measured beside this one as
    /// `wsrelay-baseline`, pass-through like `wsrelay`, interleaved on every workload: a
    /// before/after comparison from one run.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// The cost of metrics: `wsrelay` against `wsrelay-metrics` (the same binary with an
    /// admin listener, so every tunnel is counted), interleaved on bulk, small and latency,
    /// beside the raw proxy and the direct connection; nothing else, no memory workloads.
    #[arg(long)]
    metrics_overhead: bool,
    /// The cost of HTTP/2: `wsrelay-h2` (a listener with `http2 = true`, every WebSocket of a
    /// workload a stream of one HTTP/2 connection) against `wsrelay` over HTTP/1.1 (a TCP
    /// connection each), interleaved on bulk and small, beside the raw proxy and the direct
    /// connection; nothing else, no memory workloads. Smoke mode measures `wsrelay-h2` too.
    #[arg(long)]
    http2: bool,
}

/// One workload: how to load a system, and which number is its headline.
pub(crate) struct Workload {
    pub(crate) name: &'static str,
    pub(crate) what: &'static str,
    connections: usize,
    pub(crate) size: usize,
    text: bool,
    window: usize,
    pub(crate) rate: Option<u64>,
}

impl Workload {
    /// The workload's headline number in `report`: MB/s for 1 KiB messages and up, else
    /// messages per second.
    pub(crate) fn headline(&self, report: &Report) -> f64 {
        if self.size >= 1024 {
            report.mb_per_sec()
        } else {
            report.msgs_per_sec()
        }
    }
}

fn workloads(smoke: bool) -> Vec<Workload> {
    let rate = if smoke { 2_000 } else { 10_000 };
    vec![
        Workload {
            name: "bulk",
            what: "64 KiB binary messages, 1 connection, 16 in flight: MB/s",
            connections: 1,
            size: 64 * 1024,
            text: false,
            window: 16,
            rate: None,
        },
        Workload {
            name: "bulk-text",
            what: "64 KiB text messages, 1 connection, 16 in flight: MB/s",
            connections: 1,
            size: 64 * 1024,
            text: true,
            window: 16,
            rate: None,
        },
        Workload {
            name: "small",
            what: "32-byte messages, 100 connections, 1 in flight each: msgs/s",
            connections: 100,
            size: 32,
            text: false,
            window: 1,
            rate: None,
        },
        Workload {
            name: "latency",
            what: "32-byte messages, 50 connections, open loop at a fixed total rate: latency",
            connections: 50,
            size: 32,
            text: false,
            window: 1,
            rate: Some(rate),
        },
    ]
}

/// Scrapes `GET /metrics` at `admin` once a second until aborted (failures are ignored: the
/// relay may still be starting).
async fn scrape_every_second(admin: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(admin).await {
            let request = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\n\r\n");
            if s.write_all(request.as_bytes()).await.is_ok() {
                let mut body = Vec::new();
                let _ = s.read_to_end(&mut body).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs the comparison and writes `results.md` and `results.json`.
pub async fn run(args: CompareArgs) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin_dir = exe.parent().ok_or("no binary directory")?.to_path_buf();
    let wsrelay = bin_dir.join("wsrelay");
    if !wsrelay.exists() {
        return Err(format!(
            "{} not found: build the workspace first (cargo build --release --workspace)",
            wsrelay.display()
        ));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (reps, duration) = if args.smoke {
        (1, Duration::from_secs(1))
    } else {
        (args.reps.max(1), args.duration)
    };

    let echo_port = free_port()?;
    let echo = spawn(
        &exe,
        &[
            "echo".into(),
            "--listen".into(),
            loopback(echo_port).to_string(),
        ],
    )?;
    let _echo = System {
        name: "echo",
        url: ws(echo_port),
        process: Some(echo),
    };
    wait_listening(echo_port).await?;
    let echo_url = format!("ws://127.0.0.1:{echo_port}/");

    let mut systems = vec![System {
        name: "direct",
        url: ws(echo_port),
        process: None,
    }];
    let mut start =
        |name: &'static str, program: &Path, args: Vec<String>, port: u16| -> Result<(), String> {
            let child = spawn(program, &args)?;
            systems.push(System {
                name,
                url: ws(port),
                process: Some(child),
            });
            Ok(())
        };
    let p = free_port()?;
    start(
        "raw-tcp-proxy",
        &exe,
        vec![
            "raw-proxy".into(),
            "--listen".into(),
            loopback(p).to_string(),
            "--upstream".into(),
            loopback(echo_port).to_string(),
        ],
        p,
    )?;
    let p = free_port()?;
    let relay_args = |p: u16| {
        vec![
            "--listen".into(),
            loopback(p).to_string(),
            "--upstream".into(),
            echo_url.clone(),
            "--log".into(),
            "warn".into(),
        ]
    };
    let mut passthrough = relay_args(p);
    passthrough.push("--no-utf8-validation".into());
    // The copy path, as in every earlier run (`wsrelay-splice` is the spliced one).
    passthrough.push("--no-splice".into());
    start("wsrelay", &wsrelay, passthrough, p)?;
    if let Some(baseline) = &args.baseline {
        let p = free_port()?;
        let mut passthrough = relay_args(p);
        passthrough.push("--no-utf8-validation".into());
        start("wsrelay-baseline", baseline, passthrough, p)?;
    }
    // Scraped once a second while the workloads run, as a Prometheus server would.
    let mut scraper = None;
    if args.metrics_overhead {
        let (p, admin) = (free_port()?, free_port()?);
        let mut counted = relay_args(p);
        counted.push("--no-utf8-validation".into());
        counted.push("--admin".into());
        counted.push(loopback(admin).to_string());
        start("wsrelay-metrics", &wsrelay, counted, p)?;
        scraper = Some(tokio::spawn(scrape_every_second(loopback(admin))));
    }
    if args.http2 || args.smoke {
        let p = free_port()?;
        let config = http2_config(&root, p, &echo_url)?;
        let args = vec![
            "--config".into(),
            config.display().to_string(),
            "--log".into(),
            "warn".into(),
        ];
        start("wsrelay-h2", &wsrelay, args, p)?;
    }
    if !args.smoke && !args.metrics_overhead && !args.http2 {
        let p = free_port()?;
        start("wsrelay-utf8", &wsrelay, relay_args(p), p)?;
        let p = free_port()?;
        start(
            "tungstenite-relay",
            &exe,
            vec![
                "tungstenite-relay".into(),
                "--listen".into(),
                loopback(p).to_string(),
                "--upstream".into(),
                echo_url.clone(),
            ],
            p,
        )?;
        if !args.no_nginx {
            if let Some(nginx) = nginx_binary(&root) {
                for (name, buffer) in [("nginx-4k", None), ("nginx-64k", Some("64k"))] {
                    let p = free_port()?;
                    let dir = std::fs::canonicalize(&root)
                        .map_err(|e| e.to_string())?
                        .join("target/bench")
                        .join(name);
                    let child = start_nginx(&nginx, &dir, p, echo_port, buffer)?;
                    systems.push(System {
                        name,
                        url: ws(p),
                        process: Some(child),
                    });
                }
            }
        }
    }
    for system in &systems {
        wait_listening(system.url.port)
            .await
            .map_err(|e| format!("{}: {e}", system.name))?;
    }

    let mut workloads = if args.memory_only {
        Vec::new()
    } else {
        workloads(args.smoke)
    };
    if args.metrics_overhead {
        workloads.retain(|w| matches!(w.name, "bulk" | "small" | "latency"));
    }
    if args.http2 {
        workloads.retain(|w| matches!(w.name, "bulk" | "small"));
    }
    // results[workload][system] = reports over repetitions
    let mut results: Vec<Vec<Vec<Report>>> = workloads
        .iter()
        .map(|_| systems.iter().map(|_| Vec::new()).collect())
        .collect();
    for rep in 0..reps {
        for (w, workload) in workloads.iter().enumerate() {
            for (s, system) in systems.iter().enumerate() {
                let config = LoadConfig {
                    url: system.url.clone(),
                    connections: workload.connections,
                    size: workload.size,
                    text: workload.text,
                    window: workload.window,
                    rate: workload.rate,
                    duration,
                    messages: None,
                    http2: system.name == "wsrelay-h2",
                };
                let report = load::run(config)
                    .await
                    .map_err(|e| format!("{} / {}: {e}", workload.name, system.name))?;
                println!(
                    "rep {} {:>10} {:>18}: {}",
                    rep + 1,
                    workload.name,
                    system.name,
                    report.to_table()
                );
                if report.failed_connections > 0 || report.messages == 0 {
                    return Err(format!(
                        "{} / {}: the run failed ({} failed connections, {} messages)",
                        workload.name, system.name, report.failed_connections, report.messages
                    ));
                }
                results[w][s].push(report);
            }
        }
    }
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    let rss: Vec<Option<u64>> = systems
        .iter()
        .map(|s| {
            s.process
                .as_ref()
                .and_then(|c| memory::status_kib(c.id(), "VmRSS:"))
        })
        .collect();
    let (mut markdown, mut json) =
        table::tabulate(&workloads, &systems, &results, &rss, reps, duration);
    let names: Vec<&'static str> = systems
        .iter()
        .map(|s| s.name)
        .filter(|n| *n != "direct" && *n != "wsrelay-h2")
        .collect();
    drop(systems);
    if !args.no_memory && !args.metrics_overhead && !args.http2 {
        let pending = if args.smoke {
            200
        } else {
            args.pending_connections
        };
        let (big, idle) = if args.smoke {
            (64 << 20, 200)
        } else {
            (args.big_frame, args.idle_connections)
        };
        let launch = Launch {
            exe: &exe,
            wsrelay: &wsrelay,
            baseline: args.baseline.as_deref(),
            root: &root,
            echo_port,
            echo_url: &echo_url,
        };
        let (md, js) = memory_workloads(&launch, &names, big, idle, pending).await?;
        markdown.push_str(&md);
        if let serde_json::Value::Object(map) = &mut json {
            map.insert("memory".into(), js);
        }
    }
    println!("\n{markdown}");
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("results.md"), &markdown).map_err(|e| e.to_string())?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    let total: usize = results.iter().flatten().map(Vec::len).sum();
    println!(
        "compare: {total} measurements, written to {}",
        args.out.display()
    );
    Ok(())
}

/// The big-frame, idle-memory and pending-memory workloads, each on a fresh instance of every
/// proxy.
async fn memory_workloads(
    l: &Launch<'_>,
    names: &[&'static str],
    big: u64,
    idle: usize,
    pending: usize,
) -> Result<(String, serde_json::Value), String> {
    let mut md = format!(
        "\n### big frame — one {} MiB binary frame echoed through a fresh proxy: peak RSS growth\n\n\
         | system | intact | time s | RSS before KiB | peak KiB | peak growth KiB |\n|---|---|---|---|---|---|\n",
        big >> 20
    );
    let mut rows = serde_json::Map::new();
    let mut big_rows = serde_json::Map::new();
    for &name in names.iter().filter(|n| **n != "wsrelay-utf8") {
        let system = launch(l, name).await?;
        let pid = system.process.as_ref().map(|c| c.id()).unwrap_or(0);
        let before = memory::tree_rss_kib(pid);
        let run = memory::big_frame(&system.url, big, Duration::from_secs(120)).await;
        let peak = memory::tree_peak_kib(pid);
        let growth = peak.saturating_sub(before);
        let intact = match &run.error {
            None => "yes".to_owned(),
            Some(e) => format!("no: {e}"),
        };
        println!(
            "big frame {name:>18}: intact {intact}, {:.1} s, peak RSS +{growth} KiB",
            run.elapsed.as_secs_f64()
        );
        md.push_str(&format!(
            "| {name} | {intact} | {:.1} | {before} | {peak} | {growth} |\n",
            run.elapsed.as_secs_f64()
        ));
        big_rows.insert(
            name.into(),
            serde_json::json!({"intact": run.intact, "error": run.error, "seconds": run.elapsed.as_secs_f64(),
                "rss_before_kib": before, "peak_kib": peak, "peak_growth_kib": growth}),
        );
    }
    rows.insert("big_frame".into(), serde_json::Value::Object(big_rows));
    let (idle_md, idle_rows) = per_connection_memory(l, names, Held::Relayed, idle).await?;
    md.push_str(&idle_md);
    rows.insert("idle".into(), idle_rows);
    let (pending_md, pending_rows) = per_connection_memory(l, names, Held::Silent, pending).await?;
    md.push_str(&pending_md);
    rows.insert("pending".into(), pending_rows);
    Ok((md, serde_json::Value::Object(rows)))
}

/// What the per-connection memory workloads hold open.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Held {
    /// Relayed WebSocket connections, upgraded and idle.
    Relayed,
    /// TCP connections that never send a byte (pending handshakes: slowloris, port scans).
    Silent,
}

/// Holds `count` connections of one kind through a fresh instance of every proxy and reports
/// the RSS growth per connection (a table section and its JSON rows).
async fn per_connection_memory(
    l: &Launch<'_>,
    names: &[&'static str],
    held: Held,
    count: usize,
) -> Result<(String, serde_json::Value), String> {
    let (key, what) = match held {
        Held::Relayed => ("idle", "idle proxied connections"),
        Held::Silent => (
            "pending",
            "silent connections (no byte sent, handshake pending)",
        ),
    };
    let mut md = format!(
        "\n### {key} memory — {count} {what} through a fresh proxy: RSS growth per connection\n\n\
         | system | connections | RSS before KiB | RSS with them KiB | bytes per connection |\n|---|---|---|---|---|\n"
    );
    let mut rows = serde_json::Map::new();
    for &name in names.iter().filter(|n| **n != "wsrelay-utf8") {
        let system = launch(l, name).await?;
        let pid = system.process.as_ref().map(|c| c.id()).unwrap_or(0);
        let before = memory::tree_rss_kib(pid);
        let conns = match held {
            Held::Relayed => memory::open_idle(&system.url, count).await,
            Held::Silent => memory::open_silent(&system.url, count).await,
        };
        let (opened, after, error) = match &conns {
            Ok(c) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                (c.len(), memory::tree_rss_kib(pid), None)
            }
            Err(e) => (0, memory::tree_rss_kib(pid), Some(e.clone())),
        };
        let per = if opened > 0 {
            (after.saturating_sub(before) * 1024) as f64 / opened as f64
        } else {
            f64::NAN
        };
        println!(
            "{key} {name:>18}: {opened} connections, RSS {before} -> {after} KiB, {per:.0} B each{}",
            error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
        md.push_str(&match &error {
            None => format!("| {name} | {opened} | {before} | {after} | {per:.0} |\n"),
            Some(e) => format!("| {name} | failed: {e} | {before} | {after} | — |\n"),
        });
        rows.insert(
            name.into(),
            serde_json::json!({"connections": opened, "rss_before_kib": before, "rss_after_kib": after,
                "bytes_per_connection": if per.is_finite() { Some(per) } else { None }, "error": error}),
        );
        drop(conns);
        drop(system);
    }
    Ok((md, serde_json::Value::Object(rows)))
}

/// The configuration of `wsrelay-h2`: one plain listener on `port` with HTTP/2 on (prior
/// knowledge), pass-through like `wsrelay` (no UTF-8 validation), every path to the echo.
fn http2_config(root: &Path, port: u16, echo_url: &str) -> Result<PathBuf, String> {
    let dir = root.join("target/bench/wsrelay-h2");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("wsrelay.toml");
    let toml = format!(
        "[[listeners]]\naddress = \"{}\"\nhttp2 = true\n\n[defaults]\nvalidate_utf8 = false\n\n\
         [[routes]]\nname = \"echo\"\npath_prefix = \"/\"\nupstream = \"{echo_url}\"\n",
        loopback(port)
    );
    std::fs::write(&path, toml).map_err(|e| e.to_string())?;
    Ok(path)
}
