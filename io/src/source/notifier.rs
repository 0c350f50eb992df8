//! The completion notifier: how any thread hands a result to the loop.
//!
//! A thread that finishes work (a CUDA host callback, a blocking-pool job,
//! an MPI progress thread) calls [`Completer::complete`]. That stores the
//! result, queues a delivery, and, if none was queued yet, writes to the
//! reactor's `mio::Waker` so the loop wakes up. On its next turn the loop
//! delivers every queued completion: the result becomes visible to the
//! awaiting [`Completion`] and its task is woken. The completing thread does
//! as little as possible (one lock, at most one `write` to an eventfd), and
//! runs no task code.
//!
//! # Coalescing wakeups
//!
//! A `pending` flag says "a delivery is queued and the loop knows". A pusher
//! writes to the waker only when it turns the flag on; the loop turns it off
//! *before* it takes the queue. So either the loop's take sees the pusher's
//! item, or the pusher sees the flag off and wakes the loop again: no
//! completion waits for a wakeup that was never sent.

use crate::driver::Handle;
use crate::loom::{AtomicBool, Mutex, MutexGuard, Ordering::*, lock};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Hands results from any thread to the reactor's loop; see the module docs.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Mutex<Vec<Job>>,
    pending: AtomicBool,
    closed: AtomicBool,
    /// Wakes the loop (writes to the reactor's `mio::Waker`).
    wake: Box<dyn Fn() + Send + Sync>,
}

enum Job {
    Deliver(Arc<dyn Deliver>),
    Call(Box<dyn FnOnce() + Send>),
}

/// Something the loop finishes delivering.
trait Deliver: Send + Sync {
    fn deliver(&self);
}

impl Notifier {
    /// A notifier that wakes its loop with `wake`.
    pub(crate) fn new(wake: impl Fn() + Send + Sync + 'static) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                queue: Mutex::new(Vec::new()),
                pending: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                wake: Box::new(wake),
            }),
        }
    }

    /// The notifier of the current reactor.
    ///
    /// # Errors
    ///
    /// Outside a runtime.
    pub fn current() -> Result<Notifier, crate::driver::TryCurrentError> {
        Handle::try_current().map(|handle| handle.notifier().clone())
    }

    /// A one-shot channel through the loop: the [`Completer`] goes to the
    /// thread that will finish the work, the [`Completion`] is awaited.
    pub fn completion<T: Send + 'static>(&self) -> (Completer<T>, Completion<T>) {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState::Waiting(None)),
        });
        (
            Completer {
                slot: Some(slot.clone()),
                notifier: self.clone(),
            },
            Completion { slot },
        )
    }

    /// Runs `f` on the loop's thread, on its next turn. For work that must
    /// happen on a thread that may call into the runtime (a CUDA callback
    /// may not call CUDA; the loop may).
    pub fn call_on_loop(&self, f: impl FnOnce() + Send + 'static) {
        self.push(Job::Call(Box::new(f)));
    }

    fn push(&self, job: Job) {
        let inner = &self.inner;
        if inner.closed.load(Acquire) {
            // No loop any more: deliver here.
            job.run();
            return;
        }
        inner.lock().push(job);
        if !inner.pending.swap(true, AcqRel) {
            (inner.wake)();
        }
        if inner.closed.load(Acquire) {
            // Closed while we pushed: the close may have drained before our
            // push; drain what is left ourselves.
            self.deliver();
        }
    }

    /// True if deliveries are queued.
    pub(crate) fn has_pending(&self) -> bool {
        self.inner.pending.load(Acquire)
    }

    /// Delivers everything queued (on the loop's turn); returns how many.
    pub(crate) fn deliver(&self) -> usize {
        let inner = &self.inner;
        if !inner.pending.load(Acquire) {
            return 0;
        }
        // Off before taking: see "Coalescing wakeups".
        inner.pending.store(false, SeqCst);
        let jobs = std::mem::take(&mut *inner.lock());
        let delivered = jobs.len();
        // A panicking callback must neither take the loop's thread with it
        // nor strand the rest of the batch.
        super::complete_each(jobs, |job| job.run());
        delivered
    }

    /// The loop is gone: deliver what is queued, and from now on deliver on
    /// the completing thread.
    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Release);
        self.inner.pending.store(true, Release);
        self.deliver();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Vec<Job>> {
        lock(&self.queue)
    }
}

impl Job {
    fn run(self) {
        match self {
            Job::Deliver(slot) => slot.deliver(),
            Job::Call(f) => f(),
        }
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("pending", &self.inner.pending.load(Relaxed))
            .field("closed", &self.inner.closed.load(Relaxed))
            .finish()
    }
}

/// The one-shot state of a completion.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

enum SlotState<T> {
    /// Nothing yet; the awaiting task's waker, if it polled.
    Waiting(Option<Waker>),
    /// Completed on some thread; the loop has not delivered it yet.
    Stored(Option<T>, Option<Waker>),
    /// Delivered: the awaiting future may take it (`None`: abandoned).
    Delivered(Option<T>),
    /// Taken by the future.
    Taken,
}

impl<T: Send> Deliver for Slot<T> {
    fn deliver(&self) {
        let waker = {
            let mut state = lock(&self.state);
            match std::mem::replace(&mut *state, SlotState::Taken) {
                SlotState::Stored(value, waker) => {
                    *state = SlotState::Delivered(value);
                    waker
                }
                other => {
                    *state = other;
                    None
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Slot<T> {
    fn store(&self, value: Option<T>) {
        let mut state = lock(&self.state);
        if let SlotState::Waiting(waker) = &mut *state {
            let waker = waker.take();
            *state = SlotState::Stored(value, waker);
        }
    }
}

/// The completing side of a [`Notifier::completion`]: give it to the thread
/// that will finish the work. Dropping it without completing resolves the
/// completion with [`Abandoned`].
pub struct Completer<T: Send + 'static> {
    slot: Option<Arc<Slot<T>>>,
    notifier: Notifier,
}

impl<T: Send + 'static> Completer<T> {
    /// Completes with `value`, from any thread. The value reaches the
    /// awaiting task through the loop's next turn.
    pub fn complete(mut self, value: T) {
        if let Some(slot) = self.slot.take() {
            slot.store(Some(value));
            self.notifier.push(Job::Deliver(slot));
        }
    }
}

impl<T: Send + 'static> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.store(None);
            self.notifier.push(Job::Deliver(slot));
        }
    }
}

impl<T: Send + 'static> fmt::Debug for Completer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completer").finish_non_exhaustive()
    }
}

/// The awaiting side of a [`Notifier::completion`].
#[must_use = "futures do nothing unless awaited"]
pub struct Completion<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Completion<T> {
    /// True once the result has been delivered (awaiting will not wait).
    pub fn is_done(&self) -> bool {
        matches!(*lock(&self.slot.state), SlotState::Delivered(_) | SlotState::Taken)
    }
}

impl<T> Future for Completion<T> {
    type Output = Result<T, Abandoned>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.slot.state);
        match &mut *state {
            SlotState::Waiting(waker) | SlotState::Stored(_, waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                crate::observe::waiting(crate::observe::Wait::Completion);
                Poll::Pending
            }
            SlotState::Delivered(_) => match std::mem::replace(&mut *state, SlotState::Taken) {
                SlotState::Delivered(value) => Poll::Ready(value.ok_or(Abandoned(()))),
                _ => unreachable!(),
            },
            SlotState::Taken => panic!("a weft Completion was polled after it returned Ready"),
        }
    }
}

impl<T> fmt::Debug for Completion<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion").field("done", &self.is_done()).finish()
    }
}

/// The [`Completer`] was dropped without completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned(());

impl fmt::Display for Abandoned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the work was abandoned: its completer was dropped without completing")
    }
}

impl Error for Abandoned {}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize as Counter;

    /// A push racing the loop's delivery of an earlier one: either that
    /// delivery runs it, or the flag still says a delivery is due (and the
    /// loop was woken when it turned on): the coalescing never swallows a
    /// wakeup.
    #[test]
    fn a_push_racing_a_delivery_is_never_lost() {
        loom::model(|| {
            let woken = Arc::new(Counter::new(0));
            let w = woken.clone();
            let notifier = Notifier::new(move || {
                w.fetch_add(1, SeqCst);
            });
            let ran = Arc::new(Counter::new(0));
            let job = |ran: &Arc<Counter>| {
                let ran = ran.clone();
                move || {
                    ran.fetch_add(1, SeqCst);
                }
            };
            // One completion already queued: the flag is on.
            notifier.call_on_loop(job(&ran));
            let pushing = notifier.clone();
            let second = job(&ran);
            let pusher = loom::thread::spawn(move || pushing.call_on_loop(second));
            notifier.deliver();
            pusher.join().unwrap();
            if ran.load(SeqCst) < 2 {
                assert!(notifier.has_pending(), "a completion is queued but no delivery is due");
                assert!(woken.load(SeqCst) >= 2, "and the loop was woken for it");
                notifier.deliver();
            }
            assert_eq!(ran.load(SeqCst), 2);
        });
    }
}
