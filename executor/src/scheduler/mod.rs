//! Schedulers: where tasks wait to run, and which threads run them.
//!
//! - [`current_thread`]: the thread that calls `block_on` runs every task.
//! - [`multi_thread`]: a pool of workers with work stealing.
//!
//! Both hand out the same task types and differ only in their queues and in
//! who runs the loop. [`Handle`] is the type-erased door to either.

pub(crate) mod current_thread;
mod inject;
pub(crate) mod multi_thread;

pub(crate) use inject::Inject;

use crate::blocking;
use crate::callback::ReadyQueue;
use crate::loom::{Mutex, lock};
use crate::task::Schedule;
use crate::task::{Id, JoinHandle};
use crate::trace::{self, SpawnMeta};
use crate::{Flavor, RuntimeMetrics, UnhandledPanic};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::task::{Context as TaskContext, Poll, Waker};

/// A cloneable reference to a running scheduler.
#[derive(Clone)]
pub(crate) enum Handle {
    CurrentThread(Arc<current_thread::Handle>),
    MultiThread(Arc<multi_thread::Handle>),
}

/// The scheduler state of the thread that runs tasks, reachable through the
/// thread-local in [`crate::context`] so that a wake on that thread can
/// schedule locally.
pub(crate) enum Context {
    CurrentThread(current_thread::Context),
    MultiThread(multi_thread::Context),
}

/// Settings both schedulers share.
pub(crate) struct Config {
    /// The timeline the runtime records, if any.
    pub(crate) timeline: Option<crate::timeline::Timeline>,
    /// Tasks run between two non-blocking polls of the driver.
    pub(crate) event_interval: u32,
    /// Ticks between two looks at the injection queue ahead of local work.
    pub(crate) global_queue_interval: u32,
    pub(crate) unhandled_panic: UnhandledPanic,
    pub(crate) on_thread_start: Option<Callback>,
    pub(crate) on_thread_stop: Option<Callback>,
}

/// A user hook run on runtime threads.
pub(crate) type Callback = Arc<dyn Fn() + Send + Sync>;

impl Handle {
    /// Spawns `future` as task `id`; `meta` names it and its spawning line
    /// for its tracing span.
    pub(crate) fn spawn<F>(&self, future: F, id: Id, meta: SpawnMeta<'_>) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if let Some(name) = meta.name {
            crate::timeline::named(id, name);
        }
        let future = trace::task(future, trace::Kind::Task, id, meta);
        match self {
            Handle::CurrentThread(h) => current_thread::Handle::spawn(h, future, id, meta),
            Handle::MultiThread(h) => multi_thread::Handle::spawn(h, future, id, meta),
        }
    }

    fn config(&self) -> &Config {
        match self {
            Handle::CurrentThread(h) => &h.config,
            Handle::MultiThread(h) => &h.config,
        }
    }

    /// The runtime's timeline, if it records one.
    pub(crate) fn timeline(&self) -> Option<&crate::timeline::Timeline> {
        self.config().timeline.as_ref()
    }

    /// A dump of the runtime's tasks and threads (see [`crate::dump`]).
    pub(crate) fn dump(&self, options: crate::dump::DumpOptions) -> crate::dump::Dump {
        let mut collector = crate::dump::Collector::new();
        match self {
            Handle::CurrentThread(h) => h.dump(&mut collector),
            Handle::MultiThread(h) => h.dump(&mut collector),
        }
        self.blocking_spawner().dump(&mut collector);
        collector.finish(options, self.is_shut_down())
    }

    pub(crate) fn blocking_spawner(&self) -> &blocking::Spawner {
        match self {
            Handle::CurrentThread(h) => &h.blocking,
            Handle::MultiThread(h) => &h.blocking,
        }
    }

    /// True once the runtime has shut down and accepts no tasks.
    pub(crate) fn is_shut_down(&self) -> bool {
        match self {
            Handle::CurrentThread(h) => h.is_shut_down(),
            Handle::MultiThread(h) => h.is_shut_down(),
        }
    }

    /// The runtime's queue of ready callbacks (`call_soon`).
    pub(crate) fn ready_queue(&self) -> &ReadyQueue {
        match self {
            Handle::CurrentThread(h) => &h.ready,
            Handle::MultiThread(h) => &h.ready,
        }
    }

    /// Applies the runtime's unhandled-panic policy to a panic caught outside
    /// a task's own poll (a callback).
    pub(crate) fn unhandled_panic(&self) {
        match self {
            Handle::CurrentThread(h) => h.unhandled_panic(),
            Handle::MultiThread(h) => h.unhandled_panic(),
        }
    }

    pub(crate) fn flavor(&self) -> Flavor {
        match self {
            Handle::CurrentThread(_) => Flavor::CurrentThread,
            Handle::MultiThread(_) => Flavor::MultiThread,
        }
    }

    pub(crate) fn metrics(&self) -> RuntimeMetrics {
        let mut metrics = match self {
            Handle::CurrentThread(h) => h.metrics(),
            Handle::MultiThread(h) => h.metrics(),
        };
        self.blocking_spawner().fill_metrics(&mut metrics);
        let ready = self.ready_queue();
        (metrics.callbacks_run, metrics.callback_panics) = ready.counts();
        metrics.callback_queue_depth = ready.len();
        metrics
    }

    pub(crate) fn ptr_eq(&self, other: &Handle) -> bool {
        match (self, other) {
            (Handle::CurrentThread(a), Handle::CurrentThread(b)) => Arc::ptr_eq(a, b),
            (Handle::MultiThread(a), Handle::MultiThread(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// The "a task panicked, shut down" signal of
/// [`UnhandledPanic::ShutdownRuntime`]: fired once by the worker that caught
/// the panic, awaited by every `block_on` of the runtime.
pub(crate) struct PanicSignal {
    fired: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

/// What `block_on` panics with after the signal fired.
pub(crate) const PANIC_SHUTDOWN: &str = "a task spawned on this Weft runtime panicked, and the runtime is configured \
     with `UnhandledPanic::ShutdownRuntime`, so it shut down; catch the panic inside the task, or build the \
     runtime with `UnhandledPanic::Ignore` to receive it from the task's JoinHandle instead";

impl PanicSignal {
    pub(crate) fn new() -> PanicSignal {
        PanicSignal {
            fired: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Fires the signal (once; later calls do nothing).
    pub(crate) fn fire(&self) {
        if self.fired.swap(true, AcqRel) {
            return;
        }
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for waker in waiters {
            waker.wake();
        }
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.fired.load(Acquire)
    }

    /// Ready once fired; otherwise registers `cx`'s waker.
    pub(crate) fn poll(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.is_fired() {
            return Poll::Ready(());
        }
        let mut waiters = lock(&self.waiters);
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        drop(waiters);
        // Fired between the check and the registration: the waker may have
        // been missed by `fire`, so look again.
        if self.is_fired() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
