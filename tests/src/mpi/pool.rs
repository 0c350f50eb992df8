//! Scenarios for weft-mpi's pool (issue 17, points 2 and 3): typed jobs,
//! per-item errors, one job at a time per worker unless asked, a
//! lifecycle that releases the workers when rank 0 drops the pool, and a
//! worker's death.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use weft::mpi::pool::{Job, MpiPool, PoolError, PoolOptions, Registry};
use weft::mpi::{Communicator, Mpi};

/// The typed handles every rank registers.
pub(crate) struct Jobs {
    square: Job<u64, u64>,
    describe: Job<(String, u32), String>,
    fail: Job<u32, u32>,
    half: Job<u64, u64>,
    die_on_rank_2: Job<u64, u64>,
    concurrency: Job<u64, usize>,
    slow: Job<u64, u64>,
}

/// Chunks running at once in this process, and the most seen.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn registry() -> (Registry, Jobs) {
    let mut registry = Registry::new();
    let jobs = Jobs {
        square: registry.register("square", |x: u64| x * x),
        describe: registry.register("describe", |(name, n): (String, u32)| format!("{name}:{n}")),
        fail: registry.register("fail", |x: u32| -> u32 { panic!("job {x} fails on purpose") }),
        half: registry.register_fallible("half", |x: u64| {
            if x % 2 == 0 {
                Ok(x / 2)
            } else {
                Err(format!("{x} is odd"))
            }
        }),
        die_on_rank_2: registry.register("die_on_rank_2", |x: u64| {
            // A worker that dies in the middle of a map (rank 2 of 3).
            if std::env::var("OMPI_COMM_WORLD_RANK").as_deref() == Ok("2") {
                std::process::exit(3);
            }
            std::thread::sleep(Duration::from_millis(2));
            x + 1
        }),
        concurrency: registry.register("concurrency", |_: u64| {
            let now = RUNNING.fetch_add(1, SeqCst) + 1;
            MOST.fetch_max(now, SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            RUNNING.fetch_sub(1, SeqCst);
            MOST.load(SeqCst)
        }),
        slow: registry.register("slow", |x: u64| {
            std::thread::sleep(Duration::from_millis(200));
            x
        }),
    };
    (registry, jobs)
}

/// map in order (default and explicit chunks), submit by value with a done
/// callback, a panicking job, a job's `Err`, all as per-item errors; on 1
/// rank the pool runs jobs itself.
pub(crate) async fn pool_map(world: &Communicator) {
    let (registry, jobs) = registry();
    let Some(pool) = MpiPool::start(world, registry).await.unwrap() else {
        return; // a worker, released by shutdown
    };
    let squares = pool.map(&jobs.square, 0..1000u64).await.unwrap();
    assert_eq!(squares, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
    let squares = pool.map_chunked(&jobs.square, 0..100u64, 7).await.unwrap();
    assert_eq!(squares[99], 99 * 99);
    // submit: by value, posted now, a Promise with done callbacks.
    let promise = pool.submit(&jobs.describe, ("job".to_owned(), 7u32));
    let (tx, rx) = std::sync::mpsc::channel();
    promise.add_done_callback_inline(move |p| tx.send(p.result().cloned().ok()).unwrap());
    assert_eq!(promise.await.unwrap(), "job:7");
    assert_eq!(rx.recv().unwrap().as_deref(), Some("job:7"), "the done callback ran");
    let err = pool.submit(&jobs.fail, 4).await.unwrap_err();
    let err = err.exception().and_then(|e| e.downcast_ref::<PoolError>()).cloned();
    assert!(
        matches!(&err, Some(PoolError::Job(why)) if why.contains("job 4 fails on purpose")),
        "{err:?}"
    );
    // A fallible job: its Err is the item's error; the others' results stay.
    let err = pool.map_chunked(&jobs.half, 0..10u64, 3).await.unwrap_err();
    let failed: Vec<usize> = err.failed().map(|(i, _)| i).collect();
    assert_eq!(failed, [1, 3, 5, 7, 9]);
    let results = err.into_results();
    assert_eq!(results[4], Ok(2));
    assert!(
        matches!(&results[3], Err(PoolError::Job(why)) if why == "3 is odd"),
        "{:?}",
        results[3]
    );
    // Unordered: every item once.
    let mut seen = Vec::new();
    let mut stream = pool.map_unordered(&jobs.square, 0..50u64, 4);
    while let Some((i, out)) = stream.next().await {
        assert_eq!(out.unwrap(), (i * i) as u64);
        seen.push(i);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
    pool.shutdown().await.unwrap();
}

/// Rule 4: dropping the pool fails what is queued or running with
/// `PoolError::Shutdown` at once (not with the jobs' results, which come
/// later), on a singleton (rule 5, jobs on this rank's blocking threads)
/// as with workers; the workers return from `start`.
pub(crate) async fn pool_drop(world: &Communicator) {
    let (registry, jobs) = registry();
    let Some(pool) = MpiPool::start(world, registry).await.unwrap() else {
        return; // a worker, released by the drop
    };
    let running = pool.submit(&jobs.slow, 1);
    let mut stream = pool.map_unordered(&jobs.slow, 0..4u64, 1);
    drop(pool);
    let err = running.await.unwrap_err();
    let err = err.exception().and_then(|e| e.downcast_ref::<PoolError>()).cloned();
    assert!(matches!(err, Some(PoolError::Shutdown)), "{err:?}");
    let mut items = 0;
    while let Some((i, out)) = stream.next().await {
        assert!(matches!(out, Err(PoolError::Shutdown)), "item {i}: {out:?}");
        items += 1;
    }
    assert_eq!(items, 4);
}

/// A worker runs one chunk at a time unless rank 0 asks for more.
pub(crate) async fn pool_concurrency(world: &Communicator) {
    for per_worker in [1usize, 2] {
        let (registry, jobs) = registry();
        MOST.store(0, SeqCst);
        let options = PoolOptions {
            jobs_per_worker: per_worker,
        };
        let Some(pool) = MpiPool::start_with(world, registry, options).await.unwrap() else {
            continue; // a worker: the next round
        };
        if pool.workers() == 0 {
            return; // a singleton runs jobs itself, as many as it is given
        }
        let most = pool.map_chunked(&jobs.concurrency, 0..8u64, 1).await.unwrap();
        assert_eq!(
            most.into_iter().max(),
            Some(per_worker),
            "jobs running at once on a worker"
        );
        pool.shutdown().await.unwrap();
    }
}

/// Workers registered `square` with other types than rank 0: every item
/// fails with an error that says so, instead of a misread value.
pub(crate) async fn pool_mismatch(world: &Communicator) {
    let mut registry = Registry::new();
    let square = if world.rank() == 0 {
        registry.register("square", |x: u64| x * x)
    } else {
        registry.register("square", |s: String| s.len() as u64);
        // Rank 0's view, for the types only: unused on workers.
        Registry::new().register("square", |x: u64| x)
    };
    let Some(pool) = MpiPool::start(world, registry).await.unwrap() else {
        return;
    };
    if pool.workers() > 0 {
        let err = pool.map(&square, [3u64, 4]).await.unwrap_err();
        assert_eq!(err.failed().count(), 2);
        for (_, e) in err.failed() {
            assert!(
                matches!(e, PoolError::Job(why) if why.contains("different builds")),
                "{e}"
            );
        }
    }
    pool.shutdown().await.unwrap();
}

/// Rank 2 dies in the middle of a map: its jobs fail with WorkerDied, the
/// map returns (no hang), the other worker keeps serving.
pub(crate) async fn pool_death(world: &Communicator) {
    let rank = world.rank();
    let (registry, jobs) = registry();
    let Some(pool) = MpiPool::start(world, registry).await.unwrap() else {
        // Rank 1, released by shutdown: leave without finalizing (a rank
        // of the job is dead, so MPI_Finalize would wait for it forever).
        println!("ok pool_death rank {rank}");
        std::process::exit(0);
    };
    let err = pool.map_chunked(&jobs.die_on_rank_2, 0..200u64, 5).await.unwrap_err();
    assert!(err.failed().all(|(_, e)| *e == PoolError::WorkerDied(2)));
    let results = err.into_results();
    assert!(results.iter().any(|r| r.is_ok()), "rank 1's items succeeded");
    // The pool still works on the live worker.
    assert_eq!(pool.submit(&jobs.square, 9).await.unwrap(), 81);
    pool.shutdown().await.unwrap();
    println!("ok pool_death rank 0");
    // `mpirun` ends the job when this rank leaves without finalizing (it
    // must: a rank is dead): give rank 1 a moment to report first.
    std::thread::sleep(Duration::from_millis(300));
    std::process::exit(0);
}

/// Issue 17.2: rank 0 leaves its scope with `?` while the pool is alive
/// and busy: the pool's drop releases the workers, every rank finalizes
/// and exits, and rank 0's error is printed (by `main`).
pub(crate) fn pool_error_exit(mpi: Mpi) -> Result<(), Box<dyn std::error::Error>> {
    let world = mpi.world();
    let rank = world.rank();
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build()?;
    let outcome = rt.block_on(async {
        let (registry, jobs) = registry();
        let Some(pool) = MpiPool::start(&world, registry).await? else {
            println!("ok pool_error_exit rank {rank}");
            return Ok(());
        };
        // Work queued and running when rank 0 gives up.
        let _busy = pool.map_unordered(&jobs.slow, 0..8u64, 1);
        weft::time::sleep(Duration::from_millis(50)).await;
        let config: Result<u32, std::num::ParseIntError> = "not a number".parse();
        config.map_err(|e| format!("rank 0 gives up: {e}"))?;
        unreachable!("the parse fails")
    });
    drop((rt, world, mpi));
    outcome
}
