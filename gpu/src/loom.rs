//! The door through which weft-gpu's wake protocol reaches atomics: loom's
//! under `--cfg loom` (so the model checks the shipping code), std's
//! otherwise.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
