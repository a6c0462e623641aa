//! Criterion benches of the relay's hot path: frame header parse and encode, payload masking
//! (against the per-byte reference), streaming UTF-8 validation (against `std::str::from_utf8`)
//! and one `Forwarder::process` step over a 64 KiB buffer, with and without re-masking.
//!
//! Run: `cargo bench --bench codec` (add `-- --warm-up-time 1 --measurement-time 3` for a
//! quick pass).

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use wsrelay::codec::{
    apply_mask, apply_mask_reference, FrameHeader, OpCode, Parse, ParseConfig, Role, Utf8Validator,
    MAX_HEADER_LEN,
};
use wsrelay::relay::{Forwarder, ForwarderConfig, Remask};

const KEY: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

fn encoded(header: FrameHeader) -> Vec<u8> {
    let mut buf = [0u8; MAX_HEADER_LEN];
    header.encode(&mut buf).to_vec()
}

fn masked(header: FrameHeader) -> FrameHeader {
    FrameHeader {
        mask: Some(KEY),
        ..header
    }
}

/// Headers of each size: unmasked 7-, 16- and 64-bit lengths as an upstream sends them, and a
/// masked 64-bit one as a client sends it.
fn header_cases() -> [(&'static str, FrameHeader, Role); 4] {
    [
        ("2B", FrameHeader::new(OpCode::Binary, 100), Role::Client),
        ("4B", FrameHeader::new(OpCode::Binary, 1000), Role::Client),
        (
            "10B",
            FrameHeader::new(OpCode::Binary, 1 << 20),
            Role::Client,
        ),
        (
            "14B_masked",
            masked(FrameHeader::new(OpCode::Binary, 1 << 20)),
            Role::Server,
        ),
    ]
}

fn header(c: &mut Criterion) {
    let mut group = c.benchmark_group("header_parse");
    for (name, header, role) in header_cases() {
        let bytes = encoded(header);
        let config = ParseConfig::new(role);
        // The result is used as the relay uses it (payload length and header length), so the
        // bench measures parsing rather than moving the whole `Result` out of the closure.
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
    group.finish();

    let mut group = c.benchmark_group("header_encode");
    for (name, header, _) in header_cases() {
        let mut buf = [0u8; MAX_HEADER_LEN];
        group.bench_function(name, |b| {
            b.iter(|| black_box(black_box(header).encode(&mut buf)).len())
        });
    }
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_mask");
    for size in [16usize, 1024, 64 * 1024, 1 << 20] {
        let mut buf = vec![0x5A_u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("offset0", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), black_box(0)))
        });
        if size >= 64 * 1024 {
            // A chunk that starts mid-payload, where the key must be rotated.
            group.bench_with_input(BenchmarkId::new("offset3", size), &size, |b, _| {
                b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), black_box(3)))
            });
        }
    }
    let mut buf = vec![0x5A_u8; 64 * 1024];
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("reference/65536", |b| {
        b.iter(|| apply_mask_reference(black_box(&mut buf), black_box(KEY), black_box(0)))
    });
    group.finish();
}

/// `len` bytes of whole characters cycled from `text` (a little short of `len` if a character
/// would not fit).
fn text_of(text: &str, len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(len);
    for ch in text.chars().cycle() {
        if out.len() + ch.len_utf8() > len {
            break;
        }
        out.push(ch);
    }
    out.into_bytes()
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let ascii = text_of("The quick brown fox jumps over the lazy dog. ", 64 * 1024);
    // Latin with accents, Greek, Cyrillic, CJK and emoji: 1- to 4-byte characters.
    let mixed = text_of(
        "Grüße, naïve café! Καλημέρα κόσμε. Привет, мир. 你好，世界。こんにちは 😀🚀🎉 ",
        64 * 1024,
    );
    for (name, bytes) in [("ascii", &ascii), ("mixed", &mixed)] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        // 4 KiB chunks split characters at their edges, as reads from a socket do.
        group.bench_function(format!("validator_4k_chunks/{name}"), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for chunk in black_box(bytes.as_slice()).chunks(4096) {
                    v.feed(chunk).expect("valid text");
                }
                v.finish().expect("valid text")
            })
        });
        group.bench_function(format!("std_from_utf8/{name}"), |b| {
            b.iter(|| std::str::from_utf8(black_box(bytes.as_slice())).is_ok())
        });
    }
    group.finish();
}

fn relay_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay_step");
    // 64 KiB of 32-byte binary frames from an upstream (2-byte headers).
    let frame = [encoded(FrameHeader::new(OpCode::Binary, 32)), vec![7; 32]].concat();
    let small: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(64 * 1024 / frame.len() * frame.len())
        .collect();
    let step = Forwarder::new(ForwarderConfig::new(Role::Client)).process(&small);
    assert_eq!(step.forward, small.len(), "{step:?}");
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("small_binary_frames_64k", |b| {
        b.iter(|| {
            let mut f = Forwarder::new(ForwarderConfig::new(Role::Client));
            f.process(black_box(&small))
        })
    });

    // One masked 64 KiB text frame from a client, with UTF-8 checking on and off.
    let mut payload = text_of("relay κόσμε 😀 ", 64 * 1024);
    let header = masked(FrameHeader::new(OpCode::Text, payload.len() as u64));
    apply_mask(&mut payload, KEY, 0);
    let big = [encoded(header), payload].concat();
    group.throughput(Throughput::Bytes(big.len() as u64));
    for validate_utf8 in [true, false] {
        let name = if validate_utf8 {
            "masked_text_64k/utf8_on"
        } else {
            "masked_text_64k/utf8_off"
        };
        let config = ForwarderConfig {
            validate_utf8,
            ..ForwarderConfig::new(Role::Server)
        };
        let step = Forwarder::new(config).process(&big);
        assert_eq!(step.forward, big.len(), "{step:?}");
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut f = Forwarder::new(config);
                f.process(black_box(&big))
            })
        });
    }
    group.finish();
}

/// Re-masking (`Forwarder::process_mut`): `auto` on a browser's traffic (a random key per
/// frame, nothing re-masked) against `never`, and `always` on a 64 KiB frame against one
/// `apply_mask` pass over the same bytes. Each iteration gets a fresh copy of the input (not
/// timed), since re-masking rewrites it.
fn remask(c: &mut Criterion) {
    let mut group = c.benchmark_group("remask");
    // 64 KiB of 32-byte binary frames from a client, each with its own random key.
    let mut small = Vec::new();
    while small.len() + 38 <= 64 * 1024 {
        let key = wsrelay::codec::random::masking_key().expect("random key");
        let header = FrameHeader {
            mask: Some(key),
            ..FrameHeader::new(OpCode::Binary, 32)
        };
        let mut payload = [7u8; 32];
        apply_mask(&mut payload, key, 0);
        small.extend_from_slice(&encoded(header));
        small.extend_from_slice(&payload);
    }
    let config = |remask| ForwarderConfig {
        remask,
        ..ForwarderConfig::new(Role::Server)
    };
    group.throughput(Throughput::Bytes(small.len() as u64));
    for (name, mode) in [("never", Remask::Never), ("auto", Remask::Auto)] {
        let mut check = small.clone();
        let step = Forwarder::new(config(mode)).process_mut(&mut check);
        assert_eq!((step.forward, step.remasked), (small.len(), 0), "{step:?}");
        group.bench_function(format!("random_keys_32b_frames_64k/{name}"), |b| {
            b.iter_batched_ref(
                || small.clone(),
                |input| Forwarder::new(config(mode)).process_mut(black_box(input)),
                BatchSize::SmallInput,
            )
        });
    }

    // One masked 64 KiB binary frame.
    let mut payload = vec![0x5a_u8; 64 * 1024];
    apply_mask(&mut payload, KEY, 0);
    let big = [
        encoded(masked(FrameHeader::new(
            OpCode::Binary,
            payload.len() as u64,
        ))),
        payload.clone(),
    ]
    .concat();
    group.throughput(Throughput::Bytes(big.len() as u64));
    for (name, mode) in [("never", Remask::Never), ("always", Remask::Always)] {
        group.bench_function(format!("binary_frame_64k/{name}"), |b| {
            b.iter_batched_ref(
                || big.clone(),
                |input| Forwarder::new(config(mode)).process_mut(black_box(input)),
                BatchSize::SmallInput,
            )
        });
    }
    group.bench_function("binary_frame_64k/apply_mask_only", |b| {
        b.iter_batched_ref(
            || payload.clone(),
            |input| apply_mask(black_box(input), [1, 2, 3, 4], 0),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, header, mask, utf8, relay_step, remask);
criterion_main!(benches);
