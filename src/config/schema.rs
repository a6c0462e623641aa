//! The configuration file's format: one serde struct per TOML table, unknown keys refused.
//!
//! Values a file may get wrong are kept as [`Spanned`] text, so the loader can point at them;
//! the meaning of every key (defaults, units, limits) is the loader's business, not this file's.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole document: a file, or the one-upstream flags written as one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Document {
    #[serde(default)]
    pub(super) server: ServerSection,
    #[serde(default)]
    pub(super) defaults: Tuning,
    #[serde(default)]
    pub(super) listeners: Vec<Spanned<ListenerSection>>,
    #[serde(default)]
    pub(super) routes: Vec<Spanned<RouteSection>>,
    #[serde(default)]
    pub(super) limits: LimitsSection,
    #[serde(default)]
    pub(super) auth: BTreeMap<String, Spanned<AuthSection>>,
    #[serde(default)]
    pub(super) admin: AdminSection,
    #[serde(default)]
    pub(super) pools: Vec<Spanned<super::load::pool::PoolSection>>,
}

/// `[admin]`: the admin listener (metrics and health endpoints); off without an address.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminSection {
    pub(super) address: Option<Spanned<String>>,
    /// Routes API: changes written back to the configuration file.
    pub(super) write_back: Option<bool>,
    /// Routes API: the bearer token it requires.
    pub(super) token: Option<Spanned<String>>,
    /// Routes API: a file holding the bearer token.
    pub(super) token_file: Option<Spanned<String>>,
    /// Routes API: an environment variable holding the bearer token.
    pub(super) token_env: Option<Spanned<String>>,
}

/// `[server]`: process-wide settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerSection {
    pub(super) workers: Option<usize>,
    pub(super) handshake_timeout: Option<Spanned<String>>,
    pub(super) shutdown_timeout: Option<Spanned<String>>,
    /// The access log's form: `"text"` or `"json"`.
    pub(super) log_format: Option<Spanned<String>>,
    /// An access log line when a tunnel opens, too.
    pub(super) log_open: Option<bool>,
    /// Query values written into the access log as sent (they may carry tokens).
    pub(super) log_query_values: Option<bool>,
    /// After SIGTERM, time the listeners keep accepting (readiness already 503).
    pub(super) drain_delay: Option<Spanned<String>>,
    /// Time over which open tunnels get their 1001 once the listeners stop.
    pub(super) drain_window: Option<Spanned<String>>,
    /// After a reload removed a tunnel's route or backend, time before it gets 1001.
    pub(super) orphaned_tunnel_grace: Option<Spanned<String>>,
    /// Time over which those tunnels' 1001s are spread.
    pub(super) orphaned_tunnel_window: Option<Spanned<String>>,
}

/// Writes the tuning keys once and makes from that one list both tables that carry them:
/// [`Tuning`] (`[defaults]`) and the route section, whose own keys come first. Serde's
/// `flatten` would do this, but it cannot be combined with `deny_unknown_fields` (nor with
/// [`Spanned`]), and refusing unknown keys, each with a "did you mean", matters more.
macro_rules! with_tuning_keys {
    (
        tuning { $( $key:ident: $kty:ty, )* }
        $(#[$rattr:meta])*
        struct $route:ident { $( $(#[$fattr:meta])* $field:ident: $fty:ty, )* }
    ) => {
        /// Settings of relayed connections: in `[defaults]`, and on each route to override them.
        #[derive(Debug, Default, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct Tuning {
            $( pub(super) $key: $kty, )*
        }

        impl Tuning {
            /// These values where set, `fallback`'s elsewhere (a route's over `[defaults]`).
            pub(super) fn or(self, fallback: &Tuning) -> Tuning {
                Tuning { $( $key: self.$key.or_else(|| fallback.$key.clone()), )* }
            }
        }

        $(#[$rattr])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $route {
            $( $(#[$fattr])* pub(super) $field: $fty, )*
            $( pub(super) $key: $kty, )*
        }

        impl $route {
            /// The tuning keys this route sets itself.
            pub(super) fn tuning(&self) -> Tuning {
                Tuning { $( $key: self.$key.clone(), )* }
            }
        }
    };
}

with_tuning_keys! {
    tuning {
        connect_timeout: Option<Spanned<String>>,
        upgrade_timeout: Option<Spanned<String>>,
        idle_timeout: Option<Spanned<String>>,
        close_timeout: Option<Spanned<String>>,
        max_frame_size: Option<u64>,
        max_message_size: Option<u64>,
        buffer_size: Option<Spanned<usize>>,
        validate_utf8: Option<bool>,
        keepalive_interval: Option<Spanned<String>>,
        remask: Option<Spanned<String>>,
        client_rate_limit: Option<Spanned<RateLimitSection>>,
        upstream_rate_limit: Option<Spanned<RateLimitSection>>,
        http: Option<bool>,
        http_max_body: Option<u64>,
        http_response_timeout: Option<Spanned<String>>,
        http_idle_timeout: Option<Spanned<String>>,
    }
    /// `[[routes]]`: the route's own keys, then every tuning key.
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
        forwarded_header: Option<bool>,
        #[serde(default = "yes")]
        websocket: bool,
        #[serde(default)]
        allowed_origins: Vec<Spanned<String>>,
        extensions: Option<Vec<Spanned<String>>>,
        upstream_tls: Option<Spanned<UpstreamTlsSection>>,
        max_tunnels: Option<Spanned<u64>>,
        auth: Option<Spanned<String>>,
        pool: Option<Spanned<String>>,
        send_proxy_protocol: Option<Spanned<String>>,
        http_upstream: Option<Spanned<String>>,
    }
}

fn yes() -> bool {
    true
}

/// `[[listeners]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListenerSection {
    pub(super) address: Spanned<String>,
    pub(super) tls: Option<Spanned<ListenerTls>>,
    pub(super) merge_slashes: Option<bool>,
    pub(super) escaped_slashes: Option<Spanned<String>>,
    pub(super) sni_host_check: Option<bool>,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<Spanned<String>>,
    pub(super) max_connections: Option<Spanned<u64>>,
    pub(super) proxy_protocol: Option<Spanned<bool>>,
    pub(super) proxy_protocol_from: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) http2: Option<bool>,
    pub(super) http2_max_concurrent_streams: Option<Spanned<u64>>,
}

/// `[listeners.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListenerTls {
    pub(super) certificates: Vec<Spanned<CertificateSection>>,
}

/// `[[listeners.tls.certificates]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CertificateSection {
    pub(super) cert_file: Spanned<String>,
    pub(super) key_file: Spanned<String>,
    #[serde(default)]
    pub(super) server_names: Vec<String>,
}

/// `[routes.upstream_tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamTlsSection {
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) client_cert_file: Option<Spanned<String>>,
    pub(super) client_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) insecure_skip_verify: bool,
}

/// `[limits]`: admission limits of the whole process and per client address.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsSection {
    pub(super) max_connections: Option<Spanned<u64>>,
    pub(super) max_handshakes: Option<Spanned<u64>>,
    pub(super) per_address_connections: Option<Spanned<u64>>,
    pub(super) per_address_rate: Option<Spanned<u64>>,
    pub(super) per_address_burst: Option<Spanned<u64>>,
    pub(super) retry_after: Option<Spanned<String>>,
    pub(super) reserved_descriptors: Option<Spanned<u64>>,
}

/// `client_rate_limit` / `upstream_rate_limit`: one direction's rate limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimitSection {
    pub(super) messages_per_second: Option<Spanned<u64>>,
    pub(super) burst_messages: Option<Spanned<u64>>,
    pub(super) bytes_per_second: Option<Spanned<u64>>,
    pub(super) burst_bytes: Option<Spanned<u64>>,
    pub(super) action: Option<Spanned<String>>,
}

/// `[auth.NAME]`: a JWT provider, named by routes with `auth = "NAME"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthSection {
    pub(super) algorithms: Spanned<Vec<Spanned<String>>>,
    pub(super) secret_file: Option<Spanned<String>>,
    pub(super) secret_env: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) public_key_files: Vec<Spanned<String>>,
    pub(super) jwks_file: Option<Spanned<String>>,
    pub(super) issuer: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) audiences: Vec<Spanned<String>>,
    pub(super) leeway: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) required_claims: Vec<Spanned<String>>,
    pub(super) token_from: Option<Spanned<String>>,
    pub(super) token_name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) forward_claims: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(super) close_on_expiry: bool,
}
