//! Loom models of the task state machine: every interleaving of the races
//! that matter, on the real task code (through the crate's loom shim).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p weft-executor --lib --release loom`.

use super::list::OwnedTasks;
use super::{Id, JoinHandle, Notified, Schedule, Task};
use crate::loom::{Mutex, lock, thread};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

pub(crate) struct LoomSched {
    queue: Mutex<VecDeque<Notified<std::sync::Arc<LoomSched>>>>,
    owned: OwnedTasks<std::sync::Arc<LoomSched>>,
}

impl Schedule for std::sync::Arc<LoomSched> {
    fn release(&self, task: &Task<Self>) -> Option<Task<Self>> {
        self.owned.remove(task)
    }
    fn id(&self) -> *const () {
        std::sync::Arc::as_ptr(self).cast()
    }
    fn schedule_local(_id: *const (), task: Notified<Self>, _is_yield: bool) -> Result<(), Notified<Self>> {
        Err(task)
    }
    fn schedule_remote(&self, task: Notified<Self>) {
        lock(&self.queue).push_back(task);
    }
}

pub(crate) fn sched() -> std::sync::Arc<LoomSched> {
    std::sync::Arc::new(LoomSched {
        queue: Mutex::new(VecDeque::new()),
        owned: OwnedTasks::new(1),
    })
}

impl LoomSched {
    fn spawn<F>(self: &std::sync::Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, notified) = self.owned.bind(future, self.clone(), Id::next());
        self.schedule_remote(notified.expect("list open"));
        join
    }

    /// A task bound to this scheduler, returned unscheduled (for a model
    /// of a queue that holds it); its `JoinHandle` is dropped.
    pub(crate) fn notified_for_test<F>(self: &std::sync::Arc<Self>, future: F) -> Notified<std::sync::Arc<LoomSched>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (_join, notified) = self.owned.bind(future, self.clone(), Id::next());
        notified.expect("list open")
    }

    fn run_all(&self) {
        loop {
            let next = lock(&self.queue).pop_front();
            match next {
                Some(task) => task.run(),
                None => return,
            }
        }
    }
}

/// Counts drops with a loom atomic, so loom sees the accesses.
pub(crate) struct DropCount(pub(crate) Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Pending until woken from outside: parks its waker in a shared slot.
struct Parked {
    slot: Arc<Mutex<Option<Waker>>>,
    polled: bool,
}
impl Future for Parked {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polled {
            return Poll::Ready(());
        }
        self.polled = true;
        *lock(&self.slot) = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Spawns a task that parks its waker in the returned slot (and is never
/// woken) while holding a drop counter: only cancellation can end it.
fn spawn_guarded_parked(
    s: &std::sync::Arc<LoomSched>,
) -> (JoinHandle<()>, Arc<AtomicUsize>, Arc<Mutex<Option<Waker>>>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCount(drops.clone());
    let slot = Arc::new(Mutex::new(None));
    let parked = Parked {
        slot: slot.clone(),
        polled: false,
    };
    let join = s.spawn(async move {
        let _guard = guard;
        parked.await;
    });
    (join, drops, slot)
}

fn block_on_join<T>(s: &LoomSched, mut join: JoinHandle<T>) -> Result<T, super::JoinError> {
    loop {
        s.run_all();
        if let Poll::Ready(out) = Pin::new(&mut join).poll(&mut Context::from_waker(Waker::noop())) {
            return out;
        }
        thread::yield_now();
    }
}

#[test]
fn dropping_the_join_handle_races_completion() {
    loom::model(|| {
        let s = sched();
        let drops = Arc::new(AtomicUsize::new(0));
        let out = DropCount(drops.clone());
        let join = s.spawn(async move { out });
        let th = thread::spawn(move || drop(join));
        s.run_all();
        th.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1, "the output is dropped exactly once");
    });
}

#[test]
fn a_wake_from_another_thread_races_the_poll() {
    loom::model(|| {
        let s = sched();
        let slot = Arc::new(Mutex::new(None));
        let join = s.spawn(Parked {
            slot: slot.clone(),
            polled: false,
        });
        let waker_slot = slot.clone();
        let th = thread::spawn(move || {
            // Wake whenever the waker shows up; it may not have yet.
            loop {
                if let Some(w) = lock(&waker_slot).take() {
                    w.wake();
                    return;
                }
                thread::yield_now();
            }
        });
        block_on_join(&s, join).unwrap();
        th.join().unwrap();
    });
}

#[test]
fn abort_races_the_poll() {
    loom::model(|| {
        let s = sched();
        let (join, drops, slot) = spawn_guarded_parked(&s);
        let abort = join.abort_handle();
        let th = thread::spawn(move || abort.abort());
        let s2 = s.clone();
        let runner = thread::spawn(move || s2.run_all());
        runner.join().unwrap();
        th.join().unwrap();
        // Whatever the interleaving, the task ends cancelled (it never gets
        // a wake, so it cannot complete) and its future is dropped once.
        let res = block_on_join(&s, join);
        assert!(res.unwrap_err().is_cancelled());
        assert_eq!(drops.load(SeqCst), 1);
        lock(&slot).take();
    });
}

#[test]
fn the_join_waker_races_completion() {
    use std::task::Wake;
    struct Flag(AtomicUsize);
    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    loom::model(|| {
        let s = sched();
        let mut join = s.spawn(async { 7 });
        let s2 = s.clone();
        let runner = thread::spawn(move || s2.run_all());
        let flag = std::sync::Arc::new(Flag(AtomicUsize::new(0)));
        let waker = Waker::from(flag.clone());
        let first = Pin::new(&mut join).poll(&mut Context::from_waker(&waker));
        runner.join().unwrap();
        match first {
            Poll::Ready(v) => assert_eq!(v.unwrap(), 7),
            Poll::Pending => {
                // Rule 4: a handle that registered before completion is woken.
                assert_eq!(flag.0.load(SeqCst), 1);
                let second = Pin::new(&mut join).poll(&mut Context::from_waker(&waker));
                assert!(matches!(second, Poll::Ready(Ok(7))));
            }
        }
    });
}

/// A handle that swaps its waker (polled from another task) while the task
/// completes and the runtime hands the waker field back: the swap must see
/// the completion, whichever order the bits change in. (Found by racing
/// `race(&mut a, &mut b)` then awaiting the loser: the swap asserted
/// JOIN_WAKER after the runtime had cleared it.)
#[test]
fn swapping_the_join_waker_races_completion() {
    use std::task::Wake;
    struct Flag(AtomicUsize);
    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    loom::model(|| {
        let s = sched();
        let mut join = s.spawn(async { 7 });
        let first = std::sync::Arc::new(Flag(AtomicUsize::new(0)));
        let second = std::sync::Arc::new(Flag(AtomicUsize::new(0)));
        let polled = Pin::new(&mut join).poll(&mut Context::from_waker(&Waker::from(first.clone())));
        assert!(polled.is_pending(), "the task has not run yet");
        let s2 = s.clone();
        let runner = thread::spawn(move || s2.run_all());
        let again = Pin::new(&mut join).poll(&mut Context::from_waker(&Waker::from(second.clone())));
        runner.join().unwrap();
        match again {
            Poll::Ready(v) => assert_eq!(v.unwrap(), 7),
            Poll::Pending => {
                // The second waker replaced the first and is the one woken.
                assert_eq!(second.0.load(SeqCst), 1);
                assert!(matches!(
                    Pin::new(&mut join).poll(&mut Context::from_waker(&Waker::noop())),
                    Poll::Ready(Ok(7))
                ));
            }
        }
    });
}

#[test]
fn shutdown_races_a_running_poll() {
    loom::model(|| {
        let s = sched();
        let (join, drops, slot) = spawn_guarded_parked(&s);
        let s2 = s.clone();
        let runner = thread::spawn(move || s2.run_all());
        s.owned.close();
        s.owned.shutdown_all(0);
        runner.join().unwrap();
        s.run_all();
        assert!(block_on_join(&s, join).unwrap_err().is_cancelled());
        assert_eq!(drops.load(SeqCst), 1);
        assert!(s.owned.is_empty());
        lock(&slot).take();
    });
}

/// Binds, on a new thread, a task that never completes and counts its drop
/// in `drops`; it is never scheduled, so only a shutdown sweep ends it.
fn bind_on_a_thread(s: &std::sync::Arc<LoomSched>, drops: &Arc<AtomicUsize>) -> thread::JoinHandle<JoinHandle<()>> {
    let (s2, guard) = (s.clone(), DropCount(drops.clone()));
    thread::spawn(move || {
        let future = async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        };
        let (join, notified) = s2.owned.bind(future, s2.clone(), Id::next());
        drop(notified);
        join
    })
}

#[test]
fn spawning_races_shutdown_of_the_owned_list() {
    loom::model(|| {
        let s = sched();
        let drops = Arc::new(AtomicUsize::new(0));
        let spawner = bind_on_a_thread(&s, &drops);
        s.owned.close();
        s.owned.shutdown_all(0);
        let join = spawner.join().unwrap();
        // Either `bind` saw the list closed and cancelled the task at once,
        // or `shutdown_all` found it in the list: never neither, never both.
        assert_eq!(drops.load(SeqCst), 1);
        assert!(join.is_finished());
        assert!(s.owned.is_empty());
    });
}

/// Found in review: `close` used to publish its flag before marking the
/// shards, so a sweeper keyed on the flag (the current-thread scheduler's
/// driving thread) could sweep before a concurrent `bind` landed in a shard
/// not yet closed, and that task was never cancelled.
#[test]
fn whoever_sees_the_list_closed_sweeps_every_task() {
    loom::model(|| {
        let s = sched();
        let drops = Arc::new(AtomicUsize::new(0));
        let spawner = bind_on_a_thread(&s, &drops);
        let s3 = s.clone();
        let sweeper = thread::spawn(move || {
            if s3.owned.is_closed() {
                s3.owned.shutdown_all(0);
                true
            } else {
                false
            }
        });
        // The closer itself does not sweep (as `shutdown_background`).
        s.owned.close();
        let swept = sweeper.join().unwrap();
        let join = spawner.join().unwrap();
        if swept {
            assert!(join.is_finished(), "a task escaped the sweep of a closed list");
            assert_eq!(drops.load(SeqCst), 1);
        }
        drop(join);
        // Clean up what an unswept model leaves behind.
        s.owned.shutdown_all(0);
    });
}

/// Done callbacks (rule 7, `done.rs`): a callback added from another thread
/// while the task completes runs exactly once, whether the completing
/// thread runs it or the adder does, and sees the output.
#[test]
fn a_done_callback_added_while_the_task_completes_runs_exactly_once() {
    loom::model(|| {
        let s = sched();
        let join = std::sync::Arc::new(s.spawn(async { 7usize }));
        let ran = Arc::new(AtomicUsize::new(0));
        let (join2, ran2) = (join.clone(), ran.clone());
        let adder = thread::spawn(move || {
            join2.add_done_callback(move |done| {
                assert_eq!(done.result(), Ok(&7));
                ran2.fetch_add(1, SeqCst);
            });
        });
        s.run_all();
        adder.join().unwrap();
        assert_eq!(ran.load(SeqCst), 1, "the callback ran exactly once");
        let join = std::sync::Arc::try_unwrap(join).expect("the adder dropped its clone");
        assert_eq!(
            block_on_join(&s, join).unwrap(),
            7,
            "the callback did not take the output"
        );
    });
}

/// A callback removed while the task completes runs at most once, and the
/// removal reports whether it got there first.
#[test]
fn removing_a_done_callback_races_completion() {
    loom::model(|| {
        let s = sched();
        let join = std::sync::Arc::new(s.spawn(async {}));
        let ran = Arc::new(AtomicUsize::new(0));
        let ran2 = ran.clone();
        let id = join.add_done_callback(move |_| {
            ran2.fetch_add(1, SeqCst);
        });
        let join2 = join.clone();
        let remover = thread::spawn(move || join2.remove_done_callback(id));
        s.run_all();
        let removed = remover.join().unwrap();
        assert_eq!(ran.load(SeqCst) + removed, 1, "run or removed, exactly one");
    });
}
