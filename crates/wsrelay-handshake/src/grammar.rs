//! The RFC 9110 header grammar both the parsers and the forwarding policy check against:
//! tokens (§5.6.2), field values (§5.5), and the check every written header passes.

use crate::HandshakeError;

/// The `tchar` set of RFC 9110 §5.6.2.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// True for a byte allowed in a header value (RFC 9110 §5.5): anything but control characters,
/// HTAB excepted. CR and LF in particular would let one header smuggle in another.
pub(crate) fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// A header name for an error message: lossy UTF-8, at most 64 characters.
pub(crate) fn shown_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).chars().take(64).collect()
}

/// Checks a header before it is written: the name must be a token (RFC 9110 §5.1) and every
/// value byte allowed (no control characters but HTAB, RFC 9110 §5.5): the same rule the request
/// and response parsers apply, so whatever this lets through, our own parsers accept.
pub fn validate_header(name: &str, value: &[u8]) -> Result<(), HandshakeError> {
    let name_ok = !name.is_empty() && name.bytes().all(is_token_char);
    let value_ok = value.iter().all(|&b| is_value_byte(b));
    if name_ok && value_ok {
        Ok(())
    } else {
        Err(HandshakeError::InvalidHeader {
            name: shown_name(name.as_bytes()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_validation() {
        assert_eq!(validate_header("X-Trace", b"abc \t\xff"), Ok(()));
        assert_eq!(validate_header("!#$%&'*+-.^_`|~09az", b""), Ok(()));
        for (name, value) in [
            ("X-A", &b"a\r\nInjected: 1"[..]),
            ("X-A", b"a\rb"),
            ("X-A", b"a\nb"),
            ("X-A", b"a\0"),
            ("Bad Name", b"v"),
            ("Bad:Name", b"v"),
            ("", b"v"),
            ("X-\u{e9}", b"v"),
        ] {
            let err = validate_header(name, value).unwrap_err();
            assert_eq!(err, HandshakeError::InvalidHeader { name: name.into() });
            assert_eq!(err.status(), 400);
        }
    }
}
