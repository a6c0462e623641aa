//! Runs the fuzz targets' bodies in ordinary `cargo test`: over the checked-in seed corpus and
//! over a few hundred deterministic pseudo-random inputs per target, so CI exercises them.

#[path = "../fuzz/src/codec.rs"]
mod codec;
#[path = "../fuzz/src/handshake.rs"]
mod handshake;
#[path = "../fuzz/src/relay.rs"]
mod relay;

use std::path::Path;

/// xorshift64*: a dependency-free deterministic byte source.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
    }

    fn fill(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next()).collect()
    }
}

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        body(&data);
        // Every prefix too: truncated input is the common case on a network.
        for cut in 0..data.len().min(256) {
            body(&data[..cut]);
        }
        seeds += 1;
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
    let mut rng = Bytes(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    for i in 0..400 {
        let len = usize::from(rng.next()) + i % 64;
        body(&rng.fill(len));
    }
}

#[test]
fn frame_header_corpus() {
    replay("frame_header", codec::frame_header);
}

#[test]
fn utf8_stream_corpus() {
    replay("utf8_stream", codec::utf8_stream);
}

#[test]
fn handshake_request_corpus() {
    replay("handshake_request", handshake::handshake_request);
}

#[test]
fn handshake_response_corpus() {
    replay("handshake_response", handshake::handshake_response);
}

#[test]
fn relay_corpus() {
    replay("relay", relay::relay_forwarder);
}
