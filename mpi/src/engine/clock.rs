//! One clock reading per operation.
//!
//! Posting an operation asks the time several times: the doorbell (was
//! the peer rung lately?), the slot (when was it posted, for the spin
//! window's recent wait), the activity (must the poster wake the loop?),
//! the delivery of what completed. Each reading is a `clock_gettime`, about
//! 30–45 ns on a virtual machine, as long as an 8-byte `MPI_Isend` itself:
//! a ping-pong read the clock about ten times per message and rank. So
//! the entry points of an operation (posting a send, a receive or a
//! collective, polling a request, a loop turn) open a [`Scope`], and every
//! [`now`] inside it returns the first reading taken in it. The decisions
//! these readings feed are about spin windows of hundreds of microseconds;
//! a reading a few microseconds old changes none of them. Delivering
//! completions can run a user's done callback, of any length, so the
//! delivery forgets the reading ([`refresh`]): the next [`now`] reads the
//! clock again.

use std::cell::Cell;
use std::time::Instant;

std::thread_local! {
    /// Open scopes on this thread, and the reading they share (taken at
    /// the first [`now`] inside them).
    static SCOPE: Cell<(u32, Option<Instant>)> = const { Cell::new((0, None)) };
}

/// While alive, [`now`] on this thread returns one reading.
pub(crate) struct Scope(());

/// Opens a scope (scopes nest; the outermost one's reading is shared).
#[must_use]
pub(crate) fn scope() -> Scope {
    let _ = SCOPE.try_with(|c| {
        let (depth, at) = c.get();
        c.set((depth + 1, at));
    });
    Scope(())
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = SCOPE.try_with(|c| {
            let (depth, at) = c.get();
            let depth = depth.saturating_sub(1);
            c.set((depth, if depth == 0 { None } else { at }));
        });
    }
}

/// Now: the scope's reading if one is open on this thread (taking it if
/// it is the first), else the clock.
pub(crate) fn now() -> Instant {
    SCOPE
        .try_with(|c| match c.get() {
            (0, _) => Instant::now(),
            (_, Some(at)) => at,
            (depth, None) => {
                let at = Instant::now();
                c.set((depth, Some(at)));
                at
            }
        })
        .unwrap_or_else(|_| Instant::now())
}

/// Forgets the open scope's reading: the next [`now`] reads the clock.
pub(crate) fn refresh() {
    let _ = SCOPE.try_with(|c| {
        let (depth, _) = c.get();
        c.set((depth, None));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inside a scope (and scopes nested in it) every reading is the first
    /// one until a refresh; outside, each reading is the clock's.
    #[test]
    fn a_scope_shares_its_first_reading_until_refreshed() {
        let outside = now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now() > outside, "no scope: the clock");
        let scope = scope();
        let first = now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(now(), first);
        {
            let _inner = super::scope();
            assert_eq!(now(), first, "a nested scope shares the outer reading");
        }
        assert_eq!(now(), first, "closing the inner scope keeps the outer's");
        refresh();
        let second = now();
        assert!(second > first);
        assert_eq!(now(), second);
        drop(scope);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now() > second, "closed: the clock again");
    }
}
