//! The record a thread that polls tasks keeps about its polls: which task it
//! is polling now, since when (roughly), how long its polls take (sampled),
//! and, when the runtime writes a timeline, every poll and park.
//!
//! One `PollRecord` per polling thread: each worker of a multi-thread
//! runtime, the thread that drives a current-thread runtime, each
//! blocking-pool thread. That thread is its only writer (plain loads and
//! stores of atomics, never a read-modify-write); anyone may read it at any
//! time ([`Handle::dump`](crate::Handle::dump), the metrics). Two fields are
//! the exception, [`seen_poll`](PollRecord::mark_seen) and its time, which
//! observers write.
//!
//! # The clock, read rarely
//!
//! Reading the clock costs 20 to 80 ns (more than a whole poll of a small
//! task), so a worker does not read it around every poll. It reads it:
//!
//! - when it parks and when it unparks;
//! - around every [`SAMPLE_EVERY`]th run of a task (the *sampled* runs,
//!   chosen by the thread's run count, so the poll-time histogram they feed
//!   is an unbiased sample);
//! - after a poll that an observer saw in progress (the runtime's watcher,
//!   which looks at busy workers every watch interval while another worker
//!   waits in the driver, or a dump): such a poll may be long, so its time
//!   is taken, as at least the time since it was first seen, into the
//!   task's longest poll;
//! - around every poll while the runtime records a timeline;
//! - before every job, on a blocking-pool thread.
//!
//! So a poll's start is known only as "after the thread's last reading":
//! [`clock_us`](PollRecord::snapshot) is at most `SAMPLE_EVERY - 1` runs
//! (or one park) older than the current poll's start.
//!
//! The common path of a poll is two stores and three loads on the thread's
//! own record (the current task, set and cleared; the clock stamp; the
//! seen check); everything that reads the clock is out of line
//! (`#[cold]`).

use super::clock;
use crate::metrics::Counter;
use crate::task::{Header, Id};
use crate::timeline;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

/// One run in this many is timed for the poll-time histogram.
pub(crate) const SAMPLE_EVERY: u64 = 1024;

/// Buckets of the poll-time histogram: under 1 µs, then one per power of
/// two of microseconds, the last open-ended (see
/// [`PollTimeHistogram`](crate::PollTimeHistogram)).
pub(crate) const POLL_TIME_BUCKETS: usize = 24;

/// What one polling thread publishes (see the module docs). `repr(C)`:
/// what every poll touches comes first, in one cache line.
#[repr(C)]
pub(crate) struct PollRecord {
    /// Runs begun (the `polls` metric: `count_run`); also the number of
    /// the poll under way.
    polls: Counter,
    /// The id of the task being polled, 0 between polls.
    current: AtomicU64,
    /// The number of a poll an observer saw in progress (and, below, when
    /// it first saw it).
    seen_poll: AtomicU64,
    /// True when the runtime records a timeline: every poll is timed.
    timed: bool,
    /// The thread's last clock reading, in ms and in µs since the epoch.
    clock_ms: AtomicU32,
    clock_us: AtomicU64,
    seen_at_us: AtomicU64,
    /// Since when the thread is parked (ns since the epoch), 0 while not.
    parked_since_ns: AtomicU64,
    /// This thread's track of the runtime's timeline, when it writes one.
    timeline: Option<Arc<timeline::Track>>,
    /// Sampled poll times (on the heap: only sampled polls touch it).
    histogram: Box<[Counter; POLL_TIME_BUCKETS]>,
}

/// What [`PollRecord::begin`] hands to [`PollRecord::end`].
#[derive(Clone, Copy)]
pub(crate) struct PollStamp {
    /// When the poll began (ns since the epoch), if it is timed for the
    /// timeline; else 0.
    started_ns: u64,
    /// The thread's clock reading before the poll, in ms since the epoch:
    /// the task's "last polled" stamp.
    pub(crate) clock_ms: u32,
}

impl PollRecord {
    /// The record of a polling thread; `timeline` is its track if the
    /// runtime writes one.
    pub(crate) fn new(timeline: Option<Arc<timeline::Track>>) -> PollRecord {
        let now = clock::now_us();
        PollRecord {
            polls: Counter::default(),
            current: AtomicU64::new(0),
            // No poll has this number (`count_run` starts at 1 and would
            // take 2^64 runs to get here).
            seen_poll: AtomicU64::new(u64::MAX),
            timed: timeline.is_some(),
            clock_ms: AtomicU32::new((now / 1000) as u32),
            clock_us: AtomicU64::new(now),
            seen_at_us: AtomicU64::new(0),
            parked_since_ns: AtomicU64::new(0),
            timeline,
            histogram: Default::default(),
        }
    }

    /// The thread is about to run a task (poll it, or drop it if it was
    /// cancelled): counts it, as the `polls` metric, and returns the
    /// count. Call it before `Notified::run`.
    #[inline(always)]
    pub(crate) fn count_run(&self) -> u64 {
        let n = self.polls.get().wrapping_add(1);
        self.polls.set(n);
        n
    }

    /// True if the run numbered `n` (from [`count_run`](Self::count_run))
    /// is one of the sampled ones: run it with [`run_sampled`](Self::run_sampled).
    #[inline(always)]
    pub(crate) fn is_sampled(n: u64) -> bool {
        n % SAMPLE_EVERY == 0
    }

    /// Runs `run` (a task's run), timing it into the histogram.
    #[cold]
    #[inline(never)]
    pub(crate) fn run_sampled(&self, run: impl FnOnce()) {
        let start = clock::now_ns();
        self.set_clock(start / 1000);
        run();
        let end = clock::now_ns();
        self.set_clock(end / 1000);
        self.histogram[bucket(u128::from(end.saturating_sub(start)))].incr();
    }

    /// Reads the clock into the thread's record (a blocking-pool thread
    /// does before each job, so its "running for" is exact).
    pub(crate) fn read_clock(&self) {
        self.set_clock(clock::now_us());
    }

    /// A poll of task `task` begins on this thread (its owner), inside the
    /// run [`count_run`](Self::count_run) counted.
    #[inline(always)]
    pub(crate) fn begin(&self, task: Id) -> PollStamp {
        self.current.store(task.as_u64(), Relaxed);
        PollStamp {
            started_ns: if self.timed { clock::now_ns().max(1) } else { 0 },
            clock_ms: self.clock_ms.load(Relaxed),
        }
    }

    fn set_clock(&self, now_us: u64) {
        self.clock_us.store(now_us, Relaxed);
        self.clock_ms.store((now_us / 1000) as u32, Relaxed);
    }

    /// The poll `stamp` began has returned; `task` is the polled task's
    /// header. If an observer saw the poll in progress, or the timeline
    /// times every poll, its time goes into the task's longest poll (and,
    /// on the timeline, the poll's slice).
    #[inline(always)]
    pub(crate) fn end(&self, stamp: PollStamp, task: &Header) {
        self.current.store(0, Relaxed);
        if stamp.started_ns != 0 || self.seen_poll.load(Acquire) == self.polls.get() {
            self.measured(stamp, task);
        }
    }

    #[cold]
    #[inline(never)]
    fn measured(&self, stamp: PollStamp, task: &Header) {
        let now_ns = clock::now_ns();
        let now_us = now_ns / 1000;
        self.set_clock(now_us);
        let record = task.record();
        let seen = self.seen_poll.load(Acquire) == self.polls.get();
        let mut us = 0;
        if seen {
            // Seen in progress: it ran at least since then.
            us = now_us.saturating_sub(self.seen_at_us.load(Relaxed));
        }
        if stamp.started_ns != 0 {
            us = us.max(now_ns.saturating_sub(stamp.started_ns) / 1000);
            if let Some(track) = &self.timeline {
                track.poll(task.id(), record.polls(), record.location(), stamp.started_ns, now_ns);
            }
        }
        record.poll_measured(us);
    }

    /// The thread is about to block.
    pub(crate) fn park(&self) {
        let now = clock::now_ns();
        self.set_clock(now / 1000);
        self.parked_since_ns.store(now.max(1), Relaxed);
    }

    /// The thread woke up (after [`park`](Self::park)); `driver`: it
    /// blocked in the driver (on the timeline: a reactor turn).
    pub(crate) fn unpark(&self, driver: bool) {
        let now = clock::now_ns();
        let since = self.parked_since_ns.swap(0, Relaxed);
        self.set_clock(now / 1000);
        if let Some(track) = &self.timeline {
            track.park(since, now, driver);
        }
    }

    /// Marks the poll in progress, if any, as seen by an observer whose
    /// clock reads `now_us`; the first observer of a poll sets its time.
    /// Returns the task in that poll and the poll's number.
    pub(crate) fn mark_seen(&self, now_us: u64) -> Option<(u64, u64)> {
        let number = self.polls.get();
        let task = self.current.load(Relaxed);
        if task == 0 {
            return None;
        }
        if self.seen_poll.load(Relaxed) != number {
            self.seen_at_us.store(now_us, Relaxed);
            self.seen_poll.store(number, Release);
        }
        Some((task, number))
    }

    /// Polls begun on this thread.
    pub(crate) fn polls(&self) -> u64 {
        self.polls.get()
    }

    /// What the thread is doing, for a dump taken at `now_us`; marks the
    /// poll in progress as seen.
    pub(crate) fn snapshot(&self, now_us: u64) -> PollerSnapshot {
        let number = self.polls.get();
        let task = self.current.load(Relaxed);
        let clock = self.clock_us.load(Relaxed);
        let parked_ns = self.parked_since_ns.load(Relaxed);
        let polling = (task != 0).then(|| {
            // Seen before this look: the poll has run at least since then.
            let seen_before = (self.seen_poll.load(Acquire) == number).then(|| self.seen_at_us.load(Relaxed));
            self.mark_seen(now_us);
            Polling {
                task,
                at_most_us: now_us.saturating_sub(clock),
                at_least_us: seen_before.map(|at| now_us.saturating_sub(at)),
            }
        });
        PollerSnapshot {
            polls: number,
            polling,
            parked_for_us: (parked_ns != 0).then(|| now_us.saturating_sub(parked_ns / 1000)),
        }
    }

    /// The sampled poll times, per bucket.
    pub(crate) fn histogram(&self) -> Vec<u64> {
        self.histogram.iter().map(Counter::get).collect()
    }

    /// This thread's timeline track, if the runtime writes a timeline.
    pub(crate) fn timeline(&self) -> Option<&Arc<timeline::Track>> {
        self.timeline.as_ref()
    }
}

/// A polling thread at one instant (see [`PollRecord::snapshot`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollerSnapshot {
    pub(crate) polls: u64,
    pub(crate) polling: Option<Polling>,
    pub(crate) parked_for_us: Option<u64>,
}

/// The poll a thread is inside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Polling {
    /// The task's id.
    pub(crate) task: u64,
    /// Time since the thread's last clock reading before the poll.
    pub(crate) at_most_us: u64,
    /// Time since an observer first saw this poll, if one did before.
    pub(crate) at_least_us: Option<u64>,
}

/// The histogram bucket of a poll that took `nanos`.
pub(crate) fn bucket(nanos: u128) -> usize {
    let us = (nanos / 1000) as u64;
    if us == 0 {
        return 0;
    }
    ((u64::BITS - us.leading_zeros()) as usize).min(POLL_TIME_BUCKETS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_of_microseconds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(1_000), 1);
        assert_eq!(bucket(1_999), 1);
        assert_eq!(bucket(2_000), 2);
        assert_eq!(bucket(3_999), 2);
        assert_eq!(bucket(4_000), 3);
        assert_eq!(bucket(1_000_000), 10);
        assert_eq!(bucket(1_000_000_000), 20);
        assert_eq!(bucket(u128::MAX), POLL_TIME_BUCKETS - 1);
    }
}
