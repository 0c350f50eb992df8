//! `Builder`: spawning a task with settings (for now, its name).

use super::{Id, JoinHandle};
use crate::Handle;
use crate::trace::SpawnMeta;
use std::future::Future;

/// Spawns a task with settings: for now, its name.
///
/// ```
/// use weft_executor::task::Builder;
///
/// let rt = weft_executor::Executor::new()?;
/// let sum = rt.block_on(async {
///     let conn = Builder::new().name("conn-42").spawn(async { 40 });
///     let fsync = Builder::new().name("fsync").spawn_blocking(|| 2);
///     conn.await.unwrap() + fsync.await.unwrap()
/// });
/// assert_eq!(sum, 42);
///
/// // From outside the runtime, name the runtime:
/// let late = Builder::new().name("late").spawn_on(async { 1 }, rt.handle());
/// assert_eq!(rt.block_on(late).unwrap(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # The name
///
/// The name shows in task dumps ([`Handle::dump`](crate::Handle::dump))
/// and on the [`timeline`](crate::timeline), and, with the feature
/// `tracing`, as the `task.name` field of the task's span (see
/// [`crate::trace`]). A named task costs one allocation for the name, kept
/// beside the task's entry in the runtime's list of tasks until it ends; an
/// unnamed one, nothing. Names need not be unique; the task's [`Id`] is.
///
/// # Why no `Result`
///
/// The spawn functions return a [`JoinHandle`] like [`spawn`](crate::spawn)
/// does, so a `Builder` chain can replace a `spawn` call as it is. What can
/// go wrong at a spawn already reaches the handle: a runtime that has shut
/// down cancels the task, and a blocking job for which the operating system
/// refuses a thread is cancelled; awaiting the handle reports either as
/// [`JoinError::is_cancelled`](crate::JoinError::is_cancelled). The one
/// misuse, [`spawn`](Builder::spawn) outside a runtime, panics as `spawn`
/// does; [`spawn_on`](Builder::spawn_on) cannot meet it.
#[derive(Debug, Clone, Copy, Default)]
#[must_use = "a Builder does nothing until one of its spawn methods is called"]
pub struct Builder<'a> {
    name: Option<&'a str>,
}

impl<'a> Builder<'a> {
    /// A builder with no settings: its tasks are unnamed.
    pub fn new() -> Builder<'a> {
        Builder { name: None }
    }

    /// Names the task.
    pub fn name(self, name: &'a str) -> Builder<'a> {
        Builder { name: Some(name) }
    }

    /// Spawns `future` on the current runtime; see [`spawn`](crate::spawn).
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
        crate::spawn_current(future, SpawnMeta::new(self.name), "weft::task::Builder::spawn()")
    }

    /// Spawns `future` on `handle`'s runtime; see [`Handle::spawn`].
    #[track_caller]
    pub fn spawn_on<F>(self, future: F, handle: &Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        handle.inner.spawn(future, Id::next(), SpawnMeta::new(self.name))
    }

    /// Runs `func` on the current runtime's blocking pool; see
    /// [`spawn_blocking`](crate::spawn_blocking).
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
        crate::spawn_blocking_current(func, SpawnMeta::new(self.name), "weft::task::Builder::spawn_blocking()")
    }

    /// Runs `func` on `handle`'s blocking pool; see
    /// [`Handle::spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking_on<F, R>(self, func: F, handle: &Handle) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        handle
            .inner
            .blocking_spawner()
            .spawn_blocking(&handle.inner, func, SpawnMeta::new(self.name))
    }
}
