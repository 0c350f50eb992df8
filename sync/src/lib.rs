//! # weft-sync: runtime-agnostic synchronisation
//!
//! This crate will hold Weft's locks, semaphores, events and channels: the
//! vocabulary of Tokio (`Mutex`, `RwLock`, `Semaphore`, `Notify`, mpsc,
//! oneshot, broadcast, watch) and of Python's `threading` and `asyncio`
//! (`Lock`, `Condition`, `Event`, `Barrier`, `Queue`), built on one
//! model-checked core.
//!
//! It needs nothing from a runtime but `std::task::Waker`, so it works on
//! Weft, on Tokio, on smol or under a bare `block_on`. It depends on no other
//! Weft crate. Until its issue lands it is empty on purpose.
