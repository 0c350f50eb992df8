//! [`Promise`]: asyncio's `Future` object, and [`Resolver`], its settable
//! side for producers.
//!
//! # Rules
//!
//! 1. **An awaiting handle registers one waker listener**, cloned before it
//!    is added (so a `Waker::clone` that panics adds nothing), and keeps its
//!    key in `waiter` while it is registered.
//! 2. **A [`CallbackId`] names one callback of one promise for the life of
//!    the process.** Its key comes from a process-wide counter, in a range
//!    the core never uses for wakers (rule 6 of `state.rs`), so an id can
//!    never remove another promise's listener, even from a promise that
//!    reuses a freed one's memory, and never a waker.
//! 3. **Polling with the [hand-back waker](handback_waker) withdraws the
//!    registration.** A combinator that hands a pending promise back to its
//!    caller (`wait_until`) polls it once with that waker: the handle
//!    removes its listener and forgets its key, so the promise is
//!    registered nowhere, and dropping the handle later is a plain drop.
//! 4. **Settling hands every listener its outcome**, in the order added,
//!    even if one awaiter's `Waker::wake` panics: the others are still
//!    woken and the callbacks still dispatched, then the panic goes on to
//!    the settling caller.

use super::error::{Exception, PromiseError};
use super::state::{CALLER_KEYS, Core, Key};
use crate::callback::{self, run_guarded};
use crate::{context, coop, scheduler};
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// `Promise::waiter` when no waker is registered: never a key the core
/// hands out (rule 6 of `state.rs`: its own keys stay below
/// [`CALLER_KEYS`]).
const NO_WAITER: Key = Key::MAX;

/// What a promise settles to.
type Outcome<T> = Result<T, PromiseError>;

/// A done callback, boxed.
type DoneCallback<T> = Box<dyn FnOnce(&Promise<T>) + Send + 'static>;

/// A done callback together with how it is dispatched.
type Dispatch<T> = Box<dyn FnOnce(&Arc<Inner<T>>) + Send + 'static>;

/// Something waiting for the outcome.
enum Listener<T> {
    /// An `.await` or a blocking `wait`.
    Waker(Waker),
    /// A done callback. Boxed with its dispatch (to the loop, or inline)
    /// already decided where the bounds that allow it were known, so that
    /// settling needs no bounds on `T`.
    Callback(Dispatch<T>),
}

pub(super) struct Inner<T> {
    core: Core<Outcome<T>, Listener<T>>,
    /// The runtime whose loop runs done callbacks, when the promise was
    /// made for one; `None`: the runtime current where each callback is
    /// added, if any.
    scheduler: Option<scheduler::Handle>,
}

/// A one-shot, thread-safe result that can be awaited, polled, waited on
/// and observed with done callbacks: asyncio's `Future` object (and
/// `concurrent.futures.Future`), named so that it cannot be confused with
/// Rust's `Future` trait, which it implements.
///
/// | asyncio | Weft |
/// | --- | --- |
/// | `loop.create_future()` | [`Promise::new`] (or `Handle::create_future`) |
/// | `fut.set_result(x)` / `fut.set_exception(e)` | [`set_result`](Self::set_result) / [`set_exception`](Self::set_exception), from any thread |
/// | `fut.cancel()` | [`cancel`](Self::cancel) |
/// | `fut.done()`, `fut.cancelled()` | [`done`](Self::done), [`cancelled`](Self::cancelled) |
/// | `fut.result()`, `fut.exception()` | [`result`](Self::result), [`exception`](Self::exception): never block |
/// | `fut.add_done_callback(fn)` | [`add_done_callback`](Self::add_done_callback) → [`CallbackId`] |
/// | `fut.remove_done_callback(fn)` | [`remove_done_callback`](Self::remove_done_callback) (by id) |
/// | `await fut` | `promise.await` → `Result<T, PromiseError>` |
/// | `concurrent.futures.Future.result(timeout)` | [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout) |
///
/// A `Promise` is a shared handle: clones observe the same outcome. It
/// settles once; later `set_*` calls fail and give their value back.
/// Awaiting yields a *clone* of the result (every awaiter gets it, as every
/// asyncio awaiter gets the same object), so awaiting needs `T: Clone`;
/// wrap other results in an `Arc`, or use `spawn` and its `JoinHandle`,
/// which hand an output to one owner. [`result`](Self::result) borrows and
/// needs no `Clone`.
///
/// **Done callbacks** run exactly once, after completion, in the order they
/// were added. A callback is scheduled on a runtime's loop like `call_soon`:
/// the runtime the promise was made for ([`Promise::new_in`],
/// `Handle::create_future`, a [`Task`](super::Task)'s promise), else the
/// runtime current where the callback was added. So a promise settled by a
/// GPU driver thread or an MPI progress thread runs no user code there (if
/// that runtime has shut down, the callback runs on the settling thread
/// instead). A callback added with no runtime around, or with
/// [`add_done_callback_inline`](Self::add_done_callback_inline), runs on
/// the thread that settles the promise. Adding a callback to a promise that is
/// already done schedules it at once, as asyncio does.
///
/// **Only an explicit act cancels it**: [`cancel`](Self::cancel),
/// `wait_for`'s timeout (the runtime crate's `weft::future::wait_for`, which
/// cancels what it waited for, as asyncio's does; [`shield`](super::shield) keeps it), a
/// [`Resolver`] dropped unsettled. An `.await` that is abandoned (the
/// awaiting future dropped by `timeout`, `race`, `select`) only stops
/// listening: the promise stays pending for its other observers. Here Weft
/// departs from asyncio, where cancelling a task cancels the future it
/// awaits; in Rust, dropping a future is routine (see the table in
/// [`crate::future`]).
///
/// ```
/// use weft_executor::future::Promise;
///
/// let rt = weft_executor::Executor::new()?;
/// rt.block_on(async {
///     let promise = Promise::new();
///     promise.add_done_callback(|p| println!("done: {:?}", p.result()));
///     let setter = promise.clone();
///     std::thread::spawn(move || setter.set_result(42).unwrap());
///     assert_eq!(promise.await.unwrap(), 42);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Promise<T> {
    pub(super) inner: Arc<Inner<T>>,
    /// The key of this handle's registered waker while it is being
    /// awaited; [`NO_WAITER`] otherwise (a sentinel, not an `Option`, keeps
    /// the handle two words).
    waiter: Key,
}

/// Names one done callback of one promise, to remove it with
/// [`Promise::remove_done_callback`]. Unique for the life of the process
/// (rule 2): an id never names a callback of another promise, even of one
/// that reuses the memory of a promise that is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(Key);

impl CallbackId {
    /// A fresh id: from this thread's block of the process-wide counter,
    /// so taking one touches shared memory once per [`ID_BLOCK`] ids. Task
    /// handles take theirs here too, so no id names two callbacks.
    pub(crate) fn next() -> CallbackId {
        /// The next unused id, process-wide (offset from `CALLER_KEYS`).
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
        thread_local! {
            /// This thread's ids: `(next, end)`.
            static BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let id = BLOCK.with(|block| {
            let (mut next, mut end) = block.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(ID_BLOCK, Relaxed);
                end = next + ID_BLOCK;
            }
            block.set((next + 1, end));
            next
        });
        assert!(id < CALLER_KEYS, "weft: 2^63 done callback ids used up");
        CallbackId(CALLER_KEYS | id)
    }
}

/// Ids a thread takes from the process-wide counter at a time.
const ID_BLOCK: u64 = 1024;

/// The waker a combinator polls a pending promise with when it hands the
/// promise back to its caller: the promise withdraws its registration
/// instead of registering (rule 3). It never wakes anything.
pub(crate) fn handback_waker() -> &'static Waker {
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(std::ptr::null(), &HANDBACK_VTABLE)
    }
    fn no_op(_: *const ()) {}
    static HANDBACK_VTABLE: RawWakerVTable = RawWakerVTable::new(clone, no_op, no_op, no_op);
    // SAFETY: the vtable's functions ignore the (null) data pointer and do
    // nothing but hand out another such waker: a valid, inert waker.
    static HANDBACK: Waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &HANDBACK_VTABLE)) };
    &HANDBACK
}

/// True if `waker` is the [hand-back waker](handback_waker).
fn is_handback(waker: &Waker) -> bool {
    waker.will_wake(handback_waker())
}

impl<T> Promise<T> {
    /// A pending promise. Its done callbacks run on the loop of the runtime
    /// that is current where each is added, or inline (on the settling
    /// thread) if none is. Making one costs one allocation and touches no
    /// shared state.
    pub fn new() -> Promise<T> {
        Promise::with_scheduler(None)
    }

    /// A pending promise whose done callbacks run on `handle`'s loop
    /// (`handle`: a `weft::Handle` or this crate's [`Handle`](crate::Handle)).
    pub fn new_in(handle: impl AsRef<crate::Handle>) -> Promise<T> {
        Promise::with_scheduler(Some(handle.as_ref().inner.clone()))
    }

    /// A pending promise and the [`Resolver`] that settles it; dropping the
    /// resolver unsettled cancels the promise, so a producer that gives up
    /// (or panics) never leaves an awaiter hanging.
    ///
    /// ```
    /// use weft_executor::future::Promise;
    ///
    /// let (resolver, promise) = Promise::<String>::channel();
    /// std::thread::spawn(move || resolver.set_result("hi".to_owned()));
    /// assert_eq!(promise.wait().unwrap(), "hi");
    ///
    /// let (resolver, promise) = Promise::<String>::channel();
    /// drop(resolver);
    /// assert!(promise.cancelled());
    /// ```
    pub fn channel() -> (Resolver<T>, Promise<T>) {
        let promise = Promise::new();
        (
            Resolver {
                inner: promise.inner.clone(),
            },
            promise,
        )
    }

    #[inline]
    pub(super) fn with_scheduler(scheduler: Option<scheduler::Handle>) -> Promise<T> {
        Promise {
            inner: Arc::new(Inner {
                core: Core::new(),
                scheduler,
            }),
            waiter: NO_WAITER,
        }
    }

    /// Sets the result and marks the promise done. Fails, giving `value`
    /// back, if it was already done (asyncio's `InvalidStateError`).
    pub fn set_result(&self, value: T) -> Result<(), T> {
        Inner::settle(&self.inner, Ok(value)).map_err(|outcome| match outcome {
            Ok(value) => value,
            Err(_) => unreachable!("weft bug: settle gave back another outcome"),
        })
    }

    /// Fails the promise with `err` and marks it done. Fails, giving the
    /// exception back, if it was already done.
    pub fn set_exception(&self, err: impl Into<Exception>) -> Result<(), Exception> {
        let err = err.into();
        Inner::settle(&self.inner, Err(PromiseError::Failed(err))).map_err(|outcome| match outcome {
            Err(PromiseError::Failed(err)) => err,
            _ => unreachable!("weft bug: settle gave back another outcome"),
        })
    }

    /// Cancels the promise: if it is pending, it becomes done and cancelled,
    /// and its awaiters and callbacks learn it. True if this call cancelled
    /// it; false if it was already done (asyncio's semantics).
    pub fn cancel(&self) -> bool {
        Inner::settle(&self.inner, Err(PromiseError::Cancelled)).is_ok()
    }

    /// True once the promise has a result, an exception, or was cancelled.
    pub fn done(&self) -> bool {
        self.inner.core.is_complete()
    }

    /// True if the promise was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(self.inner.core.outcome(), Some(Err(PromiseError::Cancelled)))
    }

    /// The result, without blocking: `Err(Pending)` if not done,
    /// `Err(Cancelled)` if cancelled, `Err(Failed(e))` if it failed.
    pub fn result(&self) -> Result<&T, PromiseError> {
        match self.inner.core.outcome() {
            None => Err(PromiseError::Pending),
            Some(Ok(value)) => Ok(value),
            Some(Err(err)) => Err(err.clone()),
        }
    }

    /// The exception, without blocking: `Ok(Some(e))` if it failed,
    /// `Ok(None)` if it has a result, `Err(Pending)` if not done and
    /// `Err(Cancelled)` if cancelled (asyncio's `Future.exception()`).
    pub fn exception(&self) -> Result<Option<&Exception>, PromiseError> {
        match self.inner.core.outcome() {
            None => Err(PromiseError::Pending),
            Some(Ok(_)) => Ok(None),
            Some(Err(PromiseError::Failed(err))) => Ok(Some(err)),
            Some(Err(err)) => Err(err.clone()),
        }
    }

    /// Adds a callback to run once the promise is done, with the promise as
    /// its argument; on the promise's runtime loop (see the type's docs), or
    /// scheduled at once if already done.
    pub fn add_done_callback(&self, f: impl FnOnce(&Promise<T>) + Send + 'static) -> CallbackId
    where
        T: Send + Sync + 'static,
    {
        self.add_callback(Box::new(f), false)
    }

    /// Adds a callback that runs on the thread that settles the promise,
    /// right when it settles (or at once, here, if already done). Keep it
    /// short and non-blocking: that thread may be a runtime worker, a GPU
    /// driver thread or a pool thread. A panic in it is caught.
    pub fn add_done_callback_inline(&self, f: impl FnOnce(&Promise<T>) + Send + 'static) -> CallbackId
    where
        T: Send + Sync + 'static,
    {
        self.add_callback(Box::new(f), true)
    }

    fn add_callback(&self, run: DoneCallback<T>, inline: bool) -> CallbackId
    where
        T: Send + Sync + 'static,
    {
        // The loop is chosen now, on the adding thread: the settling thread
        // may be one with no runtime at all (a GPU or MPI completion).
        let target = match &self.inner.scheduler {
            Some(scheduler) => Some(scheduler.clone()),
            None => context::with_current(Clone::clone).ok(),
        };
        let listener = Listener::Callback(Box::new(move |inner: &Arc<Inner<T>>| {
            Inner::dispatch(inner, run, inline, target)
        }));
        // Rule 2: a fresh id, also for a callback scheduled at once (an id
        // that removes nothing).
        let id = CallbackId::next();
        match self.inner.core.add_keyed(id.0, listener) {
            Ok(()) => {}
            Err(Listener::Callback(dispatch)) => dispatch(&self.inner),
            Err(Listener::Waker(_)) => unreachable!("weft bug: add gave back another listener"),
        }
        id
    }

    /// Removes a done callback that has not been scheduled yet; returns how
    /// many were removed (0 or 1), as asyncio does. An id from another
    /// promise removes nothing (rule 2).
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        match self.inner.core.remove(id.0) {
            Some(Listener::Callback(_)) => 1,
            Some(Listener::Waker(_)) => unreachable!("weft bug: a callback id named a waker (rule 2)"),
            None => 0,
        }
    }

    /// Waits until the promise is done and borrows its result, without
    /// cloning it (awaiting the promise itself clones). Abandoning this wait
    /// does not cancel the promise: it only observes.
    ///
    /// ```
    /// use weft_executor::future::Promise;
    ///
    /// let rt = weft_executor::Executor::new()?;
    /// rt.block_on(async {
    ///     let big = Promise::<Vec<u8>>::new();
    ///     big.set_result(vec![7; 1 << 20]).unwrap();
    ///     let bytes: &Vec<u8> = big.settled().await.unwrap();
    ///     assert_eq!(bytes.len(), 1 << 20);
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn settled(&self) -> Result<&T, PromiseError> {
        // An observer of its own; dropping it only withdraws its waker.
        let mut observer = Promise {
            inner: self.inner.clone(),
            waiter: NO_WAITER,
        };
        std::future::poll_fn(|cx| observer.poll_done(cx)).await;
        self.result()
    }

    /// Callbacks and awaiters registered right now (for tests and
    /// introspection).
    pub fn listener_count(&self) -> usize {
        self.inner.core.listener_count()
    }

    /// Blocks this thread until the promise is done, then returns its
    /// result. For plain threads (and `spawn_blocking` jobs); in async code,
    /// `.await` the promise.
    ///
    /// # Panics
    ///
    /// On a thread that runs a Weft runtime (a worker, or inside
    /// `block_on`): blocking it could stall the very work that settles the
    /// promise.
    #[track_caller]
    pub fn wait(&self) -> Result<&T, PromiseError> {
        self.wait_until(None)
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout` with
    /// `Err(Pending)`.
    ///
    /// # Panics
    ///
    /// On a thread that runs a Weft runtime, as [`wait`](Self::wait).
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<&T, PromiseError> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>) -> Result<&T, PromiseError> {
        if !self.done() {
            assert!(
                !context::is_entered(),
                "Promise::wait would block a thread that runs a Weft runtime, stalling the tasks that may \
                 settle the promise; `.await` the promise instead, or call wait() from a plain thread or \
                 `spawn_blocking`"
            );
            let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
            if let Ok(key) = self.inner.core.add(Listener::Waker(waker)) {
                while !self.done() {
                    match deadline {
                        None => thread::park(),
                        Some(deadline) => {
                            let now = Instant::now();
                            if now >= deadline {
                                break;
                            }
                            thread::park_timeout(deadline - now);
                        }
                    }
                }
                self.inner.core.remove(key);
            }
        }
        self.result()
    }
}

impl<T> Promise<T> {
    /// Ready once done; otherwise registers this handle's waker (or swaps
    /// it for `cx`'s), which the settler takes and wakes. With the
    /// hand-back waker, withdraws the registration instead (rule 3).
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.done() {
            // The settler took our waker with the rest of the list.
            self.waiter = NO_WAITER;
            return Poll::Ready(());
        }
        if is_handback(cx.waker()) {
            self.withdraw();
            return if self.done() { Poll::Ready(()) } else { Poll::Pending };
        }
        let registered = match self.waiter {
            // Rule 1: cloned before it is added.
            NO_WAITER => match self.inner.core.add(Listener::Waker(cx.waker().clone())) {
                Ok(key) => {
                    self.waiter = key;
                    true
                }
                Err(_) => false,
            },
            // Swapped under the core's lock; the old waker is dropped after
            // it (rule 7 of `state.rs`).
            key => self
                .inner
                .core
                .update(key, |listener| match listener {
                    Listener::Waker(waker) if !waker.will_wake(cx.waker()) => {
                        Some(std::mem::replace(waker, cx.waker().clone()))
                    }
                    _ => None,
                })
                .is_some(),
        };
        if registered {
            crate::dump::note_wait(crate::dump::WaitOn::Promise {
                address: Arc::as_ptr(&self.inner) as *const () as usize,
            });
            Poll::Pending
        } else {
            // Settled between the check and the registration.
            self.waiter = NO_WAITER;
            Poll::Ready(())
        }
    }

    /// Removes this handle's waker listener, if any, without cancelling:
    /// the handle is then registered nowhere (rule 3).
    #[inline]
    fn withdraw(&mut self) {
        if self.waiter != NO_WAITER {
            self.unregister();
        }
    }

    /// [`withdraw`](Self::withdraw)'s work, for a handle that holds a key:
    /// out of line, so that dropping an unregistered handle (every handle
    /// of a promise set before it was awaited) stays a compare and the
    /// `Arc`'s release.
    #[inline(never)]
    fn unregister(&mut self) {
        let key = std::mem::replace(&mut self.waiter, NO_WAITER);
        drop(self.inner.core.remove(key));
    }
}

impl<T> Inner<T> {
    /// Settles with `outcome`, then wakes the awaiters and dispatches the
    /// callbacks, in the order they were added.
    ///
    /// Rule 4: every listener is handled even if waking one panics (user
    /// code); the first such panic is resumed once all are handled.
    #[inline]
    fn settle(me: &Arc<Inner<T>>, outcome: Outcome<T>) -> Result<(), Outcome<T>> {
        if me.core.settle(outcome)? {
            Inner::notify(me);
        }
        Ok(())
    }

    /// The settler's second half, when listeners may be waiting: takes them
    /// and handles each (rule 4). Out of line: a promise set before it is
    /// awaited never gets here.
    #[inline(never)]
    fn notify(me: &Arc<Inner<T>>) {
        let mut panic = None;
        for listener in me.core.take_listeners() {
            let handled = std::panic::catch_unwind(AssertUnwindSafe(|| match listener {
                Listener::Waker(waker) => waker.wake(),
                Listener::Callback(dispatch) => dispatch(me),
            }));
            if let Err(payload) = handled {
                match panic {
                    None => panic = Some(payload),
                    // A second panic: its payload is dropped (and leaked if
                    // its own destructor panics).
                    Some(_) => {
                        if let Err(inner) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                            std::mem::forget(inner);
                        }
                    }
                }
            }
        }
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
    }
}

impl<T: Send + Sync + 'static> Inner<T> {
    /// Runs or schedules one done callback of a settled promise.
    fn dispatch(me: &Arc<Inner<T>>, run: DoneCallback<T>, inline: bool, target: Option<scheduler::Handle>) {
        let promise = Promise {
            inner: me.clone(),
            waiter: NO_WAITER,
        };
        match &target {
            Some(scheduler) if !inline => {
                // A runtime that has shut down hands the callback back: it
                // runs here rather than never.
                if let Err(refused) = callback::call_soon(scheduler, Box::new(move || run(&promise)), None) {
                    run_guarded(None, refused);
                }
            }
            scheduler => run_guarded(scheduler.as_ref(), move || run(&promise)),
        }
    }
}

/// Wakes a thread blocked in [`Promise::wait`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

impl<T> Default for Promise<T> {
    fn default() -> Promise<T> {
        Promise::new()
    }
}

impl<T> Clone for Promise<T> {
    /// Another handle to the same promise.
    fn clone(&self) -> Promise<T> {
        Promise {
            inner: self.inner.clone(),
            waiter: NO_WAITER,
        }
    }
}

impl<T> Unpin for Promise<T> {}

impl<T: Clone> Future for Promise<T> {
    type Output = Result<T, PromiseError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(outcome) = self.inner.core.outcome() {
            // The settler took our waker with the rest of the list.
            let outcome = outcome.clone();
            self.waiter = NO_WAITER;
            return Poll::Ready(outcome);
        }
        self.poll_pending(cx)
    }
}

impl<T: Clone> Promise<T> {
    /// [`poll`](Future::poll) of a promise that was not done at its first
    /// check: out of line, so that awaiting a settled promise inlines to a
    /// load and the outcome's clone.
    #[inline(never)]
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, PromiseError>> {
        if is_handback(cx.waker()) {
            // Rule 3, before the budget: a hand-back always withdraws.
            self.withdraw();
            return match self.inner.core.outcome() {
                Some(outcome) => Poll::Ready(outcome.clone()),
                None => Poll::Pending,
            };
        }
        // Awaiting many promises in a loop must not starve the worker.
        let coop = std::task::ready!(coop::poll_proceed(cx));
        std::task::ready!(self.poll_done(cx));
        coop.made_progress();
        let outcome = self.inner.core.outcome().expect("weft bug: done without an outcome");
        Poll::Ready(outcome.clone())
    }
}

impl<T> Drop for Promise<T> {
    #[inline]
    fn drop(&mut self) {
        // An abandoned await only stops listening: the promise stays
        // pending for its other observers (see the type's docs).
        self.withdraw();
    }
}

impl<T: fmt::Debug> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Promise");
        match self.inner.core.outcome() {
            None => d.field("state", &"pending"),
            Some(Ok(value)) => d.field("result", value),
            Some(Err(PromiseError::Cancelled)) => d.field("state", &"cancelled"),
            Some(Err(err)) => d.field("exception", err),
        };
        d.finish()
    }
}

/// The settable side of a [`Promise::channel`]: what a producer (a thread, a
/// pool job, a completion handler) holds.
///
/// Settling consumes it. Dropping it unsettled cancels the promise, so that
/// awaiters learn that no result will come.
pub struct Resolver<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Resolver<T> {
    /// Sets the result; gives `value` back if the promise was already done
    /// (cancelled by a consumer).
    pub fn set_result(self, value: T) -> Result<(), T> {
        self.promise().set_result(value)
    }

    /// Fails the promise; gives the exception back if it was already done.
    pub fn set_exception(self, err: impl Into<Exception>) -> Result<(), Exception> {
        self.promise().set_exception(err)
    }

    /// True once the promise is done: a producer can stop early when a
    /// consumer cancelled.
    pub fn is_done(&self) -> bool {
        self.inner.core.is_complete()
    }

    /// A handle to the promise this settles.
    pub fn promise(&self) -> Promise<T> {
        Promise {
            inner: self.inner.clone(),
            waiter: NO_WAITER,
        }
    }
}

impl<T> Drop for Resolver<T> {
    fn drop(&mut self) {
        if !self.inner.core.is_claimed() {
            self.promise().cancel();
        }
    }
}

impl<T> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").field("done", &self.is_done()).finish()
    }
}
