//! Settings of one relayed connection.

use std::time::Duration;

use crate::rate::RateLimit;
use crate::Remask;

/// How a connection is relayed. `Default` gives strict checking, no size limits, 64 KiB buffers.
///
/// "No limit" is spelled `None` throughout: for the four size limits as for `idle_timeout` and
/// `keep_alive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOptions {
    /// Bytes buffered per direction; the most a connection holds whatever the traffic
    /// (at least 256, so a whole control frame fits).
    pub buffer_size: usize,
    /// Largest frame payload accepted from the client, in bytes; `None` (the default) for no
    /// limit. A larger frame fails the client with 1009 (RFC 6455 §7.4.1).
    pub client_max_frame_size: Option<u64>,
    /// Largest frame payload accepted from the upstream, in bytes; `None` (the default) for no
    /// limit. A larger frame fails the upstream with 1009.
    pub upstream_max_frame_size: Option<u64>,
    /// Largest message (the sum of its fragments) accepted from the client, in bytes; `None`
    /// (the default) for no limit. A larger message fails the client with 1009.
    pub client_max_message_size: Option<u64>,
    /// Largest message (the sum of its fragments) accepted from the upstream, in bytes; `None`
    /// (the default) for no limit. A larger message fails the upstream with 1009.
    pub upstream_max_message_size: Option<u64>,
    /// Validate UTF-8 of text messages in both directions (uncompressed ones only).
    pub validate_utf8: bool,
    /// RSV bits the negotiated extensions allow (`wsrelay_codec::RSV1` for permessage-deflate).
    pub allowed_rsv: u8,
    /// How long to wait for the other side's close (and for peers to hang up) once closing starts.
    /// When a side breaks the protocol, also how long its close (1002 / 1007 / 1009) waits for
    /// the other side's close while that side's frames are still delivered to it; then it gets
    /// its close anyway, with one more close timeout to take it.
    pub close_timeout: Duration,
    /// Close both sides with 1001 when no frame passes either way for this long; `None` to disable.
    /// Only the peers' frames count: the relay's keep-alive pings and the pongs that answer them
    /// do not, so a connection kept alive by pings alone still times out.
    pub idle_timeout: Option<Duration>,
    /// Send a side a ping of the relay's own when that side has sent nothing for this long;
    /// `None` (the default) to disable. The ping goes out at a frame boundary (masked towards the
    /// upstream) with an 8-byte payload chosen per connection; the pong that answers it is
    /// absorbed, not forwarded, while other pongs pass.
    pub keep_alive: Option<Duration>,
    /// With a frame hook: show it whole messages instead of fragments. No effect without a hook.
    /// Aggregation holds a whole message in memory, so it is always bounded: by the direction's
    /// `max_message_size`, or by [`DEFAULT_AGGREGATE_LIMIT`](crate::hook::DEFAULT_AGGREGATE_LIMIT)
    /// where that is `None` (1009 beyond either).
    pub aggregate_fragments: bool,
    /// When a client's frame leaves for the upstream with a masking key of the relay's own
    /// (RFC 6455 §5.3, §10.3): by default ([`Remask::Auto`]) once the client's keys turn out
    /// predictable.
    pub remask: Remask,
    /// Messages and bytes per second the client may send, with a burst, and what happens
    /// beyond them (see [`RateLimit`]); `None` (the default) for no limit.
    pub client_rate_limit: Option<RateLimit>,
    /// The same for what the upstream sends; `None` (the default) for no limit.
    pub upstream_rate_limit: Option<RateLimit>,
}

impl Default for RelayOptions {
    fn default() -> RelayOptions {
        RelayOptions {
            buffer_size: 64 * 1024,
            client_max_frame_size: None,
            upstream_max_frame_size: None,
            client_max_message_size: None,
            upstream_max_message_size: None,
            validate_utf8: true,
            allowed_rsv: 0,
            close_timeout: Duration::from_secs(5),
            idle_timeout: None,
            keep_alive: None,
            aggregate_fragments: false,
            remask: Remask::Auto,
            client_rate_limit: None,
            upstream_rate_limit: None,
        }
    }
}
