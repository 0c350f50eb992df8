//! Registrations: a mio source known to the reactor, and the slab that maps
//! event tokens back to their readiness.
//!
//! A token is a slab index with a generation tag in its low bits. A slot
//! freed by one registration and reused by the next gets a new generation, so
//! an event for the old one (already fetched by `epoll_wait` when the slot
//! changed hands) is recognised as stale and dropped: it can never wake the
//! newer registration.

use super::Handle;
use super::scheduled_io::{Direction, ScheduledIo, Waiter};
use crate::coop;
use mio::event::Source;
use mio::{Interest, Token};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

/// Bits of the token that hold the generation.
const GEN_BITS: u32 = 16;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;

/// The token the reactor's own waker is registered with; no registration
/// ever gets it (indices would have to reach `usize::MAX >> 16`).
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

/// The token of the reactor's watch on the signal self-pipe
/// ([`crate::signal`], rule 6); reserved as [`WAKER_TOKEN`] is.
#[cfg(unix)]
pub(crate) const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

/// The token of the reactor's deadline timer (`deadline.rs`); reserved as
/// [`WAKER_TOKEN`] is.
pub(crate) const TIMER_TOKEN: Token = Token(usize::MAX - 2);

/// The token of every source's doorbell ([`crate::source::Source::doorbell`]);
/// reserved as [`WAKER_TOKEN`] is.
#[cfg(unix)]
pub(crate) const DOORBELL_TOKEN: Token = Token(usize::MAX - 3);

/// One slab slot.
pub(crate) struct Slot {
    generation: usize,
    /// The registration's readiness and waiters.
    pub(crate) state: Arc<ScheduledIo>,
}

/// The slab of registrations.
#[derive(Default)]
pub(crate) struct Registrations {
    slab: slab::Slab<Slot>,
    next_generation: usize,
}

impl Registrations {
    fn insert(&mut self, state: Arc<ScheduledIo>) -> Token {
        let generation = self.next_generation & GEN_MASK;
        self.next_generation = self.next_generation.wrapping_add(1);
        let index = self.slab.insert(Slot { generation, state });
        Token((index << GEN_BITS) | generation)
    }

    fn remove(&mut self, token: Token) {
        let index = token.0 >> GEN_BITS;
        if self.slab.get(index).is_some_and(|s| s.generation == token.0 & GEN_MASK) {
            self.slab.remove(index);
        }
    }

    /// The registration an event's token names, if it is still the one
    /// that token was given to.
    pub(crate) fn get(&self, token: Token) -> Option<&Slot> {
        self.slab
            .get(token.0 >> GEN_BITS)
            .filter(|slot| slot.generation == token.0 & GEN_MASK)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slab.iter().map(|(_, slot)| slot)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }
}

/// A mio source's registration with a reactor: its token and readiness.
///
/// It does not own the source; [`Registered`] does, and deregisters it before
/// closing it.
pub(crate) struct Registration {
    handle: Handle,
    token: Token,
    state: Arc<ScheduledIo>,
}

impl Registration {
    /// Registers `source` for `interest` with the reactor of `handle`.
    pub(crate) fn new(handle: &Handle, source: &mut impl Source, interest: Interest) -> io::Result<Registration> {
        let state = Arc::new(ScheduledIo::default());
        let token = handle.inner.registrations_mut().insert(state.clone());
        if let Err(err) = handle.inner.registry.register(source, token, interest) {
            handle.inner.registrations_mut().remove(token);
            return Err(err);
        }
        if handle.inner.is_shutdown() {
            // Registered after the reactor shut down: make every operation
            // fail like those of registrations the shutdown found.
            state.shutdown(&mut Vec::new());
        }
        Ok(Registration {
            handle: handle.clone(),
            token,
            state,
        })
    }

    /// Runs the non-blocking operation `op` once the source is ready in
    /// `direction`, until it does not hit `WouldBlock`, for the poll API
    /// (the direction's single waker slot: see `scheduled_io`). Spends one
    /// unit of the task's cooperative budget when it completes (none if it
    /// ends up `Pending`). `fd` is the source's descriptor, for the task's wait
    /// report (`crate::observe`).
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        fd: i64,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_op(cx, direction, fd, Waiter::Poll, op, |_| false)
    }

    /// As [`poll_io`](Self::poll_io) for byte transfers: a transfer shorter
    /// than the buffer (`len`) means the kernel buffer was drained (or
    /// filled), so readiness is cleared at once; with edge-triggered polling
    /// new data brings a new event. Saves the `WouldBlock` system call that
    /// the next attempt would otherwise make.
    ///
    /// The common wait (a keep-alive connection between requests, a stream
    /// that the last transfer drained) is taken inline: a source known not
    /// ready registers the task's waker and reports the wait without
    /// entering the operation's loop. If it turns out ready meanwhile, the
    /// loop runs as usual (and finds it ready).
    #[inline]
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        fd: i64,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if self.state.known_not_ready(direction) && self.wait_poll_api(cx, direction, fd).is_pending() {
            return Poll::Pending;
        }
        self.poll_transfer_loop(cx, direction, fd, len, op)
    }

    /// [`poll_transfer`](Self::poll_transfer)'s loop, out of line.
    #[inline(never)]
    fn poll_transfer_loop(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        fd: i64,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, direction, fd, Waiter::Poll, op, |&n| n > 0 && n < len)
    }

    /// [`poll_op`](Self::poll_op)'s wait, for the poll API, on a source
    /// found not ready: registers the task's waker and, unless the source
    /// became ready meanwhile, reports the wait and returns `Pending`.
    #[inline(never)]
    fn wait_poll_api(&self, cx: &mut Context<'_>, direction: Direction, fd: i64) -> Poll<()> {
        match self.state.register_then_look_again(cx, direction, Waiter::Poll) {
            Poll::Pending => {
                crate::observe::waiting(crate::observe::Wait::Io { fd, direction });
                Poll::Pending
            }
            Poll::Ready(_) => Poll::Ready(()),
        }
    }

    /// The loop behind every operation: `waiter` says where the task's
    /// waker goes; `drained` says a successful result proves the readiness
    /// used up, so it is cleared as if `op` had hit `WouldBlock`. When the
    /// waker is stored, the task's wait on `fd` is reported.
    ///
    /// The budget is consulted only once the object is ready: an operation
    /// that ends up `Pending` would give its unit back anyway, so waiting
    /// costs the task no budget either way, and the common wait (a
    /// keep-alive connection between requests) skips the spend and the
    /// refund. With the budget spent, a ready object still yields, as
    /// before: `Pending`, the task woken to run again later.
    pub(crate) fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        fd: i64,
        mut waiter: Waiter<'_>,
        mut op: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        let mut budget = None;
        loop {
            let waiter = match &mut waiter {
                Waiter::Poll => Waiter::Poll,
                Waiter::Future(key) => Waiter::Future(key),
            };
            let event = match self.state.poll_ready(cx, direction, waiter) {
                Poll::Ready(event) => event?,
                Poll::Pending => {
                    crate::observe::waiting(crate::observe::Wait::Io { fd, direction });
                    return Poll::Pending;
                }
            };
            if budget.is_none() {
                budget = Some(ready!(coop::poll_proceed(cx)));
            }
            match op() {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.state.clear_readiness(event, direction);
                }
                result => {
                    if result.as_ref().is_ok_and(&drained) {
                        self.state.clear_readiness(event, direction);
                    }
                    if let Some(budget) = budget {
                        budget.made_progress();
                    }
                    return Poll::Ready(result);
                }
            }
        }
    }

    /// A future's entry leaves the waiter list.
    pub(crate) fn remove_waiter(&self, key: usize) {
        self.state.remove_waiter(key);
    }

    /// Wakers the registration holds right now (for tests).
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.state.waiting()
    }

    /// Entries the futures' slab has room for (for tests).
    #[cfg(test)]
    pub(crate) fn waiter_capacity(&self) -> usize {
        self.state.waiter_capacity()
    }

    /// Runs `op` once without waiting: for the `try_*` methods. A
    /// `WouldBlock` clears the readiness it relied on.
    pub(crate) fn try_io<R>(&self, direction: Direction, op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        // Look without registering a waker: a task may be waiting in this
        // direction, and its waker must stay.
        let Some(event) = self.state.ready_event(direction)? else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let result = op();
        if matches!(&result, Err(err) if err.kind() == io::ErrorKind::WouldBlock) {
            self.state.clear_readiness(event, direction);
        }
        result
    }

    /// The reactor this registration belongs to.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Removes `source` from the reactor. Call before closing it.
    pub(crate) fn deregister(&self, source: &mut impl Source) -> io::Result<()> {
        self.handle.inner.registry.deregister(source)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.state.clear_wakers();
        self.handle.inner.registrations_mut().remove(self.token);
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("token", &self.token)
            .field("state", &self.state)
            .finish()
    }
}

/// A mio source registered with the reactor: owns the source, deregisters
/// it before closing it. The building block of every socket type.
pub(crate) struct Registered<E: Source> {
    /// The mio source; taken out only by `into_inner` and `drop`.
    source: Option<E>,
    /// Its descriptor, for wait reports (it fits beside a mio socket, in
    /// what would be padding).
    fd: i32,
    registration: Registration,
}

/// A source with a descriptor number: every mio socket.
pub(crate) trait Descriptor {
    /// The descriptor (a socket handle on Windows, truncated).
    fn descriptor(&self) -> i32;
}

#[cfg(unix)]
impl<T: std::os::fd::AsRawFd> Descriptor for T {
    fn descriptor(&self) -> i32 {
        self.as_raw_fd()
    }
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsRawSocket> Descriptor for T {
    fn descriptor(&self) -> i32 {
        self.as_raw_socket() as i32
    }
}

impl<E: Source + Descriptor> Registered<E> {
    /// Registers `io` with the current reactor (see [`Handle::current`]).
    pub(crate) fn new(io: E, interest: Interest) -> io::Result<Registered<E>> {
        Registered::new_with(&Handle::try_current()?, io, interest)
    }

    pub(crate) fn new_with(handle: &Handle, mut source: E, interest: Interest) -> io::Result<Registered<E>> {
        let registration = Registration::new(handle, &mut source, interest)?;
        Ok(Registered {
            fd: source.descriptor(),
            source: Some(source),
            registration,
        })
    }
}

impl<E: Source> Registered<E> {
    pub(crate) fn get_ref(&self) -> &E {
        self.source
            .as_ref()
            .expect("weft bug: the source is present until drop")
    }

    #[cfg(test)]
    pub(crate) fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The reactor this source is registered with.
    pub(crate) fn reactor(&self) -> &Handle {
        self.registration.handle()
    }

    /// Runs `op` on the source once it is ready; see
    /// [`Registration::poll_io`].
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut(&E) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self.get_ref();
        self.registration.poll_io(cx, direction, self.fd.into(), || op(io))
    }

    /// Transfers bytes once the source is ready; see
    /// [`Registration::poll_transfer`].
    #[inline]
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        len: usize,
        mut op: impl FnMut(&E) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let io = self.get_ref();
        self.registration
            .poll_transfer(cx, direction, self.fd.into(), len, || op(io))
    }

    /// Runs `op` once without waiting.
    pub(crate) fn try_io<R>(&self, direction: Direction, op: impl FnOnce(&E) -> io::Result<R>) -> io::Result<R> {
        let io = self.get_ref();
        self.registration.try_io(direction, || op(io))
    }

    /// Runs `op` once the source is ready in `direction`, waiting as the
    /// holder of `key`, an entry among the source's waiters that the caller
    /// keeps across polls and gives back with [`leave`](Self::leave) (as
    /// [`IoOp`] does; a stream of connections does the same).
    pub(crate) fn poll_keyed<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        key: &mut Option<usize>,
        mut op: impl FnMut(&E) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self.get_ref();
        self.registration
            .poll_op(cx, direction, self.fd.into(), Waiter::Future(key), || op(io), |_| false)
    }

    /// Gives back a waiter entry taken by [`poll_keyed`](Self::poll_keyed).
    pub(crate) fn leave(&self, key: &mut Option<usize>) {
        if let Some(key) = key.take() {
            self.registration.remove_waiter(key);
        }
    }

    /// Runs `op` once the source is ready in `direction`, as a future with
    /// its own place among the waiters (the async methods' shape; see
    /// [`IoOp`]).
    pub(crate) fn op<R, F>(&self, direction: Direction, op: F) -> IoOp<'_, E, F>
    where
        F: FnMut(&E) -> io::Result<R> + Unpin,
    {
        IoOp {
            registered: self,
            direction,
            key: None,
            op,
        }
    }

    /// Ready once the source is ready in `direction` (without consuming
    /// the readiness), as [`op`](Self::op).
    pub(crate) fn ready(&self, direction: Direction) -> IoOp<'_, E, fn(&E) -> io::Result<()>> {
        self.op(direction, |_| Ok(()))
    }

    /// Deregisters and returns the source (for `into_std`).
    pub(crate) fn into_inner(mut self) -> io::Result<E> {
        let mut source = self.source.take().expect("weft bug: the source is present until drop");
        self.registration.deregister(&mut source)?;
        Ok(source)
    }
}

/// An operation on a registered source awaited as a future: it holds its
/// own entry in the source's waiter list from its first `Pending` until it
/// completes or is dropped, so a future given up by `race`, `select` or a
/// timeout leaves no waker behind (see `scheduled_io`).
#[must_use = "futures do nothing unless awaited"]
pub(crate) struct IoOp<'a, E: Source, F> {
    registered: &'a Registered<E>,
    direction: Direction,
    key: Option<usize>,
    op: F,
}

impl<E: Source, R, F> Future for IoOp<'_, E, F>
where
    F: FnMut(&E) -> io::Result<R> + Unpin,
{
    type Output = io::Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let this = self.get_mut();
        let result = ready!(
            this.registered
                .poll_keyed(cx, this.direction, &mut this.key, &mut this.op)
        );
        this.registered.leave(&mut this.key);
        Poll::Ready(result)
    }
}

impl<E: Source, F> Drop for IoOp<'_, E, F> {
    fn drop(&mut self) {
        self.registered.leave(&mut self.key);
    }
}

/// The byte transfers of a stream socket (TCP, Unix), once for all of them.
impl<E: Source> Registered<E>
where
    for<'a> &'a E: io::Read + io::Write,
{
    /// Reads into `buf` once the socket is readable.
    pub(crate) fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        use io::Read;
        let len = buf.len();
        self.poll_transfer(cx, Direction::Read, len, |mut s| s.read(buf))
    }

    /// Reads into `bufs` once the socket is readable. No short-transfer
    /// shortcut: `readv` takes at most IOV_MAX buffers, so a short read
    /// need not mean a drained socket.
    pub(crate) fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        use io::Read;
        self.poll_io(cx, Direction::Read, |mut s| s.read_vectored(bufs))
    }

    /// Writes `buf` once the socket is writable.
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        use io::Write;
        self.poll_transfer(cx, Direction::Write, buf.len(), |mut s| s.write(buf))
    }

    /// Writes `bufs` once the socket is writable (as for reads: no
    /// short-transfer shortcut).
    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use io::Write;
        self.poll_io(cx, Direction::Write, |mut s| s.write_vectored(bufs))
    }
}

impl<E: Source> Drop for Registered<E> {
    fn drop(&mut self) {
        if let Some(mut source) = self.source.take() {
            // Stop events before the descriptor closes (and its number can
            // be reused); an error here only means it is already gone.
            let _ = self.registration.deregister(&mut source);
        }
    }
}

impl<E: Source + std::fmt::Debug> std::fmt::Debug for Registered<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("source", &self.source)
            .field("registration", &self.registration)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_gets_a_new_generation() {
        let mut regs = Registrations::default();
        let first = regs.insert(Arc::new(ScheduledIo::default()));
        regs.remove(first);
        let second = regs.insert(Arc::new(ScheduledIo::default()));
        assert_eq!(first.0 >> GEN_BITS, second.0 >> GEN_BITS, "the slot is reused");
        assert_ne!(first, second);
        assert!(regs.get(first).is_none(), "a stale token finds nothing");
        assert!(regs.get(second).is_some());
        // Removing with a stale token leaves the new registration alone.
        regs.remove(first);
        assert!(regs.get(second).is_some());
    }
}
