//! Scenarios for weft-mpi as an mpi4py user expects it (issue 17, points
//! 1 and 6): operations that post when made, waiting on a mix of them,
//! `sendrecv` with `PROC_NULL`, collectives of varying lengths, Cartesian
//! topologies and object messages.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weft::mpi::{Communicator, Error, PROC_NULL, Peer, ReduceOp, Tag, dims_create, wait_all, wait_any};

/// mpi4py's order: post the receive, post the send, wait for the send,
/// then the receive; at 8 B (eager), 64 KiB and 16 MiB (rendezvous: the
/// send completes only once the peer's receive is posted). Ranks beyond 1
/// pair up the same way.
pub(crate) async fn mpi4py_order(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    if size < 2 {
        return;
    }
    let peer = rank ^ 1;
    for bytes in [8usize, 64 << 10, 16 << 20] {
        if peer >= size {
            break; // unpaired: only the barrier
        }
        let incoming = world.recv_into(vec![0u8; bytes], peer, 7); // posted now
        let outgoing = world.isend(vec![rank as u8 + 1; bytes], peer, 7); // posted now
        let sent = outgoing.await.unwrap(); // the peer's receive was posted first
        assert_eq!(sent.len(), bytes);
        let (got, status) = incoming.await.unwrap();
        assert_eq!((status.source(), status.count()), (peer, bytes));
        assert!(got.iter().all(|&b| b == peer as u8 + 1), "{bytes} B arrived intact");
    }
    world.barrier().await.unwrap();
}

/// A collective posted, then computation with no await: another worker's
/// loop progresses it meanwhile, so it is done when the computation ends.
pub(crate) async fn allreduce_overlap(world: &Communicator) {
    let (rank, size) = (world.rank() as u64, world.size() as u64);
    for round in 0..5u64 {
        let sum = world.all_reduce(vec![rank + round; 1000], ReduceOp::Sum);
        // Up to 10 s of computation (it stops as soon as the collective is
        // done: this is not a timing test); no await in it.
        let start = Instant::now();
        let mut acc = 0u64;
        while !sum.is_done() && start.elapsed() < Duration::from_secs(10) {
            for i in 0..10_000u64 {
                acc = acc.wrapping_mul(31).wrapping_add(i);
            }
        }
        assert!(
            sum.is_done(),
            "the all-reduce progressed while this task computed ({acc})"
        );
        let expected = size * (size - 1) / 2 + size * round;
        assert!(sum.await.unwrap().iter().all(|&x| x == expected));
    }
}

/// Waitall and Waitany over a mix of sends, receives and collectives.
pub(crate) async fn wait_mix(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let right = (rank + 1) % size;
    let left = (rank + size - 1) % size;
    let recv = world.recv::<u32>(left, 3);
    let send = world.isend(vec![rank as u32; 10], right, 3);
    let sum = world.all_reduce(vec![1u64], ReduceOp::Sum);
    let barrier = world.barrier();
    let all = [
        recv.completion(),
        send.completion(),
        sum.completion(),
        barrier.completion(),
    ];
    let (first, outcome) = wait_any(all.clone()).await.expect("four requests");
    assert!(first < 4 && outcome.is_ok());
    wait_all(all.clone()).await.unwrap();
    assert!(recv.is_done() && send.is_done() && sum.is_done() && barrier.is_done());
    // Weft's own combinators take the same handles.
    weft::future::gather(all).await.unwrap();
    let (data, status) = recv.await.unwrap();
    assert_eq!((data, status.source()), (vec![left as u32; 10], left));
    assert_eq!(send.await.unwrap(), vec![rank as u32; 10]);
    assert_eq!(sum.await.unwrap(), [size as u64]);
    barrier.await.unwrap();
    // A failed request in the mix: wait_all reports it.
    let bad = world.isend(vec![1u8], size + 3, 0);
    let good = world.barrier();
    let err = wait_all([good.completion(), bad.completion()]).await.unwrap_err();
    assert!(matches!(err, Error::Mpi { .. }), "{err}");
    good.await.unwrap();
}

/// A non-periodic shift with `sendrecv`: the edge ranks' missing neighbour
/// is `PROC_NULL`, whose half does nothing.
pub(crate) async fn sendrecv_shift(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let right = if rank + 1 < size {
        Peer::Rank(rank + 1)
    } else {
        PROC_NULL
    };
    let left = if rank > 0 { Peer::Rank(rank - 1) } else { PROC_NULL };
    // Everyone sends right and receives from the left.
    let (got, status) = world
        .sendrecv::<_, i64>(vec![rank as i64 * 10; 3], right, 4, left, 4)
        .await
        .unwrap();
    if rank == 0 {
        assert!(got.is_empty());
        assert_eq!(status.count(), 0);
        assert!(
            status.source() < 0,
            "the source of a receive from PROC_NULL is PROC_NULL"
        );
    } else {
        assert_eq!((got, status.source()), (vec![(rank as i64 - 1) * 10; 3], rank - 1));
    }
    // And back: 16 MiB each way at once (neither blocks the other).
    let big = vec![rank as u8; 16 << 20];
    let (got, _) = world.sendrecv::<_, u8>(big, left, 5, right, 5).await.unwrap();
    if rank + 1 < size {
        assert!(got.len() == 16 << 20 && got.iter().all(|&b| b == rank as u8 + 1));
    }
    // Ranks and tags take the same types everywhere.
    let sent = world.isend(vec![1u8], PROC_NULL, Tag::Value(9)).await.unwrap();
    assert_eq!(sent, [1]);
    let (nothing, _) = world.recv::<u8>(PROC_NULL, 9).await.unwrap();
    assert!(nothing.is_empty());
    world.barrier().await.unwrap();
}

/// gatherv, all_gatherv, scatterv with lengths that differ by rank (zero
/// included).
pub(crate) async fn varying(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let mine: Vec<u32> = (0..rank as u32 * 3).map(|i| rank as u32 * 100 + i).collect();
    let expected: Vec<Vec<u32>> = (0..size as u32)
        .map(|r| (0..r * 3).map(|i| r * 100 + i).collect())
        .collect();
    let gathered = world.gatherv(mine.clone(), 0).await.unwrap();
    assert_eq!(gathered, (rank == 0).then(|| expected.clone()));
    assert_eq!(world.all_gatherv(mine).await.unwrap(), expected);
    let blocks = (rank == 0).then(|| {
        (0..size)
            .map(|r| vec![r as u16; r as usize * 2 + 1])
            .collect::<Vec<_>>()
    });
    let block = world.scatterv(blocks, 0).await.unwrap();
    assert_eq!(block, vec![rank as u16; rank as usize * 2 + 1]);
}

/// A 2-D grid: coordinates, shifts (PROC_NULL past the non-periodic edge,
/// wrapping along the periodic one), and an exchange along each.
pub(crate) async fn cartesian(world: &Communicator) {
    let size = world.size();
    let dims = dims_create(size, 2);
    let grid = world.cart_create(&dims, &[true, false]).await.unwrap();
    let coords = grid.coords().to_vec();
    assert_eq!(grid.rank_of(&coords), Some(grid.rank()));
    for (direction, periodic) in [(0, true), (1, false)] {
        let (source, dest) = grid.shift(direction, 1);
        let mut next = coords.clone();
        next[direction] += 1;
        let expected_dest = grid.rank_of(&next).map_or(PROC_NULL, Peer::Rank);
        assert_eq!(dest, expected_dest);
        if !periodic && coords[direction] == dims[direction] - 1 {
            assert_eq!(dest, PROC_NULL);
        }
        let (got, status) = grid
            .sendrecv::<_, i32>(coords.clone(), dest, 1, source, 1)
            .await
            .unwrap();
        match source {
            Peer::Rank(r) => {
                assert_eq!(status.source(), r);
                let mut theirs = coords.clone();
                theirs[direction] = (coords[direction] - 1).rem_euclid(dims[direction]);
                assert_eq!(got, theirs);
            }
            _ => assert!(got.is_empty()),
        }
    }
    // Every rank must pass a grid that fits: an error everywhere otherwise.
    let err = world.cart_create(&[size + 1], &[false]).await.unwrap_err();
    assert!(matches!(err, Error::Mpi { .. }), "{err}");
    world.barrier().await.unwrap();
}

/// Object messages: any serde value, point-to-point and broadcast (small,
/// riding in the agreement, and large); a value of another type is an
/// error, not garbage.
pub(crate) async fn objects(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let table: BTreeMap<String, Vec<u32>> = (0..3).map(|i| (format!("k{i}"), vec![i; i as usize])).collect();
    if size > 1 {
        if rank == 0 {
            world.send_obj(&table, 1, 1).await.unwrap();
            world.send_obj(&"not a number".to_owned(), 1, 2).await.unwrap();
            // Encodings that start like the type asked for.
            world.send_obj(&vec![1u8, 2, 3, 4], 1, 3).await.unwrap();
            world.send_obj(&(7u32, "hello"), 1, 4).await.unwrap();
        } else if rank == 1 {
            let (got, status) = world.recv_obj::<BTreeMap<String, Vec<u32>>>(0, 1).await.unwrap();
            assert_eq!((got, status.source()), (table.clone(), 0));
            let err = world.recv_obj::<Vec<f64>>(0, 2).await.unwrap_err();
            assert!(matches!(err, Error::Serialization(_)), "{err}");
            let err = world.recv_obj::<u8>(0, 3).await.unwrap_err();
            assert!(matches!(err, Error::Serialization(_)), "a Vec<u8> read as a u8: {err}");
            let err = world.recv_obj::<u32>(0, 4).await.unwrap_err();
            assert!(
                matches!(err, Error::Serialization(_)),
                "a (u32, &str) read as a u32: {err}"
            );
        }
    }

    let small = world.bcast_obj((rank == 0).then_some(&table), 0).await.unwrap();
    assert_eq!(small, table);
    let large: Vec<String> = (0..2000).map(|i| format!("item {i}")).collect();
    let got = world.bcast_obj((rank == 0).then_some(&large), 0).await.unwrap();
    assert_eq!(got, large);
    // Root passes nothing: every rank fails.
    let err = world.bcast_obj::<u32>(None, 0).await.unwrap_err();
    assert!(matches!(err, Error::Mpi { .. }), "{err}");
    world.barrier().await.unwrap();
}
