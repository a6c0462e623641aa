//! One value per side of a relayed connection, indexed by [`Side`]: what would otherwise be a
//! pair of `client_*` / `upstream_*` fields or a `[T; 2]` with magic indices.

use std::ops::{Index, IndexMut};

use crate::Side;

/// Both sides, client first: the order every per-side loop takes.
pub(crate) const SIDES: [Side; 2] = [Side::Client, Side::Upstream];

/// A `T` for the client and a `T` for the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PerSide<T> {
    client: T,
    upstream: T,
}

impl<T> PerSide<T> {
    /// The pair of `client`'s value and `upstream`'s.
    pub(crate) fn new(client: T, upstream: T) -> PerSide<T> {
        PerSide { client, upstream }
    }

    /// The same value for both sides.
    pub(crate) fn both(value: T) -> PerSide<T>
    where
        T: Clone,
    {
        PerSide::new(value.clone(), value)
    }
}

impl<T> Index<Side> for PerSide<T> {
    type Output = T;

    fn index(&self, side: Side) -> &T {
        match side {
            Side::Client => &self.client,
            Side::Upstream => &self.upstream,
        }
    }
}

impl<T> IndexMut<Side> for PerSide<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::Client => &mut self.client,
            Side::Upstream => &mut self.upstream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_by_side() {
        let mut pair = PerSide::new("c", "u");
        assert_eq!((pair[Side::Client], pair[Side::Upstream]), ("c", "u"));
        pair[Side::Upstream] = "x";
        assert_eq!(pair, PerSide::new("c", "x"));
        assert_eq!(PerSide::both(1), PerSide::new(1, 1));
        assert_eq!(SIDES.map(|s| s.other()), [Side::Upstream, Side::Client]);
    }
}
