//! Where two features meet (issue 22.5): each test is a documented promise
//! checked where a second feature presses on it.
//!
//! - Every kind of pending future (socket read, accept, timer, promise,
//!   channel receive and send, semaphore, mutex, notify, join handle) is
//!   dropped pending inside a `race2` 10,000 times: the heap ends where it
//!   began (this binary counts live heap bytes), no registration, timer or
//!   promise listener is left, and no result is lost (everything sent
//!   still arrives, in order).
//! - A runtime shut down while each kind of operation is pending drops
//!   every future exactly once, reports every task as cancelled, and its
//!   peers see the close.
//! - A promise bound to a runtime is settled from another thread while
//!   that runtime shuts down: its done callbacks run or are dropped,
//!   exactly once each, and nothing hangs or panics.
//! - Short-lived child tokens of a long-lived `CancellationToken` leave
//!   nothing behind on the parent.
//!
//! The MPI and GPU cases of the same promises: tests/tests/mpi_faults.rs
//! (`race-recv`, `shutdown-pending`, `promise-shutdown`) and
//! gpu/tests/compose.rs.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft::future::{CancellationToken, Either, race2, shield};
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream};
use weft_tests::{DropCounter, Flavor, Rng, each_flavor, runtime};

#[global_allocator]
static ALLOC: weft_tests::heap::CountingAllocator = weft_tests::heap::CountingAllocator;

/// The tests take turns: the heap count is the whole process's.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rounds of each race loop.
const ROUNDS: usize = 10_000;

/// What a race loop may leave on the heap after its warm-up: under 7 bytes
/// a round, so a leak of anything per dropped future (the smallest heap
/// block is 16 bytes) fails, while the few kilobytes that idle workers
/// allocate now and then (queues and buffers reaching a new high-water
/// mark) pass.
const SLACK: isize = 64 * 1024;

/// Runs `$body` `ROUNDS` times (a warm-up: lazily grown tables and queues
/// reach their high-water marks), then `ROUNDS` times more, and fails if
/// the heap grew by more than `SLACK` over the second part: a leak grows
/// in both halves, a high-water mark only in the first. `$i` is the
/// round's number. What the body collects must be in vectors allocated
/// beforehand.
macro_rules! no_growth {
    ($what:expr, |$i:ident| $body:block) => {{
        for $i in 0..ROUNDS {
            $body
        }
        let before = weft_tests::heap::live();
        for $i in ROUNDS..2 * ROUNDS {
            $body
        }
        let grown = weft_tests::heap::live() - before;
        assert!(
            grown < SLACK,
            "{}: the heap grew by {grown} bytes over {ROUNDS} dropped futures",
            $what
        );
    }};
}

/// A future that is pending on its first poll and ready on the next: the
/// other side of a race, so the racer is polled (registers its waker) and
/// then dropped.
fn after_one_poll() -> impl Future<Output = ()> {
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

/// Yields `n` times.
async fn yields(n: u64) {
    for _ in 0..n {
        weft::task::yield_now().await;
    }
}

each_flavor! {
    fn a_timer_dropped_pending_in_a_race_leaves_nothing(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            let reactor = weft::Handle::current().reactor().clone();
            let timers = reactor.pending_timers();
            let mut rng = Rng::new(1);
            let mut won = 0;
            no_growth!("sleep", |_i| {
                let d = Duration::from_micros(rng.range(0, 1500));
                let start = Instant::now();
                if let Either::Left(()) = race2(weft::time::sleep(d), after_one_poll()).await {
                    // A sleep that wins fired no earlier than asked.
                    assert!(start.elapsed() >= d);
                    won += 1;
                }
            });
            assert!(won > 0, "some zero-length sleeps win their race");
            // A sleep that won after its deadline but before the loop's look
            // at the timers forgot its entry, which the loop's next turn fires
            // (`Sleep::poll_elapsed`): the wheel is back to where it was once
            // the loop has turned, not necessarily at once.
            weft_tests::eventually("the wheel to hold no dropped sleep", || {
                reactor.pending_timers() == timers
            })
            .await;
        });
    }

    fn a_socket_read_dropped_pending_in_a_race_loses_no_byte(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            // The writer sends numbered 8-byte records at random moments
            // while the reader's reads keep being dropped.
            let records = 3_000u64;
            let writer = weft::spawn(async move {
                let mut rng = Rng::new(2);
                for n in 0..records {
                    client.write_all(&n.to_le_bytes()).await.unwrap();
                    yields(rng.range(0, 8)).await;
                }
                client
            });
            let mut got = Vec::with_capacity(records as usize * 8);
            let mut buf = [0u8; 64];
            let mut rng = Rng::new(3);
            no_growth!("socket read", |_i| {
                // `read` is cancel-safe: a dropped read took nothing; one
                // that won returns what it took.
                if let Either::Left(n) = race2(server.read(&mut buf), after_one_poll()).await {
                    got.extend_from_slice(&buf[..n.unwrap()]);
                }
                yields(rng.range(0, 2)).await;
            });
            let client = writer.await.unwrap();
            drop(client);
            weft::time::timeout(Duration::from_secs(10), server.read_to_end(&mut got))
                .await
                .expect("the rest arrives")
                .unwrap();
            let expected: Vec<u8> = (0..records).flat_map(|n| n.to_le_bytes()).collect();
            assert_eq!(got.len(), expected.len(), "bytes lost or duplicated");
            assert!(got == expected, "bytes out of order");
            drop(server);
            drop(listener);
            assert_eq!(weft::Handle::current().reactor().registrations(), 0);
        });
    }

    fn an_accept_dropped_pending_in_a_race_loses_no_connection(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // Nothing arrives: every accept is dropped pending.
            no_growth!("accept", |_i| {
                assert!(matches!(race2(listener.accept(), after_one_poll()).await, Either::Right(())));
            });
            // Connections arrive at random moments while accepts keep being
            // dropped: none is lost.
            let connections = 300;
            let clients = weft::spawn(async move {
                let mut rng = Rng::new(4);
                let mut kept = Vec::new();
                for _ in 0..connections {
                    kept.push(TcpStream::connect(addr).await.unwrap());
                    yields(rng.range(0, 60)).await;
                }
                kept
            });
            let mut accepted = Vec::new();
            for _ in 0..ROUNDS {
                if let Either::Left(conn) = race2(listener.accept(), after_one_poll()).await {
                    accepted.push(conn.unwrap().0);
                }
            }
            let kept = clients.await.unwrap();
            while accepted.len() < connections {
                let (conn, _) = weft::time::timeout(Duration::from_secs(10), listener.accept())
                    .await
                    .expect("a connection was lost by a dropped accept")
                    .unwrap();
                accepted.push(conn);
            }
            assert_eq!(accepted.len(), kept.len());
        });
    }

    fn a_promise_await_dropped_in_a_race_leaves_no_listener_and_shield_keeps_the_result(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            let handle = weft::Handle::current();
            // Shielded: the promise survives every dropped await.
            let promise = handle.create_future::<Vec<u8>>();
            no_growth!("shielded promise", |_i| {
                let r = race2(shield(promise.clone()), after_one_poll()).await;
                assert!(matches!(r, Either::Right(())));
            });
            assert_eq!(promise.listener_count(), 0, "dropped awaits left listeners");
            assert!(!promise.done());
            promise.set_result(vec![7; 3]).unwrap();
            assert_eq!(promise.clone().await.unwrap(), [7, 7, 7]);
            // Unshielded: an abandoned await only withdraws its listener; the
            // promise stays pending and still delivers (only `cancel` or a
            // dropped `Resolver` cancels a promise).
            no_growth!("promise", |i| {
                let p = handle.create_future::<u64>();
                assert!(matches!(race2(p.clone(), after_one_poll()).await, Either::Right(())));
                assert!(!p.done(), "an abandoned await settled its promise");
                assert_eq!(p.listener_count(), 0, "an abandoned await left its listener");
                p.set_result(i as u64).unwrap();
                assert_eq!(p.await.unwrap(), i as u64);
            });
        });
    }

    fn channel_receives_dropped_in_a_race_lose_no_message(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            let (tx, mut rx) = weft::sync::mpsc::channel::<u64>(8);
            let (utx, mut urx) = weft::sync::mpsc::unbounded_channel::<u64>();
            let (btx, mut brx) = weft::sync::broadcast::channel::<u64>(4096);
            let messages = 4_000u64;
            let producer = weft::spawn(async move {
                let mut rng = Rng::new(5);
                for n in 0..messages {
                    tx.send(n).await.unwrap();
                    utx.send(n).unwrap();
                    btx.send(n).unwrap();
                    yields(rng.range(0, 6)).await;
                }
            });
            let cap = messages as usize;
            let (mut got, mut ugot, mut bgot) = (Vec::with_capacity(cap), Vec::with_capacity(cap), Vec::with_capacity(cap));
            no_growth!("channel receive", |_i| {
                if let Either::Left(Some(n)) = race2(rx.recv(), after_one_poll()).await {
                    got.push(n);
                }
                if let Either::Left(Some(n)) = race2(urx.recv(), after_one_poll()).await {
                    ugot.push(n);
                }
                if let Either::Left(Ok(n)) = race2(brx.recv(), after_one_poll()).await {
                    bgot.push(n);
                }
            });
            // The bounded channel is drained first: the producer may be
            // waiting for room in it.
            while let Some(n) = rx.recv().await {
                got.push(n);
            }
            producer.await.unwrap();
            while let Some(n) = urx.recv().await {
                ugot.push(n);
            }
            while let Ok(n) = brx.recv().await {
                bgot.push(n);
            }
            let expected: Vec<u64> = (0..messages).collect();
            assert_eq!(got, expected, "mpsc: lost, duplicated or reordered");
            assert_eq!(ugot, expected, "unbounded mpsc: lost, duplicated or reordered");
            assert_eq!(bgot, expected, "broadcast: lost, duplicated or reordered");
        });
    }

    fn channel_sends_and_permits_dropped_in_a_race_lose_nothing(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            // A full bounded channel: each send waits for room and is
            // dropped; the consumer drains now and then.
            let (tx, mut rx) = weft::sync::mpsc::channel::<u64>(1);
            let mut sent = Vec::with_capacity(2 * ROUNDS);
            let mut next = 0u64;
            let mut received = Vec::with_capacity(2 * ROUNDS);
            no_growth!("mpsc send", |i| {
                if let Either::Left(r) = race2(tx.send(next), after_one_poll()).await {
                    r.unwrap();
                    sent.push(next);
                    next += 1;
                }
                if i % 3 == 0 {
                    if let Ok(n) = rx.try_recv() {
                        received.push(n);
                    }
                }
            });
            drop(tx);
            while let Some(n) = rx.recv().await {
                received.push(n);
            }
            assert_eq!(received, sent, "a send reported as done was lost, or a dropped one delivered");

            // A semaphore, a mutex and a Notify with every waiter dropped.
            let semaphore = Arc::new(weft::sync::Semaphore::new(1));
            let mutex = weft::sync::Mutex::new(0u64);
            let notify = weft::sync::Notify::new();
            let held = semaphore.clone().acquire_owned().await.unwrap();
            let guard = mutex.lock().await;
            no_growth!("semaphore, mutex and notify waits", |_i| {
                assert!(matches!(race2(semaphore.acquire(), after_one_poll()).await, Either::Right(())));
                assert!(matches!(race2(semaphore.clone().acquire_many_owned(1), after_one_poll()).await, Either::Right(())));
                assert!(matches!(race2(mutex.lock(), after_one_poll()).await, Either::Right(())));
                assert!(matches!(race2(notify.notified(), after_one_poll()).await, Either::Right(())));
            });
            assert_eq!(semaphore.waiters(), 0, "dropped acquires left waiters");
            drop(held);
            drop(guard);
            assert_eq!(semaphore.available_permits(), 1);
            assert!(mutex.try_lock().is_ok(), "dropped lock waits left the mutex locked");
            // A notification given to a waiter that is then dropped passes
            // on (Notify's cancel-safety), so none is lost.
            let mut chosen = Box::pin(notify.notified());
            assert!(futures::poll!(chosen.as_mut()).is_pending());
            notify.notify_one();
            drop(chosen);
            weft::time::timeout(Duration::from_secs(5), notify.notified())
                .await
                .expect("the notification was lost with the dropped waiter");
        });
    }

    fn queue_gets_and_puts_dropped_in_a_race_lose_nothing(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            // asyncio's Queue, full: each put waits for room and is dropped;
            // the consumer takes now and then. Every put that reported
            // success is delivered, in order; no dropped one is.
            let queue = Arc::new(weft::sync::Queue::<u64>::new(1));
            let (mut sent, mut received) = (Vec::with_capacity(2 * ROUNDS), Vec::with_capacity(2 * ROUNDS));
            let mut next = 0u64;
            no_growth!("queue put", |i| {
                if let Either::Left(r) = race2(queue.put(next), after_one_poll()).await {
                    r.unwrap();
                    sent.push(next);
                    next += 1;
                }
                if i % 3 == 0 {
                    if let Ok(n) = queue.get_nowait() {
                        received.push(n);
                    }
                }
            });
            while let Ok(n) = queue.get_nowait() {
                received.push(n);
            }
            assert_eq!(received, sent, "a put reported as done was lost, or a dropped one delivered");

            // Empty: each get waits and is dropped while a producer puts.
            let messages = 4_000u64;
            let producer = weft::spawn({
                let queue = queue.clone();
                async move {
                    let mut rng = Rng::new(6);
                    for n in 0..messages {
                        queue.put(n).await.unwrap();
                        yields(rng.range(0, 6)).await;
                    }
                }
            });
            let mut got = Vec::with_capacity(messages as usize);
            no_growth!("queue get", |_i| {
                if let Either::Left(r) = race2(queue.get(), after_one_poll()).await {
                    got.push(r.unwrap());
                }
            });
            while got.len() < messages as usize {
                let n = weft::time::timeout(Duration::from_secs(10), queue.get())
                    .await
                    .expect("an item was lost by a dropped get")
                    .unwrap();
                got.push(n);
            }
            producer.await.unwrap();
            assert_eq!(got, (0..messages).collect::<Vec<_>>(), "items lost or reordered");
            assert_eq!(queue.qsize(), 0);

            // Shut down while gets are pending: each ends with the error,
            // none hangs.
            let getters: Vec<_> = (0..4)
                .map(|_| {
                    let queue = queue.clone();
                    weft::spawn(async move { queue.get().await })
                })
                .collect();
            yields(20).await;
            queue.shutdown(false);
            for getter in getters {
                let r = weft::time::timeout(Duration::from_secs(10), getter)
                    .await
                    .expect("a get pending at shutdown hung");
                assert!(r.unwrap().is_err(), "a get on a shut-down empty queue returned an item");
            }
        });
    }

    fn a_join_handle_dropped_from_a_race_still_delivers_when_awaited(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            let (release_tx, release_rx) = weft::sync::oneshot::channel::<u64>();
            let mut task = weft::spawn(async move { release_rx.await.unwrap() * 2 });
            no_growth!("join handle", |_i| {
                assert!(matches!(race2(&mut task, after_one_poll()).await, Either::Right(())));
            });
            release_tx.send(21).unwrap();
            assert_eq!(task.await.unwrap(), 42);
        });
    }
}

// ----- shutdown while each kind of operation is pending -----------------------

mod shutdown {
    use super::*;

    each_flavor! {
    fn shutting_down_with_every_kind_of_operation_pending(flavor) {
        let _turn = turn();
        for how in ["drop", "shutdown_timeout", "shutdown_background"] {
            let rt = weft_tests::builder(flavor).max_blocking_threads(2).build().unwrap();
            let drops = Arc::new(AtomicUsize::new(0));
            let mut handles = Vec::new();
            let mut spawn = |name: &'static str, fut: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
                let guard = DropCounter::new(&drops);
                handles.push((name, rt.spawn(async move {
                    let _guard = guard;
                    fut.await
                })));
            };
            let (listener, peer, mut near) = rt.block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let peer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
                let (near, _) = listener.accept().await.unwrap();
                (Arc::new(listener), peer, near)
            });
            let reading_listener = listener.clone();
            spawn("accept", Box::pin(async move { let _ = reading_listener.accept().await; }));
            let (mut write_side, write_peer) = rt.block_on(async {
                let other = TcpListener::bind("127.0.0.1:0").unwrap();
                let a = TcpStream::connect(other.local_addr().unwrap()).await.unwrap();
                let (b, _) = other.accept().await.unwrap();
                (a, b)
            });
            spawn("read", Box::pin(async move {
                let mut buf = [0u8; 16];
                let _ = near.read(&mut buf).await;
            }));
            // A write into a peer that never reads: it waits for room.
            spawn("write", Box::pin(async move {
                let chunk = vec![0u8; 1 << 16];
                loop {
                    if write_side.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }));
            spawn("sleep", Box::pin(weft::time::sleep(Duration::from_secs(3600))));
            spawn("timeout", Box::pin(async {
                let _ = weft::time::timeout(Duration::from_secs(3600), std::future::pending::<()>()).await;
            }));
            spawn("interval", Box::pin(async {
                let mut every = weft::time::interval(Duration::from_millis(5));
                loop {
                    every.tick().await;
                }
            }));
            let promise = rt.handle().create_future::<u8>();
            let awaited = promise.clone();
            spawn("promise", Box::pin(async move { let _ = awaited.await; }));
            let (tx, mut rx) = weft::sync::mpsc::channel::<u8>(1);
            spawn("mpsc recv", Box::pin(async move { let _ = rx.recv().await; }));
            let (full_tx, _full_rx) = weft::sync::mpsc::channel::<u8>(1);
            full_tx.try_send(0).unwrap();
            spawn("mpsc send", Box::pin(async move { let _ = full_tx.send(1).await; }));
            let (btx, mut brx) = weft::sync::broadcast::channel::<u8>(2);
            spawn("broadcast recv", Box::pin(async move { let _ = brx.recv().await; }));
            let semaphore = Arc::new(weft::sync::Semaphore::new(0));
            let s = semaphore.clone();
            spawn("acquire", Box::pin(async move { let _ = s.acquire_owned().await; }));
            let inner = rt.spawn(std::future::pending::<()>());
            spawn("join", Box::pin(async move { let _ = inner.await; }));
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let blocking = rt.spawn_blocking(move || {
                let _ = release_rx.recv_timeout(Duration::from_millis(100));
            });
            spawn("spawn_blocking", Box::pin(async move { let _ = blocking.await; }));
            let pool = weft::pool::Pool::new(1).unwrap();
            let job = pool.apply_async(|| std::thread::sleep(Duration::from_millis(50))).unwrap();
            spawn("pool job", Box::pin(async move { let _ = job.await; }));
            let udp = Arc::new(rt.block_on(async { weft::net::UdpSocket::bind("127.0.0.1:0").unwrap() }));
            let u = udp.clone();
            spawn("udp recv", Box::pin(async move {
                let mut buf = [0u8; 8];
                let _ = u.recv_from(&mut buf).await;
            }));
            let later = DropCounter::new(&drops);
            let callback = rt.handle().call_later(Duration::from_secs(3600), move || drop(later));
            let made = handles.len() + 1;

            // Every task parks, then the runtime goes.
            rt.block_on(async {
                yields(20).await;
                weft::time::sleep(Duration::from_millis(20)).await;
            });
            let start = Instant::now();
            match how {
                "drop" => drop(rt),
                "shutdown_timeout" => rt.shutdown_timeout(Duration::from_secs(10)),
                _ => rt.shutdown_background(),
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while drops.load(SeqCst) < made && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(drops.load(SeqCst), made, "{how}: every pending future and callback was dropped");
            assert!(start.elapsed() < Duration::from_secs(15), "{how}: shutdown took {:?}", start.elapsed());
            assert!(callback.cancelled() || !callback.done(), "{how}: the delayed callback never ran");
            // Every task reports the cancellation, awaited on no runtime.
            for (name, handle) in handles {
                let outcome = futures::executor::block_on(handle);
                assert!(outcome.unwrap_err().is_cancelled(), "{how}: {name} was cancelled");
            }
            // The peers see the sockets close.
            let mut peer = peer.into_std().unwrap_or_else(|_| unreachable!());
            peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 1];
            assert_eq!(std::io::Read::read(&mut peer, &mut buf).unwrap(), 0, "{how}: the reader's socket closed");
            drop((write_peer, listener, promise, tx, btx, semaphore, udp, release_tx, pool));
            assert_eq!(drops.load(SeqCst), made, "{how}: no destructor ran twice");
        }
    }
    }
}

// ----- promises settled while their runtime shuts down ------------------------

#[test]
fn a_promise_settled_from_another_thread_while_its_runtime_shuts_down() {
    let _turn = turn();
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        for round in 0..200u64 {
            let rt = runtime(flavor);
            let promise = rt.handle().create_future::<Vec<u8>>();
            let callbacks = 8;
            let ran = Arc::new(AtomicUsize::new(0));
            let dropped = Arc::new(AtomicUsize::new(0));
            for _ in 0..callbacks {
                let ran = ran.clone();
                let guard = DropCounter::new(&dropped);
                promise.add_done_callback(move |p| {
                    let _guard = guard;
                    assert_eq!(p.result().unwrap(), &vec![1u8; 4]);
                    ran.fetch_add(1, SeqCst);
                });
            }
            // A foreign thread (as an MPI or GPU completion would) settles
            // the promise while this thread shuts the runtime down.
            let settler = {
                let promise = promise.clone();
                std::thread::spawn(move || {
                    if round % 2 == 0 {
                        std::thread::yield_now();
                    }
                    promise.set_result(vec![1u8; 4]).unwrap();
                })
            };
            if round % 3 == 0 {
                rt.shutdown_background();
            } else {
                drop(rt);
            }
            settler.join().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while dropped.load(SeqCst) < callbacks && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Each callback ran at most once and was dropped exactly once;
            // its promise is done and keeps its value.
            assert_eq!(
                dropped.load(SeqCst),
                callbacks,
                "{flavor:?} round {round}: callbacks leaked"
            );
            assert!(ran.load(SeqCst) <= callbacks);
            assert_eq!(promise.result().unwrap(), &vec![1u8; 4]);
            assert_eq!(promise.listener_count(), 0);
        }
    }
}

// ----- child tokens -----------------------------------------------------------

#[test]
fn child_tokens_follow_their_parent_and_unregister_when_dropped() {
    let _turn = turn();
    let parent = CancellationToken::new();
    let child = parent.child_token();
    let grandchild = child.child_token();
    for _ in 0..100 {
        drop(parent.child_token());
    }
    // Short-lived children leave nothing behind on the parent: 10,000 of
    // them, made and dropped, leave the heap where it was. The count is the
    // process's, and threads that earlier tests left (under `cargo test`,
    // which runs them in one process) may allocate meanwhile: the least
    // growth of three rounds counts. A child left behind costs at least
    // 8 bytes, 80 KB a round.
    let grown = (0..3)
        .map(|_| {
            let before = weft_tests::heap::live();
            for _ in 0..10_000 {
                let short = parent.child_token();
                assert!(!short.is_cancelled());
                drop(short);
            }
            weft_tests::heap::live() - before
        })
        .min()
        .unwrap();
    assert!(
        grown < 1024,
        "10,000 dropped child tokens left {grown} bytes on their parent"
    );
    let sibling = parent.child_token();
    child.cancel();
    assert!(child.is_cancelled() && grandchild.is_cancelled());
    assert!(!parent.is_cancelled() && !sibling.is_cancelled());
    parent.cancel();
    assert!(sibling.is_cancelled());
    let guard = CancellationToken::new().drop_guard();
    let token = guard.disarm();
    assert!(!token.is_cancelled());
    let guarded = token.clone().drop_guard();
    drop(guarded);
    assert!(token.is_cancelled());
}
