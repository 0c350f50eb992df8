//! `Gpu::compile` with NVIDIA's real NVRTC, where it is installed (PyPI's
//! `nvidia-cuda-nvrtc-cu12` is enough: `scripts/test.sh` installs it and
//! puts it on `LD_LIBRARY_PATH`); prints `skipped: ...` elsewhere. Runs
//! against the machine's driver, or the CPU stand-in, which refuses to load
//! the PTX NVRTC makes (it runs Weft's demo kernels only), loudly.

mod common;

use common::*;
use weft_gpu::{CompileOptions, Gpu, GpuError, WakeMode};

const SAXPY: &str = r#"
extern "C" __global__ void saxpy(float a, const float *x, float *y, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"#;

fn gpu() -> Option<Gpu> {
    let gpu = open(WakeMode::EventPolling);
    if !weft_gpu::nvrtc_present() {
        println!("skipped: NVRTC (libnvrtc.so) is not installed here");
        return None;
    }
    Some(gpu)
}

#[test]
fn compiles_cuda_c_with_the_devices_architecture_and_options() {
    let _turn = serial();
    let Some(gpu) = gpu() else { return };
    let (major, minor) = gpu.compute_capability();
    let ptx = gpu.compile_ptx(SAXPY, &CompileOptions::new()).unwrap();
    assert!(ptx.contains(".entry saxpy"), "{ptx}");
    assert!(
        ptx.contains(&format!(".target sm_{major}{minor}")),
        "the device's own architecture"
    );
    // atomicAdd on doubles needs sm_60 or later: NVRTC's own default
    // (sm_52) refuses it; the device's architecture accepts it.
    let atomic = r#"extern "C" __global__ void sum(double *acc, const double *x) {
        atomicAdd(acc, x[threadIdx.x]);
    }"#;
    gpu.compile_ptx(atomic, &CompileOptions::new()).unwrap();
    let old = gpu
        .compile_ptx(atomic, &CompileOptions::new().arch("sm_52"))
        .unwrap_err();
    assert!(matches!(old, GpuError::Compile { .. }), "{old:?}");
    // Defines and line info.
    let defined = r#"extern "C" __global__ void k(int *o) { *o = VALUE; }"#;
    let ptx = gpu
        .compile_ptx(defined, &CompileOptions::new().define("VALUE", "12345").line_info(true))
        .unwrap();
    assert!(ptx.contains("12345"), "{ptx}");
    assert!(ptx.contains(".loc"), "line info: {ptx}");
}

#[test]
fn finds_the_cuda_headers_that_ship_with_nvrtc() {
    let _turn = serial();
    let Some(gpu) = gpu() else { return };
    let half = r#"#include <cuda_fp16.h>
    extern "C" __global__ void scale(__half *x, float s) { x[threadIdx.x] = __float2half(__half2float(x[threadIdx.x]) * s); }"#;
    if weft_gpu::default_include_paths().is_empty() {
        println!("skipped: no CUDA headers found next to NVRTC or in CUDA_HOME");
        return;
    }
    gpu.compile_ptx(half, &CompileOptions::new()).unwrap();
    let without = gpu
        .compile_ptx(half, &CompileOptions::new().no_default_include_paths())
        .unwrap_err();
    assert!(matches!(without, GpuError::Compile { .. }), "{without:?}");
}

#[test]
fn a_compile_error_carries_nvrtcs_log_as_lines() {
    let _turn = serial();
    let Some(gpu) = gpu() else { return };
    let bad = "extern \"C\" __global__ void broken(int *x) {\n  x[0] = undefined_name;\n  return 1;\n}\n";
    let err = gpu.compile(bad).unwrap_err();
    let GpuError::Compile { log } = &err else {
        panic!("{err:?}")
    };
    assert!(log.contains("undefined_name"), "{log}");
    let text = err.to_string();
    assert!(text.lines().count() >= 3, "the log prints as lines: {text}");
    assert!(!text.contains("\\n"), "no escaped newlines: {text}");
    assert!(!err.is_fault());
}

#[test]
fn compiled_kernels_load_on_a_gpu_and_are_refused_by_the_stand_in() {
    let _turn = serial();
    let Some(gpu) = gpu() else { return };
    match gpu.compile(SAXPY) {
        Ok(module) => {
            assert!(!stand_in(), "the stand-in must refuse kernels it cannot run");
            assert!(module.kernel("saxpy").is_ok());
        }
        Err(err) => {
            assert!(stand_in(), "{err}");
            assert_eq!(err.driver_name(), Some("CUDA_ERROR_NOT_SUPPORTED"), "{err}");
        }
    }
    // C++ names are mangled: the error says so.
    let mangled = SAXPY.replace("extern \"C\" ", "");
    let ptx = gpu.compile_ptx(&mangled, &CompileOptions::new()).unwrap();
    assert!(ptx.contains("_Z5saxpy"), "{ptx}");
}

#[test]
fn compile_async_runs_on_the_blocking_pool() {
    let _turn = serial();
    let Some(gpu) = gpu() else { return };
    let result = runtime().block_on(gpu.compile_async(SAXPY, CompileOptions::new()));
    match result {
        Ok(module) => assert!(module.kernel_names().iter().any(|k| k == "saxpy")),
        Err(err) => assert!(
            stand_in() && err.driver_name() == Some("CUDA_ERROR_NOT_SUPPORTED"),
            "{err}"
        ),
    }
}
