//! The workloads of a comparison run: what each sends, and which numbers are its headline and
//! its CPU cost.

use std::time::Duration;

use crate::load::Report;

/// Messages of this size and up are measured in megabytes (MB/s, CPU ms per MB), smaller ones
/// in messages (msgs/s, CPU µs per message).
const BULK_FROM: usize = 1024;

/// One workload: how to load a system, and which number is its headline.
pub(crate) struct Workload {
    pub(crate) name: &'static str,
    pub(crate) what: String,
    pub(crate) connections: usize,
    pub(crate) size: usize,
    pub(crate) text: bool,
    pub(crate) window: usize,
    /// Open loop: total messages per second.
    pub(crate) rate: Option<u64>,
    /// Open loop per connection: one message per connection per interval.
    pub(crate) interval: Option<Duration>,
    /// Its own measuring time instead of the run's `--duration`.
    pub(crate) duration: Option<Duration>,
    /// A point of the message-size sweep: tabulated and plotted as one sweep, not alone.
    pub(crate) sweep: bool,
}

impl Workload {
    /// A closed-loop workload: `window` messages in flight on each connection.
    fn closed(
        name: &'static str,
        what: impl Into<String>,
        connections: usize,
        size: usize,
        window: usize,
    ) -> Self {
        Workload {
            name,
            what: what.into(),
            connections,
            size,
            text: false,
            window,
            rate: None,
            interval: None,
            duration: None,
            sweep: false,
        }
    }

    /// Whether latency is the point (open loop): the latency table, not the throughput one.
    pub(crate) fn is_latency(&self) -> bool {
        self.rate.is_some() || self.interval.is_some()
    }

    /// Whether the workload is measured in megabytes rather than messages.
    pub(crate) fn is_bulk(&self) -> bool {
        self.size >= BULK_FROM
    }

    /// The workload's headline number in `report`: MB/s for bulk, else messages per second.
    pub(crate) fn headline(&self, report: &Report) -> f64 {
        if self.is_bulk() {
            report.mb_per_sec()
        } else {
            report.msgs_per_sec()
        }
    }

    /// The unit of the headline.
    pub(crate) fn headline_unit(&self) -> &'static str {
        if self.is_bulk() {
            "MB/s"
        } else {
            "msgs/s"
        }
    }

    /// The proxy's CPU time per unit of work in `report` (NaN without a proxy): milliseconds per
    /// MB of payload echoed for bulk, else microseconds per message echoed.
    pub(crate) fn cpu(&self, report: &Report) -> f64 {
        if self.is_bulk() {
            report.cpu_ms_per_mb()
        } else {
            report.cpu_us_per_message()
        }
    }

    /// The unit of [`Workload::cpu`], as a column header.
    pub(crate) fn cpu_unit(&self) -> &'static str {
        if self.is_bulk() {
            "CPU ms/MB"
        } else {
            "CPU µs/msg"
        }
    }
}

/// Sizes of the message-size sweep (the throughput-against-size plot).
fn sweep_sizes(smoke: bool) -> &'static [(usize, &'static str)] {
    if smoke {
        &[(32, "sweep-32B"), (64 << 10, "sweep-64KiB")]
    } else {
        &[
            (32, "sweep-32B"),
            (512, "sweep-512B"),
            (4 << 10, "sweep-4KiB"),
            (64 << 10, "sweep-64KiB"),
            (1 << 20, "sweep-1MiB"),
        ]
    }
}

/// Messages in flight on the sweep's one connection, whatever the size.
pub(crate) const SWEEP_WINDOW: usize = 4;
/// Measuring time of one sweep point (at most; a shorter `--duration` wins).
const SWEEP_POINT: Duration = Duration::from_secs(2);

/// The chat-like many-connections workload's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Many {
    /// Open tunnels.
    pub(crate) connections: usize,
    /// Each tunnel sends one message per interval.
    pub(crate) interval: Duration,
    /// Measuring window, after every tunnel is open.
    pub(crate) window: Duration,
}

/// The workloads of a run, in the order they are measured (many-connections last: its
/// thousands of tunnels come and go after the others).
pub(crate) fn workloads(smoke: bool, duration: Duration, many: Many) -> Vec<Workload> {
    let rate = if smoke { 2_000 } else { 10_000 };
    let mut list = vec![
        Workload::closed(
            "bulk",
            "64 KiB binary messages, 1 connection, 16 in flight: MB/s",
            1,
            64 * 1024,
            16,
        ),
        Workload {
            text: true,
            ..Workload::closed(
                "bulk-text",
                "64 KiB text messages, 1 connection, 16 in flight: MB/s",
                1,
                64 * 1024,
                16,
            )
        },
        Workload::closed(
            "bulk-1m",
            "1 MiB binary messages, 1 connection, 4 in flight: MB/s",
            1,
            1 << 20,
            4,
        ),
        Workload::closed(
            "small",
            "32-byte messages, 100 connections, 1 in flight each: msgs/s",
            100,
            32,
            1,
        ),
        Workload {
            rate: Some(rate),
            ..Workload::closed(
                "latency",
                "32-byte messages, 50 connections, open loop at a fixed total rate: latency",
                50,
                32,
                1,
            )
        },
    ];
    for &(size, name) in sweep_sizes(smoke) {
        list.push(Workload {
            sweep: true,
            duration: Some(duration.min(SWEEP_POINT)),
            ..Workload::closed(
                name,
                "message-size sweep: 1 connection, 4 in flight: MB/s",
                1,
                size,
                SWEEP_WINDOW,
            )
        });
    }
    list.push(Workload {
        interval: Some(many.interval),
        duration: Some(many.window),
        ..Workload::closed(
            "many",
            format!(
                "{} open tunnels, each sending one 32-byte message every {:?} (open loop, send \
                 times spread evenly), measured over {:?} once all are open: latency, CPU, RSS",
                many.connections, many.interval, many.window
            ),
            many.connections,
            32,
            1,
        )
    });
    list
}
