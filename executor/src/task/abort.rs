//! `AbortHandle`: a handle that can only cancel.

use super::Id;
use super::raw::RawTask;
use std::fmt;

/// A cloneable handle that cancels a task without owning its output.
///
/// Made by [`JoinHandle::abort_handle`](super::JoinHandle::abort_handle).
/// Dropping it does nothing to the task.
pub struct AbortHandle {
    raw: RawTask,
}

// SAFETY: the handle only touches the atomic state word and, through
// `abort`, asks the task's (`Sync`) scheduler to run it; it never reaches the
// future or the output.
unsafe impl Send for AbortHandle {}
// SAFETY: as for `Send`.
unsafe impl Sync for AbortHandle {}

impl AbortHandle {
    pub(super) fn new(raw: RawTask) -> AbortHandle {
        AbortHandle { raw }
    }

    /// Cancels the task; see [`JoinHandle::abort`](super::JoinHandle::abort).
    pub fn abort(&self) {
        let _ = self.raw.remote_abort();
    }

    /// True if the task has finished: returned, panicked or been cancelled.
    pub fn is_finished(&self) -> bool {
        self.raw.state().load().is_complete()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.raw.header().id
    }
}

impl Clone for AbortHandle {
    fn clone(&self) -> AbortHandle {
        self.raw.ref_inc();
        AbortHandle { raw: self.raw }
    }
}

impl Drop for AbortHandle {
    fn drop(&mut self) {
        self.raw.drop_reference();
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
