//! The workspace's one source of random bytes: masking keys, handshake nonces, ping tokens.
//!
//! Everything unpredictable the proxy sends comes from the operating system through
//! `getrandom`: the `Sec-WebSocket-Key` nonce of its upgrade requests (§4.1) and the payload of
//! its keep-alive pings directly, and the masking keys of the frames it sends or re-masks
//! towards an upstream (RFC 6455 §5.3) through a per-thread ChaCha12 generator seeded from it
//! ([`masking_key`]), cheap enough to take one key per frame.
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

use std::cell::RefCell;
use std::fmt;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

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
///
/// Keys come from this thread's generator: ChaCha12 seeded from the OS the first time the
/// thread asks, reseeded from the OS every [`RESEED_AFTER_KEYS`] keys, and read out in blocks,
/// so a key costs a few nanoseconds instead of a system call. Each tokio worker thread has its
/// own generator: taking a key touches no state shared between cores. A failed seeding is an
/// error, never a weaker key; [`seed_this_thread`] lets a program find out at start.
pub fn masking_key() -> Result<[u8; 4], RandomError> {
    #[cfg(any(test, feature = "fault-injection"))]
    if fault::active() {
        return Err(RandomError(getrandom::Error::UNEXPECTED));
    }
    GENERATOR.with(|cell| {
        let mut generator = cell.borrow_mut();
        let generator = match &mut *generator {
            Some(g) if g.keys_left > 0 => g,
            slot => slot.insert(Generator::seeded()?),
        };
        generator.keys_left -= 1;
        let mut key = [0u8; 4];
        generator.rng.fill_bytes(&mut key);
        Ok(key)
    })
}

/// A fresh masking key that is neither zero nor `old`: for a frame re-masked because its key
/// was predictable, whose new key must differ from the one it replaces.
pub fn masking_key_except(old: [u8; 4]) -> Result<[u8; 4], RandomError> {
    // A draw is zero or `old` once in 2^31; eight in a row mean the generator is broken.
    for _ in 0..8 {
        let key = masking_key()?;
        if key != [0; 4] && key != old {
            return Ok(key);
        }
    }
    Err(RandomError(getrandom::Error::UNEXPECTED))
}

/// Seeds this thread's key generator from the OS now (a no-op when it is seeded), so that a
/// program learns at start, not at its first frame, that it has no random source.
pub fn seed_this_thread() -> Result<(), RandomError> {
    masking_key().map(drop)
}

/// Keys a thread's generator hands out before it is reseeded from the OS.
pub const RESEED_AFTER_KEYS: u32 = 1 << 20;

thread_local! {
    static GENERATOR: RefCell<Option<Generator>> = const { RefCell::new(None) };
}

/// One thread's key generator and how many keys it may still give.
struct Generator {
    rng: ChaCha12Rng,
    keys_left: u32,
}

impl Generator {
    fn seeded() -> Result<Generator, RandomError> {
        let mut seed = [0u8; 32];
        fill(&mut seed)?;
        Ok(Generator {
            rng: ChaCha12Rng::from_seed(seed),
            keys_left: RESEED_AFTER_KEYS,
        })
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
    fn keys_are_distinct_across_generator_blocks() {
        // 4,000 keys span many ChaCha blocks. 4,000 keys of 32 bits: a collision has odds of
        // about 1 in 540.
        let drawn: Vec<[u8; 4]> = (0..4000).map(|_| masking_key().unwrap()).collect();
        let mut unique = drawn.clone();
        unique.sort_unstable();
        unique.dedup();
        assert!(
            unique.len() >= drawn.len() - 1,
            "{} repeats",
            drawn.len() - unique.len()
        );
    }

    #[test]
    fn threads_draw_different_keys() {
        let here: Vec<[u8; 4]> = (0..8).map(|_| masking_key().unwrap()).collect();
        let there: Vec<[u8; 4]> =
            std::thread::spawn(|| (0..8).map(|_| masking_key().unwrap()).collect())
                .join()
                .unwrap();
        assert_ne!(here, there);
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
        masking_key().unwrap();
        let guard = fault::fail_on_this_thread();
        assert!(masking_key().is_err());
        assert!(seed_this_thread().is_err());
        let mut buf = [0u8; 8];
        assert!(fill(&mut buf).is_err());
        drop(guard);
        assert!(masking_key().is_ok());
    }

    #[test]
    fn a_spent_generator_is_reseeded_and_a_failed_seeding_is_an_error() {
        masking_key().unwrap();
        GENERATOR.with(|g| g.borrow_mut().as_mut().unwrap().keys_left = 0);
        {
            let _guard = fault::fail_on_this_thread();
            assert!(masking_key().is_err());
        }
        let before = GENERATOR.with(|g| g.borrow().as_ref().unwrap().keys_left);
        assert_eq!(before, 0, "a failed reseed hands out nothing");
        masking_key().unwrap();
        let after = GENERATOR.with(|g| g.borrow().as_ref().unwrap().keys_left);
        assert_eq!(after, RESEED_AFTER_KEYS - 1);
    }
}
