//! The ping-pong loops of `mpi_pingpong`, shared with the benchmark suite
//! `mpi` (which includes this file), so both measure the same thing.
//!
//! Ranks 0 and 1 bounce one buffer back and forth `trips` times (other
//! ranks only join the barrier); the result is half the mean round trip,
//! in seconds: the one-way latency.

use std::time::Instant;
use weft::mpi::{Communicator, Error};

/// The loop as a task: each send and receive awaited.
pub(crate) async fn awaited(world: &Communicator, bytes: usize, trips: usize) -> Result<f64, Error> {
    let rank = world.rank();
    let peer = 1 - rank.min(1);
    let mut buf = vec![0u8; bytes];
    world.barrier().await?;
    let start = Instant::now();
    if rank <= 1 {
        for _ in 0..trips {
            if rank == 0 {
                buf = world.isend(buf, peer, 0).await?;
                buf = world.recv_into(buf, peer, 0).await?.0;
            } else {
                buf = world.recv_into(buf, peer, 0).await?.0;
                buf = world.isend(buf, peer, 0).await?;
            }
        }
    }
    Ok(start.elapsed().as_secs_f64() / trips as f64 / 2.0)
}

/// The same with blocking `MPI_Send`/`MPI_Recv` (rsmpi) on this thread.
pub(crate) fn blocking(world: &mpi::topology::SimpleCommunicator, bytes: usize, trips: usize) -> f64 {
    use mpi::traits::*;
    let rank = world.rank();
    let mut buf = vec![0u8; bytes];
    world.barrier();
    let start = Instant::now();
    if rank <= 1 {
        let peer = world.process_at_rank(1 - rank);
        for _ in 0..trips {
            if rank == 0 {
                peer.send(&buf[..]);
                peer.receive_into(&mut buf[..]);
            } else {
                peer.receive_into(&mut buf[..]);
                peer.send(&buf[..]);
            }
        }
    }
    start.elapsed().as_secs_f64() / trips as f64 / 2.0
}
