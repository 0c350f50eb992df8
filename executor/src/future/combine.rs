//! Combinators over many awaitables, in asyncio's vocabulary: [`gather`],
//! [`wait_until`] (asyncio's `wait`; the runtime adds the timeout),
//! [`as_completed`] and [`race`]. All of them poll their futures in place
//! through one [`FutureSet`], so a wake polls only the future it names.
//!
//! Futures they drop are dropped, Rust's way, and dropping never cancels
//! shared work: a plain future stops (it is owned, so dropping it is its
//! cancellation), a [`Promise`](super::Promise) stays pending for its other
//! holders, a task handle ([`Task`](super::Task), the `JoinHandle`)
//! detaches and the task runs on. Where the losers must stop, say so:
//! [`Race::cancel_losers`], or a [`TaskGroup`](super::TaskGroup).

use super::cancel::Cancel;
use super::promise::handback_waker;
use super::set::FutureSet;
use futures_core::Stream;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Awaits every future concurrently and returns their results in input
/// order, or the first error, at which point the others are dropped (a task
/// runs on, detached, as in asyncio's `gather`; a plain future stops).
/// asyncio's `gather`; with
/// [`return_exceptions`](Gather::return_exceptions), every outcome.
///
/// ```
/// use weft_executor::future::{create_task, gather};
///
/// let rt = weft_executor::Executor::new()?;
/// rt.block_on(async {
///     let tasks: Vec<_> = (1..=4u64).map(|i| create_task(async move { i * 10 })).collect();
///     assert_eq!(gather(tasks).await.unwrap(), vec![10, 20, 30, 40]);
///
///     let mixed = vec![
///         Box::pin(async { Ok(1) }) as std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, &str>> + Send>>,
///         Box::pin(async { Err("bad") }),
///     ];
///     assert_eq!(gather(mixed).return_exceptions().await, vec![Ok(1), Err("bad")]);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn gather<I, F, T, E>(futures: I) -> Gather<F, T, E>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>>,
{
    let set: FutureSet<F> = futures.into_iter().collect();
    let results = (0..set.len()).map(|_| None).collect();
    Gather {
        set,
        results,
        _error: PhantomData,
    }
}

/// The future of [`gather`].
#[must_use = "futures do nothing unless awaited"]
pub struct Gather<F: Future, T, E> {
    set: FutureSet<F>,
    results: Vec<Option<T>>,
    _error: PhantomData<fn() -> E>,
}

impl<F, T, E> Gather<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    /// Collects every outcome instead of failing fast (asyncio's
    /// `return_exceptions=True`).
    pub fn return_exceptions(self) -> GatherAll<F> {
        GatherAll {
            outcomes: (0..self.results.len()).map(|_| None).collect(),
            set: self.set,
        }
    }
}

impl<F, T, E> Unpin for Gather<F, T, E> where F: Future {}

impl<F, T, E> Future for Gather<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<Vec<T>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match std::task::ready!(self.set.poll_next(cx)) {
                Some((index, Ok(value))) => self.results[index] = Some(value),
                Some((_, Err(err))) => {
                    // Fail fast: the rest are dropped (tasks detach).
                    drop(self.set.drain());
                    return Poll::Ready(Err(err));
                }
                None => {
                    let results = std::mem::take(&mut self.results);
                    return Poll::Ready(Ok(results
                        .into_iter()
                        .map(|r| r.expect("weft bug: gather finished with a missing result"))
                        .collect()));
                }
            }
        }
    }
}

impl<F: Future, T, E> fmt::Debug for Gather<F, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather").field("pending", &self.set.len()).finish()
    }
}

/// The future of [`Gather::return_exceptions`]: every outcome, in input
/// order.
#[must_use = "futures do nothing unless awaited"]
pub struct GatherAll<F: Future> {
    set: FutureSet<F>,
    outcomes: Vec<Option<F::Output>>,
}

impl<F: Future> Unpin for GatherAll<F> {}

impl<F: Future> Future for GatherAll<F> {
    type Output = Vec<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        while let Some((index, outcome)) = std::task::ready!(self.set.poll_next(cx)) {
            self.outcomes[index] = Some(outcome);
        }
        let outcomes = std::mem::take(&mut self.outcomes);
        Poll::Ready(
            outcomes
                .into_iter()
                .map(|o| o.expect("weft bug: gather finished with a missing outcome"))
                .collect(),
        )
    }
}

impl<F: Future> fmt::Debug for GatherAll<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherAll").field("pending", &self.set.len()).finish()
    }
}

/// When [`wait_until`] returns (asyncio's `return_when`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future finishes (asyncio's `FIRST_COMPLETED`).
    FirstCompleted,
    /// As soon as any future fails, or when all have finished
    /// (`FIRST_EXCEPTION`).
    FirstException,
    /// When all have finished (`ALL_COMPLETED`).
    AllCompleted,
}

/// What [`wait_until`] returns: the finished futures' outcomes and the
/// futures still pending (not cancelled: they are yours to await, cancel or
/// drop), each with its index in the input. A pending [`Promise`] or
/// [`Task`] comes back registered nowhere: `wait_until` withdraws the
/// waker it had registered on it, so dropping it later is a plain drop of
/// an idle handle.
///
/// [`Promise`]: super::Promise
/// [`Task`]: super::Task
pub type WaitOutcome<F> = (Vec<(usize, <F as Future>::Output)>, Vec<(usize, F)>);

/// Waits for the futures until `return_when` holds or `deadline` (any
/// future, such as a timer; `None` for no deadline) finishes, and returns
/// `(done, pending)`: asyncio's `asyncio.wait`. The runtime's
/// `weft::future::wait` takes a timeout instead of a deadline future.
///
/// Futures must be `Unpin` so the pending ones can be handed back: pass
/// `Promise`s, `Task`s, `JoinHandle`s, or `Box::pin` the rest.
///
/// ```
/// use weft_executor::future::{Promise, ReturnWhen, wait_until};
///
/// let rt = weft_executor::Executor::new()?;
/// rt.block_on(async {
///     let promises: Vec<Promise<u8>> = (0..3).map(|_| Promise::new()).collect();
///     promises[1].set_result(7).unwrap();
///     let (done, pending) =
///         wait_until(promises.clone(), ReturnWhen::FirstCompleted, None::<std::future::Pending<()>>).await;
///     assert_eq!(done.len(), 1);
///     assert_eq!(done[0].0, 1);
///     assert_eq!(*done[0].1.as_ref().unwrap(), 7);
///     assert_eq!(pending.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 2]);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn wait_until<I, F, T, E, D>(futures: I, return_when: ReturnWhen, deadline: Option<D>) -> Wait<F, D>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + Unpin,
    D: Future<Output = ()>,
{
    let set: FutureSet<F> = futures.into_iter().collect();
    Wait {
        set,
        done: Vec::new(),
        return_when,
        deadline: deadline.map(Box::pin),
    }
}

/// The future of [`wait_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct Wait<F: Future, D> {
    set: FutureSet<F>,
    done: Vec<(usize, F::Output)>,
    return_when: ReturnWhen,
    deadline: Option<Pin<Box<D>>>,
}

impl<F: Future, D> Unpin for Wait<F, D> {}

impl<F, T, E, D> Future for Wait<F, D>
where
    F: Future<Output = Result<T, E>> + Unpin,
    D: Future<Output = ()>,
{
    type Output = WaitOutcome<F>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let finished = loop {
            match this.set.poll_next(cx) {
                Poll::Ready(Some((index, outcome))) => {
                    let failed = outcome.is_err();
                    this.done.push((index, outcome));
                    match this.return_when {
                        ReturnWhen::FirstCompleted => break true,
                        ReturnWhen::FirstException if failed => break true,
                        _ => {}
                    }
                }
                Poll::Ready(None) => break true,
                Poll::Pending => break false,
            }
        };
        if !finished {
            let expired = match &mut this.deadline {
                Some(deadline) => deadline.as_mut().poll(cx).is_ready(),
                None => false,
            };
            if !expired {
                return Poll::Pending;
            }
        }
        let mut done = std::mem::take(&mut this.done);
        // The hand-back: one more poll with the hand-back waker, which a
        // promise takes as "withdraw your registration" (rule 3 of
        // `promise.rs`) and any other future as an inert waker. One that
        // finishes right then is reported done.
        let mut handback = Context::from_waker(handback_waker());
        let mut pending = Vec::new();
        for (index, mut future) in this.set.drain() {
            match future.as_mut().poll(&mut handback) {
                Poll::Ready(outcome) => done.push((index, outcome)),
                Poll::Pending => pending.push((index, *Pin::into_inner(future))),
            }
        }
        pending.sort_by_key(|(i, _)| *i);
        Poll::Ready((done, pending))
    }
}

impl<F: Future, D> fmt::Debug for Wait<F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("return_when", &self.return_when)
            .field("pending", &self.set.len())
            .field("done", &self.done.len())
            .finish()
    }
}

/// A stream of the futures' outputs in the order they finish, each with its
/// index in the input: asyncio's `as_completed`. (Futures that finished
/// before the stream first looked come out in input order.) Await
/// [`next`](AsCompleted::next) or use it as a `Stream`. Dropping it drops
/// the futures not yet finished (a task runs on, a promise stays pending).
///
/// ```
/// use weft_executor::future::{Promise, as_completed};
///
/// let rt = weft_executor::Executor::new()?;
/// rt.block_on(async {
///     let promises: Vec<Promise<&str>> = (0..3).map(|_| Promise::new()).collect();
///     let mut stream = as_completed(promises.clone());
///     promises[2].set_result("c").unwrap();
///     assert_eq!(stream.next().await.map(|(i, r)| (i, r.unwrap())), Some((2, "c")));
///     promises[0].set_result("a").unwrap();
///     assert_eq!(stream.next().await.map(|(i, r)| (i, r.unwrap())), Some((0, "a")));
///     promises[1].set_result("b").unwrap();
///     assert_eq!(stream.next().await.map(|(i, _)| i), Some(1));
///     assert!(stream.next().await.is_none());
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn as_completed<I, F>(futures: I) -> AsCompleted<F>
where
    I: IntoIterator<Item = F>,
    F: Future,
{
    let set: FutureSet<F> = futures.into_iter().collect();
    AsCompleted { set }
}

/// The stream of [`as_completed`].
#[must_use = "streams do nothing unless polled"]
pub struct AsCompleted<F: Future> {
    set: FutureSet<F>,
}

impl<F: Future> AsCompleted<F> {
    /// The next output to finish, or `None` when all have.
    pub async fn next(&mut self) -> Option<(usize, F::Output)> {
        std::future::poll_fn(|cx| self.set.poll_next(cx)).await
    }

    /// Polls for the next output (the `Stream` method, without the trait).
    pub fn poll_next_completed(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, F::Output)>> {
        self.set.poll_next(cx)
    }

    /// Futures not finished yet.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when every future has finished and been yielded.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl<F: Future> Unpin for AsCompleted<F> {}

impl<F: Future> Stream for AsCompleted<F> {
    type Item = (usize, F::Output);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.set.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.set.len(), Some(self.set.len()))
    }
}

impl<F: Future> fmt::Debug for AsCompleted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted").field("pending", &self.set.len()).finish()
    }
}

/// Runs the futures concurrently and returns the first to finish, with its
/// index; the others are dropped: a plain future stops, a promise clone
/// stays pending for its other holders, a task handle detaches. To stop the
/// losing tasks too (asyncio's `FIRST_COMPLETED` followed by cancelling the
/// rest), call [`cancel_losers`](Race::cancel_losers). The function form of
/// `select!` for futures of one type (box them, or use
/// [`Either`] via [`race2`], when types differ).
///
/// # Panics
///
/// If `futures` is empty: a race with no runners never finishes, which is
/// always a bug at the call site.
///
/// ```
/// use weft_executor::future::{Promise, race};
///
/// let rt = weft_executor::Executor::new()?;
/// rt.block_on(async {
///     let slow = Promise::<u32>::new();
///     let fast = Promise::<u32>::new();
///     fast.set_result(1).unwrap();
///     let (index, result) = race(vec![slow.clone(), fast.clone()]).await;
///     assert_eq!((index, result.unwrap()), (1, 1));
///     assert!(!slow.done()); // the loser was only dropped: still pending
///
///     let (index, _) = race(vec![slow.clone(), fast]).cancel_losers().await;
///     assert_eq!(index, 1);
///     assert!(slow.cancelled()); // this time the loser was cancelled
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn race<I, F>(futures: I) -> Race<F>
where
    I: IntoIterator<Item = F>,
    F: Future,
{
    let set: FutureSet<F> = futures.into_iter().collect();
    assert!(
        !set.is_empty(),
        "weft::future::race() was given no futures; a race needs at least one"
    );
    Race { set, cancel: None }
}

/// The future of [`race`].
#[must_use = "futures do nothing unless awaited"]
pub struct Race<F: Future> {
    set: FutureSet<F>,
    /// Set by [`Race::cancel_losers`]: what is done to each loser before it
    /// is dropped.
    cancel: Option<fn(&F)>,
}

impl<F: Future + Cancel> Race<F> {
    /// Cancels the losers ([`Cancel`]: a promise becomes cancelled for all
    /// its holders, a task is cancelled) instead of only dropping them.
    pub fn cancel_losers(mut self) -> Race<F> {
        self.cancel = Some(|loser: &F| {
            loser.cancel();
        });
        self
    }
}

impl<F: Future> Unpin for Race<F> {}

impl<F: Future> Future for Race<F> {
    type Output = (usize, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match std::task::ready!(self.set.poll_next(cx)) {
            Some(winner) => {
                let cancel = self.cancel;
                for (_, loser) in self.set.drain() {
                    if let Some(cancel) = cancel {
                        cancel(&loser);
                    }
                }
                Poll::Ready(winner)
            }
            None => panic!("weft::future::Race polled after it finished"),
        }
    }
}

impl<F: Future> fmt::Debug for Race<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Race").field("pending", &self.set.len()).finish()
    }
}

/// One of two values: which branch of a [`race2`] won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first future finished first.
    Left(A),
    /// The second future finished first.
    Right(B),
}

/// Races two futures of different types; the loser is dropped (a plain
/// future stops, a promise stays pending, a task detaches). If both are
/// ready at once, the first wins.
///
/// ```
/// use weft_executor::future::{Either, Promise, race2};
///
/// let rt = weft_executor::Executor::new()?;
/// rt.block_on(async {
///     let text = Promise::<String>::new();
///     match race2(text.clone(), async { 5u8 }).await {
///         Either::Left(s) => panic!("unexpected {s:?}"),
///         Either::Right(n) => assert_eq!(n, 5),
///     }
///     assert!(!text.done()); // dropping an await cancels nothing
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn race2<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        if let Poll::Ready(out) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(out));
        }
        Poll::Pending
    })
    .await
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{ReturnWhen, wait_until};
    use crate::future::Promise;
    use futures::FutureExt;

    /// Rule 3 of `promise.rs`, through the hand-back waker (a static waker
    /// built from raw parts: Miri runs this): the pending promises come
    /// back registered nowhere, and one that settles during the hand-back
    /// is reported done.
    #[test]
    fn the_hand_back_withdraws_every_registration() {
        let promises: Vec<Promise<u8>> = (0..4).map(|_| Promise::new()).collect();
        promises[2].set_result(2).unwrap();
        let (done, pending) = wait_until(
            promises.clone(),
            ReturnWhen::FirstCompleted,
            None::<std::future::Pending<()>>,
        )
        .now_or_never()
        .expect("one is done");
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), [2]);
        assert_eq!(pending.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 3]);
        assert!(promises.iter().all(|p| p.listener_count() == 0));
        drop(pending);
        assert!(promises.iter().all(|p| !p.cancelled()), "a hand-back cancelled on drop");
    }
}
