//! cargo-fuzz entry point `proxy_header`; the body and its invariants are in `src/proxy.rs`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsrelay_fuzz::proxy::proxy_header(data));
