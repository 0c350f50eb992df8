//! Suite `mpi` (built with `--features mpi`): weft-mpi's awaited
//! operations against blocking MPI calls, over shared memory and over
//! Open MPI's TCP transport (`--mca btl tcp,self`, as between hosts;
//! workloads suffixed `_tcp`).
//!
//! `weft-benches mpi` launches itself under `mpirun` (as the hidden suite
//! `mpi-rank`) once per configuration and reads the ranks' results.
//!
//! | workload | what | metric |
//! | --- | --- | --- |
//! | `pingpong_8B`, `pingpong_1MiB` | one-way latency (half a round trip) of a continuous ping-pong, awaited in a task (`weft`) or blocking `MPI_Send`/`MPI_Recv` (`blocking`), same process, `MPI_THREAD_SERIALIZED` | `latency_ns` |
//! | `transfer_64MiB` | one-way time of a 64 MiB ping-pong (the idle policy must not slow a large transfer) | `latency_ns` |
//! | `gapped_<gap>` | request/response after idle gaps of 0.2, 1 and 5 ms: rank 0 sleeps, sends 8 B, awaits the 8 B reply; rank 1 awaits and answers at once. Round trip p50 and p99 | `latency_ns` |
//! | `gapped_<gap>_cpu_rank0`, `_cpu_rank1` | each rank's process CPU time over the wall time of that run, in percent of one core | `cpu_pct` |
//! | `idle_recv_cpu` | CPU time of rank 0 (runtime with one worker) while a task awaits a receive that arrives after 1 s | `cpu_pct` |
//! | `allreduce_8B`, `allreduce_64KiB`, `barrier` | one collective, awaited (with weft-mpi's agreement, point-to-point rounds of recursive doubling: the data rides in it up to 192 B, an `MPI_Iallreduce` follows it above) against blocking `MPI_Allreduce`/`MPI_Barrier`; `iallreduce_*` is `MPI_Iallreduce` + `MPI_Wait` alone | `latency_ns` |
//! | `over_allreduce_8B`, `over_barrier` | the same with 4 ranks on a 2-core machine (oversubscribed: empty polls yield the core, tasks never spin) | `latency_ns` |
//! | `pool_map_chunk1`, `over_pool_map_chunk1` | an `MpiPool` `map` of a trivial job at chunksize 1, per item (mpi4py.futures measured 179 µs at 4 ranks on 2 cores) | `latency_ns` |
//! | `blocking_8B_<level>` | blocking 8 B one-way latency with MPI initialised at `single`, `funneled`, `serialized`, `multiple`: the numbers behind weft-mpi's choice of thread level | `latency_ns` |
//!
//! Targets (issues 6, 16, 17): awaited 8 B ≤ blocking + 0.5 µs; 1 MiB and
//! 64 MiB ≤ 1.05× blocking; `gapped` p50 ≤ 100 µs and p99 ≤ 500 µs at every
//! gap, each rank ≤ 10 % of a core at 5 ms gaps; idle CPU < 10 % of a core;
//! oversubscribed collectives ≤ 2× blocking.

use crate::Options;
use crate::gpu::latency::cpu_time;
use crate::report::{Report, percentile};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use weft::mpi::{Communicator, Mpi, ReduceOp};

// The loops of the `mpi_pingpong` example, so both measure the same thing.
#[path = "../../examples/src/pingpong.rs"]
mod pingpong;

/// Round trips per sample, by message size.
fn round_trips(bytes: usize) -> usize {
    match bytes {
        0..=1024 => 2000,
        1025..=4194304 => 50,
        _ => 4,
    }
}

/// The idle gaps of workload `gapped`, in microseconds.
const GAPS_US: [u64; 3] = [200, 1000, 5000];

/// One `mpirun` of the rank program.
struct Config {
    ranks: usize,
    /// Extra `mpirun` arguments (the transport).
    mpirun: &'static [&'static str],
    /// The rank program's arguments.
    args: Vec<String>,
}

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("mpi");
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let reps = opts.reps.to_string();
    let tcp: &'static [&'static str] = &["--mca", "btl", "tcp,self"];
    let mut configs = Vec::new();
    for (transport, mpirun) in [("sm", &[][..]), ("tcp", tcp)] {
        for mode in ["awaited", "gapped", "collectives"] {
            configs.push(Config {
                ranks: 2,
                mpirun,
                args: vec![mode.into(), transport.into(), reps.clone()],
            });
        }
    }
    configs.push(Config {
        ranks: 4,
        mpirun: &[],
        args: vec!["oversubscribed".into(), "sm".into(), reps.clone()],
    });
    for level in ["single", "funneled", "serialized", "multiple"] {
        configs.push(Config {
            ranks: 2,
            mpirun: &[],
            args: vec!["threading".into(), level.into(), reps.clone()],
        });
    }
    for config in configs {
        let name = config.args.join(" ");
        if opts.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let output = Command::new("mpirun")
            .args(["-n", &config.ranks.to_string(), "--oversubscribe"])
            .args(config.mpirun)
            .arg(&exe)
            .arg("mpi-rank")
            .args(&config.args)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .output()
            .expect("mpirun (install Open MPI: scripts/setup.sh)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            panic!(
                "mpirun {name} failed: {}\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        for line in stdout.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                ["RESULT", workload, runtime, metric, value] => {
                    let value: f64 = value.parse().expect("a number");
                    report.record(workload, column(runtime), metric_name(metric), value);
                }
                ["SUMMARY", workload, runtime, metric, p50, p99] => {
                    let (p50, p99): (f64, f64) = (p50.parse().expect("a number"), p99.parse().expect("a number"));
                    report.record_summary(workload, column(runtime), metric_name(metric), p50, p99);
                }
                _ => {}
            }
        }
        println!("{name} done");
    }
    report
}

fn column(name: &str) -> &'static str {
    match name {
        "weft" => "weft",
        "blocking" => "blocking",
        other => panic!("unknown column {other}"),
    }
}

fn metric_name(name: &str) -> &'static str {
    match name {
        "latency_ns" => "latency_ns",
        "cpu_pct" => "cpu_pct",
        other => panic!("unknown metric {other}"),
    }
}

/// The rank program: `mpi-rank MODE TRANSPORT REPS` or
/// `mpi-rank threading LEVEL REPS`.
pub(crate) fn rank_main(args: &[String]) -> ExitCode {
    let [mode, arg, reps] = args else {
        eprintln!(
            "usage: weft-benches mpi-rank awaited|gapped|collectives|oversubscribed TRANSPORT REPS | threading LEVEL REPS | selfping - PAIRS"
        );
        return ExitCode::from(2);
    };
    let reps: usize = reps.parse().expect("reps");
    let suffix = if arg == "tcp" { "_tcp" } else { "" };
    match mode.as_str() {
        "awaited" => awaited(suffix, reps),
        "gapped" => gapped(suffix, reps),
        "collectives" => collectives("", suffix, reps),
        "oversubscribed" => collectives("over_", suffix, reps),
        "threading" => threading(arg, reps),
        "selfping" => selfping(reps),
        "idlepoll" => idlepoll(reps),
        other => {
            eprintln!("unknown mode {other}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// Mode `selfping`, for instruction counts rather than time: one rank
/// sends 8 B to itself and receives them, `pairs` times, in a task (an
/// `isend` and a `recv_into`, both awaited), with no peer to wait for.
/// Callgrind counts the engine's cost per pair:
///
/// ```text
/// valgrind --tool=callgrind --toggle-collect='*mpi::selfping*' \
///     target/release/weft-benches mpi-rank selfping - 6000
/// ```
///
/// (the total divided by the pairs; run as a singleton, no `mpirun`).
fn selfping(pairs: usize) {
    one_rank_task("the self-ping task", |world| async move {
        let (mut buf, mut rbuf) = (vec![0u8; 8], vec![0u8; 8]);
        for _ in 0..pairs {
            let send = world.isend(buf, 0, 0);
            rbuf = world.recv_into(rbuf, 0, 0).await.expect("recv_into").0;
            buf = send.await.expect("isend");
        }
    });
}

/// One rank's receive that no message matches, awaited `waits` times for
/// 2 ms each, so that callgrind can price an empty engine poll (what each
/// turn of a task's or a loop's spin costs while a message is on its way):
///
/// ```text
/// valgrind --tool=callgrind --toggle-collect='*mpi::idlepoll*' \
///     target/release/weft-benches mpi-rank idlepoll - 20
/// callgrind_annotate --inclusive=yes callgrind.out.* | grep 'InFlight::progress '
/// ```
///
/// (the inclusive cost of `InFlight::progress` over its calls).
fn idlepoll(waits: usize) {
    one_rank_task("the idle-poll task", |world| async move {
        for _ in 0..waits {
            let wait = weft::time::timeout(Duration::from_millis(2), world.recv::<u8>(0, 1)).await;
            assert!(wait.is_err(), "no message is sent to tag 1");
        }
    });
}

/// The callgrind modes' frame: MPI, a one-worker runtime, and the task
/// `make` builds from the world (defined in the mode's function, so its
/// name matches the mode's `--toggle-collect`), awaited to its end.
fn one_rank_task<F>(what: &str, make: impl FnOnce(Communicator) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mpi = init();
    let rt = one_worker();
    let task = make(mpi.world());
    rt.block_on(async move { weft::spawn(task).await.expect(what) });
}

/// MPI with the default settings, or those in `WEFT_MPI_SPIN_WINDOW_US`,
/// `WEFT_MPI_MAX_SLEEP_US` and `WEFT_MPI_OVERSUBSCRIBED` (0 or 1), for
/// tuning: the suite reports the defaults. (`WEFT_BENCH_CURRENT_THREAD`
/// set runs the awaited side on a current-thread runtime instead.)
fn init() -> Mpi {
    let us = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_micros)
    };
    let mut builder = Mpi::builder();
    if let Some(window) = us("WEFT_MPI_SPIN_WINDOW_US") {
        builder = builder.spin_window(window);
    }
    if let Some(max) = us("WEFT_MPI_MAX_SLEEP_US") {
        builder = builder.max_sleep(max);
    }
    if let Ok(over) = std::env::var("WEFT_MPI_OVERSUBSCRIBED") {
        builder = builder.oversubscribed(over == "1");
    }
    builder.init().expect("MPI")
}

fn result(rank: i32, workload: &str, column: &str, metric: &str, value: f64) {
    if rank == 0 {
        println!("RESULT {workload} {column} {metric} {value}");
    }
}

/// One worker: with two ranks on two cores, each rank gets one busy
/// thread (the worker polling MPI), as a blocking rank does.
fn one_worker() -> weft::Runtime {
    if std::env::var_os("WEFT_BENCH_CURRENT_THREAD").is_some() {
        return weft::Builder::new_current_thread().build().expect("a runtime");
    }
    weft::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a runtime")
}

/// Awaited and blocking ping-pong in one process, interleaved, then the
/// idle receive.
fn awaited(suffix: &str, reps: usize) {
    let mpi = init();
    let world = mpi.world();
    let rank = world.rank();
    let rt = one_worker();
    let raw = mpi::topology::SimpleCommunicator::world();
    for (bytes, workload) in [
        (8, "pingpong_8B"),
        (1 << 20, "pingpong_1MiB"),
        (64 << 20, "transfer_64MiB"),
    ] {
        let workload = format!("{workload}{suffix}");
        let trips = round_trips(bytes);
        for rep in 0..reps + 2 {
            let world = world.clone();
            let awaited = rt.block_on(async move {
                weft::spawn(async move { pingpong::awaited(&world, bytes, trips).await })
                    .await
                    .expect("the ping-pong task")
                    .expect("MPI")
            }) * 1e9;
            let blocking = {
                // Thread rule 1: our own MPI calls under Weft's lock.
                let _mpi = mpi.lock();
                pingpong::blocking(&raw, bytes, trips) * 1e9
            };
            if rep >= 2 {
                // The first two are warm-up.
                result(rank, &workload, "weft", "latency_ns", awaited);
                result(rank, &workload, "blocking", "latency_ns", blocking);
            }
        }
    }
    let world2 = world.clone();
    let cpu = rt.block_on(async move {
        weft::spawn(async move { idle_receive(&world2).await })
            .await
            .expect("the idle task")
    });
    result(rank, &format!("idle_recv_cpu{suffix}"), "weft", "cpu_pct", cpu);
}

/// Rank 0 awaits a receive that rank 1 sends after sleeping 1 s; returns
/// rank 0's CPU time over that wall time, in percent of one core.
async fn idle_receive(world: &Communicator) -> f64 {
    world.barrier().await.expect("barrier");
    if world.rank() == 1 {
        weft::time::sleep(Duration::from_secs(1)).await;
        world.send(&[1u8], 0, 9).await.expect("send");
        return 0.0;
    }
    if world.rank() != 0 {
        return 0.0;
    }
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    world.recv::<u8>(1, 9).await.expect("recv");
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
}

/// Exchanges per gap and repetition (about half a second at 5 ms).
const GAPPED_EXCHANGES: usize = 100;

/// Workload `gapped`: awaited and blocking, per gap.
fn gapped(suffix: &str, reps: usize) {
    let mpi = init();
    let world = mpi.world();
    let rank = world.rank();
    let rt = one_worker();
    let raw = mpi::topology::SimpleCommunicator::world();
    for gap_us in GAPS_US {
        let gap = Duration::from_micros(gap_us);
        let workload = format!("gapped_{}ms{suffix}", gap_us as f64 / 1000.0);
        let (mut awaited_rtts, mut blocking_rtts) = (Vec::new(), Vec::new());
        let (mut awaited_cpu, mut blocking_cpu) = (Vec::new(), Vec::new());
        for _ in 0..reps.max(1) {
            let w = world.clone();
            let (rtts, cpu) = rt.block_on(async move {
                weft::spawn(async move { gapped_awaited(&w, gap).await })
                    .await
                    .expect("the gapped task")
            });
            awaited_rtts.extend(rtts);
            awaited_cpu.push(cpu);
            let (rtts, cpu) = {
                let _mpi = mpi.lock();
                gapped_blocking(&raw, gap)
            };
            blocking_rtts.extend(rtts);
            blocking_cpu.push(cpu);
        }
        for (column, rtts) in [("weft", &awaited_rtts), ("blocking", &blocking_rtts)] {
            if rank == 0 {
                println!(
                    "SUMMARY {workload} {column} latency_ns {} {}",
                    percentile(rtts, 50.0),
                    percentile(rtts, 99.0)
                );
            }
        }
        // Every rank's CPU, each reported by itself.
        for (column, cpu) in [("weft", &awaited_cpu), ("blocking", &blocking_cpu)] {
            if rank <= 1 {
                println!(
                    "RESULT {workload}_cpu_rank{rank} {column} cpu_pct {}",
                    percentile(cpu, 50.0)
                );
            }
        }
    }
}

/// Rank 0 sleeps `gap`, sends 8 B and awaits the 8 B reply; rank 1 awaits
/// each request and answers at once. Rank 0's round trips (ns), and this
/// rank's CPU over the run (percent of a core).
async fn gapped_awaited(world: &Communicator, gap: Duration) -> (Vec<f64>, f64) {
    world.barrier().await.expect("barrier");
    let mut rtts = Vec::with_capacity(GAPPED_EXCHANGES);
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    let mut buf = vec![0u64; 1];
    for i in 0..GAPPED_EXCHANGES {
        match world.rank() {
            0 => {
                weft::time::sleep(gap).await;
                let start = Instant::now();
                buf[0] = i as u64;
                buf = world.isend(buf, 1, 1).await.expect("send");
                buf = world.recv_into(buf, 1, 2).await.expect("recv").0;
                rtts.push(start.elapsed().as_nanos() as f64);
            }
            1 => {
                buf = world.recv_into(buf, 0, 1).await.expect("recv").0;
                buf = world.isend(buf, 0, 2).await.expect("send");
            }
            _ => {}
        }
    }
    let cpu = 100.0 * (cpu_time() - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64();
    (rtts, cpu)
}

/// The same with blocking calls: rank 0 sleeps on the thread; rank 1 sits
/// in `MPI_Recv` (which spins inside Open MPI).
fn gapped_blocking(world: &mpi::topology::SimpleCommunicator, gap: Duration) -> (Vec<f64>, f64) {
    use mpi::traits::*;
    world.barrier();
    let mut rtts = Vec::with_capacity(GAPPED_EXCHANGES);
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    let mut buf = [0u64; 1];
    for i in 0..GAPPED_EXCHANGES {
        match world.rank() {
            0 => {
                std::thread::sleep(gap);
                let start = Instant::now();
                buf[0] = i as u64;
                world.process_at_rank(1).send_with_tag(&buf[..], 1);
                world.process_at_rank(1).receive_into_with_tag(&mut buf[..], 2);
                rtts.push(start.elapsed().as_nanos() as f64);
            }
            1 => {
                world.process_at_rank(0).receive_into_with_tag(&mut buf[..], 1);
                world.process_at_rank(0).send_with_tag(&buf[..], 2);
            }
            _ => {}
        }
    }
    let cpu = 100.0 * (cpu_time() - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64();
    (rtts, cpu)
}

/// Collectives per sample.
const COLLECTIVES: usize = 1000;

/// One collective at a time, awaited and blocking: `allreduce_8B` (rides in
/// the agreement), `allreduce_64KiB` (agreement, then the all-reduce),
/// `barrier`. With `prefix` `over_`, the run is oversubscribed (4 ranks on
/// 2 cores) and the 64 KiB case is left out.
fn collectives(prefix: &str, suffix: &str, reps: usize) {
    let mpi = init();
    let world = mpi.world();
    let rank = world.rank();
    let rt = if std::env::var_os("WEFT_BENCH_CURRENT_THREAD").is_some() {
        weft::Builder::new_current_thread().build().expect("a runtime")
    } else {
        weft::mpi::runtime(&mpi).expect("a runtime")
    };
    let raw = mpi::topology::SimpleCommunicator::world();
    let mut cases = vec![("allreduce_8B", 1usize), ("barrier", 0)];
    if prefix.is_empty() {
        cases.insert(1, ("allreduce_64KiB", 8192));
    }
    // `WEFT_BENCH_ONLY=barrier` (a case's name): that case alone, no pool
    // (for profiles of one collective's loop).
    let only = std::env::var("WEFT_BENCH_ONLY").ok();
    cases.retain(|(name, _)| only.as_deref().is_none_or(|o| o == *name));
    // `WEFT_BENCH_SIDE=weft` or `blocking`: that side alone (the other
    // is neither run nor reported), so that `perf stat` of a rank counts
    // one side's switches and system calls. Every rank must be given the
    // same side (`mpirun -x`), or their collectives mismatch and hang.
    let side = std::env::var("WEFT_BENCH_SIDE").ok();
    if let Some(other) = side.as_deref().filter(|s| !matches!(*s, "weft" | "blocking")) {
        panic!("weft-benches: WEFT_BENCH_SIDE={other} names no side; use weft or blocking");
    }
    let runs = |s: &str| side.as_deref().is_none_or(|o| o == s);
    for (name, len) in cases {
        let workload = format!("{prefix}{name}{suffix}");
        for rep in 0..reps + 1 {
            let w = world.clone();
            let awaited = if !runs("weft") {
                0.0
            } else {
                rt.block_on(async move {
                    weft::spawn(async move {
                        w.barrier().await.expect("barrier");
                        let start = Instant::now();
                        for i in 0..COLLECTIVES {
                            if len == 0 {
                                w.barrier().await.expect("barrier");
                            } else {
                                let out = w
                                    .all_reduce(vec![i as u64; len], ReduceOp::Sum)
                                    .await
                                    .expect("all_reduce");
                                assert_eq!(out[0], i as u64 * w.size() as u64);
                            }
                        }
                        start.elapsed().as_nanos() as f64 / COLLECTIVES as f64
                    })
                    .await
                    .expect("the collective task")
                })
            };
            let blocking = if !runs("blocking") {
                0.0
            } else {
                use mpi::collective::SystemOperation;
                use mpi::traits::*;
                let _mpi = mpi.lock();
                raw.barrier();
                let start = Instant::now();
                let mut out = vec![0u64; len];
                for i in 0..COLLECTIVES {
                    if len == 0 {
                        raw.barrier();
                    } else {
                        raw.all_reduce_into(&vec![i as u64; len][..], &mut out[..], SystemOperation::sum());
                    }
                }
                start.elapsed().as_nanos() as f64 / COLLECTIVES as f64
            };
            if rep >= 1 && runs("weft") {
                result(rank, &workload, "weft", "latency_ns", awaited);
            }
            if rep >= 1 && runs("blocking") {
                result(rank, &workload, "blocking", "latency_ns", blocking);
            }
            if rep >= 1 && len > 0 && runs("blocking") {
                // The nonblocking collective itself, waited on at once
                // (`MPI_Iallreduce` + `MPI_Wait`): what MPI's own
                // nonblocking path costs, agreement aside.
                let _mpi = mpi.lock();
                let nonblocking = iallreduce_wait(len);
                result(
                    rank,
                    &format!("{prefix}i{name}{suffix}"),
                    "blocking",
                    "latency_ns",
                    nonblocking,
                );
            }
        }
    }
    let workload = format!("{prefix}pool_map_chunk1{suffix}");
    for rep in 0..if only.is_some() { 0 } else { reps + 1 } {
        if let Some(per_item) = rt.block_on(pool_map_per_item(&world)) {
            if rep >= 1 {
                result(rank, &workload, "weft", "latency_ns", per_item);
            }
        }
    }
}

/// An `MpiPool` `map` of a trivial job, one item per message: the pool's
/// overhead per item, in ns (rank 0; `None` on workers).
async fn pool_map_per_item(world: &Communicator) -> Option<f64> {
    use weft::mpi::pool::{MpiPool, Registry};
    const ITEMS: u64 = 400;
    let mut registry = Registry::new();
    let inc = registry.register("inc", |x: u64| x + 1);
    let pool = MpiPool::start(world, registry).await.expect("the pool")?;
    pool.map_chunked(&inc, 0..50u64, 1).await.expect("warm-up");
    let start = Instant::now();
    let out = pool.map_chunked(&inc, 0..ITEMS, 1).await.expect("map");
    assert_eq!(out.len(), ITEMS as usize);
    let per_item = start.elapsed().as_nanos() as f64 / ITEMS as f64;
    pool.shutdown().await.expect("shutdown");
    Some(per_item)
}

/// `MPI_Iallreduce` of `len` u64 then `MPI_Wait`, per collective (ns).
/// Call with the MPI lock held.
fn iallreduce_wait(len: usize) -> f64 {
    use mpi::ffi;
    let send = vec![1u64; len];
    let mut recv = vec![0u64; len];
    let start = Instant::now();
    for _ in 0..COLLECTIVES {
        // SAFETY: MPI is initialised; the caller holds Weft's MPI lock; both
        // buffers hold `len` elements and outlive the wait.
        unsafe {
            let mut request = ffi::RSMPI_REQUEST_NULL;
            ffi::MPI_Iallreduce(
                send.as_ptr().cast(),
                recv.as_mut_ptr().cast(),
                len as i32,
                ffi::RSMPI_UINT64_T,
                ffi::RSMPI_SUM,
                ffi::RSMPI_COMM_WORLD,
                &mut request,
            );
            ffi::MPI_Wait(&mut request, std::ptr::null_mut());
        }
    }
    start.elapsed().as_nanos() as f64 / COLLECTIVES as f64
}

/// Blocking 8 B ping-pong with MPI initialised at `level`.
fn threading(level: &str, reps: usize) {
    use mpi::Threading;
    let threading = match level {
        "single" => Threading::Single,
        "funneled" => Threading::Funneled,
        "serialized" => Threading::Serialized,
        "multiple" => Threading::Multiple,
        other => panic!("unknown thread level {other}"),
    };
    let (universe, _) = mpi::initialize_with_threading(threading).expect("MPI");
    let world = universe.world();
    use mpi::traits::Communicator as _;
    let rank = world.rank();
    let workload = format!("blocking_8B_{level}");
    for rep in 0..reps + 2 {
        let latency = pingpong::blocking(&world, 8, round_trips(8)) * 1e9;
        if rep >= 2 {
            result(rank, &workload, "blocking", "latency_ns", latency);
        }
    }
}
