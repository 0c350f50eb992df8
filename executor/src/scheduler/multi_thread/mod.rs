//! The multi-thread scheduler: a fixed set of workers, each with a local
//! queue (`crossbeam_deque::Worker`) and a LIFO slot, one injection queue
//! (`crossbeam_deque::Injector`), and work stealing between them.
//!
//! The life of a task here:
//!
//! 1. **Spawn.** The task is bound to the owned-task list and scheduled: from
//!    a worker thread into that worker's LIFO slot, from any other thread into
//!    the injection queue, after which a parked worker may be woken
//!    ([`idle`] decides).
//! 2. **Run.** A worker pops it ([`worker`] lists where it looks, in order)
//!    and polls it with a fresh cooperative budget.
//! 3. **Wait.** The future returns `Pending` after giving its waker to some
//!    resource; the task is now idle and in no queue.
//! 4. **Wake.** The waker is called: on a worker of this runtime the task goes
//!    to that worker's LIFO slot; elsewhere to the injection queue.
//! 5. **Complete.** The output is stored, the `JoinHandle` woken, the task
//!    released from the owned list; the last reference frees it.
//!
//! Shutdown closes the injection queue and the owned list, wakes every
//! worker, and each worker cancels tasks from the owned list, drops its
//! queue, and leaves; the last one out drains the injection queue and shuts
//! the driver down.

mod idle;
mod lifo;
mod standby;
mod worker;

pub(crate) use worker::Context;

/// The most workers a runtime may have (the idle counters' width).
pub(crate) const MAX_WORKERS: usize = idle::MAX_WORKERS;

use self::idle::Idle;
use self::worker::{Core, Remote, Shared};
use crate::blocking;
use crate::callback::ReadyQueue;
use crate::context;
use crate::latch::ExitLatch;
use crate::loom::{AtomicUsize, Ordering::AcqRel};
use crate::metrics::{Counter, WorkerCounters};
use crate::observe::PollRecord;
use crate::park::{Park, Parker, SharedDriver};
use crate::scheduler::{self, Config, Inject, PanicSignal};
use crate::task::{Id, JoinHandle, Schedule, Task, list::OwnedTasks};
use crate::trace::SpawnMeta;
use crate::{RuntimeMetrics, UnhandledPanic};
use crossbeam_deque::Worker;
use crossbeam_utils::CachePadded;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use worker::Runnable;

/// The shared state of a multi-thread scheduler.
pub(crate) struct Handle {
    pub(super) shared: Shared,
    pub(crate) blocking: blocking::Spawner,
    pub(crate) ready: ReadyQueue,
    pub(crate) panic_signal: PanicSignal,
    pub(crate) config: Config,
}

/// The worker threads, kept by the executor to join them at shutdown.
pub(crate) struct MultiThread {
    threads: Vec<thread::JoinHandle<()>>,
    /// Counts the worker threads out as they exit.
    exited: ExitLatch,
}

/// How to start worker threads.
pub(crate) struct ThreadSpec {
    pub(crate) name: Arc<dyn Fn(usize) -> String + Send + Sync>,
    pub(crate) stack_size: Option<usize>,
    /// The tracing subscriber the workers use.
    pub(crate) dispatch: crate::trace::ThreadDispatch,
}

/// Starts `num_workers` workers driving `driver`.
pub(crate) fn launch(
    num_workers: usize,
    driver: Box<dyn Park>,
    blocking: blocking::Spawner,
    config: Config,
    spec: &ThreadSpec,
) -> io::Result<(MultiThread, Arc<Handle>)> {
    let driver = SharedDriver::new(driver);
    // Worker `i`'s timeline track, named as its thread.
    let tracks: Vec<_> = (0..num_workers)
        .map(|i| config.timeline.as_ref().map(|t| t.track((spec.name)(i))))
        .collect();
    let mut remotes = Vec::with_capacity(num_workers);
    let mut locals = Vec::with_capacity(num_workers);
    for i in 0..num_workers {
        let run_queue = Worker::new_fifo();
        let parker = Parker::new(Some(driver.unparker()));
        let lifo = Arc::new(lifo::LifoSlot::new());
        remotes.push(Remote {
            steal: run_queue.stealer(),
            unpark: parker.unparker(),
            lifo: lifo.clone(),
        });
        let seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1) ^ random_seed();
        locals.push((Core::new(run_queue, lifo, seed), parker));
    }
    let handle = Arc::new(Handle {
        shared: Shared {
            remotes: remotes.into_boxed_slice(),
            inject: Inject::new(),
            idle: Idle::new(num_workers),
            owned: OwnedTasks::new(num_workers * 4),
            driver,
            counters: tracks
                .into_iter()
                .map(|track| Arc::new(CachePadded::new(WorkerCounters::new(PollRecord::new(track)))))
                .collect(),
            remote_schedules: Counter::default(),
            exited: AtomicUsize::new(0),
            standby: standby::Standby::new(),
            watched: (0..num_workers).map(|_| worker::Watched::default()).collect(),
            epoch: Instant::now(),
        },
        blocking,
        ready: ReadyQueue::new(),
        panic_signal: PanicSignal::new(),
        config,
    });

    let exited = ExitLatch::new();
    let mut threads = Vec::with_capacity(num_workers);
    for (index, (core, parker)) in locals.into_iter().enumerate() {
        let mut builder = thread::Builder::new().name((spec.name)(index));
        if let Some(size) = spec.stack_size {
            builder = builder.stack_size(size);
        }
        let worker_handle = handle.clone();
        let exit_token = exited.token();
        let dispatch = spec.dispatch.clone();
        let spawned = builder.spawn(move || {
            let _exit = exit_token;
            // Dropped before `_exit`: the worker's last event is delivered
            // before shutdown sees it gone.
            let _dispatch = dispatch.enter();
            run_worker(worker_handle, index, core, parker);
        });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(err) => {
                // The workers already started would wait forever for the
                // missing one at shutdown: stop them, then report.
                // Count the workers that never started as gone, so the last
                // real one out still finishes the shutdown. (The token moved
                // into the failed closure was dropped with it.)
                handle.shared.exited.fetch_add(num_workers - threads.len(), AcqRel);
                handle.shutdown();
                MultiThread { threads, exited }.join(None);
                return Err(io::Error::new(
                    err.kind(),
                    format!("Weft could not start worker thread {index}: {err}"),
                ));
            }
        }
    }
    Ok((MultiThread { threads, exited }, handle))
}

fn run_worker(handle: Arc<Handle>, index: usize, core: Core, parker: Parker) {
    let scheduler_handle = scheduler::Handle::MultiThread(handle.clone());
    let _entered = context::enter_runtime(&scheduler_handle);
    crate::timeline::enter_thread(handle.shared.counters[index].poller.timeline().cloned());
    if let Some(hook) = &handle.config.on_thread_start {
        hook();
    }
    let cx = scheduler::Context::MultiThread(Context::new(handle.clone(), index, core, parker));
    let scheduler::Context::MultiThread(worker) = &cx else {
        unreachable!()
    };
    context::set_scheduler(&cx, || worker.run());
    if let Some(hook) = &handle.config.on_thread_stop {
        hook();
    }
    crate::timeline::leave_thread();
}

/// A seed that differs between runs, for steal-victim choice.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

impl MultiThread {
    /// Waits for the workers to leave, at most `timeout`. True if they all
    /// did (and were joined).
    pub(crate) fn join(self, timeout: Option<Duration>) -> bool {
        let all_exited = self.exited.wait(timeout);
        if all_exited {
            let me = thread::current().id();
            for thread in self.threads {
                if thread.thread().id() != me {
                    let _ = thread.join();
                }
            }
        }
        all_exited
    }
}

impl Handle {
    /// True once the runtime has shut down and accepts no tasks.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shared.owned.is_closed()
    }

    pub(crate) fn spawn<F>(me: &Arc<Handle>, future: F, id: Id, meta: SpawnMeta<'_>) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, notified) = me.shared.owned.bind(future, me.clone(), id, meta);
        if let Some(notified) = notified {
            // `me` is the caller's handle, not the task's: it stays valid
            // whatever happens to the task once queued.
            if let Err(notified) = <Arc<Handle> as Schedule>::schedule_local(me.id(), notified, false) {
                me.push_remote(notified);
            }
        }
        join
    }

    /// Runs `future` to completion on this (non-worker) thread, parking it
    /// between polls; the workers run the tasks.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let watch_panics = self.config.unhandled_panic == UnhandledPanic::ShutdownRuntime;
        crate::park::with_thread_parker(|parker, waker| {
            let mut cx = std::task::Context::from_waker(waker);
            loop {
                if watch_panics && self.panic_signal.poll(&mut cx).is_ready() {
                    panic!("{}", scheduler::PANIC_SHUTDOWN);
                }
                if let std::task::Poll::Ready(out) = crate::coop::budget(|| future.as_mut().poll(&mut cx)) {
                    return out;
                }
                parker.park(None);
            }
        })
    }

    /// Starts shutdown: no task is accepted or scheduled from now on, and
    /// every worker is woken to cancel tasks and leave.
    pub(crate) fn shutdown(&self) {
        self.shared.owned.close();
        if self.shared.inject.close() {
            for remote in self.shared.remotes.iter() {
                remote.unpark.unpark();
            }
        }
    }

    pub(crate) fn metrics(&self) -> RuntimeMetrics {
        let shared = &self.shared;
        RuntimeMetrics {
            alive_tasks: shared.owned.len(),
            spawned_tasks: shared.owned.spawned(),
            injection_queue_depth: shared.inject.len(),
            remote_schedules: shared.remote_schedules.get(),
            searching_workers: shared.idle.num_searching(),
            parked_workers: shared.idle.num_parked(),
            workers: shared
                .counters
                .iter()
                .zip(shared.remotes.iter())
                .map(|(c, r)| c.snapshot(r.steal.len()))
                .collect(),
            ..RuntimeMetrics::default()
        }
    }
}

impl Handle {
    /// Adds the workers and the tasks to a dump.
    pub(crate) fn dump(&self, collector: &mut crate::dump::Collector) {
        let now = collector.now_us();
        for (index, counters) in self.shared.counters.iter().enumerate() {
            collector.worker(crate::dump::WorkerKind::Worker, index, counters.poller.snapshot(now));
        }
        self.shared
            .owned
            .for_each(|header, name| collector.task(header.view(), name, crate::dump::TaskKind::Task, false));
    }
}

impl Schedule for Arc<Handle> {
    fn release(&self, task: &Task<Self>) -> Option<Task<Self>> {
        self.shared.owned.remove(task)
    }

    fn id(&self) -> *const () {
        Arc::as_ptr(self).cast()
    }

    fn schedule_local(id: *const (), task: Runnable, is_yield: bool) -> Result<(), Runnable> {
        context::with_scheduler(|cx| match cx {
            Some(scheduler::Context::MultiThread(cx)) if std::ptr::eq(Arc::as_ptr(&cx.handle).cast(), id) => {
                cx.schedule_local(task, is_yield)
            }
            _ => Err(task),
        })
    }

    fn schedule_remote(&self, task: Runnable) {
        self.push_remote(task);
    }

    fn callbacks_ran(&self, n: u64) {
        self.ready.count_ran(n);
    }

    fn unhandled_panic(&self) {
        if self.config.unhandled_panic == UnhandledPanic::ShutdownRuntime {
            // Close first: whoever the signal wakes must find the runtime
            // already refusing work.
            self.shutdown();
            self.panic_signal.fire();
        }
    }
}
