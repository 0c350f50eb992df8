//! Weft's own future, task and callback API, in the vocabulary of Python's
//! `asyncio` and `concurrent.futures`.
//!
//! | asyncio | here |
//! | --- | --- |
//! | `Future` (`loop.create_future()`) | [`Promise`], with [`Resolver`] as the producer's settable side |
//! | `Task` (`asyncio.create_task`) | [`Task`] via [`create_task`]: a spawned task whose handle is a promise |
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
//! # How the pieces sit
//!
//! - `state.rs`: the promise core: a state word, a write-once outcome and a
//!   listener list, with the rules that make every done callback run exactly
//!   once (model-checked in `loom_tests.rs`).
//! - `promise.rs`: [`Promise`], [`Resolver`], blocking `wait`, [`shield`].
//!   Done callbacks go to the runtime's ready queue (`callback.rs` at the
//!   crate root), the same FIFO `call_soon` uses.
//! - `task.rs`: [`Task`]: the task's future settles its promise; the
//!   promise's cancel aborts the task.
//! - `set.rs`: the engine of every combinator: futures polled in place, each
//!   with its own waker.
//! - `combine.rs`: [`gather`], [`wait_until`], [`as_completed`], [`race`].
//! - `group.rs`: [`TaskGroup`], [`CancellationToken`], [`TaskTracker`].

mod combine;
mod error;
mod group;
mod promise;
mod set;
mod state;
mod task;

#[cfg(all(test, loom))]
mod loom_tests;

pub use combine::{
    AsCompleted, Either, Gather, GatherAll, Race, ReturnWhen, Wait, WaitOutcome, as_completed, gather, race, race2,
    wait_until,
};
pub use error::{Exception, PromiseError};
pub use group::{CancellationToken, DropGuard, TaskGroup, TaskTracker, WaitForCancellation};
pub use promise::{CallbackId, Promise, Resolver, Shield, shield};
pub use task::{Task, create_task};

pub(crate) use task::spawn_task;
