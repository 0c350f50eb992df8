//! Loop callbacks: `call_soon` order, `call_later`/`call_at` timing and
//! cancellation, panics going through the runtime's policy, shutdown.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use weft::UnhandledPanic;
use weft::future::Promise;
use weft_tests::{builder, each_flavor, runtime};

/// Resolves once every callback scheduled before it has run.
async fn flush(handle: &weft::Handle) {
    let done = Promise::<()>::new();
    let d = done.clone();
    handle.call_soon(move || d.set_result(()).unwrap());
    done.await.unwrap();
}

each_flavor! {
    fn call_soon_runs_callbacks_in_fifo_order_across_threads(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let log = Arc::new(Mutex::new(Vec::new()));
        // One thread schedules 0..500 in order while another schedules
        // 1000..1500: each thread's callbacks keep their order.
        let threads: Vec<_> = [0, 1000]
            .into_iter()
            .map(|base| {
                let handle = handle.clone();
                let log = log.clone();
                thread::spawn(move || {
                    for i in base..base + 500 {
                        let log = log.clone();
                        handle.call_soon_threadsafe(move || log.lock().unwrap().push(i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        rt.block_on(flush(&handle));
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 1000);
        let first: Vec<_> = log.iter().filter(|&&i| i < 1000).copied().collect();
        let second: Vec<_> = log.iter().filter(|&&i| i >= 1000).copied().collect();
        assert_eq!(first, (0..500).collect::<Vec<_>>());
        assert_eq!(second, (1000..1500).collect::<Vec<_>>());
        let m = rt.metrics();
        assert!(m.callbacks_run >= 1001, "{}", m.callbacks_run);
        assert_eq!(m.callback_queue_depth, 0);
    }

    fn a_callback_scheduled_from_a_callback_runs_after_those_already_queued(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (l, h) = (log.clone(), handle.clone());
        // On a multi-thread runtime a worker may run "a" at once: "a" waits
        // until "b" is queued, so that "c" is queued after it.
        let (b_queued, wait_for_b) = std::sync::mpsc::channel::<()>();
        handle.call_soon(move || {
            wait_for_b.recv_timeout(Duration::from_secs(10)).unwrap();
            l.lock().unwrap().push("a");
            let l2 = l.clone();
            h.call_soon(move || l2.lock().unwrap().push("c"));
        });
        let l = log.clone();
        handle.call_soon(move || l.lock().unwrap().push("b"));
        b_queued.send(()).unwrap();
        rt.block_on(async {
            weft::time::sleep(Duration::from_millis(1)).await;
            flush(&handle).await;
        });
        assert_eq!(*log.lock().unwrap(), ["a", "b", "c"]);
    }

    fn a_cancelled_call_soon_never_runs(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        // A callback ahead of it holds the (single, FIFO) drain until the
        // cancel is done, so the cancel cannot lose the race.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        handle.call_soon(move || {
            let _ = hold.recv_timeout(Duration::from_secs(10));
        });
        let cb = rt.block_on(async {
            let cb = handle.call_soon(move || {
                r.fetch_add(1, SeqCst);
            });
            assert!(cb.cancel());
            release.send(()).unwrap();
            assert!(!cb.cancel());
            flush(&handle).await;
            cb
        });
        assert!(cb.cancelled() && !cb.done());
        assert_eq!(ran.load(SeqCst), 0);
    }

    fn call_later_and_call_at_run_on_time_and_in_deadline_order(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let push = |name: &'static str| {
            let log = log.clone();
            move || log.lock().unwrap().push((name, start.elapsed()))
        };
        let done = Promise::<()>::new();
        let d = done.clone();
        rt.block_on(async {
            // Far enough apart that a loaded machine's timer lateness cannot
            // make two of them fire in the same loop turn.
            handle.call_later(Duration::from_millis(90), push("later 90"));
            handle.call_at(start + Duration::from_millis(30), push("at 30"));
            handle.call_later(Duration::from_millis(60), push("later 60"));
            handle.call_later(Duration::from_millis(120), move || d.set_result(()).unwrap());
            done.await.unwrap();
        });
        let log = log.lock().unwrap();
        let names: Vec<_> = log.iter().map(|e| e.0).collect();
        assert_eq!(names, ["at 30", "later 60", "later 90"]);
        for (name, at) in log.iter() {
            let due: u64 = name.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(*at >= Duration::from_millis(due), "{name} ran early, at {at:?}");
        }
    }

    fn cancelling_call_later_frees_its_timer(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let ran = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let cbs: Vec<_> = (0..100)
                .map(|_| {
                    let r = ran.clone();
                    handle.call_later(Duration::from_secs(3600), move || {
                        r.fetch_add(1, SeqCst);
                    })
                })
                .collect();
            // Each waits in a task of its own, which registers its timer
            // when a worker first polls it.
            weft_tests::eventually("the 100 timers to be registered", || rt_pending_timers(&handle) >= 100).await;
            for cb in &cbs {
                assert!(cb.cancel());
            }
            // The waiting tasks are aborted, which drops their timers.
            weft_tests::eventually("the cancelled timers to leave the wheel", || rt_pending_timers(&handle) == 0).await;
            assert!(cbs.iter().all(|cb| cb.cancelled()));
        });
        assert_eq!(ran.load(SeqCst), 0);
    }

    fn a_panicking_callback_is_counted_and_the_next_one_still_runs(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let ran = Arc::new(AtomicUsize::new(0));
        handle.call_soon(|| panic!("callback trouble"));
        let r = ran.clone();
        handle.call_soon(move || {
            r.fetch_add(1, SeqCst);
        });
        rt.block_on(flush(&handle));
        assert_eq!(ran.load(SeqCst), 1);
        assert_eq!(rt.metrics().callback_panics, 1);
        // The runtime is fine.
        assert_eq!(rt.block_on(async { weft::spawn(async { 5 }).await.unwrap() }), 5);
    }

    fn a_panicking_callback_shuts_down_a_runtime_that_asks_for_it(flavor) {
        let rt = builder(flavor).unhandled_panic(UnhandledPanic::ShutdownRuntime).build().unwrap();
        let handle = rt.handle();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async {
                handle.call_soon(|| panic!("callback trouble"));
                std::future::pending::<()>().await;
            })
        }));
        let message = weft_tests::panic_message(&*outcome.unwrap_err());
        assert!(message.contains("ShutdownRuntime"), "{message}");
    }

    fn callbacks_queued_on_a_shut_down_runtime_are_cancelled_and_dropped(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let drops = Arc::new(AtomicUsize::new(0));
        let pending = {
            let guard = weft_tests::DropCounter::new(&drops);
            handle.call_later(Duration::from_secs(3600), move || drop(guard))
        };
        drop(rt);
        assert_eq!(drops.load(SeqCst), 1);
        assert!(pending.cancelled());
        let guard = weft_tests::DropCounter::new(&drops);
        let late = handle.call_soon(move || drop(guard));
        assert!(late.cancelled());
        assert_eq!(drops.load(SeqCst), 2);
    }
}

fn rt_pending_timers(handle: &weft::Handle) -> usize {
    handle.reactor().pending_timers()
}
