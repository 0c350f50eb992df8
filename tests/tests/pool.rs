//! The CPU pool: order, real chunking, panic isolation, async use, close,
//! join and terminate; blocking calls on a runtime thread return
//! `PoolError::WouldBlockRuntime` (rule 3 of the pool's module docs).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use weft::future::PromiseError;
use weft::pool::{Pool, PoolError};

/// Silences the default panic hook's output for the expected panics.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|s| s.starts_with("expected"));
            if !expected {
                default(info);
            }
        }));
    });
}

#[test]
fn map_preserves_order() {
    let pool = Pool::new(3).unwrap();
    let out = pool.map(|x: u64| x * x, 0..10_000u64, None).unwrap();
    assert_eq!(out, (0..10_000u64).map(|x| x * x).collect::<Vec<_>>());
    // Every chunk size, including ones that do not divide the input.
    for chunk in [1, 3, 7, 64, 10_000, 20_000] {
        let out = pool.map(|x: u32| x + 1, 0..1000u32, Some(chunk)).unwrap();
        assert_eq!(out, (1..=1000u32).collect::<Vec<_>>(), "chunksize {chunk}");
    }
    assert!(pool.map(|x: u8| x, Vec::new(), None).unwrap().is_empty());
}

#[test]
fn chunks_are_real_each_job_runs_chunksize_consecutive_items_on_one_thread() {
    let pool = Pool::new(4).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    pool.map(
        move |x: usize| s.lock().unwrap().push((x, thread::current().id())),
        0..1000usize,
        Some(100),
    )
    .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1000);
    for chunk in 0..10 {
        let in_chunk: Vec<_> = seen.iter().filter(|(x, _)| x / 100 == chunk).collect();
        let threads: HashSet<_> = in_chunk.iter().map(|(_, t)| *t).collect();
        assert_eq!(threads.len(), 1, "chunk {chunk} ran on one thread");
        // ...in order.
        let order: Vec<_> = in_chunk.iter().map(|(x, _)| *x).collect();
        assert_eq!(order, (chunk * 100..chunk * 100 + 100).collect::<Vec<_>>());
    }
}

#[test]
fn a_panicking_item_is_its_own_error_and_the_pool_survives() {
    quiet_panics();
    let pool = Pool::new(2).unwrap();
    let err = pool
        .map(
            |x: u32| if x == 37 || x == 80 { panic!("expected {x}") } else { x },
            0..100u32,
            Some(10),
        )
        .unwrap_err();
    assert_eq!(
        err,
        PoolError::Panicked {
            item: 37,
            message: "expected 37".into()
        }
    );

    // imap: only the failing item fails.
    let results: Vec<_> = pool
        .imap(
            |x: u32| if x == 3 { panic!("expected three") } else { x * 2 },
            0..6u32,
            Some(4),
        )
        .unwrap()
        .collect();
    assert_eq!(results.len(), 6);
    for (i, r) in results.iter().enumerate() {
        if i == 3 {
            assert!(matches!(r, Err(PoolError::Panicked { item: 3, .. })));
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as u32 * 2);
        }
    }
    // The workers are all still there.
    let out = pool.map(|x: u32| x, 0..100u32, Some(1)).unwrap();
    assert_eq!(out.len(), 100);
    assert_eq!(pool.apply(|| 5).unwrap(), 5);
    let err = pool.apply(|| -> u8 { panic!("expected in apply") }).unwrap_err();
    assert!(matches!(err, PoolError::Panicked { item: 0, .. }));
}

#[test]
fn imap_unordered_yields_everything_in_completion_order() {
    let pool = Pool::new(2).unwrap();
    let out: Vec<_> = pool
        .imap_unordered(
            |x: u64| {
                // Item 0 is slow, so it finishes last.
                if x == 0 {
                    thread::sleep(Duration::from_millis(50));
                }
                x
            },
            0..8u64,
            None,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let set: HashSet<_> = out.iter().copied().collect();
    assert_eq!(set, (0..8).collect());
    assert_eq!(*out.last().unwrap(), 0);
}

#[test]
fn the_async_api_works_from_a_runtime() {
    let pool = Arc::new(Pool::new(2).unwrap());
    let rt = weft::Runtime::new().unwrap();
    rt.block_on(async {
        let squares = pool.map_async(|x: u64| x * x, 0..100u64, Some(7)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        squares.add_done_callback(move |p| tx.send(p.result().map(Vec::len).ok()).unwrap());
        let all = squares.settled().await.unwrap();
        assert_eq!(all[99], 99 * 99);
        assert_eq!(pool.apply_async(|| 40 + 2).unwrap().await.unwrap(), 42);

        let mut stream = pool.imap_stream(|x: u8| x + 1, 0..5u8, None).unwrap();
        let mut got = Vec::new();
        while let Some(item) = stream.next().await {
            got.push(item.unwrap());
        }
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        weft::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Some(100));
    });
}

#[test]
fn a_panic_in_apply_async_fails_the_promise_with_a_panic_exception() {
    quiet_panics();
    let pool = Pool::new(1).unwrap();
    let promise = pool.apply_async(|| -> u8 { panic!("expected async") }).unwrap();
    let Err(PromiseError::Failed(err)) = promise.wait() else {
        panic!("expected failure")
    };
    assert!(err.is_panic());
    assert!(err.to_string().contains("expected async"));
}

#[test]
fn close_then_join_finishes_queued_work_and_refuses_more() {
    let pool = Pool::new(2).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let promises: Vec<_> = (0..10)
        .map(|_| {
            let done = done.clone();
            pool.apply_async(move || {
                thread::sleep(Duration::from_millis(2));
                done.fetch_add(1, SeqCst)
            })
            .unwrap()
        })
        .collect();
    assert_eq!(pool.join(), Err(PoolError::Running));
    pool.close();
    assert!(matches!(pool.apply_async(|| 1), Err(PoolError::Closed)));
    assert_eq!(pool.map(|x: u8| x, 0..3u8, None), Err(PoolError::Closed));
    pool.join().unwrap();
    assert_eq!(done.load(SeqCst), 10);
    assert!(promises.iter().all(|p| p.result().is_ok()));
}

#[test]
fn terminate_drops_queued_work_and_stops_running_chunks() {
    let pool = Pool::new(1).unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let hold = Mutex::new(hold);
    let s = started.clone();
    // One long chunk holds the only worker.
    let results = pool
        .imap(
            move |x: u32| {
                s.fetch_add(1, SeqCst);
                if x == 0 {
                    let _ = hold.lock().unwrap().recv_timeout(Duration::from_secs(10));
                }
                x
            },
            0..4000u32,
            Some(2000),
        )
        .unwrap();
    let queued = pool.apply_async(|| 1u8).unwrap();
    while started.load(SeqCst) == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    pool.terminate();
    release.send(()).unwrap();
    pool.join().unwrap();
    assert!(queued.cancelled(), "a queued apply_async is cancelled");
    // The running chunk stops soon after terminate (it looks at the flag
    // every few hundred items), well before its end; what did not run, and
    // the whole queued chunk, report Terminated.
    let ran = started.load(SeqCst);
    assert!(
        (1..2000).contains(&ran),
        "the running chunk stopped early: {ran} items ran"
    );
    let all: Vec<_> = results.collect();
    assert_eq!(all.len(), 4000);
    assert!(all[..ran].iter().enumerate().all(|(i, r)| *r == Ok(i as u32)));
    assert!(all[ran..].iter().all(|r| *r == Err(PoolError::Terminated)));
    assert!(matches!(pool.apply_async(|| 1), Err(PoolError::Closed)));
}

#[test]
fn bad_arguments_are_errors() {
    assert_eq!(Pool::new(0).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    let pool = Pool::new(1).unwrap();
    assert!(matches!(
        pool.map(|x: u8| x, 0..3u8, Some(0)),
        Err(PoolError::InvalidArgument(_))
    ));
    assert!(matches!(
        pool.imap(|x: u8| x, 0..3u8, Some(0)),
        Err(PoolError::InvalidArgument(_))
    ));
}

#[test]
fn every_result_is_dropped_exactly_once_whether_the_map_succeeds_or_fails() {
    quiet_panics();
    let drops = Arc::new(AtomicUsize::new(0));
    let pool = Pool::new(3).unwrap();
    let d = drops.clone();
    let out = pool
        .map(move |_: u32| weft_tests::DropCounter::new(&d), 0..1000u32, Some(64))
        .unwrap();
    assert_eq!(out.len(), 1000);
    assert_eq!(drops.load(SeqCst), 0);
    drop(out);
    assert_eq!(drops.load(SeqCst), 1000);

    // A failure in one chunk: the results already made, in every chunk, are
    // dropped once; none leaks.
    drops.store(0, SeqCst);
    let made = Arc::new(AtomicUsize::new(0));
    let (d, m) = (drops.clone(), made.clone());
    let err = pool
        .map(
            move |x: u32| {
                if x == 500 {
                    panic!("expected 500");
                }
                m.fetch_add(1, SeqCst);
                weft_tests::DropCounter::new(&d)
            },
            0..1000u32,
            Some(64),
        )
        .unwrap_err();
    assert!(matches!(err, PoolError::Panicked { item: 500, .. }));
    assert_eq!(drops.load(SeqCst), made.load(SeqCst));

    // An empty map of a closed pool is still refused.
    pool.close();
    assert_eq!(pool.map(|x: u8| x, Vec::new(), None), Err(PoolError::Closed));
}

/// A function to map that counts the items it runs in `runs`.
fn counted(runs: &Arc<AtomicUsize>) -> impl Fn(u32) -> u32 + Send + Sync + Clone + 'static {
    let runs = runs.clone();
    move |x| {
        runs.fetch_add(1, SeqCst);
        x
    }
}

/// Asserts that `result` is the refusal of `call`, whose message names
/// `async_call` and both ways out.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, PoolError>, call: &str, async_call: &str) {
    match result {
        Err(err @ PoolError::WouldBlockRuntime { call: c, instead }) => {
            assert_eq!(c, call);
            assert!(instead.contains(async_call), "{instead}");
            let message = err.to_string();
            for part in [call, async_call, "Weft runtime", "plain thread", "spawn_blocking"] {
                assert!(message.contains(part), "{part:?} missing from: {message}");
            }
            assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::Other);
        }
        other => panic!("{call} on a runtime thread returned {other:?}"),
    }
}

/// Every blocking call of `pool`, on a thread that runs a runtime: each is
/// refused, even where it would not have to wait (`join` of a closed
/// pool), and before its other checks (`join` of a running pool).
fn assert_blocking_calls_refused(pool: &Pool, runs: &Arc<AtomicUsize>) {
    assert_refused(pool.map(counted(runs), 0..100u32, Some(10)), "Pool::map", "map_async");
    assert_refused(pool.map(counted(runs), 0..3u32, Some(0)), "Pool::map", "map_async");
    let f = counted(runs);
    assert_refused(pool.apply(move || f(1)), "Pool::apply", "apply_async");
    assert_refused(pool.join(), "Pool::join", "join_async");
    pool.close();
    assert_refused(pool.join(), "Pool::join", "join_async");
}

/// Joins `pool` from this plain thread (it must be closed): every job it
/// ever queued has run by then, so `runs` counts all the items it mapped.
fn join_and_count(pool: &Pool, runs: &AtomicUsize) -> usize {
    pool.join().expect("join from a plain thread");
    runs.load(SeqCst)
}

mod on_a_runtime_thread {
    use super::*;

    weft_tests::each_flavor! {
        fn blocking_calls_in_block_on_return_the_error_and_queue_nothing(flavor) {
            let pool = Pool::new(2).unwrap();
            let runs = Arc::new(AtomicUsize::new(0));
            weft_tests::runtime(flavor).block_on(async { assert_blocking_calls_refused(&pool, &runs) });
            assert_eq!(join_and_count(&pool, &runs), 0, "a refused call queued work");
        }

        fn blocking_calls_in_a_spawned_task_return_the_error_and_queue_nothing(flavor) {
            let pool = Arc::new(Pool::new(2).unwrap());
            let runs = Arc::new(AtomicUsize::new(0));
            let (p, r) = (pool.clone(), runs.clone());
            weft_tests::runtime(flavor).block_on(async move {
                weft::spawn(async move { assert_blocking_calls_refused(&p, &r) }).await.unwrap();
            });
            assert_eq!(join_and_count(&pool, &runs), 0, "a refused call queued work");
        }

        fn iterating_an_imap_yields_one_error_then_ends_and_its_stream_keeps_every_result(flavor) {
            let pool = Pool::new(2).unwrap();
            let mut imap = pool.imap(|x: u32| x * 10, 0..9u32, Some(3)).unwrap();
            // Taken on this plain thread: the rest of its chunk (10, 20)
            // now waits in the `Imap` itself, the other chunks in the pool.
            assert_eq!(imap.next(), Some(Ok(0)));
            weft_tests::runtime(flavor).block_on(async move {
                let mut seen = Vec::new();
                for result in &mut imap {
                    seen.push(result);
                    if seen.len() > 3 {
                        break; // an iterator that does not end: fails below
                    }
                }
                assert_eq!(seen.len(), 1, "one error, then the end: {seen:?}");
                assert_refused(seen.pop().unwrap(), "Imap::next", "into_stream");
                // Fused: no spin for `filter_map(Result::ok)`, no second error.
                assert_eq!(imap.by_ref().take(10).count(), 0);
                // Nothing was taken: the stream yields every result left.
                let mut rest = Vec::new();
                let mut stream = imap.into_stream();
                while let Some(result) = stream.next().await {
                    rest.push(result.unwrap());
                }
                assert_eq!(rest, [10, 20, 30, 40, 50, 60, 70, 80]);
            });

            // A fresh one: an adapter over it ends rather than spinning.
            let imap = pool.imap_unordered(|x: u32| x, 0..4u32, None).unwrap();
            weft_tests::runtime(flavor).block_on(async move {
                let mut imap = imap;
                assert_eq!(imap.by_ref().take(10).filter_map(Result::ok).count(), 0);
                let mut all = Vec::new();
                let mut stream = imap.into_stream();
                while let Some(result) = stream.next().await {
                    all.push(result.unwrap());
                }
                all.sort_unstable();
                assert_eq!(all, [0, 1, 2, 3]);
            });
        }

        fn the_blocking_calls_work_in_spawn_blocking(flavor) {
            let pool = Arc::new(Pool::new(2).unwrap());
            let p = pool.clone();
            let (squares, imapped, answer) = weft_tests::runtime(flavor).block_on(async move {
                weft::spawn_blocking(move || {
                    let squares = p.map(|x: u32| x * x, 0..5u32, None);
                    let imapped: Vec<_> = p.imap(|x: u32| x + 1, 0..3u32, None).unwrap().collect();
                    (squares, imapped, p.apply(|| 42))
                })
                .await
                .unwrap()
            });
            assert_eq!(squares, Ok(vec![0, 1, 4, 9, 16]));
            assert_eq!(imapped, [Ok(1), Ok(2), Ok(3)]);
            assert_eq!(answer, Ok(42));
        }

        fn join_async_waits_for_every_worker_to_exit(flavor) {
            let pool = Pool::new(2).unwrap();
            let (release, gate) = std::sync::mpsc::channel::<()>();
            let finished = Arc::new(AtomicUsize::new(0));
            let f = finished.clone();
            let held = pool
                .apply_async(move || {
                    let _ = gate.recv_timeout(Duration::from_secs(30));
                    f.fetch_add(1, SeqCst);
                })
                .unwrap();
            weft_tests::runtime(flavor).block_on(async {
                assert_eq!(pool.join_async().await, Err(PoolError::Running));
                pool.close();
                // The held item ends only once released, after join_async
                // has started to wait.
                let releaser = thread::spawn(move || {
                    thread::sleep(Duration::from_millis(20));
                    release.send(()).unwrap();
                });
                pool.join_async().await.unwrap();
                assert_eq!(finished.load(SeqCst), 1, "join_async returned before the workers exited");
                assert!(held.done());
                // Already exited: at once.
                pool.join_async().await.unwrap();
                releaser.join().unwrap();
            });
            pool.join().unwrap();

            // A terminated pool's workers exit after their current item.
            let pool = Pool::new(3).unwrap();
            pool.terminate();
            weft_tests::runtime(flavor).block_on(async { pool.join_async().await.unwrap() });
        }

        fn dropping_a_pool_does_not_wait_for_running_items(flavor) {
            let pool = Pool::new(1).unwrap();
            let (release, gate) = std::sync::mpsc::channel::<()>();
            let (started, running) = std::sync::mpsc::channel::<()>();
            let finished = Arc::new(AtomicUsize::new(0));
            let f = finished.clone();
            // Holds the only worker until released, or for 30 s.
            drop(pool.apply_async(move || {
                started.send(()).unwrap();
                let _ = gate.recv_timeout(Duration::from_secs(30));
                f.fetch_add(1, SeqCst);
            }));
            running.recv_timeout(Duration::from_secs(30)).expect("the item started");
            weft_tests::runtime(flavor).block_on(async move { drop(pool) });
            // Had the drop waited for the item, it would have finished.
            assert_eq!(finished.load(SeqCst), 0, "the drop waited for the running item");
            release.send(()).unwrap();
        }
    }
}

#[test]
fn the_stream_works_with_stream_ext_in_scope() {
    use futures::StreamExt;

    let pool = Pool::new(2).unwrap();
    weft::Runtime::new().unwrap().block_on(async {
        let mut stream = pool.imap_stream(|x: u32| x + 1, 0..5u32, Some(2)).unwrap();
        // The inherent `next`, then the trait's: neither is ambiguous.
        assert_eq!(stream.next().await, Some(Ok(1)));
        assert_eq!(StreamExt::next(&mut stream).await, Some(Ok(2)));
        // A combinator, through `Stream`.
        let rest: Vec<u32> = stream.map(Result::unwrap).collect().await;
        assert_eq!(rest, [3, 4, 5]);

        let mut all: Vec<u32> = pool
            .imap_unordered_stream(|x: u32| x * 2, 0..6u32, None)
            .unwrap()
            .filter_map(|r| async move { r.ok() })
            .collect()
            .await;
        all.sort_unstable();
        assert_eq!(all, [0, 2, 4, 6, 8, 10]);

        // `into_stream` on an `Imap` nobody iterated: the same results.
        let from_imap: Vec<_> = pool
            .imap(|x: u32| x, 0..3u32, None)
            .unwrap()
            .into_stream()
            .collect()
            .await;
        assert_eq!(from_imap, [Ok(0), Ok(1), Ok(2)]);
    });
}

#[test]
fn a_stream_dropped_mid_way_loses_nothing_else_and_its_next_is_cancel_safe() {
    let pool = Pool::new(1).unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    weft::Runtime::new().unwrap().block_on(async {
        let mut stream = pool
            .imap_stream(
                move |x: u32| {
                    if x == 1 {
                        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(30));
                    }
                    x
                },
                0..3u32,
                None,
            )
            .unwrap();
        assert_eq!(stream.next().await, Some(Ok(0)));
        // Item 1 is held: a `next` that gives up takes nothing.
        let gave_up = weft::time::timeout(Duration::from_millis(20), stream.next()).await;
        assert!(gave_up.is_err(), "item 1 is held: {gave_up:?}");
        release.send(()).unwrap();
        assert_eq!(stream.next().await, Some(Ok(1)));
        drop(stream); // with item 2 maybe still to come
    });
    // The pool is intact after its consumer left.
    assert_eq!(pool.map(|x: u8| x, 0..3u8, None), Ok(vec![0, 1, 2]));
}

#[test]
fn a_stream_and_join_async_can_be_awaited_in_spawned_tasks() {
    let pool = Arc::new(Pool::new(2).unwrap());
    let p = pool.clone();
    let rt = weft::Runtime::new().unwrap();
    let sum = rt.block_on(async move {
        // `weft::spawn` needs `Send` futures: these hold the stream and
        // the pool across awaits.
        let mut stream = p.imap_stream(|x: u64| x * 3, 0..100u64, Some(7)).unwrap();
        let sum = weft::spawn(async move {
            let mut sum = 0;
            while let Some(result) = stream.next().await {
                sum += result.unwrap();
            }
            sum
        });
        let sum = sum.await.unwrap();
        p.close();
        weft::spawn(async move { p.join_async().await }).await.unwrap().unwrap();
        sum
    });
    assert_eq!(sum, 3 * (0..100u64).sum::<u64>());
    pool.join().unwrap();
}
