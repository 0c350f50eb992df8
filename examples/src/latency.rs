//! The GPU latency measurements, shared by the `gpu_latency` example and
//! the `gpu` benchmark suite (which includes this file by path).
//!
//! - *Awaited* launch latency: launch the empty kernel and await it, one
//!   at a time, on a Weft runtime.
//! - *Spin* latency, the baseline: launch the empty kernel and block in
//!   `cuStreamSynchronize` (which spins under CUDA's default scheduling
//!   when there are fewer contexts than cores), on a plain thread.
//! - *CPU while awaiting*: the process's CPU time while a task awaits
//!   10 ms kernels, as a share of one core.

use std::time::{Duration, Instant};
use weft::gpu::{Gpu, GpuError, LaunchConfig};

/// Latencies of one way of waiting.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Sorted.
    pub samples: Vec<Duration>,
}

impl Latencies {
    fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort();
        Latencies { samples }
    }

    /// The `q` quantile (0..=1).
    pub fn quantile(&self, q: f64) -> Duration {
        let i = ((self.samples.len() - 1) as f64 * q).round() as usize;
        self.samples[i]
    }

    /// The median.
    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }
}

/// `iters` empty kernels, each launched and synchronized with a blocking
/// (spinning) `cuStreamSynchronize`, through the driver API directly.
pub fn spin_sync(gpu: &Gpu, iters: usize) -> Result<Latencies, GpuError> {
    use weft::gpu::cudarc::driver::sys;
    let (stream, empty, cfg) = empty_kernel(gpu)?; // binds the context here
    let mut samples = Vec::with_capacity(iters);
    for i in 0..iters + iters / 10 {
        let start = Instant::now();
        // SAFETY: empty() takes no arguments and touches nothing; the
        // stream and kernel are live, their context bound by `stream()`.
        unsafe {
            let launched = sys::cuLaunchKernel(
                empty.cu_function(),
                cfg.grid_dim.0,
                cfg.grid_dim.1,
                cfg.grid_dim.2,
                cfg.block_dim.0,
                cfg.block_dim.1,
                cfg.block_dim.2,
                0,
                stream.cu_stream(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            launched.result().map_err(refused("launch"))?;
            sys::cuStreamSynchronize(stream.cu_stream())
                .result()
                .map_err(refused("synchronize"))?;
        }
        if i >= iters / 10 {
            samples.push(start.elapsed()); // after a 10% warm-up
        }
    }
    Ok(Latencies::new(samples))
}

/// A stream, the `empty` kernel and a one-thread launch.
fn empty_kernel(gpu: &Gpu) -> Result<(weft::gpu::Stream, weft::gpu::Kernel, LaunchConfig), GpuError> {
    let empty = gpu.load_ptx(weft::gpu::demo::PTX)?.kernel("empty")?;
    Ok((gpu.stream()?, empty, LaunchConfig::for_num_elems(1)))
}

/// Turns a driver error from `call` into a [`GpuError`].
fn refused(call: &'static str) -> impl Fn(weft::gpu::cudarc::driver::DriverError) -> GpuError {
    move |e| GpuError::Driver {
        call: call.into(),
        name: format!("{:?}", e.0),
        message: String::new(),
    }
}

/// `iters` empty kernels, each launched and awaited on `rt`.
pub fn awaited(rt: &weft::Runtime, gpu: &Gpu, iters: usize) -> Result<Latencies, GpuError> {
    rt.block_on(async {
        let (stream, empty, cfg) = empty_kernel(gpu)?;
        let mut samples = Vec::with_capacity(iters);
        for i in 0..iters + iters / 10 {
            let start = Instant::now();
            // SAFETY: empty() takes no arguments and touches nothing.
            unsafe { stream.launch(&empty).run(cfg) }.await?;
            if i >= iters / 10 {
                samples.push(start.elapsed());
            }
        }
        Ok(Latencies::new(samples))
    })
}

/// The process's CPU time (user + system, all threads) so far. (Suite
/// `mpi` of the benchmarks uses it too.)
pub fn cpu_time() -> Duration {
    // SAFETY: `getrusage` fills the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The share of one core the process uses while a task awaits `kernels`
/// spin kernels of `each`, one after another.
pub fn cpu_while_awaiting(rt: &weft::Runtime, gpu: &Gpu, kernels: usize, each: Duration) -> Result<f64, GpuError> {
    rt.block_on(async {
        let stream = gpu.stream()?;
        let spin = gpu.load_ptx(weft::gpu::demo::PTX)?.kernel("spin")?;
        let ns = each.as_nanos() as u64;
        let cfg = LaunchConfig::for_num_elems(1);
        // SAFETY: spin(unsigned long long ns) touches no memory.
        unsafe { stream.launch(&spin).arg(&ns).run(cfg) }.await?; // warm-up
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        for _ in 0..kernels {
            // SAFETY: as above.
            unsafe { stream.launch(&spin).arg(&ns).run(cfg) }.await?;
        }
        Ok((cpu_time() - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64())
    })
}
