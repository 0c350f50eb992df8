//! weft-gpu against whatever driver this machine has: a real GPU's, or
//! else the CPU stand-in (see `common/mod.rs`). Nothing here needs the
//! stand-in's hooks, so `scripts/gpu-check.sh` runs this file's binary on a
//! GPU machine; on the stand-in, its violation count is checked too.
//!
//! Covered: device buffers used by several streams outlive every use
//! (issue 18.1, with copies and kernels as readers and writers), the
//! ordering between streams, sub-range, device-to-device and slice copies,
//! fills, registered host memory, timed events, checked kernel arguments,
//! the one fault story, and the async variants of the blocking calls.

mod common;

use common::*;
use std::future::Future;
use std::time::Duration;
use weft_gpu::{Gpu, GpuError, LaunchConfig, WakeMode};

const SPIN: Duration = Duration::from_millis(60);

fn spin_ns() -> u64 {
    SPIN.as_nanos() as u64
}

/// Issue 18.1's reproduction: a buffer read on stream B (behind a long
/// kernel) and on stream C; C is awaited and the buffer dropped while B
/// still has to read it. B must read the right data: the memory may not be
/// freed (or reused by a new allocation written meanwhile) before B is done.
#[test]
fn a_buffer_read_on_two_streams_lives_until_both_reads_are_done() {
    let _turn = serial();
    for mode in MODES {
        let gpu = open(mode);
        runtime().block_on(async {
            let (a, b, c) = (gpu.stream().unwrap(), gpu.stream().unwrap(), gpu.stream().unwrap());
            let spin = demo_kernel(&gpu, "spin");
            let n = 1 << 16;
            let mut dev = a.alloc_zeros::<u32>(n).unwrap();
            let values: Vec<u32> = (0..n as u32).collect();
            a.copy_from_slice(&values, &mut dev).await.unwrap();
            // SAFETY: spin(u64 ns) touches no memory.
            drop(unsafe { b.launch(&spin).arg(&spin_ns()).run(LaunchConfig::for_num_elems(1)) });
            let on_b = b.copy_to_host(&dev, gpu.pinned_zeroed::<u32>(n).unwrap());
            let on_c = c.copy_to_host(&dev, gpu.pinned_zeroed::<u32>(n).unwrap());
            let seen_c = on_c.await.unwrap();
            drop(dev);
            // A new allocation of the same size, written at once: on a GPU
            // the pool would hand back the freed block if it were free.
            let mut other = c.alloc_zeros::<u32>(n).unwrap();
            c.fill(&mut other, 0xdead_beef).await.unwrap();
            let seen_b = on_b.await.unwrap();
            assert_eq!(&seen_c[..], &values[..], "{mode:?}");
            assert_eq!(
                &seen_b[..],
                &values[..],
                "{mode:?}: stream B read freed or reused memory"
            );
        });
    }
    assert_eq!(violations(), 0);
}

/// Kernels as writers and readers on different streams: a write waits for
/// other streams' reads before it, and a read sees the last write; a
/// buffer dropped while a kernel still writes it is freed after.
#[test]
fn kernels_and_copies_on_different_streams_see_each_other_in_order() {
    let _turn = serial();
    for mode in MODES {
        let gpu = open(mode);
        runtime().block_on(async {
            let (b, c) = (gpu.stream().unwrap(), gpu.stream().unwrap());
            let (spin, add_one) = (demo_kernel(&gpu, "spin"), demo_kernel(&gpu, "add_one"));
            let n = 4096u32;
            let one = LaunchConfig::for_num_elems(1);
            let all = LaunchConfig::for_num_elems(n);
            let mut dev = b.alloc_zeros::<u32>(n as usize).unwrap();
            // Read on B behind a long kernel, then a write on C: the write
            // must wait for B's read, which sees zeroes.
            // SAFETY: spin touches no memory; add_one stays in dev[0..n].
            drop(unsafe { b.launch(&spin).arg(&spin_ns()).run(one) });
            let read_b = b.copy_to_host(&dev, gpu.pinned_zeroed::<u32>(n as usize).unwrap());
            // SAFETY: as above.
            let write_c = unsafe { c.launch(&add_one).arg(&mut dev).arg(&n).run(all) };
            // A write on B behind a long kernel, then a read on C: the read
            // waits for it and sees 2.
            // SAFETY: as above.
            drop(unsafe { b.launch(&spin).arg(&spin_ns()).run(one) });
            // SAFETY: as above.
            let write_b = unsafe { b.launch(&add_one).arg(&mut dev).arg(&n).run(all) };
            let read_c = c.copy_to_host(&dev, gpu.pinned_zeroed::<u32>(n as usize).unwrap());
            // The buffer goes while B still spins and writes.
            // SAFETY: as above.
            drop(unsafe { b.launch(&spin).arg(&spin_ns()).run(one) });
            // SAFETY: as above.
            let last = unsafe { b.launch(&add_one).arg(&mut dev).arg(&n).run(all) };
            drop(dev);
            assert!(
                read_b.await.unwrap().iter().all(|&v| v == 0),
                "{mode:?}: B's read saw C's write"
            );
            write_c.await.unwrap();
            write_b.await.unwrap();
            assert!(
                read_c.await.unwrap().iter().all(|&v| v == 2),
                "{mode:?}: C's read missed B's write"
            );
            last.await.unwrap();
        });
    }
    assert_eq!(violations(), 0);
}

#[test]
fn sub_ranges_device_copies_fills_and_slices() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    runtime().block_on(async {
        let s = gpu.stream().unwrap();
        let mut dev = s.alloc_zeros::<u32>(100).unwrap();
        let host = gpu.pinned_from_slice(&(0..50u32).collect::<Vec<_>>()).unwrap();
        // Values 10..20 of the host buffer into values 40..50 on the device.
        let part = s
            .copy_to_device(host.range(10..20), &mut dev.slice_mut(40..50))
            .await
            .unwrap();
        assert_eq!(part.start(), 10);
        let host = part.into_inner();
        assert_eq!(host.len(), 50);
        let mut back = vec![0u32; 100];
        s.copy_to_slice(&dev, &mut back).await.unwrap();
        assert_eq!(&back[40..50], &(10..20).collect::<Vec<_>>()[..]);
        assert!(back[..40].iter().chain(&back[50..]).all(|&v| v == 0));
        // Device to device, into another buffer's middle.
        let mut other = s.alloc_zeros::<u32>(30).unwrap();
        s.copy_device(&dev.slice(40..50), &mut other.slice_mut(5..15))
            .await
            .unwrap();
        // A device range into a host range.
        let out = gpu.pinned_zeroed::<u32>(30).unwrap();
        let out = s
            .copy_to_host(&other.slice(5..15), out.range(0..10))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&out[..10], &(10..20).collect::<Vec<_>>()[..]);
        // Fills of 1-, 2- and 4-byte values.
        s.fill(&mut other, 7u32).await.unwrap();
        let mut filled = vec![0u32; 30];
        s.copy_to_slice(&other, &mut filled).await.unwrap();
        assert!(filled.iter().all(|&v| v == 7));
        let mut bytes = s.alloc_zeros::<u8>(9).unwrap();
        s.fill(&mut bytes.slice_mut(3..6), 0xabu8).await.unwrap();
        let mut b = [0u8; 9];
        s.copy_to_slice(&bytes, &mut b).await.unwrap();
        assert_eq!(b, [0, 0, 0, 0xab, 0xab, 0xab, 0, 0, 0]);
        let mut wide = s.alloc_zeros::<u64>(4).unwrap();
        assert!(matches!(
            s.fill(&mut wide, 1u64).await,
            Err(GpuError::InvalidArgument(_))
        ));
        // Mismatched lengths are refused before the driver sees them.
        assert!(matches!(
            s.copy_device(&dev.slice(0..5), &mut other.slice_mut(0..6)).await,
            Err(GpuError::InvalidArgument(_))
        ));
        // Your own Vec, registered: copied without staging, given back.
        let registered = gpu.register_async(vec![3u32; 100]).await.unwrap();
        let registered = s.copy_to_device(registered, &mut dev).await.unwrap();
        let registered = s
            .copy_to_host(&dev.slice(0..50), registered.range(50..100))
            .await
            .unwrap();
        let values = registered.into_inner().unregister_async().await.unwrap();
        assert_eq!(values, vec![3u32; 100]);
        // And one dropped while registered: unregistered off the loop.
        let dropped = gpu.register(vec![1u8; 4096]).unwrap();
        let mut small = s.alloc_zeros::<u8>(4096).unwrap();
        drop(s.copy_to_device(dropped, &mut small));
        s.synchronize().await.unwrap();
    });
    assert_eq!(violations(), 0);
}

#[test]
fn timed_events_measure_device_time() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    runtime().block_on(async {
        let s = gpu.stream().unwrap();
        let spin = demo_kernel(&gpu, "spin");
        let start = s.record_timing_event().unwrap();
        // SAFETY: spin touches no memory.
        drop(unsafe { s.launch(&spin).arg(&spin_ns()).run(LaunchConfig::for_num_elems(1)) });
        let end = s.record_timing_event().unwrap();
        let took = start.elapsed(&end).await.unwrap();
        assert!(took >= SPIN.mul_f64(0.9), "{took:?}");
        assert!(took < Duration::from_secs(30), "{took:?}");
        let untimed = s.record_event().unwrap();
        assert!(matches!(
            start.elapsed(&untimed).await,
            Err(GpuError::InvalidArgument(_))
        ));
    });
}

#[test]
fn kernel_arguments_are_checked_where_the_driver_can() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    runtime().block_on(async {
        let s = gpu.stream().unwrap();
        let add_one = demo_kernel(&gpu, "add_one");
        let mut dev = s.alloc_zeros::<u32>(16).unwrap();
        let cfg = LaunchConfig::for_num_elems(16);
        if add_one.param_sizes().unwrap().is_none() {
            println!("skipped: this driver has no cuFuncGetParamInfo (before CUDA 12.4)");
            return;
        }
        assert_eq!(add_one.param_sizes().unwrap(), Some(vec![8, 4]));
        // SAFETY: refused before the launch: a missing argument.
        let missing = unsafe { s.launch(&add_one).arg(&mut dev).run(cfg) }.await.unwrap_err();
        let text = missing.to_string();
        assert!(text.contains("add_one") && text.contains("takes 2 parameter"), "{text}");
        assert!(
            text.contains("grid"),
            "the launch error names the configuration: {text}"
        );
        // SAFETY: refused before the launch: an 8-byte count for a u32.
        let wide = unsafe { s.launch(&add_one).arg(&mut dev).arg(&16u64).run(cfg) }
            .await
            .unwrap_err();
        assert!(wide.to_string().contains("parameter 1 is 4 bytes"), "{wide}");
        // SAFETY: the right arguments.
        unsafe { s.launch(&add_one).arg(&mut dev).arg(&16u32).run(cfg) }
            .await
            .unwrap();
    });
}

/// Issue 19.2: after a fault, the operations in flight report it, and so
/// does every later call, naming itself; a new `Gpu` works.
#[test]
fn a_faulted_context_is_one_state_and_open_gives_a_working_one() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    let rt = runtime();
    rt.block_on(async {
        let s = gpu.stream().unwrap();
        let oob = demo_kernel(&gpu, "oob_write");
        let mut dev = s.alloc_zeros::<u32>(16).unwrap();
        let n = 16u32;
        // SAFETY: deliberately not: oob_write writes 4 GiB past `dev`.
        let bad = unsafe { s.launch(&oob).arg(&mut dev).arg(&n).run(LaunchConfig::for_num_elems(1)) };
        let err = bad.await.unwrap_err();
        row("a kernel in flight faults (oob_write)", &err);
        assert!(err.is_fault(), "{err:?}");
        assert!(err.to_string().contains("oob_write"), "{err}");
        assert!(gpu.is_faulted());
        let host = || gpu.pinned_zeroed::<u32>(16);
        let calls: Vec<(&str, GpuError)> = vec![
            ("allocate device memory", s.alloc_zeros::<u32>(4).unwrap_err()),
            ("create a stream", gpu.stream().unwrap_err()),
            ("allocate pinned memory", host().unwrap_err()),
            ("record an event", s.record_event().unwrap_err()),
            ("synchronize a stream", s.synchronize().await.unwrap_err()),
            ("load a module", gpu.load_ptx(weft_gpu::demo::PTX).unwrap_err()),
        ];
        for (call, err) in calls {
            row(&format!("after the fault: {call}"), &err);
            assert!(err.is_fault(), "{call}: {err:?}");
            match &err {
                GpuError::Fault { call: named, name, .. } => {
                    assert_eq!(named, call);
                    assert_eq!(name, "CUDA_ERROR_ILLEGAL_ADDRESS");
                }
                other => panic!("{call}: {other:?}"),
            }
        }
        let err = s.copy_to_device(vec_buffer(), &mut dev).await.unwrap_err();
        row("after the fault: copy to device", &err);
        assert!(err.is_fault() && err.to_string().starts_with("copy to device"), "{err}");
        // SAFETY: never reaches the device.
        let err = unsafe { s.launch(&oob).arg(&mut dev).arg(&n).run(LaunchConfig::for_num_elems(1)) }
            .await
            .unwrap_err();
        assert!(
            err.is_fault() && err.to_string().starts_with("launch kernel `oob_write`"),
            "{err}"
        );
    });
    // The old context is still held (by `gpu`): open gives a new one.
    let fresh = Gpu::open(0).expect("a working context after a fault");
    assert!(!fresh.is_faulted());
    round_trip(&rt, &fresh);
    assert!(!fresh.is_primary_context());
    // Once every handle of the dead context is gone, the driver's primary
    // context is fresh again (its release happens on the reclaimer thread,
    // so give it a moment).
    drop(gpu);
    drop(fresh);
    drop(rt);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let primary = loop {
        let gpu = Gpu::open(0).unwrap();
        if gpu.is_primary_context() || std::time::Instant::now() > deadline {
            break gpu;
        }
        drop(gpu);
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        primary.is_primary_context(),
        "the primary context is released once unused"
    );
    round_trip(&runtime(), &primary);
}

/// A pinned buffer from a working context (the faulted one makes none).
fn vec_buffer() -> weft_gpu::HostRange<weft_gpu::PinnedBuffer<u32>> {
    let gpu = Gpu::open(0).unwrap();
    gpu.pinned_zeroed::<u32>(4).unwrap().range(..)
}

fn round_trip(rt: &weft::Runtime, gpu: &Gpu) {
    rt.block_on(async {
        let s = gpu.stream().unwrap();
        let add_one = demo_kernel(gpu, "add_one");
        let mut dev = s.alloc_zeros::<u32>(256).unwrap();
        let n = 256u32;
        // SAFETY: add_one stays in dev[0..n].
        unsafe {
            s.launch(&add_one)
                .arg(&mut dev)
                .arg(&n)
                .run(LaunchConfig::for_num_elems(n))
        }
        .await
        .unwrap();
        let mut back = vec![0u32; 256];
        s.copy_to_slice(&dev, &mut back).await.unwrap();
        assert!(back.iter().all(|&v| v == 1));
    });
}

#[test]
fn the_blocking_calls_have_async_variants_and_need_a_runtime() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    runtime().block_on(async {
        let module = gpu.load_ptx_async(weft_gpu::demo::PTX).await.unwrap();
        assert!(module.kernel_names().iter().any(|k| k == "saxpy"));
        let pinned = gpu.pinned_zeroed_async::<f32>(1000).await.unwrap();
        assert_eq!(pinned.len(), 1000);
    });
    let outside = futures_lite_block_on(gpu.pinned_zeroed_async::<f32>(10));
    assert_eq!(outside.unwrap_err(), GpuError::NoRuntime);
}

/// Polls a future to completion on this thread (no runtime).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

#[test]
fn saxpy_from_the_demo_ptx() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    runtime().block_on(async {
        let s = gpu.stream().unwrap();
        let saxpy = demo_kernel(&gpu, "saxpy");
        let n = 1000u32;
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut dx = s.alloc_zeros::<f32>(n as usize).unwrap();
        let mut dy = s.alloc_zeros::<f32>(n as usize).unwrap();
        s.copy_from_slice(&x, &mut dx).await.unwrap();
        s.fill(&mut dy, 1.0f32).await.unwrap();
        // SAFETY: saxpy(float a, const float *x, float *y, unsigned n)
        // stays in x[0..n], y[0..n].
        unsafe {
            s.launch(&saxpy)
                .arg(&2.0f32)
                .arg(&dx)
                .arg(&mut dy)
                .arg(&n)
                .run(LaunchConfig::for_num_elems(n))
        }
        .await
        .unwrap();
        let mut y = vec![0f32; n as usize];
        s.copy_to_slice(&dy, &mut y).await.unwrap();
        assert!(y.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f32 + 1.0));
    });
}

/// One row of the error table (`--nocapture` shows it): case, variant,
/// `is_fault`, message.
fn row(case: &str, err: &GpuError) {
    let variant = format!("{err:?}");
    let variant = variant.split([' ', '(', '{']).next().unwrap_or("");
    println!("| {case} | {variant} | {} | {err} |", err.is_fault());
}

/// The errors a user can cause without a fault, each with its variant and
/// a message that names the call.
#[test]
fn errors_a_user_can_cause_name_the_call() {
    let _turn = serial();
    let gpu = open(WakeMode::EventPolling);
    let err = Gpu::open(3).unwrap_err();
    row("open a device that does not exist", &err);
    assert_eq!(err.driver_name(), Some("CUDA_ERROR_INVALID_DEVICE"));
    let rt = runtime();
    let s = rt.block_on(async { gpu.stream().unwrap() });
    let mut op = s.synchronize();
    let poll = std::pin::Pin::new(&mut op).poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    let std::task::Poll::Ready(Err(err)) = poll else {
        panic!("{poll:?}")
    };
    row("await GPU work outside a runtime", &err);
    assert_eq!(err, GpuError::NoRuntime);
    rt.block_on(async {
        let mut small = s.alloc_zeros::<u32>(4).unwrap();
        let err = s
            .copy_to_device(gpu.pinned_zeroed::<u32>(8).unwrap(), &mut small)
            .await
            .unwrap_err();
        row("copy 8 values into a buffer of 4", &err);
        assert!(matches!(err, GpuError::InvalidArgument(_)));
        let module = gpu.load_ptx(weft_gpu::demo::PTX).unwrap();
        let err = module.kernel("no_such_kernel").unwrap_err();
        row("a kernel the module does not have", &err);
        assert_eq!(err.driver_name(), Some("CUDA_ERROR_NOT_FOUND"));
        let err = gpu.load_ptx("not PTX at all").unwrap_err();
        row("load text that is not PTX", &err);
        assert!(matches!(err, GpuError::Driver { .. }));
        let add_one = module.kernel("add_one").unwrap();
        if add_one.param_sizes().unwrap().is_some() {
            // SAFETY: refused before the launch.
            let err = unsafe { s.launch(&add_one).arg(&mut small).run(LaunchConfig::for_num_elems(4)) }
                .await
                .unwrap_err();
            row("launch with a missing argument", &err);
            assert!(matches!(err, GpuError::InvalidArgument(_)));
        }
        let mut wide = s.alloc_zeros::<f64>(4).unwrap();
        let err = s.fill(&mut wide, 1.0f64).await.unwrap_err();
        row("fill with an 8-byte value", &err);
        let (a, b) = (s.record_event().unwrap(), s.record_event().unwrap());
        let err = a.elapsed(&b).await.unwrap_err();
        row("time events recorded without timing", &err);
        assert!(matches!(err, GpuError::InvalidArgument(_)));
        if weft_gpu::nvrtc_present() {
            let err = gpu.compile("__global__ void k( { }").unwrap_err();
            row("compile bad CUDA C", &err);
            assert!(matches!(err, GpuError::Compile { .. }));
        }
    });
}
