//! cargo-fuzz entry point `frame_header`; the body and its invariants are in `src/codec.rs`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsrelay_fuzz::codec::frame_header(data));
