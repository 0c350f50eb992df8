//! The wake protocol between CUDA's host functions and the loop.
//!
//! In [`WakeMode::HostFunction`](crate::WakeMode::HostFunction), every
//! operation is followed on its stream by a host function. The driver runs
//! it on its own thread once the operation is done; it may make no CUDA
//! call, so all it does is [`raise`](Signal::raise) the tracker's signal and,
//! if the signal was down, wake the loop through io's completion notifier.
//! The loop, polling the tracker, [`take`](Signal::take)s the signal
//! *before* it queries events. So a host function either runs before the
//! take (and the queries after it see its operation done) or finds the
//! signal down and wakes the loop again: no completion waits for a wakeup
//! that was never sent, and a burst of completions costs one wakeup.

use crate::loom::{AtomicBool, Ordering::*};

/// "Some operation finished since the loop last looked."
#[derive(Debug, Default)]
pub(crate) struct Signal {
    raised: AtomicBool,
}

impl Signal {
    /// Raises the signal (on the driver's thread); true if it was down, in
    /// which case the caller must wake the loop.
    pub(crate) fn raise(&self) -> bool {
        !self.raised.swap(true, AcqRel)
    }

    /// Lowers the signal (on the loop); true if it was raised. Call before
    /// querying events.
    pub(crate) fn take(&self) -> bool {
        self.raised.swap(false, AcqRel)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;

    /// Two operations finish on driver threads while the loop polls: every
    /// finished operation is seen by a poll that happens after its wakeup.
    #[test]
    fn no_completion_waits_for_a_lost_wakeup() {
        loom::model(|| {
            let signal = Arc::new(Signal::default());
            // Bit i: operation i is done (what cuEventQuery would answer).
            let done = Arc::new(AtomicUsize::new(0));
            let wakeups = Arc::new(AtomicUsize::new(0));
            let finishers: Vec<_> = (0..2)
                .map(|i| {
                    let (signal, done, wakeups) = (signal.clone(), done.clone(), wakeups.clone());
                    loom::thread::spawn(move || {
                        done.fetch_or(1 << i, Release);
                        if signal.raise() {
                            wakeups.fetch_add(1, Release);
                        }
                    })
                })
                .collect();
            // The loop. A turn consumes the wakeups sent so far (epoll
            // returns), then takes the signal, then queries. One turn now,
            // racing the finishers...
            let mut consumed = wakeups.load(Acquire);
            let mut seen = 0;
            if signal.take() {
                seen |= done.load(Acquire);
            }
            for f in finishers {
                f.join().unwrap();
            }
            // ...then one more turn for every wakeup not consumed yet.
            while wakeups.load(Acquire) > consumed {
                consumed = wakeups.load(Acquire);
                if signal.take() {
                    seen |= done.load(Acquire);
                }
            }
            assert_eq!(seen, 0b11, "a finished operation was never seen");
        });
    }
}
