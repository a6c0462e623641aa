//! The metrics of plain-HTTP exchanges (`http = true` routes): requests by route and status,
//! their durations, and the body bytes each way. Counted once per exchange, when it ends.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::{outcome_label, Labels};
use crate::config::GatewayConfig;

/// `wsrelay_http_requests`, `wsrelay_http_request_duration_seconds` and
/// `wsrelay_http_body_bytes`.
pub(crate) struct HttpMetrics {
    requests: Family<Labels<2>, Counter>,
    seconds: Family<Labels<1>, Histogram, fn() -> Histogram>,
    bytes: Family<Labels<2>, Counter>,
}

/// 0.5 ms to about 16 s.
fn buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl HttpMetrics {
    /// The families, registered in `registry`; the routes with `http = true` have their
    /// series from the start.
    pub(crate) fn new(registry: &mut Registry, config: &GatewayConfig) -> HttpMetrics {
        let requests = Family::<Labels<2>, Counter>::default();
        let seconds = Family::<Labels<1>, Histogram, fn() -> Histogram>::new_with_constructor(
            buckets as fn() -> Histogram,
        );
        let bytes = Family::<Labels<2>, Counter>::default();
        for route in config.routes.iter().filter(|r| r.http.is_some()) {
            let name = route.name.clone();
            let _ = requests.get_or_create(&[("route", name.clone()), ("status", "200".into())]);
            let _ = seconds.get_or_create(&[("route", name.clone())]);
            for direction in ["request", "response"] {
                let _ = bytes
                    .get_or_create(&[("route", name.clone()), ("direction", direction.into())]);
            }
        }
        registry.register(
            "wsrelay_http_requests",
            "Plain HTTP requests (http = true routes) by route and the status the client got",
            requests.clone(),
        );
        registry.register(
            "wsrelay_http_request_duration_seconds",
            "Time from a plain HTTP request's head to the end of its response, per route",
            seconds.clone(),
        );
        registry.register(
            "wsrelay_http_body_bytes",
            "Body bytes of plain HTTP exchanges, per route and direction (request: to the upstream)",
            bytes.clone(),
        );
        HttpMetrics {
            requests,
            seconds,
            bytes,
        }
    }

    /// One exchange on `route` (a configured name) ended with `status` after `seconds`,
    /// `received` request body bytes passed upstream and `sent` response body bytes.
    pub(crate) fn exchange(
        &self,
        route: &str,
        status: u16,
        seconds: f64,
        received: u64,
        sent: u64,
    ) {
        let route = route.to_owned();
        self.requests
            .get_or_create(&[("route", route.clone()), ("status", outcome_label(status))])
            .inc();
        self.seconds
            .get_or_create(&[("route", route.clone())])
            .observe(seconds);
        for (direction, n) in [("request", received), ("response", sent)] {
            self.bytes
                .get_or_create(&[("route", route.clone()), ("direction", direction.into())])
                .inc_by(n);
        }
    }
}
