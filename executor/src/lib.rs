//! # weft-executor: Weft's tasks and schedulers
//!
//! ```
//! use weft_executor::Builder;
//!
//! let rt = Builder::new_multi_thread().worker_threads(2).build()?;
//! let total = rt.block_on(async {
//!     let handles: Vec<_> = (0..10u64).map(|i| weft_executor::spawn(async move { i * i })).collect();
//!     let mut total = 0;
//!     for handle in handles {
//!         total += handle.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 285);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! This crate is the half of Weft that runs futures; it knows nothing of
//! I/O. The runtime (crate `weft`) plugs its reactor in through the [`Park`]
//! trait and re-exports what is here, so most programs use `weft` and never
//! name this crate.
//!
//! ## What is here, and where
//!
//! | file | what |
//! | --- | --- |
//! | `task/` | the task: one allocation, one atomic state word (`task/mod.rs` states the rules), `JoinHandle`, `AbortHandle`, `JoinError`, the spawn [`task::Builder`] |
//! | `scheduler/multi_thread/` | workers with local queues, LIFO slots and stealing (`worker.rs`), who parks and who searches (`idle.rs`) |
//! | `scheduler/current_thread.rs` | everything on the thread in `block_on` |
//! | `scheduler/inject.rs` | the injection queue for work from other threads |
//! | `park.rs` | the [`Park`]/[`Unpark`] traits and the parker workers sleep on |
//! | `blocking/` | the pool behind [`spawn_blocking`] |
//! | `coop.rs` | the cooperative budget that keeps one task from starving the rest |
//! | `callback.rs` | the loop's FIFO of ready callbacks (`call_soon`, promise done callbacks) |
//! | `future/` | the asyncio-style API: [`future::Promise`], [`future::Task`], `gather`, `wait`, task groups |
//! | `pool/` | [`pool::Pool`], multiprocessing's `Pool` on threads |
//! | `context.rs` | the thread-locals: current runtime, current task |
//! | `metrics.rs` | counters you can read while it runs |
//! | `trace.rs` | feature `tracing`: a span per task and events for wakes, parks and steals ([`trace`] lists them) |
//!
//! For the path of a wakeup from the operating system to `poll`, read
//! `docs/ARCHITECTURE.md` at the repository root.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod blocking;
mod callback;
mod context;
pub mod coop;
pub mod future;
mod latch;
mod loom;
mod metrics;
pub mod park;
pub mod pool;
mod scheduler;
pub mod task;
pub mod trace;

#[cfg(all(test, not(loom)))]
mod runtime_tests;

pub use callback::CallbackHandle;
pub use context::TryCurrentError;
pub use metrics::{RuntimeMetrics, WorkerMetrics};
pub use park::{Park, Unpark};
pub use task::{AbortHandle, JoinError, JoinHandle};

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use trace::SpawnMeta;

/// Which scheduler a runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flavor {
    /// Every task runs on the thread that calls `block_on`.
    CurrentThread,
    /// Tasks run on a pool of worker threads that steal work from each
    /// other.
    MultiThread,
}

/// What the runtime does when a panic escapes a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UnhandledPanic {
    /// Keep running; the task's `JoinHandle` reports the panic
    /// ([`JoinError::is_panic`]). The default.
    #[default]
    Ignore,
    /// Shut the runtime down: every task is cancelled and `block_on` panics.
    /// For programs where a panicking task means the process is broken.
    ShutdownRuntime,
}

/// Configures and builds an [`Executor`].
///
/// ```
/// use std::time::Duration;
/// use weft_executor::{Builder, UnhandledPanic};
///
/// let rt = Builder::new_multi_thread()
///     .worker_threads(4)
///     .thread_name("svc")
///     .max_blocking_threads(32)
///     .thread_keep_alive(Duration::from_secs(5))
///     .unhandled_panic(UnhandledPanic::ShutdownRuntime)
///     .build()?;
/// # drop(rt);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Builder {
    flavor: Flavor,
    worker_threads: Option<usize>,
    thread_name: String,
    thread_stack_size: Option<usize>,
    max_blocking_threads: usize,
    thread_keep_alive: Duration,
    event_interval: u32,
    global_queue_interval: u32,
    unhandled_panic: UnhandledPanic,
    on_thread_start: Option<scheduler::Callback>,
    on_thread_stop: Option<scheduler::Callback>,
    driver: Option<Box<dyn Park>>,
}

impl Builder {
    /// A builder for a multi-thread, work-stealing runtime with one worker
    /// per CPU.
    pub fn new_multi_thread() -> Builder {
        Builder::new(Flavor::MultiThread, 61)
    }

    /// A builder for a runtime that runs every task on the thread that calls
    /// `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder::new(Flavor::CurrentThread, 31)
    }

    fn new(flavor: Flavor, global_queue_interval: u32) -> Builder {
        Builder {
            flavor,
            worker_threads: None,
            thread_name: "weft".to_owned(),
            thread_stack_size: None,
            max_blocking_threads: 512,
            thread_keep_alive: Duration::from_secs(10),
            event_interval: 61,
            global_queue_interval,
            unhandled_panic: UnhandledPanic::Ignore,
            on_thread_start: None,
            on_thread_stop: None,
            driver: None,
        }
    }

    /// Worker threads of a multi-thread runtime (default: the number of
    /// CPUs). Ignored by a current-thread runtime. Zero is refused by
    /// [`build`](Builder::build).
    pub fn worker_threads(&mut self, n: usize) -> &mut Builder {
        self.worker_threads = Some(n);
        self
    }

    /// The prefix of the runtime's thread names (default `weft`): workers are
    /// named `{prefix}-worker-{i}`, blocking-pool threads
    /// `{prefix}-blocking-{i}`.
    pub fn thread_name(&mut self, prefix: impl Into<String>) -> &mut Builder {
        self.thread_name = prefix.into();
        self
    }

    /// The stack size of the runtime's threads (default: the platform's).
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Builder {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// The most threads the blocking pool starts (default 512). Jobs beyond
    /// that wait in a queue.
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Builder {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking-pool thread waits for a job before it exits
    /// (default 10 s).
    pub fn thread_keep_alive(&mut self, keep_alive: Duration) -> &mut Builder {
        self.thread_keep_alive = keep_alive;
        self
    }

    /// Task polls between two non-blocking polls of the driver (I/O and
    /// timers), per worker (default 61).
    pub fn event_interval(&mut self, ticks: u32) -> &mut Builder {
        self.event_interval = ticks;
        self
    }

    /// Ticks between two looks at the injection queue ahead of the local
    /// queue (default 61 multi-thread, 31 current-thread): lower is fairer to
    /// work from outside, higher keeps local work hotter in cache.
    pub fn global_queue_interval(&mut self, ticks: u32) -> &mut Builder {
        self.global_queue_interval = ticks;
        self
    }

    /// What a panic that escapes a task does (default
    /// [`UnhandledPanic::Ignore`]).
    pub fn unhandled_panic(&mut self, policy: UnhandledPanic) -> &mut Builder {
        self.unhandled_panic = policy;
        self
    }

    /// Runs `f` on each runtime thread (worker or blocking) when it starts.
    pub fn on_thread_start(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Builder {
        self.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each runtime thread (worker or blocking) before it exits.
    pub fn on_thread_stop(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Builder {
        self.on_thread_stop = Some(Arc::new(f));
        self
    }

    /// The driver idle threads block in (default: a
    /// [`ThreadParker`](park::ThreadParker), which only waits for wakes). The
    /// runtime passes its reactor here.
    pub fn driver(&mut self, driver: impl Park) -> &mut Builder {
        self.driver = Some(Box::new(driver));
        self
    }

    /// Builds the executor and starts its threads.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero worker count, interval or blocking-thread
    /// limit; the operating system's error if a thread cannot be started.
    pub fn build(&mut self) -> io::Result<Executor> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("Weft runtime: {what}"));
        let workers = match self.worker_threads {
            Some(0) => return Err(invalid("worker_threads must be at least 1")),
            Some(n) if n > scheduler::multi_thread::MAX_WORKERS => {
                return Err(invalid(&format!(
                    "worker_threads must be at most {}",
                    scheduler::multi_thread::MAX_WORKERS
                )));
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if self.event_interval == 0 {
            return Err(invalid("event_interval must be at least 1"));
        }
        if self.global_queue_interval == 0 {
            return Err(invalid("global_queue_interval must be at least 1"));
        }
        if self.max_blocking_threads == 0 {
            return Err(invalid("max_blocking_threads must be at least 1"));
        }
        let driver = self
            .driver
            .take()
            .unwrap_or_else(|| Box::new(park::ThreadParker::new()));
        // The runtime's threads report to the subscriber of the thread that
        // builds it (see `trace`).
        let dispatch = trace::ThreadDispatch::capture();
        let prefix: Arc<str> = self.thread_name.as_str().into();
        let blocking_prefix = prefix.clone();
        let pool = blocking::BlockingPool::new(blocking::PoolConfig {
            max_threads: self.max_blocking_threads,
            keep_alive: self.thread_keep_alive,
            thread_name: Arc::new(move |i| format!("{blocking_prefix}-blocking-{i}")),
            stack_size: self.thread_stack_size,
            on_thread_start: self.on_thread_start.clone(),
            on_thread_stop: self.on_thread_stop.clone(),
            dispatch: dispatch.clone(),
        });
        let config = scheduler::Config {
            event_interval: self.event_interval,
            global_queue_interval: self.global_queue_interval,
            unhandled_panic: self.unhandled_panic,
            on_thread_start: self.on_thread_start.clone(),
            on_thread_stop: self.on_thread_stop.clone(),
        };
        let spawner = pool.spawner().clone();
        let (scheduler, handle) = match self.flavor {
            Flavor::CurrentThread => {
                let handle = scheduler::current_thread::Handle::new(driver, spawner, config);
                (Scheduler::CurrentThread, scheduler::Handle::CurrentThread(handle))
            }
            Flavor::MultiThread => {
                let spec = scheduler::multi_thread::ThreadSpec {
                    name: Arc::new(move |i| format!("{prefix}-worker-{i}")),
                    stack_size: self.thread_stack_size,
                    dispatch,
                };
                let (threads, handle) = scheduler::multi_thread::launch(workers, driver, spawner, config, &spec)?;
                (
                    Scheduler::MultiThread(Some(threads)),
                    scheduler::Handle::MultiThread(handle),
                )
            }
        };
        Ok(Executor {
            handle: Handle { inner: handle },
            scheduler,
            blocking: pool,
            shut_down: false,
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("flavor", &self.flavor)
            .field("worker_threads", &self.worker_threads)
            .field("thread_name", &self.thread_name)
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("thread_keep_alive", &self.thread_keep_alive)
            .field("event_interval", &self.event_interval)
            .field("global_queue_interval", &self.global_queue_interval)
            .field("unhandled_panic", &self.unhandled_panic)
            .finish_non_exhaustive()
    }
}

/// A running executor: its schedulers, worker threads and blocking pool.
///
/// Dropping it shuts it down: every task is cancelled (its future dropped,
/// running its destructors), the workers are joined, and queued blocking
/// jobs are cancelled while running ones are waited for. Use
/// [`shutdown_timeout`](Executor::shutdown_timeout) to bound that wait.
pub struct Executor {
    handle: Handle,
    scheduler: Scheduler,
    blocking: blocking::BlockingPool,
    shut_down: bool,
}

enum Scheduler {
    CurrentThread,
    MultiThread(Option<scheduler::multi_thread::MultiThread>),
}

impl Executor {
    /// A multi-thread executor with default settings.
    ///
    /// # Errors
    ///
    /// If a worker thread cannot be started.
    pub fn new() -> io::Result<Executor> {
        Builder::new_multi_thread().build()
    }

    /// Runs `future` to completion on the current thread and returns its
    /// output. On a current-thread executor, the spawned tasks run here too.
    ///
    /// # Panics
    ///
    /// If called from a thread that already runs a runtime (a worker, or
    /// inside another `block_on`); the message says what to do instead.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Spawns a task; see [`Handle::spawn`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a blocking closure on the blocking pool; see
    /// [`Handle::spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, func: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(func)
    }

    /// A handle to this executor, which can spawn from any thread.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Makes this executor current on this thread until the guard drops, so
    /// that [`spawn`] works outside `block_on`.
    pub fn enter(&self) -> EnterGuard<'_> {
        self.handle.enter()
    }

    /// A snapshot of the executor's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.handle.metrics()
    }

    /// Shuts down, waiting at most `timeout` for workers and blocking jobs
    /// that are still running; threads that do not finish in time are left
    /// to finish on their own. Tasks are cancelled either way.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(timeout));
    }

    /// Shuts down without waiting for anything still running.
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO);
    }

    fn shutdown(&mut self, timeout: Option<Duration>) {
        if std::mem::replace(&mut self.shut_down, true) {
            return;
        }
        let waits = timeout != Some(Duration::ZERO);
        if waits && context::is_entered() {
            if std::thread::panicking() {
                // Unwinding through a worker: waiting could deadlock, and a
                // second panic would abort.
                return self.shutdown_now();
            }
            panic!(
                "a Weft runtime was dropped (or shut down with `shutdown_timeout`) on a thread that runs \
                 async tasks; that waits for its threads, which would block this one. Do it from a plain \
                 thread, move it into `spawn_blocking`, or call `shutdown_background()` instead"
            );
        }
        // A timeout too large to add to `now` (say `Duration::MAX`) is no
        // limit at all.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let remaining = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // Destructors of cancelled tasks may look for the runtime.
        let _current = context::set_current(&self.handle.inner);
        match (&mut self.scheduler, &self.handle.inner) {
            (Scheduler::CurrentThread, scheduler::Handle::CurrentThread(h)) => {
                scheduler::current_thread::Handle::shutdown(h, waits);
            }
            (Scheduler::MultiThread(threads), scheduler::Handle::MultiThread(h)) => {
                h.shutdown();
                if let Some(threads) = threads.take() {
                    threads.join(remaining());
                }
            }
            _ => unreachable!("weft bug: scheduler and handle of different flavours"),
        }
        self.blocking.shutdown(remaining());
    }

    fn shutdown_now(&mut self) {
        match &self.handle.inner {
            scheduler::Handle::CurrentThread(h) => scheduler::current_thread::Handle::shutdown(h, false),
            scheduler::Handle::MultiThread(h) => h.shutdown(),
        }
        self.blocking.shutdown(Some(Duration::ZERO));
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

// A runtime is shared between threads (in an `Arc`, a static, a
// `LazyLock`): every public handle type must stay `Send + Sync`.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Executor>();
    assert_send_sync::<Handle>();
    assert_send_sync::<JoinHandle<()>>();
    assert_send_sync::<AbortHandle>();
    assert_send_sync::<JoinError>();
};

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("flavor", &self.handle.flavor())
            .finish_non_exhaustive()
    }
}

/// A cloneable reference to an executor, usable from any thread.
///
/// ```
/// let rt = weft_executor::Executor::new()?;
/// let handle = rt.handle().clone();
/// let from_thread = std::thread::spawn(move || handle.block_on(handle.spawn(async { 1 })))
///     .join()
///     .unwrap();
/// assert_eq!(from_thread.unwrap(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: scheduler::Handle,
}

impl Handle {
    /// The handle of the runtime this thread is in.
    ///
    /// # Panics
    ///
    /// Outside a runtime; use [`try_current`](Handle::try_current) there.
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            Err(err) => panic!("Handle::current(): {err}"),
        }
    }

    /// The handle of the runtime this thread is in, if any.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::with_current(|inner| Handle { inner: inner.clone() })
    }

    /// Spawns a task on this runtime and returns its [`JoinHandle`].
    ///
    /// The task starts running soon, on a worker, whether or not the handle
    /// is awaited. Spawning onto a runtime that is shut down returns a handle
    /// that reports [`JoinError::is_cancelled`]. To name the task, use
    /// [`task::Builder::spawn_on`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn(future, task::Id::next(), SpawnMeta::new(None))
    }

    /// Runs `func` on the blocking pool and returns a [`JoinHandle`] for its
    /// result. For code that blocks (file I/O, a C library, heavy CPU work)
    /// and would stall a worker. A panic in `func` is reported through the
    /// handle.
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, func: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner
            .blocking_spawner()
            .spawn_blocking(&self.inner, func, SpawnMeta::new(None))
    }

    /// Runs `future` to completion on the current thread; see
    /// [`Executor::block_on`].
    ///
    /// # Panics
    ///
    /// If called from a thread that already runs a runtime.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _entered = context::enter_runtime(&self.inner);
        match &self.inner {
            scheduler::Handle::CurrentThread(h) => scheduler::current_thread::Handle::block_on(h, future),
            scheduler::Handle::MultiThread(h) => scheduler::multi_thread::Handle::block_on(h, future),
        }
    }

    /// Makes this runtime current on this thread until the guard drops.
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _guard: context::set_current(&self.inner),
            _handle: std::marker::PhantomData,
        }
    }

    /// Which scheduler the runtime uses.
    pub fn flavor(&self) -> Flavor {
        self.inner.flavor()
    }

    /// A snapshot of the runtime's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.inner.metrics()
    }

    /// True if both handles refer to the same runtime.
    pub fn ptr_eq(&self, other: &Handle) -> bool {
        self.inner.ptr_eq(&other.inner)
    }

    /// Schedules `f` to run on this runtime's loop soon: asyncio's
    /// `loop.call_soon`.
    ///
    /// Callbacks run one at a time, in the order they were scheduled (from
    /// whichever threads), on a worker. A panic in one is caught, counted in
    /// [`RuntimeMetrics::callback_panics`] and handled by the runtime's
    /// [`UnhandledPanic`] policy; the next callback still runs. On a runtime
    /// that has shut down, `f` is dropped without running and the handle
    /// reports [`CallbackHandle::cancelled`].
    pub fn call_soon(&self, f: impl FnOnce() + Send + 'static) -> CallbackHandle {
        let state = callback::CallbackState::new();
        // Refused by a runtime that is gone: dropped, and reported cancelled.
        let _ = callback::call_soon(&self.inner, Box::new(f), Some(state.clone()));
        CallbackHandle::new(state)
    }

    /// The same as [`call_soon`](Self::call_soon), under asyncio's name for
    /// calls from other threads. Every Weft handle is thread-safe, so the
    /// two are one function; this one exists so ported code reads the same.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> CallbackHandle {
        self.call_soon(f)
    }

    /// Schedules `f` like [`call_soon`](Self::call_soon) once `trigger`
    /// completes: the building block of the runtime's `call_later` and
    /// `call_at`, where the trigger is a timer. `trigger` waits in a small
    /// task of its own; cancelling the handle cancels that task too, so a
    /// cancelled timer callback holds no timer. That task is named
    /// `weft.call_soon_after` in its tracing span.
    #[track_caller]
    pub fn call_soon_after<D>(&self, trigger: D, f: impl FnOnce() + Send + 'static) -> CallbackHandle
    where
        D: Future<Output = ()> + Send + 'static,
    {
        let state = callback::CallbackState::new();
        let scheduler = self.inner.clone();
        let mut guard = callback::TriggerGuard(Some(state.clone()));
        let waiter = self.inner.spawn(
            async move {
                trigger.await;
                let _ = callback::call_soon(&scheduler, Box::new(f), guard.0.take());
            },
            task::Id::next(),
            SpawnMeta::new(Some("weft.call_soon_after")),
        );
        CallbackHandle::with_trigger(state, waiter.abort_handle())
    }

    /// Spawns `future` as a [`future::Task`] on this runtime: asyncio's
    /// `loop.create_task` (the same as [`spawn`](Self::spawn)).
    #[track_caller]
    pub fn create_task<F>(&self, future: F) -> future::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future)
    }

    /// A pending [`future::Promise`] whose done callbacks run on this
    /// runtime's loop: asyncio's `loop.create_future`.
    pub fn create_future<T>(&self) -> future::Promise<T> {
        future::Promise::new_in(self)
    }
}

/// So that the `*_on(handle)` functions take this handle or the full
/// runtime's (`weft::Handle`, which is `AsRef` of this one).
impl AsRef<Handle> for Handle {
    fn as_ref(&self) -> &Handle {
        self
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("flavor", &self.flavor())
            .finish_non_exhaustive()
    }
}

/// Keeps a runtime current on this thread; see [`Handle::enter`].
#[must_use = "the runtime stays current only while the guard lives"]
pub struct EnterGuard<'a> {
    _guard: context::SetCurrentGuard,
    _handle: std::marker::PhantomData<&'a Handle>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}

/// Spawns a task on the current runtime; see [`Handle::spawn`]. To name the
/// task, use [`task::Builder`].
///
/// # Panics
///
/// Outside a runtime. Inside `block_on`, a task, or after
/// [`Executor::enter`], there is one.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_current(future, SpawnMeta::new(None), "weft::spawn()")
}

/// Spawns on the current runtime, or panics naming `what` (the public
/// function the user called).
#[track_caller]
pub(crate) fn spawn_current<F>(future: F, meta: SpawnMeta<'_>, what: &str) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match context::with_current(|h| h.spawn(future, task::Id::next(), meta)) {
        Ok(join) => join,
        Err(err) => panic!("{what}: {err}"),
    }
}

/// Runs a blocking closure on the current runtime's blocking pool; see
/// [`Handle::spawn_blocking`].
///
/// # Panics
///
/// Outside a runtime.
#[track_caller]
pub fn spawn_blocking<F, R>(func: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    spawn_blocking_current(func, SpawnMeta::new(None), "weft::spawn_blocking()")
}

/// Runs `func` on the current runtime's blocking pool, or panics naming
/// `what` (the public function the user called).
#[track_caller]
pub(crate) fn spawn_blocking_current<F, R>(func: F, meta: SpawnMeta<'_>, what: &str) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match context::with_current(|h| h.blocking_spawner().spawn_blocking(h, func, meta)) {
        Ok(join) => join,
        Err(err) => panic!("{what}: {err}"),
    }
}
