//! The PROXY protocol header, v1 (text) and v2 (binary): how many more bytes of it to read,
//! what it says, and the v2 header wsrelay writes to backends. Pure functions over byte slices:
//! the reader in the parent module and the fuzz target (`fuzz/fuzz_targets/proxy_header.rs`)
//! both drive them. The field parsing is the `ppp` crate's; the framing is ours, because the
//! reader must never take a byte past the header (the TLS ClientHello or the HTTP request
//! follows it on the same socket).
//!
//! Specification: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::fmt;
use std::net::SocketAddr;

use ppp::v1;
use ppp::v2;

/// The longest v1 header, `\r\n` included (specification §2.1).
pub const V1_MAX_LEN: usize = 107;
/// The twelve bytes every v2 header starts with (specification §2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a v2 header: signature, version and command, family, length.
pub const V2_FIXED_LEN: usize = 16;
/// The most address and TLV bytes a v2 header may announce here. Addresses take 216 bytes at
/// most (two UNIX paths); the rest leaves room for the TLVs balancers add (unique id, SSL
/// details) while keeping what one connection can make the gateway buffer small.
pub const V2_MAX_PAYLOAD: usize = 1024;
/// The longest header of either version this module accepts.
pub const MAX_LEN: usize = V2_FIXED_LEN + V2_MAX_PAYLOAD;
/// What a v1 header starts with.
const V1_PREFIX: &[u8] = b"PROXY ";

/// What the reader does next, given the bytes of the header it has read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read exactly this many more bytes: all of them belong to the header.
    Exact(usize),
    /// Read up to and including the next `\n`, at most this many more bytes (v1's one line).
    Line(usize),
    /// The bytes read so far are the whole header: parse them.
    Complete,
}

/// Why a connection's first bytes are not a PROXY header wsrelay accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The bytes start neither a v1 nor a v2 header (a client that skipped the balancer, or a
    /// balancer not configured to send the header).
    Missing,
    /// A v1 header with no `\r\n` within 107 bytes.
    V1TooLong,
    /// A v2 header announcing more address and TLV bytes than [`V2_MAX_PAYLOAD`].
    V2TooLong(usize),
    /// A header of the right shape whose fields are wrong (version, command, family,
    /// addresses, ports, line ending): the parser's words.
    Malformed(String),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Missing => f.write_str("the connection does not start with a PROXY header"),
            HeaderError::V1TooLong => {
                write!(f, "a PROXY v1 header without CRLF in its first {V1_MAX_LEN} bytes")
            }
            HeaderError::V2TooLong(n) => write!(
                f,
                "a PROXY v2 header announcing {n} bytes of addresses and TLVs (at most {V2_MAX_PAYLOAD})"
            ),
            HeaderError::Malformed(why) => write!(f, "malformed PROXY header: {why}"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// What to read next after `read`, the header's bytes so far (empty at first): the first byte
/// tells the version, a v2 header's 16th its length, a v1 header ends at its `\n`. Errors as
/// soon as the bytes cannot start a header, so a stray client is cut without waiting.
pub fn next(read: &[u8]) -> Result<Next, HeaderError> {
    match read.first() {
        None => Ok(Next::Exact(1)),
        Some(b'P') => {
            let prefix = &read[..read.len().min(V1_PREFIX.len())];
            if !V1_PREFIX.starts_with(prefix) {
                return Err(HeaderError::Missing);
            }
            if read.ends_with(b"\n") {
                Ok(Next::Complete)
            } else if read.len() >= V1_MAX_LEN {
                Err(HeaderError::V1TooLong)
            } else {
                Ok(Next::Line(V1_MAX_LEN - read.len()))
            }
        }
        Some(b'\r') => {
            let signature = &read[..read.len().min(V2_SIGNATURE.len())];
            if !V2_SIGNATURE.starts_with(signature) {
                return Err(HeaderError::Missing);
            }
            if read.len() < V2_FIXED_LEN {
                return Ok(Next::Exact(V2_FIXED_LEN - read.len()));
            }
            let payload = usize::from(u16::from_be_bytes([read[14], read[15]]));
            if payload > V2_MAX_PAYLOAD {
                return Err(HeaderError::V2TooLong(payload));
            }
            let total = V2_FIXED_LEN + payload;
            match read.len() {
                n if n < total => Ok(Next::Exact(total - n)),
                n if n == total => Ok(Next::Complete),
                _ => Err(HeaderError::Malformed(
                    "bytes past the announced length".into(),
                )),
            }
        }
        Some(_) => Err(HeaderError::Missing),
    }
}

/// A PROXY header's meaning for the connection that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 (text) or 2 (binary).
    pub version: u8,
    /// The client's address and the address it connected to, as the balancer saw them;
    /// `None` for a v2 LOCAL header (the balancer's own health check), v1 `UNKNOWN`, and
    /// families other than TCP over IPv4/IPv6: the connection's own addresses stand.
    pub addresses: Option<Carried>,
}

/// The addresses a PROXY header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    /// The client's address: the connection's peer from here on.
    pub source: SocketAddr,
    /// The address the client connected to (the balancer's).
    pub destination: SocketAddr,
}

/// Parses a complete header (the bytes [`next`] framed, nothing after them).
pub fn parse(header: &[u8]) -> Result<ProxyHeader, HeaderError> {
    let malformed = |e: &dyn fmt::Display| HeaderError::Malformed(e.to_string());
    if header.starts_with(&V2_SIGNATURE) {
        let parsed = v2::Header::try_from(header).map_err(|e| malformed(&e))?;
        if parsed.len() != header.len() {
            return Err(HeaderError::Malformed("length does not match".into()));
        }
        let addresses = match (parsed.command, parsed.addresses) {
            (v2::Command::Local, _) => None,
            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => Some(Carried {
                source: SocketAddr::new(a.source_address.into(), a.source_port),
                destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
            }),
            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => Some(Carried {
                source: SocketAddr::new(a.source_address.into(), a.source_port),
                destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
            }),
            (v2::Command::Proxy, v2::Addresses::Unix(_) | v2::Addresses::Unspecified) => None,
        };
        return Ok(ProxyHeader {
            version: 2,
            addresses,
        });
    }
    // The line ends in CRLF (§2.1); `ppp` lets `UNKNOWN` end in a bare LF.
    if !header.ends_with(b"\r\n") {
        return Err(HeaderError::Malformed(
            "a v1 line not ending in CRLF".into(),
        ));
    }
    let parsed = v1::Header::try_from(header).map_err(|e| malformed(&e))?;
    if parsed.header.len() != header.len() {
        return Err(HeaderError::Malformed(
            "a CR before the end of the line".into(),
        ));
    }
    let addresses = match parsed.addresses {
        v1::Addresses::Unknown => None,
        v1::Addresses::Tcp4(a) => Some(Carried {
            source: SocketAddr::new(a.source_address.into(), a.source_port),
            destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
        }),
        v1::Addresses::Tcp6(a) => Some(Carried {
            source: SocketAddr::new(a.source_address.into(), a.source_port),
            destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
        }),
    };
    Ok(ProxyHeader {
        version: 1,
        addresses,
    })
}

/// The v2 header (PROXY command, TCP) saying `source` connected to `destination`. When the
/// two are of different families (an IPv4 client on an IPv6 listener), both are written as
/// IPv6, the IPv4 one mapped (`::ffff:a.b.c.d`), since a header has one family.
pub fn v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = match (source, destination) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            (source, destination)
        }
        _ => (mapped(source), mapped(destination)),
    };
    let addresses = v2::Addresses::from((source, destination));
    let command = v2::Version::Two | v2::Command::Proxy;
    // Building into a vector of known capacity cannot fail: the address block is at most 36 bytes.
    v2::Builder::with_addresses(command, v2::Protocol::Stream, addresses)
        .build()
        .unwrap_or_default()
}

/// `addr` as IPv6 (an IPv4 address mapped).
fn mapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    }
}
