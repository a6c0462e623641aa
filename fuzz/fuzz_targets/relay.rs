//! cargo-fuzz entry point `relay`; the body and its invariants are in `src/relay.rs`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsrelay_fuzz::relay::relay_forwarder(data));
