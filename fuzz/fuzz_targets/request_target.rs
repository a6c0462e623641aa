//! cargo-fuzz entry point `request_target`; the body and its invariants are in `src/edge.rs`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsrelay_fuzz::edge::request_target(data));
