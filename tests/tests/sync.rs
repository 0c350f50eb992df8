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
                        let item: u32 = q.get().await.unwrap();
                        processed.fetch_add(item as usize, SeqCst);
                        q.task_done().unwrap();
                    }
                });
            }
            for i in 1..=50 {
                q.put(i).await.unwrap();
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

/// More threads than parties at a `Barrier`, round after round: every
/// wait that finishes belongs to a full round, so no more waits have
/// finished than `parties` times the rounds that all arrivals so far could
/// fill. A smoke test on real threads: the race it would show (a leader
/// that ended its round after unlocking let an arrival for the next round
/// through with the previous one) has a window too narrow to hit reliably
/// here, so the loom model `barrier_generation_hand_off` in
/// `sync/src/loom_tests.rs` is the check that fails when that rule breaks.
#[test]
fn a_barrier_with_more_threads_than_parties_releases_only_full_rounds() {
    const PARTIES: usize = 2;
    const THREADS: usize = 3;
    const WAITS: usize = 30_000;
    let barrier = Arc::new(weft_sync::Barrier::new(PARTIES));
    let arrived = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let exited = Arc::new(AtomicUsize::new(0));
    let early = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (barrier, arrived, finished, exited, early) = (
                barrier.clone(),
                arrived.clone(),
                finished.clone(),
                exited.clone(),
                early.clone(),
            );
            std::thread::spawn(move || {
                while finished.load(SeqCst) < WAITS {
                    arrived.fetch_add(1, SeqCst);
                    futures::executor::block_on(barrier.wait());
                    let done = finished.fetch_add(1, SeqCst) + 1;
                    if done > arrived.load(SeqCst) / PARTIES * PARTIES {
                        early.fetch_add(1, SeqCst);
                    }
                }
                exited.fetch_add(1, SeqCst);
            })
        })
        .collect();
    // Threads stop once enough waits finished; the last arrival may then
    // have no partner left. Arrivals from here release it (a dropped wait
    // still counts as arrived, so each is one arrival).
    while exited.load(SeqCst) < THREADS {
        if finished.load(SeqCst) >= WAITS {
            arrived.fetch_add(1, SeqCst);
            let _ = futures::FutureExt::now_or_never(barrier.wait());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for t in threads {
        t.join().unwrap();
    }
    let early = early.load(SeqCst);
    assert_eq!(early, 0, "{early} waits finished before their round was full");
    assert!(finished.load(SeqCst) >= WAITS);
}

/// Ready receives spend the task's cooperative budget (`weft_sync::coop`),
/// as in Tokio: a task looping on a channel that always has a message
/// gives way every budget's worth, so a `timeout` around the loop fires at
/// its deadline, not when the messages run out (a trial measured 2.4 s for
/// a 5 ms timeout around 2M messages).
#[test]
fn a_timeout_fires_around_a_loop_on_an_always_ready_primitive() {
    for flavor in [weft::Flavor::CurrentThread, weft::Flavor::MultiThread] {
        let rt = runtime(flavor);
        rt.block_on(async {
            const ITEMS: u32 = 2_000_000;
            let timed = |what: &'static str, elapsed: Duration, done: u32| {
                assert!(
                    done < ITEMS && elapsed < Duration::from_millis(500),
                    "{what}: the 5 ms timeout fired after {elapsed:?} and {done} items"
                );
            };
            let start = std::time::Instant::now();
            let (tx, mut rx) = weft_sync::mpsc::unbounded_channel::<u32>();
            for i in 0..ITEMS {
                tx.send(i).unwrap();
            }
            let mut done = 0;
            let r = weft::time::timeout(Duration::from_millis(5), async {
                while rx.recv().await.is_some() {
                    done += 1;
                }
            })
            .await;
            assert!(r.is_err());
            timed("mpsc::Receiver::recv", start.elapsed(), done);

            let start = std::time::Instant::now();
            let (btx, mut brx) = weft_sync::broadcast::channel::<u32>(16);
            let mut done = 0;
            let r = weft::time::timeout(Duration::from_millis(5), async {
                while done < ITEMS {
                    btx.send(done).unwrap();
                    brx.recv().await.unwrap();
                    done += 1;
                }
            })
            .await;
            assert!(r.is_err());
            timed("broadcast::Receiver::recv", start.elapsed(), done);
        });
    }
}
