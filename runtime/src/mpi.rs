//! MPI requests awaited as loop events (feature `mpi`): everything of
//! [`weft_mpi`], and the runtime a rank should run.
//!
//! With several ranks on a node, a runtime per rank with a worker per core
//! oversubscribes the node from the start (four ranks on eight cores would
//! run 32 workers). [`runtime`] gives each rank its share of the node's
//! cores instead ([`Mpi::cores_per_rank`]: the cores the node's ranks may
//! use, divided among them, at least one):
//!
//! ```no_run
//! let mpi = weft::mpi::Mpi::init()?;
//! let rt = weft::mpi::runtime(&mpi)?;
//! let world = mpi.world();
//! rt.block_on(async {
//!     let sum = world.all_reduce(vec![1u64], weft::mpi::ReduceOp::Sum).await?;
//!     println!("{} ranks", sum[0]);
//!     Ok::<(), weft::mpi::Error>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use weft_mpi::*;

use crate::{Builder, Runtime};

/// A multi-thread runtime builder with this rank's share of the node's
/// cores as its worker count ([`Mpi::cores_per_rank`]); set anything else
/// on it before `build`.
pub fn builder(mpi: &Mpi) -> Builder {
    let mut builder = Builder::new_multi_thread();
    builder.worker_threads(mpi.cores_per_rank());
    builder
}

/// A runtime for this rank: [`builder`], built.
///
/// # Errors
///
/// As [`Builder::build`].
pub fn runtime(mpi: &Mpi) -> std::io::Result<Runtime> {
    builder(mpi).build()
}
