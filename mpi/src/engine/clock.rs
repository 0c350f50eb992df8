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
//! clock again, and each operation a callback starts takes a reading of
//! its own (not one an earlier callback's operation took). An operation
//! that had to wait for the MPI lock (another thread held it, perhaps for
//! long) takes a fresh reading after the wait ([`renew`]).
//!
//! The reactor reads the clock once per turn ([`weft_io::source::turn_now`]);
//! when it calls into the engine (the loop's poll, opened with
//! [`loop_scope`], and [`Source::has_pending`], through [`loop_now`]), the
//! engine takes that reading instead of its own, so a spinning turn that
//! finds nothing reads the clock no more than the reactor does. After a
//! [`refresh`] the scope reads the clock itself. Nothing else takes the
//! turn's reading: code the turn runs on the loop's thread (a job handed
//! to the loop, another source's done callback, a waker) may have run for
//! long since it was taken, and an operation it starts ([`scope`]), or a
//! reading outside any scope, must see the time it is, or it would skip a
//! peer's ring or the loop's wake-up as "sent a moment ago".
//!
//! # One unit
//!
//! A reading is a `u64`: `CLOCK_MONOTONIC` in nanoseconds ([`read`]), the
//! clock `Instant` reads on Linux and one clock for every process of the
//! host (the doorbell's rings carry it, `doorbell.rs` rule 6). It is never
//! 0, so 0 can mean "never" in the fields that keep times. Reading it is
//! one `clock_gettime` and a multiply: no `Instant` arithmetic (two
//! `timespec`s subtracted and a 128-bit multiply, as long again as the
//! reading). The reactor's turn reading, an `Instant`, is converted once
//! per turn ([`nanos_at`]).
//!
//! [`Source::has_pending`]: weft_io::source::Source::has_pending

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The clock itself, ignoring any scope: `CLOCK_MONOTONIC` in nanoseconds,
/// at least 1 (module docs).
pub(crate) fn read() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid `timespec` to write; CLOCK_MONOTONIC exists
    // on every Unix MPI runs on, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    u64::try_from(now.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(now.tv_nsec).unwrap_or(0))
        .max(1)
}

/// An `Instant` and a [`read`] taken together, to convert other instants.
static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();

/// `instant` as a reading (module docs): through an `Instant` taken
/// between two readings ([`anchor`]), so off by at most half the moment
/// between them (a microsecond; the decisions readings feed are about
/// microseconds and more). An anchor skewed by a preemption between its
/// readings would put every converted turn reading in the future for the
/// life of the process (a loop backing off would then miss posters'
/// wake-ups for as long), hence the retries.
pub(crate) fn nanos_at(instant: Instant) -> u64 {
    // A turn's reading is asked for several times in the turn (the
    // loop's questions, then its poll): the last conversion is kept.
    if let Ok(Some((last, at))) = LAST.try_with(Cell::get)
        && last == instant
    {
        return at;
    }
    let &(anchor, at) = ANCHOR.get_or_init(anchor);
    let at = match instant.checked_duration_since(anchor) {
        Some(after) => at.saturating_add(nanos(after)),
        None => at.saturating_sub(nanos(anchor.duration_since(instant))),
    }
    .max(1);
    let _ = LAST.try_with(|c| c.set(Some((instant, at))));
    at
}

/// An `Instant` and the reading at the same moment: the `Instant` taken
/// between two readings, their midpoint kept, retried while a preemption
/// (or anything else) puts more than 2 µs between them (best of 16).
fn anchor() -> (Instant, u64) {
    let mut best: Option<(u64, Instant, u64)> = None;
    for _ in 0..16 {
        let before = read();
        let instant = Instant::now();
        let after = read();
        let gap = after.saturating_sub(before);
        if best.is_none_or(|(g, ..)| gap < g) {
            best = Some((gap, instant, before + gap / 2));
        }
        if gap <= 2_000 {
            break;
        }
    }
    let (_, instant, at) = best.expect("one try at least");
    (instant, at)
}

/// `d` in nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

std::thread_local! {
    /// The scopes open on this thread ([`State`]).
    static SCOPE: Cell<State> = const { Cell::new(State::CLOSED) };
    /// The last instant [`nanos_at`] converted on this thread, and what
    /// to.
    static LAST: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

/// The scopes open on a thread.
#[derive(Clone, Copy)]
struct State {
    /// How many are open.
    depth: u32,
    /// The reading they share, taken at the first [`now`] inside them (0:
    /// not taken yet).
    at: u64,
    /// That first reading may be the loop's turn's (the outermost scope is
    /// a [`loop_scope`], not refreshed since).
    turn: bool,
    /// Refreshed, and not inside an operation opened since: the code
    /// running is a done callback's (any user code), so each operation it
    /// starts takes its own reading ([`open`]).
    refreshed: bool,
}

impl State {
    const CLOSED: State = State {
        depth: 0,
        at: 0,
        turn: false,
        refreshed: false,
    };
}

/// The reactor's reading for its current turn if there is one, else the
/// clock: for the engine's answers to the reactor itself
/// ([`Source::has_pending`](weft_io::source::Source::has_pending)).
pub(crate) fn loop_now() -> Instant {
    weft_io::source::turn_now().unwrap_or_else(Instant::now)
}

/// While alive, [`now`] on this thread returns one reading. `true`: it
/// was opened by a done callback (after a [`refresh`]), and leaves the
/// callback's code without a reading when it closes.
pub(crate) struct Scope(bool);

/// Opens an operation's scope (scopes nest; the outermost one's reading
/// is shared); its first reading is the clock's.
#[must_use]
#[inline]
pub(crate) fn scope() -> Scope {
    open(false)
}

/// Opens the scope of the reactor's call into the engine (the loop's
/// poll): its first reading is the turn's, if it is the outermost scope
/// (module docs).
#[must_use]
pub(crate) fn loop_scope() -> Scope {
    open(true)
}

/// Opens a scope. One opened after a refresh, by code a delivery runs (a
/// done callback that starts an operation), shares no reading with what
/// came before it: a callback may run for long, and start one operation,
/// work for milliseconds, and start another (or the next callback may);
/// each takes its own reading, and the code after it reads the clock
/// again.
#[inline]
fn open(from_loop: bool) -> Scope {
    SCOPE
        .try_with(|c| {
            let s = c.get();
            if s.depth > 0 && s.refreshed {
                c.set(State {
                    depth: s.depth + 1,
                    ..State::CLOSED
                });
                return Scope(true);
            }
            c.set(State {
                depth: s.depth + 1,
                turn: if s.depth == 0 { from_loop } else { s.turn },
                ..s
            });
            Scope(false)
        })
        .unwrap_or_else(|_| Scope(false))
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        let _ = SCOPE.try_with(|c| {
            let s = c.get();
            let depth = s.depth.saturating_sub(1);
            c.set(if depth == 0 {
                State::CLOSED
            } else if self.0 {
                State {
                    depth,
                    refreshed: true,
                    ..State::CLOSED
                }
            } else {
                State { depth, ..s }
            });
        });
    }
}

/// Now: the scope's reading if one is open on this thread (taking it if
/// it is the first), else the clock's (module docs).
#[inline]
pub(crate) fn now() -> u64 {
    SCOPE
        .try_with(|c| {
            let s = c.get();
            if s.depth == 0 {
                return read();
            }
            if s.at != 0 {
                return s.at;
            }
            let at = if s.turn { nanos_at(loop_now()) } else { read() };
            c.set(State { at, ..s });
            at
        })
        .unwrap_or_else(|_| read())
}

/// Forgets the open scope's reading, still as the same operation's (no
/// [`refresh`]): the next [`now`] reads the clock, and the readings after
/// it share that one. For an operation that waited for the MPI lock
/// (another thread held it, perhaps for long, doing its own blocking MPI
/// calls): what it decides after the wait (must it wake the loop, ring a
/// peer) is decided with the time it is then.
pub(crate) fn renew() {
    let _ = SCOPE.try_with(|c| {
        let s = c.get();
        if s.depth > 0 {
            c.set(State {
                at: 0,
                turn: false,
                ..s
            });
        }
    });
}

/// Forgets the open scope's reading: the next [`now`] reads the clock,
/// and each operation started from here on (by a done callback) takes
/// its own reading.
pub(crate) fn refresh() {
    let _ = SCOPE.try_with(|c| {
        let depth = c.get().depth;
        c.set(State {
            depth,
            refreshed: depth > 0,
            ..State::CLOSED
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reading and a converted `Instant` are one clock: an instant
    /// converts to what `read` said at that moment (to within the moment
    /// between the anchor's two readings), differences are kept exactly,
    /// before the anchor too, and a repeated conversion (the memo) agrees.
    #[test]
    fn readings_and_converted_instants_are_one_clock() {
        use std::time::Duration;
        let before = read();
        let instant = Instant::now();
        let after = read();
        let at = nanos_at(instant);
        let slack = nanos(Duration::from_millis(1));
        assert!(
            at + slack >= before && at <= after + slack,
            "{before} <= {at} <= {after}"
        );
        let later = instant + Duration::from_millis(5);
        assert_eq!(nanos_at(later) - at, 5_000_000);
        assert_eq!(nanos_at(later) - at, 5_000_000, "the memo's answer");
        let earlier = instant.checked_sub(Duration::from_millis(3)).expect("3 ms after boot");
        assert_eq!(at - nanos_at(earlier), 3_000_000, "an instant before the anchor");
        assert!(read() >= after, "monotonic");
    }

    /// A renewed scope reads the clock again, once, and its later readings
    /// share the new one; it is still the operation's (a scope opened
    /// inside it shares the reading, unlike after a refresh).
    #[test]
    fn a_renewed_scope_reads_the_clock_again_once() {
        let _scope = scope();
        let first = now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        renew();
        let second = now();
        assert!(second > first, "renewed: the clock again");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(now(), second, "then shared");
        let _inner = super::scope();
        assert_eq!(now(), second, "a nested scope shares it (no refresh)");
        drop(_inner);
        renew();
        drop(_scope);
        let outside = now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now() > outside, "renewing leaves no scope open");
    }

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

    /// Called by the reactor during a turn, the loop's scope's first
    /// reading and a `loop_now` are the turn's; after a refresh it is the
    /// clock's again.
    #[test]
    fn during_a_turn_the_loops_first_reading_is_the_turns() {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;
        /// The turn's reading, then `loop_now()`, the loop scope's first
        /// reading, one in an operation's scope nested in it, and one
        /// after a refresh.
        type Readings = (Option<Instant>, Instant, u64, u64, u64);
        #[derive(Default)]
        struct Probe(Mutex<Vec<Readings>>);
        impl weft_io::source::Source for Probe {
            fn poll(&self) -> usize {
                let turn = weft_io::source::turn_now();
                let asked = loop_now();
                let _scope = loop_scope();
                let first = now();
                let nested = {
                    let _op = scope();
                    now()
                };
                std::thread::sleep(Duration::from_millis(2));
                refresh();
                let refreshed = now();
                self.0.lock().unwrap().push((turn, asked, first, nested, refreshed));
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
        let &(turn, asked, first, nested, refreshed) = seen.first().expect("polled in the turn");
        let turn = turn.expect("a turn's reading");
        assert_eq!(asked, turn, "loop_now: the turn's reading");
        let turn = nanos_at(turn);
        assert_eq!(first, turn, "the loop scope's first reading: the turn's");
        assert_eq!(nested, turn, "a nested scope shares the loop scope's reading");
        assert!(
            refreshed >= turn + nanos(Duration::from_millis(2)),
            "after a refresh: the clock"
        );
        drop(handle);
    }

    /// User code that the loop runs inside a turn (a job handed to it with
    /// `call_on_loop`, another source's done callback) may have run for
    /// long when it starts an MPI operation: the operation, and a reading
    /// outside any scope, take the clock's time, not the turn's older one
    /// (a ring or a wake-up decided on that would think the peer or the
    /// loop still spins).
    #[test]
    fn an_operation_started_by_user_code_inside_a_turn_reads_the_clock() {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;
        type Readings = (Instant, Instant, u64, u64);
        let seen: Arc<Mutex<Option<Readings>>> = Arc::default();
        let mut driver = weft_io::driver::Driver::new().expect("a reactor");
        let record = seen.clone();
        driver.handle().notifier().call_on_loop(move || {
            let turn = weft_io::source::turn_now().expect("a job runs inside a turn");
            std::thread::sleep(Duration::from_millis(2));
            let later = Instant::now();
            let outside = now();
            let _scope = scope();
            let first = now();
            *record.lock().unwrap() = Some((turn, later, outside, first));
        });
        driver.turn(Some(Duration::ZERO));
        let (turn, later, outside, first) = seen.lock().unwrap().expect("the job ran");
        assert!(later >= turn + Duration::from_millis(2));
        let later = nanos_at(later);
        assert!(outside >= later, "outside a scope: the clock, not the turn's reading");
        assert!(
            first >= later,
            "an operation's scope: the clock, not the turn's reading"
        );
    }

    /// After a refresh (a delivery about to run done callbacks), each
    /// operation a callback starts takes its own reading: one started
    /// after a long callback (or after a long stretch of one) does not
    /// share the reading of one started before it.
    #[test]
    fn operations_started_by_done_callbacks_each_read_the_clock() {
        use std::time::Duration;
        let _delivery = scope();
        let _ = now();
        refresh();
        let first = {
            let _op = scope();
            now()
        };
        std::thread::sleep(Duration::from_millis(2));
        let second = {
            let _op = scope();
            now()
        };
        assert!(
            second >= first + nanos(Duration::from_millis(2)),
            "an operation 2 ms later took the earlier one's reading"
        );
        let nested = {
            let _op = scope();
            let first_in_op = now();
            let _inner = scope();
            (first_in_op, now())
        };
        assert_eq!(nested.0, nested.1, "inside an operation, one reading");
        assert!(now() >= nested.0, "the delivery reads the clock after the callbacks");
    }
}
