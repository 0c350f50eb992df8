//! Tasks: the unit the executor schedules.
//!
//! A task is one heap allocation (a `Cell`) that holds a
//! `Header` (the state word, the vtable, the id and the owned-list links),
//! the scheduler the task belongs to, the future or its output (the *stage*),
//! and the join waker. Everything that refers to a task holds a counted
//! pointer to that allocation; nothing else is allocated per task, and waking
//! a task never clones an `Arc` of its future.
//!
//! # The references
//!
//! Each of these holds one count of the reference count in the state word:
//!
//! - `Task`: the owned-task list's reference, held from spawn until the task
//!   completes: it leaves the list just before it is marked complete.
//! - `Notified`: the task is scheduled to run: it sits in a run queue, a
//!   LIFO slot or the injector. Running it consumes it.
//! - [`JoinHandle`]: the user's handle to the output.
//! - [`AbortHandle`]: a handle that can only cancel.
//! - a [`Waker`](std::task::Waker) made from the task (every clone counts).
//!
//! While a thread polls the task it holds the reference of the `Notified` it
//! consumed. When the count reaches zero, whoever dropped it last frees the
//! cell.
//!
//! # The state word
//!
//! | bit | set when |
//! | --- | --- |
//! | `RUNNING` | a thread is polling or cancelling the future |
//! | `COMPLETE` | the outcome (output, panic or cancellation) is stored; never unset |
//! | `NOTIFIED` | a `Notified` exists or is about to be pushed |
//! | `CANCELLED` | cancellation was requested (`abort`, runtime shutdown) |
//! | `JOIN_INTEREST` | the `JoinHandle` is alive |
//! | `JOIN_WAKER` | the join waker is published (rule 4) |
//!
//! The remaining high bits count references.
//!
//! # Rules
//!
//! Who may touch which part of the cell, and when. Every `unsafe` block in
//! this module cites the rule that makes it sound.
//!
//! 1. **The stage** (future or output) may be touched only by the thread that
//!    set `RUNNING` through a successful transition, until it clears
//!    `RUNNING` or sets `COMPLETE`. Once `COMPLETE` is set, the output belongs
//!    to the `JoinHandle` while `JOIN_INTEREST` is set, and to whoever clears
//!    `JOIN_INTEREST` (the handle on drop) otherwise; if the handle was
//!    dropped before completion, the completing thread drops the output.
//!    The stage has no tag: without `COMPLETE` it holds the future, with it
//!    the outcome, so the `RUNNING` holder that drops the future stores an
//!    outcome on every path before it sets `COMPLETE`. Whoever frees the cell
//!    drops what the stage holds then.
//! 2. **At most one `Notified`** exists at a time. A wake sets `NOTIFIED`
//!    and makes one only if the task is idle (neither running nor complete);
//!    a wake while running just sets the bit, and the poller, seeing it when
//!    it goes idle, turns its own reference into the new `Notified`.
//! 3. **Cancellation** never touches the future from the cancelling thread
//!    while another thread polls it: `abort` sets `CANCELLED` and, if the task
//!    is idle, notifies it so a worker drops the future; runtime shutdown
//!    takes `RUNNING` itself only when the task is idle.
//! 4. **The join waker** field may be written only by the `JoinHandle`, and
//!    only while `JOIN_WAKER` is clear and the task is not complete. Setting
//!    `JOIN_WAKER` publishes it: from then on the handle may only read it and
//!    the completing thread may read it to wake the handle. After waking, the
//!    completing thread clears `JOIN_WAKER`, which hands the field back to the
//!    handle, or, if the handle is already gone, drops the waker itself. A
//!    handle dropped before completion clears both bits at once and so owns
//!    the field.
//! 5. **The owned-list links** in the header are touched only under the lock
//!    of the list shard the task's id maps to.
//! 6. **The scheduler field and the id** never change after the cell is built;
//!    any reference may read them.
//! 7. **Done callbacks** (`done.rs`) run on the completing thread, which
//!    still holds `RUNNING`, after it stored the outcome and before it
//!    publishes `COMPLETE`: they read the outcome while nothing can write it.
//!    The list they sit in hangs off the header and is freed with the cell.

mod abort;
mod builder;
pub(crate) mod core;
mod done;
mod error;
mod harness;
mod id;
mod join;
pub(crate) mod list;
mod raw;
pub(crate) mod record;
mod state;
mod waker;
mod yield_now;

#[cfg(all(test, loom))]
pub(crate) mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use self::abort::AbortHandle;
pub use self::builder::Builder;
pub use self::done::{DoneTask, Unavailable};
pub use self::error::JoinError;
pub use self::id::Id;
pub use self::join::JoinHandle;
pub use self::yield_now::yield_now;
pub use crate::{spawn, spawn_blocking};

/// The id of the task being polled on this thread.
///
/// # Panics
///
/// Outside a task; use [`try_id`] there.
#[track_caller]
pub fn id() -> Id {
    try_id().expect("weft::task::id() called outside a task: use try_id() where there may be no task")
}

/// The id of the task being polled (or dropped) on this thread, if any.
pub fn try_id() -> Option<Id> {
    crate::context::current_task_id()
}

pub(crate) use self::core::Header;
use self::raw::RawTask;
use self::record::TaskRecord;
pub(crate) use self::waker::wake_after_poll;
use crate::observe::PollRecord;

use std::future::Future;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// What a task needs from the scheduler that owns it.
///
/// The scheduler value lives inside the task's cell. Handing a `Notified`
/// to a queue gives the task away: another thread may run it to completion
/// and free the cell at once. So scheduling is split in two, and neither half
/// may touch the cell after the `Notified` is queued: [`schedule_local`]
/// reaches the scheduler through the current thread's own context, given only
/// the scheduler's identity; [`schedule_remote`] borrows `self`, and its
/// callers keep an extra reference to the task for the duration of the call.
///
/// [`schedule_local`]: Schedule::schedule_local
/// [`schedule_remote`]: Schedule::schedule_remote
pub(crate) trait Schedule: Send + Sync + Sized + 'static {
    /// The task completed: take it out of the owned-task list and return the
    /// list's reference, or `None` if it was not in the list (already taken
    /// by shutdown, or never bound to one).
    fn release(&self, task: &Task<Self>) -> Option<Task<Self>>;

    /// The address of the scheduler's shared state: identifies the scheduler
    /// without borrowing the task.
    fn id(&self) -> *const ();

    /// Schedules the task on this thread, if this thread runs the scheduler
    /// whose [`id`](Schedule::id) is `id` (one of its workers, or the thread
    /// in its `block_on`); hands the task back otherwise. A task that was
    /// woken during its own poll (`is_yield`) goes to the back of a queue,
    /// never into a LIFO slot, so it cannot monopolise its worker.
    fn schedule_local(id: *const (), task: Notified<Self>, is_yield: bool) -> Result<(), Notified<Self>>;

    /// Schedules the task from any thread, through the injection queue. The
    /// caller keeps the task (and so `self`) alive until this returns.
    fn schedule_remote(&self, task: Notified<Self>);

    /// True if an abort stops a task that is running: its future is
    /// dropped at its next `Pending`. False for the blocking pool, whose
    /// tasks never return `Pending`: once running, a job runs to its end,
    /// and [`JoinHandle::cancel`] says so by returning false.
    const INTERRUPTIBLE: bool = true;

    /// A panic escaped the task's future; its payload is already stored for
    /// the `JoinHandle`. The scheduler applies its unhandled-panic policy.
    fn unhandled_panic(&self) {}

    /// `n` done callbacks of the task ran (`done.rs`), for the runtime's
    /// `callbacks_run` metric.
    fn callbacks_ran(&self, _n: u64) {}
}

/// The owned-task list's counted reference to a task.
pub(crate) struct Task<S: 'static> {
    raw: RawTask,
    _scheduler: PhantomData<S>,
}

/// A counted reference that stands for one scheduled run of the task.
#[repr(transparent)]
pub(crate) struct Notified<S: 'static>(Task<S>);

// SAFETY: a task reference gives access to the cell only through the state
// word's protocol (rules 1-6 above). The future and the output are `Send`
// (every spawn function requires it) and the scheduler is `Send + Sync`
// (`Schedule` requires it), so the reference may move between threads and be
// shared.
unsafe impl<S: Schedule> Send for Task<S> {}
// SAFETY: as for `Send`: shared access goes through atomics.
unsafe impl<S: Schedule> Sync for Task<S> {}

/// Builds a task: the owned-list reference, the first `Notified`, and the
/// `JoinHandle`. `location` is where it was spawned; `named` says the owned
/// list keeps a name for it.
#[inline]
pub(crate) fn new_task<T, S>(
    future: T,
    scheduler: S,
    id: Id,
    location: &'static std::panic::Location<'static>,
    named: bool,
) -> (Task<S>, Notified<S>, JoinHandle<T::Output>)
where
    T: Future + Send + 'static,
    T::Output: Send + 'static,
    S: Schedule,
{
    let raw = RawTask::new::<T, S>(future, scheduler, id, TaskRecord::new(location, named));
    let task = Task::from_raw(raw);
    let notified = Notified(Task::from_raw(raw));
    let join = JoinHandle::new(raw);
    (task, notified, join)
}

impl<S: 'static> Task<S> {
    fn from_raw(raw: RawTask) -> Task<S> {
        Task {
            raw,
            _scheduler: PhantomData,
        }
    }

    /// The task's id.
    pub(crate) fn id(&self) -> Id {
        self.raw.header().id
    }

    /// The task's state and record, for a dump.
    pub(crate) fn view(&self) -> record::TaskView {
        self.raw.header().view()
    }

    pub(crate) fn header_ptr(&self) -> NonNull<Header> {
        self.raw.header_ptr()
    }

    /// Rebuilds a reference from a pointer the owned list stored.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a live task of scheduler type `S`, and the caller
    /// must own one reference count, which the new `Task` takes over.
    pub(crate) unsafe fn from_header_ptr(ptr: NonNull<Header>) -> Task<S> {
        // SAFETY: forwarded to the caller.
        Task::from_raw(unsafe { RawTask::from_header(ptr) })
    }

    /// Gives up this reference without releasing its count; the owned list
    /// keeps the pointer instead.
    pub(crate) fn into_header_ptr(self) -> NonNull<Header> {
        let ptr = self.raw.header_ptr();
        std::mem::forget(self);
        ptr
    }

    /// Cancels the task for runtime shutdown, consuming this reference: if
    /// the task is idle its future is dropped here; if it is running, the
    /// poller drops it when the poll returns.
    pub(crate) fn shutdown(self) {
        let raw = self.raw;
        std::mem::forget(self);
        raw.shutdown();
    }
}

impl<S: 'static> Notified<S> {
    /// Gives up this notification as a pointer, keeping its reference count
    /// (for a slot that stores tasks in an atomic pointer).
    pub(crate) fn into_header_ptr(self) -> NonNull<Header> {
        self.0.into_header_ptr()
    }

    /// Rebuilds a notification from [`into_header_ptr`](Self::into_header_ptr).
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_header_ptr` of a `Notified<S>` whose reference
    /// nobody else has taken back.
    pub(crate) unsafe fn from_header_ptr(ptr: NonNull<Header>) -> Notified<S> {
        // SAFETY: forwarded to the caller.
        Notified(unsafe { Task::from_header_ptr(ptr) })
    }
}

impl<S: 'static> Notified<S> {
    /// The task's id, the number its next poll will have, and where it was
    /// spawned: what the timeline names a poll by (read before the run,
    /// which may free the task).
    pub(crate) fn trace_info(&self) -> (Id, u32, &'static std::panic::Location<'static>) {
        let header = self.0.raw.header();
        let record = header.record();
        (header.id, record.polls().wrapping_add(1), record.location())
    }
}

impl<S: Schedule> Notified<S> {
    /// Runs the task: polls it once (or cancels it, if cancellation was
    /// requested), consuming this notification. `poller` is the record of
    /// the thread that runs it (`observe::PollRecord`).
    pub(crate) fn run(self, poller: &PollRecord) {
        let raw = self.0.raw;
        std::mem::forget(self);
        raw.poll(poller);
    }
}

impl<S: 'static> Drop for Task<S> {
    fn drop(&mut self) {
        if self.raw.state().ref_dec() {
            self.raw.dealloc();
        }
    }
}

impl<S: 'static> std::fmt::Debug for Task<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id())
            .field("state", self.raw.state())
            .finish()
    }
}

impl<S: 'static> std::fmt::Debug for Notified<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Notified").field(&self.0).finish()
    }
}
