//! Which workers are parked, and how many are searching for work.
//!
//! The rules that keep wakeups cheap and never lost:
//!
//! 1. **At most half the workers search at once.** A worker with an empty
//!    queue becomes a *searcher* (it may steal) only if fewer than half are
//!    searching; otherwise it parks. This bounds the contention of thieves on
//!    busy queues.
//! 2. **A parked worker is woken only if nobody is searching.** A searcher
//!    will find new work anyway; waking more would only add thieves.
//!    Waking a worker makes it a searcher at once (both counts are bumped in
//!    one atomic add), so concurrent notifiers see it and wake no one else.
//! 3. **The last searcher to stop wakes a successor.** When a searcher finds
//!    work (and so stops searching) or parks, and it was the last one, it
//!    wakes another parked worker if work is pending, so queued work is never
//!    left with no searcher to find it.
//! 4. **Sleepers and the unparked count change together under one lock**, so
//!    `num_workers - unparked == sleepers.len()` whenever the lock is free.
//!
//! The counts live in one word so that the hot check in rule 2 is one load.

use crate::loom::{AtomicUsize, Mutex, Ordering::SeqCst, lock};

/// Searching workers in the low bits, unparked workers above.
const UNPARK_SHIFT: usize = 16;
const UNPARK_ONE: usize = 1 << UNPARK_SHIFT;
const SEARCH_MASK: usize = UNPARK_ONE - 1;

/// The most workers the counts can hold.
pub(super) const MAX_WORKERS: usize = SEARCH_MASK - 1;

pub(super) struct Idle {
    state: AtomicUsize,
    num_workers: usize,
    /// Indices of parked workers (rule 4).
    sleepers: Mutex<Vec<usize>>,
}

#[derive(Clone, Copy)]
struct Counts(usize);

impl Counts {
    fn searching(self) -> usize {
        self.0 & SEARCH_MASK
    }
    fn unparked(self) -> usize {
        self.0 >> UNPARK_SHIFT
    }
}

impl Idle {
    pub(super) fn new(num_workers: usize) -> Idle {
        assert!(
            num_workers < SEARCH_MASK,
            "Weft supports at most {SEARCH_MASK} worker threads"
        );
        Idle {
            state: AtomicUsize::new(num_workers << UNPARK_SHIFT),
            num_workers,
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
        }
    }

    fn counts(&self) -> Counts {
        Counts(self.state.load(SeqCst))
    }

    /// Rule 2: the index of a parked worker to wake, which the caller must
    /// unpark, or `None` if none should be woken. Call it after queueing the
    /// work.
    ///
    /// The first look is a read-modify-write (`fetch_add(0)`), not a load:
    /// RMWs of one location are totally ordered, and the parking worker's
    /// own RMW (`transition_worker_to_parked`) is followed by its last look
    /// at the queues. So either our RMW comes first, and that look sees the
    /// work we queued, or theirs does, and we see them parked and wake them.
    /// A plain load would need a `SeqCst` fence to say the same, and a fence
    /// costs more than the RMW on every push.
    pub(super) fn worker_to_notify(&self) -> Option<usize> {
        if !self.should_notify(Counts(self.state.fetch_add(0, SeqCst))) {
            return None;
        }
        let mut sleepers = lock(&self.sleepers);
        if !self.should_notify(self.counts()) {
            return None;
        }
        // One more unparked worker, and it is searching.
        self.state.fetch_add(UNPARK_ONE | 1, SeqCst);
        let index = sleepers.pop();
        debug_assert!(index.is_some(), "weft bug: fewer sleepers than parked workers");
        index
    }

    fn should_notify(&self, counts: Counts) -> bool {
        counts.searching() == 0 && counts.unparked() < self.num_workers
    }

    /// Rule 1: may this worker start searching?
    pub(super) fn transition_worker_to_searching(&self) -> bool {
        if 2 * self.counts().searching() >= self.num_workers {
            return false;
        }
        self.state.fetch_add(1, SeqCst);
        true
    }

    /// The worker found work and stops searching. True if it was the last
    /// searcher (rule 3: the caller must then wake another if work waits).
    pub(super) fn transition_worker_from_searching(&self) -> bool {
        let prev = Counts(self.state.fetch_sub(1, SeqCst));
        debug_assert!(prev.searching() > 0);
        prev.searching() == 1
    }

    /// The worker parks. True if it was the last searcher (rule 3).
    pub(super) fn transition_worker_to_parked(&self, index: usize, is_searching: bool) -> bool {
        let mut sleepers = lock(&self.sleepers);
        let prev = Counts(self.state.fetch_sub(UNPARK_ONE | usize::from(is_searching), SeqCst));
        sleepers.push(index);
        is_searching && prev.searching() == 1
    }

    /// The worker woke for its own reasons (the driver had events for it):
    /// takes it off the sleepers list. True if it was on it; false means
    /// another thread woke it through [`worker_to_notify`](Self::worker_to_notify)
    /// and it is therefore a searcher.
    pub(super) fn unpark_worker_by_id(&self, index: usize) -> bool {
        let mut sleepers = lock(&self.sleepers);
        match sleepers.iter().position(|&i| i == index) {
            Some(pos) => {
                sleepers.swap_remove(pos);
                self.state.fetch_add(UNPARK_ONE, SeqCst);
                true
            }
            None => false,
        }
    }

    /// A parked worker other than `me`, if any: whom a hand-off with no
    /// standby wakes (rule 4 of `standby`). The lock orders this look after
    /// the parking worker's own `transition_worker_to_parked`.
    pub(super) fn sleeper_other_than(&self, me: usize) -> Option<usize> {
        // With one worker there is no other (a rank's runtime under MPI
        // often has one, and asks on every hand-off).
        if self.num_workers < 2 || self.num_parked() == 0 {
            return None;
        }
        lock(&self.sleepers).iter().copied().find(|&i| i != me)
    }

    /// True if the worker is on the sleepers list.
    pub(super) fn is_parked(&self, index: usize) -> bool {
        lock(&self.sleepers).contains(&index)
    }

    /// Workers searching right now.
    pub(super) fn num_searching(&self) -> usize {
        self.counts().searching()
    }

    /// Workers parked right now.
    pub(super) fn num_parked(&self) -> usize {
        self.num_workers - self.counts().unparked()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn at_most_half_search_and_a_notified_worker_searches() {
        let idle = Idle::new(4);
        assert!(idle.transition_worker_to_searching());
        assert!(idle.transition_worker_to_searching());
        assert!(
            !idle.transition_worker_to_searching(),
            "a third searcher of four is refused"
        );
        assert!(!idle.transition_worker_from_searching());
        assert!(idle.transition_worker_to_parked(1, true), "the last searcher parks");
        assert_eq!(idle.num_parked(), 1);
        assert_eq!(idle.worker_to_notify(), Some(1));
        assert_eq!(idle.num_searching(), 1, "the woken worker counts as searching");
        assert_eq!(idle.worker_to_notify(), None, "nobody else is woken while one searches");
        assert!(!idle.is_parked(1));
        assert!(!idle.unpark_worker_by_id(1));
    }

    #[test]
    fn a_sleeper_other_than_me_is_another_parked_worker() {
        let idle = Idle::new(3);
        assert_eq!(idle.sleeper_other_than(0), None, "nobody parked");
        idle.transition_worker_to_parked(0, false);
        assert_eq!(idle.sleeper_other_than(0), None, "only me");
        idle.transition_worker_to_parked(2, false);
        assert_eq!(idle.sleeper_other_than(0), Some(2));
        let alone = Idle::new(1);
        alone.transition_worker_to_parked(0, false);
        assert_eq!(alone.sleeper_other_than(0), None, "one worker: no other");
    }

    #[test]
    fn a_worker_woken_by_its_driver_leaves_the_sleepers() {
        let idle = Idle::new(2);
        assert!(!idle.transition_worker_to_parked(0, false));
        assert!(idle.is_parked(0));
        assert!(idle.unpark_worker_by_id(0));
        assert_eq!(idle.num_parked(), 0);
        assert_eq!(idle.num_searching(), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::thread;
    use crate::park::Parker;
    use loom::sync::atomic::{AtomicUsize, Ordering::*};
    use std::sync::Arc;

    /// Worker 0 searched, found nothing and parks as the last searcher,
    /// while another thread queues work and notifies. Whatever the
    /// interleaving, worker 0 either sees the work or is woken: it never
    /// sleeps with work queued and nobody else searching (the model would
    /// deadlock).
    #[test]
    fn queued_work_is_never_missed_by_the_last_searcher() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(2));
            let queue = Arc::new(AtomicUsize::new(0));
            let parker = Parker::new(None);
            let unparker = parker.unparker();
            assert!(idle.transition_worker_to_searching());

            let (idle2, queue2, unparker2) = (idle.clone(), queue.clone(), unparker.clone());
            let pusher = thread::spawn(move || {
                queue2.fetch_add(1, Release); // a push to some queue
                if let Some(index) = idle2.worker_to_notify() {
                    assert_eq!(index, 0);
                    unparker2.unpark();
                }
            });

            // Worker 0: its search found nothing (it may or may not have
            // seen the push; the interesting case is that it did not).
            if queue.load(Acquire) == 0 {
                if idle.transition_worker_to_parked(0, true) && queue.load(Acquire) > 0 {
                    // The last searcher's final look found the work.
                    if let Some(index) = idle.worker_to_notify() {
                        assert_eq!(index, 0);
                        unparker.unpark();
                    }
                }
                parker.park(None);
            }
            pusher.join().unwrap();
        });
    }
}
