//! MPI requests as events in Weft's loop.
//!
//! Point-to-point messages and collectives are posted when they are made
//! (as `MPI_Isend`, `MPI_Irecv` and `MPI_Iallreduce` are) and awaited like
//! sockets and timers: the loop tests the requests in flight with
//! `MPI_Testsome` each turn (the progress engine is a reactor
//! [source](weft_io::source)), so a task waiting for a message parks no
//! thread, and one program overlaps network I/O, GPU work and MPI traffic.
//!
//! ```no_run
//! use weft_mpi::{Mpi, ReduceOp};
//!
//! let mpi = Mpi::init()?;
//! let world = mpi.world();
//! let rt = weft::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let (rank, size) = (world.rank(), world.size());
//!     if size > 1 {
//!         if rank == 0 {
//!             world.send(&[1u64, 2, 3], 1, 7).await?;
//!         } else if rank == 1 {
//!             let (data, status) = world.recv::<u64>(0, 7).await?;
//!             assert_eq!((data, status.source()), (vec![1, 2, 3], 0));
//!         }
//!     }
//!     // Posted now; the computation overlaps it; awaited when needed.
//!     let total = world.all_reduce(vec![rank as u64], ReduceOp::Sum);
//!     let local: u64 = (0..1000).sum();
//!     println!("rank {rank}: sum of ranks {}, local {local}", total.await?[0]);
//!     Ok::<(), weft_mpi::Error>(())
//! })?;
//! # Ok::<(), weft_mpi::Error>(())
//! ```
//!
//! Run it as a singleton (`cargo run`) or on several ranks
//! (`mpirun -n 2 target/debug/...`).
//!
//! # How it is built
//!
//! | file | what |
//! | --- | --- |
//! | `env.rs` | [`Mpi`], [`MpiBuilder`]: initialise and finalize once per process (on Weft's own MPI thread), the thread rules, this node's ranks and cores |
//! | `doorbell.rs` | doorbells: a send rings the destination's loop awake, so a rank that sleeps between idle polls answers at once |
//! | `liveness.rs` | the death notice: ranks watch each other over TCP, so a death fails what needs the dead rank instead of hanging |
//! | `engine/mod.rs` | the progress engine: its rules, the one MPI lock, a loop turn, the reactor [source](weft_io::source::Source) |
//! | `engine/requests.rs` | the request window: `MPI_Testsome` over a ring of pending requests, none starved |
//! | `engine/matching.rs` | receive matching: waiting receives (with their counts, one private type) and unclaimed messages |
//! | `engine/collective.rs` | collectives as units of stages, run whole and in the order started |
//! | `engine/activity.rs` | when the loop spins, sleeps, or must be woken (time-based spin window), loom-checked |
//! | `request.rs` | [`Request`]: an operation as a future that owns its buffers; [`Completion`], [`wait_all`], [`wait_any`]; the [`Promise`](weft_executor::future::Promise) seam |
//! | `comm.rs` | [`Communicator`]: send, receive, `sendrecv`, probe, object messages |
//! | `envelope.rs`, `op.rs` | [`Peer`], [`Tag`] (with `ANY_*` and `PROC_NULL`); [`ReduceOp`] |
//! | `collective.rs` | the collectives as units: barrier, broadcast, reductions, gathers, scatter, all-to-all, `bcast_obj` |
//! | `varying.rs` | `gatherv`, `all_gatherv`, `scatterv`: lengths that vary by rank |
//! | `agreement.rs` | the check every collective starts with (an all-reduce of a fixed record under Weft's own merge, in point-to-point rounds on the communicator's hidden twin), which carries small data too |
//! | `topology.rs` | `duplicate`, and [`CartComm`]: Cartesian topologies (`cart_create`, `cart_shift`) |
//! | `buffer.rs` | what an operation may own: [`SendBuffer`], [`RecvBuffer`], [`Plain`], [`Numeric`], [`Element`] |
//! | `pool/` | [`pool::MpiPool`]: typed jobs run on worker ranks (mpi4py.futures' role), with a lifecycle and a TCP death notice |
//! | `status.rs`, `error.rs` | [`Status`], [`Error`] |
//!
//! # Safety of buffers in flight
//!
//! An operation owns its buffers (they move into it and come back when it
//! is awaited), because a borrowed buffer could be freed by leaking the
//! future with `mem::forget` while MPI still writes into it. Dropping a
//! request early cancels a receive no message has matched and keeps every
//! buffer alive until MPI has finished with it. Receives match the message
//! first (`MPI_Improbe`) and size or check the buffer against it: Open MPI
//! 4.1 writes past a buffer that is too small for the message it receives.
//! Collectives first agree on their lengths, so no rank's mistake makes MPI
//! write past another's buffer.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod agreement;
mod buffer;
mod collective;
mod comm;
mod doorbell;
mod engine;
mod env;
mod envelope;
mod error;
mod liveness;
mod loom;
mod op;
pub mod pool;
mod request;
mod status;
mod topology;
mod varying;

pub use buffer::{Element, Numeric, Plain, RecvBuffer, Scalar, SendBuffer};
pub use comm::Communicator;
pub use env::{DEFAULT_MAX_SLEEP, DEFAULT_SPIN_WINDOW, Mpi, MpiBuilder, MpiLock, Threading};
pub use envelope::{ANY_SOURCE, ANY_TAG, PROC_NULL, Peer, Tag};
pub use error::Error;
pub use mpi::datatype::Equivalence;
pub use op::ReduceOp;
pub use request::{Completed, Completion, Request, wait_all, wait_any};
pub use status::Status;
pub use topology::{CartComm, dims_create};
