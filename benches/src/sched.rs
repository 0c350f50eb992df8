//! Suite `sched`: the workloads of Tokio's `benches/rt_multi_threaded.rs`,
//! on Weft, Tokio and smol with the same number of workers.
//!
//! Spawns inside tasks go through each runtime's handle (for Weft and Tokio
//! the same path as the free `spawn`); channels are `futures::channel`'s
//! oneshot for every runtime, so only the scheduler differs.
//!
//! Two workloads go beyond Tokio's file: `spawn_many_remote_busy` (Tokio's
//! `spawn_many_remote_busy1`: 10k spawns from outside while every worker
//! runs a task that yields and spins 10 µs in a loop), and `fan_out_fan_in`
//! (one task spawns 10k that each await one shared notification, then
//! counts them back in).
//!
//! Weft's figures include what it records for task dumps on every poll
//! (`executor/src/observe/`). With `WEFT_TRACE=path.json` in the
//! environment, its runtime also records a timeline (every poll timed, every
//! wake and park on its thread's ring): run the suite with and without it
//! to see what recording costs.

use crate::Options;
use crate::report::Report;
use crate::runtimes::{Ctx, Rt, Smol, Tokio, Weft};
use futures::FutureExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const NUM_SPAWN: usize = 10_000;
const NUM_PINGS: usize = 1_000;
const YIELD_TASKS: usize = 200;
const NUM_YIELD: usize = 1_000;
const CHAIN: usize = 1_000;

/// A workload, given the runtime and its number of workers.
type Workload<R> = fn(&R, usize);

struct Workloads<R: Rt>(Vec<(&'static str, Workload<R>)>);

impl<R: Rt> Workloads<R> {
    fn all() -> Workloads<R> {
        Workloads(vec![
            ("spawn_many_local", |rt, _| spawn_many_local::<R>(rt)),
            ("spawn_many_remote_idle", |rt, _| spawn_many_remote_idle::<R>(rt)),
            ("spawn_many_remote_busy", spawn_many_remote_busy::<R>),
            ("ping_pong", |rt, _| ping_pong::<R>(rt)),
            ("yield_many", |rt, _| yield_many::<R>(rt)),
            ("chained_spawn", |rt, _| chained_spawn::<R>(rt)),
            ("fan_out_fan_in", |rt, _| fan_out_fan_in::<R>(rt)),
        ])
    }
}

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("sched");
    let weft = Weft::new(opts.workers);
    let tokio = Tokio::new(opts.workers);
    let smol = Smol::new(opts.workers);
    let (w, t, s) = (
        Workloads::<Weft>::all(),
        Workloads::<Tokio>::all(),
        Workloads::<Smol>::all(),
    );
    let on = |rt: &str| opts.runtime.as_deref().is_none_or(|only| only == rt);
    for i in 0..w.0.len() {
        let name = w.0[i].0;
        if opts.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        eprint!("{name} ");
        for rep in 0..opts.warmup + opts.reps {
            let record = rep >= opts.warmup;
            if on(Weft::NAME) {
                measure(&mut report, name, &weft, opts.workers, w.0[i].1, record);
            }
            if on(Tokio::NAME) {
                measure(&mut report, name, &tokio, opts.workers, t.0[i].1, record);
            }
            if on(Smol::NAME) {
                measure(&mut report, name, &smol, opts.workers, s.0[i].1, record);
            }
        }
        eprintln!("done");
    }
    report
}

/// Runs `workload` once on `rt`, and records its wall time unless this is a
/// warm-up repetition.
fn measure<R: Rt>(report: &mut Report, name: &str, rt: &R, workers: usize, workload: Workload<R>, record: bool) {
    let start = Instant::now();
    workload(rt, workers);
    let elapsed = start.elapsed().as_nanos() as f64;
    if record {
        report.record(name, R::NAME, "time_ns", elapsed);
    }
}

/// 10k tasks spawned from inside `block_on` (which, on a multi-thread
/// runtime, runs on the caller's thread, so the spawns are remote); the
/// last one to finish signals.
fn spawn_many_local<R: Rt>(rt: &R) {
    let ctx = rt.ctx();
    let (tx, rx) = mpsc::sync_channel(1);
    let rem = Arc::new(AtomicUsize::new(NUM_SPAWN));
    rt.block_on(async move {
        for _ in 0..NUM_SPAWN {
            let tx = tx.clone();
            let rem = rem.clone();
            ctx.spawn_detached(async move {
                if rem.fetch_sub(1, Relaxed) == 1 {
                    tx.send(()).unwrap();
                }
            });
        }
        rx.recv().unwrap();
    });
}

/// 10k empty tasks spawned from outside the runtime, then joined in order.
fn spawn_many_remote_idle<R: Rt>(rt: &R) {
    let ctx = rt.ctx();
    let handles: Vec<_> = (0..NUM_SPAWN).map(|_| ctx.spawn(async {})).collect();
    rt.block_on(async move {
        for handle in handles {
            handle.await;
        }
    });
}

/// Tokio's `spawn_many_remote_busy1`: 10k empty tasks spawned from outside
/// the runtime and joined in order, while each worker runs a task that
/// yields and then spins 10 µs, in a loop. The busy tasks start and stop
/// inside the timed run (a few µs of it).
fn spawn_many_remote_busy<R: Rt>(rt: &R, workers: usize) {
    fn stall() {
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(10) {
            std::hint::spin_loop();
        }
    }
    let ctx = rt.ctx();
    let busy = Arc::new(AtomicBool::new(true));
    let spinners: Vec<_> = (0..workers)
        .map(|_| {
            let busy = busy.clone();
            ctx.spawn(async move {
                while busy.load(Relaxed) {
                    R::Ctx::yield_now().await;
                    stall();
                }
            })
        })
        .collect();
    let handles: Vec<_> = (0..NUM_SPAWN).map(|_| ctx.spawn(async {})).collect();
    rt.block_on(async move {
        for handle in handles {
            handle.await;
        }
        busy.store(false, Relaxed);
        for spinner in spinners {
            spinner.await;
        }
    });
}

/// One task spawns 10k tasks that each await one shared notification
/// (`futures`' shared oneshot, the same for every runtime), sends it, and
/// waits until every task has counted itself in: a wake of 10k tasks at
/// once, then a fan-in.
fn fan_out_fan_in<R: Rt>(rt: &R) {
    let ctx = rt.ctx();
    let spawner = ctx.clone();
    rt.block_on(ctx.spawn(async move {
        let (notify, notified) = futures::channel::oneshot::channel::<()>();
        let notified = notified.shared();
        let (all_in, all_in_rx) = futures::channel::oneshot::channel::<()>();
        let all_in = Arc::new(std::sync::Mutex::new(Some(all_in)));
        let rem = Arc::new(AtomicUsize::new(NUM_SPAWN));
        for _ in 0..NUM_SPAWN {
            let notified = notified.clone();
            let rem = rem.clone();
            let all_in = all_in.clone();
            spawner.spawn_detached(async move {
                notified.await.expect("the notification is sent");
                if rem.fetch_sub(1, Relaxed) == 1 {
                    let last = all_in.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                    if let Some(all_in) = last {
                        let _ = all_in.send(());
                    }
                }
            });
        }
        notify.send(()).expect("the tasks hold the receiver");
        all_in_rx.await.expect("the last task counts in");
    }));
}

/// 1k pairs of tasks exchanging a message each way through oneshots.
fn ping_pong<R: Rt>(rt: &R) {
    let ctx = rt.ctx();
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let rem = Arc::new(AtomicUsize::new(NUM_PINGS));
    rt.block_on(async move {
        let spawner = ctx.clone();
        ctx.spawn_detached(async move {
            for _ in 0..NUM_PINGS {
                let rem = rem.clone();
                let done_tx = done_tx.clone();
                let inner = spawner.clone();
                spawner.spawn_detached(async move {
                    let (tx1, rx1) = futures::channel::oneshot::channel::<()>();
                    let (tx2, rx2) = futures::channel::oneshot::channel::<()>();
                    inner.spawn_detached(async move {
                        rx1.await.unwrap();
                        tx2.send(()).unwrap();
                    });
                    tx1.send(()).unwrap();
                    rx2.await.unwrap();
                    if rem.fetch_sub(1, Relaxed) == 1 {
                        done_tx.send(()).unwrap();
                    }
                });
            }
        });
        done_rx.recv().unwrap();
    });
}

/// 200 tasks spawned from outside, each yielding 1000 times.
fn yield_many<R: Rt>(rt: &R) {
    let ctx = rt.ctx();
    let (tx, rx) = mpsc::sync_channel(YIELD_TASKS);
    for _ in 0..YIELD_TASKS {
        let tx = tx.clone();
        ctx.spawn_detached(async move {
            for _ in 0..NUM_YIELD {
                R::Ctx::yield_now().await;
            }
            tx.send(()).unwrap();
        });
    }
    for _ in 0..YIELD_TASKS {
        rx.recv().unwrap();
    }
}

/// A chain of 1k tasks, each spawning the next.
fn chained_spawn<R: Rt>(rt: &R) {
    fn link<C: Ctx>(ctx: C, done: mpsc::SyncSender<()>, n: usize) {
        if n == 0 {
            done.send(()).unwrap();
        } else {
            let next = ctx.clone();
            ctx.spawn_detached(async move { link(next, done, n - 1) });
        }
    }
    let ctx = rt.ctx();
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    rt.block_on(async move {
        let next = ctx.clone();
        ctx.spawn_detached(async move { link(next, done_tx, CHAIN) });
        done_rx.recv().unwrap();
    });
}
