#![no_main]
//! cargo-fuzz entry point; the body (with its invariants) lives in `src/codec.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsrelay_fuzz::codec::frame_header(data));
