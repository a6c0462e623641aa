//! Backend selection: one pick from a pool of 100 backends, for every policy, with tunnels
//! open on them (so least connections and the load bound compare real counts).

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use wsrelay::handshake::{Limits, Parsed, RequestHead};
use wsrelay::pool::{balance, Backend, HashKey, Lease, Policy, Pool, PoolSettings, Sticky};
use wsrelay::request::{ClientRequest, Peer};
use wsrelay::upstream::Upstream;

/// Backends in the benched pool.
const BACKENDS: u16 = 100;

fn pool(policy: Policy, settings: PoolSettings) -> Arc<Pool> {
    let backends = (0..BACKENDS)
        .map(|i| {
            let uri = format!("ws://10.0.{}.{}:9000/", i / 250, i % 250 + 1);
            Backend::new(
                Upstream::new(uri.parse().unwrap()).unwrap(),
                1 + u32::from(i % 3),
            )
        })
        .collect();
    Arc::new(Pool::new("bench", backends, policy, settings))
}

/// Opens 0 to 19 tunnels on each backend, kept for the bench's duration.
fn load(pool: &Arc<Pool>) -> Vec<Lease> {
    let mut leases = Vec::new();
    for i in 0..pool.backends.len() {
        for _ in 0..(i * 7) % 20 {
            let mut lease = pool.lease(i);
            lease.establish();
            leases.push(lease);
        }
    }
    leases
}

fn selection(c: &mut Criterion) {
    // The floor, in the same run: reading one counter of each of 100 backends.
    let counters: Vec<std::sync::atomic::AtomicUsize> =
        (0..100).map(std::sync::atomic::AtomicUsize::new).collect();
    c.bench_function("pool/baseline/read_100_counters", |b| {
        b.iter(|| {
            black_box(&counters)
                .iter()
                .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
                .sum::<usize>()
        })
    });

    let key = balance::hash_bytes(b"user-4711");
    let hash = Policy::Hash {
        key: HashKey::Header("X-User".into()),
        balance_factor: 1.25,
    };
    for (name, policy) in [
        ("least_connections", Policy::LeastConnections),
        ("round_robin", Policy::RoundRobin),
        ("random_two", Policy::RandomTwo),
        ("hash", hash),
    ] {
        let p = pool(policy, PoolSettings::default());
        let _open = load(&p);
        c.bench_function(&format!("pool/pick_of_100/{name}"), |b| {
            b.iter(|| p.pick(black_box(Some(key)), &[]).unwrap())
        });
    }

    // The sticky cookie: the request's cookie read, its tag checked, its backend's health.
    let settings = PoolSettings {
        sticky: Some(Sticky::new("wsb", Some(b"bench key of some length")).unwrap()),
        ..PoolSettings::default()
    };
    let p = pool(Policy::LeastConnections, settings);
    let _open = load(&p);
    let cookie = p.set_cookie(42, false).unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let text = format!(
        "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\
         Cookie: theme=dark; {cookie}\r\n\r\n"
    );
    let Ok(Parsed::Complete { value: head, .. }) =
        RequestHead::parse(text.as_bytes(), &Limits::default())
    else {
        panic!("the bench's request parses")
    };
    let request = ClientRequest::new(head, Peer::plain("127.0.0.1:5000".parse().unwrap())).unwrap();
    assert_eq!(p.sticky_choice(&request), Some(42));
    c.bench_function("pool/pick_of_100/sticky_cookie", |b| {
        b.iter(|| p.sticky_choice(black_box(&request)).unwrap())
    });
}

criterion_group!(benches, selection);
criterion_main!(benches);
