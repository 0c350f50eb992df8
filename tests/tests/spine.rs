//! Regressions found by the adversarial review of the spine (issue 15): the
//! stalls, lost wakeups and leaks it looked for where features meet.
//!
//! Each test names the defect it shows; the report in the review says what
//! failed and why. Tests that measure time run one at a time (`SERIAL`).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn parks(rt: &weft::Runtime) -> u64 {
    rt.metrics().workers.iter().map(|w| w.parks).sum()
}

/// A waker that unparks a thread and counts its wakes.
struct ThreadWaker(std::thread::Thread, AtomicUsize);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.1.fetch_add(1, SeqCst);
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.1.fetch_add(1, SeqCst);
        self.0.unpark();
    }
}

fn block_on_thread<F: std::future::Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current(), AtomicUsize::new(0))));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

// ---------------------------------------------------------------------------
// Stall: a task queued behind the LIFO task of a worker that then blocks.
// ---------------------------------------------------------------------------

/// Two timers fire in one turn of the driver: X's first, then Y's. X's task
/// goes to the LIFO slot, then Y's displaces it into the run queue. The
/// worker leaves the driver with LIFO = Y and queue = [X], runs Y, which
/// blocks its thread for 300 ms. X is in a stealable queue, the other worker
/// is idle, yet nobody is told: `Context::park` notifies only when
/// `run_queue.len() > 1` (the LIFO task not counted). X runs ~300 ms late.
#[test]
fn a_task_queued_behind_the_lifo_task_of_a_worker_that_blocks_is_not_stalled() {
    let _serial = serial();
    let mut lateness = Vec::new();
    for workers in [2, 2, 3, 3, 8] {
        let rt = weft::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
            .unwrap();
        let base = Instant::now() + Duration::from_millis(50);
        let (tx, rx) = mpsc::channel();
        let x = rt.spawn(async move {
            weft::time::sleep_until(base).await;
            tx.send(Instant::now() - base).unwrap();
        });
        let y = rt.spawn(async move {
            weft::time::sleep_until(base + Duration::from_nanos(1)).await;
            std::thread::sleep(Duration::from_millis(300));
        });
        let late = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        rt.block_on(async {
            x.await.unwrap();
            y.await.unwrap();
        });
        lateness.push((workers, late));
    }
    println!("(workers, X lateness) per round: {lateness:?}");
    let worst = lateness.iter().map(|l| l.1).max().unwrap();
    assert!(
        worst < Duration::from_millis(50),
        "a stealable task waited behind a blocked worker while the other was idle: {lateness:?}"
    );
}

/// docs/ARCHITECTURE.md step 5: "a task that blocks this worker for a
/// second stalls the sockets and timers of every other task for at most
/// about 2 ms, never for the second". A task woken by the task that then
/// blocks sits in the worker's LIFO slot, which nobody may steal: it waits
/// the whole block while the other worker idles. (Tokio has the same slot;
/// the finding is the claim.)
#[test]
fn a_task_woken_by_a_task_that_then_blocks_waits_for_the_whole_block() {
    let _serial = serial();
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut lateness = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = mpsc::channel();
        let (chan_tx, mut chan_rx) = weft::sync::mpsc::channel::<Instant>(1);
        let woken = rt.spawn(async move {
            let sent = chan_rx.recv().await.unwrap();
            tx.send(Instant::now() - sent).unwrap();
        });
        std::thread::sleep(Duration::from_millis(20));
        let blocker = rt.spawn(async move {
            chan_tx.send(Instant::now()).await.unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        lateness.push(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        rt.block_on(async {
            woken.await.unwrap();
            blocker.await.unwrap();
        });
    }
    println!("woken task ran after: {lateness:?}");
    assert!(
        lateness.iter().all(|l| *l < Duration::from_millis(50)),
        "a task woken by a blocking task waited for the block: {lateness:?}"
    );
}

// ---------------------------------------------------------------------------
// Quiet when idle, and what light periodic load costs.
// ---------------------------------------------------------------------------

#[test]
fn an_idle_runtime_goes_quiet_with_1_2_3_and_8_workers() {
    let _serial = serial();
    let mut report = Vec::new();
    for workers in [1, 2, 3, 8] {
        let rt = weft::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
            .unwrap();
        // Some activity first, then idle.
        rt.block_on(async {
            for _ in 0..10 {
                weft::time::sleep(Duration::from_millis(3)).await;
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        let p0 = parks(&rt);
        let c0 = cpu_time();
        std::thread::sleep(Duration::from_secs(1));
        let idle_parks = parks(&rt) - p0;
        let cpu = cpu_time() - c0;
        report.push(format!(
            "{workers} workers: {idle_parks} parks, {cpu:?} CPU in 1 s idle"
        ));
        drop(rt);
    }
    println!("{}", report.join("\n"));
    for line in &report {
        let parks: u64 = line
            .split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(parks <= 20, "not quiet: {report:?}");
    }
}

/// What light periodic load costs in wakeups. A 1-worker runtime parks
/// about twice per tick; with more workers an event that leaves the driver
/// to run a task costs the waking worker's park, the hand-off that keeps
/// the driver watched, the new holder's one look for a stuck worker, and
/// the first worker's park again: about four. (Before the standby measured
/// how often workers leave the driver, every leave re-armed 16 timed
/// watches: about 19 parks per tick at a 100 ms period.)
#[test]
fn light_periodic_load_costs_wakeups_of_the_standby() {
    let _serial = serial();
    let mut report = Vec::new();
    for workers in [1, 2, 8] {
        for period_ms in [10u64, 25, 100] {
            let rt = weft::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap();
            let ticks = Arc::new(AtomicUsize::new(0));
            let t2 = ticks.clone();
            let task = rt.spawn(async move {
                let mut iv = weft::time::interval(Duration::from_millis(period_ms));
                loop {
                    iv.tick().await;
                    t2.fetch_add(1, SeqCst);
                }
            });
            std::thread::sleep(Duration::from_millis(200));
            let (p0, t0, c0) = (parks(&rt), ticks.load(SeqCst), cpu_time());
            std::thread::sleep(Duration::from_secs(1));
            let (p1, t1, c1) = (parks(&rt), ticks.load(SeqCst), cpu_time());
            task.abort();
            report.push(format!(
                "{workers} workers, {period_ms} ms interval: {} ticks, {} parks, {:?} CPU per s",
                t1 - t0,
                p1 - p0,
                c1 - c0
            ));
            drop(rt);
        }
    }
    println!("{}", report.join("\n"));
    // Wakeups per event at a 100 ms period: about four (above); 16 timed
    // watches per tick would give about 19.
    let per_tick = |line: &String| {
        let ticks: f64 = line
            .split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let parks: f64 = line
            .split(", ")
            .nth(2)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        parks / ticks
    };
    for line in report.iter().filter(|l| l.contains(" 100 ms")) {
        assert!(per_tick(line) <= 6.0, "{line}: {:.1} parks per tick", per_tick(line));
    }
}

// ---------------------------------------------------------------------------
// Timers: order, never early, registered from other threads and runtimes.
// ---------------------------------------------------------------------------

struct Record {
    id: usize,
    log: Arc<Mutex<Vec<(usize, Instant)>>>,
}
impl Wake for Record {
    fn wake(self: Arc<Self>) {
        self.log.lock().unwrap().push((self.id, Instant::now()));
    }
}

/// 2,000 timers in a 3 ms window, registered in a scrambled order on a bare
/// reactor: each fires once, never before its deadline, and the wakes of
/// one turn come in deadline order.
#[test]
fn many_timers_in_a_few_milliseconds_fire_in_deadline_order_and_never_early() {
    let mut driver = weft_io::Driver::new().unwrap();
    let handle = driver.handle().clone();
    let _enter = handle.enter();
    let log = Arc::new(Mutex::new(Vec::new()));
    // Far enough ahead that registering all of them (slow under a
    // sanitizer on a loaded machine) ends before the first deadline.
    let base = Instant::now() + Duration::from_millis(500);
    let n = 2000;
    let deadline = |i: usize| base + Duration::from_nanos(((i * 7919) % n) as u64 * 1500);
    let mut sleeps: Vec<_> = (0..n).map(|i| Box::pin(weft::time::sleep_until(deadline(i)))).collect();
    for (i, s) in sleeps.iter_mut().enumerate() {
        let waker = Waker::from(Arc::new(Record {
            id: i,
            log: log.clone(),
        }));
        assert!(s.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    }
    let start = Instant::now();
    while log.lock().unwrap().len() < n {
        assert!(start.elapsed() < Duration::from_secs(5), "timers never fired");
        driver.turn(Some(Duration::from_millis(50)));
    }
    let log = log.lock().unwrap();
    let mut seen = vec![false; n];
    for &(id, at) in log.iter() {
        assert!(!seen[id], "timer {id} fired twice");
        seen[id] = true;
        assert!(at >= deadline(id), "timer {id} fired {:?} early", deadline(id) - at);
    }
    for w in log.windows(2) {
        assert!(
            deadline(w[0].0) <= deadline(w[1].0),
            "fired out of deadline order: {} then {}",
            w[0].0,
            w[1].0
        );
    }
}

/// The loop sleeps on a timerfd armed 2 s out; another thread registers a
/// 5 ms timer through the handle. It must fire about on time.
#[test]
fn a_timer_registered_from_another_thread_wakes_a_loop_armed_for_later() {
    let _serial = serial();
    let mut driver = weft_io::Driver::new().unwrap();
    let handle = driver.handle().clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let unparker = driver.unparker();
    let lp = std::thread::spawn(move || {
        let _enter = driver.handle().clone().enter();
        let mut far = Box::pin(weft::time::sleep(Duration::from_secs(2)));
        assert!(far.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        while !stop2.load(SeqCst) {
            driver.turn(None);
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    let mut lateness = Vec::new();
    for _ in 0..20 {
        let _enter = handle.enter();
        let deadline = Instant::now() + Duration::from_millis(5);
        block_on_thread(weft::time::sleep_until(deadline));
        lateness.push(Instant::now() - deadline);
    }
    stop.store(true, SeqCst);
    unparker.unpark();
    lp.join().unwrap();
    lateness.sort();
    println!("lateness: {lateness:?}");
    // The behaviour: it fires at its own deadline, not at the far one the
    // loop was armed for nor after a stall of hundreds of milliseconds. How
    // precisely is a benchmark's question: a loaded 2-core machine can
    // delay a wake by milliseconds.
    assert!(lateness[10] < Duration::from_millis(100), "median {:?}", lateness[10]);
    assert!(lateness[19] < Duration::from_millis(500), "max {:?}", lateness[19]);
}

/// A Sleep made in runtime A, awaited in a task of runtime B: A's reactor
/// keeps its time. It must fire about on time, never early, on a
/// multi-thread A whose workers all sleep.
#[test]
fn a_sleep_of_one_runtime_awaited_on_another_fires_on_time() {
    let _serial = serial();
    let a = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let b = weft::Builder::new_current_thread().build().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut lateness = Vec::new();
    for _ in 0..20 {
        let deadline = Instant::now() + Duration::from_millis(3);
        let sleep = {
            let _g = a.enter();
            weft::time::sleep_until(deadline)
        };
        b.block_on(sleep);
        let late = Instant::now().checked_duration_since(deadline).expect("fired early");
        lateness.push(late);
    }
    lateness.sort();
    println!("lateness: {lateness:?}");
    // The behaviour: it fires at its own deadline, not at the far one the
    // loop was armed for nor after a stall of hundreds of milliseconds. How
    // precisely is a benchmark's question: a loaded 2-core machine can
    // delay a wake by milliseconds.
    assert!(lateness[10] < Duration::from_millis(100), "median {:?}", lateness[10]);
}

/// Sleep::reset while its task waits: moved earlier than the instant the
/// loop's timerfd is armed for, it must fire at the new deadline.
#[test]
fn reset_earlier_while_waiting_fires_at_the_new_deadline() {
    let _serial = serial();
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut lateness = Vec::new();
    for _ in 0..10 {
        let (tx, rx) = mpsc::channel::<Instant>();
        let (sleep_tx, sleep_rx) = mpsc::channel();
        let task = rt.spawn(async move {
            let sleep = Arc::new(Mutex::new(Box::pin(weft::time::sleep(Duration::from_secs(5)))));
            sleep_tx.send(sleep.clone()).unwrap();
            std::future::poll_fn(|cx| sleep.lock().unwrap().as_mut().poll(cx)).await;
            tx.send(Instant::now()).unwrap();
        });
        let sleep: Arc<Mutex<Pin<Box<weft::time::Sleep>>>> = sleep_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let deadline = Instant::now() + Duration::from_millis(3);
        sleep.lock().unwrap().as_mut().get_mut().reset(deadline);
        let woke = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("reset sleep never fired");
        assert!(woke >= deadline, "fired early");
        lateness.push(woke - deadline);
        rt.block_on(task).unwrap();
    }
    lateness.sort();
    println!("lateness: {lateness:?}");
    // The behaviour: it fires at its own deadline, not at the far one the
    // loop was armed for nor after a stall of hundreds of milliseconds. How
    // precisely is a benchmark's question: a loaded 2-core machine can
    // delay a wake by milliseconds.
    assert!(lateness[5] < Duration::from_millis(100), "median {:?}", lateness[5]);
}

/// Far-future and past deadlines: neither spins the loop nor fires early.
#[test]
fn far_future_and_past_deadlines_neither_spin_nor_fire() {
    let _serial = serial();
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let fired = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for d in [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 4),
        Duration::from_secs(86_400 * 365 * 1000),
        Duration::from_secs(86_400 * 365 * 3),
        Duration::from_millis((1 << 36) + 7),
        Duration::from_millis(1 << 30),
    ] {
        let f = fired.clone();
        tasks.push(rt.spawn(async move {
            weft::time::sleep(d).await;
            f.fetch_add(1, SeqCst);
        }));
        let fired = fired.clone();
        let at = Instant::now().checked_add(d);
        if let Some(at) = at {
            tasks.push(rt.spawn(async move {
                weft::time::sleep_until(at).await;
                fired.fetch_add(1, SeqCst);
            }));
        }
    }
    // Past deadlines complete at once.
    rt.block_on(async {
        weft::time::sleep_until(Instant::now() - Duration::from_secs(1)).await;
        weft::time::sleep(Duration::ZERO).await;
    });
    std::thread::sleep(Duration::from_millis(100));
    let p0 = parks(&rt);
    let c0 = cpu_time();
    std::thread::sleep(Duration::from_millis(500));
    let p = parks(&rt) - p0;
    let cpu = cpu_time() - c0;
    println!("{p} parks, {cpu:?} CPU in 500 ms with far timers pending");
    assert_eq!(fired.load(SeqCst), 0);
    assert!(p <= 20, "the loop spins on far timers: {p} parks");
    for t in tasks {
        t.abort();
    }
}

// ---------------------------------------------------------------------------
// Shutdown racing a timer registration from a foreign thread.
// ---------------------------------------------------------------------------

/// `Sleep::poll_elapsed` checks `is_shutdown()` and then registers under
/// the wheel lock, while `Timers::shutdown` sets the flag then drains the
/// wheel under the lock. A registration that passed the check before the
/// flag, and takes the lock after the drain, lands in a dead wheel: its
/// task is never woken (and never told of the shutdown).
#[test]
fn a_timer_registered_while_the_reactor_shuts_down_is_woken_or_refused() {
    let _serial = serial();
    let mut lost_total = 0usize;
    let rounds = 300;
    for _ in 0..rounds {
        let rt = weft::Builder::new_current_thread().build().unwrap();
        let reactor = rt.reactor().clone();
        let started = Arc::new(std::sync::Barrier::new(2));
        let s2 = started.clone();
        let poller = std::thread::spawn(move || {
            let _enter = reactor.enter();
            let mut pending = Vec::new();
            s2.wait();
            loop {
                let counter = Arc::new(ThreadWaker(std::thread::current(), AtomicUsize::new(0)));
                let waker = Waker::from(counter.clone());
                let mut sleep = Box::pin(weft::time::sleep(Duration::from_secs(3600)));
                let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sleep.as_mut().poll(&mut Context::from_waker(&waker))
                }));
                match polled {
                    Ok(Poll::Pending) => pending.push((sleep, counter)),
                    Ok(Poll::Ready(())) => panic!("an hour-long sleep completed"),
                    Err(e) => {
                        let m = e
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| e.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        assert!(m.contains("shut down"), "{m}");
                        break; // saw the shutdown: stop
                    }
                }
                if pending.len() > 20_000 {
                    pending.drain(..10_000);
                }
            }
            // Counted by the caller once the shutdown has returned (its
            // wakes come after the flag the loop above stops on).
            pending
        });
        started.wait();
        std::thread::sleep(Duration::from_micros(200));
        drop(rt);
        let pending = poller.join().unwrap();
        // Every sleep that was registered must have been woken by the
        // shutdown's drain.
        let lost: Vec<usize> = pending
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| c.1.load(SeqCst) == 0)
            .map(|(i, _)| i)
            .collect();
        if !lost.is_empty() && std::env::var("BREAK15_DEBUG").is_ok() {
            eprintln!("registered {} lost {:?}", pending.len(), lost);
        }
        lost_total += lost.len();
    }
    assert_eq!(
        lost_total, 0,
        "{lost_total} timers registered in {rounds} shutdowns were never woken: their tasks hang"
    );
}

// ---------------------------------------------------------------------------
// Current-thread runtime: several threads in block_on, shutdown_background.
// ---------------------------------------------------------------------------

#[test]
fn shutdown_background_with_two_threads_in_block_on_ends_both() {
    let _serial = serial();
    for _ in 0..10 {
        let rt = weft::Builder::new_current_thread().build().unwrap();
        let (entered_tx, entered_rx) = mpsc::channel();
        let mut threads = Vec::new();
        for i in 0..3 {
            let handle = rt.handle();
            let entered_tx = entered_tx.clone();
            threads.push(std::thread::spawn(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle.block_on(async move {
                        entered_tx.send(()).unwrap();
                        if i == 2 {
                            // A socket read: must fail with the shutdown.
                            let l = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
                            let addr = l.local_addr().unwrap();
                            let _c = std::net::TcpStream::connect(addr).unwrap();
                            let (mut s, _) = l.accept().await.unwrap();
                            let mut b = [0u8; 1];
                            use weft::io::AsyncReadExt;
                            let r = s.read(&mut b).await;
                            assert!(r.is_err(), "read after shutdown: {r:?}");
                            panic!("shut down (socket)");
                        }
                        weft::time::sleep(Duration::from_secs(60)).await;
                    })
                }))
                .is_err()
            }));
        }
        for _ in 0..3 {
            entered_rx.recv().unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        rt.shutdown_background();
        let (done_tx, done_rx) = mpsc::channel();
        for t in threads {
            let done_tx = done_tx.clone();
            std::thread::spawn(move || done_tx.send(t.join().unwrap()).unwrap());
        }
        for _ in 0..3 {
            let panicked = done_rx.recv_timeout(Duration::from_secs(5)).expect("a block_on hung");
            assert!(panicked, "each future should report the shutdown");
        }
    }
}

// ---------------------------------------------------------------------------
// Socket waiters: dropped futures, moved futures, panicking wakers, shutdown.
// ---------------------------------------------------------------------------

struct Counted;
impl Wake for Counted {
    fn wake(self: Arc<Self>) {}
}

/// A waker whose clone panics (built by hand: `Wake` cannot panic in clone).
fn panicking_clone_waker() -> Waker {
    use std::task::{RawWaker, RawWakerVTable};
    fn clone(_: *const ()) -> RawWaker {
        panic!("break15: this waker refuses to be cloned")
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions ignore the data pointer.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

fn tcp_pair(rt: &weft::Runtime) -> (weft::net::TcpStream, weft::net::TcpStream, weft::net::TcpListener) {
    rt.block_on(async {
        let l = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = weft::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b, l)
    })
}

/// 10,000 polls of each async method's future on an idle socket, each with
/// a fresh waker and the future then dropped: no waker may stay behind.
/// The poll API may keep one (its slot).
#[test]
fn dropped_socket_futures_keep_no_waker() {
    let rt = weft::Builder::new_current_thread().build().unwrap();
    let (a, _b, l) = tcp_pair(&rt);
    let udp = rt
        .block_on(async { weft::net::UdpSocket::bind("127.0.0.1:0") })
        .unwrap();
    let _enter = rt.enter();
    let mut wakers = Vec::new();
    for i in 0..10_000 {
        let w = Arc::new(Counted);
        let waker = Waker::from(w.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 8];
        match i % 5 {
            0 => assert!(std::pin::pin!(a.readable()).poll(&mut cx).is_pending()),
            1 => assert!(std::pin::pin!(a.peek(&mut buf)).poll(&mut cx).is_pending()),
            2 => assert!(std::pin::pin!(l.accept()).poll(&mut cx).is_pending()),
            3 => assert!(std::pin::pin!(udp.recv(&mut buf)).poll(&mut cx).is_pending()),
            _ => {
                use weft::io::AsyncRead;
                let mut r = &a;
                assert!(Pin::new(&mut r).poll_read(&mut cx, &mut buf).is_pending());
            }
        }
        wakers.push(w);
    }
    let retained = wakers.iter().filter(|w| Arc::strong_count(w) > 1).count();
    assert!(retained <= 1, "{retained} wakers of dropped futures retained");
}

/// A waker whose clone panics, at a first poll and at a later one: the
/// panic propagates, and the waiter lists are as before (the socket keeps
/// working; dropping the future is clean).
#[test]
fn a_waker_whose_clone_panics_leaves_the_waiters_intact() {
    let rt = weft::Builder::new_current_thread().build().unwrap();
    let (a, b, l) = tcp_pair(&rt);
    let _enter = rt.enter();
    let bad = panicking_clone_waker();
    for _ in 0..100 {
        // First poll: no entry yet.
        let mut f = Box::pin(a.readable());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f.as_mut().poll(&mut Context::from_waker(&bad))
        }));
        assert!(r.is_err());
        drop(f);
        // Later poll: the entry exists, its waker is swapped.
        let good = Waker::from(Arc::new(Counted));
        let mut f = Box::pin(l.accept());
        assert!(f.as_mut().poll(&mut Context::from_waker(&good)).is_pending());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f.as_mut().poll(&mut Context::from_waker(&bad))
        }));
        assert!(r.is_err());
        drop(f);
        // The poll API.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            use weft::io::AsyncRead;
            let mut r = &a;
            Pin::new(&mut r).poll_read(&mut Context::from_waker(&bad), &mut [0u8; 4])
        }));
        assert!(r.is_err());
    }
    // Still works.
    rt.block_on(async {
        use weft::io::{AsyncReadExt, AsyncWriteExt};
        let mut b = &b;
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        let mut a = &a;
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
    });
}

/// An accept future polled once in one task, then moved to another task
/// which awaits it: the connection must reach the second task.
#[test]
fn an_accept_future_moved_between_tasks_completes() {
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let l: &'static weft::net::TcpListener = Box::leak(Box::new(
        rt.block_on(async { weft::net::TcpListener::bind("127.0.0.1:0") })
            .unwrap(),
    ));
    let addr = l.local_addr().unwrap();
    for _ in 0..20 {
        #[allow(clippy::async_yields_async)] // the moved future is the point
        let fut = rt
            .block_on(rt.spawn(async move {
                let mut fut = Box::pin(l.accept());
                let mut polled = false;
                std::future::poll_fn(|cx| {
                    if !polled {
                        polled = true;
                        assert!(fut.as_mut().poll(cx).is_pending());
                    }
                    Poll::Ready(())
                })
                .await;
                fut
            }))
            .unwrap();
        let task = rt.spawn(async move { fut.await.map(|(_, a)| a) });
        std::thread::sleep(Duration::from_millis(5));
        let _c = std::net::TcpStream::connect(addr).unwrap();
        let got = rt.block_on(async { weft::time::timeout(Duration::from_secs(5), task).await });
        assert!(
            matches!(got, Ok(Ok(Ok(_)))),
            "the moved accept never completed: {got:?}"
        );
    }
}

/// Futures and streams pending when the reactor shuts down: polled after,
/// they fail; dropped after, they leave cleanly (no debug assertion).
#[test]
fn pending_socket_futures_polled_and_dropped_after_shutdown() {
    let rt = weft::Builder::new_current_thread().build().unwrap();
    let (a, _b, l) = tcp_pair(&rt);
    let udp = rt
        .block_on(async { weft::net::UdpSocket::bind("127.0.0.1:0") })
        .unwrap();
    let good = Waker::from(Arc::new(Counted));
    let mut cx = Context::from_waker(&good);
    let mut buf = [0u8; 4];
    let (mut f1, mut f2, mut f3, mut inc) = {
        let _enter = rt.enter();
        (
            Box::pin(a.readable()),
            Box::pin(l.accept()),
            Box::pin(udp.recv(&mut buf)),
            Box::pin(l.incoming()),
        )
    };
    assert!(f1.as_mut().poll(&mut cx).is_pending());
    assert!(f2.as_mut().poll(&mut cx).is_pending());
    assert!(f3.as_mut().poll(&mut cx).is_pending());
    {
        use futures_core::Stream;
        assert!(inc.as_mut().poll_next(&mut cx).is_pending());
    }
    drop(rt);
    assert!(matches!(f1.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
    assert!(matches!(f2.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
    drop(f3);
    {
        use futures_core::Stream;
        assert!(matches!(inc.as_mut().poll_next(&mut cx), Poll::Ready(Some(Err(_)))));
    }
    drop(inc);
    drop(f1);
    drop(f2);
    drop(a);
    drop(l);
    drop(udp);
}

/// Two tasks await `recv` on one UDP socket (shared by `Arc`); two datagrams
/// arrive: each task gets one.
#[test]
fn two_tasks_receiving_on_one_udp_socket_both_get_a_datagram() {
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    for _ in 0..20 {
        let sock = Arc::new(
            rt.block_on(async { weft::net::UdpSocket::bind("127.0.0.1:0") })
                .unwrap(),
        );
        let addr = sock.local_addr().unwrap();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let s = sock.clone();
                rt.spawn(async move {
                    let mut buf = [0u8; 8];
                    s.recv(&mut buf).await.unwrap()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(10));
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"one", addr).unwrap();
        tx.send_to(b"two", addr).unwrap();
        for t in tasks {
            let got = rt.block_on(async { weft::time::timeout(Duration::from_secs(5), t).await });
            assert!(matches!(got, Ok(Ok(3))), "{got:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Sources: a pending source with a sub-millisecond max_sleep.
// ---------------------------------------------------------------------------

struct IdleSource {
    polls: AtomicUsize,
    max_sleep: Duration,
    pending: std::sync::atomic::AtomicBool,
}
impl weft::source::Source for IdleSource {
    fn poll(&self) -> usize {
        self.polls.fetch_add(1, SeqCst);
        0
    }
    fn has_pending(&self) -> bool {
        self.pending.load(SeqCst)
    }
    fn max_sleep(&self) -> Duration {
        self.max_sleep
    }
}

/// Figures: how often a pending-but-idle source is polled, and what it
/// costs, for several max_sleep values; and that a source with nothing
/// pending costs nothing.
#[test]
fn a_pending_idle_source_is_polled_at_its_max_sleep_and_an_unpending_one_costs_nothing() {
    let _serial = serial();
    let mut report = Vec::new();
    for (workers, max_us) in [(0, 100u64), (0, 500), (0, 10_000), (2, 100), (2, 500)] {
        let rt = if workers == 0 {
            weft::Builder::new_current_thread().build().unwrap()
        } else {
            weft::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap()
        };
        let src = Arc::new(IdleSource {
            polls: AtomicUsize::new(0),
            max_sleep: Duration::from_micros(max_us),
            pending: std::sync::atomic::AtomicBool::new(true),
        });
        let _reg = rt.reactor().register_source(src.clone());
        // A current-thread runtime turns its loop only inside block_on.
        let measure = |d: Duration| {
            rt.block_on(async {
                weft::time::sleep(Duration::from_millis(100)).await;
                let (p0, c0) = (src.polls.load(SeqCst), cpu_time());
                weft::time::sleep(d).await;
                (src.polls.load(SeqCst) - p0, cpu_time() - c0)
            })
        };
        let (polls, cpu) = measure(Duration::from_secs(1));
        report.push(format!(
            "{} max_sleep {max_us} us: {polls} polls/s, {cpu:?} CPU/s",
            if workers == 0 {
                "current-thread".to_string()
            } else {
                format!("{workers} workers")
            }
        ));
        let expected = 1_000_000 / max_us;
        assert!(
            polls as u64 >= expected / 3,
            "max_sleep {max_us} us not honoured: {polls} polls in 1 s (expected ~{expected})"
        );
        src.pending.store(false, SeqCst);
        let (polls, cpu) = measure(Duration::from_millis(500));
        report.push(format!("   nothing pending: {polls} polls, {cpu:?} CPU in 0.5 s"));
        assert!(polls <= 2);
    }
    println!("{}", report.join("\n"));
}

struct ShutdownSource {
    told: std::sync::atomic::AtomicBool,
}
impl weft::source::Source for ShutdownSource {
    fn poll(&self) -> usize {
        0
    }
    fn has_pending(&self) -> bool {
        true
    }
    fn shutdown(&self) {
        self.told.store(true, SeqCst);
    }
}

/// `Source::shutdown` is documented as the reactor's promise to a source
/// ("will never poll again: fail or abandon pending work, waking its
/// tasks"). A source registered after the reactor shut down is accepted,
/// never polled, and never told: whatever waits on it hangs.
#[test]
fn a_source_registered_after_the_reactor_shut_down_is_told_or_refused() {
    let rt = weft::Builder::new_current_thread().build().unwrap();
    let reactor = rt.reactor().clone();
    drop(rt);
    assert!(reactor.is_shutdown());
    let src = Arc::new(ShutdownSource {
        told: std::sync::atomic::AtomicBool::new(false),
    });
    let _reg = reactor.register_source(src.clone());
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        src.told.load(SeqCst),
        "a source registered after shutdown was neither refused nor told to shut down"
    );
}

#[test]
fn an_interval_with_a_period_too_long_for_instant_can_be_reset() {
    // Found in review: `Interval::reset` added the period to `now` without
    // checking, and panicked for a period beyond what `Instant` holds.
    let rt = weft::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let mut interval = weft::time::interval(Duration::MAX);
        interval.tick().await;
        interval.reset();
        let next = weft::time::timeout(Duration::from_millis(20), interval.tick()).await;
        assert!(next.is_err(), "a tick of a practically endless period came");
    });
}

// ---------------------------------------------------------------------------
// Stall: timers held up by a loop thread that cannot run.
// ---------------------------------------------------------------------------

/// A source whose first poll blocks the thread that turns the loop, with the
/// driver held: what a loop thread the OS has descheduled (a CPU shared with
/// a busy thread, another process) looks like to the rest of the runtime.
struct StuckOnce {
    armed: std::sync::atomic::AtomicBool,
    entered: std::sync::atomic::AtomicBool,
    block: Duration,
}
impl StuckOnce {
    /// Armed: its first poll blocks for `block`.
    fn new(block: Duration) -> Arc<StuckOnce> {
        Arc::new(StuckOnce {
            armed: std::sync::atomic::AtomicBool::new(true),
            entered: std::sync::atomic::AtomicBool::new(false),
            block,
        })
    }
}

/// Waits until `source`'s poll has blocked its loop thread.
fn wait_until_stuck(source: &StuckOnce) {
    let waited = Instant::now();
    while !source.entered.load(SeqCst) {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the loop never polled the source"
        );
        std::thread::yield_now();
    }
}

/// How late a 10 ms sleep of a task spawned on `rt` wakes.
fn lateness_of_a_10ms_sleep(rt: &weft::Runtime) -> Duration {
    rt.block_on(rt.spawn(a_10ms_sleep_s_lateness())).unwrap()
}

/// How late a 10 ms sleep registered where it is awaited wakes.
async fn a_10ms_sleep_s_lateness() -> Duration {
    let deadline = Instant::now() + Duration::from_millis(10);
    weft::time::sleep_until(deadline).await;
    Instant::now() - deadline
}

/// Fails unless a timer that the stuck loop thread held up came well before
/// the thread did.
fn assert_not_held_up(late: Duration) {
    assert!(
        late < Duration::from_millis(200),
        "the timer waited {late:?} past its deadline for the stuck loop thread"
    );
}

impl weft::source::Source for StuckOnce {
    fn poll(&self) -> usize {
        if self.armed.swap(false, SeqCst) {
            self.entered.store(true, SeqCst);
            std::thread::sleep(self.block);
        }
        0
    }
    fn has_pending(&self) -> bool {
        self.armed.load(SeqCst)
    }
}

/// While one worker is stuck in the loop (holding the driver), a timer
/// registered by a task on the other worker, which keeps running tasks,
/// fires at its deadline on that worker (`maintenance` fires overdue
/// timers), not when the stuck thread comes back 500 ms later.
#[test]
fn a_timer_fires_on_a_busy_worker_while_the_loop_thread_is_stuck() {
    let _serial = serial();
    let trace = std::env::temp_dir().join(format!("weft-spine-overdue-{}.json", std::process::id()));
    let rt = weft::Builder::new_multi_thread()
        .worker_threads(2)
        .trace_file(&trace)
        .build()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = rt.spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(SeqCst) {
                weft::task::yield_now().await;
            }
        }
    });
    // The busy task has a worker; the other worker holds the driver.
    std::thread::sleep(Duration::from_millis(20));
    let source = StuckOnce::new(Duration::from_millis(500));
    let _registration = rt.reactor().register_source(source.clone());
    let waited = Instant::now();
    wait_until_stuck(&source);
    let fired_before = rt.reactor().metrics().timers_fired_off_loop;
    let late = lateness_of_a_10ms_sleep(&rt);
    stop.store(true, SeqCst);
    rt.block_on(busy).unwrap();
    assert_not_held_up(late);
    assert!(rt.reactor().metrics().timers_fired_off_loop > fired_before);
    // The timeline shows the firing on the busy worker's track, not on the
    // stuck one's (whose turn is one long slice, recorded when it ends; the
    // other worker's park once the busy task is done may be as long).
    std::thread::sleep((waited + Duration::from_millis(700)).saturating_duration_since(Instant::now()));
    let json: serde_json::Value = serde_json::from_str(&rt.timeline().unwrap().to_chrome_json()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let stuck_track = events
        .iter()
        .find(|e| e["ph"] == "X" && e["name"] == "reactor turn" && e["dur"].as_f64().is_some_and(|us| us >= 400_000.0))
        .map(|e| e["tid"].clone())
        .expect("the stuck turn's slice");
    assert!(
        events.iter().any(|e| e["ph"] == "i"
            && e["name"].as_str().is_some_and(|n| n.starts_with("timer"))
            && e["tid"] != stuck_track),
        "no timer firing on another track than the stuck turn's"
    );
    drop(rt);
    let _ = std::fs::remove_file(&trace);
    let _ = std::fs::remove_file(trace.with_extension("html"));
}

/// The same with no task running: the other worker, idle beside the held
/// driver, runs the timer's task and goes back to sleep as the standby;
/// seeing the driver's holder in a turn, it sleeps only until just after
/// the timer's deadline, and fires it.
#[test]
fn a_timer_fires_on_an_idle_worker_while_the_loop_thread_is_stuck() {
    let _serial = serial();
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    // Both workers idle: one in the driver, one asleep beside it.
    std::thread::sleep(Duration::from_millis(20));
    let source = StuckOnce::new(Duration::from_millis(500));
    let _registration = rt.reactor().register_source(source.clone());
    wait_until_stuck(&source);
    let fired_before = rt.reactor().metrics().timers_fired_off_loop;
    assert_not_held_up(lateness_of_a_10ms_sleep(&rt));
    assert!(rt.reactor().metrics().timers_fired_off_loop > fired_before);
}

/// The order the two tests above do not cover: the timer is registered,
/// and the other worker goes to sleep as the standby, while the loop's
/// thread sleeps in the kernel armed for it; only then does the loop's
/// thread wake (for a source) and get stuck in its turn. The standby chose
/// how long to sleep while the holder slept armed (`Unpark::overdue_at`
/// said `None`) and, on an idle runtime, sleeps untimed: it must still wake
/// just after the timer's deadline (`Unpark::watch_due`) and fire it, not
/// leave it to the stuck thread 500 ms later.
#[test]
fn a_timer_fires_while_the_loop_thread_gets_stuck_after_the_standby_went_to_sleep() {
    let _serial = serial();
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let fired_before = rt.reactor().metrics().timers_fired_off_loop;
    let deadline = Instant::now() + Duration::from_millis(200);
    let sleeper = rt.spawn(async move {
        weft::time::sleep_until(deadline).await;
        Instant::now() - deadline
    });
    // Long enough for the standby to stop watching with a timeout (rule 3
    // of `standby`: 16 watches of 2 ms, or none on an idle runtime).
    std::thread::sleep(Duration::from_millis(100));
    let source = StuckOnce::new(Duration::from_millis(600));
    let _registration = rt.reactor().register_source(source.clone());
    let late = rt.block_on(sleeper).unwrap();
    assert!(source.entered.load(SeqCst), "the loop never polled the source");
    assert_not_held_up(late);
    assert!(rt.reactor().metrics().timers_fired_off_loop > fired_before);
}

/// A timer registered by a thread that is not one of the runtime's workers
/// (here `block_on`'s; a task of another runtime is the same case) on an
/// idle runtime, whose loop thread then gets stuck. No worker of the
/// runtime ran the registering code, so none went round its parker after
/// it, and the standby went to sleep untimed with no timer pending: the
/// registration wakes it (`Unpark::watch_due`, `Handle::watch_timers`),
/// as well as the loop, so it sleeps again only until just past the
/// deadline and fires the timer, rather than leaving it to the stuck
/// thread (500 ms late).
#[test]
fn a_timer_registered_off_the_workers_fires_while_the_loop_thread_is_stuck() {
    let _serial = serial();
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    // Idle long enough for the standby to sleep untimed (rule 3).
    std::thread::sleep(Duration::from_millis(60));
    let source = StuckOnce::new(Duration::from_millis(600));
    let deadline = Instant::now() + Duration::from_millis(100);
    let late = rt.block_on(async {
        let sleep = weft::time::sleep_until(deadline);
        let mut sleep = std::pin::pin!(sleep);
        // Registered now, from this thread.
        assert!(futures::poll!(sleep.as_mut()).is_pending());
        let _registration = weft::Handle::current().reactor().register_source(source.clone());
        sleep.await;
        Instant::now() - deadline
    });
    assert!(source.entered.load(SeqCst), "the loop never polled the source");
    assert_not_held_up(late);
}

/// The same with the timer's task on another runtime (a sleep of runtime
/// A awaited on runtime B): A's workers never see the registration.
#[test]
fn a_sleep_of_a_runtime_whose_loop_thread_is_stuck_fires_for_a_task_of_another() {
    let _serial = serial();
    let a = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let b = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    std::thread::sleep(Duration::from_millis(60));
    let deadline = Instant::now() + Duration::from_millis(150);
    let sleep = {
        let _a = a.enter();
        weft::time::sleep_until(deadline)
    };
    let task = b.spawn(async move {
        sleep.await;
        Instant::now() - deadline
    });
    std::thread::sleep(Duration::from_millis(50));
    let source = StuckOnce::new(Duration::from_millis(600));
    let _registration = a.reactor().register_source(source.clone());
    wait_until_stuck(&source);
    let late = b.block_on(task).unwrap();
    assert_not_held_up(late);
}

/// How late a 10 ms sleep registered and awaited by `block_on`'s thread
/// (no worker of `rt`) wakes.
fn lateness_of_a_10ms_sleep_off_the_workers(rt: &weft::Runtime) -> Duration {
    rt.block_on(a_10ms_sleep_s_lateness())
}

/// Three workers, and the standby role changing hands: a timer wakes a
/// task on the loop's thread that then blocks its worker; the holder
/// leaves the driver to run it and hands off to the untimed standby,
/// which enters the driver, giving up the role. The third worker went to
/// sleep untimed while there was a standby, so it is none. Then the new
/// holder gets stuck in a turn, and a thread that is no worker registers
/// a timer: an idle worker sleeps beside the stuck loop, and the timer
/// must not wait for the stuck thread.
///
/// The sleeper is no standby, so it would not watch the timers, and only a
/// worker that parks takes the vacant role; the one that would (the former
/// holder) is blocked in its task. So the new holder, back from the driver
/// while a worker runs, wakes the sleeper to take the role (rule 6 of
/// `standby`); without that, the timer waited for the stuck turn (590 ms).
#[test]
fn a_timer_fires_while_the_loop_thread_is_stuck_after_the_standby_entered_and_a_worker_blocks() {
    let _serial = serial();
    let rt = weft::Builder::new_multi_thread().worker_threads(3).build().unwrap();
    // Idle: one worker in the driver, the standby and a sleeper untimed.
    std::thread::sleep(Duration::from_millis(60));
    let blocker = rt.spawn(async {
        weft::time::sleep(Duration::from_millis(20)).await;
        std::thread::sleep(Duration::from_millis(1200));
    });
    std::thread::sleep(Duration::from_millis(100));
    let source = StuckOnce::new(Duration::from_millis(600));
    let _registration = rt.reactor().register_source(source.clone());
    wait_until_stuck(&source);
    let fired_before = rt.reactor().metrics().timers_fired_off_loop;
    let late = lateness_of_a_10ms_sleep_off_the_workers(&rt);
    let fired_after = rt.reactor().metrics().timers_fired_off_loop;
    rt.block_on(blocker).unwrap();
    assert_not_held_up(late);
    assert!(fired_after > fired_before);
}
