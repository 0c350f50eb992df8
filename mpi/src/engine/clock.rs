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
//!
//! On the loop's thread during a turn, the reactor has read the clock
//! already ([`weft_io::source::turn_now`]): a scope's first reading, and a
//! reading outside any scope (the reactor asking [`Source::has_pending`]),
//! take that one instead, so a spinning turn that finds nothing reads the
//! clock no more than the reactor does. After a [`refresh`] the scope reads
//! the clock itself.
//!
//! [`Source::has_pending`]: weft_io::source::Source::has_pending

use std::cell::Cell;
use std::time::Instant;

std::thread_local! {
    /// Open scopes on this thread, the reading they share (taken at the
    /// first [`now`] inside them), and whether they were refreshed (then
    /// the turn's reading is too old to take).
    static SCOPE: Cell<(u32, Option<Instant>, bool)> = const { Cell::new((0, None, false)) };
}

/// A reading for a scope's first [`now`] (or one outside any scope): the
/// loop's turn's, unless refreshed.
fn first_reading(refreshed: bool) -> Instant {
    if refreshed {
        return Instant::now();
    }
    weft_io::source::turn_now().unwrap_or_else(Instant::now)
}

/// While alive, [`now`] on this thread returns one reading.
pub(crate) struct Scope(());

/// Opens a scope (scopes nest; the outermost one's reading is shared).
#[must_use]
pub(crate) fn scope() -> Scope {
    let _ = SCOPE.try_with(|c| {
        let (depth, at, refreshed) = c.get();
        c.set((depth + 1, at, refreshed));
    });
    Scope(())
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = SCOPE.try_with(|c| {
            let (depth, at, refreshed) = c.get();
            let depth = depth.saturating_sub(1);
            c.set(if depth == 0 {
                (0, None, false)
            } else {
                (depth, at, refreshed)
            });
        });
    }
}

/// Now: the scope's reading if one is open on this thread (taking it if
/// it is the first), else the turn's or the clock's (module docs).
pub(crate) fn now() -> Instant {
    SCOPE
        .try_with(|c| match c.get() {
            (0, _, _) => first_reading(false),
            (_, Some(at), _) => at,
            (depth, None, refreshed) => {
                let at = first_reading(refreshed);
                c.set((depth, Some(at), refreshed));
                at
            }
        })
        .unwrap_or_else(|_| Instant::now())
}

/// Forgets the open scope's reading: the next [`now`] reads the clock.
pub(crate) fn refresh() {
    let _ = SCOPE.try_with(|c| {
        let (depth, _, _) = c.get();
        c.set((depth, None, depth > 0));
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

    /// Called by the reactor during a turn, with and without a scope, the
    /// reading is the turn's; after a refresh it is the clock's again.
    #[test]
    fn during_a_turn_the_first_reading_is_the_turns() {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;
        /// The turn's reading, then `now()` outside a scope, first in
        /// one, and after a refresh.
        type Readings = (Option<Instant>, Instant, Instant, Instant);
        #[derive(Default)]
        struct Probe(Mutex<Vec<Readings>>);
        impl weft_io::source::Source for Probe {
            fn poll(&self) -> usize {
                let turn = weft_io::source::turn_now();
                let outside = now();
                let _scope = scope();
                let first = now();
                std::thread::sleep(Duration::from_millis(2));
                refresh();
                let refreshed = now();
                self.0.lock().unwrap().push((turn, outside, first, refreshed));
                0
            }
            fn has_pending(&self) -> bool {
                true
            }
        }
        let mut driver = weft_io::driver::Driver::new().expect("a reactor");
        let probe = Arc::new(Probe::default());
        let handle = driver.handle().register_source(probe.clone());
        handle.notify();
        driver.turn(Some(Duration::ZERO));
        let seen = probe.0.lock().unwrap().clone();
        let &(turn, outside, first, refreshed) = seen.first().expect("polled in the turn");
        let turn = turn.expect("a turn's reading");
        assert_eq!(outside, turn, "outside a scope: the turn's reading");
        assert_eq!(first, turn, "a scope's first reading: the turn's");
        assert!(
            refreshed >= turn + Duration::from_millis(2),
            "after a refresh: the clock"
        );
        drop(handle);
    }
}
