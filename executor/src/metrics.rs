//! What the runtime is doing, as numbers anyone may read at any time.
//!
//! Workers count their own events in per-worker cells (one writer each, so
//! counting is a plain load and store, never a contended atomic operation);
//! [`RuntimeMetrics`] is a snapshot read from those cells and the queues.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// Tasks spawned and not yet finished. A task stops counting before its
    /// `JoinHandle` can see the output, so after joining every task this is 0.
    pub alive_tasks: usize,
    /// Tasks waiting in the injection queue.
    pub injection_queue_depth: usize,
    /// Tasks scheduled from outside the runtime's threads.
    pub remote_schedules: u64,
    /// Workers searching for work right now (multi-thread only).
    pub searching_workers: usize,
    /// Workers parked right now (multi-thread only).
    pub parked_workers: usize,
    /// Threads in the blocking pool, busy or idle.
    pub blocking_threads: usize,
    /// Idle threads in the blocking pool.
    pub idle_blocking_threads: usize,
    /// Jobs waiting for a blocking-pool thread.
    pub blocking_queue_depth: usize,
    /// Loop callbacks run (`call_soon` and friends, promise done callbacks).
    pub callbacks_run: u64,
    /// Of those, the callbacks that panicked (each also went through the
    /// runtime's unhandled-panic policy).
    pub callback_panics: u64,
    /// Callbacks queued and not yet run.
    pub callback_queue_depth: usize,
    /// One entry per worker (one for a current-thread runtime).
    pub workers: Vec<WorkerMetrics>,
}

/// Counters of one worker.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Task polls.
    pub polls: u64,
    /// Of those, polls of a task taken from the LIFO slot.
    pub lifo_polls: u64,
    /// Tasks this worker stole from other workers' queues.
    pub steals: u64,
    /// Successful steal operations (each moves a batch).
    pub steal_operations: u64,
    /// Times the worker parked.
    pub parks: u64,
    /// Times the local queue overflowed and moved half to the injection
    /// queue.
    pub overflows: u64,
    /// Tasks scheduled by this worker onto its own queue or LIFO slot.
    pub local_schedules: u64,
    /// Times the worker, leaving its parker to run tasks, woke another to
    /// watch the driver (rule 4 of the multi-thread scheduler's standby).
    pub driver_hand_offs: u64,
    /// LIFO-slot tasks this worker took from a worker stuck inside one poll
    /// (`scheduler/multi_thread/lifo.rs`).
    pub lifo_rescues: u64,
    /// Tasks in its local queue right now.
    pub local_queue_depth: usize,
}

/// The counters a worker writes and anyone reads.
#[derive(Default)]
pub(crate) struct WorkerCounters {
    pub(crate) polls: Counter,
    pub(crate) lifo_polls: Counter,
    pub(crate) steals: Counter,
    pub(crate) steal_operations: Counter,
    pub(crate) parks: Counter,
    pub(crate) overflows: Counter,
    pub(crate) local_schedules: Counter,
    pub(crate) driver_hand_offs: Counter,
    pub(crate) lifo_rescues: Counter,
}

impl WorkerCounters {
    pub(crate) fn snapshot(&self, local_queue_depth: usize) -> WorkerMetrics {
        WorkerMetrics {
            polls: self.polls.get(),
            lifo_polls: self.lifo_polls.get(),
            steals: self.steals.get(),
            steal_operations: self.steal_operations.get(),
            parks: self.parks.get(),
            overflows: self.overflows.get(),
            local_schedules: self.local_schedules.get(),
            driver_hand_offs: self.driver_hand_offs.get(),
            lifo_rescues: self.lifo_rescues.get(),
            local_queue_depth,
        }
    }
}

/// A counter with one writer thread.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning thread may call this: it is a load and a
    /// store, not an atomic add, so concurrent writers would lose counts.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Adds one (same rule as [`add`](Self::add)).
    #[inline]
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    /// Adds `n` from any thread.
    #[inline]
    pub(crate) fn add_shared(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}
