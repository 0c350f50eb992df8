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
//!   is an unbiased sample; their time also goes into the task's longest
//!   poll);
//! - after a poll that an observer saw in progress (the runtime's watcher,
//!   which looks at busy workers every watch interval while another worker
//!   waits in the driver, or a dump): such a poll may be long, so its time
//!   is taken, as at least the time since it was first seen, into the
//!   task's longest poll;
//! - around every run while the runtime records a timeline;
//! - before every job, on a blocking-pool thread.
//!
//! So a poll's start is known only as "after the thread's last reading":
//! [`clock_us`](PollRecord::snapshot) is at most `SAMPLE_EVERY - 1` runs
//! (or one park) older than the current poll's start.
//!
//! The common path of a run is, on the thread's own record, the run count,
//! the current task set and cleared, the clock stamp read and the seen
//! check; everything that reads the clock is out of line (`#[cold]`).

use super::clock;
use crate::loom::{AtomicU32, AtomicU64, Ordering::*};
use crate::metrics::Counter;
use crate::task::{Header, Id, Notified, Schedule};
use crate::timeline;
use std::sync::Arc;

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
    /// Runs begun (the `polls` metric); also the number of the run under
    /// way.
    polls: Counter,
    /// The id of the task being polled, 0 between polls.
    current: AtomicU64,
    /// The number of a poll an observer saw in progress (and, below, when
    /// it first saw it).
    seen_poll: AtomicU64,
    /// Runs whose number has none of these bits set are instrumented:
    /// `SAMPLE_EVERY - 1`, or 0 (every run) while the runtime records a
    /// timeline.
    sample_mask: u64,
    /// The thread's last clock reading, in ms and in µs since the epoch.
    clock_ms: AtomicU32,
    clock_us: AtomicU64,
    /// The run count at that reading: the reading bounds the current
    /// poll's start tightly only if no other run began in between.
    clock_run: AtomicU64,
    seen_at_us: AtomicU64,
    /// Since when the thread is parked (ns since the epoch), 0 while not.
    parked_since_ns: AtomicU64,
    /// When the instrumented run under way began (ns since the epoch), until
    /// its poll's end records it; 0 otherwise. The owner's alone.
    run_start_ns: AtomicU64,
    /// This thread's track of the runtime's timeline, when it writes one.
    timeline: Option<Arc<timeline::Track>>,
    /// Sampled poll times (on the heap: only sampled runs touch it).
    histogram: Box<[Counter; POLL_TIME_BUCKETS]>,
    /// The longest poll measured (µs): seen in progress, or sampled.
    longest_poll_us: AtomicU64,
}

impl PollRecord {
    /// The record of a polling thread; `timeline` is its track if the
    /// runtime writes one.
    pub(crate) fn new(timeline: Option<Arc<timeline::Track>>) -> PollRecord {
        let now = clock::now_us();
        PollRecord {
            polls: Counter::default(),
            current: AtomicU64::new(0),
            // No poll has this number (runs count from 1, and would take
            // 2^64 runs to get here).
            seen_poll: AtomicU64::new(u64::MAX),
            sample_mask: if timeline.is_some() { 0 } else { SAMPLE_EVERY - 1 },
            clock_ms: AtomicU32::new((now / 1000) as u32),
            clock_us: AtomicU64::new(now),
            clock_run: AtomicU64::new(0),
            seen_at_us: AtomicU64::new(0),
            parked_since_ns: AtomicU64::new(0),
            run_start_ns: AtomicU64::new(0),
            timeline,
            histogram: Default::default(),
            longest_poll_us: AtomicU64::new(0),
        }
    }

    /// Runs `task` (polls it, or drops it if it was cancelled) on this
    /// thread, its owner: counts the run (the `polls` metric), and times it
    /// if it is one of the sampled runs, or every run while the runtime
    /// records a timeline.
    #[inline(always)]
    pub(crate) fn run<S: Schedule>(&self, task: Notified<S>) {
        let n = self.start_run();
        if n & self.sample_mask == 0 {
            self.run_instrumented(n, task);
        } else {
            task.run(self);
        }
    }

    /// A poll of a current-thread runtime's `block_on` future (`poll`), on
    /// the record as a run of [`Id::BLOCK_ON`], so that a dump sees a
    /// blocking call in it as it sees one in a task. It is a run like a
    /// task's (the `polls` metric counts it): timed into the histogram if
    /// it is one of the sampled runs (never onto the timeline), and a poll
    /// an observer saw in progress counts in the thread's longest poll.
    pub(crate) fn run_block_on<R>(&self, poll: impl FnOnce() -> R) -> R {
        let n = self.start_run();
        let start_ns = if n % SAMPLE_EVERY == 0 {
            self.block_on_start()
        } else {
            0
        };
        self.begin(Id::BLOCK_ON);
        // Cleared even if the poll panics, so no later dump sees it running.
        struct End<'a>(&'a PollRecord, u64, u64);
        impl Drop for End<'_> {
            fn drop(&mut self) {
                let (record, n, start_ns) = (self.0, self.1, self.2);
                record.end_current();
                if start_ns != 0 {
                    let end_ns = clock::now_ns();
                    record.set_clock(end_ns / 1000);
                    let nanos = end_ns.saturating_sub(start_ns);
                    record.histogram[bucket(u128::from(nanos))].incr();
                    record.poll_measured(nanos / 1000);
                }
                if record.seen_poll.load(Acquire) == n {
                    let now_us = clock::now_us();
                    record.set_clock(now_us);
                    record.poll_measured(now_us.saturating_sub(record.seen_at_us.load(Relaxed)));
                }
            }
        }
        let _end = End(self, n, start_ns);
        poll()
    }

    /// The start of a sampled `block_on` run (ns, not 0), read into the
    /// record as a sampled task run's is.
    #[cold]
    #[inline(never)]
    fn block_on_start(&self) -> u64 {
        let start = clock::now_ns().max(1);
        self.set_clock(start / 1000);
        start
    }

    /// Numbers the run about to begin on this thread. Release, with
    /// [`begin`](Self::begin)'s store of the task: an observer pairs a
    /// run's number with that run's task (`in_progress`).
    #[inline(always)]
    fn start_run(&self) -> u64 {
        let n = self.polls.get().wrapping_add(1);
        self.polls.set_release(n);
        n
    }

    /// The poll in progress has returned: no task is being polled.
    #[inline(always)]
    fn end_current(&self) {
        self.current.store(0, Relaxed);
    }

    /// A run with the clock read around it: into the histogram if it is a
    /// sampled one, onto the timeline if the runtime records one, and into
    /// the task's longest poll.
    ///
    /// The poll is recorded as it returns, in [`end`](Self::end), before
    /// the task completes: a completion wakes whoever awaits the task, who
    /// may read the timeline at once (`Runtime::write_trace`) and must find
    /// the poll there. To get there, the run marks its own poll as seen
    /// since its start, which sends `end` down the path a watched poll
    /// takes, at no cost to runs that are not instrumented. A run that
    /// polls nothing (a cancellation drops the future instead) is recorded
    /// here, after it.
    #[cold]
    #[inline(never)]
    fn run_instrumented<S: Schedule>(&self, n: u64, task: Notified<S>) {
        // Read before the run, which may free the task.
        let (id, poll, location) = task.trace_info();
        let start = clock::now_ns().max(1);
        self.set_clock(start / 1000);
        self.run_start_ns.store(start, Relaxed);
        self.seen_at_us.store(start / 1000, Relaxed);
        self.seen_poll.store(n, Release);
        task.run(self);
        let start = self.take_run_start();
        if start != 0 {
            let end = clock::now_ns();
            self.set_clock(end / 1000);
            self.record_run(n, id, poll, location, start, end);
        }
    }

    /// The start of the instrumented run under way, if its poll is not yet
    /// recorded; clears it (the owner's field: a load and a store).
    fn take_run_start(&self) -> u64 {
        let start = self.run_start_ns.load(Relaxed);
        self.run_start_ns.store(0, Relaxed);
        start
    }

    /// Puts run `n`, of poll `poll` of task `id`, into the histogram if it
    /// is a sampled one and onto the timeline if one records.
    fn record_run(
        &self,
        n: u64,
        id: Id,
        poll: u32,
        location: &'static std::panic::Location<'static>,
        start: u64,
        end: u64,
    ) {
        if n % SAMPLE_EVERY == 0 {
            self.histogram[bucket(u128::from(end.saturating_sub(start)))].incr();
        }
        self.poll_measured(end.saturating_sub(start) / 1000);
        if let Some(track) = &self.timeline {
            track.poll(id, poll, location, start, end);
        }
    }

    /// Reads the clock into the thread's record (a blocking-pool thread
    /// does before each job, so its "running for" is exact).
    pub(crate) fn read_clock(&self) {
        self.set_clock(clock::now_us());
    }

    /// A poll of task `task` begins on this thread, inside a
    /// [`run`](Self::run). Returns the thread's last clock reading in ms:
    /// the task's "last polled" stamp.
    #[inline(always)]
    pub(crate) fn begin(&self, task: Id) -> u32 {
        self.current.store(task.as_u64(), Release);
        self.clock_ms.load(Relaxed)
    }

    fn set_clock(&self, now_us: u64) {
        self.clock_us.store(now_us, Relaxed);
        self.clock_ms.store((now_us / 1000) as u32, Relaxed);
        // After the reading (`Release`): an observer that loads this run
        // count with `Acquire` then loads a reading at least this new
        // (`start_bound`).
        self.clock_run.store(self.polls.get(), Release);
    }

    /// The thread's last clock reading, and whether it bounds the start of
    /// run `number` tightly: taken at that run's start (an instrumented
    /// run) or after the run before it, so the poll began right after it
    /// (to within the scheduling in between). The count is loaded first
    /// (`Acquire`, pairing with `set_clock`), so the reading is at least as
    /// new as the count's: a reading newer than the pair only shortens the
    /// bound, never lengthens it.
    fn start_bound(&self, number: u64) -> (u64, bool) {
        let run = self.clock_run.load(Acquire);
        let clock = self.clock_us.load(Relaxed);
        (clock, number.wrapping_sub(run) <= 1)
    }

    /// The poll has returned; `task` is the polled task's header. If an
    /// observer saw the poll in progress, the time since then goes into the
    /// task's longest poll.
    #[inline(always)]
    pub(crate) fn end(&self, task: &Header) {
        self.end_current();
        if self.seen_poll.load(Acquire) == self.polls.get() {
            self.seen_ended(task);
        }
    }

    #[cold]
    #[inline(never)]
    fn seen_ended(&self, task: &Header) {
        let now_ns = clock::now_ns();
        let now_us = now_ns / 1000;
        self.set_clock(now_us);
        // Seen in progress: it ran at least since then (since its start,
        // for an instrumented run).
        let record = task.record();
        let measured = now_us.saturating_sub(self.seen_at_us.load(Relaxed));
        record.poll_measured(measured);
        self.poll_measured(measured);
        let start = self.take_run_start();
        if start != 0 {
            let n = self.polls.get();
            self.record_run(n, task.id(), record.polls(), record.location(), start, now_ns);
        }
    }

    /// The thread is about to block.
    pub(crate) fn park(&self) {
        let now = clock::now_ns();
        self.set_clock(now / 1000);
        self.parked_since_ns.store(now.max(1), Relaxed);
    }

    /// The thread is about to block again, right after an
    /// [`unpark`](Self::unpark) that read the clock at `unparked_ns` (its
    /// return value) and ran no task since: that reading stands for now, so
    /// a worker going round its park loop (a spinning source's turns) reads
    /// the clock once per round, not twice.
    pub(crate) fn park_again(&self, unparked_ns: u64) {
        self.parked_since_ns.store(unparked_ns.max(1), Relaxed);
    }

    /// The thread woke up (after [`park`](Self::park)); `driver`: it
    /// blocked in the driver (on the timeline: a reactor turn). Returns
    /// the clock reading it took, in nanoseconds since the epoch.
    pub(crate) fn unpark(&self, driver: bool) -> u64 {
        let now = clock::now_ns();
        let since = self.parked_since_ns.swap(0, Relaxed);
        self.set_clock(now / 1000);
        if let Some(track) = &self.timeline {
            track.park(since, now, driver);
        }
        now
    }

    /// Marks the poll in progress, if any, as seen by an observer now; the
    /// first observer of a poll sets its time. Returns the task in that
    /// poll and the poll's number.
    pub(crate) fn mark_seen(&self) -> Option<(u64, u64)> {
        let (number, task) = self.in_progress()?;
        let (clock, tight) = self.start_bound(number);
        self.mark(number, clock, tight);
        Some((task, number))
    }

    /// Marks run `number`, which the caller found in progress, as seen,
    /// unless it was seen before: in progress since the thread's reading
    /// `clock` if that reading came right before it (`tight`; a later
    /// observer must not count from a later time than an earlier one
    /// reported), else since now. The clock is read here, after the run
    /// was found: an observer's earlier "now" (a dump's, read as it
    /// begins; a watcher's, read before it looks at every worker, and
    /// either may be preempted meanwhile) may predate the run, and counting
    /// from it would call a short poll long.
    fn mark(&self, number: u64, clock: u64, tight: bool) {
        if self.seen_poll.load(Relaxed) != number {
            let now_us = clock::now_us();
            self.seen_at_us
                .store(if tight { clock.min(now_us) } else { now_us }, Relaxed);
            self.seen_poll.store(number, Release);
        }
    }

    /// The number of the run in progress and its task, read as a pair:
    /// `None` between runs, or if the thread moved on while we looked.
    /// Read separately, a run's number could be paired with the next run's
    /// task (the number loaded, then the thread finishing that run and
    /// starting the next): a dump would then give that task the time its
    /// predecessor was seen for, and mark the wrong run as seen. The run
    /// count is stored with `Release` before the task (also `Release`), so
    /// a task loaded with `Acquire` comes with a count at least its own;
    /// an unchanged count around the load makes the pair one run's.
    fn in_progress(&self) -> Option<(u64, u64)> {
        let number = self.polls.get_acquire();
        let task = self.current.load(Acquire);
        (task != 0 && self.polls.get() == number).then_some((number, task))
    }

    /// Polls begun on this thread.
    pub(crate) fn polls(&self) -> u64 {
        self.polls.get()
    }

    /// What the thread is doing, for a dump taken at `now_us`; marks the
    /// poll in progress as seen.
    pub(crate) fn snapshot(&self, now_us: u64) -> PollerSnapshot {
        let (number, task) = self.in_progress().unwrap_or((self.polls.get(), 0));
        let (clock, tight) = self.start_bound(number);
        let parked_ns = self.parked_since_ns.load(Relaxed);
        let polling = (task != 0).then(|| {
            // Seen before this look: the poll has run at least since then.
            let seen_before = (self.seen_poll.load(Acquire) == number).then(|| self.seen_at_us.load(Relaxed));
            self.mark(number, clock, tight);
            let at_most_us = now_us.saturating_sub(clock);
            Polling {
                task,
                at_most_us,
                at_least_us: seen_before.map(|at| now_us.saturating_sub(at)),
                at_most_is_tight: tight,
            }
        });
        PollerSnapshot {
            polls: number,
            polling,
            parked_for_us: (parked_ns != 0).then(|| now_us.saturating_sub(parked_ns / 1000)),
        }
    }

    /// A poll lasted `us` (at least): the worker's longest if longer (the
    /// owner's field: a load and a store).
    fn poll_measured(&self, us: u64) {
        if us > self.longest_poll_us.load(Relaxed) {
            self.longest_poll_us.store(us, Relaxed);
        }
    }

    /// The longest poll measured on this thread (µs), 0 if none.
    pub(crate) fn longest_poll_us(&self) -> u64 {
        self.longest_poll_us.load(Relaxed)
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
    /// The thread read its clock just before this poll (no other run in
    /// between), so `at_most_us` is the poll's time, not only a bound: on a
    /// busy thread the last reading may be up to `SAMPLE_EVERY` short
    /// polls old.
    pub(crate) at_most_is_tight: bool,
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

    /// An observer's "now" read before it found a poll in progress (a
    /// dump's is read as the dump begins, and the observer may be
    /// preempted before it looks) may predate that poll: the poll is
    /// counted from when it was seen, never from then, so a short poll
    /// is not reported as blocking by a later look, nor measured long.
    #[test]
    fn a_poll_is_never_counted_from_before_the_observer_found_it() {
        let early = clock::now_us();
        std::thread::sleep(std::time::Duration::from_millis(50));
        // Untight: the record's reading is two runs old by the second run.
        let record = PollRecord::new(None);
        record.run_block_on(|| ());
        record.run_block_on(|| {
            let _ = record.snapshot(early);
            let later = record.snapshot(clock::now_us()).polling.unwrap();
            assert!(later.at_least_us.unwrap() < 40_000, "{later:?}");
        });
        assert!(record.longest_poll_us() < 40_000, "{}", record.longest_poll_us());
        // Tight: the reading right before the poll is after the observer's
        // "now".
        let early = clock::now_us();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let record = PollRecord::new(None);
        record.run_block_on(|| {
            let _ = record.snapshot(early);
            let later = record.snapshot(clock::now_us()).polling.unwrap();
            assert!(later.at_least_us.unwrap() < 40_000, "{later:?}");
        });
        assert!(record.longest_poll_us() < 40_000, "{}", record.longest_poll_us());
    }
}

#[cfg(all(loom, test))]
mod loom_tests {
    use super::*;
    use crate::loom::thread;

    /// What a dump reads from a busy thread's record (`in_progress`,
    /// `start_bound`) while the thread runs two polls of two tasks, with a
    /// clock reading between them: a run's number always comes with that
    /// run's own task (never the next run's, never 0 once a number shows),
    /// and a reading called tight for run 2 is the one taken after run 1,
    /// never the older one (which would stretch a lower bound past the
    /// truth: a busy worker reported blocked).
    #[test]
    fn loom_a_run_pairs_with_its_own_task_and_a_tight_reading() {
        loom::model(|| {
            let record = std::sync::Arc::new(PollRecord::new(None));
            record.set_clock(100);
            let owner = {
                let record = record.clone();
                thread::spawn(move || {
                    for (task, reading_after) in [(11, 200), (22, 300)] {
                        record.start_run();
                        record.begin(Id::from_u64(task).unwrap());
                        record.end_current();
                        record.set_clock(reading_after);
                    }
                })
            };
            if let Some((number, task)) = record.in_progress() {
                assert_eq!(task, if number == 1 { 11 } else { 22 }, "run {number}");
                let (clock, tight) = record.start_bound(number);
                if number == 2 && tight {
                    assert!(clock >= 200, "run 2 bounded by the reading before run 1: {clock}");
                }
            }
            owner.join().unwrap();
        });
    }
}
