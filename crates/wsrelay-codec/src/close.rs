//! Close frame payloads (RFC 6455 §5.5.1, §7.4): a 2-byte status code and a UTF-8 reason.

use crate::ProtocolError;

/// Close status codes of RFC 6455 §7.4.1 that the relay itself sends.
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (server shutdown, a peer vanished, idle timeout).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// No status code was present (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// The connection dropped without a close frame (never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// Payload inconsistent with the message type, e.g. bad UTF-8 in text.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A policy was violated.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame or message exceeded the configured size limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// A gateway got an invalid response from the upstream server.
    pub const BAD_GATEWAY: u16 = 1014;
}

/// Longest reason that fits a control frame next to the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// Whether `code` may appear in a close frame on the wire.
///
/// Valid: 1000-1003, 1007-1014 (RFC 6455 §7.4.1 and the IANA registry) and 3000-4999
/// (registered and private use). Invalid: 0-999, 1004-1006, 1015, 1016-2999 and 5000 and up.
#[inline]
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A parsed close payload, borrowing the reason from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code, if the payload carried one.
    pub code: Option<u16>,
    /// The reason text (empty when absent).
    pub reason: &'a str,
}

impl<'a> CloseFrame<'a> {
    /// Parses and validates an unmasked close payload.
    ///
    /// An empty payload is a close without a code; a 1-byte payload, an invalid code or a
    /// reason that is not UTF-8 is a protocol error.
    ///
    /// ```
    /// use wsrelay_codec::CloseFrame;
    /// let close = CloseFrame::parse(b"\x03\xe8bye")?;
    /// assert_eq!((close.code, close.reason), (Some(1000), "bye"));
    /// # Ok::<(), wsrelay_codec::ProtocolError>(())
    /// ```
    pub fn parse(payload: &'a [u8]) -> Result<CloseFrame<'a>, ProtocolError> {
        match payload {
            [] => Ok(CloseFrame {
                code: None,
                reason: "",
            }),
            [_] => Err(ProtocolError::CloseTooShort),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !is_valid_close_code(code) {
                    return Err(ProtocolError::InvalidCloseCode(code));
                }
                let reason =
                    simdutf8::basic::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(CloseFrame {
                    code: Some(code),
                    reason,
                })
            }
        }
    }

    /// Encodes `code` and `reason` into `buf`, returning the payload bytes.
    ///
    /// A reason longer than [`MAX_REASON_LEN`] bytes is cut at the last character boundary that
    /// fits, so the frame stays a valid control frame.
    ///
    /// ```
    /// use wsrelay_codec::CloseFrame;
    /// let mut buf = [0u8; 125];
    /// assert_eq!(CloseFrame::encode(1001, "bye", &mut buf), b"\x03\xe9bye");
    /// ```
    pub fn encode<'b>(code: u16, reason: &str, buf: &'b mut [u8; 125]) -> &'b [u8] {
        let mut end = reason.len().min(MAX_REASON_LEN);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        buf[..2].copy_from_slice(&code.to_be_bytes());
        buf[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
        &buf[..2 + end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_table() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ];
        let valid_ranges = [3000, 3999, 4000, 4999];
        let invalid = [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for c in valid.iter().chain(valid_ranges.iter()) {
            assert!(is_valid_close_code(*c), "{c}");
        }
        for c in invalid {
            assert!(!is_valid_close_code(c), "{c}");
        }
    }

    #[test]
    fn parse_cases() {
        assert_eq!(
            CloseFrame::parse(b""),
            Ok(CloseFrame {
                code: None,
                reason: ""
            })
        );
        assert_eq!(
            CloseFrame::parse(b"\x03"),
            Err(ProtocolError::CloseTooShort)
        );
        assert_eq!(
            CloseFrame::parse(b"\x03\xed"),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            CloseFrame::parse(b"\x03\xe8\xff"),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            CloseFrame::parse(b"\x0f\xa0\xce\xba").map(|c| (c.code, c.reason)),
            Ok((Some(4000), "κ"))
        );
    }

    #[test]
    fn encode_truncates_on_char_boundary() {
        let mut buf = [0u8; 125];
        let long = "é".repeat(100); // 200 bytes
        let payload = CloseFrame::encode(1000, &long, &mut buf);
        assert_eq!(payload.len(), 2 + 122);
        let parsed = CloseFrame::parse(payload).map(|c| c.reason.len());
        assert_eq!(parsed, Ok(122));
    }
}
