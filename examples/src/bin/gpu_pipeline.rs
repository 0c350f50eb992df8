//! A GPU pipeline and a TCP echo server in one loop.
//!
//! ```text
//! cargo run --release -p weft-examples --bin gpu_pipeline -- [CHUNKS]
//! ```
//!
//! Four streams each take chunks through copy in -> kernels -> copy out,
//! so one stream's copies overlap another's kernels. Meanwhile an echo
//! server on 127.0.0.1 (an ephemeral port) and a client that pings it every
//! millisecond run on the same runtime. At the end the example checks every
//! chunk and prints how many echoes were answered while the GPU was busy
//! and the slowest round trip: GPU waits park no worker, so the server
//! keeps answering. Prints `skipped: no CUDA driver` without CUDA.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weft::gpu::{Gpu, GpuError, LaunchConfig, Stream};
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream};

const STREAMS: usize = 4;
const CHUNK: u32 = 1 << 16;
/// Kernel passes per chunk (each adds one).
const PASSES: u32 = 4;
/// How long each chunk's extra "compute" kernel runs.
const SPIN: Duration = Duration::from_micros(500);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let chunks: usize = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("usage: gpu_pipeline [CHUNKS]; `{arg}` is not a number"))?,
        None => 64,
    };
    let Some(gpu) = weft_examples::open_gpu("gpu_pipeline") else {
        return Ok(());
    };
    let rt = weft::Runtime::new()?;
    rt.block_on(run(gpu, chunks))
}

async fn run(gpu: Gpu, chunks: usize) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    weft::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((socket, _)) => {
                    weft::spawn(echo(socket));
                }
                Err(err) => weft_examples::accept_backoff("gpu_pipeline", &err).await,
            }
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = weft::spawn(ping(addr, stop.clone()));

    let started = Instant::now();
    let workers: Vec<_> = (0..STREAMS)
        .map(|s| {
            let gpu = gpu.clone();
            let mine: Vec<usize> = (s..chunks).step_by(STREAMS).collect();
            weft::spawn(async move { pipeline(gpu, mine).await })
        })
        .collect();
    let mut done = 0;
    for w in workers {
        done += w.await??;
    }
    let gpu_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (echoes, slowest) = pinger.await??;
    println!("gpu_pipeline: {done} chunks of {CHUNK} values through {STREAMS} streams in {gpu_time:?}, all correct");
    println!("gpu_pipeline: meanwhile the echo server answered {echoes} round trips; slowest {slowest:?}");
    let stats = gpu.stats();
    println!(
        "gpu_pipeline: {} GPU operations, {} polls ({} started by host functions)",
        stats.completed, stats.polls, stats.host_wakeups
    );
    if echoes == 0 {
        return Err("the echo server answered nothing while the GPU worked".into());
    }
    Ok(())
}

/// One stream's share of the chunks: each is copied in, bumped `PASSES`
/// times, given a compute kernel, copied out and checked. The pinned
/// buffers go round: a copy hands its buffer back when the device is done.
async fn pipeline(gpu: Gpu, chunks: Vec<usize>) -> Result<usize, GpuError> {
    let stream: Stream = gpu.stream()?;
    let module = gpu.load_ptx(weft::gpu::demo::PTX)?;
    let (add_one, spin) = (module.kernel("add_one")?, module.kernel("spin")?);
    let mut dev = stream.alloc_zeros::<u32>(CHUNK as usize)?;
    let mut host = gpu.pinned_zeroed::<u32>(CHUNK as usize)?;
    let spin_ns = SPIN.as_nanos() as u64;
    for &chunk in &chunks {
        let base = (chunk as u32) * CHUNK;
        for (i, v) in host.iter_mut().enumerate() {
            *v = base + i as u32;
        }
        // Enqueue everything, await only the last copy: the stream runs it
        // in order while this task sleeps.
        let copy_in = stream.copy_to_device(host, &mut dev);
        for _ in 0..PASSES {
            // SAFETY: add_one(unsigned *buf, unsigned n) stays in buf[0..n].
            drop(unsafe {
                stream
                    .launch(&add_one)
                    .arg(&mut dev)
                    .arg(&CHUNK)
                    .run(LaunchConfig::for_num_elems(CHUNK))
            });
        }
        // SAFETY: spin(unsigned long long ns) touches no memory.
        drop(unsafe { stream.launch(&spin).arg(&spin_ns).run(LaunchConfig::for_num_elems(1)) });
        let back = copy_in.await?;
        host = stream.copy_to_host(&dev, back).await?;
        if let Some(i) = (0..CHUNK as usize).find(|&i| host[i] != base + i as u32 + PASSES) {
            return Err(GpuError::InvalidArgument(format!(
                "chunk {chunk}: value {i} is {}, not {}",
                host[i],
                base + i as u32 + PASSES
            )));
        }
    }
    Ok(chunks.len())
}

async fn echo(mut socket: TcpStream) {
    let mut buf = [0u8; 64];
    while let Ok(n) = socket.read(&mut buf).await {
        if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Pings the echo server every millisecond until told to stop; returns the
/// round trips and the slowest.
async fn ping(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> std::io::Result<(u64, Duration)> {
    let mut socket = TcpStream::connect(addr).await?;
    let (mut count, mut slowest) = (0u64, Duration::ZERO);
    let mut buf = [0u8; 8];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok((count, slowest));
        }
        let sent = Instant::now();
        socket.write_all(&count.to_le_bytes()).await?;
        socket.read_exact(&mut buf).await?;
        if u64::from_le_bytes(buf) != count {
            return Err(std::io::Error::other("the echo came back wrong"));
        }
        slowest = slowest.max(sent.elapsed());
        count += 1;
        weft::time::sleep(Duration::from_millis(1)).await;
    }
}
