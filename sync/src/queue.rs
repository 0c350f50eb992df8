//! [`Queue`]: Python's `asyncio.Queue`, a FIFO shared by many producers and
//! many consumers, with `task_done` and `join`.
//!
//! # Rules
//!
//! 1. **Two semaphores count the queue**: `items` holds one permit per item
//!    (getters wait on it, FIFO), `slots` one per free place when the queue
//!    has a `maxsize` (putters wait on it, FIFO). A getter takes an item
//!    permit, then pops; a putter takes a slot permit, then pushes and adds
//!    an item permit. Both waits are cancel-safe because the semaphore's
//!    are.
//! 2. **Unfinished work is counted separately**: every `put` adds one,
//!    every `task_done` removes one, and `join` waits (through a
//!    [`Notify`]) until the count is zero.

use crate::loom::{Mutex, lock};
use crate::notify::Notify;
use crate::observe::WaitSite;
use crate::semaphore::{Semaphore, TryAcquireError};
use std::collections::VecDeque;
use std::fmt;

/// A FIFO queue for tasks: asyncio's `Queue(maxsize)`.
///
/// ```
/// use weft_sync::Queue;
///
/// futures::executor::block_on(async {
///     let q = Queue::new(2);
///     q.put(1).await;
///     q.put_nowait(2).unwrap();
///     assert!(q.put_nowait(3).is_err()); // full
///     assert_eq!(q.get().await, 1);
///     q.task_done().unwrap();
///     assert_eq!(q.get_nowait().unwrap(), 2);
///     q.task_done().unwrap();
///     q.join().await; // every item was processed
/// });
/// ```
pub struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    /// One permit per queued item.
    available: Semaphore,
    /// One permit per free place; `None` when unbounded.
    slots: Option<Semaphore>,
    /// Items put and not yet marked done.
    unfinished: Mutex<usize>,
    all_done: Notify,
    maxsize: usize,
}

/// `put_nowait` on a full queue (asyncio's `QueueFull`); holds the item.
#[derive(PartialEq, Eq, Clone)]
pub struct QueueFull<T>(pub T);

impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is full")
    }
}

impl<T> std::error::Error for QueueFull<T> {}

/// `get_nowait` on an empty queue (asyncio's `QueueEmpty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEmpty;

impl fmt::Display for QueueEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is empty")
    }
}

impl std::error::Error for QueueEmpty {}

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
            items: Mutex::new(VecDeque::new()),
            available: Semaphore::new(0),
            slots: (maxsize > 0).then(|| Semaphore::new(maxsize)),
            unfinished: Mutex::new(0),
            all_done: Notify::new(),
            maxsize,
        }
    }

    /// Puts an item, waiting for room if the queue is full. Cancel-safe: a
    /// cancelled `put` puts nothing (the item is dropped with the future).
    pub async fn put(&self, item: T) {
        if let Some(slots) = &self.slots {
            slots
                .acquire_as(1, WaitSite::new("Queue::put", self))
                .await
                .expect("weft-sync bug: a queue's semaphore is never closed")
                .forget();
        }
        self.push(item);
    }

    /// Puts an item if there is room now.
    ///
    /// # Errors
    ///
    /// [`QueueFull`] with the item.
    pub fn put_nowait(&self, item: T) -> Result<(), QueueFull<T>> {
        if let Some(slots) = &self.slots {
            match slots.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => return Err(QueueFull(item)),
            }
        }
        self.push(item);
        Ok(())
    }

    fn push(&self, item: T) {
        *lock(&self.unfinished) += 1;
        lock(&self.items).push_back(item);
        self.available.add_permits(1);
    }

    /// Takes the oldest item, waiting for one. Cancel-safe: a cancelled
    /// `get` takes nothing.
    pub async fn get(&self) -> T {
        self.available
            .acquire_as(1, WaitSite::new("Queue::get", self))
            .await
            .expect("weft-sync bug: a queue's semaphore is never closed")
            .forget();
        self.pop()
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    ///
    /// [`QueueEmpty`].
    pub fn get_nowait(&self) -> Result<T, QueueEmpty> {
        match self.available.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(QueueEmpty),
        }
        Ok(self.pop())
    }

    fn pop(&self) -> T {
        let item = lock(&self.items)
            .pop_front()
            .expect("weft-sync bug: an item permit without an item");
        if let Some(slots) = &self.slots {
            slots.add_permits(1);
        }
        item
    }

    /// Marks one item that was taken as processed.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] if every item is already marked.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let mut unfinished = lock(&self.unfinished);
        if *unfinished == 0 {
            return Err(TaskDoneError);
        }
        *unfinished -= 1;
        if *unfinished == 0 {
            drop(unfinished);
            self.all_done.notify_waiters();
        }
        Ok(())
    }

    /// Waits until every item put has been marked with `task_done`.
    /// Cancel-safe.
    pub async fn join(&self) {
        loop {
            let notified = self.all_done.notified_as(WaitSite::new("Queue::join", self));
            if *lock(&self.unfinished) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Items queued now.
    pub fn qsize(&self) -> usize {
        lock(&self.items).len()
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
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Queue, TaskDoneError};
    use futures::FutureExt;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

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
        assert_eq!(g1.as_mut().poll(&mut cx), std::task::Poll::Ready('a'));
        q.put_nowait('b').unwrap();
        let mut p = pin!(q.put('c'));
        assert!(p.as_mut().poll(&mut cx).is_pending(), "full");
        assert_eq!(g2.as_mut().poll(&mut cx), std::task::Poll::Ready('b'));
        assert!(p.as_mut().poll(&mut cx).is_ready());
        assert!(q.full());
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
        assert!(q.get_nowait().is_err());
    }
}
