//! Task ids.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A task's id: unique among all tasks of all runtimes in the process for the
/// process's lifetime (ids are never reused).
///
/// Ids are handed out in blocks per thread, so spawning does not contend on
/// one shared counter; ids from one thread increase, but ids across threads
/// say nothing about spawn order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

/// How many ids a thread takes from the global counter at once.
const BLOCK: u64 = 1024;

impl Id {
    pub(crate) fn next() -> Id {
        // The global counter hands out blocks; ids start at 1.
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let next = RANGE
            .try_with(|range| {
                let (mut next, mut end) = range.get();
                if next == end {
                    next = NEXT_BLOCK.fetch_add(BLOCK, Relaxed);
                    end = next + BLOCK;
                }
                range.set((next + 1, end));
                next
            })
            // A thread-local destructor spawning on an exiting thread: take
            // a block of one.
            .unwrap_or_else(|_| NEXT_BLOCK.fetch_add(1, Relaxed));
        Id(NonZeroU64::new(next).expect("ids start at 1 and never wrap in 2^64 spawns"))
    }

    /// The id a task dump gives the future passed to `block_on` on a
    /// current-thread runtime: not a task, but its thread polls it between
    /// the tasks, and a blocking call in it stalls them all, so a dump shows
    /// it as a row of its own (named `block_on`, at the `block_on` call's
    /// line). No task has this id (they count up from 1). Prints as
    /// `block_on`.
    pub const BLOCK_ON: Id = Id(NonZeroU64::MAX);

    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }

    /// The id with this number, if it can be one (ids start at 1).
    pub(crate) fn from_u64(n: u64) -> Option<Id> {
        NonZeroU64::new(n).map(Id)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Id::BLOCK_ON {
            return f.write_str("block_on");
        }
        self.0.fmt(f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}
