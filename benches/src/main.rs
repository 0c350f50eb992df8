//! Weft's benchmark suites, side by side with Tokio and smol in one run.
//!
//! ```text
//! cargo run --release -p weft-benches -- sched|echo|timers|promise|sync|memory [--quick] [--reps N]
//! cargo run --release -p weft-benches -- http [--quick] [--reps N] [--filter c50] [--runtime NAME]
//! cargo run --release -p weft-benches --features mpi -- mpi [--reps N]
//! cargo run --release -p weft-benches -- gpu [--reps N]
//! ```
//!
//! Each suite runs every workload on every runtime, interleaved (one
//! repetition of each runtime in turn, so drifts in machine load hit all of
//! them alike), prints a table of medians (p50 and p99 rows for latencies,
//! taken over every round trip) with Weft's ratios to the others,
//! and writes `target/bench/<suite>.json`:
//!
//! ```json
//! {"suite":"sched","results":[{"workload":"spawn_many_local","runtime":"weft",
//!   "metric":"time_ns","median":123.0,"p99":150.0}]}
//! ```
//!
//! Metrics ending in `_ns` are lower-is-better; metrics ending in `_per_s`
//! are higher-is-better.
//!
//! Suite `http` serves hyper's hello-world from each runtime (one thread
//! each) and loads it with wrk (`wrk -t1 -cN -d10s`, N = 10, 50, 100, 500),
//! which it installs with `apt-get` when it is missing; the servers and wrk
//! are pinned to different CPUs where the machine has two. It records
//! `requests_per_s` and wrk's latency percentiles (`latency_ns`, p50 and
//! p99) per connection count (workloads `c10` … `c500`). Runs are 10 s (2 s
//! with `--quick`, at 50 and 500 connections only), 3 repetitions unless
//! `--reps` says otherwise; see the module's docs for the details.
//!
//! `weft-benches http-probe SERVER REQUESTS [CONNECTIONS]` is no suite: it
//! starts one of suite `http`'s servers (`weft`, `tokio`, `smol`,
//! `axum-weft`, `axum-tokio`) and sends it a fixed number of keep-alive
//! requests from a blocking client, with no timing, for counting the
//! server thread's instructions (valgrind) and system calls (strace) per
//! request; see `http::probe_main`.
//!
//! Suite `sync` compares libraries rather than runtimes: weft-sync,
//! `tokio::sync` and smol-rs' crates, all on one Weft runtime. Its
//! `"runtime"` fields name the library (`weft-sync`, `tokio::sync`,
//! `async-lock`, `async-channel`, `async-broadcast`) and weft-sync is the
//! anchor of its ratios.

mod cpu;
mod echo;
mod gpu;
mod http;
mod load;
mod memory;
#[cfg(feature = "mpi")]
mod mpi;
mod promise;
mod report;
mod runtimes;
mod sched;
mod sync;
mod timers;
mod wrk;

use std::process::ExitCode;

/// Options shared by every suite.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Timed repetitions of each (workload, runtime) pair.
    pub(crate) reps: usize,
    /// Whether `--reps` chose `reps` (suite `http` has its own default).
    pub(crate) reps_given: bool,
    /// A `--quick` smoke run.
    pub(crate) quick: bool,
    /// Untimed repetitions first.
    pub(crate) warmup: usize,
    /// Worker threads of each runtime.
    pub(crate) workers: usize,
    /// Only workloads whose name contains this.
    pub(crate) filter: Option<String>,
    /// Only this runtime (for profiling one at a time).
    pub(crate) runtime: Option<String>,
}

const USAGE: &str =
    "usage: weft-benches <suite> [--quick] [--reps N] [--workers N] [--filter NAME] [--runtime weft|tokio|smol]

  --quick          3 repetitions (a smoke run; http: 2 s runs at 50 and 500 connections)
  --reps N         timed repetitions per workload and runtime (default 30; http: 3)
  --workers N      worker threads of every runtime (default 2)
  --filter NAME    only workloads whose name contains NAME
  --runtime NAME   only one runtime (for profiling; prints no ratios); in suite
                   sync, only that runtime's library (smol: the smol-rs crates)

suites:
  sched   Tokio's rt_multi_threaded scheduler workloads
  echo    TCP echo over loopback: 100 B and 1 KiB messages, 1 to 1000 connections:
          msgs/s, latency p50/p99, server CPU per message (the load client in
          its own process, pinned apart from the servers on 2+ CPUs)
  timers  100k sleeps of random 1-100 ms: lateness
  memory  resident bytes per idle task, idle TCP connection (with its serving
          task) and pending timer; each runtime in its own process
  promise Promise set/await and done callbacks vs oneshots; Pool::map vs rayon
  http    hyper hello-world on each runtime (one thread, pinned) under wrk -t1
          at 10, 50, 100 and 500 connections: req/s, latency p50/p99
          (installs Debian's wrk when it is missing)
  sync    weft-sync's Mutex, Semaphore, mpsc, oneshot and broadcast vs tokio::sync
          and async-lock/async-channel/async-broadcast, all on one Weft runtime
  gpu     an awaited empty kernel vs spinning cuStreamSynchronize (median, p99),
          CPU while awaiting 10 ms kernels (skipped without a CUDA driver)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(suite) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if suite == "memory-child" {
        // One runtime's process of suite `memory`, started by it.
        return memory::child_main(&args.collect::<Vec<_>>());
    }
    if suite == "echo-load" {
        // Suite `echo`'s load client, in its own process, started by it.
        return echo::load_main(&args.collect::<Vec<_>>());
    }
    if suite == "echo-serve" {
        // One server of suite `echo` alone, for profiling (see `echo::serve_main`).
        return echo::serve_main(&args.collect::<Vec<_>>());
    }
    if suite == "http-probe" {
        // One server of suite `http` under a fixed number of requests, for
        // valgrind and strace (see `http::probe_main`).
        return http::probe_main(&args.collect::<Vec<_>>());
    }
    if suite == "mpi-rank" {
        // One rank of suite `mpi`, started by it under `mpirun`.
        #[cfg(feature = "mpi")]
        return mpi::rank_main(&args.collect::<Vec<_>>());
        #[cfg(not(feature = "mpi"))]
        return ExitCode::from(2);
    }
    let mut opts = Options {
        reps: 30,
        reps_given: false,
        quick: false,
        warmup: 3,
        workers: 2,
        filter: None,
        runtime: None,
    };
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Option<usize> {
            let value = args.next().and_then(|v| v.parse().ok());
            if value.is_none() {
                eprintln!("{name} needs a positive number\n\n{USAGE}");
            }
            value.filter(|&n| n > 0)
        };
        match arg.as_str() {
            "--quick" => {
                opts.reps = 3;
                opts.warmup = 1;
                opts.quick = true;
            }
            "--reps" => match number("--reps") {
                Some(n) => {
                    opts.reps = n;
                    opts.reps_given = true;
                }
                None => return ExitCode::from(2),
            },
            "--workers" => match number("--workers") {
                Some(n) => opts.workers = n,
                None => return ExitCode::from(2),
            },
            "--filter" => match args.next() {
                Some(name) => opts.filter = Some(name),
                None => {
                    eprintln!("--filter needs a workload name\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--runtime" => match args.next() {
                Some(name) if ["weft", "tokio", "smol"].contains(&name.as_str()) => opts.runtime = Some(name),
                _ => {
                    eprintln!("--runtime needs one of weft, tokio, smol\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let report = match suite.as_str() {
        "sched" => sched::run(&opts),
        "echo" => echo::run(&opts),
        "http" => http::run(&opts),
        "timers" => timers::run(&opts),
        "promise" => promise::run(&opts),
        "memory" => memory::run(&opts),
        "sync" => sync::run(&opts),
        "gpu" => gpu::run(&opts),
        #[cfg(feature = "mpi")]
        "mpi" => mpi::run(&opts),
        #[cfg(not(feature = "mpi"))]
        "mpi" => {
            eprintln!("suite mpi needs MPI: cargo run --release -p weft-benches --features mpi -- mpi");
            return ExitCode::from(2);
        }
        other => {
            eprintln!("unknown suite {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    report.print();
    match report.write_json() {
        Ok(path) => {
            println!("\nwrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("could not write the JSON report: {err}");
            ExitCode::FAILURE
        }
    }
}
