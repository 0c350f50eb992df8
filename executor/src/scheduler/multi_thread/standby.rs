//! The standby: the parked worker that takes over the driver when the
//! worker that had it leaves and does not come back.
//!
//! A worker that leaves the driver to run what it woke may block in a task
//! (a blocking call, a long computation). If every other worker is asleep on
//! its condition variable, nobody would then watch the sockets and timers of
//! the runtime (tokio#4730). Waking a sleeper every time a worker leaves the
//! driver would prevent that, but costs a wakeup per batch of events; so
//! instead one parked worker, the *standby*, sleeps with a short timeout
//! ([`WATCH_INTERVAL`]) and, on waking, takes the driver if it is free. A
//! worker stuck in a task thus stalls I/O for at most about one interval.
//!
//! Rules:
//!
//! 1. At most one worker is the standby. A parking worker that could not get
//!    the driver (another worker is in it) claims the role if it is free,
//!    and gives it up when it leaves its parker (it took the driver, found
//!    work, or was picked by a notifier).
//! 2. After [`IDLE_WATCHES`] timeouts in a row that found the driver busy (a
//!    worker blocked in it: the runtime is idle) the standby sleeps without a
//!    timeout, so an idle runtime does not wake up every interval.
//! 3. A worker that leaves the driver to run tasks switches an untimed
//!    standby back to timed sleep, waking it once. The standby announces
//!    untimed sleep (a `SeqCst` store) *before* it tries the driver's lock,
//!    and the leaving worker releases that lock *before* it looks (a `SeqCst`
//!    swap): so either the standby finds the driver free, or the leaving
//!    worker sees the announcement.

use crate::loom::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

/// How long the standby sleeps before it checks the driver.
pub(super) const WATCH_INTERVAL: Duration = Duration::from_millis(2);

/// Timeouts in a row, finding the driver busy, before the standby sleeps
/// untimed (rule 2).
pub(super) const IDLE_WATCHES: u32 = 16;

pub(super) struct Standby {
    /// One more than the standby worker's index; zero when there is none.
    worker: AtomicUsize,
    /// The standby sleeps with no timeout (rule 2).
    untimed: AtomicBool,
}

impl Standby {
    pub(super) fn new() -> Standby {
        Standby {
            worker: AtomicUsize::new(0),
            untimed: AtomicBool::new(false),
        }
    }

    /// Claims the role for `index` if it is free; true if `index` holds it.
    pub(super) fn claim(&self, index: usize) -> bool {
        match self.worker.compare_exchange(0, index + 1, SeqCst, SeqCst) {
            Ok(_) => true,
            Err(holder) => holder == index + 1,
        }
    }

    /// Gives up the role, if `index` holds it.
    pub(super) fn release(&self, index: usize) {
        if self.worker.compare_exchange(index + 1, 0, SeqCst, SeqCst).is_ok() {
            self.untimed.store(false, SeqCst);
        }
    }

    /// The standby's next sleep: `None` for no timeout (rule 2).
    pub(super) fn sleep(&self) -> Option<Duration> {
        if self.untimed.load(SeqCst) {
            None
        } else {
            Some(WATCH_INTERVAL)
        }
    }

    /// Rule 2: the standby found the driver busy too many times in a row.
    pub(super) fn go_untimed(&self) {
        self.untimed.store(true, SeqCst);
    }

    /// Rule 3: a worker left the driver to run tasks. Returns the standby
    /// to wake, if it sleeps untimed.
    pub(super) fn driver_left(&self) -> Option<usize> {
        if !self.untimed.swap(false, SeqCst) {
            return None;
        }
        self.worker.load(SeqCst).checked_sub(1)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{Mutex, thread};
    use crate::park::Parker;
    use std::sync::Arc;

    /// Rule 3: a standby that announces untimed sleep while the driver's
    /// holder is leaving is never left asleep with the driver unattended: it
    /// either gets the driver or is woken.
    #[test]
    fn an_untimed_standby_is_never_left_asleep_with_the_driver_free() {
        loom::model(|| {
            let standby = Arc::new(Standby::new());
            let driver = Arc::new(Mutex::new(()));
            let parker = Parker::new(None);
            let unparker = parker.unparker();
            let held = driver.lock().unwrap();
            assert!(standby.claim(0));
            let (s, d) = (standby.clone(), driver.clone());
            let watcher = thread::spawn(move || {
                s.go_untimed();
                if d.try_lock().is_err() {
                    // Untimed sleep: only rule 3 can end it.
                    parker.park(None);
                    // Woken: the holder has left, so the driver is free.
                    assert!(d.try_lock().is_ok());
                }
            });
            // The holder leaves the driver to run tasks.
            drop(held);
            if let Some(index) = standby.driver_left() {
                assert_eq!(index, 0);
                unparker.unpark();
            }
            watcher.join().unwrap();
        });
    }
}
