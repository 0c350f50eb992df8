//! The tracing vocabulary of `weft_executor::trace` (feature `tracing`), as a
//! subscriber sees it: a recording layer on `tracing_subscriber::registry()`
//! keeps every span with its fields and enter count, and every event with
//! its fields, the span it happened in and its thread.
//!
//! Each test installs its subscriber with `with_default` around building,
//! using and dropping its runtime, so tests running in parallel never see
//! each other's records, and no global subscriber is set.

#![cfg(feature = "tracing")]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use weft_executor::future::{TaskGroup, TaskTracker};
use weft_executor::task::{self, Id};
use weft_executor::{Builder, Executor, RuntimeMetrics};

// ----- the recording layer --------------------------------------------------

type Fields = HashMap<String, String>;

#[derive(Debug, Clone)]
struct SpanRecord {
    name: &'static str,
    target: String,
    level: Level,
    fields: Fields,
    enters: usize,
    closed: bool,
}

#[derive(Debug, Clone)]
struct EventRecord {
    name: &'static str,
    target: String,
    level: Level,
    fields: Fields,
    /// Index into `Log::spans` of the span the event happened in.
    span: Option<usize>,
    thread: String,
}

#[derive(Debug, Default)]
struct Log {
    spans: Vec<SpanRecord>,
    events: Vec<EventRecord>,
}

/// Span ids are reused once a span closes, so a span's record is found
/// through this extension, not through its id.
struct RecordIndex(usize);

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Log>>);

struct FieldVisitor<'a>(&'a mut Fields);

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

fn record_index<S: Subscriber + for<'a> LookupSpan<'a>>(ctx: &Context<'_, S>, id: &span::Id) -> Option<usize> {
    ctx.span(id)?.extensions().get::<RecordIndex>().map(|i| i.0)
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut FieldVisitor(&mut fields));
        let index = {
            let mut log = self.0.lock().unwrap();
            log.spans.push(SpanRecord {
                name: attrs.metadata().name(),
                target: attrs.metadata().target().to_owned(),
                level: *attrs.metadata().level(),
                fields,
                enters: 0,
                closed: false,
            });
            log.spans.len() - 1
        };
        ctx.span(id).unwrap().extensions_mut().insert(RecordIndex(index));
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(index) = record_index(&ctx, id) {
            self.0.lock().unwrap().spans[index].enters += 1;
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if let Some(index) = record_index(&ctx, &id) {
            self.0.lock().unwrap().spans[index].closed = true;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut FieldVisitor(&mut fields));
        let span = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<RecordIndex>().map(|i| i.0));
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        self.0.lock().unwrap().events.push(EventRecord {
            name: event.metadata().name(),
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
            span,
            thread,
        });
    }
}

/// Runs `f` with a recording subscriber as this thread's default (and so,
/// through the runtime, its threads' default), and returns what it recorded.
/// `f` must drop its runtime, so that every worker has finished reporting.
fn recorded<R>(f: impl FnOnce() -> R) -> (R, Log) {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let out = tracing::subscriber::with_default(subscriber, f);
    let log = std::mem::take(&mut *recorder.0.lock().unwrap());
    (out, log)
}

impl Log {
    /// The one span of task `id`.
    fn task_span(&self, id: Id) -> (usize, &SpanRecord) {
        let mut found = self
            .spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name == "runtime.spawn" && s.fields.get("task.id") == Some(&id.to_string()));
        let span = found
            .next()
            .unwrap_or_else(|| panic!("no span for task {id}: {:#?}", self.spans));
        assert!(found.next().is_none(), "two spans for task {id}");
        span
    }

    fn events(&self, target: &str, name: &str) -> Vec<&EventRecord> {
        self.events
            .iter()
            .filter(|e| e.target == target && e.name == name)
            .collect()
    }

    /// The events whose message is `message`.
    fn messages(&self, message: &str) -> Vec<&EventRecord> {
        self.events
            .iter()
            .filter(|e| e.fields.get("message").map(String::as_str) == Some(message))
            .collect()
    }
}

fn field<T: std::str::FromStr>(event: &EventRecord, name: &str) -> T {
    let value = event
        .fields
        .get(name)
        .unwrap_or_else(|| panic!("event {event:?} has no field {name}"));
    value
        .parse()
        .unwrap_or_else(|_| panic!("field {name} of {event:?} does not parse"))
}

fn multi_thread(workers: usize) -> Executor {
    Builder::new_multi_thread().worker_threads(workers).build().unwrap()
}

fn executors() -> Vec<Executor> {
    vec![Builder::new_current_thread().build().unwrap(), multi_thread(2)]
}

/// Drops the runtime (joining its threads) and returns its final counters.
fn shut_down(rt: Executor) -> RuntimeMetrics {
    let handle = rt.handle().clone();
    drop(rt);
    handle.metrics()
}

// ----- task spans -----------------------------------------------------------

#[test]
fn a_named_tasks_span_carries_its_id_name_kind_and_spawn_line() {
    let ((id, line), log) = recorded(|| {
        let rt = multi_thread(2);
        rt.block_on(async {
            let (handle, line) = (task::Builder::new().name("conn-42").spawn(async { 7 }), line!());
            let id = handle.id();
            assert_eq!(handle.await.unwrap(), 7);
            (id, line)
        })
    });
    let (_, span) = log.task_span(id);
    assert_eq!(span.target, "weft::task");
    assert_eq!(span.level, Level::TRACE);
    assert_eq!(span.fields["task.id"], id.as_u64().to_string());
    assert_eq!(span.fields["task.name"], "conn-42");
    assert_eq!(span.fields["task.kind"], "task");
    assert_eq!(span.fields["loc.file"], file!());
    assert_eq!(span.fields["loc.line"], line.to_string());
    assert!(span.fields["loc.col"].parse::<u32>().unwrap() > 0);
    // The task completed before its JoinHandle returned: its span is gone.
    assert!(span.closed, "the span of a finished task stays open");
}

#[test]
fn every_public_spawn_path_records_the_callers_line() {
    let (spawned, log) = recorded(|| {
        let rt = multi_thread(2);
        let handle = rt.handle().clone();
        let mut spawned: Vec<(&str, Id, u32, &str)> = Vec::new();

        let (h, l) = (rt.spawn(async {}), line!());
        spawned.push(("Executor::spawn", h.id(), l, "task"));
        let (h, l) = (rt.spawn_blocking(|| {}), line!());
        spawned.push(("Executor::spawn_blocking", h.id(), l, "blocking"));
        let (h, l) = (handle.spawn(async {}), line!());
        spawned.push(("Handle::spawn", h.id(), l, "task"));
        let (h, l) = (handle.spawn_blocking(|| {}), line!());
        spawned.push(("Handle::spawn_blocking", h.id(), l, "blocking"));
        let (h, l) = (task::Builder::new().spawn_on(async {}, &handle), line!());
        spawned.push(("Builder::spawn_on", h.id(), l, "task"));
        let (h, l) = (task::Builder::new().spawn_blocking_on(|| {}, &handle), line!());
        spawned.push(("Builder::spawn_blocking_on", h.id(), l, "blocking"));
        let (t, l) = (handle.create_task(async {}), line!());
        spawned.push(("Handle::create_task", t.id(), l, "task"));

        let tracker = TaskTracker::new();
        let (h, l) = (tracker.spawn_on(async {}, &handle), line!());
        spawned.push(("TaskTracker::spawn_on", h.id(), l, "task"));
        let mut group = TaskGroup::new();
        let (a, l) = (group.spawn_on(async {}, &handle), line!());
        spawned.push(("TaskGroup::spawn_on", a.id(), l, "task"));

        rt.block_on(async {
            let (h, l) = (weft_executor::spawn(async {}), line!());
            spawned.push(("spawn", h.id(), l, "task"));
            let (h, l) = (weft_executor::spawn_blocking(|| {}), line!());
            spawned.push(("spawn_blocking", h.id(), l, "blocking"));
            let (h, l) = (task::Builder::new().spawn(async {}), line!());
            spawned.push(("Builder::spawn", h.id(), l, "task"));
            let (h, l) = (task::Builder::new().spawn_blocking(|| {}), line!());
            spawned.push(("Builder::spawn_blocking", h.id(), l, "blocking"));
            let (t, l) = (weft_executor::future::create_task(async {}), line!());
            spawned.push(("create_task", t.id(), l, "task"));
            let (h, l) = (tracker.spawn(async {}), line!());
            spawned.push(("TaskTracker::spawn", h.id(), l, "task"));
            let (a, l) = (group.spawn(async {}), line!());
            spawned.push(("TaskGroup::spawn", a.id(), l, "task"));
            while group.join_next().await.is_some() {}
            tracker.close();
            tracker.wait().await;
        });
        drop(rt);
        spawned
    });
    assert_eq!(spawned.len(), 16);
    for (path, id, line, kind) in spawned {
        let (_, span) = log.task_span(id);
        assert_eq!(span.fields["loc.file"], file!(), "{path}");
        assert_eq!(span.fields["loc.line"], line.to_string(), "{path}");
        assert_eq!(span.fields["task.kind"], kind, "{path}");
        assert!(
            !span.fields.contains_key("task.name"),
            "{path}: an unnamed task records no name"
        );
    }
}

/// Returns `Pending` `n` times, waking itself each time, then `Ready`.
struct YieldTimes(usize);

impl Future for YieldTimes {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn a_task_is_entered_once_per_poll() {
    const YIELDS: usize = 5;
    for flavor in ["current-thread", "multi-thread"] {
        let ((by_yield_now, by_waker), log) = recorded(|| {
            let rt = match flavor {
                "current-thread" => Builder::new_current_thread().build().unwrap(),
                _ => multi_thread(2),
            };
            let ids = rt.block_on(async {
                let by_yield_now = weft_executor::spawn(async {
                    for _ in 0..YIELDS {
                        task::yield_now().await;
                    }
                    tracing::info!("after the yields");
                });
                let by_waker = weft_executor::spawn(YieldTimes(YIELDS));
                let ids = (by_yield_now.id(), by_waker.id());
                by_yield_now.await.unwrap();
                by_waker.await.unwrap();
                ids
            });
            drop(rt);
            ids
        });
        for id in [by_yield_now, by_waker] {
            let (_, span) = log.task_span(id);
            assert_eq!(span.enters, YIELDS + 1, "{flavor}: {YIELDS} Pending and one Ready");
        }
        let (index, _) = log.task_span(by_yield_now);
        let after = log.messages("after the yields");
        assert_eq!(after.len(), 1, "{flavor}");
        assert_eq!(
            after[0].span,
            Some(index),
            "{flavor}: the event happened inside the task's span"
        );
    }
}

#[test]
fn a_cancelled_future_is_dropped_inside_its_span() {
    struct Noisy;
    impl Drop for Noisy {
        fn drop(&mut self) {
            tracing::info!("future dropped");
        }
    }
    let (id, log) = recorded(|| {
        let rt = multi_thread(2);
        let id = rt.block_on(async {
            let (started_tx, started_rx) = std::sync::mpsc::channel();
            let handle = weft_executor::spawn(async move {
                let _noisy = Noisy;
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await;
            });
            weft_executor::spawn_blocking(move || started_rx.recv().unwrap())
                .await
                .unwrap();
            handle.abort();
            let id = handle.id();
            assert!(handle.await.unwrap_err().is_cancelled());
            id
        });
        drop(rt);
        id
    });
    let (index, span) = log.task_span(id);
    assert_eq!(span.enters, 2, "one poll, then the drop");
    let dropped = log.messages("future dropped");
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].span, Some(index));
}

#[test]
fn blocking_jobs_are_spans_of_kind_blocking_run_on_a_pool_thread() {
    let ((id, line), log) = recorded(|| {
        let rt = multi_thread(1);
        let out = rt.block_on(async {
            let fsync = task::Builder::new().name("fsync");
            let (handle, line) = (fsync.spawn_blocking(|| tracing::info!("in the pool")), line!());
            let id = handle.id();
            handle.await.unwrap();
            (id, line)
        });
        drop(rt);
        out
    });
    let (index, span) = log.task_span(id);
    assert_eq!(span.fields["task.kind"], "blocking");
    assert_eq!(span.fields["task.name"], "fsync");
    assert_eq!(span.fields["loc.line"], line.to_string());
    assert_eq!(span.enters, 1, "a blocking job is polled once");
    let events = log.messages("in the pool");
    assert_eq!(events.len(), 1, "the pool thread reports to the runtime's subscriber");
    assert_eq!(events[0].span, Some(index));
    assert!(events[0].thread.starts_with("weft-blocking-"), "{}", events[0].thread);
}

#[test]
fn threads_the_executor_starts_use_the_subscriber_it_was_built_under() {
    let (id, log) = recorded(|| {
        let rt = multi_thread(2);
        let handle = rt.spawn(async { tracing::info!("on a worker") });
        let id = handle.id();
        rt.block_on(handle).unwrap();
        drop(rt);

        let pool = weft_executor::pool::Pool::new(1).unwrap();
        pool.apply(|| tracing::info!("on a pool thread")).unwrap();
        drop(pool);
        id
    });
    let on_worker = log.messages("on a worker");
    assert_eq!(on_worker.len(), 1);
    assert!(
        on_worker[0].thread.starts_with("weft-worker-"),
        "{}",
        on_worker[0].thread
    );
    assert_eq!(on_worker[0].span, Some(log.task_span(id).0));
    let on_pool = log.messages("on a pool thread");
    assert_eq!(on_pool.len(), 1);
    assert_eq!(on_pool[0].thread, "weft-pool-0");
}

// ----- wake events ----------------------------------------------------------

/// Pending until woken twice; hands its waker out through `slot` each time.
struct WaitForWakes {
    slot: Arc<Mutex<Option<Waker>>>,
    polls: usize,
}

impl Future for WaitForWakes {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        self.polls += 1;
        if self.polls == 3 {
            return Poll::Ready(());
        }
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn take_waker(slot: &Mutex<Option<Waker>>) -> Waker {
    loop {
        if let Some(waker) = slot.lock().unwrap().take() {
            return waker;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_wake_names_the_task_and_the_operation() {
    for rt in executors() {
        let flavor = format!("{:?}", rt.handle().flavor());
        let (id, log) = recorded(|| {
            let slot = Arc::new(Mutex::new(None));
            let handle = rt.spawn(WaitForWakes {
                slot: slot.clone(),
                polls: 0,
            });
            let id = handle.id();
            // Another thread waits for the task (and, on a current-thread
            // runtime, runs it) while this one wakes it.
            let rt_handle = rt.handle().clone();
            let waiter = std::thread::spawn(move || rt_handle.block_on(handle));
            take_waker(&slot).wake();
            take_waker(&slot).wake_by_ref();
            waiter.join().unwrap().unwrap();
            id
        });
        drop(rt);
        let wakes: Vec<_> = log
            .events("weft::task::waker", "wake")
            .into_iter()
            .filter(|e| e.fields.get("task.id") == Some(&id.to_string()))
            .collect();
        let ops: Vec<&str> = wakes.iter().map(|e| e.fields["op"].as_str()).collect();
        assert_eq!(ops, ["wake", "wake_by_ref"], "{flavor}");
        assert!(wakes.iter().all(|e| e.level == Level::TRACE));
    }
}

// ----- worker events --------------------------------------------------------

/// Checks the park and unpark events of every worker against its `parks`
/// counter: one `park` per park counted, one `unpark` after each.
fn assert_parks_match(log: &Log, metrics: &RuntimeMetrics, what: &str) {
    let parks = log.events("weft::worker", "park");
    let unparks = log.events("weft::worker", "unpark");
    for (index, worker) in metrics.workers.iter().enumerate() {
        let of =
            |events: &[&EventRecord]| events.iter().filter(|e| field::<usize>(e, "worker") == index).count() as u64;
        assert!(worker.parks >= 1, "{what}: worker {index} never parked");
        assert_eq!(of(&parks), worker.parks, "{what}: park events of worker {index}");
        assert_eq!(of(&unparks), worker.parks, "{what}: unpark events of worker {index}");
    }
    assert!(
        unparks.iter().any(|e| field::<bool>(e, "driver")),
        "{what}: some worker waited in the driver"
    );
}

#[test]
fn idle_workers_report_each_park_and_unpark() {
    let (metrics, log) = recorded(|| {
        let rt = multi_thread(2);
        rt.block_on(async { weft_executor::spawn(async {}).await.unwrap() });
        // Nothing to do: both workers park.
        std::thread::sleep(Duration::from_millis(20));
        shut_down(rt)
    });
    assert_parks_match(&log, &metrics, "multi-thread");

    // A current-thread runtime parks the thread in `block_on` (worker 0)
    // while it waits, here for a blocking job.
    let (metrics, log) = recorded(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            weft_executor::spawn_blocking(|| std::thread::sleep(Duration::from_millis(10)))
                .await
                .unwrap()
        });
        shut_down(rt)
    });
    assert_eq!(metrics.workers.len(), 1);
    assert_parks_match(&log, &metrics, "current-thread");
}

/// One worker spawns 64 children and then blocks for a while: its local
/// queue can only be emptied by the other worker stealing from it.
fn run_a_stealing_workload() -> (RuntimeMetrics, Log) {
    recorded(|| {
        let rt = multi_thread(2);
        rt.block_on(async {
            weft_executor::spawn(async {
                let children: Vec<_> = (0..64)
                    .map(|_| weft_executor::spawn(async { std::thread::sleep(Duration::from_micros(200)) }))
                    .collect();
                std::thread::sleep(Duration::from_millis(30));
                for child in children {
                    child.await.unwrap();
                }
            })
            .await
            .unwrap()
        });
        shut_down(rt)
    })
}

#[test]
fn steal_events_match_the_steal_counters() {
    // The workload all but forces a steal; a machine so loaded that the
    // second worker never ran during the 30 ms gets a few more tries.
    let mut saw_a_steal = false;
    for _ in 0..5 {
        let (metrics, log) = run_a_stealing_workload();
        let steals = log.events("weft::worker", "steal");
        for (index, worker) in metrics.workers.iter().enumerate() {
            let mine: Vec<_> = steals.iter().filter(|e| field::<usize>(e, "worker") == index).collect();
            assert_eq!(
                mine.len() as u64,
                worker.steal_operations,
                "steal events of worker {index}"
            );
            let tasks: u64 = mine.iter().map(|e| field::<u64>(e, "tasks")).sum();
            assert_eq!(tasks, worker.steals, "tasks stolen by worker {index}");
            for event in mine {
                let victim = field::<usize>(event, "victim");
                assert!(victim != index && victim < metrics.workers.len(), "{event:?}");
                assert!(field::<u64>(event, "tasks") >= 1, "{event:?}");
            }
        }
        if !steals.is_empty() {
            saw_a_steal = true;
            break;
        }
    }
    assert!(
        saw_a_steal,
        "no worker stole in five runs of a workload built to make one steal"
    );
}
