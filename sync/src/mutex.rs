//! [`Mutex`]: an async lock on the FIFO [`Semaphore`] with
//! one permit, so a waiting task is handed the lock in arrival order and
//! never starves.
//!
//! # Rule
//!
//! The value is touched only by whoever holds the semaphore's single permit:
//! a [`MutexGuard`] or [`OwnedMutexGuard`] exists exactly while that permit
//! is taken, and at most one permit exists.

use crate::loom::UnsafeCell;
use crate::observe::WaitSite;
use crate::semaphore::{AcquireError, Semaphore, TryAcquireError};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// An async mutual-exclusion lock: Tokio's `Mutex`, Python's
/// `asyncio.Lock` (and `threading.Lock` for tasks).
///
/// Waiters get the lock in the order they asked for it. `lock()` is
/// cancel-safe: a dropped `lock()` future leaves the queue, and a lock it
/// was handed passes to the next waiter.
///
/// ```
/// use std::sync::Arc;
/// use weft_sync::Mutex;
///
/// futures::executor::block_on(async {
///     let count = Arc::new(Mutex::new(0));
///     *count.lock().await += 1;
///     let mut owned = count.clone().lock_owned().await; // can move into a task
///     *owned += 1;
///     drop(owned);
///     assert_eq!(*count.lock().await, 2);
///     assert_eq!(Arc::try_unwrap(count).unwrap().into_inner(), 2);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    sem: Semaphore,
    value: UnsafeCell<T>,
}

// SAFETY: the rule above: the value is reached only through a guard, and
// guards are exclusive, so sharing the mutex hands `T` from thread to
// thread (needs `Send`) but never shares it.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: the mutex owns its `T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

/// The lock could not be taken right now (`try_lock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryLockError(());

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the mutex is locked")
    }
}

impl std::error::Error for TryLockError {}

impl<T> Mutex<T> {
    /// A mutex holding `value`.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            sem: Semaphore::new(1),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, taking the mutex apart.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Waits for the lock. Cancel-safe (see the type's docs).
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        match self.sem.acquire_as(1, WaitSite::new("Mutex::lock", self)).await {
            Ok(permit) => permit.forget(),
            Err(AcquireError { .. }) => unreachable!("weft-sync bug: a mutex's semaphore is never closed"),
        }
        MutexGuard {
            lock: self,
            _value: PhantomData,
        }
    }

    /// Waits for the lock and returns a guard that owns an `Arc` of the
    /// mutex (to hold across a `spawn`). Cancel-safe.
    pub async fn lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T> {
        match self
            .sem
            .acquire_as(1, WaitSite::new("Mutex::lock", Arc::as_ptr(&self)))
            .await
        {
            Ok(permit) => permit.forget(),
            Err(AcquireError { .. }) => unreachable!("weft-sync bug: a mutex's semaphore is never closed"),
        }
        OwnedMutexGuard {
            lock: self,
            _value: PhantomData,
        }
    }

    /// Takes the lock if it is free and nobody is queued for it.
    ///
    /// # Errors
    ///
    /// [`TryLockError`] if it is held or others wait.
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        match self.sem.try_acquire() {
            Ok(permit) => {
                permit.forget();
                Ok(MutexGuard {
                    lock: self,
                    _value: PhantomData,
                })
            }
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(TryLockError(())),
        }
    }

    /// The value, through `&mut self` (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` proves nobody else holds the mutex or a guard.
        self.value.with_mut(|ptr| unsafe { &mut *ptr })
    }

    fn unlock(&self) {
        self.sem.add_permits(1);
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("locked", &(self.sem.available_permits() == 0))
            .finish_non_exhaustive()
    }
}

/// Exclusive access to a [`Mutex`]'s value; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
    /// Makes the guard `Sync` only when `T` is: sharing the guard shares
    /// `&T`.
    _value: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks (a condition variable relocks it).
    pub(crate) fn mutex(&self) -> &'a Mutex<T> {
        self.lock
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the rule: this guard holds the only permit, so nobody
        // else touches the value while the returned borrow (tied to `&self`)
        // lives.
        self.lock.value.with(|ptr| unsafe { &*ptr })
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        self.lock.value.with_mut(|ptr| unsafe { &mut *ptr })
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A [`MutexGuard`] that owns an `Arc` of its mutex.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct OwnedMutexGuard<T: ?Sized> {
    lock: Arc<Mutex<T>>,
    /// `Sync` only when `T` is, as for [`MutexGuard`].
    _value: PhantomData<T>,
}

impl<T: ?Sized> Deref for OwnedMutexGuard<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the rule: this guard holds the only permit.
        self.lock.value.with(|ptr| unsafe { &*ptr })
    }
}

impl<T: ?Sized> DerefMut for OwnedMutexGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the rule, and `&mut self` makes the borrow unique.
        self.lock.value.with_mut(|ptr| unsafe { &mut *ptr })
    }
}

impl<T: ?Sized> Drop for OwnedMutexGuard<T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Mutex;
    use futures::FutureExt;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Waker};

    #[test]
    fn the_lock_is_handed_to_waiters_in_order_and_a_cancelled_waiter_passes_it_on() {
        let m = Mutex::new(Vec::new());
        let guard = m.try_lock().unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = Box::pin(m.lock());
        let mut second = pin!(m.lock());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert!(m.try_lock().is_err(), "no barging past the queue");
        drop(guard); // handed to `first`...
        drop(first); // ...which is cancelled before it looks: passed on
        let mut g = second.now_or_never().expect("the lock passed to the second waiter");
        g.push(2);
        drop(g);
        assert_eq!(*m.try_lock().unwrap(), [2]);
    }

    #[test]
    fn threads_contending_see_every_increment() {
        const ROUNDS: u64 = if cfg!(miri) { 10 } else { 250 };
        let m = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        *futures::executor::block_on(m.lock()) += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*futures::executor::block_on(m.lock()), 4 * ROUNDS);
        let mut m = Arc::try_unwrap(m).unwrap();
        *m.get_mut() += 1;
        assert_eq!(m.into_inner(), 4 * ROUNDS + 1);
    }
}
