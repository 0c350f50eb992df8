//! What a task's header keeps about the task, for dumps: where it was
//! spawned, how often and when it was last polled, its longest measured
//! poll, and what it waits on.
//!
//! # Rules
//!
//! 1. `location` and the `NAMED` flag are set when the cell is built and
//!    never change.
//! 2. Every other field is written only by the thread that holds `RUNNING`
//!    (rule 1 of [`crate::task`]), with relaxed stores (an increment is a
//!    load and a store: there is one writer). Anyone may read them.
//! 3. The holder writes them after it sets `RUNNING` and before it clears
//!    it, each with a read-modify-write of the state word that is both
//!    acquire and release. So a reader that loads the state word (acquire),
//!    reads these fields, fences (acquire) and loads the state word again,
//!    finding the task idle both times with the same poll count, has read
//!    the fields of one poll (`Header::view`, for dumps). The wait is also
//!    stamped with its poll (rule 4), so a wait read with another poll's
//!    count is dropped, whatever the interleaving.
//! 4. A wait is stamped with the number of the poll that reported it (its
//!    low 16 bits), and counts only while that is the latest poll: each
//!    poll starts with no wait, at no cost to the poll but every 65,536th,
//!    which clears the wait so that a stamp never matches a poll 65,536
//!    later. The first wait a
//!    poll reports ([`wait_free`](TaskRecord::wait_free)) sticks, so a
//!    `timeout(lock)` reports the lock, not the timer.
//!
//! The record is 32 bytes of the header; the name of a named task is not
//! here but in the owned-task list's shard (`list.rs`), since few tasks
//! have one.

use crate::loom::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::panic::Location;

/// Set in the low half of `poll` when the task has a name (kept in the
/// owned list).
const NAMED: u32 = 1;
/// One poll, in the low half of `poll` (the count sits above the flag, so
/// counting is an add that never touches it; it wraps after 2^31 polls).
const ONE_POLL: u32 = 2;

/// The task's own record (see the module docs). `repr(C)`: the word every
/// poll writes comes first (see `Header`).
#[repr(C)]
pub(crate) struct TaskRecord {
    /// Low half: polls begun (wrapping), times two, plus the `NAMED` flag.
    /// High half: when the latest poll began, in ms since the observation
    /// epoch, by the poller's clock (see `observe::poll_record`). One word,
    /// so that a poll stamps both with one store.
    poll: AtomicU64,
    location: &'static Location<'static>,
    /// The longest poll measured, in µs (saturating).
    longest_poll_us: AtomicU32,
    /// What the task waits on: the kind and detail (`dump::wait`, low 16
    /// bits, 0 for nothing) and the stamp of the poll that reported it
    /// (high 16 bits; rule 4).
    wait_tag: AtomicU32,
    wait_object: AtomicU64,
}

impl TaskRecord {
    pub(crate) fn new(location: &'static Location<'static>, named: bool) -> TaskRecord {
        TaskRecord {
            location,
            poll: AtomicU64::new(if named { u64::from(NAMED) } else { 0 }),
            longest_poll_us: AtomicU32::new(0),
            wait_tag: AtomicU32::new(0),
            wait_object: AtomicU64::new(0),
        }
    }

    /// A poll begins (rule 2: the `RUNNING` holder only); `clock_ms` is the
    /// poller's clock.
    #[inline(always)]
    pub(crate) fn begin_poll(&self, clock_ms: u32) {
        let polls = (self.poll.load(Relaxed) as u32).wrapping_add(ONE_POLL);
        self.poll.store((u64::from(clock_ms) << 32) | u64::from(polls), Relaxed);
        if poll_stamp(polls / ONE_POLL) == 0 {
            self.stamps_wrapped();
        }
    }

    /// The 16-bit poll stamp wrapped: a wait stamped 65,536 polls ago
    /// would match this poll's stamp (and, `wait_free` taking it for this
    /// poll's first, stick), so it is forgotten. Every wait is at most
    /// 65,535 polls older than the next wrap, so none outlives its stamp.
    #[cold]
    #[inline(never)]
    fn stamps_wrapped(&self) {
        self.wait_tag.store(0, Relaxed);
    }

    /// A poll took `us` (rule 2).
    #[inline]
    pub(crate) fn poll_measured(&self, us: u64) {
        let us = u32::try_from(us).unwrap_or(u32::MAX);
        if us > self.longest_poll_us.load(Relaxed) {
            self.longest_poll_us.store(us, Relaxed);
        }
    }

    /// The poll in progress's place for its wait, if it has reported none
    /// yet: a wait noted through it is stamped with this poll (one read of
    /// the poll count for the check and the stamp).
    #[inline]
    pub(crate) fn wait_free(&self) -> Option<FreeWait<'_>> {
        let stamp = poll_stamp(self.polls());
        let current = self.wait_tag.load(Relaxed);
        if current >> 16 == stamp && current & 0xffff != 0 {
            None
        } else {
            Some(FreeWait { record: self, stamp })
        }
    }

    /// The latest poll's wait: its tag (0 for none) and object.
    fn current_wait(&self, polls: u32, tag: u32, object: u64) -> (u16, u64) {
        if tag >> 16 == poll_stamp(polls) {
            ((tag & 0xffff) as u16, object)
        } else {
            (0, 0)
        }
    }

    pub(crate) fn location(&self) -> &'static Location<'static> {
        self.location
    }

    pub(crate) fn is_named(&self) -> bool {
        self.poll.load(Relaxed) as u32 & NAMED != 0
    }

    /// The fields, for a dump (see rule 3 for when they are consistent).
    pub(crate) fn read(&self) -> RecordView {
        let poll = self.poll.load(Relaxed);
        let polls = poll as u32 / ONE_POLL;
        let (wait_tag, wait_object) =
            self.current_wait(polls, self.wait_tag.load(Relaxed), self.wait_object.load(Relaxed));
        RecordView {
            polls,
            last_poll_ms: (poll >> 32) as u32,
            longest_poll_us: self.longest_poll_us.load(Relaxed),
            wait_tag,
            wait_object,
        }
    }

    /// The number of polls begun (modulo 2^31).
    #[inline]
    pub(crate) fn polls(&self) -> u32 {
        self.poll.load(Relaxed) as u32 / ONE_POLL
    }
}

/// A poll's place for its first wait ([`TaskRecord::wait_free`]); only the
/// `RUNNING` holder has one (rule 2), for the poll it checked.
pub(crate) struct FreeWait<'a> {
    record: &'a TaskRecord,
    stamp: u32,
}

impl FreeWait<'_> {
    /// The task waits on what `tag` (16 bits, not 0) and `object` encode
    /// (rules 2 and 4).
    #[inline]
    pub(crate) fn note(self, tag: u16, object: u64) {
        self.record.wait_object.store(object, Relaxed);
        self.record.wait_tag.store((self.stamp << 16) | u32::from(tag), Relaxed);
    }
}

/// A copy of a task's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordView {
    pub(crate) polls: u32,
    pub(crate) last_poll_ms: u32,
    pub(crate) longest_poll_us: u32,
    pub(crate) wait_tag: u16,
    pub(crate) wait_object: u64,
}

/// The 16-bit stamp of poll number `polls`.
#[inline]
fn poll_stamp(polls: u32) -> u32 {
    polls & 0xffff
}

/// A task's state and record, read for a dump.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskView {
    pub(crate) id: super::Id,
    pub(crate) location: &'static Location<'static>,
    pub(crate) record: RecordView,
    /// A thread is polling (or cancelling) the task.
    pub(crate) running: bool,
    /// The task is scheduled to run.
    pub(crate) notified: bool,
    /// Cancellation was requested.
    pub(crate) cancelled: bool,
    /// The wait fields belong to the task's latest poll (rule 3): false if
    /// a poll was under way while they were read.
    pub(crate) wait_valid: bool,
}

impl super::Header {
    /// Reads the task's state and record as rule 3 says.
    pub(crate) fn view(&self) -> TaskView {
        let before = self.state.load();
        let record = self.record.read();
        // A seqlock's read side: a field written after the task started
        // running again makes the second load see that start.
        crate::loom::fence(crate::loom::Ordering::Acquire);
        let after = self.state.load();
        let idle = |s: super::state::Snapshot| !s.is_running() && !s.is_complete();
        TaskView {
            id: self.id,
            location: self.record.location,
            record,
            running: before.is_running() || after.is_running(),
            notified: after.is_notified(),
            cancelled: after.is_cancelled(),
            wait_valid: idle(before) && idle(after) && self.record.polls() == record.polls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait is the latest poll's only: a poll 65,536 polls after the one
    /// that reported a wait (the same 16-bit stamp) reports its own wait,
    /// or none, never the old one.
    #[test]
    fn a_wait_from_65536_polls_ago_is_neither_shown_nor_kept() {
        let record = TaskRecord::new(Location::caller(), false);
        record.begin_poll(0);
        record.wait_free().expect("no wait yet").note(7, 70);
        assert_eq!((record.read().wait_tag, record.read().wait_object), (7, 70));
        for _ in 0..(1u32 << 16) {
            record.begin_poll(0);
        }
        // Same stamp as the poll that waited on 7, but it reported nothing.
        assert_eq!(record.read().wait_tag, 0, "a stale wait shows as the latest poll's");
        record
            .wait_free()
            .expect("a wait stamped 65,536 polls ago does not hold this poll's place")
            .note(9, 90);
        let view = record.read();
        assert_eq!(
            (view.wait_tag, view.wait_object),
            (9, 90),
            "the latest poll's wait is lost"
        );
    }

    #[test]
    fn the_named_flag_survives_the_poll_count_wrapping() {
        let record = TaskRecord::new(Location::caller(), true);
        record.poll.store(u64::from(u32::MAX), Relaxed);
        record.begin_poll(5);
        assert!(record.is_named());
        assert_eq!(record.polls(), 0);
        assert_eq!(record.read().last_poll_ms, 5);
    }
}
