//! Loading the admission limits (`[limits]`, each listener's `max_connections`, each route's
//! `max_tunnels`) and the rate limits of relayed directions (`client_rate_limit`,
//! `upstream_rate_limit`, in `[defaults]` or on a route).

use toml::Spanned;
use wsrelay_relay::{Budget, RateAction, RateLimit};

use super::Loader;
use crate::admission::{limits, AdmissionLimits};
use crate::config::schema::{Document, RateLimitSection};

/// A count where `0` means "no limit": `None` then.
fn cap(value: Option<&Spanned<u64>>) -> Option<usize> {
    value
        .map(|v| *v.get_ref())
        .filter(|&n| n != 0)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

impl Loader<'_> {
    /// The admission limits of a document, with each bad value reported at its place.
    pub(super) fn admission(&mut self, document: &Document) -> AdmissionLimits {
        let l = &document.limits;
        let mut limits = AdmissionLimits {
            listeners: document
                .listeners
                .iter()
                .map(|s| cap(s.get_ref().max_connections.as_ref()))
                .collect(),
            routes: document
                .routes
                .iter()
                .map(|s| cap(s.get_ref().max_tunnels.as_ref()))
                .collect(),
            proxied_listeners: document
                .listeners
                .iter()
                .map(|s| {
                    s.get_ref()
                        .proxy_protocol
                        .as_ref()
                        .is_some_and(|p| *p.get_ref())
                })
                .collect(),
            ..AdmissionLimits::default()
        };
        // Absent: derived from the descriptor limit at start; 0: no cap at all.
        limits.max_connections = l
            .max_connections
            .as_ref()
            .map(|v| cap(Some(v)).unwrap_or(usize::MAX));
        if let Some(v) = &l.max_handshakes {
            limits.max_handshakes = cap(Some(v));
        }
        limits.per_address_connections = cap(l.per_address_connections.as_ref());
        if let Some(rate) = cap(l.per_address_rate.as_ref()) {
            let burst = match &l.per_address_burst {
                Some(b) if *b.get_ref() == 0 => {
                    self.report.at(
                        b,
                        "per_address_burst cannot be 0",
                        "at least 1 (a client must be able to connect at all); leave it out \
                         for a burst equal to per_address_rate",
                    );
                    rate as u64
                }
                Some(b) => *b.get_ref(),
                None => rate as u64,
            };
            limits.per_address_rate = Some((rate as u64, burst));
        } else if let Some(b) = &l.per_address_burst {
            self.report.at(
                b,
                "per_address_burst without per_address_rate",
                "set per_address_rate (new connections per second from one address) too",
            );
        }
        limits.retry_after = self.duration(l.retry_after.as_ref(), limits::RETRY_AFTER, false);
        if let Some(r) = &l.reserved_descriptors {
            limits.reserved_descriptors = usize::try_from(*r.get_ref()).unwrap_or(usize::MAX);
        }
        if let (Some(max), Some(value)) = (
            limits.max_connections.filter(|&m| m != usize::MAX),
            l.max_handshakes.as_ref(),
        ) {
            if cap(Some(value)).is_some_and(|h| h > max) {
                self.report.at(
                    value,
                    "max_handshakes is above max_connections",
                    "handshakes in progress are connections too; keep it at or below \
                     max_connections",
                );
            }
        }
        limits
    }

    /// One direction's rate limit; `None` when it limits nothing (absent, or both rates 0).
    pub(super) fn rate_limit(
        &mut self,
        section: Option<&Spanned<RateLimitSection>>,
    ) -> Option<RateLimit> {
        let s = section?.get_ref();
        let action = match &s.action {
            None => RateAction::Throttle,
            Some(a) => match a.get_ref().as_str() {
                "throttle" => RateAction::Throttle,
                "close" => RateAction::Close,
                other => {
                    self.report.at(
                        a,
                        &format!("unknown rate limit action {other:?}"),
                        "\"throttle\" (stop reading the sender until it is within its budget, \
                         the default) or \"close\" (close it with 1008)",
                    );
                    RateAction::Throttle
                }
            },
        };
        let messages = self.budget(
            s.messages_per_second.as_ref(),
            s.burst_messages.as_ref(),
            "messages",
        );
        let bytes = self.budget(s.bytes_per_second.as_ref(), s.burst_bytes.as_ref(), "bytes");
        if messages.is_none() && bytes.is_none() {
            return None;
        }
        Some(RateLimit {
            messages,
            bytes,
            action,
        })
    }

    /// A rate and its burst (the rate when absent); `None` for a rate of 0 or none.
    fn budget(
        &mut self,
        rate: Option<&Spanned<u64>>,
        burst: Option<&Spanned<u64>>,
        what: &str,
    ) -> Option<Budget> {
        let per_second = rate.map(|r| *r.get_ref()).filter(|&r| r != 0);
        match (per_second, burst) {
            (None, Some(b)) => {
                self.report.at(
                    b,
                    &format!("burst_{what} without {what}_per_second"),
                    &format!("set {what}_per_second (0 or absent: no limit on {what})"),
                );
                None
            }
            (None, None) => None,
            (Some(_), Some(b)) if *b.get_ref() == 0 => {
                self.report.at(
                    b,
                    &format!("burst_{what} cannot be 0"),
                    &format!("at least 1; leave it out for a burst of one second's {what}"),
                );
                None
            }
            (Some(per_second), burst) => Some(Budget {
                per_second,
                burst: burst.map_or(per_second, |b| *b.get_ref()),
            }),
        }
    }
}
