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
//! - around every [`SAMPLE_EVERY`]th poll (the *sampled* polls: they alone
//!   feed the poll-time histogram, so the histogram is an unbiased sample);
//! - after a poll that an observer saw in progress (the runtime's watcher,
//!   which looks at busy workers every watch interval while another worker
//!   waits in the driver, or a dump): such a poll may be long, so its time is
//!   taken, as at least the time since it was first seen;
//! - around every poll while the runtime writes a timeline;
//! - around every job, on a blocking-pool thread.
//!
//! The common path of a poll is two stores and two loads on the thread's
//! own record; everything that reads the clock is out of line (`#[cold]`).
//!
//! So a poll's start is known only as "after the thread's last reading":
//! [`clock_us`](PollRecord::clock_us) is at most `SAMPLE_EVERY - 1` polls
//! (or one park) older than the current poll's start.

use super::clock;
use crate::metrics::Counter;
use crate::task::{Header, Id};
use crate::timeline;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

/// One poll in this many is timed for the poll-time histogram.
pub(crate) const SAMPLE_EVERY: u64 = 1024;

/// Buckets of the poll-time histogram: under 1 µs, then one per power of
/// two of microseconds, the last open-ended (see
/// [`PollTimeHistogram`](crate::PollTimeHistogram)).
pub(crate) const POLL_TIME_BUCKETS: usize = 24;

/// What one polling thread publishes (see the module docs).
pub(crate) struct PollRecord {
    /// Runs begun (the `polls` metric: `count_run`); also each poll's
    /// number.
    polls: Counter,
    /// The id of the task being polled, 0 between polls.
    current: AtomicU64,
    /// The number of a poll an observer saw in progress, and when it first
    /// saw it.
    seen_poll: AtomicU64,
    seen_at_us: AtomicU64,
    /// Polls whose number has none of these bits set are timed:
    /// `SAMPLE_EVERY - 1`, or 0 to time every poll.
    sample_mask: u64,
    /// The thread's last clock reading, in µs and in ms since the epoch.
    clock_us: AtomicU64,
    clock_ms: AtomicU32,
    /// Since when the thread is parked (µs since the epoch), 0 while not.
    parked_since: AtomicU64,
    /// Sampled poll times.
    histogram: [Counter; POLL_TIME_BUCKETS],
    /// This thread's track of the runtime's timeline, when it writes one.
    timeline: Option<Arc<timeline::Track>>,
}

/// What [`PollRecord::begin`] hands to [`PollRecord::end`].
#[derive(Clone, Copy)]
pub(crate) struct PollStamp {
    /// The poll's number on this thread.
    number: u64,
    /// When the poll began (ns since the epoch), if it is timed; else 0.
    started_ns: u64,
    /// The thread's clock reading before the poll, in ms since the epoch:
    /// the task's "last polled" stamp.
    pub(crate) clock_ms: u32,
}

impl PollRecord {
    /// The record of a worker (or a current-thread runtime's driving
    /// thread); `timeline` is its track if the runtime writes one.
    pub(crate) fn new(timeline: Option<Arc<timeline::Track>>) -> PollRecord {
        let now = clock::now_us();
        PollRecord {
            polls: Counter::default(),
            current: AtomicU64::new(0),
            seen_poll: AtomicU64::new(0),
            seen_at_us: AtomicU64::new(0),
            sample_mask: if timeline.is_some() { 0 } else { SAMPLE_EVERY - 1 },
            clock_us: AtomicU64::new(now),
            clock_ms: AtomicU32::new((now / 1000) as u32),
            parked_since: AtomicU64::new(0),
            histogram: Default::default(),
            timeline,
        }
    }

    /// The record of a blocking-pool thread: every job is timed.
    pub(crate) fn for_blocking(timeline: Option<Arc<timeline::Track>>) -> PollRecord {
        PollRecord {
            sample_mask: 0,
            ..PollRecord::new(timeline)
        }
    }

    /// The thread is about to run a task (poll it, or drop it if it was
    /// cancelled): counts it, as the `polls` metric. Call it before
    /// `Notified::run`.
    #[inline]
    pub(crate) fn count_run(&self) {
        self.polls.incr();
    }

    /// A poll of task `task` begins on this thread (its owner), inside the
    /// run [`count_run`](Self::count_run) counted.
    #[inline(always)]
    pub(crate) fn begin(&self, task: Id) -> PollStamp {
        let number = self.polls.get();
        self.current.store(task.as_u64(), Relaxed);
        let started_ns = if number & self.sample_mask == 0 {
            self.read_clock()
        } else {
            0
        };
        PollStamp {
            number,
            started_ns,
            clock_ms: self.clock_ms.load(Relaxed),
        }
    }

    /// Reads the clock (ns since the epoch, never 0) and keeps the reading.
    #[cold]
    #[inline(never)]
    fn read_clock(&self) -> u64 {
        let now = clock::now_ns().max(1);
        self.set_clock(now / 1000);
        now
    }

    fn set_clock(&self, now_us: u64) {
        self.clock_us.store(now_us, Relaxed);
        self.clock_ms.store((now_us / 1000) as u32, Relaxed);
    }

    /// The poll `stamp` began has returned; `task` is the polled task's
    /// header. If the poll was timed, or an observer saw it in progress,
    /// its time goes into the task's longest poll (and, for a sampled
    /// poll, the histogram; on the timeline, the poll's slice).
    #[inline(always)]
    pub(crate) fn end(&self, stamp: PollStamp, task: &Header) {
        self.current.store(0, Relaxed);
        if stamp.started_ns != 0 || self.seen_poll.load(Acquire) == stamp.number {
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
        if stamp.started_ns != 0 {
            let nanos = now_ns.saturating_sub(stamp.started_ns);
            record.poll_measured(nanos / 1000);
            if stamp.number % SAMPLE_EVERY == 0 {
                self.histogram[bucket(u128::from(nanos))].incr();
            }
            if let Some(track) = &self.timeline {
                track.poll(task.id(), record.polls(), record.location(), stamp.started_ns, now_ns);
            }
        } else {
            // Seen in progress: it ran at least since then.
            record.poll_measured(now_us.saturating_sub(self.seen_at_us.load(Relaxed)));
        }
    }

    /// The thread is about to block.
    pub(crate) fn park(&self) {
        let now = clock::now_us();
        self.set_clock(now);
        self.parked_since.store(now.max(1), Relaxed);
    }

    /// The thread woke up (after [`park`](Self::park)); `driver`: it
    /// blocked in the driver (on the timeline: a reactor turn).
    pub(crate) fn unpark(&self, driver: bool) {
        let now = clock::now_us();
        let since = self.parked_since.swap(0, Relaxed);
        self.set_clock(now);
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
        let parked = self.parked_since.load(Relaxed);
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
            parked_for_us: (parked != 0).then(|| now_us.saturating_sub(parked)),
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
