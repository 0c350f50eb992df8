//! The reactor's counters, and the snapshot [`ReactorMetrics`] anyone may
//! read while it runs.
//!
//! One thread at a time turns the loop (it holds the [`Driver`](super::Driver)
//! by `&mut`), so the counters have one writer at a time: counting is a
//! load and a store, never a contended atomic operation. Each field's doc
//! names the code that counts it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Buckets of the events-per-turn histogram: 0, 1, 2-3, 4-7, ..., 512 or
/// more.
pub const EVENTS_PER_TURN_BUCKETS: usize = 11;

/// A snapshot of one reactor's counters and state.
///
/// ```
/// let mut driver = weft_io::Driver::new()?;
/// driver.turn(Some(std::time::Duration::ZERO));
/// let m = driver.handle().metrics();
/// assert_eq!(m.turns, 1);
/// assert_eq!(m.events_per_turn[0], 1, "a turn that delivered no event");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReactorMetrics {
    /// Turns of the loop (`Driver::turn`, counted at its end).
    pub turns: u64,
    /// Readiness events delivered to registrations (`Driver::turn`, step 3;
    /// the reactor's own wakeups and timer are not counted).
    pub events: u64,
    /// Turns by the events they delivered, in buckets: `[0]` no event,
    /// `[1]` one, `[2]` two or three, `[i]` from `2^(i-1)` to `2^i - 1`,
    /// the last 512 or more.
    pub events_per_turn: Vec<u64>,
    /// Timers waiting in the wheel now.
    pub timers_pending: usize,
    /// Timers fired (`Driver::turn`, step 4: wakers the wheel handed out).
    pub timers_fired: u64,
    /// Timers fired off the loop, by another thread (a multi-thread
    /// runtime's worker) while the loop's thread had not fired them by
    /// their deadline
    /// ([`Handle::fire_overdue_timers`](crate::Handle::fire_overdue_timers));
    /// not counted in `timers_fired`.
    pub timers_fired_off_loop: u64,
    /// Sockets and other descriptors registered now.
    pub registrations: usize,
    /// Results other threads handed to the loop and the loop delivered
    /// (`Notifier::deliver`, step 5).
    pub completions: u64,
    /// Each registered source (MPI, GPU), in registration order.
    pub sources: Vec<SourceMetrics>,
}

/// One source's state and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceMetrics {
    /// Its name ([`Source::name`](crate::source::Source::name)).
    pub name: &'static str,
    /// Operations in flight now ([`Source::pending`](crate::source::Source::pending)).
    pub pending: usize,
    /// Times the loop polled it (step 6 of `Driver::turn`).
    pub polls: u64,
    /// Operations its polls completed (what `Source::poll` returned,
    /// summed).
    pub completed: u64,
}

/// The counters the turning thread writes.
#[derive(Default)]
pub(crate) struct DriverCounters {
    turns: Counter,
    events: Counter,
    events_per_turn: [Counter; EVENTS_PER_TURN_BUCKETS],
    timers_fired: Counter,
    completions: Counter,
}

impl DriverCounters {
    /// One turn that delivered `events` events, fired `timers` timers and
    /// delivered `completions` completions.
    pub(crate) fn turn(&self, events: usize, timers: usize, completions: usize) {
        self.turns.add(1);
        self.events.add(events as u64);
        self.events_per_turn[events_bucket(events)].add(1);
        self.timers_fired.add(timers as u64);
        self.completions.add(completions as u64);
    }

    pub(crate) fn fill(&self, m: &mut ReactorMetrics) {
        m.turns = self.turns.get();
        m.events = self.events.get();
        m.events_per_turn = self.events_per_turn.iter().map(Counter::get).collect();
        m.timers_fired = self.timers_fired.get();
        m.completions = self.completions.get();
    }
}

/// The bucket of a turn that delivered `events` events.
fn events_bucket(events: usize) -> usize {
    let bits = (usize::BITS - events.leading_zeros()) as usize;
    bits.min(EVENTS_PER_TURN_BUCKETS - 1)
}

/// A counter with one writer at a time.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`: a load and a store, so only the current writer may call it.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_per_turn_buckets_are_powers_of_two() {
        assert_eq!(events_bucket(0), 0);
        assert_eq!(events_bucket(1), 1);
        assert_eq!(events_bucket(2), 2);
        assert_eq!(events_bucket(3), 2);
        assert_eq!(events_bucket(4), 3);
        assert_eq!(events_bucket(511), 9);
        assert_eq!(events_bucket(512), 10);
        assert_eq!(events_bucket(1 << 20), 10);
    }
}
