//! `Queue::shutdown` as Python 3.13's: tasks and threads blocked in `get`,
//! `put` and `join` are woken by a shutdown from another task or thread,
//! gently (what is queued is still taken) or immediately (what is queued is
//! dropped), on both flavours.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use weft::sync::{Queue, QueueShutDown, TryGetError, TryPutError};
use weft::time::{sleep, timeout};
use weft_tests::{DropCounter, each_flavor, runtime};

/// Long enough to mean "woken", not "timed out", on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// Gives the tasks just spawned time to block in their wait, so that the
/// shutdown usually finds them waiting (one that is late fails at once
/// instead: the assertions hold either way).
async fn settle() {
    sleep(Duration::from_millis(20)).await;
}

each_flavor! {
    /// Getters blocked on an empty queue, in several tasks, all fail with
    /// `QueueShutDown` when another task shuts it down gently.
    fn a_gentle_shutdown_wakes_every_blocked_getter(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let q = Arc::new(Queue::<u32>::new(0));
            let getters: Vec<_> = (0..8)
                .map(|_| {
                    let q = q.clone();
                    weft::spawn(async move { q.get().await })
                })
                .collect();
            settle().await;
            let shutter = q.clone();
            weft::spawn(async move { shutter.shutdown(false) }).await.unwrap();
            for g in getters {
                let got = timeout(PATIENCE, g).await.expect("a getter was not woken").unwrap();
                assert_eq!(got, Err(QueueShutDown(())));
            }
        });
    }

    /// After a gentle shutdown, getters still drain what was queued, in
    /// order, and only then fail; putters fail at once, also those that
    /// were blocked on a full queue; `join` returns when the drained items
    /// are marked done.
    fn a_gentle_shutdown_lets_getters_drain_then_fails_them(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let q = Arc::new(Queue::new(3));
            for i in 0..3 {
                q.put(i).await.unwrap();
            }
            let putters: Vec<_> = (10..13)
                .map(|i| {
                    let q = q.clone();
                    weft::spawn(async move { q.put(i).await })
                })
                .collect();
            let joiner = {
                let q = q.clone();
                weft::spawn(async move { q.join().await })
            };
            settle().await;
            q.shutdown(false);
            for p in putters {
                let refused = timeout(PATIENCE, p).await.expect("a putter was not woken").unwrap();
                let QueueShutDown(item) = refused.unwrap_err();
                assert!((10..13).contains(&item), "the refused item comes back");
            }
            assert_eq!(q.put_nowait(99), Err(TryPutError::ShutDown(99)));
            let consumer = {
                let q = q.clone();
                weft::spawn(async move {
                    let mut got = Vec::new();
                    while let Ok(item) = q.get().await {
                        got.push(item);
                        q.task_done().unwrap();
                    }
                    got
                })
            };
            assert_eq!(timeout(PATIENCE, consumer).await.unwrap().unwrap(), [0, 1, 2]);
            timeout(PATIENCE, joiner).await.expect("join was not woken").unwrap();
            assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
        });
    }

    /// An immediate shutdown from a plain thread: the queued items are
    /// dropped (counted), blocked putters and getters fail, and `join`
    /// returns since nothing taken is left unfinished.
    fn an_immediate_shutdown_from_a_thread_drops_the_items_and_wakes_everyone(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let q = Arc::new(Queue::new(4));
            for _ in 0..4 {
                q.put(DropCounter::new(&drops)).await.unwrap();
            }
            let putters: Vec<_> = (0..3)
                .map(|_| {
                    let (q, extra) = (q.clone(), DropCounter::new(&drops));
                    weft::spawn(async move { q.put(extra).await.is_err() })
                })
                .collect();
            let joiners: Vec<_> = (0..2)
                .map(|_| {
                    let q = q.clone();
                    weft::spawn(async move { q.join().await })
                })
                .collect();
            settle().await;
            assert_eq!(drops.load(SeqCst), 0);
            let shutter = q.clone();
            std::thread::spawn(move || shutter.shutdown(true)).join().unwrap();
            for p in putters {
                assert!(timeout(PATIENCE, p).await.expect("a putter was not woken").unwrap());
            }
            for j in joiners {
                timeout(PATIENCE, j).await.expect("join was not woken").unwrap();
            }
            // The four queued, and the three refused (dropped with their
            // failed puts' results).
            assert_eq!(drops.load(SeqCst), 7);
            assert_eq!(q.qsize(), 0);
            assert!(q.get().await.is_err());
        });
    }

    /// Getters blocked in other tasks when an immediate shutdown comes from
    /// a thread: every one fails, none is left waiting.
    fn an_immediate_shutdown_wakes_blocked_getters(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let q = Arc::new(Queue::<u8>::new(0));
            let getters: Vec<_> = (0..8)
                .map(|_| {
                    let q = q.clone();
                    weft::spawn(async move { q.get().await })
                })
                .collect();
            settle().await;
            let shutter = q.clone();
            std::thread::spawn(move || shutter.shutdown(true)).join().unwrap();
            for g in getters {
                assert!(timeout(PATIENCE, g).await.expect("a getter was not woken").unwrap().is_err());
            }
        });
    }

    /// Items taken but not yet marked done still hold `join` after an
    /// immediate shutdown (Python lowers the count only by the items it
    /// drops).
    fn an_immediate_shutdown_keeps_join_waiting_for_taken_items(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let q = Arc::new(Queue::new(0));
            for i in 0..3 {
                q.put_nowait(i).unwrap();
            }
            let taken = q.get().await.unwrap();
            let joiner = {
                let q = q.clone();
                weft::spawn(async move { q.join().await })
            };
            q.shutdown(true);
            settle().await;
            assert!(!joiner.is_finished(), "join returned with a taken item unfinished");
            assert_eq!(taken, 0);
            q.task_done().unwrap();
            timeout(PATIENCE, joiner).await.expect("join was not woken").unwrap();
        });
    }

    /// Producers and consumers in flight while the queue shuts down gently:
    /// every item a producer was told it put is taken by some consumer,
    /// and every one refused came back to its producer: none is lost.
    fn a_gentle_shutdown_under_load_loses_no_item(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let q = Arc::new(Queue::new(8));
            let producers: Vec<_> = (0..4u64)
                .map(|p| {
                    let q = q.clone();
                    weft::spawn(async move {
                        let mut put = Vec::new();
                        for i in 0.. {
                            match q.put(p * 1_000_000 + i).await {
                                Ok(()) => put.push(p * 1_000_000 + i),
                                Err(QueueShutDown(_)) => break,
                            }
                            if i % 64 == 0 {
                                weft::task::yield_now().await;
                            }
                        }
                        put
                    })
                })
                .collect();
            let consumers: Vec<_> = (0..3)
                .map(|_| {
                    let q = q.clone();
                    weft::spawn(async move {
                        let mut got = Vec::new();
                        while let Ok(item) = q.get().await {
                            got.push(item);
                            q.task_done().unwrap();
                        }
                        got
                    })
                })
                .collect();
            sleep(Duration::from_millis(30)).await;
            q.shutdown(false);
            let mut put = Vec::new();
            for p in producers {
                put.extend(timeout(PATIENCE, p).await.expect("a producer hung").unwrap());
            }
            let mut got = Vec::new();
            for c in consumers {
                got.extend(timeout(PATIENCE, c).await.expect("a consumer hung").unwrap());
            }
            put.sort_unstable();
            got.sort_unstable();
            assert!(!put.is_empty());
            assert_eq!(put, got, "an item was lost or taken twice");
            timeout(PATIENCE, q.join()).await.expect("join hung");
        });
    }
}
