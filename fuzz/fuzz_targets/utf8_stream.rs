//! cargo-fuzz entry point `utf8_stream`; the body and its invariants are in `src/codec.rs`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsrelay_fuzz::codec::utf8_stream(data));
