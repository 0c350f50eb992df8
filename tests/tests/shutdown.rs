//! Dropping and shutting down a runtime.

use futures::channel::oneshot;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use weft_tests::{DropCounter, builder, each_flavor, runtime};

each_flavor! {
    fn dropping_a_runtime_runs_every_destructor_exactly_once(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for i in 0..10_000 {
            let guard = DropCounter::new(&drops);
            let (tx, rx) = oneshot::channel::<()>();
            senders.push(tx);
            handles.push(rt.spawn(async move {
                let _guard = guard;
                if i % 2 == 0 {
                    // Half wait on a channel (idle, in no queue)...
                    let _ = rx.await;
                } else {
                    // ...half keep rescheduling themselves.
                    loop {
                        weft::task::yield_now().await;
                    }
                }
            }));
        }
        // Let them all start (the current-thread flavour runs them here).
        rt.block_on(async {
            for _ in 0..10 {
                weft::task::yield_now().await;
            }
        });
        drop(rt);
        assert_eq!(drops.load(SeqCst), 10_000);
        // Every handle reports the cancellation.
        let other = weft::Builder::new_current_thread().build().unwrap();
        other.block_on(async move {
            for h in handles {
                assert!(h.await.unwrap_err().is_cancelled());
            }
        });
        drop(senders);
        assert_eq!(drops.load(SeqCst), 10_000, "no destructor ran twice");
    }

    fn destructors_that_spawn_during_shutdown(flavor) {
        struct SpawnOnDrop {
            drops: Arc<AtomicUsize>,
            ran: Arc<AtomicUsize>,
        }
        impl Drop for SpawnOnDrop {
            fn drop(&mut self) {
                let guard = DropCounter::new(&self.drops);
                let ran = self.ran.clone();
                // The runtime is shutting down: the new task is cancelled at
                // once, and its future (with the guard) dropped unpolled. A
                // panic here would be swallowed by the task, so the task
                // counts instead of asserting.
                drop(weft::spawn(async move {
                    let _guard = guard;
                    ran.fetch_add(1, SeqCst);
                }));
            }
        }
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let bomb = SpawnOnDrop { drops: drops.clone(), ran: ran.clone() };
            drop(rt.spawn(async move {
                let _bomb = bomb;
                std::future::pending::<()>().await;
            }));
        }
        rt.block_on(weft::task::yield_now());
        drop(rt);
        assert_eq!(drops.load(SeqCst), 100);
        assert_eq!(ran.load(SeqCst), 0, "a task spawned during shutdown never runs");
    }

    fn spawning_on_a_shut_down_runtime_gives_a_cancelled_handle(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        drop(rt);
        let h = handle.spawn(async { 1 });
        let other = weft::Builder::new_current_thread().build().unwrap();
        assert!(other.block_on(h).unwrap_err().is_cancelled());
    }

    fn shutdown_timeout_bounds_the_wait_for_a_stuck_blocking_job(flavor) {
        let rt = runtime(flavor);
        let release_tx = occupy_a_blocking_thread(&rt);
        let start = Instant::now();
        rt.shutdown_timeout(Duration::from_millis(100));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(100), "waited {waited:?}");
        assert!(waited < Duration::from_secs(10), "waited {waited:?}");
        drop(release_tx);
    }

    fn queued_blocking_jobs_are_cancelled_at_shutdown(flavor) {
        let rt = builder(flavor).max_blocking_threads(1).build().unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let running = rt.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            "finished"
        });
        started_rx.recv().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let queued = rt.spawn_blocking(move || r.fetch_add(1, SeqCst));
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            release_tx.send(()).unwrap();
        });
        drop(rt); // waits for the running job, cancels the queued one
        releaser.join().unwrap();
        let other = weft::Builder::new_current_thread().build().unwrap();
        assert_eq!(other.block_on(running).unwrap(), "finished");
        assert!(other.block_on(queued).unwrap_err().is_cancelled());
        assert_eq!(ran.load(SeqCst), 0);
    }

    fn shutdown_background_returns_at_once(flavor) {
        let rt = runtime(flavor);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        drop(rt.spawn_blocking(move || {
            let _ = release_rx.recv_timeout(Duration::from_secs(30));
        }));
        let start = Instant::now();
        rt.shutdown_background();
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(release_tx);
    }

    fn queued_blocking_jobs_are_cancelled_even_while_every_thread_is_busy(flavor) {
        let rt = builder(flavor).max_blocking_threads(1).build().unwrap();
        let release_tx = occupy_a_blocking_thread(&rt);
        let queued = rt.spawn_blocking(|| "ran");
        rt.shutdown_timeout(Duration::from_millis(50));
        // The only pool thread is still busy, yet the queued job is already
        // cancelled: shutdown does not leave it for that thread.
        let other = weft::Builder::new_current_thread().build().unwrap();
        let start = Instant::now();
        assert!(other.block_on(queued).unwrap_err().is_cancelled());
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(release_tx);
    }
}

#[test]
fn a_worker_stuck_in_a_task_is_waited_for_only_up_to_the_timeout() {
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCounter::new(&drops);
    let stuck = rt.spawn(async move {
        let _guard = guard;
        started_tx.send(()).unwrap();
        // Blocks its worker (a bug in user code, but one shutdown must survive).
        let _ = release_rx.recv_timeout(Duration::from_secs(30));
        weft::task::yield_now().await;
    });
    started_rx.recv().unwrap();
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(100));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(drops.load(SeqCst), 0, "the stuck task is still being polled");
    release_tx.send(()).unwrap();
    // When its poll returns, the worker sees the cancellation and drops it.
    let other = weft::Builder::new_current_thread().build().unwrap();
    assert!(other.block_on(stuck).unwrap_err().is_cancelled());
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn shutdown_never_hangs_when_workers_poll_the_driver_every_tick() {
    // With event_interval(1) a worker runs its maintenance (a zero-timeout
    // park, which consumes a pending unpark) on every tick, so the shutdown's
    // unpark is often consumed there; the worker must still notice shutdown
    // and never go to sleep after it.
    for _ in 0..300 {
        let rt = weft::Builder::new_multi_thread()
            .worker_threads(4)
            .event_interval(1)
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..4 {
                weft::spawn(weft::task::yield_now()).await.unwrap();
            }
        });
        drop(rt);
    }
}

#[test]
fn shutdown_timeout_of_duration_max_means_no_limit() {
    let rt = weft::Runtime::new().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCounter::new(&drops);
    drop(rt.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    }));
    rt.shutdown_timeout(Duration::MAX);
    assert_eq!(drops.load(SeqCst), 1, "the runtime shut down and cancelled its task");
}

/// Starts a blocking job that holds its pool thread until the returned
/// sender is dropped (or 30 s pass), and returns once it runs.
fn occupy_a_blocking_thread(rt: &weft::Runtime) -> std::sync::mpsc::Sender<()> {
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    drop(rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(Duration::from_secs(30));
    }));
    started_rx.recv().unwrap();
    release_tx
}

mod background_shutdown {
    use super::*;

    each_flavor! {
        fn shutdown_background_while_another_thread_blocks_on_a_sleep_reports_the_shutdown(flavor) {
            // Found in review: on a current-thread runtime the thread in
            // `block_on` held the core, `shutdown_background` did not wait for
            // it, and nobody shut the reactor down: the sleep never fired and
            // never reported the shutdown, so that `block_on` hung for good.
            let rt = runtime(flavor);
            let handle = rt.handle();
            let (entered_tx, entered_rx) = std::sync::mpsc::channel();
            let blocked = std::thread::spawn(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle.block_on(async move {
                        entered_tx.send(()).unwrap();
                        weft::time::sleep(Duration::from_secs(60)).await;
                    })
                }))
            });
            entered_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let start = std::time::Instant::now();
            rt.shutdown_background();
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || done_tx.send(blocked.join()).unwrap());
            let outcome = done_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the thread in block_on still hangs after shutdown_background");
            let payload = outcome.unwrap().expect_err("a 60 s sleep cannot have completed");
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            assert!(message.contains("shut down"), "the sleep reports the shutdown: {message:?}");
            assert!(start.elapsed() < Duration::from_secs(10));
        }
    }
}
