//! Per client address: open connections and a token bucket of new connections per second,
//! kept in one table whose size stays bounded (addresses with nothing open and a full bucket
//! are forgotten).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Where the table is swept first; after a sweep, at twice what remains (at least this).
const SWEEP_AT: usize = 1024;

/// One address's state.
#[derive(Debug)]
struct Address {
    /// Its open connections.
    open: usize,
    /// New connections it may open now (a token bucket).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    refilled: Instant,
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRefusal {
    /// It has as many connections open as it may.
    TooManyOpen,
    /// It opened connections faster than its rate; the next one is allowed after this long.
    TooFast(Duration),
}

/// The per-address table and its limits.
#[derive(Debug)]
pub struct AddressTable {
    max_open: Option<usize>,
    /// New connections per second and the burst.
    rate: Option<(f64, f64)>,
    addresses: HashMap<IpAddr, Address>,
    sweep_at: usize,
}

impl AddressTable {
    /// A table enforcing `max_open` connections and `rate` (per second, burst) per address.
    pub fn new(max_open: Option<usize>, rate: Option<(u64, u64)>) -> AddressTable {
        AddressTable {
            max_open,
            rate: rate.map(|(r, b)| (r.max(1) as f64, b.max(1) as f64)),
            addresses: HashMap::new(),
            sweep_at: SWEEP_AT,
        }
    }

    /// Admits a new connection from `addr` at `now`, or says why not.
    pub fn open(&mut self, addr: IpAddr, now: Instant) -> Result<(), AddressRefusal> {
        if self.addresses.len() >= self.sweep_at {
            self.sweep(now);
        }
        let burst = self.rate.map_or(0.0, |(_, burst)| burst);
        let entry = self.addresses.entry(addr).or_insert(Address {
            open: 0,
            tokens: burst,
            refilled: now,
        });
        if self.max_open.is_some_and(|max| entry.open >= max) {
            return Err(AddressRefusal::TooManyOpen);
        }
        if let Some((per_second, burst)) = self.rate {
            let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
            entry.tokens = (entry.tokens + elapsed * per_second).min(burst);
            entry.refilled = now;
            if entry.tokens < 1.0 {
                let wait = Duration::from_secs_f64((1.0 - entry.tokens) / per_second);
                return Err(AddressRefusal::TooFast(wait));
            }
            entry.tokens -= 1.0;
        }
        entry.open += 1;
        Ok(())
    }

    /// A connection from `addr` ended.
    pub fn close(&mut self, addr: IpAddr) {
        if let Some(entry) = self.addresses.get_mut(&addr) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 && self.rate.is_none() {
                self.addresses.remove(&addr);
            }
        }
    }

    /// The most connections one address may have open (`usize::MAX`: no cap).
    pub fn max_open(&self) -> usize {
        self.max_open.unwrap_or(usize::MAX)
    }

    /// Addresses tracked now.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// True when no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// Forgets addresses with nothing open whose bucket would be full by now.
    fn sweep(&mut self, now: Instant) {
        let rate = self.rate;
        self.addresses.retain(|_, a| {
            a.open > 0
                || rate.is_some_and(|(per_second, burst)| {
                    let elapsed = now.saturating_duration_since(a.refilled).as_secs_f64();
                    a.tokens + elapsed * per_second < burst
                })
        });
        self.sweep_at = (self.addresses.len() * 2).max(SWEEP_AT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn open_connections_are_capped_per_address() {
        let mut t = AddressTable::new(Some(2), None);
        let now = Instant::now();
        assert!(t.open(A, now).is_ok());
        assert!(t.open(A, now).is_ok());
        assert_eq!(t.open(A, now), Err(AddressRefusal::TooManyOpen));
        assert!(t.open(B, now).is_ok());
        t.close(A);
        assert!(t.open(A, now).is_ok());
        t.close(A);
        t.close(A);
        t.close(B);
        assert!(t.is_empty());
    }

    #[test]
    fn new_connections_are_rate_limited_with_a_burst() {
        let mut t = AddressTable::new(None, Some((10, 3)));
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.open(A, now).is_ok());
        }
        let Err(AddressRefusal::TooFast(wait)) = t.open(A, now) else {
            panic!("a fourth at once is refused")
        };
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(t.open(A, now + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn the_table_forgets_quiet_addresses() {
        let mut t = AddressTable::new(None, Some((1000, 1)));
        let now = Instant::now();
        for i in 0..(SWEEP_AT as u32 + 10) {
            let addr = IpAddr::V4(i.into());
            assert!(t.open(addr, now).is_ok());
            t.close(addr);
        }
        // Swept once on the way, when the table reached its sweep size: nothing was quiet yet.
        assert_eq!(t.len(), SWEEP_AT + 10);
        assert!(t.open(A, now).is_ok());
        // A second later every bucket is full again: only the open one is kept.
        t.sweep(now + Duration::from_secs(1));
        assert_eq!(t.len(), 1);
    }
}
