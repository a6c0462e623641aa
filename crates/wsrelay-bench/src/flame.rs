//! A flame graph of the small workload: `perf record -g` on a fresh release wsrelay while the
//! load tool runs the small workload through it, folded into an SVG by `inferno` (as a library:
//! no script, no Perl). Where perf is missing or not permitted it says `SKIPPED flame: <why>`.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::load::{self, LoadConfig};
use crate::systems::{launch, Launch};

/// Samples per second per CPU: enough for a readable graph, few enough to keep perf's file
/// (stack copies of every sample) in tens of megabytes.
const FREQUENCY: &str = "499";
/// Bytes of stack copied with each sample for DWARF unwinding (Rust code keeps no frame
/// pointers, so `-g`'s frame-pointer chains would be a frame or two deep).
const STACK_COPY: &str = "dwarf,16384";
/// Longest recording, whatever the run's `--duration`.
const MAX_RECORDING: Duration = Duration::from_secs(5);
/// How long `perf script` may take to print the samples.
const SCRIPT_LIMIT: Duration = Duration::from_secs(180);

/// Records the small workload (32-byte messages, 100 connections, 1 in flight each) against a
/// fresh `wsrelay` for at most `duration` and writes `flame-small.svg` into `dir`; returns the
/// markdown that shows it, or says `SKIPPED flame: <why>` (printed too) and returns nothing.
pub(crate) async fn record_small(l: &Launch<'_>, dir: &Path, duration: Duration) -> String {
    match record(l, dir, duration.min(MAX_RECORDING)).await {
        Ok(svg) => {
            println!("flame graph: {}", svg.display());
            "\n### Flame graph — small workload through wsrelay (perf, DWARF call graphs)\n\n\
             ![flame graph of the small workload](flame-small.svg)\n"
                .to_owned()
        }
        Err(why) => {
            println!("SKIPPED flame: {why}");
            String::new()
        }
    }
}

async fn record(l: &Launch<'_>, dir: &Path, duration: Duration) -> Result<PathBuf, String> {
    let perf = perf_binary(l.root)?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let system = launch(l, "wsrelay").await?;
    let pid = system
        .process
        .as_ref()
        .map(Child::id)
        .ok_or("no wsrelay process")?;
    let data = dir.join("perf-small.data");
    // perf stops by itself: it records for as long as its `sleep` runs.
    let seconds = format!("{:.1}", duration.as_secs_f64() + 1.0);
    let mut recorder = Command::new(&perf)
        .args(["record", "-F", FREQUENCY, "--call-graph", STACK_COPY, "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(&data)
        .args(["--", "sleep", &seconds])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", perf.display()))?;
    // Let perf attach before the load begins.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Ok(Some(status)) = recorder.try_wait() {
        return Err(format!(
            "perf record ended at once ({status}): {}",
            stderr_of(recorder)
        ));
    }
    let config = LoadConfig {
        url: system.url.clone(),
        connections: 100,
        size: 32,
        text: false,
        window: 1,
        rate: None,
        interval: None,
        duration,
        messages: None,
        http2: false,
    };
    let report = load::run(config).await?;
    println!("flame: small workload under perf: {}", report.to_table());
    let status = wait(&mut recorder, Duration::from_secs(30)).await?;
    if !status.success() {
        return Err(format!(
            "perf record failed ({status}): {}",
            stderr_of(recorder)
        ));
    }
    drop(system);
    let script = dir.join("perf-small.txt");
    let out = std::fs::File::create(&script).map_err(|e| e.to_string())?;
    // No inline frames: resolving them runs addr2line per address and takes minutes.
    let mut printer = Command::new(&perf)
        .args(["script", "--no-inline", "-i"])
        .arg(&data)
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run perf script: {e}"))?;
    let status = wait(&mut printer, SCRIPT_LIMIT).await?;
    if !status.success() {
        return Err(format!("perf script failed ({status})"));
    }
    let svg = dir.join("flame-small.svg");
    fold(&script, &svg)?;
    let _ = std::fs::remove_file(&data);
    let _ = std::fs::remove_file(&script);
    Ok(svg)
}

/// Folds `perf script` output into stacks and draws them as an SVG flame graph.
fn fold(script: &Path, svg: &Path) -> Result<(), String> {
    use inferno::collapse::Collapse;
    let input = std::fs::File::open(script).map_err(|e| e.to_string())?;
    let mut folded = Vec::new();
    inferno::collapse::perf::Folder::default()
        .collapse(BufReader::new(input), &mut folded)
        .map_err(|e| format!("folding perf's samples: {e}"))?;
    let folded = String::from_utf8_lossy(&folded);
    if folded.trim().is_empty() {
        return Err("perf recorded no samples of wsrelay".into());
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = "wsrelay, small workload (32-byte messages, 100 connections)".into();
    options.count_name = "samples".into();
    let out = std::fs::File::create(svg).map_err(|e| e.to_string())?;
    inferno::flamegraph::from_lines(&mut options, folded.lines(), std::io::BufWriter::new(out))
        .map_err(|e| format!("drawing the flame graph: {e}"))
}

/// Waits for `child` at most `limit`, killing it past that.
async fn wait(child: &mut Child, limit: Duration) -> Result<std::process::ExitStatus, String> {
    let until = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("perf did not finish within {limit:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The last lines of what a finished child wrote to its stderr.
fn stderr_of(child: Child) -> String {
    let out = child
        .wait_with_output()
        .map(|o| o.stderr)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

/// Installs perf through the project's script; why not, if it cannot be had.
fn perf_binary(root: &Path) -> Result<PathBuf, String> {
    let script = root.join("scripts/install-perf.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
