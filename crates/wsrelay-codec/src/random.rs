//! The workspace's one source of random bytes: masking keys, handshake nonces, ping tokens.
//!
//! Everything unpredictable the proxy sends comes from the operating system through
//! `getrandom`: the masking keys of frames it encodes towards an upstream (RFC 6455 §5.3), the
//! `Sec-WebSocket-Key` nonce of its upgrade requests (§4.1) and the payload of its keep-alive
//! pings.
//!
//! # Failure policy
//!
//! When the OS source fails, the caller gets a [`RandomError`], never a constant or a
//! time-derived stand-in: a masking key a page script can predict is what §10.3 masking exists
//! to prevent (cache poisoning of intermediaries), and a guessable ping token lets a peer forge
//! the answers the relay absorbs. Each caller turns the error into a refusal of its own:
//!
//! - the handshake's `UpgradeRequest::new` returns it (the gateway answers its client with 500
//!   and sends the upstream no request);
//! - a running relay ends the connection: both sides get close 1011 (the upstream only if a
//!   masking key for that close can still be drawn; otherwise its connection is shut down
//!   without a close frame), and the outcome names the failure.
//!
//! ```
//! use wsrelay_codec::random;
//!
//! let key = random::masking_key()?;
//! let mut nonce = [0u8; 16];
//! random::fill(&mut nonce)?;
//! # let _ = key;
//! # Ok::<(), wsrelay_codec::random::RandomError>(())
//! ```

use std::fmt;

/// The operating system's random source failed; nothing random could be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomError(getrandom::Error);

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the operating system's random source failed: {}", self.0)
    }
}

impl std::error::Error for RandomError {}

/// Fills `buf` with bytes from the OS random source.
pub fn fill(buf: &mut [u8]) -> Result<(), RandomError> {
    #[cfg(any(test, feature = "fault-injection"))]
    if fault::active() {
        return Err(RandomError(getrandom::Error::UNEXPECTED));
    }
    getrandom::fill(buf).map_err(RandomError)
}

/// A fresh masking key for one frame (RFC 6455 §5.3: unpredictable, chosen per frame).
pub fn masking_key() -> Result<[u8; 4], RandomError> {
    let mut key = [0u8; 4];
    fill(&mut key)?;
    Ok(key)
}

/// Masking keys drawn from the OS in batches of 16, so a sender that encodes many frames (the
/// relay re-encoding what a frame hook rewrote) does not make one system call per frame.
#[derive(Debug, Clone)]
pub struct MaskingKeys {
    bytes: [u8; 64],
    used: usize,
}

impl MaskingKeys {
    /// An empty batch: the first [`next_key`](Self::next_key) draws from the OS.
    pub fn new() -> MaskingKeys {
        MaskingKeys {
            bytes: [0; 64],
            used: 64,
        }
    }

    /// The next unused key; a new batch is drawn when this one is spent. A failed draw leaves
    /// the batch spent, so no key is ever handed out twice.
    pub fn next_key(&mut self) -> Result<[u8; 4], RandomError> {
        if self.used + 4 > self.bytes.len() {
            fill(&mut self.bytes)?;
            self.used = 0;
        }
        let mut key = [0u8; 4];
        key.copy_from_slice(&self.bytes[self.used..self.used + 4]);
        self.used += 4;
        Ok(key)
    }
}

impl Default for MaskingKeys {
    fn default() -> MaskingKeys {
        MaskingKeys::new()
    }
}

/// Failure injection for tests (feature `fault-injection`, never in a release build): makes
/// the random source fail on the current thread, so tests can check what callers do then.
#[cfg(any(test, feature = "fault-injection"))]
#[doc(hidden)]
pub mod fault {
    use std::cell::Cell;

    thread_local! {
        static FAIL: Cell<bool> = const { Cell::new(false) };
    }

    /// True while the random source is made to fail on this thread.
    pub fn active() -> bool {
        FAIL.with(Cell::get)
    }

    /// Makes every draw on this thread fail until the guard is dropped.
    pub fn fail_on_this_thread() -> Guard {
        FAIL.with(|f| f.set(true));
        Guard(())
    }

    /// Restores the random source on drop.
    pub struct Guard(());

    impl Drop for Guard {
        fn drop(&mut self) {
            FAIL.with(|f| f.set(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ() {
        // 32 random bits twice alike: one chance in 2^32 of a false failure.
        assert_ne!(masking_key().unwrap(), masking_key().unwrap());
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        fill(&mut a).unwrap();
        fill(&mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn batched_keys_are_all_distinct_across_batches() {
        let mut keys = MaskingKeys::new();
        let drawn: Vec<[u8; 4]> = (0..40).map(|_| keys.next_key().unwrap()).collect();
        let mut unique = drawn.clone();
        unique.sort_unstable();
        unique.dedup();
        // 40 keys of 32 bits: a collision has odds of about 1 in 5 million.
        assert_eq!(unique.len(), drawn.len());
    }

    #[test]
    fn the_error_names_its_source() {
        let e = RandomError(getrandom::Error::UNSUPPORTED);
        assert!(e
            .to_string()
            .starts_with("the operating system's random source failed"));
    }

    #[cfg(any(test, feature = "fault-injection"))]
    #[test]
    fn a_failing_source_is_an_error_never_a_constant() {
        let mut keys = MaskingKeys::new();
        keys.next_key().unwrap();
        let guard = fault::fail_on_this_thread();
        assert!(masking_key().is_err());
        let mut buf = [0u8; 8];
        assert!(fill(&mut buf).is_err());
        // The rest of the batch drawn before the failure is still good; then it fails.
        for _ in 1..16 {
            keys.next_key().unwrap();
        }
        assert!(keys.next_key().is_err());
        assert!(keys.next_key().is_err());
        drop(guard);
        assert!(keys.next_key().is_ok());
    }
}
