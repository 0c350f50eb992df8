//! The door through which weft-mpi's wake protocol reaches atomics:
//! loom's under `--cfg loom` (so the model checks the shipping code),
//! std's otherwise.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(all(loom, test))]
pub(crate) use loom::thread;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning: the crate's one way to take its own
/// locks (which are `std`'s under every cfg: the loom models here check
/// atomics only). The only user code that runs under one is code holding
/// [`Mpi::lock`](crate::Mpi::lock), which cannot reach the data behind it;
/// so a poisoned lock means a panic that left that data consistent.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
