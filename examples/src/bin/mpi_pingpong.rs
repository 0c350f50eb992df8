//! One-way MPI latency, awaited in a Weft task against blocking calls, for
//! messages from 8 B to 1 MiB.
//!
//! ```text
//! cargo build --release -p weft-examples --features mpi --bin mpi_pingpong
//! mpirun -n 2 target/release/mpi_pingpong
//! ```
//!
//! Rank 0 and rank 1 bounce one buffer back and forth; half a round trip is
//! the one-way latency. "awaited" runs the loop as a task: each send and
//! receive is posted, and the task sleeps until the loop's progress engine
//! sees it complete. "blocking" calls `MPI_Send`/`MPI_Recv` on the thread.
//! Both run in the same process, at the thread level Weft uses
//! (`MPI_THREAD_SERIALIZED`). The runtime has one worker, so each rank has
//! one busy thread either way.

use weft::mpi::Mpi;

#[path = "../pingpong.rs"]
mod pingpong;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mpi = Mpi::init()?;
    let world = mpi.world();
    if world.size() < 2 {
        eprintln!("mpi_pingpong needs two ranks: mpirun -n 2 target/release/mpi_pingpong");
        return Ok(());
    }
    let rt = weft::Builder::new_multi_thread().worker_threads(1).build()?;
    let blocking = mpi::topology::SimpleCommunicator::world();
    if world.rank() == 0 {
        println!(
            "{:>9}  {:>12}  {:>12}  {:>8}",
            "bytes", "awaited µs", "blocking µs", "ratio"
        );
    }
    for bytes in [8, 64, 512, 4 << 10, 32 << 10, 256 << 10, 1 << 20] {
        let trips = if bytes <= 4096 { 5000 } else { 200 };
        let w = world.clone();
        // Warm up, then measure.
        let awaited = rt.block_on(async move {
            weft::spawn(async move {
                pingpong::awaited(&w, bytes, trips / 10).await?;
                pingpong::awaited(&w, bytes, trips).await
            })
            .await
            .expect("the ping-pong task")
        })?;
        let blocked = {
            // Our own MPI calls go through Weft's lock (weft-mpi's thread
            // rules).
            let _mpi = mpi.lock();
            pingpong::blocking(&blocking, bytes, trips / 10);
            pingpong::blocking(&blocking, bytes, trips)
        };
        if world.rank() == 0 {
            println!(
                "{bytes:>9}  {:>12.2}  {:>12.2}  {:>8.2}",
                awaited * 1e6,
                blocked * 1e6,
                awaited / blocked
            );
        }
    }
    Ok(())
}
