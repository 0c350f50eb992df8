//! Rank programs for the MPI halves of the fault-injection and composition
//! tests (issue 22.4 and 22.5; `tests/mpi_faults.rs` runs them):
//! `mpi-faults <scenario>`. Each checks what it states and prints
//! `ok <scenario> rank <r>`; a failed check panics (and aborts the job).
//!
//! - `race-recv` (a singleton): a receive is a request posted when made
//!   (mpi4py's `irecv`): dropped before a message matched it, it takes
//!   none; one that matched hands its message back (see `select-recv`).
//!   First, 10,000 receives dropped pending in a race loop while nothing
//!   is sent: the engine holds none of them afterwards and every message
//!   sent then reaches a later receive. Then the cancel-safe loop: one
//!   receive raced 10,000 times *by reference* while messages to self
//!   arrive at random moments, a new one posted only when it completed:
//!   every message received exactly once, in order, and the engine holds
//!   no request at the end. Last, a receive dropped after its message
//!   arrived: the next receive gets the message as from MPI (as `u32`s,
//!   the same bytes; into a buffer too small, `Truncated`), in order.
//! - `select-recv` (2 ranks): the Tokio-style loop, a NEW receive each
//!   round raced against a future that often wins (a yield, one poll, or
//!   a timer of a few microseconds, or ready at once; polled before or
//!   after the receive),
//!   the loser dropped. Rank 1 sends 2,000
//!   numbered messages (some 256 KiB, so a dropped receive is often still
//!   in flight in MPI) at random moments; rank 0's receives are typed,
//!   any-source/any-tag and into a caller's buffer in turn. A receive
//!   dropped after its message matched hands the message back to the next
//!   receive: every message arrives exactly once, in order, whole, and the
//!   engine holds nothing at the end.
//! - `shutdown-pending` (a singleton): a runtime shut down while receives,
//!   a probe and a large send wait in the engine: every task is cancelled,
//!   the engine holds nothing, and MPI finalizes (exit 0).
//! - `promise-shutdown` (a singleton): a send turned into a promise with
//!   done callbacks, on a runtime that is shut down before the send
//!   completes; the matching receive, on a second runtime, completes it:
//!   each callback runs at most once and is dropped exactly once, nothing
//!   panics or hangs.
//! - `die-mid-collective` (3 ranks): the ranks loop over `all_reduce`;
//!   rank 2 exits in the middle. The job must end (with an error), not
//!   hang: the test bounds it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use weft::future::{Either, race2};
use weft::mpi::{Mpi, ReduceOp};
use weft_tests::{DropCounter, Rng};

fn main() {
    let scenario = std::env::args().nth(1).expect("usage: mpi-faults <scenario>");
    let mpi = Mpi::init().expect("MPI initialises");
    let rank = mpi.rank();
    match scenario.as_str() {
        "race-recv" => race_recv(&mpi),
        "select-recv" => select_recv(&mpi),
        "shutdown-pending" => shutdown_pending(&mpi),
        "promise-shutdown" => promise_shutdown(&mpi),
        "die-mid-collective" => die_mid_collective(&mpi),
        other => panic!("no scenario {other}"),
    }
    println!("ok {scenario} rank {rank}");
}

fn runtime() -> weft::Runtime {
    weft::Builder::new_multi_thread().worker_threads(2).build().unwrap()
}

/// Pending on its first poll, ready on the next (the racer is polled once,
/// then dropped).
fn after_one_poll() -> impl std::future::Future<Output = ()> {
    let mut polled = false;
    std::future::poll_fn(move |cx| {
        if polled {
            std::task::Poll::Ready(())
        } else {
            polled = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
}

fn race_recv(mpi: &Mpi) {
    let world = mpi.world();
    let rt = runtime();
    let messages = 2_000u64;
    rt.block_on(async {
        // Nothing is sent yet: every dropped receive is unmatched, so it
        // leaves the line and takes nothing.
        for _ in 0..10_000 {
            let r = race2(world.recv::<u64>(0, 6), after_one_poll()).await;
            assert!(matches!(r, Either::Right(())), "a receive completed with nothing sent");
        }
        assert_eq!(
            mpi.pending(),
            0,
            "unmatched receives dropped in a race stayed in the engine"
        );
        for n in 0..3u64 {
            world.send(&[n], 0, 6).await.unwrap();
        }
        for n in 0..3u64 {
            let (m, _) = weft::time::timeout(Duration::from_secs(20), world.recv::<u64>(0, 6))
                .await
                .expect("a dropped unmatched receive took a message")
                .unwrap();
            assert_eq!(m, [n]);
        }
        let sender = {
            let world = world.clone();
            weft::spawn(async move {
                let mut rng = Rng::new(9);
                for n in 0..messages {
                    world.send(&[n], 0, 5).await.unwrap();
                    for _ in 0..rng.range(0, 8) {
                        weft::task::yield_now().await;
                    }
                }
            })
        };
        let mut got = Vec::new();
        let mut receive = world.recv::<u64>(0, 5);
        for _ in 0..10_000 {
            if let Either::Left(received) = race2(&mut receive, after_one_poll()).await {
                got.extend(received.unwrap().0);
                receive = world.recv::<u64>(0, 5);
            }
        }
        drop(receive);
        sender.await.unwrap();
        while got.len() < messages as usize {
            let (m, _) = weft::time::timeout(Duration::from_secs(20), world.recv::<u64>(0, 5))
                .await
                .expect("a message was lost by a dropped receive")
                .unwrap();
            got.extend(m);
        }
        assert_eq!(
            got,
            (0..messages).collect::<Vec<_>>(),
            "messages lost, repeated or reordered"
        );
        returned_as_from_mpi(&world).await;
    });
    drop(rt);
    assert_eq!(mpi.pending(), 0, "dropped receives left requests in the engine");
}

/// A receive dropped after its message arrived (its output not taken)
/// hands the message back to the next receive, which gets it as it would
/// from MPI: another element type sees the same bytes, a buffer too small
/// fails with `Truncated` (the message consumed), and the messages after it
/// keep their order.
async fn returned_as_from_mpi(world: &weft::mpi::Communicator) {
    /// A receive for tag 4, dropped once its message has arrived.
    async fn drop_after_arrival(world: &weft::mpi::Communicator) {
        let receive = world.recv::<u64>(0, 4);
        let start = Instant::now();
        while !receive.is_done() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "a message to self never arrived"
            );
            weft::task::yield_now().await;
        }
        drop(receive);
    }
    world.send(&[0x0102_0304_0506_0708u64], 0, 4).await.unwrap();
    world.send(&[1u64, 2, 3, 4], 0, 4).await.unwrap();
    world.send(&[5u64], 0, 4).await.unwrap();
    drop_after_arrival(world).await;
    let (halves, status) = weft::time::timeout(Duration::from_secs(20), world.recv::<u32>(0, 4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.count(), 2);
    assert_eq!(
        halves,
        [0x0506_0708, 0x0102_0304],
        "a returned message changed its bytes"
    );
    drop_after_arrival(world).await;
    let small = weft::time::timeout(Duration::from_secs(20), world.recv_into(vec![0u64; 2], 0, 4))
        .await
        .unwrap();
    assert!(
        matches!(small, Err(weft::mpi::Error::Truncated { capacity: 2 })),
        "a returned message too long for the buffer: {small:?}"
    );
    let (last, _) = weft::time::timeout(Duration::from_secs(20), world.recv::<u64>(0, 4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last, [5], "the message after the truncated one");
}

/// Message `n` of `select-recv`: `n` first, then its length's filler.
fn numbered(n: u64) -> Vec<u64> {
    let len = if n % 50 == 7 { 512 * 1024 } else { 1 + (n % 5) as usize };
    let mut m = vec![n ^ 0xA5A5; len];
    m[0] = n;
    m
}

fn select_recv(mpi: &Mpi) {
    const MESSAGES: u64 = 2_000;
    let world = mpi.world();
    let rt = runtime();
    if mpi.rank() == 1 {
        rt.block_on(async {
            let mut rng = Rng::new(11);
            for n in 0..MESSAGES {
                world.send(&numbered(n), 0, 7).await.unwrap();
                for _ in 0..rng.range(0, 4) {
                    weft::task::yield_now().await;
                }
            }
            // Rank 0 says it has every message.
            world.recv::<u8>(0, 8).await.unwrap();
        });
        drop(rt);
        assert_eq!(mpi.pending(), 0, "the sender left work in the engine");
        return;
    }
    let (mut rounds, mut lost_races) = (0u64, 0u64);
    rt.block_on(async {
        let mut next = 0u64;
        while next < MESSAGES {
            rounds += 1;
            assert!(rounds < 50_000_000, "select-recv made no progress (message {next})");
            // A new receive every round, of one of three kinds, posted
            // here (as `select!` makes its branches' futures).
            let receive: std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u64>, weft::mpi::Error>>>> =
                match rounds % 3 {
                    0 => {
                        let r = world.recv::<u64>(1, 7);
                        Box::pin(async move { r.await.map(|(m, _)| m) })
                    }
                    1 => {
                        let r = world.recv::<u64>(weft::mpi::ANY_SOURCE, weft::mpi::ANY_TAG);
                        Box::pin(async move { r.await.map(|(m, _)| m) })
                    }
                    _ => {
                        let r = world.recv_into(vec![0u64; 512 * 1024 + 1], 1, 7);
                        Box::pin(async move {
                            let (mut b, status) = r.await?;
                            b.truncate(status.count());
                            Ok(b)
                        })
                    }
                };
            // The other branch: polled first (it wins as soon as it is
            // ready, even with the receive ready too) or second.
            let won = match rounds % 5 {
                0 => match race2(after_one_poll(), receive).await {
                    Either::Left(()) => None,
                    Either::Right(m) => Some(m),
                },
                1 => match race2(weft::task::yield_now(), receive).await {
                    Either::Left(()) => None,
                    Either::Right(m) => Some(m),
                },
                2 => match race2(receive, after_one_poll()).await {
                    Either::Left(m) => Some(m),
                    Either::Right(()) => None,
                },
                3 => weft::time::timeout(Duration::from_micros(5), receive).await.ok(),
                // Another branch ready at once: the receive, posted when
                // made (and often complete at once), is never polled.
                _ => match race2(std::future::ready(()), receive).await {
                    Either::Left(()) => None,
                    Either::Right(m) => Some(m),
                },
            };
            let Some(m) = won else {
                lost_races += 1;
                continue;
            };
            let m = m.unwrap();
            assert_eq!(m.first(), Some(&next), "a message was lost, repeated or reordered");
            assert_eq!(m, numbered(next), "message {next} arrived damaged");
            next += 1;
        }
        world.send(&[1u8], 1, 8).await.unwrap();
    });
    drop(rt);
    assert!(lost_races > 0, "no receive was ever dropped: the test tests nothing");
    println!("select-recv: {MESSAGES} messages in {rounds} rounds, {lost_races} receives dropped");
    assert_eq!(mpi.pending(), 0, "dropped receives left work in the engine");
}

fn shutdown_pending(mpi: &Mpi) {
    let world = mpi.world();
    let rt = runtime();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for tag in 0..4 {
        let (world, guard) = (world.clone(), DropCounter::new(&drops));
        handles.push(rt.spawn(async move {
            let _guard = guard;
            world.recv::<u8>(0, 100 + tag).await.map(drop)
        }));
    }
    let (probe_world, guard) = (world.clone(), DropCounter::new(&drops));
    handles.push(rt.spawn(async move {
        let _guard = guard;
        probe_world.probe::<u8>(0, 200).await.map(drop)
    }));
    rt.block_on(async {
        for _ in 0..20 {
            weft::task::yield_now().await;
        }
        weft::time::sleep(Duration::from_millis(20)).await;
    });
    let start = Instant::now();
    drop(rt);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the shutdown took {:?}",
        start.elapsed()
    );
    assert_eq!(drops.load(SeqCst), 5, "every pending MPI task was dropped");
    for handle in handles {
        assert!(futures::executor::block_on(handle).unwrap_err().is_cancelled());
    }
    assert_eq!(
        mpi.pending(),
        0,
        "the engine holds no request after the runtime is gone"
    );
    // MPI still works on another runtime, and finalizes at exit.
    let rt = runtime();
    rt.block_on(async {
        world.send(&[42u8], 0, 300).await.unwrap();
        let (m, _) = world.recv::<u8>(0, 300).await.unwrap();
        assert_eq!(m, [42]);
    });
}

fn promise_shutdown(mpi: &Mpi) {
    let world = mpi.world();
    let mut pending_at_shutdown = 0;
    for round in 0..20 {
        let a = runtime();
        let callbacks = 4;
        let ran = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        // A send large enough to wait for its receive (rendezvous), as a
        // promise whose callbacks belong to runtime `a`.
        let tag = 400 + round;
        let promise = {
            // The callbacks are added where `a` is current: they belong to
            // its loop.
            let _a = a.enter();
            let promise = world.isend(vec![round as u8; 4 << 20], 0, tag).into_promise();
            for _ in 0..callbacks {
                let (ran, guard) = (ran.clone(), DropCounter::new(&dropped));
                promise.add_done_callback(move |p| {
                    let _guard = guard;
                    assert!(p.result().is_ok());
                    ran.fetch_add(1, SeqCst);
                });
            }
            promise
        };
        // Runtime `a` shuts down (in the background on odd rounds) while the
        // receive that completes the send is posted on runtime `b`.
        let b = runtime();
        let receiving = {
            let world = world.clone();
            b.spawn(async move { world.recv::<u8>(0, tag).await.unwrap().0.len() })
        };
        pending_at_shutdown += usize::from(!promise.done());
        if round % 2 == 1 {
            a.shutdown_background();
        } else {
            drop(a);
        }
        let len = b.block_on(async {
            weft::time::timeout(Duration::from_secs(20), receiving)
                .await
                .expect("the receive completes")
                .unwrap()
        });
        assert_eq!(len, 4 << 20);
        b.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !(promise.done() && dropped.load(SeqCst) == callbacks) {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: promise done {}, callbacks dropped {}",
                    promise.done(),
                    dropped.load(SeqCst)
                );
                weft::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(ran.load(SeqCst) <= callbacks, "a callback ran twice");
        drop(b);
    }
    println!("promise-shutdown: the send was still pending at {pending_at_shutdown} of 20 shutdowns");
    assert_eq!(mpi.pending(), 0);
}

fn die_mid_collective(mpi: &Mpi) {
    let world = mpi.world();
    let rt = runtime();
    rt.block_on(async {
        for round in 0..1_000u64 {
            if world.rank() == 2 && round == 50 {
                // Dies without a word, mid-loop: its peers are inside (or
                // about to enter) the next all_reduce.
                std::process::exit(3);
            }
            let sum = world.all_reduce(vec![round], ReduceOp::Sum).await;
            match sum {
                Ok(sum) => assert_eq!(sum[0], round * world.size() as u64),
                Err(e) => {
                    // MPI told us: an error is a fine ending.
                    println!("rank {} round {round}: all_reduce failed: {e}", world.rank());
                    std::process::exit(4);
                }
            }
        }
    });
    panic!("the job went on after rank 2 died");
}
