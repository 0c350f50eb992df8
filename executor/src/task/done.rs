//! Done callbacks on a task: asyncio's `Task.add_done_callback`, on the
//! [`JoinHandle`](super::JoinHandle) that `spawn` returns.
//!
//! A task that never has a callback pays for this with one null pointer in
//! its header and one load of it when it completes.
//!
//! # Rules
//!
//! 1. **The list is made on the first `add_done_callback`** and hangs off
//!    the header (`Header::done`, an atomic pointer, installed with a
//!    compare-and-swap so two first adders make one list). It lives until
//!    the cell is freed.
//! 2. **Everything happens under the list's lock**: an add, a remove by id,
//!    and the take of whoever runs the list, which moves it from `Open` to
//!    `Running` in the same critical section. A callback added while
//!    `Running` joins the batch being run next; one added once `Closed` is
//!    run by the adder, at once. So every callback runs exactly once, and
//!    in the order it was added.
//! 3. **Who runs the list is decided on the state word.** An adder, after
//!    pushing its callback, sets `HAS_CALLBACKS` with a read-modify-write;
//!    the completing thread publishes `COMPLETE` with a compare-and-swap
//!    that fails if the bit came in meanwhile, and runs the list first
//!    whenever it sees the bit. Read-modify-writes of one word are totally
//!    ordered: either the completing thread saw the bit (it runs the list,
//!    still holding `RUNNING`, before `COMPLETE`), or the adder sees
//!    `COMPLETE` without the bit in its own result (then nobody ran the
//!    list, and the adder runs it). A task with no callback pays nothing
//!    for this: its completion's compare-and-swap replaces an exclusive or.
//! 4. **The outcome is read while nothing writes it.** The completing thread
//!    runs the list before `COMPLETE`, and the output cannot be taken before
//!    `COMPLETE` (rule 1 of `task`). An adder that runs callbacks holds
//!    `&JoinHandle`, so the handle cannot take the output meanwhile either
//!    (taking needs `&mut`), and the task cannot drop it (the handle is
//!    alive).
//! 5. **A callback sees the outcome by reference**, through a [`DoneTask`]:
//!    a value is shared between threads there (the completing thread and a
//!    late adder may both read it), so adding needs `T: Sync`; the value is
//!    never cloned. Once the handle has taken the output, a late callback
//!    sees it as [`Unavailable::Taken`].
//! 6. **A callback that panics** costs no other callback its run: the panic
//!    is contained (the panic hook has printed it).

use super::core::{Header, Outcome};
use super::id::Id;
use crate::future::CallbackId;
use crate::loom::{Mutex, Ordering::AcqRel, Ordering::Acquire, lock};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

/// A done callback.
type Callback<T> = Box<dyn FnOnce(&DoneTask<'_, T>) + Send + 'static>;

/// The list a task's header points to (rule 1).
pub(super) struct DoneList<T> {
    state: Mutex<ListState<T>>,
}

struct ListState<T> {
    phase: Phase,
    callbacks: Vec<(CallbackId, Callback<T>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The task has not completed.
    Open,
    /// The completing thread runs the callbacks.
    Running,
    /// Every callback added before has run; later ones run at once.
    Closed,
}

/// What a done callback sees of its finished task: asyncio passes the task
/// itself; here, a view of its outcome.
pub struct DoneTask<'a, T> {
    id: Id,
    outcome: &'a Outcome<T>,
}

/// Why a finished task shows no value (asyncio raises `CancelledError`, the
/// exception, or `InvalidStateError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unavailable {
    /// The task has not finished.
    Pending,
    /// The task was cancelled (aborted, or its runtime shut down).
    Cancelled,
    /// The task panicked; awaiting the handle gives the panic as a
    /// [`JoinError`](super::JoinError).
    Panicked,
    /// The handle already took the output (it was awaited).
    Taken,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unavailable::Pending => "the task has not finished",
            Unavailable::Cancelled => "the task was cancelled",
            Unavailable::Panicked => "the task panicked (await its handle for the panic)",
            Unavailable::Taken => "the task's output was already taken by awaiting its handle",
        })
    }
}

impl std::error::Error for Unavailable {}

/// The value of `outcome`, or why there is none.
pub(super) fn result_of<T>(outcome: &Outcome<T>) -> Result<&T, Unavailable> {
    match outcome {
        Outcome::Finished(value) => Ok(value),
        Outcome::Panicked(_) => Err(Unavailable::Panicked),
        Outcome::Cancelled => Err(Unavailable::Cancelled),
        Outcome::Consumed => Err(Unavailable::Taken),
    }
}

impl<T> DoneTask<'_, T> {
    /// The task's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The task's output, or why there is none (asyncio's `task.result()`).
    pub fn result(&self) -> Result<&T, Unavailable> {
        result_of(self.outcome)
    }

    /// True if the task was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(self.outcome, Outcome::Cancelled)
    }

    /// True if the task panicked.
    pub fn panicked(&self) -> bool {
        matches!(self.outcome, Outcome::Panicked(_))
    }
}

impl<T: fmt::Debug> fmt::Debug for DoneTask<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoneTask")
            .field("id", &self.id)
            .field("result", &self.result())
            .finish()
    }
}

impl<T> DoneList<T> {
    /// The list of the task with `header`, made if there is none (rule 1).
    pub(super) fn get_or_make(header: &Header) -> &DoneList<T> {
        let mut current = header.done.load(Acquire);
        if current.is_null() {
            let fresh = Box::into_raw(Box::new(DoneList::<T> {
                state: Mutex::new(ListState {
                    phase: Phase::Open,
                    callbacks: Vec::new(),
                }),
            }))
            .cast::<()>();
            match header.done.compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire) {
                Ok(_) => current = fresh,
                Err(theirs) => {
                    // SAFETY: `fresh` was never shared: we still own it.
                    drop(unsafe { Box::from_raw(fresh.cast::<DoneList<T>>()) });
                    current = theirs;
                }
            }
        }
        // SAFETY: a non-null pointer is a `DoneList<T>` of this task's output
        // type (the `JoinHandle<T>` and the harness agree on `T`), freed only
        // with the cell (`free`), which the caller's reference keeps alive.
        unsafe { &*current.cast::<DoneList<T>>() }
    }

    /// The list of the task with `header`, if it has one.
    fn of(header: &Header) -> Option<&DoneList<T>> {
        let current = header.done.load(Acquire);
        // SAFETY: as in `get_or_make`.
        (!current.is_null()).then(|| unsafe { &*current.cast::<DoneList<T>>() })
    }

    /// Adds `callback` to the task with `header`; runs it (and any other
    /// the completing thread never saw) here if the task is done (rules 2
    /// and 3).
    ///
    /// # Safety
    ///
    /// `outcome` gives a pointer to the task's stored outcome (it is called
    /// only once the task is complete); the caller holds the task's
    /// `JoinHandle` by shared reference (rule 4).
    pub(super) unsafe fn add(
        &self,
        header: &Header,
        callback: Callback<T>,
        outcome: impl FnOnce() -> *const Outcome<T>,
    ) -> (CallbackId, u64) {
        let key = CallbackId::next();
        {
            let mut state = lock(&self.state);
            if state.phase == Phase::Closed {
                drop(state);
                // SAFETY: closed means the outcome is stored, and the handle
                // (which the caller borrows) cannot take it (rule 4).
                let outcome = unsafe { &*outcome() };
                let done = DoneTask { id: header.id, outcome };
                run_contained(callback, &done);
                return (key, 1);
            }
            state.callbacks.push((key, callback));
        }
        let before = header.state.mark_has_callbacks();
        if before.is_complete() && !before.has_callbacks() {
            // Rule 3: completion was published before any callback was
            // announced: nobody ran the list, so we do.
            // SAFETY: complete, and we hold the handle (rule 4).
            let outcome = unsafe { &*outcome() };
            return (key, self.run(&DoneTask { id: header.id, outcome }));
        }
        (key, 0)
    }

    /// Runs the list unless someone already did: `Open` to `Running`, then
    /// batch after batch until it is empty, then `Closed` (rule 2). Returns
    /// how many callbacks ran here.
    fn run(&self, done: &DoneTask<'_, T>) -> u64 {
        let mut state = lock(&self.state);
        if state.phase != Phase::Open {
            return 0;
        }
        state.phase = Phase::Running;
        let mut ran = 0;
        loop {
            let batch = std::mem::take(&mut state.callbacks);
            if batch.is_empty() {
                state.phase = Phase::Closed;
                return ran;
            }
            drop(state);
            for (_, callback) in batch {
                run_contained(callback, done);
                ran += 1;
            }
            state = lock(&self.state);
        }
    }

    /// Removes a callback that has not run yet; how many were removed.
    pub(super) fn remove(&self, key: CallbackId) -> usize {
        let mut state = lock(&self.state);
        let before = state.callbacks.len();
        state.callbacks.retain(|(k, _)| *k != key);
        before - state.callbacks.len()
    }
}

/// The completing thread runs the task's callbacks (rule 3): called when
/// it sees `HAS_CALLBACKS`, so the list exists; a second call finds it run.
/// Returns how many ran.
///
/// # Safety
///
/// The caller holds `RUNNING`, has stored `outcome`, and has not yet
/// published `COMPLETE`.
pub(super) unsafe fn run_at_completion<T>(header: &Header, outcome: &Outcome<T>) -> u64 {
    match DoneList::<T>::of(header) {
        Some(list) => list.run(&DoneTask { id: header.id, outcome }),
        None => 0,
    }
}

/// Frees the task's list, and any callback still in it (a task freed before
/// it completed never runs its callbacks).
///
/// # Safety
///
/// The cell is being freed: nothing else can reach it.
#[inline(always)]
pub(super) unsafe fn free<T>(header: &Header) {
    // Few tasks have a list: their frees take the call, the others one load.
    let current = header.done.load(Acquire);
    if !current.is_null() {
        // SAFETY: forwarded (the caller's contract).
        unsafe { free_list::<T>(current) };
    }
}

/// Frees a list that `free` found.
///
/// # Safety
///
/// As [`free`]; `list` is the header's list pointer, not null.
#[cold]
#[inline(never)]
unsafe fn free_list<T>(list: *mut ()) {
    // SAFETY: as in `get_or_make`; nothing else holds the pointer now.
    let list = unsafe { Box::from_raw(list.cast::<DoneList<T>>()) };
    // A callback's captures may panic on drop: contained.
    let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(list)));
}

/// Runs one callback, containing its panic (rule 5).
fn run_contained<T>(callback: Callback<T>, done: &DoneTask<'_, T>) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || callback(done))) {
        if let Err(inner) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(inner);
        }
    }
}
