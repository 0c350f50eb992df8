//! A blocking job as a task: a future that runs a closure on its first poll.

use crate::task::{Notified, Schedule, Task};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs the closure on its first poll.
pub(super) struct BlockingTask<F> {
    func: Option<F>,
}

impl<F> BlockingTask<F> {
    pub(super) fn new(func: F) -> BlockingTask<F> {
        BlockingTask { func: Some(func) }
    }
}

// The closure is never pinned: it is moved out before it is called.
impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let func = self
            .func
            .take()
            .expect("weft bug: a blocking task was polled after it completed");
        Poll::Ready(func())
    }
}

/// The scheduler of a blocking task: the pool runs it exactly once, so it is
/// in no owned list and is never woken.
pub(super) struct BlockingSchedule;

impl Schedule for BlockingSchedule {
    fn release(&self, _task: &Task<Self>) -> Option<Task<Self>> {
        None
    }

    fn id(&self) -> *const () {
        std::ptr::null()
    }

    fn schedule_local(_id: *const (), task: Notified<Self>, _is_yield: bool) -> Result<(), Notified<Self>> {
        Err(task)
    }

    // The closure runs in one poll, which nothing can interrupt.
    const INTERRUPTIBLE: bool = false;

    fn schedule_remote(&self, _task: Notified<Self>) {
        unreachable!("weft bug: a blocking task was woken, but its future never returns Pending");
    }
}
