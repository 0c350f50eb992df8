//! Unix signals as streams: [`signal`] makes a [`Signal`] listener for a
//! [`SignalKind`].
//!
//! ```no_run
//! use weft_io::signal::unix::{SignalKind, signal};
//!
//! # weft_io::Driver::new()?.block_on(async {
//! let mut hangups = signal(SignalKind::hangup())?;
//! while hangups.recv().await.is_some() {
//!     println!("SIGHUP: reloading the configuration");
//! }
//! # Ok::<(), std::io::Error>(())
//! # })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! See [the module docs](super) for how deliveries travel, and what
//! listening does to the whole process.

use super::registry::{Subscription, check_signal};
use crate::coop;
use crate::driver::Handle;
use std::fmt;
use std::io;
use std::os::raw::c_int;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// A kind of Unix signal: a signal number.
///
/// The constructors name the common ones; [`from_raw`](Self::from_raw)
/// takes any number (checked when [`signal`] is called).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(c_int);

impl SignalKind {
    /// The signal numbered `signum` on this platform (as in `libc::SIGUSR1`).
    pub const fn from_raw(signum: c_int) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw_value(&self) -> c_int {
        self.0
    }

    /// `SIGINT`: the terminal's interrupt key (Ctrl-C). By default it
    /// terminates the process.
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGTERM`: a polite request to terminate (what `kill` sends by
    /// default). By default it terminates the process.
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGHUP`: the controlling terminal hung up; daemons take it as "reload
    /// the configuration". By default it terminates the process.
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGQUIT`: the terminal's quit key (Ctrl-\\). By default it
    /// terminates the process with a core dump.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGUSR1`: for the program to define. By default it terminates the
    /// process.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`: for the program to define. By default it terminates the
    /// process.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// `SIGCHLD`: a child process stopped or exited. Ignored by default.
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// `SIGPIPE`: a write to a pipe or socket whose reader is gone. Rust
    /// programs ignore it from startup (the write fails with `EPIPE`
    /// instead); listening for it makes every such write a delivery.
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }

    /// `SIGALRM`: a timer set with `alarm(2)` expired. By default it
    /// terminates the process.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }

    /// `SIGWINCH`: the terminal's window changed size. Ignored by default.
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }
}

impl From<c_int> for SignalKind {
    fn from(signum: c_int) -> SignalKind {
        SignalKind::from_raw(signum)
    }
}

impl From<SignalKind> for c_int {
    fn from(kind: SignalKind) -> c_int {
        kind.as_raw_value()
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match signal_name(self.0) {
            Some(name) => write!(f, "SignalKind({name})"),
            None => write!(f, "SignalKind({})", self.0),
        }
    }
}

/// The conventional name of the signals every Unix has, for messages.
pub(crate) fn signal_name(signum: c_int) -> Option<&'static str> {
    Some(match signum {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// Listens for deliveries of `kind` to this process, through the reactor
/// current on this thread.
///
/// The first listener of a kind in the process installs Weft's handler for
/// it, which stays for the life of the process and replaces the signal's
/// default action (see [the module docs](super#what-listening-does-to-the-process)).
/// The listener reports deliveries that come after this call returns; one
/// that races with the call may or may not be reported; earlier ones are
/// not.
///
/// # Errors
///
/// - `InvalidInput` if `kind` is not a signal number, or is one Weft
///   refuses: `SIGKILL` and `SIGSTOP` (they cannot be caught), and the
///   faults `SIGSEGV`, `SIGBUS`, `SIGILL` and `SIGFPE` (a handler that
///   returns would re-run the faulting instruction forever).
/// - An error if there is no Weft reactor on this thread (call it inside
///   `Runtime::block_on`, in a task, or after `Runtime::enter()`).
/// - As the OS reports them: the self-pipe or its duplicate cannot be made
///   (out of file descriptors), or `sigaction` refuses the number (one the
///   OS does not have, such as the real-time signals glibc keeps for
///   itself).
///
/// All but the last leave the signal's disposition as it was (the handler
/// is installed last); after a refusal by `sigaction`, it is as the OS
/// left it.
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    check_signal(kind.0)?;
    let reactor = Handle::try_current()?;
    let subscription = Subscription::new(kind.0, &reactor)?;
    Ok(Signal {
        kind,
        reactor,
        subscription,
    })
}

/// A listener for one kind of signal, made by [`signal`]; a stream of `()`,
/// one per delivery.
///
/// Deliveries that arrive while nobody is waiting are not queued one by
/// one: every delivery since the last [`recv`](Self::recv) returned is
/// reported by a single `Some(())` (the OS itself merges a signal sent
/// twice before it is handled). Every listener of a kind sees every
/// delivery, in whatever reactor it lives: listeners never take deliveries
/// from each other.
///
/// Dropping a listener removes it from its signal's list at once; the
/// handler stays installed (see [the module docs](super)).
pub struct Signal {
    kind: SignalKind,
    /// The reactor current when the listener was made: `recv` returns
    /// `None` once it has shut down.
    reactor: Handle,
    subscription: Subscription,
}

impl Signal {
    /// Waits for the next delivery: `Some(())` once the signal has been
    /// delivered since the last `recv` returned (or since the listener was
    /// made), however many times; `None` once the reactor the listener was
    /// made in has shut down (its runtime was dropped), and the signal was
    /// not delivered meanwhile.
    ///
    /// Cancel safe: dropping the future loses no delivery; the next `recv`
    /// reports it.
    pub async fn recv(&mut self) -> Option<()> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery, as [`recv`](Self::recv): `Pending`
    /// stores the task's waker, which is woken at the next delivery or at
    /// the reactor's shutdown. Spends one unit of the task's cooperative
    /// budget.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let budget = ready!(coop::poll_proceed(cx));
        let result = ready!(self.subscription.poll_delivery(cx, &self.reactor));
        budget.made_progress();
        Poll::Ready(result)
    }

    /// The kind of signal this listener waits for.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }
}

impl futures_core::Stream for Signal {
    type Item = ();

    /// As [`Signal::poll_recv`]; the stream ends (`None`) when the reactor
    /// shuts down.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut().poll_recv(cx)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("kind", &self.kind)
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}
