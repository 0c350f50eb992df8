//! `JoinHandle`: the owner's handle to a task's outcome.

use super::raw::RawTask;
use super::{AbortHandle, Id, JoinError};
use crate::coop;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// An owned permission to await a spawned task's output.
///
/// Awaiting a `JoinHandle` yields `Ok(output)` when the task finished, or a
/// [`JoinError`] when it panicked or was cancelled. Dropping a `JoinHandle`
/// *detaches* the task: it keeps running and its output is dropped when it
/// finishes. To stop it, call [`abort`](JoinHandle::abort).
///
/// ```
/// let rt = weft_executor::Executor::new()?;
/// let answer = rt.block_on(async {
///     let handle = weft_executor::spawn(async { 6 * 7 });
///     handle.await
/// });
/// assert_eq!(answer.unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct JoinHandle<T> {
    raw: RawTask,
    _output: PhantomData<T>,
}

// SAFETY: the handle gives access to the output (a `T`) only by value, once,
// through the state-word protocol, so it may move to another thread when `T`
// may.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` only allows `abort`, `is_finished`, `id` and
// `abort_handle`, which touch the atomic state word and never the output.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    pub(super) fn new(raw: RawTask) -> JoinHandle<T> {
        JoinHandle {
            raw,
            _output: PhantomData,
        }
    }

    /// Cancels the task.
    ///
    /// If the task is idle, a worker drops its future soon (not the calling
    /// thread); if it is being polled, it is dropped when that poll returns;
    /// if it already finished, nothing happens. Awaiting the handle afterwards
    /// yields [`JoinError::is_cancelled`] unless the task had already
    /// completed. Like asyncio's `Task.cancel()`, but the future gets no
    /// chance to run again: it is dropped, which runs its destructors.
    pub fn abort(&self) {
        self.raw.remote_abort();
    }

    /// True if the task has finished: returned, panicked or been cancelled.
    /// Awaiting the handle will then not wait.
    pub fn is_finished(&self) -> bool {
        self.raw.state().load().is_complete()
    }

    /// A handle that can cancel the task without owning its output.
    pub fn abort_handle(&self) -> AbortHandle {
        self.raw.ref_inc();
        AbortHandle::new(self.raw)
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.raw.header().id
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut ret = Poll::Pending;
        // Awaiting handles in a loop must not starve the worker.
        let coop = ready!(coop::poll_proceed(cx));
        // SAFETY: `ret` has this task's output type, and we are its
        // JoinHandle.
        unsafe {
            self.raw
                .try_read_output(&mut ret as *mut Poll<Result<T, JoinError>> as *mut (), cx.waker());
        }
        if ret.is_ready() {
            coop.made_progress();
        } else {
            crate::dump::note_wait(crate::dump::WaitOn::Join { task: self.id() });
        }
        ret
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if self.raw.state().drop_join_handle_fast().is_ok() {
            return;
        }
        self.raw.drop_join_handle_slow();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
