//! # weft-sync: runtime-agnostic synchronisation
//!
//! ```
//! use std::sync::Arc;
//! use weft_sync::{Mutex, Semaphore};
//!
//! // Any executor works: this is the `futures` crate's `block_on`.
//! futures::executor::block_on(async {
//!     let pool = Arc::new(Semaphore::new(3)); // three connections
//!     let log = Mutex::new(Vec::new());
//!     for client in 0..5 {
//!         let _permit = pool.acquire().await.unwrap();
//!         log.lock().await.push(client);
//!     }
//!     assert_eq!(*log.lock().await, [0, 1, 2, 3, 4]);
//! });
//! ```
//!
//! Weft's locks, semaphores, events and channels: the vocabulary of Tokio
//! (`Mutex`, `RwLock`, `Semaphore`, `Notify`, mpsc, oneshot, broadcast,
//! watch) and of Python's `threading` and `asyncio` (`Lock`, `Condition`,
//! `Event`, `Barrier`, `Queue`), built on one model-checked core. It needs
//! nothing from a runtime but `std::task::Waker`, so it works on Weft, on
//! Tokio, on smol or under a bare `block_on`, and it depends on no other
//! Weft crate.
//!
//! ## What is here, and where
//!
//! | file | what |
//! | --- | --- |
//! | `waitlist.rs` | a FIFO of waiters with O(1) removal, so a cancelled waiter leaves at once |
//! | `wake_list.rs` | wakers taken under a lock and woken after it, every one even if another's wake panics |
//! | `semaphore.rs` | [`Semaphore`], the core: FIFO permits, cancel-safe acquires, close (its module doc states the rules) |
//! | `mutex.rs` | [`Mutex`]: a one-permit semaphore around a value |
//! | `notify.rs` | [`Notify`] (wake one, wake all, cancel-safe) and asyncio's [`Event`] on it |
//! | `rwlock.rs` | [`RwLock`]: readers take one permit, writers all of them (FIFO, so writers do not starve) |
//! | `bounded.rs` | [`BoundedSemaphore`]: threading's, where releasing more than was acquired is an error |
//! | `condition.rs` | [`Condition`], [`Barrier`], [`OnceCell`] |
//! | `mpsc.rs` | [`mpsc::channel`] (bounded: its slots are a semaphore) and [`mpsc::unbounded_channel`]; the receiver takes messages in batches |
//! | `oneshot.rs` | [`oneshot::channel`]: one value |
//! | `broadcast.rs` | [`broadcast::channel`]: every receiver sees every message from a ring of slots, each under its own lock; a slow one is told it lagged |
//! | `padded.rs` | keeps fields that different threads write on separate cache lines |
//! | `watch.rs` | [`watch::channel`]: one value, watched for changes |
//! | `queue.rs` | asyncio's [`Queue`] (`put`, `get`, `task_done`, `join`, Python 3.13's `shutdown`) on two semaphores |
//! | `alt.rs` | [`alt::alt`]: the first ready of several operations, chosen fairly |
//! | `select.rs` | [`select!`]: Tokio's macro, for a fixed set of futures pinned on the stack, fair or `biased;` |
//! | `random.rs` | the per-thread generator behind those fair choices |
//! | `loom.rs` | the shim that lets the loom models check the shipping code |
//! | `observe.rs` | what a parked task waits on, told to a runtime that keeps task dumps |
//!
//! ## Why there is no `RLock`
//!
//! A reentrant lock lets its *owner* lock it again. Python's `RLock` is
//! owned by a thread; in async code the owner would be a task, which
//! migrates between threads and has no identity a library without a runtime
//! can see. A reentrant async lock also hides the real problem it papers
//! over: a function that locks and calls another that locks the same state.
//! Lock once at the top and pass the guard (`&mut T`) down instead; for
//! recursive code, take the guard as a parameter.
//!
//! Every wait in the crate (acquire, lock, receive, `notified`) is
//! cancel-safe: dropping it leaves no waiter behind and passes on anything
//! it had been handed. Each method's docs say so, or say what is lost.
//!
//! Two rules hold in every wait list here (each module doc says how):
//! **clone, then link** (a waiter's waker is cloned before its entry is
//! linked, so a `Waker::clone` that panics leaves nothing behind:
//! `waker_panic_tests.rs` tries each list) and **decide under one lock**
//! (a fact and the state it is read against, such as "no message" and
//! "every sender gone", or "last arrival" and "round over", are read and
//! changed in one critical section).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod alt;
mod bounded;
pub mod broadcast;
mod condition;
pub mod coop;
mod error;
mod loom;
pub mod mpsc;
mod mutex;
mod notify;
pub mod observe;
pub mod oneshot;
mod padded;
mod queue;
mod random;
mod rwlock;
mod select;
mod semaphore;
mod waitlist;
mod wake_list;
pub mod watch;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod waker_panic_tests;

pub use bounded::{BoundedSemaphore, ReleaseError};
pub use condition::{Barrier, BarrierWaitResult, Condition, OnceCell};
pub use mutex::{Mutex, MutexGuard, OwnedMutexGuard, TryLockError};
pub use notify::{Event, Notified, Notify};
pub use queue::{Queue, QueueShutDown, TaskDoneError, TryGetError, TryPutError};
pub use rwlock::{MAX_READERS, RwLock, RwLockReadGuard, RwLockWriteGuard, TryRwLockError};
#[doc(hidden)]
pub use select::__private;
pub use semaphore::{
    Acquire, AcquireError, AcquireOwned, MAX_PERMITS, OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError,
};
