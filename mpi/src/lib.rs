//! MPI requests as events in Weft's loop.
//!
//! Point-to-point messages and collectives are posted at once and awaited
//! like sockets and timers: the loop tests every request in flight with
//! one `MPI_Testsome` per turn (the progress engine is a reactor
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
//!     let total = world.all_reduce(vec![rank as u64], ReduceOp::Sum).await?;
//!     println!("rank {rank}: sum of ranks {}", total[0]);
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
//! | `env.rs` | [`Mpi`]: initialise at `MPI_THREAD_SERIALIZED` and finalize once per process; why that level |
//! | `engine.rs` | the progress engine: pending requests, `MPI_Testsome` per loop turn, eager first test, the one MPI lock (its rules) |
//! | `window.rs` | the engine's wake protocol (spin while messages flow, wake a sleeping loop on a post), loom-checked |
//! | `op.rs` | [`Operation`]: a request as a future that owns its buffers; cancel on drop; the [`Promise`](weft_executor::future::Promise) seam |
//! | `comm.rs` | [`Communicator`]: send, recv, probe, collectives |
//! | `buffer.rs` | what an operation may own: [`SendBuffer`], [`RecvBuffer`], [`Plain`] |
//! | `pool.rs` | [`pool::MpiPool`]: named functions run on worker ranks (mpi4py.futures' role), with a TCP death notice |
//! | `status.rs`, `error.rs` | [`Status`], [`Error`] |
//!
//! # Safety of buffers in flight
//!
//! An operation owns its buffers (they move into it and come back when it
//! is awaited), because a borrowed buffer could be freed by leaking the
//! future with `mem::forget` while MPI still writes into it. Dropping an
//! operation early cancels a receive and keeps every buffer alive until
//! MPI has finished with it. Receives probe the message first
//! (`MPI_Improbe`) and size or check the buffer against it: Open MPI 4.1
//! writes past a buffer that is too small for the message it receives.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod buffer;
mod comm;
mod engine;
mod env;
mod error;
mod loom;
mod op;
pub mod pool;
mod status;
mod window;

pub use buffer::{Plain, RecvBuffer, SendBuffer};
pub use comm::{ANY_SOURCE, ANY_TAG, Communicator, Peer, ReduceOp, Tag};
pub use env::Mpi;
pub use error::Error;
pub use mpi::datatype::Equivalence;
pub use op::{Completed, Operation};
pub use status::Status;
