//! Promises and tasks with the asyncio API: settling from any thread, done
//! callbacks (exactly once, in order, on the loop or inline), removal,
//! cancellation races, blocking waits, and tasks whose handle is a promise.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::Duration;
use weft::future::{Exception, Promise, PromiseError, create_task, shield, wait_for};
use weft_tests::{DropCounter, each_flavor, eventually, runtime};

const LONG: Duration = Duration::from_secs(10);

each_flavor! {
    fn a_promise_set_from_a_plain_thread_wakes_its_awaiter(flavor) {
        let rt = runtime(flavor);
        let got = rt.block_on(async {
            let promise = Promise::<u32>::new();
            let setter = promise.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(5));
                setter.set_result(9).unwrap();
            });
            promise.await
        });
        assert_eq!(got.unwrap(), 9);
    }

    fn done_callbacks_run_once_on_the_loop_in_the_order_added(flavor) {
        let rt = runtime(flavor);
        let (tx, rx) = mpsc::channel();
        let runtime_thread = rt.block_on(async {
            let promise = Promise::<u32>::new();
            for i in 0..5 {
                let tx = tx.clone();
                promise.add_done_callback(move |p| {
                    tx.send((i, *p.result().unwrap(), thread::current().name().map(str::to_owned))).unwrap();
                });
            }
            let setter = promise.clone();
            // Settled by a foreign thread, as a GPU or MPI completion would be.
            thread::Builder::new()
                .name("foreign".into())
                .spawn(move || setter.set_result(3).unwrap())
                .unwrap()
                .join()
                .unwrap();
            promise.clone().await.unwrap();
            // Callbacks run in FIFO order, so once one added last has run,
            // all have.
            let flushed = Promise::<()>::new();
            let f = flushed.clone();
            promise.add_done_callback(move |_| f.set_result(()).unwrap());
            flushed.await.unwrap();
            thread::current().name().map(str::to_owned)
        });
        drop(tx);
        let runs: Vec<_> = rx.iter().collect();
        assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert!(runs.iter().all(|r| r.1 == 3));
        // Never on the settling thread: on a worker, or (current-thread) the
        // thread in block_on.
        for (_, _, name) in &runs {
            assert_ne!(name.as_deref(), Some("foreign"));
            if flavor == weft::Flavor::CurrentThread {
                assert_eq!(name, &runtime_thread);
            }
        }
    }

    fn a_callback_added_to_a_done_promise_is_scheduled_at_once(flavor) {
        let rt = runtime(flavor);
        let (tx, rx) = mpsc::channel();
        rt.block_on(async {
            let promise = Promise::<&str>::new();
            promise.set_result("done").unwrap();
            let id = promise.add_done_callback(move |p| tx.send(*p.result().unwrap()).unwrap());
            // Already scheduled: nothing left to remove.
            assert_eq!(promise.remove_done_callback(id), 0);
            // It runs while the loop turns, with nothing else done to it
            // (on a loaded machine, maybe only after a few turns).
            let start = std::time::Instant::now();
            loop {
                match rx.try_recv() {
                    Ok(got) => break assert_eq!(got, "done"),
                    Err(_) => assert!(start.elapsed() < LONG, "the callback never ran"),
                }
                weft::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }

    fn a_removed_callback_never_runs_and_its_captures_are_dropped(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let promise = Promise::<()>::new();
            let guard = DropCounter::new(&drops);
            let r = ran.clone();
            let id = promise.add_done_callback(move |_| {
                let _guard = &guard;
                r.fetch_add(1, SeqCst);
            });
            assert_eq!(promise.listener_count(), 1);
            assert_eq!(promise.remove_done_callback(id), 1);
            assert_eq!(promise.remove_done_callback(id), 0);
            assert_eq!(drops.load(SeqCst), 1);
            promise.set_result(()).unwrap();
            weft::time::sleep(Duration::from_millis(2)).await;
        });
        assert_eq!(ran.load(SeqCst), 0);
    }

    fn an_id_from_another_promise_removes_nothing(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let a = Promise::<()>::new();
            let b = Promise::<()>::new();
            let id = a.add_done_callback(|_| {});
            b.add_done_callback(|_| {});
            assert_eq!(b.remove_done_callback(id), 0);
            assert_eq!(b.listener_count(), 1);
            assert_eq!(a.remove_done_callback(id), 1);
        });
    }

    fn result_exception_and_state_follow_asyncio(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let p = Promise::<u8>::new();
            assert!(!p.done() && !p.cancelled());
            assert!(matches!(p.result(), Err(PromiseError::Pending)));
            assert!(matches!(p.exception(), Err(PromiseError::Pending)));
            p.set_exception(std::io::Error::other("bad disk")).unwrap();
            assert!(p.done() && !p.cancelled());
            assert_eq!(p.exception().unwrap().unwrap().to_string(), "bad disk");
            let Err(PromiseError::Failed(err)) = p.clone().await else { panic!("expected failure") };
            assert!(err.downcast_ref::<std::io::Error>().is_some());
            // Settled once: later setters get their values back.
            assert_eq!(p.set_result(1), Err(1));
            assert!(!p.cancel());

            let q = Promise::<u8>::new();
            assert!(q.cancel());
            assert!(q.cancelled() && q.done());
            assert!(matches!(q.exception(), Err(PromiseError::Cancelled)));
            assert!(matches!(q.clone().await, Err(PromiseError::Cancelled)));
            assert!(q.set_exception(Exception::msg("late")).is_err());

            let r = Promise::<u8>::new();
            r.set_result(4).unwrap();
            assert!(r.exception().unwrap().is_none());
            assert_eq!(*r.result().unwrap(), 4);
        });
    }

    fn an_abandoned_await_cancels_nothing_but_wait_for_cancels_unless_shielded(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            // The example: one waiter gives up, the other gets 5.
            let p = Promise::<u32>::new();
            let b = create_task(p.clone()); // a waiter of its own
            let timed_out = weft::time::timeout(Duration::from_millis(10), p.clone()).await;
            assert!(timed_out.is_err());
            assert!(!p.done(), "an abandoned await cancelled the promise");
            assert_eq!(p.listener_count(), 1, "the abandoned await left its waker (only b's stays)");
            assert_eq!(p.set_result(5), Ok(()));
            assert_eq!(b.await.unwrap().unwrap(), 5);

            // With wait_for, asyncio's rule: the promise is cancelled, for
            // every waiter.
            let p = Promise::<u32>::new();
            let b = create_task(p.clone()); // a waiter of its own
            assert!(wait_for(p.clone(), Duration::from_millis(10)).await.is_err());
            assert!(p.cancelled());
            assert_eq!(p.set_result(5), Err(5));
            assert!(matches!(b.await.unwrap(), Err(PromiseError::Cancelled)));

            // A shield keeps it from wait_for.
            let shielded = Promise::<u8>::new();
            let timed_out = wait_for(shield(shielded.clone()), Duration::from_millis(5)).await;
            assert!(timed_out.is_err());
            assert!(!shielded.done());
            assert_eq!(shielded.listener_count(), 0, "the shield unregistered its waker");
            shielded.set_result(1).unwrap();

            // Dropping a promise that was never polled cancels nothing.
            let untouched = Promise::<u8>::new();
            drop(untouched.clone());
            assert!(!untouched.done());
        });
    }

    fn a_task_has_done_callbacks_and_cancel(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let quick = create_task(async { 6 * 7 });
            let seen = Promise::new();
            let s = seen.clone();
            quick.add_done_callback(move |t| s.set_result(*t.result().unwrap()).unwrap());
            assert_eq!(quick.await.unwrap(), 42);
            assert_eq!(seen.await.unwrap(), 42);

            let guard = DropCounter::new(&drops);
            let stuck = create_task(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
            weft::task::yield_now().await;
            assert!(!stuck.done());
            assert!(stuck.cancel());
            // The task's future is dropped soon after, on a worker; the task
            // is cancelled (and done) once it has been.
            eventually("the cancelled task's future to be dropped", || drops.load(SeqCst) == 1).await;
            eventually("the task to be done", || stuck.done()).await;
            assert!(stuck.cancelled());
            assert!(!stuck.cancel(), "cancel() on a finished task");
            let mut stuck = stuck;
            assert!((&mut stuck).await.unwrap_err().is_cancelled());
            assert!(stuck.cancelled(), "cancelled() answers after the await too");
        });
    }

    fn a_detached_task_runs_on_its_callbacks_run_and_its_abort_handle_cancels_it(flavor) {
        let rt = runtime(flavor);
        let drops = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let guard = DropCounter::new(&drops);
            let task = rt_task(guard);
            let abort = task.abort_handle();
            let seen = Promise::<bool>::new();
            let s = seen.clone();
            task.add_done_callback(move |t| s.set_result(t.cancelled()).unwrap());
            drop(task); // detached: it runs on
            weft::task::yield_now().await;
            assert!(!abort.is_finished() && !seen.done());
            abort.abort();
            assert!(seen.await.unwrap(), "the detached task's callback saw the cancellation");
            eventually("the cancelled task's future to be dropped", || drops.load(SeqCst) == 1).await;
        });
    }

    fn a_panicking_task_fails_its_promise(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let task = create_task(async {
                if true {
                    panic!("kaboom");
                }
                1u8
            });
            let err = task.await.unwrap_err();
            assert!(err.is_panic());
            assert!(err.to_string().contains("kaboom"));
        });
    }

    fn runtime_shutdown_cancels_pending_tasks_and_runs_their_callbacks(flavor) {
        let rt = runtime(flavor);
        let (task, seen) = {
            let _in_runtime = rt.enter();
            let task = create_task(std::future::pending::<u8>());
            let seen = Promise::<bool>::new();
            let s = seen.clone();
            task.add_done_callback(move |t| s.set_result(t.cancelled()).unwrap());
            (task, seen)
        };
        drop(rt);
        assert!(task.done() && task.cancelled());
        assert!(task.result().is_err());
        assert!(seen.done(), "a done callback did not run at shutdown");
        assert!(seen.wait().unwrap());
    }
}

fn rt_task(guard: DropCounter) -> weft::future::Task<()> {
    create_task(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    })
}

/// Settling on one thread while others add and remove callbacks: every
/// callback that is not removed runs exactly once, and a removed one never.
#[test]
fn callbacks_run_exactly_once_under_races() {
    for round in 0..200 {
        let promise = Promise::<usize>::new(); // no runtime: callbacks run inline
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..64).map(|_| AtomicUsize::new(0)).collect());
        let removed = Arc::new(Mutex::new(Vec::new()));
        let start = Arc::new(Barrier::new(3));
        let adders: Vec<_> = (0..2)
            .map(|t| {
                let promise = promise.clone();
                let runs = runs.clone();
                let removed = removed.clone();
                let start = start.clone();
                thread::spawn(move || {
                    start.wait();
                    for i in (t * 32)..(t * 32 + 32) {
                        let runs = runs.clone();
                        let id = promise.add_done_callback(move |p| {
                            assert!(p.done());
                            runs[i].fetch_add(1, SeqCst);
                        });
                        if i % 3 == 0 && promise.remove_done_callback(id) == 1 {
                            removed.lock().unwrap().push(i);
                        }
                    }
                })
            })
            .collect();
        start.wait();
        if round % 2 == 0 {
            thread::yield_now();
        }
        promise.set_result(round).unwrap();
        for adder in adders {
            adder.join().unwrap();
        }
        let removed = removed.lock().unwrap();
        for (i, count) in runs.iter().enumerate() {
            let expected = usize::from(!removed.contains(&i));
            assert_eq!(count.load(SeqCst), expected, "callback {i} in round {round}");
        }
    }
}

/// `cancel` racing `set_result`: exactly one wins, and every observer
/// agrees on which.
#[test]
fn cancel_races_set_result() {
    for _ in 0..500 {
        let promise = Promise::<u8>::new();
        let start = Arc::new(Barrier::new(2));
        let canceller = {
            let promise = promise.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                promise.cancel()
            })
        };
        start.wait();
        let set = promise.set_result(1).is_ok();
        let cancelled = canceller.join().unwrap();
        assert!(set ^ cancelled);
        assert_eq!(promise.cancelled(), cancelled);
        assert_eq!(promise.result().is_ok(), set);
    }
}

#[test]
fn blocking_wait_works_from_plain_threads_and_times_out() {
    let (resolver, promise) = Promise::<String>::channel();
    assert!(matches!(
        promise.wait_timeout(Duration::from_millis(5)),
        Err(PromiseError::Pending)
    ));
    assert_eq!(promise.listener_count(), 0, "a timed-out wait unregisters");
    let waiter = {
        let promise = promise.clone();
        thread::spawn(move || promise.wait().cloned())
    };
    thread::sleep(Duration::from_millis(5));
    resolver.set_result("hello".into()).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), "hello");

    let (resolver, promise) = Promise::<String>::channel();
    drop(resolver);
    assert!(matches!(promise.wait(), Err(PromiseError::Cancelled)));
}

#[test]
fn blocking_wait_on_a_runtime_thread_panics_with_advice() {
    let rt = runtime(weft::Flavor::CurrentThread);
    let message = rt.block_on(async {
        let promise = Promise::<u8>::new();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = promise.wait();
        }));
        weft_tests::panic_message(&*caught.unwrap_err())
    });
    assert!(message.contains("Weft") && message.contains(".await"), "{message}");
}

#[test]
fn inline_callbacks_run_on_the_settling_thread() {
    let rt = runtime(weft::Flavor::MultiThread);
    let promise = rt.handle().create_future::<u8>();
    let (tx, rx) = mpsc::channel();
    promise.add_done_callback_inline(move |_| tx.send(thread::current().name().map(str::to_owned)).unwrap());
    thread::Builder::new()
        .name("settler".into())
        .spawn(move || promise.set_result(1).unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap().as_deref(), Some("settler"));
}

#[test]
fn done_callbacks_of_a_promise_whose_runtime_is_gone_run_on_the_settling_thread() {
    let rt = runtime(weft::Flavor::MultiThread);
    let promise = rt.handle().create_future::<u8>();
    let (tx, rx) = mpsc::channel();
    promise.add_done_callback(move |p| tx.send(*p.result().unwrap()).unwrap());
    drop(rt);
    promise.set_result(3).unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), 3);
}

/// A `CallbackId` names its promise: an id from a promise that is gone
/// removes nothing from a new promise, even one at the same address (ids
/// once carried the address and restarted at 0 per promise).
#[test]
fn a_stale_callback_id_removes_nothing_from_another_promise() {
    let stale = {
        let gone = Promise::<u32>::new();
        gone.add_done_callback_inline(|_| {})
    };
    // Freed: new promises of the same size are likely to reuse its memory.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let others: Vec<Promise<u32>> = (0..64)
        .map(|_| {
            let mut p = Promise::new();
            // An awaiter registers the first listener (key 0 of old).
            assert!(std::pin::Pin::new(&mut p).poll(&mut cx).is_pending());
            p
        })
        .collect();
    for p in &others {
        assert_eq!(
            p.remove_done_callback(stale),
            0,
            "a stale id removed another promise's listener"
        );
        assert_eq!(p.listener_count(), 1);
    }
    // And ids of live promises stay apart.
    let a = Promise::<u32>::new();
    let b = Promise::<u32>::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let id_a = a.add_done_callback_inline(move |_| {
        r.fetch_add(1, SeqCst);
    });
    let id_b = b.add_done_callback_inline(|_| {});
    assert_ne!(id_a, id_b);
    assert_eq!(b.remove_done_callback(id_a), 0);
    assert_eq!(a.remove_done_callback(id_b), 0);
    a.set_result(1).unwrap();
    assert_eq!(ran.load(SeqCst), 1);
    assert_eq!(b.remove_done_callback(id_b), 1);
}

fn clone_panics(_: *const ()) -> std::task::RawWaker {
    panic!("weft test: this waker's clone panics")
}

fn no_op(_: *const ()) {}

static PANICKING_CLONE: std::task::RawWakerVTable = std::task::RawWakerVTable::new(clone_panics, no_op, no_op, no_op);

/// A waker whose clone panics: the promise's poll unwinds with nothing
/// registered, and the promise settles and wakes the others as usual.
#[test]
fn a_waker_whose_clone_panics_leaves_no_listener() {
    // SAFETY: the vtable's functions ignore the (null) data pointer.
    let waker = unsafe { std::task::Waker::from_raw(std::task::RawWaker::new(std::ptr::null(), &PANICKING_CLONE)) };
    let promise = Promise::<u32>::new();
    let mut awaiting = promise.clone();
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::pin::Pin::new(&mut awaiting)
            .poll(&mut std::task::Context::from_waker(&waker))
            .is_pending()
    }));
    assert!(polled.is_err(), "the poll never cloned the waker");
    assert_eq!(promise.listener_count(), 0);
    drop(awaiting);
    assert!(!promise.done(), "the unwound await cancelled the promise");
    promise.set_result(3).unwrap();
    assert_eq!(promise.result().ok(), Some(&3));
}

/// An awaiter whose `wake` panics does not cost the other listeners their
/// wake-up or callback: the settler hands out every one, then the panic.
#[test]
fn a_waker_whose_wake_panics_does_not_cost_the_others() {
    struct Waking {
        panics: bool,
        woken: AtomicUsize,
    }
    impl std::task::Wake for Waking {
        fn wake(self: Arc<Self>) {
            self.woken.fetch_add(1, SeqCst);
            assert!(!self.panics, "weft test: a waker whose wake panics");
        }
    }
    let promise = Promise::<u32>::new();
    let wakers: Vec<_> = (0..3)
        .map(|i| {
            Arc::new(Waking {
                panics: i == 1,
                woken: AtomicUsize::new(0),
            })
        })
        .collect();
    let mut awaiters: Vec<Promise<u32>> = wakers
        .iter()
        .map(|w| {
            let mut awaiter = promise.clone();
            let waker = std::task::Waker::from(w.clone());
            assert!(
                std::pin::Pin::new(&mut awaiter)
                    .poll(&mut std::task::Context::from_waker(&waker))
                    .is_pending()
            );
            awaiter
        })
        .collect();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    promise.add_done_callback_inline(move |_| {
        r.fetch_add(1, SeqCst);
    });
    let settled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| promise.set_result(4)));
    assert!(settled.is_err(), "the wake's panic reaches the settler");
    assert!(
        wakers.iter().all(|w| w.woken.load(SeqCst) == 1),
        "every awaiter was woken"
    );
    assert_eq!(ran.load(SeqCst), 1, "the callback after the panicking waker ran");
    assert_eq!(promise.result().ok(), Some(&4));
    for awaiter in &mut awaiters {
        assert!(futures::FutureExt::now_or_never(awaiter).is_some());
    }
}
