//! A worker: one thread, its local queue and LIFO slot, and the loop that
//! finds the next task.
//!
//! # Where a worker looks for work, in order
//!
//! 1. Every `global_queue_interval` ticks, and after a task yielded: the
//!    injection queue first, so that tasks spawned from outside are not
//!    starved by local ones (not even by a task that yields in a loop,
//!    which keeps the local queue from ever emptying). After a yield, or
//!    with fewer than [`FAIRNESS_BATCH_BELOW`] tasks in the local queue, it
//!    takes a batch into the local queue; otherwise one task, so that woken
//!    work already queued is not put behind new work.
//! 2. Its LIFO slot, then its local queue (FIFO).
//! 3. The injection queue, taking a batch into the local queue.
//! 4. If fewer than half the workers are searching: steal half of a random
//!    victim's queue (at most 32 tasks), trying every worker once.
//! 5. Park (see [`idle`](super::idle) for who wakes it).
//!
//! Every `event_interval` ticks it also polls the driver without blocking, so
//! I/O readiness and timers are seen even while every worker is busy.
//!
//! # The LIFO slot
//!
//! A task woken (or spawned) by the task running on a worker goes into the
//! worker's LIFO slot and runs next, while the data it exchanged is still in
//! cache (the message-passing pattern). The task it displaces goes to the
//! back of the local queue. At most [`MAX_LIFO_POLLS`] LIFO tasks run in a row
//! before the slot is disabled for the rest of that chain, so two tasks that
//! wake each other cannot starve the queue. Tasks that yield never use it.
//! Searching workers never steal from the slot; only a *rescue* takes it,
//! when its worker has stayed inside one poll for a whole watch interval
//! (see [`lifo`](super::lifo) and `Context::rescue`).
//!
//! # Who touches what
//!
//! `Core` (the local queue's owner side, the LIFO slot, the tick) belongs to
//! the worker thread; it sits in a `RefCell` in the thread's [`Context`] so
//! that a wake on this thread can reach it, and no borrow of it is ever held
//! while a task runs or a task reference is dropped (either can run user code
//! that wakes a task). Everything other threads need is in [`Shared`]: the
//! stealer half of each queue, the unparkers, the injection queue.

use super::Handle;
use super::idle::Idle;
use super::lifo::LifoSlot;
use super::standby::{Decision, HandOff, OVERDUE_GRACE, Standby, WATCH_INTERVAL};
use crate::coop;
use crate::loom::{AtomicUsize, Ordering::*};
use crate::metrics::WorkerCounters;
use crate::park::{Parker, SharedDriver, Unparker};
use crate::scheduler::Inject;
use crate::task::{Notified, list::OwnedTasks};
use crate::timeline;
use crate::trace;
use crossbeam_deque::{Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

/// `timeout`, shortened to end [`OVERDUE_GRACE`] after `overdue_at` (see
/// `standby`, "Timers").
fn overdue_bound(timeout: Option<std::time::Duration>, overdue_at: Option<Instant>) -> Option<std::time::Duration> {
    let Some(at) = overdue_at else {
        return timeout;
    };
    let bound = at.saturating_duration_since(Instant::now()) + OVERDUE_GRACE;
    Some(timeout.map_or(bound, |timeout| timeout.min(bound)))
}

/// A task reference waiting to run.
pub(super) type Runnable = Notified<Arc<Handle>>;

/// Polls of LIFO-slot tasks in a row before the slot is bypassed.
pub(super) const MAX_LIFO_POLLS: u32 = 3;

/// Tasks a local queue holds before half of them move to the injection queue.
///
/// crossbeam's deque grows, so unlike Tokio's fixed 256-slot ring this is a
/// policy, not a buffer size. Tasks a worker woke (timers and sockets that
/// fired, children it spawned) stay in its queue, ahead of the injection
/// queue, which it looks at only every `global_queue_interval` ticks; idle
/// workers still steal half of it. With 256, a burst of timer wakeups during
/// an overload of remote spawns was pushed behind tens of thousands of
/// not-yet-started tasks: p99 timer lateness in `weft-benches timers` was
/// 25 ms, and is 5 ms with 4096. The bound keeps one worker from hoarding
/// an unbounded backlog that new work in the injection queue would wait on.
#[cfg(not(loom))]
pub(super) const LOCAL_QUEUE_CAPACITY: usize = 4096;
#[cfg(loom)]
pub(super) const LOCAL_QUEUE_CAPACITY: usize = 4;

/// At the fairness tick (`next_task`), a worker whose local queue holds
/// fewer tasks than this takes a batch from the injection queue; one with
/// more takes one task. A batch goes to the back of the local queue, and
/// at every tick: under a flood of outside spawns, half the polls went to
/// tasks not yet started and the queue grew, so tasks woken later waited
/// behind all of them (the test
/// `woken_tasks_keep_their_place_ahead_of_a_flood_of_outside_spawns`: every
/// one of 10,000 outside tasks ran before 200 pairs of woken tasks were
/// done; with this rule, 189).
const FAIRNESS_BATCH_BELOW: usize = 64;

/// What other threads may reach.
pub(crate) struct Shared {
    pub(super) remotes: Box<[Remote]>,
    pub(super) inject: Inject<Runnable>,
    pub(super) idle: Idle,
    pub(super) owned: OwnedTasks<Arc<Handle>>,
    pub(super) driver: Arc<SharedDriver>,
    /// Each worker's counters and poll record (in an `Arc`, so that its
    /// worker reaches them through one pointer of its own).
    pub(super) counters: Box<[Arc<CachePadded<WorkerCounters>>]>,
    pub(super) remote_schedules: crate::metrics::Counter,
    /// Workers that left their loop; the last one out finishes shutdown.
    pub(super) exited: AtomicUsize,
    /// Who takes over the driver if its holder does not come back.
    pub(super) standby: Standby,
    /// Per worker: its poll count and the time when a watcher last looked
    /// (`Context::rescue`).
    pub(super) watched: Box<[Watched]>,
    /// When the runtime started: the watchers' clock.
    pub(super) epoch: Instant,
}

/// What the watchers last saw of a worker (`Context::rescue`).
#[derive(Default)]
pub(super) struct Watched {
    polls: AtomicUsize,
    at_micros: AtomicUsize,
}

/// The face a worker shows other threads.
pub(super) struct Remote {
    pub(super) steal: Stealer<Runnable>,
    pub(super) unpark: Unparker,
    /// Its LIFO slot, which a rescue may take (`lifo.rs`).
    pub(super) lifo: Arc<LifoSlot<Arc<Handle>>>,
}

/// What only the worker thread touches.
pub(super) struct Core {
    tick: u32,
    /// This worker's LIFO slot (shared with its `Remote`, for rescues).
    lifo: Arc<LifoSlot<Arc<Handle>>>,
    /// False while a LIFO chain has hit `MAX_LIFO_POLLS`.
    lifo_enabled: bool,
    /// The task just run yielded: look at the injection queue first.
    yielded: bool,
    run_queue: Worker<Runnable>,
    /// This worker counts as a searcher in `Idle`.
    is_searching: bool,
    is_shutdown: bool,
    /// The worker is inside its parker: wakes need not notify others, since
    /// it will run what they queue as soon as it returns.
    is_parked: bool,
    rand: FastRand,
}

impl Core {
    pub(super) fn new(run_queue: Worker<Runnable>, lifo: Arc<LifoSlot<Arc<Handle>>>, seed: u64) -> Core {
        Core {
            tick: 0,
            lifo,
            lifo_enabled: true,
            yielded: false,
            run_queue,
            is_searching: false,
            is_shutdown: false,
            is_parked: false,
            rand: FastRand::new(seed),
        }
    }

    fn has_tasks(&self) -> bool {
        self.lifo.is_occupied() || !self.run_queue.is_empty()
    }

    /// More than the task this worker will run next: the others could run
    /// elsewhere (the LIFO task counts: with it, one queued task is already
    /// one too many, since the LIFO task runs first and may block).
    fn more_than_one_task(&self) -> bool {
        usize::from(self.lifo.is_occupied()) + self.run_queue.len() > 1
    }

    fn next_local_task(&mut self) -> Option<Runnable> {
        self.lifo.take().or_else(|| self.run_queue.pop())
    }

    /// Pushes to the back of the local queue; a full queue first moves its
    /// older half to the injection queue, where every worker can take it.
    fn push_back(&mut self, task: Runnable, shared: &Shared, counters: &WorkerCounters) {
        if self.run_queue.len() >= LOCAL_QUEUE_CAPACITY {
            for _ in 0..LOCAL_QUEUE_CAPACITY / 2 {
                match self.run_queue.pop() {
                    Some(task) => shared.inject.push(task),
                    None => break,
                }
            }
            counters.overflows.incr();
        }
        self.run_queue.push(task);
    }
}

/// The scheduler state of a worker thread.
pub(crate) struct Context {
    pub(super) handle: Arc<Handle>,
    index: usize,
    /// This worker's entry of `Shared::counters`.
    counters: Arc<CachePadded<WorkerCounters>>,
    core: RefCell<Core>,
    parker: Parker,
    /// When this worker, as the driver's holder, first saw the standby
    /// role vacant beside a sleeper (`fill_standby`).
    vacant_since: std::cell::Cell<Option<Instant>>,
}

impl Context {
    pub(super) fn new(handle: Arc<Handle>, index: usize, core: Core, parker: Parker) -> Context {
        let counters = handle.shared.counters[index].clone();
        Context {
            handle,
            index,
            counters,
            core: RefCell::new(core),
            parker,
            vacant_since: std::cell::Cell::new(None),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    fn counters(&self) -> &WorkerCounters {
        &self.counters
    }

    /// The worker loop. Returns when the runtime shuts down.
    pub(super) fn run(&self) {
        loop {
            let tick = {
                let mut core = self.core.borrow_mut();
                if core.is_shutdown {
                    break;
                }
                core.tick = core.tick.wrapping_add(1);
                core.tick
            };
            if tick % self.handle.config.event_interval == 0 {
                self.maintenance();
            }
            if let Some(task) = self.next_task(tick) {
                self.run_task(task);
                continue;
            }
            if let Some(task) = self.steal_work() {
                self.run_task(task);
                continue;
            }
            self.park();
        }
        self.shutdown();
    }

    /// Polls the driver without blocking and looks for shutdown.
    fn maintenance(&self) {
        let shared = self.shared();
        // Only polls if no other worker is in the driver.
        if shared.standby.try_enter(self.index) {
            self.core.borrow_mut().is_parked = true;
            shared
                .driver
                .with(|driver| self.parker.park_driver(driver, Some(std::time::Duration::ZERO)));
            shared.standby.leave();
            // Back to running tasks: the driver must stay watched (rule 4
            // of `standby`).
            self.hand_off();
        } else {
            // Another worker waits in the driver. It may have slept past a
            // timer's deadline, or woken for it and wait for a CPU: when it
            // shares this thread's CPU, the OS runs it only once this
            // thread's time slice ends, milliseconds later. Overdue timers
            // fire here instead, their tasks queued on this worker.
            self.core.borrow_mut().is_parked = true;
            shared.driver.run_overdue();
        }
        let mut core = self.core.borrow_mut();
        core.is_parked = false;
        core.is_shutdown = self.shared().inject.is_closed();
        // Tasks the driver woke went to our queue without notifying anyone
        // (we were "parked"); if there is more than we will run next, let
        // a parked worker come and steal.
        let more = core.more_than_one_task();
        drop(core);
        if more {
            self.handle.notify_parked_local();
        }
    }

    fn next_task(&self, tick: u32) -> Option<Runnable> {
        let shared = self.shared();
        let mut core = self.core.borrow_mut();
        let yielded = std::mem::take(&mut core.yielded);
        if yielded || tick % self.handle.config.global_queue_interval == 0 {
            // Fairness: outside work first, now and then, and right after a
            // task yielded (a yield means "let the others run", and a task
            // that yields in a loop keeps the local queue from ever
            // emptying). How much of it depends on what waits here:
            // - after a yield, or with a short local queue (a few tasks
            //   that keep waking each other), a batch: one outside task per
            //   interval would leave 10,000 spawned from outside waiting
            //   for seconds;
            // - with a long local queue (tasks a timer or socket woke,
            //   already started), one: a batch would put 32 new tasks
            //   ahead of them at every interval, and under a flood of
            //   spawns woken tasks would wait for milliseconds behind
            //   work that has not begun.
            if !shared.inject.is_empty() {
                let task = if yielded || core.run_queue.len() < FAIRNESS_BATCH_BELOW {
                    shared.inject.steal_batch_and_pop(&core.run_queue)
                } else {
                    shared.inject.pop()
                };
                if let Some(task) = task {
                    return Some(task);
                }
            }
            return core.next_local_task();
        }
        if let Some(task) = core.next_local_task() {
            return Some(task);
        }
        if shared.inject.is_empty() {
            return None;
        }
        shared.inject.steal_batch_and_pop(&core.run_queue)
    }

    /// Steps 3 and 4 of the search, as a searcher.
    fn steal_work(&self) -> Option<Runnable> {
        let shared = self.shared();
        let mut core = self.core.borrow_mut();
        if !core.is_searching {
            if !shared.idle.transition_worker_to_searching() {
                return None;
            }
            core.is_searching = true;
        }
        let n = shared.remotes.len();
        let start = core.rand.below(n);
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            let stolen = loop {
                match shared.remotes[victim].steal.steal_batch_and_pop(&core.run_queue) {
                    Steal::Retry => std::hint::spin_loop(),
                    other => break other.success(),
                }
            };
            if let Some(task) = stolen {
                let tasks = 1 + core.run_queue.len() as u64;
                let counters = self.counters();
                counters.steal_operations.incr();
                counters.steals.add(tasks);
                // A subscriber is user code: never run it under a borrow of
                // the core.
                drop(core);
                trace::steal(self.index, victim, tasks);
                if let Some(track) = shared.counters[victim].poller.timeline() {
                    timeline::steal(track, tasks);
                }
                return Some(task);
            }
        }
        shared.inject.steal_batch_and_pop(&core.run_queue)
    }

    fn run_task(&self, task: Runnable) {
        {
            let mut core = self.core.borrow_mut();
            if core.is_searching {
                core.is_searching = false;
                // Rule 3 of `idle`: the last searcher to find work wakes a
                // successor, who will look for what may remain.
                if self.shared().idle.transition_worker_from_searching() {
                    drop(core);
                    self.handle.notify_parked();
                }
            }
        }
        coop::budget(|| {
            self.poll(task);
            let mut lifo_polls = 0;
            loop {
                let task = {
                    let mut core = self.core.borrow_mut();
                    let Some(task) = core.lifo.take() else {
                        core.lifo_enabled = true;
                        return;
                    };
                    if !coop::has_budget_remaining() {
                        // The chain spent the budget: the LIFO task waits its
                        // turn like any other.
                        core.push_back(task, self.shared(), self.counters());
                        core.lifo_enabled = true;
                        drop(core);
                        self.handle.notify_parked_local();
                        return;
                    }
                    lifo_polls += 1;
                    if lifo_polls >= MAX_LIFO_POLLS {
                        core.lifo_enabled = false;
                    }
                    task
                };
                self.counters().lifo_polls.incr();
                self.poll(task);
            }
        });
    }

    fn poll(&self, task: Runnable) {
        self.counters().poller.run(task);
    }

    /// Schedules a task woken (or spawned) on this worker's thread.
    pub(super) fn schedule_local(&self, task: Runnable, is_yield: bool) -> Result<(), Runnable> {
        let Ok(mut core) = self.core.try_borrow_mut() else {
            return Err(task);
        };
        if core.is_shutdown {
            return Err(task);
        }
        self.counters().local_schedules.incr();
        core.yielded |= is_yield;
        let pushed_to_queue = if is_yield || !core.lifo_enabled {
            core.push_back(task, self.shared(), self.counters());
            true
        } else {
            match core.lifo.put(task) {
                Some(prev) => {
                    core.push_back(prev, self.shared(), self.counters());
                    true
                }
                None => false,
            }
        };
        // A queued task can be stolen, so a parked worker may help; a task
        // in the LIFO slot is only ever rescued (`lifo.rs`). A parked worker
        // (that is, one whose driver is waking tasks) runs them itself when
        // it returns.
        let notify = pushed_to_queue && !core.is_parked;
        drop(core);
        if notify {
            self.handle.notify_parked_local();
        }
        Ok(())
    }

    fn park(&self) {
        let shared = self.shared();
        {
            let mut core = self.core.borrow_mut();
            // `maintenance` may have consumed the shutdown's unpark (its
            // zero-timeout park takes the token) earlier in this turn: never
            // block after seeing it.
            if core.is_shutdown || core.has_tasks() {
                return;
            }
            let was_searching = std::mem::replace(&mut core.is_searching, false);
            drop(core);
            // Rule 3 of `idle`: the last searcher to park looks once more at
            // every queue, since work may have arrived after it looked.
            if shared.idle.transition_worker_to_parked(self.index, was_searching) {
                self.handle.notify_if_work_pending();
            }
        }
        let mut watches = shared.standby.first_watches();
        // A vacancy seen in an earlier park is no measure of this one.
        self.vacant_since.set(None);
        // The clock reading of the last round's wake-up (no task ran since).
        let mut unparked_ns = None;
        loop {
            self.counters().parks.incr();
            match unparked_ns {
                Some(at) => self.counters().poller.park_again(at),
                None => self.counters().poller.park(),
            }
            trace::park(self.index);
            self.core.borrow_mut().is_parked = true;
            // Into the driver if it is free; otherwise onto the condition
            // variable, as the standby (timed) or untimed (rules 1 to 3 of
            // `standby`). A pending token skips both: something may be
            // queued for us.
            let mut ran_driver = false;
            // A timed watch as the standby (rule 3 of `standby` counts them).
            let mut watched = false;
            // A watch interval passed: time to look for a stuck worker.
            let mut look = false;
            // Woken from an untimed sleep as the standby (by a hand-off).
            let mut woke_untimed = false;
            if !self.parker.take_token() {
                match shared.standby.enter_or_sleep(self.index, watches) {
                    Decision::Enter => {
                        // While another worker runs tasks, wake up every
                        // watch interval to see whether it is stuck in one
                        // (`rescue`); with every other worker parked, sleep
                        // until there is something to do.
                        let others_run = shared.idle.num_parked() < shared.remotes.len();
                        let timeout = others_run.then_some(WATCH_INTERVAL);
                        shared.driver.with(|driver| self.parker.park_driver(driver, timeout));
                        shared.standby.leave();
                        ran_driver = true;
                        look = others_run;
                    }
                    Decision::Sleep { timeout, standby } => {
                        // The standby also watches the timers while the
                        // driver's holder is in a turn rather than asleep
                        // in the kernel; untimed, whatever the holder does
                        // now, and whatever timer is registered while it
                        // sleeps (`standby`, "Timers").
                        let watch = standby && timeout.is_none();
                        let sleep = match (standby, timeout) {
                            (false, _) => timeout,
                            (true, None) => overdue_bound(None, shared.driver.watch_due(&self.parker.waker())),
                            (true, Some(_)) => overdue_bound(timeout, shared.driver.overdue_at()),
                        };
                        self.parker.park(sleep);
                        if watch {
                            shared.driver.unwatch_due();
                        }
                        // Timers the holder has not fired by now fire here,
                        // their tasks queued on this worker. Only the
                        // standby: a worker notified for work goes on to
                        // run tasks (and fires overdue timers in its
                        // maintenance); firing here on every such wake
                        // would take timers from a loop that is not held
                        // up, which then wakes for nothing (a quarter more
                        // parks with a thousand timers due every 1-20 ms).
                        if standby {
                            shared.driver.run_overdue();
                        }
                        watched = standby && timeout.is_some();
                        look = watched;
                        woke_untimed = standby && timeout.is_none();
                    }
                }
            }
            trace::unpark(self.index, ran_driver);
            unparked_ns = Some(self.counters().poller.unpark(ran_driver));
            if look {
                self.watch_polls();
                if ran_driver {
                    self.fill_standby();
                }
            }
            if look && !self.core.borrow().has_tasks() {
                if let Some(task) = self.rescue() {
                    let mut core = self.core.borrow_mut();
                    core.push_back(task, shared, self.counters());
                }
            }
            let mut core = self.core.borrow_mut();
            core.is_parked = false;
            core.is_shutdown = shared.inject.is_closed();
            if core.is_shutdown {
                drop(core);
                self.hand_off();
                return;
            }
            if core.has_tasks() {
                // The driver woke tasks on this thread while it was parked.
                // If we are still on the sleepers list nobody picked us, so
                // we are not a searcher; otherwise we were picked, and are.
                core.is_searching = !shared.idle.unpark_worker_by_id(self.index);
                let more = core.more_than_one_task();
                drop(core);
                if ran_driver {
                    shared.standby.record_leave();
                }
                // We leave to run tasks, which may block this thread: the
                // driver must stay watched (rule 4 of `standby`).
                self.hand_off();
                if more {
                    self.handle.notify_parked_local();
                }
                return;
            }
            drop(core);
            if !shared.idle.is_parked(self.index) {
                // Picked by a notifier: leave to search.
                self.hand_off();
                self.core.borrow_mut().is_searching = true;
                return;
            }
            // Woken for nothing (a timeout, a hand-off, an event that woke
            // no task here): round again. Rule 3 of `standby` counts the
            // standby's timed watches that found the driver held; a standby
            // woken from untimed sleep by a hand-off starts over only while
            // workers leave the driver often.
            watches = if woke_untimed {
                shared.standby.first_watches()
            } else if watched {
                watches + 1
            } else {
                0
            };
        }
    }

    /// Marks the poll each other worker is inside as seen now, so that a
    /// poll that runs on past this look is measured when it returns, and a
    /// dump can tell how long it has run at least (`observe::poll_record`).
    fn watch_polls(&self) {
        let shared = self.shared();
        for (index, counters) in shared.counters.iter().enumerate() {
            if index != self.index {
                counters.poller.mark_seen();
            }
        }
    }

    /// Takes the LIFO task of a worker that has stayed inside one poll since
    /// a watcher last looked, at least half a watch interval ago: that
    /// worker is blocked (or computing), and the task it woke last would
    /// otherwise wait for it, however idle the rest of the runtime.
    fn rescue(&self) -> Option<Runnable> {
        let shared = self.shared();
        let now = shared.epoch.elapsed().as_micros() as usize;
        let min_gap = WATCH_INTERVAL.as_micros() as usize / 2;
        for (index, remote) in shared.remotes.iter().enumerate() {
            if index == self.index {
                continue;
            }
            let watched = &shared.watched[index];
            let polls = shared.counters[index].poller.polls() as usize;
            let seen = watched.polls.swap(polls, Relaxed);
            let at = watched.at_micros.swap(now, Relaxed);
            let stuck = polls == seen && now.saturating_sub(at) >= min_gap;
            if stuck && remote.lifo.is_occupied() && !shared.idle.is_parked(index) {
                if let Some(task) = remote.lifo.take() {
                    self.counters().lifo_rescues.incr();
                    return Some(task);
                }
            }
        }
        None
    }

    /// Rule 6 of `standby`: the driver's holder, at its periodic look while
    /// other workers run tasks, has found the standby role vacant beside a
    /// worker asleep (untimed, as no standby) for half a watch interval: it
    /// wakes that worker, which takes the role as it goes round its parker.
    /// A shorter vacancy is left to the next worker that parks (rule 2):
    /// under load one does within microseconds, and a wake for each would
    /// cost a wakeup, and a run of timed watches, per hand-off.
    fn fill_standby(&self) {
        let shared = self.shared();
        // This worker is parked too: a sleeper needs two.
        if shared.idle.num_parked() < 2 || shared.standby.has_standby() {
            self.vacant_since.set(None);
            return;
        }
        let now = Instant::now();
        let since = *self.vacant_since.get().get_or_insert(now);
        if now.saturating_duration_since(since) < WATCH_INTERVAL / 2 {
            self.vacant_since.set(Some(since));
            return;
        }
        self.vacant_since.set(None);
        if let Some(index) = shared.idle.sleeper_other_than(self.index) {
            shared.remotes[index].unpark.unpark();
        }
    }

    /// Rule 4 of `standby`: this worker leaves its parker to run code; if
    /// the driver might be left unwatched, wake a worker to watch it.
    fn hand_off(&self) {
        let shared = self.shared();
        let target = match shared.standby.hand_off(self.index) {
            HandOff::Nobody => return,
            HandOff::Standby(index) => Some(index),
            HandOff::AnySleeper => shared.idle.sleeper_other_than(self.index),
        };
        if let Some(index) = target {
            self.counters().driver_hand_offs.incr();
            shared.remotes[index].unpark.unpark();
        }
    }

    /// Leaves the loop for good: cancels tasks, drops what is queued here,
    /// and if this is the last worker out, drains the injection queue and
    /// shuts the driver down.
    fn shutdown(&self) {
        let shared = self.shared();
        // Every worker walks the whole owned list (starting at its own
        // shard), so the cancellations are shared out.
        shared.owned.shutdown_all(self.index);
        let mut queued = Vec::new();
        {
            let core = self.core.borrow();
            queued.extend(core.lifo.take());
            while let Some(task) = core.run_queue.pop() {
                queued.push(task);
            }
        }
        // Outside the borrow: a dropped task may free a future whose
        // destructor wakes another task on this thread.
        drop(queued);
        if shared.exited.fetch_add(1, AcqRel) + 1 == shared.remotes.len() {
            debug_assert!(shared.owned.is_empty());
            shared.inject.drain();
            shared.driver.shutdown();
        }
    }
}

impl Handle {
    /// Schedules a task from outside this runtime's workers: the injection
    /// queue, then a parked worker if one should wake.
    pub(super) fn push_remote(&self, task: Runnable) {
        self.shared.remote_schedules.add_shared(1);
        // `push` issues the SeqCst fence the closed-flag check needs; the
        // idle check orders itself (see `Idle::worker_to_notify`).
        self.shared.inject.push(task);
        self.notify_parked();
    }

    /// Wakes a parked worker if rule 2 of `idle` says so. Call it after
    /// queueing the work (`Idle::worker_to_notify` explains the ordering).
    pub(super) fn notify_parked(&self) {
        if let Some(index) = self.shared.idle.worker_to_notify() {
            self.shared.remotes[index].unpark.unpark();
        }
    }

    /// The same, after a push to this worker's own queue.
    pub(super) fn notify_parked_local(&self) {
        self.notify_parked();
    }

    /// Wakes a worker if any queue holds work. Called by the last searcher
    /// right after its RMW in `Idle::transition_worker_to_parked`, which
    /// orders this look after any notifier's RMW that saw it searching.
    fn notify_if_work_pending(&self) {
        let pending = self.shared.remotes.iter().any(|r| !r.steal.is_empty()) || !self.shared.inject.is_empty();
        if pending {
            self.notify_parked();
        }
    }
}

/// A small, fast, non-cryptographic random number generator (xorshift64*),
/// for picking steal victims.
pub(super) struct FastRand {
    state: u64,
}

impl FastRand {
    pub(super) fn new(seed: u64) -> FastRand {
        FastRand { state: seed | 1 }
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // Lemire's multiply-shift maps r into 0..n without a division.
        ((u128::from(r >> 32) * n as u128) >> 32) as usize
    }
}
