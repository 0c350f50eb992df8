//! The cooperative budget of whatever executor polls io's futures.
//!
//! Every I/O operation and timer spends one unit of the polling task's
//! budget, so a socket that is always ready cannot starve the other tasks on
//! its worker. The budget belongs to the executor, and this crate depends on
//! none: so the runtime installs the executor's budget functions here, once
//! per process, with [`install`]. Without them (io driven by a bare loop),
//! operations are unconstrained.

use std::sync::OnceLock;
use std::task::{Context, Poll};

/// The executor's budget, as two functions.
#[derive(Clone, Copy, Debug)]
pub struct Hooks {
    /// Spends one unit: `Ready(token)` to go ahead, or `Pending` (after
    /// arranging for the task to be polled again) when the budget is spent.
    pub proceed: fn(&mut Context<'_>) -> Poll<u32>,
    /// Gives back the unit `proceed` took (the operation turned out
    /// `Pending`); `token` is what `proceed` returned.
    pub refund: fn(u32),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the executor's budget. The first call wins: there is one
/// executor crate, and so one budget, per process.
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// Spends one unit of budget; see [`Hooks::proceed`].
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<Spent> {
    match HOOKS.get() {
        Some(hooks) => hooks.proceed(cx).map(|token| Spent {
            refund: Some((hooks.refund, token)),
        }),
        None => Poll::Ready(Spent { refund: None }),
    }
}

/// A unit of budget spent; given back on drop unless the operation made
/// progress.
pub(crate) struct Spent {
    refund: Option<(fn(u32), u32)>,
}

impl Spent {
    /// The operation did something: keep the unit spent.
    pub(crate) fn made_progress(mut self) {
        self.refund = None;
    }
}

impl Drop for Spent {
    fn drop(&mut self) {
        if let Some((refund, token)) = self.refund {
            refund(token);
        }
    }
}

impl Hooks {
    fn proceed(&self, cx: &mut Context<'_>) -> Poll<u32> {
        (self.proceed)(cx)
    }
}
