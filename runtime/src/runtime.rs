//! The runtime: an executor with its driver, and the handle to reach it.
//!
//! For now the driver is a plain thread parker; the reactor (I/O and timers)
//! plugs in here through the executor's `Park` trait.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;
use weft_executor::{Executor, Flavor, JoinHandle, RuntimeMetrics, TryCurrentError, UnhandledPanic};

/// Configures and builds a [`Runtime`].
///
/// ```
/// let rt = weft::Builder::new_multi_thread()
///     .worker_threads(2)
///     .thread_name("api")
///     .build()?;
/// assert_eq!(rt.block_on(async { weft::spawn(async { 7 }).await.unwrap() }), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Builder {
    exec: weft_executor::Builder,
}

impl Builder {
    /// A multi-thread, work-stealing runtime with one worker per CPU.
    pub fn new_multi_thread() -> Builder {
        Builder {
            exec: weft_executor::Builder::new_multi_thread(),
        }
    }

    /// A runtime that runs every task on the thread that calls `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder {
            exec: weft_executor::Builder::new_current_thread(),
        }
    }

    /// Worker threads of a multi-thread runtime (default: the number of
    /// CPUs).
    pub fn worker_threads(&mut self, n: usize) -> &mut Builder {
        self.exec.worker_threads(n);
        self
    }

    /// The prefix of thread names (default `weft`): `{prefix}-worker-{i}`,
    /// `{prefix}-blocking-{i}`.
    pub fn thread_name(&mut self, prefix: impl Into<String>) -> &mut Builder {
        self.exec.thread_name(prefix);
        self
    }

    /// The stack size of the runtime's threads.
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Builder {
        self.exec.thread_stack_size(bytes);
        self
    }

    /// The most threads the blocking pool starts (default 512).
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Builder {
        self.exec.max_blocking_threads(n);
        self
    }

    /// How long an idle blocking-pool thread lives (default 10 s).
    pub fn thread_keep_alive(&mut self, keep_alive: Duration) -> &mut Builder {
        self.exec.thread_keep_alive(keep_alive);
        self
    }

    /// Task polls between two non-blocking polls of the driver (default 61).
    pub fn event_interval(&mut self, ticks: u32) -> &mut Builder {
        self.exec.event_interval(ticks);
        self
    }

    /// Ticks between two looks at the injection queue ahead of local work
    /// (default 61 multi-thread, 31 current-thread).
    pub fn global_queue_interval(&mut self, ticks: u32) -> &mut Builder {
        self.exec.global_queue_interval(ticks);
        self
    }

    /// What a panic that escapes a task does (default: ignore it; the
    /// `JoinHandle` reports it).
    pub fn unhandled_panic(&mut self, policy: UnhandledPanic) -> &mut Builder {
        self.exec.unhandled_panic(policy);
        self
    }

    /// Runs `f` on each runtime thread when it starts.
    pub fn on_thread_start(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Builder {
        self.exec.on_thread_start(f);
        self
    }

    /// Runs `f` on each runtime thread before it exits.
    pub fn on_thread_stop(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Builder {
        self.exec.on_thread_stop(f);
        self
    }

    /// Builds the runtime and starts its threads.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero count or interval; the operating system's
    /// error if a thread cannot be started.
    pub fn build(&mut self) -> io::Result<Runtime> {
        Ok(Runtime {
            exec: self.exec.build()?,
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.exec.fmt(f)
    }
}

/// A running Weft runtime.
///
/// Dropping it cancels every task (running their futures' destructors),
/// joins the workers, cancels queued blocking jobs and waits for running
/// ones; [`shutdown_timeout`](Runtime::shutdown_timeout) bounds the wait.
pub struct Runtime {
    exec: Executor,
}

impl Runtime {
    /// A multi-thread runtime with default settings.
    ///
    /// # Errors
    ///
    /// If a worker thread cannot be started.
    pub fn new() -> io::Result<Runtime> {
        Builder::new_multi_thread().build()
    }

    /// Runs `future` to completion on this thread and returns its output.
    ///
    /// # Panics
    ///
    /// If this thread already runs a runtime (a worker, or inside another
    /// `block_on`): `.await` the future there instead.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.exec.block_on(future)
    }

    /// Spawns a task and returns its [`JoinHandle`].
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.exec.spawn(future)
    }

    /// Runs a blocking closure on the blocking pool.
    pub fn spawn_blocking<F, R>(&self, func: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.exec.spawn_blocking(func)
    }

    /// A handle that reaches this runtime from any thread.
    pub fn handle(&self) -> Handle {
        Handle {
            exec: self.exec.handle().clone(),
        }
    }

    /// Makes this runtime current on this thread until the guard drops.
    pub fn enter(&self) -> weft_executor::EnterGuard<'_> {
        self.exec.enter()
    }

    /// A snapshot of the runtime's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.exec.metrics()
    }

    /// Shuts down, waiting at most `timeout` for threads still running.
    pub fn shutdown_timeout(self, timeout: Duration) {
        self.exec.shutdown_timeout(timeout);
    }

    /// Shuts down without waiting for threads still running.
    pub fn shutdown_background(self) {
        self.exec.shutdown_background();
    }
}

// Runtimes are shared between threads (`Arc`, statics): keep them so.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Runtime>();
    assert_send_sync::<Handle>();
};

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("flavor", &self.exec.handle().flavor())
            .finish_non_exhaustive()
    }
}

/// A cloneable reference to a runtime, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    exec: weft_executor::Handle,
}

impl Handle {
    /// The runtime this thread is in.
    ///
    /// # Panics
    ///
    /// Outside a runtime; use [`try_current`](Handle::try_current) there.
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            Err(err) => panic!("weft::Handle::current(): {err}"),
        }
    }

    /// The runtime this thread is in, if any.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        weft_executor::Handle::try_current().map(|exec| Handle { exec })
    }

    /// Spawns a task on this runtime.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.exec.spawn(future)
    }

    /// Runs a blocking closure on this runtime's blocking pool.
    pub fn spawn_blocking<F, R>(&self, func: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.exec.spawn_blocking(func)
    }

    /// Runs `future` to completion on this thread.
    ///
    /// # Panics
    ///
    /// If this thread already runs a runtime.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.exec.block_on(future)
    }

    /// Makes this runtime current on this thread until the guard drops.
    pub fn enter(&self) -> weft_executor::EnterGuard<'_> {
        self.exec.enter()
    }

    /// Which scheduler the runtime uses.
    pub fn flavor(&self) -> Flavor {
        self.exec.flavor()
    }

    /// A snapshot of the runtime's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.exec.metrics()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("flavor", &self.flavor())
            .finish_non_exhaustive()
    }
}
