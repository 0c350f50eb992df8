//! `weft::select!`: fairness, `biased;`, `else`, preconditions, patterns
//! that do not fit, what the handlers may do, and every kind of Weft
//! future as a branch, on both flavours.

use futures::executor::block_on;
use std::future::{Future, pending, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream, UnixStream};
use weft::select;
use weft::sync::{Notify, Queue, Semaphore, broadcast, mpsc, oneshot, watch};
use weft::time::sleep;
use weft_tests::{DropCounter, each_flavor, panic_message, runtime};

/// Ready at once with `value`, counting its polls; panics if polled again
/// after it finished (as many futures may).
struct Once<T> {
    value: Option<T>,
    polls: Arc<AtomicUsize>,
}

impl<T: Unpin> Future for Once<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        self.polls.fetch_add(1, SeqCst);
        Poll::Ready(self.value.take().expect("polled after it finished"))
    }
}

fn once<T>(value: T, polls: &Arc<AtomicUsize>) -> Once<T> {
    Once {
        value: Some(value),
        polls: polls.clone(),
    }
}

#[test]
fn ready_branches_each_win_a_fair_share() {
    const ROUNDS: usize = 3000;
    let mut wins = [0usize; 3];
    block_on(async {
        for _ in 0..ROUNDS {
            let won = select! {
                a = ready(0) => a,
                b = ready(1) => b,
                c = ready(2) => c,
            };
            wins[won] += 1;
        }
    });
    // A third each on average; a quarter is far outside chance.
    for w in wins {
        assert!(w > ROUNDS / 4, "unfair: {wins:?}");
    }
}

#[test]
fn biased_polls_in_order_and_picks_the_first_ready() {
    let polls = Arc::new(AtomicUsize::new(0));
    block_on(async {
        for _ in 0..1000 {
            let won = select! {
                biased;
                _ = pending::<()>() => unreachable!(),
                a = ready('a') => a,
                b = once('b', &polls) => b,
            };
            assert_eq!(won, 'a');
        }
    });
    assert_eq!(polls.load(SeqCst), 0, "a branch after the winner was polled");
}

#[test]
fn else_runs_when_every_branch_is_disabled() {
    let polls = Arc::new(AtomicUsize::new(0));
    let got = block_on(async {
        select! {
            v = once(1, &polls), if false => v,
            Some(v) = ready(None::<u32>) => v,
            else => 99,
        }
    });
    assert_eq!(got, 99);
    assert_eq!(polls.load(SeqCst), 0, "a branch whose condition is false was polled");
    assert_eq!(
        block_on(async {
            select! { else => 7 }
        }),
        7
    );
}

#[test]
fn a_condition_is_evaluated_before_the_futures_and_every_future_expression_is_evaluated() {
    let mut order = Vec::new();
    let got = block_on(async {
        select! {
            v = { order.push("future 1"); ready(1) }, if { order.push("condition 1"); false } => v,
            v = { order.push("future 2"); ready(2) }, if { order.push("condition 2"); true } => v,
        }
    });
    assert_eq!(got, 2);
    assert_eq!(order, ["condition 1", "condition 2", "future 1", "future 2"]);
}

#[test]
fn a_value_that_does_not_fit_its_pattern_disables_the_branch_and_is_dropped() {
    let drops = Arc::new(AtomicUsize::new(0));
    let polls = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let got = block_on(async {
        let rejected = DropCounter::new(&drops);
        select! {
            biased;
            // Ready first, but `Err` does not fit: dropped, never polled again.
            Ok(()) = once(Err::<(), _>(rejected), &polls) => "ok",
            // Pending on the first poll; the send below readies it.
            Some(v) = rx.recv() => v,
            _ = async {
                tx.send("sent").unwrap();
                pending::<()>().await
            } => unreachable!(),
        }
    });
    assert_eq!(got, "sent");
    assert_eq!(polls.load(SeqCst), 1, "a finished branch was polled again");
    assert_eq!(drops.load(SeqCst), 1, "the value that did not fit was not dropped");
}

#[test]
fn no_else_and_every_branch_disabled_panics_with_weft_s_message() {
    let caught = std::panic::catch_unwind(|| {
        block_on(async {
            select! {
                Some(v) = ready(None::<u8>) => v,
                _ = ready(()), if false => 0,
            }
        })
    });
    let message = panic_message(&*caught.unwrap_err());
    assert!(message.contains("weft_sync::select!"), "{message}");
    assert!(message.contains("no `else` branch"), "{message}");
}

/// Patterns that Rust 2024 refuses under a reference (`mut`, `ref`, `&`)
/// work, by value, in the handler.
#[test]
fn patterns_with_mut_ref_and_references_bind_by_value() {
    struct Pair {
        left: String,
        right: u32,
    }
    let text = String::from("borrowed");
    block_on(async {
        let got = select! {
            Ok((mut s, n)) = ready(Ok::<_, ()>((String::from("a"), 1))) => { s.push('!'); (s, n) }
        };
        assert_eq!(got, ("a!".to_owned(), 1));

        let got = select! {
            Pair { ref mut left, right: 2 } = ready(Pair { left: "l".into(), right: 2 }) => {
                left.push('r');
                left.clone()
            }
        };
        assert_eq!(got, "lr");

        let slice = &text[..];
        let got = select! {
            &s = ready(&slice) => s.len(),
        };
        assert_eq!(got, 8);

        let got = select! {
            biased;
            [first, .., 9] = ready([1, 2, 3]) => first,
            Some(&x) = ready(Some(&4)) => x,
        };
        assert_eq!(got, 4, "a slice pattern that does not fit disabled its branch");

        let got = select! {
            &&x = ready(&&5) => x,
        };
        assert_eq!(got, 5);
    });
}

/// Handlers run in the caller's body (`return`, `?`, `break`, `continue`
/// reach the caller), after the futures are dropped, so a handler may use
/// what a future borrowed.
#[test]
fn handlers_reach_the_caller_and_may_use_what_the_futures_borrowed() {
    async fn first_error(rx: &mut mpsc::Receiver<Result<u32, String>>) -> Result<u32, String> {
        let mut sum = 0;
        loop {
            select! {
                Some(item) = rx.recv() => {
                    let n = item?;
                    if n == 0 {
                        // The receive future that borrowed `rx` is gone.
                        rx.close();
                        continue;
                    }
                    sum += n;
                    if sum > 100 {
                        return Ok(sum);
                    }
                }
                else => break,
            }
        }
        Ok(sum)
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    for item in [Ok(1), Ok(2), Err("bad".to_owned()), Ok(3), Ok(0), Ok(200)] {
        tx.send(item).unwrap();
    }
    assert_eq!(block_on(first_error(&mut rx)), Err("bad".to_owned()));
    assert_eq!(block_on(first_error(&mut rx)), Ok(203));
    assert!(tx.send(Ok(1)).is_err(), "the handler closed the receiver");
    assert_eq!(
        block_on(first_error(&mut rx)),
        Ok(0),
        "closed and drained: `else` ends the loop"
    );
}

/// The losers are dropped when a branch wins, before its handler runs.
#[test]
fn the_losers_are_dropped_before_the_handler_runs() {
    let drops = Arc::new(AtomicUsize::new(0));
    block_on(async {
        let (g1, g2) = (DropCounter::new(&drops), DropCounter::new(&drops));
        select! {
            biased;
            v = ready(1) => assert_eq!((v, drops.load(SeqCst)), (1, 2)),
            _ = async move { let _g = g1; pending::<()>().await } => unreachable!(),
            _ = async move { let _g = g2; pending::<()>().await } => unreachable!(),
        }
    });
}

/// Forty branches (with patterns of three tokens, nested groups and
/// `mut`) fit in the compiler's default macro recursion limit; the select!
/// docs say about fifty do.
#[test]
fn forty_branches_fit_the_default_recursion_limit() {
    let won = block_on(async {
        select! {
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((0usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((1usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((2usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((3usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((4usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((5usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((6usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((7usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((8usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((9usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((10usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((11usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((12usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((13usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((14usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((15usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((16usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((17usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((18usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((19usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((20usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((21usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((22usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((23usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((24usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((25usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((26usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((27usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((28usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((29usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((30usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((31usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((32usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((33usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((34usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((35usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((36usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((37usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((38usize, ())))) => { v += 1; v },
            Some(Ok((mut v, _))) = ready(Some(Ok::<_, ()>((39usize, ())))) => { v += 1; v },
        }
    });
    assert!((1..=40).contains(&won));
}

each_flavor! {
    /// A channel and a timer, 10,000 messages: the timer wins about half of
    /// the rounds in which a message is ready too, and every dropped
    /// receive gives back what it had, so no message is lost or reordered.
    fn ten_thousand_rounds_over_a_channel_and_a_timer_lose_no_message(flavor) {
        const MESSAGES: u32 = 10_000;
        let rt = runtime(flavor);
        rt.block_on(async {
            let (tx, mut rx) = mpsc::channel(16);
            let producer = weft::spawn(async move {
                for i in 0..MESSAGES {
                    tx.send(i).await.unwrap();
                    if i % 1000 == 0 {
                        sleep(Duration::from_millis(1)).await;
                    }
                }
            });
            // In a task of its own: a `select!` is `Send` when its
            // branches are.
            let consumer = weft::spawn(async move {
                let (mut next, mut ticks, mut rounds) = (0, 0u32, 0u32);
                while next < MESSAGES {
                    rounds += 1;
                    select! {
                        Some(v) = rx.recv() => {
                            assert_eq!(v, next, "a message was lost or reordered");
                            next += 1;
                        }
                        () = sleep(Duration::ZERO) => ticks += 1,
                    }
                }
                assert_eq!(rx.recv().await, None);
                (ticks, rounds)
            });
            producer.await.unwrap();
            let (ticks, rounds) = consumer.await.unwrap();
            assert!(ticks > 0 && rounds >= MESSAGES, "the timer never won: {ticks} of {rounds}");
        });
    }

    /// A task handle kept across rounds with `&mut`, losing to a timer
    /// round after round, then winning: its result is not lost.
    fn a_join_handle_across_ten_thousand_lost_rounds_keeps_its_result(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (go, wait) = oneshot::channel::<()>();
            let mut handle = weft::spawn(async move {
                wait.await.unwrap();
                42
            });
            let mut go = Some(go);
            let mut lost = 0;
            let got = loop {
                select! {
                    biased;
                    r = &mut handle => break r.unwrap(),
                    () = sleep(Duration::ZERO) => {
                        lost += 1;
                        if lost == 10_000 {
                            go.take().unwrap().send(()).unwrap();
                        }
                    }
                }
            };
            assert_eq!(got, 42);
            assert!(lost >= 10_000);
        });
    }

    /// A dropped `JoinHandle` detaches its task: the task that lost still
    /// runs to its end.
    fn a_task_whose_handle_lost_runs_on(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (done_tx, done_rx) = oneshot::channel();
            let loser = weft::spawn(async move {
                sleep(Duration::from_millis(20)).await;
                done_tx.send("finished").unwrap();
            });
            let won = select! {
                _ = loser => "task",
                () = sleep(Duration::from_millis(1)) => "timer",
            };
            assert_eq!(won, "timer");
            assert_eq!(done_rx.await, Ok("finished"));
        });
    }

    fn a_promise_branch_wins_when_it_is_set(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let promise = weft::future::Promise::<u32>::new();
            let setter = promise.clone();
            weft::spawn(async move {
                sleep(Duration::from_millis(5)).await;
                setter.set_result(5).unwrap();
            });
            let got = select! {
                r = promise.clone() => r.unwrap(),
                () = sleep(Duration::from_secs(30)) => panic!("the promise was never seen"),
            };
            assert_eq!(got, 5);
        });
    }

    /// Issue 21's rule: dropping a wait on a promise stops waiting and
    /// cancels nothing, so the promise that lost a `select!` can still be
    /// set, and another waiter gets the value.
    fn a_promise_that_loses_is_not_cancelled(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let promise = weft::future::Promise::<u32>::new();
            let waiter = weft::spawn(promise.clone());
            let won = select! {
                _ = promise.clone() => "promise",
                () = sleep(Duration::from_millis(1)) => "timer",
            };
            assert_eq!(won, "timer");
            assert_eq!(promise.set_result(5), Ok(()));
            assert_eq!(waiter.await.unwrap().unwrap(), 5);
        });
    }

    /// Every waiting primitive of `weft::sync` as a branch, each readied in
    /// turn by a task while a long timer waits beside it.
    fn every_sync_primitive_is_a_branch(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (btx, mut brx) = broadcast::channel(4);
            let (wtx, mut wrx) = watch::channel(0);
            let (otx, orx) = oneshot::channel();
            let queue = Arc::new(Queue::new(0));
            let sem = Arc::new(Semaphore::new(0));
            let notify = Arc::new(Notify::new());
            let (q, s, n) = (queue.clone(), sem.clone(), notify.clone());
            weft::spawn(async move {
                let pause = || sleep(Duration::from_millis(2));
                pause().await;
                btx.send(1).unwrap();
                pause().await;
                wtx.send(2).unwrap();
                pause().await;
                otx.send(3).unwrap();
                pause().await;
                q.put(4).await.unwrap();
                pause().await;
                s.add_permits(1);
                pause().await;
                n.notify_one();
                pause().await;
                drop((btx, wtx));
            });
            let mut orx = orx;
            let mut oneshot_done = false;
            let mut seen = Vec::new();
            while seen.len() < 6 {
                select! {
                    Ok(v) = brx.recv() => seen.push(v),
                    Ok(()) = wrx.changed() => seen.push(*wrx.borrow_and_update()),
                    Ok(v) = &mut orx, if !oneshot_done => { seen.push(v); oneshot_done = true; }
                    Ok(v) = queue.get() => seen.push(v),
                    Ok(permit) = sem.acquire() => { permit.forget(); seen.push(5) }
                    () = notify.notified() => seen.push(6),
                    () = sleep(Duration::from_secs(30)) => panic!("a branch was never woken: {seen:?}"),
                }
            }
            assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
        });
    }

    /// Sockets as branches: an accept against a timer, then a read whose
    /// buffer the handler uses (the read future that borrowed it is gone).
    fn net_futures_are_branches(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let waited = select! {
                r = listener.accept() => panic!("accepted from nobody: {r:?}"),
                () = sleep(Duration::from_millis(5)) => true,
            };
            assert!(waited);
            let client = weft::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream.write_all(b"ping").await.unwrap();
                stream
            });
            let (mut server, _) = select! {
                r = listener.accept() => r.unwrap(),
                () = sleep(Duration::from_secs(30)) => panic!("no connection"),
            };
            let mut buf = [0u8; 4];
            select! {
                r = server.read_exact(&mut buf) => r.unwrap(),
                () = sleep(Duration::from_secs(30)) => panic!("no bytes"),
            }
            assert_eq!(&buf, b"ping");
            drop(client.await.unwrap());

            let (mut a, mut b) = UnixStream::pair().unwrap();
            let mut byte = [0u8; 1];
            let first = select! {
                biased;
                r = a.read(&mut byte) => r.map(|n| (n, byte[0])),
                r = b.write_all(b"x") => r.map(|()| (0, 0)),
            };
            assert_eq!(first.unwrap(), (0, 0), "the read had nothing; the write went through");
            a.read_exact(&mut byte).await.unwrap();
            assert_eq!(byte, *b"x");
        });
    }
}
