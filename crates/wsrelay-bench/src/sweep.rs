//! The message-size sweep: every system's throughput (and CPU per MB) against message size,
//! gathered from the sweep's workloads into one table and one chart.

use crate::load::Report;
use crate::table::{finite, median_of};
use crate::workload::{Workload, SWEEP_WINDOW};

/// Medians of the sweep, per system and size.
pub(crate) struct Sweep {
    /// Message sizes, bytes, ascending.
    pub(crate) sizes: Vec<usize>,
    /// Per system: MB/s and CPU ms per MB at each size.
    pub(crate) rows: Vec<SweepRow>,
}

/// One system's sweep.
pub(crate) struct SweepRow {
    pub(crate) system: &'static str,
    pub(crate) mb_per_s: Vec<f64>,
    pub(crate) cpu_ms_per_mb: Vec<f64>,
}

/// Collects the sweep from a run's results (`results[workload][system]`, repetitions inside).
pub(crate) fn collect(
    workloads: &[Workload],
    systems: &[&'static str],
    results: &[Vec<Vec<Report>>],
) -> Sweep {
    let points: Vec<usize> = (0..workloads.len())
        .filter(|&w| workloads[w].sweep)
        .collect();
    let sizes = points.iter().map(|&w| workloads[w].size).collect();
    let rows = systems
        .iter()
        .enumerate()
        .map(|(s, &system)| SweepRow {
            system,
            mb_per_s: points
                .iter()
                .map(|&w| median_of(&results[w][s], &Report::mb_per_sec))
                .collect(),
            cpu_ms_per_mb: points
                .iter()
                .map(|&w| median_of(&results[w][s], &Report::cpu_ms_per_mb))
                .collect(),
        })
        .collect();
    Sweep { sizes, rows }
}

/// A message size as people write it: 32 B, 4 KiB, 1 MiB.
pub(crate) fn size_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

impl Sweep {
    /// The sweep's table: MB/s per size, then CPU ms per MB per size (empty without a sweep).
    pub(crate) fn markdown(&self) -> String {
        if self.sizes.is_empty() {
            return String::new();
        }
        let heads: Vec<String> = self.sizes.iter().map(|&b| size_label(b)).collect();
        let mut md = format!(
            "\n### sweep — binary messages of each size, 1 connection, {SWEEP_WINDOW} in flight: \
             MB/s, then the proxy's CPU ms per MB\n\n| system | {} | {} |\n|---|{}\n",
            heads
                .iter()
                .map(|h| format!("{h} MB/s"))
                .collect::<Vec<_>>()
                .join(" | "),
            heads
                .iter()
                .map(|h| format!("{h} CPU ms/MB"))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(2 * heads.len()),
        );
        let cell = |v: &f64, decimals: usize| {
            if v.is_finite() {
                format!("{v:.decimals$}")
            } else {
                "—".into()
            }
        };
        for row in &self.rows {
            let mbs: Vec<String> = row.mb_per_s.iter().map(|v| cell(v, 1)).collect();
            let cpu: Vec<String> = row.cpu_ms_per_mb.iter().map(|v| cell(v, 2)).collect();
            md.push_str(&format!(
                "| {} | {} | {} |\n",
                row.system,
                mbs.join(" | "),
                cpu.join(" | ")
            ));
        }
        md
    }

    /// The sweep as JSON: sizes, and per system its MB/s and CPU ms per MB at each size.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let systems: serde_json::Map<String, serde_json::Value> = self
            .rows
            .iter()
            .map(|row| {
                (
                    row.system.to_owned(),
                    serde_json::json!({
                        "mb_per_s": row.mb_per_s.iter().map(|v| finite(*v)).collect::<Vec<_>>(),
                        "cpu_ms_per_mb": row.cpu_ms_per_mb.iter().map(|v| finite(*v)).collect::<Vec<_>>(),
                    }),
                )
            })
            .collect();
        serde_json::json!({ "sizes": self.sizes, "systems": systems })
    }
}

#[cfg(test)]
mod tests {
    use super::size_label;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_label(32), "32 B");
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(size_label(1500), "1500 B");
    }
}
