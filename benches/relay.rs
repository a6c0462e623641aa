//! Criterion benches of a whole relay over in-memory pipes: a client sends 4 MiB of binary
//! frames through the relay to an upstream that reads them, and the time to deliver them all is
//! measured. The pipes are tokio's `duplex`, so the numbers are the relay's own cost plus the
//! pipes', with no kernel in between.
//!
//! Variants, each measured in the same run: `pass_through` (no hook: the plain relay),
//! `noop_hook` (a hook that forwards every frame: the cost of unmasking and showing each frame)
//! and `noop_hook_aggregated` (the same with whole messages), and `live_traffic` (the plain relay
//! publishing its counts for metrics, as the gateway's relays do with an admin listener).
//!
//! Run: `cargo bench --bench relay -- --warm-up-time 1 --measurement-time 3`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
use wsrelay::codec::{apply_mask, FrameHeader, OpCode, MAX_HEADER_LEN};
use wsrelay::relay::{Frame, LiveTraffic, Relay, RelayOptions, Verdict};

const KEY: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];
const TOTAL: usize = 4 << 20;

/// `TOTAL` bytes of masked binary frames of `size` payload bytes each, as a client sends them.
fn client_stream(size: usize) -> Vec<u8> {
    let header = FrameHeader {
        mask: Some(KEY),
        ..FrameHeader::new(OpCode::Binary, size as u64)
    };
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let mut frame = header.encode(&mut hbuf).to_vec();
    let mut payload = vec![0x5Au8; size];
    apply_mask(&mut payload, KEY, 0);
    frame.extend_from_slice(&payload);
    frame
        .iter()
        .copied()
        .cycle()
        .take(TOTAL / size * frame.len())
        .collect()
}

/// Relays `wire` from a client to an upstream and waits until the upstream has all of it.
/// `build` turns the plain relay into the variant under test (with or without a hook).
async fn relay_once<F, Fut>(wire: &[u8], run: F)
where
    F: FnOnce(tokio::io::DuplexStream, tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (mut client, client_side) = duplex(256 * 1024);
    let (mut upstream, upstream_side) = duplex(256 * 1024);
    let relay = tokio::spawn(run(client_side, upstream_side));
    let reader = async {
        let mut sink = vec![0u8; 256 * 1024];
        let mut got = 0;
        while got < wire.len() {
            got += upstream.read(&mut sink).await.expect("read");
        }
        upstream
    };
    let writer = async {
        client.write_all(wire).await.expect("write");
        client
    };
    let (upstream, client) = tokio::join!(reader, writer);
    drop((client, upstream));
    relay.await.expect("relay task");
}

fn relay_throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("relay_4MiB");
    for size in [32usize, 16 * 1024] {
        let wire = client_stream(size);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(format!("frames_{size}/pass_through"), |b| {
            b.iter(|| {
                rt.block_on(relay_once(&wire, |c, u| async move {
                    Relay::new(c, u, &RelayOptions::default()).run().await;
                }))
            })
        });
        // What metrics add to a relay: its counts published into per-connection live counters
        // once per wake-up (the gateway's case when it has an admin listener).
        group.bench_function(format!("frames_{size}/live_traffic"), |b| {
            b.iter(|| {
                rt.block_on(relay_once(&wire, |c, u| async move {
                    Relay::new(c, u, &RelayOptions::default())
                        .with_live_traffic(Arc::new(LiveTraffic::default()))
                        .run()
                        .await;
                }))
            })
        });
        for (name, aggregate_fragments) in [("noop_hook", false), ("noop_hook_aggregated", true)] {
            let options = RelayOptions {
                aggregate_fragments,
                ..RelayOptions::default()
            };
            group.bench_function(format!("frames_{size}/{name}"), |b| {
                b.iter(|| {
                    let options = options.clone();
                    rt.block_on(relay_once(&wire, |c, u| async move {
                        Relay::new(c, u, &options)
                            .with_hook(|_: &mut Frame<'_>| Verdict::Forward)
                            .run()
                            .await;
                    }))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, relay_throughput);
criterion_main!(benches);
