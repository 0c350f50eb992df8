//! # weft-io: the reactor
//!
//! This crate will hold the half of Weft that talks to the operating system:
//!
//! - the **reactor**, a `mio::Poll` (epoll on Linux, kqueue on BSD and macOS)
//!   whose registrations live in a slab with generation-tagged tokens;
//! - **timers** on a hierarchical timing wheel (`sleep`, `timeout`, `interval`);
//! - **sources**: work with no file descriptor (MPI requests, CUDA events)
//!   that the loop polls each turn and that bound how long it may sleep, and
//!   the thread-safe **completion notifier** foreign threads use to hand a
//!   result to the loop;
//! - the **networking types**: TCP, UDP and Unix sockets.
//!
//! It knows file descriptors, timers and wakers, and nothing of tasks: the
//! runtime (crate `weft`) plugs it into the executor through the executor's
//! `Park` trait. It is filled by the reactor issue; until then it is empty on
//! purpose, so that nothing depends on an API that does not exist yet.
