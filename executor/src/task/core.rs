//! The layout of a task's one allocation.
//!
//! ```text
//! Cell<T, S> (repr(C): a pointer to the cell is a pointer to its header)
//! ├── Header   state word · vtable · id · owned-list links · done list (type-erased)
//! ├── Core     scheduler S · stage (future T, or its outcome) (typed)
//! └── Trailer  join waker                                     (typed)
//! ```
//!
//! Everything that must be reachable without knowing `T` and `S` (the owned
//! list, the waker vtable, queues) lives in the header; the rest is reached
//! through the vtable, whose functions are instantiated per `(T, S)`.
//!
//! On a 64-bit target the bookkeeping is 104 bytes (header 80, of which 32
//! are the task's record for dumps, `record.rs`, and 8 the done-callback
//! list; scheduler 8; join waker 16), and the stage is as large as the
//! future or the outcome, whichever is larger, with no tag of its own: the
//! state word's `COMPLETE` bit says which of the two it holds. An outcome
//! with an output of at most 8 bytes is 16 (the panic payload is boxed once
//! more, so its variant is one word), so a future of at most 16 bytes makes
//! a 120-byte cell: a 128-byte malloc chunk, which glibc frees to its fast
//! bins even when the per-thread cache is full (a 144-byte one it does
//! not). Test `the_bookkeeping_of_a_task_is_104_bytes_and_the_stage_has_no_tag`.

use super::id::Id;
use super::raw::Vtable;
use super::record::TaskRecord;
use super::state::State;
use super::{JoinError, Schedule};
use crate::loom::{AtomicPtr, UnsafeCell};
use std::any::Any;
use std::future::Future;
use std::mem::ManuallyDrop;
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

/// The type-erased head of every task. What every poll touches (the state,
/// the vtable, the id and the record's poll count and stamp) comes first,
/// within 32 bytes, so that a poll touches one cache line of the header
/// wherever the allocator puts it on a 16-byte boundary but the last.
#[repr(C)]
pub(crate) struct Header {
    pub(super) state: State,
    pub(super) vtable: &'static Vtable,
    pub(super) id: Id,
    /// What dumps show of the task (its own rules: `record.rs`).
    pub(super) record: TaskRecord,
    /// Links of the owned-task list (rule 5: only under the shard lock).
    pub(super) owned: UnsafeCell<Pointers>,
    /// The done-callback list, null until the first callback
    /// (`done.rs`, rule 7).
    pub(super) done: AtomicPtr<()>,
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
    /// The future or its outcome (rule 1).
    stage: UnsafeCell<Stage<T>>,
}

/// What the task holds, over its life: the future until the task is
/// complete, the outcome from then on (rule 1).
///
/// A union, not an enum: which field is live follows from the state word
/// and from who is asking, so a tag would only make every cell a word
/// larger (the compiler finds no niche for it in a future). While the task
/// is not `COMPLETE`, `future` is live, except inside the `RUNNING` holder
/// between dropping the future and storing the outcome (it stores one on
/// every path, before it sets `COMPLETE`, and holds a reference
/// meanwhile). Once `COMPLETE` is set, `outcome` is live.
union Stage<T: Future> {
    future: ManuallyDrop<T>,
    outcome: ManuallyDrop<Outcome<T::Output>>,
}

/// How a task ended, as it is stored. The `JoinHandle` turns it into its
/// `Result` (see [`Core::take_output`]): a `JoinError` would repeat the id,
/// which the header holds, and wrap the panic payload to make it `Sync`.
pub(super) enum Outcome<T> {
    /// The future returned this.
    Finished(T),
    /// The future (or its destructor) panicked with this payload. Boxed
    /// once more so that the variant is one word, not the two of a
    /// `Box<dyn Any>`: with an empty or small output the stage, and so every
    /// small task's cell, is a word smaller (a panic pays one allocation).
    Panicked(Box<Box<dyn Any + Send + 'static>>),
    /// The future was dropped before it completed.
    Cancelled,
    /// Taken by the `JoinHandle`, or dropped.
    Consumed,
}

/// The join waker (rule 4).
pub(super) struct Trailer {
    pub(super) waker: UnsafeCell<Option<Waker>>,
}

impl<T: Future, S: Schedule> Cell<T, S> {
    /// Allocates the cell and builds it in place: written field by field
    /// into the allocation, the cell is never assembled on the stack first
    /// and copied (a copy the compiler makes with `memcpy` once the cell
    /// passes a hundred-odd bytes).
    #[inline]
    pub(super) fn new(future: T, scheduler: S, id: Id, record: TaskRecord, vtable: &'static Vtable) -> Box<Cell<T, S>> {
        let mut cell = Box::<Cell<T, S>>::new_uninit();
        let ptr = cell.as_mut_ptr();
        // SAFETY: `ptr` points to an allocation for one `Cell<T, S>`; each of
        // its three fields is written exactly once, in place, through raw
        // pointers (no reference to uninitialised memory is formed), so
        // every byte the cell's type needs is initialised before
        // `assume_init`.
        unsafe {
            std::ptr::addr_of_mut!((*ptr).header).write(Header {
                state: State::new(),
                vtable,
                id,
                owned: UnsafeCell::new(Pointers::default()),
                record,
                done: AtomicPtr::new(std::ptr::null_mut()),
            });
            std::ptr::addr_of_mut!((*ptr).core).write(Core {
                scheduler,
                stage: UnsafeCell::new(Stage {
                    future: ManuallyDrop::new(future),
                }),
            });
            std::ptr::addr_of_mut!((*ptr).trailer).write(Trailer {
                waker: UnsafeCell::new(None),
            });
            cell.assume_init()
        }
    }
}

impl Header {
    /// The task's record (see `record.rs` for who writes what).
    pub(crate) fn record(&self) -> &TaskRecord {
        &self.record
    }

    /// The task's id.
    pub(crate) fn id(&self) -> Id {
        self.id
    }

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
    /// Polls the future.
    ///
    /// # Safety
    ///
    /// The caller holds `RUNNING` (rule 1) and the future is live (the task
    /// is not complete, and the caller has not dropped it).
    pub(super) unsafe fn poll(&self, cx: &mut Context<'_>) -> Poll<T::Output> {
        self.stage.with_mut(|ptr| {
            // SAFETY: rule 1 gives this thread exclusive access to the stage,
            // and the caller vouches that `future` is the live field.
            let future = unsafe { &mut *(*ptr).future };
            // SAFETY: the future lives inside the heap cell and is never moved
            // out of it: it is dropped in place (`drop_future`).
            let future = unsafe { Pin::new_unchecked(future) };
            future.poll(cx)
        })
    }

    /// Drops the future in place. From then on the stage holds nothing until
    /// [`store_output`](Self::store_output), which the caller must call
    /// before it sets `COMPLETE`, even if this panics (the future then
    /// counts as dropped: drop glue finishes the other fields while it
    /// unwinds). Callers put the task's id in scope first, so destructors can
    /// ask for it.
    ///
    /// # Safety
    ///
    /// As for [`poll`](Self::poll).
    pub(super) unsafe fn drop_future(&self) {
        self.stage.with_mut(|ptr| {
            // SAFETY: exclusive access (rule 1), `future` is live, and it is
            // never touched again: it is dropped in place, as pinning requires.
            unsafe { ManuallyDrop::drop(&mut (*ptr).future) }
        });
    }

    /// Stores the task's outcome.
    ///
    /// # Safety
    ///
    /// The caller holds `RUNNING` (rule 1) and has dropped the future, so the
    /// stage holds nothing: nothing is dropped (and nothing can panic) here.
    pub(super) unsafe fn store_output(&self, outcome: Outcome<T::Output>) {
        // SAFETY: exclusive access (rule 1); writing a union field drops
        // nothing.
        self.stage.with_mut(|ptr| unsafe {
            (*ptr).outcome = ManuallyDrop::new(outcome);
        });
    }

    /// Drops the outcome (a detached task, or a handle dropped unread). Callers
    /// put the task's id in scope first, so destructors can ask for it.
    ///
    /// # Safety
    ///
    /// The task is complete and the caller owns its output (rule 1).
    pub(super) unsafe fn drop_output(&self) {
        // SAFETY: forwarded to the caller. The old outcome is moved out before
        // it is dropped, so a destructor that panics leaves `Consumed` behind.
        drop(unsafe { self.replace_output() });
    }

    /// False if dropping the outcome would run no code: a returned value
    /// whose type has no destructor (`()`, most often), a cancellation, or
    /// one already taken. Lets the completing thread of a detached task skip
    /// the id scope and the panic guard that a destructor needs.
    ///
    /// # Safety
    ///
    /// As for [`drop_output`](Self::drop_output).
    pub(super) unsafe fn output_needs_drop(&self) -> bool {
        self.stage.with(|ptr| {
            // SAFETY: the task is complete, so `outcome` is the live field,
            // and the caller owns it: nothing writes it meanwhile.
            match unsafe { &*(*ptr).outcome } {
                Outcome::Finished(_) => std::mem::needs_drop::<T::Output>(),
                Outcome::Panicked(_) => true,
                Outcome::Cancelled | Outcome::Consumed => false,
            }
        })
    }

    /// Takes the outcome out of a finished task; `id` is the task's, for the
    /// `JoinError`.
    ///
    /// # Safety
    ///
    /// The task is complete and the caller owns its output (rule 1: the
    /// `JoinHandle`).
    pub(super) unsafe fn take_output(&self, id: Id) -> Result<T::Output, JoinError> {
        // SAFETY: forwarded to the caller.
        match unsafe { self.replace_output() } {
            Outcome::Finished(output) => Ok(output),
            Outcome::Panicked(payload) => Err(JoinError::panic(id, *payload)),
            Outcome::Cancelled => Err(JoinError::cancelled(id)),
            Outcome::Consumed => panic!(
                "a Weft JoinHandle was polled after it returned Ready; \
                 a JoinHandle yields its output once: keep the result of the first poll"
            ),
        }
    }

    /// Moves the outcome out, leaving `Consumed` (a cancellation, which has
    /// nothing to move, stays: `cancelled()` still answers after an await).
    ///
    /// # Safety
    ///
    /// The task is complete and the caller owns its output (rule 1).
    unsafe fn replace_output(&self) -> Outcome<T::Output> {
        self.stage.with_mut(|ptr| {
            // SAFETY: the task is complete, so `outcome` is the live field
            // (it was stored before COMPLETE was set), and the caller has
            // exclusive access to it.
            let outcome = unsafe { &mut *(*ptr).outcome };
            match outcome {
                Outcome::Cancelled => Outcome::Cancelled,
                _ => std::mem::replace(outcome, Outcome::Consumed),
            }
        })
    }

    /// A pointer to the stored outcome, for reading in place.
    ///
    /// # Safety
    ///
    /// The outcome is stored (the task is complete, or the caller is the
    /// `RUNNING` holder that stored it), and the caller reads through the
    /// pointer only while nobody writes the stage (rule 1).
    pub(super) unsafe fn outcome_ptr(&self) -> *const Outcome<T::Output> {
        // SAFETY: forwarded to the caller; no reference is formed here.
        self.stage
            .with(|ptr| unsafe { std::ptr::addr_of!((*ptr).outcome) }.cast::<Outcome<T::Output>>())
    }

    /// Drops whichever field of the stage is live, as the cell is freed.
    ///
    /// # Safety
    ///
    /// The caller released the last reference; `complete` is the state
    /// word's `COMPLETE` bit.
    #[inline]
    pub(super) unsafe fn drop_stage(&self, complete: bool) {
        self.stage.with_mut(|ptr| {
            // SAFETY: nothing else can reach the cell. Without COMPLETE the
            // future is live: every path that drops it stores an outcome and
            // sets COMPLETE while holding a reference. With COMPLETE, the
            // outcome is (usually `Consumed` by now).
            unsafe {
                if complete {
                    ManuallyDrop::drop(&mut (*ptr).outcome);
                } else {
                    ManuallyDrop::drop(&mut (*ptr).future);
                }
            }
        });
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
