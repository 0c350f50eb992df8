//! Signals, delivered through the reactor: [`ctrl_c`], and on Unix a stream
//! per signal kind ([`unix::signal`]).
//!
//! A signal handler may do almost nothing: no lock, no allocation, no waker.
//! So Weft's handler only counts the delivery and writes a byte to a
//! *self-pipe*; every reactor with a listener watches that pipe with its
//! poller, and the turn that sees the byte wakes the listeners, outside the
//! handler, as it wakes tasks waiting on a socket.
//!
//! # Invariants
//!
//! The state is process-wide, made on first use and never freed: one
//! non-blocking, close-on-exec socket pair (the self-pipe) and, per signal
//! number, a *slot*: a delivery counter, an "installed" flag and the list
//! of that signal's listeners. Each reactor adds a duplicate of the pipe's
//! read end (`ReactorSignals`, in the reactor's shared state). The rules
//! (cited by number in `registry.rs`):
//!
//! 1. **The handler touches two things.** Installed through
//!    `signal-hook-registry`, it adds one to its signal's counter and then
//!    writes one byte to the pipe's write end, ignoring failure. Both are
//!    async-signal-safe; it takes no lock, allocates nothing, cannot panic,
//!    and reaches only memory that lives as long as the process.
//! 2. **Counter first, then byte.** The bytes carry nothing but a wakeup;
//!    counts live in the counters, so a full pipe loses nothing. Every
//!    increment is followed by a write attempt, and a write fails only when
//!    the pipe is full, which means unread bytes are still to be drained.
//!    So after every increment some watching reactor drains the pipe and
//!    then reads the counter.
//! 3. **Listener lists: who touches what.** A signal's list (a slab under a
//!    mutex) holds its listeners from every reactor, each as *reactor id,
//!    count seen, waker*. A listener inserts its entry when made, writes its
//!    own entry's count and waker when it waits, and removes the entry when
//!    dropped, so a list holds exactly the live listeners. A reactor, after
//!    draining the pipe, takes the waker of every entry whose count differs
//!    from the counter, whatever reactor the entry belongs to; a reactor
//!    shutting down takes the wakers of its own listeners. Wakers are woken
//!    after the lock is released. The handler never touches a list.
//! 4. **No lost wakeup.** A listener stores its waker under the list's lock
//!    and then reads the counter, and its reactor's shutdown flag, again. A
//!    reactor reads the counter under that lock, and a shutdown sets the
//!    flag before taking it. So either the listener sees the delivery (or
//!    the shutdown), or the reactor finds its waker.
//! 5. **Installed once, kept for good.** A signal's handler is installed by
//!    the first listener of that signal in the process (under one global
//!    lock; the flag is set after `sigaction` succeeded) and never removed,
//!    even when the last listener goes: `signal-hook-registry` cannot give
//!    back the default action, so removing ours would leave the signal
//!    ignored.
//! 6. **One watch per reactor.** A reactor registers its own duplicate of
//!    the read end under `SIGNAL_TOKEN` before its first listener exists,
//!    once. The duplicates share one open file: a byte is an edge for every
//!    watching poller, the first reactor to read drains it for all, and each
//!    one that got the edge dispatches to all listeners. So a runtime whose
//!    reactor is busy, or gone, holds back no other runtime's listeners.
//!    The duplicate closes when the reactor's shared state is dropped.
//!
//! # How a delivery travels
//!
//! `kill -USR1 <pid>`: the kernel runs the handler on some thread of the
//! process that does not block `SIGUSR1` (not necessarily before `kill`
//! returns). The handler bumps the counter and writes its byte, and
//! `epoll_wait` returns in every reactor watching the pipe (step 2 of
//! [`Driver::turn`](crate::Driver::turn)). In step 3 each reads the pipe
//! until `WouldBlock` and then, under each installed signal's lock,
//! collects the wakers of the listeners whose count is behind; they are
//! woken once the locks are released. A woken task's `recv` finds the
//! counter moved, remembers the new count, and returns `Some(())`.
//!
//! # Which deliveries a listener reports
//!
//! A listener reports deliveries counted after it was made
//! ([`unix::signal`] returned; for [`ctrl_c`], from its first poll).
//! Deliveries are not queued: any number of them between two `recv`s are
//! reported once. Every listener of a signal sees every delivery. `recv`
//! returns `None` only when the reactor that was current when the listener
//! was made has shut down (and nothing was delivered since the last
//! `recv`).
//!
//! # What listening does to the process
//!
//! A signal's disposition belongs to the whole process, so listening
//! changes it for everyone, as it does with Tokio:
//!
//! - Once a listener of a signal has been made, Weft's handler stays
//!   installed for that signal until the process exits, and it replaces the
//!   signal's default action. After `ctrl_c()` has been polled once,
//!   Ctrl-C no longer terminates the process, even once the future is
//!   dropped: the program must exit by itself. `SIGTERM`, `SIGHUP` and the
//!   rest likewise.
//! - A handler another library installed earlier keeps running:
//!   `signal-hook-registry` calls it before Weft's. One installed later
//!   with `sigaction` directly replaces Weft's, and deliveries stop.
//! - A signal blocked (`pthread_sigmask`) on every thread is never
//!   delivered, so never reported.
//! - The handler is installed with `SA_RESTART`: most system calls that it
//!   interrupts on other threads are restarted rather than failing with
//!   `EINTR`.
//!
//! `SIGKILL` and `SIGSTOP` cannot be caught, and Weft refuses the faults
//! (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`): a handler that returns from
//! one re-runs the faulting instruction forever.

#[cfg(unix)]
mod registry;
#[cfg(all(test, unix))]
mod tests;
#[cfg(unix)]
pub mod unix;

#[cfg(unix)]
pub(crate) use self::registry::ReactorSignals;

use std::io;

/// Completes at the next `SIGINT` (Ctrl-C at the terminal).
///
/// Nothing happens until the future is first polled: that poll installs
/// Weft's `SIGINT` handler (for the rest of the process's life; see [the
/// module docs](self#what-listening-does-to-the-process)) and makes a
/// listener, and the future completes at the first `SIGINT` counted after
/// that. A `SIGINT` that comes before the first poll is not seen, and if no
/// handler was installed yet it ends the process as usual. To listen from a
/// known point, make the listener yourself with
/// `unix::signal(SignalKind::interrupt())`, or make sure the future has
/// been polled (a spawned task has run) before relying on it.
///
/// Any number of `ctrl_c` futures may wait at once: one `SIGINT` completes
/// every one that was polled before it.
///
/// ```no_run
/// # weft_io::Driver::new()?.block_on(async {
/// weft_io::signal::ctrl_c().await?;
/// println!("interrupted: shutting down");
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// As [`unix::signal`] (no Weft reactor on this thread, or no descriptor
/// left for the self-pipe); an error if the reactor shuts down before a
/// `SIGINT` comes; `Unsupported` on platforms other than Unix.
pub async fn ctrl_c() -> io::Result<()> {
    #[cfg(unix)]
    {
        let mut interrupts = unix::signal(unix::SignalKind::interrupt())?;
        match interrupts.recv().await {
            Some(()) => Ok(()),
            None => Err(io::Error::other(
                "the Weft reactor `ctrl_c` was waiting in has shut down (its runtime was dropped)",
            )),
        }
    }
    #[cfg(not(unix))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Weft delivers signals on Unix only",
        ))
    }
}
