#![no_main]
//! cargo-fuzz entry point; the body (with its invariants) lives in `src/handshake.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsrelay_fuzz::handshake::handshake_request(data));
