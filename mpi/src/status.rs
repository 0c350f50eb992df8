//! [`Status`]: what a completed receive (or probe) says about its message.

use crate::engine::Raw;
use crate::error::Error;
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
    /// Reads a probed message's status; `count` in whole elements of
    /// `item_size` bytes (the same count a receive of it reports, for any
    /// element type). Call under the MPI lock.
    pub(crate) fn from_raw(raw: &ffi::MPI_Status, item_size: usize) -> Status {
        // Unmeasurable: report none, which never over-states what a
        // receive would write.
        let bytes = message_bytes(raw).unwrap_or(0);
        Status::of_message(raw, bytes, item_size)
    }

    /// The status of a whole matched message of `bytes` bytes (`raw` is
    /// its probe's status) counted in elements of `item_size` bytes, as
    /// MPI's `MPI_Get_count` would count it: no elements unless the bytes
    /// are a whole number of them.
    pub(crate) fn of_message(raw: &ffi::MPI_Status, bytes: usize, item_size: usize) -> Status {
        let count = match item_size {
            0 => 0,
            size if bytes % size == 0 => bytes / size,
            _ => 0,
        };
        Status {
            source: raw.MPI_SOURCE,
            tag: raw.MPI_TAG,
            count,
        }
    }

    /// MPI's empty status (sends, collectives): any source, any tag, no
    /// elements.
    pub(crate) fn empty() -> Status {
        // SAFETY: reading constants MPI initialised.
        let (source, tag) = unsafe { (ffi::RSMPI_ANY_SOURCE, ffi::RSMPI_ANY_TAG) };
        Status { source, tag, count: 0 }
    }

    /// What a receive from `PROC_NULL` returns (MPI-3.1 §3.11): source
    /// `PROC_NULL`, any tag, no elements.
    pub(crate) fn null_peer() -> Status {
        // SAFETY: reading constants MPI initialised.
        let (source, tag) = unsafe { (ffi::RSMPI_PROC_NULL, ffi::RSMPI_ANY_TAG) };
        Status { source, tag, count: 0 }
    }

    /// The rank that sent the message (`PROC_NULL`'s value, negative, for
    /// a receive from [`PROC_NULL`](crate::PROC_NULL)).
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

/// Elements of `datatype` in a status, with a 64-bit count so that
/// messages past 2 GiB measure right. Call under the MPI lock.
fn elements(raw: &ffi::MPI_Status, datatype: Raw<ffi::MPI_Datatype>) -> Option<usize> {
    let mut count: ffi::MPI_Count = 0;
    // SAFETY: a local query of a status MPI filled in; the caller holds the
    // MPI lock.
    let rc = unsafe { ffi::MPI_Get_elements_x(raw, datatype.0, &mut count) };
    if rc != ffi::MPI_SUCCESS as c_int {
        return None;
    }
    // MPI_UNDEFINED (negative): not a whole number of elements.
    usize::try_from(count).ok()
}

/// The size in bytes of one element of `datatype` (0 if MPI cannot say,
/// which counts no elements). Call under the MPI lock.
pub(crate) fn type_size(datatype: Raw<ffi::MPI_Datatype>) -> usize {
    let mut size: ffi::MPI_Count = 0;
    // SAFETY: a local query of a committed datatype; the caller holds the
    // MPI lock.
    let rc = unsafe { ffi::MPI_Type_size_x(datatype.0, &mut size) };
    if rc != ffi::MPI_SUCCESS as c_int {
        return 0;
    }
    usize::try_from(size).unwrap_or(0)
}

/// The length in bytes of the message a status describes.
///
/// # Errors
///
/// An MPI error if MPI cannot say (which would leave a receive unable to
/// size its buffer safely).
pub(crate) fn message_bytes(raw: &ffi::MPI_Status) -> Result<usize, Error> {
    elements(raw, crate::comm::byte_datatype()).ok_or_else(|| Error::Mpi {
        code: ffi::MPI_ERR_COUNT as i32,
        class: ffi::MPI_ERR_COUNT as i32,
        message: "weft-mpi: MPI could not measure a matched message".into(),
    })
}
