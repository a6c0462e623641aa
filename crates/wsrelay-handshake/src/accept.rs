//! `Sec-WebSocket-Accept`: proof that a server read this handshake (RFC 6455 §4.2.2).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};
use wsrelay_codec::random::{self, RandomError};

/// The GUID RFC 6455 §1.3 appends to the key.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `base64(sha1(key ++ GUID))`: the accept value for a client's `Sec-WebSocket-Key`.
///
/// ```
/// assert_eq!(
///     wsrelay_handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID);
    STANDARD.encode(sha.finalize())
}

/// True if `key` is base64 of exactly 16 bytes (RFC 6455 §4.1).
pub(crate) fn is_valid_key(key: &str) -> bool {
    key.len() == 24 && STANDARD.decode(key).is_ok_and(|k| k.len() == 16)
}

/// A fresh random key: base64 of 16 bytes from the OS random source (RFC 6455 §4.1 item 7:
/// "randomly selected"). A failing source is an error, never a fixed or time-derived nonce.
pub(crate) fn new_key() -> Result<String, RandomError> {
    let mut nonce = [0u8; 16];
    random::fill(&mut nonce)?;
    Ok(STANDARD.encode(nonce))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_vector() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn keys() {
        assert!(is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25jZQ")); // unpadded
        assert!(!is_valid_key("c2hvcnQ=")); // 5 bytes
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25jZQ=!"));
        let a = new_key().unwrap();
        assert!(is_valid_key(&a));
        assert_ne!(a, new_key().unwrap());
    }
}
