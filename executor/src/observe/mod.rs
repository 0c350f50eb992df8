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
//! the task's record counts the poll and stamps it with the worker's last
//! clock reading (two stores to the task's header, already in cache; a
//! stale wait needs no clearing, rule 4 of `task/record.rs`), and the end
//! of the poll clears the id and checks whether a watcher saw the poll. No
//! clock is read, except around one poll in 1,024 (the sample). Per wait a
//! resource reports: a thread-local read and two stores. Per task: 32 bytes
//! of header. `weft-benches sched` measures it (against the runtime without
//! these records, on a loaded 2-core machine: `ping_pong` and `yield_many`
//! within 2%, `chained_spawn`, whose tasks each live for one poll, about
//! 6% slower).
//!
//! While a timeline records, every run reads the clock twice and pushes an
//! event on its thread's ring, and every wake pushes one: in the same
//! measurement, `ping_pong` 1.4 times and `yield_many` 2.3 to 2.6 times as
//! long as without.

pub(crate) mod clock;
pub(crate) mod poll_record;

pub(crate) use self::poll_record::PollRecord;
