//! [`Queue`]: Python's `asyncio.Queue`, a FIFO shared by many producers and
//! many consumers, with `task_done`, `join` and (Python 3.13's) `shutdown`.
//!
//! # Rules
//!
//! 1. **Two semaphores count the queue**: `available` holds one permit per
//!    item (getters wait on it, FIFO), `slots` one per free place when the
//!    queue has a `maxsize` (putters wait on it, FIFO). A getter takes an
//!    item permit, then pops; a putter takes a slot permit, then pushes and
//!    adds an item permit. Both waits are cancel-safe because the
//!    semaphore's are.
//! 2. **One lock holds the items, the count of unfinished work and the
//!    shut-down flag.** Every `put` adds one to the count, every
//!    `task_done` removes one, and `join` waits (through a [`Notify`])
//!    until it is zero.
//! 3. **Shutdown is decided under that lock** (the crate's "decide under
//!    one lock" rule): `push` refuses an item there once the flag is set,
//!    so nothing enters after [`shutdown`](Queue::shutdown), not even from
//!    a putter that took its slot before. The semaphores carry the news to
//!    the waiters: `slots` is closed at once (waiting putters fail), and
//!    `available` is closed once the queue is shut down *and* empty, by
//!    whoever saw that under the lock (`shutdown` itself, or the getter
//!    that took the last item), so waiting getters fail only when nothing
//!    is left for them. Since no item can come after that, closing a moment
//!    later, outside the lock, changes nothing anyone can see.
//! 4. **An immediate shutdown drains the items under the lock and drops
//!    them after it**, with unfinished work reduced by as many, as in
//!    Python; a getter that had its permit but not yet its item finds none
//!    and fails. The items are dropped last, outside every lock, so an
//!    item whose `Drop` panics leaves the queue shut down and every waiter
//!    woken.
//! 5. **No user code under the lock.** Items are moved, never dropped,
//!    while it is held, and waiters are woken after it is released.

use crate::loom::{Mutex, lock};
use crate::notify::Notify;
use crate::semaphore::{Semaphore, TryAcquireError};
use std::collections::VecDeque;
use std::fmt;

/// A FIFO queue for tasks: asyncio's `Queue(maxsize)`.
///
/// ```
/// use weft_sync::{Queue, TryGetError, TryPutError};
///
/// futures::executor::block_on(async {
///     let q = Queue::new(2);
///     q.put(1).await.unwrap();
///     q.put_nowait(2).unwrap();
///     assert_eq!(q.put_nowait(3), Err(TryPutError::Full(3)));
///     assert_eq!(q.get().await, Ok(1));
///     q.task_done().unwrap();
///
///     // Python 3.13's shutdown: no more puts; what is queued can still
///     // be taken, then gets fail too.
///     q.shutdown(false);
///     assert!(q.put(4).await.is_err());
///     assert_eq!(q.get_nowait(), Ok(2));
///     q.task_done().unwrap();
///     assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
///     q.join().await; // every item was processed
/// });
/// ```
pub struct Queue<T> {
    state: Mutex<State<T>>,
    /// One permit per queued item; closed once shut down and empty
    /// (rule 3).
    available: Semaphore,
    /// One permit per free place; `None` when unbounded. Closed by
    /// shutdown.
    slots: Option<Semaphore>,
    all_done: Notify,
    maxsize: usize,
}

/// What the lock guards (rule 2).
struct State<T> {
    items: VecDeque<T>,
    /// Items put and not yet marked done.
    unfinished: usize,
    shut_down: bool,
}

/// A `put` or `get` on a queue that was [shut down](Queue::shutdown)
/// (Python's `QueueShutDown`). A refused `put` gives its item back in
/// the field; a `get` carries `()`.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct QueueShutDown<T = ()>(pub T);

impl<T> fmt::Debug for QueueShutDown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueShutDown(..)")
    }
}

impl<T> fmt::Display for QueueShutDown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is shut down")
    }
}

impl<T> std::error::Error for QueueShutDown<T> {}

/// Why [`put_nowait`](Queue::put_nowait) failed; holds the item.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TryPutError<T> {
    /// The queue holds `maxsize` items (Python's `QueueFull`).
    Full(T),
    /// The queue was shut down (Python's `QueueShutDown`).
    ShutDown(T),
}

impl<T> TryPutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(item) | TryPutError::ShutDown(item) => item,
        }
    }
}

impl<T> From<QueueShutDown<T>> for TryPutError<T> {
    fn from(err: QueueShutDown<T>) -> TryPutError<T> {
        TryPutError::ShutDown(err.0)
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("Full(..)"),
            TryPutError::ShutDown(_) => f.write_str("ShutDown(..)"),
        }
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("the queue is full"),
            TryPutError::ShutDown(_) => f.write_str("the queue is shut down"),
        }
    }
}

impl<T> std::error::Error for TryPutError<T> {}

/// Why [`get_nowait`](Queue::get_nowait) gave no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryGetError {
    /// Nothing is queued now (Python's `QueueEmpty`).
    Empty,
    /// The queue was shut down and nothing is left to take (Python's
    /// `QueueShutDown`).
    ShutDown,
}

impl From<QueueShutDown> for TryGetError {
    fn from(_: QueueShutDown) -> TryGetError {
        TryGetError::ShutDown
    }
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryGetError::Empty => f.write_str("the queue is empty"),
            TryGetError::ShutDown => f.write_str("the queue is shut down and empty"),
        }
    }
}

impl std::error::Error for TryGetError {}

/// `task_done` called more times than there were items (asyncio's
/// `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called more times than items were put")
    }
}

impl std::error::Error for TaskDoneError {}

impl<T> Queue<T> {
    /// A queue holding at most `maxsize` items; 0 means no limit, as in
    /// asyncio.
    ///
    /// # Panics
    ///
    /// If `maxsize` exceeds [`MAX_PERMITS`](crate::MAX_PERMITS).
    #[track_caller]
    pub fn new(maxsize: usize) -> Queue<T> {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                unfinished: 0,
                shut_down: false,
            }),
            available: Semaphore::new(0),
            slots: (maxsize > 0).then(|| Semaphore::new(maxsize)),
            all_done: Notify::new(),
            maxsize,
        }
    }

    /// Puts an item, waiting for room if the queue is full. Cancel-safe: a
    /// cancelled `put` puts nothing (the item is dropped with the future).
    ///
    /// # Errors
    ///
    /// [`QueueShutDown`] with the item once the queue is shut down, also
    /// for a `put` that was waiting for room when it happened.
    pub async fn put(&self, item: T) -> Result<(), QueueShutDown<T>> {
        if let Some(slots) = &self.slots {
            match slots.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_closed) => return Err(QueueShutDown(item)),
            }
        }
        self.push(item).map_err(QueueShutDown)
    }

    /// Puts an item if there is room now.
    ///
    /// # Errors
    ///
    /// [`TryPutError::Full`] or [`TryPutError::ShutDown`], with the item.
    pub fn put_nowait(&self, item: T) -> Result<(), TryPutError<T>> {
        if let Some(slots) = &self.slots {
            match slots.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(TryAcquireError::Closed) => return Err(TryPutError::ShutDown(item)),
                // Python checks for shutdown first: a full queue that is
                // being shut down answers `ShutDown`.
                Err(TryAcquireError::NoPermits) if self.is_shutdown() => return Err(TryPutError::ShutDown(item)),
                Err(TryAcquireError::NoPermits) => return Err(TryPutError::Full(item)),
            }
        }
        self.push(item).map_err(TryPutError::ShutDown)
    }

    /// Queues `item` and counts it as unfinished, unless the queue is shut
    /// down (rule 3): then the item comes back.
    fn push(&self, item: T) -> Result<(), T> {
        {
            let mut state = lock(&self.state);
            if state.shut_down {
                return Err(item);
            }
            state.unfinished += 1;
            state.items.push_back(item);
        }
        self.available.add_permits(1);
        Ok(())
    }

    /// Takes the oldest item, waiting for one. Cancel-safe: a cancelled
    /// `get` takes nothing.
    ///
    /// # Errors
    ///
    /// [`QueueShutDown`] once the queue is shut down and empty (at once
    /// after an immediate shutdown), also for a `get` that was waiting
    /// when that happened.
    pub async fn get(&self) -> Result<T, QueueShutDown> {
        match self.available.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_closed) => return Err(QueueShutDown(())),
        }
        self.pop().ok_or(QueueShutDown(()))
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    ///
    /// [`TryGetError::Empty`], or [`TryGetError::ShutDown`] once the queue
    /// is shut down and nothing is left to take.
    pub fn get_nowait(&self) -> Result<T, TryGetError> {
        match self.available.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::Closed) => return Err(TryGetError::ShutDown),
            // Shut down, and whatever is left already belongs to getters
            // that hold its permit.
            Err(TryAcquireError::NoPermits) if self.is_shutdown() => return Err(TryGetError::ShutDown),
            Err(TryAcquireError::NoPermits) => return Err(TryGetError::Empty),
        }
        self.pop().ok_or(TryGetError::ShutDown)
    }

    /// Takes the oldest item for a getter that holds its permit: `None`
    /// only after an immediate shutdown drained it (rule 4). Closes
    /// `available` if this leaves a shut-down queue empty (rule 3).
    fn pop(&self) -> Option<T> {
        let (item, drained) = {
            let mut state = lock(&self.state);
            let item = state.items.pop_front();
            debug_assert!(
                item.is_some() || state.shut_down,
                "weft-sync bug: an item permit without an item"
            );
            (item, state.shut_down && state.items.is_empty())
        };
        if item.is_some() {
            if let Some(slots) = &self.slots {
                slots.add_permits(1);
            }
        }
        if drained {
            self.available.close();
        }
        item
    }

    /// Marks one item that was taken as processed.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] if every item is already marked.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        {
            let mut state = lock(&self.state);
            if state.unfinished == 0 {
                return Err(TaskDoneError);
            }
            state.unfinished -= 1;
            if state.unfinished > 0 {
                return Ok(());
            }
        }
        self.all_done.notify_waiters();
        Ok(())
    }

    /// Waits until every item put has been marked with `task_done` (or
    /// dropped by an immediate [`shutdown`](Self::shutdown)). Cancel-safe.
    pub async fn join(&self) {
        loop {
            let notified = self.all_done.notified();
            if lock(&self.state).unfinished == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Shuts the queue down, as Python 3.13's `Queue.shutdown(immediate)`:
    /// from now on every `put` fails with [`QueueShutDown`], and so does
    /// every `put` waiting for room, at once.
    ///
    /// With `immediate` false, the items already queued can still be taken;
    /// once the queue is empty, gets fail (waiting ones too), and `join`
    /// returns when the remaining items are marked done.
    ///
    /// With `immediate` true, the queued items are dropped here (after the
    /// queue's lock is released, so an item's `Drop` may use the queue),
    /// unfinished work is reduced by as many (waking `join` if that leaves
    /// none), and every get fails from now on, waiting ones too. Items
    /// taken before still count until they are marked done.
    ///
    /// Calling it again is allowed: an immediate shutdown after a gentle
    /// one drains what is left.
    ///
    /// ```
    /// use weft_sync::{Queue, QueueShutDown};
    ///
    /// futures::executor::block_on(async {
    ///     let q = Queue::new(0);
    ///     q.put("a").await.unwrap();
    ///     q.put("b").await.unwrap();
    ///     q.shutdown(true); // both items are dropped
    ///     assert_eq!(q.get().await, Err(QueueShutDown(())));
    ///     assert_eq!(q.put("c").await, Err(QueueShutDown("c")));
    ///     q.join().await; // nothing unfinished is left
    /// });
    /// ```
    pub fn shutdown(&self, immediate: bool) {
        let (drained, empty, none_unfinished) = {
            let mut state = lock(&self.state);
            state.shut_down = true;
            let drained = if immediate {
                std::mem::take(&mut state.items)
            } else {
                VecDeque::new()
            };
            state.unfinished = state.unfinished.saturating_sub(drained.len());
            (drained, state.items.is_empty(), state.unfinished == 0)
        };
        if let Some(slots) = &self.slots {
            slots.close();
        }
        if empty {
            self.available.close();
        }
        if immediate && none_unfinished {
            self.all_done.notify_waiters();
        }
        // Rule 4: the items go last, outside every lock.
        drop(drained);
    }

    /// True once [`shutdown`](Self::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        lock(&self.state).shut_down
    }

    /// Items queued now.
    pub fn qsize(&self) -> usize {
        lock(&self.state).items.len()
    }

    /// True if no item is queued.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// True if the queue holds `maxsize` items (never, when unbounded).
    pub fn full(&self) -> bool {
        self.maxsize > 0 && self.qsize() >= self.maxsize
    }

    /// The bound given to [`new`](Self::new) (0: none).
    pub fn maxsize(&self) -> usize {
        self.maxsize
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.maxsize)
            .field("shut_down", &self.is_shutdown())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Queue, QueueShutDown, TaskDoneError, TryGetError, TryPutError};
    use futures::FutureExt;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Context, Poll, Waker};

    #[test]
    fn getters_wait_in_order_and_putters_wait_for_room() {
        let q = Queue::new(1);
        let mut cx = Context::from_waker(Waker::noop());
        let mut g1 = pin!(q.get());
        let mut g2 = pin!(q.get());
        assert!(g1.as_mut().poll(&mut cx).is_pending());
        assert!(g2.as_mut().poll(&mut cx).is_pending());
        q.put_nowait('a').unwrap();
        assert!(g2.as_mut().poll(&mut cx).is_pending(), "FIFO among getters");
        assert_eq!(g1.as_mut().poll(&mut cx), Poll::Ready(Ok('a')));
        q.put_nowait('b').unwrap();
        let mut p = pin!(q.put('c'));
        assert!(p.as_mut().poll(&mut cx).is_pending(), "full");
        assert_eq!(g2.as_mut().poll(&mut cx), Poll::Ready(Ok('b')));
        assert_eq!(p.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        assert!(q.full());
        assert_eq!(q.put_nowait('d'), Err(TryPutError::Full('d')));
    }

    #[test]
    fn join_waits_for_task_done() {
        let q = Queue::new(0);
        assert!(q.join().now_or_never().is_some(), "nothing put: joined");
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut joined = pin!(q.join());
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        q.get_nowait().unwrap();
        q.task_done().unwrap();
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        q.get_nowait().unwrap();
        q.task_done().unwrap();
        assert!(joined.as_mut().poll(&mut cx).is_ready());
        assert_eq!(q.task_done(), Err(TaskDoneError));
        assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
    }

    /// Counts the drops of the values it hands out.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn a_gentle_shutdown_refuses_puts_and_lets_getters_drain_then_fail() {
        let q = Queue::new(2);
        let mut cx = Context::from_waker(Waker::noop());
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        let mut blocked_put = pin!(q.put(3));
        assert!(blocked_put.as_mut().poll(&mut cx).is_pending(), "full");
        q.shutdown(false);
        assert!(q.is_shutdown());
        assert_eq!(
            blocked_put.as_mut().poll(&mut cx),
            Poll::Ready(Err(QueueShutDown(3))),
            "a waiting putter fails"
        );
        assert_eq!(q.put(4).now_or_never(), Some(Err(QueueShutDown(4))));
        assert_eq!(q.put_nowait(5), Err(TryPutError::ShutDown(5)));
        assert_eq!(q.qsize(), 2, "nothing was dropped");
        assert_eq!(q.get().now_or_never(), Some(Ok(1)));
        assert_eq!(q.get_nowait(), Ok(2));
        assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
        assert_eq!(q.get().now_or_never(), Some(Err(QueueShutDown(()))));
        // The two items are still unfinished until marked done.
        assert!(q.join().now_or_never().is_none());
        q.task_done().unwrap();
        q.task_done().unwrap();
        assert!(q.join().now_or_never().is_some());
    }

    #[test]
    fn a_gentle_shutdown_of_an_empty_queue_wakes_waiting_getters() {
        let q = Queue::<u8>::new(0);
        let mut cx = Context::from_waker(Waker::noop());
        let mut g1 = pin!(q.get());
        let mut g2 = pin!(q.get());
        assert!(g1.as_mut().poll(&mut cx).is_pending());
        assert!(g2.as_mut().poll(&mut cx).is_pending());
        q.shutdown(false);
        assert_eq!(g1.as_mut().poll(&mut cx), Poll::Ready(Err(QueueShutDown(()))));
        assert_eq!(g2.as_mut().poll(&mut cx), Poll::Ready(Err(QueueShutDown(()))));
    }

    #[test]
    fn the_getter_that_takes_the_last_item_fails_the_ones_waiting_behind_it() {
        let q = Queue::new(0);
        let mut cx = Context::from_waker(Waker::noop());
        q.put_nowait('a').unwrap();
        q.shutdown(false);
        assert_eq!(q.get_nowait(), Ok('a'));
        let mut after = pin!(q.get());
        assert_eq!(after.as_mut().poll(&mut cx), Poll::Ready(Err(QueueShutDown(()))));
    }

    #[test]
    fn an_immediate_shutdown_drops_the_items_and_lowers_unfinished_work() {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Queue::new(0);
        for _ in 0..5 {
            q.put_nowait(Counted(drops.clone())).unwrap();
        }
        let taken = q.get_nowait().unwrap(); // one taken, not yet done
        let mut cx = Context::from_waker(Waker::noop());
        let mut joined = pin!(q.join());
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        q.shutdown(true);
        assert_eq!(drops.load(SeqCst), 4, "the four queued items were dropped");
        assert_eq!(q.qsize(), 0);
        assert_eq!(q.get_nowait().map(|_| ()), Err(TryGetError::ShutDown));
        assert!(
            joined.as_mut().poll(&mut cx).is_pending(),
            "the taken item is still unfinished"
        );
        drop(taken);
        q.task_done().unwrap();
        assert!(joined.as_mut().poll(&mut cx).is_ready());
        assert_eq!(q.task_done(), Err(TaskDoneError));
    }

    #[test]
    fn an_immediate_shutdown_wakes_join_when_nothing_is_left() {
        let q = Queue::new(3);
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut joined = pin!(q.join());
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        q.shutdown(true);
        assert!(joined.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn an_immediate_shutdown_fails_a_getter_that_holds_a_permit_but_no_item() {
        let q = Queue::new(0);
        let mut cx = Context::from_waker(Waker::noop());
        let mut getter = pin!(q.get());
        assert!(getter.as_mut().poll(&mut cx).is_pending());
        // The item's permit goes to the waiting getter at once; it has not
        // taken the item yet when the shutdown drains it.
        q.put_nowait('a').unwrap();
        q.shutdown(true);
        assert_eq!(getter.as_mut().poll(&mut cx), Poll::Ready(Err(QueueShutDown(()))));
    }

    #[test]
    fn an_immediate_shutdown_after_a_gentle_one_drains_what_is_left() {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Queue::new(0);
        q.put_nowait(Counted(drops.clone())).unwrap();
        q.put_nowait(Counted(drops.clone())).unwrap();
        q.shutdown(false);
        drop(q.get_nowait().unwrap());
        assert_eq!(drops.load(SeqCst), 1);
        q.shutdown(true);
        assert_eq!(drops.load(SeqCst), 2);
        assert!(q.get_nowait().is_err());
    }

    /// An item whose `Drop` uses the queue: the drain drops items outside
    /// the lock (rule 5), so this neither deadlocks nor panics.
    #[test]
    fn a_drained_item_may_use_the_queue_in_its_drop() {
        struct Peek(Arc<Queue<Peek>>, Arc<AtomicUsize>);
        impl Drop for Peek {
            fn drop(&mut self) {
                self.1.fetch_add(self.0.qsize() + 1, SeqCst);
            }
        }
        let seen = Arc::new(AtomicUsize::new(0));
        let q = Arc::new(Queue::new(0));
        q.put_nowait(Peek(q.clone(), seen.clone())).unwrap();
        q.shutdown(true);
        assert_eq!(seen.load(SeqCst), 1, "dropped once, and saw the queue empty");
    }

    /// An item whose `Drop` panics during the drain: the queue is still
    /// shut down and every waiter was woken before the panic.
    #[test]
    fn a_panicking_drop_in_the_drain_leaves_the_waiters_woken() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("weft-sync test: this item's drop panics");
            }
        }
        let q = Queue::new(1);
        q.put_nowait(Bomb).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut put = pin!(q.put(Bomb));
        assert!(put.as_mut().poll(&mut cx).is_pending());
        let shut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.shutdown(true)));
        assert!(shut.is_err(), "the item's panic reaches the caller");
        match put.as_mut().poll(&mut cx) {
            Poll::Ready(Err(QueueShutDown(bomb))) => std::mem::forget(bomb),
            _ => panic!("the waiting putter was not failed"),
        }
        assert!(q.get().now_or_never().unwrap().is_err());
        assert!(q.join().now_or_never().is_some());
    }
}
