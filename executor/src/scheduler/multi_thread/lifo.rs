//! The LIFO slot: the one task a worker runs next (the task its running
//! task just woke or spawned), which another worker may take only to rescue
//! it from a worker stuck in a poll.
//!
//! Message passing is fastest when the task that receives runs right after
//! the one that sent, on the same core, while the message is in cache: that
//! is what the slot is for (`worker.rs` explains its limits). But the task
//! that fills the slot may then block its thread (a blocking call, a long
//! computation), and a task waiting in the slot of a blocked worker would
//! wait for the whole block, however idle the other workers (tokio#4941).
//! So the slot is shared: the worker that watches over the driver checks,
//! every watch interval, for a worker that has stayed inside one poll since
//! its last check, and takes that worker's slot (`Context::rescue` in
//! `worker.rs`).
//!
//! Rules:
//!
//! 1. The owner puts and takes at any time, from its own thread (including
//!    from inside a task's poll: a wake or a spawn puts).
//! 2. Any other thread only takes, and only to rescue (above).
//! 3. Every change is a swap of the one pointer, so whoever swaps a task out
//!    owns it, exactly once: the owner and a rescuer never both run it.
//!
//! The cost of sharing is one atomic swap per put and per take on the
//! owner's side, against a plain move for a slot only the owner could touch.

use crate::loom::{AtomicPtr, Ordering::AcqRel};
use crate::task::{Header, Notified};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

/// A worker's LIFO slot, holding a task of scheduler type `S`.
pub(super) struct LifoSlot<S: 'static> {
    task: AtomicPtr<Header>,
    _task: PhantomData<Notified<S>>,
}

impl<S: 'static> LifoSlot<S> {
    pub(super) fn new() -> LifoSlot<S> {
        LifoSlot {
            task: AtomicPtr::new(ptr::null_mut()),
            _task: PhantomData,
        }
    }

    /// Puts `task` in the slot; returns the task it displaces, if any
    /// (rule 1: the owner only).
    pub(super) fn put(&self, task: Notified<S>) -> Option<Notified<S>> {
        let new = task.into_header_ptr().as_ptr();
        // SAFETY: the slot holds only pointers that `into_header_ptr` made,
        // each owning one reference; swapping one out takes that ownership
        // (rule 3).
        unsafe { Self::own(self.task.swap(new, AcqRel)) }
    }

    /// Takes the task out of the slot, if there is one (the owner, or a
    /// rescuer: rule 2).
    pub(super) fn take(&self) -> Option<Notified<S>> {
        if self.task.load(crate::loom::Ordering::Relaxed).is_null() {
            return None;
        }
        // SAFETY: as in `put`.
        unsafe { Self::own(self.task.swap(ptr::null_mut(), AcqRel)) }
    }

    /// True if a task waits in the slot (a hint: it may be taken meanwhile).
    pub(super) fn is_occupied(&self) -> bool {
        !self.task.load(crate::loom::Ordering::Relaxed).is_null()
    }

    /// # Safety
    ///
    /// `ptr` is null or was swapped out of the slot by the caller (rule 3).
    unsafe fn own(ptr: *mut Header) -> Option<Notified<S>> {
        // SAFETY: a non-null pointer came from `into_header_ptr` of a live
        // `Notified<S>` and carries its reference, which the caller now owns.
        NonNull::new(ptr).map(|ptr| unsafe { Notified::from_header_ptr(ptr) })
    }
}

impl<S: 'static> Drop for LifoSlot<S> {
    fn drop(&mut self) {
        // A task left in the slot releases its reference.
        drop(self.take());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::thread;
    use crate::task::loom_tests::{DropCount, sched};
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Rule 3: the owner taking its slot's task (to run it next) races a
    /// rescuer taking it; exactly one of them gets it, and the task is
    /// freed exactly once whoever drops it.
    #[test]
    fn the_owner_and_a_rescuer_never_both_get_the_task() {
        loom::model(|| {
            let sched = sched();
            let drops = Arc::new(AtomicUsize::new(0));
            let counted = DropCount(drops.clone());
            let notified = sched.notified_for_test(async move {
                let _counted = counted;
            });
            let slot = std::sync::Arc::new(LifoSlot::new());
            assert!(slot.put(notified).is_none());
            let rescuer_slot = slot.clone();
            // Whoever takes the task runs it (to completion: the future
            // ends at once and is dropped).
            let run = |task: Option<Notified<_>>| {
                task.map(|task| task.run(&crate::observe::PollRecord::new(None)))
                    .is_some()
            };
            let rescuer = thread::spawn(move || run(rescuer_slot.take()));
            let owner = run(slot.take());
            let rescued = rescuer.join().unwrap();
            assert!(owner ^ rescued, "owner {owner}, rescuer {rescued}");
            assert_eq!(drops.load(SeqCst), 1, "the future ran and was dropped exactly once");
        });
    }
}
