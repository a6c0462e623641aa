//! Loading `[[pools]]`: named sets of backends with a balancing policy, retries, passive and
//! active health, breakers, tunnel lifetime and the sticky cookie; and a route's `pool = NAME`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Loader;
use crate::config::schema::UpstreamTlsSection;
use crate::pool::{
    Backend, HashKey, HealthCheck, HealthKind, OnMarkedDown, Outlier, Policy, Pool, PoolSettings,
    Sticky,
};

/// `[[pools]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct PoolSection {
    name: Spanned<String>,
    #[serde(default)]
    backends: Vec<Spanned<BackendSection>>,
    policy: Option<Spanned<String>>,
    hash_key: Option<Spanned<String>>,
    hash_balance_factor: Option<Spanned<f64>>,
    retries: Option<Spanned<i64>>,
    max_tunnels_per_backend: Option<Spanned<i64>>,
    max_handshakes: Option<Spanned<i64>>,
    eject_after: Option<Spanned<i64>>,
    eject_time: Option<Spanned<String>>,
    max_eject_time: Option<Spanned<String>>,
    max_ejected_percent: Option<Spanned<i64>>,
    on_marked_down: Option<Spanned<String>>,
    max_tunnel_lifetime: Option<Spanned<String>>,
    lifetime_jitter: Option<Spanned<String>>,
    sticky_cookie: Option<Spanned<String>>,
    sticky_key: Option<Spanned<String>>,
    upstream_tls: Option<Spanned<UpstreamTlsSection>>,
    health_check: Option<Spanned<HealthCheckSection>>,
}

/// One entry of `backends = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendSection {
    uri: Spanned<String>,
    weight: Option<Spanned<i64>>,
}

/// `[pools.health_check]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckSection {
    kind: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
}

/// The largest weight: the hash ring gives each backend points in proportion to it.
const MAX_WEIGHT: i64 = 1000;
/// The default share of connections each backend of a pool takes.
const DEFAULT_WEIGHT: u32 = 1;
/// Defaults of a health check.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
const HEALTH_RISE: u32 = 2;
const HEALTH_FALL: u32 = 3;
/// The default bound of consistent hashing: 1.25 times the average load (HAProxy suggests
/// 125 to 150 for `hash-balance-factor`).
const HASH_BALANCE_FACTOR: f64 = 1.25;

impl Loader<'_> {
    /// Every `[[pools]]` table; those with errors are left out (each error reported).
    pub(super) fn pools(
        &mut self,
        sections: &[Spanned<PoolSection>],
    ) -> Vec<(String, Option<Arc<Pool>>)> {
        let mut pools: Vec<(String, Option<Arc<Pool>>)> = Vec::new();
        for section in sections {
            let name = &section.get_ref().name;
            if pools.iter().any(|(n, _)| n == name.get_ref()) {
                self.report.at(
                    name,
                    &format!("a second pool named {:?}", name.get_ref()),
                    "pool names are unique; rename one of them",
                );
                continue;
            }
            let pool = self.pool(section).map(Arc::new);
            pools.push((name.get_ref().clone(), pool));
        }
        pools
    }

    /// A whole number in `range`, reported at its key otherwise.
    fn count(
        &mut self,
        value: Option<&Spanned<i64>>,
        default: u64,
        range: std::ops::RangeInclusive<i64>,
        what: &str,
        hint: &str,
    ) -> u64 {
        match value {
            None => default,
            Some(v) if range.contains(v.get_ref()) => *v.get_ref() as u64,
            Some(v) => {
                self.report.at(
                    v,
                    &format!("{what} must be from {} to {}", range.start(), range.end()),
                    hint,
                );
                default
            }
        }
    }

    fn pool(&mut self, section: &Spanned<PoolSection>) -> Option<Pool> {
        let p = section.get_ref();
        let before = self.report.count();
        let name = p.name.get_ref().trim();
        if name.is_empty() {
            self.report.at(
                &p.name,
                "a pool needs a name",
                "routes name it: pool = \"chat\"",
            );
        }
        if p.backends.is_empty() {
            self.report.error(
                Some(section.span()),
                "pool without backends",
                "add backends = [{ uri = \"ws://10.0.0.1:9000\", weight = 1 }, ...]",
            );
        }
        let mut backends = Vec::new();
        for b in &p.backends {
            let b = b.get_ref();
            let weight = self.count(
                b.weight.as_ref(),
                u64::from(DEFAULT_WEIGHT),
                1..=MAX_WEIGHT,
                "a backend's weight",
                "a weight of 0 would never be chosen; remove the backend instead, or give 1 or more",
            );
            if let Some(upstream) = self.upstream(&b.uri, p.upstream_tls.as_ref()) {
                backends.push(Backend::new(upstream, weight as u32));
            }
        }
        let policy = self.policy(p);
        let settings = self.pool_settings(p);
        if self.report.count() > before {
            return None;
        }
        Some(Pool::new(name, backends, policy, settings))
    }

    fn policy(&mut self, p: &PoolSection) -> Policy {
        let hash_key = p
            .hash_key
            .as_ref()
            .and_then(|key| match HashKey::parse(key.get_ref()) {
                Ok(key) => Some(key),
                Err(why) => {
                    self.report.at(
                        key,
                        &format!("invalid hash_key: {why}"),
                        "for instance hash_key = \"header:X-User-Id\"",
                    );
                    None
                }
            });
        let balance_factor = match &p.hash_balance_factor {
            None => HASH_BALANCE_FACTOR,
            Some(f) if *f.get_ref() == 0.0 || *f.get_ref() >= 1.0 => *f.get_ref(),
            Some(f) => {
                self.report.at(
                    f,
                    "hash_balance_factor below 1",
                    "a backend may take this many times the average load: 1.25 (the default) \
                     to 2; 0 switches the bound off",
                );
                HASH_BALANCE_FACTOR
            }
        };
        let policy = match p.policy.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("least_connections") => Policy::LeastConnections,
            Some("round_robin") => Policy::RoundRobin,
            Some("random_two") => Policy::RandomTwo,
            Some("hash") => {
                let Some(key) = hash_key.clone() else {
                    if p.hash_key.is_none() {
                        let at = p.policy.as_ref().map(|s| s.span());
                        self.report.error(
                            at,
                            "policy = \"hash\" without a hash key",
                            "name the key's source: hash_key = \"client_address\", \
                             \"header:NAME\", \"cookie:NAME\" or \"query:NAME\"",
                        );
                    }
                    return Policy::LeastConnections;
                };
                Policy::Hash {
                    key,
                    balance_factor,
                }
            }
            Some(other) => {
                if let Some(at) = &p.policy {
                    self.report.at(
                        at,
                        &format!("unknown policy {other:?}"),
                        "least_connections (the default), round_robin, random_two or hash",
                    );
                }
                Policy::LeastConnections
            }
        };
        if hash_key.is_some() && !matches!(policy, Policy::Hash { .. }) {
            if let Some(key) = &p.hash_key {
                self.report.at(
                    key,
                    "hash_key without policy = \"hash\"",
                    "set policy = \"hash\", or remove hash_key",
                );
            }
        }
        policy
    }

    fn pool_settings(&mut self, p: &PoolSection) -> PoolSettings {
        let defaults = PoolSettings::default();
        let outlier_defaults = Outlier::default();
        let limit = |n: u64| (n > 0).then_some(n as usize);
        let retries = self.count(
            p.retries.as_ref(),
            defaults.retries as u64,
            0..=16,
            "retries",
            "further backends tried when one fails before the 101; 0: none",
        ) as usize;
        let max_tunnels = self.count(
            p.max_tunnels_per_backend.as_ref(),
            0,
            0..=i64::from(u32::MAX),
            "max_tunnels_per_backend",
            "0: no limit",
        );
        let max_handshakes = self.count(
            p.max_handshakes.as_ref(),
            0,
            0..=i64::from(u32::MAX),
            "max_handshakes",
            "0: no limit",
        );
        let outlier = Outlier {
            consecutive_failures: self.count(
                p.eject_after.as_ref(),
                u64::from(outlier_defaults.consecutive_failures),
                0..=1000,
                "eject_after",
                "failed handshakes in a row that eject a backend; 0: never",
            ) as u32,
            base_ejection_time: self.duration(
                p.eject_time.as_ref(),
                outlier_defaults.base_ejection_time,
                false,
            ),
            max_ejection_time: self.duration(
                p.max_eject_time.as_ref(),
                outlier_defaults.max_ejection_time,
                false,
            ),
            max_ejected_percent: self.count(
                p.max_ejected_percent.as_ref(),
                u64::from(outlier_defaults.max_ejected_percent),
                0..=100,
                "max_ejected_percent",
                "the share of a pool that may be ejected at once, in percent",
            ) as u8,
        };
        let on_marked_down = match p.on_marked_down.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("keep") => OnMarkedDown::Keep,
            Some("close") => OnMarkedDown::Close,
            Some(other) => {
                if let Some(at) = &p.on_marked_down {
                    self.report.at(
                        at,
                        &format!("unknown on_marked_down {other:?}"),
                        "\"keep\" (open tunnels stay, the default) or \"close\" (closed with 1001)",
                    );
                }
                OnMarkedDown::Keep
            }
        };
        let lifetime = self.duration(p.max_tunnel_lifetime.as_ref(), Duration::ZERO, true);
        let lifetime_jitter = self.duration(p.lifetime_jitter.as_ref(), Duration::ZERO, true);
        let sticky = p.sticky_cookie.as_ref().and_then(|cookie| {
            let name = cookie.get_ref();
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                self.report.at(
                    cookie,
                    &format!("invalid cookie name {name:?}"),
                    "a cookie name is an HTTP token: letters, digits and !#$%&'*+-.^_`|~",
                );
                return None;
            }
            let key = p.sticky_key.as_ref();
            if let Some(key) = key.filter(|k| k.get_ref().len() < 16) {
                self.report.at(
                    key,
                    "sticky_key shorter than 16 bytes",
                    "a short key can be guessed; use 32 random characters, or leave it out \
                     for a key drawn at start (cookies then last as long as the process)",
                );
                return None;
            }
            match Sticky::new(name, key.map(|k| k.get_ref().as_bytes())) {
                Ok(sticky) => Some(sticky),
                Err(e) => {
                    self.report
                        .at(cookie, &format!("no sticky key: {e}"), "set sticky_key");
                    None
                }
            }
        });
        if let (Some(key), None) = (&p.sticky_key, &p.sticky_cookie) {
            self.report.at(
                key,
                "sticky_key without sticky_cookie",
                "name the cookie: sticky_cookie = \"wsrelay_backend\"",
            );
        }
        let health_check = p.health_check.as_ref().and_then(|h| self.health_check(h));
        PoolSettings {
            retries,
            max_tunnels_per_backend: limit(max_tunnels),
            max_handshakes: limit(max_handshakes),
            outlier,
            health_check,
            on_marked_down,
            max_tunnel_lifetime: crate::config::defaults::none_if_zero(lifetime),
            lifetime_jitter,
            sticky,
        }
    }

    fn health_check(&mut self, section: &Spanned<HealthCheckSection>) -> Option<HealthCheck> {
        let h = section.get_ref();
        let before = self.report.count();
        let path = match &h.path {
            None => "/".to_owned(),
            Some(path) => {
                let text = path.get_ref();
                let valid = text.starts_with('/')
                    && text.bytes().all(|b| b.is_ascii_graphic())
                    && !text.contains('#');
                if !valid {
                    self.report.at(
                        path,
                        &format!("health check path {text:?} is not a path"),
                        "a request target from /, without spaces or a fragment: \"/healthz\"",
                    );
                }
                text.clone()
            }
        };
        let kind = match h.kind.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("websocket") => HealthKind::WebSocket { path },
            Some("http") => HealthKind::Http { path },
            Some("tcp") => {
                if let Some(p) = &h.path {
                    self.report.at(
                        p,
                        "a tcp health check has no path",
                        "remove path, or use kind = \"http\" or \"websocket\"",
                    );
                }
                HealthKind::Tcp
            }
            Some(other) => {
                if let Some(at) = &h.kind {
                    self.report.at(
                        at,
                        &format!("unknown health check kind {other:?}"),
                        "\"tcp\" (connect), \"http\" (GET expecting 2xx) or \"websocket\" \
                         (upgrade, then close 1000; the default)",
                    );
                }
                HealthKind::Tcp
            }
        };
        let check = HealthCheck {
            kind,
            interval: self.duration(h.interval.as_ref(), HEALTH_INTERVAL, false),
            jitter: self.duration(h.jitter.as_ref(), Duration::ZERO, true),
            timeout: self.duration(h.timeout.as_ref(), HEALTH_TIMEOUT, false),
            rise: self.count(
                h.rise.as_ref(),
                u64::from(HEALTH_RISE),
                1..=100,
                "rise",
                "successful checks in a row that mark a backend up",
            ) as u32,
            fall: self.count(
                h.fall.as_ref(),
                u64::from(HEALTH_FALL),
                1..=100,
                "fall",
                "failed checks in a row that mark a backend down",
            ) as u32,
        };
        (self.report.count() == before).then_some(check)
    }

    /// The pool a route names: reported when it names none that exists, or when it also has
    /// an `upstream`.
    pub(super) fn route_pool(
        &mut self,
        name: Option<&Spanned<String>>,
        upstream: Option<&Spanned<String>>,
    ) -> Option<Arc<Pool>> {
        let name = name?;
        if upstream.is_some() {
            self.report.at(
                name,
                "a route has either pool or upstream, not both",
                "keep pool (several backends) or upstream (one)",
            );
            return None;
        }
        let Some((_, found)) = self.pools.iter().find(|(n, _)| n == name.get_ref()) else {
            let known: Vec<&str> = self.pools.iter().map(|(n, _)| n.as_str()).collect();
            let hint = if known.is_empty() {
                "define it: [[pools]] with name and backends".to_owned()
            } else {
                format!("pools defined: {}", known.join(", "))
            };
            self.report
                .at(name, &format!("unknown pool {:?}", name.get_ref()), &hint);
            return None;
        };
        // A pool with errors was reported where it is written.
        found.clone()
    }
}
