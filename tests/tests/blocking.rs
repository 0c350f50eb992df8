//! The blocking pool.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use weft_tests::{builder, each_flavor};

each_flavor! {
    fn more_blocking_jobs_than_threads_all_complete(flavor) {
        let rt = builder(flavor).max_blocking_threads(4).build().unwrap();
        let peak = Arc::new(AtomicUsize::new(0));
        let now = Arc::new(AtomicUsize::new(0));
        let total = rt.block_on(async {
            let handles: Vec<_> = (0..64u64)
                .map(|i| {
                    let (peak, now) = (peak.clone(), now.clone());
                    weft::spawn_blocking(move || {
                        let running = now.fetch_add(1, SeqCst) + 1;
                        peak.fetch_max(running, SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        now.fetch_sub(1, SeqCst);
                        i
                    })
                })
                .collect();
            let mut total = 0;
            for h in handles {
                total += h.await.unwrap();
            }
            total
        });
        assert_eq!(total, (0..64).sum::<u64>());
        assert!(peak.load(SeqCst) <= 4, "at most max_blocking_threads run at once");
        assert!(rt.metrics().blocking_threads <= 4);
    }

    fn idle_blocking_threads_retire_after_the_keep_alive(flavor) {
        let rt = builder(flavor)
            .max_blocking_threads(8)
            .thread_keep_alive(Duration::from_millis(100))
            .build()
            .unwrap();
        let barrier = Arc::new(Barrier::new(8));
        rt.block_on(async {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let b = barrier.clone();
                    weft::spawn_blocking(move || {
                        b.wait();
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        assert_eq!(rt.metrics().blocking_threads, 8);
        // Keep the pool busy with a trickle of jobs, each 10 ms, one at a
        // time, for many keep-alives: the threads the trickle does not need
        // must still retire, because the most recently idle thread is the one
        // reused. (Round-robin reuse would keep all eight alive.) Two may
        // survive: a job submitted while the previous one's thread is on its
        // way back to idle goes to another thread.
        let deadline = Instant::now() + Duration::from_secs(10);
        while rt.metrics().blocking_threads > 2 && Instant::now() < deadline {
            rt.block_on(rt.spawn_blocking(|| std::thread::sleep(Duration::from_millis(10)))).unwrap();
        }
        assert!(rt.metrics().blocking_threads <= 2, "{:?}", rt.metrics());
    }

    fn blocking_code_may_block_on_the_runtime(flavor) {
        let rt = builder(flavor).build().unwrap();
        let v = rt.block_on(async {
            weft::spawn_blocking(|| {
                let handle = weft::Handle::current();
                handle.block_on(async { weft::spawn(async { 11 }).await.unwrap() })
            })
            .await
            .unwrap()
        });
        assert_eq!(v, 11);
    }

    fn blocking_threads_carry_the_runtime_name(flavor) {
        let rt = builder(flavor).thread_name("pool").build().unwrap();
        let name = rt.block_on(rt.spawn_blocking(|| std::thread::current().name().map(str::to_owned))).unwrap();
        assert!(name.unwrap().starts_with("pool-blocking-"));
    }
}

#[test]
fn a_job_the_os_cannot_give_a_thread_is_cancelled_not_a_panic() {
    // A stack no OS will grant: the pool cannot start a thread.
    let rt = weft::Builder::new_current_thread()
        .thread_stack_size(usize::MAX / 4)
        .build()
        .unwrap();
    let err = rt.block_on(async { weft::spawn_blocking(|| 1).await.unwrap_err() });
    assert!(err.is_cancelled());
}

#[test]
fn a_multi_thread_runtime_whose_workers_cannot_start_is_an_error() {
    let err = weft::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(usize::MAX / 4)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("could not start worker thread"), "{err}");
}
