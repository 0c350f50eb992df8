//! weft-sync's primitives on Weft's runtimes: many tasks contending, across
//! workers, with cancellation by timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use weft_sync::{Mutex, Semaphore};
use weft_tests::{each_flavor, runtime};

each_flavor! {
    fn a_semaphore_bounds_concurrency_across_tasks(flavor) {
        let rt = runtime(flavor);
        let sem = Arc::new(Semaphore::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
                    weft::spawn(async move {
                        let _permit = sem.acquire().await.unwrap();
                        let now = inside.fetch_add(1, SeqCst) + 1;
                        most.fetch_max(now, SeqCst);
                        weft::task::yield_now().await;
                        inside.fetch_sub(1, SeqCst);
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        assert!(most.load(SeqCst) <= 3);
        assert_eq!(sem.available_permits(), 3);
        assert_eq!(sem.waiters(), 0);
    }

    fn a_mutex_shared_by_many_tasks_loses_no_update_and_timeouts_leave_no_ghosts(flavor) {
        let rt = runtime(flavor);
        let m = Arc::new(Mutex::new(0u64));
        rt.block_on(async {
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let m = m.clone();
                    weft::spawn(async move {
                        for _ in 0..50 {
                            let mut g = m.lock().await;
                            *g += 1;
                            weft::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(*m.lock().await, 1000);

            // Lock attempts that time out while someone holds the lock.
            let held = m.lock().await;
            for _ in 0..10 {
                assert!(weft::time::timeout(Duration::from_millis(1), m.lock()).await.is_err());
            }
            drop(held);
            // No ghost waiter took the lock: it is free at once.
            assert!(m.try_lock().is_ok());
        });
    }
}
