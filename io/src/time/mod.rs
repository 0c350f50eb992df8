//! Timers: [`sleep()`], [`sleep_until`], [`timeout()`], [`interval()`].
//!
//! Every reactor keeps one timing wheel (`wheel.rs`): millisecond slots, and
//! within the millisecond at hand, exact deadlines. A timer fires at the
//! first turn of the loop at or after its deadline, never before (or, while
//! the loop's thread cannot run, on another thread that checks for overdue
//! timers: [`Handle::fire_overdue_timers`](crate::Handle::fire_overdue_timers)); the loop
//! sleeps to the exact instant of the next deadline (a `timerfd` on Linux, the
//! kernel's nanosecond timeout on kqueue platforms; see [`crate::driver`]),
//! or, when other timers fall due within the timer slack after it, to the
//! latest of those, so that one wakeup fires them all
//! ([`DEFAULT_TIMER_SLACK`](crate::driver::DEFAULT_TIMER_SLACK), 50 µs). A
//! timer is late only by the time the thread takes to wake, plus at most
//! that slack. Timers that
//! come due in the same turn fire in the order of their deadlines. Dropping a
//! timer cancels it in O(1).
//!
//! # Wakers and the wheel's lock
//!
//! A waker's `clone`, `wake` and `drop` are the task system's code, which
//! for a waker made by hand may do anything, register a timer on this very
//! reactor included. So no waker is cloned, woken or dropped under the
//! wheel's lock: registration clones the waker first, a poll with a new
//! waker swaps it in and drops the old one after the lock is released,
//! fired and cancelled timers hand their wakers out, and the watcher
//! ([`Handle::watch_timers`](crate::Handle::watch_timers)) is woken and
//! dropped outside it.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! let mut driver = weft_io::Driver::new()?;
//! let _enter = driver.handle().enter();
//! let start = Instant::now();
//! let mut sleep = std::pin::pin!(weft_io::time::sleep(Duration::from_millis(20)));
//! // A minimal loop: poll the future, then let the reactor wait for timers.
//! let waker = std::task::Waker::noop();
//! while sleep.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_pending() {
//!     driver.turn(None);
//! }
//! assert!(start.elapsed() >= Duration::from_millis(20));
//! # Ok::<(), std::io::Error>(())
//! ```

mod interval;
mod sleep;
mod timeout;
pub(crate) mod wheel;

pub use self::interval::{Interval, MissedTickBehavior, interval, interval_at};
pub use self::sleep::{Sleep, sleep, sleep_until};
pub use self::timeout::{Elapsed, Timeout, timeout, timeout_at};

/// The timers' errors at Tokio's path (`tokio::time::error::Elapsed`); the
/// same type as [`Elapsed`].
pub mod error {
    pub use super::timeout::Elapsed;
}

use self::wheel::{Key, Wheel};
use crate::loom::{AtomicU64, Mutex, MutexGuard, lock, try_lock};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::task::Waker;
use std::time::{Duration, Instant};

/// A reactor's clock and timing wheel.
pub(crate) struct Timers {
    start: Instant,
    wheel: Mutex<Locked>,
    /// The instant (nanoseconds since `start`) by which the loop will next
    /// look at the timers (`u64::MAX`: it waits for a wakeup; 0: it is
    /// awake and looks before it waits again). A timer registered for an
    /// earlier deadline must wake the loop, or it would fire late. Written
    /// under the wheel lock, except for the 0 (see [`Timers::loop_awake`]).
    next_wake: AtomicU64,
    shutdown: AtomicBool,
    /// Timers fired by [`fire_overdue`](Timers::fire_overdue), off the loop.
    fired_off_loop: AtomicU64,
}

/// What the wheel's lock guards: the wheel, and the thread that asked to
/// learn of a timer due before the deadline it saw ([`Timers::watch`]).
struct Locked {
    wheel: Wheel,
    /// The deadline (nanoseconds since `start`; `u64::MAX` when no timer
    /// was pending) the watcher saw, and its waker, woken once by the
    /// first registration of a timer due before it.
    watcher: Option<(u64, Waker)>,
    /// The last deadline [`next_deadline_and_wake`](Timers::next_deadline_and_wake)
    /// turned into an `Instant` (nanoseconds since `start`, and the
    /// instant): the loop asks every turn, and the answer seldom changes.
    last_instant: (u64, Instant),
}

impl Locked {
    /// `ns` nanoseconds after `start`, from `last_instant` when it is the
    /// same deadline as last time.
    fn instant(&mut self, start: Instant, ns: u64) -> Instant {
        if self.last_instant.0 != ns {
            self.last_instant = (ns, start + Duration::from_nanos(ns));
        }
        self.last_instant.1
    }
}

/// Fires what in `wheel` is due by `now_ns`, the loop's and the other
/// threads' one way to fire timers.
fn fire_due(wheel: &mut Wheel, now_ns: u64, wakers: &mut Vec<Waker>) {
    if wheel.next_deadline().is_some_and(|next| next <= now_ns) {
        wheel.advance(now_ns, wakers);
    }
}

/// `at + duration`, or, when that is beyond what `Instant` can hold, thirty
/// years after `at`: "never", in practice. The one place that decides what
/// an overlong wait means.
pub(crate) fn after(at: Instant, duration: Duration) -> Instant {
    at.checked_add(duration)
        .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365 * 30))
}

impl Timers {
    pub(crate) fn new(start: Instant) -> Timers {
        Timers {
            start,
            wheel: Mutex::new(Locked {
                wheel: Wheel::new(),
                watcher: None,
                last_instant: (0, start),
            }),
            next_wake: AtomicU64::new(u64::MAX),
            shutdown: AtomicBool::new(false),
            fired_off_loop: AtomicU64::new(0),
        }
    }

    fn wheel(&self) -> MutexGuard<'_, Locked> {
        lock(&self.wheel)
    }

    fn nanos_since_start(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// A turn's step 1: when the next timer is due (exactly), and when a
    /// loop that sleeps should wake for it: up to `slack` later, to fire
    /// the timers due within that together ([`Wheel::wake_at`]).
    pub(crate) fn next_deadline_and_wake(&self, slack: Duration) -> (Option<Instant>, Option<Instant>) {
        let mut locked = self.wheel();
        let next = locked.wheel.next_deadline();
        self.next_wake.store(next.unwrap_or(u64::MAX), Release);
        let wake = locked
            .wheel
            .wake_at(u64::try_from(slack.as_nanos()).unwrap_or(u64::MAX));
        let mut at = |ns: u64| locked.instant(self.start, ns);
        (next.map(&mut at), wake.map(&mut at))
    }

    /// The loop's wait has ended: it will call
    /// [`next_deadline_and_wake`](Self::next_deadline_and_wake) before it waits again, so no
    /// timer registered until then needs to wake it. Most timers are
    /// registered by tasks on the loop's own thread, between its waits:
    /// without this, one whose deadline came before the last wait's would
    /// write to the loop's wakeup descriptor for nothing (a system call,
    /// and a wasted turn after it).
    ///
    /// No lock is needed: a registration that reads the 0 holds the wheel
    /// lock before the loop's next `next_deadline_and_wake` takes it (which then
    /// sees the timer); one that comes after reads the value stored there.
    pub(crate) fn loop_awake(&self) {
        self.next_wake.store(0, Release);
    }

    /// Fires every timer whose deadline is at or before `now`.
    pub(crate) fn fire(&self, now: Instant, wakers: &mut Vec<Waker>) {
        fire_due(&mut self.wheel().wheel, self.nanos_since_start(now), wakers);
    }

    /// Fires, on the calling thread, the timers due by now, unless the
    /// loop's thread is firing timers right now (it holds the wheel's
    /// lock). For a thread beside the loop ([`Handle::fire_overdue_timers`]):
    /// the loop's thread may be asleep past a deadline, woken but waiting
    /// for a CPU, or descheduled (or stuck) in the middle of its turn.
    ///
    /// Returns at once, reading no clock, while the loop sleeps with no
    /// timer pending; after a clock reading, while it sleeps until a
    /// deadline still ahead (`next_wake`). Otherwise it looks at the
    /// wheel if its lock is free.
    ///
    /// [`Handle::fire_overdue_timers`]: crate::Handle::fire_overdue_timers
    pub(crate) fn fire_overdue(&self, wakers: &mut Vec<Waker>) {
        let planned = self.next_wake.load(Acquire);
        if planned == u64::MAX {
            // Asleep with no timer pending (a registration would have
            // lowered it).
            return;
        }
        let now_ns = self.nanos_since_start(Instant::now());
        if planned != 0 && planned > now_ns {
            // Asleep until a deadline still ahead. (0: awake, but its
            // thread may have been descheduled mid-turn: look.)
            return;
        }
        let Some(mut locked) = try_lock(&self.wheel) else {
            return;
        };
        let before = wakers.len();
        fire_due(&mut locked.wheel, now_ns, wakers);
        self.fired_off_loop.fetch_add((wakers.len() - before) as u64, Relaxed);
    }

    /// The next timer's deadline while the loop is awake (`next_wake` is
    /// 0: its thread is in a turn, or no thread waits in it), when no
    /// kernel timer is armed to wake a thread for it; `None` while the
    /// loop sleeps in the OS armed for its timers, or none is pending. See
    /// [`Handle::unwatched_timer`](crate::Handle::unwatched_timer).
    pub(crate) fn unwatched(&self) -> Option<Instant> {
        if self.next_wake.load(Acquire) != 0 {
            return None;
        }
        let next = self.wheel().wheel.next_deadline()?;
        Some(self.start + Duration::from_nanos(next))
    }

    /// The next timer's deadline (or the instant the wheel must next
    /// re-file timers), `None` while none is pending; and until
    /// [`unwatch`](Self::unwatch), a promise: the first timer registered
    /// (by any thread) with a deadline before the returned one, or any
    /// timer when it is `None`, wakes `waker`, once. Both happen under the wheel's lock, so a registration
    /// is either seen in the returned deadline or wakes `waker`. Replaces
    /// an earlier watch. See [`Handle::watch_timers`](crate::Handle::watch_timers).
    pub(crate) fn watch(&self, waker: &Waker) -> Option<Instant> {
        // A waker's clone and drop may run code: outside the lock (as in
        // `unwatch`).
        let waker = waker.clone();
        let mut locked = self.wheel();
        let next = locked.wheel.next_deadline();
        let replaced = locked.watcher.replace((next.unwrap_or(u64::MAX), waker));
        drop(locked);
        drop(replaced);
        next.map(|next| self.start + Duration::from_nanos(next))
    }

    /// Ends a [`watch`](Self::watch): no registration wakes its waker.
    pub(crate) fn unwatch(&self) {
        let watcher = self.wheel().watcher.take();
        // A waker's drop may run code (outside the lock).
        drop(watcher);
    }

    /// Timers [`fire_overdue`](Self::fire_overdue) fired.
    pub(crate) fn fired_off_loop(&self) -> u64 {
        self.fired_off_loop.load(Relaxed)
    }

    /// Registers a timer for `deadline` (which the caller found still
    /// ahead). The flag says the loop must be woken: it plans to look at
    /// the timers only after this one is due. `None` once the reactor has
    /// shut down: the flag is read under the wheel's lock, which the
    /// shutdown takes to set it and drain, so no timer can slip into a
    /// wheel nobody will ever fire.
    fn register(&self, deadline: Instant, waker: &Waker) -> Option<(Key, bool)> {
        let deadline_ns = self.nanos_since_start(deadline);
        // A waker's clone and drop may run code: outside the lock ("Wakers
        // and the wheel's lock" in the module docs).
        let waker = waker.clone();
        let mut locked = self.wheel();
        if self.is_shutdown() {
            drop(locked);
            drop(waker);
            return None;
        }
        let key = locked.wheel.insert(deadline_ns, waker);
        let wake = deadline_ns < self.next_wake.load(Acquire);
        if wake {
            self.next_wake.store(deadline_ns, Release);
        }
        let watcher = match &locked.watcher {
            Some((until, _)) if deadline_ns < *until => locked.watcher.take(),
            _ => None,
        };
        drop(locked);
        if let Some((_, watcher)) = watcher {
            watcher.wake();
        }
        Some((key, wake))
    }

    /// True if the timer fired (the wheel removed its entry when it fired);
    /// otherwise refreshes its waker. The common poll (same waker) takes
    /// the lock once; a new waker is cloned, and the old one dropped,
    /// outside it.
    fn poll_fired(&self, key: Key, waker: &Waker) -> bool {
        match self.wheel().wheel.has_waker(key, waker) {
            None => return true,
            Some(true) => return false,
            Some(false) => {}
        }
        let new = waker.clone();
        let replaced = self.wheel().wheel.replace_waker(key, new);
        // Either the old waker, or (the timer fired in between) the new one.
        match replaced {
            Ok(old) => {
                drop(old);
                false
            }
            Err(new) => {
                drop(new);
                true
            }
        }
    }

    /// Cancels a pending timer; returns its waker (for the caller to drop,
    /// after the lock) if it had not fired.
    fn cancel(&self, key: Key) -> Option<Waker> {
        self.wheel().wheel.remove(key)
    }

    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Acquire)
    }

    /// Wakes every pending timer's task; they find the reactor gone. The
    /// flag is set under the wheel's lock (see [`register`](Self::register)).
    pub(crate) fn shutdown(&self, wakers: &mut Vec<Waker>) {
        let mut locked = self.wheel();
        self.shutdown.store(true, Release);
        locked.wheel.drain(wakers);
        let watcher = locked.watcher.take();
        drop(locked);
        drop(watcher);
    }

    /// Pending timers.
    pub(crate) fn len(&self) -> usize {
        self.wheel().wheel.len()
    }
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers").field("pending", &self.len()).finish()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use std::sync::Arc;

    /// `loom::model(f)`, with `f` on a thread whose stack holds a `Timers`
    /// (the wheel's levels are inline, tens of kilobytes, more than the
    /// stack of loom's main thread).
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let f = Arc::new(f);
        loom::model(move || {
            let f = f.clone();
            loom::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || f())
                .expect("a loom thread")
                .join()
                .unwrap();
        });
    }

    /// A timer registered from another thread while the loop is between
    /// its waits ([`Timers::loop_awake`]) and looks again: either the
    /// registration wakes the loop, or the loop's look finds the timer.
    #[test]
    fn a_timer_registered_as_the_loop_looks_again_is_never_missed() {
        model(|| {
            let start = Instant::now();
            let timers = Arc::new(Timers::new(start));
            assert_eq!(
                timers.next_deadline_and_wake(Duration::ZERO).0,
                None,
                "the loop waits for a wakeup"
            );
            timers.loop_awake();
            let deadline = start + Duration::from_secs(1);
            let other = timers.clone();
            let setter =
                loom::thread::spawn(move || other.register(deadline, std::task::Waker::noop()).expect("running").1);
            // The loop's next look, before it waits again.
            let looked = timers.next_deadline_and_wake(Duration::ZERO).0;
            let woke = setter.join().unwrap();
            assert!(
                woke || looked.is_some_and(|at| at <= deadline),
                "the timer neither woke the loop nor was seen by it"
            );
        });
    }

    /// A thread that watches the timers ([`Timers::watch`], the untimed
    /// standby going to sleep) while another registers one: either the
    /// watcher's deadline covers the timer, or the registration wakes it.
    #[test]
    fn a_timer_registered_as_a_watcher_looks_is_seen_or_wakes_it() {
        model(|| {
            let start = Instant::now();
            let timers = Arc::new(Timers::new(start));
            // A later timer already pending: the watch has a deadline.
            timers
                .register(start + Duration::from_secs(2), std::task::Waker::noop())
                .expect("running");
            let deadline = start + Duration::from_secs(1);
            let other = timers.clone();
            let setter = loom::thread::spawn(move || {
                other.register(deadline, std::task::Waker::noop()).expect("running");
            });
            let flag = Arc::new(Flag::default());
            let seen = timers.watch(&Waker::from(flag.clone()));
            setter.join().unwrap();
            let woken = flag.0.load(SeqCst);
            assert!(
                woken || seen.is_some_and(|at| at <= deadline),
                "the timer neither woke the watcher nor was seen by it"
            );
            timers.unwatch();
        });
    }

    /// A poll with a new waker (two lock sections: "Wakers and the
    /// wheel's lock") racing the loop firing the due timer, or a shutdown: either the poll sees it
    /// fired, or the new waker is the one woken; nothing stays behind.
    #[test]
    fn a_new_waker_racing_a_fire_or_shutdown_is_never_lost() {
        for shut in [false, true] {
            model(move || {
                let start = Instant::now();
                let timers = Arc::new(Timers::new(start));
                let old = Arc::new(Flag::default());
                let (key, _) = timers.register(start, &Waker::from(old.clone())).expect("running");
                let new = Arc::new(Flag::default());
                let poller = {
                    let timers = timers.clone();
                    let new = new.clone();
                    loom::thread::spawn(move || timers.poll_fired(key, &Waker::from(new)))
                };
                let mut wakers = Vec::new();
                if shut {
                    timers.shutdown(&mut wakers);
                } else {
                    timers.fire(Instant::now(), &mut wakers);
                }
                let fired = poller.join().unwrap();
                let n = wakers.len();
                for w in wakers {
                    w.wake();
                }
                assert_eq!(n, 1, "one waker handed out");
                assert!(
                    fired || new.0.load(SeqCst),
                    "poll said pending, and the new waker was not woken"
                );
                assert_eq!(timers.len(), 0);
            });
        }
    }

    #[derive(Default)]
    struct Flag(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }

    /// A due timer that the loop's turn ([`Timers::fire`]), a thread off
    /// the loop ([`Timers::fire_overdue`], which only tries the lock) and
    /// its owner's cancel race for: exactly one of them takes its waker.
    #[test]
    fn a_due_timer_fired_on_and_off_the_loop_and_cancelled_is_taken_once() {
        model(|| {
            let start = Instant::now();
            let timers = Arc::new(Timers::new(start));
            let (key, _) = timers.register(start, std::task::Waker::noop()).expect("running");
            timers.loop_awake();
            let off_loop = {
                let timers = timers.clone();
                loom::thread::spawn(move || {
                    let mut wakers = Vec::new();
                    timers.fire_overdue(&mut wakers);
                    wakers.len()
                })
            };
            let owner = {
                let timers = timers.clone();
                loom::thread::spawn(move || usize::from(timers.cancel(key).is_some()))
            };
            let mut wakers = Vec::new();
            timers.fire(Instant::now(), &mut wakers);
            let taken = wakers.len() + off_loop.join().unwrap() + owner.join().unwrap();
            assert_eq!(taken, 1, "the timer's waker was taken {taken} times");
            assert_eq!(timers.len(), 0);
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// `fire_overdue` never waits for the wheel's lock: while another
    /// thread holds it (a loop firing timers), it returns at once, firing
    /// nothing, and fires once the lock is free.
    #[test]
    fn fire_overdue_leaves_a_held_wheel_alone() {
        let start = Instant::now();
        let timers = Timers::new(start);
        timers.register(start, Waker::noop()).expect("not shut down");
        // The loop is awake (between its waits).
        timers.loop_awake();
        let mut wakers = Vec::new();
        {
            let _held = timers.wheel();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut wakers = Vec::new();
                    timers.fire_overdue(&mut wakers);
                    assert!(wakers.is_empty(), "fired under another thread's lock");
                });
            });
        }
        timers.fire_overdue(&mut wakers);
        assert_eq!(wakers.len(), 1);
        assert_eq!(timers.fired_off_loop(), 1);
    }

    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// `watch`: the first registration due before the watched deadline
    /// wakes the watcher, once; a later one, or any after `unwatch`, does
    /// not; with no timer pending, any registration does.
    #[test]
    fn a_watch_is_woken_once_by_an_earlier_timer() {
        let start = Instant::now();
        let timers = Timers::new(start);
        let count = std::sync::Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let woken = || count.0.load(SeqCst);
        // Nothing pending: any timer wakes it.
        assert_eq!(timers.watch(&waker), None);
        timers
            .register(start + Duration::from_secs(60), Waker::noop())
            .expect("running");
        assert_eq!(woken(), 1);
        timers
            .register(start + Duration::from_secs(1), Waker::noop())
            .expect("running");
        assert_eq!(woken(), 1, "woken once per watch");
        // Watching again sees the 1 s timer; only an earlier one wakes.
        let seen = timers.watch(&waker).expect("timers pending");
        assert!(seen <= start + Duration::from_secs(1));
        timers
            .register(start + Duration::from_secs(30), Waker::noop())
            .expect("running");
        assert_eq!(woken(), 1, "a later timer is covered by the watched deadline");
        timers
            .register(start + Duration::from_millis(500), Waker::noop())
            .expect("running");
        assert_eq!(woken(), 2);
        timers.watch(&waker);
        timers.unwatch();
        timers
            .register(start + Duration::from_millis(100), Waker::noop())
            .expect("running");
        assert_eq!(woken(), 2, "unwatched");
        // The shutdown drops a watcher's waker without waking it.
        timers.watch(&waker);
        timers.shutdown(&mut Vec::new());
        assert_eq!(
            std::sync::Arc::strong_count(&count),
            2,
            "the shutdown dropped the watch's waker"
        );
        drop(waker);
        assert_eq!(woken(), 2);
    }

    /// A waker whose every clone and drop registers a timer (an hour
    /// ahead) on `timers`: made by hand, as only a hand-made waker's
    /// clone can run code.
    fn meddling_waker(timers: &std::sync::Arc<Timers>) -> Waker {
        use std::task::{RawWaker, RawWakerVTable};
        type Data = std::sync::Arc<Timers>;
        fn meddle(timers: &Timers) {
            let at = timers.start + Duration::from_secs(3600);
            timers.register(at, Waker::noop()).expect("running");
        }
        unsafe fn clone(data: *const ()) -> RawWaker {
            // SAFETY: `data` came from `Box::into_raw` of a `Data` (here
            // or in `meddling_waker`), not yet freed: the waker is alive.
            let timers = unsafe { &*data.cast::<Data>() };
            meddle(timers);
            RawWaker::new(Box::into_raw(Box::new(timers.clone())).cast(), &VTABLE)
        }
        unsafe fn wake(data: *const ()) {
            // SAFETY: as in `clone`; `wake` consumes the waker.
            unsafe { drop_waker(data) }
        }
        unsafe fn wake_by_ref(_: *const ()) {}
        unsafe fn drop_waker(data: *const ()) {
            // SAFETY: as in `clone`; this is the waker's last use, so the
            // box is freed once.
            let timers = unsafe { Box::from_raw(data.cast::<Data>().cast_mut()) };
            meddle(&timers);
        }
        static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);
        let data: *const Data = Box::into_raw(Box::new(timers.clone()));
        // SAFETY: the vtable's functions keep `RawWaker`'s contract for a
        // boxed `Data`: each clone owns a box of its own, freed by its drop.
        unsafe { Waker::from_raw(RawWaker::new(data.cast(), &VTABLE)) }
    }

    /// "Wakers and the wheel's lock" in the module docs: a registration
    /// (clone), a poll with a new waker (clone, and drop of the old one),
    /// a cancel and a fired timer (drop) with a waker whose clone and drop
    /// register timers on the same wheel.
    #[test]
    fn no_waker_is_cloned_or_dropped_under_the_wheel_s_lock() {
        let timers = std::sync::Arc::new(Timers::new(Instant::now()));
        let (done, finished) = std::sync::mpsc::channel();
        let meddled = timers.clone();
        // On a thread of its own: a relock of the wheel's mutex on one
        // thread deadlocks it.
        std::thread::spawn(move || {
            let timers = meddled;
            let first = meddling_waker(&timers);
            let second = meddling_waker(&timers);
            let soon = timers.start + Duration::from_millis(1);
            let (key, _) = timers.register(soon, &first).expect("running");
            assert!(!timers.poll_fired(key, &first), "pending");
            assert!(!timers.poll_fired(key, &second), "pending");
            let (cancelled, _) = timers.register(soon, &first).expect("running");
            drop(timers.cancel(cancelled));
            std::thread::sleep(Duration::from_millis(2));
            let mut wakers = Vec::new();
            timers.fire(Instant::now(), &mut wakers);
            assert_eq!(wakers.len(), 1, "the first timer fired");
            drop(wakers);
            assert!(timers.poll_fired(key, &first), "fired");
            drop((first, second));
            done.send(()).unwrap();
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(5)).is_ok(),
            "a waker was cloned or dropped under the wheel's lock (deadlock)"
        );
        assert!(timers.len() >= 5, "the wakers' registrations");
    }

    /// A watch that replaces an earlier one drops the earlier waker after
    /// the wheel's lock is released, as `unwatch` and `shutdown` do: a
    /// waker's drop is user code (through `Handle::watch_timers`), which
    /// may register a timer with the same reactor.
    #[test]
    fn a_replaced_watcher_is_dropped_outside_the_wheel_s_lock() {
        struct RegistersOnDrop(std::sync::Arc<Timers>);
        impl std::task::Wake for RegistersOnDrop {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        impl Drop for RegistersOnDrop {
            fn drop(&mut self) {
                let at = self.0.start + Duration::from_secs(60);
                self.0.register(at, Waker::noop()).expect("running");
            }
        }
        let timers = std::sync::Arc::new(Timers::new(Instant::now()));
        let (done, finished) = std::sync::mpsc::channel();
        let watching = timers.clone();
        // On a thread of its own: a relock of the wheel's mutex on one
        // thread deadlocks it.
        std::thread::spawn(move || {
            let first = Waker::from(std::sync::Arc::new(RegistersOnDrop(watching.clone())));
            watching.watch(&first);
            // The watch holds the last reference.
            drop(first);
            watching.watch(Waker::noop());
            watching.unwatch();
            done.send(()).unwrap();
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(5)).is_ok(),
            "the replaced watcher's drop ran under the wheel's lock (deadlock)"
        );
        assert_eq!(timers.len(), 1, "the drop's registration");
    }

    /// `next_deadline_and_wake` turns the wheel's deadlines into instants
    /// through a one-entry cache (`Locked::last_instant`): each answer is
    /// the instant of the deadline pending at that moment, as the timers
    /// come and go.
    #[test]
    fn the_loop_s_next_deadline_follows_each_registration_and_cancel() {
        let start = Instant::now();
        let timers = Timers::new(start);
        let exact = |ns: u64| start + Duration::from_nanos(ns);
        assert_eq!(timers.next_deadline_and_wake(Duration::ZERO), (None, None));
        // A deadline of the tick at hand: the wheel answers it exactly.
        let (first, _) = timers.register(start, Waker::noop()).expect("running");
        assert_eq!(
            timers.next_deadline_and_wake(Duration::ZERO),
            (Some(start), Some(start))
        );
        assert_eq!(
            timers.next_deadline_and_wake(Duration::ZERO),
            (Some(start), Some(start))
        );
        drop(timers.cancel(first));
        let later = start + Duration::from_millis(3);
        let (second, _) = timers.register(later, Waker::noop()).expect("running");
        let (next, wake) = timers.next_deadline_and_wake(Duration::ZERO);
        assert_eq!(next, Some(later));
        assert_eq!(wake, Some(later));
        let sooner = start + Duration::from_nanos(1_500_000);
        let (third, _) = timers.register(sooner, Waker::noop()).expect("running");
        assert_eq!(timers.next_deadline_and_wake(Duration::ZERO).0, Some(sooner));
        drop(timers.cancel(third));
        assert_eq!(timers.next_deadline_and_wake(Duration::ZERO).0, Some(exact(3_000_000)));
        drop(timers.cancel(second));
        assert_eq!(timers.next_deadline_and_wake(Duration::ZERO), (None, None));
    }

    /// `unwatched`: the next deadline while the loop is awake; nothing
    /// while it sleeps armed for its timers, or while none is pending.
    #[test]
    fn a_timer_is_unwatched_only_while_the_loop_is_awake() {
        let start = Instant::now();
        let timers = Timers::new(start);
        timers.loop_awake();
        assert_eq!(timers.unwatched(), None, "no timer pending");
        let waker = Waker::noop();
        let deadline = start + Duration::from_secs(60);
        timers.register(deadline, waker).expect("not shut down");
        let unwatched = timers.unwatched().expect("the loop is awake");
        assert!(unwatched.saturating_duration_since(deadline) < Duration::from_micros(1));
        // A turn's step 1: the loop is about to sleep until its timer.
        timers.next_deadline_and_wake(Duration::ZERO);
        assert_eq!(timers.unwatched(), None, "the loop sleeps armed for it");
    }
}
