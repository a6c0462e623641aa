//! Unit tests of picking: the policies, health, breakers, the ring's stability.

use std::sync::Arc;

use super::*;
use crate::upstream::Upstream;

fn backend(port: u16, weight: u32) -> Backend {
    let uri = format!("ws://127.0.0.1:{port}/").parse().unwrap();
    Backend::new(Upstream::new(uri).unwrap(), weight)
}

fn pool(weights: &[u32], policy: Policy) -> Arc<Pool> {
    let backends = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| backend(9000 + i as u16, w))
        .collect();
    Arc::new(Pool::new("p", backends, policy, PoolSettings::default()))
}

fn counts(pool: &Pool, picks: usize) -> Vec<usize> {
    let mut counts = vec![0; pool.backends.len()];
    for _ in 0..picks {
        counts[pool.pick(None, &[]).unwrap()] += 1;
    }
    counts
}

#[test]
fn round_robin_follows_the_weights_exactly() {
    let p = pool(&[3, 2, 1], Policy::RoundRobin);
    assert_eq!(counts(&p, 600), vec![300, 200, 100]);
    // Smooth: the heaviest does not take its three in a row.
    let order: Vec<usize> = (0..6).map(|_| p.pick(None, &[]).unwrap()).collect();
    assert!(
        order.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
        "{order:?}"
    );
}

#[test]
fn random_two_follows_the_weights_roughly() {
    let p = pool(&[3, 2, 1], Policy::RandomTwo);
    // Nothing stays open, so every pick is a weighted draw of the lighter of two.
    let c = counts(&p, 60_000);
    assert!(c[0] > c[1] && c[1] > c[2], "{c:?}");
}

#[test]
fn least_connections_takes_the_lightest_for_its_weight() {
    let p = pool(&[1, 1, 1], Policy::LeastConnections);
    let mut leases: Vec<Lease> = (0..9)
        .map(|_| p.lease(p.pick(None, &[]).unwrap()))
        .collect();
    assert!((0..3).all(|i| p.load(i) == 3));
    // Two tunnels of backend 0 end: the next two go there.
    leases.retain(|l| l.index() != 0);
    leases.push(p.lease(p.pick(None, &[]).unwrap()));
    assert_eq!(p.load(0), 1);
    let weighted = pool(&[2, 1], Policy::LeastConnections);
    let _l: Vec<Lease> = (0..30)
        .map(|_| weighted.lease(weighted.pick(None, &[]).unwrap()))
        .collect();
    assert_eq!((weighted.load(0), weighted.load(1)), (20, 10));
}

#[test]
fn a_down_backend_is_skipped_unless_all_are_down() {
    for policy in [
        Policy::LeastConnections,
        Policy::RoundRobin,
        Policy::RandomTwo,
    ] {
        let p = pool(&[1, 1, 1], policy);
        p.set_down(1, true);
        assert!(!counts(&p, 300).is_empty());
        assert_eq!(counts(&p, 300)[1], 0);
        p.set_down(0, true);
        p.set_down(2, true);
        // Everyone down: the pool serves with all of them rather than refusing.
        assert!(counts(&p, 300).iter().all(|&c| c > 0));
    }
}

#[test]
fn tried_backends_are_not_picked_again() {
    let p = pool(&[1, 1, 1], Policy::RoundRobin);
    let first = p.pick(None, &[]).unwrap();
    let second = p.pick(None, &[first]).unwrap();
    let third = p.pick(None, &[first, second]).unwrap();
    assert!(first != second && second != third && first != third);
    assert_eq!(p.pick(None, &[0, 1, 2]), Err(Unavailable::Exhausted));
}

#[test]
fn failures_in_a_row_eject_within_the_share() {
    let p = pool(&[1, 1, 1, 1], Policy::LeastConnections);
    let after = p.settings.outlier.consecutive_failures;
    for _ in 0..after {
        p.record_failure(0);
    }
    assert!(!p.is_healthy(0));
    assert_eq!(counts(&p, 100)[0], 0);
    for _ in 0..after {
        p.record_failure(1);
        p.record_failure(2);
    }
    // 50% at most: two of four.
    assert!(!p.is_healthy(1));
    assert!(p.is_healthy(2));
}

#[test]
fn caps_give_saturated() {
    let backends = vec![backend(9000, 1), backend(9001, 1)];
    let settings = PoolSettings {
        max_tunnels_per_backend: Some(1),
        ..PoolSettings::default()
    };
    let p = Arc::new(Pool::new("p", backends, Policy::LeastConnections, settings));
    let _a = p.lease(p.pick(None, &[]).unwrap());
    let _b = p.lease(p.pick(None, &[]).unwrap());
    assert_eq!(p.pick(None, &[]), Err(Unavailable::Saturated));
    let settings = PoolSettings {
        max_handshakes: Some(1),
        ..PoolSettings::default()
    };
    let q = Arc::new(Pool::new(
        "q",
        vec![backend(9000, 1)],
        Policy::RoundRobin,
        settings,
    ));
    let mut first = q.lease(q.pick(None, &[]).unwrap());
    assert_eq!(q.pick(None, &[]), Err(Unavailable::Saturated));
    first.establish();
    assert!(q.pick(None, &[]).is_ok());
}

#[test]
fn hashing_is_stable_and_removing_one_of_four_moves_only_its_keys() {
    let policy = Policy::Hash {
        key: HashKey::ClientAddress,
        balance_factor: 0.0,
    };
    let four = Arc::new(Pool::new(
        "p",
        (0..4).map(|i| backend(9000 + i, 1)).collect(),
        policy.clone(),
        PoolSettings::default(),
    ));
    // The same backends without the third (port 9002).
    let three = Arc::new(Pool::new(
        "p",
        [0, 1, 3].iter().map(|&i| backend(9000 + i, 1)).collect(),
        policy,
        PoolSettings::default(),
    ));
    let name = |p: &Pool, key: u64| p.backends[p.pick(Some(key), &[]).unwrap()].name.clone();
    let keys: Vec<u64> = (0..10_000u32)
        .map(|k| balance::hash_bytes(&k.to_le_bytes()))
        .collect();
    let mut moved = 0;
    let mut per = [0usize; 4];
    for &key in &keys {
        let before = name(&four, key);
        assert_eq!(before, name(&four, key), "stable");
        per[four.pick(Some(key), &[]).unwrap()] += 1;
        if before != name(&three, key) {
            moved += 1;
            assert!(
                before.ends_with(":9002"),
                "only the removed backend's keys move"
            );
        }
    }
    let share = moved as f64 / keys.len() as f64;
    eprintln!(
        "keys per backend {per:?}; moved {moved} of {} ({share:.3})",
        keys.len()
    );
    assert!(share <= 0.30, "{share}");
    assert!(per.iter().all(|&n| n > 1500), "{per:?}");
}

#[test]
fn bounded_load_moves_a_hot_key_off_a_full_backend() {
    let policy = Policy::Hash {
        key: HashKey::ClientAddress,
        balance_factor: 1.25,
    };
    let p = Arc::new(Pool::new(
        "p",
        (0..4).map(|i| backend(9000 + i, 1)).collect(),
        policy,
        PoolSettings::default(),
    ));
    let hot = balance::hash_bytes(b"hot");
    let leases: Vec<Lease> = (0..40)
        .map(|_| p.lease(p.pick(Some(hot), &[]).unwrap()))
        .collect();
    let most = (0..4).map(|i| p.load(i)).max().unwrap();
    // 40 tunnels over 4: none takes more than 1.25 × the average (plus one).
    assert!(most <= 13, "{most}");
    drop(leases);
}

#[test]
fn a_sticky_cookie_names_its_backend_only_when_signed() {
    let settings = PoolSettings {
        sticky: Some(Sticky::new("sid", Some(b"0123456789abcdef0123")).unwrap()),
        ..PoolSettings::default()
    };
    let p = Arc::new(Pool::new(
        "p",
        (0..3).map(|i| backend(9000 + i, 1)).collect(),
        Policy::LeastConnections,
        settings,
    ));
    let cookie = p.set_cookie(2, false).unwrap();
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("sid=")
        .unwrap();
    assert_eq!(p.sticky_index(value), Some(2));
    let forged = format!("1{}", &value[1..]);
    assert_eq!(p.sticky_index(&forged), None);
    assert_eq!(p.sticky_index("1.00"), None);
    assert_eq!(p.sticky_index("junk"), None);
}
