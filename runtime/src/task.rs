//! Tasks: spawning (with a name, through [`Builder`]), joining, cancelling,
//! yielding, and task ids.

pub use weft_executor::coop::{consume_budget, unconstrained};
pub use weft_executor::task::{
    AbortHandle, DoneTask, Id, JoinError, JoinHandle, Unavailable, id, spawn, spawn_blocking, try_id, yield_now,
};

use crate::Handle;
use std::future::Future;

/// Spawns a task with settings: for now, its name, which (with feature
/// `tracing`) is the `task.name` field of the task's span.
///
/// ```
/// let rt = weft::Runtime::new()?;
/// let answer = rt.block_on(async {
///     let conn = weft::task::Builder::new().name("conn-42").spawn(async { 40 });
///     let fsync = weft::task::Builder::new().name("fsync").spawn_blocking(|| 2);
///     conn.await.unwrap() + fsync.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// // From outside the runtime, name the runtime:
/// let late = weft::task::Builder::new().name("late").spawn_on(async { 1 }, &rt.handle());
/// assert_eq!(rt.block_on(late).unwrap(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Its spawn methods return a [`JoinHandle`] as [`spawn`] does, so a
/// `Builder` chain can replace a `spawn` call as it is; see
/// [`weft_executor::task::Builder`] for why there is no `Result`.
#[derive(Debug, Clone, Copy, Default)]
#[must_use = "a Builder does nothing until one of its spawn methods is called"]
pub struct Builder<'a> {
    inner: weft_executor::task::Builder<'a>,
}

impl<'a> Builder<'a> {
    /// A builder with no settings: its tasks are unnamed.
    pub fn new() -> Builder<'a> {
        Builder {
            inner: weft_executor::task::Builder::new(),
        }
    }

    /// Names the task.
    pub fn name(self, name: &'a str) -> Builder<'a> {
        Builder {
            inner: self.inner.name(name),
        }
    }

    /// Spawns `future` on the current runtime; see [`spawn`].
    ///
    /// # Panics
    ///
    /// Outside a runtime; use [`spawn_on`](Builder::spawn_on) there.
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn(future)
    }

    /// Spawns `future` on `handle`'s runtime, from any thread.
    #[track_caller]
    pub fn spawn_on<F>(self, future: F, handle: &Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn_on(future, &handle.exec)
    }

    /// Runs `func` on the current runtime's blocking pool; see
    /// [`spawn_blocking`].
    ///
    /// # Panics
    ///
    /// Outside a runtime; use
    /// [`spawn_blocking_on`](Builder::spawn_blocking_on) there.
    #[track_caller]
    pub fn spawn_blocking<F, R>(self, func: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.spawn_blocking(func)
    }

    /// Runs `func` on `handle`'s blocking pool, from any thread.
    #[track_caller]
    pub fn spawn_blocking_on<F, R>(self, func: F, handle: &Handle) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.spawn_blocking_on(func, &handle.exec)
    }
}
