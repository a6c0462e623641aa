//! Choosing a backend: weighted least connections (the default), smooth weighted round robin,
//! power of two random choices, and consistent hashing with bounded load. Each looks only at
//! the backends that are up, not ejected and under their cap, skips those already tried, and
//! allocates nothing.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Backend, Hot, Pool, View};
use crate::request::ClientRequest;

/// How a pool picks the backend of a new connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// The backend with the fewest open tunnels plus handshakes in progress, relative to its
    /// weight (the default): right for long-lived tunnels, where connection counts, not
    /// request rates, are the load.
    LeastConnections,
    /// Smooth weighted round robin (nginx's): a weight-3 backend gets three of every six
    /// connections, spread out rather than in a row.
    RoundRobin,
    /// Two backends drawn at random by weight; the less loaded one wins.
    RandomTwo,
    /// Consistent hashing on a key of the request: the same key reaches the same backend,
    /// and removing a backend moves only its keys. `balance_factor` bounds a backend's load
    /// to that many times the average (HAProxy's `hash-balance-factor`); 0: unbounded.
    Hash {
        /// Where the key comes from.
        key: HashKey,
        /// A backend takes a key only while its load is below this many times the average.
        balance_factor: f64,
    },
}

/// The part of a request that consistent hashing hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address.
    ClientAddress,
    /// A request header's value (case-insensitive name).
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// A query parameter's value.
    Query(String),
}

impl HashKey {
    /// Reads `header:NAME`, `cookie:NAME`, `query:NAME` or `client_address`.
    pub fn parse(text: &str) -> Result<HashKey, &'static str> {
        let text = text.trim();
        if text == "client_address" {
            return Ok(HashKey::ClientAddress);
        }
        let (source, name) = text
            .split_once(':')
            .ok_or("no source: write client_address, header:NAME, cookie:NAME or query:NAME")?;
        let name = name.trim();
        if name.is_empty() {
            return Err("the source has no name: header:NAME, cookie:NAME or query:NAME");
        }
        match source.trim() {
            "header" => Ok(HashKey::Header(name.to_owned())),
            "cookie" => Ok(HashKey::Cookie(name.to_owned())),
            "query" => Ok(HashKey::Query(name.to_owned())),
            _ => Err("unknown source: client_address, header:NAME, cookie:NAME or query:NAME"),
        }
    }

    /// The hash of this key in `request`; `None` when the request does not carry it (the pool
    /// then balances by least connections).
    pub fn hash(&self, request: &ClientRequest) -> Option<u64> {
        match self {
            HashKey::ClientAddress => Some(match request.peer.addr.ip() {
                std::net::IpAddr::V4(v4) => hash_bytes(&v4.octets()),
                std::net::IpAddr::V6(v6) => hash_bytes(&v6.octets()),
            }),
            HashKey::Header(name) => request
                .head
                .header(name)
                .map(|h| hash_bytes(h.value.as_slice())),
            HashKey::Cookie(name) => cookie(request, name).map(|v| hash_bytes(v.as_bytes())),
            HashKey::Query(name) => request.head.query().and_then(|q| {
                q.split('&')
                    .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                    .find(|(k, _)| *k == name.as_str())
                    .map(|(_, v)| hash_bytes(v.as_bytes()))
            }),
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (RFC 6265 §5.4).
pub(crate) fn cookie<'a>(request: &'a ClientRequest, name: &str) -> Option<&'a str> {
    request
        .head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Cookie"))
        .filter_map(|h| std::str::from_utf8(&h.value).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A 64-bit hash (FNV-1a, then a finalizer that spreads its bits over the ring).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finalizer: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The policy's choice among the backends `view` admits, not in `tried`.
pub(crate) fn choose(pool: &Pool, view: &View, key: Option<u64>, tried: &[usize]) -> Option<usize> {
    match &pool.policy {
        Policy::LeastConnections => least_connections(pool, view, tried),
        Policy::RoundRobin => round_robin(pool, view, tried),
        Policy::RandomTwo => random_two(pool, view, tried),
        Policy::Hash { balance_factor, .. } => match (key, &pool.ring) {
            (Some(key), Some(ring)) => ring.choose(pool, view, key, *balance_factor, tried),
            _ => least_connections(pool, view, tried),
        },
    }
}

/// True if `b` (index `i`) may be chosen.
#[inline]
fn candidate(view: &View, b: &Hot, i: usize, tried: &[usize]) -> bool {
    view.admits(b) & (tried.is_empty() || !tried.contains(&i))
}

/// `a` carries less load for its weight than `b` would after one more connection each.
#[inline]
fn lighter(a: &Hot, b: &Hot) -> bool {
    let (la, lb) = (a.load() as u64 + 1, b.load() as u64 + 1);
    la * u64::from(b.weight) < lb * u64::from(a.weight)
}

/// Weighted least connections; ties go to the first found from a rotating start.
///
/// Written without branches on the loads (the comparisons select with conditional moves):
/// loads change all the time, so branches on them would be mispredicted about half the time.
fn least_connections(pool: &Pool, view: &View, tried: &[usize]) -> Option<usize> {
    let n = pool.backends.len();
    if n == 0 {
        return None;
    }
    let start = pool.next.fetch_add(1, Ordering::Relaxed) % n;
    // The best so far: its index, its load + 1 and its weight, compared by cross-multiplying
    // (no division). The start values lose to any candidate (weights are at most 1,000).
    let (mut best, mut best_load, mut best_weight) = (usize::MAX, u64::MAX / 1024, 1u64);
    for k in 0..n {
        let i = if start + k >= n {
            start + k - n
        } else {
            start + k
        };
        let b = &pool.hot[i];
        let (load, weight) = (b.load() as u64 + 1, u64::from(b.weight));
        let better = candidate(view, b, i, tried) & (load * best_weight < best_load * weight);
        best = if better { i } else { best };
        best_load = if better { load } else { best_load };
        best_weight = if better { weight } else { best_weight };
    }
    (best != usize::MAX).then_some(best)
}

/// Smooth weighted round robin: each candidate's current weight grows by its weight, the
/// largest wins and gives back the candidates' total.
fn round_robin(pool: &Pool, view: &View, tried: &[usize]) -> Option<usize> {
    let mut current = pool.current.lock().unwrap_or_else(|e| e.into_inner());
    let mut total = 0i64;
    let (mut best, mut best_current) = (usize::MAX, i64::MIN);
    for (i, b) in pool.hot.iter().enumerate() {
        // Without branches on the weights, as in least connections.
        let w = if candidate(view, b, i, tried) {
            i64::from(b.weight)
        } else {
            0
        };
        current[i] += w;
        total += w;
        let better = (w > 0) & (current[i] > best_current);
        best = if better { i } else { best };
        best_current = if better { current[i] } else { best_current };
    }
    if best == usize::MAX {
        return None;
    }
    current[best] -= total;
    Some(best)
}

/// Draws a backend at random by weight.
#[inline]
fn draw(pool: &Pool) -> usize {
    let total = pool.cumulative.last().copied().unwrap_or(0);
    if total == 0 {
        return 0;
    }
    let r = random() % total;
    pool.cumulative.partition_point(|&c| c <= r)
}

/// Draws tried per choice before falling back to a scan.
const DRAWS: usize = 4;

/// Power of two random choices, by weight: of two draws, the lighter one.
fn random_two(pool: &Pool, view: &View, tried: &[usize]) -> Option<usize> {
    let mut found = [None; 2];
    for slot in &mut found {
        for _ in 0..DRAWS {
            let i = draw(pool);
            if candidate(view, &pool.hot[i], i, tried) {
                *slot = Some(i);
                break;
            }
        }
    }
    match found {
        [Some(a), Some(b)] => Some(if lighter(&pool.hot[b], &pool.hot[a]) {
            b
        } else {
            a
        }),
        [Some(a), None] | [None, Some(a)] => Some(a),
        // Most backends are out: scan instead of drawing on.
        [None, None] => least_connections(pool, view, tried),
    }
}

/// Points on the ring for the heaviest backend; lighter ones get a proportional share. More
/// points spread keys more evenly (the share of a backend varies about 1/sqrt(points)).
const POINTS_PER_BACKEND: u64 = 1024;
/// The most points on one ring, so a large pool's ring stays small enough to search fast.
const MAX_POINTS: u64 = 16 * 1024;

/// A consistent-hash ring: points hashed from each backend's name (so a backend keeps its
/// points whatever the others are), as many as its weight asks.
#[derive(Debug, Clone)]
pub struct Ring {
    /// The points, sorted.
    points: Vec<u64>,
    /// The backend index of each point.
    owners: Vec<u32>,
}

impl Ring {
    /// The ring of `backends`.
    pub fn new(backends: &[Backend]) -> Ring {
        let heaviest = backends.iter().map(|b| b.weight).max().unwrap_or(1).max(1);
        let total: u64 = backends
            .iter()
            .map(|b| u64::from(b.weight))
            .sum::<u64>()
            .max(1);
        // Points of the heaviest: as many as asked, fewer when the ring would grow too big.
        let top = POINTS_PER_BACKEND
            .min(MAX_POINTS * u64::from(heaviest) / total)
            .max(1);
        let mut pairs = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            let count = (top * u64::from(b.weight)).div_ceil(u64::from(heaviest));
            let base = hash_bytes(b.name.as_bytes());
            for k in 0..count.max(1) {
                pairs.push((mix(base ^ mix(k + 1)), i as u32));
            }
        }
        pairs.sort_unstable();
        Ring {
            points: pairs.iter().map(|p| p.0).collect(),
            owners: pairs.iter().map(|p| p.1).collect(),
        }
    }

    /// The backend of `key`: the first admitted one clockwise from the key's point whose load
    /// stays under `factor` times the average (when `factor` > 0).
    fn choose(
        &self,
        pool: &Pool,
        view: &View,
        key: u64,
        factor: f64,
        tried: &[usize],
    ) -> Option<usize> {
        let bound = if factor > 0.0 {
            // The average over the whole pool, from its one running total (backends that are
            // out lower it a little: keys then spill a little sooner).
            let total = pool.total_load.load(Ordering::Relaxed);
            let count = pool.backends.len().max(1);
            ((factor * (total + 1) as f64) / count as f64).ceil() as usize
        } else {
            usize::MAX
        };
        self.walk(key, |i| {
            let b = &pool.hot[i];
            candidate(view, b, i, tried) && b.load() < bound.max(1)
        })
    }

    /// The first backend clockwise from `key` that `accept` takes; each point once at most.
    pub fn walk(&self, key: u64, mut accept: impl FnMut(usize) -> bool) -> Option<usize> {
        let n = self.points.len();
        let start = self.points.partition_point(|&p| p < key);
        (0..n)
            .map(|k| self.owners[(start + k) % n] as usize)
            .find(|&i| accept(i))
    }
}

thread_local! {
    /// The balancer's random state (xorshift64*), seeded once per thread from the OS.
    static STATE: Cell<u64> = Cell::new(seed());
}

/// A seed from the OS random source. Balancing needs spread, not secrecy: should the source
/// fail, the clock and the thread's stack address still spread workers apart.
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if wsrelay_codec::random::fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes) | 1;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    mix(nanos ^ (&bytes as *const _ as u64)) | 1
}

/// The next pseudo-random number of this thread.
#[inline]
pub(crate) fn random() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A random duration in `[0, max]`.
pub(crate) fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random() % (nanos + 1).max(1))
}
