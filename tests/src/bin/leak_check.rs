//! Builds runtimes full of pending work and drops them, for valgrind's leak
//! checker (issue 22.1; `scripts/leak-check.sh` runs it under
//! `valgrind --leak-check=full` and requires 0 bytes definitely and
//! indirectly lost).
//!
//! ```text
//! leak-check [runtime] [combinations] [mpi] [gpu]   (default: runtime combinations)
//! leak-check self-test                             (leaks a task on purpose)
//! ```
//!
//! - `runtime`: on each flavour, a runtime with pending accepts, connected
//!   sockets mid-read, sleeping tasks and loose timers, an interval, a
//!   running and queued blocking jobs, queued `call_soon` and delayed
//!   `call_later` callbacks, promises with done callbacks (pending, and
//!   settled with their callbacks queued), a CPU pool with queued work, a
//!   broadcast and an mpsc with waiting receivers and a sender waiting for
//!   room, a task group, and a task that panicked: then dropped.
//! - `combinations`: 120 plans of the spawn/abort/panic/drop matrix
//!   (`weft_tests::combinations`), spread over the whole matrix.
//! - `mpi` (feature `mpi`): the same runtime with MPI's engine as a source
//!   (a singleton), receives and a probe pending in it, then dropped, then
//!   MPI finalized.
//! - `gpu`: with the CPU stand-in of the CUDA driver (scripts/leak-check.sh
//!   puts it on `LD_LIBRARY_PATH`): copies and kernels in flight on held
//!   streams, dropped and kept operations, a promise with a done callback,
//!   when the runtime drops. Says `skipped:` without a driver.
//!
//! - `self-test`: forgets a `JoinHandle`, so its task is never freed: the
//!   script expects valgrind to report it, proving the check can fail.
//!
//! Every piece of pending work holds a drop counter; the binary checks
//! that every counter fired before it returns, so a leak that valgrind
//! would see also fails here with a name.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use weft::Flavor;
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream};
use weft_tests::DropCounter;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want =
        |mode: &str| args.is_empty() && matches!(mode, "runtime" | "combinations") || args.iter().any(|a| a == mode);
    for arg in &args {
        assert!(
            matches!(arg.as_str(), "runtime" | "combinations" | "mpi" | "gpu" | "self-test"),
            "leak-check: unknown mode {arg:?} (runtime, combinations, mpi, gpu, self-test)"
        );
    }
    weft_tests::combinations::quiet_planned_panics();
    if want("runtime") {
        for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
            let drops = Arc::new(AtomicUsize::new(0));
            let made = pending_runtime(flavor, &drops, |_| {});
            assert_eq!(drops.load(SeqCst), made, "{flavor:?}: every pending thing was dropped");
            println!("leak-check runtime {flavor:?}: {made} pending things dropped");
        }
    }
    if want("combinations") {
        let plans = weft_tests::combinations::all_plans();
        let step = plans.len() / 120;
        let mut jitter = weft_tests::combinations::Jitter::none();
        let mut n = 0;
        for plan in plans.iter().step_by(step.max(1)) {
            weft_tests::combinations::run(*plan, &mut jitter);
            n += 1;
        }
        println!("leak-check combinations: {n} plans played");
    }
    if want("mpi") {
        mpi_mode();
    }
    if want("gpu") {
        gpu_mode();
    }
    if want("self-test") {
        leak_a_task();
        println!("leak-check self-test: a JoinHandle forgotten, its task leaked");
    }
}

/// Forgets a finished task's `JoinHandle`: the task's one allocation keeps
/// a reference that nobody will release.
#[inline(never)]
fn leak_a_task() {
    let rt = weft::Builder::new_current_thread().build().unwrap();
    let handle = rt.spawn(async { vec![0u8; 100] });
    rt.block_on(weft::task::yield_now());
    std::mem::forget(handle);
}

/// Something that counts as "made" and bumps `drops` when dropped.
struct Ledger {
    drops: Arc<AtomicUsize>,
    made: AtomicUsize,
}

impl Ledger {
    fn guard(&self) -> DropCounter {
        self.made.fetch_add(1, SeqCst);
        DropCounter::new(&self.drops)
    }
}

/// Spawns `fut` holding a guard, so its drop is counted.
fn spawn_counted<F>(rt: &weft::Runtime, ledger: &Ledger, fut: F)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let guard = ledger.guard();
    drop(rt.spawn(async move {
        let _guard = guard;
        fut.await
    }));
}

/// Builds a runtime of `flavor` full of pending work (and lets `extra` add
/// more), then drops it. Returns how many drop counters it made.
fn pending_runtime(flavor: Flavor, drops: &Arc<AtomicUsize>, extra: impl FnOnce(&weft::Runtime)) -> usize {
    let ledger = Ledger {
        drops: drops.clone(),
        made: AtomicUsize::new(0),
    };
    let rt = weft_tests::builder(flavor).max_blocking_threads(2).build().unwrap();
    let handle = rt.handle();

    // Pending accepts, and connected sockets in the middle of a read (the
    // peer sent half of what the reader waits for).
    let listener = Arc::new(rt.block_on(async { TcpListener::bind("127.0.0.1:0").unwrap() }));
    let addr = listener.local_addr().unwrap();
    for _ in 0..3 {
        let listener = listener.clone();
        spawn_counted(&rt, &ledger, async move { listener.accept().await.map(drop) });
    }
    let second = Arc::new(rt.block_on(async { TcpListener::bind("127.0.0.1:0").unwrap() }));
    let second_addr = second.local_addr().unwrap();
    let pairs = rt.block_on(async {
        let mut pairs = Vec::new();
        for _ in 0..4 {
            let client = TcpStream::connect(second_addr).await.unwrap();
            let (server, _) = second.accept().await.unwrap();
            pairs.push((client, server));
        }
        pairs
    });
    for (mut client, mut server) in pairs {
        spawn_counted(&rt, &ledger, async move {
            let mut buf = [0u8; 64];
            server.read_exact(&mut buf).await.map(drop)
        });
        spawn_counted(&rt, &ledger, async move {
            client.write_all(&[7u8; 32]).await?;
            let mut buf = [0u8; 8];
            client.read_exact(&mut buf).await.map(drop)
        });
    }
    drop(listener);
    let _ = addr;

    // Sleeping tasks, a timeout, an interval, and timers made but never
    // polled.
    for secs in [1u64, 60, 3600] {
        spawn_counted(&rt, &ledger, weft::time::sleep(Duration::from_secs(secs)));
    }
    spawn_counted(
        &rt,
        &ledger,
        weft::time::timeout(Duration::from_secs(600), std::future::pending::<()>()),
    );
    spawn_counted(&rt, &ledger, async {
        let mut every = weft::time::interval(Duration::from_millis(500));
        loop {
            every.tick().await;
        }
    });
    {
        let _enter = rt.enter();
        let loose: Vec<_> = (0..16)
            .map(|i| weft::time::sleep(Duration::from_secs(100 + i)))
            .collect();
        let guard = ledger.guard();
        drop(rt.spawn(async move {
            let _guard = guard;
            let _loose = loose;
            std::future::pending::<()>().await
        }));
    }

    // Blocking jobs: one running (briefly), several queued behind the
    // pool's two threads.
    for i in 0..6u64 {
        let guard = ledger.guard();
        drop(rt.spawn_blocking(move || {
            let _guard = guard;
            std::thread::sleep(Duration::from_millis(if i < 2 { 50 } else { 1 }));
        }));
    }

    // Callbacks: a slow one in front, so the rest are queued at shutdown on
    // either flavour, and delayed ones.
    let slow = ledger.guard();
    handle.call_soon(move || {
        let _slow = slow;
        std::thread::sleep(Duration::from_millis(30));
    });
    for _ in 0..50 {
        let guard = ledger.guard();
        handle.call_soon(move || drop(guard));
    }
    for secs in [1u64, 3600] {
        let guard = ledger.guard();
        handle.call_later(Duration::from_secs(secs), move || drop(guard));
    }
    let cancelled_guard = ledger.guard();
    let cancelled = handle.call_later(Duration::from_secs(5), move || drop(cancelled_guard));
    assert!(cancelled.cancel());

    // Promises: pending ones with done callbacks, one settled so that its
    // callbacks are queued to the loop, and one awaited by a task.
    let mut promises = Vec::new();
    for i in 0..4 {
        let promise = handle.create_future::<Vec<u8>>();
        let guard = ledger.guard();
        promise.add_done_callback(move |_| drop(guard));
        let guard = ledger.guard();
        promise.add_done_callback_inline(move |_| drop(guard));
        if i == 0 {
            let _ = promise.set_result(vec![1; 100]);
        }
        let awaited = promise.clone();
        spawn_counted(&rt, &ledger, async move { awaited.await.map(drop) });
        promises.push(promise);
    }

    // A CPU pool with work queued behind its one busy worker.
    let pool = weft::pool::Pool::new(1).unwrap();
    for i in 0..20u64 {
        let guard = ledger.guard();
        let _ = pool.apply_async(move || {
            let _guard = guard;
            std::thread::sleep(Duration::from_millis(if i == 0 { 20 } else { 0 }));
            vec![0u8; 64]
        });
    }

    // Channels with waiters: mpsc receivers waiting, a sender waiting for
    // room in a full channel, broadcast receivers waiting.
    let (tx, mut rx) = weft::sync::mpsc::channel::<Vec<u8>>(1);
    spawn_counted(&rt, &ledger, async move { rx.recv().await });
    rt.block_on(async { tx.send(vec![0; 10]).await.unwrap() });
    let full = tx.clone();
    spawn_counted(&rt, &ledger, async move { full.send(vec![1; 10]).await.map_err(drop) });
    let (_unbounded_tx, mut unbounded_rx) = weft::sync::mpsc::unbounded_channel::<String>();
    spawn_counted(&rt, &ledger, async move { unbounded_rx.recv().await });
    let (btx, _) = weft::sync::broadcast::channel::<Arc<String>>(4);
    for _ in 0..3 {
        let mut brx = btx.subscribe();
        spawn_counted(&rt, &ledger, async move { brx.recv().await.map(drop) });
    }
    let semaphore = Arc::new(weft::sync::Semaphore::new(0));
    spawn_counted(&rt, &ledger, semaphore.clone().acquire_owned());
    let notify = Arc::new(weft::sync::Notify::new());
    let waiter = notify.clone();
    spawn_counted(&rt, &ledger, async move { waiter.notified().await });

    // A task group with members, a task that panicked (and whose handle
    // was dropped), and a task spawned from a task.
    let mut group = weft::future::TaskGroup::<()>::new();
    {
        let _enter = rt.enter();
        for _ in 0..3 {
            let guard = ledger.guard();
            group.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            });
        }
    }
    let guard = ledger.guard();
    drop(rt.spawn(async move {
        let _guard = guard;
        std::panic::panic_any(weft_tests::combinations::PLANNED);
    }));
    spawn_counted(&rt, &ledger, async {
        weft::spawn(std::future::pending::<()>()).await.map(drop)
    });

    extra(&rt);

    // Let every task start and park.
    rt.block_on(async {
        for _ in 0..20 {
            weft::task::yield_now().await;
        }
        weft::time::sleep(Duration::from_millis(20)).await;
    });
    drop(rt);
    drop(group);
    drop(pool);
    drop(promises);
    drop((tx, btx, semaphore, notify, second));
    ledger.made.load(SeqCst)
}

#[cfg(feature = "mpi")]
fn mpi_mode() {
    let mpi = weft::mpi::Mpi::init().expect("MPI initialises (a singleton)");
    let world = mpi.world();
    let drops = Arc::new(AtomicUsize::new(0));
    let made = pending_runtime(Flavor::MultiThread, &drops, |rt| {
        // Receives and a probe that nothing will match, pending in the
        // engine when the runtime drops.
        for tag in 0..4 {
            let world = world.clone();
            let guard = DropCounter::new(&drops);
            drop(rt.spawn(async move {
                let _guard = guard;
                world.recv::<u64>(0, 100 + tag).await.map(drop)
            }));
        }
        let probe_world = world.clone();
        let guard = DropCounter::new(&drops);
        drop(rt.spawn(async move {
            let _guard = guard;
            probe_world.probe::<u8>(0, 999).await.map(drop)
        }));
        // And one that completes: a message to ourselves.
        let world = world.clone();
        rt.block_on(async move {
            world.send(&[1u64, 2, 3], 0, 7).await.unwrap();
            let (got, _) = world.recv::<u64>(0, 7).await.unwrap();
            assert_eq!(got, [1, 2, 3]);
        });
    });
    assert_eq!(drops.load(SeqCst), made + 5, "every pending MPI task was dropped");
    assert_eq!(
        mpi.pending(),
        0,
        "the engine holds no request after the runtime is gone"
    );
    drop(world);
    drop(mpi);
    println!("leak-check mpi: {} pending things dropped, MPI finalized", made + 5);
}

#[cfg(not(feature = "mpi"))]
fn mpi_mode() {
    println!("skipped: leak-check was built without feature `mpi`");
}

fn gpu_mode() {
    use weft::gpu::{Gpu, GpuError, LaunchConfig, WakeMode};
    let hold = match stand_in_hold() {
        Some(hold) => hold,
        None => {
            println!("skipped: the GPU mode needs the CPU stand-in driver on LD_LIBRARY_PATH");
            return;
        }
    };
    for mode in [WakeMode::EventPolling, WakeMode::HostFunction] {
        let gpu = match Gpu::builder().wake_mode(mode).open() {
            Err(GpuError::NoDriver) => return println!("skipped: no CUDA driver"),
            gpu => gpu.expect("the stand-in opens"),
        };
        let drops = Arc::new(AtomicUsize::new(0));
        let mut kept = Vec::new();
        let made = pending_runtime(Flavor::MultiThread, &drops, |rt| {
            let stream = rt.block_on(async { gpu.stream().unwrap() });
            let kernel = gpu.load_ptx(weft::gpu::demo::PTX).unwrap().kernel("add_one").unwrap();
            hold(true);
            rt.block_on(async {
                let mut dev = stream.alloc_zeros::<u32>(256).unwrap();
                let host = gpu.pinned_from_slice(&[1u32; 256]).unwrap();
                kept.push(Box::new(stream.copy_to_device(host, &mut dev).into_promise()) as Box<dyn std::any::Any>);
                let n = 256u32;
                // SAFETY: add_one(u32 *buf, u32 n) touches buf[0..n].
                let launch = unsafe {
                    stream
                        .launch(&kernel)
                        .arg(&mut dev)
                        .arg(&n)
                        .run(LaunchConfig::for_num_elems(n))
                };
                let promise = launch.into_promise();
                let guard = DropCounter::new(&drops);
                promise.add_done_callback(move |_| drop(guard));
                kept.push(Box::new(promise));
                // Dropped in flight: its buffers are the tracker's now.
                drop(stream.copy_to_device(gpu.pinned_from_slice(&[2u32; 256]).unwrap(), &mut dev));
                let pending = stream.copy_to_host(&dev, gpu.pinned_zeroed::<u32>(256).unwrap());
                let guard = DropCounter::new(&drops);
                drop(weft::spawn(async move {
                    let _guard = guard;
                    pending.await.map(drop)
                }));
            });
            // The device finishes its work while the runtime shuts down.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                hold(false);
            });
        });
        assert_eq!(
            drops.load(SeqCst),
            made + 2,
            "{mode:?}: every pending thing was dropped"
        );
        drop(kept);
        drop(gpu);
        println!("leak-check gpu {mode:?}: {} pending things dropped", made + 2);
    }
}

/// The stand-in's `weft_standin_hold`, if the CUDA library on the path is
/// the stand-in.
fn stand_in_hold() -> Option<extern "C" fn(bool)> {
    // SAFETY: dlopen and dlsym with NUL-terminated names; the library stays
    // loaded for the life of the process (never dlclosed), so the symbol
    // stays valid; `weft_standin_hold` has this signature
    // (gpu/stand-in/hooks.rs).
    unsafe {
        let lib = libc::dlopen(c"libcuda.so".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if lib.is_null() {
            return None;
        }
        let sym = libc::dlsym(lib, c"weft_standin_hold".as_ptr());
        (!sym.is_null()).then(|| std::mem::transmute::<*mut libc::c_void, extern "C" fn(bool)>(sym))
    }
}
