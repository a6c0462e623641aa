//! Per-thread pool of relay buffers, so idle connections hold no buffer at all.
//!
//! A pump takes a buffer when its source becomes readable and gives it back as soon as the buffer
//! is empty and the source has nothing more to read. Busy connections keep theirs; idle ones cost
//! only their small state.

use std::cell::RefCell;

/// Bytes of buffers kept per thread for reuse (at least one buffer); beyond this they are freed,
/// so a burst of busy connections does not pin its buffers for the life of the process.
const MAX_POOLED_BYTES: usize = 4 << 20;

/// Pooled buffers and the sum of their lengths.
struct Pool {
    buffers: Vec<Box<[u8]>>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { buffers: Vec::new(), bytes: 0 }) };
}

/// A zeroed buffer of exactly `size` bytes, reused when one is pooled.
pub(crate) fn take(size: usize) -> Box<[u8]> {
    let pooled = POOL.with(|p| {
        let mut pool = p.borrow_mut();
        let at = pool.buffers.iter().rposition(|b| b.len() == size)?;
        pool.bytes -= size;
        Some(pool.buffers.swap_remove(at))
    });
    pooled.unwrap_or_else(|| vec![0u8; size].into_boxed_slice())
}

/// Returns a buffer for reuse on this thread.
pub(crate) fn give(buf: Box<[u8]>) {
    POOL.with(|p| {
        let mut pool = p.borrow_mut();
        if pool.buffers.is_empty() || pool.bytes + buf.len() <= MAX_POOLED_BYTES {
            pool.bytes += buf.len();
            pool.buffers.push(buf);
        }
    });
}
