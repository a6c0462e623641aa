//! `ws://` and `wss://` URIs of upstream servers (RFC 6455 §3).

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::HandshakeError;

/// A parsed WebSocket URI: scheme, host, port, and the path with its query. It names the
/// upstream a gateway connects to, and gives the target and `Host` of the upgrade request.
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

/// The characters of an RFC 3986 §3.2.2 reg-name (which covers IPv4 addresses): unreserved,
/// percent-encoded and sub-delims.
fn is_reg_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

/// Splits an authority into host and optional port text; IPv6 hosts lose their brackets.
fn split_authority<'a>(
    authority: &'a str,
    input: &str,
) -> Result<(&'a str, Option<&'a str>), HandshakeError> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("unclosed [ in IPv6 host", input))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(invalid("bad IPv6 address", input));
        }
        let port = match after {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| invalid("unexpected text after ]", input))?,
            ),
        };
        return Ok((host, port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(invalid("empty host", input));
    }
    if !host.bytes().all(is_reg_name_char) {
        return Err(invalid("invalid character in host", input));
    }
    Ok((host, port))
}

impl WsUri {
    /// Parses `ws://host[:port][/path][?query]` or `wss://…` (scheme case-insensitive; IPv6
    /// hosts in brackets). Rejects other schemes, user information, fragments (RFC 6455 §3),
    /// whitespace, control and non-ASCII characters, an empty host and a bad or zero port.
    ///
    /// ```
    /// let uri = wsrelay_handshake::WsUri::parse("ws://[::1]:9000/feed?x=1")?;
    /// assert_eq!((uri.host.as_str(), uri.port, uri.path_and_query.as_str()), ("::1", 9000, "/feed?x=1"));
    /// assert_eq!(uri.authority(), "[::1]:9000");
    /// # Ok::<(), wsrelay_handshake::HandshakeError>(())
    /// ```
    pub fn parse(input: &str) -> Result<WsUri, HandshakeError> {
        // The URI ends up in a request line and a Host header: nothing in it may break those.
        if input
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(invalid("whitespace or control character", input));
        }
        if !input.is_ascii() {
            return Err(invalid(
                "non-ASCII characters must be percent-encoded",
                input,
            ));
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
        // §3: "Fragment identifiers are meaningless in the context of WebSocket URIs".
        if rest.contains('#') {
            return Err(invalid("fragments are not allowed", input));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at_checked(at).unwrap_or((rest, "")),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(invalid("user information is not allowed", input));
        }
        let (host, port) = split_authority(authority, input)?;
        let port = match port {
            None if secure => 443,
            None => 80,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(invalid("bad port", input)),
            },
            Some(_) => return Err(invalid("bad port", input)),
        };
        // §3: an empty path is "/".
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

    /// `host[:port]` as sent in `Host` (RFC 9110 §7.2): the port is left out when it is the
    /// scheme's default, IPv6 addresses are bracketed.
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

    /// Same as [`WsUri::parse`], so URIs can come straight from `str::parse` (e.g. clap).
    fn from_str(s: &str) -> Result<WsUri, HandshakeError> {
        WsUri::parse(s)
    }
}

impl fmt::Display for WsUri {
    /// The normalized URI: lower-case scheme, default port left out, path at least `/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path_and_query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_uris() {
        let ok = [
            ("ws://example.com", false, "example.com", 80, "/"),
            ("WSS://example.com", true, "example.com", 443, "/"),
            ("Ws://example.com:443", false, "example.com", 443, "/"),
            ("ws://h:9000/a/b?c=d&e", false, "h", 9000, "/a/b?c=d&e"),
            ("ws://h?q", false, "h", 80, "/?q"),
            ("ws://h/?", false, "h", 80, "/?"),
            ("wss://[::1]/x", true, "::1", 443, "/x"),
            ("ws://[2001:db8::1]:8080", false, "2001:db8::1", 8080, "/"),
            ("ws://127.0.0.1:1/", false, "127.0.0.1", 1, "/"),
            ("ws://h:65535/%20", false, "h", 65535, "/%20"),
            (
                "ws://my-host.example_1/",
                false,
                "my-host.example_1",
                80,
                "/",
            ),
        ];
        for (input, secure, host, port, path) in ok {
            let uri = match WsUri::parse(input) {
                Ok(uri) => uri,
                Err(e) => panic!("{input}: {e}"),
            };
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
            assert_eq!(input.parse::<WsUri>().as_ref(), Ok(&uri));
        }
    }

    #[test]
    fn rejected_uris() {
        let bad = [
            "http://h/",
            "wsx://h/",
            "ws:/h",
            "h:80",
            "",
            "ws://",
            "ws:///path",
            "ws://:80/",
            "ws://h:0/",
            "ws://h:65536/",
            "ws://h:8a/",
            "ws://h:/x",
            "ws://h:+80/",
            "ws://h:80:80/",
            "ws://user@h/",
            "ws://user:pw@h/",
            "ws://h/#frag",
            "ws://h /",
            "ws://h/a b",
            "ws://h/\r\nX: y",
            "ws://h/\0",
            "ws://h\t/",
            "ws://hé/",
            "ws://h/é",
            "ws://[::1/",
            "ws://[nope]/",
            "ws://[]/",
            "ws://[::1]x/",
            "ws://[::1]:/",
            "ws://h<script>/",
            "ws://h\"/",
        ];
        for input in bad {
            let err = WsUri::parse(input).expect_err(input);
            assert!(matches!(err, HandshakeError::InvalidUri(_)), "{input}");
            assert_eq!(err.status(), 502);
        }
    }

    #[test]
    fn authority_and_display() {
        let uri = WsUri::parse("wss://[::1]:443/a").unwrap();
        assert_eq!(uri.authority(), "[::1]");
        assert_eq!(uri.to_string(), "wss://[::1]/a");
        let uri = WsUri::parse("WS://h:81").unwrap();
        assert_eq!(
            (uri.authority().as_str(), uri.to_string()),
            ("h:81", "ws://h:81/".into())
        );
        assert_eq!(WsUri::parse("wss://h:80").unwrap().authority(), "h:80");
        assert_eq!(
            WsUri::parse("ws://h:80?x").unwrap().to_string(),
            "ws://h/?x"
        );
    }
}
