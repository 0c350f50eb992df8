//! [`Task`]: a spawned task whose handle is a [`Promise`] (asyncio's
//! `Task`, which is a `Future`).

use super::error::{Exception, PromiseError};
use super::promise::Promise;
use crate::task::{AbortHandle, Id};
use crate::trace::SpawnMeta;
use crate::{context, scheduler};
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A running task with the promise API: asyncio's `Task`.
///
/// Made by [`create_task`] (or `Handle::create_task`). It derefs to the
/// task's [`Promise`], so it offers `add_done_callback`, `cancel`, `done`,
/// `cancelled`, `result`, `exception` and `wait`, and it can be awaited.
/// **Cancelling it cancels the task**: the promise becomes cancelled at
/// once, and a worker drops the task's future soon after (running its
/// destructors), or when its current poll returns.
///
/// A panic in the task fails the promise with an exception that
/// [`is_panic`](Exception::is_panic), and then goes through the runtime's
/// unhandled-panic policy like any task's panic.
///
/// Dropping a `Task` *detaches* it: it keeps running (as a `JoinHandle`
/// does). Abandoning an `.await` of it cancels it, as in asyncio.
///
/// ```
/// let rt = weft_executor::Executor::new()?;
/// rt.block_on(async {
///     let task = weft_executor::future::create_task(async { (1..=10u64).product::<u64>() });
///     task.add_done_callback(|t| println!("factorial: {:?}", t.result()));
///     assert_eq!(task.await.unwrap(), 3_628_800);
///
///     let forever = weft_executor::future::create_task(std::future::pending::<()>());
///     assert!(forever.cancel());
///     assert!(forever.cancelled());
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Task<T> {
    promise: Promise<T>,
    abort: AbortHandle,
}

/// Spawns `future` on the current runtime and returns it as a [`Task`]
/// (asyncio's `asyncio.create_task`).
///
/// # Panics
///
/// Outside a runtime, like [`spawn`](crate::spawn).
#[track_caller]
pub fn create_task<F>(future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + Sync + 'static,
{
    let meta = SpawnMeta::new(None);
    match context::with_current(|h| spawn_task(h, future, meta)) {
        Ok(task) => task,
        Err(err) => panic!("weft::future::create_task(): {err}"),
    }
}

pub(crate) fn spawn_task<F>(handle: &scheduler::Handle, future: F, meta: SpawnMeta<'_>) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + Sync + 'static,
{
    let promise = Promise::with_scheduler(Some(handle.clone()));
    let body = TaskBody {
        future,
        promise: Some(promise.clone()),
    };
    let join = handle.spawn(body, Id::next(), meta);
    let abort = join.abort_handle();
    // Bound before anyone else sees the promise: every `cancel` reaches
    // the task.
    promise.bind_task(abort.clone());
    Task { promise, abort }
}

impl<T> Task<T> {
    /// The task's id.
    pub fn id(&self) -> Id {
        self.abort.id()
    }

    /// A handle that cancels the task without observing it.
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    /// The task's promise (another handle to the same outcome; cancelling
    /// it cancels the task).
    pub fn promise(&self) -> Promise<T> {
        self.promise.clone()
    }
}

impl<T> Deref for Task<T> {
    type Target = Promise<T>;

    fn deref(&self) -> &Promise<T> {
        &self.promise
    }
}

impl<T> Unpin for Task<T> {}

impl<T: Clone> Future for Task<T> {
    type Output = Result<T, PromiseError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.promise).poll(cx)
    }
}

impl<T: fmt::Debug> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id())
            .field("promise", &self.promise)
            .finish()
    }
}

/// The future a [`Task`] runs: the user's future, whose outcome settles the
/// promise.
struct TaskBody<F: Future> {
    future: F,
    /// Taken once settled; a body dropped with it still here was cancelled.
    promise: Option<Promise<F::Output>>,
}

impl<F: Future> Future for TaskBody<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self`, and `TaskBody` has no `Unpin` impl of its own that would
        // let it move (it is `Unpin` only when `F` is). `promise` is not
        // pinned and is only replaced through `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above: `future` stays where it is until dropped.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        match panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                if let Some(promise) = this.promise.take() {
                    // Already cancelled: the value is dropped, as asyncio
                    // ignores a result that arrives after `cancel`.
                    let _ = promise.set_result(value);
                }
                Poll::Ready(())
            }
            Err(payload) => {
                if let Some(promise) = this.promise.take() {
                    let _ = promise.set_exception(Exception::from_panic(&*payload));
                }
                // The task harness applies the runtime's panic policy.
                panic::resume_unwind(payload)
            }
        }
    }
}

impl<F: Future> Drop for TaskBody<F> {
    fn drop(&mut self) {
        // Dropped before finishing: aborted, or its runtime shut down.
        if let Some(promise) = self.promise.take() {
            promise.cancel_without_task();
        }
    }
}
