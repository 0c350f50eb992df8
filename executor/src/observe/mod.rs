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
//! clock reading (one load and one store of one word of the task's header,
//! already in cache; a stale wait needs no clearing, rule 4 of
//! `task/record.rs`), and the end of the poll clears the id and checks
//! whether a watcher saw the poll. No clock is read, except around one poll
//! in 1,024 (the sample). Per wait a resource reports: a thread-local read
//! and two stores. Per task: 32 bytes of header, and a shard of the
//! owned-task list that counts it and, only if the shard holds named
//! tasks, looks for its name when it leaves.
//!
//! Measured in instructions (callgrind, which a loaded machine does not
//! disturb), on a runtime of two workers, against the runtime before these
//! records: a task spawned and run once 784 instructions (790 before), a
//! ping-pong pair 2,881 (2,894), a yield 479 (475). Of `weft-benches
//! sched`'s rows, `chained_spawn`, `ping_pong`, `yield_many` and
//! `spawn_many_local` take up to 2% fewer instructions than before (the
//! task path around the records got cheaper too), `spawn_many_remote_idle`
//! 2% more; `fan_out_fan_in` varies by 10% from run to run on either
//! runtime (how its storm of wakes interleaves), which hides any
//! difference.
//!
//! While a timeline records, every run reads the clock twice and pushes an
//! event on its thread's ring, and every wake pushes one: in the same
//! measurement, `ping_pong` 1.4 times and `yield_many` 2.3 to 2.6 times as
//! long as without.

pub(crate) mod clock;
pub(crate) mod poll_record;

pub(crate) use self::poll_record::PollRecord;
