//! Whole-executor tests, small enough to run under Miri, so that the
//! schedulers' unsafe-adjacent paths (the thread-local scheduler pointer,
//! the LIFO slot, stealing, shutdown) are checked by it too.
//!
//! `scripts/test.sh` runs these under Miri's Tree Borrows model with leak
//! checks off: crossbeam-epoch (under crossbeam-deque) violates the stricter
//! Stacked Borrows rules in its intrusive list of thread records, and keeps
//! those records in a global list until the process exits. The task module's
//! tests, which use no crossbeam, run under Stacked Borrows with leak checks.

use crate::{Builder, Executor, Flavor};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

fn executors() -> Vec<Executor> {
    vec![
        Builder::new_current_thread().build().unwrap(),
        Builder::new_multi_thread().worker_threads(2).build().unwrap(),
    ]
}

const N: usize = if cfg!(miri) { 20 } else { 2000 };

#[test]
fn spawn_join_yield_and_wake() {
    for rt in executors() {
        let sum = rt.block_on(async {
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    crate::spawn(async move {
                        crate::task::yield_now().await;
                        // A child woken from this task goes to the LIFO slot.
                        crate::spawn(async move { i }).await.unwrap()
                    })
                })
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, (0..N).sum::<usize>());
    }
}

#[test]
fn wakes_from_a_foreign_thread() {
    for rt in executors() {
        let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        let waker_thread = std::thread::spawn(move || {
            for waker in rx {
                waker.wake();
            }
        });
        rt.block_on(async move {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let tx = tx.clone();
                    let f = f.clone();
                    crate::spawn(async move {
                        let mut sent = false;
                        std::future::poll_fn(|cx| {
                            if sent {
                                f.fetch_add(1, SeqCst);
                                return std::task::Poll::Ready(());
                            }
                            sent = true;
                            tx.send(cx.waker().clone()).unwrap();
                            std::task::Poll::Pending
                        })
                        .await
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        waker_thread.join().unwrap();
        assert_eq!(fired.load(SeqCst), 4);
    }
}

#[test]
fn drop_cancels_pending_tasks() {
    for rt in executors() {
        let flavor = rt.handle().flavor();
        let drops = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        for _ in 0..8 {
            let c = Count(drops.clone());
            drop(rt.spawn(async move {
                let _c = c;
                std::future::pending::<()>().await;
            }));
        }
        if flavor == Flavor::CurrentThread {
            rt.block_on(crate::task::yield_now());
        }
        drop(rt);
        assert_eq!(drops.load(SeqCst), 8);
    }
}

#[test]
fn blocking_jobs_run_and_report_panics() {
    for rt in executors() {
        let (ok, err) = rt.block_on(async {
            let ok = crate::spawn_blocking(|| 5).await.unwrap();
            let err = crate::spawn_blocking(|| panic!("in the pool")).await.unwrap_err();
            (ok, err)
        });
        assert_eq!(ok, 5);
        assert!(err.is_panic());
    }
}

/// Found in review: a wake from outside the runtime handed the task to the
/// injection queue while the scheduler call still borrowed the scheduler
/// *inside the task's cell*; a worker could run the task to completion and
/// free the cell during that call. This driver's `unpark` (called from inside
/// the scheduler call) waits until the worker has finished the task, so under
/// Miri the old code is caught every time.
#[test]
fn a_wake_from_outside_never_borrows_a_freed_task() {
    use crate::park::{Park, Unpark};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Condvar, Mutex};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    #[derive(Default)]
    struct Driver {
        state: Mutex<(bool, u64)>, // (token, entries into park(None))
        changed: Condvar,
        armed: AtomicBool,
    }
    struct Parker(Arc<Driver>);
    impl Park for Parker {
        fn park(&mut self, timeout: Option<Duration>) {
            let mut state = self.0.state.lock().unwrap();
            if timeout.is_none() {
                state.1 += 1;
                self.0.changed.notify_all();
            }
            if timeout == Some(Duration::ZERO) {
                return;
            }
            while !state.0 {
                state = self.0.changed.wait(state).unwrap();
            }
            state.0 = false;
        }
        fn unparker(&self) -> Arc<dyn Unpark> {
            self.0.clone()
        }
    }
    impl Unpark for Driver {
        fn unpark(&self) {
            let mut state = self.state.lock().unwrap();
            state.0 = true;
            self.changed.notify_all();
            if self.armed.swap(false, SeqCst) {
                // Still inside the scheduler call of the woken task: wait
                // until the worker has run it to completion and parked again.
                let entries = state.1;
                while state.1 == entries {
                    state = self.changed.wait(state).unwrap();
                }
            }
        }
    }
    struct Once(Arc<Mutex<Option<Waker>>>, bool);
    impl Future for Once {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.1 {
                return Poll::Ready(());
            }
            self.1 = true;
            *self.0.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    let driver = Arc::new(Driver::default());
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .driver(Parker(driver.clone()))
        .build()
        .unwrap();
    let slot = Arc::new(Mutex::new(None));
    // Detached, so completing the task frees its cell.
    drop(rt.spawn(Once(slot.clone(), false)));
    let waker = loop {
        if let Some(waker) = slot.lock().unwrap().take() {
            break waker;
        }
        std::thread::yield_now();
    };
    while rt.metrics().parked_workers != 1 {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(50));
    driver.armed.store(true, SeqCst);
    // By value, from a thread that is not a worker: the remote path.
    waker.wake();
}

/// The asyncio-style layer on real runtimes: done callbacks on task handles
/// and through the ready queue, a combinator's per-future wakers, and
/// cancellation.
#[test]
fn tasks_promises_callbacks_and_gather() {
    use crate::future::{Promise, create_task, gather};
    for rt in executors() {
        let handle = rt.handle().clone();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let total = rt.block_on(async move {
            let tasks: Vec<_> = (0..N as u64)
                .map(|i| {
                    create_task(async move {
                        crate::task::yield_now().await;
                        i
                    })
                })
                .collect();
            tasks[0].add_done_callback(move |t| {
                assert_eq!(t.result(), Ok(&0));
                r.fetch_add(1, SeqCst);
            });
            let stuck = create_task(std::future::pending::<u8>());
            assert!(stuck.cancel());
            let sum: u64 = gather(tasks).await.unwrap().into_iter().sum();
            // The task's callback ran where the task finished; the loop's
            // queue is FIFO as well.
            let flushed = Promise::<()>::new();
            let f = flushed.clone();
            handle.call_soon(move || f.set_result(()).unwrap());
            flushed.await.unwrap();
            sum
        });
        assert_eq!(total, (0..N as u64).sum::<u64>());
        assert_eq!(ran.load(SeqCst), 1);
    }
}

#[test]
fn the_pool_maps_in_order() {
    let pool = crate::pool::Pool::new(2).unwrap();
    let out = pool.map(|x: usize| x * 3, 0..N, Some(3)).unwrap();
    assert_eq!(out, (0..N).map(|x| x * 3).collect::<Vec<_>>());
}

#[test]
fn a_failing_map_drops_every_result_it_made() {
    let pool = crate::pool::Pool::new(2).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let (d, m) = (drops.clone(), made.clone());
    let result = pool.map(
        move |x: usize| {
            if x == N / 2 {
                std::panic::resume_unwind(Box::new("expected"));
            }
            m.fetch_add(1, SeqCst);
            Counted(d.clone())
        },
        0..N,
        Some(4),
    );
    assert!(result.is_err());
    assert_eq!(drops.load(SeqCst), made.load(SeqCst));
}

#[test]
fn a_task_builder_spawns_on_every_path() {
    use crate::task::Builder as TaskBuilder;
    for rt in executors() {
        let handle = rt.handle().clone();
        let on = TaskBuilder::new().name("on").spawn_on(async { 1 }, &handle);
        let blocking_on = TaskBuilder::new().name("blocking-on").spawn_blocking_on(|| 2, &handle);
        let sum = rt.block_on(async {
            let here = TaskBuilder::new().name("here").spawn(async { 3 });
            let blocking = TaskBuilder::new().spawn_blocking(|| 4);
            here.await.unwrap() + blocking.await.unwrap() + on.await.unwrap() + blocking_on.await.unwrap()
        });
        assert_eq!(sum, 10);
    }
}

#[test]
#[should_panic(expected = "weft::task::Builder::spawn(): there is no Weft runtime")]
fn a_task_builder_outside_a_runtime_names_itself_in_the_panic() {
    drop(crate::task::Builder::new().name("orphan").spawn(async {}));
}
