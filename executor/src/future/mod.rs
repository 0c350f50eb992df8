//! Weft's own future, task and callback API, in the vocabulary of Python's
//! `asyncio` and `concurrent.futures`.
//!
//! | asyncio | here |
//! | --- | --- |
//! | `Future` (`loop.create_future()`) | [`Promise`], with [`Resolver`] as the producer's settable side |
//! | `Task` (`asyncio.create_task`) | [`Task`] via [`create_task`]: the handle `spawn` returns, with done callbacks |
//! | `loop.call_soon(fn)` | [`Handle::call_soon`](crate::Handle::call_soon) → [`CallbackHandle`](crate::CallbackHandle) |
//! | `asyncio.gather(*aws, return_exceptions=...)` | [`gather`], [`Gather::return_exceptions`] |
//! | `asyncio.wait(aws, return_when=...)` | [`wait_until`] with [`ReturnWhen`] (the runtime's `wait` adds the timeout) |
//! | `asyncio.as_completed(aws)` | [`as_completed`] |
//! | `asyncio.shield(aw)` | [`shield`] |
//! | `asyncio.TaskGroup` | [`TaskGroup`] |
//! | racing (`FIRST_COMPLETED` and cancel the rest) | [`race`], [`race2`] |
//!
//! and, for shutdowns, [`CancellationToken`] and [`TaskTracker`].
//!
//! # Cancel, drop and await: asyncio, Tokio and Weft
//!
//! | | asyncio | Tokio | Weft |
//! | --- | --- | --- | --- |
//! | awaiting a task | gives its result (any awaiter) | `JoinHandle` gives the output by move, to its one owner | the same as Tokio: [`Task`] is the `JoinHandle`; no `Clone` or `Sync` needed |
//! | dropping the task's handle | the task keeps running | detaches: it keeps running | detaches (its done callbacks still run) |
//! | abandoning an `await` of a task (`timeout`, `select`) | cancels the task | nothing: the task runs on | nothing: the task runs on |
//! | abandoning an `await` of a future/promise | cancels it | (no shared future) | nothing: the [`Promise`] stays pending for its other observers |
//! | `task.cancel()` | cancels (the task sees `CancelledError` at its next `await`) | `abort()` | `cancel()` / `abort()`: the future is dropped at its next await point (destructors run; no chance to catch it) |
//! | `wait_for(aw, timeout)` on timeout | cancels `aw` | `tokio::time::timeout` drops it | cancels it ([`Cancel`]); [`shield`] protects it; `weft::time::timeout` only drops |
//! | done callbacks | `add_done_callback`, run with `call_soon` | none | on [`Promise`] (run on the loop) and on [`Task`] (run where the task finishes) |
//! | a runtime shutting down | cancels the tasks | cancels the tasks | cancels the tasks; their promises report the cancellation |
//!
//! Weft follows Rust where dropping is routine: a future is dropped by
//! every `race`, `select` and `timeout`, so in Weft only an explicit act
//! cancels: `cancel()`, `wait_for`'s timeout, a [`TaskGroup`] or a
//! [`CancellationToken`], a runtime shutting down.
//!
//! # How the pieces sit
//!
//! - `state.rs`: the promise core: a state word, a write-once outcome and a
//!   listener list, with the rules that make every done callback run exactly
//!   once (model-checked in `loom_tests.rs`).
//! - `promise.rs`: [`Promise`], [`Resolver`], blocking `wait`.
//!   Done callbacks go to the runtime's ready queue (`callback.rs` at the
//!   crate root), the same FIFO `call_soon` uses.
//! - `task.rs`: [`Task`], the name asyncio users know for the
//!   `JoinHandle` (whose done callbacks live in `crate::task`).
//! - `cancel.rs`: [`Cancel`], what `wait_for` cancels on timeout, and
//!   [`shield`], what protects from it.
//! - `set.rs`: the engine of every combinator: futures polled in place, each
//!   with its own waker.
//! - `combine.rs`: [`gather`], [`wait_until`], [`as_completed`], [`race`].
//! - `group.rs`: [`TaskGroup`], [`CancellationToken`], [`TaskTracker`].

mod cancel;
mod combine;
mod error;
mod group;
mod promise;
mod set;
mod state;
mod task;

#[cfg(all(test, loom))]
mod loom_tests;

pub use cancel::{Cancel, Shield, shield};
pub use combine::{
    AsCompleted, Either, Gather, GatherAll, Race, ReturnWhen, Wait, WaitOutcome, as_completed, gather, race, race2,
    wait_until,
};
pub use error::{Exception, PromiseError};
pub use group::{CancellationToken, DropGuard, TaskGroup, TaskTracker, WaitForCancellation};
pub use promise::{CallbackId, Promise, Resolver};
pub use task::{Task, create_task};
