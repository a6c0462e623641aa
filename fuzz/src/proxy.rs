//! PROXY protocol target (issue 16): the header framing and parsing of the gateway's
//! `src/proxy_protocol/header.rs`, included here by path (the gateway crate itself is too big
//! a dependency for a fuzz target, and the module is pure: std and `ppp` only).
//!
//! `proxy_header` reads the input as a connection's byte stream, the way the gateway's reader
//! does: [`header::next`] says how much to take (an exact count, or a line up to its `\n`),
//! and it asserts:
//! - the reader is never told to take nothing, nor more than [`header::MAX_LEN`] in all, nor
//!   a v1 line past 107 bytes: the bytes taken are always a prefix of the input;
//! - framing and parsing never panic, whatever the bytes;
//! - a header that parses and carries addresses is written back by [`header::v2_header`] to a
//!   v2 header that frames to exactly its own length and parses to the same addresses;
//! - a parsed v1 header is at most 107 bytes and ends in CRLF; a v2 header is 16 bytes plus
//!   the length it announces.

#[path = "../../src/proxy_protocol/header.rs"]
#[allow(dead_code)]
mod header;

use header::{Next, ProxyHeader};

/// Frames the start of `stream` as the reader does; the header's length and its meaning, or
/// `None` where the stream is cut short or refused.
fn frame(stream: &[u8]) -> Option<(usize, ProxyHeader)> {
    let mut read = 0usize;
    // Each pass takes at least one byte, and never more than MAX_LEN in all.
    for _ in 0..=header::MAX_LEN {
        match header::next(&stream[..read]).ok()? {
            Next::Complete => {
                let parsed = header::parse(&stream[..read]).ok()?;
                return Some((read, parsed));
            }
            Next::Exact(n) => {
                assert!(n > 0, "told to read nothing");
                assert!(read + n <= header::MAX_LEN, "framed past MAX_LEN");
                if read + n > stream.len() {
                    return None;
                }
                read += n;
            }
            Next::Line(max) => {
                assert!(max > 0, "told to read an empty line");
                assert!(read + max <= header::V1_MAX_LEN, "a v1 line past 107 bytes");
                let window = &stream[read..stream.len().min(read + max)];
                if window.is_empty() {
                    return None;
                }
                let take = window
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(window.len(), |i| i + 1);
                read += take;
            }
        }
    }
    panic!("framing did not end within {} steps", header::MAX_LEN + 1);
}

/// The `proxy_header` target's body.
pub fn proxy_header(data: &[u8]) {
    let Some((len, parsed)) = frame(data) else {
        return;
    };
    assert!(len <= data.len() && len <= header::MAX_LEN);
    let bytes = &data[..len];
    match parsed.version {
        1 => assert!(len <= header::V1_MAX_LEN && bytes.ends_with(b"\r\n")),
        2 => {
            let announced = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
            assert_eq!(len, header::V2_FIXED_LEN + announced);
        }
        v => panic!("version {v}"),
    }
    if let Some(carried) = parsed.addresses {
        let written = header::v2_header(carried.source, carried.destination);
        let (again, reparsed) = frame(&written).expect("our own v2 header frames and parses");
        assert_eq!(again, written.len());
        assert_eq!(reparsed.version, 2);
        assert_eq!(reparsed.addresses, Some(carried));
    }
}
