//! The Weft tour: one runtime, one loop, and everything it can wait for.
//!
//! ```text
//! cargo run --release -p weft-examples --bin tour
//! ```
//!
//! A narrated run (well under a second) of a four-worker runtime:
//!
//! 1. sixteen tasks of uneven size spread over the workers (where each
//!    started and finished: an idle worker steals from a busy one), a
//!    blocking call on the blocking pool, and a chain of tasks that mostly
//!    stays on one worker through the LIFO slot;
//! 2. an echo server on an ephemeral port of 127.0.0.1, and twenty client
//!    tasks that each send a few messages and check the echoes;
//! 3. timers, started out of order, completing in deadline order;
//! 4. work that ends outside the runtime: a stand-in device polled by the
//!    loop as a [`Source`], and a result handed over
//!    by a plain thread through the reactor's completion notifier;
//! 5. all of it at once: echo clients, a ticking interval, device jobs and a
//!    thread's result, interleaved in one loop, as a timeline;
//! 6. what each worker did, from the runtime's metrics.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream};
use weft::source::{Notifier, Source, SourceHandle};
use weft::time::{interval, sleep, timeout};

const WORKERS: usize = 4;
/// No step of the tour may hang: each client gives up after this long.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> io::Result<()> {
    let rt = weft::Builder::new_multi_thread().worker_threads(WORKERS).build()?;
    let notifier = rt.reactor().notifier().clone();
    let device = Device::attach(&rt)?;
    let start = Instant::now();
    println!("The Weft tour: one runtime with {WORKERS} workers, one loop for tasks, sockets, timers and devices\n");

    rt.block_on(async {
        tasks_over_workers().await?;
        let server = EchoServer::start()?;
        echo_clients(&server).await?;
        timers_in_deadline_order().await?;
        completions_from_outside(&device, &notifier).await?;
        all_at_once(&server, &device, &notifier).await?;
        // Stop the accept loop and wait until it is gone (abort only asks).
        server.task.abort();
        let _cancelled = server.task.await;
        Ok::<(), io::Error>(())
    })?;
    drop(device);

    worker_table(&rt);
    println!("\nThe tour took {:.0?}.", start.elapsed());
    Ok(())
}

/// The name of the thread running the caller: `weft-worker-2`, `main`...
fn worker() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// 1. Tasks over workers ------------------------------------------------------

async fn tasks_over_workers() -> io::Result<()> {
    println!("1. Sixteen tasks of uneven size, spawned from block_on:");
    let start = Instant::now();
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            weft::spawn(async move {
                let started_on = worker();
                // Uneven CPU work, yielding now and then so that an idle
                // worker can steal what waits in a busy one's queue.
                let mut x = i;
                for step in 0..(i + 1) * 50_000 {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(step);
                    if step % 20_000 == 0 {
                        weft::task::yield_now().await;
                    }
                }
                (weft::task::id(), started_on, worker(), x)
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (id, started_on, finished_on, _) = task.await?;
        let moved = if started_on == finished_on { "" } else { "  <- moved" };
        println!("   task {i:>2} (id {id:>4}) started on {started_on}, finished on {finished_on}{moved}");
    }
    println!("   all done in {:.1?}", start.elapsed());

    let ran_on = weft::spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(20));
        worker()
    })
    .await?;
    println!("   a blocking call (sleeping 20 ms) ran on {ran_on}, not on a worker");

    let start = Instant::now();
    let hops = Arc::new(AtomicUsize::new(0));
    let (first, last) = weft::spawn(chain(1000, hops.clone())).await?;
    println!(
        "   a chain of 1000 tasks, each spawning the next and awaiting it, went from {first} to {last} in {:.1?};\n   \
         only {} of its 1000 hand-offs changed worker: a task spawned on a worker goes to its LIFO slot and runs next\n",
        start.elapsed(),
        hops.load(Ordering::Relaxed)
    );
    Ok(())
}

/// A chain of `n` more tasks, each spawning the next and awaiting it; returns
/// where the first and the last link ran, and counts in `hops` the links that
/// ran on another worker than the link that spawned them.
fn chain(n: u32, hops: Arc<AtomicUsize>) -> std::pin::Pin<Box<dyn Future<Output = (String, String)> + Send>> {
    Box::pin(async move {
        let here = worker();
        if n == 0 {
            return (here.clone(), here);
        }
        let last = match weft::spawn(chain(n - 1, hops.clone())).await {
            Ok((next, last)) => {
                if next != here {
                    hops.fetch_add(1, Ordering::Relaxed);
                }
                last
            }
            Err(err) => format!("(a link failed: {err})"),
        };
        (here, last)
    })
}

// 2. An echo server and its clients -------------------------------------------

/// An echo server on an ephemeral port of 127.0.0.1.
struct EchoServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: weft::JoinHandle<()>,
}

impl EchoServer {
    fn start() -> io::Result<EchoServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = weft::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _peer)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        // One task per connection; it ends when the client
                        // closes its side.
                        weft::spawn(async move {
                            let _ = stream.set_nodelay(true);
                            let (mut reader, mut writer) = stream.into_split();
                            if let Err(err) = weft::io::copy(&mut reader, &mut writer).await {
                                eprintln!("tour: echo server: {err}");
                            }
                        });
                    }
                    // Out of descriptors (EMFILE) or another failure: back
                    // off rather than spin on a listener that stays ready.
                    Err(err) => {
                        eprintln!("tour: echo server: accept: {err}; retrying in 50 ms");
                        sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(EchoServer { addr, accepted, task })
    }
}

/// Connects, sends `rounds` messages (`pause` apart) and checks each echo;
/// returns the round-trip times.
async fn echo_client(
    addr: SocketAddr,
    id: usize,
    rounds: usize,
    pause: Duration,
    echoes: Arc<AtomicUsize>,
) -> io::Result<Vec<Duration>> {
    let context = |what: &str, err: io::Error| io::Error::new(err.kind(), format!("client {id}: {what}: {err}"));
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| context(&format!("connect to {addr}"), e))?;
    stream.set_nodelay(true).map_err(|e| context("set_nodelay", e))?;
    let mut rtts = Vec::with_capacity(rounds);
    let mut echo = Vec::new();
    for round in 0..rounds {
        if round > 0 && !pause.is_zero() {
            sleep(pause).await;
        }
        let message = format!(
            "client {id} says hello #{round} {}\n",
            "~".repeat((id * 7 + round * 13) % 40)
        );
        let sent = Instant::now();
        stream
            .write_all(message.as_bytes())
            .await
            .map_err(|e| context("write", e))?;
        echo.resize(message.len(), 0);
        stream.read_exact(&mut echo).await.map_err(|e| context("read", e))?;
        rtts.push(sent.elapsed());
        if echo != message.as_bytes() {
            let msg = format!("client {id}: the echo of message #{round} differs from what was sent");
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        echoes.fetch_add(1, Ordering::Relaxed);
    }
    Ok(rtts)
}

async fn echo_clients(server: &EchoServer) -> io::Result<()> {
    const CLIENTS: usize = 20;
    const ROUNDS: usize = 5;
    println!(
        "2. An echo server on {}, and {CLIENTS} client tasks sending {ROUNDS} messages each:",
        server.addr
    );
    let echoes = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = echo_client(server.addr, id, ROUNDS, Duration::ZERO, echoes.clone());
            weft::spawn(timeout(CLIENT_TIMEOUT, client))
        })
        .collect();
    let mut rtts = Vec::new();
    for client in clients {
        rtts.extend(client.await???);
    }
    let elapsed = start.elapsed();
    rtts.sort();
    println!(
        "   {} echoes verified from {} connections in {:.1?}; round trip p50 {:.0?}, max {:.0?}\n",
        echoes.load(Ordering::Relaxed),
        server.accepted.load(Ordering::Relaxed),
        elapsed,
        rtts[rtts.len() / 2],
        rtts[rtts.len() - 1],
    );
    Ok(())
}

// 3. Timers --------------------------------------------------------------------

async fn timers_in_deadline_order() -> io::Result<()> {
    let deadlines = [40u64, 10, 50, 20, 30];
    println!("3. Five sleeps, started in the order {deadlines:?} ms:");
    let start = Instant::now();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let sleepers: Vec<_> = deadlines
        .iter()
        .map(|&after| {
            let finished = finished.clone();
            weft::spawn(async move {
                sleep(Duration::from_millis(after)).await;
                lock(&finished).push((after, start.elapsed()));
            })
        })
        .collect();
    for sleeper in sleepers {
        sleeper.await?;
    }
    for (after, at) in lock(&finished).iter() {
        println!("   the {after} ms sleep completed at {:>5.1} ms", ms(*at));
    }
    println!();
    Ok(())
}

// 4. A device polled as a source, and the completion notifier ------------------

/// A stand-in for a device (think of a GPU): jobs run one after another on
/// its own thread, and finishing one only sets a flag. Nobody is told: the
/// loop finds out by polling the device, registered as a [`Source`].
struct Device {
    state: Arc<DeviceState>,
    /// Keeps the source registered; dropping it removes it from the loop.
    registration: SourceHandle,
}

#[derive(Default)]
struct DeviceState {
    /// Jobs submitted and not yet noticed by the loop.
    in_flight: Mutex<Vec<Arc<Job>>>,
    /// The device thread's queue of work.
    queue: Mutex<Option<mpsc::Sender<Work>>>,
}

/// A job for the device thread: how long it takes, and the job.
type Work = (Duration, Arc<Job>);

#[derive(Default)]
struct Job {
    /// Set by the device thread, when the work is done.
    finished_at: OnceLock<Instant>,
    /// Set by the loop, when its poll of the source sees the flag.
    noticed: OnceLock<()>,
    /// The task awaiting the job.
    waker: Mutex<Option<Waker>>,
}

impl Device {
    /// Starts the device's thread and registers the device with `rt`'s loop.
    fn attach(rt: &weft::Runtime) -> io::Result<Arc<Device>> {
        let (queue, work) = mpsc::channel::<Work>();
        std::thread::Builder::new().name("device".into()).spawn(move || {
            // Ends when the device is dropped (the queue closes).
            for (duration, job) in work {
                std::thread::sleep(duration);
                let _ = job.finished_at.set(Instant::now());
            }
        })?;
        let state = Arc::new(DeviceState {
            queue: Mutex::new(Some(queue)),
            ..DeviceState::default()
        });
        let registration = rt.reactor().register_source(state.clone());
        Ok(Arc::new(Device { state, registration }))
    }

    /// Queues a job that keeps the device busy for `duration`; the future
    /// completes once the loop has noticed the job finished, with the
    /// instant it finished on the device.
    fn submit(&self, duration: Duration) -> impl Future<Output = io::Result<Instant>> + Send + 'static {
        let job = Arc::new(Job::default());
        lock(&self.state.in_flight).push(job.clone());
        let queued = lock(&self.state.queue)
            .as_ref()
            .is_some_and(|queue| queue.send((duration, job.clone())).is_ok());
        // The loop may be asleep with no deadline: have it look again, now
        // that the source has work pending.
        self.registration.notify();
        std::future::poll_fn(move |cx| {
            if !queued {
                return Poll::Ready(Err(io::Error::other("the device thread is gone")));
            }
            if job.noticed.get().is_none() {
                *lock(&job.waker) = Some(cx.waker().clone());
                // Noticed meanwhile? Then the loop may have found no waker.
                if job.noticed.get().is_none() {
                    return Poll::Pending;
                }
            }
            Poll::Ready(Ok(*job.finished_at.get().expect("a job is noticed after it finished")))
        })
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // Stops the device thread once its queue is empty.
        lock(&self.state.queue).take();
    }
}

impl Source for DeviceState {
    /// Called by the loop while jobs are in flight: wakes the tasks whose
    /// job finished.
    fn poll(&self) -> usize {
        let mut finished = Vec::new();
        lock(&self.in_flight).retain(|job| {
            let done = job.finished_at.get().is_some();
            if done {
                finished.push(job.clone());
            }
            !done
        });
        for job in &finished {
            let _ = job.noticed.set(());
            if let Some(waker) = lock(&job.waker).take() {
                waker.wake();
            }
        }
        finished.len()
    }

    fn has_pending(&self) -> bool {
        !lock(&self.in_flight).is_empty()
    }

    /// Once the device has been quiet a while, the loop sleeps at most this
    /// long between two polls.
    fn max_sleep(&self) -> Duration {
        Duration::from_millis(2)
    }
}

/// Sums 1..=n the slow way on a plain thread, and hands the result to the
/// loop through the notifier; the value comes with the instant it was sent.
fn sum_on_a_thread(notifier: &Notifier, n: u64, after: Duration) -> weft::source::Completion<(u64, Instant)> {
    let (completer, completion) = notifier.completion();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let sum = (1..=n).fold(0u64, |acc, k| acc.wrapping_add(std::hint::black_box(k)));
        completer.complete((sum, Instant::now()));
    });
    completion
}

async fn completions_from_outside(device: &Device, notifier: &Notifier) -> io::Result<()> {
    println!("4. Work that ends outside the runtime:");
    let start = Instant::now();
    let finished_at = device.submit(Duration::from_millis(20)).await?;
    let noticed = Instant::now();
    println!(
        "   a 20 ms device job finished on the device thread at {:.1} ms; the loop's poll of the source \
         noticed, and the task resumed at {:.1} ms",
        ms(finished_at - start),
        ms(noticed - start)
    );
    let (sum, sent) = sum_on_a_thread(notifier, 1_000_000, Duration::ZERO)
        .await
        .map_err(io::Error::other)?;
    println!(
        "   a plain thread summed 1..=1000000 = {sum} and completed a notifier completion; the awaiting task had \
         it {:.0?} later\n",
        sent.elapsed()
    );
    Ok(())
}

// 5. All at once ------------------------------------------------------------------

/// Events with the time they happened and the thread they happened on.
struct Timeline {
    start: Instant,
    events: Mutex<Vec<(Duration, String, String)>>,
}

impl Timeline {
    fn log(&self, what: String) {
        let at = self.start.elapsed();
        lock(&self.events).push((at, worker(), what));
    }
}

async fn all_at_once(server: &EchoServer, device: &Arc<Device>, notifier: &Notifier) -> io::Result<()> {
    const CLIENTS: usize = 10;
    const ROUNDS: usize = 4;
    const TICKS: u32 = 7;
    println!("5. All at once, in one loop:");
    println!("   - {CLIENTS} echo clients, one every 10 ms, each sending {ROUNDS} messages 10 ms apart");
    println!("   - an interval ticking every 25 ms");
    println!("   - three 35 ms jobs queued on the device at once");
    println!("   - a thread that computes for a while and hands over its result at about 50 ms");
    let timeline = Arc::new(Timeline {
        start: Instant::now(),
        events: Mutex::new(Vec::new()),
    });
    let echoes = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();

    for id in 0..CLIENTS {
        let (timeline, echoes, addr) = (timeline.clone(), echoes.clone(), server.addr);
        tasks.push(weft::spawn(async move {
            sleep(Duration::from_millis(10 * id as u64)).await;
            let client = echo_client(addr, 100 + id, ROUNDS, Duration::from_millis(10), echoes);
            let rtts = timeout(CLIENT_TIMEOUT, client).await??;
            let worst = rtts.iter().max().copied().unwrap_or_default();
            timeline.log(format!(
                "echo    client {id}: {ROUNDS} echoes verified, slowest round trip {worst:.0?}"
            ));
            Ok::<(), io::Error>(())
        }));
    }

    {
        let (timeline, echoes) = (timeline.clone(), echoes.clone());
        tasks.push(weft::spawn(async move {
            let mut ticks = interval(Duration::from_millis(25));
            for n in 0..TICKS {
                ticks.tick().await;
                let so_far = echoes.load(Ordering::Relaxed);
                timeline.log(format!("timer   tick {n}, {so_far} echoes so far"));
            }
            Ok(())
        }));
    }

    for n in 1..=3 {
        let job = device.submit(Duration::from_millis(35));
        let timeline = timeline.clone();
        tasks.push(weft::spawn(async move {
            let finished_at = job.await?;
            timeline.log(format!(
                "device  job {n} done (finished on the device {:.0?} before)",
                finished_at.elapsed()
            ));
            Ok(())
        }));
    }

    {
        let result = sum_on_a_thread(notifier, 5_000_000, Duration::from_millis(50));
        let timeline = timeline.clone();
        tasks.push(weft::spawn(async move {
            let (sum, sent) = result.await.map_err(io::Error::other)?;
            timeline.log(format!(
                "thread  result {sum} delivered through the notifier ({:.0?} after it was sent)",
                sent.elapsed()
            ));
            Ok(())
        }));
    }

    for task in tasks {
        task.await??;
    }
    println!("\n   {:>8}  {:<14}  event", "time", "thread");
    let mut events = std::mem::take(&mut *lock(&timeline.events));
    events.sort_by_key(|(at, _, _)| *at);
    for (at, thread, what) in &events {
        println!("   {:>5.1} ms  {thread:<14}  {what}", ms(*at));
    }
    println!();
    Ok(())
}

// 6. Metrics -----------------------------------------------------------------------

fn worker_table(rt: &weft::Runtime) {
    let metrics = rt.metrics();
    println!("6. What each worker did over the whole tour:");
    println!(
        "   {:<10} {:>8} {:>11} {:>8} {:>7}",
        "worker", "polls", "lifo polls", "steals", "parks"
    );
    for (i, w) in metrics.workers.iter().enumerate() {
        println!(
            "   {:<10} {:>8} {:>11} {:>8} {:>7}",
            format!("worker-{i}"),
            w.polls,
            w.lifo_polls,
            w.steals,
            w.parks
        );
    }
    println!(
        "   blocking-pool threads: {}, tasks still alive: {}",
        metrics.blocking_threads, metrics.alive_tasks
    );
}
