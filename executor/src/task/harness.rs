//! The typed operations on a task: running it, completing it, and the
//! `JoinHandle`'s side of the protocol. Each step names the rule of
//! [`crate::task`] that makes it sound.

use super::core::{Cell, Core, Header, Outcome, Trailer};
use super::done;
use super::id::Id;
use super::raw::RawTask;
use super::state::{Snapshot, State, TransitionToIdle, TransitionToRunning};
use super::waker::waker_ref;
use super::{JoinError, Notified, Schedule, Task};
use crate::context;
use crate::observe::PollRecord;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

/// A typed view of a task pointer. Holds no reference by itself: every method
/// states which reference its caller gives up or keeps.
pub(super) struct Harness<T: Future, S: 'static> {
    cell: NonNull<Cell<T, S>>,
}

impl<T: Future, S: Schedule> Harness<T, S> {
    /// # Safety
    ///
    /// `ptr` is the header of a live `Cell<T, S>`.
    pub(super) unsafe fn from_raw(ptr: NonNull<Header>) -> Harness<T, S> {
        Harness { cell: ptr.cast() }
    }

    fn cell(&self) -> &Cell<T, S> {
        // SAFETY: the caller of `from_raw` holds a reference, which keeps the
        // allocation alive for the harness's lifetime.
        unsafe { self.cell.as_ref() }
    }

    fn header(&self) -> &Header {
        &self.cell().header
    }

    fn state(&self) -> &State {
        &self.header().state
    }

    fn core(&self) -> &Core<T, S> {
        &self.cell().core
    }

    fn trailer(&self) -> &Trailer {
        &self.cell().trailer
    }

    fn id(&self) -> Id {
        self.header().id
    }

    fn raw(&self) -> RawTask {
        // SAFETY: the cell is live (see `cell`).
        unsafe { RawTask::from_header(self.cell.cast()) }
    }

    /// A `Task` for the reference the caller holds, to hand on to the
    /// scheduler.
    fn into_task(self) -> Task<S> {
        Task::from_raw(self.raw())
    }

    // ----- running ----------------------------------------------------------

    /// Runs the task once, on the thread `poller` records. The caller gives
    /// up a `Notified` reference.
    pub(super) fn poll(self, poller: &PollRecord) {
        match self.state().transition_to_running() {
            TransitionToRunning::Success => {
                let header = self.cell.cast::<Header>();
                let waker = waker_ref(&header);
                let mut cx = Context::from_waker(&waker);
                // The task's record is ours to write while we hold RUNNING
                // (rule 2 of `record.rs`).
                let clock_ms = poller.begin(self.id());
                self.header().record.begin_poll(clock_ms);
                // Rule 1: we hold RUNNING, so we may poll.
                let polled = poll_future(self.core(), self.id(), header, &mut cx);
                poller.end(self.header());
                let yielded = match polled {
                    Polled::Ready(()) => {
                        self.complete();
                        return;
                    }
                    Polled::Pending(yielded) => yielded,
                };
                match self.state().transition_to_idle(yielded) {
                    TransitionToIdle::Ok => {}
                    TransitionToIdle::OkNotified => {
                        // Rule 2: woken while running; our reference becomes
                        // the new Notified, which goes to the back of a queue.
                        self.submit(true);
                    }
                    TransitionToIdle::OkDealloc => self.dealloc(),
                    TransitionToIdle::Cancelled => {
                        cancel_task(self.core(), self.id());
                        self.complete();
                    }
                }
            }
            TransitionToRunning::Cancelled => {
                cancel_task(self.core(), self.id());
                self.complete();
            }
            TransitionToRunning::Failed => {}
            TransitionToRunning::Dealloc => self.dealloc(),
        }
    }

    /// Hands a `Notified` to the scheduler. The caller gives up the reference
    /// the `Notified` will own.
    pub(super) fn schedule(self) {
        self.submit(false);
    }

    /// Turns the caller's reference into a `Notified` and schedules it.
    ///
    /// Once the `Notified` is queued, another thread may run the task to
    /// completion and free the cell, scheduler and all. So no reference into
    /// the cell may be alive across the hand-over (see `Schedule`): the local
    /// path passes only the scheduler's identity, and the remote path first
    /// takes one more reference, which it releases after the call.
    fn submit(self, is_yield: bool) {
        let id = self.core().scheduler.id();
        let raw = self.raw();
        let notified = Notified(self.into_task());
        if let Err(notified) = S::schedule_local(id, notified, is_yield) {
            // We own the Notified again, so the cell is alive: pin it for
            // the duration of the call.
            raw.ref_inc();
            // SAFETY: the reference just taken keeps the cell, which holds
            // the scheduler we borrow, alive until `drop_reference` below.
            let harness = unsafe { Harness::<T, S>::from_raw(raw.header_ptr()) };
            harness.core().scheduler.schedule_remote(notified);
            harness.drop_reference();
        }
    }

    /// Cancels the task for runtime shutdown. The caller gives up a
    /// reference.
    pub(super) fn shutdown(self) {
        if !self.state().transition_to_shutdown() {
            // Running elsewhere (the poller will see CANCELLED, rule 3) or
            // already complete.
            self.drop_reference();
            return;
        }
        // Rule 3: the task was idle and we now hold RUNNING.
        cancel_task(self.core(), self.id());
        self.complete();
    }

    /// Stores-done bookkeeping after the outcome is in the stage: publishes
    /// completion, wakes or cleans up after the join handle, leaves the owned
    /// list, and releases the running reference (and the list's).
    fn complete(self) {
        // Leave the owned list first, so that once the JoinHandle sees the
        // output the task no longer counts as alive (`alive_tasks` is exact
        // after a join). `me` borrows our pointer without counting.
        let me = ManuallyDrop::new(Task::<S>::from_raw(self.raw()));
        let num_release = match self.core().scheduler.release(&me) {
            Some(list_ref) => {
                // Its count is released below, together with ours.
                std::mem::forget(list_ref);
                2
            }
            None => 1,
        };

        // Rule 7: done callbacks run before completion is published, while
        // the outcome is ours to read and nobody can take it.
        let snapshot = self.state().transition_to_complete_after(|_| {
            // SAFETY: we hold RUNNING and stored the outcome (every caller
            // of `complete` did); COMPLETE is not yet published.
            let ran = unsafe { done::run_at_completion(self.header(), &*self.core().outcome_ptr()) };
            if ran > 0 {
                self.core().scheduler.callbacks_ran(ran);
            }
        });

        if !snapshot.is_join_interested() {
            // Rule 1: the handle is gone, so the output is ours to drop. A
            // panicking destructor must not unwind into the scheduler. An
            // outcome with nothing to drop stays where it is, freed with
            // the cell.
            // SAFETY: rule 1 (see above).
            if unsafe { self.core().output_needs_drop() } {
                let _id = context::set_current_task_id(Some(self.id()));
                // SAFETY: rule 1 (see above).
                contain(|| unsafe { self.core().drop_output() });
            }
        } else if snapshot.is_join_waker_set() {
            // Rule 4: JOIN_WAKER is set and the task complete: we may read
            // the waker to wake the handle.
            // SAFETY: rule 4 (see above).
            contain(|| unsafe { self.trailer().wake_join() });
            let prev = self.state().unset_waker_after_complete();
            if !prev.is_join_interested() {
                // The handle was dropped while we woke it: rule 4 makes the
                // waker ours to drop.
                // SAFETY: rule 4 (see above).
                contain(|| unsafe { self.trailer().set_waker(None) });
            }
        }

        if self.state().transition_to_terminal(num_release) {
            self.dealloc();
        }
    }

    /// Frees the cell. The caller released the last reference.
    pub(super) fn dealloc(self) {
        // SAFETY: the last reference is gone: nothing else reaches the cell.
        unsafe { done::free::<T::Output>(self.header()) };
        let complete = self.state().load().is_complete();
        // SAFETY: the reference count reached zero, so nothing else can reach
        // the cell, and `complete` is read from its state word.
        unsafe { self.core().drop_stage(complete) };
        // SAFETY: as above; it was allocated by `Box` in `Cell::new`, and
        // the stage's live field is dropped (the union drops nothing itself).
        drop(unsafe { Box::from_raw(self.cell.as_ptr()) });
    }

    fn drop_reference(self) {
        if self.state().ref_dec() {
            self.dealloc();
        }
    }

    /// `n` done callbacks ran (`RawTask::callbacks_ran`).
    pub(super) fn callbacks_ran(self, n: u64) {
        self.core().scheduler.callbacks_ran(n);
    }

    /// A pointer to the stored outcome (`RawTask::outcome_ptr`).
    ///
    /// # Safety
    ///
    /// As `Core::outcome_ptr`.
    pub(super) unsafe fn outcome_ptr(&self) -> *const Outcome<T::Output> {
        // SAFETY: forwarded to the caller.
        unsafe { self.core().outcome_ptr() }
    }

    // ----- the JoinHandle's side ---------------------------------------------

    /// Writes the output to `dst` if the task is complete; otherwise makes
    /// sure `waker` will be woken when it completes.
    pub(super) fn try_read_output(self, dst: &mut Poll<Result<T::Output, JoinError>>, waker: &Waker) {
        if can_read_output(self.header(), self.trailer(), waker) {
            // SAFETY: rule 1: the task is complete and we are its JoinHandle.
            *dst = Poll::Ready(unsafe { self.core().take_output(self.id()) });
        }
    }

    /// Drops the `JoinHandle` when the fast path failed. Releases its
    /// reference.
    pub(super) fn drop_join_handle_slow(self) {
        let (prev, next) = self.state().transition_to_join_handle_dropped();
        if prev.is_complete() {
            // Rule 1: the task completed while we held interest, so the
            // output is ours to drop.
            let _id = context::set_current_task_id(Some(self.id()));
            // SAFETY: rule 1 (see above).
            contain(|| unsafe { self.core().drop_output() });
        }
        if !next.is_join_waker_set() {
            // Rule 4: with JOIN_WAKER clear after our transition, the field is
            // ours.
            // SAFETY: rule 4 (see above).
            contain(|| unsafe { self.trailer().set_waker(None) });
        }
        self.drop_reference();
    }
}

/// Runs `f` and contains any panic it raises, including one from dropping
/// that panic's payload (the second payload is leaked: dropping it could
/// panic again). For destructors and wakers the runtime calls on a task's
/// behalf, which must never unwind into the scheduler.
fn contain(f: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
        if let Err(inner) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(inner);
        }
    }
}

/// What a poll left behind.
enum Polled {
    /// The outcome is stored in the stage and the future already dropped.
    Ready(()),
    /// Still pending; true if the task asked to run again right away
    /// (`yield_now`, a spent budget) through `context::defer_wake`.
    Pending(bool),
}

/// Polls the future once, catching a panic. When it completes (returns or
/// panics), the future is dropped here, in the task's id scope, and the
/// outcome stored.
fn poll_future<T: Future, S: Schedule>(
    core: &Core<T, S>,
    id: Id,
    header: NonNull<Header>,
    cx: &mut Context<'_>,
) -> Polled {
    let polling = context::enter_poll(id, header.as_ptr() as *const ());
    // SAFETY: the caller holds RUNNING (rule 1) and the task is not
    // complete, so the future is live.
    let polled = panic::catch_unwind(AssertUnwindSafe(|| unsafe { core.poll(cx) }));
    let outcome = match polled {
        Ok(Poll::Pending) => return Polled::Pending(polling.take_deferred_wake()),
        Ok(Poll::Ready(output)) => {
            // SAFETY: as above; the future returned Ready and is dropped
            // once, here.
            match panic::catch_unwind(AssertUnwindSafe(|| unsafe { core.drop_future() })) {
                Ok(()) => Outcome::Finished(output),
                Err(payload) => {
                    // Its destructor panicked: the task panicked, and the
                    // output it returned is dropped.
                    contain(move || drop(output));
                    Outcome::Panicked(Box::new(payload))
                }
            }
        }
        Err(payload) => {
            // The future panicked mid-poll; dropping it is still valid. Its
            // destructor may panic too: that payload is dropped, the first
            // one is what the JoinHandle reports.
            // SAFETY: as above; the future is still live.
            contain(|| unsafe { core.drop_future() });
            Outcome::Panicked(Box::new(payload))
        }
    };
    let panicked = matches!(outcome, Outcome::Panicked(_));
    // SAFETY: RUNNING is held, and the future is dropped (above), so the
    // stage holds nothing.
    unsafe { core.store_output(outcome) };
    if panicked {
        core.scheduler.unhandled_panic();
    }
    Polled::Ready(())
}

/// Drops the future of a cancelled task and stores the cancellation (or the
/// panic its destructor raised) as the outcome. The caller holds RUNNING and
/// the task is not complete.
fn cancel_task<T: Future, S: Schedule>(core: &Core<T, S>, id: Id) {
    let _id = context::set_current_task_id(Some(id));
    // SAFETY: the caller holds RUNNING (rule 1) and the task is not complete,
    // so the future is live.
    let dropped = panic::catch_unwind(AssertUnwindSafe(|| unsafe { core.drop_future() }));
    let outcome = match dropped {
        Ok(()) => Outcome::Cancelled,
        Err(payload) => Outcome::Panicked(Box::new(payload)),
    };
    // SAFETY: RUNNING is held and the future is dropped.
    unsafe { core.store_output(outcome) };
}

/// The `JoinHandle`'s half of rule 4. True if the task is complete and the
/// output can be taken.
fn can_read_output(header: &Header, trailer: &Trailer, waker: &Waker) -> bool {
    let snapshot = header.state.load();
    debug_assert!(snapshot.is_join_interested());
    if snapshot.is_complete() {
        return true;
    }
    let published = if !snapshot.is_join_waker_set() {
        // Rule 4: JOIN_WAKER clear and not complete: we may write the field.
        // SAFETY: rule 4 (see above).
        unsafe { publish_join_waker(header, trailer, waker.clone()) }
    } else {
        // Rule 4: JOIN_WAKER set: we may read the field.
        // SAFETY: rule 4 (see above).
        if unsafe { trailer.will_wake(waker) } {
            return false;
        }
        // A different waker: take the field back, then publish the new one.
        header.state.unset_join_waker().and_then(|_| {
            // SAFETY: rule 4: JOIN_WAKER is now clear and the task not
            // complete.
            unsafe { publish_join_waker(header, trailer, waker.clone()) }
        })
    };
    match published {
        Ok(_) => false,
        Err(snapshot) => {
            debug_assert!(snapshot.is_complete());
            true
        }
    }
}

/// Writes the join waker and publishes it.
///
/// # Safety
///
/// JOIN_WAKER is clear and the caller is the `JoinHandle` (rule 4).
unsafe fn publish_join_waker(header: &Header, trailer: &Trailer, waker: Waker) -> Result<Snapshot, Snapshot> {
    // SAFETY: forwarded to the caller.
    unsafe { trailer.set_waker(Some(waker)) };
    let res = header.state.set_join_waker();
    if res.is_err() {
        // Completed meanwhile: JOIN_WAKER stayed clear, so the field is still
        // ours; drop the waker now rather than at deallocation.
        // SAFETY: rule 4, as above.
        unsafe { trailer.set_waker(None) };
    }
    res
}
