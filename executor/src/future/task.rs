//! [`Task`]: asyncio's `Task`, which in Weft is the handle
//! [`spawn`](crate::spawn) returns.

use crate::task::JoinHandle;
use crate::trace::SpawnMeta;
use std::future::Future;

/// A running task: asyncio's `Task`, and the very handle that
/// [`spawn`](crate::spawn) returns ([`JoinHandle`]). It is awaited by its
/// owner, who gets the output by move (any output: no `Clone`, no `Sync`),
/// and it has asyncio's `Task` API: `add_done_callback`,
/// `remove_done_callback`, `cancel`, `cancelled`, `done`, `result`.
///
/// Dropping it detaches the task (it keeps running, and its done callbacks
/// still run), as Tokio's `JoinHandle` does; only an explicit act cancels
/// it: `cancel` (or `abort`), [`wait_for`]'s timeout in the runtime crate, a
/// [`TaskGroup`](super::TaskGroup), a runtime shutting down. For an outcome
/// that several observers share, settle a [`Promise`](super::Promise) from
/// the task.
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
///     assert!(forever.await.unwrap_err().is_cancelled());
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`wait_for`]: https://docs.rs/weft/latest/weft/future/fn.wait_for.html
pub type Task<T> = JoinHandle<T>;

/// Spawns `future` on the current runtime and returns its [`Task`]
/// (asyncio's `asyncio.create_task`): the same as [`spawn`](crate::spawn).
///
/// # Panics
///
/// Outside a runtime, like [`spawn`](crate::spawn).
#[track_caller]
pub fn create_task<F>(future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::spawn_current(future, SpawnMeta::new(None), "weft::future::create_task()")
}
