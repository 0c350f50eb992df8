//! One task handle, Rust's rules (issue 21): any output can be awaited from
//! `spawn` and `create_task`; racing, selecting or timing out over promise
//! clones and task handles loses no result; done callbacks on `spawn`
//! handles run in order, exactly once, under thread races.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;
use weft::future::{Either, Promise, create_task, race, race2};
use weft::net::{TcpListener, TcpStream};
use weft_tests::{each_flavor, runtime};

each_flavor! {
    fn io_results_are_awaited_from_create_task_and_spawn(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let accepting = weft::spawn(async move { listener.accept().await });
            // `io::Error` is neither `Clone` nor shareable as a result: the
            // handle gives the output by move.
            let connecting = create_task(async move { TcpStream::connect(addr).await });
            let client: TcpStream = connecting.await.unwrap().unwrap();
            let (server, peer) = accepting.await.unwrap().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            drop(server);

            // A failure comes through the same way.
            let closed = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let refused = weft::spawn(async move { TcpStream::connect(closed).await });
            let err = refused.await.unwrap().unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

            // Neither Clone nor Sync: a `Cell`.
            let cell = create_task(async { Cell::new(7u32) });
            assert_eq!(cell.await.unwrap().get(), 7);
        });
    }

    fn racing_promise_clones_ten_thousand_times_loses_no_result(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            for round in 0..10_000u32 {
                let a = Promise::<u32>::new();
                let b = Promise::<u32>::new();
                let (sa, sb) = (a.clone(), b.clone());
                // Settled from a task, in an order that varies by round.
                weft::spawn(async move {
                    if round % 2 == 0 {
                        sa.set_result(round).unwrap();
                        weft::task::yield_now().await;
                        sb.set_result(round + 1).unwrap();
                    } else {
                        sb.set_result(round + 1).unwrap();
                        sa.set_result(round).unwrap();
                    }
                });
                let (index, first) = race(vec![a.clone(), b.clone()]).await;
                let first = first.unwrap();
                assert_eq!(first, round + index as u32);
                // The loser was only dropped: its clone still gives its value.
                let other = if index == 0 { b.clone() } else { a.clone() };
                let second = match race2(other, weft::time::sleep(Duration::from_secs(10))).await {
                    Either::Left(v) => v.unwrap(),
                    Either::Right(()) => panic!("round {round}: the loser's promise never settled"),
                };
                assert_eq!(first + second, 2 * round + 1, "round {round}");
                assert!(!a.cancelled() && !b.cancelled());
            }
        });
    }

    fn racing_task_handles_ten_thousand_times_loses_no_result(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            for round in 0..10_000u64 {
                let mut x = weft::spawn(async move {
                    if round % 3 == 0 {
                        weft::task::yield_now().await;
                    }
                    round
                });
                let mut y = create_task(async move {
                    if round % 3 == 1 {
                        weft::task::yield_now().await;
                    }
                    round * 2
                });
                // Race the handles by reference; the loser is not cancelled
                // and is awaited afterwards.
                let (index, first) = race(vec![&mut x, &mut y]).await;
                let first = first.unwrap();
                let second = if index == 0 { y.await.unwrap() } else { x.await.unwrap() };
                assert_eq!(first + second, round * 3, "round {round}");

                // A timeout over a handle gives up without cancelling it.
                let mut z = weft::spawn(async move {
                    weft::task::yield_now().await;
                    round
                });
                let value = match weft::time::timeout(Duration::ZERO, &mut z).await {
                    Ok(output) => output.unwrap(), // finished within the poll
                    Err(_) => z.await.unwrap(),
                };
                assert_eq!(value, round, "round {round}: a timed-out await cancelled the task");
            }
        });
    }

    fn done_callbacks_on_spawn_handles_run_in_order_exactly_once(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let order = Arc::new(Mutex::new(Vec::new()));
            let gate = Promise::<()>::new();
            let task = weft::spawn({
                let gate = gate.clone();
                async move {
                    let _ = gate.await;
                    5u8
                }
            });
            for i in 0..10 {
                let order = order.clone();
                task.add_done_callback(move |done| order.lock().unwrap().push((i, *done.result().unwrap())));
            }
            let removed = {
                let order = order.clone();
                task.add_done_callback(move |_| order.lock().unwrap().push((99, 0)))
            };
            assert_eq!(task.remove_done_callback(removed), 1);
            gate.set_result(()).unwrap();
            let mut task = task;
            assert_eq!((&mut task).await.unwrap(), 5);
            let seen = order.lock().unwrap().clone();
            assert_eq!(seen, (0..10).map(|i| (i, 5)).collect::<Vec<_>>());
            // Added after the output was taken: runs at once, without it.
            let late = Arc::new(AtomicUsize::new(0));
            let l = late.clone();
            task.add_done_callback(move |done| {
                assert!(done.result().is_err());
                l.fetch_add(1, SeqCst);
            });
            assert_eq!(late.load(SeqCst), 1);
        });
    }
}

/// Callbacks added from other threads while the task finishes on a worker:
/// each runs exactly once, those from one thread in the order that thread
/// added them, and a removed one never runs.
#[test]
fn done_callbacks_under_thread_races() {
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    for round in 0..300 {
        let start = Arc::new(Barrier::new(3));
        let gate = Promise::<()>::new();
        let task = {
            let gate = gate.clone();
            rt.spawn(async move {
                let _ = gate.await;
                round
            })
        };
        let task = Arc::new(task);
        let runs: Arc<Vec<Mutex<Vec<usize>>>> = Arc::new((0..2).map(|_| Mutex::new(Vec::new())).collect());
        let removed_ran = Arc::new(AtomicUsize::new(0));
        let adders: Vec<_> = (0..2)
            .map(|t| {
                let (task, runs, start, removed_ran) = (task.clone(), runs.clone(), start.clone(), removed_ran.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..50 {
                        let runs = runs.clone();
                        task.add_done_callback(move |done| {
                            assert_eq!(*done.result().unwrap(), round);
                            runs[t].lock().unwrap().push(i);
                        });
                        if i % 10 == 0 {
                            let ran = removed_ran.clone();
                            let id = task.add_done_callback(move |_| {
                                ran.fetch_add(1, SeqCst);
                            });
                            // Removing may lose to the task finishing: then
                            // it ran (once), and removal says 0.
                            if task.remove_done_callback(id) == 0 {
                                removed_ran.fetch_sub(1, SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        start.wait();
        gate.set_result(()).unwrap();
        for adder in adders {
            adder.join().unwrap();
        }
        while !task.done() {
            std::thread::yield_now();
        }
        for (t, ran) in runs.iter().enumerate() {
            let ran = ran.lock().unwrap();
            assert_eq!(*ran, (0..50).collect::<Vec<_>>(), "round {round}, thread {t}");
        }
        assert_eq!(removed_ran.load(SeqCst), 0, "round {round}: a removed callback ran");
    }
}

/// The `*_on`/`*_in` functions take the handle a `weft` user has.
#[test]
fn weft_handles_are_accepted_where_an_executor_handle_is() {
    let rt = weft::Runtime::new().unwrap();
    let handle: weft::Handle = rt.handle();
    let promise = Promise::<u8>::new_in(&handle);
    let mut group = weft::future::TaskGroup::new();
    group.spawn_on(async { 1u8 }, &handle);
    let tracker = weft::future::TaskTracker::new();
    let tracked = tracker.spawn_on(async { 2u8 }, &handle);
    promise.set_result(3).unwrap();
    let sum = rt.block_on(async move {
        let one = group.join_next().await.unwrap().unwrap();
        one + tracked.await.unwrap() + promise.await.unwrap()
    });
    assert_eq!(sum, 6);
}
