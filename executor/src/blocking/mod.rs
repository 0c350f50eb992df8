//! The blocking pool: threads for code that blocks (file I/O, a C library,
//! a long computation) so that it does not stall a worker.
//!
//! - **Bounded.** At most `max_blocking_threads` threads; a job that finds
//!   them all busy waits in a FIFO queue.
//! - **LIFO reuse, so the pool shrinks.** Idle threads wait on a stack, and a
//!   new job goes to the thread that went idle *last*. The threads at the
//!   bottom of the stack stay idle and retire after `thread_keep_alive`.
//!   (Waking idle threads round-robin, as a shared condition variable does,
//!   keeps every thread just busy enough never to time out: tokio#2143.)
//! - **Cancellable while queued.** A job that has not started when the
//!   runtime shuts down is cancelled (its `JoinHandle` reports it); running
//!   jobs cannot be interrupted, and shutdown waits for them up to its
//!   timeout. A job is also cancelled if the pool has no thread and the OS
//!   refuses to start one.
//!
//! A job is an ordinary task whose future runs the closure on its first
//! poll, so `JoinHandle`, `abort` and `JoinError` work as for any task.

mod task;

use self::task::{BlockingSchedule, BlockingTask};
use crate::RuntimeMetrics;
use crate::context;
use crate::dump::{Collector, TaskKind, WorkerKind};
use crate::latch::ExitLatch;
use crate::loom::{Condvar, Mutex, lock, wait_timeout};
use crate::observe::PollRecord;
use crate::scheduler;
use crate::task::{Id, JoinHandle, Notified, Task, new_task};
use crate::trace::{self, SpawnMeta, ThreadDispatch};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Settings of the pool.
pub(crate) struct PoolConfig {
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) thread_name: Arc<dyn Fn(usize) -> String + Send + Sync>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_thread_start: Option<scheduler::Callback>,
    pub(crate) on_thread_stop: Option<scheduler::Callback>,
    /// The tracing subscriber the pool's threads use.
    pub(crate) dispatch: ThreadDispatch,
    /// The runtime's timeline, if it records one: each pool thread gets a
    /// track.
    pub(crate) timeline: Option<crate::timeline::Timeline>,
}

/// The pool, owned by the executor (which shuts it down).
pub(crate) struct BlockingPool {
    spawner: Spawner,
}

/// Cloneable access to the pool, kept in the scheduler handle.
#[derive(Clone)]
pub(crate) struct Spawner {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Mutex<Shared>,
    config: PoolConfig,
    /// Counts the pool's threads out as they exit.
    exited: ExitLatch,
}

struct Shared {
    queue: VecDeque<Job>,
    /// Idle threads, most recently idle last.
    idle: Vec<Arc<Sleeper>>,
    num_threads: usize,
    next_thread_id: usize,
    shutdown: bool,
    /// Threads to join at shutdown.
    threads: Vec<(usize, thread::JoinHandle<()>)>,
    /// Each live thread's record and the job it runs, for dumps (updated
    /// under this lock, which a thread takes between jobs anyway).
    running: Vec<PoolThread>,
}

/// A pool thread, as a dump sees it.
struct PoolThread {
    id: usize,
    record: Arc<PollRecord>,
    job: Option<JobInfo>,
}

/// What a dump shows of a job a thread runs.
struct JobInfo {
    id: Id,
    location: &'static std::panic::Location<'static>,
    name: Option<Box<str>>,
}

/// An idle thread's private wakeup. `notified` is read and written under the
/// pool lock.
struct Sleeper {
    condvar: Condvar,
    notified: std::sync::atomic::AtomicBool,
}

/// A queued job: the owned reference and the notification of its task,
/// and its name for dumps.
struct Job {
    task: Task<BlockingSchedule>,
    notified: Notified<BlockingSchedule>,
    name: Option<Box<str>>,
}

impl Job {
    fn run(self, record: &PollRecord) {
        let Job { task, notified, .. } = self;
        // Jobs are long: the clock is read for each, so a dump sees exactly
        // how long this one has run.
        record.read_clock();
        record.run(notified);
        drop(task);
    }

    fn cancel(self) {
        let Job { task, notified, .. } = self;
        drop(notified);
        task.shutdown();
    }

    fn info(&self) -> JobInfo {
        let view = self.task.view();
        JobInfo {
            id: view.id,
            location: view.location,
            name: self.name.clone(),
        }
    }
}

std::thread_local! {
    /// The pool whose thread this is (for the drop-from-inside check).
    static CURRENT_POOL: std::cell::Cell<*const Inner> = const { std::cell::Cell::new(std::ptr::null()) };
}

impl BlockingPool {
    pub(crate) fn new(config: PoolConfig) -> BlockingPool {
        BlockingPool {
            spawner: Spawner {
                inner: Arc::new(Inner {
                    shared: Mutex::new(Shared {
                        queue: VecDeque::new(),
                        idle: Vec::new(),
                        num_threads: 0,
                        next_thread_id: 0,
                        shutdown: false,
                        threads: Vec::new(),
                        running: Vec::new(),
                    }),
                    config,
                    exited: ExitLatch::new(),
                }),
            },
        }
    }

    pub(crate) fn spawner(&self) -> &Spawner {
        &self.spawner
    }

    /// Cancels queued jobs and waits up to `timeout` (forever with `None`)
    /// for running ones. True if every thread exited in time.
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) -> bool {
        let inner = &self.spawner.inner;
        let (threads, queued) = {
            let mut shared = lock(&inner.shared);
            if shared.shutdown {
                return true;
            }
            shared.shutdown = true;
            for sleeper in shared.idle.drain(..) {
                sleeper.condvar.notify_one();
            }
            (std::mem::take(&mut shared.threads), std::mem::take(&mut shared.queue))
        };
        // Jobs that never started are cancelled now, not when a busy thread
        // gets round to them (which may be never).
        for job in queued {
            job.cancel();
        }
        // A pool thread dropping its own runtime cannot wait for itself.
        let inside = CURRENT_POOL.with(|p| std::ptr::eq(p.get(), Arc::as_ptr(inner)));
        let timeout = if inside { Some(Duration::ZERO) } else { timeout };
        let all_exited = inner.exited.wait(timeout);
        if all_exited {
            for (_, thread) in threads {
                let _ = thread.join();
            }
        }
        all_exited
    }
}

impl Spawner {
    /// Queues `func` to run on a pool thread; `handle` becomes the current
    /// runtime of a thread started for it. `meta` names the job and its
    /// spawning line for its tracing span.
    pub(crate) fn spawn_blocking<F, R>(&self, handle: &scheduler::Handle, func: F, meta: SpawnMeta<'_>) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let id = Id::next();
        let name = meta.name.map(Box::<str>::from);
        let future = trace::task(BlockingTask::new(func), trace::Kind::Blocking, id, meta);
        let (task, notified, join) = new_task(future, BlockingSchedule, id, meta.location, false);
        let job = Job { task, notified, name };
        let mut shared = lock(&self.inner.shared);
        if shared.shutdown {
            drop(shared);
            job.cancel();
            return join;
        }
        shared.queue.push_back(job);
        if let Some(sleeper) = shared.idle.pop() {
            // The most recently idle thread takes it (see the module docs).
            sleeper.notified.store(true, std::sync::atomic::Ordering::Relaxed);
            sleeper.condvar.notify_one();
        } else if shared.num_threads < self.inner.config.max_threads
            && self.start_thread(&mut shared, handle).is_err()
            && shared.num_threads == 0
        {
            // The OS refused a thread and the pool has none that could take
            // the job later (with no threads the queue holds only this job):
            // cancel it rather than leave it waiting forever.
            let job = shared.queue.pop_back().expect("the job was just queued");
            drop(shared);
            job.cancel();
        }
        join
    }

    fn start_thread(&self, shared: &mut Shared, handle: &scheduler::Handle) -> io::Result<()> {
        let id = shared.next_thread_id;
        let config = &self.inner.config;
        let mut builder = thread::Builder::new().name((config.thread_name)(id));
        if let Some(size) = config.stack_size {
            builder = builder.stack_size(size);
        }
        let exit_token = self.inner.exited.token();
        let inner = self.inner.clone();
        let handle = handle.clone();
        let track = config.timeline.as_ref().map(|t| t.track((config.thread_name)(id)));
        let record = Arc::new(PollRecord::new(track));
        let thread_record = record.clone();
        let thread = builder.spawn(move || {
            let _exit = exit_token;
            // Dropped before `_exit`: the thread's last event is delivered
            // before shutdown sees it gone.
            let _dispatch = inner.config.dispatch.enter();
            CURRENT_POOL.with(|p| p.set(Arc::as_ptr(&inner)));
            let _current = context::set_current(&handle);
            drop(handle);
            crate::timeline::enter_thread(thread_record.timeline().cloned());
            inner.run(id, &thread_record);
            crate::timeline::leave_thread();
        })?;
        shared.next_thread_id += 1;
        shared.num_threads += 1;
        shared.threads.push((id, thread));
        shared.running.push(PoolThread { id, record, job: None });
        Ok(())
    }

    pub(crate) fn fill_metrics(&self, metrics: &mut RuntimeMetrics) {
        let shared = lock(&self.inner.shared);
        metrics.blocking_threads = shared.num_threads;
        metrics.idle_blocking_threads = shared.idle.len();
        metrics.blocking_queue_depth = shared.queue.len();
    }

    /// Adds the pool's threads, the jobs they run and the queued jobs to a
    /// dump, under the pool's lock.
    pub(crate) fn dump(&self, collector: &mut Collector) {
        let shared = lock(&self.inner.shared);
        let now = collector.now_us();
        for thread in &shared.running {
            let snapshot = thread.record.snapshot(now);
            collector.worker(WorkerKind::Blocking, thread.id, snapshot);
            if let Some(job) = &thread.job {
                let running_us = snapshot.polling.map_or(0, |p| p.at_most_us);
                collector.running_job(job.id, job.location, job.name.as_deref(), running_us);
            }
        }
        for job in &shared.queue {
            collector.task(job.task.view(), job.name.as_deref(), TaskKind::Blocking, true);
        }
    }
}

impl Inner {
    /// A pool thread's loop; `record` is the thread's poll record.
    fn run(&self, id: usize, record: &PollRecord) {
        if let Some(hook) = &self.config.on_thread_start {
            hook();
        }
        let sleeper = Arc::new(Sleeper {
            condvar: Condvar::new(),
            notified: std::sync::atomic::AtomicBool::new(false),
        });
        let mut shared = lock(&self.shared);
        'work: loop {
            // Once shutdown starts, queued jobs are cancelled, not run.
            while !shared.shutdown {
                let Some(job) = shared.queue.pop_front() else {
                    break;
                };
                shared.set_job(id, Some(job.info()));
                drop(shared);
                job.run(record);
                shared = lock(&self.shared);
                shared.set_job(id, None);
            }
            if shared.shutdown {
                break;
            }
            // Idle: wait on our own condition variable, on top of the stack.
            sleeper.notified.store(false, std::sync::atomic::Ordering::Relaxed);
            shared.idle.push(sleeper.clone());
            loop {
                let (guard, timed_out) = wait_timeout(&sleeper.condvar, shared, self.config.keep_alive);
                shared = guard;
                if sleeper.notified.load(std::sync::atomic::Ordering::Relaxed) {
                    continue 'work;
                }
                if shared.shutdown {
                    break 'work;
                }
                if timed_out {
                    // Unused for a whole keep-alive: retire.
                    shared.idle.retain(|s| !Arc::ptr_eq(s, &sleeper));
                    shared.num_threads -= 1;
                    shared.running.retain(|t| t.id != id);
                    // Detach: nobody needs to join a thread that left early.
                    shared.threads.retain(|(tid, _)| *tid != id);
                    drop(shared);
                    if let Some(hook) = &self.config.on_thread_stop {
                        hook();
                    }
                    return;
                }
            }
        }
        // Shutdown: jobs that never started are cancelled.
        while let Some(job) = shared.queue.pop_front() {
            drop(shared);
            job.cancel();
            shared = lock(&self.shared);
        }
        shared.num_threads -= 1;
        shared.running.retain(|t| t.id != id);
        drop(shared);
        if let Some(hook) = &self.config.on_thread_stop {
            hook();
        }
    }
}

impl Shared {
    /// Records the job thread `id` runs (`None`: it finished).
    fn set_job(&mut self, id: usize, job: Option<JobInfo>) {
        if let Some(thread) = self.running.iter_mut().find(|t| t.id == id) {
            thread.job = job;
        }
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner").finish_non_exhaustive()
    }
}
