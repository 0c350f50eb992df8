//! [`RwLock`]: many readers or one writer, on the FIFO
//! [`Semaphore`].
//!
//! # Rule
//!
//! The semaphore holds [`MAX_READERS`] permits. A reader takes one, a writer
//! takes all of them; because the semaphore serves waiters in arrival
//! order, a writer that queues behind readers is served before readers that
//! come after it, so writers never starve. The value is touched mutably
//! only by the holder of all permits, and shared only by holders of one.

use crate::loom::UnsafeCell;
use crate::observe::WaitSite;
use crate::semaphore::{Semaphore, TryAcquireError};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// The most readers at once.
pub const MAX_READERS: usize = 1 << 20;

/// An async reader-writer lock with FIFO fairness: Tokio's `RwLock`.
///
/// ```
/// use weft_sync::RwLock;
///
/// futures::executor::block_on(async {
///     let config = RwLock::new(String::from("v1"));
///     {
///         let a = config.read().await;
///         let b = config.read().await; // readers share
///         assert_eq!(*a, *b);
///         assert!(config.try_write().is_err());
///     }
///     config.write().await.push_str("-patched");
///     assert_eq!(*config.read().await, "v1-patched");
/// });
/// ```
pub struct RwLock<T: ?Sized> {
    sem: Semaphore,
    value: UnsafeCell<T>,
}

// SAFETY: the rule: readers share `&T` (needs `Sync`), a writer gets
// `&mut T` on whichever thread holds the guard (needs `Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}
// SAFETY: the lock owns its `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}

/// The lock was not available right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryRwLockError(());

impl fmt::Display for TryRwLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the lock is held or others wait for it")
    }
}

impl std::error::Error for TryRwLockError {}

impl<T> RwLock<T> {
    /// A lock holding `value`.
    pub fn new(value: T) -> RwLock<T> {
        RwLock {
            sem: Semaphore::new(MAX_READERS),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, taking the lock apart.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Waits for shared access. Cancel-safe.
    pub async fn read(&self) -> RwLockReadGuard<'_, T> {
        self.sem
            .acquire_as(1, WaitSite::new("RwLock::read", self))
            .await
            .expect("weft-sync bug: an RwLock's semaphore is never closed")
            .forget();
        RwLockReadGuard {
            lock: self,
            _value: PhantomData,
        }
    }

    /// Waits for exclusive access. Cancel-safe.
    pub async fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.sem
            .acquire_as(MAX_READERS, WaitSite::new("RwLock::write", self))
            .await
            .expect("weft-sync bug: an RwLock's semaphore is never closed")
            .forget();
        RwLockWriteGuard {
            lock: self,
            _value: PhantomData,
        }
    }

    /// Shared access if available now and no one waits.
    ///
    /// # Errors
    ///
    /// [`TryRwLockError`] otherwise.
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryRwLockError> {
        self.try_take(1)?;
        Ok(RwLockReadGuard {
            lock: self,
            _value: PhantomData,
        })
    }

    /// Exclusive access if available now and no one waits.
    ///
    /// # Errors
    ///
    /// [`TryRwLockError`] otherwise.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryRwLockError> {
        self.try_take(MAX_READERS)?;
        Ok(RwLockWriteGuard {
            lock: self,
            _value: PhantomData,
        })
    }

    fn try_take(&self, n: usize) -> Result<(), TryRwLockError> {
        match self.sem.try_acquire_many(n) {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(TryRwLockError(())),
        }
    }

    /// The value, through `&mut self`.
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` proves no guard exists.
        self.value.with_mut(|ptr| unsafe { &mut *ptr })
    }
}

impl<T: ?Sized> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("free", &self.sem.available_permits())
            .finish_non_exhaustive()
    }
}

/// Shared access to an [`RwLock`]'s value.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _value: PhantomData<&'a T>,
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the rule: a read guard holds one permit, so no writer
        // (who needs all of them) exists while it lives.
        self.lock.value.with(|ptr| unsafe { &*ptr })
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.add_permits(1);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to an [`RwLock`]'s value.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _value: PhantomData<&'a mut T>,
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the rule: a write guard holds every permit.
        self.lock.value.with(|ptr| unsafe { &*ptr })
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the rule, and `&mut self` makes the borrow unique.
        self.lock.value.with_mut(|ptr| unsafe { &mut *ptr })
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.add_permits(MAX_READERS);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::RwLock;
    use futures::FutureExt;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    #[test]
    fn a_queued_writer_is_not_starved_by_later_readers() {
        let lock = RwLock::new(0);
        let mut cx = Context::from_waker(Waker::noop());
        let reader = lock.try_read().unwrap();
        let mut writer = pin!(lock.write());
        assert!(writer.as_mut().poll(&mut cx).is_pending());
        // A reader arriving after the writer waits behind it.
        assert!(lock.try_read().is_err());
        let mut late_reader = pin!(lock.read());
        assert!(late_reader.as_mut().poll(&mut cx).is_pending());
        drop(reader);
        let std::task::Poll::Ready(mut w) = writer.as_mut().poll(&mut cx) else {
            panic!("the writer goes first")
        };
        *w = 7;
        assert!(late_reader.as_mut().poll(&mut cx).is_pending());
        drop(w);
        let std::task::Poll::Ready(r) = late_reader.as_mut().poll(&mut cx) else {
            panic!()
        };
        assert_eq!(*r, 7);
        drop(r);
        assert_eq!(*lock.write().now_or_never().unwrap(), 7);
    }
}
