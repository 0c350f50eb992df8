//! Structured task lifetimes: [`TaskGroup`] (Tokio's `JoinSet`), and the two
//! halves of a graceful shutdown, [`CancellationToken`] and [`TaskTracker`].
//!
//! A `TaskGroup` behaves as Tokio's `JoinSet`, not as asyncio's
//! `TaskGroup`: a member that fails or panics cancels none of the others
//! (its outcome comes out of `join_next` like any other), and dropping the
//! group aborts the tasks still in it rather than waiting for them. For
//! asyncio's "first failure cancels the rest", call
//! [`abort_all`](TaskGroup::abort_all) when
//! [`join_next`](TaskGroup::join_next) returns an error.
//!
//! A graceful shutdown in three lines: tell everyone to stop, refuse new
//! work, wait for the work in flight.
//!
//! ```
//! use weft_executor::future::{CancellationToken, TaskTracker};
//!
//! let rt = weft_executor::Executor::new()?;
//! rt.block_on(async {
//!     let token = CancellationToken::new();
//!     let tracker = TaskTracker::new();
//!     for _ in 0..4 {
//!         let token = token.clone();
//!         tracker.spawn(async move {
//!             token.cancelled().await; // a worker loop would select on this
//!         });
//!     }
//!     token.cancel();
//!     tracker.close();
//!     tracker.wait().await;
//!     assert!(tracker.is_empty());
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use super::promise::{CallbackId, Promise};
use super::set::FutureSet;
use crate::Handle;
use crate::loom::{Mutex, MutexGuard, lock};
use crate::task::{AbortHandle, JoinError, JoinHandle};
use crate::trace::SpawnMeta;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A signal to stop, shared by clones and inherited by child tokens.
///
/// It is a [`Promise<()>`](Promise) underneath: cancelling settles it, and
/// children are cancelled by an inline done callback on their parent, which
/// a child removes when its last clone drops (so short-lived children of a
/// long-lived token do not pile up).
#[derive(Clone)]
pub struct CancellationToken {
    inner: Arc<TokenInner>,
}

struct TokenInner {
    promise: Promise<()>,
    /// The parent's promise and the callback that cancels us.
    parent: Option<(Promise<()>, CallbackId)>,
}

impl CancellationToken {
    /// A token that is not cancelled.
    pub fn new() -> CancellationToken {
        CancellationToken {
            inner: Arc::new(TokenInner {
                promise: Promise::with_scheduler(None),
                parent: None,
            }),
        }
    }

    /// A token cancelled when this one is (but not the other way round).
    pub fn child_token(&self) -> CancellationToken {
        let promise = Promise::with_scheduler(None);
        let child = promise.clone();
        let id = self.inner.promise.add_done_callback_inline(move |_| {
            child.cancel();
        });
        CancellationToken {
            inner: Arc::new(TokenInner {
                promise,
                parent: Some((self.inner.promise.clone(), id)),
            }),
        }
    }

    /// Cancels this token and its children.
    pub fn cancel(&self) {
        self.inner.promise.cancel();
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.promise.done()
    }

    /// Completes when the token is cancelled.
    pub fn cancelled(&self) -> WaitForCancellation {
        WaitForCancellation {
            inner: self.inner.promise.clone(),
        }
    }

    /// A guard that cancels the token when dropped.
    pub fn drop_guard(self) -> DropGuard {
        DropGuard { token: Some(self) }
    }
}

impl Default for CancellationToken {
    fn default() -> CancellationToken {
        CancellationToken::new()
    }
}

impl Drop for TokenInner {
    fn drop(&mut self) {
        if let Some((parent, id)) = self.parent.take() {
            parent.remove_done_callback(id);
        }
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The future of [`CancellationToken::cancelled`].
#[must_use = "futures do nothing unless awaited"]
pub struct WaitForCancellation {
    inner: Promise<()>,
}

impl Future for WaitForCancellation {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.inner).poll(cx).map(|_| ())
    }
}

impl fmt::Debug for WaitForCancellation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitForCancellation").finish_non_exhaustive()
    }
}

/// Cancels its token when dropped; see [`CancellationToken::drop_guard`].
#[derive(Debug)]
pub struct DropGuard {
    token: Option<CancellationToken>,
}

impl DropGuard {
    /// Gives the token back without cancelling it.
    pub fn disarm(mut self) -> CancellationToken {
        self.token.take().expect("weft bug: a DropGuard without its token")
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            token.cancel();
        }
    }
}

/// Counts tasks so that a shutdown can wait for all of them: Tokio's
/// `TaskTracker`. Tracked tasks are not owned (dropping the tracker does not
/// stop them); [`wait`](TaskTracker::wait) completes once the tracker is
/// [`close`](TaskTracker::close)d and every tracked task has finished.
#[derive(Clone)]
pub struct TaskTracker {
    inner: Arc<TrackerInner>,
}

struct TrackerInner {
    state: Mutex<TrackerState>,
    /// Settled once closed and empty.
    idle: Promise<()>,
}

struct TrackerState {
    tasks: usize,
    closed: bool,
}

impl TaskTracker {
    /// An open tracker with no tasks.
    pub fn new() -> TaskTracker {
        TaskTracker {
            inner: Arc::new(TrackerInner {
                state: Mutex::new(TrackerState {
                    tasks: 0,
                    closed: false,
                }),
                idle: Promise::with_scheduler(None),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, TrackerState> {
        lock(&self.inner.state)
    }

    /// Spawns `future` on the current runtime and tracks it.
    ///
    /// # Panics
    ///
    /// Outside a runtime, like [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::spawn(self.track_future(future))
    }

    /// Spawns `future` on `handle`'s runtime and tracks it (`handle`: a
    /// `weft::Handle` or this crate's [`Handle`]).
    #[track_caller]
    pub fn spawn_on<F>(&self, future: F, handle: impl AsRef<Handle>) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        handle.as_ref().spawn(self.track_future(future))
    }

    /// Wraps `future` so that the tracker counts it until it finishes or is
    /// dropped.
    pub fn track_future<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        self.state().tasks += 1;
        let token = TrackToken { tracker: self.clone() };
        async move {
            let _token = token;
            future.await
        }
    }

    /// Closes the tracker: from now on [`wait`](Self::wait) completes as
    /// soon as no tracked task is running. Tracking more tasks still works
    /// (a shutdown may have stragglers), but once `wait` has completed it
    /// stays complete.
    pub fn close(&self) {
        let idle = {
            let mut state = self.state();
            state.closed = true;
            state.tasks == 0
        };
        if idle {
            let _ = self.inner.idle.set_result(());
        }
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Tasks tracked and not finished.
    pub fn len(&self) -> usize {
        self.state().tasks
    }

    /// True if no tracked task is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completes once the tracker is closed and empty.
    pub async fn wait(&self) {
        let _ = self.inner.idle.clone().await;
    }
}

impl Default for TaskTracker {
    fn default() -> TaskTracker {
        TaskTracker::new()
    }
}

impl fmt::Debug for TaskTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("TaskTracker")
            .field("tasks", &state.tasks)
            .field("closed", &state.closed)
            .finish()
    }
}

/// One tracked task's place in the count.
struct TrackToken {
    tracker: TaskTracker,
}

impl Drop for TrackToken {
    fn drop(&mut self) {
        let idle = {
            let mut state = self.tracker.state();
            state.tasks -= 1;
            state.closed && state.tasks == 0
        };
        if idle {
            let _ = self.tracker.inner.idle.set_result(());
        }
    }
}

/// A set of tasks that live no longer than the group: asyncio's
/// `TaskGroup`, Tokio's `JoinSet`.
///
/// [`join_next`](TaskGroup::join_next) yields outputs in completion order;
/// [`abort_all`](TaskGroup::abort_all) cancels every member;
/// [`shutdown`](TaskGroup::shutdown) cancels and waits until each has
/// stopped. Dropping the group aborts its tasks.
///
/// ```
/// use weft_executor::future::TaskGroup;
///
/// let rt = weft_executor::Executor::new()?;
/// rt.block_on(async {
///     let mut group = TaskGroup::new();
///     for i in 0..5u32 {
///         group.spawn(async move { i * 2 });
///     }
///     let mut sum = 0;
///     while let Some(out) = group.join_next().await {
///         sum += out.unwrap();
///     }
///     assert_eq!(sum, 20);
///
///     group.spawn(std::future::pending::<u32>());
///     group.shutdown().await;
///     assert!(group.is_empty());
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TaskGroup<T> {
    tasks: FutureSet<JoinHandle<T>>,
}

impl<T: Send + 'static> TaskGroup<T> {
    /// An empty group.
    pub fn new() -> TaskGroup<T> {
        TaskGroup {
            tasks: FutureSet::new(),
        }
    }

    /// Spawns `future` on the current runtime as a member of the group.
    ///
    /// # Panics
    ///
    /// Outside a runtime, like [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        let join = crate::spawn_current(future, SpawnMeta::new(None), "weft::future::TaskGroup::spawn()");
        self.insert(join)
    }

    /// Spawns `future` on `handle`'s runtime as a member of the group
    /// (`handle`: a `weft::Handle` or this crate's [`Handle`]).
    #[track_caller]
    pub fn spawn_on<F>(&mut self, future: F, handle: impl AsRef<Handle>) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(handle.as_ref().spawn(future))
    }

    fn insert(&mut self, join: JoinHandle<T>) -> AbortHandle {
        let abort = join.abort_handle();
        self.tasks.push(join);
        abort
    }

    /// The next member to finish, or `None` if the group is empty.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// Polls for the next member to finish.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.tasks.poll_next(cx).map(|next| next.map(|(_, out)| out))
    }

    /// Waits for every member and returns their outcomes in completion
    /// order.
    pub async fn join_all(mut self) -> Vec<Result<T, JoinError>> {
        let mut outcomes = Vec::with_capacity(self.len());
        while let Some(out) = self.join_next().await {
            outcomes.push(out);
        }
        outcomes
    }

    /// Cancels every member; they leave the group as they stop, through
    /// [`join_next`](Self::join_next).
    pub fn abort_all(&self) {
        self.tasks.for_each(|join| join.abort());
    }

    /// Cancels every member and waits until each has stopped.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Members not yet joined.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True if the group has no members.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl<T: Send + 'static> Default for TaskGroup<T> {
    fn default() -> TaskGroup<T> {
        TaskGroup::new()
    }
}

/// A group is a [`Stream`](futures_core::Stream) of its members' outcomes,
/// in completion order ([`join_next`](TaskGroup::join_next) as a stream),
/// ending when it is empty.
impl<T: Send + 'static> futures_core::Stream for TaskGroup<T> {
    type Item = Result<T, JoinError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_join_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<T> Drop for TaskGroup<T> {
    fn drop(&mut self) {
        self.tasks.for_each(|join| join.abort());
    }
}

impl<T> fmt::Debug for TaskGroup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup").field("len", &self.tasks.len()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::CancellationToken;

    #[test]
    fn dropped_child_tokens_do_not_accumulate_on_the_parent() {
        let parent = CancellationToken::new();
        let keep = parent.child_token();
        for _ in 0..1000 {
            let child = parent.child_token();
            let _clone = child.clone();
        }
        assert_eq!(parent.inner.promise.listener_count(), 1);
        drop(keep);
        assert_eq!(parent.inner.promise.listener_count(), 0);
    }
}
