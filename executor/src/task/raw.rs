//! The type-erased task pointer and the vtable that gives it back its types.

use super::Schedule;
use super::core::{Cell, Header};
use super::harness::Harness;
use super::id::Id;
use super::record::TaskRecord;
use super::state::{State, TransitionToNotified};
use crate::observe::PollRecord;
use std::future::Future;
use std::ptr::NonNull;
use std::task::Waker;

/// The operations that need the task's concrete future and scheduler types.
/// One static instance exists per `(T, S)`.
pub(super) struct Vtable {
    /// Runs the task once on the thread whose record is given; consumes a
    /// `Notified` reference.
    pub(super) poll: unsafe fn(NonNull<Header>, &PollRecord),
    /// Hands a `Notified` (whose reference the caller owns) to the scheduler.
    pub(super) schedule: unsafe fn(NonNull<Header>),
    /// Frees the cell.
    pub(super) dealloc: unsafe fn(NonNull<Header>),
    /// `JoinHandle::poll`: writes `Poll<Result<T::Output, JoinError>>` to the
    /// pointer if the task is complete, or stores the waker.
    pub(super) try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// `JoinHandle::drop` when the fast path failed; releases its reference.
    pub(super) drop_join_handle_slow: unsafe fn(NonNull<Header>),
    /// Runtime shutdown; consumes a reference.
    pub(super) shutdown: unsafe fn(NonNull<Header>),
    /// A pointer to the stored outcome (`Outcome<T::Output>`), for the
    /// `JoinHandle` to read in place.
    pub(super) outcome: unsafe fn(NonNull<Header>) -> *const (),
    /// `n` done callbacks ran ([`Schedule::callbacks_ran`]).
    pub(super) callbacks_ran: unsafe fn(NonNull<Header>, u64),
    /// The scheduler's [`Schedule::INTERRUPTIBLE`].
    pub(super) interruptible: bool,
}

fn vtable<T: Future, S: Schedule>() -> &'static Vtable {
    &Vtable {
        poll: poll::<T, S>,
        schedule: schedule::<T, S>,
        dealloc: dealloc::<T, S>,
        try_read_output: try_read_output::<T, S>,
        drop_join_handle_slow: drop_join_handle_slow::<T, S>,
        shutdown: shutdown::<T, S>,
        outcome: outcome::<T, S>,
        callbacks_ran: callbacks_ran::<T, S>,
        interruptible: S::INTERRUPTIBLE,
    }
}

/// A pointer to a task's header. Copying it does not count a reference: the
/// types that wrap it (`Task`, `Notified`, `JoinHandle`, ...) do.
#[derive(Clone, Copy)]
pub(super) struct RawTask {
    ptr: NonNull<Header>,
}

impl RawTask {
    #[inline]
    pub(super) fn new<T, S>(future: T, scheduler: S, id: Id, record: TaskRecord) -> RawTask
    where
        T: Future + Send + 'static,
        S: Schedule,
    {
        let cell = Cell::<T, S>::new(future, scheduler, id, record, vtable::<T, S>());
        let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
        RawTask { ptr }
    }

    /// # Safety
    ///
    /// `ptr` points to a live task header.
    pub(super) unsafe fn from_header(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    pub(super) fn header_ptr(&self) -> NonNull<Header> {
        self.ptr
    }

    pub(super) fn header(&self) -> &Header {
        // SAFETY: a `RawTask` is only used by holders of a reference count,
        // which keeps the allocation alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(super) fn state(&self) -> &State {
        &self.header().state
    }

    /// Runs the task on the thread that `poller` records; the caller gives
    /// up a `Notified` reference.
    pub(super) fn poll(self, poller: &PollRecord) {
        // SAFETY: the vtable belongs to this header's cell type.
        unsafe { (self.header().vtable.poll)(self.ptr, poller) }
    }

    /// Schedules the task; the caller gives up the reference the `Notified`
    /// will own.
    pub(super) fn schedule(self) {
        // SAFETY: as above.
        unsafe { (self.header().vtable.schedule)(self.ptr) }
    }

    /// Frees the cell; the caller released the last reference.
    pub(super) fn dealloc(self) {
        // SAFETY: as above.
        unsafe { (self.header().vtable.dealloc)(self.ptr) }
    }

    /// # Safety
    ///
    /// `dst` points to a `Poll<Result<T::Output, JoinError>>` of this task's
    /// output type, and the caller holds the `JoinHandle`.
    pub(super) unsafe fn try_read_output(self, dst: *mut (), waker: &Waker) {
        // SAFETY: the vtable belongs to this header's cell type; the caller
        // vouches for `dst`.
        unsafe { (self.header().vtable.try_read_output)(self.ptr, dst, waker) }
    }

    /// A pointer to the stored outcome, an `Outcome<T::Output>` of this
    /// task's output type.
    ///
    /// # Safety
    ///
    /// As `Core::outcome_ptr`: the outcome is stored, and the caller reads
    /// through the pointer only while nobody writes the stage.
    pub(super) unsafe fn outcome_ptr(self) -> *const () {
        // SAFETY: the vtable belongs to this header's cell type; the caller
        // vouches for the rest.
        unsafe { (self.header().vtable.outcome)(self.ptr) }
    }

    /// Tells the task's scheduler that `n` of its done callbacks ran.
    pub(super) fn callbacks_ran(self, n: u64) {
        // SAFETY: the vtable belongs to this header's cell type.
        unsafe { (self.header().vtable.callbacks_ran)(self.ptr, n) }
    }

    /// The `JoinHandle` is dropped and the fast path failed.
    pub(super) fn drop_join_handle_slow(self) {
        // SAFETY: the vtable belongs to this header's cell type.
        unsafe { (self.header().vtable.drop_join_handle_slow)(self.ptr) }
    }

    /// Cancels the task for shutdown, consuming the caller's reference.
    pub(super) fn shutdown(self) {
        // SAFETY: the vtable belongs to this header's cell type.
        unsafe { (self.header().vtable.shutdown)(self.ptr) }
    }

    /// `abort()` from a handle: cancels the task, scheduling it if it is idle
    /// so that its future is dropped on a worker. True if the cancellation
    /// can take effect: the task had not completed, and was not running a
    /// future that an abort cannot interrupt (a blocking job).
    pub(super) fn remote_abort(self) -> bool {
        let (action, found) = self.state().transition_to_notified_and_cancel();
        if action == TransitionToNotified::Submit {
            self.schedule();
        }
        !found.is_complete() && (self.header().vtable.interruptible || !found.is_running())
    }

    /// Takes a reference.
    pub(super) fn ref_inc(self) {
        self.state().ref_inc();
    }

    /// Releases a reference, freeing the cell if it was the last.
    pub(super) fn drop_reference(self) {
        if self.state().ref_dec() {
            self.dealloc();
        }
    }
}

unsafe fn poll<T: Future, S: Schedule>(ptr: NonNull<Header>, poller: &PollRecord) {
    // SAFETY: the vtable was built for this `(T, S)`.
    unsafe { Harness::<T, S>::from_raw(ptr) }.poll(poller);
}

unsafe fn schedule<T: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable was built for this `(T, S)`.
    unsafe { Harness::<T, S>::from_raw(ptr) }.schedule();
}

unsafe fn dealloc<T: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable was built for this `(T, S)`.
    unsafe { Harness::<T, S>::from_raw(ptr) }.dealloc();
}

unsafe fn try_read_output<T: Future, S: Schedule>(ptr: NonNull<Header>, dst: *mut (), waker: &Waker) {
    // SAFETY: the caller vouches that `dst` has this task's output type.
    let dst = unsafe { &mut *dst.cast::<std::task::Poll<Result<T::Output, super::JoinError>>>() };
    // SAFETY: the vtable was built for this `(T, S)`.
    unsafe { Harness::<T, S>::from_raw(ptr) }.try_read_output(dst, waker);
}

unsafe fn drop_join_handle_slow<T: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable was built for this `(T, S)`.
    unsafe { Harness::<T, S>::from_raw(ptr) }.drop_join_handle_slow();
}

unsafe fn shutdown<T: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable was built for this `(T, S)`.
    unsafe { Harness::<T, S>::from_raw(ptr) }.shutdown();
}

unsafe fn callbacks_ran<T: Future, S: Schedule>(ptr: NonNull<Header>, n: u64) {
    // SAFETY: the vtable was built for this `(T, S)`.
    unsafe { Harness::<T, S>::from_raw(ptr) }.callbacks_ran(n);
}

unsafe fn outcome<T: Future, S: Schedule>(ptr: NonNull<Header>) -> *const () {
    // SAFETY: the vtable was built for this `(T, S)`; the caller vouches
    // that the outcome is stored and not written meanwhile.
    unsafe { Harness::<T, S>::from_raw(ptr).outcome_ptr() }.cast()
}
