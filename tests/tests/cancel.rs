//! Aborting tasks before, during and after a run.

use futures::channel::oneshot;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::task::Poll;
use std::time::Duration;
use weft_tests::{DropCounter, each_flavor, runtime};

each_flavor! {
    fn abort_before_the_task_runs(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        let polled = Arc::new(AtomicUsize::new(0));
        let guard = DropCounter::new(&drops);
        let p = polled.clone();
        let err = rt.block_on(async move {
            weft::spawn(async move {
                // Spawned from a task, the child waits in this worker's queue
                // (its LIFO slot, which no other worker may take) until this
                // poll ends: it cannot have run when we abort it.
                let child = weft::spawn(async move {
                    let _guard = guard;
                    p.fetch_add(1, SeqCst);
                });
                child.abort();
                child.await.unwrap_err()
            })
            .await
            .unwrap()
        });
        assert!(err.is_cancelled());
        assert_eq!(polled.load(SeqCst), 0, "an aborted task is never polled");
        assert_eq!(drops.load(SeqCst), 1);
    }

    fn abort_while_the_task_waits(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = DropCounter::new(&drops);
        let (_tx, rx) = oneshot::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let err = rt.block_on(async move {
            let h = weft::spawn(async move {
                let _guard = guard;
                started_tx.send(()).unwrap();
                let _ = rx.await;
            });
            started_rx.await.unwrap();
            h.abort();
            h.await.unwrap_err()
        });
        assert!(err.is_cancelled());
        assert_eq!(drops.load(SeqCst), 1);
    }

    fn abort_during_a_poll_from_another_thread(flavor) {
        // The poll is in progress when abort() is called: the future must
        // not be dropped under it, and must be dropped right after.
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = DropCounter::new(&drops);
        let inside = Arc::new(Barrier::new(2));
        let released = Arc::new(Barrier::new(2));
        let (i, r) = (inside.clone(), released.clone());
        let h = rt.spawn(async move {
            let _guard = guard;
            std::future::poll_fn(move |_cx| {
                i.wait();
                r.wait();
                // Pending with no wake: only cancellation ends this task.
                Poll::<()>::Pending
            })
            .await
        });
        let abort = h.abort_handle();
        let drops2 = drops.clone();
        let aborter = std::thread::spawn(move || {
            inside.wait();
            abort.abort();
            let dropped_during_poll = drops2.load(SeqCst);
            released.wait();
            dropped_during_poll
        });
        let err = rt.block_on(h).unwrap_err();
        assert_eq!(aborter.join().unwrap(), 0, "the future was not dropped while being polled");
        assert!(err.is_cancelled());
        assert_eq!(drops.load(SeqCst), 1);
    }

    fn abort_after_completion_keeps_the_output(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let h = weft::spawn(async { 9 });
            while !h.is_finished() {
                weft::task::yield_now().await;
            }
            h.abort();
            assert_eq!(h.await.unwrap(), 9);
        });
    }

    fn abort_handles_outlive_and_clone(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (_tx, rx) = oneshot::channel::<()>();
            let h = weft::spawn(async move {
                let _ = rx.await;
            });
            let a1 = h.abort_handle();
            let a2 = a1.clone();
            assert_eq!(a1.id(), h.id());
            drop(a1);
            a2.abort();
            assert!(h.await.unwrap_err().is_cancelled());
            assert!(a2.is_finished());
        });
    }

    fn a_task_aborting_itself(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = DropCounter::new(&drops);
        let err = rt.block_on(async move {
            let (tx, rx) = oneshot::channel();
            let h = weft::spawn(async move {
                let _guard = guard;
                let me: weft::AbortHandle = rx.await.unwrap();
                me.abort();
                // Still running this poll: finish it, then be cancelled.
                weft::task::yield_now().await;
                unreachable!("an aborted task is not polled again");
            });
            tx.send(h.abort_handle()).unwrap();
            h.await.unwrap_err()
        });
        assert!(err.is_cancelled());
        assert_eq!(drops.load(SeqCst), 1);
    }

    fn abort_is_idempotent_under_concurrent_callers(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..100 {
            let guard = DropCounter::new(&drops);
            handles.push(rt.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }));
        }
        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let aborts = aborts.clone();
                std::thread::spawn(move || aborts.iter().for_each(|a| a.abort()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        rt.block_on(async move {
            for h in handles {
                assert!(h.await.unwrap_err().is_cancelled());
            }
        });
        assert_eq!(drops.load(SeqCst), 100);
        std::thread::sleep(Duration::from_millis(1));
    }
}
