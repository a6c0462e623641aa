//! The TOML configuration file: its format, and its loading into a [`GatewayConfig`], with
//! every error pointing at a line and column and carrying a hint. Unknown keys are errors.
//!
//! The annotated reference is `examples/wsrelay.toml`; the README lists every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;
use wsrelay_handshake::{is_hop_by_hop, validate_header, Limits, WsUri};
use wsrelay_relay::RelayOptions;

use super::{defaults, GatewayConfig, ListenerConfig};
use crate::error::ConfigError;
use crate::route::{PathMatch, Route, Upstream, PERMESSAGE_DEFLATE};
use crate::tls::{self, CertificateFiles, UpstreamTls};
use crate::Error;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    defaults: Tuning,
    #[serde(default)]
    listeners: Vec<Spanned<ListenerSection>>,
    #[serde(default)]
    routes: Vec<Spanned<RouteSection>>,
}

/// `[server]`: process-wide settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    workers: Option<usize>,
    handshake_timeout: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<String>>,
}

/// Settings of relayed connections: in `[defaults]`, and on each route to override them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tuning {
    connect_timeout: Option<Spanned<String>>,
    upgrade_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    close_timeout: Option<Spanned<String>>,
    max_frame_size: Option<u64>,
    max_message_size: Option<u64>,
    buffer_size: Option<Spanned<usize>>,
    validate_utf8: Option<bool>,
    keepalive_interval: Option<Spanned<String>>,
}

impl Tuning {
    /// This route's values where set, the defaults' elsewhere.
    fn or(self, defaults: &Tuning) -> Tuning {
        let d = defaults.clone();
        Tuning {
            connect_timeout: self.connect_timeout.or(d.connect_timeout),
            upgrade_timeout: self.upgrade_timeout.or(d.upgrade_timeout),
            idle_timeout: self.idle_timeout.or(d.idle_timeout),
            close_timeout: self.close_timeout.or(d.close_timeout),
            max_frame_size: self.max_frame_size.or(d.max_frame_size),
            max_message_size: self.max_message_size.or(d.max_message_size),
            buffer_size: self.buffer_size.or(d.buffer_size),
            validate_utf8: self.validate_utf8.or(d.validate_utf8),
            keepalive_interval: self.keepalive_interval.or(d.keepalive_interval),
        }
    }
}

/// `[[listeners]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerSection {
    address: Spanned<String>,
    tls: Option<Spanned<ListenerTls>>,
}

/// `[listeners.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerTls {
    certificates: Vec<Spanned<CertificateSection>>,
}

/// `[[listeners.tls.certificates]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateSection {
    cert_file: Spanned<String>,
    key_file: Spanned<String>,
    #[serde(default)]
    server_names: Vec<String>,
}

/// `[[routes]]`: the route's own keys, then the same tuning keys as `[defaults]` (repeated
/// here because serde's `flatten` cannot be combined with `deny_unknown_fields`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    name: Option<String>,
    host: Option<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    path_regex: Option<Spanned<String>>,
    upstream: Option<Spanned<String>>,
    rewrite: Option<Spanned<String>>,
    #[serde(default)]
    add_headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    remove_headers: Vec<Spanned<String>>,
    #[serde(default)]
    change_origin: bool,
    #[serde(default = "yes")]
    websocket: bool,
    #[serde(default)]
    allowed_origins: Vec<Spanned<String>>,
    extensions: Option<Vec<Spanned<String>>>,
    upstream_tls: Option<Spanned<UpstreamTlsSection>>,

    connect_timeout: Option<Spanned<String>>,
    upgrade_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    close_timeout: Option<Spanned<String>>,
    max_frame_size: Option<u64>,
    max_message_size: Option<u64>,
    buffer_size: Option<Spanned<usize>>,
    validate_utf8: Option<bool>,
    keepalive_interval: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// `[routes.upstream_tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamTlsSection {
    ca_file: Option<Spanned<String>>,
    client_cert_file: Option<Spanned<String>>,
    client_key_file: Option<Spanned<String>>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

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
    let mut loader = Loader {
        file,
        source,
        base_dir,
        errors: Vec::new(),
    };
    // serde stops at the first error. An unknown key is recovered from: its line is blanked
    // (offsets kept, so later positions stay right) and the file parsed again, so every
    // unknown key is reported. Any other error ends the parse.
    let mut text = source.to_owned();
    let mut parsed = None;
    for attempt in 0..MAX_PARSE_ERRORS {
        match toml::from_str::<FileConfig>(&text) {
            Ok(file) => {
                parsed = Some(file);
                break;
            }
            Err(e) => {
                // After a blanking, only errors in text that is still valid TOML are genuine.
                let genuine = attempt == 0 || text.parse::<toml::Table>().is_ok();
                if genuine {
                    loader.error(e.span(), e.message().trim_end(), &toml_hint(e.message()));
                }
                let recovered = match e.span() {
                    Some(span) if genuine && e.message().contains("unknown field") => {
                        blank_line(&mut text, span.start)
                    }
                    _ => false,
                };
                if !recovered {
                    break;
                }
            }
        }
    }
    let config = parsed.map(|file| loader.build(file));
    loader.errors.sort_by_key(|e| (e.line, e.column));
    match config {
        Some(config) if loader.errors.is_empty() => Ok(config),
        _ => Err(Error::Config(loader.errors)),
    }
}

/// Most errors reported from one file's TOML parsing (the loop that recovers from unknown keys).
const MAX_PARSE_ERRORS: usize = 32;

/// Replaces the line holding byte `at` with spaces, keeping every byte offset in place;
/// false if there was nothing to blank (so the same error would come back).
fn blank_line(text: &mut String, at: usize) -> bool {
    let Some(before) = text.get(..at) else {
        return false;
    };
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    if text[start..end].trim().is_empty() {
        return false;
    }
    let spaces = " ".repeat(text[start..end].len());
    text.replace_range(start..end, &spaces);
    true
}

/// A hint for an error from the TOML parser or from serde (types, unknown or missing keys).
fn toml_hint(message: &str) -> String {
    if message.contains("unknown field") {
        return unknown_key_hint(message);
    }
    if message.contains("missing field") {
        return "add the key; every key is listed in the README's configuration reference"
            .to_owned();
    }
    if message.contains("invalid type") {
        return "check the value's type: durations, addresses, paths and URIs are quoted \
                strings (\"10s\"), sizes are integers (65536), switches are true or false"
            .to_owned();
    }
    "this is not valid TOML here; see https://toml.io for the syntax".to_owned()
}

/// "did you mean ...?" for a misspelt key, from serde's "unknown field `x`, expected one of
/// `a`, `b`" message.
fn unknown_key_hint(message: &str) -> String {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let Some((unknown, expected)) = quoted.split_first() else {
        return "remove the key or check its spelling".to_owned();
    };
    let closest = expected
        .iter()
        .map(|k| {
            // A shortened key ("ca" for "ca_file") is as good as a near miss.
            let shortened = k.starts_with(unknown) || unknown.starts_with(k);
            let distance = if shortened {
                0
            } else {
                edit_distance(unknown, k)
            };
            (distance, *k)
        })
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 3));
    match closest {
        Some((_, key)) => format!("did you mean `{key}`?"),
        None => format!(
            "remove `{unknown}`; keys allowed here: {}",
            expected.join(", ")
        ),
    }
}

/// Levenshtein distance, for key suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Collects errors while turning the parsed file into a [`GatewayConfig`].
struct Loader<'a> {
    file: &'a str,
    source: &'a str,
    base_dir: &'a Path,
    errors: Vec<ConfigError>,
}

impl Loader<'_> {
    fn error(&mut self, span: Option<Range<usize>>, message: &str, hint: &str) {
        let (line, column, source_line) = match span {
            Some(span) => position(self.source, span.start),
            None => (0, 0, String::new()),
        };
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.to_owned(),
            hint: hint.to_owned(),
            source_line,
        });
    }

    fn at<T>(&mut self, value: &Spanned<T>, message: &str, hint: &str) {
        self.error(Some(value.span()), message, hint);
    }

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
                self.at(
                    value,
                    "this timeout cannot be 0",
                    "a zero timeout would fail every connection; give a duration such as \"10s\"",
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.at(
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
            self.at(
                value,
                &format!("cannot read {}: {e}", path.display()),
                "relative paths are relative to the configuration file's directory",
            );
        }
        path
    }

    fn build(&mut self, file: FileConfig) -> GatewayConfig {
        let server = &file.server;
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
        let workers = match server.workers {
            None | Some(0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(n) => n,
        };
        if file.listeners.is_empty() {
            self.error(
                None,
                "no listener",
                "add one: [[listeners]] with address = \"0.0.0.0:8080\"",
            );
        }
        if file.routes.is_empty() {
            self.error(
                None,
                "no route",
                "add one: [[routes]] with path_prefix = \"/\" and upstream = \"ws://HOST:PORT\"",
            );
        }
        let listeners = file
            .listeners
            .iter()
            .filter_map(|l| self.listener(l))
            .collect();
        let routes = file
            .routes
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| self.route(i, r, &file.defaults))
            .collect();
        GatewayConfig {
            listeners,
            routes,
            handshake_timeout,
            shutdown_timeout,
            limits: Limits::default(),
            workers,
        }
    }

    fn listener(&mut self, section: &Spanned<ListenerSection>) -> Option<ListenerConfig> {
        let l = section.get_ref();
        let address = match l.address.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                self.at(
                    &l.address,
                    &format!("invalid listen address {:?}: {e}", l.address.get_ref()),
                    "an IP address and a port: \"0.0.0.0:8080\", \"127.0.0.1:8443\", \"[::]:8080\"",
                );
                None
            }
        };
        let tls = match &l.tls {
            None => None,
            Some(tls) => {
                if tls.get_ref().certificates.is_empty() {
                    self.at(
                        tls,
                        "TLS listener without certificates",
                        "add [[listeners.tls.certificates]] with cert_file and key_file",
                    );
                    return None;
                }
                let before = self.errors.len();
                let files: Vec<CertificateFiles> = tls
                    .get_ref()
                    .certificates
                    .iter()
                    .map(|c| {
                        let c = c.get_ref();
                        CertificateFiles {
                            cert_file: self.path(&c.cert_file),
                            key_file: self.path(&c.key_file),
                            server_names: c.server_names.clone(),
                        }
                    })
                    .collect();
                if self.errors.len() > before {
                    return None;
                }
                match tls::server_config(&files) {
                    Ok(config) => Some(Arc::new(config)),
                    Err(e) => {
                        self.at(
                            tls,
                            &e.to_string(),
                            "cert_file is a PEM certificate chain (leaf first), key_file the \
                             PEM private key of that leaf",
                        );
                        return None;
                    }
                }
            }
        };
        Some(ListenerConfig {
            address: address?,
            tls,
        })
    }

    fn route(
        &mut self,
        index: usize,
        section: Spanned<RouteSection>,
        defaults: &Tuning,
    ) -> Option<Route> {
        let span = section.span();
        let r = section.into_inner();
        let before = self.errors.len();
        let name = r.name.clone().unwrap_or_else(|| format!("#{}", index + 1));
        let path = match (&r.path_prefix, &r.path_regex) {
            (Some(prefix), None) => {
                if !prefix.get_ref().starts_with('/') {
                    self.at(
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
                    self.at(
                        pattern,
                        &format!("invalid regular expression: {e}"),
                        "Rust regex syntax (https://docs.rs/regex); anchor it: \"^/ws/chat(/.*)?$\"",
                    );
                    return None;
                }
            },
            (Some(prefix), Some(_)) => {
                self.at(
                    prefix,
                    "a route has either path_prefix or path_regex, not both",
                    "keep one of them",
                );
                return None;
            }
            (None, None) => {
                self.error(
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
        let tuning = Tuning {
            connect_timeout: r.connect_timeout,
            upgrade_timeout: r.upgrade_timeout,
            idle_timeout: r.idle_timeout,
            close_timeout: r.close_timeout,
            max_frame_size: r.max_frame_size,
            max_message_size: r.max_message_size,
            buffer_size: r.buffer_size,
            validate_utf8: r.validate_utf8,
            keepalive_interval: r.keepalive_interval,
        }
        .or(defaults);
        let upstream = match &r.upstream {
            Some(uri) => self.upstream(uri, r.upstream_tls.as_ref()),
            None if r.websocket => {
                self.error(
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
                self.at(value, &format!("{name} cannot be set by add_headers"), hint);
            } else if validate_header(name, value.get_ref().as_bytes()).is_err() {
                self.at(
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
        let idle = self.duration(tuning.idle_timeout.as_ref(), Duration::ZERO, true);
        let keepalive = self.duration(tuning.keepalive_interval.as_ref(), Duration::ZERO, true);
        let close_timeout = self.duration(
            tuning.close_timeout.as_ref(),
            defaults::CLOSE_TIMEOUT,
            false,
        );
        let buffer_size = match &tuning.buffer_size {
            Some(size) if *size.get_ref() < defaults::MIN_BUFFER_SIZE => {
                self.at(
                    size,
                    "buffer_size below 256 bytes",
                    "a buffer must hold a whole control frame; 262144 is the default",
                );
                defaults::BUFFER_SIZE
            }
            Some(size) => *size.get_ref(),
            None => defaults::BUFFER_SIZE,
        };
        let unlimited = |n: Option<u64>| n.filter(|&n| n != 0);
        let relay = RelayOptions {
            buffer_size,
            client_max_frame_size: unlimited(tuning.max_frame_size),
            upstream_max_frame_size: unlimited(tuning.max_frame_size),
            client_max_message_size: unlimited(tuning.max_message_size),
            upstream_max_message_size: unlimited(tuning.max_message_size),
            validate_utf8: tuning.validate_utf8.unwrap_or(true),
            allowed_rsv: 0,
            close_timeout,
            idle_timeout: (!idle.is_zero()).then_some(idle),
            keep_alive: (!keepalive.is_zero()).then_some(keepalive),
            aggregate_fragments: false,
        };
        if self.errors.len() > before {
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
        })
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
                self.at(
                    rewrite,
                    &format!(
                        "rewrite refers to ${reference}, which the path match does not capture"
                    ),
                    &hint,
                );
            }
        }
        if !rewrite.get_ref().starts_with('/') && !rewrite.get_ref().starts_with('$') {
            self.at(
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
                self.at(
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
                self.at(
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
        let before = self.errors.len();
        let settings = UpstreamTls {
            ca_file: section.ca_file.as_ref().map(|p| self.path(p)),
            client_cert_file: section.client_cert_file.as_ref().map(|p| self.path(p)),
            client_key_file: section.client_key_file.as_ref().map(|p| self.path(p)),
            insecure_skip_verify: section.insecure_skip_verify,
        };
        if section.insecure_skip_verify && section.ca_file.is_some() {
            if let Some(tls) = tls {
                self.at(
                    tls,
                    "ca_file and insecure_skip_verify together",
                    "with insecure_skip_verify no certificate is checked; remove one of them",
                );
            }
        }
        if self.errors.len() > before {
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
                    Some(tls) => self.at(
                        tls,
                        &e.to_string(),
                        "ca_file holds PEM CA certificates; client_cert_file and \
                         client_key_file a PEM chain and its key, both or neither",
                    ),
                    None => self.at(uri, &e.to_string(), "check the system's CA certificates"),
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

/// 1-based line and column (in characters) of a byte offset, and that line's text.
fn position(source: &str, offset: usize) -> (usize, usize, String) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let text = source[line_start..].lines().next().unwrap_or("").to_owned();
    (line, column, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(source: &str) -> Vec<ConfigError> {
        match parse(source, "test.toml", Path::new(".")) {
            Err(Error::Config(errors)) => errors,
            Ok(_) => panic!("accepted:\n{source}"),
            Err(e) => panic!("{e}"),
        }
    }

    const MINIMAL: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:9\"\n";

    #[test]
    fn minimal_config_loads_with_defaults() {
        let config = parse(MINIMAL, "t", Path::new(".")).unwrap();
        assert_eq!(config.listeners.len(), 1);
        let route = &config.routes[0];
        assert_eq!(route.connect_timeout, Duration::from_secs(5));
        assert_eq!(route.relay, crate::route::default_relay_options());
        assert_eq!(route.extensions, ["permessage-deflate"]);
        assert!(route.websocket && !route.change_origin);
    }

    #[test]
    fn unknown_keys_are_errors_with_position_and_suggestion() {
        let source = format!("{MINIMAL}idle_timout = \"5s\"\n");
        let e = &errors(&source)[0];
        assert_eq!((e.line, e.column), (7, 1), "{e}");
        assert!(e.message.contains("idle_timout"), "{e}");
        assert_eq!(e.hint, "did you mean `idle_timeout`?");
    }

    #[test]
    fn every_unknown_key_is_reported_with_the_semantic_errors() {
        let source = format!(
            "[server]\nworker = 2\n{MINIMAL}idle_timout = \"5s\"\nupstream_tls = {{ ca = \"x\" }}\nconnect_timeout = \"soon\"\n"
        );
        let errs = errors(&source);
        let at: Vec<(usize, usize, &str)> = errs
            .iter()
            .map(|e| (e.line, e.column, e.hint.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (2, 1, "did you mean `workers`?"),
                (9, 1, "did you mean `idle_timeout`?"),
                (10, 18, "did you mean `ca_file`?"),
                (
                    11,
                    19,
                    "write a number and a unit: \"500ms\", \"10s\", \"2m\", \"1h\""
                )
            ],
            "{errs:#?}"
        );
        // A key whose value spans lines cannot be blanked cleanly: no made-up errors follow.
        let source = format!("{MINIMAL}allowed_origin = [\n  \"https://a\",\n]\n");
        assert_eq!(errors(&source).len(), 1);
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let source = "[[listeners]]\naddress = \"nowhere\"\n\n[[routes]]\npath_regex = \"^/ws/(.*$\"\nupstream = \"ws://x\"\n\n[[routes]]\npath_prefix = \"/\"\nupstream = \"http://x\"\nidle_timeout = \"5 parsecs\"\n";
        let errs = errors(source);
        let at: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(at, [(2, 11), (5, 14), (10, 12), (11, 16)], "{errs:#?}");
        assert!(errs.iter().all(|e| !e.hint.is_empty()));
    }

    #[test]
    fn rewrite_references_are_checked() {
        let source = MINIMAL.replace(
            "path_prefix = \"/\"",
            "path_regex = \"^/ws/(?P<room>.*)$\"\nrewrite = \"/r/$2/${room}/$1x\"",
        );
        let errs = errors(&source);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].message.contains("$2"));
        assert!(errs[1].message.contains("$1x") && errs[1].hint.contains("${1}"));
        assert_eq!(template_references("a$$b${x}$1/$n_2-"), ["x", "1", "n_2"]);
    }

    #[test]
    fn reserved_and_invalid_headers_are_refused() {
        let source = format!(
            "{MINIMAL}add_headers = {{ Host = \"x\", \"Sec-WebSocket-Protocol\" = \"y\", \"X-Ok\" = \"a\\nb\" }}\n"
        );
        assert_eq!(errors(&source).len(), 3);
    }

    #[test]
    fn missing_files_are_reported_at_their_key() {
        let source = format!(
            "{MINIMAL}[routes.upstream_tls]\nca_file = \"no/such/ca.pem\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.tls.certificates]]\ncert_file = \"missing.pem\"\nkey_file = \"missing.key\"\n"
        );
        let source = source.replace("ws://127.0.0.1:9", "wss://127.0.0.1:9");
        let errs = errors(&source);
        let at: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(at, [(8, 11), (13, 13), (14, 12)], "{errs:#?}");
        assert!(errs[1].message.contains("missing.pem"), "{errs:#?}");
        assert!(errs[1].hint.contains("relative to the configuration file"));
    }

    #[test]
    fn server_keys_are_read() {
        let source = format!("[server]\nworkers = 3\nshutdown_timeout = \"0s\"\n{MINIMAL}");
        let config = parse(&source, "t", Path::new(".")).unwrap();
        assert_eq!(
            (config.workers, config.shutdown_timeout),
            (3, Duration::ZERO)
        );
        let e =
            &errors(&MINIMAL.replace("path_prefix", "connect_timeout = \"0s\"\npath_prefix"))[0];
        assert!(e.message.contains("cannot be 0"), "{e}");
    }

    #[test]
    fn tuning_keys_reach_the_relay_options_and_routes_override_defaults() {
        let source = format!(
            "[defaults]\nidle_timeout = \"1m\"\nclose_timeout = \"2s\"\nmax_frame_size = 10\nmax_message_size = 20\nbuffer_size = 4096\nvalidate_utf8 = false\nconnect_timeout = \"1s\"\nupgrade_timeout = \"3s\"\nkeepalive_interval = \"20s\"\n{MINIMAL}\n[[routes]]\npath_prefix = \"/b\"\nupstream = \"ws://127.0.0.1:9\"\nbuffer_size = 512\nmax_frame_size = 0\nidle_timeout = \"0s\"\nkeepalive_interval = \"0s\"\n"
        );
        let config = parse(&source, "t", Path::new(".")).unwrap();
        let (a, b) = (&config.routes[0], &config.routes[1]);
        assert_eq!(
            a.relay,
            RelayOptions {
                buffer_size: 4096,
                client_max_frame_size: Some(10),
                upstream_max_frame_size: Some(10),
                client_max_message_size: Some(20),
                upstream_max_message_size: Some(20),
                validate_utf8: false,
                allowed_rsv: 0,
                close_timeout: Duration::from_secs(2),
                idle_timeout: Some(Duration::from_secs(60)),
                keep_alive: Some(Duration::from_secs(20)),
                aggregate_fragments: false,
            }
        );
        assert_eq!(
            (a.connect_timeout, a.upgrade_timeout),
            (Duration::from_secs(1), Duration::from_secs(3))
        );
        assert_eq!(b.relay.buffer_size, 512);
        assert_eq!(b.relay.client_max_frame_size, None);
        assert_eq!(b.relay.idle_timeout, None);
        assert_eq!(b.relay.keep_alive, None);
        assert_eq!(b.relay.client_max_message_size, Some(20));
        let e = &errors(&format!("{MINIMAL}buffer_size = 100\n"))[0];
        assert!(e.message.contains("below 256"), "{e}");
    }

    #[test]
    fn non_ascii_keys_and_values_do_not_panic() {
        let source = format!("{MINIMAL}add_headers = {{ \"Sec-WebSocket-é\" = \"x\", \"ÄÖÜ\" = \"y\" }}\n\"näme\" = \"ü\"\n");
        let errs = errors(&source);
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(errs.iter().any(|e| e.message.contains("näme")), "{errs:#?}");
        let mut text = "a = 1\nb = 2".to_owned();
        assert!(blank_line(&mut text, 7));
        assert_eq!(text, "a = 1\n     ");
        assert!(!blank_line(&mut text, 7));
        assert!(!blank_line(&mut "é".to_owned(), 1));
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(position("ab\ncé x", 7), (2, 4, "cé x".to_owned()));
        assert_eq!(edit_distance("idle_timout", "idle_timeout"), 1);
    }
}
