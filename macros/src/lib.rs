//! # weft-macros: attribute macros
//!
//! This crate will hold `#[weft::main]` and `#[weft::test]`, which turn an
//! `async fn` into a function that builds a Weft runtime and blocks on it
//! (flavour, worker count and crate path configurable, with clear compile
//! errors for misuse). Until its issue lands it exports nothing, on purpose:
//! build a runtime with `weft::Runtime::new()` and call `block_on` instead.
