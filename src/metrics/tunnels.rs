//! Open tunnels and the traffic of tunnels, summed when `/metrics` is scraped.
//!
//! Each open tunnel is registered once (at its 101) with the [`LiveTraffic`] its relay
//! publishes into; a finished tunnel's final counts are added to its route's totals and it is
//! removed, both under the same lock, so a scrape sees each tunnel exactly once and every
//! counter only grows. The registry is split into shards by tunnel, so opening and closing
//! tunnels on different workers rarely meet, and a scrape holds one shard's lock at a time,
//! briefly (a sum over that shard's tunnels). Relaying a frame takes no lock at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use wsrelay_relay::{CloseInfo, LiveTraffic, RelayOutcome, Side, Traffic};

/// Shards of the registry.
const SHARDS: usize = 16;

/// Close codes with their own `code` label: 1000 to 1015; anything else is `other`.
const FIRST_CODE: u16 = 1000;
const LAST_CODE: u16 = 1015;
/// The slot of `other` among the code labels.
const OTHER_CODE: usize = (LAST_CODE - FIRST_CODE + 1) as usize;
const CODE_SLOTS: usize = OTHER_CODE + 1;

/// Who sent a close frame: the `side` label of `wsrelay_closes_total`.
const CLOSERS: [&str; 3] = ["client", "upstream", "relay"];

/// The code label slot of a close frame: a close without a code counts as 1005 (RFC 6455
/// §7.1.5: "no status code was present").
fn code_slot(close: &CloseInfo) -> usize {
    match close.code.unwrap_or(1005) {
        c @ FIRST_CODE..=LAST_CODE => usize::from(c - FIRST_CODE),
        _ => OTHER_CODE,
    }
}

/// The label of a code slot.
fn code_label(slot: usize) -> String {
    if slot == OTHER_CODE {
        "other".to_owned()
    } else {
        (FIRST_CODE + slot as u16).to_string()
    }
}

/// What finished tunnels of one route added up to.
#[derive(Debug, Clone, Default)]
struct Totals {
    /// Per direction: client to upstream, upstream to client.
    traffic: [Traffic; 2],
    /// Close frames by closer ([`CLOSERS`]) and code slot.
    closes: [[u64; CODE_SLOTS]; 3],
    /// Open tunnels (used in snapshots only).
    open: u64,
    /// Open tunnels per backend of the route, in the order of its backend labels (snapshots
    /// only).
    open_by_backend: Vec<u64>,
}

impl Totals {
    fn add_traffic(&mut self, c2u: &Traffic, u2c: &Traffic) {
        for (sum, t) in self.traffic.iter_mut().zip([c2u, u2c]) {
            sum.frames += t.frames;
            sum.messages += t.messages;
            sum.bytes += t.bytes;
            sum.header_bytes += t.header_bytes;
            sum.remasked += t.remasked;
        }
    }

    fn add(&mut self, other: &Totals) {
        let [c2u, u2c] = &other.traffic;
        self.add_traffic(c2u, u2c);
        for (mine, theirs) in self.closes.iter_mut().zip(&other.closes) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        self.open += other.open;
    }
}

/// One shard: its open tunnels (by the address of their live counters) and what its finished
/// tunnels added up to, per route.
#[derive(Debug)]
struct Shard {
    /// Route slot, backend index within the route, live counters.
    open: HashMap<usize, (usize, usize, Arc<LiveTraffic>)>,
    finished: Vec<Totals>,
}

/// The registry of tunnels; a [`Collector`] of the per-tunnel families.
#[derive(Debug)]
pub(super) struct Tunnels {
    routes: Vec<String>,
    /// Per route slot, the `backend` labels its tunnels can have: its upstream, or its pool's
    /// backends (bounded by the configuration).
    backends: Vec<Vec<String>>,
    shards: Vec<Mutex<Shard>>,
}

impl Tunnels {
    /// A registry for tunnels of these routes (names and backends, in slot order).
    pub(super) fn new(routes: Vec<String>, backends: Vec<Vec<String>>) -> Tunnels {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    open: HashMap::new(),
                    finished: vec![Totals::default(); routes.len()],
                })
            })
            .collect();
        Tunnels {
            routes,
            backends,
            shards,
        }
    }

    /// The key and shard of a tunnel: the address of its live counters, unique while it is open.
    fn shard_of(&self, live: &Arc<LiveTraffic>) -> (usize, MutexGuard<'_, Shard>) {
        let key = Arc::as_ptr(live) as usize;
        // Allocations are aligned: the low bits say nothing.
        let shard = &self.shards[(key >> 6) % SHARDS];
        // A panic elsewhere while holding the lock leaves the counts usable.
        (key, shard.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Registers an open tunnel of route slot `route` to the backend labelled `backend` (the
    /// route's first backend label if it has no such one).
    pub(super) fn open(&self, route: usize, backend: &str, live: &Arc<LiveTraffic>) {
        let index = (self.backends.get(route))
            .and_then(|names| names.iter().position(|n| n == backend))
            .unwrap_or(0);
        let (key, mut shard) = self.shard_of(live);
        shard.open.insert(key, (route, index, Arc::clone(live)));
    }

    /// Removes a tunnel and adds its final counts to its route's totals: the outcome's, or
    /// what it last published if it was cut off without one.
    pub(super) fn close(
        &self,
        route: usize,
        live: &Arc<LiveTraffic>,
        outcome: Option<&RelayOutcome>,
    ) {
        let (key, mut shard) = self.shard_of(live);
        shard.open.remove(&key);
        let Some(totals) = shard.finished.get_mut(route) else {
            return;
        };
        match outcome {
            Some(o) => {
                totals.add_traffic(&o.client_to_upstream, &o.upstream_to_client);
                let closes = [
                    (0, &o.client_close),
                    (1, &o.upstream_close),
                    (2, &o.sent_to_client),
                    (2, &o.sent_to_upstream),
                ];
                for (closer, close) in closes {
                    if let Some(close) = close {
                        totals.closes[closer][code_slot(close)] += 1;
                    }
                }
            }
            None => totals.add_traffic(&live.from(Side::Client), &live.from(Side::Upstream)),
        }
    }

    /// Per route slot: finished totals plus open tunnels' live counts, and the open count.
    fn snapshot(&self) -> Vec<Totals> {
        let mut sums = vec![Totals::default(); self.routes.len()];
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (sum, finished) in sums.iter_mut().zip(&shard.finished) {
                sum.add(finished);
            }
            for (route, backend, live) in shard.open.values() {
                if let Some(sum) = sums.get_mut(*route) {
                    sum.add_traffic(&live.from(Side::Client), &live.from(Side::Upstream));
                    sum.open += 1;
                    if sum.open_by_backend.len() <= *backend {
                        sum.open_by_backend.resize(*backend + 1, 0);
                    }
                    sum.open_by_backend[*backend] += 1;
                }
            }
        }
        sums
    }
}

/// A traffic family: its name, its help, and the number it takes from [`Traffic`].
type TrafficFamily = (&'static str, &'static str, fn(&Traffic) -> u64);

/// The `direction` labels, in the order of [`Totals::traffic`].
const DIRECTIONS: [&str; 2] = ["client_to_upstream", "upstream_to_client"];

impl Collector for Tunnels {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sums = self.snapshot();
        {
            let mut family = encoder.encode_descriptor(
                "wsrelay_open_tunnels",
                "Tunnels open (past their 101, relaying), per route and backend",
                None,
                MetricType::Gauge,
            )?;
            for (i, sum) in sums.iter().enumerate() {
                for (b, backend) in self.backends[i].iter().enumerate() {
                    let labels = [("route", &self.routes[i]), ("backend", backend)];
                    let open = sum.open_by_backend.get(b).copied().unwrap_or(0);
                    ConstGauge::new(open as i64).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let traffic: [TrafficFamily; 4] = [
            (
                "wsrelay_frames",
                "Frames forwarded, per route and direction (control frames included)",
                |t| t.frames,
            ),
            (
                "wsrelay_messages",
                "Data messages forwarded (counted at their final frame), per route and direction",
                |t| t.messages,
            ),
            (
                "wsrelay_payload_bytes",
                "Payload bytes forwarded (frame headers not included), per route and direction",
                Traffic::payload_bytes,
            ),
            (
                "wsrelay_remasked_frames",
                "Client frames forwarded with a masking key of the relay's own (remask), per \
                 route and direction (always 0 from the upstream)",
                |t| t.remasked,
            ),
        ];
        for (name, help, value) in traffic {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (i, sum) in sums.iter().enumerate() {
                for (d, direction) in DIRECTIONS.iter().enumerate() {
                    let labels = [("route", self.routes[i].as_str()), ("direction", direction)];
                    let metric = ConstCounter::new(value(&sum.traffic[d]));
                    metric.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "wsrelay_closes",
            "Close frames of finished tunnels, per route, side that sent it (client, upstream, \
             or the relay itself) and close code (1000-1015, else other; no code counts as 1005)",
            None,
            MetricType::Counter,
        )?;
        for (i, sum) in sums.iter().enumerate() {
            for (closer, codes) in CLOSERS.iter().zip(&sum.closes) {
                for (slot, &count) in codes.iter().enumerate().filter(|(_, &n)| n > 0) {
                    let code = code_label(slot);
                    let labels = [
                        ("route", self.routes[i].as_str()),
                        ("side", closer),
                        ("code", code.as_str()),
                    ];
                    ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wsrelay_relay::EndReason;

    use super::*;

    fn close(code: Option<u16>) -> Option<CloseInfo> {
        Some(CloseInfo {
            code,
            reason: String::new(),
        })
    }

    #[test]
    fn close_codes_take_a_bounded_set_of_labels() {
        let slot = |code| code_label(code_slot(&close(code).unwrap()));
        assert_eq!(slot(Some(1000)), "1000");
        assert_eq!(slot(Some(1015)), "1015");
        assert_eq!(slot(None), "1005");
        assert_eq!(slot(Some(4000)), "other");
        assert_eq!(slot(Some(999)), "other");
    }

    #[test]
    fn a_tunnel_counts_open_until_closed_then_in_its_routes_totals() {
        let tunnels = Tunnels::new(
            vec!["a".into(), "-".into()],
            vec![vec!["b:1".into(), "c:2".into()], vec!["-".into()]],
        );
        let live = Arc::new(LiveTraffic::default());
        tunnels.open(0, "c:2", &live);
        assert_eq!(tunnels.snapshot()[0].open, 1);
        assert_eq!(tunnels.snapshot()[0].open_by_backend, [0, 1]);
        let traffic = Traffic {
            frames: 3,
            messages: 2,
            bytes: 30,
            header_bytes: 6,
            remasked: 1,
        };
        let outcome = RelayOutcome {
            end: EndReason::Closed {
                initiator: Side::Client,
            },
            client_close: close(Some(1000)),
            upstream_close: close(Some(1000)),
            sent_to_client: None,
            sent_to_upstream: close(Some(1001)),
            client_to_upstream: traffic,
            upstream_to_client: Traffic::default(),
            close_timed_out: false,
            duration: Duration::from_secs(1),
        };
        tunnels.close(0, &live, Some(&outcome));
        let sums = tunnels.snapshot();
        assert_eq!(sums[0].open, 0);
        assert_eq!(sums[0].traffic[0].payload_bytes(), 24);
        assert_eq!(sums[0].traffic[0].messages, 2);
        assert_eq!(sums[0].closes[0][0], 1, "client 1000");
        assert_eq!(sums[0].closes[1][0], 1, "upstream 1000");
        assert_eq!(sums[0].closes[2][1], 1, "relay 1001");
        assert_eq!(sums[1].traffic[0].frames, 0, "other routes untouched");
    }
}
