//! Vector addition on the GPU, awaited: copy two vectors in, add them with
//! a kernel, copy the sum out, check it.
//!
//! ```text
//! cargo run --release -p weft-examples --bin gpu_vector_add -- [N]
//! ```
//!
//! `N` is the vector length (default 1,048,576). Prints `skipped: no CUDA
//! driver` and succeeds on a machine without CUDA. `WEFT_GPU_WAKE=host`
//! switches completions from event polling to host functions.
//!
//! What it shows:
//!
//! - copies take pinned host buffers by value and give them back when the
//!   device is done (`copy_to_device(...).await?` returns the buffer);
//! - the two input copies run at once (`futures::join!`), each awaited
//!   without parking a worker;
//! - a kernel from PTX text (`weft::gpu::demo::PTX`), launched with a
//!   `LaunchConfig` and awaited like any future.

use std::time::Instant;
use weft::gpu::LaunchConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("usage: gpu_vector_add [N]; `{arg}` is not a length"))?,
        None => 1 << 20,
    };
    let Some(gpu) = weft_examples::open_gpu("gpu_vector_add") else {
        return Ok(());
    };
    let rt = weft::Runtime::new()?;
    let started = Instant::now();
    rt.block_on(async {
        let (s1, s2) = (gpu.stream()?, gpu.stream()?);
        let kernel = gpu.load_ptx(weft::gpu::demo::PTX)?.kernel("vector_add")?;
        let len = n as usize;
        let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..n).map(|i| 2.0 * i as f32).collect();
        let (host_a, host_b) = (gpu.pinned_from_slice(&a)?, gpu.pinned_from_slice(&b)?);
        let (mut dev_a, mut dev_b) = (s1.alloc_zeros::<f32>(len)?, s2.alloc_zeros::<f32>(len)?);
        let mut dev_c = s1.alloc_zeros::<f32>(len)?;

        // Both copies in flight at once, on two streams.
        let (ra, rb) = futures::join!(
            s1.copy_to_device(host_a, &mut dev_a),
            s2.copy_to_device(host_b, &mut dev_b)
        );
        let (host_a, _host_b) = (ra?, rb?);

        // SAFETY: vector_add(const float *a, const float *b, float *c,
        // unsigned n) reads a[0..n], b[0..n] and writes c[0..n]; all three
        // hold n floats.
        unsafe {
            s1.launch(&kernel)
                .arg(&dev_a)
                .arg(&dev_b)
                .arg(&mut dev_c)
                .arg(&n)
                .run(LaunchConfig::for_num_elems(n))
        }
        .await?;

        // Reuse the first input's pinned buffer for the result.
        let sum = s1.copy_to_host(&dev_c, host_a).await?;
        let wrong = (0..len).filter(|&i| sum[i] != a[i] + b[i]).count();
        if wrong > 0 {
            return Err(format!("{wrong} of {n} sums are wrong").into());
        }
        println!("gpu_vector_add: {n} sums correct (c[{}] = {})", len - 1, sum[len - 1]);
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let stats = gpu.stats();
    println!(
        "gpu_vector_add: {:?} in all; {} operations, {} polls, {} host-function wakeups",
        started.elapsed(),
        stats.completed,
        stats.polls,
        stats.host_wakeups
    );
    Ok(())
}
