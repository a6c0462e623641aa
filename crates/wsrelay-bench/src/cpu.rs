//! CPU time of a system under test: user plus system time of its whole process tree (every
//! thread of the proxy, and its children such as nginx's workers), read from `/proc`, so a
//! workload can report what the proxy alone spent per relayed message or megabyte.

use crate::load::Report;
use crate::memory::{process_tree, tree_rss_kib};

/// Clock ticks per second of `/proc/PID/stat`'s times: Linux's `USER_HZ`, 100 on every
/// architecture it exports to user space through procfs.
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of `pid` and its live descendants, in microseconds; `None` if
/// the process is gone. Each process's figure covers all its threads, exited ones included.
pub(crate) fn tree_cpu_us(pid: u32) -> Option<u64> {
    let mut ticks = process_ticks(pid)?;
    for child in process_tree(pid).into_iter().skip(1) {
        ticks += process_ticks(child).unwrap_or(0);
    }
    Some(ticks * 1_000_000 / TICKS_PER_SECOND)
}

/// `utime + stime` of one process (fields 14 and 15 of `/proc/PID/stat`), in ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `utime + stime` from the text of a `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so fields are counted from the
/// last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state (3), ppid (4), ... utime (14), stime (15).
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A look at a proxy at one edge of a measurement: its tree's CPU time so far and its RSS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    cpu_us: Option<u64>,
    rss_kib: Option<u64>,
}

impl Sample {
    /// Samples the process tree of `pid` (nothing for `None`: the direct connection).
    pub(crate) fn of(pid: Option<u32>) -> Self {
        Sample {
            cpu_us: pid.and_then(tree_cpu_us),
            rss_kib: pid.map(tree_rss_kib),
        }
    }

    /// Records in `report` what the proxy spent between `before` and `after` (this sample):
    /// CPU time, and the RSS at the end.
    pub(crate) fn charge(self, before: Sample, report: &mut Report) {
        report.proxy_cpu_us = before
            .cpu_us
            .zip(self.cpu_us)
            .map(|(b, a)| a.saturating_sub(b));
        report.proxy_rss_kib = self.rss_kib;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 500 0 0 0 70 30 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_ticks(stat), Some(100));
    }

    #[test]
    fn this_process_has_spent_some_cpu() {
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(30);
        while std::time::Instant::now() < until {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(tree_cpu_us(std::process::id()).is_some_and(|us| us > 0));
    }
}
