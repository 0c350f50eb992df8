//! The one door through which the executor's concurrency cores reach atomics,
//! cells, locks and threads.
//!
//! Under `--cfg loom` every name here is loom's, so the task state machine,
//! the owned-task list and the parkers are model-checked by the very code that
//! ships; otherwise they are `std`'s. Code in the cores must never name
//! `std::sync::atomic` directly, or the model checker would not see it.
//!
//! `UnsafeCell` is the one shape that differs: loom's cell is accessed through
//! `with` / `with_mut` closures (so it can track each access), and the `std`
//! flavour below offers the same two methods at zero cost.

#[cfg(loom)]
pub(crate) use loom::{
    cell::UnsafeCell,
    sync::{
        Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence},
    },
};

/// Threads, for the loom models (tests spawn with `std::thread` otherwise).
#[cfg(all(loom, test))]
pub(crate) use loom::thread;

#[cfg(not(loom))]
pub(crate) use std::sync::{
    Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence},
};

#[cfg(not(loom))]
pub(crate) use self::std_cell::UnsafeCell;

#[cfg(not(loom))]
mod std_cell {
    /// `std::cell::UnsafeCell` with loom's access API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a shared pointer to the value. The caller upholds the
        /// aliasing rules that the surrounding module documents.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a unique pointer to the value. The caller upholds the
        /// aliasing rules that the surrounding module documents.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// Locks a mutex, ignoring poisoning: the executor's one way to take its
/// own locks (and, through [`wait`] and [`wait_timeout`], to wait on its
/// condition variables).
///
/// The executor never runs user code while holding one of its own locks, so a
/// poisoned lock can only mean a bug in Weft that already panicked; the data
/// behind it is still consistent (every critical section is panic-free), so
/// carrying on is sound and keeps one panic from cascading into every thread.
#[inline]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the value out of a mutex, ignoring poisoning (as [`lock`]).
#[inline]
pub(crate) fn into_inner<T>(mutex: Mutex<T>) -> T {
    mutex.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits on `condvar`, ignoring poisoning (as [`lock`]).
#[inline]
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits on `condvar` for at most `timeout`, ignoring poisoning (as
/// [`lock`]). True if it timed out.
#[inline]
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: std::time::Duration,
) -> (MutexGuard<'a, T>, bool) {
    let (guard, result) = condvar
        .wait_timeout(guard, timeout)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    (guard, result.timed_out())
}
