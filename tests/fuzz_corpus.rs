//! Runs the fuzz targets' bodies (`fuzz/src/`) in ordinary `cargo test`, so CI exercises their
//! invariants without cargo-fuzz: every file in `fuzz/corpus/<target>/` (the checked-in seeds,
//! and every prefix of each, plus whatever a local fuzzing run left there), then a few hundred
//! deterministic pseudo-random inputs per target, both raw bytes and inputs shaped like the
//! target's input (valid headers, mostly valid text, frame streams), which reach deeper.

#[path = "../fuzz/src/codec.rs"]
mod codec;
#[path = "../fuzz/src/edge.rs"]
mod edge;
#[path = "../fuzz/src/handshake.rs"]
mod handshake;
#[path = "../fuzz/src/proxy.rs"]
mod proxy;
#[path = "../fuzz/src/relay.rs"]
mod relay;

use std::path::Path;

/// xorshift64*: a dependency-free deterministic byte source.
struct Rng(u64);

impl Rng {
    fn new(seed: &str) -> Rng {
        // FNV-1a of the target name, so each target gets its own sequence.
        let hash = seed.bytes().fold(0xCBF2_9CE4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
        });
        Rng(hash | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() >> 32) as usize % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Runs `body` over every file in the target's corpus directory and every prefix of each.
fn replay_corpus(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        body(&data);
        // Every prefix of a seed too: a stream cut anywhere is the common case on a network.
        let is_seed = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"));
        if is_seed {
            for cut in 0..data.len().min(512) {
                body(&data[..cut]);
            }
        }
        files += 1;
    }
    assert!(files >= 1, "no corpus files in {}", dir.display());
}

/// Runs `body` over raw pseudo-random inputs and inputs from `shaped`.
fn replay_random(target: &str, body: fn(&[u8]), shaped: fn(&mut Rng) -> Vec<u8>) {
    let mut rng = Rng::new(target);
    for i in 0..300 {
        let len = rng.below(64) + if i % 10 == 0 { 512 } else { 0 };
        body(&rng.bytes(len));
    }
    for _ in 0..1000 {
        body(&shaped(&mut rng));
    }
}

/// Encodes a frame with random fields: usually valid, sometimes with a bit flipped.
fn random_frame(rng: &mut Rng, masked: bool, opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![u8::from(fin) << 7 | opcode];
    let bit = if masked { 0x80 } else { 0 };
    if len <= 125 {
        out.push(bit | len as u8);
    } else if len <= 0xFFFF {
        out.push(bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        let key = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Lengths at the edges of the 7-, 16- and 64-bit encodings and of the top-bit rule.
const EDGE_LENGTHS: [u64; 12] = [
    0,
    1,
    125,
    126,
    127,
    0xFFFE,
    0xFFFF,
    0x1_0000,
    1 << 40,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX,
];

/// A header's first bytes with `len` written in the 7-bit (0), 16-bit (1) or 64-bit (2) field,
/// whether or not that width is the minimal one.
fn header_bytes(b0: u8, masked: bool, len: u64, width: usize) -> Vec<u8> {
    let bit = if masked { 0x80 } else { 0 };
    let mut out = vec![b0];
    match width {
        0 => out.push(bit | (len & 0x7F) as u8),
        1 => {
            out.push(bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&[0x37, 0xFA, 0x21, 0x3D]);
    }
    out
}

/// Every combination of opcode, FIN, RSV bits, mask bit, edge length and length width.
fn edge_headers() -> impl Iterator<Item = Vec<u8>> {
    let opcodes = [0u8, 1, 2, 3, 8, 9, 10, 11];
    opcodes.into_iter().flat_map(|opcode| {
        [0u8, 0x80].into_iter().flat_map(move |fin| {
            [0u8, 0x40, 0x20].into_iter().flat_map(move |rsv| {
                [false, true].into_iter().flat_map(move |masked| {
                    EDGE_LENGTHS.into_iter().flat_map(move |len| {
                        (0..3)
                            .map(move |width| header_bytes(fin | rsv | opcode, masked, len, width))
                    })
                })
            })
        })
    })
}

/// A header with random fields and an edge length, in its minimal width or (half the time) any,
/// then some bytes, possibly cut short or with a bit flipped.
fn shaped_header(rng: &mut Rng) -> Vec<u8> {
    // Mostly bits a parser accepts, so the length rules get tested.
    let flags = if rng.below(4) == 0 {
        rng.byte()
    } else {
        rng.byte() & 0xC0
    };
    let opcode = *rng.pick(&[0, 1, 2, 0, 1, 2, 8, 9, 10, 3, 11]);
    let len = *rng.pick(&EDGE_LENGTHS);
    let width = if rng.below(2) == 0 {
        rng.below(3)
    } else {
        match len {
            0..=125 => 0,
            126..=0xFFFF => 1,
            _ => 2,
        }
    };
    let mut out = header_bytes(flags & 0xF0 | opcode, rng.below(2) == 0, len, width);
    let tail = rng.below(8);
    out.extend(rng.bytes(tail));
    if rng.below(4) == 0 {
        out.truncate(rng.below(out.len() + 1));
    }
    if rng.below(4) == 0 && !out.is_empty() {
        let at = rng.below(out.len());
        out[at] ^= 1 << rng.below(8);
    }
    out
}

/// Text from a mix of 1- to 4-byte characters, sometimes with a stray byte, behind 0-3 cuts.
fn shaped_text(rng: &mut Rng) -> Vec<u8> {
    // Characters of every length, and the code points at the edges of each length and of the
    // surrogate gap.
    let pieces = [
        "a",
        " ",
        "\u{7F}",
        "é",
        "\u{80}",
        "\u{7FF}",
        "κ",
        "\u{800}",
        "€",
        "中",
        "\u{D7FF}",
        "\u{E000}",
        "\u{FFFD}",
        "\u{FFFF}",
        "\u{10000}",
        "😀",
        "𝄞",
        "\u{10FFFF}",
    ];
    let mut text = Vec::new();
    for _ in 0..rng.below(40) {
        text.extend_from_slice(rng.pick(&pieces).as_bytes());
    }
    if rng.below(2) == 0 {
        let junk = *rng.pick(&[
            0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
        ]);
        let at = rng.below(text.len() + 1);
        text.insert(at, junk);
    }
    if rng.below(4) == 0 {
        text.truncate(rng.below(text.len() + 1));
    }
    let cuts = rng.below(4);
    let mut out = vec![cuts as u8];
    out.extend(rng.bytes(cuts));
    out.extend(text);
    out
}

/// A relay input: random knobs and chunk sizes, then a stream of mostly well-formed frames for
/// the chosen role (fragments, interleaved pings, text, a close), sometimes with a byte changed.
fn shaped_stream(rng: &mut Rng) -> Vec<u8> {
    let knobs = rng.byte();
    let masked = knobs & 1 == 0;
    let sizes = rng.below(4) + 1;
    let mut out = vec![knobs, (sizes - 1) as u8];
    for _ in 0..sizes {
        out.push(*rng.pick(&[0, 1, 2, 3, 7, 13, 64, 200]));
    }
    let mut open = false;
    for _ in 0..rng.below(8) {
        let payload_len = *rng.pick(&[0, 1, 5, 30, 125, 126, 300]);
        let text = "ab κ€😀".repeat(payload_len / 10 + 1);
        let payload = &text.as_bytes()[..payload_len];
        let (opcode, fin) = match rng.below(6) {
            0 => (9, true),
            1 if payload_len <= 125 => (8, true),
            _ if open => (0, rng.below(2) == 0),
            _ => (*rng.pick(&[1, 2]), rng.below(2) == 0),
        };
        if opcode == 8 {
            let code: u16 = *rng.pick(&[1000, 1001, 1005, 3000, 4999, 5000]);
            let mut close = code.to_be_bytes().to_vec();
            close.extend_from_slice(&payload[..payload_len.min(20)]);
            out.extend(random_frame(rng, masked, 8, true, &close));
            break;
        }
        let payload = if opcode == 9 {
            &payload[..payload_len.min(125)]
        } else {
            payload
        };
        out.extend(random_frame(rng, masked, opcode, fin, payload));
        if opcode != 9 {
            open = !fin;
        }
    }
    if rng.below(3) == 0 && out.len() > 2 {
        let at = 2 + rng.below(out.len() - 2);
        out[at] ^= 1 << rng.below(8);
    }
    if rng.below(3) == 0 {
        out.truncate(rng.below(out.len() + 1));
    }
    out
}

/// Handshake inputs: a plausible HTTP head with random damage.
fn shaped_http(rng: &mut Rng) -> Vec<u8> {
    let heads: [&[u8]; 2] = [
        b"GET /chat HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    ];
    let mut out = rng.pick(&heads).to_vec();
    for _ in 0..rng.below(3) {
        let at = rng.below(out.len());
        out[at] = rng.byte();
    }
    if rng.below(3) == 0 {
        out.truncate(rng.below(out.len() + 1));
    }
    out
}

#[test]
fn frame_header_corpus() {
    replay_corpus("frame_header", codec::frame_header);
    replay_random("frame_header", codec::frame_header, shaped_header);
    for header in edge_headers() {
        codec::frame_header(&header);
    }
}

#[test]
fn utf8_stream_corpus() {
    replay_corpus("utf8_stream", codec::utf8_stream);
    replay_random("utf8_stream", codec::utf8_stream, shaped_text);
}

#[test]
fn handshake_request_corpus() {
    replay_corpus("handshake_request", handshake::handshake_request);
    replay_random(
        "handshake_request",
        handshake::handshake_request,
        shaped_http,
    );
}

#[test]
fn handshake_response_corpus() {
    replay_corpus("handshake_response", handshake::handshake_response);
    replay_random(
        "handshake_response",
        handshake::handshake_response,
        shaped_http,
    );
}

#[test]
fn relay_corpus() {
    replay_corpus("relay", relay::relay_forwarder);
    replay_random("relay", relay::relay_forwarder, shaped_stream);
}

/// A request target built from the pieces that matter to canonical form.
fn shaped_target(rng: &mut Rng) -> Vec<u8> {
    let pieces: [&[u8]; 14] = [
        b"/", b"/", b".", b"..", b"a", b"bc", b"%2e", b"%2E%2e", b"%41", b"%2F", b"%5c", b"%",
        b"?q=/..", b"%zz",
    ];
    let mut out = vec![rng.byte(), b'/'];
    for _ in 0..rng.below(12) {
        let piece: &&[u8] = rng.pick(&pieces);
        out.extend_from_slice(piece);
    }
    out
}

/// A Host value from name, address and port pieces.
fn shaped_host(rng: &mut Rng) -> Vec<u8> {
    let pieces: [&[u8]; 12] = [
        b"a", b"Ex", b".", b"-", b"_", b"1", b"255", b":", b"80", b"[", b"]", b"::1",
    ];
    let mut out = Vec::new();
    for _ in 0..rng.below(10) {
        let piece: &&[u8] = rng.pick(&pieces);
        out.extend_from_slice(piece);
    }
    out
}

#[test]
fn request_target_corpus() {
    replay_corpus("request_target", edge::request_target);
    replay_random("request_target", edge::request_target, shaped_target);
}

#[test]
fn host_corpus() {
    replay_corpus("host", edge::host);
    replay_random("host", edge::host, shaped_host);
}

/// A PROXY header, v1 or v2, with random addresses, sometimes a TLV, sometimes a few bytes
/// changed or cut, and what follows it on the connection.
fn shaped_proxy_header(rng: &mut Rng) -> Vec<u8> {
    let mut out = if rng.below(2) == 0 {
        let [a, b, c, d] = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
        let family = *rng.pick(&["TCP4", "TCP6", "UNKNOWN", "TCP5"]);
        let (src, dst) = match family {
            "TCP6" => (format!("2001:db8::{a:x}"), format!("::ffff:{b}.{c}.{d}.1")),
            _ => (format!("{a}.{b}.{c}.{d}"), format!("{d}.{c}.{b}.{a}")),
        };
        let ports = [rng.next_u64() % 70_000, rng.next_u64() % 70_000];
        format!("PROXY {family} {src} {dst} {} {}\r\n", ports[0], ports[1]).into_bytes()
    } else {
        let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        let command = *rng.pick(&[0x20u8, 0x21, 0x22, 0x11]);
        let family = *rng.pick(&[0x00u8, 0x11, 0x21, 0x31, 0x12, 0x41]);
        let addresses = match family >> 4 {
            1 => 12,
            2 => 36,
            3 => 216,
            _ => rng.below(8),
        };
        let mut body = rng.bytes(addresses);
        if rng.below(3) == 0 {
            let len = rng.below(6);
            let value = rng.bytes(len);
            body.extend_from_slice(&[rng.byte(), 0, value.len() as u8]);
            body.extend_from_slice(&value);
        }
        out.extend_from_slice(&[command, family]);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        out
    };
    for _ in 0..rng.below(3) {
        let at = rng.below(out.len());
        out[at] = rng.byte();
    }
    if rng.below(4) == 0 {
        out.truncate(rng.below(out.len() + 1));
    }
    out.extend_from_slice(b"GET / HTTP/1.1\r\n");
    out
}

#[test]
fn proxy_header_corpus() {
    replay_corpus("proxy_header", proxy::proxy_header);
    replay_random("proxy_header", proxy::proxy_header, shaped_proxy_header);
}
