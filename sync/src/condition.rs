//! [`Condition`], [`Barrier`] and [`OnceCell`]: the coordination
//! primitives of Python's `asyncio`/`threading`, built on [`Notify`] and
//! the crate's [`Mutex`].
//!
//! # Rules
//!
//! 1. **A condition's notification is delivered or passed on.** A
//!    `Condition::wait` registers before it unlocks the mutex (so no notify
//!    after the unlock is missed). If it is cancelled after a `notify` chose
//!    it, whether before it saw the notification or while it waits to lock
//!    the mutex again, the notification goes to the next waiter (asyncio's
//!    `Condition.wait` does the same). With nobody else waiting it is
//!    dropped, as a notify with nobody waiting is.
//! 2. **A barrier decides a round under one lock.** An arrival counts
//!    itself and, if it is not the last, registers for the end of the round,
//!    both under the barrier's lock; the last arrival ends the round (resets
//!    the count and moves the `Notify` generation on) under the same lock,
//!    and wakes the round after unlocking. So an arrival for the next round,
//!    which must take that lock, can never be released by the previous one.

use crate::loom::lock;
use crate::mutex::{Mutex, MutexGuard};
use crate::notify::Notify;
use crate::wake_list::WakeList;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;

/// A condition variable for the crate's [`Mutex`]: Python's
/// `asyncio.Condition` (`wait`, `wait_for`, `notify`, `notify_all`).
///
/// ```
/// use std::sync::Arc;
/// use weft_sync::{Condition, Mutex};
///
/// futures::executor::block_on(async {
///     let items = Arc::new(Mutex::new(Vec::<u32>::new()));
///     let cond = Arc::new(Condition::new());
///     let (i, c) = (items.clone(), cond.clone());
///     let producer = std::thread::spawn(move || {
///         futures::executor::block_on(async {
///             i.lock().await.push(7);
///             c.notify_all();
///         })
///     });
///     let guard = cond.wait_for(items.lock().await, |v| !v.is_empty()).await;
///     assert_eq!(*guard, [7]);
///     producer.join().unwrap();
/// });
/// ```
#[derive(Debug, Default)]
pub struct Condition {
    notify: Notify,
}

impl Condition {
    /// A condition with no waiters.
    pub fn new() -> Condition {
        Condition { notify: Notify::new() }
    }

    /// Unlocks `guard`'s mutex, waits for a `notify`, and locks it again.
    /// The waiter is registered before the mutex is unlocked, so a notify
    /// sent after that is never missed. Like every condition variable it may
    /// wake when the condition does not hold: check it in a loop, or use
    /// [`wait_for`](Self::wait_for). Cancel-safe: a `notify` it was chosen
    /// by passes to the next waiter if it is cancelled before it holds the
    /// lock again (rule 1); but a cancelled wait returns no guard, so the
    /// lock is lost with the future.
    pub async fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex = guard.mutex();
        let mut notified = pin!(self.notify.notified());
        notified.as_mut().enable();
        drop(guard);
        notified.as_mut().await;
        // Rule 1: until the lock is ours, a cancel passes the notification
        // on.
        let pass_on = PassOn {
            notify: &self.notify,
            armed: notified.was_chosen(),
        };
        let guard = mutex.lock().await;
        pass_on.disarm();
        guard
    }

    /// Waits until `predicate` holds for the locked value, and returns the
    /// guard with it holding.
    pub async fn wait_for<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut predicate: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while !predicate(&mut guard) {
            guard = self.wait(guard).await;
        }
        guard
    }

    /// Wakes one waiting task, if any (asyncio's `notify()`).
    pub fn notify(&self) {
        self.notify.notify_waiting(1);
    }

    /// Wakes up to `n` waiting tasks (asyncio's `notify(n)`).
    pub fn notify_n(&self, n: usize) {
        self.notify.notify_waiting(n);
    }

    /// Wakes every waiting task (asyncio's `notify_all()`).
    pub fn notify_all(&self) {
        self.notify.notify_waiters();
    }
}

/// Passes a condition's notification to the next waiter if dropped armed
/// (rule 1).
struct PassOn<'a> {
    notify: &'a Notify,
    armed: bool,
}

impl PassOn<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.notify.notify_waiting(1);
        }
    }
}

/// Makes `n` tasks wait for each other: Python's `threading.Barrier`,
/// Tokio's `Barrier`. Each round, the last task to arrive is the leader.
///
/// ```
/// use std::sync::Arc;
/// use weft_sync::Barrier;
///
/// let barrier = Arc::new(Barrier::new(3));
/// let threads: Vec<_> = (0..3)
///     .map(|_| {
///         let b = barrier.clone();
///         std::thread::spawn(move || futures::executor::block_on(b.wait()).is_leader())
///     })
///     .collect();
/// let leaders = threads.into_iter().map(|t| t.join().unwrap()).filter(|leader| *leader).count();
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    parties: usize,
    state: crate::loom::Mutex<BarrierState>,
    notify: Notify,
}

struct BarrierState {
    arrived: usize,
    generation: u64,
}

/// What [`Barrier::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
}

impl BarrierWaitResult {
    /// True for exactly one task of each round: the last to arrive.
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

impl Barrier {
    /// A barrier for `parties` tasks (0 is treated as 1, as Tokio does).
    pub fn new(parties: usize) -> Barrier {
        Barrier {
            parties: parties.max(1),
            state: crate::loom::Mutex::new(BarrierState {
                arrived: 0,
                generation: 0,
            }),
            notify: Notify::new(),
        }
    }

    /// Waits until `parties` tasks have called `wait` this round.
    ///
    /// Not cancel-safe: a task that arrived and is then cancelled still
    /// counts as arrived for this round.
    pub async fn wait(&self) -> BarrierWaitResult {
        let notified = {
            let mut state = lock(&self.state);
            state.arrived += 1;
            if state.arrived == self.parties {
                // Rule 2: the round ends under the lock; its waiters wake
                // after it.
                state.arrived = 0;
                state.generation += 1;
                let mut wakers = WakeList::new();
                self.notify.notify_waiters_into(&mut wakers);
                drop(state);
                wakers.wake_all();
                return BarrierWaitResult { leader: true };
            }
            // Created under the lock, before the leader can arrive: its
            // `notify_waiters` completes it (rule 1 of `Notify`); and the
            // round cannot end between the count and this (rule 2).
            self.notify.notified()
        };
        notified.await;
        BarrierWaitResult { leader: false }
    }

    /// The number of parties.
    pub fn parties(&self) -> usize {
        self.parties
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("arrived", &state.arrived)
            .field("generation", &state.generation)
            .finish()
    }
}

/// A cell initialised once, by the first task that asks, with an async
/// initialiser: Tokio's `OnceCell`. Concurrent callers of
/// [`get_or_init`](Self::get_or_init) wait for the first one; if it is
/// cancelled or fails, the next one initialises instead.
///
/// ```
/// use weft_sync::OnceCell;
///
/// futures::executor::block_on(async {
///     let config = OnceCell::new();
///     let v = config.get_or_init(|| async { 42 }).await;
///     assert_eq!(*v, 42);
///     assert_eq!(config.get_or_init(|| async { 0 }).await, &42); // not run again
///     assert_eq!(config.set(1), Err(1));
/// });
/// ```
pub struct OnceCell<T> {
    value: OnceLock<T>,
    /// Serialises initialisers; never holds the value.
    init: Mutex<()>,
}

impl<T> OnceCell<T> {
    /// An empty cell.
    pub fn new() -> OnceCell<T> {
        OnceCell {
            value: OnceLock::new(),
            init: Mutex::new(()),
        }
    }

    /// The value, if initialised.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// True once initialised.
    pub fn initialized(&self) -> bool {
        self.value.get().is_some()
    }

    /// Sets the value if the cell is empty; gives it back otherwise.
    ///
    /// # Errors
    ///
    /// The value, if the cell was already set.
    pub fn set(&self, value: T) -> Result<(), T> {
        self.value.set(value)
    }

    /// The value, initialising it with `init` if the cell is empty. Only one
    /// initialiser runs at a time; others wait for it. Cancel-safe: a
    /// cancelled initialiser lets the next caller try.
    pub async fn get_or_init<F, Fut>(&self, init: F) -> &T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        match self
            .get_or_try_init(|| async { Ok::<T, std::convert::Infallible>(init().await) })
            .await
        {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// Like [`get_or_init`](Self::get_or_init), with an initialiser that
    /// can fail; on failure the cell stays empty.
    ///
    /// # Errors
    ///
    /// The initialiser's error.
    pub async fn get_or_try_init<E, F, Fut>(&self, init: F) -> Result<&T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        let _initialising = self.init.lock().await;
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        let value = init().await?;
        Ok(self.value.get_or_init(|| value))
    }

    /// The value, taking the cell apart.
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }
}

impl<T> Default for OnceCell<T> {
    fn default() -> OnceCell<T> {
        OnceCell::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceCell").field("value", &self.value.get()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Barrier, Condition, OnceCell};
    use crate::{BoundedSemaphore, Mutex};
    use futures::FutureExt;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    #[test]
    fn a_notify_with_nobody_waiting_is_dropped_but_one_after_wait_began_is_not() {
        let m = Mutex::new(0);
        let c = Condition::new();
        c.notify(); // nobody waits: dropped, as in asyncio
        let mut cx = Context::from_waker(Waker::noop());
        let mut waiting = pin!(c.wait(m.try_lock().unwrap()));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        // The mutex was released by the wait.
        *m.try_lock().unwrap() = 5;
        c.notify();
        let Poll::Ready(guard) = waiting.as_mut().poll(&mut cx) else {
            panic!("notified")
        };
        assert_eq!(*guard, 5);
    }

    #[test]
    fn notify_n_and_notify_all_wake_that_many() {
        let m = Mutex::new(());
        let c = Condition::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut a = Box::pin(async {
            let g = m.lock().await;
            drop(c.wait(g).await);
        });
        assert!(a.as_mut().poll(&mut cx).is_pending());
        let mut b = Box::pin(async {
            let g = m.lock().await;
            drop(c.wait(g).await);
        });
        assert!(b.as_mut().poll(&mut cx).is_pending());
        c.notify_n(1);
        assert!(a.as_mut().poll(&mut cx).is_ready());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        c.notify_all();
        assert!(b.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_notification_taken_by_a_wait_cancelled_while_relocking_passes_on() {
        let m = Mutex::new(0);
        let c = Condition::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = Box::pin(c.wait(m.try_lock().unwrap()));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        let mut second = pin!(c.wait(m.try_lock().unwrap()));
        assert!(second.as_mut().poll(&mut cx).is_pending());
        let guard = m.try_lock().unwrap();
        c.notify(); // chooses `first`
        // `first` sees the notification, then waits for the mutex...
        assert!(first.as_mut().poll(&mut cx).is_pending());
        // ...and is cancelled there: its notification must not be lost.
        drop(first);
        drop(guard);
        assert!(
            second.as_mut().poll(&mut cx).is_ready(),
            "the notification died with the cancelled wait"
        );
    }

    #[test]
    fn a_notification_passed_on_with_nobody_waiting_is_dropped() {
        let m = Mutex::new(());
        let c = Condition::new();
        let mut cx = Context::from_waker(Waker::noop());
        let guard = m.try_lock().unwrap();
        let mut chosen = Box::pin(c.wait(guard));
        assert!(chosen.as_mut().poll(&mut cx).is_pending());
        c.notify();
        drop(chosen); // chosen, never saw it, nobody else waits
        // A condition stores no notification for later waiters (asyncio).
        let mut later = pin!(c.wait(m.try_lock().unwrap()));
        assert!(later.as_mut().poll(&mut cx).is_pending());
    }

    #[test]
    fn a_barrier_has_one_leader_per_round_and_is_reusable() {
        let barrier = Arc::new(Barrier::new(4));
        for _round in 0..3 {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let b = barrier.clone();
                    std::thread::spawn(move || futures::executor::block_on(b.wait()).is_leader())
                })
                .collect();
            let leaders = threads.into_iter().map(|t| t.join().unwrap()).filter(|l| *l).count();
            assert_eq!(leaders, 1);
        }
    }

    #[test]
    fn a_cancelled_initialiser_lets_the_next_caller_initialise() {
        let cell = OnceCell::new();
        let mut cx = Context::from_waker(Waker::noop());
        {
            let mut slow = pin!(cell.get_or_init(std::future::pending::<u32>));
            assert!(slow.as_mut().poll(&mut cx).is_pending());
            // Someone else waits behind the initialiser.
            assert!(cell.get_or_init(|| async { 1 }).now_or_never().is_none());
        } // the slow initialiser is cancelled
        assert_eq!(*cell.get_or_init(|| async { 2 }).now_or_never().unwrap(), 2);
        let empty = OnceCell::<u32>::new();
        let failed = empty.get_or_try_init(|| async { Err("no") }).now_or_never().unwrap();
        assert_eq!(failed, Err("no"));
        assert!(!empty.initialized());
    }

    #[test]
    fn a_bounded_release_is_judged_by_the_count_even_while_a_waiter_is_being_served() {
        let sem = BoundedSemaphore::new(1);
        sem.try_acquire().unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut waiting = pin!(sem.acquire());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        // The permit goes to the waiter, which has not looked yet: one
        // permit is out, none is in, so a release is valid (Python: value
        // 0 < 1).
        sem.release().unwrap();
        assert!(sem.release().is_ok(), "a valid release was refused");
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
        // Now the semaphore holds its bound again: the next one is refused.
        assert!(sem.release().is_err());
        assert_eq!(sem.available_permits(), 1);
        let none = BoundedSemaphore::new(0);
        assert!(none.release().is_err());
    }

    #[test]
    fn a_bounded_semaphore_refuses_extra_releases() {
        let sem = BoundedSemaphore::new(2);
        assert!(sem.release().is_err());
        sem.try_acquire().unwrap();
        sem.acquire().now_or_never().unwrap().unwrap();
        assert!(sem.try_acquire().is_err());
        sem.release().unwrap();
        sem.release().unwrap();
        assert!(sem.release().is_err());
        assert_eq!(sem.available_permits(), 2);
        assert_eq!(sem.bound(), 2);
    }
}
