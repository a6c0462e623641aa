//! A ring of provided buffers (`IORING_REGISTER_PBUF_RING`, Linux 5.19+): the kernel picks a
//! buffer for each multishot receive completion and names it in the CQE's flags; the worker
//! copies the bytes out and hands the buffer back by advancing the ring's tail.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The kernel wants the ring page-aligned.
const PAGE: usize = 4096;

/// The registered ring and the memory of its buffers, owned by one worker.
pub(crate) struct ProvidedBuffers {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    memory: Box<[u8]>,
    entries: u16,
    buf_size: usize,
    /// Our copy of the tail (the kernel reads the shared one).
    tail: u16,
    /// Buffer group id the receives name.
    pub(crate) group: u16,
}

impl ProvidedBuffers {
    /// Registers `entries` (a power of two) buffers of `buf_size` bytes as group `group`.
    pub(crate) fn register(
        uring: &IoUring,
        group: u16,
        entries: u16,
        buf_size: usize,
    ) -> io::Result<ProvidedBuffers> {
        if !entries.is_power_of_two() || buf_size == 0 || u32::try_from(buf_size).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad buffer ring size",
            ));
        }
        let ring_bytes = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        let ring_layout = Layout::from_size_align(ring_bytes.max(PAGE), PAGE)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: the layout has a non-zero size.
        let ring = unsafe { alloc_zeroed(ring_layout) }.cast::<BufRingEntry>();
        if ring.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "buffer ring allocation",
            ));
        }
        let mut buffers = ProvidedBuffers {
            ring,
            ring_layout,
            memory: vec![0u8; usize::from(entries) * buf_size].into_boxed_slice(),
            entries,
            buf_size,
            tail: 0,
            group,
        };
        // SAFETY: the ring memory is page-aligned, sized for `entries`, and lives (in `buffers`,
        // dropped only after the ring it is registered with) until the io_uring is gone.
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(ring as u64, entries, group, 0)?;
        }
        for bid in 0..entries {
            buffers.push(bid);
        }
        buffers.publish();
        Ok(buffers)
    }

    /// The first `len` bytes the kernel received into buffer `bid` (empty if out of range).
    pub(crate) fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buf_size;
        let len = len.min(self.buf_size);
        self.memory.get(start..start + len).unwrap_or_default()
    }

    /// Queues buffer `bid` for the kernel again (visible after [`publish`](Self::publish)).
    pub(crate) fn push(&mut self, bid: u16) {
        if bid >= self.entries {
            return;
        }
        let index = usize::from(self.tail & (self.entries - 1));
        let addr = self.memory[usize::from(bid) * self.buf_size..].as_ptr() as u64;
        // SAFETY: `index` < entries, inside the ring allocation; the kernel does not write
        // entries past the tail it has seen.
        let entry = unsafe { &mut *self.ring.add(index) };
        entry.set_addr(addr);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the pushed buffers to the kernel: one release store of the tail per loop turn.
    pub(crate) fn publish(&self) {
        // SAFETY: the tail field lives in the ring's first entry, which is valid and aligned
        // for a u16; the kernel reads it atomically.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

// SAFETY: the ring allocation is owned by this value alone (no other pointer to it exists in
// the program); it moves once, with its worker, into the worker's thread.
unsafe impl Send for ProvidedBuffers {}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with this layout. The worker drops the ring (and so
        // the kernel's use of this memory) before its buffers: see the field order in Worker.
        unsafe { dealloc(self.ring.cast(), self.ring_layout) };
    }
}
