//! weft-gpu's logic against the CPU stand-in driver (`stand-in/libcuda.rs`,
//! built by build.rs), with its test hooks: completion -> wake -> result,
//! ordering, faults, dropping operations in flight, promises, both wake
//! modes, and the driver's strictness the stand-in models (contexts,
//! blocking frees, host functions that may not call CUDA, unknown kernels).
//!
//! The stand-in's device state (sticky fault, hold, counters) is global to
//! the process, so the tests take turns (`serial`).

mod common;

use common::*;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_gpu::{Gpu, GpuError, LaunchConfig, Stream, WakeMode};

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
    let gpu = Gpu::open(0).unwrap();
    assert_eq!(gpu.ordinal(), 0);
    assert!(gpu.name().unwrap().contains("stand-in"));
    assert_eq!(weft_gpu::device_count().unwrap(), 1);
    assert_eq!(gpu.wake_mode(), WakeMode::EventPolling, "event polling is the default");
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
                GpuError::Fault { call, name, .. } => {
                    assert_eq!(name, "CUDA_ERROR_ILLEGAL_ADDRESS");
                    assert_eq!(call, "synchronize a stream");
                }
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
fn a_panicking_waker_strands_no_other_operation() {
    /// A user's waker that panics when woken.
    struct Panics;
    impl std::task::Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("a waker that panics (on purpose, in a test)");
        }
    }
    let _turn = serial();
    in_each_mode(|_, gpu, stream| async move {
        let mut first_dev = stream.alloc_zeros::<u32>(64).unwrap();
        let mut second_dev = stream.alloc_zeros::<u32>(64).unwrap();
        let hold = Hold::on();
        let mut first = Box::pin(stream.copy_to_device(gpu.pinned_from_slice(&[1u32; 64]).unwrap(), &mut first_dev));
        let waker = std::task::Waker::from(Arc::new(Panics));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(first.as_mut().poll(&mut cx).is_pending());
        let second = stream.copy_to_device(gpu.pinned_from_slice(&[2u32; 64]).unwrap(), &mut second_dev);
        // Both finish in one batch of the tracker, the panicking one first.
        drop(hold);
        weft::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("the operation behind a panicking waker still completes")
            .unwrap();
        assert!(first.is_done());
    });
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

/// Issue 18.2: pinned memory freed on a worker would wait for the device
/// (`cuMemFreeHost` synchronizes the context, as the stand-in models).
/// Buffers dropped while a long kernel runs go to the pool or the
/// reclaimer thread, and the worker's other tasks keep running.
#[test]
fn dropping_buffers_while_a_long_kernel_runs_never_stalls_the_worker() {
    let _turn = serial();
    // No pool: every dropped pinned buffer is freed, by the reclaimer.
    let gpu = Gpu::builder().pinned_pool_limit(0).open().unwrap();
    let rt = weft::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let freed_before = (hooks().pinned_freed)();
    rt.block_on(async {
        let (busy, other) = (gpu.stream().unwrap(), gpu.stream().unwrap());
        let spin = demo_kernel(&gpu, "spin");
        let long = Duration::from_millis(400);
        // SAFETY: spin touches no memory.
        let kernel = unsafe {
            busy.launch(&spin)
                .arg(&(long.as_nanos() as u64))
                .run(LaunchConfig::for_num_elems(1))
        };
        let ticks = Arc::new(Mutex::new(0u32));
        let ticker = {
            let ticks = ticks.clone();
            weft::spawn(async move {
                for _ in 0..20 {
                    weft::time::sleep(Duration::from_millis(5)).await;
                    *ticks.lock().unwrap() += 1;
                }
            })
        };
        // Buffers used and dropped on the one worker while `busy` spins.
        let mut dev = other.alloc_zeros::<u32>(1024).unwrap();
        for _ in 0..5 {
            let host = gpu.pinned_from_slice(&[1u32; 1024]).unwrap();
            let host = other.copy_to_device(host, &mut dev).await.unwrap();
            drop(host);
            drop(other.copy_to_host(&dev, gpu.pinned_zeroed::<u32>(1024).unwrap()));
        }
        drop(dev);
        ticker.await.unwrap();
        assert_eq!(*ticks.lock().unwrap(), 20);
        assert!(!kernel.is_done(), "the ticks ran while the kernel was in flight");
        kernel.await.unwrap();
    });
    // The frees happened off the worker, and waited for the device there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (hooks().pinned_freed)() == freed_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        (hooks().pinned_freed)() > freed_before,
        "the reclaimer freed the buffers"
    );
    assert!(
        (hooks().blocking_calls)() > 0,
        "the frees waited for the kernel (off the worker)"
    );
    assert_eq!((hooks().violations)(), 0);
    assert_eq!((hooks().non_portable)(), 0, "pinned memory is allocated PORTABLE");
    assert_eq!(gpu.stats().driver_errors, 0, "{:?}", gpu.last_background_error());
}

/// The stand-in fails like the driver: no current context, a host function
/// that calls CUDA.
#[test]
fn the_stand_in_is_as_strict_as_the_driver() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    // A fresh thread has no current context.
    let code = std::thread::spawn(|| {
        let mut event = std::ptr::null_mut();
        // SAFETY: an out-pointer we own; no context is current here.
        unsafe { weft_gpu::cudarc::driver::sys::cuEventCreate(&mut event, 0) }
    })
    .join()
    .unwrap();
    assert_eq!(
        code,
        weft_gpu::cudarc::driver::sys::CUresult::CUDA_ERROR_INVALID_CONTEXT
    );
    // A host function may make no CUDA call.
    drop(gpu.stream().unwrap()); // binds this thread
    assert_eq!((hooks().call_from_host_function)(), 800, "CUDA_ERROR_NOT_PERMITTED");
    (hooks().reset)();
    // Weft binds the context wherever it runs: a thread that never did.
    let gpu2 = gpu.clone();
    std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async {
            let s = gpu2.stream().unwrap();
            let mut dev = s.alloc_zeros::<u32>(8).unwrap();
            s.copy_from_slice(&[5u32; 8], &mut dev).await.unwrap();
            let mut back = [0u32; 8];
            s.copy_to_slice(&dev, &mut back).await.unwrap();
            assert_eq!(back, [5; 8]);
        });
    })
    .join()
    .unwrap();
    assert_eq!((hooks().violations)(), 0, "no host function of Weft's called CUDA");
}

/// Issue 18.4: an event awaited on another runtime's reactor, in
/// host-function mode with a watchdog too slow to matter, is woken by the
/// event's own host function.
#[test]
fn an_event_awaited_on_another_runtime_is_woken_by_its_host_function() {
    let _turn = serial();
    let gpu = Gpu::builder()
        .wake_mode(WakeMode::HostFunction)
        .poll_interval(Duration::from_secs(60))
        .spin_window(Duration::ZERO)
        .open()
        .unwrap();
    let (rt1, rt2) = (runtime(), runtime());
    let hold = Hold::on();
    let event = rt1.block_on(async {
        let s = gpu.stream().unwrap();
        drop(s.synchronize());
        s.record_event().unwrap()
    });
    let waiter = {
        let event = event.clone();
        rt2.spawn(async move { event.wait().await })
    };
    std::thread::sleep(Duration::from_millis(20));
    assert!(!waiter.is_finished());
    let start = Instant::now();
    drop(hold);
    rt2.block_on(waiter).unwrap().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "woken by the host function, not the watchdog"
    );
}

/// Issue 18.4: a stream dropped with work in flight, and new streams made
/// meanwhile (which may get its handle): every operation is tracked by its
/// own stream and completes.
#[test]
fn streams_dropped_with_work_in_flight_are_not_confused_with_new_ones() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    runtime().block_on(async {
        let hold = Hold::on();
        let mut ops = Vec::new();
        for _ in 0..8 {
            let s = gpu.stream().unwrap();
            ops.push(s.synchronize());
            drop(s);
        }
        drop(hold);
        for op in ops {
            op.await.unwrap();
        }
    });
    assert_eq!(gpu.stats().driver_errors, 0, "{:?}", gpu.last_background_error());
}

/// Issue 19.5: without `cuFuncGetParamInfo` the launch goes unchecked.
#[test]
fn an_old_driver_launches_unchecked() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    (hooks().old_driver)(true);
    runtime().block_on(async {
        let s = gpu.stream().unwrap();
        let add_one = demo_kernel(&gpu, "add_one");
        assert_eq!(add_one.param_sizes().unwrap(), None);
        let mut dev = s.alloc_zeros::<u32>(4).unwrap();
        // SAFETY: the right arguments.
        unsafe {
            s.launch(&add_one)
                .arg(&mut dev)
                .arg(&4u32)
                .run(LaunchConfig::for_num_elems(4))
        }
        .await
        .unwrap();
    });
    (hooks().old_driver)(false);
}

/// Issue 19.7: the stand-in runs Weft's demo kernels only, recognised by
/// their bodies; anything else is refused, loudly.
#[test]
fn the_stand_in_refuses_kernels_it_cannot_run() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    let ptx = weft_gpu::demo::PTX;
    // Same name, another body: refused (it would have run add_one's CPU
    // version before).
    let changed = ptx.replace("add.s32 \t%r7, %r6, 1;", "add.s32 \t%r7, %r6, 2;");
    assert_ne!(changed, ptx);
    let err = gpu.load_ptx(&changed).unwrap_err();
    assert_eq!(err.driver_name(), Some("CUDA_ERROR_NOT_SUPPORTED"), "{err}");
    // A demo body under a mangled name loads; asking for the plain name
    // says the name was probably mangled.
    let mangled = ptx.replace(".entry add_one(", ".entry _Z7add_onePjj(");
    let module = gpu.load_ptx(&mangled).unwrap();
    let err = module.kernel("add_one").unwrap_err();
    assert_eq!(err.driver_name(), Some("CUDA_ERROR_NOT_FOUND"));
    assert!(
        err.to_string().contains("_Z7add_onePjj") && err.to_string().contains("extern \"C\""),
        "{err}"
    );
    assert!(module.kernel("_Z7add_onePjj").is_ok());
}

/// Issue 19.7: `WEFT_GPU_WAKE` applies to every `Gpu`, whatever its
/// builder says.
#[test]
fn weft_gpu_wake_overrides_every_builder() {
    let _turn = serial();
    // SAFETY: the tests of this file take turns (`serial`), and none reads
    // the environment meanwhile.
    unsafe { std::env::set_var("WEFT_GPU_WAKE", "host") };
    let host = Gpu::builder()
        .wake_mode(WakeMode::EventPolling)
        .open()
        .map(|g| g.wake_mode());
    // SAFETY: as above.
    unsafe { std::env::set_var("WEFT_GPU_WAKE", "sometimes") };
    let bad = Gpu::open(0).map(|g| g.wake_mode());
    // SAFETY: as above.
    unsafe { std::env::remove_var("WEFT_GPU_WAKE") };
    assert_eq!(host.unwrap(), WakeMode::HostFunction);
    assert!(matches!(bad, Err(GpuError::InvalidArgument(_))));
}

/// Issue 18.4: work submitted while the runtime shuts down (here, from a
/// task's destructor, after the reactor has shut its sources down) is
/// still finished, by the device's reclaimer thread, once the device is
/// done: never left unpolled.
#[test]
fn work_submitted_during_shutdown_still_completes() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    let (tx, rx) = std::sync::mpsc::channel();
    struct SubmitOnDrop(Stream, std::sync::mpsc::Sender<weft_gpu::GpuOp<()>>);
    impl Drop for SubmitOnDrop {
        fn drop(&mut self) {
            let _ = self.1.send(self.0.synchronize());
        }
    }
    let rt = runtime();
    let stream = rt.block_on(async { gpu.stream().unwrap() });
    rt.block_on(async {
        // A tracker for this reactor, with work done.
        stream.synchronize().await.unwrap();
    });
    let guard = SubmitOnDrop(stream, tx);
    let hold = Hold::on();
    rt.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    });
    // The shutdown waits for the device, so the device must go on.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(hold);
    });
    drop(rt);
    release.join().unwrap();
    let op = rx.recv_timeout(Duration::from_secs(10)).expect("the destructor ran");
    // Finished by the reactor's shutdown or, if it came after, by the
    // reclaimer: either way, never left hanging.
    match futures_block_on(op) {
        Ok(()) => println!("finished; orphans: {}", gpu.stats().orphans),
        Err(GpuError::NoRuntime) => println!("note: the task was dropped outside its runtime's context"),
        Err(other) => panic!("{other:?}"),
    }
}

/// Polls a future to completion on this thread (no runtime), with a
/// generous bound so a hang fails instead of blocking the suite.
fn futures_block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < deadline, "the operation never completed");
        std::thread::sleep(Duration::from_millis(1));
    }
}
