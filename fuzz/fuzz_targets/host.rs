//! cargo-fuzz entry point `host`; the body and its invariants are in `src/edge.rs`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsrelay_fuzz::edge::host(data));
