//! # weft-gpu: CUDA work as events in the loop
//!
//! This crate will let a task `await` CUDA work (copies between host and
//! device, kernel launches, recorded events) without parking a worker thread:
//! completions arrive through `weft-io`'s completion notifier or are polled as
//! a source, in the same loop as sockets and timers. It builds without a CUDA
//! installation (cudarc with dynamic loading) and reports a missing driver as
//! an error, never a panic. Until its issue lands it is empty on purpose.
