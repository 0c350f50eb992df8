//! [`Peer`] and [`Tag`]: who a message goes to or comes from, and its tag
//! (with MPI's wildcards and `PROC_NULL`).

use mpi::ffi;
use std::os::raw::c_int;

/// A rank to send to or receive from: mpi4py's `dest` and `source`.
/// Every method takes `impl Into<Peer>`, so a plain `i32` rank works
/// everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Any rank (`MPI_ANY_SOURCE`): receives and probes only.
    Any,
    /// No rank (`MPI_PROC_NULL`): a send to it or a receive from it
    /// completes at once and moves nothing (a halo exchange's edge).
    Null,
    /// This rank.
    Rank(i32),
}

impl From<i32> for Peer {
    fn from(rank: i32) -> Peer {
        Peer::Rank(rank)
    }
}

/// Which tag a message carries or a receive matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Any tag (`MPI_ANY_TAG`): receives and probes only.
    Any,
    /// This tag.
    Value(i32),
}

impl From<i32> for Tag {
    fn from(tag: i32) -> Tag {
        Tag::Value(tag)
    }
}

/// Matches a message from any rank (mpi4py's `MPI.ANY_SOURCE`).
pub const ANY_SOURCE: Peer = Peer::Any;
/// Matches a message with any tag (mpi4py's `MPI.ANY_TAG`).
pub const ANY_TAG: Tag = Tag::Any;
/// No rank: operations with it complete at once (mpi4py's
/// `MPI.PROC_NULL`).
pub const PROC_NULL: Peer = Peer::Null;

impl Peer {
    pub(crate) fn raw(self) -> c_int {
        // SAFETY: reading constants MPI initialised.
        unsafe {
            match self {
                Peer::Any => ffi::RSMPI_ANY_SOURCE,
                Peer::Null => ffi::RSMPI_PROC_NULL,
                Peer::Rank(rank) => rank,
            }
        }
    }
}

impl Tag {
    pub(crate) fn raw(self) -> c_int {
        match self {
            // SAFETY: reading a constant MPI initialised.
            Tag::Any => unsafe { ffi::RSMPI_ANY_TAG },
            Tag::Value(tag) => tag,
        }
    }
}
