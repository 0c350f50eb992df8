//! What the executor tells [`tracing`](https://docs.rs/tracing) (feature
//! `tracing`): a span per task, entered around each poll, and events for
//! wakes, parks and steals.
//!
//! Without the feature the instrumentation is not compiled: spawning,
//! polling, waking and parking run the same code as if this module did not
//! exist (a task's name and spawn line still go to its record, for
//! [`dump`](crate::dump)s and the [`timeline`](crate::timeline)). With the
//! feature but no subscriber interested
//! (none installed, or one whose filter rejects these targets or levels),
//! each spawn, poll, wake and park costs a check of `tracing`'s cached
//! callsite interest, and each task carries an empty span (a few words).
//!
//! # Vocabulary
//!
//! Names are the metadata names (`Metadata::name`), which a layer can match
//! on; the message is what `tracing-subscriber`'s `fmt` prints.
//!
//! | kind | name | target | level | fields | when |
//! | --- | --- | --- | --- | --- | --- |
//! | span | `runtime.spawn` | `weft::task` | TRACE | `task.id`, `task.name`, `task.kind`, `loc.file`, `loc.line`, `loc.col` | created at the spawn; entered around every poll; closed when the task's future is gone |
//! | event | `wake` | `weft::task::waker` | TRACE | `task.id`, `op` (`"wake"` or `"wake_by_ref"`) | a waker of the task is woken (also a task waking itself: `yield_now`, an exhausted budget) |
//! | event | `park` | `weft::worker` | TRACE | `worker` | a worker runs out of work and blocks (for a current-thread runtime: the thread in `block_on`, as worker 0) |
//! | event | `unpark` | `weft::worker` | TRACE | `worker`, `driver` | the worker wakes up; `driver` is true if it blocked in the driver (waited for I/O and timers for every worker) rather than on its own condition variable |
//! | event | `steal` | `weft::worker` | TRACE | `worker`, `victim`, `tasks` | worker `worker` took `tasks` tasks from the local queue of worker `victim` |
//!
//! The span's fields:
//!
//! - `task.id`: the task's [`Id`](crate::task::Id) as a number, the same one
//!   `Id`'s `Display` prints and [`JoinHandle::id`](crate::JoinHandle::id)
//!   returns.
//! - `task.name`: the name given to [`task::Builder::name`](crate::task::Builder::name);
//!   absent (not recorded) for an unnamed task.
//! - `task.kind`: `"task"` for a future, `"blocking"` for a
//!   [`spawn_blocking`](crate::spawn_blocking) closure.
//! - `loc.file`, `loc.line`, `loc.col`: where the spawn function was called
//!   (for a method call, the column of the method's name), as
//!   [`std::panic::Location`] reports it. Every public spawn path is
//!   `#[track_caller]`, so this is the user's line, not Weft's. Tasks the
//!   runtime spawns for itself are named `weft.call_soon` (the task that
//!   runs `call_soon` callbacks) and `weft.call_soon_after` (a callback's
//!   trigger).
//!
//! Worker indices are those of the thread names (`{prefix}-worker-{i}`);
//! a current-thread runtime reports worker 0. The counters in
//! [`WorkerMetrics`](crate::WorkerMetrics) count the same things: per
//! worker, `park` events number `parks`, `steal` events number
//! `steal_operations`, and their `tasks` add up to `steals`.
//!
//! Everything is at TRACE: a worker parks every time it runs dry and a busy
//! server spawns and wakes tasks by the hundred thousand per second, so at
//! any higher level an application's ordinary log filter would pay for them
//! (and print them). Ask for them by target, as the example below does.
//!
//! # Polls
//!
//! The task's span is entered when a worker starts polling the task and
//! exited when the poll returns, so a subscriber sees one enter and one exit
//! per poll: a task that returns `Pending` N times and then `Ready` is
//! entered N + 1 times. A future dropped before it completed (cancelled,
//! panicked, or shut down with its runtime) is dropped inside the span too,
//! one more enter, so its destructor's events are attributed to it. The
//! time between an enter and its exit is the poll's busy time;
//! `tracing-subscriber`'s `FmtSpan::ENTER | FmtSpan::EXIT` or a timing layer
//! shows it.
//!
//! There is no separate span per poll: it would cost a span creation per
//! poll (an allocation in most subscribers) and say nothing that the enter
//! and exit do not.
//!
//! The span is a root span (`parent: None`): a task spawned inside another
//! span, or from another task, does not keep that span open for its whole
//! life, and a chain of tasks that each spawn their successor does not grow
//! a chain of open spans. To carry a caller's context into a task, instrument
//! the future (`future.instrument(tracing::Span::current())`); that span is
//! then entered inside the task's.
//!
//! # Threads and subscribers
//!
//! When a runtime is [built](crate::Builder::build), it remembers the
//! subscriber that is the default on the building thread, and makes it the
//! default on every thread it starts (workers and blocking-pool threads) for
//! the thread's whole life. So a subscriber set with
//! `tracing::subscriber::with_default` (or `set_default`) around building
//! the runtime sees the events of its workers, and no global subscriber is
//! needed. If no subscriber at all is set when the runtime is built, its
//! threads use the global default, including one set later. A
//! [`pool::Pool`](crate::pool::Pool) does the same when it is created.
//!
//! A task's span belongs to the subscriber that was the default where the
//! task was spawned, whichever thread polls it; events go to the default of
//! the thread they happen on.
//!
//! # Example
//!
//! Application logs at INFO, with each line inside a task naming the task:
//!
//! ```
//! use tracing::Level;
//! use tracing::level_filters::LevelFilter;
//! use tracing_subscriber::filter::Targets;
//! use tracing_subscriber::prelude::*;
//!
//! let filter = Targets::new()
//!     .with_default(Level::INFO)
//!     // The task spans are at TRACE, so that they cost nothing unless asked for;
//!     .with_target("weft::task", Level::TRACE)
//!     // but not the wake events under the same prefix.
//!     .with_target("weft::task::waker", LevelFilter::OFF);
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer().with_test_writer())
//!     .with(filter);
//!
//! tracing::subscriber::with_default(subscriber, || {
//!     let rt = weft_executor::Builder::new_multi_thread().worker_threads(2).build()?;
//!     rt.block_on(async {
//!         let conn = weft_executor::task::Builder::new().name("conn-42").spawn(async {
//!             tracing::info!("handling the connection");
//!         });
//!         conn.await.unwrap();
//!     });
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! With the feature, `fmt` prints the line inside the task as
//!
//! ```text
//! INFO runtime.spawn{task.id=1 task.name="conn-42" task.kind="task" loc.file="src/main.rs" loc.line=19 loc.col=76}: my_app: handling the connection
//! ```
//!
//! and without it, as a line outside any span.

use std::panic::Location;

#[cfg(feature = "tracing")]
pub(crate) use self::enabled::Traced;

/// What a spawn knows about its task besides the future: its name and the
/// spawning line, for the task's record (`Handle::dump`, the timeline) and,
/// with the feature, its span.
#[derive(Clone, Copy)]
pub(crate) struct SpawnMeta<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) location: &'static Location<'static>,
}

impl<'a> SpawnMeta<'a> {
    /// The spawn's metadata, located at the caller: call it in the
    /// `#[track_caller]` function the user called, outside any closure (a
    /// closure breaks the chain of callers).
    #[track_caller]
    #[inline]
    pub(crate) fn new(name: Option<&'a str>) -> SpawnMeta<'a> {
        SpawnMeta {
            name,
            location: Location::caller(),
        }
    }
}

/// What runs in a task, for its span's `task.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A future, from `spawn` and friends.
    Task,
    /// A closure on the blocking pool.
    Blocking,
}

/// Wraps a task's future so that its span is entered around each poll; the
/// span is created here. Without the feature, the future itself.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn task<F>(future: F, kind: Kind, id: crate::task::Id, meta: SpawnMeta<'_>) -> Traced<F> {
    Traced::new(future, enabled::task_span(kind, id, meta))
}

/// Wraps a task's future so that its span is entered around each poll; the
/// span is created here. Without the feature, the future itself.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn task<F>(future: F, _kind: Kind, _id: crate::task::Id, _meta: SpawnMeta<'_>) -> F {
    future
}

/// A wake of task `id`; `op` is `"wake"` or `"wake_by_ref"`. (Only with the
/// feature: its callers would otherwise read the id for nothing.)
#[cfg(feature = "tracing")]
#[inline(always)]
pub(crate) fn wake(id: crate::task::Id, op: &'static str) {
    tracing::event!(
        name: "wake",
        target: "weft::task::waker",
        tracing::Level::TRACE,
        { task.id = id.as_u64(), op },
        "task woken"
    );
}

/// Worker `worker` is about to block.
#[inline(always)]
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn park(worker: usize) {
    #[cfg(feature = "tracing")]
    tracing::event!(name: "park", target: "weft::worker", tracing::Level::TRACE, { worker }, "worker parked");
}

/// Worker `worker` woke up; `driver`: it had blocked in the driver.
#[inline(always)]
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn unpark(worker: usize, driver: bool) {
    #[cfg(feature = "tracing")]
    tracing::event!(
        name: "unpark",
        target: "weft::worker",
        tracing::Level::TRACE,
        { worker, driver },
        "worker unparked"
    );
}

/// Worker `worker` stole `tasks` tasks from worker `victim`.
#[inline(always)]
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn steal(worker: usize, victim: usize, tasks: u64) {
    #[cfg(feature = "tracing")]
    tracing::event!(
        name: "steal",
        target: "weft::worker",
        tracing::Level::TRACE,
        { worker, victim, tasks },
        "worker stole tasks"
    );
}

/// The subscriber that was the default where a runtime was built, to make
/// the default on the threads it starts. Empty without the feature.
#[derive(Clone, Default)]
pub(crate) struct ThreadDispatch {
    #[cfg(feature = "tracing")]
    dispatch: Option<tracing::Dispatch>,
}

/// Keeps a [`ThreadDispatch`] the default on its thread until dropped.
pub(crate) struct DispatchGuard {
    #[cfg(feature = "tracing")]
    _guard: Option<tracing::dispatcher::DefaultGuard>,
}

impl ThreadDispatch {
    /// This thread's default subscriber, unless there is none at all: then
    /// the runtime's threads keep following the global default, which may
    /// be set later.
    pub(crate) fn capture() -> ThreadDispatch {
        ThreadDispatch {
            #[cfg(feature = "tracing")]
            dispatch: tracing::dispatcher::get_default(|d| {
                (!d.is::<tracing::subscriber::NoSubscriber>()).then(|| d.clone())
            }),
        }
    }

    /// Makes the captured subscriber this thread's default until the guard
    /// drops. Call it first thing on a thread the executor starts, and hold
    /// the guard for the thread's life.
    pub(crate) fn enter(&self) -> DispatchGuard {
        DispatchGuard {
            #[cfg(feature = "tracing")]
            _guard: self.dispatch.as_ref().map(tracing::dispatcher::set_default),
        }
    }
}

impl std::fmt::Debug for ThreadDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadDispatch").finish_non_exhaustive()
    }
}

#[cfg(feature = "tracing")]
mod enabled {
    use super::{Kind, SpawnMeta};
    use crate::task::Id;
    use std::future::Future;
    use std::mem::ManuallyDrop;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tracing::Span;

    /// The span of a new task (see the module docs for its fields).
    pub(super) fn task_span(kind: Kind, id: Id, meta: SpawnMeta<'_>) -> Span {
        let kind = match kind {
            Kind::Task => "task",
            Kind::Blocking => "blocking",
        };
        tracing::trace_span!(
            target: "weft::task",
            parent: None,
            "runtime.spawn",
            task.id = id.as_u64(),
            task.name = meta.name,
            task.kind = kind,
            loc.file = meta.location.file(),
            loc.line = meta.location.line(),
            loc.col = meta.location.column(),
        )
    }

    /// A task's future with its span, entered around each poll and around
    /// the drop of a future that did not complete.
    ///
    /// The future is dropped in place (never moved: it is pinned) by the poll
    /// that completes it, inside the span, or by `Drop`, whichever comes
    /// first; `done` records which, so that it is dropped exactly once.
    pub(crate) struct Traced<F> {
        span: Span,
        future: ManuallyDrop<F>,
        done: bool,
    }

    impl<F> Traced<F> {
        pub(super) fn new(future: F, span: Span) -> Traced<F> {
            Traced {
                span,
                future: ManuallyDrop::new(future),
                done: false,
            }
        }
    }

    impl<F: Future> Future for Traced<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            // SAFETY: `future` is pinned structurally: it is never moved out
            // of `self` and is dropped in place (here or in `Drop`). `span`
            // and `done` are not pinned, and `Traced` is `Unpin` only when
            // `F` is (auto trait, through `ManuallyDrop<F>`).
            let this = unsafe { self.get_unchecked_mut() };
            debug_assert!(!this.done, "weft bug: a task future was polled after it completed");
            let _entered = this.span.enter();
            // SAFETY: as above: the future stays where it is until dropped.
            let future = unsafe { Pin::new_unchecked(&mut *this.future) };
            let out = future.poll(cx);
            if out.is_ready() {
                // Marked first: if the destructor panics, `Drop` must not
                // drop the future a second time.
                this.done = true;
                // SAFETY: `done` was false, so the future is alive; it is
                // dropped in place, and `done` stops any later use.
                unsafe { ManuallyDrop::drop(&mut this.future) };
            }
            out
        }
    }

    impl<F> Drop for Traced<F> {
        fn drop(&mut self) {
            if !self.done {
                self.done = true;
                let _entered = self.span.enter();
                // SAFETY: `done` was false, so the future is alive; it is
                // dropped in place (as pinning requires) and never touched
                // again.
                unsafe { ManuallyDrop::drop(&mut self.future) };
            }
        }
    }
}
