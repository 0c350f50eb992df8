//! [`Operation`]: one MPI request awaited as a future, owning its buffers.
//!
//! # Buffer ownership
//!
//! MPI reads or writes a request's buffers until the request completes,
//! and a future can be dropped, or leaked with `mem::forget`, at any time.
//! So an operation never borrows: its buffers move into a shared slot
//! before the request is posted and stay there, at a fixed address, until
//! MPI is done with them. Awaiting the operation hands them back. Dropping
//! it early takes a receive that no message has matched yet out of line
//! (nothing was posted to MPI for it, so nothing needs cancelling); any
//! request already posted (a send, a collective, a receive whose message
//! matched) runs to completion with its slot in the progress engine, which
//! frees the buffers once MPI reports it done. Safe code cannot free or
//! reuse a buffer in flight, and nothing panics on drop (unlike rsmpi's
//! `Request`).

use crate::engine::{Engine, Matcher, Raw, State, Waiter};
use crate::env::Shared;
use crate::error::Error;
use crate::error::check;
use crate::loom::lock;
use crate::status::Status;
use mpi::ffi;
use std::fmt;
use std::future::Future;
use std::os::raw::{c_int, c_void};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use weft_executor::future::{Promise, Resolver};

/// The slot one request's buffers and outcome live in; shared by the
/// [`Operation`] and, while the request is pending, the engine.
pub(crate) struct Slot<B> {
    /// Set under the MPI lock when MPI is done with the request.
    finished: AtomicBool,
    /// A receive: until a message matches, dropping the operation takes it
    /// out of the engine's line.
    receive: bool,
    /// The outcome, the waker, and the buffers (one lock for all: a hop
    /// of a ping-pong takes it a handful of times).
    done: Mutex<Done<B>>,
}

/// What settles an operation's promise (see [`Operation::into_promise`]).
type Settle = Box<dyn FnOnce(&Result<Status, Error>) + Send>;

struct Done<B> {
    /// The buffers MPI reads or writes; not touched until `finished`.
    buffers: Option<B>,
    outcome: Option<Result<Status, Error>>,
    waker: Option<Waker>,
    /// Set by [`Operation::into_promise`].
    resolver: Option<Settle>,
}

impl<B> Slot<B> {
    pub(crate) fn new(buffers: B, receive: bool) -> Arc<Slot<B>> {
        Arc::new(Slot {
            finished: AtomicBool::new(false),
            receive,
            done: Mutex::new(Done {
                buffers: Some(buffers),
                outcome: None,
                waker: None,
                resolver: None,
            }),
        })
    }

    /// Runs `f` on the buffers in place, to take the pointers MPI will use.
    /// They stay valid while the slot lives: the buffers do not move until
    /// [`Operation`] takes them back, after `finished`.
    pub(crate) fn with_buffers<R>(&self, f: impl FnOnce(&mut B) -> R) -> R {
        let mut done = self.lock_done();
        f(done
            .buffers
            .as_mut()
            .expect("weft-mpi bug: buffers taken before posting"))
    }

    fn lock_done(&self) -> std::sync::MutexGuard<'_, Done<B>> {
        lock(&self.done)
    }
}

impl<B: Send> Waiter for Slot<B> {
    fn mark_finished(&self) {
        self.finished.store(true, Release);
    }

    fn complete(&self, outcome: Result<Status, Error>) {
        self.finished.store(true, Release);
        let (waker, resolver) = {
            let mut done = self.lock_done();
            done.outcome = Some(outcome.clone());
            (done.waker.take(), done.resolver.take())
        };
        if let Some(resolve) = resolver {
            resolve(&outcome);
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// An MPI request in flight; await it for its buffers back and the
/// [`Status`]. Dropping it before completion never frees a buffer MPI may
/// still touch (see the module docs).
#[must_use = "an MPI operation is posted already; await it for its result and buffers"]
pub struct Operation<B: Send + 'static> {
    shared: Arc<Shared>,
    state: OpState<B>,
}

enum OpState<B> {
    /// Complete before it needed a slot (the eager test saw it done, or it
    /// failed before MPI saw it): no allocation, no lock.
    Done(Result<(B, Status), Error>),
    /// In the engine's hands, or done there.
    Slot(Arc<Slot<B>>),
    /// Awaited to the end, or turned into a promise.
    Taken,
}

impl<B: Send + 'static> Operation<B> {
    pub(crate) fn new(shared: Arc<Shared>, slot: Arc<Slot<B>>) -> Operation<B> {
        Operation {
            shared,
            state: OpState::Slot(slot),
        }
    }

    /// An operation already complete (or failed before MPI saw it).
    pub(crate) fn done(shared: Arc<Shared>, buffers: B, outcome: Result<Status, Error>) -> Operation<B> {
        Operation {
            shared,
            state: OpState::Done(outcome.map(|status| (buffers, status))),
        }
    }

    /// An operation that failed before MPI saw it.
    pub(crate) fn failed(shared: Arc<Shared>, buffers: B, err: Error) -> Operation<B> {
        Operation::done(shared, buffers, Err(err))
    }

    /// True once MPI has completed the request.
    pub fn is_done(&self) -> bool {
        match &self.state {
            OpState::Done(_) | OpState::Taken => true,
            OpState::Slot(slot) => slot.lock_done().outcome.is_some(),
        }
    }

    /// The operation as a Weft [`Promise`]: done callbacks
    /// (`add_done_callback`), `wait`, `result`, composition with `gather`
    /// and the rest of the asyncio-style API. The promise settles with a
    /// [`Completed`] (the status, and the buffers to take back) or fails
    /// with the [`Error`].
    ///
    /// Cancelling the promise does not cancel the MPI request (it runs to
    /// completion and the buffers wait in the `Completed`).
    pub fn into_promise(mut self) -> Promise<Completed<B>> {
        let (resolver, promise) = Promise::channel();
        let settle = |resolver: Resolver<Completed<B>>, outcome: Result<(Option<B>, Status), Error>| match outcome {
            Ok((buffers, status)) => {
                let _ = resolver.set_result(Completed {
                    status,
                    buffers: Arc::new(Mutex::new(buffers)),
                });
            }
            Err(err) => {
                let _ = resolver.set_exception(err);
            }
        };
        match std::mem::replace(&mut self.state, OpState::Taken) {
            OpState::Done(outcome) => settle(resolver, outcome.map(|(b, s)| (Some(b), s))),
            OpState::Taken => panic!("weft-mpi: an MPI operation turned into a promise after it completed"),
            OpState::Slot(slot) => {
                let taker = slot.clone();
                let take = move |outcome: &Result<Status, Error>| {
                    outcome.clone().map(|status| (taker.lock_done().buffers.take(), status))
                };
                let mut done = slot.lock_done();
                match done.outcome.clone() {
                    Some(outcome) => {
                        drop(done);
                        settle(resolver, take(&outcome));
                    }
                    None => done.resolver = Some(Box::new(move |outcome| settle(resolver, take(outcome)))),
                }
            }
        }
        promise
    }
}

// Nothing in an operation is pinned: its buffers move freely (their
// elements are on the heap) and its slot is behind an `Arc`.
impl<B: Send + 'static> Unpin for Operation<B> {}

impl<B: Send + 'static> Future for Operation<B> {
    type Output = Result<(B, Status), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = match &this.state {
            OpState::Done(_) => {
                let OpState::Done(outcome) = std::mem::replace(&mut this.state, OpState::Taken) else {
                    unreachable!()
                };
                return Poll::Ready(outcome);
            }
            OpState::Taken => panic!("weft-mpi: an MPI operation polled after it completed"),
            OpState::Slot(slot) => slot,
        };
        // Engine rule 7: while messages flow, make progress here for a
        // moment before parking, so a reply a microsecond away needs no
        // trip through the loop.
        if !slot.finished.load(Acquire) {
            // Posted under one runtime, awaited under another: make sure
            // this one polls the engine too.
            let _ = this.shared.register();
            if this.shared.engine.spin_until(|| slot.finished.load(Acquire)) {
                this.shared.notify();
            }
        }
        let (outcome, buffers) = {
            let mut done = slot.lock_done();
            match done.outcome.clone() {
                Some(outcome) => (outcome, done.buffers.take()),
                None => {
                    match &mut done.waker {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        registered => *registered = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
            }
        };
        let OpState::Slot(slot) = std::mem::replace(&mut this.state, OpState::Taken) else {
            unreachable!()
        };
        let status = outcome?;
        debug_assert!(slot.finished.load(Acquire));
        let buffers = buffers.expect("weft-mpi bug: an operation's buffers were taken twice");
        Poll::Ready(Ok((buffers, status)))
    }
}

impl<B: Send + 'static> Drop for Operation<B> {
    fn drop(&mut self) {
        let OpState::Slot(slot) = &self.state else { return };
        if !slot.receive || slot.finished.load(Acquire) {
            return;
        }
        // A receive no message has matched yet leaves the line; one that
        // matched has its request in flight and completes on its own.
        let mut state = self.shared.engine.lock();
        let me = Arc::as_ptr(slot).cast::<()>();
        self.shared.engine.abandon(&mut state, me);
    }
}

impl<B: Send + 'static> fmt::Debug for Operation<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation").field("done", &self.is_done()).finish()
    }
}

/// What an operation's [`Promise`] settles with: the status, and the
/// buffers for whoever takes them first.
pub struct Completed<B> {
    status: Status,
    buffers: Arc<Mutex<Option<B>>>,
}

impl<B> Completed<B> {
    /// The message's envelope (empty for sends and collectives).
    pub fn status(&self) -> Status {
        self.status
    }

    /// Takes the buffers back; `None` if a clone took them already.
    pub fn take_buffers(&self) -> Option<B> {
        lock(&self.buffers).take()
    }
}

impl<B> Clone for Completed<B> {
    fn clone(&self) -> Completed<B> {
        Completed {
            status: self.status,
            buffers: self.buffers.clone(),
        }
    }
}

impl<B> fmt::Debug for Completed<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completed")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Where a receive puts a matched message: room sized to it, or checked
/// against it.
pub(crate) trait RecvTarget: Send + 'static {
    /// The datatype elements are counted in.
    fn datatype(&self) -> Raw<ffi::MPI_Datatype>;
    /// Room for a message of `bytes` bytes: the start (with provenance
    /// over all of it), the element count to pass to MPI, and the room in
    /// elements; or [`Error::Truncated`] if it does not fit.
    fn room(&mut self, bytes: usize) -> Result<(*mut c_void, c_int, usize), Error>;
}

impl<B: RecvTarget> Matcher for Slot<B> {
    fn datatype(&self) -> Raw<ffi::MPI_Datatype> {
        self.with_buffers(|b| b.datatype())
    }

    fn receive(
        self: Arc<Self>,
        engine: &Engine,
        state: &mut State,
        mut message: Raw<ffi::MPI_Message>,
        status: &ffi::MPI_Status,
    ) -> Option<Result<Status, Error>> {
        let bytes = match crate::status::message_bytes(status) {
            Ok(bytes) => bytes,
            Err(err) => {
                engine.discard_locked(message, status);
                return Some(Err(err));
            }
        };
        let (room, datatype) = self.with_buffers(|b| (b.room(bytes), b.datatype()));
        let (ptr, count, capacity) = match room {
            Ok(room) => room,
            Err(err) => {
                // Too long for the buffer: received elsewhere and dropped,
                // never written past the buffer.
                engine.discard_locked(message, status);
                return Some(Err(err));
            }
        };
        // SAFETY: reading a constant MPI initialised.
        let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY: the caller holds the MPI lock; the message matched in this
        // process and is received once; `ptr` has room for `count` elements
        // (checked or sized above) and stays put in this slot until MPI is
        // done.
        let rc = unsafe { ffi::MPI_Imrecv(ptr, count, datatype.0, &mut message.0, &mut request) };
        if let Err(err) = check(rc) {
            return Some(Err(err));
        }
        engine.track(state, Raw(request), datatype, capacity, self)
    }
}
