//! Per-thread pool of relay buffers, so idle connections hold no buffer at all.
//!
//! A pump takes a buffer when its source becomes readable and gives it back as soon as the buffer
//! is empty and the source has nothing more to read. Busy connections keep theirs; idle ones cost
//! only their small state.

use std::cell::RefCell;

/// Buffers kept per thread for reuse; beyond this they are freed.
const MAX_POOLED: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A zeroed buffer of exactly `size` bytes, reused when one is pooled.
pub(crate) fn take(size: usize) -> Box<[u8]> {
    let pooled = POOL.with(|p| {
        let mut pool = p.borrow_mut();
        let at = pool.iter().rposition(|b| b.len() == size)?;
        Some(pool.swap_remove(at))
    });
    pooled.unwrap_or_else(|| vec![0u8; size].into_boxed_slice())
}

/// Returns a buffer for reuse on this thread.
pub(crate) fn give(buf: Box<[u8]>) {
    POOL.with(|p| {
        let mut pool = p.borrow_mut();
        if pool.len() < MAX_POOLED {
            pool.push(buf);
        }
    });
}
