//! [`Activity`]: when the loop must poll the engine, and when a poster must
//! wake it (engine rule 6), on its own so that loom can check it.
//!
//! The loop asks [`Activity::has_work`] every turn, without the MPI lock.
//! It is true while work is in flight, and for the **spin window** after
//! the last post or completion even with nothing in flight, so that the
//! next post of a busy exchange finds the loop awake and needs no wake-up
//! (a system call saved on every hop of a ping-pong). The window is time,
//! read from the clock, not a count of polls: a loaded machine that polls
//! slowly does not stretch it, a fast one does not shrink it.
//!
//! # How long the window is
//!
//! At least the setting (`MpiBuilder::spin_window`), and longer when the
//! work of late has been completing soon after it was posted: twice the
//! recent wait (an average of the time from post to completion, fed by
//! every operation that completed off the eager path), at most
//! [`ADAPTIVE_CAP`], while work is in flight (with nothing in flight the
//! loop spins for the window set only: the stretch is for replies). An exchange whose replies come back in a few hundred
//! microseconds (a loaded machine, a TCP link) then keeps spinning until
//! they do, instead of going to sleep just before each one, and waiting
//! for the peer to find it in its own sleep in turn; a rank whose messages
//! come after long idle gaps waits longer than the cap and keeps the short
//! window, so its gaps cost little CPU.
//!
//! # Fields and who writes them
//!
//! - `pending` (requests in flight plus receives waiting): stored by the
//!   engine at the end of every section under the MPI lock, so its stores
//!   follow the lock's order.
//! - `last`: the time of the last post or completion (any thread, a max).
//! - `kicked`: when the reactor last heard of this source's progress (a
//!   completion in the loop's own poll, or a [`notify`] a poster sent). The
//!   reactor keeps its own spin window from that instant, so a poster that
//!   finds it more than half a window old sends a notify, which restarts
//!   the reactor's window: a post never meets a loop that is already
//!   backing off for lack of news. In a busy exchange completions keep it
//!   fresh and nobody notifies.
//! - `asleep`: set by the loop when it is about to sleep with no bound
//!   (nothing pending, window over); cleared by the first poster after.
//!
//! # No lost wake-up
//!
//! The loop stores `asleep` and then reads `pending`; a poster stores
//! `pending` (under the lock) and then swaps `asleep`. All four accesses
//! are `SeqCst`, so in their single total order one side sees the other:
//! either the loop sees the work (and polls), or the poster sees the flag
//! (and wakes the loop). `loom_tests` checks it.
//!
//! [`notify`]: weft_io::source::SourceHandle::notify

use super::clock::nanos;
use crate::loom::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

/// See the module docs.
pub(crate) struct Activity {
    pending: AtomicUsize,
    /// Of `pending`, the requests MPI holds (not receives waiting for a
    /// message): they may need polls to make progress at all.
    requests: AtomicUsize,
    last: AtomicU64,
    kicked: AtomicU64,
    asleep: AtomicBool,
    /// The spin window, in nanoseconds (a setting: `MpiBuilder::spin_window`).
    window: AtomicU64,
    /// The recent wait from post to completion, in nanoseconds (an
    /// average; racing updates lose a sample, no more).
    recent_wait: AtomicU64,
}

/// The longest the window stretches to follow the recent wait.
pub(crate) const ADAPTIVE_CAP: Duration = Duration::from_millis(1);

impl Activity {
    /// Nothing pending, the window over, the loop free to sleep.
    pub(crate) fn new(window: Duration) -> Activity {
        let window = nanos(window);
        Activity {
            pending: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            kicked: AtomicU64::new(0),
            asleep: AtomicBool::new(true),
            window: AtomicU64::new(window),
            // Unknown: no stretch until waits are seen.
            recent_wait: AtomicU64::new(u64::MAX),
        }
    }

    /// Now, in the unit the fields hold (the clock's, `clock.rs`: never
    /// zero, so a zero `last` means "never").
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        super::clock::now()
    }

    /// `instant` in the unit the fields hold (see [`now`](Self::now)).
    pub(crate) fn at(&self, instant: Instant) -> u64 {
        super::clock::nanos_at(instant)
    }

    /// The spin window set.
    pub(crate) fn window(&self) -> Duration {
        Duration::from_nanos(self.window.load(Relaxed))
    }

    /// The spin window in force: the setting, stretched to twice the
    /// recent wait while that is below [`ADAPTIVE_CAP`] (module docs).
    pub(crate) fn effective_window(&self) -> Duration {
        Duration::from_nanos(self.effective_nanos())
    }

    fn effective_nanos(&self) -> u64 {
        let base = self.window.load(Relaxed);
        let recent = self.recent_wait.load(Relaxed);
        let cap = nanos(ADAPTIVE_CAP);
        if recent >= cap {
            return base;
        }
        base.max(recent.saturating_mul(2).min(cap))
    }

    /// An operation completed `wait` nanoseconds after it was posted.
    pub(crate) fn record_wait(&self, wait: u64) {
        let old = self.recent_wait.load(Relaxed);
        let new = if old == u64::MAX {
            wait
        } else {
            old - old / 8 + wait / 8
        };
        self.recent_wait.store(new, Relaxed);
    }

    /// Changes the spin window.
    pub(crate) fn set_window(&self, window: Duration) {
        self.window.store(nanos(window), Relaxed);
    }

    /// Work in flight.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(SeqCst)
    }

    /// Under the MPI lock: the work in flight now, `requests` of it held
    /// by MPI.
    pub(crate) fn set_pending(&self, n: usize, requests: usize) {
        if self.requests.load(Relaxed) != requests {
            self.requests.store(requests, Relaxed);
        }
        // Unchanged (a spinning poll that found nothing): no store, which
        // is a full fence here. The loop's check (`has_work`: `asleep`
        // stored, then `pending` loaded, both `SeqCst`) still sees `n`:
        // this `SeqCst` load read the last store of it, before the
        // caller's `touched` (`asleep.swap`) in the single total order, so
        // a check ordered after that swap reads that store or a later one.
        if self.pending.load(SeqCst) != n {
            self.pending.store(n, SeqCst);
        }
    }

    /// Requests MPI holds.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Relaxed)
    }

    /// True while the spin window is open at `now`.
    pub(crate) fn spinning(&self, now: u64) -> bool {
        let last = self.last.load(Relaxed);
        last != 0 && now.saturating_sub(last) < self.effective_nanos()
    }

    /// The loop's question before it sleeps: is there a reason to poll?
    /// False only after it has said so in `asleep`, so the next poster
    /// wakes it. With nothing in flight, only the window set counts (not
    /// its stretch, which is for catching replies to work in flight): a
    /// rank whose exchange has ended stops spinning after it.
    ///
    /// `now` (a clock reading) is called only when nothing is in flight:
    /// a rank spinning on work in flight reads no clock here.
    pub(crate) fn has_work(&self, now: impl FnOnce() -> u64) -> bool {
        if self.pending.load(SeqCst) > 0 {
            return true;
        }
        let last = self.last.load(Relaxed);
        if last != 0 && now().saturating_sub(last) < self.window.load(Relaxed) {
            return true;
        }
        self.asleep.store(true, SeqCst);
        self.pending.load(SeqCst) > 0
    }

    /// The loop's own poll completed something: the reactor saw it (its
    /// window restarts by itself).
    pub(crate) fn progressed_on_loop(&self, now: u64) {
        self.last.fetch_max(now, Relaxed);
        self.kicked.fetch_max(now, Relaxed);
    }

    /// A post, or a completion found off the loop (a task helping, engine
    /// rule 7), after `pending` was stored: true if the caller must wake
    /// the loop (it may sleep with no bound, or its window may be over).
    #[must_use]
    pub(crate) fn touched(&self, now: u64) -> bool {
        self.last.fetch_max(now, Relaxed);
        let asleep = self.asleep.swap(false, SeqCst);
        let window = self.effective_nanos();
        let stale = window > 0 && now.saturating_sub(self.kicked.load(Relaxed)) >= window / 2;
        if asleep || stale {
            self.kicked.fetch_max(now, Relaxed);
            return true;
        }
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const US: u64 = 1_000;

    #[test]
    fn the_window_is_time_after_the_last_post_or_completion() {
        let a = Activity::new(Duration::from_micros(100));
        assert!(!a.has_work(|| 10 * US), "nothing ever happened: free to sleep");
        assert!(a.touched(20 * US), "the loop said it sleeps: the first post wakes it");
        a.set_pending(0, 0);
        assert!(a.has_work(|| 60 * US), "inside the window with nothing pending");
        assert!(a.has_work(|| 119 * US));
        assert!(!a.has_work(|| 121 * US), "the window is over");
        a.progressed_on_loop(200 * US);
        assert!(a.has_work(|| 250 * US));
        a.set_pending(1, 0);
        assert!(a.has_work(|| 10_000 * US), "work in flight keeps the loop polling");
        assert!(
            a.has_work(|| panic!("the clock was read with work in flight")),
            "work in flight needs no clock reading"
        );
    }

    #[test]
    fn the_stretch_keeps_the_loop_spinning_only_while_work_is_in_flight() {
        let a = Activity::new(Duration::from_micros(100));
        a.record_wait(nanos(Duration::from_micros(400)));
        assert_eq!(a.effective_window(), Duration::from_micros(800));
        a.set_pending(1, 0);
        assert!(a.touched(1_000 * US));
        assert!(a.spinning(1_700 * US), "awaiting a reply: the stretched window");
        a.set_pending(0, 0);
        assert!(a.has_work(|| 1_099 * US), "nothing in flight: the window set");
        assert!(!a.has_work(|| 1_101 * US), "nothing in flight: no stretch");
    }

    #[test]
    fn a_post_notifies_only_when_the_reactor_may_have_stopped_spinning() {
        let a = Activity::new(Duration::from_micros(100));
        a.set_pending(1, 0);
        assert!(a.touched(999 * US), "the first post wakes the loop");
        a.progressed_on_loop(1_000 * US);
        assert!(!a.touched(1_010 * US), "a busy exchange: no wake-up");
        assert!(!a.touched(1_049 * US));
        assert!(
            a.touched(1_050 * US),
            "half a window without news: restart the reactor's"
        );
        assert!(!a.touched(1_060 * US), "just kicked");
    }

    #[test]
    fn the_window_follows_waits_below_the_cap_and_ignores_longer_ones() {
        let a = Activity::new(Duration::from_micros(100));
        assert_eq!(a.effective_window(), Duration::from_micros(100), "no waits seen yet");
        a.record_wait(nanos(Duration::from_micros(300)));
        assert_eq!(
            a.effective_window(),
            Duration::from_micros(600),
            "twice the recent wait"
        );
        for _ in 0..50 {
            a.record_wait(nanos(Duration::from_micros(2)));
        }
        assert_eq!(
            a.effective_window(),
            Duration::from_micros(100),
            "never below the setting"
        );
        for _ in 0..50 {
            a.record_wait(nanos(Duration::from_millis(5)));
        }
        assert_eq!(
            a.effective_window(),
            Duration::from_micros(100),
            "waits past the cap (idle gaps) do not stretch it"
        );
        for _ in 0..50 {
            a.record_wait(nanos(Duration::from_micros(700)));
        }
        assert_eq!(a.effective_window(), ADAPTIVE_CAP, "at most the cap");
    }

    #[test]
    fn with_no_window_a_post_wakes_only_a_loop_that_sleeps_unbounded() {
        let a = Activity::new(Duration::ZERO);
        a.set_pending(1, 0);
        assert!(a.touched(5 * US), "asleep from the start");
        assert!(!a.touched(6_000 * US), "polling (work pending): no wake-up");
        a.set_pending(0, 0);
        assert!(!a.has_work(|| 7_000 * US));
        assert!(a.touched(7_001 * US));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::thread;
    use std::sync::Arc;

    /// A poster posts while the loop, its window over, decides whether to
    /// sleep: if it sleeps, it was woken.
    #[test]
    fn a_post_never_meets_a_loop_asleep_without_waking_it() {
        for window in [0, 1_000] {
            loom::model(move || {
                let activity = Arc::new(Activity::new(Duration::from_nanos(window)));
                activity.progressed_on_loop(1);
                let woken = Arc::new(AtomicBool::new(false));
                let poster = {
                    let (activity, woken) = (activity.clone(), woken.clone());
                    thread::spawn(move || {
                        // Under the lock in the engine; the lock only orders
                        // stores of `pending`, one poster here.
                        activity.set_pending(1, 0);
                        if activity.touched(10_000) {
                            woken.store(true, SeqCst);
                        }
                    })
                };
                let sleeps = !activity.has_work(|| 5_000);
                poster.join().unwrap();
                if sleeps {
                    assert!(woken.load(SeqCst), "the loop slept through a post");
                }
            });
        }
    }

    /// Two sections in a row under the engine's lock, the second a post
    /// that leaves the count as it was (so `set_pending` stores nothing):
    /// the loop deciding whether to sleep meanwhile is either woken by that
    /// post or sees work. The first section stores the count and wakes
    /// nobody (a section that posted nothing, say the loop's own poll
    /// posting a collective's next stage), so the unchanged post's
    /// wake-up is the only one: were the first to call `touched` too, its
    /// own wake-up would cover every interleaving in which the loop misses
    /// the count, and the model could not fail on the second's.
    #[test]
    fn a_post_that_leaves_the_count_unchanged_never_meets_a_loop_asleep() {
        loom::model(|| {
            let activity = Arc::new(Activity::new(Duration::ZERO));
            activity.progressed_on_loop(1);
            let woken = Arc::new(AtomicBool::new(false));
            // The engine's lock, as a flag the second section waits on: it
            // orders the two sections as the lock does.
            let first_done = Arc::new(AtomicBool::new(false));
            let first = {
                let (activity, done) = (activity.clone(), first_done.clone());
                thread::spawn(move || {
                    activity.set_pending(1, 0);
                    done.store(true, Release);
                })
            };
            let second = {
                let (activity, woken, done) = (activity.clone(), woken.clone(), first_done);
                thread::spawn(move || {
                    while !done.load(Acquire) {
                        thread::yield_now();
                    }
                    activity.set_pending(1, 0);
                    if activity.touched(10_000) {
                        woken.store(true, SeqCst);
                    }
                })
            };
            let sleeps = !activity.has_work(|| 5_000);
            first.join().unwrap();
            second.join().unwrap();
            if sleeps {
                assert!(woken.load(SeqCst), "the loop slept through a post");
            }
        });
    }
}
