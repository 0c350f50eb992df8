//! The waker of a task: a `RawWaker` whose data pointer is the task header.
//!
//! Cloning a waker takes a task reference and waking it runs the state
//! transitions of rule 2; no `Arc` is cloned and nothing is allocated.

use super::core::Header;
use super::raw::RawTask;
use super::state::TransitionToNotified;
use crate::context;
use crate::timeline;
#[cfg(feature = "tracing")]
use crate::trace;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

static WAKER_VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake_by_val, wake_by_ref, drop_waker);

/// A waker borrowed for one poll: it holds no reference of its own (the
/// poller's keeps the task alive) and is never dropped as a `Waker`.
pub(super) struct WakerRef<'a> {
    waker: ManuallyDrop<Waker>,
    _header: PhantomData<&'a Header>,
}

pub(super) fn waker_ref(header: &NonNull<Header>) -> WakerRef<'_> {
    let raw = RawWaker::new(header.as_ptr() as *const (), &WAKER_VTABLE);
    // SAFETY: the vtable's functions uphold the `RawWaker` contract for a
    // pointer to a live task header, and they are thread-safe (they only touch
    // the atomic state word and the scheduler, which is `Sync`).
    let waker = unsafe { Waker::from_raw(raw) };
    WakerRef {
        waker: ManuallyDrop::new(waker),
        _header: PhantomData,
    }
}

impl Deref for WakerRef<'_> {
    type Target = Waker;

    fn deref(&self) -> &Waker {
        &self.waker
    }
}

/// Reschedules the task `waker` belongs to after its current poll: through
/// [`context::defer_wake`] when `waker` is the waker of the task this thread
/// is polling (no atomic operation), by `wake_by_ref` otherwise. For
/// `yield_now` and the cooperative budget.
pub(crate) fn wake_after_poll(waker: &Waker) {
    let ours = std::ptr::eq(waker.vtable(), &WAKER_VTABLE) && context::defer_wake(waker.data());
    if ours {
        // The deferred wake stands for a `wake_by_ref`: report it as one.
        #[cfg(feature = "tracing")]
        trace::wake(raw_task(waker.data()).header().id, "wake_by_ref");
    } else {
        waker.wake_by_ref();
    }
}

/// The wake's arrow on the timeline, if one records: it points at the
/// task's next poll. (A task's wake of itself during its own poll, through
/// `wake_after_poll`, draws none.)
#[inline]
fn timeline_wake(raw: RawTask) {
    if timeline::is_recording() {
        let header = raw.header();
        timeline::wake(header.id, header.record().polls().saturating_add(1));
    }
}

fn raw_task(ptr: *const ()) -> RawTask {
    // SAFETY: every waker built from `WAKER_VTABLE` carries a non-null
    // pointer to a task header, kept alive by the waker's reference (or, for a
    // `WakerRef`, by the poller's).
    unsafe { RawTask::from_header(NonNull::new_unchecked(ptr as *mut Header)) }
}

unsafe fn clone_waker(ptr: *const ()) -> RawWaker {
    raw_task(ptr).ref_inc();
    RawWaker::new(ptr, &WAKER_VTABLE)
}

unsafe fn drop_waker(ptr: *const ()) {
    raw_task(ptr).drop_reference();
}

unsafe fn wake_by_val(ptr: *const ()) {
    let raw = raw_task(ptr);
    // Before the transition, which may hand the waker's reference away.
    #[cfg(feature = "tracing")]
    trace::wake(raw.header().id, "wake");
    timeline_wake(raw);
    match raw.state().transition_to_notified_by_val() {
        // The waker's reference became the Notified's.
        TransitionToNotified::Submit => raw.schedule(),
        TransitionToNotified::Dealloc => raw.dealloc(),
        TransitionToNotified::DoNothing => {}
    }
}

unsafe fn wake_by_ref(ptr: *const ()) {
    let raw = raw_task(ptr);
    #[cfg(feature = "tracing")]
    trace::wake(raw.header().id, "wake_by_ref");
    timeline_wake(raw);
    match raw.state().transition_to_notified_by_ref() {
        // The transition took a new reference for the Notified.
        TransitionToNotified::Submit => raw.schedule(),
        TransitionToNotified::Dealloc | TransitionToNotified::DoNothing => {}
    }
}
