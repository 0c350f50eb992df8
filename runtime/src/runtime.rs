//! The runtime: an executor whose driver is the reactor, and the handle to
//! reach both.

use crate::driver::{IoDriver, enter_thread, install_hooks, leave_thread};
use crate::reports;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_executor::dump::{Dump, DumpOptions};
use weft_executor::timeline::{self, Timeline};
use weft_executor::{CallbackHandle, Executor, Flavor, JoinHandle, RuntimeMetrics, TryCurrentError, UnhandledPanic};
use weft_io::driver::ReactorMetrics;

type Hook = Arc<dyn Fn() + Send + Sync>;

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
    on_thread_start: Option<Hook>,
    on_thread_stop: Option<Hook>,
    trace_file: Option<PathBuf>,
    timeline_capacity: usize,
    timer_slack: Duration,
}

impl Builder {
    /// A multi-thread, work-stealing runtime with one worker per CPU.
    pub fn new_multi_thread() -> Builder {
        Builder {
            exec: weft_executor::Builder::new_multi_thread(),
            on_thread_start: None,
            on_thread_stop: None,
            trace_file: None,
            timeline_capacity: timeline::DEFAULT_CAPACITY,
            timer_slack: weft_io::driver::DEFAULT_TIMER_SLACK,
        }
    }

    /// A runtime that runs every task on the thread that calls `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder {
            exec: weft_executor::Builder::new_current_thread(),
            on_thread_start: None,
            on_thread_stop: None,
            trace_file: None,
            timeline_capacity: timeline::DEFAULT_CAPACITY,
            timer_slack: weft_io::driver::DEFAULT_TIMER_SLACK,
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

    /// How much later than a timer's deadline the reactor, when it sleeps,
    /// may wake for it, so that timers due within that span cost one
    /// wakeup (default 50 µs, as Linux's own timer slack; a server with
    /// thousands of timeouts spends about half the CPU per timer of exact
    /// wakeups). A timer with no other due within the slack wakes the
    /// reactor at its deadline; `Duration::ZERO` wakes it at every one.
    /// A sleep never ends before its deadline either way.
    pub fn timer_slack(&mut self, slack: Duration) -> &mut Builder {
        self.timer_slack = slack;
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

    /// Runs `f` on each runtime thread when it starts (the runtime is
    /// already current there).
    pub fn on_thread_start(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Builder {
        self.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each runtime thread before it exits.
    pub fn on_thread_stop(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Builder {
        self.on_thread_stop = Some(Arc::new(f));
        self
    }

    /// Records a [`timeline`] of the runtime (every poll, park, wake,
    /// steal, reactor turn, timer firing and source operation) and writes it
    /// to `path` when the runtime shuts down, as a Chrome trace (open it in
    /// Perfetto or `chrome://tracing`), with Weft's offline viewer next to
    /// it ([`viewer_path`](crate::viewer_path): `trace.json` →
    /// `trace.html`, the trace inside). Without this option, the
    /// environment variable `WEFT_TRACE=path.json` does the same.
    ///
    /// Recording costs each poll two clock readings and a ring append;
    /// memory stays bounded ([`timeline_capacity`](Self::timeline_capacity)).
    /// The files are larger than the rings: each event takes about 100 to
    /// 150 bytes of JSON, so a busy runtime whose rings are full writes
    /// several megabytes per thread, and the viewer holds the same trace
    /// again (a second of two busy workers: about 11 MB each).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("weft-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("trace.json");
    /// let rt = weft::Builder::new_multi_thread().worker_threads(2).trace_file(&path).build()?;
    /// rt.block_on(async { weft::spawn(async {}).await.unwrap() });
    /// drop(rt);
    /// assert!(std::fs::read_to_string(&path)?.contains("\"cat\":\"poll\""));
    /// assert!(std::fs::read_to_string(dir.join("trace.html"))?.contains("Weft trace viewer"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn trace_file(&mut self, path: impl AsRef<Path>) -> &mut Builder {
        self.trace_file = Some(path.as_ref().to_owned());
        self
    }

    /// Events each thread's timeline ring keeps (default
    /// [`timeline::DEFAULT_CAPACITY`], 65,536: 2.5 MiB a thread at most);
    /// older ones are dropped and counted. Zero makes
    /// [`build`](Self::build) fail with `InvalidInput`.
    pub fn timeline_capacity(&mut self, events: usize) -> &mut Builder {
        self.timeline_capacity = events;
        self
    }

    /// Builds the runtime: its reactor, and the executor whose idle threads
    /// wait in that reactor; starts the threads.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero count or interval; the operating system's
    /// error if the reactor or a thread cannot be created, or if the
    /// [`trace_file`](Self::trace_file) cannot be written (checked here, so
    /// that a run is not recorded for nothing). A `WEFT_TRACE` path that
    /// cannot be written is reported on stderr, and the runtime records no
    /// trace.
    pub fn build(&mut self) -> io::Result<Runtime> {
        if self.timeline_capacity == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Weft runtime: timeline_capacity must be at least 1",
            ));
        }
        install_hooks();
        let mut trace = reports::trace_path(self.trace_file.as_deref());
        if let Some(path) = &trace {
            if let Err(err) = reports::check_trace_path(path) {
                let err = io::Error::new(
                    err.kind(),
                    format!("weft: cannot write the trace to {}: {err}", path.display()),
                );
                if self.trace_file.is_some() {
                    return Err(err);
                }
                eprintln!("{err} (from {}); this runtime records no trace", reports::TRACE_ENV);
                trace = None;
            }
        }
        if trace.is_some() {
            self.exec.timeline(self.timeline_capacity);
        }
        let mut driver = weft_io::Driver::new()?;
        driver.set_timer_slack(self.timer_slack);
        let io = driver.handle().clone();
        let start_io = io.clone();
        let user_start = self.on_thread_start.clone();
        let user_stop = self.on_thread_stop.clone();
        self.exec
            .driver(IoDriver(driver))
            .on_thread_start(move || {
                enter_thread(&start_io);
                if let Some(hook) = &user_start {
                    hook();
                }
            })
            .on_thread_stop(move || {
                if let Some(hook) = &user_stop {
                    hook();
                }
                leave_thread();
            });
        let exec = self.exec.build()?;
        // The reactor's name lookups run on this runtime's blocking pool.
        let blocking = exec.handle().clone();
        io.set_blocking_runner(Box::new(move |job| drop(blocking.spawn_blocking(job))));
        Ok(Runtime {
            exec: Some(exec),
            io,
            trace,
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
    /// `None` only while shutting down.
    exec: Option<Executor>,
    io: weft_io::Handle,
    /// Where the timeline goes at shutdown, if the runtime records one.
    trace: Option<PathBuf>,
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
    /// On a multi-thread runtime the workers run the spawned tasks while
    /// this thread waits for `future`. On a current-thread runtime the
    /// thread in `block_on` runs them, between polls of `future`; several
    /// threads may call `block_on` at once (through [`Handle::block_on`]):
    /// one drives the runtime, the others wait for their own futures, and
    /// when the driving one returns another takes over.
    ///
    /// # Panics
    ///
    /// If this thread already runs a runtime (a worker, or inside another
    /// `block_on`): `.await` the future there instead. If `future` awaits a
    /// timer and the runtime is shut down meanwhile (from another thread),
    /// the timer panics, naming the shutdown (sockets return an error
    /// instead).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _io = self.io.enter();
        self.exec().block_on(future)
    }

    /// Spawns a task and returns its [`JoinHandle`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.exec().spawn(future)
    }

    /// Runs a blocking closure on the blocking pool.
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, func: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.exec().spawn_blocking(func)
    }

    /// A handle that reaches this runtime from any thread.
    pub fn handle(&self) -> Handle {
        Handle {
            exec: self.exec().handle().clone(),
            io: self.io.clone(),
        }
    }

    /// Makes this runtime current on this thread until the guard drops, so
    /// that `spawn`, sockets and timers work outside `block_on`.
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _io: self.io.enter(),
            _exec: self.exec().enter(),
        }
    }

    /// A snapshot of the runtime's counters: tasks, workers, the blocking
    /// pool, callbacks. The reactor's are
    /// [`reactor_metrics`](Self::reactor_metrics).
    pub fn metrics(&self) -> RuntimeMetrics {
        self.exec().metrics()
    }

    /// A snapshot of the reactor's counters: turns, events per turn,
    /// timers, registrations, completions, and each source's.
    pub fn reactor_metrics(&self) -> ReactorMetrics {
        self.io.metrics()
    }

    /// Every live task, what it waits on, what each worker runs and for
    /// how long, and what looks stuck ([`crate::dump`]).
    pub fn dump(&self) -> Dump {
        self.exec().handle().dump()
    }

    /// [`dump`](Self::dump) with thresholds of your own.
    pub fn dump_with(&self, options: DumpOptions) -> Dump {
        self.exec().handle().dump_with(options)
    }

    /// The runtime's timeline, if it records one
    /// ([`Builder::trace_file`], `WEFT_TRACE`).
    pub fn timeline(&self) -> Option<Timeline> {
        self.exec().handle().timeline()
    }

    /// Writes the timeline recorded so far to `path`, with the viewer next
    /// to it, as [`Builder::trace_file`] does at shutdown.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the runtime records no timeline; the file system's.
    pub fn write_trace(&self, path: impl AsRef<Path>) -> io::Result<()> {
        write_trace(self.timeline(), path.as_ref())
    }

    /// Shuts down: every task is cancelled (its future dropped, its
    /// `JoinHandle` reporting the cancellation), queued blocking jobs are
    /// cancelled, and the reactor stops (its sockets return an error and its
    /// timers panic, naming the shutdown, if still awaited elsewhere, for
    /// instance by another thread in [`Handle::block_on`]). Waits at most
    /// `timeout` for the workers to finish and for blocking jobs already
    /// running, then returns, leaving any still running to finish alone.
    ///
    /// # Panics
    ///
    /// If called from a thread that runs async tasks (a worker, or inside
    /// `block_on`), where waiting could block the runtime on itself: call it
    /// from a plain thread, or use [`shutdown_background`](Self::shutdown_background).
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(|exec| exec.shutdown_timeout(timeout));
    }

    /// Shuts down as [`shutdown_timeout`](Self::shutdown_timeout) does, but
    /// returns at once: the workers cancel the tasks (running their
    /// destructors) after this returns, and blocking jobs already running
    /// finish alone. Usable from any thread, including a runtime's own.
    pub fn shutdown_background(mut self) {
        self.shutdown(Executor::shutdown_background);
    }

    /// The runtime's reactor.
    pub fn reactor(&self) -> &weft_io::Handle {
        &self.io
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
            .field("flavor", &self.exec().handle().flavor())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    fn exec(&self) -> &Executor {
        self.exec
            .as_ref()
            .expect("weft bug: the executor is present until the runtime is dropped")
    }

    /// Shuts the executor down with the reactor current, so that futures
    /// dropped meanwhile can still deregister sockets and cancel timers;
    /// then writes the trace, if the runtime records one.
    fn shutdown(&mut self, how: impl FnOnce(Executor)) {
        if let Some(exec) = self.exec.take() {
            let timeline = exec.handle().timeline();
            let _io = self.io.enter();
            how(exec);
            if let (Some(timeline), Some(path)) = (timeline, self.trace.take()) {
                if let Err(err) = reports::write_trace(&timeline, &path) {
                    // Shutdown has no caller to return this to.
                    eprintln!("weft: could not write the trace to {}: {err}", path.display());
                }
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(drop);
    }
}

/// A cloneable reference to a runtime, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) exec: weft_executor::Handle,
    io: weft_io::Handle,
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
        let exec = weft_executor::Handle::try_current()?;
        // An executor without Weft's reactor (built with weft-executor
        // directly) is not a Weft runtime.
        let io = weft_io::Handle::try_current().map_err(|_| TryCurrentError::missing_context())?;
        Ok(Handle { exec, io })
    }

    /// Spawns a task on this runtime.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.exec.spawn(future)
    }

    /// Runs a blocking closure on this runtime's blocking pool.
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, func: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.exec.spawn_blocking(func)
    }

    /// Runs `future` to completion on this thread, as
    /// [`Runtime::block_on`] does (several threads may do so at once).
    ///
    /// # Panics
    ///
    /// As [`Runtime::block_on`].
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _io = self.io.enter();
        self.exec.block_on(future)
    }

    /// Makes this runtime current on this thread until the guard drops.
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _io: self.io.enter(),
            _exec: self.exec.enter(),
        }
    }

    /// The runtime's reactor.
    pub fn reactor(&self) -> &weft_io::Handle {
        &self.io
    }

    /// Schedules `f` to run on the loop soon, after every callback already
    /// scheduled: asyncio's `loop.call_soon`. Callbacks run one at a time in
    /// FIFO order on a worker; a panic in one is caught and handled by the
    /// runtime's [`UnhandledPanic`] policy (and counted in
    /// [`RuntimeMetrics::callback_panics`]).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = weft::Runtime::new()?;
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let handle = rt.handle();
    /// let push = |s: &'static str| { let log = log.clone(); move || log.lock().unwrap().push(s) };
    /// handle.call_later(Duration::from_millis(60), push("later"));
    /// handle.call_at(Instant::now() + Duration::from_millis(20), push("at"));
    /// handle.call_soon(push("soon 1"));
    /// handle.call_soon(push("soon 2"));
    /// let never = handle.call_later(Duration::from_secs(3600), push("cancelled"));
    /// assert!(never.cancel());
    /// rt.block_on(weft::time::sleep(Duration::from_millis(100)));
    /// assert_eq!(*log.lock().unwrap(), ["soon 1", "soon 2", "at", "later"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_soon(&self, f: impl FnOnce() + Send + 'static) -> CallbackHandle {
        self.exec.call_soon(f)
    }

    /// [`call_soon`](Self::call_soon) under asyncio's name for calls from
    /// other threads; every Weft handle is thread-safe, so they are one.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> CallbackHandle {
        self.exec.call_soon(f)
    }

    /// Schedules `f` to run on the loop once `delay` has passed:
    /// asyncio's `loop.call_later`. Cancelling the handle before then frees
    /// the timer.
    #[track_caller]
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + Send + 'static) -> CallbackHandle {
        let _io = self.io.enter();
        self.exec.call_soon_after(weft_io::time::sleep(delay), f)
    }

    /// Schedules `f` to run on the loop at `when`: asyncio's
    /// `loop.call_at` (with a monotonic [`Instant`] for the loop's clock).
    #[track_caller]
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + Send + 'static) -> CallbackHandle {
        let _io = self.io.enter();
        self.exec.call_soon_after(weft_io::time::sleep_until(when), f)
    }

    /// Spawns `future` as a [`Task`](crate::future::Task): asyncio's
    /// `loop.create_task` (the same as [`spawn`](Self::spawn)).
    #[track_caller]
    pub fn create_task<F>(&self, future: F) -> crate::future::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.exec.create_task(future)
    }

    /// A pending [`Promise`](crate::future::Promise) whose done callbacks run
    /// on this runtime's loop: asyncio's `loop.create_future`.
    pub fn create_future<T>(&self) -> crate::future::Promise<T> {
        self.exec.create_future()
    }

    /// Which scheduler the runtime uses.
    pub fn flavor(&self) -> Flavor {
        self.exec.flavor()
    }

    /// A snapshot of the runtime's counters (see [`Runtime::metrics`]).
    pub fn metrics(&self) -> RuntimeMetrics {
        self.exec.metrics()
    }

    /// A snapshot of the reactor's counters (see
    /// [`Runtime::reactor_metrics`]).
    pub fn reactor_metrics(&self) -> ReactorMetrics {
        self.io.metrics()
    }

    /// A task dump (see [`Runtime::dump`]); callable from any thread,
    /// including a task of this runtime.
    pub fn dump(&self) -> Dump {
        self.exec.dump()
    }

    /// [`dump`](Self::dump) with thresholds of your own.
    pub fn dump_with(&self, options: DumpOptions) -> Dump {
        self.exec.dump_with(options)
    }

    /// The runtime's timeline, if it records one.
    pub fn timeline(&self) -> Option<Timeline> {
        self.exec.timeline()
    }

    /// Writes the timeline recorded so far (see [`Runtime::write_trace`]).
    ///
    /// # Errors
    ///
    /// As [`Runtime::write_trace`].
    pub fn write_trace(&self, path: impl AsRef<Path>) -> io::Result<()> {
        write_trace(self.timeline(), path.as_ref())
    }
}

fn write_trace(timeline: Option<Timeline>, path: &Path) -> io::Result<()> {
    let Some(timeline) = timeline else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this Weft runtime records no timeline: build it with `Builder::trace_file`, or set WEFT_TRACE",
        ));
    };
    reports::write_trace(&timeline, path)
}

/// The executor's part of the handle, for the functions of
/// `weft_executor` that take one (`Promise::new_in`, `TaskGroup::spawn_on`):
/// they accept a `weft::Handle` directly.
impl AsRef<weft_executor::Handle> for Handle {
    fn as_ref(&self) -> &weft_executor::Handle {
        &self.exec
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("flavor", &self.flavor())
            .finish_non_exhaustive()
    }
}

/// Keeps a runtime current on this thread; see [`Runtime::enter`].
#[must_use = "the runtime stays current only while the guard lives"]
pub struct EnterGuard<'a> {
    _io: weft_io::driver::EnterGuard,
    _exec: weft_executor::EnterGuard<'a>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}
