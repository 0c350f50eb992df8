//! Suite `promise`: Weft's asyncio-style [`Promise`] and its thread
//! [`Pool`], against the nearest thing each other library has.
//!
//! | workload | Weft | Tokio | smol |
//! | --- | --- | --- | --- |
//! | `set_then_await` | a [`Promise`] set, then awaited, in one task | `tokio::sync::oneshot` | `futures::channel::oneshot` |
//! | `ping_pong` | two tasks: one sets promise *i*, the other awaits it and sets reply *i* | the same with oneshots | the same with oneshots |
//! | `done_callback` | [`Promise::add_done_callback`] (run on the loop) | a task per oneshot | a task per oneshot |
//! | `done_callback_inline` | [`Promise::add_done_callback_inline`] (run by the setter) | a task per oneshot | a task per oneshot |
//! | `done_callback_task` | a task per promise | a task per oneshot | a task per oneshot |
//! | `pool_map_1m` | [`Pool::map`] of 1M cheap items | rayon's `into_par_iter().map().collect()` | |
//! | `pool_map_1m_chunk10k` | the same, chunks of 10,000 | the same rayon | |
//! | `pool_map_vec_1m` | [`Pool::map`] of a `Vec` of 1M cheap items (made before the clock starts; `u64` to `u64`, so the results are written over the items, in the vector's buffer) | rayon's `vec.into_par_iter().map().collect()` | |
//! | `pool_map_10k_10us` | [`Pool::map`] of 10,000 items of about 10 µs each | rayon's `into_par_iter().map().collect()` | |
//!
//! smol has no oneshot of its own; its programs use `futures`' (or
//! `async-channel`), on the same executor as suite `sched`. The oneshot
//! workloads run inside one spawned task, on a worker, and time themselves
//! there, so the spawn and join around them are not counted. The pool
//! workloads run on this (plain) thread, as blocking `Pool::map` requires;
//! both pools have one thread per CPU.

use crate::Options;
use crate::report::Report;
use crate::runtimes::{Ctx, Rt, Smol, Tokio, Weft};
use rayon::iter::{IntoParallelIterator, ParallelIterator};
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::AcqRel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use weft::future::Promise;
use weft::pool::Pool;

/// Round trips of `set_then_await` (the fast path: tens of ns each).
const SET_THEN_AWAIT: u64 = 100_000;
/// Round trips of `ping_pong` (a wakeup each way).
const PING_PONGS: u64 = 50_000;
/// Promises (or oneshots) with one callback each.
const CALLBACKS: u64 = 20_000;
/// Items of a pool map.
const MAP_ITEMS: u64 = 1_000_000;
/// The explicit chunk size of `pool_map_1m_chunk10k`.
const MAP_CHUNK: usize = 10_000;
/// Items of `pool_map_10k_10us`.
const EXPENSIVE_ITEMS: u64 = 10_000;
/// Steps of a dependent multiply-add chain in [`expensive`]: about 10 µs.
const EXPENSIVE_STEPS: u64 = 8_000;

/// The name of the pool rows' anchor: it is not a runtime.
const RAYON: &str = "rayon";

/// A timed run of one workload on one implementation.
type Run<'a> = (&'static str, &'a mut dyn FnMut() -> Duration);

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("promise");
    let weft = Weft::new(opts.workers);
    let tokio = Tokio::new(opts.workers);
    let smol = Smol::new(opts.workers);
    compare(
        &mut report,
        opts,
        "set_then_await",
        "round_trip_ns",
        SET_THEN_AWAIT,
        &mut [
            (Weft::NAME, &mut || set_then_await(&weft)),
            (Tokio::NAME, &mut || set_then_await(&tokio)),
            (Smol::NAME, &mut || set_then_await(&smol)),
        ],
    );
    compare(
        &mut report,
        opts,
        "ping_pong",
        "round_trip_ns",
        PING_PONGS,
        &mut [
            (Weft::NAME, &mut || ping_pong(&weft)),
            (Tokio::NAME, &mut || ping_pong(&tokio)),
            (Smol::NAME, &mut || ping_pong(&smol)),
        ],
    );
    for (workload, weft_callbacks) in [
        ("done_callback", Callbacks::Loop),
        ("done_callback_inline", Callbacks::Inline),
        ("done_callback_task", Callbacks::Task),
    ] {
        compare(
            &mut report,
            opts,
            workload,
            "callback_ns",
            CALLBACKS,
            &mut [
                (Weft::NAME, &mut || match weft_callbacks {
                    Callbacks::Loop => done_callbacks(&weft, false),
                    Callbacks::Inline => done_callbacks(&weft, true),
                    Callbacks::Task => awaiting_tasks(&weft),
                }),
                (Tokio::NAME, &mut || awaiting_tasks(&tokio)),
                (Smol::NAME, &mut || awaiting_tasks(&smol)),
            ],
        );
    }
    // Not inside any runtime: `Pool::map` blocks, and panics on a runtime's
    // thread.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = Pool::new(threads).expect("weft pool");
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("rayon-{i}"))
        .build()
        .expect("rayon pool");
    for (workload, chunksize) in [("pool_map_1m", None), ("pool_map_1m_chunk10k", Some(MAP_CHUNK))] {
        compare(
            &mut report,
            opts,
            workload,
            "time_ns",
            1,
            &mut [
                (Weft::NAME, &mut || pool_map(&pool, chunksize)),
                (RAYON, &mut || rayon_map(&rayon)),
            ],
        );
    }
    compare(
        &mut report,
        opts,
        "pool_map_vec_1m",
        "time_ns",
        1,
        &mut [
            (Weft::NAME, &mut || pool_map_vec(&pool)),
            (RAYON, &mut || rayon_map_vec(&rayon)),
        ],
    );
    compare(
        &mut report,
        opts,
        "pool_map_10k_10us",
        "time_ns",
        1,
        &mut [
            (Weft::NAME, &mut || pool_map_expensive(&pool)),
            (RAYON, &mut || rayon_map_expensive(&rayon)),
        ],
    );
    report
}

/// Runs `warmup + reps` rounds of `runs`, one implementation after the
/// other in each round (so drifts in machine load hit all of them alike),
/// and records each timed round's time per operation (`ops` of them) under
/// `metric`. The anchors that are no runtime (rayon) run only when no
/// `--runtime` was asked for.
fn compare(report: &mut Report, opts: &Options, workload: &str, metric: &'static str, ops: u64, runs: &mut [Run<'_>]) {
    if opts.filter.as_deref().is_some_and(|f| !workload.contains(f)) {
        return;
    }
    eprint!("{workload} ");
    for rep in 0..opts.warmup + opts.reps {
        for (name, run) in runs.iter_mut() {
            if opts.runtime.as_deref().is_some_and(|only| only != *name) {
                continue;
            }
            let elapsed = run();
            if rep >= opts.warmup {
                report.record(workload, name, metric, elapsed.as_nanos() as f64 / ops as f64);
            }
        }
    }
    eprintln!("done");
}

/// A one-shot `u64` in each runtime's own idiom: Weft's [`Promise`] (both
/// ends are handles to it), Tokio's `oneshot`, and `futures`' oneshot for
/// smol.
trait OneShot: Rt {
    /// The setting end.
    type Tx: Send + 'static;
    /// The awaiting end.
    type Rx: Send + 'static;
    /// A new pair. Called inside the runtime: a Weft promise made there runs
    /// its done callbacks on that runtime's loop.
    fn pair() -> (Self::Tx, Self::Rx);
    /// Sets the value; gives it back if the awaiting end is gone.
    fn set(tx: Self::Tx, value: u64) -> Result<(), u64>;
    /// Waits for the value; `None` if the setting end went away without one.
    fn get(rx: Self::Rx) -> impl Future<Output = Option<u64>> + Send;
}

impl OneShot for Weft {
    type Tx = Promise<u64>;
    type Rx = Promise<u64>;
    fn pair() -> (Promise<u64>, Promise<u64>) {
        let promise = Promise::new();
        (promise.clone(), promise)
    }
    fn set(tx: Promise<u64>, value: u64) -> Result<(), u64> {
        tx.set_result(value)
    }
    async fn get(rx: Promise<u64>) -> Option<u64> {
        rx.await.ok()
    }
}

impl OneShot for Tokio {
    type Tx = tokio::sync::oneshot::Sender<u64>;
    type Rx = tokio::sync::oneshot::Receiver<u64>;
    fn pair() -> (Self::Tx, Self::Rx) {
        tokio::sync::oneshot::channel()
    }
    fn set(tx: Self::Tx, value: u64) -> Result<(), u64> {
        tx.send(value)
    }
    async fn get(rx: Self::Rx) -> Option<u64> {
        rx.await.ok()
    }
}

impl OneShot for Smol {
    type Tx = futures::channel::oneshot::Sender<u64>;
    type Rx = futures::channel::oneshot::Receiver<u64>;
    fn pair() -> (Self::Tx, Self::Rx) {
        futures::channel::oneshot::channel()
    }
    fn set(tx: Self::Tx, value: u64) -> Result<(), u64> {
        tx.send(value)
    }
    async fn get(rx: Self::Rx) -> Option<u64> {
        rx.await.ok()
    }
}

/// Runs `body` as a task on one of `rt`'s workers and waits for it from
/// this thread.
fn in_task<R: Rt, T: Send + 'static>(rt: &R, body: impl Future<Output = T> + Send + 'static) -> T {
    let ctx = rt.ctx();
    rt.block_on(ctx.spawn(body))
}

/// `SET_THEN_AWAIT` one-shots in one task, each set and then awaited: the
/// value is there before the await (the fast path). Includes making the
/// pair.
fn set_then_await<R: OneShot>(rt: &R) -> Duration {
    in_task(rt, async {
        let start = Instant::now();
        let mut sum = 0u64;
        for i in 0..SET_THEN_AWAIT {
            let (tx, rx) = R::pair();
            R::set(tx, i).expect("the awaiting end is alive");
            sum = sum.wrapping_add(R::get(rx).await.expect("the value was set"));
        }
        black_box(sum);
        start.elapsed()
    })
}

/// Two tasks, `PING_PONGS` round trips: this one sets ping *i* and awaits
/// pong *i*; the other awaits ping *i* and sets pong *i*, so every step
/// wakes a waiting task. The pairs are made before the clock starts.
fn ping_pong<R: OneShot>(rt: &R) -> Duration {
    let ctx = rt.ctx();
    in_task(rt, async move {
        let (pings, ping_rxs): (Vec<_>, Vec<_>) = (0..PING_PONGS).map(|_| R::pair()).unzip();
        let (pong_txs, pongs): (Vec<_>, Vec<_>) = (0..PING_PONGS).map(|_| R::pair()).unzip();
        let start = Instant::now();
        let echo = ctx.spawn(async move {
            for (ping, pong) in ping_rxs.into_iter().zip(pong_txs) {
                let value = R::get(ping).await.expect("ping set");
                R::set(pong, value + 1).expect("the pong's awaiter is alive");
            }
        });
        let mut sum = 0u64;
        for ((i, ping), pong) in (0..).zip(pings).zip(pongs) {
            R::set(ping, i).expect("the ping's awaiter is alive");
            sum = sum.wrapping_add(R::get(pong).await.expect("pong set"));
        }
        echo.await;
        let elapsed = start.elapsed();
        black_box(sum);
        elapsed
    })
}

/// What Weft runs in the `done_callback*` rows.
#[derive(Debug, Clone, Copy)]
enum Callbacks {
    /// [`Promise::add_done_callback`]: run on the runtime's loop.
    Loop,
    /// [`Promise::add_done_callback_inline`]: run by the setting thread.
    Inline,
    /// A task per promise, as the other runtimes do.
    Task,
}

/// Counts callbacks up to `CALLBACKS`; the last one sets `all_ran`.
struct Counter<Tx> {
    ran: AtomicUsize,
    all_ran: Mutex<Option<Tx>>,
}

impl<Tx> Counter<Tx> {
    fn new(all_ran: Tx) -> Arc<Counter<Tx>> {
        Arc::new(Counter {
            ran: AtomicUsize::new(0),
            all_ran: Mutex::new(Some(all_ran)),
        })
    }

    /// The body of every callback: counts it, and, for the last, signals.
    fn tick<R: OneShot<Tx = Tx>>(&self) {
        if self.ran.fetch_add(1, AcqRel) + 1 == CALLBACKS as usize {
            let all_ran = self.all_ran.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(tx) = all_ran {
                let _ = R::set(tx, 0);
            }
        }
    }
}

/// `CALLBACKS` promises, each given a done callback that counts it; then
/// each is set, and the task waits for the last callback. The clock covers
/// making the promises, adding the callbacks, setting, and running them.
fn done_callbacks(rt: &Weft, inline: bool) -> Duration {
    in_task(rt, async move {
        let start = Instant::now();
        let (all_ran, all_ran_rx) = Weft::pair();
        let counter = Counter::new(all_ran);
        let promises: Vec<Promise<u64>> = (0..CALLBACKS)
            .map(|_| {
                let promise = Promise::new();
                let counter = counter.clone();
                let callback = move |_: &Promise<u64>| counter.tick::<Weft>();
                if inline {
                    promise.add_done_callback_inline(callback);
                } else {
                    promise.add_done_callback(callback);
                }
                promise
            })
            .collect();
        for (i, promise) in (0..).zip(&promises) {
            promise.set_result(i).expect("nothing else sets it");
        }
        Weft::get(all_ran_rx).await.expect("the last callback sets it");
        start.elapsed()
    })
}

/// The same as [`done_callbacks`] with a task per one-shot that awaits it
/// and then runs the callback's body: Tokio and smol have no done callbacks,
/// and this is the closest equivalent their users write.
fn awaiting_tasks<R: OneShot>(rt: &R) -> Duration {
    let ctx = rt.ctx();
    in_task(rt, async move {
        let start = Instant::now();
        let (all_ran, all_ran_rx) = R::pair();
        let counter = Counter::new(all_ran);
        let txs: Vec<R::Tx> = (0..CALLBACKS)
            .map(|_| {
                let (tx, rx) = R::pair();
                let counter = counter.clone();
                ctx.spawn_detached(async move {
                    if R::get(rx).await.is_some() {
                        counter.tick::<R>();
                    }
                });
                tx
            })
            .collect();
        for (i, tx) in (0..).zip(txs) {
            R::set(tx, i).expect("the awaiting task is alive");
        }
        R::get(all_ran_rx).await.expect("the last task sets it");
        start.elapsed()
    })
}

/// The pool rows' work per item.
fn cheap(x: u64) -> u64 {
    x.wrapping_mul(x) ^ 0x5555
}

/// One `Pool::map` of `MAP_ITEMS` items (`None`: Weft's default chunks,
/// about four per worker). Dropping the results is not timed.
fn pool_map(pool: &Pool, chunksize: Option<usize>) -> Duration {
    let start = Instant::now();
    let results = pool.map(cheap, 0..MAP_ITEMS, chunksize).expect("no item panics");
    let elapsed = start.elapsed();
    assert_eq!(results.len() as u64, MAP_ITEMS);
    black_box(results);
    elapsed
}

/// The same map with rayon, as its users write it (its own splitting, for
/// both pool rows). Dropping the results is not timed.
fn rayon_map(pool: &rayon::ThreadPool) -> Duration {
    let start = Instant::now();
    let results: Vec<u64> = pool.install(|| (0..MAP_ITEMS).into_par_iter().map(cheap).collect());
    let elapsed = start.elapsed();
    assert_eq!(results.len() as u64, MAP_ITEMS);
    black_box(results);
    elapsed
}

/// One `Pool::map` of a vector of `MAP_ITEMS` items, made before the clock
/// starts. Dropping the results is not timed.
fn pool_map_vec(pool: &Pool) -> Duration {
    let items: Vec<u64> = (0..MAP_ITEMS).collect();
    let start = Instant::now();
    let results = pool.map(cheap, items, None).expect("no item panics");
    let elapsed = start.elapsed();
    assert_eq!(results.len() as u64, MAP_ITEMS);
    black_box(results);
    elapsed
}

/// The same with rayon's `into_par_iter` of the vector.
fn rayon_map_vec(pool: &rayon::ThreadPool) -> Duration {
    let items: Vec<u64> = (0..MAP_ITEMS).collect();
    let start = Instant::now();
    let results: Vec<u64> = pool.install(|| items.into_par_iter().map(cheap).collect());
    let elapsed = start.elapsed();
    assert_eq!(results.len() as u64, MAP_ITEMS);
    black_box(results);
    elapsed
}

/// About 10 µs of work that the compiler cannot skip: a dependent
/// multiply-add chain of `EXPENSIVE_STEPS` steps.
fn expensive(x: u64) -> u64 {
    let mut acc = black_box(x);
    for _ in 0..EXPENSIVE_STEPS {
        acc = acc
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
    }
    acc
}

/// One `Pool::map` of `EXPENSIVE_ITEMS` items of [`expensive`] work
/// (Weft's default chunks).
fn pool_map_expensive(pool: &Pool) -> Duration {
    let start = Instant::now();
    let results = pool.map(expensive, 0..EXPENSIVE_ITEMS, None).expect("no item panics");
    let elapsed = start.elapsed();
    assert_eq!(results.len() as u64, EXPENSIVE_ITEMS);
    black_box(results);
    elapsed
}

/// The same with rayon.
fn rayon_map_expensive(pool: &rayon::ThreadPool) -> Duration {
    let start = Instant::now();
    let results: Vec<u64> = pool.install(|| (0..EXPENSIVE_ITEMS).into_par_iter().map(expensive).collect());
    let elapsed = start.elapsed();
    assert_eq!(results.len() as u64, EXPENSIVE_ITEMS);
    black_box(results);
    elapsed
}
