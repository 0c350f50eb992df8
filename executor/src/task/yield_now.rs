//! `yield_now`: give the worker to other tasks for a moment.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields to the scheduler once: the task goes to the back of its worker's
/// queue (never into the LIFO slot) and resumes when its turn comes again.
///
/// Like `await asyncio.sleep(0)`. For long computations, prefer
/// [`spawn_blocking`](crate::spawn_blocking) or the budget of
/// [`coop::consume_budget`](crate::coop::consume_budget).
///
/// ```
/// let rt = weft_executor::Executor::new()?;
/// rt.block_on(async {
///     for _ in 0..3 {
///         weft_executor::task::yield_now().await;
///     }
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // Woken during its own poll, the task is requeued at the back once
        // the poll returns (rule 2 of `task`, `Schedule::yield_now`); for the
        // task's own waker that needs no atomic operation at all.
        super::waker::wake_after_poll(cx.waker());
        Poll::Pending
    }
}
