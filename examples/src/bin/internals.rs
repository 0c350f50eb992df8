//! Seeing inside Weft while it works: metrics and a short task dump every
//! second, and a timeline that Weft's offline viewer opens.
//!
//! ```text
//! cargo run --release -p weft-examples --bin internals                   # 3 s, trace in internals-trace.json
//! cargo run --release -p weft-examples --bin internals -- --seconds 10 --trace /tmp/t.json
//! ```
//!
//! A mixed workload runs on a four-worker runtime: TCP echo clients and
//! their server, timers (tickers and timeouts), blocking jobs on the
//! blocking pool, CPU work on a `Pool`, and a stand-in for a device: a
//! thread that finishes jobs, watched by the loop as a
//! [`Source`] that puts its operations on the
//! timeline and tells task dumps what its tasks wait on. Every second the
//! program prints the runtime's and the reactor's metrics and the workers'
//! and longest-idle tasks' rows of a dump. At the end the runtime writes its
//! timeline (`internals-trace.json`) and the viewer with the trace inside
//! (`internals-trace.html`): open that file in any browser, offline.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use weft::dump::{Dump, TaskState, WorkerState};
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream};
use weft::observe::Wait;
use weft::pool::Pool;
use weft::source::{Source, SourceHandle};
use weft::task::Builder;

const WORKERS: usize = 4;

fn main() -> io::Result<()> {
    let (seconds, trace) = arguments()?;
    let rt = weft::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .trace_file(&trace)
        .build()?;
    let device = Device::attach(&rt)?;
    let pool = Arc::new(Pool::new(2)?);
    println!("internals: {WORKERS} workers, {seconds} s of sockets, timers, blocking jobs, a CPU pool and a device\n");

    rt.block_on(async {
        let server = echo_server()?;
        for i in 0..8 {
            Builder::new().name("echo client").spawn(echo_client(server, i));
        }
        Builder::new().name("ticker").spawn(async {
            let mut tick = weft::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
            }
        });
        Builder::new().name("blocking jobs").spawn(async {
            loop {
                // A file-system-like call: it blocks, so it goes to the pool.
                let _ = weft::spawn_blocking(|| std::thread::sleep(Duration::from_millis(15))).await;
                weft::time::sleep(Duration::from_millis(30)).await;
            }
        });
        let cpu = pool.clone();
        Builder::new().name("cpu pool").spawn(async move {
            loop {
                let sums = cpu.map_async(|n: u64| (0..n * 20_000).fold(0u64, |a, k| a ^ k), 1..=16, Some(4));
                if let Ok(sums) = sums {
                    let _ = sums.await;
                }
                weft::time::sleep(Duration::from_millis(20)).await;
            }
        });
        for i in 0..3 {
            let device = device.clone();
            Builder::new().name("device user").spawn(async move {
                loop {
                    let took = Duration::from_millis(2 + 3 * i);
                    let _ = weft::time::timeout(Duration::from_secs(1), device.submit(took)).await;
                }
            });
        }

        let start = Instant::now();
        for second in 1..=seconds {
            weft::time::sleep_until(start + Duration::from_secs(second)).await;
            report(second, &weft::Handle::current(), &pool);
        }
        Ok::<_, io::Error>(())
    })?;
    drop(device);
    // Dropping the runtime writes the trace (and the viewer next to it).
    drop(rt);
    println!(
        "timeline written: {} and {} (open it in a browser, no network needed)",
        trace,
        weft::viewer_path(trace.as_ref()).display()
    );
    Ok(())
}

/// `--seconds N` and `--trace PATH`.
fn arguments() -> io::Result<(u64, String)> {
    let (mut seconds, mut trace) = (3, "internals-trace.json".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--seconds", Some(n)) => seconds = n.parse().map_err(io::Error::other)?,
            ("--trace", Some(path)) => trace = path,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "usage: internals [--seconds N] [--trace PATH]",
                ));
            }
        }
    }
    Ok((seconds, trace))
}

/// One second's report: metrics, then the dump's workers and the tasks idle
/// longest.
fn report(second: u64, handle: &weft::Handle, pool: &Pool) {
    let m = handle.metrics();
    let r = handle.reactor_metrics();
    let polls: u64 = m.workers.iter().map(|w| w.polls).sum();
    let parks: u64 = m.workers.iter().map(|w| w.parks).sum();
    let steals: u64 = m.workers.iter().map(|w| w.steals).sum();
    let mut poll_times = weft::PollTimeHistogram::default();
    for w in &m.workers {
        poll_times.merge(&w.poll_time_histogram);
    }
    let quantile = |q| poll_times.quantile(q).map_or("-".to_owned(), |d| format!("{d:?}"));
    println!("── t = {second} s ──────────────────────────────────────────────────────");
    println!(
        "tasks    {} alive, {} spawned · {polls} polls, {parks} parks, {steals} stolen · callbacks {}",
        m.alive_tasks, m.spawned_tasks, m.callbacks_run
    );
    println!(
        "polls    sampled times ({} samples): p50 ≤ {}, p99 ≤ {}",
        poll_times.samples(),
        quantile(0.5),
        quantile(0.99)
    );
    let busy_turns = r.turns - r.events_per_turn.first().copied().unwrap_or(0);
    println!(
        "reactor  {} turns ({} with events), {} events · timers {} pending, {} fired ({} off the loop) · {} sockets",
        r.turns, busy_turns, r.events, r.timers_pending, r.timers_fired, r.timers_fired_off_loop, r.registrations
    );
    for s in &r.sources {
        println!(
            "source   {}: {} pending, {} completed in {} polls",
            s.name, s.pending, s.completed, s.polls
        );
    }
    println!(
        "blocking {} threads ({} idle), {} queued · cpu pool {} busy, {} queued",
        m.blocking_threads,
        m.idle_blocking_threads,
        m.blocking_queue_depth,
        pool.busy_workers(),
        pool.queued_jobs()
    );
    short_dump(&handle.dump());
}

/// The workers' states and the four tasks idle longest, from a dump.
fn short_dump(dump: &Dump) {
    let now = dump.taken_at_us;
    for w in dump.workers.iter().filter(|w| w.kind == weft::dump::WorkerKind::Worker) {
        let state = match &w.state {
            WorkerState::Polling { task, at_most_us, .. } => format!("polling task {task} (≤ {at_most_us} µs)"),
            WorkerState::Parked { for_us } => format!("parked {for_us} µs"),
            _ => "between polls".to_owned(),
        };
        println!("worker {} {state}", w.index);
    }
    let mut idle: Vec<_> = dump.tasks.iter().filter(|t| t.state == TaskState::Idle).collect();
    idle.sort_by_key(|t| std::cmp::Reverse(t.since_last_poll_us));
    for t in idle.iter().take(4) {
        let wait = t.wait.map_or("?".to_owned(), |w| w.display_at(now).to_string());
        println!(
            "task {:>4} {:<14} idle {:>7} µs, waits on {wait}",
            t.id,
            t.name.as_deref().unwrap_or("-"),
            t.since_last_poll_us.unwrap_or(0)
        );
    }
    println!();
}

/// An echo server on an ephemeral port.
fn echo_server() -> io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    Builder::new().name("echo server").spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            weft::spawn(async move {
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = conn.read(&mut buf).await {
                    if conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Sends a message every few milliseconds and reads the echo.
async fn echo_client(server: std::net::SocketAddr, i: u64) {
    let Ok(mut conn) = TcpStream::connect(server).await else {
        return;
    };
    let mut buf = [0u8; 64];
    loop {
        let msg = format!("client {i} says hello");
        if conn.write_all(msg.as_bytes()).await.is_err() || conn.read_exact(&mut buf[..msg.len()]).await.is_err() {
            return;
        }
        weft::time::sleep(Duration::from_millis(5 + i)).await;
    }
}

/// A stand-in for a device: a thread runs the jobs; the loop polls for the
/// finished ones, as it does for CUDA events or MPI requests.
struct Device {
    state: Arc<DeviceState>,
    registration: SourceHandle,
}

/// A job for the device thread: how long it takes, and the job.
type Work = (Duration, Arc<Job>);

#[derive(Default)]
struct DeviceState {
    in_flight: Mutex<Vec<Arc<Job>>>,
    queue: Mutex<Option<mpsc::Sender<Work>>>,
}

#[derive(Default)]
struct Job {
    /// The job's id on the timeline.
    id: u64,
    done: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Device {
    fn attach(rt: &weft::Runtime) -> io::Result<Arc<Device>> {
        let (queue, work) = mpsc::channel::<Work>();
        std::thread::Builder::new().name("device".into()).spawn(move || {
            for (took, job) in work {
                std::thread::sleep(took);
                job.done.store(1, Relaxed);
            }
        })?;
        let state = Arc::new(DeviceState {
            queue: Mutex::new(Some(queue)),
            ..DeviceState::default()
        });
        let registration = rt.reactor().register_source(state.clone());
        Ok(Arc::new(Device { state, registration }))
    }

    /// A job that keeps the device busy for `took`.
    fn submit(&self, took: Duration) -> impl Future<Output = ()> + Send + 'static {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let job = Arc::new(Job {
            id: NEXT.fetch_add(1, Relaxed),
            ..Job::default()
        });
        weft::observe::op_submitted("device", "queue", 0, "job", job.id);
        lock(&self.state.in_flight).push(job.clone());
        if let Some(queue) = lock(&self.state.queue).as_ref() {
            let _ = queue.send((took, job.clone()));
        }
        self.registration.notify();
        std::future::poll_fn(move |cx| {
            if job.done.load(Relaxed) == 2 {
                return Poll::Ready(());
            }
            *lock(&job.waker) = Some(cx.waker().clone());
            if job.done.load(Relaxed) == 2 {
                return Poll::Ready(());
            }
            // Tell a task dump what this task waits on.
            weft::observe::waiting(Wait::Source {
                source: "device",
                id: job.id,
            });
            Poll::Pending
        })
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        lock(&self.state.queue).take();
    }
}

impl Source for DeviceState {
    fn poll(&self) -> usize {
        let mut finished = Vec::new();
        lock(&self.in_flight).retain(|job| {
            let done = job.done.load(Relaxed) == 1;
            if done {
                finished.push(job.clone());
            }
            !done
        });
        for job in &finished {
            job.done.store(2, Relaxed);
            weft::observe::op_completed("device", job.id, true);
            if let Some(waker) = lock(&job.waker).take() {
                waker.wake();
            }
        }
        finished.len()
    }

    fn has_pending(&self) -> bool {
        !lock(&self.in_flight).is_empty()
    }

    fn name(&self) -> &'static str {
        "device"
    }

    fn pending(&self) -> usize {
        lock(&self.in_flight).len()
    }

    fn max_sleep(&self) -> Duration {
        Duration::from_millis(1)
    }
}
