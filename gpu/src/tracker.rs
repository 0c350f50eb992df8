//! The tracker: the loop's view of the GPU work in flight.
//!
//! Each (device, reactor) pair has one [`Tracker`], registered with the
//! reactor as a [`Source`]. Every operation is followed on its stream by an
//! event (from a pool, timing disabled, as HPX does); the tracker keeps the
//! operation and its event in a queue per stream (keyed by the stream's
//! process-unique id, never by its driver handle, which a new stream may
//! reuse), in the order the events were recorded, and finishes operations
//! when their events complete. A stream runs its work in order, so a poll
//! looks at each queue's front only: one `cuEventQuery` per stream plus one
//! per completion, however much work is queued.
//!
//! How the loop learns that it should look depends on the [`WakeMode`]:
//!
//! - [`WakeMode::EventPolling`] (the default): no host functions. For the
//!   spin window after new work or a completion the loop polls every turn;
//!   then it sleeps between polls from 50 µs, doubling, as io's source
//!   policy says, up to the tracker's `max_sleep`: a quarter of the time
//!   since the last progress, at most the poll interval (1 ms by default).
//!   Short kernels are caught while spinning, at polling latency; a kernel
//!   that runs for T is noticed within about T/4 (at most the interval),
//!   and costs a number of queries that grows with log T, then T/interval.
//! - [`WakeMode::HostFunction`]: a host function enqueued after each event
//!   raises the tracker's [`Signal`] and wakes the loop through io's
//!   completion notifier. After the spin window the tracker queries only
//!   when signalled, or every poll interval as a watchdog, because a
//!   faulted stream never runs its host functions.
//!
//! Either way the *status* comes from the event query, so a device fault
//! reaches the awaiting task as [`GpuError::Fault`] instead of leaving it
//! waiting forever.
//!
//! Work submitted after the reactor shut down (a race the tracker cannot
//! prevent: a task may submit while the runtime drops) is handed to the
//! device's reclaimer thread, which waits for its event and finishes it;
//! the loop is gone, but no operation is left unfinished.

use crate::WakeMode;
use crate::device::{Counters, Device};
use crate::error::GpuError;
use crate::handles::{RawEvent, StreamCore};
use crate::loom::lock;
use crate::op::Finish;
use crate::signal::Signal;
use cudarc::driver::DriverError;
use cudarc::driver::sys;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_io::Handle;
use weft_io::source::{FIRST_SLEEP, Notifier, Source, SourceHandle};

/// What the host functions of one tracker share: the signal and the way to
/// wake the loop. Holds nothing whose drop calls CUDA, because the last
/// reference may go on a driver thread.
pub(crate) struct HostSignal {
    signal: Signal,
    notifier: Notifier,
}

impl HostSignal {
    fn raise(&self) {
        if self.signal.raise() {
            // Any job wakes the loop; the poll that follows does the work.
            self.notifier.call_on_loop(|| {});
        }
    }
}

/// The host function enqueued after each operation. Runs on a driver
/// thread, where it must make no CUDA call.
unsafe extern "C" fn host_signal(data: *mut c_void) {
    // SAFETY: `data` is a count of an `Arc<HostSignal>` that `signal_after`
    // leaked for this one call.
    let host = unsafe { Arc::from_raw(data as *const HostSignal) };
    host.raise();
}

/// The wakeup of a user's [`Event`](crate::Event) in host-function mode:
/// one host function enqueued when it is recorded signals every tracker
/// that awaits it, whichever reactor each belongs to.
#[derive(Default)]
pub(crate) struct EventWake {
    /// (the host function has run, the trackers to signal when it does)
    state: Mutex<(bool, Vec<Arc<HostSignal>>)>,
}

/// The host function enqueued after a user's event. No CUDA calls.
unsafe extern "C" fn event_signal(data: *mut c_void) {
    // SAFETY: `data` is a count of an `Arc<EventWake>` leaked for this call.
    let wake = unsafe { Arc::from_raw(data as *const EventWake) };
    let listeners = {
        let mut state = lock(&wake.state);
        state.0 = true;
        std::mem::take(&mut state.1)
    };
    for host in listeners {
        host.raise();
    }
}

/// Enqueues a host function on `stream` that runs `f(data)`; `data` is a
/// leaked `Arc` count the function takes back. On refusal the count is
/// dropped here and the error returned.
fn launch_host<T>(stream: &StreamCore, f: unsafe extern "C" fn(*mut c_void), data: Arc<T>) -> Result<(), DriverError> {
    let raw = Arc::into_raw(data) as *mut c_void;
    // SAFETY: `f` makes no CUDA call and takes back the count in `raw`;
    // the stream is live and its context bound by the caller.
    let launched = unsafe { cudarc::driver::result::stream::launch_host_function(stream.handle(), f, raw) };
    if launched.is_err() {
        // SAFETY: the driver refused, so `f` will never run: the count in
        // `raw` is still ours.
        drop(unsafe { Arc::from_raw(raw as *const T) });
    }
    launched
}

/// An operation in flight and the event recorded after it.
struct Pending {
    event: Arc<RawEvent>,
    op: Arc<dyn Finish>,
    /// The call that made it, for its error.
    call: Cow<'static, str>,
    /// From the pool: goes back when it completes.
    pooled: bool,
    /// Its id on the runtime's timeline, 0 when none records.
    trace: u64,
}

#[derive(Default)]
struct Work {
    /// Per stream (by id), in recording order.
    streams: Vec<(u64, VecDeque<Pending>)>,
    /// Awaited user events: in no useful order, all queried.
    loose: Vec<Pending>,
    /// When the watchdog next polls (host-function mode).
    next_watch: Option<Instant>,
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
    /// Driver errors of calls with no caller to return them to (destroying
    /// streams and events, background frees); see
    /// [`Gpu::last_background_error`](crate::Gpu::last_background_error).
    pub driver_errors: u64,
    /// Operations submitted after their reactor shut down, finished by the
    /// device's reclaimer thread instead.
    pub orphans: u64,
    /// Bytes of pinned memory kept in the pool for reuse.
    pub pinned_pool_bytes: u64,
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
            driver_errors: self.driver_errors.load(Relaxed),
            orphans: self.orphans.load(Relaxed),
            pinned_pool_bytes: 0,
        }
    }
}

/// How a tracker is set up (from the `Gpu`'s builder).
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) mode: WakeMode,
    pub(crate) spin_window: Duration,
    pub(crate) interval: Duration,
}

/// One device's work in flight on one reactor; see the module docs.
pub(crate) struct Tracker {
    reactor: usize,
    settings: Settings,
    device: Arc<Device>,
    host: Arc<HostSignal>,
    /// The end of the current spin, in nanoseconds since `epoch`.
    spin_until: AtomicU64,
    /// The last new work or completion, in nanoseconds since `epoch`.
    last_progress: AtomicU64,
    epoch: Instant,
    work: Mutex<Work>,
    pending: AtomicUsize,
    closed: AtomicBool,
    /// The `Gpu` handles are gone: leave the reactor once idle.
    detached: AtomicBool,
    source: Mutex<Option<SourceHandle>>,
}

impl Tracker {
    /// A tracker for `device` on `reactor`, registered with it.
    pub(crate) fn register(reactor: &Handle, device: &Arc<Device>, settings: &Settings) -> Arc<Tracker> {
        let tracker = Arc::new(Tracker {
            reactor: reactor.id(),
            settings: settings.clone(),
            device: device.clone(),
            host: Arc::new(HostSignal {
                signal: Signal::default(),
                notifier: reactor.notifier().clone(),
            }),
            spin_until: AtomicU64::new(0),
            last_progress: AtomicU64::new(0),
            epoch: Instant::now(),
            work: Mutex::default(),
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            detached: AtomicBool::new(false),
            source: Mutex::new(None),
        });
        let handle = reactor.register_source(tracker.clone());
        *lock(&tracker.source) = Some(handle);
        tracker
    }

    pub(crate) fn reactor(&self) -> usize {
        self.reactor
    }

    /// The last `Gpu` handle is gone: leave the reactor once the work in
    /// flight is done, so the context can be released.
    pub(crate) fn detach(&self) {
        self.detached.store(true, Release);
        self.leave_if_idle();
    }

    fn leave_if_idle(&self) {
        if self.detached.load(Acquire) && self.pending.load(Acquire) == 0 {
            let handle = lock(&self.source).take();
            drop(handle);
        }
    }

    fn counters(&self) -> &Counters {
        &self.device.counters
    }

    /// True once the reactor shut down.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    /// Records an event after the work just enqueued on `stream` (context
    /// bound by the caller) and watches it; `op` is finished when the
    /// device gets there. Returns the event, which marks the end of the
    /// work for other streams (`buffer.rs`).
    ///
    /// If the event cannot be recorded, `op` is finished at once with the
    /// error, and its payload leaked: the work before it may be running.
    pub(crate) fn submit(
        &self,
        stream: &StreamCore,
        op: Arc<dyn Finish>,
        call: Cow<'static, str>,
    ) -> Option<Arc<RawEvent>> {
        let event = match self.device.events.take(&self.device) {
            Ok(event) => Arc::new(event),
            Err(err) => {
                op.finish(Err(self.device.error(call, err)), true);
                return None;
            }
        };
        let was_idle;
        {
            // Record under the lock, so each queue is in recording order.
            let mut work = lock(&self.work);
            if let Err(err) = event.record(stream.handle()) {
                drop(work);
                op.finish(Err(self.device.error(call, err)), true);
                return None;
            }
            let trace = trace_id();
            if trace != 0 {
                weft_io::observe::op_submitted("gpu", "stream", stream.id(), op_name(&call), trace);
            }
            let pending = Pending {
                event: event.clone(),
                op,
                call,
                pooled: true,
                trace,
            };
            if self.is_closed() {
                // The loop is gone and will never poll (module docs).
                drop(work);
                self.orphan(pending);
                return Some(event);
            }
            match work.streams.iter_mut().find(|(s, _)| *s == stream.id()) {
                Some((_, queue)) => queue.push_back(pending),
                None => work.streams.push((stream.id(), VecDeque::from([pending]))),
            }
            was_idle = self.pending.fetch_add(1, AcqRel) == 0;
        }
        self.counters().submitted.fetch_add(1, Relaxed);
        self.spin();
        // After the push: the host function cannot run before the
        // operation is in the queue its poll looks at.
        if self.settings.mode == WakeMode::HostFunction && launch_host(stream, host_signal, self.host.clone()).is_err()
        {
            self.counters().host_function_failures.fetch_add(1, Relaxed);
            // The watchdog will find it; look soon.
            self.host.signal.raise();
        }
        // A loop asleep with nothing pending sleeps without a deadline:
        // wake it so the polling (or the watchdog) starts; a spinning
        // source also wants the loop eager again after new work.
        if was_idle || !self.settings.spin_window.is_zero() {
            self.notify();
        }
        Some(event)
    }

    /// Finishes `pending` on the reclaimer thread, which may block until
    /// the device is done.
    fn orphan(&self, pending: Pending) {
        self.counters().orphans.fetch_add(1, Relaxed);
        let device = self.device.clone();
        self.device.reclaim(Box::new(move || {
            // SAFETY: the event is alive (we hold it).
            let waited = device
                .bind_raw()
                .and_then(|()| crate::device::cu(unsafe { sys::cuEventSynchronize(pending.event.handle()) }));
            let outcome = waited.map_err(|e| device.error(pending.call.clone(), e));
            let leak = outcome.is_err();
            pending.op.finish(outcome, leak);
        }));
    }

    /// In host-function mode, enqueues the host function that signals the
    /// trackers awaiting a user's event recorded just now on `stream`.
    pub(crate) fn signal_event(&self, stream: &StreamCore, wake: &Arc<EventWake>) {
        if self.settings.mode == WakeMode::HostFunction && launch_host(stream, event_signal, wake.clone()).is_err() {
            self.counters().host_function_failures.fetch_add(1, Relaxed);
            // No signal will come: the event's waiters rely on the watchdog.
            lock(&wake.state).0 = true;
        }
    }

    /// Watches a user's event (already recorded); `op` is finished when it
    /// completes.
    pub(crate) fn watch(&self, event: Arc<RawEvent>, wake: &Arc<EventWake>, op: Arc<dyn Finish>) {
        let fired = {
            let mut state = lock(&wake.state);
            if !state.0 && !state.1.iter().any(|h| Arc::ptr_eq(h, &self.host)) {
                state.1.push(self.host.clone());
            }
            state.0
        };
        {
            let mut work = lock(&self.work);
            work.loose.push(Pending {
                event,
                op,
                call: Cow::Borrowed("wait for an event"),
                pooled: false,
                trace: 0,
            });
            self.pending.fetch_add(1, AcqRel);
        }
        self.counters().submitted.fetch_add(1, Relaxed);
        self.spin();
        // Query on the next turn if the host function already ran (or
        // there is none): no signal will come.
        if fired || self.settings.mode == WakeMode::HostFunction {
            self.host.signal.raise();
        }
        self.notify();
    }

    /// Opens the spin window from now.
    fn spin(&self) {
        let now = self.nanos(Instant::now());
        self.last_progress.store(now, Relaxed);
        let until = now.saturating_add(self.settings.spin_window.as_nanos() as u64);
        self.spin_until.store(until, Relaxed);
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Wakes the loop and restarts the source's spin window.
    fn notify(&self) {
        if let Some(source) = lock(&self.source).as_ref() {
            source.notify();
        }
    }

    /// Queries events and finishes what completed; see the module docs.
    fn check(&self) -> usize {
        self.counters().polls.fetch_add(1, Relaxed);
        if let Err(e) = self.device.bind_raw() {
            // The queries below fail too, and finish their operations with
            // this error: nothing waits forever.
            self.device.background_error("bind the context to the loop", e);
        }
        let mut finished = Vec::new();
        let mut queries = 0;
        {
            let mut work = lock(&self.work);
            for (_, queue) in work.streams.iter_mut() {
                while let Some(front) = queue.front() {
                    queries += 1;
                    match front.event.query() {
                        Ok(false) => break,
                        Ok(true) => finished.push((queue.pop_front().expect("front"), Ok(()))),
                        Err(err) => {
                            let pending = queue.pop_front().expect("front");
                            let outcome = Err(self.device.error(pending.call.clone(), err));
                            finished.push((pending, outcome));
                        }
                    }
                }
            }
            work.streams.retain(|(_, queue)| !queue.is_empty());
            let mut i = 0;
            while i < work.loose.len() {
                queries += 1;
                match work.loose[i].event.query() {
                    Ok(false) => i += 1,
                    Ok(true) => finished.push((work.loose.swap_remove(i), Ok(()))),
                    Err(err) => {
                        let pending = work.loose.swap_remove(i);
                        let outcome = Err(self.device.error(pending.call.clone(), err));
                        finished.push((pending, outcome));
                    }
                }
            }
            self.pending.fetch_sub(finished.len(), AcqRel);
        }
        self.counters().queries.fetch_add(queries, Relaxed);
        let n = self.finish(finished);
        self.leave_if_idle();
        n
    }

    /// Finishes operations outside the lock: waking a task or settling a
    /// promise runs code that may submit more work. A panic in one (a
    /// user's waker, a done callback, a payload's destructor) strands none
    /// of the others.
    fn finish(&self, finished: Vec<(Pending, Result<(), GpuError>)>) -> usize {
        let n = finished.len();
        weft_io::source::complete_each(finished, |(pending, outcome)| {
            let failed = outcome.is_err();
            self.counters().completed.fetch_add(1, Relaxed);
            if outcome.as_ref().is_err_and(GpuError::is_fault) {
                self.counters().faults.fetch_add(1, Relaxed);
            }
            if pending.trace != 0 {
                weft_io::observe::op_completed("gpu", pending.trace, !failed);
            }
            if pending.pooled && !failed {
                self.device.events.give_back(pending.event);
            }
            // A failed query says nothing about whether the device stopped
            // using the payload: leak it.
            pending.op.finish(outcome, failed);
        });
        n
    }
}

/// A process-unique id for an operation on the timeline, or 0 while no
/// timeline records (the common case: one check).
fn trace_id() -> u64 {
    if !weft_io::observe::recording() {
        return 0;
    }
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Relaxed)
}

/// An operation's name on the timeline: the call for copies, fills and
/// synchronizations (fixed strings); `kernel` for launches, whose call names
/// the kernel in a string of its own.
// The `Cow`'s variant is the point: only a borrowed name lives forever.
#[allow(clippy::ptr_arg)]
fn op_name(call: &Cow<'static, str>) -> &'static str {
    match call {
        Cow::Borrowed(name) => name,
        Cow::Owned(_) => "kernel",
    }
}

impl Source for Tracker {
    fn poll(&self) -> usize {
        if self.is_closed() {
            return 0;
        }
        if self.settings.mode == WakeMode::HostFunction {
            let signalled = self.host.signal.take();
            let now = Instant::now();
            let spinning = self.nanos(now) < self.spin_until.load(Relaxed);
            let mut work = lock(&self.work);
            let due = work.next_watch.is_none_or(|at| now >= at);
            if !signalled && !due && !spinning {
                return 0;
            }
            if signalled {
                self.counters().host_wakeups.fetch_add(1, Relaxed);
            }
            if due || signalled {
                work.next_watch = Some(now + self.settings.interval);
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

    /// Event polling sleeps at most a quarter of the time since the last
    /// progress, and never more than the poll interval: work is noticed at
    /// most about a quarter of its run time late, and a long kernel costs
    /// a number of polls that grows with the logarithm of its length (see
    /// the module docs). The watchdog of host-function mode polls every
    /// interval.
    fn max_sleep(&self) -> Duration {
        match self.settings.mode {
            WakeMode::HostFunction => self.settings.interval,
            WakeMode::EventPolling => {
                let since = self
                    .nanos(Instant::now())
                    .saturating_sub(self.last_progress.load(Relaxed));
                Duration::from_nanos(since / 4).clamp(FIRST_SLEEP, self.settings.interval)
            }
        }
    }

    fn spin_window(&self) -> Duration {
        self.settings.spin_window
    }

    fn name(&self) -> &'static str {
        "gpu"
    }

    fn pending(&self) -> usize {
        self.pending.load(Acquire)
    }

    /// The loop is going away: wait for the work in flight (blocking here,
    /// on the runtime's shutdown, is documented; freeing buffers the device
    /// still uses is not acceptable), then finish it. Later submissions go
    /// to the reclaimer (see the module docs).
    fn shutdown(&self) {
        let work = {
            let mut work = lock(&self.work);
            self.closed.store(true, Release);
            std::mem::take(&mut *work)
        };
        if let Err(e) = self.device.bind_raw() {
            // The waits below fail too, and finish their operations with
            // this error (their payloads leaked): nothing waits forever.
            self.device.background_error("bind the context for shutdown", e);
        }
        let all = work
            .streams
            .into_iter()
            .flat_map(|(_, queue)| queue)
            .chain(work.loose)
            .map(|pending| {
                // SAFETY: the event is alive (we hold it).
                let waited = crate::device::cu(unsafe { sys::cuEventSynchronize(pending.event.handle()) });
                let outcome = waited.map_err(|e| self.device.error(pending.call.clone(), e));
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
            .field("mode", &self.settings.mode)
            .field("pending", &self.pending.load(Relaxed))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::Gpu;
    use crate::op::{Finish, GpuOp, Slot};
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    use weft_io::source::Source;

    /// Loads the CPU stand-in driver (built by build.rs) before any CUDA
    /// call, so cudarc's `dlopen("libcuda.so")` finds it.
    fn stand_in() {
        // SAFETY: our own library with no initializers, kept loaded for the
        // life of the test process.
        let lib = unsafe { libloading::Library::new(concat!(env!("OUT_DIR"), "/libcuda.so")) };
        std::mem::forget(lib.expect("the stand-in loads"));
    }

    /// Work submitted to a tracker whose reactor already shut down is
    /// finished by the device's reclaimer thread instead of never.
    #[test]
    fn work_submitted_after_the_reactor_shut_down_is_finished_by_the_reclaimer() {
        stand_in();
        let gpu = Gpu::open(0).unwrap();
        let rt = weft::Runtime::new().unwrap();
        rt.block_on(async {
            let stream = gpu.stream().unwrap();
            let tracker = gpu.tracker().unwrap();
            tracker.shutdown(); // as the reactor does when it goes
            gpu.device().bind("test").unwrap();
            let slot = Slot::new(7u32);
            assert!(
                tracker
                    .submit(stream.core(), slot.clone() as Arc<dyn Finish>, "test".into())
                    .is_some()
            );
            assert_eq!(GpuOp::pending(slot, 0).await.unwrap(), 7);
        });
        assert_eq!(gpu.stats().orphans, 1);
    }

    /// Event polling's sleep bound: a quarter of the time since the last
    /// progress, from 50 µs up to the poll interval.
    #[test]
    fn event_polling_sleeps_a_quarter_of_the_time_since_progress() {
        use std::time::{Duration, Instant};
        stand_in();
        let gpu = Gpu::open(0).unwrap();
        let rt = weft::Runtime::new().unwrap();
        rt.block_on(async {
            let tracker = gpu.tracker().unwrap();
            // Its clock starts at its creation: let some time pass.
            std::thread::sleep(Duration::from_millis(60));
            let back = |ago: Duration| {
                let now = tracker.nanos(Instant::now());
                tracker
                    .last_progress
                    .store(now.saturating_sub(ago.as_nanos() as u64), Relaxed);
                tracker.max_sleep()
            };
            let ms = Duration::from_millis;
            assert_eq!(back(Duration::ZERO), weft_io::source::FIRST_SLEEP);
            let quarter = back(ms(2));
            assert!(quarter >= ms(2) / 4 && quarter < ms(2) / 4 + ms(1) / 10, "{quarter:?}");
            assert_eq!(back(ms(40)), gpu.poll_interval());
        });
    }
}
