//! Hostile scenarios for the collectives' point-to-point agreement
//! (weft-mpi's `agreement.rs`): tags that wrap, communicators dropped with
//! units in flight, deaths mid-agreement, shutdown mid-agreement, user
//! receives from any source with any tag, on any number of ranks.

use super::trusted::poll_then_drop;
use std::time::Duration;
use weft::mpi::{ANY_SOURCE, ANY_TAG, Communicator, Error, ReduceOp};

/// More than 32768 units on one communicator (the agreement's tags wrap),
/// many started before any is awaited, some dropped at once, on the world
/// and a duplicate at the same time: every result stays right.
pub(crate) async fn tag_wrap(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let n = size as u64;
    let dup = world.duplicate().await.expect("duplicate");
    let run = |comm: Communicator, units: u64| {
        weft::spawn(async move {
            let r = comm.rank() as u64;
            let mut started = 0u64;
            while started < units {
                let batch: Vec<_> = (0..64u64)
                    .map(|k| {
                        let i = started + k;
                        (i, comm.all_reduce(vec![r + i], ReduceOp::Sum))
                    })
                    .collect();
                started += 64;
                // Dropped ones: the engine runs them all the same.
                drop(comm.barrier());
                started += 1;
                for (i, request) in batch.into_iter().rev() {
                    if i % 7 == 3 {
                        drop(request);
                        continue;
                    }
                    assert_eq!(request.await.unwrap(), [n * (n - 1) / 2 + n * i], "unit {i}");
                }
            }
            started
        })
    };
    let units = 33_000;
    let (a, b) = (run(world.clone(), units), run(dup.clone(), units / 4));
    assert!(a.await.unwrap() > 32_768);
    b.await.unwrap();
    let sum = world.all_reduce(vec![rank as u64], ReduceOp::Sum).await.unwrap();
    assert_eq!(sum, [n * (n - 1) / 2]);
}

/// Communicators (duplicates, grids) dropped while their units, and the
/// unit making them, are in flight, at every await point; the world's
/// collectives after stay right and nothing touches a freed communicator.
pub(crate) async fn comm_dropped_in_flight(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let n = size as u64;
    for round in 0..40usize {
        let mine = (round + rank as usize) % 6;
        let dup = world.duplicate().await.expect("duplicate");
        // Units on the duplicate, handles dropped at various points.
        let small = dup.all_reduce(vec![rank as u64], ReduceOp::Sum);
        let big = dup.all_reduce(vec![1u32; 20_000], ReduceOp::Sum);
        let bar = dup.barrier();
        let grid = dup.cart_create(&[size], &[true]);
        let dup2 = dup.duplicate();
        poll_then_drop(dup.broadcast(vec![rank as u8; 300], 0), mine).await;
        drop(dup);
        poll_then_drop(small, mine).await;
        drop(big);
        poll_then_drop(bar, mine / 2).await;
        if round % 2 == 0 {
            let grid = grid.await.expect("grid");
            poll_then_drop(grid.all_gather(vec![rank as u16; 3]), mine).await;
            drop(grid);
        } else {
            drop(grid);
        }
        poll_then_drop(dup2, mine).await;
        let sum = world
            .all_reduce(vec![rank as u64 + round as u64], ReduceOp::Sum)
            .await
            .unwrap();
        assert_eq!(sum, [n * (n - 1) / 2 + n * round as u64]);
    }
    world.barrier().await.unwrap();
}

/// User messages on every tag an agreement could use, received from any
/// source with any tag while agreements run: each receive gets a user's
/// message, intact, and never an agreement's.
pub(crate) async fn user_any_tag(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let n = size as u64;
    let to = (rank + 1) % size;
    let from = (rank + size - 1) % size;
    let tags: Vec<i32> = (0..64).chain([32767, 32766, 1000]).collect();
    let receiver = {
        let world = world.clone();
        let count = tags.len();
        weft::spawn(async move {
            for k in 0..count {
                let (data, status) = world.recv::<u64>(ANY_SOURCE, ANY_TAG).await.unwrap();
                assert_eq!(status.source(), from);
                assert_eq!(data.len(), 2, "a user message, not a 256-byte record");
                assert_eq!(data[0], 0xfeed_0000 + from as u64);
                assert_eq!(data[1] as i32, status.tag(), "message {k}");
            }
        })
    };
    for (k, &tag) in tags.iter().enumerate() {
        let send = world.isend(vec![0xfeed_0000 + rank as u64, tag as u64], to, tag);
        let sum = world.all_reduce(vec![k as u64], ReduceOp::Sum);
        let bar = world.barrier();
        assert_eq!(sum.await.unwrap(), [n * k as u64]);
        bar.await.unwrap();
        send.await.unwrap();
    }
    receiver.await.unwrap();
    world.barrier().await.unwrap();
}

/// Rank `dead` dies in the middle of an agreement (right after its first
/// round's messages are posted); every survivor's collective fails with
/// `PeerDied` (or completes, if the dead rank's part was done), never
/// hangs, and the next one fails. The survivors then meet point to point and
/// linger, so `mpirun` does not kill one before it reports.
pub(crate) async fn death_mid_agreement(world: &Communicator, dead: i32) {
    let (rank, size) = (world.rank(), world.size());
    assert!(dead < size, "the dying rank must exist");
    let first = world.barrier().await;
    if rank == dead {
        first.unwrap();
        // Its first round posted (a send may or may not leave), the rest
        // never: it dies at once.
        std::mem::forget(world.all_reduce(vec![1u64; 4], ReduceOp::Sum));
        println!("rank {rank} dies");
        std::process::exit(3);
    }
    // The dying rank may leave as soon as its own barrier is done, before
    // another rank's is: that barrier then fails with the death, rightly.
    if let Err(err) = first {
        assert_eq!(err, Error::PeerDied(dead));
    }
    // Staggered, so the rounds are at different points when it dies.
    weft::time::sleep(Duration::from_millis(20 * rank as u64)).await;
    let r = weft::time::timeout(Duration::from_secs(20), world.all_reduce(vec![1u64; 4], ReduceOp::Sum))
        .await
        .expect("the collective hung after a death");
    // Done without it if its record arrived before it died; else failed.
    match r {
        Ok(sum) => assert_eq!(sum, [size as u64; 4]),
        Err(err) => assert_eq!(err, Error::PeerDied(dead)),
    }
    let r = weft::time::timeout(Duration::from_secs(20), world.barrier())
        .await
        .expect("a later barrier hung");
    assert_eq!(r.unwrap_err(), Error::PeerDied(dead));
    survivors_meet(world, dead).await;
}

/// The survivors meet through the lowest live rank, then linger.
async fn survivors_meet(world: &Communicator, dead: i32) {
    let (rank, size) = (world.rank(), world.size());
    let hub = if dead == 0 { 1 } else { 0 };
    if rank == hub {
        for r in (0..size).filter(|&r| r != dead && r != hub) {
            world.recv::<u8>(r, 9).await.unwrap();
        }
        for r in (0..size).filter(|&r| r != dead && r != hub) {
            world.send(&[1u8], r, 10).await.unwrap();
        }
    } else {
        world.send(&[1u8], hub, 9).await.unwrap();
        world.recv::<u8>(hub, 10).await.unwrap();
    }
    println!("ok death_mid_agreement_{dead} rank {rank}");
    std::thread::sleep(Duration::from_millis(500));
}

/// Every rank but 0 starts a barrier, drops it and leaves (its `Mpi` is
/// dropped, finalizing); rank 0 joins the barrier only after their drain
/// window (2 s). Every rank called the barrier: rank 0's completes, or at
/// least fails, and never hangs.
pub(crate) async fn shutdown_mid_agreement(world: &Communicator) {
    let rank = world.rank();
    world.barrier().await.unwrap();
    if rank != 0 {
        drop(world.barrier());
        return;
    }
    weft::time::sleep(Duration::from_secs(3)).await;
    let r = weft::time::timeout(Duration::from_secs(20), world.barrier()).await;
    assert!(r.is_ok(), "rank 0's barrier hung: the others left mid-agreement");
}

/// A duplicate, then at once a collective on the same communicator that
/// runs an MPI collective (not riding in the agreement): both complete,
/// right, on every rank. Open MPI's `MPI_Comm_idup` posts its own
/// nonblocking collectives on the parent while it progresses.
pub(crate) async fn idup_then_collective(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let n = size as u64;
    for round in 0..100u32 {
        let twin = world.duplicate();
        let big = world.all_reduce(vec![round; 20_000], ReduceOp::Max);
        let bcast = world.broadcast(vec![rank as u8; 300], 0);
        let twin = twin.await.expect("duplicate");
        assert!(big.await.unwrap().iter().all(|&x| x == round));
        assert!(bcast.await.unwrap().iter().all(|&x| x == 0));
        assert_eq!(twin.all_reduce(vec![1u64], ReduceOp::Sum).await.unwrap(), [n]);
    }
}

/// Every rank starts a duplicate and a grid, drops both requests, and
/// leaves at once: the units finish while MPI is finalized (the engine
/// drains them) and every rank finalizes, so `mpirun` reports a clean
/// exit.
pub(crate) async fn dropped_duplicate_at_exit(world: &Communicator) {
    drop(world.duplicate());
    drop(world.cart_create(&[world.size()], &[false]));
}

/// A runtime shut down while agreements are in flight (started in it,
/// some dropped, at a different point on each rank); the next runtime's
/// loop runs them on, and their handles, awaited there, complete right.
pub(crate) fn runtime_dropped_mid_agreement(mpi: weft::mpi::Mpi) {
    let world = mpi.world();
    let (rank, n) = (world.rank(), world.size() as u64);
    for i in 0..20u64 {
        let rt = weft::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let (sum, barrier) = rt.block_on(async {
            let sum = world.all_reduce(vec![i], ReduceOp::Sum);
            drop(world.all_reduce(vec![1u32; 10_000], ReduceOp::Sum));
            let barrier = world.barrier();
            if (rank as u64 + i) % 2 == 0 {
                weft::time::sleep(Duration::from_micros(100)).await;
            }
            (sum, barrier)
        });
        drop(rt);
        let rt = weft::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            assert_eq!(sum.await.unwrap(), [n * i]);
            barrier.await.unwrap();
            assert_eq!(world.all_reduce(vec![1u64], ReduceOp::Sum).await.unwrap(), [n]);
        });
    }
    drop((world, mpi));
    println!("ok runtime_dropped_mid_agreement rank {rank}");
}
