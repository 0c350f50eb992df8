//! Rank programs for weft-mpi's multi-rank tests (`tests/mpirun.rs` runs
//! them under `mpirun -n 2` and `-n 3`): `mpi-scenarios <name>`. Each
//! asserts what it checks and exits 0; a failed assertion aborts the job
//! (a panicking rank calls `MPI_Abort`), which `mpirun` reports as a
//! failure.

use std::time::Duration;
use weft::mpi::{ANY_SOURCE, ANY_TAG, Communicator, Error, Mpi, ReduceOp};

#[path = "../mpi/agreement.rs"]
mod agreement;
#[path = "../mpi/mpi4py.rs"]
mod mpi4py;
#[path = "../mpi/pool.rs"]
mod pool;
#[path = "../mpi/trusted.rs"]
mod trusted;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scenario = std::env::args().nth(1).expect("usage: mpi-scenarios <scenario>");
    if let Some(level) = scenario.strip_prefix("foreign_") {
        trusted::foreign_init(level);
        return Ok(());
    }
    let mpi = Mpi::init().expect("MPI initialises");
    match scenario.as_str() {
        "last_handle_on_another_thread" => {
            trusted::last_handle_on_another_thread(mpi);
            return Ok(());
        }
        "pool_error_exit" => return pool::pool_error_exit(mpi),
        "runtime_dropped_mid_agreement" => {
            agreement::runtime_dropped_mid_agreement(mpi);
            return Ok(());
        }
        _ => {}
    }
    let world = mpi.world();
    if scenario == "observe" {
        observe(&world);
        println!("ok {scenario} rank {}", world.rank());
        return Ok(());
    }
    if scenario == "node" {
        println!(
            "rank {}: local {} of {}, node cores {}, per rank {}, oversubscribed {}",
            mpi.rank(),
            mpi.local_rank(),
            mpi.local_size(),
            mpi.node_cores(),
            mpi.cores_per_rank(),
            mpi.oversubscribed()
        );
    }
    if scenario == "busy_gap" {
        let rt = weft::Builder::new_current_thread().build().expect("a runtime");
        rt.block_on(trusted::busy_gap(&world));
        println!("ok {scenario} rank {}", world.rank());
        return Ok(());
    }
    let rt = weft::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    rt.block_on(async {
        match scenario.as_str() {
            "point_to_point" => point_to_point(&world).await,
            "any_source" => any_source(&world).await,
            "truncate" => truncate(&world).await,
            "cancel" => cancel(&world).await,
            "many" => many(&world).await,
            "collectives" => collectives(&world).await,
            "bad_input" => bad_input(&world).await,
            "pool_map" => pool::pool_map(&world).await,
            "pool_death" => pool::pool_death(&world).await,
            "pool_drop" => pool::pool_drop(&world).await,
            "pool_concurrency" => pool::pool_concurrency(&world).await,
            "pool_mismatch" => pool::pool_mismatch(&world).await,
            "mpi4py_order" => mpi4py::mpi4py_order(&world).await,
            "allreduce_overlap" => mpi4py::allreduce_overlap(&world).await,
            "wait_mix" => mpi4py::wait_mix(&world).await,
            "sendrecv_shift" => mpi4py::sendrecv_shift(&world).await,
            "varying" => mpi4py::varying(&world).await,
            "cartesian" => mpi4py::cartesian(&world).await,
            "objects" => mpi4py::objects(&world).await,
            "node" => {}
            "peer_death" => trusted::peer_death(&world).await,
            "freed_comm_after_pool" => trusted::freed_comm_after_pool(&world).await,
            "freed_comm_after_dropped_recv" => trusted::freed_comm_after_dropped_recv(&world).await,
            "cancelled_collectives" => trusted::cancelled_collectives(&world).await,
            "collective_order" => trusted::collective_order(&world).await,
            "disagreeing_collectives" => trusted::disagreeing_collectives(&world).await,
            "rung_after_gap" => trusted::rung_after_gap(&world).await,
            "agreement_rounds" => trusted::agreement_rounds(&world).await,
            "tag_wrap" => agreement::tag_wrap(&world).await,
            "comm_dropped_in_flight" => agreement::comm_dropped_in_flight(&world).await,
            "user_any_tag" => agreement::user_any_tag(&world).await,
            "shutdown_mid_agreement" => agreement::shutdown_mid_agreement(&world).await,
            "dropped_duplicate_at_exit" => agreement::dropped_duplicate_at_exit(&world).await,
            "idup_then_collective" => agreement::idup_then_collective(&world).await,
            other if other.starts_with("death_mid_agreement_") => {
                let dead = other["death_mid_agreement_".len()..].parse().expect("a rank");
                agreement::death_mid_agreement(&world, dead).await;
            }
            other => panic!("no scenario {other}"),
        }
    });
    println!("ok {scenario} rank {}", world.rank());
    Ok(())
}

/// A user's element type on a derived MPI datatype (two `u32`s, one
/// contiguous type): probes and receives count whole `Pair`s.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pair {
    a: u32,
    b: u32,
}

// SAFETY: the datatype is a contiguous type of two `u32`s, committed once
// and never freed: exactly `Pair`'s 8 bytes, with no padding.
unsafe impl weft::mpi::Equivalence for Pair {
    type Out = mpi::datatype::DatatypeRef<'static>;
    fn equivalent_datatype() -> Self::Out {
        use mpi::raw::{AsRaw, FromRaw};
        static RAW: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let raw = *RAW.get_or_init(|| {
            let pair = mpi::datatype::UserDatatype::contiguous(2, &u32::equivalent_datatype());
            let raw = pair.as_raw();
            // Kept for the life of the process (a `DatatypeRef` borrows it).
            std::mem::forget(pair);
            raw.0 as usize
        });
        // SAFETY: a committed datatype that is never freed.
        unsafe { mpi::datatype::DatatypeRef::from_raw(mpi::ffi::MPI_Datatype(raw as *mut _)) }
    }
}

// SAFETY: any 8 bytes are a `Pair`, and its datatype describes all of them.
unsafe impl weft::mpi::Plain for Pair {}

/// Typed messages both ways, owned (zero-copy) sends, tags and probe.
async fn point_to_point(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    assert!(size >= 2, "run with at least 2 ranks");
    if rank == 0 {
        world.send(&[1.5f64, -2.0, 3.25], 1, 10).await.unwrap();
        let big: Vec<u32> = (0..300_000).collect(); // 1.2 MB: rendezvous
        let back = world.isend(big, 1, 11).await.unwrap();
        assert_eq!(back.len(), 300_000, "the owned buffer comes back");
        world.send::<u8>(&[], 1, 12).await.unwrap();
        // The done-callback API of Weft's own future, on an MPI send.
        let promise = world.isend(vec![5u16; 4], 1, 13).into_promise();
        let (tx, rx) = std::sync::mpsc::channel();
        promise.add_done_callback_inline(move |p| tx.send(p.result().is_ok()).unwrap());
        let completed = promise.await.unwrap();
        assert_eq!(completed.take(), Some(vec![5u16; 4]));
        assert!(rx.recv().unwrap(), "the done callback ran");
        // Bytes received as wider elements (counts below).
        world.send(&[1u8, 2, 3, 4, 5, 6], 1, 14).await.unwrap();
        world.send(&[1u8, 2, 3, 4, 5, 6, 7, 8], 1, 15).await.unwrap();
        world.send(&[1u8, 2, 3, 4, 5, 6], 1, 16).await.unwrap();
        world.send(&[7u32, 8, 9, 10], 1, 17).await.unwrap();
        world.send(&[7u32, 8, 9], 1, 18).await.unwrap();
        let (reply, status) = world.recv::<i64>(1, ANY_TAG).await.unwrap();
        assert_eq!((reply, status.source(), status.tag()), (vec![-7], 1, 99));
    } else if rank == 1 {
        let status = world.probe::<f64>(0, 10).await.unwrap();
        assert_eq!((status.source(), status.tag(), status.count()), (0, 10, 3));
        let (floats, _) = world.recv::<f64>(0, 10).await.unwrap();
        assert_eq!(floats, [1.5, -2.0, 3.25]);
        let (ints, status) = world.recv_into(vec![0u32; 400_000], 0, 11).await.unwrap();
        assert_eq!(status.count(), 300_000);
        assert!(ints[..300_000].iter().enumerate().all(|(i, &v)| v == i as u32));
        let (empty, status) = world.recv::<u8>(0, 12).await.unwrap();
        assert!(empty.is_empty() && status.count() == 0);
        assert_eq!(world.recv::<u16>(0, 13).await.unwrap().0, [5; 4]);
        // A receive's count is MPI's (what a probe, which asks MPI, says):
        // none when the bytes are not a whole number of elements.
        let seen = world.probe::<u32>(0, 14).await.unwrap();
        let (none, status) = world.recv::<u32>(0, 14).await.unwrap();
        assert_eq!((seen.count(), status.count(), none.len()), (0, 0, 0));
        let seen = world.probe::<u32>(0, 15).await.unwrap();
        let (words, status) = world.recv::<u32>(0, 15).await.unwrap();
        assert_eq!((seen.count(), status.count()), (2, 2));
        let want = [u32::from_ne_bytes([1, 2, 3, 4]), u32::from_ne_bytes([5, 6, 7, 8])];
        assert_eq!(words, want);
        let seen = world.probe::<u16>(0, 16).await.unwrap();
        let (halves, status) = world.recv_into(vec![0u16; 8], 0, 16).await.unwrap();
        assert_eq!((seen.count(), status.count(), status.tag()), (3, 3, 16));
        assert_eq!(halves[..3], [1, 2, 3].map(|i| u16::from_ne_bytes([2 * i - 1, 2 * i])));
        // A derived datatype: whole `Pair`s, by probe and receive alike,
        // and none where the bytes are not whole ones.
        let seen = world.probe::<Pair>(0, 17).await.unwrap();
        assert_eq!(world.try_probe::<Pair>(0, 17).unwrap().map(|s| s.count()), Some(2));
        let (pairs, status) = world.recv::<Pair>(0, 17).await.unwrap();
        assert_eq!((seen.count(), status.count()), (2, 2));
        assert_eq!(pairs, [Pair { a: 7, b: 8 }, Pair { a: 9, b: 10 }]);
        let seen = world.probe::<Pair>(0, 18).await.unwrap();
        let (pairs, status) = world.recv::<Pair>(0, 18).await.unwrap();
        assert_eq!((seen.count(), status.count(), pairs.len()), (0, 0, 0));
        world.send(&[-7i64], 0, 99).await.unwrap();
    }
    world.barrier().await.unwrap();
}

/// Every other rank sends to rank 0, which receives from any source.
async fn any_source(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    if rank == 0 {
        let mut seen = Vec::new();
        for _ in 1..size {
            let (data, status) = world.recv::<i32>(ANY_SOURCE, 5).await.unwrap();
            assert_eq!(data, [status.source() * 100]);
            seen.push(status.source());
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..size).collect::<Vec<_>>());
    } else {
        world.send(&[rank * 100], 0, 5).await.unwrap();
    }
    world.barrier().await.unwrap();
}

/// A message longer than the receive buffer is an error (and the buffer's
/// neighbours are untouched); the channel works on afterwards.
async fn truncate(world: &Communicator) {
    if world.rank() == 0 {
        world.send(&vec![7u8; 64 * 1024], 1, 1).await.unwrap();
        world.send(&[1u32, 2, 3], 1, 2).await.unwrap();
    } else if world.rank() == 1 {
        let err = world.recv_into(vec![0u8; 1000], 0, 1).await.unwrap_err();
        assert_eq!(err, Error::Truncated { capacity: 1000 });
        let (next, _) = world.recv_into(vec![0u32; 3], 0, 2).await.unwrap();
        assert_eq!(next, [1, 2, 3]);
    }
    world.barrier().await.unwrap();
}

/// A receive dropped while pending takes no message: a later receive gets
/// the one sent afterwards.
async fn cancel(world: &Communicator) {
    if world.rank() == 1 {
        let gave_up = weft::time::timeout(Duration::from_millis(50), world.recv::<u64>(0, 3)).await;
        assert!(gave_up.is_err(), "nothing was sent yet");
    }
    world.barrier().await.unwrap();
    if world.rank() == 0 {
        world.send(&[42u64], 1, 3).await.unwrap();
    } else if world.rank() == 1 {
        let (data, _) = world.recv::<u64>(0, 3).await.unwrap();
        assert_eq!(data, [42]);
    }
    world.barrier().await.unwrap();
}

/// 10,000 messages in flight at once each way, as concurrent tasks.
async fn many(world: &Communicator) {
    const N: u64 = 10_000;
    let (rank, size) = (world.rank(), world.size());
    if rank >= 2 {
        world.barrier().await.unwrap();
        return;
    }
    let peer = 1 - rank;
    let sends: Vec<_> = (0..N).map(|i| world.isend(vec![i], peer, 4)).collect();
    let recvs: Vec<_> = (0..N)
        .map(|_| {
            let world = world.clone();
            weft::spawn(async move { world.recv::<u64>(peer, 4).await.unwrap().0[0] })
        })
        .collect();
    for send in sends {
        send.await.unwrap();
    }
    let mut sum = 0;
    for recv in recvs {
        sum += recv.await.unwrap();
    }
    assert_eq!(sum, N * (N - 1) / 2, "every message arrived once ({size} ranks)");
    world.barrier().await.unwrap();
}

/// Every collective, checked against what it must compute.
async fn collectives(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let (r, n) = (rank as u64, size as u64);
    world.barrier().await.unwrap();

    // A duplicate has its own message space: a message sent on it is not
    // received on the original.
    let dup = world.duplicate().await.unwrap();
    if size > 1 {
        if rank == 0 {
            dup.send(&[1u8], 1, 0).await.unwrap();
            world.send(&[2u8], 1, 0).await.unwrap();
        } else if rank == 1 {
            assert_eq!(world.recv::<u8>(0, 0).await.unwrap().0, [2]);
            assert_eq!(dup.recv::<u8>(0, 0).await.unwrap().0, [1]);
        }
    }
    drop(dup);

    let data = if rank == 0 { vec![9u32, 8, 7] } else { vec![0; 3] };
    assert_eq!(world.broadcast(data, 0).await.unwrap(), [9, 8, 7]);

    let sum = world.reduce(vec![r, 1], ReduceOp::Sum, 0).await.unwrap();
    assert_eq!(sum, (rank == 0).then(|| vec![n * (n - 1) / 2, n]));

    let max = world.all_reduce(vec![r as f64], ReduceOp::Max).await.unwrap();
    assert_eq!(max, [(n - 1) as f64]);

    let gathered = world.gather(vec![r, r * 10], 0).await.unwrap();
    let expected: Vec<u64> = (0..n).flat_map(|i| [i, i * 10]).collect();
    assert_eq!(gathered, (rank == 0).then(|| expected.clone()));
    assert_eq!(world.all_gather(vec![r, r * 10]).await.unwrap(), expected);

    let source = (rank == 0).then(|| (0..n * 2).collect::<Vec<u64>>());
    assert_eq!(world.scatter(source, 2, 0).await.unwrap(), [r * 2, r * 2 + 1]);

    // Block j of rank i holds i * 100 + j; rank r gets i * 100 + r from each i.
    let out: Vec<u64> = (0..n).map(|j| r * 100 + j).collect();
    let got = world.all_to_all(out).await.unwrap();
    assert_eq!(got, (0..n).map(|i| i * 100 + r).collect::<Vec<_>>());
}

/// Bad ranks, tags and lengths come back as errors, not aborts.
async fn bad_input(world: &Communicator) {
    let size = world.size();
    let err = world.send(&[1u8], size + 5, 0).await.unwrap_err();
    assert!(matches!(err, Error::Mpi { .. }), "{err}");
    let err = world.send(&[1u8], 0, -3).await.unwrap_err();
    assert!(matches!(err, Error::Mpi { .. }), "{err}");
    // Root's data is too short for 2 per rank: every rank fails, none hangs.
    let data = (world.rank() == 0).then(|| vec![1u8; 3]);
    let err = world.scatter(data, 2, 0).await.unwrap_err();
    assert!(matches!(err, Error::Mpi { .. }), "{err}");
    if size > 1 {
        // Not a multiple of the size: no equal blocks, on every rank.
        let err = world.all_to_all(vec![1u8; size as usize + 1]).await.unwrap_err();
        assert!(matches!(err, Error::Mpi { .. }), "{err}");
        // Ranks disagree on the length: an error everywhere, not a write
        // past a buffer.
        let mine = if world.rank() == 0 { 3 } else { 2 };
        let err = world.all_reduce(vec![1u32; mine], ReduceOp::Sum).await.unwrap_err();
        assert!(
            matches!(&err, Error::Mpi { message, .. } if message.contains("different lengths")),
            "{err}"
        );
    }
    // A receive from a rank that does not exist fails at once.
    let err = world.recv::<u8>(size + 3, 0).await.unwrap_err();
    assert!(matches!(err, Error::Mpi { .. }), "{err}");
    let err = world.recv::<u8>(0, -2).await.unwrap_err();
    assert!(matches!(err, Error::Mpi { .. }), "{err}");
    world.barrier().await.unwrap();
}

/// What weft-mpi shows of itself (2 ranks): on rank 0, a task awaiting a
/// receive waits on source `mpi` and the peer's rank in a dump, and the
/// receive is on the timeline, on the peer's track, posted then completed.
fn observe(world: &Communicator) {
    use std::time::Instant;
    use weft::dump::{TaskState, WaitOn};
    let rank = world.rank();
    let path = std::env::temp_dir().join(format!("weft-mpi-observe-{}-{rank}.json", std::process::id()));
    let rt = weft::Builder::new_multi_thread()
        .worker_threads(2)
        .trace_file(&path)
        .build()
        .expect("a runtime");
    rt.block_on(async {
        if rank == 0 {
            let w = world.clone();
            let waiting = weft::task::Builder::new()
                .name("mpi waiter")
                .spawn(async move { w.recv::<u8>(1, 7).await.unwrap().0 });
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let dump = weft::Handle::current().dump();
                let row = dump.tasks.iter().find(|t| t.id == waiting.id());
                if row.is_some_and(|t| {
                    t.state == TaskState::Idle && matches!(t.wait, Some(WaitOn::Source { source: "mpi", id: 1 }))
                }) {
                    assert!(dump.to_string().contains("mpi #1"), "{dump}");
                    let metrics = weft::Handle::current().reactor_metrics();
                    let engine = metrics.sources.iter().find(|s| s.name == "mpi");
                    let engine = engine.expect("the engine is a source in the reactor's metrics");
                    assert!(engine.pending >= 1, "{engine:?}");
                    break;
                }
                assert!(Instant::now() < deadline, "the waiter never showed its wait:\n{dump}");
                weft::time::sleep(Duration::from_millis(2)).await;
            }
            world.send(&[1u8], 1, 6).await.unwrap();
            assert_eq!(waiting.await.unwrap(), [42]);
            // More receives, one after another (their slots may share an
            // address): each is its own operation on the timeline.
            for tag in 8..10 {
                world.recv::<u8>(1, tag).await.unwrap();
            }
        } else if rank == 1 {
            world.recv::<u8>(0, 6).await.unwrap();
            world.send(&[42u8], 0, 7).await.unwrap();
            for tag in 8..10 {
                weft::time::sleep(Duration::from_millis(5)).await;
                world.send(&[tag as u8], 0, tag).await.unwrap();
            }
        }
    });
    drop(rt);
    let trace = std::fs::read_to_string(&path).expect("the runtime wrote its trace");
    std::fs::remove_file(&path).unwrap();
    // The viewer the runtime writes beside its trace.
    let _ = std::fs::remove_file(path.with_extension("html"));
    if rank == 0 {
        for part in ["\"mpi\"", "\"peer 1\""] {
            assert!(trace.contains(part), "no {part} in the trace");
        }
        // Three receives, each posted and completed.
        let ends = trace.matches("\"name\":\"recv\"").count();
        assert!(ends >= 6, "{ends} recv events in the trace, not 6");
        assert!(trace.contains("\"ok\":true"), "the receives completed on the timeline");
    }
}
