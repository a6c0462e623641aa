//! Proves the hot-path operations never touch the heap, with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use wsrelay_codec::{
    apply_mask, CloseFrame, FrameHeader, OpCode, Parse, ParseConfig, Role, Utf8Validator,
    MAX_HEADER_LEN,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the measuring thread only: the test harness's own threads allocate whenever they
    /// like, and a global count would blame the codec for it.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: forwards the caller's layout contract to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout, via `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parse_encode_mask_validate_do_not_allocate() {
    // Inputs are prepared before counting starts.
    let text = "héllo wörld 😀 ".repeat(200).into_bytes();
    let mut payload = vec![0x5a_u8; 70_000];
    let masked_frame = [0x81, 0xFE, 0x01, 0x00, 1, 2, 3, 4];
    let close = *b"\x03\xe8going away";
    let garbage = [0x83, 0x00];

    COUNTING.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut sum = 0u64;
    for _ in 0..100 {
        if let Ok(Parse::Complete(h, n)) =
            FrameHeader::parse(&masked_frame, ParseConfig::new(Role::Server))
        {
            sum += h.payload_len + n as u64;
        }
        sum += u64::from(FrameHeader::parse(&garbage, ParseConfig::new(Role::Client)).is_err());
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        sum += FrameHeader::new(OpCode::Binary, 70_000)
            .encode(&mut hbuf)
            .len() as u64;
        apply_mask(&mut payload, [9, 8, 7, 6], 3);
        let mut v = Utf8Validator::new();
        for chunk in text.chunks(7) {
            sum += u64::from(v.feed(chunk).is_ok());
        }
        sum += u64::from(v.finish().is_ok());
        sum += u64::from(CloseFrame::parse(&close).is_ok());
        let mut cbuf = [0u8; 125];
        sum += CloseFrame::encode(1001, "bye", &mut cbuf).len() as u64;
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(false));
    assert!(sum > 0);
    assert_eq!(
        after - before,
        0,
        "the codec allocated {} times",
        after - before
    );
}
