//! [`Semaphore`]: the core every lock in this crate is built on.
//!
//! # State
//!
//! - `permits`: one word: the permits nobody holds or is owed, shifted left
//!   by two; bit 0 set once the semaphore is closed; bit 1 (`WAITERS`) set
//!   while the wait list is not empty. Fast paths read and change only this
//!   word, one compare-and-swap each.
//! - the wait list (under the lock): acquirers in arrival order, each with
//!   the permits it still needs, its waker and a pointer to its state word.
//!
//! # Rules
//!
//! 1. **FIFO.** While `WAITERS` is set, released permits go to the oldest
//!    waiter first, under the lock, and the counter stays at zero; a
//!    newcomer's compare-and-swap takes from the counter only while
//!    `WAITERS` is clear. A large request at the front is served before
//!    smaller ones behind it (it collects permits as they come), so no
//!    waiter starves.
//! 2. **No lost permits.** `WAITERS` is set, under the lock, by the same
//!    atomic swap that takes whatever the counter holds (those permits go
//!    to the queue), and cleared, under the lock, by the same atomic update
//!    that puts leftover permits back in the counter once the list is
//!    empty. A releaser's fast path is a compare-and-swap that fails if
//!    `WAITERS` is set, and then it serves the queue under the lock. So
//!    every permit lands either in the counter while nobody waits or with a
//!    waiter.
//! 3. **A waiter leaves the list exactly once**: popped by a releaser that
//!    filled its request (state `ASSIGNED`), by `close` (state `CLOSED`), or
//!    by its own future when dropped while still `QUEUED`. Only the lock
//!    holder changes the state, so the dropping future knows which happened.
//!    A waiter whose request is filled is popped at once, even when that
//!    took no permit (an `acquire_many(0)` that reaches the front).
//! 4. **Cancel safety and close.** A future dropped while queued gives back
//!    the permits it had collected; one dropped after being `ASSIGNED` but
//!    before it saw so releases the whole request. `close` puts the permits
//!    collected by the waiters it fails back in the counter (held permits
//!    still release into it). Either way nothing is lost and no ghost
//!    waiter remains.
//! 5. **No allocation per waiter.** The waiter's state word lives in its
//!    own pinned future; the list holds a pointer to it. The pointer is
//!    only followed under the lock, and an entry is always out of the list
//!    before its future is freed: a future leaves only by being popped
//!    (rule 3) or by removing itself under the lock in `Drop`.
//! 6. **Clone, then link.** A future clones its waker *before* it links its
//!    entry, and records the entry's key in the same critical section that
//!    links it. So a `Waker::clone` that panics unwinds with nothing linked,
//!    and a linked entry is always one its future's `Drop` will remove:
//!    rule 5 cannot be broken by user code (a waker's `clone`, `wake` or
//!    `drop`) panicking. A waker taken out of the list is woken or dropped
//!    only after the lock is released and the permits are settled.

use crate::loom::{AtomicUsize, Mutex, Ordering::*, lock};
use crate::waitlist::{WaitKey, WaitList};
use crate::wake_list::{WakeList, set_waker};
use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

const CLOSED: usize = 1;
const WAITERS: usize = 2;
const SHIFT: usize = 2;

/// The most permits a semaphore can hold.
pub const MAX_PERMITS: usize = usize::MAX >> 3;

const QUEUED: usize = 0;
const ASSIGNED: usize = 1;
const CLOSED_WAITER: usize = 2;

/// A counting semaphore for async code: Tokio's `Semaphore`, Python's
/// `asyncio.Semaphore`. FIFO-fair, cancel-safe, closable.
///
/// ```
/// use std::sync::Arc;
/// use weft_sync::Semaphore;
///
/// futures::executor::block_on(async {
///     let sem = Arc::new(Semaphore::new(2));
///     let a = sem.acquire().await.unwrap();
///     let _b = sem.acquire().await.unwrap();
///     assert!(sem.try_acquire().is_err()); // none left
///     drop(a);
///     let _c = sem.try_acquire().unwrap();
///     let owned = sem.clone().acquire_many_owned(0).await.unwrap(); // a permit that can move
///     drop(owned);
/// });
/// ```
pub struct Semaphore {
    permits: AtomicUsize,
    waiters: Mutex<Waiters>,
}

struct Waiters {
    list: WaitList<Waiter>,
    closed: bool,
}

struct Waiter {
    /// Permits it still needs.
    needed: usize,
    /// Permits it collected so far (given back if it leaves unserved).
    collected: usize,
    waker: Option<Waker>,
    /// The state word inside the waiting future (rule 5).
    state: NonNull<AtomicUsize>,
}

// SAFETY: `state` points at an `AtomicUsize` (which is `Sync`) and is only
// followed under the semaphore's lock while the entry is in the list, when
// its future is alive and pinned (rule 5); the rest is `Send`.
unsafe impl Send for Waiter {}

impl Waiter {
    /// Marks this popped waiter as served or failed.
    fn settle(&self, state: usize) {
        // SAFETY: the caller holds the lock and has just popped this entry,
        // and this store is the last use of the pointer. Until the store
        // the future still sees `QUEUED`, so it can only be dropping by way
        // of `cancel`, which takes this lock first: the state word is alive
        // (rule 5).
        unsafe { self.state.as_ref() }.store(state, Release);
    }
}

/// Why an acquire failed: the semaphore was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireError(());

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the semaphore is closed")
    }
}

impl std::error::Error for AcquireError {}

/// Why a `try_acquire` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryAcquireError {
    /// The semaphore is closed.
    Closed,
    /// Not enough permits right now (or others are already waiting).
    NoPermits,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::Closed => f.write_str("the semaphore is closed"),
            TryAcquireError::NoPermits => f.write_str("no permits available"),
        }
    }
}

impl std::error::Error for TryAcquireError {}

impl Semaphore {
    /// A semaphore with `permits` permits.
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`MAX_PERMITS`].
    #[track_caller]
    pub fn new(permits: usize) -> Semaphore {
        assert!(
            permits <= MAX_PERMITS,
            "weft_sync::Semaphore::new: {permits} permits is more than MAX_PERMITS ({MAX_PERMITS})"
        );
        Semaphore {
            permits: AtomicUsize::new(permits << SHIFT),
            waiters: Mutex::new(Waiters {
                list: WaitList::new(),
                closed: false,
            }),
        }
    }

    /// Permits available right now.
    pub fn available_permits(&self) -> usize {
        self.permits.load(Acquire) >> SHIFT
    }

    /// True once [`close`](Self::close)d.
    pub fn is_closed(&self) -> bool {
        self.permits.load(Acquire) & CLOSED != 0
    }

    /// Waits for one permit. Cancel-safe: dropping the future gives back any
    /// permit it was handed, and its place in the queue is lost.
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_many(1)
    }

    /// Waits for `n` permits at once (they are collected in FIFO order, so a
    /// large request is not starved by small ones). Cancel-safe.
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        Acquire {
            sem: self,
            wait: Wait::new(n),
        }
    }

    /// [`acquire`](Self::acquire) for a permit that owns an `Arc` of the
    /// semaphore (to move into a task). Cancel-safe.
    pub fn acquire_owned(self: Arc<Self>) -> AcquireOwned {
        self.acquire_many_owned(1)
    }

    /// [`acquire_many`](Self::acquire_many) with an owned permit.
    /// Cancel-safe.
    pub fn acquire_many_owned(self: Arc<Self>, n: usize) -> AcquireOwned {
        AcquireOwned {
            sem: self,
            wait: Wait::new(n),
        }
    }

    /// Takes one permit if one is free and nobody is waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free and nobody is waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_take(n)?;
        Ok(SemaphorePermit { sem: self, n })
    }

    /// [`try_acquire_many`](Self::try_acquire_many) with an owned permit.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire_many_owned(self: Arc<Self>, n: usize) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_take(n)?;
        Ok(OwnedSemaphorePermit { sem: self, n })
    }

    /// The fast path: `n` permits from the counter, only while nobody waits
    /// (rule 1).
    fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        let mut current = self.permits.load(Acquire);
        loop {
            if current & CLOSED != 0 {
                return Err(TryAcquireError::Closed);
            }
            if current & WAITERS != 0 || current >> SHIFT < n {
                return Err(TryAcquireError::NoPermits);
            }
            match self
                .permits
                .compare_exchange_weak(current, current - (n << SHIFT), AcqRel, Acquire)
            {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Adds `n` permits (a release). Waiters are served first, oldest first.
    ///
    /// # Panics
    ///
    /// If the total would exceed [`MAX_PERMITS`].
    #[track_caller]
    pub fn add_permits(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut current = self.permits.load(Acquire);
        while current & WAITERS == 0 {
            // Rule 2: this fails if an acquirer set `WAITERS` meanwhile.
            let new = add_to_counter(current, n);
            match self.permits.compare_exchange_weak(current, new, AcqRel, Acquire) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
        let mut wakers = WakeList::new();
        {
            let mut waiters = lock(&self.waiters);
            self.distribute_locked(&mut waiters, n, &mut wakers);
        }
        wakers.wake_all();
    }

    /// Adds one permit unless the semaphore already holds `bound` of them
    /// ([`BoundedSemaphore::release`](crate::BoundedSemaphore::release));
    /// false if it does. The check and the add are one step: one
    /// compare-and-swap on the counter while nobody waits, or, with waiters
    /// queued (so the counter is empty, rule 1), the hand-over to the
    /// oldest under the lock, after checking `WAITERS` again there.
    pub(crate) fn add_permit_within(&self, bound: usize) -> bool {
        loop {
            let mut current = self.permits.load(Acquire);
            while current & WAITERS == 0 {
                if current >> SHIFT >= bound {
                    return false;
                }
                match self
                    .permits
                    .compare_exchange_weak(current, current + (1 << SHIFT), AcqRel, Acquire)
                {
                    Ok(_) => return true,
                    Err(actual) => current = actual,
                }
            }
            let mut wakers = WakeList::new();
            {
                let mut waiters = lock(&self.waiters);
                // `WAITERS` changes only under this lock (rule 2): if it is
                // still set, the list is not empty and the counter is.
                if self.permits.load(Acquire) & WAITERS == 0 {
                    continue;
                }
                if bound == 0 {
                    return false;
                }
                self.distribute_locked(&mut waiters, 1, &mut wakers);
            }
            wakers.wake_all();
            return true;
        }
    }

    /// Hands `pool` permits to the waiters in FIFO order, under the lock,
    /// popping every waiter whose request is filled (rule 3: also one that
    /// needs nothing more, with `pool` empty); once the list is empty,
    /// clears `WAITERS` and puts what is left in the counter, in one atomic
    /// update (rule 2).
    fn distribute_locked(&self, waiters: &mut Waiters, mut pool: usize, wakers: &mut WakeList) {
        while let Some(front) = waiters.list.front_mut() {
            let given = front.needed.min(pool);
            front.needed -= given;
            front.collected += given;
            pool -= given;
            if front.needed > 0 {
                break;
            }
            let waiter = waiters.list.pop_front().expect("front exists");
            waiter.settle(ASSIGNED);
            if let Some(waker) = waiter.waker {
                wakers.push(waker);
            }
        }
        if waiters.list.is_empty() {
            self.release_to_counter(pool);
        } else {
            debug_assert_eq!(pool, 0, "weft-sync bug: permits left while waiters remain");
        }
    }

    /// Rule 2: clears `WAITERS` and adds `n` permits to the counter, in one
    /// atomic update. Under the lock, with the list empty.
    fn release_to_counter(&self, n: usize) {
        let mut current = self.permits.load(Acquire);
        loop {
            let new = add_to_counter(current & !WAITERS, n);
            match self.permits.compare_exchange_weak(current, new, AcqRel, Acquire) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
    }

    /// Rule 2: marks the list non-empty and takes what the counter holds,
    /// in one atomic swap. Under the lock, before queueing the first
    /// waiter.
    fn claim_counter(&self) -> usize {
        let mut current = self.permits.load(Acquire);
        loop {
            let new = (current & CLOSED) | WAITERS;
            match self.permits.compare_exchange_weak(current, new, AcqRel, Acquire) {
                Ok(_) => return current >> SHIFT,
                Err(actual) => current = actual,
            }
        }
    }

    /// Closes the semaphore: pending and future acquires fail with
    /// [`AcquireError`]; permits already held stay valid and can still be
    /// released. Permits that a failed waiter had collected go back to the
    /// counter (rule 4), as [`available_permits`](Self::available_permits)
    /// shows.
    pub fn close(&self) {
        let mut wakers = WakeList::new();
        {
            let mut waiters = lock(&self.waiters);
            waiters.closed = true;
            self.permits.fetch_or(CLOSED, AcqRel);
            let mut collected = 0;
            while let Some(waiter) = waiters.list.pop_front() {
                collected += waiter.collected;
                waiter.settle(CLOSED_WAITER);
                if let Some(waker) = waiter.waker {
                    wakers.push(waker);
                }
            }
            self.release_to_counter(collected);
        }
        wakers.wake_all();
    }

    /// Acquirers queued right now.
    pub fn waiters(&self) -> usize {
        lock(&self.waiters).list.len()
    }
}

/// `current` with `n` more permits in its counter.
#[track_caller]
fn add_to_counter(current: usize, n: usize) -> usize {
    let before = current >> SHIFT;
    assert!(
        before.checked_add(n).is_some_and(|total| total <= MAX_PERMITS),
        "weft_sync::Semaphore::add_permits: more than MAX_PERMITS ({MAX_PERMITS}) permits"
    );
    current + (n << SHIFT)
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .field("waiters", &self.waiters())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The state of one acquire, shared by [`Acquire`] and [`AcquireOwned`].
/// Pinned once polled: the wait list may point at `state` (rule 5).
struct Wait {
    n: usize,
    /// `QUEUED`, `ASSIGNED` or `CLOSED_WAITER`; written by whoever pops
    /// this waiter, under the lock.
    state: AtomicUsize,
    /// The list entry, while queued (rule 3).
    queued: Option<WaitKey>,
    finished: bool,
    _pinned: PhantomPinned,
}

impl Wait {
    fn new(n: usize) -> Wait {
        Wait {
            n,
            state: AtomicUsize::new(QUEUED),
            queued: None,
            finished: false,
            _pinned: PhantomPinned,
        }
    }

    fn poll(self: Pin<&mut Self>, sem: &Semaphore, cx: &mut Context<'_>) -> Poll<Result<(), AcquireError>> {
        // SAFETY: nothing below moves out of `this`; the list's pointer to
        // `this.state` stays valid because the future is pinned.
        let this = unsafe { self.get_unchecked_mut() };
        assert!(!this.finished, "weft_sync: an acquire future polled after it completed");
        let Some(key) = this.queued else {
            return this.poll_first(sem, cx);
        };
        loop {
            match this.state.load(Acquire) {
                ASSIGNED => break,
                CLOSED_WAITER => {
                    this.queued = None;
                    this.finished = true;
                    return Poll::Ready(Err(AcquireError(())));
                }
                _ => {
                    let mut waiters = lock(&sem.waiters);
                    // Decided under the lock (rule 3): still queued, or not.
                    if this.state.load(Acquire) == QUEUED {
                        let waiter = waiters
                            .list
                            .get_mut(key)
                            .expect("weft-sync bug: a queued waiter is missing");
                        set_waker(&mut waiter.waker, cx.waker());
                        return Poll::Pending;
                    }
                }
            }
        }
        this.queued = None;
        this.finished = true;
        Poll::Ready(Ok(()))
    }

    /// The first poll: the fast path, else into the queue. `self` is pinned
    /// (it is only called from [`Wait::poll`]).
    fn poll_first(&mut self, sem: &Semaphore, cx: &mut Context<'_>) -> Poll<Result<(), AcquireError>> {
        match sem.try_take(self.n) {
            Ok(()) => {
                self.finished = true;
                return Poll::Ready(Ok(()));
            }
            Err(TryAcquireError::Closed) => {
                self.finished = true;
                return Poll::Ready(Err(AcquireError(())));
            }
            Err(TryAcquireError::NoPermits) => {}
        }
        // Rule 6: cloned before the entry is linked, so a clone that
        // panics leaves nothing behind.
        let waker = cx.waker().clone();
        let mut wakers = WakeList::new();
        let result = {
            let mut waiters = lock(&sem.waiters);
            if waiters.closed {
                self.finished = true;
                return Poll::Ready(Err(AcquireError(())));
            }
            let first = waiters.list.is_empty();
            self.queued = Some(waiters.list.push_back(Waiter {
                needed: self.n,
                collected: 0,
                waker: Some(waker),
                state: NonNull::from(&self.state),
            }));
            if first {
                // Rule 2: set `WAITERS`, and move what the counter holds to
                // the queue (which may serve us at once).
                let taken = sem.claim_counter();
                sem.distribute_locked(&mut waiters, taken, &mut wakers);
            }
            if self.state.load(Acquire) == ASSIGNED {
                // Served at once (our own waker is among `wakers`: one
                // spurious wake, in a rare race).
                self.queued = None;
                self.finished = true;
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        };
        wakers.wake_all();
        result
    }

    /// Rule 4: a dropped acquire gives back what it got. Called from the
    /// owning future's `Drop`, so the entry leaves the list before the
    /// state word is freed (rule 5).
    fn cancel(&mut self, sem: &Semaphore) {
        let Some(key) = self.queued.take() else { return };
        let mut wakers = WakeList::new();
        let mut own_waker = None;
        {
            let mut waiters = lock(&sem.waiters);
            let give_back = match self.state.load(Acquire) {
                QUEUED => {
                    let waiter = waiters.list.remove(key);
                    own_waker = waiter.waker;
                    Some(waiter.collected)
                }
                ASSIGNED => Some(self.n),
                _ => None,
            };
            // Even with nothing to give back, the list may be empty now, or
            // have a satisfied waiter at its front: `distribute_locked`
            // clears `WAITERS` or serves it (rules 2 and 3).
            if let Some(give_back) = give_back {
                sem.distribute_locked(&mut waiters, give_back, &mut wakers);
            }
        }
        // Rule 6: user code runs once the permits are settled.
        drop(own_waker);
        wakers.wake_all();
    }
}

/// The future of [`Semaphore::acquire`] and
/// [`acquire_many`](Semaphore::acquire_many).
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    wait: Wait,
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<SemaphorePermit<'a>, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let sem = self.sem;
        let n = self.wait.n;
        // SAFETY: a pin projection to `wait`, which is never moved out of.
        let wait = unsafe { self.map_unchecked_mut(|this| &mut this.wait) };
        wait.poll(sem, cx).map(|r| r.map(|()| SemaphorePermit { sem, n }))
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.wait.cancel(self.sem);
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire").field("permits", &self.wait.n).finish()
    }
}

/// The future of [`Semaphore::acquire_owned`].
#[must_use = "futures do nothing unless awaited"]
pub struct AcquireOwned {
    sem: Arc<Semaphore>,
    wait: Wait,
}

impl Future for AcquireOwned {
    type Output = Result<OwnedSemaphorePermit, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `sem` is only read and `wait` is never moved out of: a
        // pin projection.
        let this = unsafe { self.get_unchecked_mut() };
        let n = this.wait.n;
        // SAFETY: `this` is pinned, so `this.wait` is.
        let wait = unsafe { Pin::new_unchecked(&mut this.wait) };
        wait.poll(&this.sem, cx).map(|r| {
            r.map(|()| OwnedSemaphorePermit {
                sem: this.sem.clone(),
                n,
            })
        })
    }
}

impl Drop for AcquireOwned {
    fn drop(&mut self) {
        self.wait.cancel(&self.sem);
    }
}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned").field("permits", &self.wait.n).finish()
    }
}

/// Permits borrowed from a [`Semaphore`]; released when dropped.
#[must_use = "the permits are released as soon as this is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl SemaphorePermit<'_> {
    /// Keeps the permits out of the semaphore for good.
    pub fn forget(mut self) {
        self.n = 0;
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.add_permits(self.n);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").field("permits", &self.n).finish()
    }
}

/// Permits that own an `Arc` of their [`Semaphore`]; released when dropped.
#[must_use = "the permits are released as soon as this is dropped"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    n: usize,
}

impl OwnedSemaphorePermit {
    /// Keeps the permits out of the semaphore for good.
    pub fn forget(mut self) {
        self.n = 0;
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// The semaphore the permits came from.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.add_permits(self.n);
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Semaphore, TryAcquireError};
    use futures::FutureExt;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Context, Poll, Wake, Waker};

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn waiters_are_served_in_arrival_order_and_newcomers_do_not_barge() {
        let sem = Semaphore::new(1);
        let held = sem.try_acquire().unwrap();
        let (w1, waker1) = counting();
        let (_w2, waker2) = counting();
        let mut a = pin!(sem.acquire());
        let mut b = pin!(sem.acquire());
        assert!(a.as_mut().poll(&mut Context::from_waker(&waker1)).is_pending());
        assert!(b.as_mut().poll(&mut Context::from_waker(&waker2)).is_pending());
        assert_eq!(sem.waiters(), 2);
        drop(held);
        assert_eq!(w1.0.load(SeqCst), 1, "the first waiter was woken");
        // The permit is owed to `a`: a newcomer cannot take it.
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        let Poll::Ready(Ok(permit_a)) = a.as_mut().poll(&mut Context::from_waker(&waker1)) else {
            panic!("a holds the permit")
        };
        assert!(b.as_mut().poll(&mut Context::from_waker(&waker2)).is_pending());
        drop(permit_a);
        assert!(b.as_mut().poll(&mut Context::from_waker(&waker2)).is_ready());
    }

    #[test]
    fn a_large_request_at_the_front_collects_permits_and_is_not_starved() {
        let sem = Semaphore::new(0);
        let (_w, waker) = counting();
        let mut big = pin!(sem.acquire_many(3));
        assert!(big.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        let mut small = pin!(sem.acquire());
        assert!(small.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        sem.add_permits(2);
        // Both permits went to the front request, not to the small one.
        assert!(small.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        sem.add_permits(2);
        let Poll::Ready(Ok(p)) = big.as_mut().poll(&mut Context::from_waker(&waker)) else {
            panic!()
        };
        assert_eq!(p.num_permits(), 3);
        assert!(small.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
    }

    #[test]
    fn a_cancelled_acquire_leaves_no_ghost_and_passes_its_permits_on() {
        let sem = Semaphore::new(0);
        let (_w, waker) = counting();
        {
            let mut partial = Box::pin(sem.acquire_many(2));
            assert!(partial.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
            sem.add_permits(1); // collected by `partial`
            assert_eq!(sem.available_permits(), 0);
        } // dropped: gives its one permit back
        assert_eq!(sem.waiters(), 0);
        assert_eq!(sem.available_permits(), 1);

        // Assigned but never polled again: the whole request goes on.
        let (w_next, waker_next) = counting();
        let mut first = Box::pin(sem.acquire_many(2));
        assert!(first.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        let mut next = pin!(sem.acquire_many(2));
        assert!(next.as_mut().poll(&mut Context::from_waker(&waker_next)).is_pending());
        sem.add_permits(1); // `first` now has both
        drop(first);
        assert_eq!(w_next.0.load(SeqCst), 1);
        assert!(next.as_mut().poll(&mut Context::from_waker(&waker_next)).is_ready());
    }

    #[test]
    fn close_fails_waiters_and_newcomers_but_held_permits_still_release() {
        let sem = Semaphore::new(1);
        let held = sem.try_acquire().unwrap();
        let (w, waker) = counting();
        let mut waiting = pin!(sem.acquire());
        assert!(waiting.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        sem.close();
        assert_eq!(w.0.load(SeqCst), 1);
        assert!(matches!(
            waiting.as_mut().poll(&mut Context::from_waker(&waker)),
            Poll::Ready(Err(_))
        ));
        assert!(sem.acquire().now_or_never().unwrap().is_err());
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
        drop(held);
        assert!(sem.is_closed());
        assert_eq!(sem.available_permits(), 1);
    }

    #[test]
    fn close_gives_back_the_permits_a_partly_served_waiter_collected() {
        let sem = Semaphore::new(0);
        let (_w, waker) = counting();
        let mut big = pin!(sem.acquire_many(3));
        assert!(big.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        sem.add_permits(2); // collected by `big`, which still needs one
        assert_eq!(sem.available_permits(), 0);
        sem.close();
        assert!(matches!(
            big.as_mut().poll(&mut Context::from_waker(&waker)),
            Poll::Ready(Err(_))
        ));
        assert_eq!(sem.available_permits(), 2, "close threw away collected permits");
        assert_eq!(sem.waiters(), 0);
    }

    #[test]
    fn a_zero_permit_acquire_behind_the_front_is_served_with_it() {
        let sem = Semaphore::new(0);
        let (_w1, waker1) = counting();
        let (w2, waker2) = counting();
        let mut front = pin!(sem.acquire());
        assert!(front.as_mut().poll(&mut Context::from_waker(&waker1)).is_pending());
        let mut zero = pin!(sem.acquire_many(0));
        // FIFO: it does not pass the waiter in front.
        assert!(zero.as_mut().poll(&mut Context::from_waker(&waker2)).is_pending());
        sem.add_permits(1); // serves `front`; `zero` is now first and needs nothing
        assert_eq!(w2.0.load(SeqCst), 1, "the zero-permit waiter was not woken");
        let Poll::Ready(Ok(p)) = zero.as_mut().poll(&mut Context::from_waker(&waker2)) else {
            panic!("a zero-permit acquire at the front of the queue stayed pending")
        };
        assert_eq!(p.num_permits(), 0);
        assert!(front.as_mut().poll(&mut Context::from_waker(&waker1)).is_ready());
        assert_eq!(sem.waiters(), 0);
    }

    #[test]
    fn a_zero_permit_acquire_left_first_by_a_cancelled_waiter_is_served() {
        let sem = Semaphore::new(0);
        let (_w, waker) = counting();
        let mut front = Box::pin(sem.acquire());
        assert!(front.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        let mut zero = pin!(sem.acquire_many(0));
        assert!(zero.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        drop(front);
        assert!(zero.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
        assert_eq!(sem.waiters(), 0);
        assert_eq!(sem.available_permits(), 0);
    }

    #[test]
    fn many_threads_share_permits_without_losing_any() {
        let sem = Arc::new(Semaphore::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let sem = sem.clone();
                let inside = inside.clone();
                std::thread::spawn(move || {
                    for _ in 0..if cfg!(miri) { 10 } else { 200 } {
                        let permit = futures::executor::block_on(sem.acquire()).unwrap();
                        assert!(inside.fetch_add(1, SeqCst) < 3);
                        inside.fetch_sub(1, SeqCst);
                        drop(permit);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sem.available_permits(), 3);
        assert_eq!(sem.waiters(), 0);
    }
}
