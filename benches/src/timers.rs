//! Suite `timers`: 100k concurrent sleeps with random deadlines 1–100 ms
//! after each sleep is created (the same delays for every runtime); records
//! how late each one woke (`lateness_ns`, p50 and p99 over all sleeps of all
//! repetitions) and the wall time of the whole batch (`time_ns`).

use crate::Options;
use crate::report::Report;
use crate::runtimes::{Ctx, Rt, Smol, Tokio, Weft};
use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SLEEPS: usize = 100_000;

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("timers");
    let weft = Weft::new(opts.workers);
    let tokio = Tokio::new(opts.workers);
    let smol = Smol::new(opts.workers);
    let reps = opts.reps.clamp(1, 5);
    let workload = "sleep_100k_1_100ms";
    let mut late: Vec<Histogram<u64>> = (0..3).map(|_| Histogram::new(3).expect("histogram")).collect();
    let on = |name: &str| opts.runtime.as_deref().is_none_or(|only| only == name);
    eprint!("{workload} ");
    for rep in 0..reps {
        let delays = delays(rep as u64);
        if on(Weft::NAME) {
            let (elapsed, h) = batch(&weft, &delays);
            report.record(workload, Weft::NAME, "time_ns", elapsed.as_nanos() as f64);
            late[0].add(&h).expect("compatible histograms");
        }
        if on(Tokio::NAME) {
            let (elapsed, h) = batch(&tokio, &delays);
            report.record(workload, Tokio::NAME, "time_ns", elapsed.as_nanos() as f64);
            late[1].add(&h).expect("compatible histograms");
        }
        if on(Smol::NAME) {
            let (elapsed, h) = batch(&smol, &delays);
            report.record(workload, Smol::NAME, "time_ns", elapsed.as_nanos() as f64);
            late[2].add(&h).expect("compatible histograms");
        }
    }
    for (i, name) in [Weft::NAME, Tokio::NAME, Smol::NAME].into_iter().enumerate() {
        if !late[i].is_empty() {
            report.record_summary(
                workload,
                name,
                "lateness_ns",
                late[i].value_at_quantile(0.5) as f64,
                late[i].value_at_quantile(0.99) as f64,
            );
        }
    }
    eprintln!("done");
    report
}

/// The batch's delays: 1 to 100 ms, from a fixed seed per repetition.
fn delays(seed: u64) -> Vec<Duration> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..SLEEPS)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            Duration::from_micros(1_000 + x.wrapping_mul(0x2545_F491_4F6C_DD1D) % 99_000)
        })
        .collect()
}

/// Runs one batch: every sleep is a task that records how late it woke.
fn batch<R: Rt>(rt: &R, delays: &[Duration]) -> (Duration, Histogram<u64>) {
    let ctx = rt.ctx();
    let lateness = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    let start = Instant::now();
    let handles: Vec<_> = delays
        .iter()
        .map(|&d| {
            let lateness = lateness.clone();
            ctx.spawn(async move {
                // The deadline counts from the sleep's creation in its task,
                // not from the spawn: how long a task waits for its first
                // poll is the scheduler's business (suite `sched`), and a
                // runtime that spawns faster than its workers start tasks
                // would otherwise be charged for it here.
                let deadline = Instant::now() + d;
                R::Ctx::sleep_until(deadline).await;
                let late = Instant::now().saturating_duration_since(deadline);
                let ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX).max(1);
                let _ = lateness.lock().unwrap().record(ns);
            })
        })
        .collect();
    rt.block_on(async {
        for h in handles {
            h.await;
        }
    });
    let elapsed = start.elapsed();
    let histogram = lateness.lock().unwrap().clone();
    (elapsed, histogram)
}

#[cfg(test)]
mod tests {
    #[test]
    fn delays_span_one_to_a_hundred_ms() {
        let d = super::delays(1);
        assert_eq!(d.len(), super::SLEEPS);
        assert!(d.iter().all(|d| d.as_micros() >= 1_000 && d.as_micros() < 100_000));
    }
}
