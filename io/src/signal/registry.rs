//! The process-wide half of signal delivery: the self-pipe, one slot per
//! signal number, and the handler that feeds them; and the reactor's half,
//! [`ReactorSignals`]. The rules they keep are numbered in the module docs of
//! [`crate::signal`]; the comments here cite them.

use crate::driver::Handle;
use crate::driver::registration::SIGNAL_TOKEN;
use crate::loom::{Mutex, lock};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::raw::c_int;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{LazyLock, OnceLock};
use std::task::{Context, Poll, Waker};

/// One slot per signal number `0..TABLE_LEN` (slot 0 is never used). That
/// covers every Unix Weft runs on (Linux numbers its signals up to 64,
/// FreeBSD up to 126, macOS up to 31); a number in range that the OS does
/// not have is refused by `sigaction`.
pub(crate) const TABLE_LEN: usize = 129;

/// What the whole process shares: made on first use, never dropped (rule 1
/// needs the handler's references to live as long as the handler).
pub(crate) struct Globals {
    /// The self-pipe's write end: only the handler writes to it (rule 1).
    sender: UnixStream,
    /// The read end. Nobody reads through this descriptor: each reactor
    /// reads through its own duplicate of it (rule 6).
    receiver: UnixStream,
    slots: Box<[SignalSlot]>,
    /// Serialises installing handlers (rule 5).
    install: Mutex<()>,
}

/// One signal number's state.
pub(crate) struct SignalSlot {
    /// How many times the handler ran (rule 2). Wraps; only compared for
    /// equality.
    deliveries: AtomicUsize,
    /// True once the handler is installed (rule 5): dispatch skips the
    /// slots where it is false.
    installed: AtomicBool,
    /// The listeners of this signal, in any reactor (rule 3).
    listeners: Mutex<slab::Slab<Listener>>,
}

/// One listener's entry in its signal's list.
struct Listener {
    /// The [`Handle::id`] of the reactor the listener belongs to, so that
    /// reactor's shutdown can find it.
    reactor: usize,
    /// The count of deliveries the listener had seen when it stored
    /// `waker`.
    seen: usize,
    /// The task waiting in `recv`, if any.
    waker: Option<Waker>,
}

static GLOBALS: OnceLock<Globals> = OnceLock::new();
static GLOBALS_INIT: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

/// The value of `cell`, made by `init` the first time one succeeds. `init`
/// runs under `guard`, so two callers never both make one.
fn get_or_try_init<'a, T>(
    cell: &'a OnceLock<T>,
    guard: &Mutex<()>,
    init: impl FnOnce() -> io::Result<T>,
) -> io::Result<&'a T> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let _guard = lock(guard);
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = init()?;
    Ok(cell.get_or_init(|| value))
}

/// The process-wide state, made on first use.
fn globals() -> io::Result<&'static Globals> {
    get_or_try_init(&GLOBALS, &GLOBALS_INIT, || {
        let (sender, receiver) = UnixStream::pair()?;
        // Both ends non-blocking: the handler must never block (rule 1),
        // and a reactor drains until `WouldBlock` (rule 6; the duplicates
        // share this file status flag with the original).
        sender.set_nonblocking(true)?;
        receiver.set_nonblocking(true)?;
        Ok(Globals {
            sender,
            receiver,
            slots: (0..TABLE_LEN)
                .map(|_| SignalSlot {
                    deliveries: AtomicUsize::new(0),
                    installed: AtomicBool::new(false),
                    listeners: Mutex::new(slab::Slab::new()),
                })
                .collect(),
            install: Mutex::new(()),
        })
    })
}

impl Globals {
    /// Installs the handler of `signum` unless it is installed already
    /// (rule 5). `signum` has been checked against the table and the
    /// forbidden list.
    fn install(&'static self, signum: c_int) -> io::Result<()> {
        let slot = &self.slots[signum as usize];
        if slot.installed.load(SeqCst) {
            return Ok(());
        }
        let _guard = lock(&self.install);
        if slot.installed.load(SeqCst) {
            return Ok(());
        }
        let fd = self.sender.as_raw_fd();
        let handler = move || {
            // Rule 1: an atomic add and one write(2), both async-signal-safe;
            // the count first, so that whoever reads the byte sees it
            // (rule 2).
            slot.deliveries.fetch_add(1, SeqCst);
            // SAFETY: `fd` is the self-pipe's write end, which `GLOBALS`
            // keeps open for the life of the process; the buffer is a
            // static byte. A failure (EAGAIN: the pipe is full, so a drain
            // is still to come) needs nothing done; signal-hook-registry
            // restores `errno` around the handler.
            unsafe { libc::write(fd, b"\x01".as_ptr().cast(), 1) };
        };
        // SAFETY: the handler does only async-signal-safe work (rule 1)
        // and cannot panic; `signum` is not in signal-hook-registry's
        // FORBIDDEN list (checked by `check_signal`), so `register` does not
        // panic either.
        unsafe { signal_hook_registry::register(signum, handler) }.map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("Weft could not install a handler for signal {signum}: {err}"),
            )
        })?;
        slot.installed.store(true, SeqCst);
        Ok(())
    }

    /// Wakes every waiting listener whose signal was delivered since it
    /// last looked (rule 3).
    fn dispatch(&self, wakers: &mut Vec<Waker>) {
        for slot in self.slots.iter().filter(|slot| slot.installed.load(SeqCst)) {
            let mut listeners = lock(&slot.listeners);
            // Read under the lock: rule 4.
            let deliveries = slot.deliveries.load(SeqCst);
            for (_, listener) in listeners.iter_mut() {
                if listener.seen != deliveries {
                    wakers.extend(listener.waker.take());
                }
            }
        }
    }
}

/// Checks that Weft can listen for `signum`: a number in the table, and not
/// one whose handler would be useless or harmful.
pub(crate) fn check_signal(signum: c_int) -> io::Result<()> {
    let refuse = |why: &str| {
        let name = super::unix::signal_name(signum).map_or_else(String::new, |name| format!("{name}, "));
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("Weft cannot listen for signal {signum} ({name}{why})"),
        ))
    };
    if signum <= 0 || signum as usize >= TABLE_LEN {
        return refuse("not a signal number");
    }
    if signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return refuse("it cannot be caught");
    }
    // signal-hook-registry's `register` panics on its FORBIDDEN list (the
    // two above and the faults below). It accepts SIGBUS, but a handler
    // that returns from SIGBUS, as ours does, makes the faulting access run
    // again, forever: a program that touches a truncated mapping would hang
    // instead of dying.
    if signal_hook_registry::FORBIDDEN.contains(&signum) || signum == libc::SIGBUS {
        return refuse("a fault: a handler would re-run the faulting instruction forever");
    }
    Ok(())
}

/// A listener's place in its signal's list: the state behind a
/// [`Signal`](super::unix::Signal). Dropping it leaves the list (rule 3).
pub(crate) struct Subscription {
    slot: &'static SignalSlot,
    /// The signal's number, for wait reports.
    signum: c_int,
    key: usize,
    /// The count of deliveries this listener has reported (or, before the
    /// first, the count when it was made).
    seen: usize,
}

impl Subscription {
    /// A new listener of `signum` (checked by [`check_signal`]) on the
    /// reactor of `handle`. In this order, so that a failure before the
    /// last step changes nothing for the process: the self-pipe, the
    /// reactor's watch on it (rule 6), the handler (rule 5), the entry.
    pub(crate) fn new(signum: c_int, handle: &Handle) -> io::Result<Subscription> {
        let globals = globals()?;
        handle.inner.signals.watch(&handle.inner.registry, globals)?;
        globals.install(signum)?;
        let slot = &globals.slots[signum as usize];
        let mut listeners = lock(&slot.listeners);
        // Deliveries count from here on: the listener has seen all before.
        let seen = slot.deliveries.load(SeqCst);
        let key = listeners.insert(Listener {
            reactor: handle.id(),
            seen,
            waker: None,
        });
        Ok(Subscription {
            slot,
            signum,
            key,
            seen,
        })
    }

    /// `Ready(Some(()))` if the signal was delivered since this listener
    /// last reported one; `Ready(None)` if not and `reactor` has shut down;
    /// otherwise stores the task's waker and returns `Pending` (rule 4).
    pub(crate) fn poll_delivery(&mut self, cx: &mut Context<'_>, reactor: &Handle) -> Poll<Option<()>> {
        if let Some(ready) = self.check(reactor) {
            return Poll::Ready(ready);
        }
        {
            let mut listeners = lock(&self.slot.listeners);
            let me = listeners
                .get_mut(self.key)
                .expect("weft bug: a signal listener is in its list until it is dropped");
            me.seen = self.seen;
            if !me.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                me.waker = Some(cx.waker().clone());
            }
        }
        // A delivery (or the shutdown) may have come between the first look
        // and the waker being stored, and dispatch may have found no waker:
        // look again (rule 4).
        match self.check(reactor) {
            Some(ready) => Poll::Ready(ready),
            None => {
                crate::observe::waiting(crate::observe::Wait::Signal { signal: self.signum });
                Poll::Pending
            }
        }
    }

    /// What `poll_delivery` returns without waiting, if anything.
    fn check(&mut self, reactor: &Handle) -> Option<Option<()>> {
        let deliveries = self.slot.deliveries.load(SeqCst);
        if deliveries != self.seen {
            self.seen = deliveries;
            return Some(Some(()));
        }
        reactor.is_shutdown().then_some(None)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.slot.listeners).remove(self.key);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("seen", &self.seen)
            .field("deliveries", &self.slot.deliveries.load(SeqCst))
            .finish_non_exhaustive()
    }
}

/// How many listeners `signum` has, in all reactors (for tests).
#[cfg(test)]
pub(crate) fn listeners(signum: c_int) -> usize {
    GLOBALS
        .get()
        .map_or(0, |globals| lock(&globals.slots[signum as usize].listeners).len())
}

/// How many times the handler of `signum` has run (for tests).
#[cfg(test)]
pub(crate) fn deliveries(signum: c_int) -> usize {
    GLOBALS
        .get()
        .map_or(0, |globals| globals.slots[signum as usize].deliveries.load(SeqCst))
}

/// A reactor's part in signal delivery: its own duplicate of the
/// self-pipe's read end, registered with its poller under
/// [`SIGNAL_TOKEN`] when the reactor's first listener is made (rule 6).
#[derive(Default)]
pub(crate) struct ReactorSignals {
    pipe: OnceLock<mio::net::UnixStream>,
    init: Mutex<()>,
}

impl ReactorSignals {
    /// Registers this reactor's duplicate of the read end, once.
    fn watch(&self, registry: &mio::Registry, globals: &Globals) -> io::Result<()> {
        get_or_try_init(&self.pipe, &self.init, || {
            let mut pipe = mio::net::UnixStream::from_std(globals.receiver.try_clone()?);
            // If a byte is already waiting, the poller reports it on the
            // first turn: registering a readable descriptor is an edge.
            registry.register(&mut pipe, SIGNAL_TOKEN, mio::Interest::READABLE)?;
            Ok(pipe)
        })
        .map(drop)
    }

    /// The reactor got an event under [`SIGNAL_TOKEN`]: drains the pipe
    /// (all reactors share it: another may have drained it first) and
    /// collects the wakers of the listeners with a new delivery, whatever
    /// reactor they belong to (rule 3).
    pub(crate) fn deliver(&self, wakers: &mut Vec<Waker>) {
        if let Some(mut pipe) = self.pipe.get() {
            let mut buf = [0u8; 64];
            loop {
                match pipe.read(&mut buf) {
                    Ok(n) if n > 0 => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    // Drained (`WouldBlock`). End of file or any other error
                    // cannot happen while `GLOBALS` holds the write end.
                    _ => break,
                }
            }
        }
        if let Some(globals) = GLOBALS.get() {
            globals.dispatch(wakers);
        }
    }

    /// The reactor `reactor` (this one's [`Handle::id`]) is shutting down:
    /// collects the wakers of its listeners, which will find it shut down.
    pub(crate) fn shutdown(&self, reactor: usize, wakers: &mut Vec<Waker>) {
        // No watch, no listener (rule 6): nothing to do, and nothing to make.
        let (Some(_), Some(globals)) = (self.pipe.get(), GLOBALS.get()) else {
            return;
        };
        for slot in globals.slots.iter().filter(|slot| slot.installed.load(SeqCst)) {
            let mut listeners = lock(&slot.listeners);
            for (_, listener) in listeners.iter_mut().filter(|(_, l)| l.reactor == reactor) {
                wakers.extend(listener.waker.take());
            }
        }
    }
}

impl std::fmt::Debug for ReactorSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorSignals")
            .field("watching", &self.pipe.get().is_some())
            .finish()
    }
}
