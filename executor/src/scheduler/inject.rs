//! The injection queue: tasks scheduled from outside the workers (spawns and
//! wakes from other threads), and the overflow of full local queues.
//!
//! A `crossbeam_deque::Injector` (a lock-free segmented queue) plus a closed
//! flag. Closing happens once, at shutdown; anything pushed after that is
//! dropped rather than left in a queue nobody will drain. The push and the
//! close are ordered Dekker-style by two `SeqCst` fences: either the pusher
//! sees the flag and drains, or the closer's drain sees the task.

use crate::loom::{AtomicBool, Ordering::*, fence};
use crossbeam_deque::{Injector, Steal, Worker};

pub(crate) struct Inject<T> {
    queue: Injector<T>,
    closed: AtomicBool,
}

impl<T> Inject<T> {
    pub(crate) fn new() -> Inject<T> {
        Inject {
            queue: Injector::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Pushes a task. Also serves as the `SeqCst` barrier between the push
    /// and the caller's next look at the idle-worker state.
    pub(crate) fn push(&self, task: T) {
        self.queue.push(task);
        fence(SeqCst);
        if self.closed.load(Relaxed) {
            self.drain();
        }
    }

    /// Pops the oldest task.
    pub(crate) fn pop(&self) -> Option<T> {
        loop {
            match self.queue.steal() {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    /// Moves a batch (about half of what is queued, at most 32) to `dest`
    /// and pops one more for the caller to run.
    pub(crate) fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Option<T> {
        loop {
            match self.queue.steal_batch_and_pop(dest) {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    /// Closes the queue and drops what it holds. True for the call that
    /// closed it.
    pub(crate) fn close(&self) -> bool {
        if self.closed.swap(true, SeqCst) {
            return false;
        }
        fence(SeqCst);
        self.drain();
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    /// Drops every queued task.
    pub(crate) fn drain(&self) {
        while let Some(task) = self.pop() {
            drop(task);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}
