//! Weft's own future, task and callback API, in asyncio's vocabulary:
//! [`Promise`], [`Task`], [`gather`], [`wait`], [`wait_for`],
//! [`as_completed`], [`race`], [`TaskGroup`], and the shutdown pair
//! [`CancellationToken`] / [`TaskTracker`].
//!
//! Everything here comes from [`weft_executor::future`] except the
//! functions that need a clock ([`wait`], [`wait_for`], [`as_completed`]
//! with a timeout), which the runtime adds with its timers.
//!
//! ```
//! use std::time::Duration;
//! use weft::future::{ReturnWhen, create_task, gather, wait, wait_for};
//!
//! let rt = weft::Runtime::new()?;
//! rt.block_on(async {
//!     let sum = create_task(async { (1..=100u64).sum::<u64>() });
//!     let product = create_task(async { (1..=10u64).product::<u64>() });
//!     assert_eq!(gather([sum, product]).await.unwrap(), vec![5050, 3_628_800]);
//!
//!     let slow = create_task(async {
//!         weft::time::sleep(Duration::from_secs(60)).await;
//!         1u8
//!     });
//!     let fast = create_task(async { 2u8 });
//!     let (done, pending) = wait([slow, fast], ReturnWhen::FirstCompleted, Duration::from_secs(5)).await;
//!     assert_eq!(done[0].0, 1);
//!     pending[0].1.cancel();
//!
//!     let never = weft::future::Promise::<u8>::new();
//!     assert!(wait_for(never.clone(), Duration::from_millis(10)).await.is_err());
//!     assert!(never.cancelled()); // asyncio's wait_for cancels on timeout
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use weft_io::time::{Elapsed, Sleep, sleep};

pub use weft_executor::future::*;

/// Waits for the futures until `return_when` holds or `timeout` passes
/// (`None`: no timeout), and returns `(done, pending)` with each future's
/// input index: asyncio's `asyncio.wait`. Pending futures are handed back,
/// not cancelled.
///
/// # Panics
///
/// Outside a Weft runtime (the timeout needs its timers).
#[track_caller]
pub fn wait<I, F, T, E>(futures: I, return_when: ReturnWhen, timeout: impl Into<Option<Duration>>) -> Wait<F, Sleep>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + Unpin,
{
    wait_until(futures, return_when, timeout.into().map(sleep))
}

/// Runs `future` for at most `timeout`: asyncio's `wait_for`. When the time
/// is up it *cancels* what it waited for ([`Cancel`]: a [`Promise`] becomes
/// cancelled, a [`Task`] is cancelled), waits for the cancellation to take
/// effect (a task's future has been dropped, its destructors have run) and
/// returns `Err(Elapsed)`; wrap it in [`shield`] to keep it running. If it
/// finished in the same instant, its outcome is returned rather than lost,
/// as asyncio does. That is its one difference from
/// [`weft::time::timeout`](crate::time::timeout), which only stops waiting,
/// as dropping any await does in Weft (see the table in
/// [`weft_executor::future`]). Dropping the `wait_for` itself cancels
/// nothing.
///
/// Pass a task by value, or lend it (`&mut task`) to look at it afterwards.
/// A plain future is not accepted: dropping it is its cancellation, which
/// `timeout` does; `wait_for(create_task(fut), d)` is asyncio's
/// `wait_for(coro, d)`.
///
/// ```
/// use std::time::Duration;
/// use weft::future::{Promise, create_task, shield, wait_for};
///
/// let rt = weft::Runtime::new()?;
/// rt.block_on(async {
///     let mut slow = create_task(weft::time::sleep(Duration::from_secs(60)));
///     assert!(wait_for(&mut slow, Duration::from_millis(5)).await.is_err());
///     assert!(slow.cancelled()); // cancelled, and already finished cancelling
///
///     let kept = Promise::<u8>::new();
///     assert!(wait_for(shield(kept.clone()), Duration::from_millis(5)).await.is_err());
///     assert!(!kept.cancelled());
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// Outside a Weft runtime.
#[track_caller]
pub fn wait_for<F>(
    future: F,
    timeout: Duration,
) -> impl Future<Output = Result<<F::IntoFuture as Future>::Output, Elapsed>>
where
    F: IntoFuture,
    F::IntoFuture: Cancel + Unpin,
{
    let sleep = sleep(timeout);
    let mut future = future.into_future();
    async move {
        let elapsed = match weft_io::time::timeout_at(sleep.deadline(), &mut future).await {
            Ok(output) => return Ok(output),
            Err(elapsed) => elapsed,
        };
        if future.cancel() {
            // Wait for the cancellation to land (a task's future dropped on
            // its worker); the work may have finished in the same instant.
            let output = (&mut future).await;
            if <F::IntoFuture as Cancel>::is_cancellation(&output) {
                Err(elapsed)
            } else {
                Ok(output)
            }
        } else {
            // Already done (then its outcome is ready), or shielded.
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(&mut future).poll(&mut cx) {
                Poll::Ready(output) => Ok(output),
                Poll::Pending => Err(elapsed),
            }
        }
    }
}

/// The futures' outputs in completion order, each with its input index,
/// giving up after `timeout` (asyncio's `as_completed(aws, timeout=...)`):
/// the stream then yields one `Err(Elapsed)` and ends, dropping what is
/// still pending (a task runs on and a promise stays pending, as asyncio
/// leaves them). Without a timeout, use
/// [`weft_executor::future::as_completed`], re-exported here as
/// [`as_completed`].
///
/// ```
/// use std::time::Duration;
/// use weft::future::{Promise, as_completed_timeout};
///
/// let rt = weft::Runtime::new()?;
/// rt.block_on(async {
///     let promises: Vec<Promise<u8>> = (0..2).map(|_| Promise::new()).collect();
///     promises[1].set_result(9).unwrap();
///     let mut stream = as_completed_timeout(promises.clone(), Duration::from_millis(20));
///     assert_eq!(stream.next().await.unwrap().unwrap().0, 1);
///     assert!(stream.next().await.unwrap().is_err()); // timed out
///     assert!(stream.next().await.is_none());
///     assert!(!promises[0].done()); // not cancelled: only no longer watched
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn as_completed_timeout<I, F>(futures: I, timeout: Duration) -> AsCompletedTimeout<F>
where
    I: IntoIterator<Item = F>,
    F: Future,
{
    AsCompletedTimeout {
        inner: Some(as_completed(futures)),
        deadline: Box::pin(weft_io::time::timeout(timeout, Never)),
    }
}

/// One item of [`as_completed_timeout`]: a finished future's input index
/// and output, or the timeout.
pub type Completed<F> = Result<(usize, <F as Future>::Output), Elapsed>;

/// The stream of [`as_completed_timeout`].
#[must_use = "streams do nothing unless polled"]
pub struct AsCompletedTimeout<F: Future> {
    inner: Option<AsCompleted<F>>,
    /// A timeout around a future that never finishes: it yields `Elapsed`.
    deadline: Pin<Box<weft_io::time::Timeout<Never>>>,
}

/// A future that never completes, with an uninhabited output.
struct Never;

enum Void {}

impl Future for Never {
    type Output = Void;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Void> {
        std::task::Poll::Pending
    }
}

impl<F: Future> futures_core::Stream for AsCompletedTimeout<F> {
    type Item = Completed<F>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_completed(cx)
    }
}

impl<F: Future> Unpin for AsCompletedTimeout<F> {}

impl<F: Future> std::fmt::Debug for AsCompletedTimeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompletedTimeout")
            .field("pending", &self.inner.as_ref().map_or(0, AsCompleted::len))
            .finish()
    }
}

impl<F: Future> AsCompletedTimeout<F> {
    /// The next output, `Err(Elapsed)` once when the timeout passes, then
    /// `None`.
    pub async fn next(&mut self) -> Option<Completed<F>> {
        std::future::poll_fn(|cx| self.poll_next_completed(cx)).await
    }

    fn poll_next_completed(&mut self, cx: &mut Context<'_>) -> Poll<Option<Completed<F>>> {
        use std::task::Poll;
        let Some(inner) = &mut self.inner else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(next) = inner.poll_next_completed(cx) {
            return Poll::Ready(next.map(Ok));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(Err(elapsed)) => {
                // Dropping the set stops watching what is still pending (a
                // task runs on, a promise stays pending).
                self.inner = None;
                Poll::Ready(Some(Err(elapsed)))
            }
            Poll::Ready(Ok(never)) => match never {},
            Poll::Pending => Poll::Pending,
        }
    }
}
