//! # weft-mpi: MPI requests as events in the loop
//!
//! This crate will let a task `await` MPI point-to-point and collective
//! operations: requests are tested in batches (`MPI_Testsome`) by a source in
//! `weft-io`'s loop, so one program overlaps messages with network I/O and
//! timers. It will also hold a distributed pool in the style of
//! `mpi4py.futures`. Until its issue lands it is empty on purpose, and it does
//! not yet link against an MPI library.
