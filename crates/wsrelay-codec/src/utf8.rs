//! Streaming UTF-8 validation of text messages that arrive in arbitrary chunks and fragments.

use crate::ProtocolError;

/// Validates one text message fed in pieces, without buffering the message.
///
/// State is carried across [`feed`](Utf8Validator::feed) calls, so a character split across
/// chunks or fragments is checked when its last byte arrives. Validation fails fast, at the
/// first byte after which no valid text can follow (an overlong form or a surrogate fails at
/// once; a sequence merely cut short fails only at [`finish`](Utf8Validator::finish)),
/// which is what RFC 6455 §8.1 and the Autobahn 6.x cases ask of an endpoint.
///
/// ```
/// use wsrelay_codec::Utf8Validator;
/// let text = "κόσμε".as_bytes();
/// let mut v = Utf8Validator::new();
/// for byte in text.chunks(1) {
///     v.feed(byte)?;
/// }
/// v.finish()?;
/// assert!(Utf8Validator::new().feed(b"\xed\xa0\x80").is_err()); // a surrogate fails at once
/// # Ok::<(), wsrelay_codec::ProtocolError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    /// Bytes of a character begun in an earlier chunk, always a valid prefix.
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Utf8Validator {
        Utf8Validator {
            pending: [0; 4],
            pending_len: 0,
        }
    }

    /// Checks the next piece of the message.
    #[inline]
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), ProtocolError> {
        if self.pending_len != 0 {
            chunk = self.complete_pending(chunk)?;
            if self.pending_len != 0 {
                return Ok(());
            }
        }
        if simdutf8::basic::from_utf8(chunk).is_ok() {
            return Ok(());
        }
        // The fast check only says "invalid"; ask the slower one whether the input merely ends mid-character.
        match simdutf8::compat::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = chunk.get(e.valid_up_to()..).unwrap_or_default();
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }

    /// Ends the message: fails if it stopped in the middle of a character. Resets the validator.
    #[inline]
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let incomplete = self.pending_len != 0;
        *self = Utf8Validator::new();
        if incomplete {
            Err(ProtocolError::InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// True while a character begun in an earlier chunk still waits for its last bytes.
    pub fn is_mid_character(&self) -> bool {
        self.pending_len != 0
    }

    /// Feeds bytes to the pending character; returns the rest of `chunk`.
    fn complete_pending<'a>(&mut self, chunk: &'a [u8]) -> Result<&'a [u8], ProtocolError> {
        let have = usize::from(self.pending_len);
        let need = sequence_len(self.pending[0]).saturating_sub(have);
        let take = need.min(chunk.len());
        let (head, rest) = chunk.split_at(take);
        self.pending[have..have + take].copy_from_slice(head);
        let total = have + take;
        match std::str::from_utf8(&self.pending[..total]) {
            Ok(_) => {
                self.pending_len = 0;
                Ok(rest)
            }
            Err(e) if e.error_len().is_none() => {
                self.pending_len = total as u8;
                Ok(rest)
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }
}

/// Length of the sequence a lead byte starts (only called on valid lead bytes).
#[inline]
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_chunks(chunks: &[&[u8]]) -> Result<(), ProtocolError> {
        let mut v = Utf8Validator::new();
        for c in chunks {
            v.feed(c)?;
        }
        v.finish()
    }

    #[test]
    fn fail_fast_cases() {
        let mut v = Utf8Validator::new();
        // Truncated 4-byte sequence at the end of a fragment: fine until the message ends.
        assert!(v.feed(b"ab\xf0\x9f\x98").is_ok());
        assert!(v.finish().is_err());
        // Completed on the next fragment.
        assert_eq!(validate_chunks(&[b"\xf0\x9f", b"\x98\x80"]), Ok(()));
        // Overlong and surrogate forms fail on their own bytes.
        assert!(Utf8Validator::new().feed(b"\xc0").is_err());
        assert!(Utf8Validator::new().feed(b"\xe0\x80").is_err());
        assert!(Utf8Validator::new().feed(b"\xed\xa0").is_err());
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xed").is_ok());
        assert!(v.feed(b"\xa0").is_err());
        // Above U+10FFFF.
        assert!(Utf8Validator::new().feed(b"\xf4\x90").is_err());
        assert!(Utf8Validator::new().feed(b"\xf5").is_err());
    }

    #[test]
    fn autobahn_6_4_style_fail_positions() {
        // κόσμε followed by the invalid F4 90 80 80 (beyond U+10FFFF): invalid as soon as 0x90 arrives.
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert!(v.feed(b"\xf4").is_ok());
        assert!(v.feed(b"\x90").is_err());
    }

    #[test]
    fn every_split_of_valid_text() {
        let text = "aé€😀 κόσμε 𝄞 end".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(
                    validate_chunks(&[&text[..i], &text[i..j], &text[j..]]),
                    Ok(()),
                    "{i} {j}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_std(
            data in proptest::collection::vec(any::<u8>(), 0..256),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut v = Utf8Validator::new();
            let mut done = 0;
            let mut result = Ok(());
            for p in points.into_iter().chain(std::iter::once(data.len())) {
                result = result.and_then(|_| v.feed(&data[done..p]));
                done = p;
            }
            let result = result.and_then(|_| v.finish());
            prop_assert_eq!(result.is_ok(), std::str::from_utf8(&data).is_ok());
        }

        #[test]
        fn mostly_valid_text_agrees_with_std(
            s in "\\PC{0,64}",
            junk in any::<u8>(),
            at in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut data = s.into_bytes();
            let at = at.index(data.len() + 1);
            data.insert(at, junk);
            let cut = cut.index(data.len() + 1);
            let result = validate_chunks(&[&data[..cut], &data[cut..]]);
            prop_assert_eq!(result.is_ok(), std::str::from_utf8(&data).is_ok());
        }

        #[test]
        fn fails_exactly_where_std_says_no_continuation_is_possible(
            data in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            // Fed one byte at a time, the first failing byte is the one std reports as the error end.
            let mut v = Utf8Validator::new();
            let failed_at = (0..data.len()).find(|&i| v.feed(&data[i..=i]).is_err());
            // The oracle: the first prefix that std says no continuation can make valid.
            let expected = (0..data.len()).find(|&i| {
                matches!(std::str::from_utf8(&data[..=i]), Err(e) if e.error_len().is_some())
            });
            prop_assert_eq!(failed_at, expected);
        }
    }
}
