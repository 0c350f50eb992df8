//! The cooperative budget of whatever executor polls this crate's futures.
//!
//! A receiver whose channel always has a message is always ready: a task
//! that loops on it would run forever and starve the other tasks of its
//! worker, and a `timeout` around the loop could never fire. So, as in
//! Tokio, the ready receives of an `mpsc` or `broadcast` receiver spend the
//! polling task's budget; once it is spent they return `Pending` after
//! arranging for the task to be polled again. The budget belongs to the
//! executor, and this crate depends on none: the runtime installs the
//! executor's budget functions here, once per process, with [`install`].
//! Without them (a bare executor, a foreign `block_on`) receives are
//! unconstrained.
//!
//! A receiver spends one unit per [`SPEND_EVERY`] ready receives, counted
//! in the receiver itself: a spend is a call through a function pointer
//! into the executor, which costs about as much as an uncontended receive
//! (suite `sync`, `mpsc_uncontended_unbounded`: 9.3 ns without the budget,
//! 18 ns with a spend per receive, 15.6 ns with one per eight; Tokio's
//! receive, budget included, 23 ns). A loop on an always-ready receiver therefore gives
//! way after about a thousand receives (Tokio: 128), microseconds of work,
//! which is what fairness and a `timeout` around the loop need.
//!
//! Locks, semaphores and `oneshot` receives spend nothing (Tokio's do): a
//! new future per operation has nowhere to count, a spend each would double
//! the cost of an uncontended lock (13.6 ns to 26 ns), and a task that takes
//! a free lock in a loop without awaiting anything else is the rarer case.

use std::sync::OnceLock;
use std::task::{Context, Poll};

/// Ready receives of one receiver per unit of budget spent.
pub const SPEND_EVERY: u8 = 8;

/// The executor's budget, as two functions.
#[derive(Clone, Copy, Debug)]
pub struct Hooks {
    /// Spends one unit: `Ready(token)` to go ahead, or `Pending` (after
    /// arranging for the task to be polled again) when the budget is spent.
    pub proceed: fn(&mut Context<'_>) -> Poll<u32>,
    /// Gives back the unit `proceed` took (the receive turned out
    /// `Pending`); `token` is what `proceed` returned.
    pub refund: fn(u32),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the executor's budget. The first call wins: one executor, and
/// so one budget, per process.
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// A receiver's count of ready receives until its next spend.
#[derive(Debug, Default)]
pub(crate) struct Countdown(u8);

impl Countdown {
    /// Before a receive: every [`SPEND_EVERY`]th call spends one unit of
    /// budget, given back when the returned [`Unit`] drops unless the
    /// receive completed ([`Unit::used`]).
    #[inline]
    pub(crate) fn proceed(&mut self, cx: &mut Context<'_>) -> Poll<Unit> {
        if self.0 > 0 {
            self.0 -= 1;
            return Poll::Ready(Unit(None));
        }
        let Some(hooks) = HOOKS.get() else {
            return Poll::Ready(Unit(None));
        };
        let spent = (hooks.proceed)(cx).map(|token| Unit(Some((hooks.refund, token))));
        if spent.is_ready() {
            self.0 = SPEND_EVERY - 1;
        }
        spent
    }
}

/// A unit of budget taken for one receive.
pub(crate) struct Unit(Option<(fn(u32), u32)>);

impl Unit {
    /// The receive completed: the unit stays spent.
    #[inline]
    pub(crate) fn used(mut self) {
        self.0 = None;
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if let Some((refund, token)) = self.0.take() {
            refund(token);
        }
    }
}
