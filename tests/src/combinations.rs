//! The spawn/abort/panic/drop matrix, after Tokio's `task_combinations`.
//!
//! One [`Plan`] is a task's life: which runtime it runs on, whether its body
//! returns or panics, whether its future's and its output's destructors
//! panic, when (and through which handle) it is aborted, what happens to
//! its `JoinHandle`, and whether the runtime is shut down under it.
//! [`run`] plays one plan and checks what every plan must give:
//!
//! - the future is dropped exactly once, and by the time the runtime is
//!   gone;
//! - an output is made at most once and dropped exactly once if made;
//! - an awaited `JoinHandle` reports what the plan implies (the output, the
//!   panic, or the cancellation: see [`Plan::expected`]);
//! - nothing waits forever: every wait is bounded by [`HANG`] and names
//!   the step that hung;
//! - `RuntimeMetrics::alive_tasks` is 0 once the task has finished;
//! - a done callback added at spawn (asyncio's `Task.add_done_callback`)
//!   runs exactly once whatever happens to the handle and the runtime, has
//!   run by the time an awaited `JoinHandle` returns, sees the outcome the
//!   plan implies, and is dropped exactly once.
//!
//! A task is driven through its life by a `Probe`, a hand-written future
//! that reports each step to the driver: it is first polled and waits for
//! a *go* signal; on *go* it may wait (inside `poll`) for an abort from
//! another thread; then it returns an [`Output`] or panics.
//!
//! The test (`tests/tests/combinations.rs`) runs every plan of
//! [`all_plans`]; `stress combinations N` runs `N` random ones, with
//! random delays between the steps to shake the interleavings.

use crate::Rng;
use futures::channel::oneshot;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The longest any step may take before the plan counts as hung.
pub const HANG: Duration = Duration::from_secs(20);

/// Marks the panics the matrix raises on purpose, so that a panic hook can
/// keep them quiet ([`quiet_planned_panics`]).
pub const PLANNED: &str = "weft-combination: planned panic";

/// Which runtime runs the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// `Builder::new_current_thread`: the task runs only inside `block_on`.
    CurrentThread,
    /// A multi-thread runtime with one worker.
    Multi1,
    /// A multi-thread runtime with four workers (more than the CI's cores).
    Multi4,
}

/// What the task's body does once told to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Returns an [`Output`].
    Returns,
    /// Panics.
    Panics,
}

/// When the task is aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortAt {
    /// Never.
    Never,
    /// Right after spawning, before any poll (on a multi-thread runtime a
    /// worker may race the abort to a first poll).
    BeforeFirstPoll,
    /// While it is idle, waiting for *go*.
    WhileIdle,
    /// From another thread while its body runs inside `poll`; that poll then
    /// returns `Pending` (after waking itself), so it is cancelled.
    DuringPoll,
    /// From another thread while its body runs inside the poll that
    /// finishes it; the outcome of that poll stands.
    DuringFinalPoll,
    /// After it finished, before the output is taken.
    AfterFinish,
    /// After the `JoinHandle` returned the outcome (or after finish, if the
    /// handle is not awaited).
    AfterJoin,
}

/// Which handle aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortVia {
    /// `JoinHandle::abort` (the `AbortHandle` once the `JoinHandle` is gone).
    JoinHandle,
    /// `AbortHandle::abort`.
    AbortHandle,
}

/// What happens to the `JoinHandle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Dropped right after spawning.
    DropAtOnce,
    /// Dropped while the task is idle.
    DropWhileIdle,
    /// Dropped after the task finished, its output not taken.
    DropAfterFinish,
    /// Polled while the task is idle (so the task must wake it), then
    /// awaited.
    AwaitEarly,
    /// Awaited only after the task finished.
    AwaitLate,
}

/// When the runtime is shut down (dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// At the end, after everything else.
    AtEnd,
    /// While the task is idle, waiting for *go*.
    WhileIdle,
    /// After the task finished, before its `JoinHandle` is awaited or
    /// dropped (the outcome outlives the runtime).
    AfterFinish,
}

/// One task's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The runtime.
    pub runtime: RuntimeKind,
    /// What the body does.
    pub body: Body,
    /// The future's destructor panics.
    pub future_drop_panics: bool,
    /// The output's destructor panics.
    pub output_drop_panics: bool,
    /// When it is aborted.
    pub abort_at: AbortAt,
    /// Through which handle.
    pub abort_via: AbortVia,
    /// What happens to the `JoinHandle`.
    pub join: Join,
    /// When the runtime is shut down.
    pub shutdown: Shutdown,
}

/// What an awaited `JoinHandle` must report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// `Ok(output)`.
    Output,
    /// `Err(e)` with `e.is_panic()`.
    Panic,
    /// `Err(e)` with `e.is_cancelled()`.
    Cancelled,
}

impl Plan {
    /// True for plans whose steps cannot happen in this order, or that
    /// repeat another plan; [`all_plans`] leaves them out and
    /// [`random_plan`] never makes them.
    pub fn is_impossible(&self) -> bool {
        // The runtime shut down while the task is idle cancels it: it never
        // finishes, so nothing can happen "during" or "after" its final poll
        // (an AbortHandle still works on a cancelled task, which is the
        // `WhileIdle` abort's case).
        let cancelled_idle = self.shutdown == Shutdown::WhileIdle;
        // A task aborted before it runs its body never reaches its body's
        // poll.
        let no_body = matches!(
            self.abort_at,
            AbortAt::BeforeFirstPoll | AbortAt::WhileIdle | AbortAt::DuringPoll
        );
        (cancelled_idle && matches!(self.abort_at, AbortAt::DuringPoll | AbortAt::DuringFinalPoll))
            // Aborting via the JoinHandle after it is gone is the
            // AbortHandle case: keep one of the two.
            || (self.abort_via == AbortVia::JoinHandle && self.join_gone_before_abort())
            // The output's destructor matters only when an output is made.
            || (self.output_drop_panics && (no_body || self.body == Body::Panics || cancelled_idle))
            // With no abort, the handle that would abort makes no
            // difference: keep one of the two.
            || (self.abort_at == AbortAt::Never && self.abort_via == AbortVia::AbortHandle)
    }

    /// True if the `JoinHandle` is dropped before the plan's abort.
    fn join_gone_before_abort(&self) -> bool {
        let dropped_at = match self.join {
            Join::DropAtOnce => 0,
            Join::DropWhileIdle => 1,
            Join::DropAfterFinish => 2,
            Join::AwaitEarly | Join::AwaitLate => return false,
        };
        let abort_at = match self.abort_at {
            AbortAt::Never => return false,
            AbortAt::BeforeFirstPoll => 0,
            AbortAt::WhileIdle | AbortAt::DuringPoll | AbortAt::DuringFinalPoll => 1,
            AbortAt::AfterFinish | AbortAt::AfterJoin => 2,
        };
        // At the same step the handle is dropped first.
        dropped_at <= abort_at
    }

    /// What the task's outcome must be.
    pub fn expected(&self) -> Expected {
        let cancelled = matches!(
            self.abort_at,
            AbortAt::BeforeFirstPoll | AbortAt::WhileIdle | AbortAt::DuringPoll
        ) || self.shutdown == Shutdown::WhileIdle;
        if cancelled {
            // Dropping a cancelled task's future runs its destructor; a
            // panic there is the task's outcome.
            if self.future_drop_panics {
                Expected::Panic
            } else {
                Expected::Cancelled
            }
        } else if self.body == Body::Panics || self.future_drop_panics {
            Expected::Panic
        } else {
            Expected::Output
        }
    }

    /// True if the task's body returns an output in this plan.
    fn makes_output(&self) -> bool {
        self.body == Body::Returns
            && !matches!(
                self.abort_at,
                AbortAt::BeforeFirstPoll | AbortAt::WhileIdle | AbortAt::DuringPoll
            )
            && self.shutdown != Shutdown::WhileIdle
    }
}

/// Every possible plan: the CI sample is all of them.
pub fn all_plans() -> Vec<Plan> {
    let mut plans = Vec::new();
    for runtime in [RuntimeKind::CurrentThread, RuntimeKind::Multi1, RuntimeKind::Multi4] {
        for body in [Body::Returns, Body::Panics] {
            for future_drop_panics in [false, true] {
                for output_drop_panics in [false, true] {
                    for abort_at in ABORTS {
                        for abort_via in [AbortVia::JoinHandle, AbortVia::AbortHandle] {
                            for join in JOINS {
                                for shutdown in SHUTDOWNS {
                                    let plan = Plan {
                                        runtime,
                                        body,
                                        future_drop_panics,
                                        output_drop_panics,
                                        abort_at,
                                        abort_via,
                                        join,
                                        shutdown,
                                    };
                                    if !plan.is_impossible() {
                                        plans.push(plan);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    plans
}

const ABORTS: [AbortAt; 7] = [
    AbortAt::Never,
    AbortAt::BeforeFirstPoll,
    AbortAt::WhileIdle,
    AbortAt::DuringPoll,
    AbortAt::DuringFinalPoll,
    AbortAt::AfterFinish,
    AbortAt::AfterJoin,
];
const JOINS: [Join; 5] = [
    Join::DropAtOnce,
    Join::DropWhileIdle,
    Join::DropAfterFinish,
    Join::AwaitEarly,
    Join::AwaitLate,
];
const SHUTDOWNS: [Shutdown; 3] = [Shutdown::AtEnd, Shutdown::WhileIdle, Shutdown::AfterFinish];

/// A random possible plan.
pub fn random_plan(rng: &mut Rng) -> Plan {
    fn pick<T: Copy>(rng: &mut Rng, from: &[T]) -> T {
        from[rng.range(0, from.len() as u64) as usize]
    }
    loop {
        let plan = Plan {
            runtime: pick(
                rng,
                &[RuntimeKind::CurrentThread, RuntimeKind::Multi1, RuntimeKind::Multi4],
            ),
            body: pick(rng, &[Body::Returns, Body::Panics]),
            future_drop_panics: rng.range(0, 2) == 1,
            output_drop_panics: rng.range(0, 2) == 1,
            abort_at: pick(rng, &ABORTS),
            abort_via: pick(rng, &[AbortVia::JoinHandle, AbortVia::AbortHandle]),
            join: pick(rng, &JOINS),
            shutdown: pick(rng, &SHUTDOWNS),
        };
        if !plan.is_impossible() {
            return plan;
        }
    }
}

/// Installs (once per process) a panic hook that keeps the matrix's
/// planned panics quiet and reports every other panic as the default hook
/// does.
pub fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let planned = info.payload().downcast_ref::<&str>().is_some_and(|s| *s == PLANNED);
            if !planned {
                default(info);
            }
        }));
    });
}

/// What the probe and its output report, under one lock.
#[derive(Debug, Default, Clone, Copy)]
struct Log {
    polls: u32,
    idle: bool,
    in_body: bool,
    aborted_in_poll: bool,
    futures_dropped: u32,
    outputs_made: u32,
    outputs_dropped: u32,
    callbacks_run: u32,
    callback_saw: Option<Expected>,
    callbacks_dropped: u32,
}

/// The log and the condition variable its readers wait on.
#[derive(Debug, Default)]
struct Shared {
    log: Mutex<Log>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Log)) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut log);
        self.changed.notify_all();
    }

    fn read(&self) -> Log {
        *self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks this thread until `cond` holds; panics after [`HANG`].
    fn wait_blocking(&self, what: &str, plan: &Plan, cond: impl Fn(&Log) -> bool) {
        let deadline = Instant::now() + HANG;
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        while !cond(&log) {
            let now = Instant::now();
            assert!(now < deadline, "hang: {what} never happened in {plan:?} ({log:?})");
            log = self
                .changed
                .wait_timeout(log, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The task's output: counts its drop, and panics there if planned.
#[derive(Debug)]
pub struct Output {
    shared: Arc<Shared>,
    panics: bool,
}

impl Drop for Output {
    fn drop(&mut self) {
        self.shared.update(|log| log.outputs_dropped += 1);
        if self.panics && !std::thread::panicking() {
            panic::panic_any(PLANNED);
        }
    }
}

/// Captured by the task's done callback: counts the callback's drop.
struct CallbackCapture(Arc<Shared>);

impl Drop for CallbackCapture {
    fn drop(&mut self) {
        self.0.update(|log| log.callbacks_dropped += 1);
    }
}

/// The task's future (see the module doc).
struct Probe {
    shared: Arc<Shared>,
    plan: Plan,
    go: oneshot::Receiver<()>,
    yielded_after_abort: bool,
}

impl Future for Probe {
    type Output = Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        let this = &mut *self;
        this.shared.update(|log| log.polls += 1);
        if this.yielded_after_abort {
            // Polled again after an abort during poll: a cancelled task
            // must never be polled.
            panic!(
                "combination bug: a task aborted inside poll was polled again ({:?})",
                this.plan
            );
        }
        if Pin::new(&mut this.go).poll(cx).is_pending() {
            this.shared.update(|log| log.idle = true);
            return Poll::Pending;
        }
        let aborted_inside = matches!(this.plan.abort_at, AbortAt::DuringPoll | AbortAt::DuringFinalPoll);
        if aborted_inside {
            this.shared.update(|log| log.in_body = true);
            this.shared
                .wait_blocking("the abort during poll", &this.plan, |log| log.aborted_in_poll);
            if this.plan.abort_at == AbortAt::DuringPoll {
                this.yielded_after_abort = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if this.plan.body == Body::Panics {
            panic::panic_any(PLANNED);
        }
        this.shared.update(|log| log.outputs_made += 1);
        Poll::Ready(Output {
            shared: this.shared.clone(),
            panics: this.plan.output_drop_panics,
        })
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.shared.update(|log| log.futures_dropped += 1);
        if self.plan.future_drop_panics && !std::thread::panicking() {
            panic::panic_any(PLANNED);
        }
    }
}

/// Random pauses between steps (long mode), or none.
#[derive(Debug)]
pub struct Jitter(Option<Rng>);

impl Jitter {
    /// No pauses.
    pub fn none() -> Jitter {
        Jitter(None)
    }

    /// Pauses drawn from `rng`: mostly none, sometimes a yield, sometimes up
    /// to 200 µs.
    pub fn random(rng: Rng) -> Jitter {
        Jitter(Some(rng))
    }

    fn pause(&mut self) {
        if let Some(rng) = &mut self.0 {
            match rng.range(0, 8) {
                0 => std::thread::yield_now(),
                1 => std::thread::sleep(Duration::from_micros(rng.range(1, 200))),
                _ => {}
            }
        }
    }
}

/// Builds the plan's runtime.
fn build(kind: RuntimeKind) -> weft::Runtime {
    match kind {
        RuntimeKind::CurrentThread => weft::Builder::new_current_thread().build(),
        RuntimeKind::Multi1 => weft::Builder::new_multi_thread().worker_threads(1).build(),
        RuntimeKind::Multi4 => weft::Builder::new_multi_thread().worker_threads(4).build(),
    }
    .expect("the runtime builds")
}

/// Runs the plan's runtime until `cond` holds: a current-thread runtime
/// needs a thread inside `block_on` to run the task; a multi-thread one
/// runs it on its workers while this thread waits.
fn wait_until(rt: Option<&weft::Runtime>, shared: &Shared, plan: &Plan, what: &str, cond: impl Fn(&Log) -> bool) {
    match rt {
        Some(rt) if plan.runtime == RuntimeKind::CurrentThread => rt.block_on(async {
            let deadline = Instant::now() + HANG;
            while !cond(&shared.read()) {
                assert!(
                    Instant::now() < deadline,
                    "hang: {what} never happened in {plan:?} ({:?})",
                    shared.read()
                );
                weft::task::yield_now().await;
            }
        }),
        _ => shared.wait_blocking(what, plan, cond),
    }
}

/// Blocks on `future` with the runtime if there is one (a current-thread
/// runtime must run to make progress), else on this thread alone; panics
/// after [`HANG`].
fn block_on<F: Future>(rt: Option<&weft::Runtime>, plan: &Plan, what: &str, future: F) -> F::Output {
    let bounded = async {
        let mut future = std::pin::pin!(future);
        let deadline = Instant::now() + HANG;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = future.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            assert!(Instant::now() < deadline, "hang: {what} never finished in {plan:?}");
            // Re-poll soon: the deadline needs no timer (the runtime may
            // be gone).
            cx.waker().wake_by_ref();
            std::thread::sleep(Duration::from_micros(50));
            Poll::Pending
        })
        .await
    };
    match rt {
        Some(rt) => rt.block_on(bounded),
        None => futures::executor::block_on(bounded),
    }
}

/// What one plan did, for the long mode's tallies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Played {
    /// The outcome the `JoinHandle` reported, if it was awaited.
    pub joined: Option<Expected>,
    /// An output was made.
    pub made_output: bool,
}

/// Plays `plan` and checks it (see the module doc); panics naming the plan
/// on any violation.
pub fn run(plan: Plan, jitter: &mut Jitter) -> Played {
    let shared = Arc::new(Shared::default());
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let mut rt = Some(build(plan.runtime));
    let probe = Probe {
        shared: shared.clone(),
        plan,
        go: go_rx,
        yielded_after_abort: false,
    };
    let mut join = Some(rt.as_ref().unwrap().spawn(probe));
    let capture = CallbackCapture(shared.clone());
    join.as_ref().unwrap().add_done_callback(move |done| {
        let saw = match done.result() {
            Ok(_) => Expected::Output,
            Err(weft::task::Unavailable::Panicked) => Expected::Panic,
            Err(weft::task::Unavailable::Cancelled) => Expected::Cancelled,
            Err(other) => panic!("a done callback saw {other:?}"),
        };
        capture.0.update(|log| {
            log.callbacks_run += 1;
            log.callback_saw = Some(saw);
        });
    });
    let abort_handle = join.as_ref().unwrap().abort_handle();
    let abort = |join: &Option<weft::JoinHandle<Output>>| match (plan.abort_via, join) {
        (AbortVia::JoinHandle, Some(join)) => join.abort(),
        _ => abort_handle.abort(),
    };
    let mut joined = None;
    let mut early = None;
    let mut take_outcome = |rt: Option<&weft::Runtime>,
                            join: &mut Option<weft::JoinHandle<Output>>,
                            early: Option<Result<Output, weft::JoinError>>| {
        let outcome = match early {
            Some(outcome) => outcome,
            None => {
                let handle = join.take().expect("the join handle is still here");
                block_on(rt, &plan, "awaiting the JoinHandle", handle)
            }
        };
        let got = match &outcome {
            Ok(_) => Expected::Output,
            Err(e) if e.is_panic() => Expected::Panic,
            Err(e) if e.is_cancelled() => Expected::Cancelled,
            Err(e) => panic!("a JoinError neither panic nor cancellation: {e:?} in {plan:?}"),
        };
        assert_eq!(got, plan.expected(), "the JoinHandle's outcome in {plan:?}");
        let log = shared.read();
        assert_eq!(
            (log.callbacks_run, log.callback_saw),
            (1, Some(got)),
            "the done callback ran once, before the join returned, and saw its outcome: {plan:?}"
        );
        if let Some(rt) = rt {
            assert_eq!(
                rt.metrics().alive_tasks,
                0,
                "a joined task still counts as alive: {plan:?}"
            );
        }
        // Dropping the output may panic, as planned; the output is still
        // dropped exactly once.
        let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(outcome)));
        if got == Expected::Output {
            assert_eq!(dropped.is_err(), plan.output_drop_panics, "{plan:?}");
        }
        joined = Some(got);
    };

    // Step 0: just spawned.
    jitter.pause();
    if plan.join == Join::DropAtOnce {
        join = None;
    }
    if plan.abort_at == AbortAt::BeforeFirstPoll {
        abort(&join);
    }

    // Step 1: wait until the task is idle (or was cancelled before it ran).
    wait_until(rt.as_ref(), &shared, &plan, "the first poll", |log| {
        log.idle || log.futures_dropped > 0
    });
    jitter.pause();
    if plan.join == Join::AwaitEarly {
        // Poll the handle once while the task waits, so its completion
        // must wake this handle's waker.
        let handle = join.as_mut().unwrap();
        let polled = rt.as_ref().unwrap().block_on(async { futures::poll!(handle) });
        if let Poll::Ready(outcome) = polled {
            // Only a task cancelled before its first poll can be done here.
            assert_eq!(
                plan.abort_at,
                AbortAt::BeforeFirstPoll,
                "an idle task's JoinHandle is pending in {plan:?}"
            );
            early = Some(outcome);
            join = None;
        }
    }
    if plan.join == Join::DropWhileIdle {
        join = None;
    }
    if plan.abort_at == AbortAt::WhileIdle {
        abort(&join);
    }
    if plan.shutdown == Shutdown::WhileIdle {
        drop(rt.take());
        assert_eq!(
            shared.read().futures_dropped,
            1,
            "dropping the runtime drops an idle task's future: {plan:?}"
        );
    }

    // Step 2: go, and let the body run.
    let _ = go_tx.send(());
    std::thread::scope(|scope| {
        if matches!(plan.abort_at, AbortAt::DuringPoll | AbortAt::DuringFinalPoll) {
            let shared = &shared;
            let join = &join;
            let abort = &abort;
            scope.spawn(move || {
                shared.wait_blocking("the body's poll", &plan, |log| log.in_body);
                abort(join);
                shared.update(|log| log.aborted_in_poll = true);
            });
        }
        jitter.pause();
        if rt.is_some() {
            // The task is finished when its future is dropped and the
            // runtime no longer counts it.
            let rt_ref = rt.as_ref();
            wait_until(rt_ref, &shared, &plan, "the task finishing", |log| {
                log.futures_dropped > 0
            });
            // A finishing task leaves the runtime's count just before it is
            // marked complete (so that `alive_tasks` is 0 once its
            // JoinHandle has the output): wait for both.
            let deadline = Instant::now() + HANG;
            while rt_ref.unwrap().metrics().alive_tasks != 0 || !abort_handle.is_finished() {
                assert!(Instant::now() < deadline, "hang: the task is still alive in {plan:?}");
                if plan.runtime == RuntimeKind::CurrentThread {
                    rt_ref.unwrap().block_on(weft::task::yield_now());
                } else {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
    });

    // Step 3: finished.
    let log = shared.read();
    assert_eq!(
        log.futures_dropped, 1,
        "the future is dropped once the task finished: {plan:?} {log:?}"
    );
    assert_eq!(log.outputs_made, u32::from(plan.makes_output()), "{plan:?} {log:?}");
    if plan.body == Body::Panics || !plan.makes_output() {
        assert_eq!(log.outputs_made, 0, "{plan:?}");
    }
    jitter.pause();
    if plan.abort_at == AbortAt::AfterFinish {
        abort(&join);
    }
    if plan.shutdown == Shutdown::AfterFinish {
        drop(rt.take());
    }
    match plan.join {
        Join::DropAfterFinish => join = None,
        Join::AwaitEarly | Join::AwaitLate => take_outcome(rt.as_ref(), &mut join, early.take()),
        Join::DropAtOnce | Join::DropWhileIdle => {}
    }
    if plan.abort_at == AbortAt::AfterJoin {
        abort(&join);
    }

    // Step 4: the end.
    drop(join);
    drop(abort_handle);
    drop(rt.take());
    let log = shared.read();
    assert_eq!(
        log.futures_dropped, 1,
        "the future is dropped exactly once: {plan:?} {log:?}"
    );
    assert_eq!(
        log.outputs_dropped, log.outputs_made,
        "each output is dropped exactly once: {plan:?} {log:?}"
    );
    assert_eq!(
        (log.callbacks_run, log.callback_saw, log.callbacks_dropped),
        (1, Some(plan.expected()), 1),
        "the done callback runs exactly once, sees the plan's outcome, and is dropped once: {plan:?} {log:?}"
    );
    if plan.abort_at == AbortAt::BeforeFirstPoll && plan.runtime == RuntimeKind::CurrentThread {
        assert_eq!(log.polls, 0, "a task aborted before block_on is never polled: {plan:?}");
    }
    Played {
        joined,
        made_output: log.outputs_made == 1,
    }
}
