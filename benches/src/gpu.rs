//! Suite `gpu`: an awaited GPU completion against blocking on the stream.
//!
//! Tokio and smol cannot await GPU work, so the columns here are Weft's
//! ways of waking the loop against the baseline a CUDA program uses
//! without a runtime, `cuStreamSynchronize` (spinning, CUDA's default with
//! fewer contexts than cores):
//!
//! - `empty_kernel`: launch an empty kernel and wait for it, one at a time
//!   (`latency_ns`: the median and p99 of each repetition's samples);
//! - `await_10ms_kernel`: the process's CPU use while a task awaits 10 ms
//!   kernels (`cpu_percent` of one core).
//!
//! Issue 18's targets: median <= 1.2x spin, CPU < 5% (p99 reported). On a
//! machine without a CUDA driver the suite prints `skipped: no CUDA driver`
//! and records nothing.

#[path = "../../examples/src/latency.rs"]
#[allow(dead_code, unreachable_pub)]
pub(crate) mod latency;

use crate::Options;
use crate::report::Report;
use std::time::Duration;
use weft::gpu::{Gpu, GpuError, WakeMode};

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("gpu");
    let configs = match configs() {
        Ok(configs) => configs,
        Err(GpuError::NoDriver) => {
            println!("skipped: no CUDA driver");
            return report;
        }
        Err(err) => panic!("weft-benches gpu: {err}"),
    };
    let rt = weft::Runtime::new().expect("a Weft runtime");
    let iters = if opts.reps <= 3 { 500 } else { 2000 };
    let kernels = if opts.reps <= 3 { 10 } else { 50 };
    for rep in 0..opts.warmup + opts.reps {
        let keep = rep >= opts.warmup;
        let spin = latency::spin_sync(&configs[0].1, iters).expect("spin baseline");
        if keep {
            report.record("empty_kernel p50", "spin-sync", "latency_ns", nanos(spin.median()));
            report.record("empty_kernel p99", "spin-sync", "latency_ns", nanos(spin.p99()));
        }
        for (column, gpu) in &configs {
            let awaited = latency::awaited(&rt, gpu, iters).expect("awaited latency");
            let cpu = latency::cpu_while_awaiting(&rt, gpu, kernels, Duration::from_millis(10)).expect("cpu probe");
            if keep {
                report.record("empty_kernel p50", column, "latency_ns", nanos(awaited.median()));
                report.record("empty_kernel p99", column, "latency_ns", nanos(awaited.p99()));
                report.record("await_10ms_kernel", column, "cpu_percent", cpu * 100.0);
            }
        }
    }
    report
}

/// The columns: Weft's default (event polling with sub-millisecond
/// sleeps), host functions after a brief spin, host functions alone.
fn configs() -> Result<Vec<(&'static str, Gpu)>, GpuError> {
    let host = Gpu::builder().wake_mode(WakeMode::HostFunction);
    Ok(vec![
        ("weft", Gpu::open(0)?),
        ("weft-host-fn", host.clone().open()?),
        ("weft-host-fn-no-spin", host.spin_window(Duration::ZERO).open()?),
    ])
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}
