//! What the reactor tells whoever watches the runtime: what a task waits on
//! (for task dumps), and, while a timeline records, what each turn of the
//! loop did and when sources' operations start and end.
//!
//! This crate knows no tasks and no runtime, so, as for the cooperative
//! budget ([`crate::coop`]), the runtime installs the functions that record
//! these, once per process, with [`install`]. Without them (io driven by a
//! bare loop) nothing is recorded and each report costs a check of one
//! `OnceLock`.
//!
//! Who reports what:
//!
//! | report | where |
//! | --- | --- |
//! | [`Wait::Io`] | `Registration::poll_op` (`driver/registration.rs`), when a socket operation stores its waker |
//! | [`Wait::Timer`] | `Sleep`'s poll (`time/sleep.rs`), when it registers or refreshes its timer |
//! | [`Wait::Signal`] | a signal listener's `recv` (`signal/`) |
//! | [`Wait::Completion`] | `Completion`'s poll (`source/notifier.rs`) |
//! | [`Wait::Source`] | a source's own futures: weft-gpu's operations, weft-mpi's requests ([`waiting`] is public for them) |
//! | [`Event::Turn`], [`Event::TimersFired`] | `Driver::turn` (`driver/mod.rs`) |
//! | [`Event::OpSubmitted`], [`Event::OpCompleted`] | sources ([`op_submitted`], [`op_completed`]) |

use crate::driver::Direction;
use std::sync::OnceLock;
use std::time::Instant;

/// What a task is about to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wait {
    /// A descriptor's readiness.
    Io {
        /// The descriptor (a socket handle on Windows).
        fd: i64,
        /// Which readiness.
        direction: Direction,
    },
    /// A timer.
    Timer {
        /// When it fires.
        deadline: Instant,
    },
    /// A source's operation (a GPU operation, an MPI request).
    Source {
        /// The source (`"gpu"`, `"mpi"`).
        source: &'static str,
        /// Which operation, in the source's terms (a stream, a peer rank).
        id: u64,
    },
    /// A signal.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// A result another thread hands to the loop.
    Completion,
}

/// What the loop did, for a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A turn of the loop, from the moment the OS poller returned (or the
    /// turn began, if it did not wait) to its end.
    Turn {
        /// When the waiting ended.
        start: Instant,
        /// When the turn ended.
        end: Instant,
        /// Readiness events delivered.
        events: u32,
        /// Timers fired.
        timers: u32,
        /// Completions delivered.
        completions: u32,
        /// Sources polled.
        sources: u32,
    },
    /// `count` timers fired in this turn.
    TimersFired {
        /// How many.
        count: u32,
    },
    /// A source accepted an operation.
    OpSubmitted {
        /// The source (`"gpu"`, `"mpi"`).
        source: &'static str,
        /// What kind of track the operation belongs to (`"stream"`,
        /// `"peer"`).
        track_label: &'static str,
        /// Which one.
        track: u64,
        /// The operation (`"kernel"`, `"isend"`).
        name: &'static str,
        /// Its id, unique within the source.
        id: u64,
    },
    /// A source's operation completed.
    OpCompleted {
        /// The source.
        source: &'static str,
        /// The id it was submitted with.
        id: u64,
        /// Without an error.
        ok: bool,
    },
}

/// The functions the runtime installs.
#[derive(Clone, Copy, Debug)]
pub struct Hooks {
    /// Records that the task being polled on this thread waits on a
    /// resource.
    pub waiting: fn(Wait),
    /// True while some timeline records (checked once per turn and per
    /// source operation before building an [`Event`]).
    pub recording: fn() -> bool,
    /// Records an event on the calling thread's timeline.
    pub event: fn(Event),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the runtime's functions. The first call wins: there is one
/// runtime crate per process.
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// Reports that the task being polled waits on `wait`: call where a waker
/// is stored and `Pending` is about to be returned.
#[inline]
pub fn waiting(wait: Wait) {
    if let Some(hooks) = HOOKS.get() {
        (hooks.waiting)(wait);
    }
}

/// True while some timeline records.
#[inline]
pub fn recording() -> bool {
    HOOKS.get().is_some_and(|hooks| (hooks.recording)())
}

/// Records `event` (while a timeline records).
pub(crate) fn event(event: Event) {
    if let Some(hooks) = HOOKS.get() {
        (hooks.event)(event);
    }
}

/// Records, while a timeline records, that `source` accepted operation `id`
/// named `name` on its track `track_label` `track`.
#[inline]
pub fn op_submitted(source: &'static str, track_label: &'static str, track: u64, name: &'static str, id: u64) {
    if recording() {
        event(Event::OpSubmitted {
            source,
            track_label,
            track,
            name,
            id,
        });
    }
}

/// Records, while a timeline records, that operation `id` of `source`
/// completed.
#[inline]
pub fn op_completed(source: &'static str, id: u64, ok: bool) {
    if recording() {
        event(Event::OpCompleted { source, id, ok });
    }
}
