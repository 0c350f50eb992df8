//! `Sleep`: a future that completes at a deadline.

use super::wheel::Key;
use crate::coop;
use crate::driver::Handle;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

/// What a timer polled after its runtime shut down panics with.
const SHUT_DOWN: &str = "this Weft timer's runtime has shut down, so the timer can never fire; \
                         keep the runtime alive while its timers are in use";

/// Waits until `duration` has passed.
///
/// Like `asyncio.sleep(seconds)`. The future completes no earlier than
/// `duration` after this call, and usually within tens of microseconds
/// after (the time a thread takes to wake).
///
/// # Panics
///
/// When polled on a thread with no Weft runtime, if it was also created
/// without one (there is no reactor to keep the time), or after its runtime
/// shut down.
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(super::after(Instant::now(), duration))
}

/// Waits until `deadline`.
///
/// # Panics
///
/// As [`sleep`].
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        handle: Handle::try_current().ok(),
        deadline,
        entry: None,
    }
}

/// A future that completes at its deadline; made by [`sleep`] and
/// [`sleep_until`]. Dropping it cancels the timer.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    handle: Option<Handle>,
    deadline: Instant,
    entry: Option<Key>,
}

impl Sleep {
    /// When the sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// True if the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline (earlier or later), reusing this future.
    ///
    /// A task already waiting on this sleep keeps waiting, for the new
    /// deadline: the timer moves in the wheel with its waker, so the task
    /// is woken at the new deadline (at once if it has passed) without
    /// being polled in between. hyper's header-read timeout relies on
    /// this, through `WeftTimer`'s (feature `hyper`)
    /// `reset`.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        let (Some(key), Some(handle)) = (self.entry.take(), &self.handle) else {
            return;
        };
        // Not pending any more: it fired, and its task will poll and
        // register the new deadline then.
        let Some(waker) = handle.inner.timers.cancel(key) else {
            return;
        };
        if Instant::now() >= deadline {
            // The new deadline has passed: the task polls and completes.
            waker.wake();
            return;
        }
        match handle.inner.timers.register(deadline, &waker) {
            Some((key, wake_loop)) => {
                if wake_loop {
                    handle.inner.wake();
                }
                self.entry = Some(key);
            }
            // The reactor shut down meanwhile: the task polls and learns it.
            None => waker.wake(),
        }
    }

    /// Polls for the deadline without spending cooperative budget: for
    /// combinators such as [`timeout`](super::timeout()) that must notice a
    /// deadline even when the task's budget is spent.
    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.handle.is_none() {
            // Created outside a runtime: the reactor of the thread that
            // polls it keeps its time.
            match Handle::try_current() {
                Ok(handle) => self.handle = Some(handle),
                Err(err) => panic!("weft::time: {err}"),
            }
        }
        let handle = self.handle.as_ref().expect("set just above");
        let timers = &handle.inner.timers;
        if timers.is_shutdown() {
            panic!("{SHUT_DOWN}");
        }
        if Instant::now() >= self.deadline {
            // Usually the wheel fired the entry and removed it already. If
            // not (this task was polled for another reason in the moment
            // between the deadline and the loop's next look at the timers),
            // it fires within a tick anyway. Either way forgetting the key
            // beats taking the wheel's lock on every completed sleep: the
            // worst it costs is one spurious wakeup of this task.
            self.entry = None;
            return Poll::Ready(());
        }
        match self.entry {
            None => {
                let Some((key, wake_loop)) = timers.register(self.deadline, cx.waker()) else {
                    // Shut down between the check above and the wheel's lock.
                    panic!("{SHUT_DOWN}");
                };
                if wake_loop {
                    handle.inner.wake();
                }
                self.entry = Some(key);
                crate::observe::waiting(crate::observe::Wait::Timer {
                    deadline: self.deadline,
                });
                Poll::Pending
            }
            Some(key) => {
                if timers.poll_fired(key, cx.waker()) {
                    self.entry = None;
                    Poll::Ready(())
                } else {
                    crate::observe::waiting(crate::observe::Wait::Timer {
                        deadline: self.deadline,
                    });
                    Poll::Pending
                }
            }
        }
    }

    fn cancel(&mut self) {
        if let (Some(key), Some(handle)) = (self.entry.take(), &self.handle) {
            drop(handle.inner.timers.cancel(key));
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let budget = ready!(coop::poll_proceed(cx));
        let this = self.get_mut();
        let poll = this.poll_elapsed(cx);
        if poll.is_ready() {
            budget.made_progress();
        }
        poll
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.entry.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Driver;
    use std::task::Waker;

    #[test]
    fn a_dropped_sleep_leaves_the_wheel_at_once() {
        let mut driver = Driver::new().unwrap();
        let handle = driver.handle().clone();
        driver.block_on(async {
            let mut sleep = Box::pin(sleep(Duration::from_secs(60)));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
            assert_eq!(handle.pending_timers(), 1);
            drop(sleep);
            assert_eq!(handle.pending_timers(), 0);
        });
    }

    #[test]
    fn reset_moves_a_waiting_sleep_without_a_poll() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut driver = Driver::new().unwrap();
        let handle = driver.handle().clone();
        let _enter = handle.enter();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut sleep = Box::pin(sleep(Duration::from_secs(60)));
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        // Brought forward while the task waits: the waker moves with it.
        let start = Instant::now();
        sleep.as_mut().get_mut().reset(start + Duration::from_millis(5));
        assert_eq!(handle.pending_timers(), 1);
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the moved timer never woke its task"
            );
            driver.turn(Some(Duration::from_millis(50)));
        }
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
        // Reset into the past while waiting: woken at once.
        let mut sleep = Box::pin(super::sleep(Duration::from_secs(60)));
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        sleep
            .as_mut()
            .get_mut()
            .reset(Instant::now() - Duration::from_millis(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(handle.pending_timers(), 0);
    }

    #[test]
    fn a_sleep_found_elapsed_before_its_timer_fired_is_reclaimed_when_it_fires() {
        let mut driver = Driver::new().unwrap();
        let handle = driver.handle().clone();
        driver.block_on(async {
            let mut sleep = Box::pin(sleep(Duration::from_millis(2)));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
            // Block the only thread that turns the loop past the deadline:
            // the sleep sees it elapsed before the wheel fired its entry.
            std::thread::sleep(Duration::from_millis(10));
            assert!(sleep.as_mut().poll(&mut cx).is_ready());
            drop(sleep);
            assert_eq!(handle.pending_timers(), 1, "forgotten, not cancelled");
            // The next turn fires (and removes) it.
            super::sleep(Duration::from_millis(3)).await;
            assert_eq!(handle.pending_timers(), 0);
        });
    }
}
