//! [`BoundedSemaphore`]: Python's `threading.BoundedSemaphore`, where a
//! release without a matching acquire is an error instead of a silent
//! extra permit.
//!
//! # Rule
//!
//! **A release is judged by the semaphore's own count, in the same step
//! that adds the permit** ([`Semaphore::add_permit_within`]): it fails
//! exactly when the semaphore already holds its bound, as Python's does
//! (`value >= initial`). A separate "held" counter, updated after an
//! acquire took its permit, would leave a window in which a valid release
//! fails (the permit is out but not yet counted).

use crate::semaphore::{AcquireError, Semaphore, TryAcquireError};
use std::fmt;

/// A semaphore that never holds more than its initial permits.
///
/// Acquire and release are explicit, as in Python (there is no guard):
/// the point of the type is to catch the release that has no acquire.
///
/// ```
/// use weft_sync::BoundedSemaphore;
///
/// futures::executor::block_on(async {
///     let sem = BoundedSemaphore::new(1);
///     sem.acquire().await.unwrap();
///     sem.release().unwrap();
///     assert!(sem.release().is_err()); // one release too many
/// });
/// ```
pub struct BoundedSemaphore {
    sem: Semaphore,
    bound: usize,
}

/// A release with no acquire to match: the semaphore would exceed its
/// bound (Python's `ValueError: Semaphore released too many times`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseError(());

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the bounded semaphore was released more times than it was acquired")
    }
}

impl std::error::Error for ReleaseError {}

impl BoundedSemaphore {
    /// A semaphore with `permits` permits, which is also its bound.
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`MAX_PERMITS`](crate::MAX_PERMITS).
    #[track_caller]
    pub fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            sem: Semaphore::new(permits),
            bound: permits,
        }
    }

    /// Waits for a permit (FIFO, cancel-safe).
    ///
    /// # Errors
    ///
    /// [`AcquireError`] if closed.
    pub async fn acquire(&self) -> Result<(), AcquireError> {
        self.sem.acquire().await?.forget();
        Ok(())
    }

    /// Takes a permit if one is free now.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError`].
    pub fn try_acquire(&self) -> Result<(), TryAcquireError> {
        self.sem.try_acquire()?.forget();
        Ok(())
    }

    /// Gives a permit back (to the oldest waiter, if any).
    ///
    /// # Errors
    ///
    /// [`ReleaseError`] if the semaphore already holds its bound (every
    /// permit is back): the rule above.
    pub fn release(&self) -> Result<(), ReleaseError> {
        if self.sem.add_permit_within(self.bound) {
            Ok(())
        } else {
            Err(ReleaseError(()))
        }
    }

    /// Permits free right now.
    pub fn available_permits(&self) -> usize {
        self.sem.available_permits()
    }

    /// The bound (the initial number of permits).
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// Closes it: waiting and future acquires fail.
    pub fn close(&self) {
        self.sem.close();
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("bound", &self.bound)
            .field("available_permits", &self.available_permits())
            .finish()
    }
}
