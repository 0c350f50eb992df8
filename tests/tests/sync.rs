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
    fn channels_carry_every_message_between_tasks(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            // mpsc: 5 producer tasks, one consumer, per-producer order kept.
            let (tx, mut rx) = weft_sync::mpsc::channel(8);
            for p in 0..5u32 {
                let tx = tx.clone();
                weft::spawn(async move {
                    for i in 0..200u32 {
                        tx.send((p, i)).await.unwrap();
                    }
                });
            }
            drop(tx);
            let mut next = [0u32; 5];
            let mut total = 0;
            while let Some((p, i)) = rx.recv().await {
                assert_eq!(next[p as usize], i);
                next[p as usize] += 1;
                total += 1;
            }
            assert_eq!(total, 1000);

            // broadcast: every subscriber sees every message.
            let (btx, brx) = weft_sync::broadcast::channel(1024);
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let mut rx = brx.resubscribe();
                    weft::spawn(async move {
                        let mut sum = 0u64;
                        while let Ok(v) = rx.recv().await {
                            sum += v;
                        }
                        sum
                    })
                })
                .collect();
            drop(brx);
            for v in 1..=100u64 {
                btx.send(v).unwrap();
            }
            drop(btx);
            for r in readers {
                assert_eq!(r.await.unwrap(), 5050);
            }

            // asyncio's Queue: workers take items and mark them done; join
            // returns when all are processed.
            let q = Arc::new(weft_sync::Queue::new(4));
            let processed = Arc::new(AtomicUsize::new(0));
            for _ in 0..3 {
                let (q, processed) = (q.clone(), processed.clone());
                weft::spawn(async move {
                    loop {
                        let item: u32 = q.get().await;
                        processed.fetch_add(item as usize, SeqCst);
                        q.task_done().unwrap();
                    }
                });
            }
            for i in 1..=50 {
                q.put(i).await;
            }
            q.join().await;
            assert_eq!(processed.load(SeqCst), 1275);

            // oneshot across tasks.
            let (otx, orx) = weft_sync::oneshot::channel();
            weft::spawn(async move { otx.send("done").unwrap() });
            assert_eq!(orx.await, Ok("done"));
        });
    }
}
