//! Suite `memory`: resident memory per idle item, each runtime alone in its
//! own process.
//!
//! The suite re-executes its own binary once per (workload, runtime,
//! repetition) as `weft-benches memory-child <workload> <runtime> <workers>
//! <n> <heap-shift>`; the child builds only that runtime (with `workers` workers, its
//! reactor and timers enabled), holds `n` idle items, and prints the growth
//! of its resident set (`/proc/self/statm`) per item. So no runtime pays for
//! another's heap, arenas or fragments.
//!
//! The child measures a difference: it first builds a tenth as many items
//! (the warm-up: thread arenas, lazily grown slabs and wheels, thread-locals)
//! and keeps them, reads its resident set, builds the `n` items, waits until
//! every one has been polled and is parked, reads its resident set again,
//! and reports `(after - before) / n` bytes (metric `bytes`, lower is
//! better). Items are built in batches of [`BATCH`], each batch waiting for
//! the previous one to park, so that no run queue ever holds more than a
//! batch: what is measured is what an idle item keeps, not the burst that
//! created it. Before reporting, the child checks that no item finished.
//!
//! The workloads:
//!
//! - `idle_task`: a spawned task (its `JoinHandle` dropped) awaiting a
//!   `futures::channel::oneshot::Receiver<()>`, the same runtime-agnostic
//!   channel and the same 24-byte `async` block for all three (it counts
//!   itself in a static, which costs it no space). Each task's channel is
//!   created just before its spawn, as a program would, so the figure is the
//!   task (its allocation and whatever the scheduler keeps per task) plus
//!   the channel's one allocation, the same for all three (an 80-byte chunk
//!   with glibc); the senders wait in a vector written before the first
//!   reading. 100,000 tasks.
//! - `idle_tcp_conn`: a server-side TCP connection accepted by the runtime's
//!   own listener, with its serving task blocked in `read` on a 32-byte
//!   buffer (the task's own state). The clients are plain blocking
//!   `std::net::TcpStream`s connected from the child's main thread, in a
//!   vector allocated and written before the first reading, so they add
//!   nothing to the user-space figure (their kernel buffers are no process's
//!   resident memory, for either end). As many connections as the
//!   file-descriptor limit allows, at most 8,000.
//! - `pending_timer`: a sleep an hour or two in the future (deadlines spread
//!   over that hour), each runtime's own (`weft::time::sleep_until`,
//!   `tokio::time::sleep_until`, `async_io::Timer::at`), boxed and polled
//!   once, so it is registered with the timer, and then kept. Sleeps are held
//!   and polled by one task per batch of [`BATCH`], so a figure carries a
//!   thousandth of a task. 100,000 sleeps.
//!
//! Each repetition first shifts the child's heap by a different multiple of
//! 16 bytes (a small allocation it keeps, made before the runtime is
//! built; eight repetitions cover every offset modulo 128), and the table
//! shows the median. The shift matters for Tokio: its task cells are
//! aligned to 128 bytes, which glibc's `memalign` carves out of a larger
//! chunk, and how much of the rest later allocations reuse depends on where
//! the heap's top sits modulo 128 when the burst begins. Its figure flips
//! between two values with something as small as the length of the
//! program's path in `argv[0]`; without the shifts, the suite would report
//! one of them by accident.
//!
//! `--quick` measures a fifth as many items. Linux only (it reads
//! `/proc/self/statm`).

use crate::Options;
use crate::report::Report;
use crate::runtimes::{Ctx, Rt, Smol, Tokio, Weft};
use futures::channel::oneshot;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Items built between two waits for them to park.
const BATCH: usize = 1000;
/// Idle tasks and pending timers measured per run (`--quick`: a fifth).
const ITEMS: usize = 100_000;
/// The most TCP connections measured per run (each takes two descriptors).
const MAX_CONNS: usize = 8_000;
/// Clients connected between two waits for the server to accept them: well
/// under every runtime's listen backlog, so no SYN is dropped and retried.
const CONN_BATCH: usize = 100;
/// The workloads, in table order.
const WORKLOADS: [&str; 3] = ["idle_task", "idle_tcp_conn", "pending_timer"];
/// What the child prints before its figure.
const RESULT_PREFIX: &str = "memory-child bytes_per_item=";

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("memory");
    let reps = opts.reps.clamp(1, HEAP_SHIFTS);
    let items = if opts.quick { ITEMS / 5 } else { ITEMS };
    for workload in WORKLOADS {
        if opts.filter.as_deref().is_some_and(|f| !workload.contains(f)) {
            continue;
        }
        let n = if workload == "idle_tcp_conn" {
            conn_count(opts.quick)
        } else {
            items
        };
        eprint!("{workload} (n = {n}) ");
        for shift in 0..reps {
            for runtime in [Weft::NAME, Tokio::NAME, Smol::NAME] {
                if opts.runtime.as_deref().is_some_and(|only| only != runtime) {
                    continue;
                }
                let bytes = run_child(workload, runtime, opts.workers, n, shift).unwrap_or_else(|err| {
                    panic!("suite memory: the {runtime} child for {workload} failed: {err}");
                });
                report.record(workload, runtime, "bytes", bytes);
            }
        }
        eprintln!("done");
    }
    report
}

/// Runs one child process and returns its bytes per item.
fn run_child(workload: &str, runtime: &str, workers: usize, n: usize, shift: usize) -> io::Result<f64> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args([
            "memory-child",
            workload,
            runtime,
            &workers.to_string(),
            &n.to_string(),
            &shift.to_string(),
        ])
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{}; stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no result line in the child's output: {stdout:?}")))
}

/// How many connections to measure: as many as fit this process's
/// descriptor limit (raised to its hard limit), with the warm-up's tenth on
/// top, two descriptors per connection and room to spare.
fn conn_count(quick: bool) -> usize {
    let limit = raise_fd_limit();
    let fit = (limit.saturating_sub(256) / 2 * 10 / 11 / CONN_BATCH * CONN_BATCH).clamp(CONN_BATCH, MAX_CONNS);
    if quick { (fit / 4).max(CONN_BATCH) } else { fit }
}

/// The child: `memory-child <workload> <runtime> <workers> <n> <heap-shift>`.
pub(crate) fn child_main(args: &[String]) -> ExitCode {
    let [workload, runtime, workers, n, shift] = args else {
        eprintln!("usage: weft-benches memory-child <workload> <runtime> <workers> <n> <heap-shift>");
        return ExitCode::from(2);
    };
    let (Ok(workers), Ok(n), Ok(shift)) = (workers.parse::<usize>(), n.parse::<usize>(), shift.parse::<usize>()) else {
        eprintln!("memory-child: <workers>, <n> and <heap-shift> are numbers");
        return ExitCode::from(2);
    };
    let _heap_shift = shift_heap(shift);
    if resident_bytes().is_err() {
        eprintln!("suite memory reads /proc/self/statm, which this system lacks (Linux only)");
        return ExitCode::FAILURE;
    }
    raise_fd_limit();
    let result = match (runtime.as_str(), workload.as_str()) {
        ("weft", "idle_task") => idle_tasks(&Weft::new(workers), n),
        ("tokio", "idle_task") => idle_tasks(&Tokio::new(workers), n),
        ("smol", "idle_task") => idle_tasks(&Smol::new(workers), n),
        ("weft", "pending_timer") => pending_timers(&Weft::new(workers), n, weft::time::sleep_until),
        ("tokio", "pending_timer") => pending_timers(&Tokio::new(workers), n, |at: Instant| {
            tokio::time::sleep_until(at.into())
        }),
        ("smol", "pending_timer") => pending_timers(&Smol::new(workers), n, async_io::Timer::at),
        ("weft", "idle_tcp_conn") => {
            let rt = Weft::new(workers);
            idle_conns(&rt, n, weft_server)
        }
        ("tokio", "idle_tcp_conn") => {
            let rt = Tokio::new(workers);
            idle_conns(&rt, n, tokio_server)
        }
        ("smol", "idle_tcp_conn") => {
            let rt = Smol::new(workers);
            idle_conns(&rt, n, smol_server)
        }
        _ => {
            eprintln!("memory-child: unknown workload {workload:?} or runtime {runtime:?}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(bytes) => {
            println!("{RESULT_PREFIX}{bytes:.1}");
            // Exit without tearing the items down: the figure is taken.
            std::process::exit(0)
        }
        Err(err) => {
            eprintln!("memory-child {workload} on {runtime}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Heap offsets the repetitions cycle through (multiples of 16 bytes modulo
/// 128).
const HEAP_SHIFTS: usize = 8;

/// Moves the heap's top by `16 * (shift % 8)` bytes modulo 128, with one
/// allocation that the caller keeps: glibc rounds a request of `c - 8`
/// bytes to a chunk of `c` (a multiple of 16, at least 32).
fn shift_heap(shift: usize) -> Option<Box<[u8]>> {
    let chunk = match shift % HEAP_SHIFTS {
        0 => return None,
        1 => 128 + 16,
        k => 16 * k,
    };
    Some(std::hint::black_box(vec![0u8; chunk - 8]).into_boxed_slice())
}

/// The resident set of this process, in bytes.
fn resident_bytes() -> io::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/self/statm: {statm:?}")))?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages * u64::try_from(page).unwrap_or(4096))
}

/// Raises the soft descriptor limit to the hard one; returns the soft limit.
fn raise_fd_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write to.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// Waits (outside the runtime, without polling anything) until `counter`
/// reaches `target`, or fails after a generous while.
fn wait_for(counter: &AtomicUsize, target: usize, what: &str) -> io::Result<()> {
    let start = Instant::now();
    while counter.load(Acquire) < target {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(io::Error::other(format!(
                "{what}: {} of {target} after 60 s",
                counter.load(Acquire)
            )));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// Builds `warm` items, reads the resident set, builds `n` more, reads it
/// again; returns the growth per item. `build(count, so_far)` builds items
/// `so_far..so_far + count` (at most `batch` at once) and returns once they
/// are parked.
fn measure(
    warm: usize,
    n: usize,
    batch: usize,
    mut build: impl FnMut(usize, usize) -> io::Result<()>,
) -> io::Result<f64> {
    let mut built = 0;
    let mut build_to = |target: usize| -> io::Result<()> {
        while built < target {
            let count = batch.min(target - built);
            build(count, built)?;
            built += count;
        }
        Ok(())
    };
    build_to(warm)?;
    // Let the workers settle into their idle state before each reading.
    std::thread::sleep(Duration::from_millis(50));
    let before = resident_bytes()?;
    build_to(warm + n)?;
    std::thread::sleep(Duration::from_millis(50));
    let after = resident_bytes()?;
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

/// Items built and parked: tasks polled once, sleeps registered,
/// connections whose serving task waits in `read`. A static, so that
/// counting costs an item no space (each child process measures one
/// workload).
static PARKED: AtomicUsize = AtomicUsize::new(0);
/// Items that ended before the reading (tasks finished, sleeps fired,
/// connections closed): there must be none.
static ENDED: AtomicUsize = AtomicUsize::new(0);

/// Fails if an item ended before the reading: then it was not idle.
fn check_none_ended(what: &str) -> io::Result<()> {
    match ENDED.load(Acquire) {
        0 => Ok(()),
        k => Err(io::Error::other(format!("{k} {what} ended before the reading"))),
    }
}

// ----- idle tasks ----------------------------------------------------------

fn idle_tasks<R: Rt>(rt: &R, n: usize) -> io::Result<f64> {
    let ctx = rt.ctx();
    let warm = n / 10;
    // Written before the first reading, so that keeping a sender costs nothing.
    let mut senders: Vec<Option<oneshot::Sender<()>>> = (0..warm + n).map(|_| None).collect();
    let bytes = measure(warm, n, BATCH, |count, so_far| {
        for slot in &mut senders[so_far..so_far + count] {
            let (tx, rx) = oneshot::channel::<()>();
            *slot = Some(tx);
            ctx.spawn_detached(async move {
                PARKED.fetch_add(1, Release);
                let _ = rx.await;
                ENDED.fetch_add(1, Release);
            });
        }
        wait_for(&PARKED, so_far + count, "idle tasks polled")
    })?;
    check_none_ended("idle tasks")?;
    drop(senders);
    Ok(bytes)
}

// ----- pending timers ------------------------------------------------------

fn pending_timers<R, F>(rt: &R, n: usize, sleep_until: fn(Instant) -> F) -> io::Result<f64>
where
    R: Rt,
    F: Future + Send + 'static,
{
    let ctx = rt.ctx();
    let warm = n / 10;
    let base = Instant::now() + Duration::from_secs(3600);
    let mut stops = Vec::with_capacity((warm + n) / BATCH + 2);
    let bytes = measure(warm, n, BATCH, |count, so_far| {
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        ctx.spawn_detached(async move {
            // One box per sleep, created and first polled here, in the
            // runtime (Tokio's and Weft's sleeps need its context).
            let mut sleeps: Vec<Pin<Box<F>>> = (so_far..so_far + count)
                .map(|i| Box::pin(sleep_until(base + spread(i as u64))))
                .collect();
            std::future::poll_fn(|cx| {
                for sleep in &mut sleeps {
                    if sleep.as_mut().poll(cx).is_ready() {
                        ENDED.fetch_add(1, Release);
                    }
                }
                Poll::Ready(())
            })
            .await;
            PARKED.fetch_add(count, Release);
            let _ = stopped.await;
            drop(sleeps);
        });
        wait_for(&PARKED, so_far + count, "sleeps registered")
    })?;
    check_none_ended("sleeps an hour away")?;
    drop(stops);
    Ok(bytes)
}

/// Item `i`'s offset in the hour after the base deadline, scattered.
fn spread(i: u64) -> Duration {
    let x = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Duration::from_micros((x >> 11) % 3_600_000_000)
}

// ----- idle TCP connections --------------------------------------------------

/// Starts a server on `rt` that spawns one serving task per accepted
/// connection; each counts itself in [`PARKED`] and then blocks in `read`.
type StartServer<R> = fn(&R) -> io::Result<SocketAddr>;

fn idle_conns<R: Rt>(rt: &R, n: usize, start: StartServer<R>) -> io::Result<f64> {
    let warm = (n / 10).max(CONN_BATCH);
    let addr = start(rt)?;
    // The clients' vector is allocated and written before the first reading.
    let mut clients: Vec<Option<std::net::TcpStream>> = (0..warm + n).map(|_| None).collect();
    let bytes = measure(warm, n, CONN_BATCH, |count, so_far| {
        for client in &mut clients[so_far..so_far + count] {
            *client = Some(std::net::TcpStream::connect(addr)?);
        }
        wait_for(&PARKED, so_far + count, "connections accepted")
    })?;
    check_none_ended("connections")?;
    drop(clients);
    Ok(bytes)
}

/// Bytes each serving task reads into (part of the task's own state).
const READ_BUF: usize = 32;

fn weft_server(rt: &Weft) -> io::Result<SocketAddr> {
    use weft::io::AsyncReadExt;
    let listener = rt.0.block_on(async { weft::net::TcpListener::bind("127.0.0.1:0") })?;
    let addr = listener.local_addr()?;
    drop(rt.0.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            drop(weft::spawn(async move {
                let mut buf = [0u8; READ_BUF];
                PARKED.fetch_add(1, Release);
                while let Ok(1..) = stream.read(&mut buf).await {}
                ENDED.fetch_add(1, Release);
            }));
        }
    }));
    Ok(addr)
}

fn tokio_server(rt: &Tokio) -> io::Result<SocketAddr> {
    use tokio::io::AsyncReadExt;
    let listener = rt.0.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    drop(rt.0.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            drop(tokio::spawn(async move {
                let mut buf = [0u8; READ_BUF];
                PARKED.fetch_add(1, Release);
                while let Ok(1..) = stream.read(&mut buf).await {}
                ENDED.fetch_add(1, Release);
            }));
        }
    }));
    Ok(addr)
}

fn smol_server(rt: &Smol) -> io::Result<SocketAddr> {
    use futures_lite::io::AsyncReadExt;
    let listener = futures_lite::future::block_on(async_net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let ex = rt.ex.clone();
    rt.ex
        .spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                ex.spawn(async move {
                    let mut buf = [0u8; READ_BUF];
                    PARKED.fetch_add(1, Release);
                    while let Ok(1..) = stream.read(&mut buf).await {}
                    ENDED.fetch_add(1, Release);
                })
                .detach();
            }
        })
        .detach();
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_set_is_readable_and_grows_with_touched_memory() {
        let before = resident_bytes().expect("statm");
        let mut block = vec![0u8; 16 << 20];
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        let after = resident_bytes().expect("statm");
        std::hint::black_box(&block);
        assert!(after >= before + (12 << 20), "{before} -> {after}");
    }

    #[test]
    fn deadlines_spread_over_an_hour() {
        let hour = Duration::from_secs(3600);
        let offsets: Vec<Duration> = (0..1000).map(spread).collect();
        assert!(offsets.iter().all(|&d| d < hour));
        assert!(offsets.iter().any(|&d| d > hour / 2) && offsets.iter().any(|&d| d < hour / 2));
    }
}
