//! Unit tests of the header module (kept out of it: the fuzz crate includes that file).

use std::net::SocketAddr;

use super::header::*;

/// Frames `stream` as the reader does (one byte at a time where it may read a line) and
/// parses the header; returns it and how many bytes it took.
fn frame(stream: &[u8]) -> Result<(ProxyHeader, usize), HeaderError> {
    let mut read = 0;
    loop {
        match next(&stream[..read])? {
            Next::Complete => return parse(&stream[..read]).map(|h| (h, read)),
            Next::Exact(n) if read + n <= stream.len() => read += n,
            Next::Line(_) if read < stream.len() => read += 1,
            _ => return Err(HeaderError::Malformed("cut short".into())),
        }
    }
}

#[test]
fn v1_headers_are_read_to_their_line_end_and_no_further() {
    let stream = b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 443\r\nGET / HTTP/1.1\r\n";
    let (header, len) = frame(stream).unwrap();
    assert_eq!(&stream[len..], b"GET / HTTP/1.1\r\n");
    let carried = header.addresses.unwrap();
    assert_eq!(carried.source, "192.0.2.7:51234".parse().unwrap());
    assert_eq!(carried.destination, "198.51.100.1:443".parse().unwrap());
    let stream = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
    assert_eq!(header.version, 1);
    let (header, _) = frame(stream).unwrap();
    assert_eq!(
        header.addresses.unwrap().source,
        "[2001:db8::1]:1".parse().unwrap()
    );
    let (header, len) = frame(b"PROXY UNKNOWN\r\n\x16\x03\x01").unwrap();
    assert_eq!((header.addresses, len), (None, 15));
}

#[test]
fn v2_headers_round_trip_and_local_carries_no_address() {
    let source: SocketAddr = "192.0.2.7:51234".parse().unwrap();
    let destination: SocketAddr = "198.51.100.1:443".parse().unwrap();
    let mut stream = v2_header(source, destination);
    let len = stream.len();
    stream.extend_from_slice(b"\x16\x03\x01");
    let (header, read) = frame(&stream).unwrap();
    assert_eq!(read, len);
    assert_eq!(header.version, 2);
    assert_eq!(
        header.addresses,
        Some(Carried {
            source,
            destination
        })
    );
    // Mixed families are both written as IPv6.
    let v6: SocketAddr = "[2001:db8::2]:443".parse().unwrap();
    let (header, _) = frame(&v2_header(source, v6)).unwrap();
    assert_eq!(
        header.addresses.unwrap().source,
        "[::ffff:192.0.2.7]:51234".parse().unwrap()
    );
    // LOCAL (a balancer's health check): version 2, command 0, no addresses.
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    assert_eq!(
        frame(&local).unwrap(),
        (
            ProxyHeader {
                version: 2,
                addresses: None
            },
            16
        )
    );
}

#[test]
fn anything_else_is_refused_as_early_as_possible() {
    assert_eq!(next(b"GET / HTTP/1.1"), Err(HeaderError::Missing));
    assert_eq!(next(b"\x16\x03\x01"), Err(HeaderError::Missing));
    assert_eq!(next(b"PROXX"), Err(HeaderError::Missing));
    assert_eq!(next(b"\r\n\r\n\0\r\nQUIX"), Err(HeaderError::Missing));
    let long = [b"PROXY ".as_slice(), &[b'1'; 101]].concat();
    assert_eq!(next(&long), Err(HeaderError::V1TooLong));
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
    assert_eq!(next(&huge), Err(HeaderError::V2TooLong(65535)));
    assert!(matches!(
        frame(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"),
        Err(HeaderError::Malformed(_))
    ));
    assert!(matches!(
        frame(b"PROXY TCP4 1.2.3.4\r 5.6.7.8 1 2\r\n"),
        Err(HeaderError::Malformed(_))
    ));
    // Found by the fuzz target: the parser lets UNKNOWN end in a bare LF; the spec does not.
    assert!(matches!(
        frame(b"PROXY UNKNOWN 1 2 PROXY \nGET"),
        Err(HeaderError::Malformed(_))
    ));
    let mut bad_version = V2_SIGNATURE.to_vec();
    bad_version.extend_from_slice(&[0x11, 0x11, 0x00, 0x0C]);
    bad_version.extend_from_slice(&[0; 12]);
    assert!(matches!(
        frame(&bad_version),
        Err(HeaderError::Malformed(_))
    ));
}
