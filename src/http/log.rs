//! The access-log line of one plain-HTTP exchange, in the form the tunnels' lines take (text
//! fields or one JSON object, query values left out unless asked for), written when the
//! response body ends.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::json;
use tokio::time::Instant;

use super::body::Tally;
use crate::access_log::{loggable_target, AccessLogConfig, LogFormat};
use crate::pool::Lease;

/// One exchange as its line shows it, kept until its response body ends.
pub(crate) struct Exchange {
    pub(crate) config: AccessLogConfig,
    pub(crate) client: SocketAddr,
    pub(crate) route: String,
    pub(crate) backend: String,
    pub(crate) method: String,
    /// The target as the log shows it (already redacted).
    pub(crate) target: String,
    pub(crate) status: u16,
    pub(crate) started: Instant,
    /// The request body's record (bytes sent upstream).
    pub(crate) request: Arc<Tally>,
    /// The backend's claim in its pool: the exchange counts in its load until it ends.
    pub(crate) lease: Option<Lease>,
}

impl Exchange {
    /// The exchange ended: `sent` response body bytes reached the client, all of them if
    /// `complete`. Its line is written and it is counted in the metrics.
    pub(crate) fn finished(&mut self, sent: u64, complete: bool) {
        let received = self.request.bytes.load(Ordering::Relaxed);
        let took = self.started.elapsed();
        crate::metrics::count_http(&self.route, self.status, took, received, sent);
        let duration_ms = took.as_millis() as u64;
        let end = if complete { "complete" } else { "aborted" };
        match self.config.format {
            LogFormat::Text => tracing::info!(
                peer = %self.client,
                route = self.route.as_str(),
                backend = self.backend.as_str(),
                method = %self.method,
                target = %self.target,
                status = self.status,
                request_bytes = received,
                response_bytes = sent,
                duration_ms,
                end,
                "http request finished"
            ),
            LogFormat::Json => crate::access_log::write_json(json!({
                "event": "http",
                "client": self.client.to_string(),
                "route": self.route,
                "backend": self.backend,
                "method": self.method,
                "target": self.target,
                "status": self.status,
                "request_bytes": received,
                "response_bytes": sent,
                "duration_ms": duration_ms,
                "end": end,
            })),
        }
        self.lease = None;
    }
}

/// A refused plain-HTTP request's line (the refusal answered by the gateway itself), and its
/// count in the metrics.
pub(crate) fn refused(
    config: &AccessLogConfig,
    client: SocketAddr,
    route: &str,
    method: &str,
    target: &str,
    status: u16,
    reason: &str,
) {
    crate::metrics::count_http(route, status, std::time::Duration::ZERO, 0, 0);
    let target = loggable_target(target, config.query_values);
    match config.format {
        LogFormat::Text => tracing::info!(
            peer = %client,
            route,
            method,
            target = %target,
            status,
            reason,
            "http request refused"
        ),
        LogFormat::Json => crate::access_log::write_json(json!({
            "event": "http_refused",
            "client": client.to_string(),
            "route": route,
            "method": method,
            "target": target,
            "status": status,
            "reason": reason,
        })),
    }
}
