//! [`Cancel`]: what can be cancelled by an explicit act, and is, by
//! `wait_for`'s timeout.

use super::promise::{Promise, Shield};
use crate::task::{AbortHandle, JoinHandle};

/// Work that can be cancelled by an explicit act: a [`Promise`], a task
/// handle ([`JoinHandle`], which is also asyncio's [`Task`](super::Task)), an
/// [`AbortHandle`]. Dropping one never cancels it (a dropped future is
/// routine in Rust: `timeout`, `race`, `select`); asyncio's `wait_for` does
/// cancel what it waited for when the time is up, and so does Weft's
/// (`weft::future::wait_for`, in the runtime crate), through this trait.
/// A [`Shield`] implements it by cancelling nothing, which is what
/// [`shield`](super::shield) is for.
pub trait Cancel {
    /// Cancels it; true if this call did (false if it was already done, or,
    /// for a shield, always).
    fn cancel(&self) -> bool;
}

impl<T> Cancel for Promise<T> {
    fn cancel(&self) -> bool {
        Promise::cancel(self)
    }
}

impl<T> Cancel for JoinHandle<T> {
    fn cancel(&self) -> bool {
        JoinHandle::cancel(self)
    }
}

impl Cancel for AbortHandle {
    fn cancel(&self) -> bool {
        let done = self.is_finished();
        self.abort();
        !done
    }
}

impl<T> Cancel for Shield<T> {
    fn cancel(&self) -> bool {
        false
    }
}

impl<C: Cancel + ?Sized> Cancel for &mut C {
    fn cancel(&self) -> bool {
        (**self).cancel()
    }
}
