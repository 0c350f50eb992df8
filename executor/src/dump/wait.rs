//! What a task waits on: [`WaitOn`], how code reports it
//! ([`note_wait`]), and how it is packed into the task's header.
//!
//! The executor knows no sockets, timers or locks, so the code that parks a
//! task on one reports it: io and sync call a hook that the runtime
//! installs when they register a waiter (a socket's readiness, a timer, a
//! source's operation, a lock or channel), and the hook calls
//! [`note_wait`], which records the wait against the task being polled on
//! this thread. Any library can do the same for its own waits.
//!
//! The record is two words of the task's header (`task/record.rs`): a
//! 16-bit tag (the kind, and a detail such as the direction or the index
//! of an interned name) and a 64-bit object (the descriptor, the deadline,
//! the address, the task id). Names (`&'static str`) are interned once into a
//! small lock-free table, so a task records one without allocating or
//! taking a lock.

use crate::observe::clock;
use crate::task::Id;
use crate::task::record::FreeWait;
use std::fmt;
use std::sync::OnceLock;
use std::time::Instant;

/// What a task waits on, as far as Weft knows.
///
/// ```
/// use weft_executor::dump::{IoDirection, WaitOn};
///
/// let rt = weft_executor::Builder::new_multi_thread().worker_threads(1).build()?;
/// let task = rt.spawn(async {
///     // A library reports its own wait before returning Pending:
///     weft_executor::dump::note_wait(WaitOn::Io { fd: 7, direction: IoDirection::Read });
///     std::future::pending::<()>().await
/// });
/// # std::thread::sleep(std::time::Duration::from_millis(50));
/// let dump = rt.handle().dump();
/// let row = dump.tasks.iter().find(|t| t.id == task.id()).unwrap();
/// assert_eq!(row.wait, Some(WaitOn::Io { fd: 7, direction: IoDirection::Read }));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum WaitOn {
    /// A file descriptor (a socket) becoming ready.
    Io {
        /// The descriptor (on Windows, the socket handle).
        fd: i64,
        /// Which readiness.
        direction: IoDirection,
    },
    /// A timer (a `sleep`, an interval, a timeout).
    Timer {
        /// When it fires, in microseconds on the dump's clock
        /// ([`Dump::taken_at_us`](super::Dump::taken_at_us) is "now" on the
        /// same clock); build it with [`WaitOn::timer`].
        deadline_us: u64,
    },
    /// An operation of a reactor source: an MPI request, a GPU operation.
    Source {
        /// The source's name (`"mpi"`, `"gpu"`).
        source: &'static str,
        /// Which operation, in the source's own terms (a GPU stream, an MPI
        /// peer rank); [`WaitOn::ANY`] when it names none (an MPI
        /// collective, a receive from any source).
        id: u64,
    },
    /// A Weft lock, channel or other synchronization primitive.
    Sync {
        /// Which primitive and which side (`"Mutex::lock"`,
        /// `"mpsc::Receiver::recv"`).
        primitive: &'static str,
        /// The primitive's address: two tasks waiting on the same lock show
        /// the same one.
        #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_address"))]
        address: usize,
    },
    /// A promise being settled.
    Promise {
        /// The promise's address (serialized, like a primitive's, as a
        /// hexadecimal string: `"0x55d0c3a2b4c0"`, as `Display` prints it).
        #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_address"))]
        address: usize,
    },
    /// Another task finishing (its `JoinHandle` is awaited).
    Join {
        /// The awaited task.
        #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_id"))]
        task: Id,
    },
    /// A signal being delivered.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// A result another thread hands to the loop (the reactor's completion
    /// notifier).
    Completion,
}

/// Which readiness an I/O wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum IoDirection {
    /// Readable (or a connection to accept).
    Read,
    /// Writable.
    Write,
}

#[cfg(feature = "serde")]
pub(crate) fn serialize_id<S: serde::Serializer>(id: &Id, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(id.as_u64())
}

#[cfg(feature = "serde")]
fn serialize_address<S: serde::Serializer>(address: &usize, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{address:#x}"))
}

impl WaitOn {
    /// The [`WaitOn::Source`] id of an operation with no single peer or
    /// stream.
    pub const ANY: u64 = u64::MAX;

    /// A timer that fires at `deadline`.
    pub fn timer(deadline: Instant) -> WaitOn {
        WaitOn::Timer {
            deadline_us: clock::to_us(deadline),
        }
    }
}

/// Records that the task being polled on this thread waits on `wait`; does
/// nothing outside a task's poll.
///
/// Call it where a waker is stored and `Pending` is about to be returned.
/// The first wait a poll reports is kept (a `timeout` around a lock reports
/// the lock); each poll starts with none, so a task that waits on something
/// nobody reports shows no wait rather than an old one. It costs a
/// thread-local read and two stores, plus, the first time a name is seen,
/// interning it.
#[inline]
pub fn note_wait(wait: WaitOn) {
    crate::context::with_polling_header(|header| {
        if let Some(free) = header.record().wait_free() {
            let (tag, object) = encode(wait);
            free.note(tag, object);
        }
    });
}

/// [`note_wait`], with the wait described only if the poll has reported
/// none yet (only the first report is kept): for a wait that costs
/// something to describe (a timer's deadline converted to the dump's
/// clock), reported after another (a read that also arms a timeout).
/// `None` from `wait`: nothing to report.
///
/// The check is inlined and the description is not, so that a report
/// after the poll's first (the common case where it is used) costs the
/// check alone.
#[inline]
pub fn note_wait_with(wait: impl FnOnce() -> Option<WaitOn>) {
    crate::context::with_polling_header(|header| {
        if let Some(free) = header.record().wait_free() {
            describe_and_note(free, wait);
        }
    });
}

/// [`note_wait_with`]'s out-of-line half: describes the wait and notes it.
#[inline(never)]
fn describe_and_note(free: FreeWait<'_>, wait: impl FnOnce() -> Option<WaitOn>) {
    if let Some(wait) = wait() {
        let (tag, object) = encode(wait);
        free.note(tag, object);
    }
}

// Kinds, in the tag's low byte; 0 means "nothing reported".
const IO: u32 = 1;
const TIMER: u32 = 2;
const SOURCE: u32 = 3;
const SYNC: u32 = 4;
const PROMISE: u32 = 5;
const JOIN: u32 = 6;
const SIGNAL: u32 = 7;
const COMPLETION: u32 = 8;

/// Packs a wait into the header's two words (inlined: every pending await
/// that reports its wait comes through here, and most waits fold to
/// constants).
#[inline]
pub(crate) fn encode(wait: WaitOn) -> (u16, u64) {
    let tag = |kind: u32, detail: u32| (kind | (detail << 8)) as u16;
    match wait {
        WaitOn::Io { fd, direction } => (tag(IO, (direction == IoDirection::Write) as u32), fd as u64),
        WaitOn::Timer { deadline_us } => (tag(TIMER, 0), deadline_us),
        WaitOn::Source { source, id } => (tag(SOURCE, intern(source)), id),
        WaitOn::Sync { primitive, address } => (tag(SYNC, intern(primitive)), address as u64),
        WaitOn::Promise { address } => (tag(PROMISE, 0), address as u64),
        WaitOn::Join { task } => (tag(JOIN, 0), task.as_u64()),
        WaitOn::Signal { signal } => (tag(SIGNAL, 0), signal as u32 as u64),
        WaitOn::Completion => (tag(COMPLETION, 0), 0),
    }
}

/// Unpacks what [`encode`] packed; `None` for "nothing reported".
pub(crate) fn decode(tag: u16, object: u64) -> Option<WaitOn> {
    let tag = u32::from(tag);
    let detail = tag >> 8;
    Some(match tag & 0xff {
        IO => WaitOn::Io {
            fd: object as i64,
            direction: if detail == 1 {
                IoDirection::Write
            } else {
                IoDirection::Read
            },
        },
        TIMER => WaitOn::Timer { deadline_us: object },
        SOURCE => WaitOn::Source {
            source: name(detail),
            id: object,
        },
        SYNC => WaitOn::Sync {
            primitive: name(detail),
            address: object as usize,
        },
        PROMISE => WaitOn::Promise {
            address: object as usize,
        },
        JOIN => WaitOn::Join {
            task: Id::from_u64(object)?,
        },
        SIGNAL => WaitOn::Signal { signal: object as i32 },
        COMPLETION => WaitOn::Completion,
        _ => return None,
    })
}

/// Interned names: a fixed open-addressed table, written once per slot.
/// (255 slots: index 255 is the overflow, and an index fits the tag's
/// detail byte.)
const NAMES: usize = 255;
static TABLE: [OnceLock<&'static str>; NAMES] = [const { OnceLock::new() }; NAMES];
/// What a name that found the table full reads as.
const OVERFLOW: &str = "(unnamed)";

std::thread_local! {
    /// The last name this thread interned, by address and length, and its
    /// index: a task reports the same wait on every pending poll, so most
    /// calls skip the hash and the table (a source's name costs about 90
    /// instructions to hash and compare).
    static LAST: std::cell::Cell<(usize, usize, u32)> = const { std::cell::Cell::new((0, 0, 0)) };
}

/// The index of `name` in the table, interning it if new.
pub(crate) fn intern(name: &'static str) -> u32 {
    let key = (name.as_ptr() as usize, name.len());
    if let Ok((ptr, len, index)) = LAST.try_with(std::cell::Cell::get)
        && (ptr, len) == key
    {
        return index;
    }
    let index = intern_slow(name);
    let _ = LAST.try_with(|last| last.set((key.0, key.1, index)));
    index
}

/// [`intern`] without the thread's memo.
fn intern_slow(name: &'static str) -> u32 {
    let start = hash(name) % NAMES;
    for probe in 0..NAMES {
        let i = (start + probe) % NAMES;
        let slot = &TABLE[i];
        let stored = match slot.get() {
            Some(stored) => *stored,
            // Lost a race for the slot: `get` now returns the winner.
            None => *slot.get_or_init(|| name),
        };
        if stored == name {
            return i as u32;
        }
    }
    NAMES as u32
}

pub(crate) fn name(index: u32) -> &'static str {
    TABLE
        .get(index as usize)
        .and_then(OnceLock::get)
        .copied()
        .unwrap_or(OVERFLOW)
}

/// FNV-1a: names are short, and the table wants no allocation.
fn hash(name: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

impl fmt::Display for IoDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoDirection::Read => "readable",
            IoDirection::Write => "writable",
        })
    }
}

impl WaitOn {
    /// The wait in words, as a dump's table writes it, for a dump taken at
    /// `now_us` ([`Dump::taken_at_us`](super::Dump::taken_at_us)): timers
    /// say when they are due from then.
    pub fn display_at(&self, now_us: u64) -> impl fmt::Display + '_ {
        struct At<'a>(&'a WaitOn, u64);
        impl fmt::Display for At<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                describe(self.0, self.1, f)
            }
        }
        At(self, now_us)
    }
}

/// Writes `wait` as a dump shows it; `now_us` is the dump's time.
pub(crate) fn describe(wait: &WaitOn, now_us: u64, f: &mut dyn fmt::Write) -> fmt::Result {
    match *wait {
        WaitOn::Io { fd, direction } => write!(f, "fd {fd} {direction}"),
        WaitOn::Timer { deadline_us } => {
            if deadline_us >= now_us {
                write!(f, "timer, due in {}", super::table::Micros(deadline_us - now_us))
            } else {
                write!(f, "timer, due {} ago", super::table::Micros(now_us - deadline_us))
            }
        }
        WaitOn::Source {
            source,
            id: WaitOn::ANY,
        } => write!(f, "{source}, no single peer"),
        WaitOn::Source { source, id } => write!(f, "{source} #{id}"),
        WaitOn::Sync { primitive, address } => write!(f, "{primitive} @{address:#x}"),
        WaitOn::Promise { address } => write!(f, "promise @{address:#x}"),
        WaitOn::Join { task } => write!(f, "join task {task}"),
        WaitOn::Signal { signal } => write!(f, "signal {signal}"),
        WaitOn::Completion => f.write_str("completion from another thread"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_header_words() {
        let waits = [
            WaitOn::Io {
                fd: 9,
                direction: IoDirection::Write,
            },
            WaitOn::Io {
                fd: -1,
                direction: IoDirection::Read,
            },
            WaitOn::Timer {
                deadline_us: 123_456_789,
            },
            WaitOn::Source { source: "gpu", id: 3 },
            WaitOn::Sync {
                primitive: "Mutex::lock",
                address: 0x7fff_1234_5678,
            },
            WaitOn::Promise { address: 0x1000 },
            WaitOn::Join {
                task: Id::from_u64(77).unwrap(),
            },
            WaitOn::Signal { signal: 15 },
            WaitOn::Completion,
        ];
        for wait in waits {
            let (tag, object) = encode(wait);
            assert_ne!(tag, 0);
            assert_eq!(decode(tag, object), Some(wait));
        }
        assert_eq!(decode(0, 0), None);
    }

    #[test]
    fn a_name_is_interned_once_and_equal_names_share_a_slot() {
        let a = intern("mpsc::Receiver::recv");
        // The same text at another address (a static of its own).
        static BYTES: [u8; 20] = *b"mpsc::Receiver::recv";
        let same: &'static str = std::str::from_utf8(&BYTES).unwrap();
        assert_eq!(intern(same), a);
        assert_eq!(name(a), "mpsc::Receiver::recv");
        let b = intern("Mutex::lock");
        assert_ne!(b, a);
        // The thread's memo answers repeats, and alternation, alike.
        assert_eq!(intern("Mutex::lock"), b);
        assert_eq!(intern("mpsc::Receiver::recv"), a);
        assert_eq!(intern(same), a);
        assert_eq!(intern("Mutex::lock"), b);
        assert_eq!(name(b), "Mutex::lock");
    }
}
