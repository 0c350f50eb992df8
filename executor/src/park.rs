//! Parking: how an idle thread blocks until there is work, and how another
//! thread wakes it.
//!
//! The executor knows nothing of I/O. It blocks through the [`Park`] trait and
//! wakes through [`Unpark`]; the runtime (crate `weft`) implements them with
//! the reactor, so that the thread that parks is the thread that waits in
//! `epoll_wait`, and an unpark is a write to the reactor's `mio::Waker`. Here
//! they are implemented by [`ThreadParker`], which parks on a condition
//! variable; an executor built without a driver uses it.
//!
//! # The parker's state word
//!
//! `Parker` is what each worker parks on. It holds a token (`NOTIFIED`) and
//! knows where its thread sleeps:
//!
//! | state | meaning |
//! | --- | --- |
//! | `EMPTY` | not parked, no token |
//! | `PARKED_CONDVAR` | blocked on this parker's condition variable |
//! | `PARKED_DRIVER` | blocked inside the shared driver (`Park::park`) |
//! | `NOTIFIED` | a token is waiting: the next `park` returns at once |
//!
//! Invariants, which make every unpark reach its parker (no lost wakeup):
//!
//! 1. Only the owning thread moves the state out of `NOTIFIED` or into a
//!    `PARKED_*` state; `unpark` only ever stores `NOTIFIED` (a `swap`), and
//!    acts on the state it replaced.
//! 2. The owner enters `PARKED_CONDVAR` only while holding the mutex, and
//!    releases it only by waiting on the condition variable; `unpark` takes
//!    the mutex before notifying, so the notification cannot fall between the
//!    owner's state change and its wait.
//! 3. The owner enters `PARKED_DRIVER` only while it holds the driver, and
//!    blocks in the driver after that; the driver's own unpark is
//!    token-based (an unpark before its park makes the park return), so the
//!    order of the two does not matter.
//!
//! One driver (`SharedDriver`) is shared by all workers of a multi-thread
//! runtime: one worker at a time waits in it for I/O and timers, while the
//! others sleep on their condition variables. Who may enter it, and who
//! watches over it while its holder runs tasks, is the multi-thread
//! scheduler's business (`scheduler/multi_thread/standby.rs`); a parker
//! only knows how to block in a driver it was given, or on its condition
//! variable.

use crate::loom::{AtomicUsize, Condvar, Mutex, Ordering::SeqCst, lock, wait, wait_timeout};
use std::cell::RefCell;
use std::fmt;
use std::task::{Wake, Waker};
// Always std's `Arc`: it appears in the public `Park` trait, and reference
// counting is not what the loom models check.
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A thread's way to block until it is woken or a timeout passes: the
/// executor's view of a driver.
///
/// The runtime implements this with its reactor; [`ThreadParker`] implements
/// it with a condition variable.
pub trait Park: Send + 'static {
    /// Blocks until [`Unpark::unpark`] is called or `timeout` passes.
    ///
    /// `None` waits with no limit; `Some(Duration::ZERO)` does the driver's
    /// non-blocking work (such as polling I/O) and returns. An unpark that
    /// happened before this call makes it return promptly. Returning early
    /// for no reason is allowed: callers re-check their condition.
    fn park(&mut self, timeout: Option<Duration>);

    /// A handle that wakes this parker from any thread.
    fn unparker(&self) -> Arc<dyn Unpark>;

    /// The runtime is shutting down and no thread will park here again:
    /// release resources and wake whatever waits on this driver.
    fn shutdown(&mut self) {}
}

/// Wakes a [`Park`] from any thread.
pub trait Unpark: Send + Sync + 'static {
    /// Wakes the parked thread; if it is not parked, its next park returns at
    /// once.
    fn unpark(&self);

    /// Does, on the calling thread, the driver's work that is overdue while
    /// another thread waits in it (the reactor: firing timers whose
    /// deadline has passed, when the waiting thread has not yet woken for
    /// them, has woken and waits for a CPU, or is stuck in a turn);
    /// returns how many tasks it woke. The multi-thread scheduler calls it
    /// from a worker running tasks while another worker holds the driver
    /// (`worker.rs`, `maintenance`) and from the standby back from its
    /// condition variable (`park`), so that a timer is not held up by a
    /// thread the OS has not scheduled. It must not block. The default
    /// does nothing.
    fn run_overdue(&self) -> usize {
        0
    }

    /// When overdue work may next come due while no thread waits in the
    /// driver armed for it (the reactor: the next timer's deadline while
    /// the thread that holds the driver is in a turn, where the OS may
    /// deschedule it, rather than asleep in the kernel, which wakes it). A
    /// thread that sleeps beside the held driver (the multi-thread
    /// scheduler's standby) wakes shortly after it and calls
    /// [`run_overdue`](Self::run_overdue). The default is `None`: nothing
    /// to watch.
    fn overdue_at(&self) -> Option<Instant> {
        None
    }

    /// When overdue work may next come due, whether or not a thread waits
    /// in the driver armed for it (the reactor: the next timer's
    /// deadline), and, until [`unwatch_due`](Self::unwatch_due), a promise
    /// to wake `waker` once if work that comes due earlier is added (the
    /// reactor: a timer due before the returned deadline, or any timer
    /// when it is `None`, registered by any thread). A thread that sleeps
    /// with no timeout beside the held driver (the multi-thread
    /// scheduler's untimed standby) sleeps until shortly after the
    /// returned instant and calls [`run_overdue`](Self::run_overdue): the
    /// thread in the driver, armed for the timer as the sleeper looked, may
    /// wake for something else and be stuck in a turn by then
    /// ([`overdue_at`](Self::overdue_at), read before, said `None`), and a
    /// timer registered after the sleeper looked, by a thread that wakes
    /// only the driver, would otherwise wait for the stuck thread. The
    /// default is `None`, and never wakes `waker`: nothing to watch.
    fn watch_due(&self, waker: &Waker) -> Option<Instant> {
        let _ = waker;
        None
    }

    /// Ends a [`watch_due`](Self::watch_due). The default does nothing.
    fn unwatch_due(&self) {}
}

/// A [`Park`] that blocks on a condition variable: the driver of an executor
/// without I/O, and the parker of a thread blocked in `block_on`.
///
/// ```
/// use weft_executor::park::{Park, ThreadParker};
///
/// let mut parker = ThreadParker::new();
/// let unparker = parker.unparker();
/// std::thread::spawn(move || unparker.unpark());
/// parker.park(None); // returns once the other thread unparks
/// ```
pub struct ThreadParker {
    inner: Arc<Inner>,
}

impl ThreadParker {
    /// A parker with no pending token.
    pub fn new() -> ThreadParker {
        ThreadParker {
            inner: Arc::new(Inner::new(None)),
        }
    }
}

impl Default for ThreadParker {
    fn default() -> ThreadParker {
        ThreadParker::new()
    }
}

impl Park for ThreadParker {
    fn park(&mut self, timeout: Option<Duration>) {
        if !self.inner.consume_token() {
            self.inner.park_condvar(timeout);
        }
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.inner.clone()
    }
}

impl fmt::Debug for ThreadParker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadParker").finish_non_exhaustive()
    }
}

/// A driver shared by the workers of a multi-thread runtime: one of them at
/// a time blocks in it. *Which* one, and who watches over it meanwhile, is
/// decided by the scheduler's standby word
/// (`scheduler/multi_thread/standby.rs`); this lock only guards the driver
/// itself, so it is uncontended except by shutdown.
pub(crate) struct SharedDriver {
    driver: Mutex<Box<dyn Park>>,
    unpark: Arc<dyn Unpark>,
}

impl SharedDriver {
    pub(crate) fn new(driver: Box<dyn Park>) -> Arc<SharedDriver> {
        let unpark = driver.unparker();
        Arc::new(SharedDriver {
            driver: Mutex::new(driver),
            unpark,
        })
    }

    /// Wakes whichever parker is blocked in the driver.
    pub(crate) fn unparker(&self) -> Arc<dyn Unpark> {
        self.unpark.clone()
    }

    /// [`Unpark::run_overdue`] on the driver, from a thread that does not
    /// hold it.
    pub(crate) fn run_overdue(&self) -> usize {
        self.unpark.run_overdue()
    }

    /// [`Unpark::overdue_at`] of the driver.
    pub(crate) fn overdue_at(&self) -> Option<Instant> {
        self.unpark.overdue_at()
    }

    /// [`Unpark::watch_due`] of the driver.
    pub(crate) fn watch_due(&self, waker: &Waker) -> Option<Instant> {
        self.unpark.watch_due(waker)
    }

    /// [`Unpark::unwatch_due`] of the driver.
    pub(crate) fn unwatch_due(&self) {
        self.unpark.unwatch_due();
    }

    /// Runs `f` with the driver. Call it only with the right to the driver
    /// (the standby word's `HELD` bit): the lock then never waits, except
    /// for a shutdown in progress.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut dyn Park) -> R) -> R {
        f(&mut **lock(&self.driver))
    }

    /// Shuts the driver down; waits for a parker still inside it to leave.
    pub(crate) fn shutdown(&self) {
        self.unpark.unpark();
        lock(&self.driver).shutdown();
    }
}

/// The parker of one thread: a token, a condition variable, and a way to
/// block in a driver the caller holds.
pub(crate) struct Parker {
    inner: Arc<Inner>,
}

/// Wakes one [`Parker`].
#[derive(Clone)]
pub(crate) struct Unparker {
    inner: Arc<Inner>,
}

struct Inner {
    state: AtomicUsize,
    mutex: Mutex<()>,
    condvar: Condvar,
    /// Wakes the driver this parker may block in (`PARKED_DRIVER`).
    driver: Option<Arc<dyn Unpark>>,
}

const EMPTY: usize = 0;
const PARKED_CONDVAR: usize = 1;
const PARKED_DRIVER: usize = 2;
const NOTIFIED: usize = 3;

impl Parker {
    /// A parker that may block in the driver `driver` wakes (see
    /// [`park_driver`](Self::park_driver)), or only on its own condition
    /// variable (`None`).
    pub(crate) fn new(driver: Option<Arc<dyn Unpark>>) -> Parker {
        Parker {
            inner: Arc::new(Inner::new(driver)),
        }
    }

    pub(crate) fn unparker(&self) -> Unparker {
        Unparker {
            inner: self.inner.clone(),
        }
    }

    /// A waker that unparks this parker.
    pub(crate) fn waker(&self) -> Waker {
        Waker::from(self.inner.clone())
    }

    /// Consumes a pending token: true if an unpark came since the last
    /// park, in which case the caller should look for work before parking.
    pub(crate) fn take_token(&self) -> bool {
        self.inner.consume_token()
    }

    /// Blocks on the condition variable until unparked (a token already
    /// pending returns at once) or `timeout` passes.
    pub(crate) fn park(&self, timeout: Option<Duration>) {
        if !self.inner.consume_token() {
            self.inner.park_condvar(timeout);
        }
    }

    /// Blocks in `driver` until unparked or `timeout` passes
    /// (`Some(Duration::ZERO)`: the driver only polls). The caller holds the
    /// driver (invariant 3), whose unparker this parker was made with.
    pub(crate) fn park_driver(&self, driver: &mut dyn Park, timeout: Option<Duration>) {
        self.inner.park_driver(driver, timeout);
    }
}

impl Unparker {
    pub(crate) fn unpark(&self) {
        self.inner.unpark();
    }
}

impl Inner {
    fn new(driver: Option<Arc<dyn Unpark>>) -> Inner {
        Inner {
            state: AtomicUsize::new(EMPTY),
            mutex: Mutex::new(()),
            condvar: Condvar::new(),
            driver,
        }
    }

    fn consume_token(&self) -> bool {
        self.state.compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst).is_ok()
    }

    /// Moves `EMPTY` to `parked`. False if a token arrived meanwhile, which
    /// is then consumed (invariant 1: only the owner leaves `NOTIFIED`).
    fn enter_parked(&self, parked: usize) -> bool {
        match self.state.compare_exchange(EMPTY, parked, SeqCst, SeqCst) {
            Ok(_) => true,
            Err(NOTIFIED) => {
                self.state.store(EMPTY, SeqCst);
                false
            }
            Err(actual) => unreachable!("weft bug: parker in state {actual} while its thread parks"),
        }
    }

    fn park_driver(&self, driver: &mut dyn Park, timeout: Option<Duration>) {
        // Invariant 3: the caller holds the driver.
        if !self.enter_parked(PARKED_DRIVER) {
            return;
        }
        driver.park(timeout);
        match self.state.swap(EMPTY, SeqCst) {
            NOTIFIED | PARKED_DRIVER => {}
            actual => unreachable!("weft bug: parker in state {actual} after the driver returned"),
        }
    }

    fn park_condvar(&self, timeout: Option<Duration>) {
        if timeout == Some(Duration::ZERO) {
            return;
        }
        let mut guard = lock(&self.mutex);
        // Invariant 2: we hold the mutex from here until we wait.
        if !self.enter_parked(PARKED_CONDVAR) {
            return;
        }
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        loop {
            guard = match deadline {
                None | Some(None) => wait(&self.condvar, guard),
                Some(Some(deadline)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        // Timed out: leave PARKED_CONDVAR, keeping a token
                        // that raced in (it is consumed here, and that is
                        // fine: we are returning anyway).
                        self.state.swap(EMPTY, SeqCst);
                        return;
                    }
                    wait_timeout(&self.condvar, guard, deadline - now).0
                }
            };
            if self.consume_token() {
                return;
            }
            // A spurious wakeup (or a timeout, checked above): wait again.
        }
    }

    fn unpark(&self) {
        match self.state.swap(NOTIFIED, SeqCst) {
            EMPTY | NOTIFIED => {}
            PARKED_CONDVAR => {
                // Invariant 2: taking the mutex means the owner is inside
                // `wait`, so this notification reaches it.
                drop(lock(&self.mutex));
                self.condvar.notify_one();
            }
            PARKED_DRIVER => match &self.driver {
                Some(driver) => driver.unpark(),
                None => unreachable!("weft bug: parked in a driver it cannot wake"),
            },
            actual => unreachable!("weft bug: parker in impossible state {actual}"),
        }
    }
}

impl Unpark for Inner {
    fn unpark(&self) {
        Inner::unpark(self);
    }
}

impl Wake for Inner {
    fn wake(self: Arc<Self>) {
        Inner::unpark(&self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Inner::unpark(self);
    }
}

/// Runs `f` with this thread's cached parker and a waker that unparks it:
/// how a thread that drives no scheduler blocks on a future.
///
/// The parker is taken out of the cache for the duration, so a nested call
/// (a destructor that blocks, say) gets a fresh one rather than a
/// `RefCell` panic. A token left over from a late wake makes a later park
/// return once early, which every caller tolerates (they re-check).
pub(crate) fn with_thread_parker<R>(f: impl FnOnce(&mut ThreadParker, &Waker) -> R) -> R {
    std::thread_local! {
        static CACHED: RefCell<Option<(ThreadParker, Waker)>> = const { RefCell::new(None) };
    }
    let cached = CACHED.try_with(|c| c.borrow_mut().take()).ok().flatten();
    let (mut parker, waker) = cached.unwrap_or_else(|| {
        let parker = ThreadParker::new();
        let waker = Waker::from(parker.inner.clone());
        (parker, waker)
    });
    let out = f(&mut parker, &waker);
    let _ = CACHED.try_with(|c| *c.borrow_mut() = Some((parker, waker)));
    out
}

impl fmt::Debug for Parker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parker").finish_non_exhaustive()
    }
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unparker").finish_non_exhaustive()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::thread;

    #[test]
    fn unpark_before_or_during_park_is_never_lost() {
        loom::model(|| {
            let parker = Parker::new(None);
            let unparker = parker.unparker();
            let th = thread::spawn(move || unparker.unpark());
            parker.park(None);
            th.join().unwrap();
        });
    }

    /// A parker blocked in a driver (invariant 3) is woken through the
    /// driver's own unparker, whenever the unpark comes.
    #[test]
    fn an_unpark_reaches_a_parker_in_the_driver() {
        loom::model(|| {
            let driver = SharedDriver::new(Box::new(ThreadParker::new()));
            let parker = Parker::new(Some(driver.unparker()));
            let unparker = parker.unparker();
            let th = thread::spawn(move || unparker.unpark());
            driver.with(|d| parker.park_driver(d, None));
            th.join().unwrap();
        });
    }

    #[test]
    fn a_zero_timeout_poll_racing_an_unpark_leaves_a_consistent_state() {
        loom::model(|| {
            let driver = SharedDriver::new(Box::new(ThreadParker::new()));
            let parker = Parker::new(Some(driver.unparker()));
            let unparker = parker.unparker();
            let th = thread::spawn(move || unparker.unpark());
            // A maintenance poll may or may not consume the token (the worker
            // re-checks its queues either way). Whatever it did, the parker
            // must afterwards honour the next unpark.
            driver.with(|d| parker.park_driver(d, Some(Duration::ZERO)));
            th.join().unwrap();
            parker.unparker().unpark();
            parker.park(None);
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn park_with_timeout_returns_after_the_timeout() {
        let mut parker = ThreadParker::new();
        let start = Instant::now();
        Park::park(&mut parker, Some(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn unpark_before_park_is_kept() {
        let mut parker = ThreadParker::new();
        parker.unparker().unpark();
        let start = Instant::now();
        Park::park(&mut parker, None);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    /// Waits until the parker's owner is blocked in `state`, so that the
    /// unpark that follows takes the path that wakes a sleeping thread (not
    /// the token left for a park still to come).
    fn wait_until_parked(unparker: &Unparker, state: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while unparker.inner.state.load(SeqCst) != state {
            assert!(Instant::now() < deadline, "the owner never parked");
            std::thread::yield_now();
        }
    }

    #[test]
    fn unpark_from_another_thread_wakes_a_condvar_park() {
        let parker = Parker::new(None);
        let unparker = parker.unparker();
        let th = std::thread::spawn(move || {
            wait_until_parked(&unparker, PARKED_CONDVAR);
            unparker.unpark();
        });
        parker.park(None);
        th.join().unwrap();
        assert!(!parker.take_token(), "the wake was consumed by the park it ended");
    }

    #[test]
    fn unpark_from_another_thread_wakes_a_parker_in_the_driver() {
        let driver = SharedDriver::new(Box::new(ThreadParker::new()));
        let parker = Parker::new(Some(driver.unparker()));
        let unparker = parker.unparker();
        let th = std::thread::spawn(move || {
            wait_until_parked(&unparker, PARKED_DRIVER);
            unparker.unpark();
        });
        driver.with(|d| parker.park_driver(d, None));
        th.join().unwrap();
        assert!(!parker.take_token(), "the wake was consumed by the park it ended");
    }
}
