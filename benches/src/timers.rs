//! Suite `timers`:
//!
//! - `sleep_100k_1_100ms`: 100k concurrent sleeps with random deadlines
//!   1–100 ms after each sleep is created (the same delays for every
//!   runtime); records how late each one woke (`lateness_ns`, p50 and p99
//!   over all sleeps of all repetitions; and `lateness_p99_per_rep_ns`,
//!   each repetition's own p99, whose median one disturbed repetition
//!   cannot move: a pause of the virtual machine or another process on a
//!   core holds up every runtime's timers in that repetition by tens of
//!   milliseconds, and lands in the pooled p99), the wall time of the whole batch
//!   (`time_ns`) and the process's CPU time per fired timer
//!   (`cpu_ns_per_timer`: spawning, registering, firing and waking).
//! - `loop_1k_1_20ms`: 1,000 tasks each sleeping a random 1–20 ms, again and
//!   again, for a second: a server's timeouts, sparser than the burst above
//!   (about one deadline every 10 µs). Records lateness (p50, p99) and the
//!   process's CPU time per sleep (`cpu_ns_per_timer`), where waking the loop
//!   once per deadline instead of once per millisecond would show.
//! - `interval_1ms`: one task ticking a 1 ms interval (each runtime's own)
//!   1,000 times; records how late each tick came against its schedule
//!   (`start + k ms`), p50 and p99.

use crate::Options;
use crate::gpu::latency::cpu_time;
use crate::report::Report;
use crate::runtimes::{Ctx, Rt, Smol, Tokio, Weft};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SLEEPS: usize = 100_000;

/// Makes an interval (`$make`, binding it to `$interval`; its first tick is
/// due at once, at `$start`), awaits `TICKS` more ticks (`$tick` awaits one), and records
/// how late each came against `start + k * TICK` (every interval is made
/// with `interval_at(start, TICK)`: its first tick is due at `start`).
macro_rules! ticks {
    ($start:ident, $interval:ident = $make:expr, $tick:expr) => {{
        let mut h = Histogram::<u64>::new(3).expect("histogram");
        let $start = Instant::now();
        #[allow(unused_mut)]
        let mut $interval = $make;
        $tick.await;
        for k in 1..=TICKS {
            $tick.await;
            let due = $start + TICK * k;
            let late = Instant::now().saturating_duration_since(due);
            let _ = h.record(u64::try_from(late.as_nanos()).unwrap_or(u64::MAX).max(1));
        }
        h
    }};
}

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
            record_batch(&mut report, &weft, &delays, &mut late[0]);
        }
        if on(Tokio::NAME) {
            record_batch(&mut report, &tokio, &delays, &mut late[1]);
        }
        if on(Smol::NAME) {
            record_batch(&mut report, &smol, &delays, &mut late[2]);
        }
    }
    record_lateness(&mut report, workload, &late);
    eprintln!("done");

    let workload = "loop_1k_1_20ms";
    eprint!("{workload} ");
    let mut late: Vec<Histogram<u64>> = (0..3).map(|_| Histogram::new(3).expect("histogram")).collect();
    for rep in 0..reps {
        if on(Weft::NAME) {
            let (cpu, h) = sleep_loops(&weft, rep as u64);
            report.record(workload, Weft::NAME, "cpu_ns_per_timer", cpu);
            late[0].add(&h).expect("compatible histograms");
        }
        if on(Tokio::NAME) {
            let (cpu, h) = sleep_loops(&tokio, rep as u64);
            report.record(workload, Tokio::NAME, "cpu_ns_per_timer", cpu);
            late[1].add(&h).expect("compatible histograms");
        }
        if on(Smol::NAME) {
            let (cpu, h) = sleep_loops(&smol, rep as u64);
            report.record(workload, Smol::NAME, "cpu_ns_per_timer", cpu);
            late[2].add(&h).expect("compatible histograms");
        }
    }
    record_lateness(&mut report, workload, &late);
    eprintln!("done");

    let workload = "interval_1ms";
    eprint!("{workload} ");
    let mut late: Vec<Histogram<u64>> = (0..3).map(|_| Histogram::new(3).expect("histogram")).collect();
    for _ in 0..reps {
        if on(Weft::NAME) {
            let h = weft.block_on(
                weft.ctx()
                    .spawn(async { ticks!(start, interval = weft::time::interval_at(start, TICK), interval.tick()) }),
            );
            late[0].add(&h).expect("compatible histograms");
        }
        if on(Tokio::NAME) {
            let h = tokio.block_on(tokio.ctx().spawn(async {
                ticks!(
                    start,
                    interval = tokio::time::interval_at(start.into(), TICK),
                    interval.tick()
                )
            }));
            late[1].add(&h).expect("compatible histograms");
        }
        if on(Smol::NAME) {
            let h = smol.block_on(smol.ctx().spawn(async {
                use futures::StreamExt;
                ticks!(
                    start,
                    interval = async_io::Timer::interval_at(start, TICK),
                    interval.next()
                )
            }));
            late[2].add(&h).expect("compatible histograms");
        }
    }
    record_lateness(&mut report, workload, &late);
    eprintln!("done");
    report
}

/// The interval's period.
const TICK: Duration = Duration::from_millis(1);

/// Ticks of an interval per repetition.
const TICKS: u32 = 1_000;

/// `loop_1k_1_20ms`: 1,000 tasks sleeping 1–20 ms in a loop for a second;
/// returns the process's CPU time per sleep and the lateness of every sleep.
/// Records each runtime's lateness (p50 and p99) for `workload`, in the
/// order Weft, Tokio, smol; a runtime that did not run is left out.
fn record_lateness(report: &mut Report, workload: &str, late: &[Histogram<u64>]) {
    for (h, name) in late.iter().zip([Weft::NAME, Tokio::NAME, Smol::NAME]) {
        if !h.is_empty() {
            report.record_summary(
                workload,
                name,
                "lateness_ns",
                h.value_at_quantile(0.5) as f64,
                h.value_at_quantile(0.99) as f64,
            );
        }
    }
}

fn sleep_loops<R: Rt>(rt: &R, seed: u64) -> (f64, Histogram<u64>) {
    const TASKS: u64 = 1_000;
    const RUN: Duration = Duration::from_secs(1);
    let ctx = rt.ctx();
    let sleeps = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Each task writes its lateness into a list made (and its pages
    // touched) here, and the lists become a histogram after the run. A
    // histogram per task grows its counts as larger values come (about
    // 100 KB copied into fresh pages each time): a thousand of them doing
    // that as the first sleeps end held those sleeps up by tens of
    // milliseconds, in every runtime, and the tail measured page faults
    // rather than timers.
    let locals: Vec<Vec<u64>> = (0..TASKS)
        .map(|_| {
            let mut samples = vec![1u64; 2_048];
            samples.clear();
            samples
        })
        .collect();
    let cpu0 = cpu_time();
    let end = Instant::now() + RUN;
    let handles: Vec<_> = (0..TASKS)
        .zip(locals)
        .map(|(t, mut local)| {
            let sleeps = sleeps.clone();
            ctx.spawn(async move {
                let mut x = (seed * TASKS + t).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut n = 0;
                while Instant::now() < end {
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    let d = Duration::from_micros(1_000 + x.wrapping_mul(0x2545_F491_4F6C_DD1D) % 19_000);
                    let deadline = Instant::now() + d;
                    R::Ctx::sleep_until(deadline).await;
                    let late = Instant::now().saturating_duration_since(deadline);
                    local.push(u64::try_from(late.as_nanos()).unwrap_or(u64::MAX).max(1));
                    n += 1;
                }
                sleeps.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                // Merged after the run: a thousand merges under one lock
                // as the tasks finish would make the last sleeps late.
                local
            })
        })
        .collect();
    let locals = rt.block_on(async {
        let mut locals = Vec::with_capacity(handles.len());
        for h in handles {
            locals.push(h.await);
        }
        locals
    });
    let cpu = cpu_time() - cpu0;
    let mut lateness = Histogram::<u64>::new(3).expect("histogram");
    for &ns in locals.iter().flatten() {
        let _ = lateness.record(ns);
    }
    let n = sleeps.load(std::sync::atomic::Ordering::Relaxed).max(1);
    (cpu.as_nanos() as f64 / n as f64, lateness)
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

/// How long the process rests after each batch of `sleep_100k_1_100ms`.
/// A runtime's threads go on working for a while after its batch (freeing
/// 100,000 tasks, smol's `async-io` thread catching up): measured with
/// `perf sched`, a Tokio worker still ran for 6 ms into Weft's next batch,
/// and each runtime's tail carried its neighbour's leftovers.
const SETTLE: Duration = Duration::from_millis(100);

/// Runs one batch on `rt`, records its wall time and CPU per timer, adds
/// its lateness to `late`, and lets the process settle.
fn record_batch<R: Rt>(report: &mut Report, rt: &R, delays: &[Duration], late: &mut Histogram<u64>) {
    let (elapsed, cpu, h) = batch(rt, delays);
    report.record("sleep_100k_1_100ms", R::NAME, "time_ns", elapsed.as_nanos() as f64);
    report.record(
        "sleep_100k_1_100ms",
        R::NAME,
        "cpu_ns_per_timer",
        cpu.as_nanos() as f64 / SLEEPS as f64,
    );
    report.record(
        "sleep_100k_1_100ms",
        R::NAME,
        "lateness_p99_per_rep_ns",
        h.value_at_quantile(0.99) as f64,
    );
    late.add(&h).expect("compatible histograms");
    std::thread::sleep(SETTLE);
}

/// Runs one batch: every sleep is a task that writes how late it woke.
/// Returns the wall time, the process's CPU time and the lateness.
///
/// Two things here keep the measuring out of what is measured, for every
/// runtime alike:
///
/// - Each task writes its lateness into its own slot of a list made (and
///   its pages touched) beforehand, and the histogram is built after the
///   batch. A histogram shared under one lock measured the lock: a worker
///   preempted while holding it, or growing the histogram into fresh pages
///   under it, held up every sleep firing on the other worker.
/// - The main thread waits for the last task's signal, not on each join
///   handle in turn. Awaiting 100,000 handles in order woke it again and
///   again, and each time it ran through every handle already done (up to
///   tens of thousands at the end of the batch) on a core a worker needed:
///   having slept, it preempted that worker for milliseconds, and the
///   sleeps queued there were late by as much. Its handles are collected
///   (all done) after the batch.
fn batch<R: Rt>(rt: &R, delays: &[Duration]) -> (Duration, Duration, Histogram<u64>) {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let ctx = rt.ctx();
    let late: Arc<[AtomicU64]> = delays.iter().map(|_| AtomicU64::new(u64::MAX)).collect();
    let remaining = Arc::new(AtomicUsize::new(delays.len()));
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let cpu0 = cpu_time();
    let start = Instant::now();
    let handles: Vec<_> = delays
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let late = late.clone();
            let remaining = remaining.clone();
            let done_tx = done_tx.clone();
            ctx.spawn(async move {
                // The deadline counts from the sleep's creation in its task,
                // not from the spawn: how long a task waits for its first
                // poll is the scheduler's business (suite `sched`), and a
                // runtime that spawns faster than its workers start tasks
                // would otherwise be charged for it here.
                let deadline = Instant::now() + d;
                R::Ctx::sleep_until(deadline).await;
                let ns = Instant::now().saturating_duration_since(deadline).as_nanos();
                late[i].store(u64::try_from(ns).unwrap_or(u64::MAX).max(1), Ordering::Relaxed);
                if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let _ = done_tx.send(());
                }
            })
        })
        .collect();
    drop(done_tx);
    done_rx.recv().expect("the last sleep signals the end of the batch");
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu0;
    rt.block_on(async {
        for h in handles {
            h.await;
        }
    });
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    for ns in late.iter() {
        let _ = histogram.record(ns.load(std::sync::atomic::Ordering::Relaxed));
    }
    (elapsed, cpu, histogram)
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
