//! Scenarios for weft-mpi's lifecycle and collective guarantees (issue
//! 16): no MPI call on a freed communicator, collectives that stay in step
//! when their requests are dropped, in the order they were started, and
//! ranks that disagree failing together.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;
use weft::mpi::pool::{MpiPool, Registry};
use weft::mpi::{Communicator, Error, ReduceOp};

/// Polls `future` once (it may post, match, or finish a stage) and drops
/// it: a request abandoned right after its first poll.
async fn poll_once_then_drop<F: Future>(future: F) {
    let mut future = pin!(future);
    std::future::poll_fn(|cx| {
        let _ = future.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

/// Rank `from` sends `value` to `to` with `tag` after `delay`, while `to`
/// waits in a receive (so the engine's matching runs turns with it
/// waiting). On a singleton, a task sends to itself.
async fn delayed_exchange(world: &Communicator, from: i32, to: i32, tag: i32, value: u64) {
    let rank = world.rank();
    let sender = if rank == from {
        let world = world.clone();
        Some(weft::spawn(async move {
            weft::time::sleep(Duration::from_millis(30)).await;
            world.send(&[value], to, tag).await.unwrap();
        }))
    } else {
        None
    };
    if rank == to {
        let (got, status) = world.recv::<u64>(from, tag).await.unwrap();
        assert_eq!((got, status.source()), (vec![value], from));
    }
    if let Some(sender) = sender {
        sender.await.unwrap();
    }
}

/// Issue 16.1, first way: a pool's lifecycle (its collector's waiting
/// receive on the pool's communicator is dropped at shutdown, then the
/// communicator is freed), then an ordinary receive that waits: the engine
/// must not probe the freed communicator.
pub(crate) async fn freed_comm_after_pool(world: &Communicator) {
    let mut registry = Registry::new();
    let square = registry.register("square", |x: u64| x * x);
    if let Some(pool) = MpiPool::start(world, registry).await.unwrap() {
        let squares = pool.map_chunked(&square, 0..20u64, 1).await.unwrap();
        assert_eq!(squares[7], 49);
        pool.shutdown().await.unwrap();
    }
    let last = world.size() - 1;
    delayed_exchange(world, last, 0, 5, 99).await;
    world.barrier().await.unwrap();
}

/// Issue 16.1, second way: a receive waiting on a duplicate is dropped,
/// the duplicate is dropped, and a receive on the world waits.
pub(crate) async fn freed_comm_after_dropped_recv(world: &Communicator) {
    let dup = world.duplicate().await.unwrap();
    let waiting = weft::time::timeout(Duration::from_millis(20), dup.recv::<u8>(0, 1)).await;
    assert!(waiting.is_err(), "nothing was sent on the duplicate");
    drop(dup);
    let last = world.size() - 1;
    delayed_exchange(world, last, 0, 6, 7).await;
    // And a receive on a duplicate dropped while its message is unclaimed.
    let dup = world.duplicate().await.unwrap();
    if world.rank() == last {
        dup.send(&[1u8], 0, 2).await.unwrap();
    }
    dup.barrier().await.unwrap();
    if world.rank() == 0 {
        // Pull the message so it sits unclaimed when the duplicate goes.
        let _ = weft::time::timeout(Duration::from_millis(5), dup.recv::<u8>(last, 3)).await;
    }
    drop(dup);
    delayed_exchange(world, last, 0, 8, 11).await;
    world.barrier().await.unwrap();
}

/// Issue 16.2: collectives whose requests are dropped at every point (before
/// their first poll, after it, during a timeout while a peer is late) stay
/// in step: the collectives after them pair up and compute right.
pub(crate) async fn cancelled_collectives(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let n = size as u64;
    let big = 64 * 1024 / 8; // 64 KiB of u64: two stages
    for round in 0..3u64 {
        // Dropped at once, never polled.
        drop(world.all_reduce(vec![round; big], ReduceOp::Sum));
        drop(world.barrier());
        // Polled once, then dropped.
        poll_once_then_drop(world.all_reduce(vec![1u64], ReduceOp::Sum)).await;
        poll_once_then_drop(world.broadcast(vec![rank as u8; 100_000], 0)).await;
        // Rank 0 gives up while the others are late: its request is dropped
        // mid-agreement. The others join only once rank 0's timeout has
        // fired (a message from it says so), so its all-gather cannot
        // complete in time however the ranks are scheduled. A head start
        // in time (the others sleeping first) is not enough: on a loaded
        // machine rank 0 may wait longer than that for a core, and then
        // find the others already there.
        let gather = || world.all_gather(vec![rank as u32; 5000]);
        if rank == 0 {
            let late = weft::time::timeout(Duration::from_millis(1), gather()).await;
            if size > 1 {
                assert!(late.is_err(), "the others joined only after this timeout");
            }
            for peer in 1..size {
                world.send(&[round], peer, 40).await.unwrap();
            }
        } else {
            let (gave_up, _) = world.recv::<u64>(0, 40).await.unwrap();
            assert_eq!(gave_up, [round]);
            let _ = weft::time::timeout(Duration::from_millis(1), gather()).await;
        }
        let obj = (rank == 0).then(|| vec![round; 1000]);
        poll_once_then_drop(world.bcast_obj(obj.as_ref(), 0)).await;
        drop(world.gatherv(vec![rank; rank as usize + 1], 0));
        // What follows must pair with the same collectives on every rank.
        let sum = world
            .all_reduce(vec![rank as u64 + round], ReduceOp::Sum)
            .await
            .unwrap();
        assert_eq!(sum, [n * (n - 1) / 2 + n * round]);
        let big_sum = world.all_reduce(vec![rank as u64; big], ReduceOp::Sum).await.unwrap();
        assert!(big_sum.iter().all(|&x| x == n * (n - 1) / 2));
        let data = if rank == 0 {
            vec![round as u8; 100_000]
        } else {
            vec![0; 100_000]
        };
        assert!(
            world
                .broadcast(data, 0)
                .await
                .unwrap()
                .iter()
                .all(|&x| x == round as u8)
        );
        let all = world.all_gatherv(vec![rank; rank as usize + 1]).await.unwrap();
        assert_eq!(all, (0..size).map(|r| vec![r; r as usize + 1]).collect::<Vec<_>>());
    }
    world.barrier().await.unwrap();
}

/// Issue 16.2: a rank posts its collectives in the order its tasks started
/// them, whatever order their stages complete in: a two-stage collective
/// started first, a one-stage one second, awaited the other way round, on
/// every rank (rank 1 starts the second late), from different tasks.
pub(crate) async fn collective_order(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let n = size as u64;
    for i in 0..20u64 {
        let first = world.all_reduce(vec![i; 10_000], ReduceOp::Max);
        if rank == 1 {
            weft::time::sleep(Duration::from_micros(200)).await;
        }
        let second = world.all_reduce(vec![rank as u64], ReduceOp::Sum);
        let third = {
            let world = world.clone();
            weft::spawn(async move { world.all_gather(vec![rank as u64 * 3]).await.unwrap() })
        };
        assert_eq!(second.await.unwrap(), [n * (n - 1) / 2]);
        assert!(first.await.unwrap().iter().all(|&x| x == i));
        assert_eq!(third.await.unwrap(), (0..n).map(|r| r * 3).collect::<Vec<_>>());
    }
}

/// Bad input: ranks that call different collectives, pass different
/// element types or roots, or a rank that passes an invalid op: an error on
/// every rank, never a hang, and the next collectives work.
pub(crate) async fn disagreeing_collectives(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    if size < 2 {
        return;
    }
    let expect_err = |r: Result<(), Error>, what: &str| {
        let err = r.expect_err(what);
        assert!(matches!(err, Error::Mpi { .. }), "{what}: {err}");
    };
    // Different collectives.
    let r = if rank == 0 {
        world.barrier().await
    } else {
        world.all_reduce(vec![1u32], ReduceOp::Sum).await.map(drop)
    };
    expect_err(r, "barrier against all_reduce");
    // Different element types, same byte length.
    let r = if rank == 0 {
        world.all_reduce(vec![1u64], ReduceOp::Sum).await.map(drop)
    } else {
        world.all_reduce(vec![1i64], ReduceOp::Sum).await.map(drop)
    };
    expect_err(r, "u64 against i64");
    // Different roots.
    let r = world.broadcast(vec![0u8; 16], rank.min(1)).await.map(drop);
    expect_err(r, "different roots");
    // A large collective against a small one: one rank's lengths agree
    // with nothing, nobody posts the second stage.
    let mine = if rank == 0 { 100_000 } else { 3 };
    let r = world.all_reduce(vec![1u32; mine], ReduceOp::Sum).await.map(drop);
    expect_err(r, "large against small");
    // An op that does not apply, on one rank only.
    let r = if rank == 0 {
        world.all_reduce(vec![1.0f64], ReduceOp::BitXor).await.map(drop)
    } else {
        world.all_reduce(vec![1.0f64], ReduceOp::Sum).await.map(drop)
    };
    expect_err(r, "a bitwise op on floats");
    // Root passes blocks for the wrong number of ranks.
    let blocks = (rank == 0).then(|| vec![vec![1u8]; size as usize + 1]);
    expect_err(world.scatterv(blocks, 0).await.map(drop), "scatterv blocks");
    // Still in step.
    let n = size as u64;
    assert_eq!(world.all_reduce(vec![1u64], ReduceOp::Sum).await.unwrap(), [n]);
    world.barrier().await.unwrap();
}

/// Issue 16.5: the last handle to MPI is dropped on a thread that did not
/// initialise it; MPI is finalized on the thread that did (the job exits
/// cleanly, which `mpirun` reports).
pub(crate) fn last_handle_on_another_thread(mpi: weft::mpi::Mpi) {
    let rank = mpi.rank();
    std::thread::spawn(move || {
        let rt = weft::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let world = mpi.world();
        rt.block_on(async { world.barrier().await.unwrap() });
        drop((world, mpi));
    })
    .join()
    .unwrap();
    println!("ok last_handle_on_another_thread rank {rank}");
}

/// Issue 16.5: MPI initialised by other code (rsmpi here) at
/// `SERIALIZED` is refused with an error that says what to do; at
/// `MULTIPLE` it is used, and left for that code to finalize.
pub(crate) fn foreign_init(level: &str) {
    let threading = match level {
        "serialized" => mpi::Threading::Serialized,
        _ => mpi::Threading::Multiple,
    };
    let (universe, provided) = mpi::initialize_with_threading(threading).expect("rsmpi initialises MPI");
    let rank = {
        use mpi::traits::Communicator as _;
        universe.world().rank()
    };
    match weft::mpi::Mpi::init() {
        Err(Error::Unavailable(why)) => {
            assert_eq!(threading, mpi::Threading::Serialized, "refused at {provided:?}: {why}");
            assert!(
                why.contains("MPI_THREAD_MULTIPLE") && why.contains("Mpi::lock"),
                "{why}"
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(weft_mpi) => {
            assert_eq!(provided, mpi::Threading::Multiple, "accepted below MULTIPLE");
            let world = weft_mpi.world();
            let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let n = world.size() as u64;
            let sum = rt.block_on(async { world.all_reduce(vec![1u64], ReduceOp::Sum).await.unwrap() });
            assert_eq!(sum, [n]);
            drop((world, weft_mpi));
            // rsmpi's universe, dropped below, finalizes: Weft did not.
        }
    }
    println!("ok foreign_{level} rank {rank}");
}

/// Bad input and faults: the last rank dies while the others wait in a
/// collective and a receive from it; every survivor gets
/// [`Error::PeerDied`], never a hang, and later operations that need the
/// dead rank fail at once. (Run under `--mca orte_abort_on_non_zero_status
/// 0`, so that `mpirun` lets the survivors live.)
pub(crate) async fn peer_death(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let dead = size - 1;
    world.barrier().await.unwrap();
    if rank == dead {
        std::thread::sleep(Duration::from_millis(100));
        println!("rank {rank} dies");
        std::process::exit(3);
    }
    let from_dead = world.recv::<u8>(dead, 1);
    let err = world.all_reduce(vec![1u64], ReduceOp::Sum).await.unwrap_err();
    assert_eq!(err, Error::PeerDied(dead), "the collective fails, it does not hang");
    assert_eq!(from_dead.await.unwrap_err(), Error::PeerDied(dead));
    assert_eq!(world.barrier().await.unwrap_err(), Error::PeerDied(dead));
    assert_eq!(world.send(&[1u8], dead, 0).await.unwrap_err(), Error::PeerDied(dead));
    // Point-to-point among the survivors still works.
    if size > 2 {
        if rank == 0 {
            world.send(&[5u32], 1, 2).await.unwrap();
        } else if rank == 1 {
            assert_eq!(world.recv::<u32>(0, 2).await.unwrap().0, [5]);
        }
    }
}

/// A send after an idle gap rings the destination's doorbell (weft-mpi's
/// `doorbell.rs`): with idle polls let back off to an hour apart, rank 1
/// still answers rank 0's request, sent after a 2 s gap, at once (its idle
/// polls alone would find it only at about 3.3 s, 1.3 s late), and rank 0
/// gets the reply the same way. On a duplicate communicator too (its ranks
/// rung by their world ranks). Every rank applies the same settings.
pub(crate) async fn rung_after_gap(world: &Communicator) {
    let mpi = weft::mpi::Mpi::builder()
        .max_sleep(Duration::from_secs(3600))
        .init()
        .expect("settings apply to the running MPI");
    assert_eq!(mpi.max_sleep(), Duration::from_secs(3600));
    let dup = world.duplicate().await.expect("duplicate");
    for comm in [world, &dup] {
        comm.barrier().await.expect("barrier");
        match comm.rank() {
            0 if comm.size() > 1 => {
                weft::time::sleep(Duration::from_secs(2)).await;
                let start = std::time::Instant::now();
                comm.send(&[7u64], 1, 3).await.expect("request");
                let (reply, _) = comm.recv::<u64>(1, 4).await.expect("reply");
                let rtt = start.elapsed();
                assert_eq!(reply, [8]);
                assert!(
                    rtt < Duration::from_millis(800),
                    "the request after an idle gap took {rtt:?}: its ring did not wake rank 1"
                );
            }
            1 => {
                let (request, _) = comm.recv::<u64>(0, 3).await.expect("request");
                comm.send(&[request[0] + 1], 0, 4).await.expect("reply");
            }
            _ => {}
        }
    }
    world.barrier().await.expect("the closing barrier");
}

/// Polls `future` `polls` times, letting the engine run a step between
/// polls, and drops it: a request abandoned at any of its await points
/// (mid-agreement, between its rounds, or between its stages).
pub(crate) async fn poll_then_drop<F: Future>(future: F, polls: usize) {
    let mut future = pin!(future);
    for _ in 0..polls {
        let mut ready = false;
        std::future::poll_fn(|cx| {
            ready = future.as_mut().poll(cx).is_ready();
            Poll::Ready(())
        })
        .await;
        if ready {
            return;
        }
        weft::time::sleep(Duration::from_micros(30)).await;
    }
}

/// The collectives' agreements, which run point to point on each
/// communicator's hidden twin (weft-mpi's `agreement.rs`): on any number of
/// ranks (3 and 5 fold ranks in), concurrently on two communicators, with
/// requests dropped at every await point, and never seen by a receive from
/// any source with any tag.
pub(crate) async fn agreement_rounds(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let n = size as u64;
    let sum = n * (n - 1) / 2;
    // A receive of the user's, from anyone with any tag, waits through
    // every collective below: no agreement message may match it.
    let anything = world.recv::<u8>(weft::mpi::ANY_SOURCE, weft::mpi::ANY_TAG);
    let dup = world.duplicate().await.expect("duplicate");
    // Concurrent units on two communicators, started interleaved and
    // awaited in another order, from two tasks.
    let on = |comm: &Communicator, salt: u64| {
        let comm = comm.clone();
        weft::spawn(async move {
            let r = comm.rank() as u64;
            for i in 0..200u64 {
                let a = comm.all_reduce(vec![r + i + salt, 1], ReduceOp::Sum);
                let b = comm.barrier();
                let c = comm.all_reduce(vec![r * 2 + salt], ReduceOp::Max);
                assert_eq!(c.await.unwrap(), [(n - 1) * 2 + salt]);
                b.await.unwrap();
                assert_eq!(a.await.unwrap(), [sum + n * (i + salt), n]);
            }
        })
    };
    let (x, y) = (on(world, 0), on(&dup, 1000));
    y.await.unwrap();
    x.await.unwrap();
    // Dropped after 0 to 7 polls, each rank at another point; a small one
    // (the agreement alone) and a large one (agreement, then the
    // all-reduce). What follows pairs with the same units everywhere.
    for polls in 0..8usize {
        let mine = (polls + rank as usize) % 8;
        poll_then_drop(dup.all_reduce(vec![rank as u64], ReduceOp::Sum), mine).await;
        poll_then_drop(world.barrier(), mine).await;
        poll_then_drop(world.all_reduce(vec![1u32; 10_000], ReduceOp::Sum), mine).await;
        assert_eq!(
            world
                .all_reduce(vec![rank as u64 + polls as u64], ReduceOp::Sum)
                .await
                .unwrap(),
            [sum + n * polls as u64]
        );
        assert_eq!(dup.all_reduce(vec![1u8], ReduceOp::Sum).await.unwrap(), [size as u8]);
    }
    // Ranks that call different collectives still all fail (the same
    // messages whatever was called), and stay in step.
    if size > 1 {
        let r = if rank == size - 1 {
            world.barrier().await
        } else {
            world.all_reduce(vec![1u64], ReduceOp::Sum).await.map(drop)
        };
        assert!(matches!(r, Err(Error::Mpi { .. })), "{r:?}");
    }
    // Now the receive's message: the only one it may take.
    let from = (rank + 1) % size;
    let to = (rank + size - 1) % size;
    let send = world.isend(vec![7u8, 8, 9], to, 77);
    let (data, status) = anything.await.unwrap();
    send.await.unwrap();
    assert_eq!((data, status.source(), status.tag()), (vec![7, 8, 9], from, 77));
}

/// Doorbell rule 6: rank 1's loop is busy (blocked) when rank 0's request
/// and its ring arrive; rank 1 drains the stale ring afterwards, which must
/// not mark rank 0 awake: rank 0 sleeps (an hour between idle polls), and
/// only the reply's ring wakes it.
pub(crate) async fn busy_gap(world: &Communicator) {
    let window: u64 = std::env::var("BUSY_GAP_WINDOW_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mpi = weft::mpi::Mpi::builder()
        .max_sleep(Duration::from_secs(3600))
        .spin_window(Duration::from_micros(window))
        .init()
        .expect("settings apply to the running MPI");
    assert_eq!(mpi.max_sleep(), Duration::from_secs(3600));
    world.barrier().await.expect("barrier");
    match world.rank() {
        0 => {
            weft::time::sleep(Duration::from_secs(1)).await;
            let start = std::time::Instant::now();
            world.send(&[7u64], 1, 3).await.expect("request");
            let (reply, _) = world.recv::<u64>(1, 4).await.expect("reply");
            let rtt = start.elapsed();
            assert_eq!(reply, [8]);
            println!("busy_gap: window {window} us, rtt {rtt:?} (rank 1 blocked until ~3.4 s after the send)");
            assert!(
                rtt < Duration::from_millis(4200),
                "the reply to a request read after a busy gap took {rtt:?} (about 3.4 s expected): rank 1 did not ring rank 0"
            );
        }
        1 => {
            let comm = world.clone();
            let replier = weft::spawn(async move {
                let (request, _) = comm.recv::<u64>(0, 3).await.expect("request");
                comm.send(&[request[0] + 1], 0, 4).await.expect("reply");
            });
            weft::time::sleep(Duration::from_millis(900)).await;
            // The loop's only thread is busy: rank 0's ring waits in the bell.
            std::thread::sleep(Duration::from_millis(3500));
            replier.await.unwrap();
        }
        _ => {}
    }
    world.barrier().await.expect("the closing barrier");
}
