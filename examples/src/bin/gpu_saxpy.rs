//! SAXPY (`y = a·x + y`) as a PyCUDA user writes it: CUDA C compiled at
//! run time by NVRTC with options, and the same kernel from PTX text;
//! copies from ordinary slices (staged through pinned memory), a timed
//! launch, and the result checked.
//!
//! ```text
//! cargo run --release -p weft-examples --bin gpu_saxpy -- [N]
//! ```
//!
//! Prints `skipped: no CUDA driver` without CUDA. Without NVRTC
//! (`libnvrtc.so`; PyPI's `nvidia-cuda-nvrtc-cu12` has it) it runs the PTX
//! kernel only. On the CPU stand-in driver the compile is checked but the
//! compiled kernel is not run: the stand-in runs Weft's demo kernels only.

use weft::gpu::{CompileOptions, GpuError, Kernel, LaunchConfig, Stream};

/// The CUDA C source; `SCALE_Y` is set by a compile option.
const SOURCE: &str = r#"
extern "C" __global__ void saxpy(float a, const float *x, float *y, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + SCALE_Y * y[i];
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("usage: gpu_saxpy [N]; `{arg}` is not a length"))?,
        None => 1 << 20,
    };
    let Some(gpu) = weft_examples::open_gpu("gpu_saxpy") else {
        return Ok(());
    };
    let rt = weft::Runtime::new()?;
    rt.block_on(async {
        let stream = gpu.stream()?;
        // From PTX text: Weft's demo `saxpy` (y = a·x + y).
        let ptx = gpu.load_ptx_async(weft::gpu::demo::PTX).await?.kernel("saxpy")?;
        run(&stream, &ptx, n, 1.0, "PTX").await?;

        // From CUDA C, compiled by NVRTC for this device with options.
        if !weft::gpu::nvrtc_present() {
            println!("gpu_saxpy: skipped CUDA C: NVRTC (libnvrtc.so) is not installed");
            return Ok(());
        }
        let options = CompileOptions::new().define("SCALE_Y", "0.5f").line_info(true);
        let text = gpu.compile_ptx(SOURCE, &options)?;
        if !text.contains(".entry saxpy") {
            return Err("NVRTC's PTX has no `saxpy` entry".into());
        }
        println!(
            "gpu_saxpy: NVRTC compiled the CUDA C for sm_{}{} ({} bytes of PTX)",
            gpu.compute_capability().0,
            gpu.compute_capability().1,
            text.len()
        );
        match gpu.compile_async(SOURCE, options).await {
            Ok(module) => run(&stream, &module.kernel("saxpy")?, n, 0.5, "CUDA C").await?,
            Err(err) if err.driver_name() == Some("CUDA_ERROR_NOT_SUPPORTED") => {
                println!("gpu_saxpy: skipped running the CUDA C kernel: {err}")
            }
            Err(err) => return Err(err.into()),
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// Runs `kernel` (`y = a·x + scale_y·y`) on `n` values and checks it.
async fn run(stream: &Stream, kernel: &Kernel, n: u32, scale_y: f32, from: &str) -> Result<(), GpuError> {
    let a = 2.0f32;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let (mut dx, mut dy) = (
        stream.alloc_zeros::<f32>(n as usize)?,
        stream.alloc_zeros::<f32>(n as usize)?,
    );
    stream.copy_from_slice(&x, &mut dx).await?;
    stream.copy_from_slice(&y, &mut dy).await?;
    let start = stream.record_timing_event()?;
    // SAFETY: saxpy(float a, const float *x, float *y, unsigned n) reads
    // x[0..n] and writes y[0..n]; both hold n floats.
    unsafe {
        stream
            .launch(kernel)
            .arg(&a)
            .arg(&dx)
            .arg(&mut dy)
            .arg(&n)
            .run(LaunchConfig::for_num_elems(n))
    }
    .await?;
    let end = stream.record_timing_event()?;
    let took = start.elapsed(&end).await?;
    let mut out = vec![0f32; n as usize];
    stream.copy_to_slice(&dy, &mut out).await?;
    let wrong = (0..n as usize).filter(|&i| out[i] != a * x[i] + scale_y * y[i]).count();
    if wrong > 0 {
        return Err(GpuError::InvalidArgument(format!(
            "{from}: {wrong} of {n} values are wrong"
        )));
    }
    println!("gpu_saxpy: {from} kernel: {n} values correct; the kernel took {took:?} on the device");
    Ok(())
}
