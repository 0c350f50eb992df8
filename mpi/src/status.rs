//! [`Status`]: what a completed receive (or probe) says about its message.

use crate::engine::Raw;
use mpi::ffi;
use std::os::raw::c_int;

/// The envelope of a received or probed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    source: i32,
    tag: i32,
    count: usize,
}

impl Status {
    /// Reads a raw status; `count` in elements of `datatype`. Call under
    /// the MPI lock.
    pub(crate) fn from_raw(raw: &ffi::MPI_Status, datatype: Raw<ffi::MPI_Datatype>) -> Status {
        let mut count: c_int = 0;
        // SAFETY: a local query of a status MPI filled in; the caller holds
        // the MPI lock.
        unsafe { ffi::MPI_Get_count(raw, datatype.0, &mut count) };
        Status {
            source: raw.MPI_SOURCE,
            tag: raw.MPI_TAG,
            // MPI_UNDEFINED (negative) when the byte count is not a whole
            // number of elements: report what fits.
            count: usize::try_from(count).unwrap_or(0),
        }
    }

    /// The rank that sent the message.
    pub fn source(&self) -> i32 {
        self.source
    }

    /// The message's tag.
    pub fn tag(&self) -> i32 {
        self.tag
    }

    /// Elements in the message (of the type it was received or probed as).
    pub fn count(&self) -> usize {
        self.count
    }
}
