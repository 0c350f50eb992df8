//! Metrics: what the runtime and the reactor count, checked against what a
//! workload did.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use weft::dump::WaitOn;
use weft::source::Source;
use weft_tests::{each_flavor, runtime};

each_flavor! {
    fn spawned_tasks_count_every_accepted_spawn(flavor) {
        let rt = runtime(flavor);
        let before = rt.metrics().spawned_tasks;
        rt.block_on(async {
            for _ in 0..100 {
                weft::spawn(async {}).await.unwrap();
            }
        });
        assert_eq!(rt.metrics().spawned_tasks - before, 100);
        assert_eq!(rt.metrics().alive_tasks, 0);
    }

    fn a_tasks_done_callbacks_count_in_callbacks_run(flavor) {
        let rt = runtime(flavor);
        let before = rt.metrics().callbacks_run;
        let ran = Arc::new(AtomicUsize::new(0));
        let gate = weft::future::Promise::<()>::new();
        let g = gate.clone();
        let mut task = rt.spawn(async move { g.await.unwrap() });
        // Two added while the task waits (the completing thread runs them),
        // one once it has finished (the adder runs it, here).
        for _ in 0..2 {
            let ran = ran.clone();
            task.add_done_callback(move |_| {
                ran.fetch_add(1, SeqCst);
            });
        }
        gate.set_result(()).unwrap();
        rt.block_on(&mut task).unwrap();
        let r = ran.clone();
        task.add_done_callback(move |_| {
            r.fetch_add(1, SeqCst);
        });
        assert_eq!(ran.load(SeqCst), 3);
        assert_eq!(rt.metrics().callbacks_run - before, 3);
    }

    fn the_poll_time_histogram_samples_one_run_in_1024(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    weft::spawn(async {
                        for _ in 0..3000 {
                            weft::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let m = rt.metrics();
        for w in &m.workers {
            let h = &w.poll_time_histogram;
            assert_eq!(h.counts.len(), weft::PollTimeHistogram::BUCKETS);
            // Runs numbered 1024, 2048, ... are the sampled ones.
            assert_eq!(h.samples(), w.polls / 1024, "{w:?}");
        }
        let mut all = weft::PollTimeHistogram::default();
        for w in &m.workers {
            all.merge(&w.poll_time_histogram);
        }
        assert!(all.samples() >= 1, "{m:?}");
        assert!(all.quantile(0.5).is_some());
    }

    fn the_reactor_counts_turns_events_timers_and_completions(flavor) {
        let rt = runtime(flavor);
        let notifier = rt.reactor().notifier().clone();
        rt.block_on(async {
            for _ in 0..10 {
                weft::time::sleep(Duration::from_millis(1)).await;
            }
            let handle = weft::Handle::current();
            // Each wait below begins before what ends it happens (a dump
            // shows the task parked on it), so the reactor must see it.
            let parked_on = |task: weft::task::Id, wait: fn(&WaitOn) -> bool| {
                let handle = handle.clone();
                move || {
                    let dump = handle.dump();
                    dump.tasks.iter().any(|t| t.id == task && t.wait.as_ref().is_some_and(wait))
                }
            };
            let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let accept = weft::spawn(async move { listener.accept().await.unwrap() });
            weft_tests::eventually("the accept to wait", parked_on(accept.id(), |w| matches!(w, WaitOn::Io { .. }))).await;
            let client = weft::net::TcpStream::connect(addr).await.unwrap();
            let _server = accept.await.unwrap();
            let (done, result) = notifier.completion::<u8>();
            let waiting = weft::spawn(result);
            weft_tests::eventually("the completion to be awaited", parked_on(waiting.id(), |w| *w == WaitOn::Completion)).await;
            std::thread::spawn(move || done.complete(7));
            assert_eq!(waiting.await.unwrap().unwrap(), 7);
            weft_tests::eventually("the ten timers are counted", || handle.reactor_metrics().timers_fired >= 10).await;
            drop(client);
        });
        let r = rt.reactor_metrics();
        assert!(r.turns > 0);
        assert!(r.events >= 1, "the accept's readiness: {r:?}");
        assert!(r.completions >= 1, "{r:?}");
        assert_eq!(r.events_per_turn.iter().sum::<u64>(), r.turns, "every turn lands in one bucket");
        assert_eq!(r.events_per_turn.len(), weft::EVENTS_PER_TURN_BUCKETS);
    }

    fn each_source_reports_its_name_pending_polls_and_completions(flavor) {
        struct Counter {
            left: AtomicUsize,
        }
        impl Source for Counter {
            fn poll(&self) -> usize {
                // One operation completes per poll.
                self.left.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).map_or(0, |_| 1)
            }
            fn has_pending(&self) -> bool {
                self.left.load(SeqCst) > 0
            }
            fn pending(&self) -> usize {
                self.left.load(SeqCst)
            }
            fn name(&self) -> &'static str {
                "counter"
            }
        }
        let rt = runtime(flavor);
        let source = Arc::new(Counter { left: AtomicUsize::new(5) });
        let registration = rt.reactor().register_source(source.clone());
        let first = rt.reactor_metrics();
        let row = first.sources.iter().find(|s| s.name == "counter").expect("the source is listed");
        assert!(row.pending <= 5);
        registration.notify();
        rt.block_on(async {
            weft_tests::eventually("the source drains", || !source.has_pending()).await;
        });
        let r = rt.reactor_metrics();
        let row = r.sources.iter().find(|s| s.name == "counter").unwrap();
        assert_eq!(row.completed, 5);
        assert_eq!(row.pending, 0);
        assert!(row.polls >= 5);
        drop(registration);
        assert!(rt.reactor_metrics().sources.iter().all(|s| s.name != "counter"));
    }
}

/// On a current-thread runtime the `block_on` future's polls are runs of
/// the thread too (its `polls` count them): one that polls thousands of
/// times with no task still has every 1,024th run timed.
#[test]
fn a_current_thread_block_on_future_polled_often_is_sampled_too() {
    let rt = runtime(weft::Flavor::CurrentThread);
    rt.block_on(async {
        for _ in 0..3000 {
            weft::task::yield_now().await;
        }
    });
    let m = rt.metrics();
    let w = &m.workers[0];
    assert!(w.polls > 3000, "{w:?}");
    assert_eq!(w.poll_time_histogram.samples(), w.polls / 1024, "{w:?}");
}

/// Stress cases (a module of their own: `each_flavor!` makes modules).
mod stress {
    use super::*;

    each_flavor! {
        fn a_spawn_refused_after_shutdown_counts_neither_spawned_nor_alive(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        rt.block_on(async { weft::spawn(async {}).await.unwrap() });
        drop(rt);
        let before = handle.metrics();
        let refused = handle.spawn(async { 1 });
        let after = handle.metrics();
        assert_eq!(after.spawned_tasks, before.spawned_tasks);
        assert_eq!(after.alive_tasks, 0);
        drop(refused);
        assert_eq!(handle.metrics().alive_tasks, 0);
    }

    fn metrics_read_during_a_spawn_storm_only_grow_and_settle_exactly(flavor) {
            let rt = runtime(flavor);
            let handle = rt.handle();
            let before = rt.metrics().spawned_tasks;
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let reader = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut last = handle.metrics();
                    while !stop.load(SeqCst) {
                        let now = handle.metrics();
                        assert!(now.spawned_tasks >= last.spawned_tasks);
                        assert!(now.callbacks_run >= last.callbacks_run);
                        assert_eq!(now.workers.len(), last.workers.len());
                        for (a, b) in last.workers.iter().zip(&now.workers) {
                            assert!(b.polls >= a.polls, "a worker's polls went down");
                            assert!(b.steals >= a.steals);
                            assert!(b.parks >= a.parks);
                            assert!(b.poll_time_histogram.samples() >= a.poll_time_histogram.samples());
                        }
                        assert!(now.alive_tasks as u64 <= now.spawned_tasks);
                        last = now;
                    }
                })
            };
            const N: u64 = 5000;
            rt.block_on(async {
                let mut joins = Vec::new();
                for i in 0..N {
                    let join = weft::spawn(async move {
                        weft::task::yield_now().await;
                        if i % 13 == 0 {
                            panic!("weft test: a task panics on purpose");
                        }
                    });
                    if i % 2 == 0 {
                        joins.push(join);
                    } else if i % 5 == 0 {
                        join.abort();
                    }
                }
                for join in joins {
                    let _ = join.await;
                }
            });
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while rt.metrics().alive_tasks != 0 {
                assert!(std::time::Instant::now() < deadline, "{:?}", rt.metrics().alive_tasks);
                std::thread::sleep(Duration::from_millis(2));
            }
            stop.store(true, SeqCst);
            reader.join().unwrap();
            assert_eq!(rt.metrics().spawned_tasks - before, N);
        }
    }
}

/// A blocking call in async code shows in the worker's `longest_poll_us`,
/// which the sampled histogram would miss (one run in 1,024): the idle
/// worker's watcher sees the poll in progress, and the poll's end records
/// at least the time since then.
#[test]
fn a_blocking_poll_shows_in_the_workers_longest_poll() {
    let rt = runtime(weft::Flavor::MultiThread);
    let before: u64 = rt.metrics().workers.iter().map(|w| w.longest_poll_us).max().unwrap();
    assert!(before < 300_000, "{before}");
    rt.block_on(async {
        weft::spawn(async { std::thread::sleep(Duration::from_millis(400)) })
            .await
            .unwrap();
    });
    let longest: u64 = rt.metrics().workers.iter().map(|w| w.longest_poll_us).max().unwrap();
    assert!(
        longest >= 300_000,
        "longest poll {longest} µs for a 400 ms blocking poll"
    );
}
