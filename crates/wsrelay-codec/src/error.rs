//! The codec's one error type: every way a peer can break RFC 6455 framing.

/// A framing rule the peer broke. Each maps to the close code the relay answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Opcodes 0x3-0x7 and 0xB-0xF are reserved (RFC 6455 §5.2).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// An RSV bit is set that no negotiated extension defines (RFC 6455 §5.2); holds the offending bits (RSV1 = 0b100).
    #[error("RSV bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// Control frames must carry at most 125 payload bytes (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLong(u64),
    /// Control frames must not be fragmented (RFC 6455 §5.5).
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// The most significant bit of a 64-bit payload length must be 0 (RFC 6455 §5.2).
    #[error("64-bit payload length with the most significant bit set")]
    LengthTopBitSet,
    /// Payload lengths must use the minimal number of bytes (RFC 6455 §5.2).
    #[error("payload length {0} not encoded in the minimal number of bytes")]
    NonMinimalLength(u64),
    /// Client-to-server frames must be masked (RFC 6455 §5.1).
    #[error("frame from a client is not masked")]
    UnmaskedClientFrame,
    /// Server-to-client frames must not be masked (RFC 6455 §5.1).
    #[error("frame from a server is masked")]
    MaskedServerFrame,
    /// A close payload of exactly one byte cannot hold a status code (RFC 6455 §5.5.1).
    #[error("close payload of 1 byte")]
    CloseTooShort,
    /// A close code that must not appear on the wire (RFC 6455 §7.4, IANA registry).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// Text payload (or close reason) that is not valid UTF-8 (RFC 6455 §8.1).
    #[error("invalid UTF-8 in text")]
    InvalidUtf8,
}

impl ProtocolError {
    /// The close code to send to the peer that broke the rule: 1007 for bad UTF-8, 1002 otherwise.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 => crate::close::code::INVALID_PAYLOAD,
            _ => crate::close::code::PROTOCOL_ERROR,
        }
    }
}
