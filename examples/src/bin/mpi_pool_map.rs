//! Distributed prime counting with the MPI pool (mpi4py.futures'
//! `MPIPoolExecutor.map`), and its speed-up over rank 0 alone.
//!
//! ```text
//! cargo build --release -p weft-examples --features mpi --bin mpi_pool_map
//! mpirun -n 3 --oversubscribe target/release/mpi_pool_map
//! ```
//!
//! Every rank registers `count_primes` under the same name; rank 0 maps it
//! over 64 ranges below 4,000,000, four ranges per message, and the worker
//! ranks run them as they free up. Rank 0 then counts the same ranges
//! itself, to compare. (With more ranks than cores the speed-up is capped by
//! the cores.)

use std::time::Instant;
use weft::mpi::Mpi;
use weft::mpi::pool::{MpiPool, Registry};

const LIMIT: u64 = 4_000_000;
const RANGES: u64 = 64;

/// Primes in `[start, end)`, by trial division (deliberately CPU-bound).
fn count_primes((start, end): (u64, u64)) -> u64 {
    (start.max(2)..end)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mpi = Mpi::init()?;
    let world = mpi.world();
    // This rank's share of the node's cores.
    let rt = weft::mpi::runtime(&mpi)?;
    rt.block_on(async {
        let mut registry = Registry::new();
        let count_primes_job = registry.register("count_primes", count_primes);
        let Some(pool) = MpiPool::start(&world, registry).await? else {
            return Ok(()); // a worker rank: served until rank 0 shut the pool
        };
        let step = LIMIT / RANGES;
        let ranges: Vec<(u64, u64)> = (0..RANGES).map(|i| (i * step, (i + 1) * step)).collect();

        let start = Instant::now();
        let counts = pool.map_chunked(&count_primes_job, ranges.clone(), 4).await?;
        let parallel = start.elapsed();
        let total: u64 = counts.iter().sum();

        let start = Instant::now();
        let alone: u64 = weft::spawn_blocking(move || ranges.into_iter().map(count_primes).sum()).await?;
        let serial = start.elapsed();
        assert_eq!(alone, total);

        println!("primes below {LIMIT}: {total}");
        println!("{:>8}  {:>10}  {:>8}", "workers", "time", "speed-up");
        println!("{:>8}  {:>10.3?}  {:>8.2}", "rank 0", serial, 1.0);
        println!(
            "{:>8}  {:>10.3?}  {:>8.2}",
            pool.workers(),
            parallel,
            serial.as_secs_f64() / parallel.as_secs_f64()
        );
        // Dropping the pool would release the workers too.
        pool.shutdown().await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
