//! The run's charts as SVG files next to its tables: throughput against message size, latency
//! percentiles, and memory per idle connection, one series or bar per system. Drawn with
//! `plotters`' SVG backend only: text goes out as SVG `<text>`, so no font is needed here and
//! any browser renders the files.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::load::Report;
use crate::sweep::{size_label, Sweep};
use crate::table::median_of;
use crate::workload::Workload;

/// Pixel size of every chart.
const SIZE: (u32, u32) = (960, 560);
/// The latency percentiles charted, as quantiles and labels.
const PERCENTILES: [(f64, &str); 4] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

/// One system's latency at each of [`PERCENTILES`], in microseconds (medians over repetitions).
pub(crate) struct Percentiles {
    system: &'static str,
    us: Vec<f64>,
}

/// The latency workload's percentiles per system (empty when the run had no latency workload).
pub(crate) fn latency_percentiles(
    workloads: &[Workload],
    systems: &[&'static str],
    results: &[Vec<Vec<Report>>],
) -> Vec<Percentiles> {
    let Some(w) = workloads.iter().position(|w| w.name == "latency") else {
        return Vec::new();
    };
    systems
        .iter()
        .enumerate()
        .map(|(s, &system)| Percentiles {
            system,
            us: PERCENTILES
                .iter()
                .map(|&(q, _)| median_of(&results[w][s], &|r| r.latency_us(q) as f64))
                .collect(),
        })
        .collect()
}

/// Writes every chart the run has data for into `dir`; returns the markdown that shows them.
pub(crate) fn write_all(
    dir: &Path,
    systems: &[&'static str],
    sweep: &Sweep,
    percentiles: &[Percentiles],
    memory: Option<&serde_json::Value>,
) -> Result<String, String> {
    let mut written = Vec::new();
    if !sweep.sizes.is_empty() {
        let file = "throughput-by-size.svg";
        throughput_by_size(&dir.join(file), systems, sweep).map_err(|e| format!("{file}: {e}"))?;
        written.push((file, "throughput against message size"));
    }
    if !percentiles.is_empty() {
        let file = "latency-percentiles.svg";
        latency_chart(&dir.join(file), systems, percentiles).map_err(|e| format!("{file}: {e}"))?;
        written.push((file, "latency percentiles"));
    }
    let idle = idle_bytes(systems, memory);
    if !idle.is_empty() {
        let file = "idle-memory.svg";
        idle_memory_chart(&dir.join(file), systems, &idle).map_err(|e| format!("{file}: {e}"))?;
        written.push((file, "memory per idle connection"));
    }
    if written.is_empty() {
        return Ok(String::new());
    }
    let mut md = String::from("\n### Charts\n\n");
    for (file, what) in written {
        println!("chart: {}", dir.join(file).display());
        md.push_str(&format!("![{what}]({file})\n\n"));
    }
    Ok(md)
}

/// The colour of `system`, the same in every chart: by its place in the run's list.
fn colour(systems: &[&str], system: &str) -> RGBColor {
    const COLOURS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    let i = systems.iter().position(|s| *s == system).unwrap_or(0);
    COLOURS[i % COLOURS.len()]
}

/// An axis value without needless decimals: 1000, 12.5, 0.25.
fn plain(v: &f64) -> String {
    match v.abs() {
        0.0 => "0".into(),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// The bounds of a log axis holding every finite positive value of `values`, with room.
fn log_bounds(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 1.0..10.0;
    }
    (lo / 2.0)..(hi * 2.0)
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// (a) MB/s against message size (log-log), a line per system.
fn throughput_by_size(path: &Path, systems: &[&str], sweep: &Sweep) -> Drawn {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let first = sweep.sizes.first().copied().unwrap_or(32) as f64;
    let last = sweep.sizes.last().copied().unwrap_or(1 << 20) as f64;
    let y = log_bounds(sweep.rows.iter().flat_map(|r| r.mb_per_s.iter().copied()));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput against message size (1 connection, 4 in flight)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            // Ticks at the sizes measured, named as people write them.
            ((first / 1.5)..(last * 1.5))
                .log_scale()
                .with_key_points(sweep.sizes.iter().map(|&s| s as f64).collect()),
            y.log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("message size (payload bytes, log scale)")
        .y_desc("payload echoed, MB/s (log scale)")
        .x_label_formatter(&|v| size_label(v.round() as usize))
        .y_label_formatter(&plain)
        .draw()?;
    let lines = sweep.rows.iter().map(|row| {
        let points = sweep
            .sizes
            .iter()
            .zip(&row.mb_per_s)
            .filter(|(_, v)| v.is_finite() && **v > 0.0)
            .map(|(&s, &v)| (s as f64, v))
            .collect();
        (row.system, points)
    });
    lines_with_legend(&mut chart, systems, lines.collect())?;
    root.present()?;
    Ok(())
}

/// One system's line: its name and its points.
type Line<X> = (&'static str, Vec<(X, f64)>);

/// A line with a dot at each point per system, in the system's colour, and the legend.
fn lines_with_legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    systems: &[&str],
    lines: Vec<Line<X::ValueType>>,
) -> Drawn
where
    X: Ranged,
    Y: Ranged<ValueType = f64>,
    X::ValueType: Clone + 'static,
{
    for (system, points) in lines {
        let c = colour(systems, system);
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
            .label(system)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// (b) Latency at each percentile (log scale), a line per system.
fn latency_chart(path: &Path, systems: &[&str], rows: &[Percentiles]) -> Drawn {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let y = log_bounds(rows.iter().flat_map(|r| r.us.iter().copied()));
    let n = PERCENTILES.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency percentiles (32-byte messages, open loop)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        // An integer range includes its end: 0..n-1 is n segments.
        .build_cartesian_2d((0..n - 1).into_segmented(), y.log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("round-trip latency, µs (log scale)")
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => PERCENTILES
                .get(*i)
                .map_or(String::new(), |p| p.1.to_owned()),
            SegmentValue::Last => String::new(),
        })
        .y_label_formatter(&plain)
        .draw()?;
    let lines = rows.iter().map(|row| {
        let points = row
            .us
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite() && **v > 0.0)
            .map(|(q, &v)| (SegmentValue::CenterOf(q), v))
            .collect();
        (row.system, points)
    });
    lines_with_legend(&mut chart, systems, lines.collect())?;
    root.present()?;
    Ok(())
}

/// The idle-memory workload's bytes per connection per system, from the memory JSON, in the
/// order of the run's systems.
fn idle_bytes(
    systems: &[&'static str],
    memory: Option<&serde_json::Value>,
) -> Vec<(&'static str, f64)> {
    let Some(idle) = memory.and_then(|m| m.get("idle")) else {
        return Vec::new();
    };
    systems
        .iter()
        .filter_map(|&name| {
            let bytes = idle.get(name)?.get("bytes_per_connection")?.as_f64()?;
            Some((name, bytes))
        })
        .collect()
}

/// (c) Memory per idle connection: a horizontal bar per system, its value written beside it.
fn idle_memory_chart(path: &Path, systems: &[&str], rows: &[(&str, f64)]) -> Drawn {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let max = rows.iter().map(|r| r.1).fold(1.0, f64::max);
    let n = rows.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Memory per idle proxied connection (RSS growth of the proxy's processes)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(150)
        // n segments (an integer range includes its end), at least two: plotters labels
        // no segment of a one-segment axis.
        .build_cartesian_2d(0.0..max * 1.25, (0..n.max(2) - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("bytes of RSS per idle connection")
        .x_label_formatter(&plain)
        .y_desc("system")
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                rows.get(*i).map_or(String::new(), |r| r.0.to_owned())
            }
            SegmentValue::Last => String::new(),
        })
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (name, bytes))| {
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (*bytes, SegmentValue::Exact(i + 1)),
            ],
            colour(systems, name).filled(),
        );
        bar.set_margin(6, 6, 0, 0);
        bar
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (_, bytes))| {
        Text::new(
            format!(" {bytes:.0} B"),
            (*bytes, SegmentValue::CenterOf(i)),
            ("sans-serif", 15),
        )
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepRow;

    #[test]
    fn every_chart_is_written_with_its_labels() {
        let dir = std::env::temp_dir().join(format!("wsrelay-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let systems = ["direct", "wsrelay"];
        let sweep = Sweep {
            sizes: vec![32, 1 << 20],
            rows: vec![
                SweepRow {
                    system: "direct",
                    mb_per_s: vec![2.5, 900.0],
                    cpu_ms_per_mb: vec![f64::NAN, f64::NAN],
                },
                SweepRow {
                    system: "wsrelay",
                    mb_per_s: vec![1.5, f64::NAN],
                    cpu_ms_per_mb: vec![300.0, 0.5],
                },
            ],
        };
        let percentiles = vec![
            Percentiles {
                system: "direct",
                us: vec![80.0, 200.0, 900.0, 2700.0],
            },
            Percentiles {
                system: "wsrelay",
                us: vec![230.0, 400.0, 2300.0, 3300.0],
            },
        ];
        let memory = serde_json::json!({"idle": {"wsrelay": {"bytes_per_connection": 3439.0}}});
        let md = write_all(&dir, &systems, &sweep, &percentiles, Some(&memory)).unwrap();
        for (file, label) in [
            ("throughput-by-size.svg", "1 MiB"),
            ("latency-percentiles.svg", "p99.9"),
            ("idle-memory.svg", "3439 B"),
        ] {
            assert!(md.contains(file), "{md}");
            let svg = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
            assert!(svg.contains(label), "{file} lacks {label}");
            assert!(svg.contains("wsrelay"), "{file} lacks the legend:\n{svg}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
