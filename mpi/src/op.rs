//! [`ReduceOp`]: the reduction operations (`MPI_Op`) of
//! [`Communicator::reduce`](crate::Communicator::reduce) and
//! [`all_reduce`](crate::Communicator::all_reduce).

use mpi::ffi;

/// A reduction operation for [`Communicator::reduce`](crate::Communicator::reduce)
/// and [`all_reduce`](crate::Communicator::all_reduce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// `MPI_SUM` (integers wrap).
    Sum,
    /// `MPI_PROD` (integers wrap).
    Prod,
    /// `MPI_MIN`.
    Min,
    /// `MPI_MAX`.
    Max,
    /// `MPI_LAND`: 1 if both are non-zero, else 0.
    LogicalAnd,
    /// `MPI_LOR`.
    LogicalOr,
    /// `MPI_BAND` (integers only).
    BitAnd,
    /// `MPI_BOR` (integers only).
    BitOr,
    /// `MPI_BXOR` (integers only).
    BitXor,
}

impl ReduceOp {
    const ALL: [ReduceOp; 9] = [
        ReduceOp::Sum,
        ReduceOp::Prod,
        ReduceOp::Min,
        ReduceOp::Max,
        ReduceOp::LogicalAnd,
        ReduceOp::LogicalOr,
        ReduceOp::BitAnd,
        ReduceOp::BitOr,
        ReduceOp::BitXor,
    ];

    pub(crate) fn raw(self) -> ffi::MPI_Op {
        // SAFETY: reading constants MPI initialised.
        unsafe {
            match self {
                ReduceOp::Sum => ffi::RSMPI_SUM,
                ReduceOp::Prod => ffi::RSMPI_PROD,
                ReduceOp::Min => ffi::RSMPI_MIN,
                ReduceOp::Max => ffi::RSMPI_MAX,
                ReduceOp::LogicalAnd => ffi::RSMPI_LAND,
                ReduceOp::LogicalOr => ffi::RSMPI_LOR,
                ReduceOp::BitAnd => ffi::RSMPI_BAND,
                ReduceOp::BitOr => ffi::RSMPI_BOR,
                ReduceOp::BitXor => ffi::RSMPI_BXOR,
            }
        }
    }

    /// The op's number in an agreement record (never 0).
    pub(crate) fn code(self) -> u32 {
        Self::ALL.iter().position(|op| *op == self).expect("every op is listed") as u32 + 1
    }

    pub(crate) fn from_code(code: u32) -> Option<ReduceOp> {
        Self::ALL.get((code as usize).checked_sub(1)?).copied()
    }
}
