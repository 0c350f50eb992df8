//! Cooperative scheduling: a budget per task poll.
//!
//! A future that is always ready (a socket with data queued, a channel with
//! messages) could keep its task running forever and starve every other task
//! on the worker. So each task poll gets a budget of [`INITIAL_BUDGET`] units;
//! every resource that may be ready (I/O types, `JoinHandle`, channels) spends
//! one unit per operation through [`poll_proceed`], and once the budget is
//! spent it returns `Pending` after waking the task, which sends the task to
//! the back of the run queue. Code outside a task poll (a plain `block_on`
//! without a runtime, a foreign thread) runs unconstrained.
//!
//! ```
//! use std::future::poll_fn;
//! use std::task::Poll;
//!
//! let rt = weft_executor::Executor::new()?;
//! rt.block_on(async {
//!     weft_executor::spawn(async {
//!         // A busy loop that stays fair: it gives way every 128 steps.
//!         for _ in 0..1000 {
//!             poll_fn(|cx| weft_executor::coop::poll_proceed(cx).map(|p| p.made_progress())).await;
//!         }
//!     })
//!     .await
//!     .unwrap();
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Units of work one task poll may do before its resources start returning
/// `Pending` (Tokio's figure, which its authors tuned on real services).
pub const INITIAL_BUDGET: u8 = 128;

std::thread_local! {
    static BUDGET: Cell<Budget> = const { Cell::new(Budget(None)) };
}

/// A task poll's remaining budget; `None` means unconstrained.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Budget(Option<u8>);

/// Runs `f` (a task poll) with a fresh budget.
#[inline]
pub(crate) fn budget<R>(f: impl FnOnce() -> R) -> R {
    with_budget(Budget(Some(INITIAL_BUDGET)), f)
}

#[inline]
fn with_budget<R>(budget: Budget, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Budget>);
    impl Drop for Reset {
        fn drop(&mut self) {
            if let Some(prev) = self.0 {
                let _ = BUDGET.try_with(|cell| cell.set(prev));
            }
        }
    }
    let _reset = Reset(BUDGET.try_with(|cell| cell.replace(budget)).ok());
    f()
}

/// Spends one unit of the current task's budget.
///
/// Returns `Ready` with a guard if the operation may proceed. Call
/// [`RestoreOnPending::made_progress`] once the operation did something;
/// if the guard is dropped without it (the operation turned out `Pending`),
/// the unit is given back. Returns `Pending`, after waking the task so it is
/// polled again later, when the budget is spent.
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<RestoreOnPending> {
    spend(cx).map(|before| RestoreOnPending(Cell::new(before)))
}

/// The one rule behind [`poll_proceed`] and [`poll_proceed_raw`]: spends a
/// unit and returns the budget from before (`None`: unconstrained, nothing
/// to give back), or, with none left, wakes the task and returns
/// `Pending`.
#[inline]
fn spend(cx: &mut Context<'_>) -> Poll<Option<Budget>> {
    BUDGET
        .try_with(|cell| {
            let before = cell.get();
            match before.0 {
                None => Poll::Ready(None),
                Some(0) => {
                    crate::task::wake_after_poll(cx.waker());
                    Poll::Pending
                }
                Some(n) => {
                    cell.set(Budget(Some(n - 1)));
                    Poll::Ready(Some(before))
                }
            }
        })
        // The thread is exiting: nothing left to be fair to.
        .unwrap_or(Poll::Ready(None))
}

/// [`poll_proceed`] for a crate that cannot name [`RestoreOnPending`] (the
/// reactor, which depends on no executor): `Ready(token)` to go ahead, where
/// `token` is what to pass to [`refund_raw`] if the operation turns out
/// `Pending`.
pub fn poll_proceed_raw(cx: &mut Context<'_>) -> Poll<u32> {
    spend(cx).map(|before| match before {
        Some(Budget(Some(n))) => u32::from(n),
        _ => u32::MAX,
    })
}

/// Gives back the unit that [`poll_proceed_raw`] spent.
pub fn refund_raw(token: u32) {
    if let Ok(n) = u8::try_from(token) {
        let _ = BUDGET.try_with(|cell| cell.set(Budget(Some(n))));
    }
}

/// True if the current task poll has budget left (or is unconstrained).
pub fn has_budget_remaining() -> bool {
    BUDGET.try_with(|cell| cell.get().0 != Some(0)).unwrap_or(true)
}

/// Gives back a unit of budget on drop, unless the operation made progress.
pub struct RestoreOnPending(Cell<Option<Budget>>);

impl RestoreOnPending {
    /// The operation did work: keep the unit spent.
    pub fn made_progress(&self) {
        self.0.set(None);
    }
}

impl Drop for RestoreOnPending {
    fn drop(&mut self) {
        if let Some(budget) = self.0.get() {
            let _ = BUDGET.try_with(|cell| cell.set(budget));
        }
    }
}

impl fmt::Debug for RestoreOnPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestoreOnPending").finish_non_exhaustive()
    }
}

/// Spends one unit of budget, yielding to the scheduler if it is spent.
///
/// For loops of pure computation inside a task that should stay fair to
/// other tasks without yielding on every iteration.
pub async fn consume_budget() {
    std::future::poll_fn(|cx| {
        let restore = ready!(poll_proceed(cx));
        restore.made_progress();
        Poll::Ready(())
    })
    .await
}

/// Runs a future with no budget: its resources never force it to yield.
///
/// For a future that must not be interrupted by fairness (for example one
/// that drains a queue it alone owns). It can starve the other tasks on its
/// worker; prefer the default.
pub fn unconstrained<F: Future>(future: F) -> Unconstrained<F> {
    Unconstrained { future }
}

/// A future that runs with no budget; see [`unconstrained`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Unconstrained<F> {
    future: F,
}

impl<F: Future> Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self`, and `Unconstrained` has no `Drop` impl and is not `Unpin`
        // unless `F` is.
        let future = unsafe { self.map_unchecked_mut(|this| &mut this.future) };
        with_budget(Budget(None), || future.poll(cx))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn budget_runs_out_and_pending_restores_a_unit() {
        let mut cx = Context::from_waker(Waker::noop());
        budget(|| {
            for _ in 0..INITIAL_BUDGET - 1 {
                poll_proceed(&mut cx)
                    .map(|r| r.made_progress())
                    .is_ready()
                    .then_some(())
                    .unwrap();
            }
            // The last unit, dropped without progress, is given back.
            assert!(poll_proceed(&mut cx).is_ready());
            assert!(has_budget_remaining());
            let last = poll_proceed(&mut cx);
            assert!(last.is_ready());
            if let Poll::Ready(r) = last {
                r.made_progress();
            }
            assert!(!has_budget_remaining());
            assert!(poll_proceed(&mut cx).is_pending());
        });
        // Outside a task poll: unconstrained again.
        assert!(has_budget_remaining());
    }
}
