//! weft-gpu where it meets the rest of the runtime (issue 22.4 and 22.5),
//! against the CPU stand-in driver (`stand-in/`, built by build.rs; on a
//! real driver the tests that need the stand-in's hooks say `skipped:`):
//!
//! - GPU operations dropped pending inside a `race2` 10,000 times: the
//!   device finishes every one (submitted = completed), no buffer is freed
//!   while the device uses it (the stand-in's violation counter), pinned
//!   memory is all returned, and the work that was awaited has its result;
//! - a promise made from a GPU operation, with done callbacks bound to a
//!   runtime that shuts down before the device completes it: each callback
//!   runs at most once and is dropped exactly once, and the promise is
//!   settled, from the completion, with no hang;
//! - a device fault while other streams are busy: every awaiting task ends
//!   (with the fault, or its result if it finished first) within a bound,
//!   while the runtime keeps serving timers.

mod common;

use common::*;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use weft::future::{Either, race2};
use weft_gpu::{GpuError, LaunchConfig, WakeMode};

/// Pending on its first poll, ready on the next (the racer is polled once,
/// then dropped).
fn after_one_poll() -> impl Future<Output = ()> {
    let mut polled = false;
    std::future::poll_fn(move |cx| {
        if polled {
            std::task::Poll::Ready(())
        } else {
            polled = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
}

/// Live pinned allocations in the stand-in.
fn pinned_live() -> u64 {
    static LIVE: std::sync::OnceLock<extern "C" fn() -> u64> = std::sync::OnceLock::new();
    let f = LIVE.get_or_init(|| {
        driver();
        // SAFETY: the stand-in is loaded (by `driver`) for the life of the
        // process; `weft_standin_pinned_live` has this signature.
        unsafe {
            let lib = libloading::Library::new(concat!(env!("OUT_DIR"), "/libcuda.so")).unwrap();
            let f = *lib.get::<extern "C" fn() -> u64>(b"weft_standin_pinned_live").unwrap();
            std::mem::forget(lib);
            f
        }
    });
    f()
}

#[test]
fn gpu_operations_dropped_in_race_loops_are_finished_by_the_device_and_leak_nothing() {
    if !stand_in() {
        return println!("skipped: needs the CPU stand-in's hooks");
    }
    let _turn = serial();
    for mode in MODES {
        let gpu = open(mode);
        let rt = runtime();
        let pinned_before = pinned_live();
        let won = rt.block_on(async {
            let stream = gpu.stream().unwrap();
            let mut dev = stream.alloc_zeros::<u32>(64).unwrap();
            let mut won = 0;
            for round in 0..10_000u32 {
                // Every tenth round the device is held, so the copy cannot
                // finish before it is dropped; otherwise it may win.
                let hold = (round % 10 == 0).then(Hold::on);
                let host = gpu.pinned_from_slice(&[round; 64]).unwrap();
                if let Either::Left(done) = race2(stream.copy_to_device(host, &mut dev), after_one_poll()).await {
                    done.unwrap();
                    won += 1;
                }
                drop(hold);
            }
            // The work after the loop sees the last copy's data.
            stream.synchronize().await.unwrap();
            let back = stream
                .copy_to_host(&dev, gpu.pinned_zeroed::<u32>(64).unwrap())
                .await
                .unwrap();
            assert!(back.iter().all(|&v| v == 9_999), "{mode:?}: the last copy's data");
            won
        });
        drop(rt);
        let stats = gpu.stats();
        assert_eq!(
            stats.submitted, stats.completed,
            "{mode:?}: every dropped operation was finished: {stats:?}"
        );
        assert_eq!(violations(), 0, "{mode:?}: a buffer was freed while the device used it");
        drop(gpu);
        let deadline = Instant::now() + Duration::from_secs(20);
        while pinned_live() > pinned_before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            pinned_live() <= pinned_before,
            "{mode:?}: pinned buffers of dropped operations were never freed ({} live, {pinned_before} before)",
            pinned_live()
        );
        println!(
            "{mode:?}: 10,000 copies raced, {won} won, {} submitted",
            stats.submitted
        );
    }
}

#[test]
fn a_gpu_promise_completed_after_its_runtime_shut_down() {
    if !stand_in() {
        return println!("skipped: needs the CPU stand-in's hooks");
    }
    let _turn = serial();
    for mode in MODES {
        for round in 0..10 {
            let gpu = open(mode);
            let rt = runtime();
            let callbacks = 4;
            let ran = Arc::new(AtomicUsize::new(0));
            let dropped = Arc::new(AtomicUsize::new(0));
            let hold = Hold::on();
            let promise = {
                // The callbacks are added where `rt` is current: they belong
                // to its loop.
                let _rt = rt.enter();
                let stream = gpu.stream().unwrap();
                let mut dev = stream.alloc_zeros::<u32>(256).unwrap();
                let host = gpu.pinned_from_slice(&[3u32; 256]).unwrap();
                let promise = stream.copy_to_device(host, &mut dev).into_promise();
                for _ in 0..callbacks {
                    let (ran, guard) = (ran.clone(), weft_tests_drop_counter(&dropped));
                    promise.add_done_callback(move |p| {
                        let _guard = guard;
                        assert!(p.result().is_ok());
                        ran.fetch_add(1, SeqCst);
                    });
                }
                promise
            };
            assert!(!promise.done(), "held: the copy cannot be done yet");
            // The device finishes while (or after) the runtime shuts down.
            let release = std::thread::spawn(move || {
                if round % 2 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                drop(hold);
            });
            if round % 3 == 0 {
                rt.shutdown_background();
            } else {
                drop(rt);
            }
            release.join().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !(promise.done() && dropped.load(SeqCst) == callbacks) {
                assert!(
                    Instant::now() < deadline,
                    "{mode:?} round {round}: promise done {}, callbacks dropped {}",
                    promise.done(),
                    dropped.load(SeqCst)
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(ran.load(SeqCst) <= callbacks, "a callback ran twice");
            assert!(
                promise.result().is_ok(),
                "{mode:?}: the copy succeeded: {:?}",
                promise.result().err()
            );
            assert_eq!(violations(), 0);
        }
    }
}

#[test]
fn a_device_fault_while_other_streams_are_busy_ends_every_wait() {
    if !stand_in() {
        return println!("skipped: needs the CPU stand-in's hooks");
    }
    let _turn = serial();
    for mode in MODES {
        (hooks().reset)();
        let gpu = weft_gpu::Gpu::builder()
            .wake_mode(mode)
            .poll_interval(Duration::from_millis(2))
            .open()
            .unwrap();
        let rt = runtime();
        rt.block_on(async {
            let bad_kernel = demo_kernel(&gpu, "oob_write");
            let good_kernel = demo_kernel(&gpu, "add_one");
            let hold = Hold::on();
            // Three busy streams, then the fault on a fourth.
            let mut busy = Vec::new();
            for s in 0..3 {
                let stream = gpu.stream().unwrap();
                let mut dev = stream.alloc_zeros::<u32>(4096).unwrap();
                for _ in 0..4 {
                    let n = 4096u32;
                    // SAFETY: add_one(u32 *buf, u32 n) stays inside buf[0..n].
                    let op = unsafe {
                        stream
                            .launch(&good_kernel)
                            .arg(&mut dev)
                            .arg(&n)
                            .run(LaunchConfig::for_num_elems(n))
                    };
                    busy.push(weft::spawn(async move { op.await.map(drop) }));
                }
                let host = gpu.pinned_zeroed::<u32>(4096).unwrap();
                let copy = stream.copy_to_host(&dev, host);
                busy.push(weft::spawn(async move { copy.await.map(drop) }));
                let _ = s;
            }
            let stream = gpu.stream().unwrap();
            let mut dev = stream.alloc_zeros::<u32>(16).unwrap();
            let n = 16u32;
            // SAFETY: deliberately not: oob_write writes far past `dev`; the
            // stand-in faults instead of writing.
            let bad = unsafe {
                stream
                    .launch(&bad_kernel)
                    .arg(&mut dev)
                    .arg(&n)
                    .run(LaunchConfig::for_num_elems(1))
            };
            let ticks = Arc::new(AtomicUsize::new(0));
            let t = ticks.clone();
            let ticker = weft::spawn(async move {
                loop {
                    weft::time::sleep(Duration::from_millis(2)).await;
                    t.fetch_add(1, SeqCst);
                }
            });
            let start = Instant::now();
            drop(hold);
            let err = weft::time::timeout(Duration::from_secs(20), bad)
                .await
                .expect("the faulting launch ends")
                .unwrap_err();
            assert!(err.is_fault(), "{mode:?}: {err:?}");
            let (mut ok, mut faulted) = (0, 0);
            for task in busy {
                match weft::time::timeout(Duration::from_secs(20), task)
                    .await
                    .expect("every busy stream's wait ends")
                    .unwrap()
                {
                    Ok(()) => ok += 1,
                    Err(e) if e.is_fault() => faulted += 1,
                    Err(e) => panic!("{mode:?}: neither a result nor the fault: {e:?}"),
                }
            }
            assert!(start.elapsed() < Duration::from_secs(20));
            assert!(
                ticks.load(SeqCst) > 0 || start.elapsed() < Duration::from_millis(10),
                "timers kept firing"
            );
            ticker.abort();
            println!(
                "{mode:?}: the fault ended {faulted} waits, {ok} had finished, in {:.1?}",
                start.elapsed()
            );
            // Later work on the faulted context fails at once, not hangs.
            let after = weft::time::timeout(Duration::from_secs(20), stream.synchronize())
                .await
                .expect("no hang");
            assert!(matches!(after, Err(GpuError::Fault { .. })), "{mode:?}: {after:?}");
        });
        drop(rt);
        assert_eq!(
            violations(),
            0,
            "{mode:?}: a buffer was freed while the faulted device used it"
        );
    }
    (hooks().reset)();
    // A device opened again works.
    let gpu = open(WakeMode::EventPolling);
    runtime().block_on(async {
        let stream = gpu.stream().unwrap();
        stream.synchronize().await.unwrap();
    });
}

/// A drop counter (weft-gpu's tests do not depend on weft-tests).
fn weft_tests_drop_counter(count: &Arc<AtomicUsize>) -> impl Send + 'static {
    struct Counter(Arc<AtomicUsize>);
    impl Drop for Counter {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    Counter(count.clone())
}
