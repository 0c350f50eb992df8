//! Every rank integrates its slice of 4/(1+x²) over [0, 1]; an all-reduce
//! adds the slices up to π on every rank, and a gather collects each
//! rank's share at rank 0.
//!
//! ```text
//! cargo build --release -p weft-examples --features mpi --bin mpi_allreduce
//! mpirun -n 4 --oversubscribe target/release/mpi_allreduce
//! ```
//!
//! (A singleton, `target/release/mpi_allreduce`, does all of it alone.)

use weft::mpi::{Mpi, ReduceOp};

/// Midpoint-rule intervals in all.
const INTERVALS: u64 = 20_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mpi = Mpi::init()?;
    let world = mpi.world();
    // This rank's share of the node's cores.
    let rt = weft::mpi::runtime(&mpi)?;
    rt.block_on(async {
        let (rank, size) = (world.rank() as u64, world.size() as u64);
        // This rank's intervals, computed off the loop.
        let share = weft::spawn_blocking(move || {
            let h = 1.0 / INTERVALS as f64;
            (rank..INTERVALS)
                .step_by(size as usize)
                .map(|i| {
                    let x = h * (i as f64 + 0.5);
                    4.0 / (1.0 + x * x)
                })
                .sum::<f64>()
                * h
        })
        .await?;
        let pi = world.all_reduce(vec![share], ReduceOp::Sum).await?[0];
        let shares = world.gather(vec![share], 0).await?;
        if let Some(shares) = shares {
            for (r, s) in shares.iter().enumerate() {
                println!("rank {r}: {s:.12}");
            }
            println!(
                "pi ≈ {pi:.12} (error {:.1e}) from {size} ranks",
                (pi - std::f64::consts::PI).abs()
            );
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
