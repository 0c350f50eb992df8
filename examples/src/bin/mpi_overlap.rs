//! The one-loop point: a TCP echo server on every rank keeps answering,
//! within a fraction of a millisecond, while the ranks exchange large MPI
//! messages, all on the same loop and with no thread parked on MPI.
//!
//! ```text
//! cargo build --release -p weft-examples --features mpi --bin mpi_overlap
//! mpirun -n 2 target/release/mpi_overlap
//! ```
//!
//! Each rank serves echo on 127.0.0.1:(7100 + rank) and pings its own
//! server every 2 ms from a client task, recording round trips, while its
//! main task swaps 16 MiB buffers with a partner rank 20 times (both
//! directions at once). At the end, rank by rank: the MPI bandwidth, and
//! how many echo round trips were answered during the exchange and how
//! long they took. (A singleton exchanges with itself.)

use std::time::{Duration, Instant};
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::mpi::Mpi;
use weft::net::{TcpListener, TcpStream};

const BASE_PORT: u16 = 7100;
const MESSAGE: usize = 16 << 20;
const ROUNDS: usize = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mpi = Mpi::init()?;
    let world = mpi.world();
    // This rank's share of the node's cores.
    let rt = weft::mpi::runtime(&mpi)?;
    rt.block_on(async {
        let rank = world.rank();
        let port = BASE_PORT + rank as u16;
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        weft::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                weft::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });

        // The client: a ping every 2 ms until told to stop, and at least
        // one (a singleton's exchange with itself can end before the
        // first ping would).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = {
            let stop = stop.clone();
            weft::spawn(async move {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
                let mut rtts = Vec::new();
                let mut byte = [0u8; 1];
                loop {
                    let start = Instant::now();
                    stream.write_all(b"x").await?;
                    stream.read_exact(&mut byte).await?;
                    rtts.push(start.elapsed());
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    weft::time::sleep(Duration::from_millis(2)).await;
                }
                Ok::<_, std::io::Error>(rtts)
            })
        };

        // The exchange: send and receive 16 MiB at once, 20 times.
        let partner = if world.size() == 1 { 0 } else { rank ^ 1 };
        let start = Instant::now();
        let mut outgoing = vec![rank as u8; MESSAGE];
        let mut incoming = vec![0u8; MESSAGE];
        if partner < world.size() {
            for _ in 0..ROUNDS {
                let send = world.isend(outgoing, partner, 1);
                let (received, _) = world.recv_into(incoming, partner, 1).await?;
                let sent = send.await?;
                (outgoing, incoming) = (sent, received);
            }
        }
        let elapsed = start.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut rtts = client.await??;
        rtts.sort();
        let gib = (2 * MESSAGE * ROUNDS) as f64 / (1u64 << 30) as f64;
        println!(
            "rank {rank}: exchanged {:.2} GiB in {elapsed:.2?} ({:.2} GiB/s); echo answered {} pings meanwhile, median {:?}, max {:?}",
            gib,
            gib / elapsed.as_secs_f64(),
            rtts.len(),
            rtts[rtts.len() / 2],
            rtts[rtts.len() - 1],
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
