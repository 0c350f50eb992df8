//! `JoinHandle`: the owner's handle to a task's outcome.

use super::core::Outcome;
use super::done::{self, DoneList, DoneTask, Unavailable};
use super::raw::RawTask;
use super::{AbortHandle, Id, JoinError};
use crate::coop;
use crate::future::CallbackId;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// An owned permission to await a spawned task's output: what
/// [`spawn`](crate::spawn) returns, and asyncio's `Task` (which
/// [`create_task`](crate::future::create_task) returns too).
///
/// Awaiting a `JoinHandle` yields `Ok(output)` when the task finished, or a
/// [`JoinError`] when it panicked or was cancelled: the output is moved to
/// the awaiter, so any output can be awaited (no `Clone`, no `Sync`).
/// Dropping a `JoinHandle` *detaches* the task, as Tokio's does: it keeps
/// running, its output is dropped when it finishes, and its done callbacks
/// still run. To stop it, call [`abort`](JoinHandle::abort) (or
/// [`cancel`](JoinHandle::cancel)).
///
/// It also speaks asyncio's `Task` API: [`add_done_callback`](Self::add_done_callback),
/// [`remove_done_callback`](Self::remove_done_callback), [`cancel`](Self::cancel),
/// [`cancelled`](Self::cancelled), [`done`](Self::done) and
/// [`result`](Self::result), which borrows the output in place until the
/// handle is awaited. A task that never uses them pays one null pointer.
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
// SAFETY: through `&JoinHandle`, `abort`, `cancel`, `is_finished`, `done`,
// `id` and `abort_handle` touch only the atomic state word; `cancelled`
// reads which outcome is stored, once it is complete, when nothing writes
// it (taking the output needs `&mut`); `result` and `add_done_callback`,
// which share the output itself between threads, need `T: Sync`.
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
        let _ = self.raw.remote_abort();
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

    /// True once the task has finished (asyncio's `Task.done()`); the same
    /// as [`is_finished`](Self::is_finished).
    pub fn done(&self) -> bool {
        self.is_finished()
    }

    /// Requests cancellation, as asyncio's `Task.cancel()`: false if the
    /// task had already finished, or is a [`spawn_blocking`](crate::spawn_blocking)
    /// job that has started (nothing can interrupt its closure: it runs to
    /// its end, and awaiting the handle gives its output); true otherwise
    /// (it is then cancelled as [`abort`](Self::abort) says: its future is
    /// dropped, unless it finishes first).
    pub fn cancel(&self) -> bool {
        if self.is_finished() {
            return false;
        }
        self.raw.remote_abort()
    }

    /// True if the task finished by being cancelled (aborted, or its
    /// runtime shut down).
    pub fn cancelled(&self) -> bool {
        self.outcome()
            .is_some_and(|outcome| matches!(outcome, Outcome::Cancelled))
    }

    /// The task's output, borrowed in place, or why there is none:
    /// [`Unavailable::Pending`] while it runs, `Cancelled`, `Panicked`, or
    /// `Taken` once the handle was awaited (asyncio's `Task.result()`).
    pub fn result(&self) -> Result<&T, Unavailable>
    where
        T: Sync,
    {
        match self.outcome() {
            None => Err(Unavailable::Pending),
            Some(outcome) => done::result_of(outcome),
        }
    }

    /// Adds a callback to run once the task has finished, in the order
    /// added, exactly once (asyncio's `Task.add_done_callback`). It gets a
    /// [`DoneTask`]: the id, and the output by reference (until the handle
    /// is awaited, which takes it).
    ///
    /// It runs on the thread that finishes the task (a worker of its
    /// runtime, or the thread that shuts the runtime down), right after the
    /// task finishes and before anyone can await its output; added to a task
    /// that has already finished, it runs at once, here. Keep it short: to
    /// do more, schedule the work (`Handle::call_soon`, `spawn`). It runs
    /// even if the handle is dropped meanwhile (detached). A panic in it is
    /// contained. Inside it, ask the [`DoneTask`] about the outcome, not the
    /// handle: completion is published after the callbacks, so there the
    /// handle still says `done() == false`, and `cancel()` returns true but
    /// cancels nothing.
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let rt = weft_executor::Executor::new()?;
    /// let (tx, rx) = mpsc::channel();
    /// rt.block_on(async move {
    ///     let task = weft_executor::spawn(async { 6 * 7 });
    ///     task.add_done_callback(move |done| tx.send(*done.result().unwrap()).unwrap());
    ///     assert_eq!(task.await.unwrap(), 42);
    /// });
    /// assert_eq!(rx.recv().unwrap(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_done_callback(&self, f: impl FnOnce(&DoneTask<'_, T>) + Send + 'static) -> CallbackId
    where
        T: Sync + 'static,
    {
        let header = self.raw.header();
        let list = DoneList::<T>::get_or_make(header);
        // SAFETY: the outcome pointer is read only if the list is closed,
        // that is once the outcome is stored; we hold the handle by shared
        // reference, so it cannot be taken meanwhile (rule 3 of `done`).
        let (id, ran) = unsafe { list.add(header, Box::new(f), || self.raw.outcome_ptr().cast()) };
        if ran > 0 {
            // The handle's reference keeps the task, and so its scheduler,
            // alive.
            self.raw.callbacks_ran(ran);
        }
        id
    }

    /// Removes a done callback that has not run yet; returns how many were
    /// removed (0 or 1), as asyncio does. An id of another task or promise
    /// removes nothing.
    pub fn remove_done_callback(&self, id: CallbackId) -> usize
    where
        T: 'static,
    {
        let header = self.raw.header();
        if header.done.load(std::sync::atomic::Ordering::Acquire).is_null() {
            return 0;
        }
        DoneList::<T>::get_or_make(header).remove(id)
    }

    /// The stored outcome, once the task is complete.
    fn outcome(&self) -> Option<&Outcome<T>> {
        if !self.is_finished() {
            return None;
        }
        // SAFETY: complete, and we are the JoinHandle: the outcome is ours
        // (rule 1), and nothing writes it while we hold `&self` (taking it
        // needs `&mut`). Its type is `Outcome<T>` for our `T`.
        Some(unsafe { &*self.raw.outcome_ptr().cast::<Outcome<T>>() })
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
