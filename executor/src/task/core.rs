//! The layout of a task's one allocation.
//!
//! ```text
//! Cell<T, S> (repr(C): a pointer to the cell is a pointer to its header)
//! ├── Header   state word · vtable · id · owned-list links   (type-erased)
//! ├── Core     scheduler S · stage (future T, or its output)  (typed)
//! └── Trailer  join waker                                     (typed)
//! ```
//!
//! Everything that must be reachable without knowing `T` and `S` (the owned
//! list, the waker vtable, queues) lives in the header; the rest is reached
//! through the vtable, whose functions are instantiated per `(T, S)`.

use super::id::Id;
use super::raw::Vtable;
use super::state::State;
use super::{JoinError, Schedule};
use crate::loom::UnsafeCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

/// One task's allocation.
#[repr(C)]
pub(super) struct Cell<T: Future, S> {
    pub(super) header: Header,
    pub(super) core: Core<T, S>,
    pub(super) trailer: Trailer,
}

/// The type-erased head of every task.
#[repr(C)]
pub(crate) struct Header {
    pub(super) state: State,
    pub(super) vtable: &'static Vtable,
    pub(super) id: Id,
    /// Links of the owned-task list (rule 5: only under the shard lock).
    pub(super) owned: UnsafeCell<Pointers>,
}

/// Links of an intrusive doubly linked list.
#[derive(Debug, Default)]
pub(crate) struct Pointers {
    pub(crate) prev: Option<NonNull<Header>>,
    pub(crate) next: Option<NonNull<Header>>,
}

/// The typed part: the scheduler and the stage.
pub(super) struct Core<T: Future, S> {
    pub(super) scheduler: S,
    /// The future or its output (rule 1).
    stage: UnsafeCell<Stage<T>>,
}

/// What the task holds, over its life.
pub(super) enum Stage<T: Future> {
    Running(T),
    Finished(Result<T::Output, JoinError>),
    Consumed,
}

/// The join waker (rule 4).
pub(super) struct Trailer {
    pub(super) waker: UnsafeCell<Option<Waker>>,
}

impl<T: Future, S: Schedule> Cell<T, S> {
    pub(super) fn new(future: T, scheduler: S, id: Id, vtable: &'static Vtable) -> Box<Cell<T, S>> {
        Box::new(Cell {
            header: Header {
                state: State::new(),
                vtable,
                id,
                owned: UnsafeCell::new(Pointers::default()),
            },
            core: Core {
                scheduler,
                stage: UnsafeCell::new(Stage::Running(future)),
            },
            trailer: Trailer {
                waker: UnsafeCell::new(None),
            },
        })
    }
}

impl Header {
    /// The owned-list links.
    ///
    /// # Safety
    ///
    /// The caller holds the lock of the list shard this task maps to (rule 5)
    /// and does not keep the pointer past releasing it.
    pub(crate) unsafe fn owned_pointers(&self) -> *mut Pointers {
        self.owned.with_mut(|ptr| ptr)
    }
}

impl<T: Future, S> Core<T, S> {
    /// Polls the future. If it completes, the future is dropped here (inside
    /// the caller's panic guard) and its output returned.
    ///
    /// # Safety
    ///
    /// The caller holds `RUNNING` (rule 1) and the stage is `Running`.
    pub(super) unsafe fn poll(&self, cx: &mut Context<'_>) -> Poll<T::Output> {
        let res = self.stage.with_mut(|ptr| {
            // SAFETY: rule 1 gives this thread exclusive access to the stage.
            let Stage::Running(future) = (unsafe { &mut *ptr }) else {
                unreachable!("weft bug: polled a task whose future is gone");
            };
            // SAFETY: the future lives inside the heap cell and is never moved
            // out of it: it is dropped in place (`set_stage`) when done.
            let future = unsafe { Pin::new_unchecked(future) };
            future.poll(cx)
        });
        if res.is_ready() {
            // SAFETY: as above; we still hold RUNNING.
            unsafe { self.set_stage(Stage::Consumed) };
        }
        res
    }

    /// Drops the future, or the output if the task is finished. Callers put
    /// the task's id in scope first, so destructors can ask for it.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to the stage (rule 1).
    pub(super) unsafe fn drop_future_or_output(&self) {
        // SAFETY: forwarded to the caller.
        unsafe { self.set_stage(Stage::Consumed) };
    }

    /// Stores the task's outcome.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to the stage (rule 1) and the stage is
    /// `Consumed`, so nothing is dropped (and nothing can panic) here.
    pub(super) unsafe fn store_output(&self, output: Result<T::Output, JoinError>) {
        // SAFETY: forwarded to the caller.
        unsafe { self.set_stage(Stage::Finished(output)) };
    }

    /// Takes the outcome out of a finished task.
    ///
    /// # Safety
    ///
    /// The caller owns the output (rule 1: the `JoinHandle` of a complete
    /// task).
    pub(super) unsafe fn take_output(&self) -> Result<T::Output, JoinError> {
        self.stage.with_mut(|ptr| {
            // SAFETY: forwarded to the caller.
            match std::mem::replace(unsafe { &mut *ptr }, Stage::Consumed) {
                Stage::Finished(output) => output,
                _ => panic!(
                    "a Weft JoinHandle was polled after it returned Ready; \
                     a JoinHandle yields its output once: keep the result of the first poll"
                ),
            }
        })
    }

    /// # Safety
    ///
    /// The caller has exclusive access to the stage (rule 1).
    unsafe fn set_stage(&self, stage: Stage<T>) {
        // SAFETY: forwarded to the caller.
        self.stage.with_mut(|ptr| unsafe { *ptr = stage });
    }
}

impl Trailer {
    /// Overwrites the join waker.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to the field (rule 4).
    pub(super) unsafe fn set_waker(&self, waker: Option<Waker>) {
        // SAFETY: forwarded to the caller.
        self.waker.with_mut(|ptr| unsafe { *ptr = waker });
    }

    /// True if the stored waker would wake the same task as `waker`.
    ///
    /// # Safety
    ///
    /// The caller may read the field (rule 4).
    pub(super) unsafe fn will_wake(&self, waker: &Waker) -> bool {
        // SAFETY: forwarded to the caller.
        self.waker.with(|ptr| match unsafe { &*ptr } {
            Some(stored) => stored.will_wake(waker),
            None => false,
        })
    }

    /// Wakes the join waker.
    ///
    /// # Safety
    ///
    /// The caller may read the field (rule 4).
    pub(super) unsafe fn wake_join(&self) {
        // SAFETY: forwarded to the caller.
        self.waker.with(|ptr| match unsafe { &*ptr } {
            Some(waker) => waker.wake_by_ref(),
            None => unreachable!("weft bug: JOIN_WAKER set with no waker stored"),
        });
    }
}
