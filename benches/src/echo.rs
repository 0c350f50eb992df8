//! Suite `echo`: a TCP echo server on each runtime, driven over loopback by
//! the same load client (see [`crate::load`]) at 1, 10, 100 and 1000
//! connections with 100-byte and 1 KiB messages.
//!
//! Per workload and runtime it records throughput (`msgs_per_s`, the median
//! of the repetitions), round-trip latency (`latency_ns`, p50 and p99 over
//! every round trip of every repetition) and `server_cpu_ns`: the CPU time
//! (user and system) of this process, which runs only the servers, per
//! round trip of the run (warm-up included, as the CPU time is), and
//! `server_sleeps_per_1k`: how often the server's threads went to sleep
//! (voluntary context switches: `epoll_wait`, futex and timed waits) per
//! thousand round trips, the wakeups the CPU time pays for.
//!
//! The load client runs in a process of its own (`weft-benches echo-load`,
//! started once per run), so none of its CPU time is the servers'. Where
//! this process may use two CPUs or more, the servers' threads are pinned
//! to the second and the client to the first (`sched_setaffinity`), so
//! that they do not take turns on one core; with one CPU nothing is
//! pinned, and the suite says so.

use crate::Options;
use crate::cpu::{allowed_cpus, pin_this_thread, process_cpu_ns, process_sleeps};
use crate::load;
use crate::report::Report;
use crate::runtimes::{Smol, Tokio, Weft};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

const SIZES: [(usize, &str); 2] = [(100, "100B"), (1024, "1KiB")];
const CONNECTIONS: [usize; 4] = [1, 10, 100, 1000];
const BUF: usize = 16 * 1024;

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("echo");
    // Pin first: the runtimes' threads inherit the CPUs of this thread.
    let (load_cpu, placement) = place();
    eprintln!("echo: {placement}");
    let weft = Weft::new(opts.workers);
    let tokio = Tokio::new(opts.workers);
    let smol = Smol::new(opts.workers);
    let servers: [(&'static str, SocketAddr); 3] = [
        ("weft", weft_server(&weft)),
        ("tokio", tokio_server(&tokio)),
        ("smol", smol_server(&smol)),
    ];
    let reps = opts.reps.clamp(1, 5);
    let window = if opts.reps <= 3 {
        Duration::from_millis(300)
    } else {
        Duration::from_millis(700)
    };
    let warmup = Duration::from_millis(100);
    for (size, size_name) in SIZES {
        for conns in CONNECTIONS {
            let workload = format!("echo_{size_name}_{conns}conn");
            if opts.filter.as_deref().is_some_and(|f| !workload.contains(f)) {
                continue;
            }
            eprint!("{workload} ");
            let mut latencies: Vec<Histogram<u64>> = (0..3).map(|_| Histogram::new(3).expect("histogram")).collect();
            for _ in 0..reps {
                for (i, &(name, addr)) in servers.iter().enumerate() {
                    if opts.runtime.as_deref().is_some_and(|only| only != name) {
                        continue;
                    }
                    let (cpu_before, sleeps_before) = (process_cpu_ns(), process_sleeps());
                    let load = load_in_child(addr, conns, size, warmup, window, load_cpu).unwrap_or_else(|err| {
                        panic!("the echo load against {name} failed: {err}");
                    });
                    let server_cpu = process_cpu_ns() - cpu_before;
                    let server_sleeps = process_sleeps() - sleeps_before;
                    report.record(
                        &workload,
                        name,
                        "msgs_per_s",
                        load.round_trips as f64 / load.window.as_secs_f64(),
                    );
                    report.record(
                        &workload,
                        name,
                        "server_cpu_ns",
                        server_cpu / load.total_round_trips.max(1) as f64,
                    );
                    report.record(
                        &workload,
                        name,
                        "server_sleeps_per_1k",
                        server_sleeps * 1e3 / load.total_round_trips.max(1) as f64,
                    );
                    latencies[i].add(&load.latency).expect("compatible histograms");
                }
            }
            for (i, &(name, _)) in servers.iter().enumerate() {
                let h = &latencies[i];
                if h.is_empty() {
                    continue;
                }
                report.record_summary(
                    &workload,
                    name,
                    "latency_ns",
                    h.value_at_quantile(0.5) as f64,
                    h.value_at_quantile(0.99) as f64,
                );
            }
            eprintln!("done");
        }
    }
    report
}

fn weft_server(rt: &Weft) -> SocketAddr {
    use weft::io::{AsyncReadExt, AsyncWriteExt};
    let listener =
        rt.0.block_on(async { weft::net::TcpListener::bind("127.0.0.1:0") })
            .expect("weft bind");
    let addr = listener.local_addr().expect("weft addr");
    drop(rt.0.spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                weft::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            drop(weft::spawn(async move {
                let mut buf = vec![0u8; BUF];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }));
    addr
}

fn tokio_server(rt: &Tokio) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener =
        rt.0.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("tokio bind");
    let addr = listener.local_addr().expect("tokio addr");
    drop(rt.0.spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            drop(tokio::spawn(async move {
                let mut buf = vec![0u8; BUF];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }));
    addr
}

fn smol_server(rt: &Smol) -> SocketAddr {
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    let listener = futures_lite::future::block_on(async_net::TcpListener::bind("127.0.0.1:0")).expect("smol bind");
    let addr = listener.local_addr().expect("smol addr");
    let ex = rt.ex.clone();
    rt.ex
        .spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    async_io::Timer::after(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                ex.spawn(async move {
                    let mut buf = vec![0u8; BUF];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
    addr
}

/// One server alone in this process, for profiling with perf, strace or
/// callgrind (`benches/echo-probe.sh`): `echo-serve weft|tokio|smol [cpu]`.
/// Pins this thread (and so the runtime's threads) to `cpu` if given,
/// starts the suite's server for that runtime with the suite's default
/// two workers, prints its address, and serves until standard input
/// closes. Drive it with `echo-load`.
pub(crate) fn serve_main(args: &[String]) -> ExitCode {
    let usage = "usage: weft-benches echo-serve weft|tokio|smol [cpu]";
    let (name, cpu) = match args {
        [name] => (name.as_str(), None),
        [name, cpu] => match cpu.parse::<usize>() {
            Ok(cpu) => (name.as_str(), Some(cpu)),
            Err(_) => {
                eprintln!("{usage}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    if let Some(cpu) = cpu {
        if let Err(err) = pin_this_thread(cpu) {
            eprintln!("echo-serve: {err}");
            return ExitCode::FAILURE;
        }
    }
    let workers = 2;
    // The runtime lives until this function returns.
    let (addr, _runtime): (SocketAddr, Box<dyn std::any::Any>) = match name {
        "weft" => {
            let rt = Weft::new(workers);
            (weft_server(&rt), Box::new(rt))
        }
        "tokio" => {
            let rt = Tokio::new(workers);
            (tokio_server(&rt), Box::new(rt))
        }
        "smol" => {
            let rt = Smol::new(workers);
            (smol_server(&rt), Box::new(rt))
        }
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    println!("{addr}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    ExitCode::SUCCESS
}

/// Pins this thread (and so the servers' threads, started after) to the
/// second CPU this process may use and returns the first, for the load
/// client; with one CPU, or if pinning fails, pins nothing. Also returns a
/// line that says where everything runs.
fn place() -> (Option<usize>, String) {
    let cpus = match allowed_cpus() {
        Ok(cpus) => cpus,
        Err(err) => {
            return (
                None,
                format!("not pinned ({err}): servers and load client share the CPUs"),
            );
        }
    };
    if cpus.len() < 2 {
        return (
            None,
            format!("not pinned (only {} CPU): servers and load client share it", cpus.len()),
        );
    }
    let (load_cpu, server_cpu) = (cpus[0], cpus[1]);
    if let Err(err) = pin_this_thread(server_cpu) {
        return (
            None,
            format!("not pinned ({err}): servers and load client share the CPUs"),
        );
    }
    (
        Some(load_cpu),
        format!("servers pinned to CPU {server_cpu}, the load client (its own process) to CPU {load_cpu}"),
    )
}

/// Runs [`load::run`] in a child process (`weft-benches echo-load`), pinned
/// to `cpu` if given, and reads its result back.
fn load_in_child(
    addr: SocketAddr,
    conns: usize,
    size: usize,
    warmup: Duration,
    window: Duration,
    cpu: Option<usize>,
) -> Result<load::Load, String> {
    let exe = std::env::current_exe().map_err(|err| format!("the bench's own path: {err}"))?;
    let out = Command::new(exe)
        .arg("echo-load")
        .arg(addr.to_string())
        .arg(conns.to_string())
        .arg(size.to_string())
        .arg(warmup.as_nanos().to_string())
        .arg(window.as_nanos().to_string())
        .arg(cpu.map_or("-".to_owned(), |cpu| cpu.to_string()))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("starting the load client: {err}"))?;
    if !out.status.success() {
        return Err(format!("the load client failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let numbers = |line: Option<&str>| -> Result<Vec<u64>, String> {
        line.ok_or("the load client printed nothing")?
            .split_whitespace()
            .map(|n| n.parse().map_err(|_| format!("the load client printed {n:?}")))
            .collect()
    };
    let head = numbers(lines.next())?;
    let [round_trips, total_round_trips, window_ns] = head[..] else {
        return Err(format!("the load client printed {head:?}"));
    };
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds");
    for line in lines {
        let pair = numbers(Some(line))?;
        let [value, count] = pair[..] else {
            return Err(format!("the load client printed {pair:?}"));
        };
        latency
            .record_n(value, count)
            .map_err(|err| format!("a latency of {value} ns: {err}"))?;
    }
    Ok(load::Load {
        round_trips,
        total_round_trips,
        window: Duration::from_nanos(window_ns),
        latency,
    })
}

/// The load client's process: `echo-load <addr> <conns> <size> <warmup-ns>
/// <window-ns> <cpu|->`. Prints `round_trips total_round_trips window_ns`,
/// then one `latency_ns count` line per recorded latency.
pub(crate) fn load_main(args: &[String]) -> ExitCode {
    let parsed = (|| -> Option<(SocketAddr, usize, usize, u64, u64, Option<usize>)> {
        let [addr, conns, size, warmup, window, cpu] = args else {
            return None;
        };
        let cpu = if cpu == "-" { None } else { Some(cpu.parse().ok()?) };
        Some((
            addr.parse().ok()?,
            conns.parse().ok()?,
            size.parse().ok()?,
            warmup.parse().ok()?,
            window.parse().ok()?,
            cpu,
        ))
    })();
    let Some((addr, conns, size, warmup, window, cpu)) = parsed else {
        eprintln!("usage: weft-benches echo-load <addr> <conns> <size> <warmup-ns> <window-ns> <cpu|->");
        return ExitCode::from(2);
    };
    if let Some(cpu) = cpu {
        if let Err(err) = pin_this_thread(cpu) {
            eprintln!("echo-load: {err}");
            return ExitCode::FAILURE;
        }
    }
    let load = match load::run(
        addr,
        conns,
        size,
        Duration::from_nanos(warmup),
        Duration::from_nanos(window),
    ) {
        Ok(load) => load,
        Err(err) => {
            eprintln!("echo-load: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = format!(
        "{} {} {}\n",
        load.round_trips,
        load.total_round_trips,
        load.window.as_nanos()
    );
    for bucket in load.latency.iter_recorded() {
        out.push_str(&format!("{} {}\n", bucket.value_iterated_to(), bucket.count_at_value()));
    }
    print!("{out}");
    ExitCode::SUCCESS
}
