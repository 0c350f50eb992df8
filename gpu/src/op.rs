//! [`GpuOp`]: work on a stream, awaited, owning its host buffers.
//!
//! # Buffer ownership
//!
//! The device reads or writes a copy's host buffer until the copy is done,
//! and a future can be dropped, or leaked with `mem::forget`, at any time.
//! So an operation never borrows host memory: the buffer moves into a
//! shared [`Slot`] before the copy is enqueued, and the loop's tracker
//! holds the slot until the device is done. Awaiting the operation hands
//! the buffer back; dropping it early leaves the slot with the tracker,
//! which drops the buffer (on the loop's thread) once the device is done.
//! Safe code cannot free, move or reuse a host buffer the GPU still uses.
//!
//! Device memory follows the same rule: an operation's slot also *keeps*
//! a count of every device allocation it reads or writes (`buffer.rs`),
//! dropped only once the device is done, so dropping a `DeviceBuffer`
//! while a stream still uses it frees nothing until that stream is done.

use crate::buffer::Span;
use crate::error::GpuError;
use crate::loom::lock;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use weft_executor::future::{Promise, Resolver};

/// The slot one operation's payload and outcome live in; shared by the
/// [`GpuOp`] and, while the work runs, the tracker.
pub(crate) struct Slot<T> {
    state: Mutex<State<T>>,
}

/// Settles an operation's promise (see [`GpuOp::into_promise`]).
type Settle<T> = Box<dyn FnOnce(Result<T, GpuError>) + Send>;

struct State<T> {
    /// What the device uses (host buffers); handed back when done.
    payload: Option<T>,
    /// Device memory the operation uses; dropped when the device is done.
    keep: Vec<Span>,
    outcome: Option<Result<(), GpuError>>,
    waker: Option<Waker>,
    settle: Option<Settle<T>>,
}

impl<T> Slot<T> {
    pub(crate) fn new(payload: T) -> Arc<Slot<T>> {
        Slot::keeping(payload, Vec::new())
    }

    /// A slot that also keeps device memory alive until the device is done.
    pub(crate) fn keeping(payload: T, keep: Vec<Span>) -> Arc<Slot<T>> {
        Arc::new(Slot {
            state: Mutex::new(State {
                payload: Some(payload),
                keep,
                outcome: None,
                waker: None,
                settle: None,
            }),
        })
    }

    /// Runs `f` on the payload in place, to take the addresses the device
    /// will use. They stay valid until the device is done: the payload does
    /// not move (or drop) before the operation finishes.
    pub(crate) fn with_payload<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(self
            .lock()
            .payload
            .as_ref()
            .expect("weft-gpu bug: payload taken before the work was enqueued"))
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }
}

/// What the tracker calls when the device is done with an operation.
pub(crate) trait Finish: Send + Sync {
    /// Records the outcome and wakes the awaiting task (or settles its
    /// promise). Called once, on the loop's thread. With `leak_payload`
    /// (a fault, or work whose end cannot be known) the payload is leaked
    /// rather than freed: nothing says the device stopped using it.
    fn finish(&self, outcome: Result<(), GpuError>, leak_payload: bool);
}

impl<T: Send + 'static> Finish for Slot<T> {
    fn finish(&self, outcome: Result<(), GpuError>, leak_payload: bool) {
        let keep = {
            let mut state = self.lock();
            let keep = std::mem::take(&mut state.keep);
            if leak_payload {
                std::mem::forget(state.payload.take());
                std::mem::forget(keep);
                Vec::new()
            } else {
                keep
            }
        };
        // The device is done with the memory: release it outside the lock.
        drop(keep);
        let (waker, settle) = {
            let mut state = self.lock();
            state.outcome = Some(outcome);
            match state.settle.take() {
                Some(settle) => {
                    let result = take_result(&mut state);
                    (None, Some((settle, result)))
                }
                None => (state.waker.take(), None),
            }
        };
        if let Some((settle, result)) = settle {
            settle(result);
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The operation's result, once its outcome is in: the payload back, or
/// the error.
fn take_result<T>(state: &mut State<T>) -> Result<T, GpuError> {
    match state
        .outcome
        .clone()
        .expect("weft-gpu bug: result taken before the outcome")
    {
        Ok(()) => Ok(state
            .payload
            .take()
            .expect("weft-gpu bug: an operation's payload was taken twice")),
        Err(err) => Err(err),
    }
}

/// Work on a GPU stream (a copy, a kernel launch, a synchronization),
/// awaited. Its output is what the operation borrowed from you (the host
/// buffer of a copy; `()` for the rest), or the [`GpuError`] the driver or
/// the device reported.
///
/// The work is enqueued when the operation is made, not when it is first
/// polled; awaiting only waits. Awaiting never blocks the worker thread:
/// the loop learns of the completion from a CUDA host function or by
/// polling the work's event (see [`WakeMode`](crate::WakeMode)). Dropping
/// the operation in flight is safe: its host buffer lives until the device
/// is done with it (see the module docs).
#[must_use = "GPU work is enqueued already; await it (or drop it) to learn how it went"]
pub struct GpuOp<T: Send + 'static> {
    state: OpState<T>,
    /// The stream it was enqueued on (0 for an event's wait), for the
    /// awaiting task's wait report.
    stream: u64,
}

enum OpState<T> {
    /// Failed before the device saw it.
    Failed(GpuError),
    /// Enqueued; the tracker finishes the slot.
    Slot(Arc<Slot<T>>),
    /// Awaited to the end, or turned into a promise.
    Taken,
}

impl<T: Send + 'static> GpuOp<T> {
    /// An operation enqueued on stream `stream` (0 for an event's wait).
    pub(crate) fn pending(slot: Arc<Slot<T>>, stream: u64) -> GpuOp<T> {
        GpuOp {
            state: OpState::Slot(slot),
            stream,
        }
    }

    /// An operation that failed before it was enqueued (its payload, never
    /// seen by the device, is dropped).
    pub(crate) fn failed(err: GpuError) -> GpuOp<T> {
        GpuOp {
            state: OpState::Failed(err),
            stream: 0,
        }
    }

    /// True once the device is done with the operation (or it failed).
    pub fn is_done(&self) -> bool {
        match &self.state {
            OpState::Failed(_) | OpState::Taken => true,
            OpState::Slot(slot) => slot.lock().outcome.is_some(),
        }
    }

    /// The operation as a Weft [`Promise`]: done callbacks
    /// (`add_done_callback`), `wait`, `result`, composition with `gather`
    /// and the rest of the asyncio-style API. The promise settles with a
    /// [`Completed`] holding the payload, or fails with the [`GpuError`].
    ///
    /// Cancelling the promise does not cancel the GPU work, which cannot be
    /// cancelled; the payload is dropped once the device is done.
    pub fn into_promise(mut self) -> Promise<Completed<T>> {
        let (resolver, promise) = Promise::channel();
        match std::mem::replace(&mut self.state, OpState::Taken) {
            OpState::Failed(err) => settle(resolver, Err(err)),
            OpState::Taken => panic!("weft-gpu: a GPU operation turned into a promise after it was awaited"),
            OpState::Slot(slot) => {
                let mut state = slot.lock();
                if state.outcome.is_some() {
                    let result = take_result(&mut state);
                    drop(state);
                    settle(resolver, result);
                } else {
                    state.settle = Some(Box::new(move |result| settle(resolver, result)));
                }
            }
        }
        promise
    }
}

fn settle<T: Send + 'static>(resolver: Resolver<Completed<T>>, result: Result<T, GpuError>) {
    let _ = match result {
        Ok(payload) => resolver
            .set_result(Completed(Arc::new(Mutex::new(Some(payload)))))
            .map_err(drop),
        Err(err) => resolver.set_exception(err).map_err(drop),
    };
}

impl<T: Send + 'static> Future for GpuOp<T> {
    type Output = Result<T, GpuError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = match &this.state {
            OpState::Taken => panic!("weft-gpu: a GPU operation polled after it completed"),
            OpState::Failed(_) => match std::mem::replace(&mut this.state, OpState::Taken) {
                OpState::Failed(err) => Err(err),
                _ => unreachable!(),
            },
            OpState::Slot(slot) => {
                let mut state = slot.lock();
                if state.outcome.is_none() {
                    match &state.waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => state.waker = Some(cx.waker().clone()),
                    }
                    drop(state);
                    weft_io::observe::waiting(weft_io::observe::Wait::Source {
                        source: "gpu",
                        id: this.stream,
                    });
                    return Poll::Pending;
                }
                let result = take_result(&mut state);
                drop(state);
                this.state = OpState::Taken;
                result
            }
        };
        Poll::Ready(result)
    }
}

// Nothing in an operation is pinned: its payload lives in the slot.
impl<T: Send + 'static> Unpin for GpuOp<T> {}

impl<T: Send + 'static> fmt::Debug for GpuOp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuOp").field("done", &self.is_done()).finish()
    }
}

/// What a GPU operation's [`Promise`] settles with: the payload (a copy's
/// host buffer; `()` for the rest), to [`take`](Completed::take) once.
/// Cloning shares it, as a promise's result is shared.
pub struct Completed<T>(Arc<Mutex<Option<T>>>);

impl<T> Completed<T> {
    /// Takes the payload; `None` if a clone took it already.
    pub fn take(&self) -> Option<T> {
        lock(&self.0).take()
    }
}

impl<T> Clone for Completed<T> {
    fn clone(&self) -> Self {
        Completed(self.0.clone())
    }
}

impl<T> fmt::Debug for Completed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completed").finish_non_exhaustive()
    }
}
