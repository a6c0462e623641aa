//! Routes: which requests go to which upstream, and how the upstream request is shaped
//! (path rewrite, headers, Host/Origin, allowed Origins, per-route timeouts and limits).

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use wsrelay_handshake::{Header, WsUri};
use wsrelay_relay::RelayOptions;

use crate::auth::Provider;
use crate::config::defaults;
use crate::upstream::Upstream;

/// How a route matches the request path (the part before `?`).
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The path starts with this string (plain string prefix, as nginx's `location /x`).
    /// For rewrites, `$1` is the rest of the path after the prefix.
    Prefix {
        /// The prefix.
        prefix: String,
        /// `^<prefix>(.*)$`, giving the rewrite its `$1`.
        regex: Regex,
    },
    /// The path matches this regular expression; its captures feed the rewrite.
    Regex(Regex),
}

impl PathMatch {
    /// A prefix match.
    pub fn prefix(prefix: &str) -> PathMatch {
        let regex = Regex::new(&format!("^{}(?s:(.*))$", regex::escape(prefix)))
            .unwrap_or_else(|_| unreachable!("an escaped literal is a valid regex"));
        PathMatch::Prefix {
            prefix: prefix.to_owned(),
            regex,
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix { prefix, .. } => path.starts_with(prefix.as_str()),
            PathMatch::Regex(regex) => regex.is_match(path),
        }
    }

    fn regex(&self) -> &Regex {
        match self {
            PathMatch::Prefix { regex, .. } | PathMatch::Regex(regex) => regex,
        }
    }
}

/// One route: a match, an upstream, and the settings of the connections it carries.
#[derive(Debug, Clone)]
pub struct Route {
    /// Name shown in logs (`route=`).
    pub name: String,
    /// Only requests whose `Host` (port ignored, case-insensitive) is this; `*.example.com`
    /// matches any subdomain. `None` matches every host.
    pub host: Option<String>,
    /// The path match.
    pub path: PathMatch,
    /// The upstream; `None` only on routes with `websocket` off.
    pub upstream: Option<Upstream>,
    /// Template for the upstream path: `$1`, `${name}` refer to the path match's captures.
    pub rewrite: Option<String>,
    /// Headers set on the upstream request, replacing any the client sent with the same name.
    pub add_headers: Vec<(String, String)>,
    /// Client headers not forwarded (case-insensitive names).
    pub remove_headers: Vec<String>,
    /// Send the upstream's own authority as `Host` and its origin as `Origin` instead of the
    /// client's (for upstreams that check them).
    pub change_origin: bool,
    /// Also send the upstream an RFC 7239 `Forwarded` header for this hop (the
    /// `X-Forwarded-*` ones are always sent).
    pub forwarded_header: bool,
    /// WebSocket switched on for this route; when off, its requests get 403.
    pub websocket: bool,
    /// Origins allowed to open a WebSocket here (exact, case-insensitive); empty allows all.
    /// A request with another `Origin` gets 403; one without `Origin` (not a browser) passes.
    pub allowed_origins: Vec<String>,
    /// Extension names whose offers are forwarded upstream (pass-through negotiation).
    pub extensions: Vec<String>,
    /// Time to connect to the upstream, TLS handshake included (504 after it).
    pub connect_timeout: Duration,
    /// Time the upstream has to answer the upgrade (504 after it).
    pub upgrade_timeout: Duration,
    /// How frames are relayed: limits, buffer, UTF-8 validation, close and idle timeouts.
    pub relay: RelayOptions,
    /// The JWT provider whose token a request needs (`auth = "NAME"`); `None`: no auth.
    pub auth: Option<Arc<Provider>>,
    /// The pool of backends WebSocket requests go to, when the route names one (`pool =`);
    /// `None`: the route's one `upstream`.
    pub pool: Option<std::sync::Arc<crate::pool::Pool>>,
    /// `send_proxy_protocol = "v2"`: each upstream connection starts with a PROXY v2 header
    /// carrying the client's address, before its TLS handshake and upgrade request.
    pub send_proxy_protocol: bool,
    /// Plain HTTP pass-through (`http = true`): its limits, timeouts and upstream clients;
    /// `None`: non-upgrade requests get 426.
    pub http: Option<Arc<crate::http::HttpRoute>>,
}

impl Route {
    /// A route for every request, to `upstream`, with the default settings (the CLI's route).
    pub fn catch_all(upstream: Upstream) -> Route {
        Route {
            name: "default".to_owned(),
            host: None,
            path: PathMatch::prefix("/"),
            upstream: Some(upstream),
            rewrite: None,
            add_headers: Vec::new(),
            remove_headers: Vec::new(),
            change_origin: false,
            forwarded_header: defaults::FORWARDED_HEADER,
            websocket: true,
            allowed_origins: Vec::new(),
            extensions: vec![PERMESSAGE_DEFLATE.to_owned()],
            connect_timeout: defaults::CONNECT_TIMEOUT,
            upgrade_timeout: defaults::UPGRADE_TIMEOUT,
            relay: defaults::relay_options(),
            auth: None,
            pool: None,
            send_proxy_protocol: false,
            http: None,
        }
    }

    /// The upstream WebSocket requests go to; `None` where WebSocket is off on this route.
    pub fn websocket_upstream(&self) -> Option<&Upstream> {
        self.upstream.as_ref().filter(|_| self.websocket)
    }

    /// True if WebSocket requests on this route have somewhere to go: a pool or an upstream.
    pub fn takes_websocket(&self) -> bool {
        self.websocket && (self.pool.is_some() || self.upstream.is_some())
    }

    /// True if this route takes a request for `path` with this `Host` header.
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = match &self.host {
            None => true,
            Some(want) => host.is_some_and(|h| host_matches(want, h)),
        };
        host_ok && self.path.matches(path)
    }

    /// True if a request with this `Origin` may open a WebSocket on this route.
    ///
    /// `origin` is the header's raw value: where the route has an allow-list, a value that is
    /// not text, or not a serialized origin (RFC 6454 §6.2: `scheme://host[:port]` or `null`),
    /// is refused like an unlisted one, never taken as absent.
    pub fn origin_allowed(&self, origin: Option<&[u8]>) -> bool {
        match origin {
            _ if self.allowed_origins.is_empty() => true,
            // Browsers always send Origin; a request without one is not the cross-site
            // hijacking this list guards against (RFC 6455 §10.2).
            None => true,
            Some(raw) => match std::str::from_utf8(raw) {
                Ok(origin) if is_serialized_origin(origin.trim()) => self
                    .allowed_origins
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(origin.trim())),
                _ => false,
            },
        }
    }

    /// The path and query to request upstream for a client's request target: the client path,
    /// rewritten if the route says so, after the upstream URI's path; the client's query kept.
    pub fn upstream_target(&self, upstream: &WsUri, client_target: &str) -> String {
        let (path, query) = split_query(client_target);
        let rewritten = self.rewrite.as_ref().and_then(|template| {
            let captures = self.path.regex().captures(path)?;
            let mut out = String::new();
            captures.expand(template, &mut out);
            Some(out)
        });
        let path = rewritten.as_deref().unwrap_or(path);
        let mut target = String::new();
        target.push_str(path);
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        join_target(upstream, &target)
    }

    /// Applies the route's header rules to the headers forwarded from the client: removals,
    /// the Origin rewrite, then the added headers (replacing same-named ones).
    pub fn shape_headers(&self, mut headers: Vec<Header>, upstream: &WsUri) -> Vec<Header> {
        headers.retain(|h| {
            !self
                .remove_headers
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&h.name))
        });
        if self.change_origin {
            let origin = upstream_origin(upstream);
            for h in headers
                .iter_mut()
                .filter(|h| h.name.eq_ignore_ascii_case("Origin"))
            {
                h.value = origin.clone().into_bytes();
            }
        }
        for (name, value) in &self.add_headers {
            headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
            headers.push(Header {
                name: name.clone(),
                value: value.clone().into_bytes(),
            });
        }
        headers
    }
}

/// The extension whose offers routes forward by default; RSV1 is allowed once it is accepted.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The origin (RFC 6454) of an upstream, as a browser would send it: `http(s)://authority`.
pub fn upstream_origin(upstream: &WsUri) -> String {
    let scheme = if upstream.secure { "https" } else { "http" };
    format!("{scheme}://{}", upstream.authority())
}

/// True for a serialized origin (RFC 6454 §6.2): `null`, or a scheme, `://`, a valid host and
/// an optional port, nothing else (no path, no user info).
fn is_serialized_origin(origin: &str) -> bool {
    if origin == "null" {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok && wsrelay_handshake::canonical_host(authority).is_ok()
}

/// `Host` header against a route's host: port ignored, case-insensitive, `*.x` for subdomains.
fn host_matches(want: &str, host: &str) -> bool {
    // Requests arrive with canonical hosts (no trailing dot); a route may be written with one.
    let want = want.strip_suffix('.').unwrap_or(want);
    let host = strip_port(host.trim());
    match want.strip_prefix("*.") {
        Some(domain) => host
            .len()
            .checked_sub(domain.len() + 1)
            .and_then(|at| host.get(at..))
            .and_then(|tail| tail.strip_prefix('.'))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(domain)),
        None => host.eq_ignore_ascii_case(want),
    }
}

/// `host` from `host:port`, `[v6]` from `[v6]:port`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Puts `target` (a path and query) after the upstream URI's path, merging the queries.
pub fn join_target(upstream: &WsUri, target: &str) -> String {
    let (up_path, up_query) = split_query(&upstream.path_and_query);
    let (path, query) = split_query(target);
    let mut out = String::with_capacity(up_path.len() + target.len());
    out.push_str(up_path.trim_end_matches('/'));
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(path);
    let queries: Vec<&str> = [up_query, query].into_iter().flatten().collect();
    if !queries.is_empty() {
        out.push('?');
        out.push_str(&queries.join("&"));
    }
    out
}

fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query).filter(|q| !q.is_empty())),
        None => (target, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: PathMatch, rewrite: Option<&str>) -> Route {
        let mut r = Route::catch_all(Upstream {
            uri: WsUri::parse("ws://up:9000/").unwrap(),
            tls: None,
            insecure_skip_verify: false,
        });
        r.path = path;
        r.rewrite = rewrite.map(str::to_owned);
        r
    }

    #[test]
    fn regex_rewrite_keeps_the_query() {
        let r = route(
            PathMatch::Regex(Regex::new("^/ws/chat(/.*)?$").unwrap()),
            Some("/chat$1"),
        );
        let up = WsUri::parse("ws://up/").unwrap();
        assert!(r.matches(None, "/ws/chat/room-1"));
        assert!(!r.matches(None, "/ws/chatroom"));
        assert_eq!(
            r.upstream_target(&up, "/ws/chat/room-1?x=1"),
            "/chat/room-1?x=1"
        );
        assert_eq!(r.upstream_target(&up, "/ws/chat"), "/chat");
        let prefixed = WsUri::parse("ws://up/base?k=v").unwrap();
        assert_eq!(
            r.upstream_target(&prefixed, "/ws/chat/a?x=1"),
            "/base/chat/a?k=v&x=1"
        );
    }

    #[test]
    fn prefix_rewrite_uses_the_rest_as_1() {
        let r = route(PathMatch::prefix("/api"), Some("/v2$1"));
        let up = WsUri::parse("ws://up/").unwrap();
        assert!(r.matches(None, "/api/x"));
        assert!(!r.matches(None, "/ap"));
        assert_eq!(r.upstream_target(&up, "/api/x?q"), "/v2/x?q");
        let plain = route(PathMatch::prefix("/api"), None);
        assert_eq!(plain.upstream_target(&up, "/api/x?q"), "/api/x?q");
    }

    #[test]
    fn hosts_match_without_port_and_case() {
        let mut r = route(PathMatch::prefix("/"), None);
        r.host = Some("chat.example".into());
        assert!(r.matches(Some("Chat.Example:8080"), "/"));
        assert!(!r.matches(Some("other.example"), "/"));
        assert!(!r.matches(None, "/"));
        r.host = Some("*.example".into());
        assert!(r.matches(Some("a.b.example"), "/"));
        assert!(!r.matches(Some("example"), "/"));
        // Written with a trailing dot, the route still matches the canonical host.
        let mut dotted = route(PathMatch::prefix("/"), None);
        dotted.host = Some("admin.example.".into());
        assert!(dotted.matches(Some("admin.example"), "/"));
        assert!(!dotted.matches(Some("chat.example"), "/"));
        assert!(!r.matches(Some("badexample"), "/"));
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }

    #[test]
    fn origins() {
        let mut r = route(PathMatch::prefix("/"), None);
        assert!(r.origin_allowed(Some(b"https://evil.example")));
        r.allowed_origins = vec!["https://app.example".into()];
        assert!(r.origin_allowed(Some(b"https://APP.example")));
        assert!(!r.origin_allowed(Some(b"https://evil.example")));
        assert!(!r.origin_allowed(Some(b"https://app.example.evil")));
        assert!(r.origin_allowed(None));
    }

    #[test]
    fn with_an_allow_list_an_origin_that_is_no_origin_is_refused_not_absent() {
        let mut r = route(PathMatch::prefix("/"), None);
        r.allowed_origins = vec!["https://app.example".into(), "null".into()];
        assert!(!r.origin_allowed(Some(b"https://app.example\xff")));
        assert!(!r.origin_allowed(Some(b"\xff\xfe")));
        assert!(!r.origin_allowed(Some(b"https://app.example/path")));
        assert!(!r.origin_allowed(Some(b"app.example")));
        assert!(r.origin_allowed(Some(b"null")));
        assert!(is_serialized_origin("https://app.example:8443"));
        assert!(!is_serialized_origin("https://user@app.example"));
    }

    #[test]
    fn headers_are_removed_rewritten_and_added() {
        let mut r = route(PathMatch::prefix("/"), None);
        r.remove_headers = vec!["cookie".into()];
        r.add_headers = vec![("X-Route".into(), "chat".into())];
        r.change_origin = true;
        let h = |n: &str, v: &str| Header {
            name: n.into(),
            value: v.as_bytes().to_vec(),
        };
        let up = WsUri::parse("wss://up.internal:8443/").unwrap();
        let out = r.shape_headers(
            vec![
                h("Cookie", "s=1"),
                h("Origin", "https://a"),
                h("x-route", "spoof"),
            ],
            &up,
        );
        assert_eq!(
            out,
            vec![
                h("Origin", "https://up.internal:8443"),
                h("X-Route", "chat")
            ]
        );
    }
}
