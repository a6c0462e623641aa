//! `ws://` and `wss://` URIs of upstream servers (RFC 6455 §3).

use std::fmt;
use std::str::FromStr;

use crate::HandshakeError;

/// A parsed WebSocket URI: scheme, host, port, and the path with its query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsUri {
    /// `wss://` (TLS) rather than `ws://`.
    pub secure: bool,
    /// Host name or address; IPv6 addresses without brackets.
    pub host: String,
    /// Port (80 for ws, 443 for wss when not given).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path_and_query: String,
}

fn invalid(why: &str, input: &str) -> HandshakeError {
    HandshakeError::InvalidUri(format!("{why}: {input:?}"))
}

impl WsUri {
    /// Parses `ws://host[:port][/path][?query]` or `wss://...`.
    ///
    /// ```
    /// let uri = wsrelay_handshake::WsUri::parse("ws://[::1]:9000/feed?x=1")?;
    /// assert_eq!((uri.host.as_str(), uri.port, uri.path_and_query.as_str()), ("::1", 9000, "/feed?x=1"));
    /// # Ok::<(), wsrelay_handshake::HandshakeError>(())
    /// ```
    pub fn parse(input: &str) -> Result<WsUri, HandshakeError> {
        if input
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(invalid("whitespace or control character", input));
        }
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| invalid("expected ws:// or wss://", input))?;
        let secure = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else {
            return Err(invalid("scheme must be ws or wss", input));
        };
        if rest.contains('#') {
            return Err(invalid("fragments are not allowed", input));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(invalid("user information is not allowed", input));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed [ in IPv6 host", input))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("bad IPv6 address", input));
            }
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| invalid("junk after ]", input))?,
                    ),
                ),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("empty host", input));
        }
        let port = match port {
            None => {
                if secure {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(invalid("bad port", input)),
            },
        };
        let path_and_query = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(WsUri {
            secure,
            host: host.to_owned(),
            port,
            path_and_query,
        })
    }

    /// `host[:port]` as sent in `Host`: the port is left out when it is the scheme's default,
    /// IPv6 addresses are bracketed.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.secure { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl FromStr for WsUri {
    type Err = HandshakeError;
    fn from_str(s: &str) -> Result<WsUri, HandshakeError> {
        WsUri::parse(s)
    }
}

impl fmt::Display for WsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path_and_query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = [
            ("ws://example.com", false, "example.com", 80, "/"),
            ("WSS://example.com", true, "example.com", 443, "/"),
            ("ws://h:9000/a/b?c=d&e", false, "h", 9000, "/a/b?c=d&e"),
            ("ws://h?q", false, "h", 80, "/?q"),
            ("wss://[::1]/x", true, "::1", 443, "/x"),
            ("ws://[2001:db8::1]:8080", false, "2001:db8::1", 8080, "/"),
            ("ws://127.0.0.1:1/", false, "127.0.0.1", 1, "/"),
        ];
        for (input, secure, host, port, path) in ok {
            let uri = WsUri::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (
                    uri.secure,
                    uri.host.as_str(),
                    uri.port,
                    uri.path_and_query.as_str()
                ),
                (secure, host, port, path),
                "{input}"
            );
        }
        let bad = [
            "http://h/",
            "ws:/h",
            "ws://",
            "ws://:80/",
            "ws://h:0/",
            "ws://h:65536/",
            "ws://h:8a/",
            "ws://user@h/",
            "ws://h/#frag",
            "ws://h /",
            "ws://[::1/",
            "ws://[nope]/",
            "ws://[::1]x/",
            "ws://h/\r\n",
        ];
        for input in bad {
            assert!(WsUri::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn authority_and_display() {
        let uri = WsUri::parse("wss://[::1]:443/a").unwrap();
        assert_eq!(uri.authority(), "[::1]");
        assert_eq!(uri.to_string(), "wss://[::1]/a");
        assert_eq!(WsUri::parse("ws://h:81").unwrap().to_string(), "ws://h:81/");
    }
}
