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
                    if timers.is_shutdown() {
                        // Shut down between the check above and the
                        // wheel's lock: the shutdown took the entry, it
                        // did not fire.
                        panic!("{SHUT_DOWN}");
                    }
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

    /// Spends a unit of the task's budget only when the deadline has come
    /// (a pending sleep would give it back anyway); with the budget spent,
    /// an elapsed sleep still yields once (`Pending`, the task woken) and
    /// completes at the next poll.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let entry = this.entry;
        ready!(this.poll_elapsed(cx));
        match coop::poll_proceed(cx) {
            Poll::Ready(budget) => {
                budget.made_progress();
                Poll::Ready(())
            }
            Poll::Pending => {
                // Not complete after all: keep the key that `poll_elapsed`
                // forgot, so that dropping the sleep now still takes its
                // timer out of the wheel (a stale key is ignored).
                this.entry = entry;
                Poll::Pending
            }
        }
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

    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// `Handle::fire_overdue_timers`, from a thread that is not the
    /// loop's: nothing before the deadline, the timer's wake once it has
    /// passed (counted apart from the loop's), and nothing left for the
    /// loop's next turn.
    #[test]
    fn an_overdue_timer_fires_off_the_loop_once_and_not_before() {
        let mut driver = Driver::new().unwrap();
        let handle = driver.handle().clone();
        let _enter = handle.enter();
        assert_eq!(handle.fire_overdue_timers(), 0, "no timer at all");
        let count = std::sync::Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut sleep = Box::pin(sleep(Duration::from_millis(30)));
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        driver.turn(Some(Duration::ZERO));
        let off_loop = std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(handle.fire_overdue_timers(), 0, "fired before its deadline");
                std::thread::sleep(Duration::from_millis(40));
                handle.fire_overdue_timers()
            })
            .join()
            .unwrap()
        });
        assert_eq!(off_loop, 1);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
        driver.turn(Some(Duration::ZERO));
        let metrics = handle.metrics();
        assert_eq!(metrics.timers_fired_off_loop, 1);
        assert_eq!(metrics.timers_fired, 0, "the loop found nothing left to fire");
        assert_eq!(handle.fire_overdue_timers(), 0, "fired twice");
    }

    struct Panics;
    impl std::task::Wake for Panics {
        fn wake(self: std::sync::Arc<Self>) {
            panic!("a user's waker panics");
        }
    }

    /// A waker that panics, woken off the loop by
    /// `Handle::fire_overdue_timers` (on a worker running tasks, say): the
    /// panic stays there (`complete_each`), and the timer due after it is
    /// still woken.
    #[test]
    fn a_panicking_waker_fired_off_the_loop_costs_no_other_timer_its_wake() {
        let mut driver = Driver::new().unwrap();
        let handle = driver.handle().clone();
        let _enter = handle.enter();
        let count = std::sync::Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        let panics = Waker::from(std::sync::Arc::new(Panics));
        let counts = Waker::from(count.clone());
        let mut first = Box::pin(sleep(Duration::from_millis(5)));
        let mut second = Box::pin(sleep(Duration::from_millis(6)));
        assert!(first.as_mut().poll(&mut Context::from_waker(&panics)).is_pending());
        assert!(second.as_mut().poll(&mut Context::from_waker(&counts)).is_pending());
        driver.turn(Some(Duration::ZERO));
        std::thread::sleep(Duration::from_millis(10));
        let woken = std::thread::scope(|s| s.spawn(|| handle.fire_overdue_timers()).join())
            .expect("a waker's panic escaped fire_overdue_timers");
        assert_eq!(woken, 2);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(handle.metrics().timers_fired_off_loop, 2);
    }

    /// A timer registered on the loop's thread between its waits (the
    /// common case: a task sets a timeout) needs no wakeup: the loop looks
    /// at the timers before it waits again. The wait below would end at
    /// once on a wakeup written for nothing.
    #[test]
    fn a_timer_set_between_the_loop_s_waits_does_not_wake_the_loop() {
        let mut driver = Driver::new().unwrap();
        let _enter = driver.handle().clone().enter();
        // The wheel is empty: the loop waits for a wakeup only.
        driver.turn(Some(Duration::ZERO));
        let mut sleep = Box::pin(sleep(Duration::from_secs(60)));
        assert!(
            sleep
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
        let start = Instant::now();
        driver.turn(Some(Duration::from_millis(50)));
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "the turn ended early, after {:?}: a wakeup was written",
            start.elapsed()
        );
    }

    /// While the loop waits, a timer due before it would look again wakes
    /// it (here from another thread), and fires on time.
    #[test]
    fn a_timer_set_while_the_loop_waits_wakes_it() {
        let mut driver = Driver::new().unwrap();
        let handle = driver.handle().clone();
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let _enter = handle.enter();
            let mut sleep = Box::pin(sleep(Duration::from_millis(10)));
            assert!(
                sleep
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
            );
            // Keep it pending until the loop has looked.
            std::thread::sleep(Duration::from_millis(500));
        });
        let start = Instant::now();
        // The first wait ends on the new timer's wakeup, not after 10 s.
        driver.turn(Some(Duration::from_secs(10)));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the timer did not wake the loop"
        );
        setter.join().unwrap();
    }

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
