//! Canonical `Host` values: checked against RFC 3986's authority syntax and put in one form
//! (lower case, no trailing dot), so `Admin.Example.`, `admin.example:443` and `admin.example`
//! reach the same route, and an invalid Host never reaches one.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A `Host` header in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// The host: a lower-case name without its trailing dot, an IPv4 address, or an IPv6
    /// address in brackets (in its canonical text, RFC 5952).
    pub host: String,
    /// The port, when the header named one.
    pub port: Option<u16>,
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Why a `Host` value is refused; each is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// No host at all.
    Empty,
    /// A name with a character or label that no host name has (`a..b`, `-`, `@`, spaces ...).
    InvalidName,
    /// Bracketed text that is not an IPv6 address.
    InvalidIpv6,
    /// An all-numeric dotted name that is not a valid IPv4 address (`999.1.1.1`, `1.2.3`).
    InvalidIpv4,
    /// A port that is not 1 to 5 digits up to 65535.
    InvalidPort,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostError::Empty => "empty Host",
            HostError::InvalidName => "Host is not a valid host name",
            HostError::InvalidIpv6 => "Host has an invalid IPv6 address",
            HostError::InvalidIpv4 => "Host is a numeric name but not a valid IPv4 address",
            HostError::InvalidPort => "Host has an invalid port",
        })
    }
}

impl std::error::Error for HostError {}

/// Parses a `Host` header value (`reg-name`, IPv4 or `[IPv6]`, then an optional `:port`) into
/// its canonical form. Names are lower-cased and lose one trailing dot (`example.com.` names
/// the same host as `example.com`).
///
/// ```
/// use wsrelay_handshake::canonical_host;
/// let a = canonical_host("Admin.Example.:8443").unwrap();
/// assert_eq!((a.host.as_str(), a.port), ("admin.example", Some(8443)));
/// assert_eq!(canonical_host("[::FFFF:127.0.0.1]").unwrap().host, "[::ffff:127.0.0.1]");
/// assert!(canonical_host("a..b").is_err());
/// ```
pub fn canonical_host(value: &str) -> Result<Authority, HostError> {
    if value.is_empty() {
        return Err(HostError::Empty);
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let end = rest.find(']').ok_or(HostError::InvalidIpv6)?;
        let ip: Ipv6Addr = rest[..end].parse().map_err(|_| HostError::InvalidIpv6)?;
        let port = match &rest[end + 1..] {
            "" => None,
            tail => Some(port(tail.strip_prefix(':').ok_or(HostError::InvalidIpv6)?)?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (name, port) = match value.split_once(':') {
            Some((name, tail)) => (name, Some(port(tail)?)),
            None => (value, None),
        };
        (name_form(name)?, port)
    };
    Ok(Authority { host, port })
}

/// A port: 1 to 5 ASCII digits, at most 65535 (`u16::from_str` alone would take a `+`).
fn port(text: &str) -> Result<u16, HostError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::InvalidPort);
    }
    text.parse().map_err(|_| HostError::InvalidPort)
}

/// A name's canonical form: labels of letters, digits, `-` and `_`, not starting or ending
/// with `-`, lower case, without the trailing dot; all-numeric names must be IPv4 addresses.
fn name_form(name: &str) -> Result<String, HostError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(HostError::InvalidName);
    }
    // An all-numeric name is an IPv4 address or nothing: `127.1` and `0127.0.0.1` are read as
    // addresses by some resolvers and as names by others.
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let ip: Ipv4Addr = name.parse().map_err(|_| HostError::InvalidIpv4)?;
        return Ok(ip.to_string());
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn host(value: &str) -> Result<(String, Option<u16>), HostError> {
        canonical_host(value).map(|a| (a.host, a.port))
    }

    #[test]
    fn names_are_lower_case_without_the_trailing_dot() {
        assert_eq!(host("Admin.Example."), Ok(("admin.example".into(), None)));
        assert_eq!(
            host("chat.example:443"),
            Ok(("chat.example".into(), Some(443)))
        );
        assert_eq!(host("localhost"), Ok(("localhost".into(), None)));
        assert_eq!(
            host("under_score.example"),
            Ok(("under_score.example".into(), None))
        );
    }

    #[test]
    fn addresses_take_their_canonical_text() {
        assert_eq!(host("127.0.0.1:80"), Ok(("127.0.0.1".into(), Some(80))));
        assert_eq!(host("[::1]:8080"), Ok(("[::1]".into(), Some(8080))));
        assert_eq!(host("[0:0:0:0:0:0:0:1]"), Ok(("[::1]".into(), None)));
        assert_eq!(host("999.1.1.1"), Err(HostError::InvalidIpv4));
        assert_eq!(host("127.1"), Err(HostError::InvalidIpv4));
        assert_eq!(host("[::1"), Err(HostError::InvalidIpv6));
        assert_eq!(host("[::1]x"), Err(HostError::InvalidIpv6));
        assert_eq!(host("[nothost]"), Err(HostError::InvalidIpv6));
    }

    #[test]
    fn what_no_host_looks_like_is_refused() {
        for bad in [
            "a..b",
            ".a",
            "-a.example",
            "a-.example",
            "a b",
            "a@b",
            "a/b",
            "a%41",
        ] {
            assert_eq!(host(bad), Err(HostError::InvalidName), "{bad}");
        }
        assert_eq!(host(""), Err(HostError::Empty));
        assert_eq!(host("."), Err(HostError::Empty));
        for bad in ["a:", "a:x", "a:+80", "a:65536", "a:123456", "a:1:2"] {
            assert_eq!(host(bad), Err(HostError::InvalidPort), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn canonical_hosts_are_idempotent(value in "[a-zA-Z0-9._:\\[\\]-]{0,24}") {
            if let Ok(a) = canonical_host(&value) {
                let again = canonical_host(&a.to_string());
                prop_assert_eq!(again, Ok(a.clone()));
                prop_assert!(!a.host.ends_with('.'));
                prop_assert_eq!(a.host.to_ascii_lowercase(), a.host);
            }
        }
    }
}
