//! The descriptor limit: raised to its hard maximum at start, and the connection budget it
//! leaves (each relayed connection holds two descriptors, the client's and the upstream's).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The process's descriptor limit: soft (what applies) and hard (what it may be raised to);
/// `None` for unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The limit that applies.
    pub soft: Option<u64>,
    /// The most the soft limit may be raised to.
    pub hard: Option<u64>,
}

/// The current descriptor limit.
pub fn descriptor_limit() -> DescriptorLimit {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    DescriptorLimit {
        soft: current,
        hard: maximum,
    }
}

/// Raises the soft descriptor limit to the hard one (as nginx's `worker_rlimit_nofile` would
/// by hand), so the gateway is limited by what the administrator allowed, not by a default
/// soft limit of 1024. Returns the limit before and after; a refusal leaves it as it was.
pub fn raise_descriptor_limit() -> (DescriptorLimit, DescriptorLimit) {
    let before = descriptor_limit();
    if before.soft != before.hard {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: before.hard,
                maximum: before.hard,
            },
        );
    }
    (before, descriptor_limit())
}

/// Descriptors open in this process now (from `/proc/self/fd`; `None` where that is missing).
pub fn open_descriptors() -> Option<usize> {
    // Minus one: the directory handle that reads it.
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1))
}

/// The connections a descriptor limit allows: two descriptors each, after those open now and
/// `reserved` more are set aside. At least 1. `None` when the limit is unlimited.
pub fn connection_budget(limit: DescriptorLimit, open: usize, reserved: usize) -> Option<usize> {
    let soft = usize::try_from(limit.soft?).unwrap_or(usize::MAX);
    Some((soft.saturating_sub(open).saturating_sub(reserved) / 2).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_room_for_the_upstream_side_and_the_reserve() {
        let limit = DescriptorLimit {
            soft: Some(1024),
            hard: Some(1024),
        };
        assert_eq!(connection_budget(limit, 20, 64), Some(470));
        assert_eq!(connection_budget(limit, 2000, 64), Some(1));
        let unlimited = DescriptorLimit {
            soft: None,
            hard: None,
        };
        assert_eq!(connection_budget(unlimited, 20, 64), None);
    }

    #[test]
    fn raising_keeps_the_hard_limit_and_counts_open_descriptors() {
        let (_, after) = raise_descriptor_limit();
        assert_eq!(after.soft, after.hard);
        assert!(open_descriptors().is_some_and(|n| n >= 3));
    }
}
