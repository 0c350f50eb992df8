//! # Weft
//!
//! An async runtime built from scratch on OS polling, with a work-stealing
//! executor, for services that overlap network I/O, GPU kernels and MPI
//! messages in one loop.
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = weft::Runtime::new()?;
//! let sum = rt.block_on(async {
//!     // Ten tasks, spread over the workers.
//!     let tasks: Vec<_> = (1..=10u64).map(|i| weft::spawn(async move { i * i })).collect();
//!     // A blocking call goes to the blocking pool, not a worker.
//!     let nap = weft::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)));
//!     let mut sum = 0;
//!     for task in tasks {
//!         sum += task.await.unwrap();
//!     }
//!     nap.await.unwrap();
//!     sum
//! });
//! assert_eq!(sum, 385);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Crates
//!
//! `weft` composes the pieces, each a crate of its own that you can read in
//! one sitting:
//!
//! - [`weft_executor`]: tasks, the schedulers and the blocking pool;
//! - `weft-io`: the reactor, timers, sources and sockets;
//! - `weft-sync`: locks, semaphores and channels for any runtime;
//! - `weft-mpi` (feature `mpi`, as `weft::mpi`): MPI messages, collectives
//!   and a pool of worker ranks, awaited in the loop;
//! - `weft-gpu` (feature `gpu`, as `weft::gpu`): CUDA copies, kernel
//!   launches and events awaited in the loop; builds without CUDA and
//!   answers `GpuError::NoDriver` on a machine without a driver.
//!
//! ## Python's vocabulary
//!
//! [`future`] has asyncio's API in Rust: [`future::Promise`] (a `Future`
//! object with done callbacks, settable from any thread),
//! [`future::create_task`], `gather`, `wait`, `wait_for`, `as_completed`,
//! task groups; [`Handle::call_soon`], [`Handle::call_later`] and
//! [`Handle::call_at`] schedule callbacks on the loop; [`pool::Pool`] is
//! multiprocessing's `Pool` on threads.
//!
//! `docs/ARCHITECTURE.md` follows one wakeup from the operating system to a
//! task's `poll`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod driver;
pub mod future;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod runtime;
#[cfg(feature = "web")]
pub mod web;

pub use runtime::{Builder, EnterGuard, Handle, Runtime};
pub use weft_executor::{
    AbortHandle, Flavor, JoinError, JoinHandle, RuntimeMetrics, UnhandledPanic, WorkerMetrics, spawn, spawn_blocking,
};
pub use weft_executor::{CallbackHandle, TryCurrentError};

/// TCP, UDP and Unix-domain sockets.
pub use weft_io::net;

/// Timers: `sleep`, `timeout`, `interval`.
pub use weft_io::time;

/// Async I/O helpers: `AsyncReadExt`, `AsyncWriteExt`, `BufReader`, `copy`.
pub use weft_io::io;

/// Other crates' I/O traits on Weft's types: hyper's (feature `hyper`, and
/// see the `weft::hyper` module it adds) and Tokio's (feature
/// `tokio-compat`).
pub use weft_io::compat;

/// Unix signals and Ctrl-C, delivered through the reactor.
pub use weft_io::signal;

/// Runtime-agnostic locks, semaphores, events and channels: see
/// [`weft_sync`].
pub use weft_sync as sync;

/// Waits on several futures and runs the first one's handler: Tokio's
/// `select!` (fair, or `biased;`, with `, if` conditions and `else`). It
/// lives in `weft-sync`, beside `alt`, because it needs nothing but
/// `std::task`: see [`weft_sync::select!`].
pub use weft_sync::select;

/// Runs an `async fn main` on a Weft runtime: see [`weft_macros::main`].
pub use weft_macros::main;

/// Runs an `async fn` test on a Weft runtime: see [`weft_macros::test`].
pub use weft_macros::test;

/// Work with no file descriptor polled by the loop, and the completion
/// notifier that hands results from other threads to the loop.
pub use weft_io::source;

/// A handle to a runtime's reactor (see [`Runtime::reactor`]): registers
/// sources, gives the completion notifier.
pub use weft_io::Handle as ReactorHandle;

pub mod task;

/// The tracing vocabulary (feature `tracing`): which spans and events Weft
/// emits, with what fields.
pub use weft_executor::trace;

/// The cooperative budget that keeps a task from starving its worker.
pub use weft_executor::coop;

/// A pool of threads for CPU work: Python's `multiprocessing.Pool`.
pub use weft_executor::pool;

/// CUDA copies and launches awaited as loop events (feature `gpu`): see
/// [`weft_gpu`].
#[cfg(feature = "gpu")]
pub use weft_gpu as gpu;

#[cfg(feature = "mpi")]
pub mod mpi;

// The README's Rust examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
