//! The runner's tables: the medians of a run's interleaved repetitions, as markdown and JSON,
//! with ratios against the baselines measured in the same run.

use std::time::Duration;

use crate::load::Report;
use crate::systems::System;
use crate::workload::Workload;

/// The median of `values` (NaN for none).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The median of `f` over one system's repetitions of one workload.
pub(crate) fn median_of(reports: &[Report], f: &dyn Fn(&Report) -> f64) -> f64 {
    median(&mut reports.iter().map(f).collect::<Vec<_>>())
}

/// The run's tables (markdown) and rows (JSON): per workload, each system's medians and its
/// ratios against the raw TCP proxy, nginx and the direct connection measured in this run.
pub(crate) fn tabulate(
    workloads: &[Workload],
    systems: &[System],
    results: &[Vec<Vec<Report>>],
    rss: &[Option<u64>],
    reps: usize,
    duration: Duration,
) -> (String, serde_json::Value) {
    let mut md = format!("Medians of {reps} interleaved repetition(s) of {duration:?} each (unless a workload says otherwise). Ratios are against the raw TCP proxy (and nginx-64k where measured) in this same run.\n\n{CPU_NOTE}\n");
    let mut json = serde_json::Map::new();
    let index = |name: &str| systems.iter().position(|s| s.name == name);
    for (w, workload) in workloads.iter().enumerate() {
        if workload.sweep {
            continue;
        }
        md.push_str(&format!("\n### {} — {}\n\n", workload.name, workload.what));
        let latency = workload.is_latency();
        let cpu = |r: &Report| workload.cpu(r);
        let cpu_unit = workload.cpu_unit();
        let headline = |r: &Report| workload.headline(r);
        let med = |s: usize, f: &dyn Fn(&Report) -> f64| median_of(&results[w][s], f);
        let raw = index("raw-tcp-proxy").map(|s| med(s, &headline));
        let nginx = index("nginx-64k").map(|s| med(s, &headline));
        let nginx_cpu = index("nginx-64k").map(|s| med(s, &cpu));
        let direct_p50 = index("direct").map(|s| med(s, &|r| r.latency_us(0.5) as f64));
        let direct_p99 = index("direct").map(|s| med(s, &|r| r.latency_us(0.99) as f64));
        let direct_p999 = index("direct").map(|s| med(s, &|r| r.latency_us(0.999) as f64));
        if latency {
            md.push_str(&format!("| system | p50 µs | p99 µs | p99.9 µs | added p50 | added p99 | added p99.9 | p99 spread (min–max) | {cpu_unit} | CPU vs nginx-64k | RSS KiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n"));
        } else {
            let unit = workload.headline_unit();
            md.push_str(&format!("| system | {unit} | vs raw proxy | vs nginx-64k | p50 µs | p99 µs | {cpu_unit} | CPU vs nginx-64k |\n|---|---|---|---|---|---|---|---|\n"));
        }
        let mut rows = serde_json::Map::new();
        for (s, system) in systems.iter().enumerate() {
            if results[w][s].is_empty() {
                continue;
            }
            let p50 = med(s, &|r| r.latency_us(0.5) as f64);
            let p99 = med(s, &|r| r.latency_us(0.99) as f64);
            let p999 = med(s, &|r| r.latency_us(0.999) as f64);
            let value = med(s, &headline);
            let cpu_value = med(s, &cpu);
            let cpu_cells = format!(
                "{} | {}",
                number(cpu_value, 2),
                match nginx_cpu {
                    Some(n) if cpu_value.is_finite() && n.is_finite() && n > 0.0 =>
                        format!("{:.2}x", cpu_value / n),
                    _ => "—".into(),
                }
            );
            if latency {
                let p99s: Vec<u64> = results[w][s].iter().map(|r| r.latency_us(0.99)).collect();
                let spread = format!(
                    "{}–{}",
                    p99s.iter().min().unwrap_or(&0),
                    p99s.iter().max().unwrap_or(&0)
                );
                let added = |v: f64, base: Option<f64>| {
                    base.map_or("—".into(), |b| format!("{:+.0}", v - b))
                };
                let rss = med(s, &|r| r.proxy_rss_kib.map_or(f64::NAN, |k| k as f64));
                md.push_str(&format!(
                    "| {} | {p50:.0} | {p99:.0} | {p999:.0} | {} | {} | {} | {spread} | {cpu_cells} | {} |\n",
                    system.name,
                    added(p50, direct_p50),
                    added(p99, direct_p99),
                    added(p999, direct_p999),
                    number(rss, 0),
                ));
            } else {
                let ratio =
                    |base: Option<f64>| base.map_or("—".into(), |b| format!("{:.2}x", value / b));
                md.push_str(&format!(
                    "| {} | {value:.0} | {} | {} | {p50:.0} | {p99:.0} | {cpu_cells} |\n",
                    system.name,
                    ratio(raw),
                    ratio(nginx),
                ));
            }
            rows.insert(
                system.name.into(),
                serde_json::json!({
                    "headline": value, "p50_us": p50, "p99_us": p99, "p999_us": p999,
                    cpu_key(workload): finite(cpu_value),
                    "runs": results[w][s].iter().map(Report::to_json).collect::<Vec<_>>(),
                }),
            );
        }
        json.insert(workload.name.into(), serde_json::Value::Object(rows));
        if let (Some(on), Some(off)) = (index("wsrelay-metrics"), index("wsrelay")) {
            let (what, on, off) = if latency {
                let p99 = |r: &Report| r.latency_us(0.99) as f64;
                ("p99 latency", med(on, &p99), med(off, &p99))
            } else {
                ("throughput", med(on, &headline), med(off, &headline))
            };
            md.push_str(&format!(
                "\nMetrics on / off (wsrelay-metrics / wsrelay), {what}: {:.3}\n",
                on / off
            ));
        }
    }
    md.push_str(&http2_ratios(workloads, systems, results));
    md.push_str("\n### Process RSS after the runs (KiB)\n\n| system | RSS |\n|---|---|\n");
    for (system, rss) in systems.iter().zip(rss) {
        if let Some(kib) = rss {
            md.push_str(&format!("| {} | {kib} |\n", system.name));
        }
    }
    (md, serde_json::Value::Object(json))
}

/// What the CPU columns mean, printed once above the tables.
pub(crate) const CPU_NOTE: &str = "CPU columns: user plus system CPU time of the proxy's whole \
process tree (all threads; nginx's master and workers) from /proc, sampled when every connection \
of a measurement is open and again when its last echo is in (no handshake, no teardown), divided \
by what it relayed. Per message (CPU µs/msg): per echoed message, i.e. one frame through the proxy \
to the echo and one back. Per MB (CPU ms/MB): per 10^6 bytes of payload echoed, each byte going \
through the proxy once each way. The direct connection has no proxy: —. Ticks are 10 ms, so short \
runs are coarse.";

/// `value` with `decimals`, or a dash when it is not a number (not measured).
fn number(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "—".into()
    }
}

/// `Some(value)` when it is a number: JSON has no NaN.
pub(crate) fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// The JSON key of a workload's CPU figure, with its unit.
fn cpu_key(workload: &Workload) -> &'static str {
    if workload.is_bulk() {
        "cpu_ms_per_mb"
    } else {
        "cpu_us_per_msg"
    }
}

/// HTTP/2 against HTTP/1.1 (`wsrelay-h2` / `wsrelay`) per workload, medians of this run: the
/// workload's headline (MB/s or msgs/s) and its p50 and p99 latency.
fn http2_ratios(
    workloads: &[Workload],
    systems: &[System],
    results: &[Vec<Vec<Report>>],
) -> String {
    let index = |name: &str| systems.iter().position(|s| s.name == name);
    let (Some(h2), Some(h1)) = (index("wsrelay-h2"), index("wsrelay")) else {
        return String::new();
    };
    let mut md = String::from(
        "\n### HTTP/2 / HTTP/1.1 (wsrelay-h2 / wsrelay, medians of this run)\n\n\
         | workload | headline ratio | p50 ratio | p99 ratio |\n|---|---|---|---|\n",
    );
    for (w, workload) in workloads.iter().enumerate() {
        if results[w][h2].is_empty() || results[w][h1].is_empty() {
            continue;
        }
        let med = |s: usize, f: &dyn Fn(&Report) -> f64| median_of(&results[w][s], f);
        let headline = |r: &Report| workload.headline(r);
        let p50 = |r: &Report| r.latency_us(0.5) as f64;
        let p99 = |r: &Report| r.latency_us(0.99) as f64;
        md.push_str(&format!(
            "| {} | {:.2}x | {:.2}x | {:.2}x |\n",
            workload.name,
            med(h2, &headline) / med(h1, &headline),
            med(h2, &p50) / med(h1, &p50),
            med(h2, &p99) / med(h1, &p99),
        ));
    }
    md
}
