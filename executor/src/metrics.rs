//! What the runtime is doing, as numbers anyone may read at any time.
//!
//! Workers count their own events in per-worker cells (one writer each, so
//! counting is a plain load and store, never a contended atomic operation,
//! and no two workers write one cache line); [`RuntimeMetrics`] is a
//! snapshot read from those cells, the owned-task list and the queues.
//! Each field's doc names the code that counts it. Every field is stable:
//! reading metrics needs no feature or cfg.
//!
//! The reactor's numbers (turns, events, timers, sources) are the runtime
//! crate's `reactor_metrics()`: this crate knows no I/O.

use crate::loom::{AtomicU64, Ordering::*};
use crate::observe::PollRecord;
use crate::observe::poll_record::{POLL_TIME_BUCKETS, SAMPLE_EVERY};
use std::time::Duration;

/// A snapshot of a runtime's state and counters.
///
/// ```
/// let rt = weft_executor::Builder::new_multi_thread().worker_threads(2).build()?;
/// rt.block_on(async { weft_executor::spawn(async {}).await.unwrap() });
/// let m = rt.metrics();
/// assert_eq!(m.workers.len(), 2);
/// assert!(m.workers.iter().map(|w| w.polls).sum::<u64>() >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// Tasks spawned and not yet finished (the owned-task list's length). A
    /// task stops counting before its `JoinHandle` can see the output, so
    /// after joining every task this is 0. Blocking jobs are not tasks here:
    /// see the `blocking_*` fields.
    pub alive_tasks: usize,
    /// Tasks ever spawned on this runtime and accepted (counted when a
    /// spawn binds the task to the owned-task list, `OwnedTasks::bind` in
    /// `task/list.rs`, under the shard lock it takes anyway; a spawn on a
    /// runtime that has shut down does not count). Blocking jobs are not
    /// counted.
    pub spawned_tasks: u64,
    /// Tasks waiting in the injection queue (a gauge, read from it).
    pub injection_queue_depth: usize,
    /// Tasks scheduled from outside the runtime's threads (counted by the
    /// remote schedule path: `Handle::push_remote` in
    /// `scheduler/multi_thread/worker.rs`, `schedule_remote` in
    /// `scheduler/current_thread.rs`).
    pub remote_schedules: u64,
    /// Workers searching for work right now (multi-thread only; a gauge,
    /// read from `scheduler/multi_thread/idle.rs`).
    pub searching_workers: usize,
    /// Workers parked right now (multi-thread only; as above).
    pub parked_workers: usize,
    /// Threads in the blocking pool, busy or idle (a gauge, read under the
    /// pool's lock in `blocking/mod.rs`).
    pub blocking_threads: usize,
    /// Idle threads in the blocking pool (as above).
    pub idle_blocking_threads: usize,
    /// Jobs waiting for a blocking-pool thread (as above).
    pub blocking_queue_depth: usize,
    /// Callbacks run: loop callbacks (`call_soon` and friends, promise done
    /// callbacks; counted by the drain task, `callback.rs`), and tasks'
    /// done callbacks (`JoinHandle::add_done_callback`), which run inline
    /// as the task completes, or as one is added to a finished task
    /// (`task/done.rs`; counted by `Harness::complete` and
    /// `JoinHandle::add_done_callback` through `Schedule::callbacks_ran`).
    /// The done callbacks of a [`spawn_blocking`](crate::spawn_blocking)
    /// job's handle are not counted: the blocking pool's jobs belong to no
    /// scheduler.
    pub callbacks_run: u64,
    /// Of the loop callbacks, those that panicked (each also went through
    /// the runtime's unhandled-panic policy; counted by `run_guarded` in
    /// `callback.rs`). A task's done callback that panics is contained
    /// where it runs and not counted here.
    pub callback_panics: u64,
    /// Callbacks queued and not yet run (a gauge, read from the ready
    /// queue).
    pub callback_queue_depth: usize,
    /// One entry per worker (one for a current-thread runtime).
    pub workers: Vec<WorkerMetrics>,
}

/// Counters of one worker.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Task polls (counted as the worker hands a task to `Notified::run`:
    /// `PollRecord::run` in `observe/poll_record.rs`; a cancelled
    /// task's run, which drops its future, counts too), and on a
    /// current-thread runtime the polls of the `block_on` future
    /// (`PollRecord::run_block_on`).
    pub polls: u64,
    /// Of those, polls of a task taken from the LIFO slot (`Context::run_task`
    /// in `scheduler/multi_thread/worker.rs`, after the first task of a
    /// chain).
    pub lifo_polls: u64,
    /// Tasks this worker stole from other workers' queues
    /// (`Context::steal_work`, the batch's size).
    pub steals: u64,
    /// Successful steal operations, each moving a batch (`Context::steal_work`).
    pub steal_operations: u64,
    /// Times the worker parked (`Context::park`, each time round its park
    /// loop; the current-thread scheduler counts its blocking driver parks).
    pub parks: u64,
    /// Times the local queue overflowed and moved half to the injection
    /// queue (`Core::push_back`).
    pub overflows: u64,
    /// Tasks scheduled by this worker onto its own queue or LIFO slot
    /// (`Context::schedule_local`: wakes and spawns on its thread).
    pub local_schedules: u64,
    /// Times the worker, leaving its parker to run tasks, woke another to
    /// watch the driver (`Context::hand_off`, rule 4 of the multi-thread
    /// scheduler's standby).
    pub driver_hand_offs: u64,
    /// LIFO-slot tasks this worker took from a worker stuck inside one poll
    /// (`Context::rescue`, `scheduler/multi_thread/lifo.rs`).
    pub lifo_rescues: u64,
    /// Tasks in its local queue right now (a gauge, read from the queue).
    pub local_queue_depth: usize,
    /// How long this worker's polls take, sampled: one run in 1,024
    /// (every 1,024th by the worker's `polls` count; a `block_on` poll so
    /// numbered is timed as a whole) is timed from
    /// the moment the worker hands the task to `Notified::run` to the
    /// moment the future's poll returns: the poll, with the task's
    /// transition to running and whatever the poll woke (tens of
    /// nanoseconds), not its completion. A run that polls nothing (a
    /// cancellation drops the future) is timed to its end. Timed by
    /// `PollRecord::run` and `PollRecord::end` (`observe/poll_record.rs`),
    /// which the worker runs each task through.
    ///
    /// A rare long poll (a blocking call in async code) is unlikely to be
    /// one of the sampled runs: [`longest_poll_us`](Self::longest_poll_us)
    /// catches it.
    pub poll_time_histogram: PollTimeHistogram,
    /// The longest poll seen on this worker so far, in µs, 0 if none: a
    /// poll that an observer saw in progress (the watcher, which an idle
    /// worker runs over the busy ones every 2 ms, or a dump) counts from
    /// when it was first seen (from its start, when the worker read the
    /// clock right before it), a lower bound; a sampled run counts whole.
    /// A long poll nobody saw is missed: with every worker blocked at once
    /// (or the one thread of a current-thread runtime) no watcher runs, so
    /// only a dump taken meanwhile, or the timeline, shows it.
    /// Set by `PollRecord::seen_ended` and `PollRecord::record_run`
    /// (`observe/poll_record.rs`) on the worker's own thread.
    pub longest_poll_us: u64,
}

/// Sampled poll times of one worker, in log-scale buckets: under 1 µs, then
/// `[1, 2)` µs, `[2, 4)` µs, ... doubling, the last bucket open-ended (at
/// 2^22 µs, about 4.2 s).
///
/// ```
/// use std::time::Duration;
/// use weft_executor::PollTimeHistogram;
///
/// assert_eq!(PollTimeHistogram::bucket_range(0), (Duration::ZERO, Some(Duration::from_micros(1))));
/// assert_eq!(PollTimeHistogram::bucket_range(3), (Duration::from_micros(4), Some(Duration::from_micros(8))));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PollTimeHistogram {
    /// Sampled polls per bucket.
    pub counts: Vec<u64>,
}

impl PollTimeHistogram {
    /// The number of buckets.
    pub const BUCKETS: usize = POLL_TIME_BUCKETS;

    /// The bounds of bucket `i`: from (inclusive), to (exclusive; `None`
    /// for the last bucket).
    pub fn bucket_range(i: usize) -> (Duration, Option<Duration>) {
        let low = if i == 0 { 0 } else { 1u64 << (i - 1) };
        let high = (i + 1 < POLL_TIME_BUCKETS).then(|| Duration::from_micros(1u64 << i));
        (Duration::from_micros(low), high)
    }

    /// Sampled polls in all buckets.
    pub fn samples(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of the bucket that holds quantile `q` (0 to 1) of
    /// the samples (the lower bound for the open last bucket); `None`
    /// without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.samples();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = Self::bucket_range(i);
                return Some(high.unwrap_or(low));
            }
        }
        None
    }

    /// Adds another histogram's counts (to sum workers).
    pub fn merge(&mut self, other: &PollTimeHistogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }
}

const _: () = assert!(SAMPLE_EVERY.is_power_of_two());

/// The counters a worker writes and anyone reads, and its poll record.
/// `repr(C)`: the poll record's hot fields, then the counters a poll may
/// bump (`local_schedules`, `lifo_polls`) close behind.
#[repr(C)]
pub(crate) struct WorkerCounters {
    /// Polls, the current poll and sampled poll times (`observe`).
    pub(crate) poller: PollRecord,
    pub(crate) local_schedules: Counter,
    pub(crate) lifo_polls: Counter,
    pub(crate) steals: Counter,
    pub(crate) steal_operations: Counter,
    pub(crate) parks: Counter,
    pub(crate) overflows: Counter,
    pub(crate) driver_hand_offs: Counter,
    pub(crate) lifo_rescues: Counter,
}

impl WorkerCounters {
    pub(crate) fn new(poller: PollRecord) -> WorkerCounters {
        WorkerCounters {
            poller,
            lifo_polls: Counter::default(),
            steals: Counter::default(),
            steal_operations: Counter::default(),
            parks: Counter::default(),
            overflows: Counter::default(),
            local_schedules: Counter::default(),
            driver_hand_offs: Counter::default(),
            lifo_rescues: Counter::default(),
        }
    }

    pub(crate) fn snapshot(&self, local_queue_depth: usize) -> WorkerMetrics {
        WorkerMetrics {
            polls: self.poller.polls(),
            lifo_polls: self.lifo_polls.get(),
            steals: self.steals.get(),
            steal_operations: self.steal_operations.get(),
            parks: self.parks.get(),
            overflows: self.overflows.get(),
            local_schedules: self.local_schedules.get(),
            driver_hand_offs: self.driver_hand_offs.get(),
            lifo_rescues: self.lifo_rescues.get(),
            local_queue_depth,
            longest_poll_us: self.poller.longest_poll_us(),
            poll_time_histogram: PollTimeHistogram {
                counts: self.poller.histogram(),
            },
        }
    }
}

/// A counter with one writer thread.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning thread may call this: it is a load and a
    /// store, not an atomic add, so concurrent writers would lose counts.
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Sets the count (same rule as [`add`](Self::add)), ordered after the
    /// owner's earlier stores for a reader that loads with
    /// [`get_acquire`](Self::get_acquire) (on x86 and Arm64 a release store
    /// costs what a plain one does, or next to it).
    #[inline(always)]
    pub(crate) fn set_release(&self, n: u64) {
        self.0.store(n, Release);
    }

    /// The value, with what its writer stored before a
    /// [`set_release`](Self::set_release) of it.
    pub(crate) fn get_acquire(&self) -> u64 {
        self.0.load(Acquire)
    }

    /// Adds one (same rule as [`add`](Self::add)).
    #[inline(always)]
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    /// Adds `n` from any thread.
    #[inline]
    pub(crate) fn add_shared(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    #[inline(always)]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}
