//! The tracker: the loop's view of the GPU work in flight.
//!
//! Each (device, reactor) pair has one [`Tracker`], registered with the
//! reactor as a [`Source`]. Every operation is followed on its stream by an
//! event (from a pool, timing disabled, as HPX does); the tracker keeps the
//! operation and its event in a queue per stream, in the order the events
//! were recorded, and finishes operations when their events complete. A
//! stream runs its work in order, so a poll looks at each queue's front
//! only: it costs one `cuEventQuery` per stream plus one per completion,
//! however much work is queued.
//!
//! How the loop learns that it should look depends on the [`WakeMode`]:
//!
//! - [`WakeMode::HostFunction`]: a host function enqueued after each event
//!   raises the tracker's [`Signal`] and wakes the loop through io's
//!   completion notifier. After new work (or a completion) the loop first
//!   polls for a brief spin window (`spin_window`, as CUDA.jl spins before it
//!   yields), which catches short work at polling latency; then it
//!   sleeps, and the tracker queries only when signalled, or every poll
//!   interval as a watchdog, because a faulted stream never runs its host
//!   functions.
//! - [`WakeMode::EventPolling`]: no host functions; the loop queries every
//!   turn while completions come, then backs off to the poll interval.
//!
//! Either way the *status* comes from the event query, so a device fault
//! reaches the awaiting task as [`GpuError::Fault`] within a poll interval
//! instead of leaving it waiting forever.

use crate::WakeMode;
use crate::error::GpuError;
use crate::loom::lock;
use crate::op::Finish;
use crate::signal::Signal;
use cudarc::driver::{CudaContext, CudaEvent, CudaStream, DriverError};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_io::Handle;
use weft_io::source::{DEFAULT_SPIN_WINDOW, Notifier, Source, SourceHandle};

/// Events kept for reuse (creating one is a driver call).
#[derive(Default)]
pub(crate) struct EventPool {
    events: Mutex<Vec<CudaEvent>>,
}

/// Most events a pool keeps.
const POOL_MAX: usize = 1024;

impl EventPool {
    fn take(&self, ctx: &Arc<CudaContext>) -> Result<CudaEvent, DriverError> {
        match lock(&self.events).pop() {
            Some(event) => Ok(event),
            None => ctx.new_event(None),
        }
    }

    fn give_back(&self, event: CudaEvent) {
        let mut events = lock(&self.events);
        if events.len() < POOL_MAX {
            events.push(event);
        }
    }
}

/// What the host functions of one tracker share: the signal and the way to
/// wake the loop. Holds nothing whose drop calls CUDA, because the last
/// reference may go on a driver thread.
struct HostSignal {
    signal: Signal,
    notifier: Notifier,
}

/// The host function enqueued after each operation. Runs on a driver
/// thread, where it must make no CUDA call.
unsafe extern "C" fn host_signal(data: *mut c_void) {
    // SAFETY: `data` is a count of an `Arc<HostSignal>` that `submit`
    // leaked for this one call.
    let host = unsafe { Arc::from_raw(data as *const HostSignal) };
    if host.signal.raise() {
        // Any job wakes the loop; the poll that follows does the work.
        host.notifier.call_on_loop(|| {});
    }
}

/// An operation in flight and the event recorded after it.
struct Pending {
    event: Watched,
    op: Arc<dyn Finish>,
}

enum Watched {
    /// From the pool; goes back when it completes.
    Pooled(CudaEvent),
    /// A user's [`Event`](crate::Event).
    Shared(Arc<CudaEvent>),
}

impl Watched {
    fn get(&self) -> &CudaEvent {
        match self {
            Watched::Pooled(e) => e,
            Watched::Shared(e) => e,
        }
    }
}

#[derive(Default)]
struct Work {
    /// Per stream (by handle), in recording order.
    streams: Vec<(usize, VecDeque<Pending>)>,
    /// Awaited user events: in no useful order, all queried.
    loose: Vec<Pending>,
    /// When the watchdog next polls (host-function mode).
    next_watch: Option<Instant>,
}

/// Counters a [`Gpu`](crate::Gpu) reports in [`GpuStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submitted: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) faults: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) queries: AtomicU64,
    pub(crate) host_wakeups: AtomicU64,
    pub(crate) host_function_failures: AtomicU64,
}

/// A snapshot of a device's completion machinery, for seeing what it does
/// (`Gpu::stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GpuStats {
    /// Operations handed to a tracker.
    pub submitted: u64,
    /// Operations finished (successfully or not).
    pub completed: u64,
    /// Operations that finished with a device fault.
    pub faults: u64,
    /// Polls that queried events.
    pub polls: u64,
    /// `cuEventQuery` calls.
    pub queries: u64,
    /// Polls started by a host function's signal.
    pub host_wakeups: u64,
    /// Host functions the driver refused (those operations were found by
    /// the watchdog instead).
    pub host_function_failures: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> GpuStats {
        GpuStats {
            submitted: self.submitted.load(Relaxed),
            completed: self.completed.load(Relaxed),
            faults: self.faults.load(Relaxed),
            polls: self.polls.load(Relaxed),
            queries: self.queries.load(Relaxed),
            host_wakeups: self.host_wakeups.load(Relaxed),
            host_function_failures: self.host_function_failures.load(Relaxed),
        }
    }
}

/// One device's work in flight on one reactor; see the module docs.
pub(crate) struct Tracker {
    reactor: usize,
    mode: WakeMode,
    interval: Duration,
    ctx: Arc<CudaContext>,
    pool: Arc<EventPool>,
    counters: Arc<Counters>,
    host: Arc<HostSignal>,
    /// Host-function mode: how long after new work (or a completion) polls
    /// query events even unsignalled (the brief spin).
    spin_window: Duration,
    /// The end of the current spin, in nanoseconds since `epoch`.
    spin_until: AtomicU64,
    epoch: Instant,
    work: Mutex<Work>,
    pending: AtomicUsize,
    closed: AtomicBool,
    source: Mutex<Option<SourceHandle>>,
}

/// How the tracker finds the device's settings.
pub(crate) struct Settings {
    pub(crate) mode: WakeMode,
    pub(crate) spin_window: Duration,
    pub(crate) interval: Duration,
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) pool: Arc<EventPool>,
    pub(crate) counters: Arc<Counters>,
}

impl Tracker {
    /// A tracker for `settings`' device on `reactor`, registered with it.
    pub(crate) fn register(reactor: &Handle, settings: &Settings) -> Arc<Tracker> {
        let tracker = Arc::new(Tracker {
            reactor: reactor.id(),
            mode: settings.mode,
            interval: settings.interval,
            ctx: settings.ctx.clone(),
            pool: settings.pool.clone(),
            counters: settings.counters.clone(),
            host: Arc::new(HostSignal {
                signal: Signal::default(),
                notifier: reactor.notifier().clone(),
            }),
            spin_window: settings.spin_window,
            spin_until: AtomicU64::new(0),
            epoch: Instant::now(),
            work: Mutex::default(),
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            source: Mutex::new(None),
        });
        let handle = reactor.register_source(tracker.clone());
        *lock(&tracker.source) = Some(handle);
        tracker
    }

    pub(crate) fn reactor(&self) -> usize {
        self.reactor
    }

    /// True once the reactor shut down.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    /// Records an event after the work just enqueued on `stream` and
    /// watches it; `op` is finished when the device gets there.
    ///
    /// If the event cannot be recorded, `op` is finished at once with the
    /// error, and its payload leaked: the work before it may be running.
    pub(crate) fn submit(&self, stream: &CudaStream, op: Arc<dyn Finish>) {
        let event = match self.pool.take(&self.ctx) {
            Ok(event) => event,
            Err(err) => return op.finish(Err(GpuError::driver("create an event", err)), true),
        };
        let was_idle;
        {
            // Record under the lock, so each queue is in recording order.
            let mut work = lock(&self.work);
            if let Err(err) = event.record(stream) {
                drop(work);
                return op.finish(Err(GpuError::driver("record an event", err)), true);
            }
            let key = stream.cu_stream() as usize;
            let pending = Pending {
                event: Watched::Pooled(event),
                op,
            };
            match work.streams.iter_mut().find(|(s, _)| *s == key) {
                Some((_, queue)) => queue.push_back(pending),
                None => work.streams.push((key, VecDeque::from([pending]))),
            }
            was_idle = self.pending.fetch_add(1, AcqRel) == 0;
        }
        self.counters.submitted.fetch_add(1, Relaxed);
        self.spin();
        // After the push: the host function cannot run before the
        // operation is in the queue its poll looks at.
        self.signal_after(stream);
        // A loop asleep with no work pending sleeps without a deadline:
        // wake it so the watchdog (or the polling) starts. A spinning mode
        // also wants the loop eager again after new work.
        if was_idle || self.mode == WakeMode::EventPolling || !self.spin_window.is_zero() {
            self.wake(false);
        }
    }

    /// In host-function mode, enqueues a host function on `stream` that
    /// signals this tracker when the stream gets there.
    pub(crate) fn signal_after(&self, stream: &CudaStream) {
        if self.mode == WakeMode::HostFunction {
            let data = Arc::into_raw(self.host.clone()) as *mut c_void;
            // SAFETY: `host_signal` makes no CUDA call and takes back the
            // count leaked in `data`; the stream handle is live (we hold
            // the stream).
            let launched =
                unsafe { cudarc::driver::result::stream::launch_host_function(stream.cu_stream(), host_signal, data) };
            if launched.is_err() {
                // SAFETY: the driver refused, so `host_signal` will never
                // run: the count in `data` is still ours.
                drop(unsafe { Arc::from_raw(data as *const HostSignal) });
                self.counters.host_function_failures.fetch_add(1, Relaxed);
                // The watchdog will find it; look soon.
                self.wake(true);
            }
        }
    }

    /// Watches a user's event (already recorded); `op` is finished when it
    /// completes.
    pub(crate) fn watch(&self, event: Arc<CudaEvent>, op: Arc<dyn Finish>) {
        {
            let mut work = lock(&self.work);
            work.loose.push(Pending {
                event: Watched::Shared(event.clone()),
                op,
            });
            self.pending.fetch_add(1, AcqRel);
        }
        self.counters.submitted.fetch_add(1, Relaxed);
        self.spin();
        // The event's host function (if any) may have run before the push;
        // then nothing will signal again. A query settles it: not complete
        // means the host function is still to run.
        let signal = !matches!(event.try_is_complete(), Ok(false));
        self.wake(signal);
    }

    /// Opens the spin window from now (host-function mode's polls query
    /// events unsignalled until it ends).
    fn spin(&self) {
        let until = self
            .nanos(Instant::now())
            .saturating_add(self.spin_window.as_nanos() as u64);
        self.spin_until.store(until, Relaxed);
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Wakes the loop; `signal` also makes the next poll query.
    fn wake(&self, signal: bool) {
        if signal {
            self.host.signal.raise();
        }
        if let Some(source) = lock(&self.source).as_ref() {
            source.notify();
        }
    }

    /// Binds the device's context to the loop's thread (once per thread).
    fn bind(&self) {
        let ctx = self.ctx.cu_ctx();
        if !matches!(cudarc::driver::result::ctx::get_current(), Ok(Some(current)) if current == ctx) {
            // SAFETY: the context is alive (we hold it); binding it to this
            // thread is what every cudarc call does.
            let _ = unsafe { cudarc::driver::result::ctx::set_current(ctx) };
        }
    }

    /// Queries events and finishes what completed; see the module docs.
    fn check(&self) -> usize {
        self.counters.polls.fetch_add(1, Relaxed);
        self.bind();
        let mut finished = Vec::new();
        let mut queries = 0;
        {
            let mut work = lock(&self.work);
            for (_, queue) in work.streams.iter_mut() {
                while let Some(front) = queue.front() {
                    queries += 1;
                    match front.event.get().try_is_complete() {
                        Ok(false) => break,
                        Ok(true) => finished.push((queue.pop_front().expect("front"), Ok(()))),
                        // A fault: every query now fails; fail them all.
                        Err(err) => finished.push((queue.pop_front().expect("front"), Err(GpuError::fault(err)))),
                    }
                }
            }
            work.streams.retain(|(_, queue)| !queue.is_empty());
            let mut i = 0;
            while i < work.loose.len() {
                queries += 1;
                match work.loose[i].event.get().try_is_complete() {
                    Ok(false) => i += 1,
                    Ok(true) => finished.push((work.loose.swap_remove(i), Ok(()))),
                    Err(err) => finished.push((work.loose.swap_remove(i), Err(GpuError::fault(err)))),
                }
            }
            self.pending.fetch_sub(finished.len(), AcqRel);
        }
        self.counters.queries.fetch_add(queries, Relaxed);
        self.finish(finished)
    }

    /// Finishes operations outside the lock: waking a task or settling a
    /// promise runs code that may submit more work.
    fn finish(&self, finished: Vec<(Pending, Result<(), GpuError>)>) -> usize {
        let n = finished.len();
        for (pending, outcome) in finished {
            let fault = outcome.is_err();
            self.counters.completed.fetch_add(1, Relaxed);
            if fault {
                self.counters.faults.fetch_add(1, Relaxed);
            }
            pending.op.finish(outcome, fault);
            if let (Watched::Pooled(event), false) = (pending.event, fault) {
                self.pool.give_back(event);
            }
        }
        n
    }
}

impl Source for Tracker {
    fn poll(&self) -> usize {
        if self.is_closed() {
            return 0;
        }
        if self.mode == WakeMode::HostFunction {
            let signalled = self.host.signal.take();
            let now = Instant::now();
            let spinning = self.nanos(now) < self.spin_until.load(Relaxed);
            let mut work = lock(&self.work);
            let due = work.next_watch.is_none_or(|at| now >= at);
            if !signalled && !due && !spinning {
                return 0;
            }
            if signalled {
                self.counters.host_wakeups.fetch_add(1, Relaxed);
            }
            if due || signalled {
                work.next_watch = Some(now + self.interval);
            }
            drop(work);
            let completed = self.check();
            if completed > 0 {
                // Completions come in bursts: spin a little again.
                self.spin();
            }
            return completed;
        }
        self.check()
    }

    fn has_pending(&self) -> bool {
        self.pending.load(Acquire) > 0
    }

    fn max_sleep(&self) -> Duration {
        self.interval
    }

    fn spin_window(&self) -> Duration {
        match self.mode {
            WakeMode::HostFunction => self.spin_window,
            WakeMode::EventPolling => DEFAULT_SPIN_WINDOW,
        }
    }

    /// The loop is going away: wait for the work in flight (blocking is
    /// acceptable here, freeing buffers the device still uses is not),
    /// then finish it.
    fn shutdown(&self) {
        self.closed.store(true, Release);
        self.bind();
        let work = std::mem::take(&mut *lock(&self.work));
        let all = work
            .streams
            .into_iter()
            .flat_map(|(_, queue)| queue)
            .chain(work.loose)
            .map(|pending| {
                // SAFETY: the event is alive (we hold it). The raw call,
                // not cudarc's, so an error a drop recorded in the context
                // does not stop the wait.
                let outcome = unsafe { cudarc::driver::result::event::synchronize(pending.event.get().cu_event()) }
                    .map_err(GpuError::fault);
                (pending, outcome)
            })
            .collect();
        self.pending.store(0, Release);
        self.finish(all);
        // Break the cycle tracker -> source handle -> reactor -> tracker.
        drop(lock(&self.source).take());
    }
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("reactor", &self.reactor)
            .field("mode", &self.mode)
            .field("pending", &self.pending.load(Relaxed))
            .finish()
    }
}
