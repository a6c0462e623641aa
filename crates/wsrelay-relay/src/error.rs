//! The relay's error type: the rules a peer can break, each with its RFC 6455 close code.

use wsrelay_codec::ProtocolError;

/// A rule one side broke; the relay fails that side with [`Violation::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A framing rule of RFC 6455 (bad header, bad close payload, invalid UTF-8).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A continuation frame arrived with no message open (RFC 6455 §5.4).
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A text or binary frame arrived while a fragmented message was still open (RFC 6455 §5.4).
    #[error("new data frame while a fragmented message is open")]
    MessageInterleaved,
    /// An RSV bit on a frame where the negotiated extension does not allow it (RFC 7692 §6.1:
    /// only the first frame of a data message may carry RSV1).
    #[error("RSV bits set on a continuation or control frame")]
    ReservedBitsPlacement,
    /// A frame whose payload is larger than the configured maximum.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooBig {
        /// Declared payload length.
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// A message whose fragments add up to more than the configured maximum.
    #[error("message of at least {size} bytes exceeds the limit of {limit}")]
    MessageTooBig {
        /// Message size including the frame that crossed the limit.
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The side sent more than its rate limit allows, under [`RateAction::Close`](crate::RateAction::Close)
    /// (1008, policy violation).
    #[error("rate limit exceeded: more than {per_second} {what} per second")]
    RateLimited {
        /// What was counted: `"messages"` or `"bytes"`.
        what: &'static str,
        /// The budget per second.
        per_second: u64,
    },
}

impl Violation {
    /// The close code RFC 6455 §7.4.1 assigns: 1007 for invalid UTF-8, 1009 for size limits, 1008 for
    /// rate limits, 1002 otherwise.
    pub fn close_code(&self) -> u16 {
        use wsrelay_codec::close::code;
        match self {
            Violation::Protocol(e) => e.close_code(),
            Violation::FrameTooBig { .. } | Violation::MessageTooBig { .. } => {
                code::MESSAGE_TOO_BIG
            }
            Violation::RateLimited { .. } => code::POLICY_VIOLATION,
            _ => code::PROTOCOL_ERROR,
        }
    }
}
