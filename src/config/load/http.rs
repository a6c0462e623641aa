//! Loading a route's plain-HTTP pass-through: `http`, `http_upstream`, `http_max_body`,
//! `http_response_timeout` and `http_idle_timeout` (the last four also in `[defaults]`).

use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::Loader;
use crate::config::defaults;
use crate::config::schema::{RouteSection, Tuning};
use crate::http::{HttpRoute, HttpSettings};
use crate::pool::Pool;
use crate::upstream::Upstream;

impl Loader<'_> {
    /// The route's HTTP side when `http = true` (its own or `[defaults]`'s), with a client per
    /// backend: the `http_upstream` if set, else the pool's backends or the route's upstream,
    /// whose `ws://`/`wss://` become `http://`/`https://`.
    pub(super) fn route_http(
        &mut self,
        r: &RouteSection,
        fallback: &Tuning,
        upstream: Option<&Upstream>,
        pool: Option<&Pool>,
        connect_timeout: Duration,
    ) -> Option<Arc<HttpRoute>> {
        let tuning = r.tuning().or(fallback);
        if !tuning.http.unwrap_or(false) {
            if let Some(given) = &r.http_upstream {
                self.report.at(
                    given,
                    "http_upstream on a route without http = true",
                    "add http = true to pass plain HTTP requests, or remove http_upstream",
                );
            }
            return None;
        }
        let settings = HttpSettings {
            max_body: Some(tuning.http_max_body.unwrap_or(defaults::HTTP_MAX_BODY))
                .filter(|&n| n != 0),
            response_timeout: self.duration(
                tuning.http_response_timeout.as_ref(),
                defaults::HTTP_RESPONSE_TIMEOUT,
                false,
            ),
            idle_timeout: self.duration(
                tuning.http_idle_timeout.as_ref(),
                defaults::HTTP_IDLE_TIMEOUT,
                false,
            ),
            connect_timeout,
        };
        if let Some(given) = &r.http_upstream {
            let uri = given.get_ref().trim();
            let as_ws = if let Some(rest) = uri.strip_prefix("http://") {
                format!("ws://{rest}")
            } else if let Some(rest) = uri.strip_prefix("https://") {
                format!("wss://{rest}")
            } else {
                self.report.at(
                    given,
                    "http_upstream is not an http:// or https:// URI",
                    "http://HOST:PORT/PATH or https://HOST:PORT/PATH",
                );
                return None;
            };
            let spanned = Spanned::new(given.span(), as_ws);
            let upstream = self.upstream(&spanned, r.upstream_tls.as_ref())?;
            return Some(Arc::new(HttpRoute::new(settings, vec![upstream], false)));
        }
        match (pool, upstream) {
            (Some(pool), _) => {
                let backends = pool.backends.iter().map(|b| b.upstream.clone()).collect();
                Some(Arc::new(HttpRoute::new(settings, backends, true)))
            }
            (None, Some(upstream)) => Some(Arc::new(HttpRoute::new(
                settings,
                vec![upstream.clone()],
                false,
            ))),
            (None, None) => {
                self.report.error(
                    None,
                    "http = true on a route without an upstream",
                    "add http_upstream = \"http://HOST:PORT\", an upstream or a pool",
                );
                None
            }
        }
    }
}
