//! [`Notify`]: wake one waiting task or all of them; the building block of
//! [`Event`] and, later, the condition variable and channels.
//!
//! # State
//!
//! `state` holds a *generation* (bumped by every `notify_waiters`) shifted
//! left by one, and bit 0, a stored *permit* left by a `notify_one` that
//! found nobody waiting. The wait list (under the lock) holds waiters in
//! arrival order, each with a shared `WaitState`.
//!
//! # Rules
//!
//! 1. **A `Notified` counts from its creation.** It records the generation
//!    when `notified()` is called; a `notify_waiters` after that completes
//!    it even if it was never polled, so "create, check a condition, await"
//!    cannot miss a wakeup.
//! 2. **`notify_one` wakes the oldest waiter, or leaves one permit** (never
//!    more than one) that the next `Notified` consumes. It runs under the
//!    lock, and a waiter checks for the permit under the same lock before it
//!    queues, so the two cannot pass each other.
//! 3. **A waiter leaves the list once**: popped by a notifier (its state
//!    says which kind), or removed by its own future when dropped while
//!    still waiting.
//! 4. **Cancel safety.** A `Notified` dropped after a notifier chose it
//!    but before it saw so passes the notification on, as the kind it was:
//!    one from `notify_one` to the next waiter or as the permit (a
//!    `notify_one` is never lost), one from `notify_waiting` to the next
//!    waiter only (it never becomes a permit, as a condition variable's
//!    notification with nobody waiting is dropped).
//! 5. **Clone, then link.** A waiter's waker is cloned before its entry is
//!    pushed, and the entry's key is recorded in the same critical section,
//!    so a `Waker::clone` that panics leaves no entry behind. Wakers taken
//!    from the list are woken after the lock is released.

use crate::loom::{AtomicUsize, Mutex, Ordering::*, lock};
use crate::observe::WaitSite;
use crate::waitlist::{WaitKey, WaitList};
use crate::wake_list::{WakeList, set_waker};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

const PERMIT: usize = 1;
const GENERATION: usize = 2;

const WAITING: usize = 0;
/// Chosen by `notify_one`: passed on as one (rule 4).
const NOTIFIED_ONE: usize = 1;
/// Released by `notify_waiters`.
const NOTIFIED_ALL: usize = 2;
/// Chosen by `notify_waiting`: passed on to a waiter only (rule 4).
const NOTIFIED_WAITING: usize = 3;

/// Wakes tasks: Tokio's `Notify`.
///
/// ```
/// use std::sync::Arc;
/// use weft_sync::Notify;
///
/// futures::executor::block_on(async {
///     let notify = Arc::new(Notify::new());
///     notify.notify_one(); // nobody waits: a permit is stored
///     notify.notified().await; // consumed at once
///
///     let waiter = notify.notified(); // counts from here (rule 1)
///     notify.notify_waiters();
///     waiter.await; // completes even though it was not polled before
/// });
/// ```
pub struct Notify {
    state: AtomicUsize,
    waiters: Mutex<WaitList<Waiter>>,
}

struct Waiter {
    waker: Option<Waker>,
    state: Arc<AtomicUsize>,
}

impl Notify {
    /// A `Notify` with no permit and no waiter.
    pub fn new() -> Notify {
        Notify {
            state: AtomicUsize::new(0),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// A future that completes at the next `notify_one` that chooses it, or
    /// the next `notify_waiters` (counted from this call, rule 1).
    /// Cancel-safe: dropping it passes on a `notify_one` it had received.
    pub fn notified(&self) -> Notified<'_> {
        self.notified_as(WaitSite::own("Notify::notified"))
    }

    /// [`notified`](Self::notified) for a primitive built on `Notify`: a
    /// parked task reports that it waits on `site`.
    pub(crate) fn notified_as(&self, site: WaitSite) -> Notified<'_> {
        Notified {
            notify: self,
            site,
            generation: self.state.load(SeqCst) & !PERMIT,
            queued: None,
            done: false,
            chosen: false,
        }
    }

    /// Wakes the oldest waiting task, or, if none waits, stores a permit for
    /// the next `notified()` (at most one is stored).
    pub fn notify_one(&self) {
        let waker = {
            let mut waiters = lock(&self.waiters);
            self.notify_one_locked(&mut waiters)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn notify_one_locked(&self, waiters: &mut WaitList<Waiter>) -> Option<Waker> {
        match waiters.pop_front() {
            Some(waiter) => {
                waiter.state.store(NOTIFIED_ONE, Release);
                waiter.waker
            }
            None => {
                self.state.fetch_or(PERMIT, SeqCst);
                None
            }
        }
    }

    /// Wakes up to `n` of the tasks waiting now (oldest first) and stores
    /// no permit: a condition variable's `notify(n)`, where a notification
    /// nobody waits for is dropped. Waiters registered with
    /// [`Notified::enable`] count as waiting.
    pub fn notify_waiting(&self, n: usize) {
        let mut wakers = WakeList::new();
        {
            let mut waiters = lock(&self.waiters);
            for _ in 0..n {
                let Some(waker) = Self::choose_waiting_locked(&mut waiters) else {
                    break;
                };
                wakers.extend(waker);
            }
        }
        wakers.wake_all();
    }

    /// Chooses the oldest waiter for a `notify_waiting`; `None` if nobody
    /// waits, else its waker (if it has one yet).
    fn choose_waiting_locked(waiters: &mut WaitList<Waiter>) -> Option<Option<Waker>> {
        let waiter = waiters.pop_front()?;
        waiter.state.store(NOTIFIED_WAITING, Release);
        Some(waiter.waker)
    }

    /// Wakes every task waiting now, and completes every `Notified` created
    /// before this call; stores no permit.
    pub fn notify_waiters(&self) {
        let mut wakers = WakeList::new();
        self.notify_waiters_into(&mut wakers);
        wakers.wake_all();
    }

    /// [`notify_waiters`](Self::notify_waiters), leaving the wakers in
    /// `wakers` for the caller to wake once it has released its own locks:
    /// a caller that must end a round under its own lock (the barrier) calls
    /// this while holding it.
    pub(crate) fn notify_waiters_into(&self, wakers: &mut WakeList) {
        let mut waiters = lock(&self.waiters);
        self.state.fetch_add(GENERATION, SeqCst);
        while let Some(waiter) = waiters.pop_front() {
            waiter.state.store(NOTIFIED_ALL, Release);
            wakers.extend(waiter.waker);
        }
    }
}

impl Default for Notify {
    fn default() -> Notify {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify")
            .field("permit", &(self.state.load(Relaxed) & PERMIT != 0))
            .finish_non_exhaustive()
    }
}

/// The future of [`Notify::notified`].
#[must_use = "futures do nothing unless awaited"]
pub struct Notified<'a> {
    notify: &'a Notify,
    /// What the wait is, for wait reports (`observe.rs`).
    site: WaitSite,
    generation: usize,
    queued: Option<(WaitKey, Arc<AtomicUsize>)>,
    done: bool,
    /// Completed by a notification meant for it alone (`notify_one`,
    /// `notify_waiting` or the permit), not by `notify_waiters`.
    chosen: bool,
}

impl Notified<'_> {
    /// True once it completed by a notification meant for it alone (from
    /// `notify_one`, `notify_waiting`, or the stored permit) rather than by
    /// `notify_waiters`: a condition variable passes such a notification
    /// on if the wait is then cancelled.
    pub(crate) fn was_chosen(&self) -> bool {
        self.chosen
    }

    /// Marks it complete, by a notifier that left `state` in its entry.
    fn complete_with(&mut self, state: usize) {
        self.queued = None;
        self.done = true;
        self.chosen = state != NOTIFIED_ALL;
    }

    /// Queues this waiter now, before it is first polled, so that a
    /// `notify_one` or `notify_waiting` from here on can choose it (a
    /// condition variable enables its waiter before it unlocks the mutex).
    /// Does nothing if it already completed or is queued.
    pub fn enable(self: Pin<&mut Self>) {
        let this = self.get_mut();
        if this.done || this.queued.is_some() {
            return;
        }
        let mut waiters = lock(&this.notify.waiters);
        if this.try_complete() {
            return;
        }
        let state = Arc::new(AtomicUsize::new(WAITING));
        let key = waiters.push_back(Waiter {
            waker: None,
            state: state.clone(),
        });
        this.queued = Some((key, state));
    }

    /// Takes the stored permit, or sees a `notify_waiters` since creation;
    /// marks it done if either.
    fn try_complete(&mut self) -> bool {
        let mut state = self.notify.state.load(SeqCst);
        loop {
            if state & !PERMIT != self.generation {
                self.complete_with(NOTIFIED_ALL);
                return true;
            }
            if state & PERMIT == 0 {
                return false;
            }
            match self
                .notify
                .state
                .compare_exchange(state, state & !PERMIT, SeqCst, SeqCst)
            {
                Ok(_) => {
                    self.complete_with(NOTIFIED_ONE);
                    return true;
                }
                Err(actual) => state = actual,
            }
        }
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(());
        }
        if let Some((key, state)) = &this.queued {
            let seen = state.load(Acquire);
            if seen != WAITING {
                this.complete_with(seen);
                return Poll::Ready(());
            }
            let key = *key;
            let mut waiters = lock(&this.notify.waiters);
            // Rule 3: decided under the lock.
            let seen = state.load(Acquire);
            if seen == WAITING {
                let waiter = waiters.get_mut(key).expect("weft-sync bug: a queued waiter is missing");
                // Rule 5: the entry is linked and recorded; a clone that
                // panics here leaves it for `Drop` to remove.
                set_waker(&mut waiter.waker, cx.waker());
                drop(waiters);
                this.site.report(this.notify);
                return Poll::Pending;
            }
            drop(waiters);
            this.complete_with(seen);
            return Poll::Ready(());
        }
        if this.try_complete() {
            return Poll::Ready(());
        }
        // Rule 5: cloned before the lock and the push.
        let waker = cx.waker().clone();
        let mut waiters = lock(&this.notify.waiters);
        // Rule 2: the permit and the generation, again, under the lock.
        if this.try_complete() {
            return Poll::Ready(());
        }
        let state = Arc::new(AtomicUsize::new(WAITING));
        let key = waiters.push_back(Waiter {
            waker: Some(waker),
            state: state.clone(),
        });
        this.queued = Some((key, state));
        drop(waiters);
        this.site.report(this.notify);
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Some((key, state)) = self.queued.take() else { return };
        let (own, next): (Option<Waiter>, Option<Waker>) = {
            let mut waiters = lock(&self.notify.waiters);
            match state.load(Acquire) {
                WAITING => (Some(waiters.remove(key)), None),
                // Rule 4: chosen and never seen: pass it on, as its kind.
                NOTIFIED_ONE => (None, self.notify.notify_one_locked(&mut waiters)),
                NOTIFIED_WAITING => (None, Notify::choose_waiting_locked(&mut waiters).flatten()),
                _ => (None, None),
            }
        };
        // Wakers run (and drop) outside the lock.
        drop(own);
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// An asyncio-style event: a flag that tasks can wait for (Python's
/// `asyncio.Event`, `threading.Event` for tasks).
///
/// ```
/// use weft_sync::Event;
///
/// futures::executor::block_on(async {
///     let ready = Event::new();
///     assert!(!ready.is_set());
///     ready.set();
///     ready.wait().await; // returns at once while set
///     ready.clear();
///     assert!(!ready.is_set());
/// });
/// ```
pub struct Event {
    flag: AtomicUsize,
    notify: Notify,
}

impl Event {
    /// An event that is not set.
    pub fn new() -> Event {
        Event {
            flag: AtomicUsize::new(0),
            notify: Notify::new(),
        }
    }

    /// Sets the flag and wakes every waiting task.
    pub fn set(&self) {
        self.flag.store(1, SeqCst);
        self.notify.notify_waiters();
    }

    /// Clears the flag; later `wait`s block until the next `set`.
    pub fn clear(&self) {
        self.flag.store(0, SeqCst);
    }

    /// True while set.
    pub fn is_set(&self) -> bool {
        self.flag.load(SeqCst) == 1
    }

    /// Waits until the flag is set (returns at once if it is). Cancel-safe.
    pub async fn wait(&self) {
        // Created before the check (rule 1 of `Notify`): a `set` between the
        // check and the await still completes it.
        let notified = self.notify.notified_as(WaitSite::new("Event::wait", self));
        if self.is_set() {
            return;
        }
        // Woken by a `set`. A `clear` right after it goes unnoticed, as in
        // asyncio: the wait still returns.
        notified.await;
    }
}

impl Default for Event {
    fn default() -> Event {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Event, Notify};
    use futures::FutureExt;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Context, Wake, Waker};

    /// A waker that counts its wakes: each future gets its own, so a test
    /// sees which waiter was woken, not only which is ready when polled.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counted() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes::default());
        (wakes.clone(), Waker::from(wakes))
    }

    fn woken(wakes: &Wakes) -> usize {
        wakes.0.load(SeqCst)
    }

    #[test]
    fn notify_one_wakes_the_oldest_or_stores_one_permit() {
        let n = Notify::new();
        let (a_wakes, a_waker) = counted();
        let (b_wakes, b_waker) = counted();
        let mut a = pin!(n.notified());
        let mut b = pin!(n.notified());
        assert!(a.as_mut().poll(&mut Context::from_waker(&a_waker)).is_pending());
        assert!(b.as_mut().poll(&mut Context::from_waker(&b_waker)).is_pending());
        n.notify_one();
        assert_eq!(
            (woken(&a_wakes), woken(&b_wakes)),
            (1, 0),
            "the oldest waiter is woken, only it"
        );
        assert!(a.as_mut().poll(&mut Context::from_waker(&a_waker)).is_ready());
        assert!(b.as_mut().poll(&mut Context::from_waker(&b_waker)).is_pending());
        n.notify_one();
        assert_eq!(woken(&b_wakes), 1, "the next notification wakes the next waiter");
        assert!(b.as_mut().poll(&mut Context::from_waker(&b_waker)).is_ready());
        // Two notifications with nobody waiting store one permit.
        n.notify_one();
        n.notify_one();
        assert!(n.notified().now_or_never().is_some());
        assert!(n.notified().now_or_never().is_none());
    }

    #[test]
    fn a_dropped_chosen_waiter_passes_the_notification_on() {
        let n = Notify::new();
        let (first_wakes, first_waker) = counted();
        let (second_wakes, second_waker) = counted();
        let mut first = Box::pin(n.notified());
        let mut second = pin!(n.notified());
        assert!(first.as_mut().poll(&mut Context::from_waker(&first_waker)).is_pending());
        assert!(
            second
                .as_mut()
                .poll(&mut Context::from_waker(&second_waker))
                .is_pending()
        );
        n.notify_one(); // chooses `first`
        assert_eq!((woken(&first_wakes), woken(&second_wakes)), (1, 0));
        drop(first); // never saw it
        assert_eq!(
            woken(&second_wakes),
            1,
            "the dropped waiter's notification wakes the next"
        );
        assert!(second.as_mut().poll(&mut Context::from_waker(&second_waker)).is_ready());
        // A dropped waiter that was not chosen leaves nothing behind.
        let (idle_wakes, idle_waker) = counted();
        let mut idle = Box::pin(n.notified());
        assert!(idle.as_mut().poll(&mut Context::from_waker(&idle_waker)).is_pending());
        drop(idle);
        n.notify_one();
        assert_eq!(woken(&idle_wakes), 0, "a dropped waiter is never woken");
        assert!(
            n.notified().now_or_never().is_some(),
            "the permit was stored, not given to a ghost"
        );
    }

    #[test]
    fn notify_waiters_completes_every_notified_made_before_it() {
        let n = Notify::new();
        let (wakes, waker) = counted();
        let mut polled = pin!(n.notified());
        assert!(polled.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        let unpolled = n.notified();
        n.notify_waiters();
        assert_eq!(woken(&wakes), 1, "notify_waiters wakes the waiting future");
        let later = n.notified();
        assert!(polled.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
        assert!(unpolled.now_or_never().is_some());
        assert!(later.now_or_never().is_none(), "no permit is stored");
    }

    #[test]
    fn event_set_clear_wait() {
        let e = Event::new();
        let (wakes, waker) = counted();
        let mut w = pin!(e.wait());
        assert!(w.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        e.set();
        assert_eq!(woken(&wakes), 1, "set wakes the waiter");
        assert!(w.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
        assert!(e.wait().now_or_never().is_some());
        e.clear();
        assert!(e.wait().now_or_never().is_none());
    }
}
