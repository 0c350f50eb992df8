//! What the runtime keeps, always, so that anyone can see what it is doing:
//! the clock every observation uses and each polling thread's record.
//!
//! Three views are built on these records: [`Handle::dump`](crate::Handle::dump)
//! (`dump/`), the poll-time histograms of
//! [`RuntimeMetrics`](crate::RuntimeMetrics) (`metrics.rs`), and, when
//! switched on, the [`timeline`](crate::timeline).
//!
//! # What it costs
//!
//! Per poll, with nobody looking: the worker's record counts the poll and
//! publishes the task's id (two stores to the worker's own cache line),
//! the task's record counts the poll, stamps it with the worker's last
//! clock reading and clears the task's wait (three stores to the task's
//! header, already in cache), and the end of the poll clears the id and
//! checks whether a watcher saw the poll. No clock is read, except around
//! one poll in 1,024 (the sample). Per wait a resource reports: a
//! thread-local read and two stores. `weft-benches sched` measures it.

pub(crate) mod clock;
pub(crate) mod poll_record;

pub(crate) use self::poll_record::PollRecord;
