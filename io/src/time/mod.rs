//! Timers: [`sleep`], [`sleep_until`], [`timeout`], [`interval`].
//!
//! Every reactor keeps one timing wheel (`wheel.rs`) with a one-millisecond tick.
//! A deadline is rounded *up* to a whole tick and a timer fires only once
//! that tick has fully passed, so a timer never fires before its deadline;
//! it fires at most about a tick (plus scheduling) after it. Timers that come
//! due in the same turn fire in the order of their deadlines. Dropping a
//! timer cancels it in O(1).
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

use self::wheel::{Key, Wheel};
use crate::loom::{Mutex, MutexGuard, lock};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::task::Waker;
use std::time::{Duration, Instant};

const TICK_NS: u64 = 1_000_000;

/// A reactor's clock and timing wheel.
pub(crate) struct Timers {
    start: Instant,
    wheel: Mutex<Wheel>,
    /// The tick by which the loop will next look at the timers (`u64::MAX`:
    /// it waits for a wakeup). A timer registered for an earlier tick must
    /// wake the loop, or it would fire late. Written under the wheel lock.
    next_wake: AtomicU64,
    shutdown: AtomicBool,
}

impl Timers {
    pub(crate) fn new(start: Instant) -> Timers {
        Timers {
            start,
            wheel: Mutex::new(Wheel::new()),
            next_wake: AtomicU64::new(u64::MAX),
            shutdown: AtomicBool::new(false),
        }
    }

    fn wheel(&self) -> MutexGuard<'_, Wheel> {
        lock(&self.wheel)
    }

    fn nanos_since_start(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// How long until the next timer needs attention, if any is pending;
    /// the loop is about to sleep that long at most.
    pub(crate) fn time_to_next(&self, now: Instant) -> Option<Duration> {
        let wheel = self.wheel();
        let next = wheel.next_expiration();
        self.next_wake.store(next.unwrap_or(u64::MAX), Release);
        let at = self.start + Duration::from_nanos(next?.saturating_mul(TICK_NS));
        Some(at.saturating_duration_since(now))
    }

    /// Fires every timer whose tick has fully passed at `now`.
    pub(crate) fn fire(&self, now: Instant, wakers: &mut Vec<Waker>) {
        let now_tick = self.nanos_since_start(now) / TICK_NS;
        let mut wheel = self.wheel();
        if wheel.next_expiration().is_some_and(|next| next <= now_tick) {
            wheel.advance(now_tick, wakers);
        }
    }

    /// Registers a timer for `deadline`, or returns `None` if it has
    /// already passed. The flag says the loop must be woken: it plans to
    /// look at the timers only after this one is due.
    fn register(&self, deadline: Instant, waker: &Waker) -> (Option<Key>, bool) {
        let deadline_ns = self.nanos_since_start(deadline);
        let tick = deadline_ns.div_ceil(TICK_NS);
        let mut wheel = self.wheel();
        if tick <= wheel.elapsed() {
            return (None, false);
        }
        let key = wheel.insert(tick, deadline_ns, waker.clone());
        let wake = tick < self.next_wake.load(Acquire);
        if wake {
            self.next_wake.store(tick, Release);
        }
        (Some(key), wake)
    }

    /// True if the timer fired (the wheel removed its entry when it fired);
    /// otherwise refreshes its waker.
    fn poll_fired(&self, key: Key, waker: &Waker) -> bool {
        let mut wheel = self.wheel();
        if wheel.is_pending(key) {
            wheel.set_waker(key, waker);
            false
        } else {
            true
        }
    }

    /// Cancels a pending timer; returns its waker if it had not fired.
    fn cancel(&self, key: Key) -> Option<Waker> {
        self.wheel().remove(key)
    }

    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Acquire)
    }

    /// Wakes every pending timer's task; they find the reactor gone.
    pub(crate) fn shutdown(&self, wakers: &mut Vec<Waker>) {
        self.shutdown.store(true, Release);
        self.wheel().drain(wakers);
    }

    /// Pending timers.
    pub(crate) fn len(&self) -> usize {
        self.wheel().len()
    }
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers").field("pending", &self.len()).finish()
    }
}
