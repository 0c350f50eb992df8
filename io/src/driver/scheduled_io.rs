//! `ScheduledIo`: the readiness of one registered I/O object, and the tasks
//! waiting on it.
//!
//! # The readiness word
//!
//! One `AtomicUsize` holds the readiness bits (readable, writable, read
//! closed, write closed, error), a *shutdown* bit, and above them an event
//! *tick* that the reactor bumps on every event it delivers. Invariants:
//!
//! 1. Only the reactor sets readiness bits (on an event); only an I/O
//!    operation that hit `WouldBlock` clears them, and only the direction it
//!    was attempting.
//! 2. A clear takes effect only if the tick is the one the operation saw when
//!    it found the object ready. If an event arrived in between (the tick
//!    moved), the clear is dropped: that event's readiness must survive, or a
//!    wakeup would be lost, since edge-triggered polling reports it only once.
//! 3. The closed and error bits are never cleared: once a peer has hung up,
//!    every later read must find out.
//!
//! # Waiters
//!
//! A list of wakers per direction, under a mutex: several tasks may wait in
//! one direction (two receivers on one UDP socket shared through an `Arc`).
//! A task registers its waker (once: a task polled again finds its waker
//! there) and then re-checks readiness before returning `Pending`; the
//! reactor sets readiness before it takes the wakers. So either the task
//! sees the new readiness, or the reactor sees the task's waker. An event
//! wakes every waiter of its direction; those that find nothing wait again.
//! A waiter that gives up (its future is dropped) leaves its waker behind
//! until the next event, which wakes that task spuriously: harmless, and it
//! spares registration any per-waiter bookkeeping.

use crate::loom::{AtomicUsize, Mutex, Ordering::*, lock};
use std::task::{Context, Poll, Waker};

/// Readiness of an I/O object, as the reactor last reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Readiness(usize);

impl Readiness {
    /// Nothing.
    pub const EMPTY: Readiness = Readiness(0);
    /// Data can be read (or a connection accepted).
    pub const READABLE: Readiness = Readiness(1 << 0);
    /// Data can be written.
    pub const WRITABLE: Readiness = Readiness(1 << 1);
    /// The peer closed its writing half: reads will return end of stream.
    pub const READ_CLOSED: Readiness = Readiness(1 << 2);
    /// The peer closed its reading half: writes will fail.
    pub const WRITE_CLOSED: Readiness = Readiness(1 << 3);
    /// An error is pending on the socket.
    pub const ERROR: Readiness = Readiness(1 << 4);

    const ALL: usize = 0b1_1111;

    /// True if no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True if `self` has any bit of `other`.
    pub fn intersects(self, other: Readiness) -> bool {
        self.0 & other.0 != 0
    }

    /// The union.
    pub fn union(self, other: Readiness) -> Readiness {
        Readiness(self.0 | other.0)
    }

    pub(crate) fn from_event(event: &mio::event::Event) -> Readiness {
        let mut ready = 0;
        if event.is_readable() {
            ready |= Readiness::READABLE.0;
        }
        if event.is_writable() {
            ready |= Readiness::WRITABLE.0;
        }
        if event.is_read_closed() {
            ready |= Readiness::READ_CLOSED.0;
        }
        if event.is_write_closed() {
            ready |= Readiness::WRITE_CLOSED.0;
        }
        if event.is_error() {
            ready |= Readiness::ERROR.0;
        }
        Readiness(ready)
    }
}

/// A direction an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Reading (or accepting, or receiving).
    Read,
    /// Writing (or connecting, or sending).
    Write,
}

impl Direction {
    /// The readiness that lets an operation in this direction proceed: its
    /// own bit, or closure, or an error (which the operation then reports).
    fn mask(self) -> Readiness {
        match self {
            Direction::Read => Readiness(Readiness::READABLE.0 | Readiness::READ_CLOSED.0 | Readiness::ERROR.0),
            Direction::Write => Readiness(Readiness::WRITABLE.0 | Readiness::WRITE_CLOSED.0 | Readiness::ERROR.0),
        }
    }

    /// The bits an operation that hit `WouldBlock` may clear (invariant 3).
    fn clearable(self) -> usize {
        match self {
            Direction::Read => Readiness::READABLE.0,
            Direction::Write => Readiness::WRITABLE.0,
        }
    }
}

/// The tick at which an operation saw its object ready.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    tick: usize,
}

const SHUTDOWN: usize = 1 << 5;
const TICK_SHIFT: usize = 6;
const READY_MASK: usize = Readiness::ALL;

/// The shared state of one registration.
#[derive(Default)]
pub(crate) struct ScheduledIo {
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    readers: Vec<Waker>,
    writers: Vec<Waker>,
}

impl ScheduledIo {
    /// The reactor delivers an event: sets its readiness, bumps the tick,
    /// and collects the wakers of the directions it makes ready.
    pub(crate) fn set_readiness(&self, ready: Readiness, wakers: &mut Vec<Waker>) {
        let _ = self.readiness.fetch_update(AcqRel, Acquire, |curr| {
            let tick = (curr >> TICK_SHIFT).wrapping_add(1);
            Some((tick << TICK_SHIFT) | (curr & SHUTDOWN) | (curr & READY_MASK) | ready.0)
        });
        self.take_wakers(ready, wakers);
    }

    fn take_wakers(&self, ready: Readiness, wakers: &mut Vec<Waker>) {
        let mut waiters = lock(&self.waiters);
        if ready.intersects(Direction::Read.mask()) {
            wakers.append(&mut waiters.readers);
        }
        if ready.intersects(Direction::Write.mask()) {
            wakers.append(&mut waiters.writers);
        }
    }

    /// The reactor is gone: every operation fails from now on.
    pub(crate) fn shutdown(&self, wakers: &mut Vec<Waker>) {
        self.readiness.fetch_or(SHUTDOWN, AcqRel);
        let mut waiters = lock(&self.waiters);
        wakers.append(&mut waiters.readers);
        wakers.append(&mut waiters.writers);
    }

    /// Ready (with what was seen) if the object is ready for `direction`;
    /// otherwise registers the task's waker and returns `Pending`.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, direction: Direction) -> Poll<std::io::Result<ReadyEvent>> {
        if let Some(event) = self.ready_for(direction)? {
            return Poll::Ready(Ok(event));
        }
        {
            let mut waiters = lock(&self.waiters);
            let list = match direction {
                Direction::Read => &mut waiters.readers,
                Direction::Write => &mut waiters.writers,
            };
            if !list.iter().any(|w| w.will_wake(cx.waker())) {
                list.push(cx.waker().clone());
            }
        }
        // The reactor may have delivered an event between our look and the
        // registration: look again (see the module docs).
        match self.ready_for(direction)? {
            Some(event) => Poll::Ready(Ok(event)),
            None => Poll::Pending,
        }
    }

    /// The readiness for `direction` if there is any, without registering a
    /// waker (for `try_*` operations).
    pub(crate) fn ready_event(&self, direction: Direction) -> std::io::Result<Option<ReadyEvent>> {
        self.ready_for(direction)
    }

    fn ready_for(&self, direction: Direction) -> std::io::Result<Option<ReadyEvent>> {
        let curr = self.readiness.load(Acquire);
        if curr & SHUTDOWN != 0 {
            return Err(reactor_gone());
        }
        let ready = Readiness(curr & READY_MASK);
        Ok(ready.intersects(direction.mask()).then_some(ReadyEvent {
            tick: curr >> TICK_SHIFT,
        }))
    }

    /// An operation in `direction` hit `WouldBlock` after seeing `event`:
    /// clears that direction's readiness, unless a newer event arrived.
    pub(crate) fn clear_readiness(&self, event: ReadyEvent, direction: Direction) {
        let _ = self.readiness.fetch_update(AcqRel, Acquire, |curr| {
            if curr >> TICK_SHIFT != event.tick {
                return None; // invariant 2
            }
            Some(curr & !direction.clearable())
        });
    }

    /// Forgets every waiter (the registration is going away).
    pub(crate) fn clear_wakers(&self) {
        let mut waiters = lock(&self.waiters);
        waiters.readers = Vec::new();
        waiters.writers = Vec::new();
    }
}

/// The error every I/O operation returns once its reactor has shut down.
pub(crate) fn reactor_gone() -> std::io::Error {
    std::io::Error::other(
        "the Weft reactor this I/O object was registered with has shut down (its runtime was dropped)",
    )
}

impl std::fmt::Debug for ScheduledIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let curr = self.readiness.load(Relaxed);
        f.debug_struct("ScheduledIo")
            .field("ready", &Readiness(curr & READY_MASK))
            .field("tick", &(curr >> TICK_SHIFT))
            .field("shutdown", &(curr & SHUTDOWN != 0))
            .finish()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize as Counter;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(Counter);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// An event racing a task that registers its waker: the task either
    /// sees the readiness or is woken.
    #[test]
    fn an_event_racing_a_waiting_task_is_never_lost() {
        loom::model(|| {
            let io = Arc::new(ScheduledIo::default());
            let reactor_io = io.clone();
            let reactor = loom::thread::spawn(move || {
                let mut wakers = Vec::new();
                reactor_io.set_readiness(Readiness::READABLE, &mut wakers);
                wakers.into_iter().for_each(Waker::wake);
            });
            let flag = Arc::new(Flag(Counter::new(0)));
            let waker = Waker::from(flag.clone());
            let first = io.poll_ready(&mut Context::from_waker(&waker), Direction::Read);
            reactor.join().unwrap();
            if first.is_pending() {
                assert_eq!(flag.0.load(SeqCst), 1, "a task that waited was woken");
            }
            assert!(io.ready_event(Direction::Read).unwrap().is_some());
        });
    }

    /// Invariant 2: an operation's `WouldBlock` clears only the readiness
    /// it saw, never that of a newer event.
    #[test]
    fn a_clear_never_erases_a_newer_event() {
        loom::model(|| {
            let io = Arc::new(ScheduledIo::default());
            io.set_readiness(Readiness::READABLE, &mut Vec::new());
            let seen = io.ready_event(Direction::Read).unwrap().unwrap();
            let reactor_io = io.clone();
            let reactor = loom::thread::spawn(move || reactor_io.set_readiness(Readiness::READABLE, &mut Vec::new()));
            io.clear_readiness(seen, Direction::Read);
            reactor.join().unwrap();
            assert!(
                io.ready_event(Direction::Read).unwrap().is_some(),
                "the newer event's readiness survived"
            );
        });
    }
}
