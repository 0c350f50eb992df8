//! Per-thread context: which runtime this thread is in, whether it is driving
//! one (so that a nested `block_on` can be refused), which task it is
//! polling, and the scheduler state a worker uses to schedule locally.
//!
//! Each piece is its own thread-local with a `const` initialiser, so reading
//! one is a plain TLS access with no lazy-init check; only `CURRENT` (which
//! holds an `Arc`) registers a destructor.

use crate::scheduler;
use crate::task::Id;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::ptr;

std::thread_local! {
    /// The runtime whose handle `spawn` and `Handle::current` use.
    static CURRENT: RefCell<Option<scheduler::Handle>> = const { RefCell::new(None) };
    /// True on a worker thread and inside `block_on`: blocking the thread on
    /// another runtime here would stall this one's tasks (or deadlock).
    static ENTERED: Cell<bool> = const { Cell::new(false) };
    /// The task being polled or dropped on this thread, and inside a poll
    /// its header: one cell, so that a poll enters and leaves it with one
    /// access each.
    static TASK: Cell<TaskScope> = const { Cell::new(TaskScope::NONE) };
    /// The scheduler state of the worker (or `block_on` call) running here.
    static SCHEDULER: Cell<*const scheduler::Context> = const { Cell::new(ptr::null()) };
}

/// There is no runtime to use on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryCurrentError {
    thread_local_destroyed: bool,
}

impl TryCurrentError {
    /// The error for a thread that has no runtime context. For crates that
    /// compose this executor with more parts (as `weft` adds its reactor)
    /// and find one of them missing.
    pub const fn missing_context() -> Self {
        TryCurrentError {
            thread_local_destroyed: false,
        }
    }

    /// True if the thread has no runtime context at all.
    pub fn is_missing_context(&self) -> bool {
        !self.thread_local_destroyed
    }

    /// True if the thread is exiting and its context was already destroyed.
    pub fn is_thread_local_destroyed(&self) -> bool {
        self.thread_local_destroyed
    }
}

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.thread_local_destroyed {
            f.write_str("the Weft runtime context of this thread was already destroyed (the thread is exiting)")
        } else {
            f.write_str(NO_RUNTIME)
        }
    }
}

impl std::error::Error for TryCurrentError {}

/// The message of every "no runtime" panic.
pub(crate) const NO_RUNTIME: &str = "there is no Weft runtime on this thread: call this from inside \
     `Runtime::block_on`, from a task the runtime runs, or after `Runtime::enter()`";

/// Runs `f` with the current runtime's handle.
pub(crate) fn with_current<R>(f: impl FnOnce(&scheduler::Handle) -> R) -> Result<R, TryCurrentError> {
    match CURRENT.try_with(|current| current.borrow().as_ref().map(f)) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(TryCurrentError {
            thread_local_destroyed: false,
        }),
        Err(_) => Err(TryCurrentError {
            thread_local_destroyed: true,
        }),
    }
}

/// Makes `handle` the current runtime until the guard drops.
pub(crate) fn set_current(handle: &scheduler::Handle) -> SetCurrentGuard {
    // On an exiting thread (a thread-local destructor) there is nothing to
    // set; the guard then restores nothing.
    let prev = CURRENT.try_with(|current| current.replace(Some(handle.clone()))).ok();
    SetCurrentGuard { prev }
}

/// Restores the previous current runtime.
pub(crate) struct SetCurrentGuard {
    prev: Option<Option<scheduler::Handle>>,
}

impl Drop for SetCurrentGuard {
    fn drop(&mut self) {
        if let Some(prev) = self.prev.take() {
            // Drop the replaced handle outside the borrow: its destructor may
            // run arbitrary code that looks at the context.
            let replaced = CURRENT.try_with(|current| current.replace(prev));
            drop(replaced);
        }
    }
}

impl fmt::Debug for SetCurrentGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetCurrentGuard").finish_non_exhaustive()
    }
}

/// Marks the thread as driving `handle`'s runtime until the guard drops, and
/// makes it current.
///
/// # Panics
///
/// If the thread already drives a runtime: blocking it would stall that
/// runtime's tasks.
#[track_caller]
pub(crate) fn enter_runtime(handle: &scheduler::Handle) -> EnterRuntimeGuard {
    if ENTERED.try_with(|e| e.replace(true)).unwrap_or(false) {
        panic!(
            "Weft cannot start a runtime from within a runtime: `block_on` was called on a thread \
             that is already running async tasks (a worker thread, or inside another `block_on`), \
             and blocking it would stall every task scheduled on it. Inside async code, `.await` \
             the future instead; to run blocking code that itself calls `block_on`, move it to \
             `weft::spawn_blocking` or a separate thread."
        );
    }
    EnterRuntimeGuard {
        _current: set_current(handle),
    }
}

/// Undoes [`enter_runtime`].
pub(crate) struct EnterRuntimeGuard {
    _current: SetCurrentGuard,
}

impl Drop for EnterRuntimeGuard {
    fn drop(&mut self) {
        let _ = ENTERED.try_with(|e| e.set(false));
    }
}

/// True if this thread drives a runtime (a worker, or inside `block_on`).
pub(crate) fn is_entered() -> bool {
    ENTERED.try_with(Cell::get).unwrap_or(false)
}

/// What [`TASK`] holds: two words, so that a poll saves and restores it
/// with one copy each.
#[derive(Clone, Copy)]
struct TaskScope {
    /// The task being polled or dropped here.
    id: Option<Id>,
    /// The header of the task being polled here (null outside a poll), with
    /// [`DEFERRED`] set if that task asked to be rescheduled after this poll
    /// (see [`defer_wake`]). Headers are word-aligned, so the bit is free.
    polling: *const (),
}

/// The bit of [`TaskScope::polling`] that [`defer_wake`] sets.
const DEFERRED: usize = 1;

impl TaskScope {
    const NONE: TaskScope = TaskScope {
        id: None,
        polling: ptr::null(),
    };

    /// The header of the task being polled, without the flag (null outside
    /// a poll).
    #[inline]
    fn header(self) -> *const () {
        self.polling.map_addr(|addr| addr & !DEFERRED)
    }
}

/// Sets the id of the task being dropped (or otherwise run outside a poll)
/// until the guard drops.
#[inline]
pub(crate) fn set_current_task_id(id: Option<Id>) -> TaskIdGuard {
    TaskIdGuard {
        prev: TASK
            .try_with(|cell| {
                let scope = cell.get();
                cell.set(TaskScope { id, ..scope });
                scope.id
            })
            .unwrap_or(None),
    }
}

/// Restores the previous task id.
pub(crate) struct TaskIdGuard {
    prev: Option<Id>,
}

impl Drop for TaskIdGuard {
    #[inline]
    fn drop(&mut self) {
        let _ = TASK.try_with(|cell| {
            let scope = cell.get();
            cell.set(TaskScope { id: self.prev, ..scope });
        });
    }
}

/// Marks task `id`, whose header `task` points to, as being polled on this
/// thread until the guard drops (its id is the current task id meanwhile);
/// [`PollGuard::take_deferred_wake`] then tells whether it asked, through
/// [`defer_wake`], to be rescheduled.
#[inline]
pub(crate) fn enter_poll(id: Id, task: *const ()) -> PollGuard {
    debug_assert!(
        task.addr() & DEFERRED == 0,
        "weft bug: a task header is not word-aligned"
    );
    let scope = TaskScope {
        id: Some(id),
        polling: task,
    };
    PollGuard {
        prev: TASK.try_with(|cell| cell.replace(scope)).unwrap_or(TaskScope::NONE),
    }
}

/// Restores the previous task and polling state.
pub(crate) struct PollGuard {
    prev: TaskScope,
}

impl PollGuard {
    /// True if the task asked to be rescheduled during this poll; clears the
    /// request.
    #[inline]
    pub(crate) fn take_deferred_wake(&self) -> bool {
        TASK.try_with(|cell| {
            let scope = cell.get();
            cell.set(TaskScope {
                polling: scope.header(),
                ..scope
            });
            scope.polling.addr() & DEFERRED != 0
        })
        .unwrap_or(false)
    }
}

impl Drop for PollGuard {
    #[inline]
    fn drop(&mut self) {
        let _ = TASK.try_with(|cell| cell.set(self.prev));
    }
}

/// Asks for the task being polled on this thread to be polled again after
/// this poll, without a wake, if `task` (the header a task waker points to)
/// is that task. The scheduler then treats the poll as if the task had been
/// woken during it, at the price of the idle transition it does anyway
/// instead of an extra atomic operation. False if `task` is not the task
/// being polled here; the caller then wakes normally.
pub(crate) fn defer_wake(task: *const ()) -> bool {
    TASK.try_with(|cell| {
        let scope = cell.get();
        let polling = scope.header();
        let ours = !polling.is_null() && ptr::eq(polling, task);
        if ours {
            cell.set(TaskScope {
                polling: scope.polling.map_addr(|addr| addr | DEFERRED),
                ..scope
            });
        }
        ours
    })
    .unwrap_or(false)
}

/// Runs `f` with the header of the task being polled on this thread, if
/// this thread is inside a task's poll.
#[inline]
pub(crate) fn with_polling_header(f: impl FnOnce(&crate::task::Header)) {
    let ptr = TASK.try_with(|cell| cell.get().header()).unwrap_or(ptr::null());
    if !ptr.is_null() {
        // SAFETY: `TASK` holds a header pointer only between
        // `enter_poll` and the drop of its guard, that is, inside the poll
        // of that task on this thread; its poller holds a reference to the
        // task all that time, so the header is alive.
        f(unsafe { &*ptr.cast::<crate::task::Header>() });
    }
}

/// The id of the task being polled on this thread, if any.
pub(crate) fn current_task_id() -> Option<Id> {
    TASK.try_with(|cell| cell.get().id).unwrap_or(None)
}

/// Runs `f` with the scheduler state of the worker on this thread, if any.
#[inline]
pub(crate) fn with_scheduler<R>(f: impl FnOnce(Option<&scheduler::Context>) -> R) -> R {
    let ptr = SCHEDULER.try_with(Cell::get).unwrap_or(ptr::null());
    // SAFETY: the pointer is set only by `set_scheduler`, which keeps the
    // context alive and restores the previous pointer before it returns.
    f(unsafe { ptr.as_ref() })
}

/// Runs `f` with `cx` as this thread's scheduler state.
pub(crate) fn set_scheduler<R>(cx: &scheduler::Context, f: impl FnOnce() -> R) -> R {
    struct Reset(*const scheduler::Context);
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = SCHEDULER.try_with(|cell| cell.set(self.0));
        }
    }
    let _reset = Reset(SCHEDULER.with(|cell| cell.replace(cx)));
    f()
}
