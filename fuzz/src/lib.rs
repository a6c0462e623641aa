//! Fuzz target bodies, shared by the cargo-fuzz entry points in `fuzz_targets/` and by the
//! root package's `tests/fuzz_corpus.rs`, which replays the seed corpus in ordinary `cargo test`.

pub mod codec;
pub mod edge;
pub mod handshake;
pub mod proxy;
pub mod relay;
