//! cargo-fuzz entry point `handshake_response`; the body and its invariants are in `src/handshake.rs`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsrelay_fuzz::handshake::handshake_response(data));
