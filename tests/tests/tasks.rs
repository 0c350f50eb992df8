//! Spawning, joining and waking, on both flavours.

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use weft_tests::{each_flavor, runtime};

each_flavor! {
    fn hundred_thousand_tasks_spawned_and_joined(flavor) {
        let rt = runtime(flavor);
        let sum = rt.block_on(async {
            let handles: Vec<_> = (0..100_000u64).map(|i| weft::spawn(async move { i })).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, (0..100_000u64).sum::<u64>());
        assert_eq!(rt.metrics().alive_tasks, 0);
    }

    fn hundred_thousand_tasks_spawned_from_tasks(flavor) {
        let rt = runtime(flavor);
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        rt.block_on(async move {
            let spawner = weft::spawn(async move {
                let handles: Vec<_> = (0..100_000)
                    .map(|_| {
                        let d = d.clone();
                        weft::spawn(async move {
                            d.fetch_add(1, SeqCst);
                        })
                    })
                    .collect();
                for h in handles {
                    h.await.unwrap();
                }
            });
            spawner.await.unwrap();
        });
        assert_eq!(done.load(SeqCst), 100_000);
    }

    fn two_tasks_ping_pong(flavor) {
        let rt = runtime(flavor);
        const ROUNDS: u32 = 10_000;
        let total = rt.block_on(async {
            let (mut to_b, mut b_rx) = mpsc::channel::<u32>(1);
            let (mut to_a, mut a_rx) = mpsc::channel::<u32>(1);
            let b = weft::spawn(async move {
                while let Some(n) = b_rx.next().await {
                    if to_a.send(n + 1).await.is_err() {
                        break;
                    }
                }
            });
            let a = weft::spawn(async move {
                let mut last = 0;
                to_b.send(0).await.unwrap();
                while let Some(n) = a_rx.next().await {
                    last = n;
                    // a sends the even numbers, b answers with the odd ones.
                    if n + 1 >= 2 * ROUNDS {
                        break;
                    }
                    to_b.send(n + 1).await.unwrap();
                }
                last
            });
            let last = a.await.unwrap();
            b.await.unwrap();
            last
        });
        assert_eq!(total, 2 * ROUNDS - 1, "{ROUNDS} round trips");
    }

    fn tasks_woken_from_foreign_threads(flavor) {
        let rt = runtime(flavor);
        let mut senders = Vec::new();
        let handles: Vec<_> = (0..200u64)
            .map(|i| {
                let (tx, rx) = oneshot::channel::<u64>();
                senders.push(tx);
                rt.spawn(async move { rx.await.unwrap() + i })
            })
            .collect();
        // Half the wakes come while the runtime may be parked, half in a burst.
        let thread = std::thread::spawn(move || {
            for (i, tx) in senders.into_iter().enumerate() {
                if i % 2 == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                }
                tx.send(1).unwrap();
            }
        });
        let sum = rt.block_on(async move {
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        thread.join().unwrap();
        assert_eq!(sum, (0..200u64).map(|i| i + 1).sum::<u64>());
    }

    fn a_dropped_join_handle_detaches_the_task(flavor) {
        let rt = runtime(flavor);
        let (tx, rx) = oneshot::channel();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        rt.block_on(async move {
            drop(weft::spawn(async move {
                r.store(true, SeqCst);
                tx.send(()).unwrap();
            }));
            rx.await.unwrap();
        });
        assert!(ran.load(SeqCst));
    }

    fn is_finished_and_ids(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (tx, rx) = oneshot::channel::<()>();
            let h = weft::spawn(async move { rx.await.unwrap(); weft::task::id() });
            let id = h.id();
            assert!(!h.is_finished());
            tx.send(()).unwrap();
            assert_eq!(h.await.unwrap(), id, "task::id() inside the task is its handle's id");
            let other = weft::spawn(async {});
            assert_ne!(other.id(), id);
        });
        assert!(weft::task::try_id().is_none());
    }

    fn yielding_tasks_share_the_runtime(flavor) {
        let rt = runtime(flavor);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        rt.block_on(async {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let order = order.clone();
                    weft::spawn(async move {
                        for step in 0..100 {
                            order.lock().unwrap().push((t, step));
                            weft::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 400);
        if flavor == weft::Flavor::CurrentThread {
            // One thread, FIFO: yielding interleaves the tasks step by step.
            let first_rounds: Vec<_> = order.iter().take(8).map(|&(t, _)| t).collect();
            assert_eq!(first_rounds, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        }
    }

    fn a_busy_chain_of_wakes_does_not_starve_other_tasks(flavor) {
        // Two tasks wake each other forever (the LIFO slot's favourite
        // pattern); a third task must still get to run. One worker, so
        // nothing else could run it.
        let rt = weft_tests::builder(flavor).worker_threads(1).build().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        rt.block_on(async {
            let (mut a_tx, mut a_rx) = mpsc::channel::<()>(1);
            let (mut b_tx, mut b_rx) = mpsc::channel::<()>(1);
            let s = stop.clone();
            let a = weft::spawn(async move {
                while !s.load(SeqCst) {
                    b_tx.send(()).await.unwrap();
                    a_rx.next().await.unwrap();
                }
                drop(b_tx);
            });
            let b = weft::spawn(async move {
                while b_rx.next().await.is_some() {
                    if a_tx.send(()).await.is_err() {
                        break;
                    }
                }
            });
            // Give the pair time to get going, then ask a third task to stop them.
            weft::spawn_blocking(|| std::thread::sleep(Duration::from_millis(20))).await.unwrap();
            let s = stop.clone();
            weft::spawn(async move { s.store(true, SeqCst) }).await.unwrap();
            a.await.unwrap();
            b.await.unwrap();
        });
    }

    fn handle_spawns_from_a_plain_thread(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let from_thread = std::thread::spawn(move || {
            let h = handle.spawn(async { 5 });
            handle.block_on(h).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(from_thread, 5);
    }
}

#[test]
fn idle_workers_steal_from_a_blocked_one() {
    // A task queues nine tasks on its own worker, then blocks that worker
    // until all nine have run: only other workers, stealing, can run them.
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let ran_on = rt.block_on(async {
        weft::spawn(async {
            let me = std::thread::current().id();
            let (tx, rx) = std::sync::mpsc::channel();
            for _ in 0..9 {
                let tx = tx.clone();
                drop(weft::spawn(async move {
                    tx.send(std::thread::current().id()).unwrap();
                }));
            }
            // The ninth sits in this worker's LIFO slot, which is not
            // stealable: it needs this worker back. Wait for the other eight.
            let mut others = Vec::new();
            for _ in 0..8 {
                others.push(
                    rx.recv_timeout(Duration::from_secs(20))
                        .expect("queued tasks were stolen"),
                );
            }
            (me, others)
        })
        .await
        .unwrap()
    });
    let (blocked, others) = ran_on;
    assert!(others.iter().all(|t| *t != blocked));
    let steals: u64 = rt.metrics().workers.iter().map(|w| w.steals).sum();
    assert!(steals >= 1, "metrics count the steals");
}

#[test]
fn work_spreads_over_the_workers() {
    let rt = weft::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("spread")
        .build()
        .unwrap();
    let names = rt.block_on(async {
        let handles: Vec<_> = (0..64)
            .map(|_| {
                weft::spawn(async {
                    // Enough work per task that one worker cannot do it all
                    // before the other wakes.
                    std::thread::sleep(Duration::from_millis(2));
                    std::thread::current().name().unwrap().to_owned()
                })
            })
            .collect();
        let mut names = Vec::new();
        for h in handles {
            names.push(h.await.unwrap());
        }
        names
    });
    assert!(names.iter().all(|n| n.starts_with("spread-worker-")));
    assert!(names.iter().any(|n| n == "spread-worker-0"));
    assert!(names.iter().any(|n| n == "spread-worker-1"));
}

#[test]
fn a_full_local_queue_overflows_into_the_injection_queue_and_loses_nothing() {
    // One worker, so nothing is stolen: 10 000 children spawned without a
    // yield fill the local queue past its bound (4096), and half of it moves
    // to the injection queue each time.
    let rt = weft::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = ran.clone();
    rt.block_on(async move {
        weft::spawn(async move {
            let handles: Vec<_> = (0..10_000)
                .map(|_| {
                    let ran = ran2.clone();
                    weft::spawn(async move {
                        ran.fetch_add(1, SeqCst);
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        })
        .await
        .unwrap();
    });
    assert_eq!(ran.load(SeqCst), 10_000);
    let metrics = rt.metrics();
    assert!(metrics.workers[0].overflows >= 1, "{metrics:?}");
    // A task leaves the owned list before its JoinHandle sees the output.
    assert_eq!(metrics.alive_tasks, 0);
}

#[test]
fn outside_spawns_are_not_starved_by_tasks_that_yield_in_a_loop() {
    // Every worker runs a task that yields, then spins 50 µs, in a loop, so
    // its local queue never empties. 10,000 tasks spawned from outside must
    // still run soon: a worker that took one outside task per
    // `global_queue_interval` (61) ticks would need about 15 s.
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let busy = Arc::new(AtomicBool::new(true));
    let polls: Vec<Arc<AtomicUsize>> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let spinners: Vec<_> = polls
        .iter()
        .map(|polls| {
            let (busy, polls) = (busy.clone(), polls.clone());
            rt.spawn(async move {
                while busy.load(SeqCst) {
                    polls.fetch_add(1, SeqCst);
                    weft::task::yield_now().await;
                    let start = std::time::Instant::now();
                    while start.elapsed() < Duration::from_micros(50) {
                        std::hint::spin_loop();
                    }
                }
            })
        })
        .collect();
    // Both spinners are running (on both workers: an idle worker steals).
    let start = std::time::Instant::now();
    while polls.iter().any(|p| p.load(SeqCst) < 100) {
        assert!(start.elapsed() < Duration::from_secs(20), "the spinners never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..10_000).map(|_| rt.spawn(async {})).collect();
    rt.block_on(async {
        for handle in handles {
            handle.await.unwrap();
        }
    });
    let took = start.elapsed();
    busy.store(false, SeqCst);
    rt.block_on(async {
        for spinner in spinners {
            spinner.await.unwrap();
        }
    });
    assert!(
        took < Duration::from_secs(5),
        "10,000 outside spawns took {took:?} behind yielding tasks"
    );
}

#[test]
fn woken_tasks_keep_their_place_ahead_of_a_flood_of_outside_spawns() {
    // One worker runs 200 pairs of tasks that wake each other (a long
    // local queue of started, woken work) while 10,000 tasks spawned from
    // outside wait in the injection queue. At each `global_queue_interval`
    // (61) ticks the worker lets in one outside task, so a few hundred run
    // meanwhile (189 here). A batch of 32 at each tick would give half the
    // polls to new tasks, and all 10,000 ran before the pairs were done.
    const PAIRS: usize = 200;
    const ROUNDS: usize = 100;
    const OUTSIDE: usize = 10_000;
    let rt = weft::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let outside_ran = Arc::new(AtomicUsize::new(0));
    let seen_at_end = Arc::new(AtomicUsize::new(usize::MAX));
    let pairs_done = Arc::new(AtomicUsize::new(0));
    // A task holds the worker until the outside spawns are queued, then
    // starts the pairs (into this worker's local queue).
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (outside_in, seen, done) = (outside_ran.clone(), seen_at_end.clone(), pairs_done.clone());
    let starter = rt.spawn(async move {
        go_rx.recv().unwrap();
        let mut pairs = Vec::new();
        for _ in 0..PAIRS {
            let (mut ping_tx, mut ping_rx) = mpsc::channel::<()>(1);
            let (mut pong_tx, mut pong_rx) = mpsc::channel::<()>(1);
            let (outside_ran, seen, done) = (outside_in.clone(), seen.clone(), done.clone());
            pairs.push(weft::spawn(async move {
                for _ in 0..ROUNDS {
                    ping_tx.send(()).await.unwrap();
                    pong_rx.next().await.unwrap();
                }
                if done.fetch_add(1, SeqCst) + 1 == PAIRS {
                    seen.store(outside_ran.load(SeqCst), SeqCst);
                }
            }));
            pairs.push(weft::spawn(async move {
                for _ in 0..ROUNDS {
                    ping_rx.next().await.unwrap();
                    pong_tx.send(()).await.unwrap();
                }
            }));
        }
        pairs
    });
    std::thread::sleep(Duration::from_millis(20));
    let outside = spawn_counted(&rt, OUTSIDE, &outside_ran);
    go_tx.send(()).unwrap();
    rt.block_on(async {
        for pair in starter.await.unwrap() {
            pair.await.unwrap();
        }
        for handle in outside {
            handle.await.unwrap();
        }
    });
    let seen = seen_at_end.load(SeqCst);
    assert!(
        seen < OUTSIDE / 4,
        "{seen} of {OUTSIDE} outside tasks ran before {PAIRS} pairs of woken tasks finished"
    );
}

#[test]
fn outside_spawns_all_run_while_woken_tasks_keep_the_local_queue_long_forever() {
    // One worker whose local queue never drops below 64: 100 pairs of
    // tasks wake each other (no yields, so the worker takes one outside
    // task per `global_queue_interval` ticks, not a batch) until every
    // outside task has run. The outside tasks must all run while the
    // pairs go on: one per interval is slow, never none.
    const PAIRS: usize = 100;
    const OUTSIDE: usize = 2_000;
    let rt = weft::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let outside_ran = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (ran, r) = (outside_ran.clone(), rounds.clone());
    let starter = rt.spawn(async move {
        go_rx.recv().unwrap();
        let mut pairs = Vec::new();
        for _ in 0..PAIRS {
            let (mut ping_tx, mut ping_rx) = mpsc::channel::<()>(1);
            let (mut pong_tx, mut pong_rx) = mpsc::channel::<()>(1);
            let (ran, rounds) = (ran.clone(), r.clone());
            pairs.push(weft::spawn(async move {
                while ran.load(SeqCst) < OUTSIDE {
                    ping_tx.send(()).await.unwrap();
                    pong_rx.next().await.unwrap();
                    rounds.fetch_add(1, SeqCst);
                }
            }));
            pairs.push(weft::spawn(async move {
                while ping_rx.next().await.is_some() {
                    if pong_tx.send(()).await.is_err() {
                        break;
                    }
                }
            }));
        }
        pairs
    });
    // Queued while the starter holds the worker: the pairs start with the
    // flood already waiting.
    std::thread::sleep(Duration::from_millis(20));
    let outside = spawn_counted(&rt, OUTSIDE, &outside_ran);
    let start = std::time::Instant::now();
    go_tx.send(()).unwrap();
    while outside_ran.load(SeqCst) < OUTSIDE {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of {OUTSIDE} outside tasks ran in 60 s behind busy woken tasks ({} rounds)",
            outside_ran.load(SeqCst),
            rounds.load(SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    rt.block_on(async {
        for pair in starter.await.unwrap() {
            pair.await.unwrap();
        }
        for handle in outside {
            handle.await.unwrap();
        }
    });
    assert!(
        rounds.load(SeqCst) > OUTSIDE,
        "the pairs were busy all along: {} rounds",
        rounds.load(SeqCst)
    );
}

/// Spawns `n` tasks from outside the runtime, each counting itself in
/// `ran` when it runs.
fn spawn_counted(rt: &weft::Runtime, n: usize, ran: &Arc<AtomicUsize>) -> Vec<weft::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let ran = ran.clone();
            rt.spawn(async move {
                ran.fetch_add(1, SeqCst);
            })
        })
        .collect()
}

/// The current-thread runtime looks at its injection queue with two loads
/// before it parks (no fence): a task spawned from another thread while
/// the runtime is idle, or on its way to park, must still run, with no
/// other wakeup (no timer, no I/O) to rescue a missed one.
#[test]
fn an_idle_current_thread_runtime_runs_every_remote_spawn() {
    let rt = weft::Builder::new_current_thread().build().unwrap();
    let handle = rt.handle();
    let (done, finished) = oneshot::channel();
    let spawner = std::thread::spawn(move || {
        for i in 0..20_000u32 {
            let (ran, seen) = std::sync::mpsc::sync_channel(1);
            drop(handle.spawn(async move { ran.send(i).unwrap() }));
            assert_eq!(
                seen.recv_timeout(Duration::from_secs(10)),
                Ok(i),
                "remote spawn {i} never ran: the runtime missed its wakeup"
            );
        }
        done.send(()).unwrap();
    });
    rt.block_on(finished).unwrap();
    spawner.join().unwrap();
}
