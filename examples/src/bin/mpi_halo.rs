//! A 1-D heat equation solved by explicit steps over ranks, the classic
//! mpi4py halo exchange: each rank owns a slice of the rod (uneven: the
//! rod does not divide evenly), swaps its edge values with its neighbours
//! every step (`sendrecv` on a Cartesian grid, `PROC_NULL` past the ends),
//! and all ranks agree on the step's residual with an `all_reduce`.
//!
//! ```text
//! cargo build --release -p weft-examples --features mpi --bin mpi_halo
//! mpirun -n 2 target/release/mpi_halo
//! mpirun -n 4 --oversubscribe target/release/mpi_halo
//! ```
//!
//! The awaited solver posts each step's halo exchange, updates the points
//! that need no neighbour value while it is in flight, then the two edge
//! points. The same solver with blocking rsmpi calls runs next, for the
//! time, and rank 0 checks both against a serial run of the same steps:
//! every value must be identical. (A singleton does it all alone.)

use std::time::Instant;
use weft::mpi::{CartComm, Mpi, ReduceOp};

/// Interior points of the rod.
const POINTS: usize = 1_000_003;
/// Explicit steps.
const STEPS: usize = 200;
/// The heat equation's `dt / dx²` (stable below 0.5).
const R: f64 = 0.25;
/// The rod's ends, held fixed.
const LEFT_END: f64 = 1.0;
const RIGHT_END: f64 = 0.0;

/// The points rank `rank` of `size` owns: `[start, start + len)`.
fn share(rank: usize, size: usize) -> (usize, usize) {
    let (base, extra) = (POINTS / size, POINTS % size);
    let len = base + usize::from(rank < extra);
    (rank * base + rank.min(extra), len)
}

/// One explicit step of `u` (with ghost cells at both ends) into `next`;
/// the largest change.
fn step(u: &[f64], next: &mut [f64], range: std::ops::Range<usize>) -> f64 {
    let mut change: f64 = 0.0;
    for i in range {
        next[i] = u[i] + R * (u[i - 1] - 2.0 * u[i] + u[i + 1]);
        change = change.max((next[i] - u[i]).abs());
    }
    change
}

/// The serial run: every point, every step.
fn serial() -> Vec<f64> {
    let mut u = vec![0.0; POINTS + 2];
    u[0] = LEFT_END;
    u[POINTS + 1] = RIGHT_END;
    let mut next = u.clone();
    for _ in 0..STEPS {
        step(&u, &mut next, 1..POINTS + 1);
        std::mem::swap(&mut u, &mut next);
    }
    u[1..=POINTS].to_vec()
}

/// This rank's slice with ghost cells, the ends fixed where it touches them.
fn initial(rank: usize, size: usize) -> Vec<f64> {
    let (_, len) = share(rank, size);
    let mut u = vec![0.0; len + 2];
    if rank == 0 {
        u[0] = LEFT_END;
    }
    if rank == size - 1 {
        u[len + 1] = RIGHT_END;
    }
    u
}

/// The awaited solver; this rank's slice at the end and the last residual.
async fn awaited(grid: &CartComm) -> Result<(Vec<f64>, f64), weft::mpi::Error> {
    let (rank, size) = (grid.rank() as usize, grid.size() as usize);
    let (left, right) = grid.shift(0, 1);
    let mut u = initial(rank, size);
    let mut next = u.clone();
    let len = u.len() - 2;
    let mut residual = 0.0;
    for _ in 0..STEPS {
        // Post both halves of the exchange: my first point to the left,
        // my last to the right; ghosts from both.
        let from_left = grid.sendrecv::<_, f64>(vec![u[len]], right, 0, left, 0);
        let from_right = grid.sendrecv::<_, f64>(vec![u[1]], left, 1, right, 1);
        // The points that need no ghost, while the exchange is in flight.
        let mut change = step(&u, &mut next, 2..len.max(2));
        let (ghost, _) = from_left.await?;
        if let Some(&g) = ghost.first() {
            u[0] = g;
        }
        let (ghost, _) = from_right.await?;
        if let Some(&g) = ghost.first() {
            u[len + 1] = g;
        }
        change = change.max(step(&u, &mut next, 1..2));
        if len > 1 {
            change = change.max(step(&u, &mut next, len..len + 1));
        }
        (next[0], next[len + 1]) = (u[0], u[len + 1]);
        std::mem::swap(&mut u, &mut next);
        residual = grid.all_reduce(vec![change], ReduceOp::Max).await?[0];
    }
    Ok((u[1..=len].to_vec(), residual))
}

/// The same solver with blocking rsmpi calls (under Weft's MPI lock).
fn blocking(world: &mpi::topology::SimpleCommunicator) -> (Vec<f64>, f64) {
    use mpi::collective::SystemOperation;
    use mpi::point_to_point::send_receive_into;
    use mpi::traits::*;
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let mut u = initial(rank, size);
    let mut next = u.clone();
    let len = u.len() - 2;
    let mut residual = 0.0;
    for _ in 0..STEPS {
        // Even ranks talk right first, odd ranks left first: no deadlock.
        let exchange = |u: &mut Vec<f64>, toward_right: bool| {
            if toward_right && rank + 1 < size {
                let peer = world.process_at_rank(rank as i32 + 1);
                let mut ghost = 0.0;
                send_receive_into(&u[len], &peer, &mut ghost, &peer);
                u[len + 1] = ghost;
            } else if !toward_right && rank > 0 {
                let peer = world.process_at_rank(rank as i32 - 1);
                let mut ghost = 0.0;
                send_receive_into(&u[1], &peer, &mut ghost, &peer);
                u[0] = ghost;
            }
        };
        exchange(&mut u, rank % 2 == 0);
        exchange(&mut u, rank % 2 == 1);
        let change = step(&u, &mut next, 1..len + 1);
        (next[0], next[len + 1]) = (u[0], u[len + 1]);
        std::mem::swap(&mut u, &mut next);
        world.all_reduce_into(&change, &mut residual, SystemOperation::max());
    }
    (u[1..=len].to_vec(), residual)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mpi = Mpi::init()?;
    // This rank's share of the node's cores.
    let rt = weft::mpi::runtime(&mpi)?;
    let world = mpi.world();
    let (rank, size) = (world.rank(), world.size());
    let (mine, awaited_time, residual) = rt.block_on(async {
        let grid = world.cart_create(&[size], &[false]).await?;
        grid.barrier().await?;
        let start = Instant::now();
        let (mine, residual) = awaited(&grid).await?;
        Ok::<_, weft::mpi::Error>((mine, start.elapsed(), residual))
    })?;
    let (blocked, blocking_time, blocking_residual) = {
        use mpi::traits::*;
        let _mpi = mpi.lock();
        let raw = mpi::topology::SimpleCommunicator::world();
        raw.barrier();
        let start = Instant::now();
        let (u, residual) = blocking(&raw);
        (u, start.elapsed(), residual)
    };
    assert_eq!(mine, blocked, "rank {rank}: the awaited and blocking solvers agree");
    assert_eq!(residual, blocking_residual);
    let gathered = rt.block_on(world.gatherv(mine, 0))?;
    let times = rt.block_on(world.gather(vec![awaited_time.as_secs_f64(), blocking_time.as_secs_f64()], 0))?;
    if let (Some(slices), Some(times)) = (gathered, times) {
        let all: Vec<f64> = slices.concat();
        let reference = serial();
        assert_eq!(all.len(), reference.len());
        let worst = all
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst == 0.0, "the parallel run differs from the serial one by {worst}");
        // The slowest rank sets the time.
        let slowest = |k: usize| times.iter().skip(k).step_by(2).fold(0.0f64, |a, &b| a.max(b));
        let (awaited_s, blocking_s) = (slowest(0), slowest(1));
        println!(
            "{POINTS} points, {STEPS} steps, {size} ranks ({} worker(s) each): identical to the serial run; residual {residual:.3e}",
            mpi.cores_per_rank()
        );
        println!(
            "awaited {:.1} ms, blocking {:.1} ms, ratio {:.2}",
            awaited_s * 1e3,
            blocking_s * 1e3,
            awaited_s / blocking_s
        );
    }
    Ok(())
}
