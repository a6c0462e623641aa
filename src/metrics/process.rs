//! The process metrics every Prometheus exporter has, under their usual names: resident
//! memory, open descriptors, CPU seconds and start time, read from `/proc` at each scrape
//! (Linux; elsewhere they are left out).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Clock ticks per second in `/proc` times (USER_HZ, 100 on every Linux ABI).
const TICKS: f64 = 100.0;
/// Descriptors counted at most (a scrape must stay cheap even if descriptors leak).
const MAX_FDS: usize = 1 << 20;

/// Reads the process figures at each scrape.
#[derive(Debug, Default)]
pub(super) struct ProcessCollector;

impl ProcessCollector {
    pub(super) fn new() -> ProcessCollector {
        ProcessCollector
    }
}

/// What `/proc` says about this process.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    resident_bytes: Option<u64>,
    open_fds: Option<u64>,
    cpu_seconds: Option<f64>,
    start_time_seconds: Option<f64>,
}

/// The fields of `/proc/self/stat` after the command name (which may hold spaces and
/// parentheses, so the text is split after its last `)`): utime and stime are fields 14 and
/// 15 of the line, starttime 22 (proc(5)).
fn parse_stat(stat: &str) -> Option<(f64, f64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let cpu = (field(14)? + field(15)?) as f64 / TICKS;
    let start = field(22)? as f64 / TICKS;
    Some((cpu, start))
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident(status: &str) -> Option<u64> {
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

fn read() -> Figures {
    let text = |path: &str| std::fs::read_to_string(path).ok();
    let stat = text("/proc/self/stat").as_deref().and_then(parse_stat);
    let btime = text("/proc/stat").as_deref().and_then(boot_time);
    Figures {
        resident_bytes: text("/proc/self/status").as_deref().and_then(resident),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.take(MAX_FDS).count() as u64),
        cpu_seconds: stat.map(|(cpu, _)| cpu),
        start_time_seconds: stat.zip(btime).map(|((_, start), boot)| boot + start),
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = read();
        if let Some(v) = f.resident_bytes {
            let m = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(v as i64).encode(m)?;
        }
        if let Some(v) = f.open_fds {
            let m = encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(v as i64).encode(m)?;
        }
        if let Some(v) = f.cpu_seconds {
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(v).encode(m)?;
        }
        if let Some(v) = f.start_time_seconds {
            let m = encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(v).encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        // A command name with spaces and a parenthesis, as a process may choose.
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1234 0 0";
        assert_eq!(parse_stat(stat), Some((3.0, 12.34)));
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
        assert_eq!(resident("Name:\tx\nVmRSS:\t  2048 kB\n"), Some(2 << 20));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_every_figure() {
        let f = read();
        assert!(f.resident_bytes.is_some_and(|v| v > 0), "{f:?}");
        assert!(f.open_fds.is_some_and(|v| v > 0), "{f:?}");
        assert!(
            f.cpu_seconds.is_some() && f.start_time_seconds.is_some(),
            "{f:?}"
        );
    }
}
