//! The task's state word: one `AtomicUsize` holding seven flag bits and a
//! reference count.
//!
//! Every transition is a single atomic read-modify-write (a CAS loop or a
//! `fetch_*`), so a transition either happens entirely or not at all, and
//! each returns what its caller must do next. The meaning of each bit and the
//! rules for who may touch which field of the task are in the module
//! documentation of [`crate::task`]; read that first.

use crate::loom::{AtomicUsize, Ordering::*};
use std::fmt;

/// A thread is polling (or cancelling) the future; it has exclusive access to
/// the stage (future or output).
const RUNNING: usize = 1 << 0;
/// The future has finished, by returning `Ready`, panicking or being
/// cancelled, and its outcome is in the stage. Never unset once set.
const COMPLETE: usize = 1 << 1;
/// A `Notified` reference for this task exists (in a run queue, or about to be
/// pushed to one by whoever set the bit). At most one exists at a time.
const NOTIFIED: usize = 1 << 2;
/// Someone asked for the task to be cancelled (`abort`, or runtime shutdown).
/// Whoever next holds RUNNING drops the future instead of polling it.
const CANCELLED: usize = 1 << 3;
/// The `JoinHandle` is alive and will take the output.
const JOIN_INTEREST: usize = 1 << 4;
/// The join waker is stored; see rule 4 of the module documentation.
const JOIN_WAKER: usize = 1 << 5;
/// A done callback was added (rule 7): the completing thread runs the
/// callbacks before it publishes `COMPLETE`. Never unset once set.
const HAS_CALLBACKS: usize = 1 << 6;

const FLAG_BITS: usize = 7;
const FLAG_MASK: usize = (1 << FLAG_BITS) - 1;

/// One reference, in the units of the state word.
const REF_ONE: usize = 1 << FLAG_BITS;

/// A new task has three references (the owned list, the `Notified` that will
/// run it first, the `JoinHandle`), is notified and has a join handle.
const INITIAL_STATE: usize = (REF_ONE * 3) | JOIN_INTEREST | NOTIFIED;

/// The atomic state word of one task.
pub(super) struct State {
    val: AtomicUsize,
}

/// A copy of the state word at one instant.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(super) struct Snapshot(usize);

/// What the caller of [`State::transition_to_running`] must do.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(super) enum TransitionToRunning {
    /// Poll the future.
    Success,
    /// The task was cancelled before it could run: drop the future and
    /// complete the task with a cancellation.
    Cancelled,
    /// The task already runs elsewhere or is complete; the `Notified`
    /// reference was released.
    Failed,
    /// As `Failed`, and that reference was the last: deallocate.
    Dealloc,
}

/// What the caller of [`State::transition_to_idle`] must do.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(super) enum TransitionToIdle {
    /// The task is idle; the poller's reference was released.
    Ok,
    /// The task was woken while it ran: the poller's reference now belongs to
    /// a new `Notified`, which the caller must hand to the scheduler.
    OkNotified,
    /// As `Ok`, and that reference was the last: deallocate.
    OkDealloc,
    /// The task was cancelled while it ran: the caller still holds RUNNING
    /// and must drop the future and complete the task.
    Cancelled,
}

/// What the caller of a `transition_to_notified_*` must do.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(super) enum TransitionToNotified {
    /// Nothing: the task is running, complete or already notified.
    DoNothing,
    /// Hand a new `Notified` (whose reference the transition provided) to the
    /// scheduler.
    Submit,
    /// The released reference was the last: deallocate.
    Dealloc,
}

impl State {
    pub(super) fn new() -> State {
        State {
            val: AtomicUsize::new(INITIAL_STATE),
        }
    }

    #[inline]
    pub(super) fn load(&self) -> Snapshot {
        Snapshot(self.val.load(Acquire))
    }

    /// `Notified` → running. Consumes the `Notified` reference on failure.
    pub(super) fn transition_to_running(&self) -> TransitionToRunning {
        self.fetch_update_action(|mut next| {
            debug_assert!(next.is_notified(), "weft bug: ran a task that was not notified");
            if !next.is_idle() {
                // Running elsewhere or complete: this notification is stale.
                next.ref_dec();
                let action = if next.ref_count() == 0 {
                    TransitionToRunning::Dealloc
                } else {
                    TransitionToRunning::Failed
                };
                return (action, Some(next));
            }
            next.set_running();
            next.unset_notified();
            let action = if next.is_cancelled() {
                TransitionToRunning::Cancelled
            } else {
                TransitionToRunning::Success
            };
            (action, Some(next))
        })
    }

    /// Running → idle, after a poll returned `Pending`. The caller gives up
    /// its reference unless the answer is `OkNotified` or `Cancelled`.
    /// `woken` says the task was woken during the poll without touching the
    /// state word (a deferred wake): it counts as if `NOTIFIED` were set.
    pub(super) fn transition_to_idle(&self, woken: bool) -> TransitionToIdle {
        self.fetch_update_action(|curr| {
            debug_assert!(curr.is_running(), "weft bug: idle transition without RUNNING");
            if curr.is_cancelled() {
                return (TransitionToIdle::Cancelled, None);
            }
            let mut next = curr;
            next.unset_running();
            if woken {
                next.set_notified();
            }
            if next.is_notified() {
                // Keep our reference: it becomes the new Notified's.
                return (TransitionToIdle::OkNotified, Some(next));
            }
            next.ref_dec();
            let action = if next.ref_count() == 0 {
                TransitionToIdle::OkDealloc
            } else {
                TransitionToIdle::Ok
            };
            (action, Some(next))
        })
    }

    /// Running → complete, with no callback to run (for tests).
    #[cfg(test)]
    pub(super) fn transition_to_complete(&self) -> Snapshot {
        self.transition_to_complete_after(|_| {})
    }

    /// Running → complete. Returns the state after the transition. Calls
    /// `callbacks` first whenever the word says done callbacks were added
    /// (rule 7): the compare-and-swap that publishes `COMPLETE` fails if a
    /// callback's `HAS_CALLBACKS` came in meanwhile, so either `callbacks`
    /// saw the bit before completion was published, or the adder sees
    /// `COMPLETE` in its own read-modify-write (`mark_has_callbacks`).
    /// `callbacks` may run more than once and must not mind.
    pub(super) fn transition_to_complete_after(&self, mut callbacks: impl FnMut(Snapshot)) -> Snapshot {
        const DELTA: usize = RUNNING | COMPLETE;
        let mut curr = self.load();
        loop {
            debug_assert!(curr.is_running(), "weft bug: completed a task that was not running");
            debug_assert!(!curr.is_complete(), "weft bug: completed a task twice");
            if curr.has_callbacks() {
                callbacks(curr);
            }
            match self.val.compare_exchange_weak(curr.0, curr.0 ^ DELTA, AcqRel, Acquire) {
                Ok(_) => return Snapshot(curr.0 ^ DELTA),
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }

    /// A done callback was added (rule 7). Returns the word before: if it
    /// was already complete without `HAS_CALLBACKS`, the completing thread
    /// never saw the callbacks and the adder must run them.
    pub(super) fn mark_has_callbacks(&self) -> Snapshot {
        Snapshot(self.val.fetch_or(HAS_CALLBACKS, AcqRel))
    }

    /// Releases `count` references at once (the poller's, and the owned
    /// list's when it handed it back). True if they were the last.
    pub(super) fn transition_to_terminal(&self, count: usize) -> bool {
        let prev = Snapshot(self.val.fetch_sub(count * REF_ONE, AcqRel));
        debug_assert!(
            prev.ref_count() >= count,
            "weft bug: released {count} task references, only {} held",
            prev.ref_count()
        );
        prev.ref_count() == count
    }

    /// A waker consumed by `wake()`: its reference is either released or
    /// becomes the new `Notified`'s.
    pub(super) fn transition_to_notified_by_val(&self) -> TransitionToNotified {
        self.fetch_update_action(|mut next| {
            let action = if next.is_running() {
                // The poller will resubmit the task when it sees NOTIFIED; it
                // holds a reference, so ours cannot be the last.
                next.set_notified();
                next.ref_dec();
                debug_assert!(next.ref_count() > 0);
                TransitionToNotified::DoNothing
            } else if next.is_complete() || next.is_notified() {
                next.ref_dec();
                if next.ref_count() == 0 {
                    TransitionToNotified::Dealloc
                } else {
                    TransitionToNotified::DoNothing
                }
            } else {
                // Idle: the waker's reference becomes the Notified's.
                next.set_notified();
                TransitionToNotified::Submit
            };
            (action, Some(next))
        })
    }

    /// A waker used by reference: on `Submit` a new reference was taken for
    /// the `Notified`.
    pub(super) fn transition_to_notified_by_ref(&self) -> TransitionToNotified {
        self.fetch_update_action(|mut next| {
            if next.is_complete() || next.is_notified() {
                (TransitionToNotified::DoNothing, None)
            } else if next.is_running() {
                next.set_notified();
                (TransitionToNotified::DoNothing, Some(next))
            } else {
                next.set_notified();
                next.ref_inc();
                (TransitionToNotified::Submit, Some(next))
            }
        })
    }

    /// `abort()`: marks the task cancelled, and if it is idle and not queued,
    /// notifies it so that a worker (not the aborting thread) drops the
    /// future. On `Submit` a new reference was taken for the `Notified`.
    /// Also returns the word as the abort found it.
    pub(super) fn transition_to_notified_and_cancel(&self) -> (TransitionToNotified, Snapshot) {
        self.fetch_update_action(|mut next| {
            let found = next;
            if next.is_cancelled() || next.is_complete() {
                ((TransitionToNotified::DoNothing, found), None)
            } else if next.is_running() || next.is_notified() {
                // The poller, or the queued run, will see CANCELLED.
                next.set_cancelled();
                ((TransitionToNotified::DoNothing, found), Some(next))
            } else {
                next.set_cancelled();
                next.set_notified();
                next.ref_inc();
                ((TransitionToNotified::Submit, found), Some(next))
            }
        })
    }

    /// Runtime shutdown: marks the task cancelled, and if it is idle takes
    /// RUNNING so the caller can drop the future right now. True if the caller
    /// now holds RUNNING.
    pub(super) fn transition_to_shutdown(&self) -> bool {
        let mut took = false;
        let _ = self.fetch_update(|mut next| {
            took = next.is_idle();
            if took {
                next.set_running();
            }
            next.set_cancelled();
            Some(next)
        });
        took
    }

    /// The fast path of dropping a `JoinHandle`: succeeds only if nothing has
    /// happened to the task since it was spawned.
    pub(super) fn drop_join_handle_fast(&self) -> Result<(), ()> {
        self.val
            .compare_exchange(
                INITIAL_STATE,
                (INITIAL_STATE - REF_ONE) & !JOIN_INTEREST,
                Release,
                Relaxed,
            )
            .map(|_| ())
            .map_err(|_| ())
    }

    /// Clears JOIN_INTEREST (and JOIN_WAKER while the task is not complete,
    /// which gives the handle back exclusive access to the waker field).
    /// Returns the state after the transition; the caller's reference is not
    /// released.
    pub(super) fn transition_to_join_handle_dropped(&self) -> (Snapshot, Snapshot) {
        fn drop_interest(mut next: Snapshot) -> Snapshot {
            debug_assert!(next.is_join_interested());
            next.unset_join_interested();
            if !next.is_complete() {
                next.unset_join_waker();
            }
            next
        }
        let prev = self
            .fetch_update(|curr| Some(drop_interest(curr)))
            .expect("the update closure never refuses");
        (prev, drop_interest(prev))
    }

    /// Publishes the join waker the handle has just written. Fails, leaving
    /// the bit clear, if the task completed meanwhile.
    pub(super) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|mut next| {
            debug_assert!(next.is_join_interested());
            debug_assert!(!next.is_join_waker_set());
            if next.is_complete() {
                return None;
            }
            next.set_join_waker();
            Some(next)
        })
        .map(|prev| {
            let mut next = prev;
            next.set_join_waker();
            next
        })
    }

    /// Takes back the join waker so the handle may replace it. Fails if the
    /// task completed meanwhile (the runtime may be reading the waker).
    pub(super) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|mut next| {
            debug_assert!(next.is_join_interested());
            if next.is_complete() {
                // The runtime may have cleared JOIN_WAKER already
                // (`unset_waker_after_complete`), so check the bit only
                // while the task runs.
                return None;
            }
            // A real assert (this is the handle's slow path): the loom
            // models run in release.
            assert!(
                next.is_join_waker_set(),
                "weft bug: a JoinHandle swapped a join waker it had not set"
            );
            next.unset_join_waker();
            Some(next)
        })
    }

    /// After the runtime woke the join waker of a completed task: hands the
    /// waker field back. Returns the state before the change, so the runtime
    /// can tell whether the handle is gone (and the waker is its to drop).
    pub(super) fn unset_waker_after_complete(&self) -> Snapshot {
        let prev = Snapshot(self.val.fetch_and(!JOIN_WAKER, AcqRel));
        debug_assert!(prev.is_complete());
        debug_assert!(prev.is_join_waker_set());
        prev
    }

    /// Takes a new reference (a waker clone, an `AbortHandle`).
    pub(super) fn ref_inc(&self) {
        // Relaxed suffices, as for `Arc::clone`: a new reference can only be
        // made from an existing one, which already orders the task's memory.
        let prev = self.val.fetch_add(REF_ONE, Relaxed);
        // The count has 58 bits on 64-bit targets; overflow means a leak of
        // astronomical size, so abort as `Arc` does rather than risk a
        // use-after-free.
        if prev > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// Releases one reference. True if it was the last.
    pub(super) fn ref_dec(&self) -> bool {
        let prev = Snapshot(self.val.fetch_sub(REF_ONE, AcqRel));
        debug_assert!(prev.ref_count() >= 1, "weft bug: task reference count underflow");
        prev.ref_count() == 1
    }

    fn fetch_update_action<T>(&self, mut f: impl FnMut(Snapshot) -> (T, Option<Snapshot>)) -> T {
        let mut curr = self.load();
        loop {
            let (action, next) = f(curr);
            let Some(next) = next else {
                return action;
            };
            match self.val.compare_exchange(curr.0, next.0, AcqRel, Acquire) {
                Ok(_) => return action,
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }

    fn fetch_update(&self, mut f: impl FnMut(Snapshot) -> Option<Snapshot>) -> Result<Snapshot, Snapshot> {
        let mut curr = self.load();
        loop {
            let Some(next) = f(curr) else {
                return Err(curr);
            };
            match self.val.compare_exchange(curr.0, next.0, AcqRel, Acquire) {
                Ok(_) => return Ok(curr),
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }
}

impl Snapshot {
    /// Neither running nor complete.
    pub(super) fn is_idle(self) -> bool {
        self.0 & (RUNNING | COMPLETE) == 0
    }
    pub(super) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    fn set_running(&mut self) {
        self.0 |= RUNNING;
    }
    fn unset_running(&mut self) {
        self.0 &= !RUNNING;
    }
    pub(super) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(super) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    fn set_notified(&mut self) {
        self.0 |= NOTIFIED;
    }
    fn unset_notified(&mut self) {
        self.0 &= !NOTIFIED;
    }
    pub(super) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    fn set_cancelled(&mut self) {
        self.0 |= CANCELLED;
    }
    pub(super) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    fn unset_join_interested(&mut self) {
        self.0 &= !JOIN_INTEREST;
    }
    pub(super) fn has_callbacks(self) -> bool {
        self.0 & HAS_CALLBACKS != 0
    }

    pub(super) fn is_join_waker_set(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    fn set_join_waker(&mut self) {
        self.0 |= JOIN_WAKER;
    }
    fn unset_join_waker(&mut self) {
        self.0 &= !JOIN_WAKER;
    }
    pub(super) fn ref_count(self) -> usize {
        self.0 >> FLAG_BITS
    }
    fn ref_inc(&mut self) {
        self.0 += REF_ONE;
    }
    fn ref_dec(&mut self) {
        debug_assert!(self.ref_count() > 0);
        self.0 -= REF_ONE;
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load().fmt(f)
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("notified", &self.is_notified())
            .field("cancelled", &self.is_cancelled())
            .field("join_interest", &self.is_join_interested())
            .field("join_waker", &self.is_join_waker_set())
            .field("refs", &self.ref_count())
            .finish()
    }
}

const _: () = assert!(INITIAL_STATE & FLAG_MASK == JOIN_INTEREST | NOTIFIED);

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn initial_state_is_notified_with_three_references() {
        let s = State::new().load();
        assert!(s.is_notified() && s.is_join_interested() && s.is_idle());
        assert!(!s.is_cancelled() && !s.is_join_waker_set());
        assert_eq!(s.ref_count(), 3);
    }

    #[test]
    fn run_then_idle_releases_the_pollers_reference() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert!(s.load().is_running() && !s.load().is_notified());
        assert_eq!(s.transition_to_idle(false), TransitionToIdle::Ok);
        assert_eq!(s.load().ref_count(), 2);
    }

    #[test]
    fn wake_while_running_resubmits_after_the_poll() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert_eq!(s.transition_to_notified_by_ref(), TransitionToNotified::DoNothing);
        assert_eq!(s.transition_to_idle(false), TransitionToIdle::OkNotified);
        let snap = s.load();
        assert!(snap.is_notified() && snap.is_idle());
        assert_eq!(snap.ref_count(), 3, "the poller's reference moved to the new Notified");
    }

    #[test]
    fn wake_by_val_of_idle_task_keeps_the_reference_for_the_queue() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert_eq!(s.transition_to_idle(false), TransitionToIdle::Ok);
        s.ref_inc(); // a waker clone
        assert_eq!(s.transition_to_notified_by_val(), TransitionToNotified::Submit);
        assert_eq!(s.load().ref_count(), 3);
        // A second wake finds it notified and just drops its reference.
        s.ref_inc();
        assert_eq!(s.transition_to_notified_by_val(), TransitionToNotified::DoNothing);
        assert_eq!(s.load().ref_count(), 3);
    }

    #[test]
    fn abort_of_idle_task_submits_once() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert_eq!(s.transition_to_idle(false), TransitionToIdle::Ok);
        assert_eq!(s.transition_to_notified_and_cancel().0, TransitionToNotified::Submit);
        assert_eq!(s.transition_to_notified_and_cancel().0, TransitionToNotified::DoNothing);
        assert_eq!(s.transition_to_running(), TransitionToRunning::Cancelled);
    }

    #[test]
    fn cancel_while_running_is_seen_at_idle() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert_eq!(s.transition_to_notified_and_cancel().0, TransitionToNotified::DoNothing);
        assert_eq!(s.transition_to_idle(false), TransitionToIdle::Cancelled);
        assert!(s.load().is_running());
    }

    #[test]
    fn shutdown_takes_an_idle_task_but_not_a_running_one() {
        let s = State::new();
        assert!(s.transition_to_shutdown(), "a queued, idle task is taken");
        assert_eq!(s.transition_to_running(), TransitionToRunning::Failed);

        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert!(!s.transition_to_shutdown());
        assert!(s.load().is_cancelled());
    }

    #[test]
    fn join_waker_cannot_be_published_after_completion() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        let done = s.transition_to_complete();
        assert!(done.is_complete() && !done.is_running());
        assert!(s.set_join_waker().is_err());
    }

    #[test]
    fn fast_join_handle_drop_only_from_initial_state() {
        let s = State::new();
        assert!(s.drop_join_handle_fast().is_ok());
        assert!(!s.load().is_join_interested());
        assert_eq!(s.load().ref_count(), 2);

        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert!(s.drop_join_handle_fast().is_err());
    }
}
