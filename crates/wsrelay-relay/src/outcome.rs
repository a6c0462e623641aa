//! What a finished relay reports: why it ended, close codes and traffic each way.

use std::time::Duration;

use wsrelay_codec::RandomError;

use crate::Violation;

/// One of the two peers of a relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The WebSocket client that connected to the relay.
    Client,
    /// The upstream server the relay connected to.
    Upstream,
}

impl Side {
    /// The other peer.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        })
    }
}

/// A close frame as a peer sent it (or the relay sent on a peer's behalf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The status code; `None` for a close frame without one.
    pub code: Option<u16>,
    /// The reason text.
    pub reason: String,
}

/// Frames and bytes forwarded in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frames forwarded (control frames included).
    pub frames: u64,
    /// Wire bytes forwarded (headers and payloads).
    pub bytes: u64,
    /// Client frames forwarded with a masking key of the relay's own instead of the client's
    /// (see [`Remask`](crate::Remask)); always 0 towards the client.
    pub remasked: u64,
    /// Data messages whose final frame was forwarded (counted on the pass-through path; a
    /// relay with a frame hook leaves it at 0).
    pub messages: u64,
    /// The frame headers among the forwarded frames' bytes (same counting as `messages`).
    pub header_bytes: u64,
}

impl Traffic {
    /// Payload bytes forwarded: the wire bytes less the frame headers.
    pub fn payload_bytes(&self) -> u64 {
        self.bytes.saturating_sub(self.header_bytes)
    }
}

/// Why a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// A close handshake completed; `initiator` sent the first close.
    Closed {
        /// The side whose close came first.
        initiator: Side,
    },
    /// A side broke the protocol and was failed with the violation's close code.
    Violation {
        /// The side that broke the rule.
        side: Side,
        /// The rule broken.
        violation: Violation,
    },
    /// A side's connection ended (EOF or a transport error) without a close frame.
    Vanished {
        /// The side that went away.
        side: Side,
        /// The transport error, if the connection failed rather than ended.
        error: Option<std::io::ErrorKind>,
    },
    /// No frame passed for the idle timeout; both sides got 1001.
    IdleTimeout,
    /// The frame hook closed the connection (or broke a frame under way, closed with 1011);
    /// both sides got `code`.
    Hook {
        /// The side whose frame the hook was looking at.
        side: Side,
        /// The close code sent to both sides.
        code: u16,
    },
    /// The relay was asked to shut down; both sides got 1001.
    Shutdown,
    /// The deadline its owner set ([`Relay::close_at`](crate::Relay::close_at)) passed, e.g. the
    /// token the tunnel was opened with expired; both sides got `code`.
    Deadline {
        /// The close code sent to both sides.
        code: u16,
    },
    /// The OS random source failed when the relay needed a masking key or a keep-alive token
    /// (see [`wsrelay_codec::random`]): rather than send a predictable one, the relay closed both
    /// sides with 1011 (a side whose close could not be masked either was shut down without one).
    /// Named whatever else happened, as the failure an operator must see.
    RandomSource {
        /// What the random source reported.
        error: RandomError,
    },
}

/// The report of a finished relay, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOutcome {
    /// Why the relay ended.
    pub end: EndReason,
    /// The close frame the client sent, if any.
    pub client_close: Option<CloseInfo>,
    /// The close frame the upstream sent, if any.
    pub upstream_close: Option<CloseInfo>,
    /// Close frames the relay itself sent to the client (not forwarded ones).
    pub sent_to_client: Option<CloseInfo>,
    /// Close frames the relay itself sent to the upstream (not forwarded ones).
    pub sent_to_upstream: Option<CloseInfo>,
    /// Traffic forwarded from the client to the upstream.
    pub client_to_upstream: Traffic,
    /// Traffic forwarded from the upstream to the client.
    pub upstream_to_client: Traffic,
    /// True if the closing steps did not finish within the close timeout.
    pub close_timed_out: bool,
    /// Time from the start of the relay to its end.
    pub duration: Duration,
}
