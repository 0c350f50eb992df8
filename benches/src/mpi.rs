//! Suite `mpi` (built with `--features mpi`): weft-mpi's awaited
//! operations against blocking MPI calls, on 2 ranks.
//!
//! `weft-benches mpi` launches itself under `mpirun -n 2` (as the hidden
//! suite `mpi-rank`) once per configuration and reads rank 0's results.
//!
//! | workload | what | metric |
//! | --- | --- | --- |
//! | `pingpong_8B`, `pingpong_1MiB` | one-way latency (half a round trip), awaited in a task (`weft`) or blocking `MPI_Send`/`MPI_Recv` (`blocking`), same process, `MPI_THREAD_SERIALIZED` | `latency_ns` |
//! | `idle_recv_cpu` | CPU time of the whole rank-0 process (runtime with one worker) while a task awaits a receive that arrives after 1 s, per second of wall time | `cpu_pct` |
//! | `blocking_8B_<level>` | blocking 8 B one-way latency with MPI initialised at `single`, `funneled`, `serialized`, `multiple`: the numbers behind weft-mpi's choice of thread level | `latency_ns` |
//!
//! Targets (issue 6): awaited 8 B ≤ blocking + 0.5 µs; 1 MiB ≤ 1.05×
//! blocking; idle CPU < 10 % of a core.

use crate::Options;
use crate::gpu::latency::cpu_time;
use crate::report::Report;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use weft::mpi::{Communicator, Mpi};

// The loops of the `mpi_pingpong` example, so both measure the same thing.
#[path = "../../examples/src/pingpong.rs"]
mod pingpong;

/// Round trips per sample, by message size.
fn round_trips(bytes: usize) -> usize {
    if bytes <= 1024 { 2000 } else { 50 }
}

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("mpi");
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let reps = opts.reps.to_string();
    let mut configs: Vec<Vec<&str>> = vec![vec!["awaited", &reps]];
    for level in ["single", "funneled", "serialized", "multiple"] {
        configs.push(vec!["threading", level, &reps]);
    }
    for config in configs {
        let name = config.join(" ");
        if opts.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let output = Command::new("mpirun")
            .args(["-n", "2", "--oversubscribe"])
            .arg(&exe)
            .arg("mpi-rank")
            .args(&config)
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
            if let ["RESULT", workload, runtime, metric, value] = fields[..] {
                let value: f64 = value.parse().expect("a number");
                report.record(workload, column(runtime), metric_name(metric), value);
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

/// The rank program: `mpi-rank awaited REPS` or `mpi-rank threading LEVEL REPS`.
pub(crate) fn rank_main(args: &[String]) -> ExitCode {
    match args {
        [mode, reps] if mode == "awaited" => awaited(reps.parse().expect("reps")),
        [mode, level, reps] if mode == "threading" => threading(level, reps.parse().expect("reps")),
        _ => {
            eprintln!("usage: weft-benches mpi-rank awaited REPS | threading LEVEL REPS");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn result(rank: i32, workload: &str, column: &str, metric: &str, value: f64) {
    if rank == 0 {
        println!("RESULT {workload} {column} {metric} {value}");
    }
}

/// Awaited and blocking ping-pong in one process, interleaved, then the
/// idle receive.
fn awaited(reps: usize) {
    let mpi = Mpi::init().expect("MPI");
    let world = mpi.world();
    let rank = world.rank();
    // One worker: with two ranks on two cores, each rank gets one busy
    // thread (the worker polling MPI), as a blocking rank does.
    let rt = weft::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a runtime");
    let raw = mpi::topology::SimpleCommunicator::world();
    for (bytes, workload) in [(8, "pingpong_8B"), (1 << 20, "pingpong_1MiB")] {
        let trips = round_trips(bytes);
        for rep in 0..reps + 2 {
            let world = world.clone();
            let awaited = rt.block_on(async move {
                weft::spawn(async move { pingpong::awaited(&world, bytes, trips).await })
                    .await
                    .expect("the ping-pong task")
                    .expect("MPI")
            }) * 1e9;
            let blocking = pingpong::blocking(&raw, bytes, trips) * 1e9;
            if rep >= 2 {
                // The first two are warm-up.
                result(rank, workload, "weft", "latency_ns", awaited);
                result(rank, workload, "blocking", "latency_ns", blocking);
            }
        }
    }
    let world2 = world.clone();
    let cpu = rt.block_on(async move {
        weft::spawn(async move { idle_receive(&world2).await })
            .await
            .expect("the idle task")
    });
    result(rank, "idle_recv_cpu", "weft", "cpu_pct", cpu);
}

/// Rank 0 awaits a receive that rank 1 sends after sleeping 1 s; returns
/// rank 0's CPU time over that wall time, in percent of one core.
async fn idle_receive(world: &Communicator) -> f64 {
    world.barrier().await.expect("barrier");
    if world.rank() == 1 {
        std::thread::sleep(Duration::from_secs(1));
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
