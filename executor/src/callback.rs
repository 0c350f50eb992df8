//! Loop callbacks: asyncio's `call_soon`, and the one place where every
//! callback the runtime runs for you (a promise's done callbacks included)
//! is queued, run, and has its panic caught.
//!
//! Each runtime owns one [`ReadyQueue`]: a FIFO of boxed closures (asyncio's
//! `_ready` deque). Whoever pushes onto an empty, idle queue spawns one
//! *drain task*; the drain task pops and runs callbacks one at a time, in
//! push order, until the queue is empty, yielding to other tasks every
//! [`DRAIN_BATCH`] callbacks. Because there is at most one drain task per
//! runtime (the `draining` flag, read and written under the queue's lock),
//! callbacks run one after another in the order they were queued, from
//! whichever threads they came.
//!
//! A callback that panics is caught: the runtime counts it
//! ([`RuntimeMetrics::callback_panics`](crate::RuntimeMetrics)) and applies
//! its unhandled-panic policy, exactly as for a task whose panic nobody
//! joins; the drain task and its worker carry on.
//!
//! When the runtime shuts down, the drain task is cancelled like every other
//! task; its destructor empties the queue, so callbacks queued on a runtime
//! that is gone are dropped without running (and report
//! [`CallbackHandle::cancelled`]).

use crate::loom::{AtomicUsize, Mutex, Ordering::*, lock};
use crate::scheduler;
use crate::task::{AbortHandle, Id};
use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};

/// Callbacks the drain task runs before it yields its worker.
pub(crate) const DRAIN_BATCH: usize = 64;

/// A callback waiting to run.
pub(crate) type Callback = Box<dyn FnOnce() + Send + 'static>;

/// A runtime's queue of ready callbacks.
pub(crate) struct ReadyQueue {
    inner: Mutex<Ready>,
    ran: AtomicU64,
    panicked: AtomicU64,
}

struct Ready {
    entries: VecDeque<Entry>,
    /// A drain task exists and will look at the queue again.
    draining: bool,
}

struct Entry {
    run: Callback,
    /// Present when the caller holds a [`CallbackHandle`] that may cancel.
    state: Option<Arc<CallbackState>>,
}

impl ReadyQueue {
    pub(crate) fn new() -> ReadyQueue {
        ReadyQueue {
            inner: Mutex::new(Ready {
                entries: VecDeque::new(),
                draining: false,
            }),
            ran: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
        }
    }

    /// Callbacks run so far, and of those, the ones that panicked.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.ran.load(Relaxed), self.panicked.load(Relaxed))
    }

    /// `n` callbacks ran outside the queue: a task's done callbacks
    /// (`task/done.rs`), which run inline as the task completes (or as a
    /// callback is added to a finished task).
    pub(crate) fn count_ran(&self, n: u64) {
        self.ran.fetch_add(n, Relaxed);
    }

    /// Callbacks queued right now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).entries.len()
    }
}

/// Queues `run` on `handle`'s runtime, after every callback queued before it;
/// hands it back if the runtime has shut down (a shutdown that starts after
/// this check drops it with the rest of the queue).
pub(crate) fn call_soon(
    handle: &scheduler::Handle,
    run: Callback,
    state: Option<Arc<CallbackState>>,
) -> Result<(), Callback> {
    if handle.is_shut_down() {
        if let Some(state) = state {
            state.cancel();
        }
        return Err(run);
    }
    let start_drain = {
        let mut ready = lock(&handle.ready_queue().inner);
        ready.entries.push_back(Entry { run, state });
        !std::mem::replace(&mut ready.draining, true)
    };
    if start_drain {
        // Detached: the drain task reports through the queue's counters.
        // On a runtime that is shut down the spawn drops the future at once,
        // and its destructor empties the queue.
        drop(handle.spawn(
            Drain {
                handle: handle.clone(),
                finished: false,
            },
            Id::next(),
            crate::trace::SpawnMeta::new(Some("weft.call_soon")),
        ));
    }
    Ok(())
}

/// The task that empties a runtime's ready queue.
struct Drain {
    handle: scheduler::Handle,
    finished: bool,
}

impl Future for Drain {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let queue = self.handle.ready_queue();
        for _ in 0..DRAIN_BATCH {
            let entry = {
                let mut ready = lock(&queue.inner);
                match ready.entries.pop_front() {
                    Some(entry) => entry,
                    None => {
                        ready.draining = false;
                        drop(ready);
                        self.finished = true;
                        return Poll::Ready(());
                    }
                }
            };
            if entry.state.as_ref().is_none_or(|s| s.start()) {
                queue.ran.fetch_add(1, Relaxed);
                run_guarded(Some(&self.handle), entry.run);
            }
        }
        // Let the worker run other tasks; the queue keeps its order because
        // this task stays its only consumer.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Cancelled (the runtime shut down): nobody will run what is queued.
        let dropped = {
            let mut ready = lock(&self.handle.ready_queue().inner);
            ready.draining = false;
            std::mem::take(&mut ready.entries)
        };
        for entry in dropped {
            if let Some(state) = &entry.state {
                state.cancel();
            }
            // A closure's captures may panic in their destructors; that must
            // not abort the shutdown that is dropping us.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(entry)));
        }
    }
}

/// Runs a user callback, catching a panic and reporting it to `handle`'s
/// runtime (its unhandled-panic policy), or, with no runtime, swallowing it
/// after the panic hook has printed it.
pub(crate) fn run_guarded(handle: Option<&scheduler::Handle>, run: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(run)) {
        drop_payload(payload);
        if let Some(handle) = handle {
            handle.ready_queue().panicked.fetch_add(1, Relaxed);
            handle.unhandled_panic();
        }
    }
}

fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(inner) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        // A payload whose destructor panics: leak the second one.
        std::mem::forget(inner);
    }
}

/// Cancels a callback whose trigger task is dropped before the trigger
/// fired (the handle cancelled it, or the runtime shut down).
pub(crate) struct TriggerGuard(pub(crate) Option<Arc<CallbackState>>);

impl Drop for TriggerGuard {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.cancel();
        }
    }
}

const PENDING: usize = 0;
const STARTED: usize = 1;
const CANCELLED: usize = 2;

/// Whether a queued callback has run, and the switch that cancels it.
pub(crate) struct CallbackState(AtomicUsize);

impl CallbackState {
    pub(crate) fn new() -> Arc<CallbackState> {
        Arc::new(CallbackState(AtomicUsize::new(PENDING)))
    }

    /// Claims the right to run; false if cancelled first.
    pub(crate) fn start(&self) -> bool {
        self.0.compare_exchange(PENDING, STARTED, AcqRel, Acquire).is_ok()
    }

    /// Cancels the run; false if it already started or was cancelled.
    pub(crate) fn cancel(&self) -> bool {
        self.0.compare_exchange(PENDING, CANCELLED, AcqRel, Acquire).is_ok()
    }

    fn get(&self) -> usize {
        self.0.load(Acquire)
    }
}

/// A scheduled callback: asyncio's `Handle` / `TimerHandle`, returned by
/// [`Handle::call_soon`](crate::Handle::call_soon) and the runtime's
/// `call_later` / `call_at`.
///
/// Dropping it does not cancel the callback.
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// // A current-thread runtime runs callbacks only inside `block_on`, so
/// // nothing below runs before the cancel.
/// let rt = weft_executor::Builder::new_current_thread().build()?;
/// let handle = rt.handle();
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let first = handle.call_soon({ let log = log.clone(); move || log.lock().unwrap().push(1) });
/// let second = handle.call_soon({ let log = log.clone(); move || log.lock().unwrap().push(2) });
/// assert!(second.cancel());
/// rt.block_on(async {
///     while !first.done() {
///         weft_executor::task::yield_now().await;
///     }
/// });
/// assert_eq!(*log.lock().unwrap(), [1]); // the second never runs
/// assert!(first.done() && second.cancelled());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct CallbackHandle {
    state: Arc<CallbackState>,
    /// The task waiting for the trigger (`call_later`, `call_at`).
    trigger: Option<AbortHandle>,
}

impl CallbackHandle {
    pub(crate) fn new(state: Arc<CallbackState>) -> CallbackHandle {
        CallbackHandle { state, trigger: None }
    }

    pub(crate) fn with_trigger(state: Arc<CallbackState>, trigger: AbortHandle) -> CallbackHandle {
        CallbackHandle {
            state,
            trigger: Some(trigger),
        }
    }

    /// Cancels the callback if it has not started. True if this call
    /// cancelled it; false if it already ran, is running, or was cancelled.
    pub fn cancel(&self) -> bool {
        let cancelled = self.state.cancel();
        if cancelled {
            if let Some(trigger) = &self.trigger {
                // Frees the timer now rather than at its deadline.
                trigger.abort();
            }
        }
        cancelled
    }

    /// True if the callback was cancelled (by [`cancel`](Self::cancel), or
    /// because its runtime shut down first).
    pub fn cancelled(&self) -> bool {
        self.state.get() == CANCELLED
    }

    /// True once the callback has started running (it may still be
    /// running).
    pub fn done(&self) -> bool {
        self.state.get() == STARTED
    }
}

impl fmt::Debug for CallbackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state.get() {
            PENDING => "pending",
            STARTED => "started",
            _ => "cancelled",
        };
        f.debug_struct("CallbackHandle").field("state", &state).finish()
    }
}
