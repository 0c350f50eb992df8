//! The door through which weft-mpi's wake protocol reaches atomics:
//! loom's under `--cfg loom` (so the model checks the shipping code),
//! std's otherwise.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[cfg(all(loom, test))]
pub(crate) use loom::{sync::atomic::AtomicBool, thread};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
