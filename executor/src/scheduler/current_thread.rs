//! The current-thread scheduler: the thread that calls `block_on` runs every
//! task, between polls of the future it blocks on.
//!
//! The scheduler's state that only the running thread touches (the run queue
//! and the driver) is the [`Core`]. It lives in a slot in the handle while no
//! thread drives the runtime; a `block_on` takes it out, runs the loop, and
//! puts it back when its future completes. A second thread that calls
//! `block_on` meanwhile waits for its own future with a thread parker, and
//! takes the core over if the first thread gives it back first.
//!
//! The loop, per turn:
//!
//! 1. If the `block_on` future was woken, poll it (return if it is ready).
//! 2. Run up to `event_interval` tasks: local queue first, the injection queue
//!    (tasks scheduled from other threads) every `global_queue_interval`
//!    ticks or when the local queue is empty. With nothing to run, block in
//!    the driver until a wake.
//! 3. Poll the driver without blocking, so I/O is seen between task bursts.

use crate::blocking;
use crate::callback::ReadyQueue;
use crate::context;
use crate::coop;
use crate::loom::{Mutex, lock};
use crate::metrics::{Counter, WorkerCounters};
use crate::observe::PollRecord;
use crate::park::{Park, Unpark};
use crate::scheduler::{self, Config, Inject, PANIC_SHUTDOWN, PanicSignal};
use crate::task::{Id, JoinHandle, Notified, Schedule, Task, list::OwnedTasks};
use crate::trace::{self, SpawnMeta};
use crate::{RuntimeMetrics, UnhandledPanic};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

/// A task reference waiting to run.
type Runnable = Notified<Arc<Handle>>;

/// The shared state of a current-thread scheduler.
pub(crate) struct Handle {
    inject: Inject<Runnable>,
    owned: OwnedTasks<Arc<Handle>>,
    /// The `block_on` future of the driving thread was woken.
    woken: AtomicBool,
    /// The core, while no thread drives the runtime.
    core: Mutex<Option<Box<Core>>>,
    /// Threads in `block_on` waiting for the core.
    core_waiters: Mutex<Vec<Waker>>,
    driver_unpark: Arc<dyn Unpark>,
    /// Where the `block_on` of the thread driving the runtime was called
    /// (the row a dump gives its future).
    block_on_at: Mutex<Option<&'static std::panic::Location<'static>>>,
    counters: WorkerCounters,
    remote_schedules: Counter,
    pub(crate) blocking: blocking::Spawner,
    pub(crate) ready: ReadyQueue,
    pub(crate) panic_signal: PanicSignal,
    pub(crate) config: Config,
}

/// What the driving thread owns.
struct Core {
    tasks: VecDeque<Runnable>,
    tick: u32,
    /// Taken out while the thread blocks in it, so that wakes from inside the
    /// driver can reach `tasks`.
    driver: Option<Box<dyn Park>>,
}

/// The scheduler state of the thread in `block_on` that holds the core.
pub(crate) struct Context {
    handle: Arc<Handle>,
    core: RefCell<Option<Box<Core>>>,
}

impl Handle {
    pub(crate) fn new(driver: Box<dyn Park>, blocking: blocking::Spawner, config: Config) -> Arc<Handle> {
        let driver_unpark = driver.unparker();
        Arc::new(Handle {
            inject: Inject::new(),
            owned: OwnedTasks::new(1),
            woken: AtomicBool::new(false),
            core: Mutex::new(Some(Box::new(Core {
                tasks: VecDeque::with_capacity(64),
                tick: 0,
                driver: Some(driver),
            }))),
            core_waiters: Mutex::new(Vec::new()),
            driver_unpark,
            block_on_at: Mutex::new(None),
            counters: WorkerCounters::new(PollRecord::new(
                config
                    .timeline
                    .as_ref()
                    .map(|t| t.track("current-thread runtime".to_owned())),
            )),
            remote_schedules: Counter::default(),
            blocking,
            ready: ReadyQueue::new(),
            panic_signal: PanicSignal::new(),
            config,
        })
    }

    /// True once the runtime has shut down and accepts no tasks.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.owned.is_closed()
    }

    pub(crate) fn spawn<F>(me: &Arc<Handle>, future: F, id: Id, meta: SpawnMeta<'_>) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, notified) = me.owned.bind(future, me.clone(), id, meta);
        if let Some(notified) = notified {
            // `me` is the caller's handle, not the task's: it stays valid
            // whatever happens to the task once queued.
            if let Err(notified) = <Arc<Handle> as Schedule>::schedule_local(me.id(), notified, false) {
                me.schedule_remote(notified);
            }
        }
        join
    }

    /// Runs `future` to completion on this thread, driving the scheduler
    /// while it holds the core.
    #[track_caller]
    pub(crate) fn block_on<F: Future>(me: &Arc<Handle>, future: F) -> F::Output {
        let at = std::panic::Location::caller();
        let mut future = pin!(future);
        crate::park::with_thread_parker(|parker, waker| {
            loop {
                if me.panic_signal.is_fired() {
                    panic!("{PANIC_SHUTDOWN}");
                }
                if !me.owned.is_closed() {
                    // Register first, then try: a core returned in between
                    // still wakes us.
                    me.register_core_waiter(waker);
                    if let Some(core) = me.take_core() {
                        *lock(&me.block_on_at) = Some(at);
                        match Handle::drive(me, core, future.as_mut()) {
                            Some(out) => return out,
                            // Shut down meanwhile: finish without the core.
                            None => continue,
                        }
                    }
                }
                let mut cx = TaskContext::from_waker(waker);
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
                parker.park(None);
            }
        })
    }

    fn take_core(&self) -> Option<Box<Core>> {
        lock(&self.core).take()
    }

    fn put_core(&self, core: Box<Core>) {
        *lock(&self.core) = Some(core);
        let waiters = std::mem::take(&mut *lock(&self.core_waiters));
        for waker in waiters {
            waker.wake();
        }
    }

    fn register_core_waiter(&self, waker: &Waker) {
        let mut waiters = lock(&self.core_waiters);
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    /// Drives the scheduler with `core` until `future` completes (`Some`) or
    /// the runtime shuts down (`None`). The core goes back to its slot either
    /// way, also if the future panics.
    fn drive<F: Future>(me: &Arc<Handle>, core: Box<Core>, future: Pin<&mut F>) -> Option<F::Output> {
        struct PutBack<'a>(&'a scheduler::Context);
        impl Drop for PutBack<'_> {
            fn drop(&mut self) {
                let scheduler::Context::CurrentThread(cx) = self.0 else {
                    unreachable!()
                };
                if let Some(core) = cx.core.borrow_mut().take() {
                    cx.handle.put_core(core);
                }
            }
        }
        let cx = scheduler::Context::CurrentThread(Context {
            handle: me.clone(),
            core: RefCell::new(Some(core)),
        });
        let _put_back = PutBack(&cx);
        let scheduler::Context::CurrentThread(inner) = &cx else {
            unreachable!()
        };
        // This thread drives the runtime now: its events go on the
        // runtime's track until it hands the core back.
        struct LeaveTrack;
        impl Drop for LeaveTrack {
            fn drop(&mut self) {
                crate::timeline::leave_thread();
            }
        }
        crate::timeline::enter_thread(me.counters.poller.timeline().cloned());
        let _leave = LeaveTrack;
        context::set_scheduler(&cx, || inner.run_until(future))
    }

    /// Wakes the `block_on` future of the driving thread.
    fn wake_block_on(&self) {
        self.woken.store(true, Release);
        self.driver_unpark.unpark();
    }

    /// Closes the runtime to new work and wakes the driving thread so it
    /// hands back the core.
    fn close(&self) {
        self.owned.close();
        self.inject.close();
        self.driver_unpark.unpark();
    }

    /// Shuts the scheduler down: cancels every task, drops every queued
    /// reference, shuts the driver down. With `wait`, waits for a thread that
    /// drives the runtime to notice and hand back the core; without, leaves
    /// the cancelling to that thread (it does so as soon as it looks).
    pub(crate) fn shutdown(me: &Arc<Handle>, wait: bool) {
        me.close();
        let core = if wait {
            crate::park::with_thread_parker(|parker, waker| {
                loop {
                    me.register_core_waiter(waker);
                    if let Some(core) = me.take_core() {
                        return core;
                    }
                    parker.park(None);
                }
            })
        } else {
            match me.take_core() {
                Some(core) => core,
                None => return,
            }
        };
        let cx = scheduler::Context::CurrentThread(Context {
            handle: me.clone(),
            core: RefCell::new(Some(core)),
        });
        let scheduler::Context::CurrentThread(inner) = &cx else {
            unreachable!()
        };
        context::set_scheduler(&cx, || inner.cancel_all());
        let mut core = inner.core.borrow_mut().take().expect("the core is held");
        if let Some(driver) = core.driver.as_mut() {
            driver.shutdown();
        }
        debug_assert!(me.owned.is_empty());
        me.put_core(core);
    }

    pub(crate) fn metrics(&self) -> RuntimeMetrics {
        let depth = lock(&self.core).as_ref().map_or(0, |core| core.tasks.len());
        RuntimeMetrics {
            alive_tasks: self.owned.len(),
            spawned_tasks: self.owned.spawned(),
            injection_queue_depth: self.inject.len(),
            remote_schedules: self.remote_schedules.get(),
            workers: vec![self.counters.snapshot(depth)],
            ..RuntimeMetrics::default()
        }
    }
}

impl Handle {
    /// Adds the driving thread and the tasks to a dump.
    pub(crate) fn dump(&self, collector: &mut crate::dump::Collector) {
        let now = collector.now_us();
        let snapshot = self.counters.poller.snapshot(now);
        collector.worker(crate::dump::WorkerKind::Worker, 0, snapshot);
        if snapshot.polling.is_some_and(|p| p.task == Id::BLOCK_ON.as_u64()) {
            if let Some(at) = *lock(&self.block_on_at) {
                collector.block_on(at);
            }
        }
        self.owned
            .for_each(|header, name| collector.task(header.view(), name, crate::dump::TaskKind::Task, false));
    }
}

impl Context {
    fn run_until<F: Future>(&self, mut future: Pin<&mut F>) -> Option<F::Output> {
        let handle = &*self.handle;
        let waker = Waker::from(self.handle.clone());
        let mut cx = TaskContext::from_waker(&waker);
        handle.woken.store(true, Release);
        loop {
            if handle.woken.swap(false, AcqRel) {
                let poll = || coop::budget(|| future.as_mut().poll(&mut cx));
                if let Poll::Ready(out) = handle.counters.poller.run_block_on(poll) {
                    return Some(out);
                }
            }
            let mut blocked = false;
            for _ in 0..handle.config.event_interval {
                if handle.panic_signal.is_fired() {
                    panic!("{PANIC_SHUTDOWN}");
                }
                if handle.owned.is_closed() {
                    // Shut down while we drive: finish the shutdown here,
                    // where the core is (a `shutdown_background` did not
                    // wait for it), then hand the core back.
                    self.finish_shutdown();
                    return None;
                }
                let Some(task) = self.next_task() else {
                    if !handle.woken.load(Acquire) {
                        // Nothing to do: block in the driver until a wake.
                        self.park(None);
                        blocked = true;
                    }
                    break;
                };
                coop::budget(|| handle.counters.poller.run(task));
            }
            if !blocked {
                // Let the driver report I/O between bursts of tasks.
                self.park(Some(Duration::ZERO));
            }
        }
    }

    /// The thread that holds the core when the runtime closes finishes its
    /// shutdown: cancels every task, then shuts the driver down, so that
    /// the reactor's sockets and timers report the shutdown to whoever still
    /// awaits them (the future this thread blocks on, say) instead of never
    /// firing. (A waiting `shutdown` does the same once it gets the core;
    /// both steps may run twice harmlessly.)
    fn finish_shutdown(&self) {
        self.cancel_all();
        let mut driver = self
            .core
            .borrow_mut()
            .as_mut()
            .and_then(|core| core.driver.take())
            .expect("weft bug: the driver is away while its core is held");
        driver.shutdown();
        if let Some(core) = self.core.borrow_mut().as_mut() {
            core.driver = Some(driver);
        }
    }

    /// Cancels every task and drops every queued reference. Runs with this
    /// context installed, so wakes from dropped futures queue locally and are
    /// dropped here too.
    fn cancel_all(&self) {
        let handle = &*self.handle;
        handle.owned.shutdown_all(0);
        let queued: Vec<Runnable> = self
            .core
            .borrow_mut()
            .as_mut()
            .map(|core| core.tasks.drain(..).collect())
            .unwrap_or_default();
        drop(queued);
        handle.inject.drain();
    }

    fn next_task(&self) -> Option<Runnable> {
        let handle = &*self.handle;
        let mut core = self.core.borrow_mut();
        let core = core.as_mut().expect("the core is held while running");
        core.tick = core.tick.wrapping_add(1);
        // An empty injection queue is seen with two loads; `pop` alone
        // finds it empty only after a `SeqCst` fence (an `mfence` on x86),
        // and this runs every time the local queue runs dry, before each
        // park. A task pushed meanwhile unparks the driver, so the loop
        // looks again (as the multi-thread workers do).
        let inject = || {
            if handle.inject.is_empty() {
                None
            } else {
                handle.inject.pop()
            }
        };
        if core.tick % handle.config.global_queue_interval == 0 {
            inject().or_else(|| core.tasks.pop_front())
        } else {
            core.tasks.pop_front().or_else(inject)
        }
    }

    fn park(&self, timeout: Option<Duration>) {
        let mut driver = {
            let mut core = self.core.borrow_mut();
            let core = core.as_mut().expect("the core is held while running");
            core.driver.take().expect("weft bug: the driver is already taken")
        };
        if timeout.is_none() {
            self.handle.counters.parks.incr();
            self.handle.counters.poller.park();
            trace::park(0);
        }
        driver.park(timeout);
        if timeout.is_none() {
            trace::unpark(0, true);
            self.handle.counters.poller.unpark(true);
        }
        if let Some(core) = self.core.borrow_mut().as_mut() {
            core.driver = Some(driver);
        }
    }

    /// Schedules a task woken on this thread; hands it back if the core is
    /// not available right now.
    fn schedule_local(&self, task: Runnable) -> Result<(), Runnable> {
        let Ok(mut core) = self.core.try_borrow_mut() else {
            return Err(task);
        };
        match core.as_mut() {
            Some(core) => {
                core.tasks.push_back(task);
                self.handle.counters.local_schedules.incr();
                Ok(())
            }
            None => Err(task),
        }
    }
}

impl Schedule for Arc<Handle> {
    fn release(&self, task: &Task<Self>) -> Option<Task<Self>> {
        self.owned.remove(task)
    }

    fn id(&self) -> *const () {
        Arc::as_ptr(self).cast()
    }

    fn schedule_local(id: *const (), task: Runnable, _is_yield: bool) -> Result<(), Runnable> {
        context::with_scheduler(|cx| match cx {
            Some(scheduler::Context::CurrentThread(cx)) if std::ptr::eq(Arc::as_ptr(&cx.handle).cast(), id) => {
                cx.schedule_local(task)
            }
            _ => Err(task),
        })
    }

    fn schedule_remote(&self, task: Runnable) {
        self.remote_schedules.add_shared(1);
        self.inject.push(task);
        self.driver_unpark.unpark();
    }

    fn callbacks_ran(&self, n: u64) {
        self.ready.count_ran(n);
    }

    fn unhandled_panic(&self) {
        if self.config.unhandled_panic == UnhandledPanic::ShutdownRuntime {
            // Close first: whoever the signal wakes must find the runtime
            // already refusing work.
            self.close();
            self.panic_signal.fire();
        }
    }
}

impl Wake for Handle {
    fn wake(self: Arc<Self>) {
        self.wake_block_on();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_block_on();
    }
}
