//! weft-gpu's logic against the CPU stand-in driver (`stand-in/libcuda.rs`,
//! built by build.rs): completion -> wake -> result, ordering, faults,
//! dropping operations in flight, promises, both wake modes. The stand-in
//! is loaded by absolute path before any CUDA call, so cudarc's
//! `dlopen("libcuda.so")` finds it (even on a machine with a real driver).
//!
//! The stand-in's device state (sticky fault, hold, counters) is global to
//! the process, so the tests take turns (`serial`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use weft_gpu::{Gpu, GpuError, LaunchConfig, Stream, WakeMode};

/// The stand-in's test hooks.
struct Hooks {
    reset: extern "C" fn(),
    violations: extern "C" fn() -> u64,
    hold: extern "C" fn(bool),
    fail_next_host_func: extern "C" fn(u32),
}

fn hooks() -> &'static Hooks {
    static HOOKS: std::sync::OnceLock<Hooks> = std::sync::OnceLock::new();
    HOOKS.get_or_init(|| {
        // SAFETY: the stand-in is our own library with no initializers; it
        // stays loaded (leaked) for the life of the test process, so the
        // function pointers stay valid.
        unsafe {
            let lib = libloading::Library::new(concat!(env!("OUT_DIR"), "/libcuda.so")).expect("the stand-in loads");
            let hooks = Hooks {
                reset: *lib.get(b"weft_standin_reset").unwrap(),
                violations: *lib.get(b"weft_standin_violations").unwrap(),
                hold: *lib.get(b"weft_standin_hold").unwrap(),
                fail_next_host_func: *lib.get(b"weft_standin_fail_next_host_func").unwrap(),
            };
            std::mem::forget(lib);
            hooks
        }
    })
}

/// Takes this test's turn on the stand-in, reset.
fn serial() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    (hooks().reset)();
    turn
}

/// Holds every stream (no new work starts) until dropped.
struct Hold;

impl Hold {
    fn on() -> Hold {
        (hooks().hold)(true);
        Hold
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        (hooks().hold)(false);
    }
}

fn open(mode: WakeMode) -> Gpu {
    assert!(weft_gpu::driver_present());
    Gpu::builder().wake_mode(mode).open().expect("the stand-in opens")
}

fn runtime() -> weft::Runtime {
    weft::Builder::new_multi_thread().worker_threads(2).build().unwrap()
}

const MODES: [WakeMode; 2] = [WakeMode::HostFunction, WakeMode::EventPolling];

/// Runs `body` in each wake mode, on a device and a runtime of its own, with
/// a fresh stream; returns the devices (for their stats).
fn in_each_mode<F, Fut>(body: F) -> Vec<(WakeMode, Gpu)>
where
    F: Fn(WakeMode, Gpu, Stream) -> Fut,
    Fut: Future<Output = ()>,
{
    MODES
        .into_iter()
        .map(|mode| {
            let gpu = open(mode);
            runtime().block_on(async {
                let stream = gpu.stream().unwrap();
                body(mode, gpu.clone(), stream).await
            });
            (mode, gpu)
        })
        .collect()
}

#[test]
fn opens_and_refuses_a_missing_device() {
    let _turn = serial();
    let gpu = open(WakeMode::HostFunction);
    assert_eq!(gpu.ordinal(), 0);
    assert!(gpu.name().unwrap().contains("stand-in"));
    assert_eq!(weft_gpu::device_count().unwrap(), 1);
    match Gpu::open(3).unwrap_err() {
        GpuError::Driver { name, .. } => assert_eq!(name, "CUDA_ERROR_INVALID_DEVICE"),
        other => panic!("expected a driver error, got {other:?}"),
    }
}

#[test]
fn copy_kernel_copy_round_trip_in_both_modes() {
    let _turn = serial();
    let gpus = in_each_mode(|mode, gpu, stream| async move {
        let kernel = gpu.load_ptx(weft_gpu::demo::PTX).unwrap().kernel("add_one").unwrap();
        let n = 4096u32;
        let mut dev = stream.alloc_zeros::<u32>(n as usize).unwrap();
        let host = gpu.pinned_from_slice(&(0..n).collect::<Vec<_>>()).unwrap();
        let host = stream.copy_to_device(host, &mut dev).await.unwrap();
        for _ in 0..3 {
            // SAFETY: add_one(u32 *buf, u32 n) stays inside buf[0..n].
            unsafe {
                stream
                    .launch(&kernel)
                    .arg(&mut dev)
                    .arg(&n)
                    .run(LaunchConfig::for_num_elems(n))
            }
            .await
            .unwrap();
        }
        let host = stream.copy_to_host(&dev, host).await.unwrap();
        assert!(host.iter().enumerate().all(|(i, &v)| v == i as u32 + 3), "{mode:?}");
    });
    for (mode, gpu) in gpus {
        let stats = gpu.stats();
        assert_eq!(stats.submitted, 5, "{mode:?}: {stats:?}");
        assert_eq!(stats.completed, 5, "{mode:?}: {stats:?}");
        assert_eq!(stats.faults, 0);
        match mode {
            WakeMode::HostFunction => assert!(stats.host_wakeups > 0, "{stats:?}"),
            _ => assert_eq!(stats.host_wakeups, 0, "{stats:?}"),
        }
    }
    assert_eq!((hooks().violations)(), 0);
}

#[test]
fn operations_complete_in_stream_order_and_not_before_the_device() {
    let _turn = serial();
    for mode in MODES {
        let gpu = open(mode);
        let rt = runtime();
        let order = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            let stream = gpu.stream().unwrap();
            let hold = Hold::on();
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let op = stream.synchronize();
                    let order = order.clone();
                    weft::spawn(async move {
                        op.await.unwrap();
                        order.lock().unwrap().push(i);
                    })
                })
                .collect();
            weft::time::sleep(Duration::from_millis(30)).await;
            assert!(
                order.lock().unwrap().is_empty(),
                "{mode:?}: done while the device was held"
            );
            drop(hold);
            for t in tasks {
                t.await.unwrap();
            }
        });
        let mut seen = order.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
    }
}

#[test]
fn awaiting_never_blocks_a_worker() {
    let _turn = serial();
    let gpu = open(WakeMode::HostFunction);
    let rt = weft::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    rt.block_on(async {
        let stream = gpu.stream().unwrap();
        let hold = Hold::on();
        let waiting = weft::spawn(stream.synchronize());
        // One worker: if the GPU wait parked it, this would never run.
        let other = weft::spawn(async {
            weft::time::sleep(Duration::from_millis(5)).await;
            7
        });
        assert_eq!(other.await.unwrap(), 7);
        assert!(!waiting.is_finished());
        drop(hold);
        waiting.await.unwrap().unwrap();
    });
}

#[test]
fn a_device_fault_fails_the_awaiting_task_within_a_poll_interval() {
    let _turn = serial();
    for mode in MODES {
        (hooks().reset)();
        let gpu = Gpu::builder()
            .wake_mode(mode)
            .poll_interval(Duration::from_millis(2))
            .open()
            .unwrap();
        let rt = runtime();
        rt.block_on(async {
            let stream = gpu.stream().unwrap();
            let kernel = gpu.load_ptx(weft_gpu::demo::PTX).unwrap().kernel("oob_write").unwrap();
            let mut dev = stream.alloc_zeros::<u32>(16).unwrap();
            // A copy queued behind the bad kernel: its host buffer must not
            // be freed (nothing says the device is done with it).
            let host = gpu.pinned_zeroed::<u32>(16).unwrap();
            let n = 16u32;
            let hold = Hold::on(); // both enqueued before the fault
            // SAFETY: deliberately not: oob_write writes 4 GiB past `dev`.
            // The stand-in faults instead of writing.
            let bad = unsafe {
                stream
                    .launch(&kernel)
                    .arg(&mut dev)
                    .arg(&n)
                    .run(LaunchConfig::for_num_elems(1))
            };
            let behind = stream.copy_to_host(&dev, host);
            let start = Instant::now();
            drop(hold);
            let err = bad.await.unwrap_err();
            let took = start.elapsed();
            match &err {
                GpuError::Fault { name, .. } => assert_eq!(name, "CUDA_ERROR_ILLEGAL_ADDRESS"),
                other => panic!("{mode:?}: expected a fault, got {other:?}"),
            }
            assert!(err.is_fault());
            // Host functions never run on a faulted stream: in host mode
            // the watchdog found it. Generous bound (CI machines stall).
            assert!(took < Duration::from_secs(2), "{mode:?}: took {took:?}");
            assert!(behind.await.unwrap_err().is_fault());
            // Later work fails too (the fault is sticky): at submission.
            match stream.synchronize().await.unwrap_err() {
                GpuError::Driver { name, .. } => assert_eq!(name, "CUDA_ERROR_ILLEGAL_ADDRESS"),
                other => panic!("{mode:?}: {other:?}"),
            }
        });
        assert_eq!(gpu.stats().faults, 2, "{mode:?}: {:?}", gpu.stats());
    }
    assert_eq!((hooks().violations)(), 0);
    (hooks().reset)();
}

#[test]
fn dropping_or_forgetting_an_operation_in_flight_is_safe() {
    let _turn = serial();
    in_each_mode(|_, gpu, stream| async move {
        let mut dev = stream.alloc_zeros::<u32>(1024).unwrap();
        {
            let _hold = Hold::on();
            let src = gpu.pinned_from_slice(&[5u32; 1024]).unwrap();
            drop(stream.copy_to_device(src, &mut dev));
            let dst = gpu.pinned_zeroed::<u32>(1024).unwrap();
            std::mem::forget(stream.copy_to_host(&dev, dst));
            // The device has touched neither buffer yet; the stand-in
            // counts a violation if either was freed now.
        }
        stream.synchronize().await.unwrap();
        let back = stream
            .copy_to_host(&dev, gpu.pinned_zeroed(1024).unwrap())
            .await
            .unwrap();
        assert!(back.iter().all(|&v| v == 5));
    });
    assert_eq!((hooks().violations)(), 0);
}

#[test]
fn shutting_down_with_work_in_flight_waits_for_the_device() {
    let _turn = serial();
    let gpu = open(WakeMode::HostFunction);
    let rt = runtime();
    let stream = rt.block_on(async { gpu.stream().unwrap() });
    let hold = Hold::on();
    let (kept, dropped) = rt.block_on(async {
        let mut dev = stream.alloc_zeros::<u32>(64).unwrap();
        let kept = stream.copy_to_device(gpu.pinned_from_slice(&[1u32; 64]).unwrap(), &mut dev);
        let dropped = stream.copy_to_device(gpu.pinned_from_slice(&[2u32; 64]).unwrap(), &mut dev);
        (kept, dropped)
    });
    drop(dropped); // its buffer is the tracker's now
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(hold);
    });
    drop(rt); // waits for the copies, then finishes them
    release.join().unwrap();
    assert!(kept.is_done());
    assert_eq!((hooks().violations)(), 0);
}

#[test]
fn promises_carry_done_callbacks_and_the_buffer() {
    let _turn = serial();
    let gpu = open(WakeMode::HostFunction);
    let rt = runtime();
    rt.block_on(async {
        let stream = gpu.stream().unwrap();
        let mut dev = stream.alloc_zeros::<u8>(8).unwrap();
        let promise = stream
            .copy_to_device(gpu.pinned_from_slice(&[9u8; 8]).unwrap(), &mut dev)
            .into_promise();
        let (tx, rx) = std::sync::mpsc::channel();
        promise.add_done_callback(move |p| tx.send(p.result().is_ok()).unwrap());
        let done = promise.await.unwrap();
        let buffer = done.take().expect("the buffer comes back");
        assert_eq!(&buffer[..], &[9u8; 8]);
        assert!(done.take().is_none());
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
    });
}

#[test]
fn events_are_awaitable_and_order_other_streams() {
    let _turn = serial();
    in_each_mode(|mode, gpu, a| async move {
        let b = gpu.stream().unwrap();
        let kernel = gpu.load_ptx(weft_gpu::demo::PTX).unwrap().kernel("add_one").unwrap();
        let mut dev = a.alloc_zeros::<u32>(256).unwrap();
        let n = 256u32;
        let hold = Hold::on();
        // SAFETY: add_one stays inside dev[0..n].
        drop(unsafe {
            a.launch(&kernel)
                .arg(&mut dev)
                .arg(&n)
                .run(LaunchConfig::for_num_elems(n))
        });
        let event = a.record_event().unwrap();
        assert!(!event.is_done().unwrap());
        b.wait_event(&event).unwrap();
        drop(hold);
        event.wait().await.unwrap();
        event.wait().await.unwrap(); // again: already complete
        assert!(event.is_done().unwrap());
        // Stream b saw a's kernel before its copy.
        let back = b.copy_to_host(&dev, gpu.pinned_zeroed(256).unwrap()).await.unwrap();
        assert!(back.iter().all(|&v| v == 1), "{mode:?}");
    });
}

#[test]
fn a_refused_host_function_falls_back_to_the_watchdog() {
    let _turn = serial();
    let gpu = open(WakeMode::HostFunction);
    let rt = runtime();
    rt.block_on(async {
        let stream = gpu.stream().unwrap();
        (hooks().fail_next_host_func)(999);
        stream.synchronize().await.unwrap();
    });
    assert_eq!(gpu.stats().host_function_failures, 1);
}

#[test]
fn bad_input_gets_errors() {
    let _turn = serial();
    let gpu = open(WakeMode::HostFunction);
    let rt = runtime();
    rt.block_on(async {
        let stream = gpu.stream().unwrap();
        let mut small = stream.alloc_zeros::<u32>(4).unwrap();
        let big = gpu.pinned_zeroed::<u32>(8).unwrap();
        assert!(matches!(
            stream.copy_to_device(big, &mut small).await,
            Err(GpuError::InvalidArgument(_))
        ));
        let big = gpu.pinned_zeroed::<u32>(8).unwrap();
        assert!(matches!(
            stream.copy_to_host(&small, big).await,
            Err(GpuError::InvalidArgument(_))
        ));
        match gpu
            .load_ptx(weft_gpu::demo::PTX)
            .unwrap()
            .kernel("no_such_kernel")
            .unwrap_err()
        {
            GpuError::Driver { name, .. } => assert_eq!(name, "CUDA_ERROR_NOT_FOUND"),
            other => panic!("{other:?}"),
        }
        assert!(gpu.load_ptx("not PTX at all").is_err());
        // Empty buffers are fine.
        let empty = gpu.pinned_zeroed::<u32>(0).unwrap();
        assert!(stream.copy_to_device(empty, &mut small).await.unwrap().is_empty());
    });
    // Outside a runtime there is no loop to wake.
    let stream = rt.block_on(async { gpu.stream().unwrap() });
    let mut op = stream.synchronize();
    assert!(op.is_done());
    let waker = std::task::Waker::noop();
    let poll = std::pin::Pin::new(&mut op).poll(&mut std::task::Context::from_waker(waker));
    assert!(matches!(poll, std::task::Poll::Ready(Err(GpuError::NoRuntime))));
}

use std::future::Future;
