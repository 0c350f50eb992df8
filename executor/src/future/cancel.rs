//! [`Cancel`]: what can be cancelled by an explicit act, and is, by
//! `wait_for`'s timeout.

use super::error::PromiseError;
use super::promise::Promise;
use crate::task::{JoinError, JoinHandle};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future whose work can be cancelled by an explicit act: a [`Promise`],
/// a task handle ([`JoinHandle`], which is also asyncio's
/// [`Task`](super::Task)), a [`Shield`] (which cancels nothing), or a
/// `&mut` to one. Dropping one never cancels it (a dropped future is
/// routine in Rust: `timeout`, `race`, `select`); asyncio's `wait_for` does
/// cancel what it waited for when the time is up, and so does Weft's
/// (`weft::future::wait_for`, in the runtime crate), through this trait, as
/// does [`Race::cancel_losers`](super::Race::cancel_losers).
///
/// A plain future is not `Cancel`: dropping it is how it is cancelled, which
/// `weft::time::timeout` does; `wait_for(create_task(fut), d)` is what
/// asyncio's `wait_for(coro, d)` does (it wraps the coroutine in a task).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cancelled by an explicit act (it is not a Weft `Promise`, task handle or `Shield`)",
    label = "`wait_for` cancels what it waited for when the time is up",
    note = "a plain future is cancelled by dropping it: use `weft::time::timeout(d, fut)`, or `wait_for(create_task(fut), d)` as asyncio does for a coroutine"
)]
pub trait Cancel: Future {
    /// Requests cancellation; true if this call did (false if it was
    /// already done, or, for a shield, always). After `true`, awaiting it
    /// still gives an output: the cancellation, or the real outcome if the
    /// work finished in the same instant.
    fn cancel(&self) -> bool;

    /// True if `output` (what awaiting it gave) says it was cancelled, not
    /// that it finished; `wait_for` uses it to hand back an outcome that
    /// raced its timeout instead of losing it.
    fn is_cancellation(output: &Self::Output) -> bool;
}

impl<T: Clone> Cancel for Promise<T> {
    fn cancel(&self) -> bool {
        Promise::cancel(self)
    }

    fn is_cancellation(output: &Result<T, PromiseError>) -> bool {
        matches!(output, Err(PromiseError::Cancelled))
    }
}

impl<T> Cancel for JoinHandle<T> {
    fn cancel(&self) -> bool {
        JoinHandle::cancel(self)
    }

    fn is_cancellation(output: &Result<T, JoinError>) -> bool {
        output.as_ref().is_err_and(JoinError::is_cancelled)
    }
}

impl<F: Future + Unpin> Cancel for Shield<F> {
    fn cancel(&self) -> bool {
        false
    }

    fn is_cancellation(_: &F::Output) -> bool {
        false
    }
}

impl<C: Cancel + Unpin + ?Sized> Cancel for &mut C {
    fn cancel(&self) -> bool {
        (**self).cancel()
    }

    fn is_cancellation(output: &C::Output) -> bool {
        C::is_cancellation(output)
    }
}

/// Awaits `future`, but shields it from `wait_for`'s cancellation
/// (asyncio's `shield`): when the time is up, `wait_for` cancels what it
/// waited for, and for a shield that is nothing ([`Cancel::cancel`] on a
/// [`Shield`] cancels nothing), so a shielded task runs on and a shielded
/// promise stays pending. Shield a task by reference (`shield(&mut task)`)
/// to await it again later. (Dropping an await never cancels a task or a
/// promise, shielded or not; a shield matters only to `wait_for` and
/// [`Race::cancel_losers`](super::Race::cancel_losers).)
///
/// ```
/// use weft_executor::future::{Cancel, Promise, shield};
///
/// let shared = Promise::<u8>::new();
/// let shielded = shield(shared.clone());
/// assert!(!shielded.cancel()); // what wait_for does on timeout
/// assert!(!shared.done());
/// ```
pub fn shield<F: IntoFuture>(future: F) -> Shield<F::IntoFuture> {
    Shield {
        inner: future.into_future(),
    }
}

/// The future of [`shield`]: its inner future's output, with a [`Cancel`]
/// that cancels nothing.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Shield<F> {
    inner: F,
}

impl<F> Shield<F> {
    /// The shielded future back.
    pub fn into_inner(self) -> F {
        self.inner
    }
}

impl<F: Future + Unpin> Future for Shield<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}
