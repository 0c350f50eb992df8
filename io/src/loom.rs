//! The one door through which the reactor's concurrency cores (the
//! readiness word, the completion notifier) reach atomics and locks: loom's
//! under `--cfg loom`, so those cores are model-checked as they ship, and
//! `std`'s otherwise.

#[cfg(loom)]
pub(crate) use loom::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

/// Locks, ignoring poisoning: no user code runs under these locks, so a
/// poisoned lock means an earlier bug already reported, and the data is
/// consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
