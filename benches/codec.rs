//! Hot-path benches: header parse and encode, masking, UTF-8 validation, one relay step.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsrelay::codec::{
    apply_mask, apply_mask_reference, FrameHeader, OpCode, Parse, ParseConfig, Role, Utf8Validator,
    MAX_HEADER_LEN,
};
use wsrelay::relay::{Forwarder, ForwarderConfig};

fn encoded(header: FrameHeader) -> Vec<u8> {
    let mut buf = [0u8; MAX_HEADER_LEN];
    header.encode(&mut buf).to_vec()
}

fn header_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("header_parse");
    let masked = |h: FrameHeader| FrameHeader {
        mask: Some([1, 2, 3, 4]),
        ..h
    };
    let cases = [
        (
            "2B",
            encoded(FrameHeader::new(OpCode::Binary, 100)),
            Role::Client,
        ),
        (
            "4B",
            encoded(FrameHeader::new(OpCode::Binary, 1000)),
            Role::Client,
        ),
        (
            "10B",
            encoded(FrameHeader::new(OpCode::Binary, 1 << 20)),
            Role::Client,
        ),
        (
            "14B",
            encoded(masked(FrameHeader::new(OpCode::Binary, 1 << 20))),
            Role::Server,
        ),
    ];
    for (name, bytes, role) in cases {
        let config = ParseConfig::new(role);
        // The result is consumed as the relay does (payload and header length), so the bench
        // measures parsing, not criterion storing a 32-byte enum per iteration.
        group.bench_function(name, |b| {
            b.iter(
                || match FrameHeader::parse(black_box(&bytes), black_box(config)) {
                    Ok(Parse::Complete(h, n)) => h.payload_len + n as u64,
                    Ok(Parse::Incomplete(n)) => n as u64,
                    Err(_) => u64::MAX,
                },
            )
        });
    }
    group.bench_function("encode_10B", |b| {
        let header = FrameHeader::new(OpCode::Binary, 1 << 20);
        let mut buf = [0u8; MAX_HEADER_LEN];
        b.iter(|| black_box(black_box(header).encode(&mut buf).len()))
    });
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_mask");
    for size in [16usize, 1024, 64 * 1024, 1 << 20] {
        let mut buf = vec![0x5a_u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("fast", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box([1, 2, 3, 4]), black_box(3)))
        });
    }
    let mut buf = vec![0x5a_u8; 64 * 1024];
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("reference/65536", |b| {
        b.iter(|| apply_mask_reference(black_box(&mut buf), black_box([1, 2, 3, 4]), 3))
    });
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let ascii: Vec<u8> = "The quick brown fox jumps over the lazy dog. "
        .bytes()
        .cycle()
        .take(64 * 1024)
        .collect();
    let mixed_text = "wsrelay Ελληνικά 中文字符 русский 😀 ".repeat(64 * 1024 / 40);
    let mixed = mixed_text.as_bytes();
    for (name, bytes) in [("ascii", ascii.as_slice()), ("mixed", mixed)] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("stream_4k/{name}"), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for chunk in black_box(bytes).chunks(4096) {
                    v.feed(chunk).unwrap();
                }
                v.finish().unwrap();
            })
        });
        group.bench_function(format!("std/{name}"), |b| {
            b.iter(|| std::str::from_utf8(black_box(bytes)).is_ok())
        });
    }
    group.finish();
}

fn relay_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay_step");
    // 64 KiB of 32-byte binary frames from an upstream.
    let small: Vec<u8> = (0..64 * 1024 / 34)
        .flat_map(|_| [encoded(FrameHeader::new(OpCode::Binary, 32)), vec![7; 32]].concat())
        .collect();
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("small_frames_64k", |b| {
        b.iter(|| {
            let mut f = Forwarder::new(ForwarderConfig::new(Role::Client));
            black_box(f.process(black_box(&small)))
        })
    });
    // One masked 64 KiB text frame from a client, validated and not.
    let key = [9, 8, 7, 6];
    let mut payload = b"relay ".repeat(64 * 1024 / 6);
    let header = FrameHeader {
        mask: Some(key),
        ..FrameHeader::new(OpCode::Text, payload.len() as u64)
    };
    apply_mask(&mut payload, key, 0);
    let big = [encoded(header), payload].concat();
    group.throughput(Throughput::Bytes(big.len() as u64));
    for validate in [false, true] {
        let name = if validate {
            "text_64k_utf8"
        } else {
            "text_64k_passthrough"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let config = ForwarderConfig {
                    validate_utf8: validate,
                    ..ForwarderConfig::new(Role::Server)
                };
                let mut f = Forwarder::new(config);
                black_box(f.process(black_box(&big)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, header_parse, mask, utf8, relay_step);
criterion_main!(benches);
