//! Loading a configuration document (a file, or the one-upstream flags written as one) into a
//! [`GatewayConfig`]: what each key means, its default, and the checks across keys. Every
//! error found is reported, each with a hint; [`diagnostics`](super::diagnostics) places it.
//!
//! The annotated reference is `examples/wsrelay.toml`; the README lists every key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use toml::Spanned;
use wsrelay_handshake::{is_hop_by_hop, validate_header, Limits, WsUri};
use wsrelay_relay::{RelayOptions, Remask};

use super::diagnostics::{parse_document, Origin, Reporter};
use super::flags::FlagDocument;
use super::schema::{Document, RouteSection, Tuning, UpstreamTlsSection};
use super::{defaults, GatewayConfig};
use crate::route::{PathMatch, Route, PERMESSAGE_DEFLATE};
use crate::tls::{self, UpstreamTls};
use crate::upstream::Upstream;
use crate::Error;

/// Reads and loads a configuration file; relative paths in it are relative to its directory.
pub fn load(path: &Path) -> Result<GatewayConfig, Error> {
    let source = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&source, &path.display().to_string(), base)
}

/// Loads a configuration from its text. `file` names it in errors; relative paths in it are
/// taken from `base_dir`. Returns every error found, not only the first.
pub fn parse(source: &str, file: &str, base_dir: &Path) -> Result<GatewayConfig, Error> {
    load_document(source, &Origin::File(file.to_owned()), base_dir)
}

/// Loads the one-upstream flags: the same loader and checks as a file, errors naming the flag.
pub fn from_flags(flags: &FlagDocument) -> Result<GatewayConfig, Error> {
    let (source, lines) = flags.render();
    load_document(&source, &Origin::Flags(lines), Path::new("."))
}

/// The one loader of both origins: parse (every unknown key), then meaning (every bad value).
fn load_document(source: &str, origin: &Origin, base_dir: &Path) -> Result<GatewayConfig, Error> {
    let mut loader = Loader {
        report: Reporter::new(source, origin),
        base_dir,
        providers: Default::default(),
        pools: Vec::new(),
    };
    let config = parse_document::<Document>(&mut loader.report).map(|doc| loader.build(doc));
    let errors = loader.report.finish();
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(Error::Config(errors)),
    }
}

/// The worker count a setting asks for: 0 is one per CPU.
fn workers(setting: Option<usize>) -> usize {
    match setting.unwrap_or(defaults::WORKERS) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Turns the parsed document into a [`GatewayConfig`], reporting what is wrong.
struct Loader<'a> {
    report: Reporter<'a>,
    base_dir: &'a Path,
    /// The JWT providers of `[auth.NAME]`, loaded before the routes that name them.
    providers: std::collections::BTreeMap<String, Arc<crate::auth::Provider>>,
    /// The `[[pools]]` by name, for routes to name (`None`: the pool has errors).
    pools: Vec<(String, Option<Arc<crate::pool::Pool>>)>,
}

impl Loader<'_> {
    /// A duration like `"10s"`; `zero` says whether `"0s"` is allowed (and what it means).
    fn duration(
        &mut self,
        value: Option<&Spanned<String>>,
        default: Duration,
        zero: bool,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        match humantime::parse_duration(value.get_ref().trim()) {
            Ok(d) if d.is_zero() && !zero => {
                self.report.at(
                    value,
                    "this timeout cannot be 0",
                    "a zero timeout would fail every connection; give a duration such as \"10s\"",
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.report.at(
                    value,
                    &format!("invalid duration {:?}: {e}", value.get_ref()),
                    "write a number and a unit: \"500ms\", \"10s\", \"2m\", \"1h\"",
                );
                default
            }
        }
    }

    /// A path from the file, relative to the file's directory; must exist.
    fn path(&mut self, value: &Spanned<String>) -> PathBuf {
        let path = self.base_dir.join(value.get_ref());
        if let Err(e) = std::fs::metadata(&path) {
            self.report.at(
                value,
                &format!("cannot read {}: {e}", path.display()),
                "relative paths are relative to the configuration file's directory",
            );
        }
        path
    }

    fn build(&mut self, document: Document) -> GatewayConfig {
        let server = &document.server;
        let handshake_timeout = self.duration(
            server.handshake_timeout.as_ref(),
            defaults::HANDSHAKE_TIMEOUT,
            false,
        );
        let shutdown_timeout = self.duration(
            server.shutdown_timeout.as_ref(),
            defaults::SHUTDOWN_TIMEOUT,
            true,
        );
        let workers = workers(server.workers);
        let access_log = self.access_log(server);
        let admin = self.admin(&document.admin);
        let routes_api = self.routes_api(&document.admin, admin);
        let winding_down = self.winding_down(server);
        if document.listeners.is_empty() {
            self.report.error(
                None,
                "no listener",
                "add one: [[listeners]] with address = \"0.0.0.0:8080\"",
            );
        }
        if document.routes.is_empty() {
            self.report.error(
                None,
                "no route",
                "add one: [[routes]] with path_prefix = \"/\" and upstream = \"ws://HOST:PORT\"",
            );
        }
        let admission = self.admission(&document);
        let listeners = document
            .listeners
            .iter()
            .filter_map(|l| self.listener(l))
            .collect();
        self.providers = self.auth_providers(&document.auth);
        self.pools = self.pools(&document.pools);
        let routes = document
            .routes
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| self.route(i, r, &document.defaults))
            .collect();
        GatewayConfig {
            listeners,
            routes,
            handshake_timeout,
            shutdown_timeout,
            limits: Limits::default(),
            workers,
            admission,
            warnings: self.report.take_warnings(),
            admin,
            access_log,
            winding_down,
            routes_api,
        }
    }

    fn route(
        &mut self,
        index: usize,
        section: Spanned<RouteSection>,
        fallback: &Tuning,
    ) -> Option<Route> {
        let span = section.span();
        let r = section.into_inner();
        let before = self.report.count();
        let name = r.name.clone().unwrap_or_else(|| format!("#{}", index + 1));
        let path = match (&r.path_prefix, &r.path_regex) {
            (Some(prefix), None) => {
                if !prefix.get_ref().starts_with('/') {
                    self.report.at(
                        prefix,
                        "a path prefix starts with /",
                        "for instance \"/ws\"",
                    );
                }
                PathMatch::prefix(prefix.get_ref())
            }
            (None, Some(pattern)) => match Regex::new(pattern.get_ref()) {
                Ok(regex) => PathMatch::Regex(regex),
                Err(e) => {
                    self.report.at(
                        pattern,
                        &format!("invalid regular expression: {e}"),
                        "Rust regex syntax (https://docs.rs/regex); anchor it: \"^/ws/chat(/.*)?$\"",
                    );
                    return None;
                }
            },
            (Some(prefix), Some(_)) => {
                self.report.at(
                    prefix,
                    "a route has either path_prefix or path_regex, not both",
                    "keep one of them",
                );
                return None;
            }
            (None, None) => {
                self.report.error(
                    Some(span),
                    "route without a path match",
                    "add path_prefix = \"/\" (every path) or path_regex = \"^/ws/(.*)$\"",
                );
                return None;
            }
        };
        if let Some(rewrite) = &r.rewrite {
            self.check_rewrite(rewrite, &path);
        }
        let pool = self.route_pool(r.pool.as_ref(), r.upstream.as_ref());
        let upstream = match &r.upstream {
            Some(uri) => self.upstream(uri, r.upstream_tls.as_ref()),
            None if r.pool.is_some() => None,
            None if r.websocket => {
                self.report.error(
                    Some(span),
                    "route without an upstream",
                    "add upstream = \"ws://HOST:PORT\" (or wss://), or websocket = false to \
                     refuse this route's requests",
                );
                None
            }
            None => None,
        };
        let mut add_headers = Vec::new();
        for (name, value) in &r.add_headers {
            if let Some(hint) = reserved_header(name) {
                self.report
                    .at(value, &format!("{name} cannot be set by add_headers"), hint);
            } else if validate_header(name, value.get_ref().as_bytes()).is_err() {
                self.report.at(
                    value,
                    &format!("invalid header {name:?}"),
                    "names are HTTP tokens; values may not contain control characters (CR, LF)",
                );
            } else {
                add_headers.push((name.clone(), value.get_ref().clone()));
            }
        }
        let extensions = match &r.extensions {
            None => vec![PERMESSAGE_DEFLATE.to_owned()],
            Some(list) => list.iter().map(|e| e.get_ref().trim().to_owned()).collect(),
        };
        let (connect_timeout, upgrade_timeout, relay) = self.tuning(&r.tuning().or(fallback));
        let auth = self.route_auth(r.auth.as_ref());
        let send_proxy_protocol = self.send_proxy_protocol(r.send_proxy_protocol.as_ref());
        let http = self.route_http(
            &r,
            fallback,
            upstream.as_ref(),
            pool.as_deref(),
            connect_timeout,
        );
        if self.report.count() > before {
            return None;
        }
        Some(Route {
            name,
            host: r.host.map(Spanned::into_inner),
            path,
            upstream,
            rewrite: r.rewrite.map(Spanned::into_inner),
            add_headers,
            remove_headers: r
                .remove_headers
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            change_origin: r.change_origin,
            forwarded_header: r.forwarded_header.unwrap_or(defaults::FORWARDED_HEADER),
            websocket: r.websocket,
            allowed_origins: r
                .allowed_origins
                .into_iter()
                .map(|o| o.into_inner().trim_end_matches('/').to_owned())
                .collect(),
            extensions,
            connect_timeout,
            upgrade_timeout,
            relay,
            auth,
            pool,
            send_proxy_protocol,
            http,
        })
    }

    /// A route's tuning keys (its own over `[defaults]`): the connect and upgrade timeouts,
    /// and how its frames are relayed.
    fn tuning(&mut self, tuning: &Tuning) -> (Duration, Duration, RelayOptions) {
        let connect_timeout = self.duration(
            tuning.connect_timeout.as_ref(),
            defaults::CONNECT_TIMEOUT,
            false,
        );
        let upgrade_timeout = self.duration(
            tuning.upgrade_timeout.as_ref(),
            defaults::UPGRADE_TIMEOUT,
            false,
        );
        let idle = self.duration(tuning.idle_timeout.as_ref(), defaults::IDLE_TIMEOUT, true);
        let keepalive = self.duration(
            tuning.keepalive_interval.as_ref(),
            defaults::KEEPALIVE_INTERVAL,
            true,
        );
        let close_timeout = self.duration(
            tuning.close_timeout.as_ref(),
            defaults::CLOSE_TIMEOUT,
            false,
        );
        let buffer_size = match &tuning.buffer_size {
            Some(size) if *size.get_ref() < defaults::MIN_BUFFER_SIZE => {
                self.report.at(
                    size,
                    &format!("buffer_size below {} bytes", defaults::MIN_BUFFER_SIZE),
                    &format!(
                        "a buffer must hold a whole control frame; {} is the default",
                        defaults::BUFFER_SIZE
                    ),
                );
                defaults::BUFFER_SIZE
            }
            Some(size) => *size.get_ref(),
            None => defaults::BUFFER_SIZE,
        };
        let frame = defaults::size_limit(tuning.max_frame_size.unwrap_or(defaults::MAX_FRAME_SIZE));
        let message = defaults::size_limit(
            tuning
                .max_message_size
                .unwrap_or(defaults::MAX_MESSAGE_SIZE),
        );
        let relay = RelayOptions {
            buffer_size,
            client_max_frame_size: frame,
            upstream_max_frame_size: frame,
            client_max_message_size: message,
            upstream_max_message_size: message,
            validate_utf8: tuning.validate_utf8.unwrap_or(defaults::VALIDATE_UTF8),
            allowed_rsv: 0,
            close_timeout,
            idle_timeout: defaults::none_if_zero(idle),
            keep_alive: defaults::none_if_zero(keepalive),
            aggregate_fragments: false,
            remask: self.remask(tuning.remask.as_ref()),
            client_rate_limit: self.rate_limit(tuning.client_rate_limit.as_ref()),
            upstream_rate_limit: self.rate_limit(tuning.upstream_rate_limit.as_ref()),
        };
        (connect_timeout, upgrade_timeout, relay)
    }

    /// `remask`: when a client's frames get masking keys of the relay's own.
    fn remask(&mut self, value: Option<&Spanned<String>>) -> Remask {
        let Some(value) = value else {
            return defaults::REMASK;
        };
        match value.get_ref().as_str() {
            "auto" => Remask::Auto,
            "always" => Remask::Always,
            "never" => Remask::Never,
            other => {
                self.report.at(
                    value,
                    &format!("unknown remask mode {other:?}"),
                    "write \"auto\" (re-mask once a client's keys are predictable; the default), \
                     \"always\" or \"never\"",
                );
                defaults::REMASK
            }
        }
    }

    /// Every `$name` / `${name}` of a rewrite must name a capture group of the path match.
    fn check_rewrite(&mut self, rewrite: &Spanned<String>, path: &PathMatch) {
        let regex = match path {
            PathMatch::Prefix { regex, .. } | PathMatch::Regex(regex) => regex,
        };
        for reference in template_references(rewrite.get_ref()) {
            let known = match reference.parse::<usize>() {
                Ok(n) => n < regex.captures_len(),
                Err(_) => regex.capture_names().flatten().any(|n| n == reference),
            };
            if !known {
                let hint = if reference.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    format!(
                        "the path match has {} group(s); write ${{1}} when letters follow \
                         (\"${{1}}x\", not \"$1x\"), and $$ for a literal $",
                        regex.captures_len() - 1
                    )
                } else {
                    "name the group in path_regex, e.g. (?P<room>[^/]+), or use a number".to_owned()
                };
                self.report.at(
                    rewrite,
                    &format!(
                        "rewrite refers to ${reference}, which the path match does not capture"
                    ),
                    &hint,
                );
            }
        }
        if !rewrite.get_ref().starts_with('/') && !rewrite.get_ref().starts_with('$') {
            self.report.at(
                rewrite,
                "a rewrite gives a path",
                "start it with /, e.g. \"/chat$1\"",
            );
        }
    }

    fn upstream(
        &mut self,
        uri: &Spanned<String>,
        tls: Option<&Spanned<UpstreamTlsSection>>,
    ) -> Option<Upstream> {
        let parsed = match WsUri::parse(uri.get_ref()) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.report.at(
                    uri,
                    &e.to_string(),
                    "ws://HOST:PORT/PATH or wss://HOST:PORT/PATH; the path is put before the \
                     client's (rewritten) path",
                );
                return None;
            }
        };
        if !parsed.secure {
            if let Some(tls) = tls {
                self.report.at(
                    tls,
                    "upstream_tls on a ws:// upstream",
                    "use a wss:// upstream, or remove upstream_tls",
                );
                return None;
            }
            return Some(Upstream {
                uri: parsed,
                tls: None,
                insecure_skip_verify: false,
            });
        }
        let default = UpstreamTlsSection::default();
        let section = tls.map_or(&default, Spanned::get_ref);
        let before = self.report.count();
        let settings = UpstreamTls {
            ca_file: section.ca_file.as_ref().map(|p| self.path(p)),
            client_cert_file: section.client_cert_file.as_ref().map(|p| self.path(p)),
            client_key_file: section.client_key_file.as_ref().map(|p| self.path(p)),
            insecure_skip_verify: section.insecure_skip_verify,
        };
        if section.insecure_skip_verify && section.ca_file.is_some() {
            if let Some(tls) = tls {
                self.report.at(
                    tls,
                    "ca_file and insecure_skip_verify together",
                    "with insecure_skip_verify no certificate is checked; remove one of them",
                );
            }
        }
        if self.report.count() > before {
            // A missing file is reported at its key; rustls would only repeat it.
            return None;
        }
        match tls::client_config(&settings) {
            Ok(config) => Some(Upstream {
                uri: parsed,
                tls: Some(Arc::new(config)),
                insecure_skip_verify: section.insecure_skip_verify,
            }),
            Err(e) => {
                match tls {
                    Some(tls) => self.report.at(
                        tls,
                        &e.to_string(),
                        "ca_file holds PEM CA certificates; client_cert_file and \
                         client_key_file a PEM chain and its key, both or neither",
                    ),
                    None => {
                        self.report
                            .at(uri, &e.to_string(), "check the system's CA certificates")
                    }
                }
                None
            }
        }
    }
}

/// Headers the gateway writes itself, which `add_headers` may not set; with the reason.
fn reserved_header(name: &str) -> Option<&'static str> {
    if name.eq_ignore_ascii_case("Host") || name.eq_ignore_ascii_case("Origin") {
        return Some("use change_origin = true to send the upstream's Host and Origin");
    }
    let handshake = name
        .get(..14)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("Sec-WebSocket-"));
    if handshake || is_hop_by_hop(name) || name.eq_ignore_ascii_case("Content-Length") {
        return Some("handshake and hop-by-hop headers are negotiated by the gateway on each side");
    }
    None
}

/// The group references of a regex replacement template (`$1`, `$name`, `${name}`; `$$` is a
/// literal `$`), as the regex crate reads them.
fn template_references(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => {
                    out.push(&braced[..end]);
                    rest = &braced[end + 1..];
                }
                None => rest = braced,
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end > 0 {
                out.push(&rest[..end]);
            }
            rest = &rest[end..];
        }
    }
    out
}

mod auth;
mod http;
mod http2;
mod limits;
mod listener;
mod observability;
pub(super) mod pool;
mod proxy_protocol;
mod routes_api;
#[cfg(test)]
mod tests;
mod winding_down;
