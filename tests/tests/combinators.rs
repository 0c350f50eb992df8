//! `gather`, `wait`, `as_completed`, `wait_for`, `race`, task groups and
//! the graceful-shutdown pair: results, order, timeouts, and cancellation of
//! the losers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use weft::future::{
    CancellationToken, Promise, PromiseError, ReturnWhen, TaskGroup, TaskTracker, as_completed, as_completed_timeout,
    create_task, gather, race, race2, wait, wait_for,
};
use weft::time::sleep;
use weft_tests::{DropCounter, each_flavor, eventually, runtime};

/// A task that sleeps `ms` and returns `value`, counting its drop.
fn after(ms: u64, value: u32, drops: &Arc<AtomicUsize>) -> weft::future::Task<u32> {
    let guard = DropCounter::new(drops);
    create_task(async move {
        let _guard = guard;
        sleep(Duration::from_millis(ms)).await;
        value
    })
}

each_flavor! {
    fn gather_returns_results_in_input_order_not_completion_order(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let tasks = vec![after(30, 1, &drops), after(10, 2, &drops), after(20, 3, &drops)];
            assert_eq!(gather(tasks).await.unwrap(), vec![1, 2, 3]);
        });
    }

    fn gather_fails_fast_and_leaves_the_rest_running_as_asyncio_does(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let slow = after(1_000, 1, &drops);
            let slow_abort = slow.abort_handle();
            let failing = create_task(async {
                sleep(Duration::from_millis(5)).await;
                if true {
                    panic!("first error");
                }
                0u32
            });
            let started = Instant::now();
            let err = gather(vec![slow, failing]).await.unwrap_err();
            assert!(err.is_panic());
            // Failed fast: the slow task is still running, detached.
            assert!(!slow_abort.is_finished(), "gather waited for the slow task");
            assert_eq!(drops.load(SeqCst), 0);
            while !slow_abort.is_finished() {
                sleep(Duration::from_millis(5)).await;
            }
            assert!(started.elapsed() >= Duration::from_millis(1_000));
            eventually("the slow task to finish on its own", || drops.load(SeqCst) == 1).await;
        });
    }

    fn gather_with_return_exceptions_collects_every_outcome(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let ok = create_task(async { 1u8 });
            let bad = Promise::<u8>::new();
            bad.set_exception(std::io::Error::other("nope")).unwrap();
            let cancelled = Promise::<u8>::new();
            cancelled.cancel();
            let ok = {
                let promise = Promise::new();
                let resolver = promise.clone();
                ok.add_done_callback(move |task| {
                    resolver.set_result(*task.result().expect("the task returned")).unwrap();
                });
                promise
            };
            let outcomes = gather(vec![ok, bad, cancelled]).return_exceptions().await;
            assert_eq!(*outcomes[0].as_ref().unwrap(), 1);
            assert!(matches!(&outcomes[1], Err(PromiseError::Failed(e)) if e.to_string() == "nope"));
            assert!(matches!(outcomes[2], Err(PromiseError::Cancelled)));
        });
    }

    fn wait_first_completed_hands_back_the_pending_uncancelled(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let tasks = vec![after(5_000, 1, &drops), after(5, 2, &drops), after(5_000, 3, &drops)];
            let (done, pending) = wait(tasks, ReturnWhen::FirstCompleted, None).await;
            assert_eq!(done.len(), 1);
            assert_eq!(done[0].0, 1);
            assert_eq!(*done[0].1.as_ref().unwrap(), 2);
            assert_eq!(pending.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 2]);
            assert!(pending.iter().all(|(_, t)| !t.done()));
            for (_, task) in &pending {
                assert!(task.cancel());
            }
        });
    }

    fn wait_hands_back_pending_promises_and_tasks_registered_nowhere(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let promises: Vec<Promise<u8>> = (0..3).map(|_| Promise::new()).collect();
            promises[1].set_result(7).unwrap();
            let (done, pending) = wait(promises.clone(), ReturnWhen::FirstCompleted, None).await;
            assert_eq!(done.len(), 1);
            assert_eq!(pending.len(), 2);
            for (i, _) in &pending {
                assert_eq!(promises[*i].listener_count(), 0, "wait left its waker on promise {i}");
            }
            // Handed back "not cancelled": dropping them does not cancel.
            drop(pending);
            assert!(!promises[0].done() && !promises[2].done(), "the hand-back cancelled on drop");
            // They can still be awaited afterwards.
            let (done, pending) = wait(vec![promises[0].clone()], ReturnWhen::AllCompleted, Duration::from_millis(1)).await;
            assert!(done.is_empty());
            promises[0].set_result(1).unwrap();
            let (_, mut again) = pending.into_iter().next().unwrap();
            assert_eq!((&mut again).await.ok(), Some(1));

            // The same for tasks.
            let tasks = vec![after(5_000, 1, &drops), after(1, 2, &drops)];
            let (done, pending) = wait(tasks, ReturnWhen::FirstCompleted, None).await;
            assert_eq!(done.len(), 1);
            let (_, slow) = pending.into_iter().next().unwrap();
            let abort = slow.abort_handle();
            drop(slow); // detaches, as dropping a task does
            assert!(!abort.is_finished());
            abort.abort();
            eventually("the aborted task to be dropped", || drops.load(SeqCst) == 2).await;
        });
    }

    fn wait_first_exception_stops_at_the_first_failure(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let ok = Promise::<u8>::new();
            ok.set_result(1).unwrap();
            let bad = Promise::<u8>::new();
            let never = Promise::<u8>::new();
            let b = bad.clone();
            create_task(async move {
                sleep(Duration::from_millis(5)).await;
                b.set_exception(std::io::Error::other("bad")).unwrap();
            });
            let (done, pending) = wait(vec![ok, bad, never], ReturnWhen::FirstException, None).await;
            let mut done_idx: Vec<_> = done.iter().map(|d| d.0).collect();
            done_idx.sort();
            assert_eq!(done_idx, vec![0, 1]);
            assert_eq!(pending.len(), 1);
            assert_eq!(pending[0].0, 2);

            // With no failure, FirstException waits for all.
            let a = Promise::<u8>::new();
            let b = Promise::<u8>::new();
            a.set_result(1).unwrap();
            b.set_result(2).unwrap();
            let (done, pending) = wait(vec![a, b], ReturnWhen::FirstException, None).await;
            assert_eq!((done.len(), pending.len()), (2, 0));
        });
    }

    fn wait_all_completed_with_a_timeout_returns_what_finished(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let tasks = vec![after(1, 1, &drops), after(5_000, 2, &drops), after(2, 3, &drops)];
            let started = Instant::now();
            let (done, pending) = wait(tasks, ReturnWhen::AllCompleted, Duration::from_millis(50)).await;
            assert!(started.elapsed() >= Duration::from_millis(50));
            let mut done_idx: Vec<_> = done.iter().map(|d| d.0).collect();
            done_idx.sort();
            assert_eq!(done_idx, vec![0, 2]);
            assert_eq!(pending.len(), 1);
            assert!(!pending[0].1.cancelled(), "asyncio's wait does not cancel on timeout");
            pending[0].1.cancel();
        });
    }

    fn as_completed_yields_in_completion_order(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let tasks = vec![after(60, 1, &drops), after(10, 2, &drops), after(35, 3, &drops)];
            let mut stream = as_completed(tasks);
            let mut order = Vec::new();
            while let Some((index, value)) = stream.next().await {
                order.push((index, value.unwrap()));
            }
            assert_eq!(order, vec![(1, 2), (2, 3), (0, 1)]);
        });
    }

    fn as_completed_with_a_timeout_reports_it_and_leaves_the_rest_running(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let slow = after(10_000, 1, &drops);
            let slow_abort = slow.abort_handle();
            let mut stream = as_completed_timeout(vec![after(1, 2, &drops), slow], Duration::from_millis(30));
            assert_eq!(stream.next().await.unwrap().unwrap().0, 0);
            assert!(stream.next().await.unwrap().is_err());
            assert!(stream.next().await.is_none());
            drop(stream);
            assert!(!slow_abort.is_finished(), "asyncio's as_completed does not cancel on timeout");
            slow_abort.abort();
        });
    }

    fn wait_for_cancels_on_timeout_and_passes_results_through(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let quick = after(1, 7, &drops);
            assert_eq!(wait_for(quick, Duration::from_secs(5)).await.unwrap().unwrap(), 7);

            let slow = after(10_000, 1, &drops);
            let abort = slow.abort_handle();
            assert!(wait_for(slow, Duration::from_millis(10)).await.is_err());
            eventually("the timed-out task to be dropped", || drops.load(SeqCst) == 2).await;
            assert!(abort.is_finished());

            // `timeout` only stops waiting: the task runs on.
            let slow = after(10_000, 1, &drops);
            let abort = slow.abort_handle();
            assert!(weft::time::timeout(Duration::from_millis(10), slow).await.is_err());
            sleep(Duration::from_millis(5)).await;
            assert!(!abort.is_finished());
            assert_eq!(drops.load(SeqCst), 2);
            abort.abort();
        });
    }

    fn wait_for_a_running_blocking_job_times_out_without_waiting_for_it(flavor) {
        // A job on the blocking pool cannot be interrupted once it runs, so
        // `cancel` cannot take effect: `wait_for` must give up at its
        // timeout (as asyncio's does for `to_thread`), not wait out the job
        // and call its late result "finished in the same instant".
        let rt = runtime(flavor);
        rt.block_on(async {
            let (started_tx, started) = futures::channel::oneshot::channel();
            let (release, release_rx) = std::sync::mpsc::channel::<()>();
            let mut job = weft::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(Duration::from_secs(30));
                5u8
            });
            started.await.unwrap();
            assert!(!job.cancel(), "a running blocking job cannot be cancelled");
            let waited = weft::time::timeout(Duration::from_secs(10), wait_for(&mut job, Duration::from_millis(10))).await;
            assert!(waited.expect("wait_for waited for the blocking job, not its timeout").is_err());
            release.send(()).unwrap();
            assert_eq!(job.await.unwrap(), 5, "the job ran to its end");
        });
    }

    fn wait_for_returns_a_finished_task_s_output_even_when_the_budget_is_spent(flavor) {
        // The task finished before `wait_for` looked, but the awaiting task
        // has spent its cooperative budget, so polling the handle says
        // `Pending` and the deadline (zero) has passed: `wait_for` must
        // still hand back the outcome, as it promises, not `Elapsed` (which
        // would drop a handle passed by value, and the output with it).
        let rt = runtime(flavor);
        let got = rt.block_on(async {
            weft::spawn(async {
                let mut finished = create_task(async { 7u32 });
                while !finished.is_finished() {
                    weft::task::yield_now().await;
                }
                while weft::coop::has_budget_remaining() {
                    std::future::poll_fn(|cx| weft::coop::poll_proceed(cx).map(|spent| spent.made_progress())).await;
                }
                wait_for(&mut finished, Duration::ZERO).await
            })
            .await
            .unwrap()
        });
        assert_eq!(got.expect("a finished task's output, not Elapsed").unwrap(), 7);
    }

    fn race_returns_the_first_and_drops_or_cancels_the_losers(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            // Dropped losers: tasks detach and run on.
            let losers: Vec<_> = (0..3).map(|i| after(10_000, i, &drops)).collect();
            let aborts: Vec<_> = losers.iter().map(|t| t.abort_handle()).collect();
            let mut runners = losers;
            runners.insert(2, after(5, 99, &drops));
            let (index, value) = race(runners).await;
            assert_eq!((index, value.unwrap()), (2, 99));
            eventually("the winner to be dropped", || drops.load(SeqCst) == 1).await;
            assert!(aborts.iter().all(|a| !a.is_finished()), "a dropped loser was cancelled");
            aborts.iter().for_each(|a| a.abort());
            eventually("every task to be dropped", || drops.load(SeqCst) == 4).await;

            // Cancelled losers, when asked.
            let losers: Vec<_> = (0..3).map(|i| after(10_000, i, &drops)).collect();
            let mut runners = losers;
            runners.insert(0, after(5, 99, &drops));
            let (index, value) = race(runners).cancel_losers().await;
            assert_eq!((index, value.unwrap()), (0, 99));
            eventually("every task to be dropped", || drops.load(SeqCst) == 8).await;

            let a = Promise::<u8>::new();
            match race2(a.clone(), sleep(Duration::from_millis(5))).await {
                weft::future::Either::Right(()) => {}
                weft::future::Either::Left(_) => panic!("the pending promise cannot win"),
            }
            assert!(!a.done(), "a promise is cancelled only by an explicit act");
            let promises: Vec<Promise<u8>> = (0..3).map(|_| Promise::new()).collect();
            promises[1].set_result(1).unwrap();
            let (index, _) = race(promises.clone()).cancel_losers().await;
            assert_eq!(index, 1);
            assert!(promises[0].cancelled() && promises[2].cancelled());
        });
    }

    fn a_task_group_joins_in_completion_order_and_aborts_on_shutdown(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let mut group = TaskGroup::new();
            for (ms, v) in [(30u64, 1u32), (5, 2), (15, 3)] {
                group.spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    v
                });
            }
            let mut seen = Vec::new();
            while let Some(out) = group.join_next().await {
                seen.push(out.unwrap());
            }
            assert_eq!(seen, vec![2, 3, 1]);

            for _ in 0..10 {
                let guard = DropCounter::new(&drops);
                group.spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    0
                });
            }
            assert_eq!(group.len(), 10);
            group.shutdown().await;
            assert!(group.is_empty());
            assert_eq!(drops.load(SeqCst), 10);

            // Dropping a group aborts its members too.
            let mut group = TaskGroup::new();
            let guard = DropCounter::new(&drops);
            group.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
            drop(group);
            eventually("the dropped group's task to stop", || drops.load(SeqCst) == 11).await;
        });
    }

    fn a_graceful_shutdown_with_a_token_and_a_tracker(flavor) {
        let rt = runtime(flavor);
        let finished = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let token = CancellationToken::new();
            let tracker = TaskTracker::new();
            for i in 0..8u64 {
                let token = token.child_token();
                let finished = finished.clone();
                tracker.spawn(async move {
                    // A worker loop: do rounds of work until told to stop,
                    // then finish the round cleanly.
                    loop {
                        if let weft::future::Either::Left(()) =
                            race2(token.cancelled(), sleep(Duration::from_millis(1 + i))).await
                        {
                            break;
                        }
                    }
                    finished.fetch_add(1, SeqCst);
                });
            }
            assert_eq!(tracker.len(), 8);
            sleep(Duration::from_millis(10)).await;
            token.cancel();
            tracker.close();
            assert!(weft::time::timeout(Duration::from_secs(5), tracker.wait()).await.is_ok());
            assert!(tracker.is_empty());
        });
        assert_eq!(finished.load(SeqCst), 8);
    }
}
