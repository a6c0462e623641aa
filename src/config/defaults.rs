//! Every default of the gateway's settings, written once: the file loader, the flags and the
//! programmatic constructors all take them from here.

use std::time::Duration;

use wsrelay_relay::{RelayOptions, Remask};

/// Time a client has to complete TLS and send its upgrade request (408 after it).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a shutdown signal, time open relays get to close before they are cut.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to connect to an upstream, TLS handshake included (504 after it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time an upstream has to answer the upgrade (504 after it).
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to wait for the other side's close once closing starts.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes a relayed connection buffers per direction. Larger than the relay crate's 64 KiB:
/// bulk transfers move about a third more per second with 256 KiB (fewer system calls per byte;
/// see BENCHMARKS.md), and idle connections hold no buffer at all, so only connections with
/// data in flight pay for it.
pub const BUFFER_SIZE: usize = 256 * 1024;
/// The smallest buffer accepted: a whole control frame (2 + 4 + 125 bytes) must fit.
pub const MIN_BUFFER_SIZE: usize = 256;
/// Close both sides after this long without a frame; zero: never (idle tunnels stay open).
pub const IDLE_TIMEOUT: Duration = Duration::ZERO;
/// Ping a side quiet for this long; zero: no keep-alive pings.
pub const KEEPALIVE_INTERVAL: Duration = Duration::ZERO;
/// Largest frame payload accepted from either side, in bytes (0: no limit). A limit by
/// default: most servers behind a proxy reassemble messages, and a frame header announcing
/// 2^63 bytes is the length-field attack a gateway is there to stop (1009 before any payload).
pub const MAX_FRAME_SIZE: u64 = 16 * 1024 * 1024;
/// Largest message accepted from either side, in bytes (0: no limit); see [`MAX_FRAME_SIZE`].
pub const MAX_MESSAGE_SIZE: u64 = 64 * 1024 * 1024;
/// Text messages are checked for valid UTF-8 (RFC 6455 §8.1; close 1007 otherwise).
pub const VALIDATE_UTF8: bool = true;
/// Re-mask a client's frames towards the upstream once its masking keys turn out predictable.
pub const REMASK: Remask = Remask::Auto;
/// On a TLS listener, a Host that is not the SNI name gets 421.
pub const SNI_HOST_CHECK: bool = true;
/// No RFC 7239 `Forwarded` header unless asked for (the `X-Forwarded-*` ones are always sent).
pub const FORWARDED_HEADER: bool = false;
/// Worker threads; 0: one per CPU (resolved by the loader, in one place).
pub const WORKERS: usize = 0;
/// Where the one-upstream command line listens without `--listen`: loopback only, so a
/// demo started without thinking is not reachable from the network.
pub const LISTEN: &str = "127.0.0.1:8080";
/// The log filter without `--log` or `WSRELAY_LOG`.
pub const LOG_FILTER: &str = "info";

/// The relay settings of a route that sets none of its own: the constants above, with `0`
/// read as "no limit" / "off" by the one mapping the loader uses too.
pub fn relay_options() -> RelayOptions {
    RelayOptions {
        buffer_size: BUFFER_SIZE,
        client_max_frame_size: size_limit(MAX_FRAME_SIZE),
        upstream_max_frame_size: size_limit(MAX_FRAME_SIZE),
        client_max_message_size: size_limit(MAX_MESSAGE_SIZE),
        upstream_max_message_size: size_limit(MAX_MESSAGE_SIZE),
        validate_utf8: VALIDATE_UTF8,
        allowed_rsv: 0,
        close_timeout: CLOSE_TIMEOUT,
        idle_timeout: none_if_zero(IDLE_TIMEOUT),
        keep_alive: none_if_zero(KEEPALIVE_INTERVAL),
        aggregate_fragments: false,
        remask: REMASK,
        client_rate_limit: None,
        upstream_rate_limit: None,
    }
}

/// A size limit as the relay takes it: `0` in the configuration is no limit. The one place
/// that reads "no limit", so the relay's representation of it changes here only.
pub(crate) fn size_limit(setting: u64) -> Option<u64> {
    none_if_zero(setting)
}

/// `0` (a size, or `"0s"`) switches a limit or a timer off.
pub(crate) fn none_if_zero<T: Default + PartialEq>(setting: T) -> Option<T> {
    (setting != T::default()).then_some(setting)
}

/// Clock skew allowed on a JWT's `exp` and `nbf` (`leeway` in `[auth.NAME]`).
pub const AUTH_LEEWAY: Duration = Duration::from_secs(60);
/// An HMAC secret shorter than this (in bytes) is a warning: RFC 7518 §3.2 asks for a key at
/// least as long as the hash (32 bytes for HS256).
pub const MIN_HMAC_SECRET: usize = 32;
/// The access log's form: the text line (`"json"` for one JSON object a line).
pub const LOG_FORMAT: &str = "text";
/// No access log line when a tunnel opens, only when it ends.
pub const LOG_OPEN: bool = false;
/// Query values are left out of the access log (tokens travel there); names are kept.
pub const LOG_QUERY_VALUES: bool = false;

/// Largest request body a plain-HTTP route passes upstream, in bytes (`http_max_body`; 0: no
/// limit): 413 beyond it.
pub const HTTP_MAX_BODY: u64 = 16 * 1024 * 1024;
/// Time an upstream has to send its response head once the request is sent
/// (`http_response_timeout`; 504 after it).
pub const HTTP_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a plain-HTTP body (either way) may go without a byte before the exchange is cut
/// (`http_idle_timeout`).
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// After SIGTERM, time the listeners keep accepting while readiness already says 503: zero,
/// they stop at once.
pub const DRAIN_DELAY: Duration = Duration::ZERO;
/// Time over which open tunnels get their 1001 once the listeners stopped: zero, all at once.
pub const DRAIN_WINDOW: Duration = Duration::ZERO;
/// Time over which tunnels a reload orphaned get their 1001, once their grace is over.
pub const ORPHANED_TUNNEL_WINDOW: Duration = Duration::ZERO;
