//! Loom models of the semaphore core and the mutex on it: every
//! interleaving of acquire, release, cancel and close, through the shipping
//! code (via the crate's loom shim).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p weft-sync --lib --release loom`.

use crate::loom::thread;
use crate::{Barrier, BoundedSemaphore, Mutex, Notify, Queue, QueueShutDown, Semaphore, broadcast, mpsc, oneshot};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// A release on one thread and a queued acquire on another: the acquire
/// always completes (no lost wakeup) and no permit is lost.
#[test]
fn release_races_a_queued_acquire() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let held = sem.try_acquire_many(1).unwrap();
        held.forget();
        let releaser = {
            let sem = sem.clone();
            thread::spawn(move || sem.add_permits(1))
        };
        let permit = loom::future::block_on(sem.acquire()).unwrap();
        drop(permit);
        releaser.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.waiters(), 0);
    });
}

/// An acquire dropped while queued races the release that would serve it:
/// whoever wins, the permit ends up back in the semaphore and no waiter is
/// left behind.
#[test]
fn a_cancelled_acquire_races_the_release() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let releaser = {
            let sem = sem.clone();
            thread::spawn(move || sem.add_permits(1))
        };
        {
            let mut acquire = pin!(sem.acquire());
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(permit) = acquire.as_mut().poll(&mut cx) {
                drop(permit.unwrap());
            }
        }
        releaser.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.waiters(), 0);
    });
}

/// Two queued acquirers, one dropped while a release races both: the one
/// that stays gets the permit (the `WAITERS` bit never strands it in the
/// counter), and the semaphore ends with it back and nobody queued.
#[test]
fn a_dropped_waiter_and_a_release_race_a_second_waiter() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let stayer = {
            let sem = sem.clone();
            thread::spawn(move || drop(loom::future::block_on(sem.acquire()).unwrap()))
        };
        {
            let mut acquire = pin!(sem.acquire());
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(permit) = acquire.as_mut().poll(&mut cx) {
                drop(permit.unwrap());
            }
        }
        sem.add_permits(1);
        stayer.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.waiters(), 0);
    });
}

/// Close races a waiting acquire: it finishes either way (with the permit or
/// with an error), never hangs.
#[test]
fn close_races_an_acquire() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let closer = {
            let sem = sem.clone();
            thread::spawn(move || sem.close())
        };
        assert!(loom::future::block_on(sem.acquire()).is_err());
        closer.join().unwrap();
    });
}

/// Two threads take turns on the mutex: each increment is seen, the lock is
/// handed over without loss.
#[test]
fn mutex_hand_off() {
    loom::model(|| {
        let counter = Arc::new(Mutex::new(0));
        let other = {
            let counter = counter.clone();
            thread::spawn(move || {
                *loom::future::block_on(counter.lock()) += 1;
            })
        };
        *loom::future::block_on(counter.lock()) += 1;
        other.join().unwrap();
        assert_eq!(*counter.try_lock().unwrap(), 2);
    });
}

/// `notify_one` from another thread races the first poll of a `Notified`:
/// the notification is never lost (it is the waiter's, or the permit).
#[test]
fn notify_one_races_a_waiter() {
    loom::model(|| {
        let notify = Arc::new(Notify::new());
        let notifier = {
            let notify = notify.clone();
            thread::spawn(move || notify.notify_one())
        };
        loom::future::block_on(notify.notified());
        notifier.join().unwrap();
    });
}

/// A waiter chosen by `notify_one` and dropped before it looks passes the
/// notification to the next waiter, whichever order things happen in.
#[test]
fn a_dropped_chosen_waiter_passes_on() {
    loom::model(|| {
        let notify = Arc::new(Notify::new());
        let dropper = {
            let notify = notify.clone();
            thread::spawn(move || {
                let mut first = pin!(notify.notified());
                first.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_ready()
            })
        };
        notify.notify_one();
        let consumed = dropper.join().unwrap();
        // Unless the first waiter saw the notification (its poll returned
        // ready), it is still there for the next one: chosen-and-dropped
        // passes it on, never chosen leaves the permit.
        if !consumed {
            loom::future::block_on(notify.notified());
        }
    });
}

/// A bounded channel of capacity 1: a sender that must wait for the slot
/// races the receiver; every message arrives, in order, and the channel
/// ends when the sender is gone.
#[test]
fn mpsc_bounded_send_recv_close() {
    loom::model(|| {
        let (tx, mut rx) = mpsc::channel(1);
        let sender = thread::spawn(move || {
            loom::future::block_on(async {
                tx.send(1).await.unwrap();
                tx.send(2).await.unwrap();
            })
        });
        let got = loom::future::block_on(async {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        });
        sender.join().unwrap();
        assert_eq!(got, [1, 2]);
    });
}

/// A oneshot send (or a sender dropped unsent) races the receiver's await:
/// the receiver always finishes, with the value or the error.
#[test]
fn oneshot_send_or_drop_races_recv() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel::<u8>();
        let sender = thread::spawn(move || tx.send(5).is_ok());
        let got = loom::future::block_on(rx);
        assert!(sender.join().unwrap());
        assert_eq!(got, Ok(5));
    });
    loom::model(|| {
        let (tx, rx) = oneshot::channel::<u8>();
        let dropper = thread::spawn(move || drop(tx));
        assert!(loom::future::block_on(rx).is_err());
        dropper.join().unwrap();
    });
}

/// A sender overruns a capacity-1 broadcast channel while the receiver
/// reads: the receiver sees messages in order, a lag report for what it
/// missed (never a lost or repeated message), and then the end.
#[test]
fn broadcast_lag() {
    loom::model(|| {
        let (tx, mut rx) = broadcast::channel(1);
        let sender = thread::spawn(move || {
            tx.send(1).unwrap();
            let _ = tx.send(2);
        });
        let mut seen = 0u64;
        loop {
            match loom::future::block_on(rx.recv()) {
                Ok(v) => {
                    assert!(v > seen);
                    seen = v;
                }
                Err(broadcast::RecvError::Lagged(n)) => seen += n,
                Err(broadcast::RecvError::Closed) => break,
            }
        }
        sender.join().unwrap();
        assert_eq!(seen, 2);
    });
}

/// The receiver closes (and drops) while the sender sends: the value is
/// owned by exactly one side, and dropped exactly once.
#[test]
fn oneshot_close_races_send() {
    struct Counted(Arc<loom::sync::atomic::AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
        }
    }
    loom::model(|| {
        let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let (tx, mut rx) = oneshot::channel::<Counted>();
        let value = Counted(drops.clone());
        let sender = thread::spawn(move || {
            // Given back on failure, then dropped here.
            let _ = tx.send(value);
        });
        rx.close();
        let got = rx.try_recv();
        drop(got);
        drop(rx);
        sender.join().unwrap();
        assert_eq!(drops.load(loom::sync::atomic::Ordering::SeqCst), 1);
    });
}

/// The receiver replaces its waker while the sender sends: it is woken (or
/// sees the value) whichever waker was current.
#[test]
fn oneshot_waker_swap_races_send() {
    loom::model(|| {
        let (tx, mut rx) = oneshot::channel::<u8>();
        let sender = thread::spawn(move || tx.send(1).unwrap());
        let first = Context::from_waker(Waker::noop());
        let mut rx_pinned = std::pin::Pin::new(&mut rx);
        let mut cx = first;
        if let Poll::Ready(v) = rx_pinned.as_mut().poll(&mut cx) {
            assert_eq!(v, Ok(1));
        } else {
            // A different waker now: block_on's.
            assert_eq!(loom::future::block_on(rx_pinned), Ok(1));
        }
        sender.join().unwrap();
    });
}

/// The barrier's generation hand-off: two parties, three arrivals. The
/// third arrival belongs to the next round whenever it comes, so exactly
/// two waits finish (one of them the leader), and the third waits for a
/// fourth. (Before the leader bumped the round under the barrier's lock, a
/// next-round arrival between its unlock and its wake was released with
/// the previous round.)
#[test]
fn barrier_generation_hand_off() {
    type Arrival = Pin<Box<dyn Future<Output = bool> + Send>>;
    /// Arrives at the barrier and polls once; the wait, and its result if
    /// it finished.
    fn arrive(barrier: &Arc<Barrier>) -> (Arrival, Option<bool>) {
        let barrier = barrier.clone();
        let mut wait: Arrival = Box::pin(async move { barrier.wait().await.is_leader() });
        let first = wait.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        (
            wait,
            match first {
                Poll::Ready(leader) => Some(leader),
                Poll::Pending => None,
            },
        )
    }
    loom::model(|| {
        let barrier = Arc::new(Barrier::new(2));
        let others: Vec<_> = (0..2)
            .map(|_| {
                let barrier = barrier.clone();
                thread::spawn(move || arrive(&barrier))
            })
            .collect();
        let mut arrivals = vec![arrive(&barrier)];
        arrivals.extend(others.into_iter().map(|t| t.join().unwrap()));
        // Everyone has arrived and every wake has happened: look again.
        let results: Vec<Option<bool>> = arrivals
            .into_iter()
            .map(|(mut wait, result)| {
                result.or_else(|| match wait.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                    Poll::Ready(leader) => Some(leader),
                    Poll::Pending => None,
                })
            })
            .collect();
        let finished = results.iter().flatten().count();
        let leaders = results.iter().flatten().filter(|leader| **leader).count();
        assert_eq!(
            finished, 2,
            "a next-round arrival passed with the previous round: {results:?}"
        );
        assert_eq!(leaders, 1);
    });
}

/// `try_recv` against a send followed by the last sender's drop: the
/// receiver gets the message before it is told `Disconnected`, in every
/// interleaving (the queue and the end are read under one lock).
#[test]
fn try_recv_races_send_and_close() {
    loom::model(|| {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sender = thread::spawn(move || {
            tx.send(1).unwrap();
            drop(tx);
        });
        let got = loop {
            match rx.try_recv() {
                Ok(value) => break Some(value),
                Err(mpsc::TryRecvError::Empty) => thread::yield_now(),
                Err(mpsc::TryRecvError::Disconnected) => break None,
            }
        };
        sender.join().unwrap();
        assert_eq!(got, Some(1), "Disconnected with the message queued");
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    });
}

/// A bounded semaphore's release races an acquire that may queue: the
/// release is judged by the semaphore's count in the step that adds the
/// permit, so it is accepted (one permit was out), the acquire gets it, and
/// the bound holds afterwards (the releases after both are one accepted,
/// one refused).
#[test]
fn bounded_release_races_a_queued_acquire() {
    loom::model(|| {
        let sem = Arc::new(BoundedSemaphore::new(1));
        sem.try_acquire().unwrap();
        let acquirer = {
            let sem = sem.clone();
            thread::spawn(move || loom::future::block_on(sem.acquire()).unwrap())
        };
        assert!(sem.release().is_ok(), "a valid release was refused");
        acquirer.join().unwrap();
        assert!(sem.release().is_ok());
        assert!(sem.release().is_err(), "the bound was passed");
        assert_eq!(sem.available_permits(), 1);
    });
}

/// A gentle `Queue::shutdown` races a putter waiting for room in a full
/// queue: the putter is woken (the shutdown closes the slots) and gets its
/// item back with `QueueShutDown`; the queued item can still be taken.
#[test]
fn queue_shutdown_wakes_a_waiting_putter() {
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        q.put_nowait(1).unwrap();
        let putter = {
            let q = q.clone();
            thread::spawn(move || loom::future::block_on(q.put(2)))
        };
        q.shutdown(false);
        assert_eq!(putter.join().unwrap(), Err(QueueShutDown(2)));
        assert_eq!(q.get_nowait(), Ok(1));
        assert!(q.get_nowait().is_err());
    });
}

/// A gentle shutdown races a getter that takes the last item and then
/// waits for another: whichever of the two sees "shut down and empty"
/// under the queue's lock closes the item semaphore, so the second get
/// fails instead of hanging, and the item is never lost.
#[test]
fn queue_shutdown_races_the_getter_of_the_last_item() {
    loom::model(|| {
        let q = Arc::new(Queue::new(0));
        q.put_nowait(1).unwrap();
        let getter = {
            let q = q.clone();
            thread::spawn(move || {
                let first = loom::future::block_on(q.get());
                let second = loom::future::block_on(q.get());
                (first, second)
            })
        };
        q.shutdown(false);
        assert_eq!(getter.join().unwrap(), (Ok(1), Err(QueueShutDown(()))));
    });
}

/// An immediate shutdown races a getter and a waiting `join`: the getter
/// ends with the item or `QueueShutDown`, the `join` returns once the item
/// is either marked done or drained (the drain lowers the unfinished count
/// and wakes it), and the item is dropped exactly once.
#[test]
fn queue_immediate_shutdown_races_a_getter_and_join() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Arc::new(Queue::new(0));
        q.put_nowait(Counted(drops.clone())).unwrap();
        let joiner = {
            let q = q.clone();
            thread::spawn(move || loom::future::block_on(q.join()))
        };
        let getter = {
            let q = q.clone();
            thread::spawn(move || {
                if let Ok(item) = loom::future::block_on(q.get()) {
                    drop(item);
                    q.task_done().unwrap();
                }
            })
        };
        q.shutdown(true);
        getter.join().unwrap();
        joiner.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1, "the item was dropped twice or never");
        assert_eq!(q.qsize(), 0);
    });
}
