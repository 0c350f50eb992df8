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
//! Two kinds of waiter, under one mutex, per registration:
//!
//! - **Futures** (the async methods: `accept`, `recv`, `readable`...):
//!   each waiting future holds a key to its own entry in a slab, made on
//!   its first `Pending` and removed when the future completes or is
//!   dropped. Polling it again only swaps the entry's waker (O(1)), so a
//!   future dropped by `race`, `select` or a timeout leaves nothing behind,
//!   and several tasks can wait in one direction (two receivers on one UDP
//!   socket shared through an `Arc`), each woken by an event.
//! - **The poll API** (`AsyncRead::poll_read`, `poll_accept`...), which has
//!   no state of its own to keep a key in: one slot per direction, holding
//!   the waker of the last task that polled (as Tokio's does). A dropped
//!   read future leaves at most that one waker, which the next poll
//!   replaces; two tasks polling one direction at once through this API
//!   wake only the later one, so such sharing must use the async methods.
//!
//! A task registers its waker (cloning it first: a clone that panics leaves
//! the lists as they were) and then re-checks readiness before returning
//! `Pending`; the reactor sets readiness before it takes the wakers. So
//! either the task sees the new readiness, or the reactor sees the task's
//! waker. An event takes the wakers of every waiter of its direction; a
//! future's entry stays (empty) until the future is dropped or polled
//! again.

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

/// Who is waiting for a direction: a future with its own entry, or a task
/// polling through the poll API (see the module docs).
#[derive(Debug)]
pub(crate) enum Waiter<'a> {
    /// The poll API: the direction's single slot.
    Poll,
    /// A future's entry; `None` until its first `Pending`.
    Future(&'a mut Option<usize>),
}

#[derive(Default)]
struct Waiters {
    /// The poll API's slots.
    poll_reader: Option<Waker>,
    poll_writer: Option<Waker>,
    /// The futures' entries.
    futures: slab::Slab<FutureWaiter>,
}

struct FutureWaiter {
    direction: Direction,
    /// Taken by an event; set again when the future is polled again.
    waker: Option<Waker>,
}

impl Waiters {
    fn poll_slot(&mut self, direction: Direction) -> &mut Option<Waker> {
        match direction {
            Direction::Read => &mut self.poll_reader,
            Direction::Write => &mut self.poll_writer,
        }
    }

    /// Stores the waker of `cx` for `waiter`, cloning it first (if the
    /// clone panics, nothing has changed).
    fn register(&mut self, cx: &Context<'_>, direction: Direction, waiter: Waiter<'_>) {
        match waiter {
            Waiter::Poll => {
                let slot = self.poll_slot(direction);
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    let waker = cx.waker().clone();
                    *slot = Some(waker);
                }
            }
            Waiter::Future(key) => match *key {
                Some(key) => {
                    let entry = &mut self.futures[key];
                    if !entry.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        let waker = cx.waker().clone();
                        entry.waker = Some(waker);
                    }
                }
                None => {
                    let waker = cx.waker().clone();
                    *key = Some(self.futures.insert(FutureWaiter {
                        direction,
                        waker: Some(waker),
                    }));
                }
            },
        }
    }

    /// Takes the wakers of every waiter `wakes` selects.
    fn take(&mut self, wakes: impl Fn(Direction) -> bool, wakers: &mut Vec<Waker>) {
        for direction in [Direction::Read, Direction::Write] {
            if wakes(direction) {
                wakers.extend(self.poll_slot(direction).take());
            }
        }
        for (_, waiter) in self.futures.iter_mut() {
            if wakes(waiter.direction) {
                wakers.extend(waiter.waker.take());
            }
        }
    }

    /// Wakers held right now.
    #[cfg(test)]
    fn len(&self) -> usize {
        usize::from(self.poll_reader.is_some())
            + usize::from(self.poll_writer.is_some())
            + self.futures.iter().filter(|(_, w)| w.waker.is_some()).count()
    }
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
        lock(&self.waiters).take(|direction| ready.intersects(direction.mask()), wakers);
    }

    /// The reactor is gone: every operation fails from now on.
    pub(crate) fn shutdown(&self, wakers: &mut Vec<Waker>) {
        self.readiness.fetch_or(SHUTDOWN, AcqRel);
        lock(&self.waiters).take(|_| true, wakers);
    }

    /// Ready (with what was seen) if the object is ready for `direction`;
    /// otherwise registers the task's waker for `waiter` and returns
    /// `Pending`.
    ///
    /// Inlined into the operations: the ready case is one load and a test;
    /// registering is out of line.
    #[inline]
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        waiter: Waiter<'_>,
    ) -> Poll<std::io::Result<ReadyEvent>> {
        match self.ready_for(direction) {
            Ok(Some(event)) => Poll::Ready(Ok(event)),
            Ok(None) => self.register_then_look_again(cx, direction, waiter),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    /// True if the object is not ready for `direction` (and the reactor
    /// runs): [`poll_ready`](Self::poll_ready) would register. One load.
    #[inline]
    pub(crate) fn known_not_ready(&self, direction: Direction) -> bool {
        let curr = self.readiness.load(Acquire);
        curr & SHUTDOWN == 0 && !Readiness(curr & READY_MASK).intersects(direction.mask())
    }

    /// [`poll_ready`](Self::poll_ready) found the object not ready:
    /// registers the task's waker, then looks again.
    #[inline(never)]
    pub(crate) fn register_then_look_again(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        waiter: Waiter<'_>,
    ) -> Poll<std::io::Result<ReadyEvent>> {
        lock(&self.waiters).register(cx, direction, waiter);
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

    #[inline]
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

    /// A future that waited leaves (it completed or was dropped): its
    /// entry goes.
    pub(crate) fn remove_waiter(&self, key: usize) {
        let removed = lock(&self.waiters).futures.try_remove(key);
        debug_assert!(removed.is_some(), "weft bug: a waiter's key outlived its entry");
    }

    /// Forgets every waiter (the registration is going away: no future
    /// borrows it any more).
    pub(crate) fn clear_wakers(&self) {
        let mut waiters = lock(&self.waiters);
        *waiters = Waiters::default();
    }

    /// Wakers held right now (for tests).
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.waiters).len()
    }

    /// Entries the futures' slab has room for (for tests).
    #[cfg(test)]
    pub(crate) fn waiter_capacity(&self) -> usize {
        lock(&self.waiters).futures.capacity()
    }
}

/// The error every I/O operation returns once its reactor has shut down.
#[cold]
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
            let first = io.poll_ready(&mut Context::from_waker(&waker), Direction::Read, Waiter::Poll);
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
