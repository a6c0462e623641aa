//! One plain-HTTP request taken through the pipeline's stages to its backend and back
//! ([`Exchanges::exchange`]).

use std::error::Error as StdError;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::time::Instant;
use wsrelay_handshake::{
    forward_request_headers, is_hop_by_hop, write_error_response, Authority, Header, RequestHead,
    WebSocketRequest,
};

use super::body::{Fault, RequestBody, Tracked};
use super::log::{self, Exchange};
use super::{HttpRoute, ResponseBody};
use crate::access_log::loggable_target;
use crate::pipeline::Pipeline;
use crate::pool::Policy;
use crate::refusal::Refusal;
use crate::request::{ClientRequest, Peer};
use crate::route::Route;

/// A connection being served: the pipeline's settings and who the client is.
pub(crate) struct Exchanges<'a> {
    pub(crate) pipeline: Pipeline<'a>,
    pub(crate) peer: Peer,
    /// Set when a refusal ends the connection after its answer.
    pub(crate) closing: std::sync::atomic::AtomicBool,
}

/// A request that went no further, and the answer it gets.
struct Refused {
    route: String,
    status: u16,
    reason: String,
    /// The response, rendered as the gateway renders refusals.
    rendered: Vec<u8>,
    /// The connection ends after the answer (framing in doubt, or a refusal that must not
    /// let the client keep sending).
    close: bool,
}

impl Refused {
    /// A pipeline refusal (edge, route, Origin, admission, auth, pool).
    fn from(route: &str, refusal: Refusal, close: bool) -> Refused {
        let mut rendered = Vec::new();
        refusal.write_response(&mut rendered);
        Refused {
            route: route.to_owned(),
            status: refusal.status(),
            reason: refusal.to_string(),
            rendered,
            close,
        }
    }

    /// An answer of the HTTP side's own: `text` is the body the client reads.
    fn status(route: &str, status: u16, text: &str, reason: String, close: bool) -> Refused {
        let mut rendered = Vec::new();
        write_error_response(&mut rendered, status, &[], text);
        Refused {
            route: route.to_owned(),
            status,
            reason,
            rendered,
            close,
        }
    }
}

impl Exchanges<'_> {
    /// One request: through the stages, to the backend, and its response (or a refusal).
    pub(crate) async fn exchange(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let method = parts.method.as_str().to_owned();
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_owned());
        // A refused request's body is not read (or not all of it): the connection ends after
        // the answer, as nothing says where the next request would start.
        let with_body = !body.is_end_stream();
        match self.forward(parts, body, started).await {
            Ok(response) => response,
            Err(mut refused) => {
                refused.close |= with_body;
                let config = &self.pipeline.access_log;
                let logged = &refused.reason;
                log::refused(
                    config,
                    self.peer.addr,
                    &refused.route,
                    &method,
                    &target,
                    refused.status,
                    logged,
                );
                if refused.close {
                    self.closing
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                answer(&refused)
            }
        }
    }

    /// The stages, then the upstream exchange.
    async fn forward(
        &self,
        parts: http::request::Parts,
        body: Incoming,
        started: Instant,
    ) -> Result<Response<ResponseBody>, Refused> {
        let p = &self.pipeline;
        // Smuggling: hyper would take chunked over the length; a proxy refuses the pair.
        if parts.headers.contains_key(TRANSFER_ENCODING)
            && parts.headers.contains_key(CONTENT_LENGTH)
        {
            return Err(Refused::status(
                "-",
                400,
                "a request has Content-Length or Transfer-Encoding, not both\n",
                "Content-Length and Transfer-Encoding together".into(),
                true,
            ));
        }
        let mut head = request_head(&parts);
        let authority = edge(&mut head, p, &self.peer)?;
        let (index, route) = p
            .routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(Some(&authority.host), head.path()))
            .ok_or_else(|| Refused::from("-", Refusal::NoRoute, false))?;
        let name = route.name.as_str();
        let Some(http) = route.http.as_deref() else {
            // A WebSocket-only route, reached on a connection that carries plain HTTP.
            let refusal = if route.takes_websocket() {
                Refusal::NotAnUpgrade
            } else {
                Refusal::RouteDisabled
            };
            return Err(Refused::from(name, refusal, true));
        };
        if head.is_upgrade_attempt() {
            return Err(Refused::status(
                name,
                400,
                "a WebSocket upgrade opens its own connection; this one carries plain HTTP\n",
                "upgrade attempt on a plain HTTP connection".into(),
                true,
            ));
        }
        let origin = head.header("Origin").map(|h| h.value.as_slice());
        if !route.origin_allowed(origin) {
            let origin = String::from_utf8_lossy(origin.unwrap_or_default()).into_owned();
            return Err(Refused::from(
                name,
                Refusal::OriginNotAllowed(origin),
                false,
            ));
        }
        if let Some(Err(rejection)) = p.admission.map(|permit| permit.enter_route(index)) {
            return Err(Refused::from(name, Refusal::Admission(rejection), true));
        }
        let mut request = ClientRequest {
            head,
            websocket: WebSocketRequest {
                key: String::new(),
                protocols: Vec::new(),
                extensions: Vec::new(),
                origin: None,
            },
            peer: self.peer.clone(),
        };
        let mut target = request.head.target.clone();
        crate::auth::admit(route, &mut request, &mut target)
            .map_err(|refusal| Refused::from(name, refusal, false))?;
        if let (Some(max), Some(length)) = (http.settings.max_body, content_length(&parts.headers))
        {
            if length > max {
                return Err(too_large(name, max));
            }
        }
        let chosen = choose(route, http, &request).map_err(|r| Refused::from(name, r, false))?;
        let upstream = &http.targets[chosen.index].upstream;
        let upstream_request = build(route, upstream, &request, &parts).map_err(|why| {
            Refused::status(
                name,
                502,
                "the upstream request could not be formed\n",
                why,
                false,
            )
        })?;
        let settings = &http.settings;
        let body = match RequestBody::start(body, settings.max_body, settings.idle_timeout).await {
            Ok(body) => body,
            Err(fault) => return Err(body_refusal(name, fault, settings.max_body)),
        };
        let tally = body.tally();
        let upstream_request = upstream_request.body(body).map_err(|e| {
            Refused::status(
                name,
                502,
                "the upstream request could not be formed\n",
                e.to_string(),
                false,
            )
        })?;
        let client = &http.targets[chosen.index].client;
        let sent =
            tokio::time::timeout(settings.response_timeout, client.request(upstream_request));
        let response = match sent.await {
            Err(_) => {
                return Err(Refused::status(
                    name,
                    504,
                    "the upstream server did not answer in time\n",
                    format!("no response head within {:?}", settings.response_timeout),
                    false,
                ))
            }
            Ok(Err(e)) => {
                if let Some(fault) = tally.fault() {
                    return Err(body_refusal(name, fault, settings.max_body));
                }
                if e.is_connect() {
                    chosen.failed(route);
                }
                return Err(upstream_failure(name, &e));
            }
            Ok(Ok(response)) => response,
        };
        chosen.succeeded(route);
        let (mut parts, upstream_body) = response.into_parts();
        if parts.status.is_informational() {
            // Never a 101 (or any 1xx) to a plain request: nothing here becomes a tunnel.
            return Err(Refused::status(
                name,
                502,
                "the upstream server answered with an interim status\n",
                format!("upstream answered a plain request with {}", parts.status),
                true,
            ));
        }
        strip_hop_by_hop(&mut parts.headers);
        if let Some(cookie) = chosen.set_cookie.as_deref() {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                parts.headers.append(http::header::SET_COOKIE, value);
            }
        }
        parts.version = Version::HTTP_11;
        let mut lease = chosen.lease;
        if let Some(lease) = lease.as_mut() {
            lease.establish();
        }
        let exchange = Exchange {
            config: p.access_log,
            client: self.peer.addr,
            route: route.name.clone(),
            backend: chosen.backend,
            method: parts_method(&request),
            target: loggable_target(&target, p.access_log.query_values).into_owned(),
            status: parts.status.as_u16(),
            started,
            request: tally,
            lease,
        };
        let body = Tracked::new(upstream_body, settings.idle_timeout, exchange);
        Ok(Response::from_parts(parts, Either::Left(body)))
    }
}

/// The request's method, as the log shows it.
fn parts_method(request: &ClientRequest) -> String {
    request.head.method.clone()
}

/// The canonical form of the request (as for an upgrade): 400/421 otherwise.
fn edge(head: &mut RequestHead, p: &Pipeline<'_>, peer: &Peer) -> Result<Authority, Refused> {
    crate::edge::canonicalize(head, p.edge, peer)
        .map_err(|refusal| Refused::from("-", refusal, true))
}

/// The request as the pipeline's stages read it (a [`RequestHead`]).
fn request_head(parts: &http::request::Parts) -> RequestHead {
    RequestHead {
        method: parts.method.as_str().to_owned(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_owned()),
        version: u8::from(parts.version != Version::HTTP_10),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| Header {
                name: name.as_str().to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect(),
    }
}

/// The request's `Content-Length`, if it has one (hyper refused two different ones).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The backend a request goes to, and what the pool needs to hear of it.
struct Chosen {
    index: usize,
    backend: String,
    lease: Option<crate::pool::Lease>,
    set_cookie: Option<String>,
}

impl Chosen {
    fn failed(&self, route: &Route) {
        if let (Some(pool), Some(_)) = (&route.pool, &self.lease) {
            pool.record_failure(self.index);
        }
    }

    fn succeeded(&self, route: &Route) {
        if let (Some(pool), Some(_)) = (&route.pool, &self.lease) {
            pool.record_success(self.index);
        }
    }
}

/// Picks the backend as an upgrade on the route would be: the sticky cookie's backend while it
/// is up, else the pool's policy (with its hash key); the one upstream without a pool.
fn choose(route: &Route, http: &HttpRoute, request: &ClientRequest) -> Result<Chosen, Refusal> {
    let Some(pool) = route.pool.as_ref().filter(|_| http.uses_pool) else {
        return Ok(Chosen {
            index: 0,
            backend: http.targets[0].upstream.uri.authority(),
            lease: None,
            set_cookie: None,
        });
    };
    let key = match &pool.policy {
        Policy::Hash { key, .. } => key.hash(request),
        _ => None,
    };
    let sticky = pool.sticky_choice(request);
    let index = match sticky {
        Some(index) => index,
        None => pool
            .pick(key, &[])
            .map_err(|_| Refusal::PoolSaturated(pool.name.clone()))?,
    };
    let set_cookie = if sticky == Some(index) {
        None
    } else {
        pool.set_cookie(index, request.peer.secure)
    };
    Ok(Chosen {
        index,
        backend: pool.backends[index].name.clone(),
        lease: Some(pool.lease(index)),
        set_cookie,
    })
}

/// The upstream request, written anew from the parsed request: the route's rewrite after the
/// upstream's path, the forwarding policy's headers (hop-by-hop ones dropped, `X-Forwarded-*`
/// added) and the route's header rules, `Host` as for an upgrade. Framing is hyper's, from
/// the body; `Expect` was answered here.
fn build(
    route: &Route,
    upstream: &crate::upstream::Upstream,
    request: &ClientRequest,
    parts: &http::request::Parts,
) -> Result<http::request::Builder, String> {
    let uri = &upstream.uri;
    let head = &request.head;
    let scheme = if uri.secure { "https" } else { "http" };
    let path = route.upstream_target(uri, &head.target);
    let target: http::Uri = format!("{scheme}://{}{path}", uri.authority())
        .parse()
        .map_err(|e| format!("upstream URI: {e}"))?;
    let context = crate::upstream::forward_context(route, request);
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(target)
        .version(Version::HTTP_11);
    let host = if route.change_origin {
        uri.authority()
    } else {
        head.host().map_or_else(|| uri.authority(), str::to_owned)
    };
    builder = builder.header(http::header::HOST, host);
    for header in route.shape_headers(forward_request_headers(head, &context), uri) {
        if header.name.eq_ignore_ascii_case("Expect") {
            continue;
        }
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_bytes(&header.value).map_err(|e| e.to_string())?;
        builder = builder.header(name, value);
    }
    Ok(builder)
}

/// Drops a response's hop-by-hop headers, and those its `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n.as_str()))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
}

/// 413 for a body over the limit (the connection closes: the rest of the body is not read).
fn too_large(route: &str, max: u64) -> Refused {
    Refused::status(
        route,
        413,
        "the request body is larger than this route accepts\n",
        format!("request body over {max} bytes"),
        true,
    )
}

/// The answer to a request body that stopped early.
fn body_refusal(route: &str, fault: Fault, max: Option<u64>) -> Refused {
    match fault {
        Fault::TooLarge => too_large(route, max.unwrap_or(0)),
        Fault::Malformed => Refused::status(
            route,
            400,
            "the request body is malformed\n",
            fault.to_string(),
            true,
        ),
        Fault::Idle => Refused::status(
            route,
            408,
            "the request body stopped arriving\n",
            fault.to_string(),
            true,
        ),
    }
}

/// 504 when the connect timed out, 502 for every other failure to reach the upstream.
fn upstream_failure(route: &str, e: &hyper_util::client::legacy::Error) -> Refused {
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(cause) = source {
        if let Some(refusal @ Refusal::ConnectTimeout(..)) = cause.downcast_ref::<Refusal>() {
            return Refused::status(
                route,
                504,
                "the upstream server did not answer in time\n",
                refusal.to_string(),
                false,
            );
        }
        source = cause.source();
    }
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    Refused::status(
        route,
        502,
        "the upstream server could not be reached\n",
        reason,
        false,
    )
}

/// A refusal as hyper's response: the status, headers and body the gateway's renderer wrote
/// (the framing is hyper's), with `Connection: close` where the connection ends.
fn answer(refused: &Refused) -> Response<ResponseBody> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let body_at = match parsed.parse(&refused.rendered) {
        Ok(httparse::Status::Complete(at)) => at,
        _ => refused.rendered.len(),
    };
    let status = StatusCode::from_u16(refused.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::new(Either::Right(Full::new(Bytes::copy_from_slice(
        refused.rendered.get(body_at..).unwrap_or_default(),
    ))));
    *response.status_mut() = status;
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("Content-Length")
            || h.name.eq_ignore_ascii_case("Connection")
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    if refused.close {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
