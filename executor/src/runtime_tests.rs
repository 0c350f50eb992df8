//! Whole-executor tests, small enough to run under Miri, so that the
//! schedulers' unsafe-adjacent paths (the thread-local scheduler pointer,
//! the LIFO slot, stealing, shutdown) are checked by it too.
//!
//! `scripts/test.sh` runs these under Miri's Tree Borrows model with leak
//! checks off: crossbeam-epoch (under crossbeam-deque) violates the stricter
//! Stacked Borrows rules in its intrusive list of thread records, and keeps
//! those records in a global list until the process exits. The task module's
//! tests, which use no crossbeam, run under Stacked Borrows with leak checks.

use crate::{Builder, Executor, Flavor};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

fn executors() -> Vec<Executor> {
    vec![
        Builder::new_current_thread().build().unwrap(),
        Builder::new_multi_thread().worker_threads(2).build().unwrap(),
    ]
}

const N: usize = if cfg!(miri) { 20 } else { 2000 };

#[test]
fn spawn_join_yield_and_wake() {
    for rt in executors() {
        let sum = rt.block_on(async {
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    crate::spawn(async move {
                        crate::task::yield_now().await;
                        // A child woken from this task goes to the LIFO slot.
                        crate::spawn(async move { i }).await.unwrap()
                    })
                })
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, (0..N).sum::<usize>());
    }
}

#[test]
fn wakes_from_a_foreign_thread() {
    for rt in executors() {
        let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        let waker_thread = std::thread::spawn(move || {
            for waker in rx {
                waker.wake();
            }
        });
        rt.block_on(async move {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let tx = tx.clone();
                    let f = f.clone();
                    crate::spawn(async move {
                        let mut sent = false;
                        std::future::poll_fn(|cx| {
                            if sent {
                                f.fetch_add(1, SeqCst);
                                return std::task::Poll::Ready(());
                            }
                            sent = true;
                            tx.send(cx.waker().clone()).unwrap();
                            std::task::Poll::Pending
                        })
                        .await
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        waker_thread.join().unwrap();
        assert_eq!(fired.load(SeqCst), 4);
    }
}

#[test]
fn drop_cancels_pending_tasks() {
    for rt in executors() {
        let flavor = rt.handle().flavor();
        let drops = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        for _ in 0..8 {
            let c = Count(drops.clone());
            drop(rt.spawn(async move {
                let _c = c;
                std::future::pending::<()>().await;
            }));
        }
        if flavor == Flavor::CurrentThread {
            rt.block_on(crate::task::yield_now());
        }
        drop(rt);
        assert_eq!(drops.load(SeqCst), 8);
    }
}

#[test]
fn blocking_jobs_run_and_report_panics() {
    for rt in executors() {
        let (ok, err) = rt.block_on(async {
            let ok = crate::spawn_blocking(|| 5).await.unwrap();
            let err = crate::spawn_blocking(|| panic!("in the pool")).await.unwrap_err();
            (ok, err)
        });
        assert_eq!(ok, 5);
        assert!(err.is_panic());
    }
}
