//! The task machinery against a minimal scheduler, without threads where
//! possible, so these tests also run under Miri.

use super::list::OwnedTasks;
use super::{Id, JoinHandle, Notified, Schedule, Task};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A scheduler that queues tasks and runs them when asked.
struct TestSched {
    queue: Mutex<VecDeque<Notified<Arc<TestSched>>>>,
    owned: OwnedTasks<Arc<TestSched>>,
    panics: AtomicUsize,
}

impl Schedule for Arc<TestSched> {
    fn release(&self, task: &Task<Self>) -> Option<Task<Self>> {
        self.owned.remove(task)
    }
    fn id(&self) -> *const () {
        Arc::as_ptr(self).cast()
    }
    fn schedule_local(_id: *const (), task: Notified<Self>, _is_yield: bool) -> Result<(), Notified<Self>> {
        Err(task)
    }
    fn schedule_remote(&self, task: Notified<Self>) {
        self.queue.lock().unwrap().push_back(task);
    }
    fn unhandled_panic(&self) {
        self.panics.fetch_add(1, SeqCst);
    }
}

fn sched() -> Arc<TestSched> {
    Arc::new(TestSched {
        queue: Mutex::new(VecDeque::new()),
        owned: OwnedTasks::new(4),
        panics: AtomicUsize::new(0),
    })
}

impl TestSched {
    fn spawn<F>(self: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, notified) = self
            .owned
            .bind(future, self.clone(), Id::next(), crate::trace::SpawnMeta::new(None));
        if let Some(n) = notified {
            self.schedule_remote(n);
        }
        join
    }

    /// Runs queued tasks until the queue is empty; returns how many runs.
    fn run_all(&self) -> usize {
        let mut n = 0;
        loop {
            let next = self.queue.lock().unwrap().pop_front();
            match next {
                Some(task) => {
                    task.run(&crate::observe::PollRecord::new(None));
                    n += 1;
                }
                None => return n,
            }
        }
    }

    fn shutdown(&self) {
        self.owned.close();
        self.owned.shutdown_all(0);
        self.queue.lock().unwrap().clear();
    }
}

/// Polls a join handle once with a no-op waker.
fn poll_join<T>(join: &mut JoinHandle<T>) -> Poll<Result<T, super::JoinError>> {
    Pin::new(join).poll(&mut Context::from_waker(Waker::noop()))
}

/// Counts its drops.
struct DropCounter(Arc<AtomicUsize>);
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Pending until its flag is set; stores its waker where the test can reach it.
struct Gate {
    open: Arc<AtomicUsize>,
    waker: Arc<Mutex<Option<Waker>>>,
}
impl Future for Gate {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.open.load(SeqCst) > 0 {
            return Poll::Ready(());
        }
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn gate() -> (Gate, Arc<AtomicUsize>, Arc<Mutex<Option<Waker>>>) {
    let open = Arc::new(AtomicUsize::new(0));
    let waker = Arc::new(Mutex::new(None));
    (
        Gate {
            open: open.clone(),
            waker: waker.clone(),
        },
        open,
        waker,
    )
}

#[test]
fn a_task_runs_and_its_handle_yields_the_output() {
    let s = sched();
    let mut join = s.spawn(async { 40 + 2 });
    assert!(poll_join(&mut join).is_pending());
    assert_eq!(s.run_all(), 1);
    assert!(join.is_finished());
    assert_eq!(poll_join(&mut join).map(Result::unwrap), Poll::Ready(42));
    assert!(s.owned.is_empty());
}

#[test]
fn a_wake_requeues_an_idle_task_once() {
    let s = sched();
    let (gate, open, waker) = gate();
    let mut join = s.spawn(gate);
    assert_eq!(s.run_all(), 1);
    let w = waker.lock().unwrap().take().unwrap();
    // Two wakes, one run.
    w.wake_by_ref();
    w.wake_by_ref();
    assert_eq!(s.queue.lock().unwrap().len(), 1);
    open.store(1, SeqCst);
    w.wake();
    assert_eq!(s.run_all(), 1);
    assert!(poll_join(&mut join).is_ready());
}

#[test]
fn a_wake_during_the_poll_requeues_after_it() {
    let s = sched();
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let join = s.spawn(std::future::poll_fn(move |cx| {
        if p.fetch_add(1, SeqCst) == 0 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(())
    }));
    assert_eq!(s.run_all(), 2, "woken during its poll, the task ran again");
    assert_eq!(polls.load(SeqCst), 2);
    drop(join);
}

#[test]
fn the_output_of_a_detached_task_is_dropped_once_at_completion() {
    let s = sched();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    drop(s.spawn(async move { DropCounter(d) }));
    assert_eq!(drops.load(SeqCst), 0);
    s.run_all();
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn an_unread_output_is_dropped_with_the_handle() {
    let s = sched();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let join = s.spawn(async move { DropCounter(d) });
    s.run_all();
    assert_eq!(drops.load(SeqCst), 0, "the output waits for its handle");
    drop(join);
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn abort_of_an_idle_task_drops_its_future_on_the_scheduler() {
    let s = sched();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let (gate, _open, _waker) = gate();
    let mut join = s.spawn(async move {
        let _guard = DropCounter(d);
        gate.await;
    });
    s.run_all();
    join.abort();
    assert_eq!(drops.load(SeqCst), 0, "abort itself does not drop the future");
    assert_eq!(s.run_all(), 1);
    assert_eq!(drops.load(SeqCst), 1);
    let Poll::Ready(Err(err)) = poll_join(&mut join) else {
        panic!("expected a cancellation")
    };
    assert!(err.is_cancelled());
}

#[test]
fn abort_before_the_first_run_and_after_completion() {
    let s = sched();
    let mut before = s.spawn(async { 1 });
    before.abort();
    s.run_all();
    assert!(matches!(poll_join(&mut before), Poll::Ready(Err(e)) if e.is_cancelled()));

    let mut after = s.spawn(async { 2 });
    s.run_all();
    after.abort();
    assert_eq!(s.run_all(), 0);
    assert!(matches!(poll_join(&mut after), Poll::Ready(Ok(2))));
}

#[test]
fn a_panic_is_caught_and_reported_with_its_payload() {
    let s = sched();
    let mut join = s.spawn(async {
        panic!("boom");
    });
    s.run_all();
    assert_eq!(s.panics.load(SeqCst), 1);
    let Poll::Ready(Err(err)) = poll_join(&mut join) else {
        panic!("expected a panic")
    };
    assert!(err.is_panic());
    assert!(err.to_string().contains("boom"));
    assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
}

#[test]
fn a_destructor_that_panics_during_cancellation_is_reported() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("destructor");
        }
    }
    let s = sched();
    let (gate, _open, _waker) = gate();
    let mut join = s.spawn(async move {
        let _bomb = Bomb;
        gate.await;
    });
    s.run_all();
    join.abort();
    s.run_all();
    let Poll::Ready(Err(err)) = poll_join(&mut join) else {
        panic!("expected an error")
    };
    assert!(err.is_panic());
}

/// A future that returns `Ready` and then panics as it is dropped; its
/// output counts its drops.
struct ReadyThenBomb(Option<DropCounter>);
impl Future for ReadyThenBomb {
    type Output = DropCounter;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<DropCounter> {
        Poll::Ready(self.0.take().expect("polled once"))
    }
}
impl Drop for ReadyThenBomb {
    fn drop(&mut self) {
        panic!("destructor after Ready");
    }
}

#[test]
fn a_destructor_that_panics_after_ready_is_reported_and_the_output_dropped_once() {
    let s = sched();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut join = s.spawn(ReadyThenBomb(Some(DropCounter(drops.clone()))));
    s.run_all();
    assert_eq!(s.panics.load(SeqCst), 1, "the scheduler heard of the panic");
    assert_eq!(drops.load(SeqCst), 1, "the output was dropped, once");
    let Poll::Ready(Err(err)) = poll_join(&mut join) else {
        panic!("expected a panic")
    };
    assert!(err.to_string().contains("destructor after Ready"), "{err}");
    drop(join);
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn a_task_freed_before_it_ran_drops_its_future_once() {
    // Not bound to any list: when its last reference goes, the cell is freed
    // with the future still in it.
    let drops = Arc::new(AtomicUsize::new(0));
    let d = DropCounter(drops.clone());
    let (task, notified, join) = super::new_task(
        async move {
            let _d = d;
            std::future::pending::<()>().await;
        },
        sched(),
        Id::next(),
        std::panic::Location::caller(),
        false,
    );
    drop(join);
    drop(notified);
    assert_eq!(drops.load(SeqCst), 0);
    drop(task);
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn a_handle_polled_again_after_ready_panics_with_weft_advice() {
    let s = sched();
    let mut join = s.spawn(async { 7 });
    s.run_all();
    assert!(matches!(poll_join(&mut join), Poll::Ready(Ok(7))));
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll_join(&mut join)));
    let payload = again.expect_err("a second poll after Ready panics");
    let msg = match payload.downcast_ref::<&str>() {
        Some(msg) => (*msg).to_owned(),
        None => payload.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(
        msg.contains("Weft JoinHandle was polled after it returned Ready"),
        "{msg}"
    );
}

#[test]
fn shutdown_cancels_idle_tasks_and_refuses_new_ones() {
    let s = sched();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut joins = Vec::new();
    for _ in 0..10 {
        let d = drops.clone();
        let (gate, _open, _waker) = gate();
        joins.push(s.spawn(async move {
            let _guard = DropCounter(d);
            gate.await;
        }));
    }
    s.run_all();
    s.shutdown();
    assert_eq!(drops.load(SeqCst), 10);
    for join in &mut joins {
        assert!(matches!(poll_join(join), Poll::Ready(Err(e)) if e.is_cancelled()));
    }
    let guard = DropCounter(drops.clone());
    let mut late = s.spawn(async move { drop(guard) });
    assert_eq!(
        drops.load(SeqCst),
        11,
        "a task spawned after shutdown is dropped at once"
    );
    assert!(matches!(poll_join(&mut late), Poll::Ready(Err(e)) if e.is_cancelled()));
    assert!(s.owned.is_empty());
}

#[test]
fn the_join_waker_is_woken_and_replaced() {
    use std::task::Wake;
    struct Flag(AtomicUsize);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let s = sched();
    let (gate, open, waker) = gate();
    let mut join = s.spawn(gate);
    s.run_all();
    let first = Arc::new(Flag(AtomicUsize::new(0)));
    let second = Arc::new(Flag(AtomicUsize::new(0)));
    let w1 = Waker::from(first.clone());
    let w2 = Waker::from(second.clone());
    assert!(Pin::new(&mut join).poll(&mut Context::from_waker(&w1)).is_pending());
    assert!(Pin::new(&mut join).poll(&mut Context::from_waker(&w2)).is_pending());
    open.store(1, SeqCst);
    waker.lock().unwrap().take().unwrap().wake();
    s.run_all();
    assert_eq!(first.0.load(SeqCst), 0, "the replaced waker is not woken");
    assert_eq!(second.0.load(SeqCst), 1);
    drop(join);
    assert_eq!(
        Arc::strong_count(&second),
        2,
        "only w2 is left: the task dropped its clone"
    );
}

#[test]
fn every_reference_is_released() {
    // The future holds a counter; when every reference (handle, wakers,
    // queue, list) is gone the cell is freed and the counter dropped.
    let s = sched();
    let alive = Arc::new(());
    let a = alive.clone();
    let (gate, open, waker) = gate();
    let join = s.spawn(async move {
        let _a = a;
        gate.await;
    });
    s.run_all();
    let w = waker.lock().unwrap().clone().unwrap();
    let abort = join.abort_handle();
    drop(join);
    open.store(1, SeqCst);
    w.wake_by_ref();
    s.run_all();
    assert!(abort.is_finished());
    drop((w, abort));
    waker.lock().unwrap().take();
    assert_eq!(Arc::strong_count(&alive), 1);
}

#[test]
fn ids_are_unique_and_the_current_id_is_set_while_polling() {
    let s = sched();
    let seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    let join = s.spawn(async move {
        *seen2.lock().unwrap() = super::try_id();
    });
    let id = join.id();
    s.run_all();
    assert_eq!(*seen.lock().unwrap(), Some(id));
    assert_eq!(super::try_id(), None);
    let mut ids: Vec<u64> = (0..1000).map(|_| Id::next().as_u64()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1000);
}

#[test]
fn wakes_from_another_thread_while_the_task_runs_are_not_lost() {
    let s = sched();
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    let (gate, open, waker) = gate();
    let mut join = s.spawn(gate);
    s.run_all();
    let w = waker.lock().unwrap().clone().unwrap();
    let th = std::thread::spawn(move || {
        for _ in 0..rounds {
            w.wake_by_ref();
        }
        open.store(1, SeqCst);
        w.wake();
    });
    while !join.is_finished() {
        s.run_all();
        std::thread::yield_now();
    }
    th.join().unwrap();
    assert!(matches!(poll_join(&mut join), Poll::Ready(Ok(()))));
}

#[test]
fn yield_now_requeues_the_task_once_per_yield() {
    let s = sched();
    let mut join = s.spawn(async {
        for _ in 0..3 {
            super::yield_now().await;
        }
        7
    });
    assert_eq!(s.run_all(), 4, "three yields, four polls");
    assert!(matches!(poll_join(&mut join), Poll::Ready(Ok(7))));
    assert_eq!(super::try_id(), None);
}

#[test]
fn a_yield_under_a_foreign_waker_wakes_that_waker_not_the_task() {
    use std::task::Wake;
    struct Flag(AtomicUsize);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let s = sched();
    let flag = Arc::new(Flag(AtomicUsize::new(0)));
    let f = flag.clone();
    let mut join = s.spawn(async move {
        // Poll a yield with someone else's waker (as a combinator with its
        // own wakers does): the deferred path must not claim it for the task.
        let foreign = Waker::from(f);
        let mut yielder = std::pin::pin!(super::yield_now());
        assert!(yielder.as_mut().poll(&mut Context::from_waker(&foreign)).is_pending());
        1
    });
    assert_eq!(s.run_all(), 1, "the task itself was not rescheduled");
    assert_eq!(flag.0.load(SeqCst), 1, "the foreign waker was woken");
    assert!(matches!(poll_join(&mut join), Poll::Ready(Ok(1))));
}

#[test]
fn a_task_that_spends_its_budget_yields_and_resumes() {
    let s = sched();
    let mut join = s.spawn(async {
        let mut steps = 0;
        for _ in 0..300 {
            crate::coop::consume_budget().await;
            steps += 1;
        }
        steps
    });
    // Run each poll under a fresh budget, as the schedulers do.
    let mut runs = 0;
    loop {
        let next = s.queue.lock().unwrap().pop_front();
        match next {
            Some(task) => {
                crate::coop::budget(|| task.run(&crate::observe::PollRecord::new(None)));
                runs += 1;
            }
            None => break,
        }
    }
    assert_eq!(runs, 3, "300 units at 128 per poll: three polls");
    assert!(matches!(poll_join(&mut join), Poll::Ready(Ok(300))));
}

#[test]
fn the_bookkeeping_of_a_task_is_104_bytes_and_the_stage_has_no_tag() {
    // 72 bytes of scheduling state (the done-callback list among them), and
    // the 32-byte record dumps read (`record.rs`).
    use super::core::Cell;
    use std::mem::size_of;
    if size_of::<usize>() != 8 {
        println!("skipped: the figures are for 64-bit targets");
        return;
    }
    fn cell_size<F: Future>(_: &F) -> usize {
        size_of::<Cell<F, Arc<TestSched>>>()
    }
    // The header alone: a field added to it must be paid for elsewhere.
    assert_eq!(size_of::<super::core::Header>(), 80, "the task header grew");
    // The suite `memory` shape: a 24-byte future awaiting a channel.
    static POLLS: AtomicUsize = AtomicUsize::new(0);
    let (_tx, rx) = futures::channel::oneshot::channel::<()>();
    let idle = async move {
        POLLS.fetch_add(1, SeqCst);
        let _ = rx.await;
        POLLS.fetch_add(1, SeqCst);
    };
    assert_eq!(size_of_val(&idle), 24);
    assert_eq!(size_of::<super::record::TaskRecord>(), 32);
    assert_eq!(cell_size(&idle), 104 + 24);
    // A large future: the stage is the future (rounded to a word), nothing
    // more.
    let big = async {
        let buf = std::hint::black_box([7u8; 200]);
        std::future::ready(()).await;
        buf[199]
    };
    assert!(size_of_val(&big) >= 200);
    assert_eq!(cell_size(&big), 104 + size_of_val(&big).next_multiple_of(8));
    // A tiny future: the stage is as large as the outcome, a tag and a
    // word (the panic payload is boxed once more, so that its variant is
    // one word). So a future of at most 16 bytes makes a 120-byte cell: a
    // 128-byte malloc chunk, which glibc frees to its fast bins even when
    // the per-thread cache is full (a 144-byte one goes to the unsorted bin).
    assert_eq!(size_of::<super::core::Outcome<()>>(), 16);
    assert_eq!(size_of::<super::core::Outcome<u64>>(), 16);
    assert_eq!(cell_size(&async {}), 104 + 16);
    let shared = Arc::new(1u64);
    let small = async move { *shared + 2 };
    assert_eq!(size_of_val(&small), 16);
    assert_eq!(cell_size(&small), 120);
}

#[test]
fn done_callbacks_run_once_in_order_with_the_output_before_it_is_taken() {
    let s = sched();
    let log = Arc::new(Mutex::new(Vec::new()));
    let join = s.spawn(async { String::from("out") });
    for i in 0..3 {
        let log = log.clone();
        join.add_done_callback(move |done| {
            log.lock().unwrap().push(format!("{i}:{}", done.result().unwrap()));
        });
    }
    let removed = {
        let log = log.clone();
        join.add_done_callback(move |_| log.lock().unwrap().push("removed".into()))
    };
    assert_eq!(join.remove_done_callback(removed), 1);
    assert_eq!(join.remove_done_callback(removed), 0, "an id removes at most once");
    assert!(!join.done());
    assert_eq!(join.result(), Err(super::Unavailable::Pending));
    s.run_all();
    assert_eq!(*log.lock().unwrap(), ["0:out", "1:out", "2:out"]);
    assert!(join.done() && !join.cancelled());
    assert_eq!(join.result().map(String::as_str), Ok("out"));
    // Added after completion: runs at once, here.
    let late = log.clone();
    join.add_done_callback(move |done| late.lock().unwrap().push(format!("late:{}", done.result().unwrap())));
    assert_eq!(log.lock().unwrap().last().unwrap(), "late:out");
    let mut join = join;
    match poll_join(&mut join) {
        Poll::Ready(out) => assert_eq!(out.unwrap(), "out", "the callbacks only borrowed the output"),
        Poll::Pending => panic!("a finished task's handle is ready"),
    }
    assert_eq!(join.result(), Err(super::Unavailable::Taken));
}

#[test]
fn done_callbacks_see_cancellation_and_run_after_the_handle_is_dropped() {
    let s = sched();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (gate, _open, _waker) = gate();
    let join = s.spawn(gate);
    s.run_all();
    let s2 = seen.clone();
    join.add_done_callback(move |done| s2.lock().unwrap().push((done.cancelled(), done.panicked())));
    assert!(join.cancel());
    drop(join); // detached: the callback still runs
    s.run_all();
    assert_eq!(*seen.lock().unwrap(), [(true, false)]);
}

#[test]
fn a_panicking_done_callback_costs_the_others_nothing() {
    let s = sched();
    let ran = Arc::new(AtomicUsize::new(0));
    let join = s.spawn(async { 1u8 });
    join.add_done_callback(|_| panic!("a callback panics"));
    let r = ran.clone();
    join.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    s.run_all();
    assert_eq!(ran.load(SeqCst), 1);
    let mut join = join;
    assert!(matches!(poll_join(&mut join), Poll::Ready(Ok(1))));
}

/// A panic payload that counts its drops and, if asked, panics as it goes.
struct Payload {
    tag: u32,
    drops: Arc<AtomicUsize>,
    bomb: bool,
}
impl Drop for Payload {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.bomb {
            panic!("payload destructor");
        }
    }
}

fn panic_with(tag: u32, drops: &Arc<AtomicUsize>, bomb: bool) -> impl Future<Output = u8> + Send + 'static {
    let drops = drops.clone();
    async move {
        std::panic::panic_any(Payload { tag, drops, bomb });
    }
}

/// The payload is boxed once more in the stored outcome: every kind comes
/// back out of `into_panic` as the type it was raised with (not the inner
/// box), `resume_unwind` carries it on, and it is dropped exactly once
/// whichever way the handle goes: awaited, dropped unread, dropped before
/// the task ran (detached), aborted after completion, or asked
/// `is_finished` and `result` first.
#[test]
fn panic_payloads_of_every_kind_come_out_whole_and_are_dropped_once() {
    let s = sched();
    // &str and String.
    let mut join = s.spawn(async { panic!("static str") });
    s.run_all();
    let Poll::Ready(Err(err)) = poll_join(&mut join) else {
        panic!("expected a panic")
    };
    assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "static str");
    let n = std::hint::black_box(7);
    let mut join = s.spawn(async move { panic!("formatted {n}") });
    s.run_all();
    let Poll::Ready(Err(err)) = poll_join(&mut join) else {
        panic!("expected a panic")
    };
    assert!(err.to_string().contains("formatted 7"), "{err}");
    assert_eq!(*err.into_panic().downcast::<String>().unwrap(), "formatted 7");

    // A custom payload: awaited, then resumed and caught again.
    let drops = Arc::new(AtomicUsize::new(0));
    let mut join = s.spawn(panic_with(1, &drops, false));
    s.run_all();
    assert!(join.is_finished());
    assert!(matches!(join.result(), Err(super::Unavailable::Panicked)));
    assert!(!join.cancel(), "a finished task cannot be cancelled");
    join.abort();
    let Poll::Ready(Err(err)) = poll_join(&mut join) else {
        panic!("expected a panic")
    };
    assert!(err.is_panic() && !err.is_cancelled());
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<Payload>().map(|p| p.tag), Some(1));
    let again =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || std::panic::resume_unwind(payload))).unwrap_err();
    assert_eq!(again.downcast_ref::<Payload>().map(|p| p.tag), Some(1));
    assert_eq!(drops.load(SeqCst), 0);
    drop(again);
    assert_eq!(drops.load(SeqCst), 1);
    drop(join);
    assert_eq!(drops.load(SeqCst), 1);

    // Dropped unread after completion; detached before it ran.
    let join = s.spawn(panic_with(2, &drops, false));
    s.run_all();
    drop(join);
    assert_eq!(drops.load(SeqCst), 2);
    drop(s.spawn(panic_with(3, &drops, false)));
    s.run_all();
    assert_eq!(drops.load(SeqCst), 3);
    assert_eq!(s.panics.load(SeqCst), 5);
    s.shutdown();
}

/// A payload whose destructor panics: dropping it on the runtime's behalf
/// (handle dropped after completion, or a detached task) is contained; the
/// user who takes it out gets it whole and its panic is theirs.
#[test]
fn a_payload_whose_destructor_panics_is_contained_when_the_runtime_drops_it() {
    let s = sched();
    let drops = Arc::new(AtomicUsize::new(0));
    let join = s.spawn(panic_with(1, &drops, true));
    s.run_all();
    drop(join);
    assert_eq!(drops.load(SeqCst), 1);
    drop(s.spawn(panic_with(2, &drops, true)));
    s.run_all();
    assert_eq!(drops.load(SeqCst), 2);
    // A future that panics with it while being dropped by an abort.
    struct BombOnDrop(Arc<AtomicUsize>);
    impl Drop for BombOnDrop {
        fn drop(&mut self) {
            std::panic::panic_any(Payload {
                tag: 9,
                drops: self.0.clone(),
                bomb: true,
            });
        }
    }
    let (gate, _open, _waker) = gate();
    let bomb = BombOnDrop(drops.clone());
    let mut join = s.spawn(async move {
        let _bomb = bomb;
        gate.await;
    });
    s.run_all();
    join.abort();
    s.run_all();
    assert!(join.is_finished());
    let Poll::Ready(Err(err)) = poll_join(&mut join) else {
        panic!("expected a panic")
    };
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<Payload>().map(|p| p.tag), Some(9));
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload))).is_err());
    assert_eq!(drops.load(SeqCst), 3);
    s.shutdown();
}
