//! Where a provider finds the token in an upgrade request, and taking it out of what the
//! upstream and the logs see.
//!
//! Browsers cannot set `Authorization` on a WebSocket (whatwg/html#3062), so the token may
//! also come in a query parameter, a cookie, or a `Sec-WebSocket-Protocol` entry. A query
//! parameter is removed from the target sent upstream and from the one logged; a subprotocol
//! entry is removed from the offer forwarded upstream, so the upstream can neither see it nor
//! choose it, and the rest of the offer is negotiated as usual.

use crate::request::ClientRequest;

/// Where a provider takes the token from (`token_from`, `token_name` in `[auth.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer TOKEN` (RFC 6750 §2.1), the default.
    Header,
    /// A query parameter of the request target, e.g. `?access_token=TOKEN`.
    Query(String),
    /// A cookie, e.g. `Cookie: access_token=TOKEN`.
    Cookie(String),
    /// The subprotocol entry starting with this prefix, e.g. `bearer.TOKEN` offered beside the
    /// application's real subprotocol.
    Subprotocol(String),
}

/// The default `token_name` of the query and cookie sources.
pub const DEFAULT_TOKEN_NAME: &str = "access_token";

/// The default prefix of a subprotocol entry that carries a token.
pub const DEFAULT_SUBPROTOCOL_PREFIX: &str = "bearer.";

/// Why no token could be taken from a request (answered with `error="invalid_request"`).
pub type NoToken = &'static str;

impl TokenSource {
    /// The source named by `token_from` with `token_name` (`None`: the default name); `None`
    /// for an unknown source.
    pub fn named(from: &str, name: Option<&str>) -> Option<TokenSource> {
        let name = |default: &str| name.unwrap_or(default).to_owned();
        Some(match from {
            "header" => TokenSource::Header,
            "query" => TokenSource::Query(name(DEFAULT_TOKEN_NAME)),
            "cookie" => TokenSource::Cookie(name(DEFAULT_TOKEN_NAME)),
            "subprotocol" => TokenSource::Subprotocol(name(DEFAULT_SUBPROTOCOL_PREFIX)),
            _ => return None,
        })
    }

    /// Takes the token from `request`. A query parameter is removed from the request target
    /// and from `logged` (the target the logs show); subprotocol entries with the prefix are
    /// removed from the offer, whether or not a token is found.
    pub fn take(
        &self,
        request: &mut ClientRequest,
        logged: &mut String,
    ) -> Result<String, NoToken> {
        match self {
            TokenSource::Header => bearer(request),
            TokenSource::Query(name) => {
                let token = query_value(&request.head.target, name);
                request.head.target = without_parameter(&request.head.target, name);
                *logged = without_parameter(logged, name);
                token
            }
            TokenSource::Cookie(name) => cookie(request, name),
            TokenSource::Subprotocol(prefix) => {
                let protocols = &mut request.websocket.protocols;
                let token = protocols
                    .iter()
                    .find_map(|p| p.strip_prefix(prefix.as_str()))
                    .map(str::to_owned);
                protocols.retain(|p| !p.starts_with(prefix.as_str()));
                match token {
                    Some(t) if !t.is_empty() => Ok(t),
                    Some(_) => Err("an empty token in Sec-WebSocket-Protocol"),
                    None => Err("no token entry in Sec-WebSocket-Protocol"),
                }
            }
        }
    }
}

/// `Authorization: Bearer TOKEN`: exactly one Authorization header, scheme case-insensitive.
fn bearer(request: &ClientRequest) -> Result<String, NoToken> {
    let mut values = request
        .head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Authorization"));
    let header = values.next().ok_or("no Authorization header")?;
    if values.next().is_some() {
        return Err("more than one Authorization header");
    }
    let value = std::str::from_utf8(&header.value).map_err(|_| "Authorization is not text")?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or("Authorization is not a Bearer token")?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("Bearer") || token.is_empty() {
        return Err("Authorization is not a Bearer token");
    }
    Ok(token.to_owned())
}

/// The first value of the query parameter `name`, percent-decoded.
fn query_value(target: &str, name: &str) -> Result<String, NoToken> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let raw = query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((n, v)) if n == name => Some(v),
            _ => None,
        })
        .ok_or("no token parameter in the query")?;
    let token =
        percent_decode(raw).ok_or("the token parameter is not valid percent-encoded text")?;
    if token.is_empty() {
        return Err("an empty token parameter");
    }
    Ok(token)
}

/// `target` without any `name=...` (or bare `name`) parameter; the `?` goes when nothing is left.
pub fn without_parameter(target: &str, name: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(n, _)| n) != name)
        .collect();
    if kept.iter().all(|p| p.is_empty()) {
        return path.to_owned();
    }
    format!("{path}?{}", kept.join("&"))
}

/// The value of cookie `name` in the request's `Cookie` headers (RFC 6265 §5.4).
fn cookie(request: &ClientRequest, name: &str) -> Result<String, NoToken> {
    let value = request
        .head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Cookie"))
        .filter_map(|h| std::str::from_utf8(&h.value).ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| match pair.trim().split_once('=') {
            Some((n, v)) if n.trim() == name => Some(v.trim()),
            _ => None,
        })
        .ok_or("no token cookie")?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.is_empty() {
        return Err("an empty token cookie");
    }
    Ok(value.to_owned())
}

/// `%XX` escapes decoded (and `+` kept: a token never has spaces); `None` for a bad escape or
/// bytes that are not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Peer;
    use wsrelay_handshake::{Limits, Parsed, RequestHead};

    fn request(target: &str, extra: &str) -> ClientRequest {
        let text = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        let Ok(Parsed::Complete { value, .. }) =
            RequestHead::parse(text.as_bytes(), &Limits::default())
        else {
            panic!("a valid request");
        };
        ClientRequest::new(value, Peer::plain(([127, 0, 0, 1], 1).into())).unwrap()
    }

    fn take(source: &TokenSource, r: &mut ClientRequest) -> Result<String, NoToken> {
        let mut logged = r.head.target.clone();
        source.take(r, &mut logged)
    }

    #[test]
    fn bearer_header() {
        let mut r = request("/", "Authorization: bearer  a.b.c \r\n");
        assert_eq!(take(&TokenSource::Header, &mut r).unwrap(), "a.b.c");
        let mut basic = request("/", "Authorization: Basic eDp5\r\n");
        assert!(take(&TokenSource::Header, &mut basic).is_err());
        let mut two = request(
            "/",
            "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
        );
        assert!(take(&TokenSource::Header, &mut two).is_err());
        assert!(take(&TokenSource::Header, &mut request("/", "")).is_err());
    }

    #[test]
    fn the_query_parameter_leaves_the_target_and_the_log() {
        let source = TokenSource::Query("access_token".into());
        let mut r = request("/ws?room=1&access_token=a.b%2Ec&x", "");
        let mut logged = r.head.target.clone();
        assert_eq!(source.take(&mut r, &mut logged).unwrap(), "a.b.c");
        assert_eq!(r.head.target, "/ws?room=1&x");
        assert_eq!(logged, "/ws?room=1&x");
        assert_eq!(
            without_parameter("/ws?access_token=t", "access_token"),
            "/ws"
        );
        assert_eq!(without_parameter("/ws", "access_token"), "/ws");
        let mut none = request("/ws?room=1", "");
        assert!(take(&source, &mut none).is_err());
        let mut bad = request("/ws?access_token=%zz", "");
        assert!(take(&source, &mut bad).is_err());
    }

    #[test]
    fn cookies() {
        let source = TokenSource::Cookie("jwt".into());
        let mut r = request("/", "Cookie: a=1; jwt=\"t.o.k\"\r\n");
        assert_eq!(take(&source, &mut r).unwrap(), "t.o.k");
        let mut other = request("/", "Cookie: jwtx=1\r\nCookie: b=2; jwt=x.y.z\r\n");
        assert_eq!(take(&source, &mut other).unwrap(), "x.y.z");
        assert!(take(&source, &mut request("/", "Cookie: a=1\r\n")).is_err());
    }

    #[test]
    fn the_subprotocol_entry_leaves_the_offer() {
        let source = TokenSource::Subprotocol("bearer.".into());
        let mut r = request("/", "Sec-WebSocket-Protocol: chat, bearer.a.b.c, v2\r\n");
        assert_eq!(take(&source, &mut r).unwrap(), "a.b.c");
        assert_eq!(r.websocket.protocols, ["chat", "v2"]);
        let mut none = request("/", "Sec-WebSocket-Protocol: chat\r\n");
        assert!(take(&source, &mut none).is_err());
        assert_eq!(none.websocket.protocols, ["chat"]);
    }

    #[test]
    fn sources_by_name() {
        assert_eq!(
            TokenSource::named("header", None),
            Some(TokenSource::Header)
        );
        assert_eq!(
            TokenSource::named("cookie", Some("s")),
            Some(TokenSource::Cookie("s".into()))
        );
        assert_eq!(
            TokenSource::named("subprotocol", None),
            Some(TokenSource::Subprotocol("bearer.".into()))
        );
        assert_eq!(TokenSource::named("body", None), None);
    }
}
