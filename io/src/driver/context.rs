//! The reactor a thread uses when it creates sockets and timers.
//!
//! The runtime makes its reactor current on every thread that runs its
//! tasks, and inside `block_on`; code there finds it with
//! [`Handle::current`].

use super::Handle;
use std::cell::RefCell;
use std::fmt;

std::thread_local! {
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// There is no reactor to use on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryCurrentError(());

const NO_REACTOR: &str = "there is no Weft reactor on this thread: create sockets and timers inside \
     `Runtime::block_on`, in a task the runtime runs, or after `Runtime::enter()`";

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NO_REACTOR)
    }
}

impl std::error::Error for TryCurrentError {}

impl From<TryCurrentError> for std::io::Error {
    fn from(err: TryCurrentError) -> std::io::Error {
        std::io::Error::other(err)
    }
}

impl Handle {
    /// The reactor current on this thread.
    ///
    /// # Panics
    ///
    /// If there is none; [`try_current`](Handle::try_current) returns an
    /// error instead.
    #[track_caller]
    pub fn current() -> Handle {
        Handle::try_current().unwrap_or_else(|err| panic!("{err}"))
    }

    /// The reactor current on this thread, if any.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        CURRENT
            .try_with(|current| current.borrow().clone())
            .ok()
            .flatten()
            .ok_or(TryCurrentError(()))
    }

    /// Runs `f` with the reactor current on this thread, if any, without
    /// cloning the handle (for hot paths that only compare it, with
    /// [`Handle::id`]).
    pub fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
        let mut f = Some(f);
        let out = CURRENT.try_with(|current| (f.take().expect("called once"))(current.borrow().as_ref()));
        match out {
            Ok(out) => out,
            // The thread is being torn down: no reactor.
            Err(_) => (f.take().expect("not called yet"))(None),
        }
    }

    /// Makes this reactor current on this thread until the guard drops.
    pub fn enter(&self) -> EnterGuard {
        let prev = CURRENT.try_with(|current| current.replace(Some(self.clone()))).ok();
        EnterGuard { prev }
    }
}

/// Restores the previously current reactor; see [`Handle::enter`].
#[must_use = "the reactor stays current only while the guard lives"]
pub struct EnterGuard {
    prev: Option<Option<Handle>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        if let Some(prev) = self.prev.take() {
            let replaced = CURRENT.try_with(|current| current.replace(prev));
            drop(replaced);
        }
    }
}

impl fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}
