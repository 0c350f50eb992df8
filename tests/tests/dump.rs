//! Task dumps: what each task waits on (as every resource reports it), what
//! each worker runs, and the stuck-task finder, on both flavours.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft::dump::{Dump, DumpOptions, IoDirection, Stuck, TaskDump, TaskKind, TaskState, WaitOn, WorkerState};
use weft::task::{Builder, Id};
use weft_tests::{each_flavor, runtime};

/// Takes dumps (inside the runtime, so that a current-thread runtime keeps
/// running its tasks meanwhile) until `found` holds for the row of `task`,
/// and returns that dump. Fails after ten seconds: a hang, not a slow
/// machine.
async fn dump_until(task: Id, mut found: impl FnMut(&TaskDump) -> bool) -> Dump {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dump = weft::Handle::current().dump();
        if dump.tasks.iter().any(|t| t.id == task && found(t)) {
            return dump;
        }
        assert!(
            Instant::now() < deadline,
            "the dump never showed task {task} as expected:\n{dump}"
        );
        weft::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Spawns `future` named `name` and returns its id once a dump shows it
/// idle, waiting on what `expected` accepts.
async fn parked_on<F>(name: &str, future: F, expected: impl Fn(&WaitOn) -> bool) -> (Id, Dump)
where
    F: Future<Output = ()> + Send + 'static,
{
    let task = Builder::new().name(name).spawn(future);
    let id = task.id();
    let dump = dump_until(id, |t| {
        t.state == TaskState::Idle && t.wait.as_ref().is_some_and(&expected)
    })
    .await;
    task.abort();
    (id, dump)
}

fn row(dump: &Dump, id: Id) -> &TaskDump {
    dump.tasks.iter().find(|t| t.id == id).expect("the task is in the dump")
}

each_flavor! {
    fn a_socket_read_waits_on_its_descriptor(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let client = weft::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let fd = i64::from(server.as_raw_fd());
            let (id, dump) = parked_on(
                "reader",
                async move {
                    use weft::io::AsyncReadExt;
                    let mut server = server;
                    let _ = server.read(&mut [0u8; 16]).await;
                },
                |w| matches!(w, WaitOn::Io { .. }),
            )
            .await;
            assert_eq!(row(&dump, id).wait, Some(WaitOn::Io { fd, direction: IoDirection::Read }));
            assert_eq!(row(&dump, id).name.as_deref(), Some("reader"));
            drop(client);
        });
    }

    fn a_sleep_waits_on_its_timer_and_deadline(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(3600);
            let (id, dump) = parked_on(
                "sleeper",
                weft::time::sleep_until(deadline),
                |w| matches!(w, WaitOn::Timer { .. }),
            )
            .await;
            assert_eq!(row(&dump, id).wait, Some(WaitOn::timer(deadline)));
            let text = dump.to_string();
            assert!(text.contains("timer, due in"), "{text}");
        });
    }

    fn a_join_waits_on_the_joined_task(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let forever = weft::spawn(std::future::pending::<()>());
            let target = forever.id();
            let (id, dump) = parked_on(
                "joiner",
                async move {
                    let _ = forever.await;
                },
                |w| matches!(w, WaitOn::Join { .. }),
            )
            .await;
            assert_eq!(row(&dump, id).wait, Some(WaitOn::Join { task: target }));
        });
    }

    fn every_weft_sync_wait_names_its_primitive_and_address(flavor) {
        use weft::sync::*;
        let rt = runtime(flavor);
        rt.block_on(async {
            let sync = |primitive: &'static str, address: usize| WaitOn::Sync { primitive, address };
            let addr = |p: *const ()| p as usize;

            let mutex = Arc::new(Mutex::new(0));
            let held = mutex.clone().lock_owned().await;
            let m = mutex.clone();
            let (id, dump) = parked_on("lock", async move { drop(m.lock().await) }, |_| true).await;
            assert_eq!(row(&dump, id).wait, Some(sync("Mutex::lock", addr(Arc::as_ptr(&mutex).cast()))));
            drop(held);

            let rw = Arc::new(RwLock::new(0));
            let reading = rw.try_read().unwrap();
            let w = rw.clone();
            let (id, dump) = parked_on("write", async move { drop(w.write().await) }, |_| true).await;
            assert_eq!(row(&dump, id).wait, Some(sync("RwLock::write", addr(Arc::as_ptr(&rw).cast()))));
            drop(reading);

            let sem = Arc::new(Semaphore::new(0));
            let s = sem.clone();
            let (id, dump) = parked_on("acquire", async move { drop(s.acquire().await) }, |_| true).await;
            assert_eq!(row(&dump, id).wait, Some(sync("Semaphore::acquire", addr(Arc::as_ptr(&sem).cast()))));

            let event = Arc::new(Event::new());
            let e = event.clone();
            let (id, dump) = parked_on("event", async move { e.wait().await }, |_| true).await;
            assert_eq!(row(&dump, id).wait, Some(sync("Event::wait", addr(Arc::as_ptr(&event).cast()))));

            let (tx, mut rx) = mpsc::channel::<u8>(1);
            let (id, dump) = parked_on("recv", async move { let _ = rx.recv().await; }, |_| true).await;
            assert!(matches!(row(&dump, id).wait, Some(WaitOn::Sync { primitive: "mpsc::Receiver::recv", .. })));
            drop(tx);
            let (tx, _rx) = mpsc::channel::<u8>(1);
            tx.send(1).await.unwrap();
            let (id, dump) = parked_on("send", async move { let _ = tx.send(2).await; }, |_| true).await;
            assert!(matches!(row(&dump, id).wait, Some(WaitOn::Sync { primitive: "mpsc::Sender::send", .. })));

            let (_keep, rx) = oneshot::channel::<u8>();
            let (id, dump) = parked_on("oneshot", async move { let _ = rx.await; }, |_| true).await;
            assert!(matches!(row(&dump, id).wait, Some(WaitOn::Sync { primitive: "oneshot::Receiver", .. })));

            let (_btx, mut brx) = broadcast::channel::<u8>(4);
            let (id, dump) = parked_on("broadcast", async move { let _ = brx.recv().await; }, |_| true).await;
            assert!(matches!(row(&dump, id).wait, Some(WaitOn::Sync { primitive: "broadcast::Receiver::recv", .. })));

            let (_wtx, mut wrx) = watch::channel(0u8);
            let (id, dump) = parked_on("watch", async move { let _ = wrx.changed().await; }, |_| true).await;
            assert!(matches!(row(&dump, id).wait, Some(WaitOn::Sync { primitive: "watch::Receiver::changed", .. })));

            let barrier = Arc::new(Barrier::new(2));
            let b = barrier.clone();
            let (id, dump) = parked_on("barrier", async move { b.wait().await; }, |_| true).await;
            assert_eq!(row(&dump, id).wait, Some(sync("Barrier::wait", addr(Arc::as_ptr(&barrier).cast()))));

            let queue = Arc::new(Queue::<u8>::new(0));
            let q = queue.clone();
            let (id, dump) = parked_on("get", async move { let _ = q.get().await; }, |_| true).await;
            assert_eq!(row(&dump, id).wait, Some(sync("Queue::get", addr(Arc::as_ptr(&queue).cast()))));
        });
    }

    fn a_promise_wait_names_the_promise(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let promise = weft::Handle::current().create_future::<u8>();
            let waiting = promise.clone();
            let (id, dump) = parked_on("promise", async move { let _ = waiting.await; }, |_| true).await;
            assert!(matches!(row(&dump, id).wait, Some(WaitOn::Promise { .. })), "{dump}");
            drop(promise);
        });
    }

    fn the_first_wait_a_poll_reports_sticks(flavor) {
        // A timeout around a lock waits on the lock (polled first), not on
        // the timer the timeout registers after it.
        let rt = runtime(flavor);
        rt.block_on(async {
            let mutex = Arc::new(weft::sync::Mutex::new(()));
            let held = mutex.clone().lock_owned().await;
            let m = mutex.clone();
            let (id, dump) = parked_on(
                "timeout(lock)",
                async move {
                    let _ = weft::time::timeout(Duration::from_secs(3600), m.lock()).await;
                },
                |_| true,
            )
            .await;
            assert!(
                matches!(row(&dump, id).wait, Some(WaitOn::Sync { primitive: "Mutex::lock", .. })),
                "{dump}"
            );
            drop(held);
        });
    }

    fn a_wait_nobody_reports_shows_none_never_a_stale_one(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            let task = Builder::new().name("foreign").spawn(async move {
                // A Weft timer first (reported), then a wait Weft knows
                // nothing of.
                weft::time::sleep(Duration::from_millis(1)).await;
                let _ = rx.await;
            });
            let dump = dump_until(task.id(), |t| t.polls >= 2 && t.state == TaskState::Idle).await;
            assert_eq!(row(&dump, task.id()).wait, None, "{dump}");
            drop(tx);
            task.await.unwrap();
        });
    }

    fn a_dump_counts_polls_and_locates_the_spawn(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let line = line!() + 1;
            let task = Builder::new().name("counted").spawn(async {
                for _ in 0..5 {
                    weft::task::yield_now().await;
                }
                std::future::pending::<()>().await
            });
            let dump = dump_until(task.id(), |t| t.polls == 6).await;
            let row = row(&dump, task.id());
            assert_eq!(row.location.file, file!());
            assert_eq!(row.location.line, line);
            assert_eq!(row.kind, TaskKind::Task);
            assert!(row.since_last_poll_us.is_some());
            task.abort();
        });
    }

    fn the_finder_names_a_task_idle_past_the_threshold_with_its_wait(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (_keep, mut rx) = weft::sync::mpsc::channel::<u8>(1);
            let stuck = Builder::new().name("silent").spawn(async move {
                let _ = rx.recv().await;
            });
            let busy = Builder::new().name("busy").spawn(async {
                loop {
                    weft::time::sleep(Duration::from_millis(1)).await;
                }
            });
            // Idle past the threshold too, but asleep until its timer is
            // due: not stuck.
            let sleeper = Builder::new().name("hourly").spawn(async {
                weft::time::sleep(Duration::from_secs(3600)).await;
            });
            dump_until(stuck.id(), |t| t.wait.is_some()).await;
            dump_until(sleeper.id(), |t| t.wait.is_some()).await;
            weft::time::sleep(Duration::from_millis(100)).await;
            let dump = weft::Handle::current().dump_with(DumpOptions::default().idle_threshold(Duration::from_millis(50)));
            let found = dump.stuck.iter().find(|s| s.task() == stuck.id()).unwrap_or_else(|| panic!("{dump}"));
            match found {
                Stuck::Idle { name, idle_us, wait, .. } => {
                    assert_eq!(name.as_deref(), Some("silent"));
                    assert!(*idle_us >= 50_000);
                    assert!(matches!(wait, Some(WaitOn::Sync { primitive: "mpsc::Receiver::recv", .. })));
                }
                other => panic!("{other:?}"),
            }
            assert!(!dump.stuck.iter().any(|s| s.task() == busy.id()), "{dump}");
            assert!(!dump.stuck.iter().any(|s| s.task() == sleeper.id()), "{dump}");
            assert!(dump.to_string().contains("\"silent\""));
            busy.abort();
            sleeper.abort();
            stuck.abort();
        });
    }

    fn an_idle_accept_loop_is_not_stuck_unless_io_waits_are_asked_for(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = weft::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let accept = Builder::new().name("accept").spawn(async move {
                while let Ok((_conn, _)) = listener.accept().await {}
            });
            dump_until(accept.id(), |t| matches!(t.wait, Some(WaitOn::Io { .. }))).await;
            weft::time::sleep(Duration::from_millis(100)).await;
            let options = DumpOptions::default().idle_threshold(Duration::from_millis(50));
            let dump = weft::Handle::current().dump_with(options);
            assert!(!dump.stuck.iter().any(|s| s.task() == accept.id()), "{dump}");
            assert!(row(&dump, accept.id()).since_last_poll_us.is_some_and(|us| us >= 50_000), "{dump}");
            let dump = weft::Handle::current().dump_with(options.io_waits_stuck(true));
            assert!(dump.stuck.iter().any(|s| s.task() == accept.id()), "{dump}");
            accept.abort();
        });
    }
}

/// A task awaiting a task of another runtime (absent from this runtime's
/// dump) is not called stuck for it: that task is judged in its own
/// runtime's dump (here it sleeps on a timer not yet due: not stuck).
#[test]
fn a_join_of_a_task_on_another_runtime_is_not_stuck_for_it() {
    let (here, there) = (runtime(weft::Flavor::MultiThread), runtime(weft::Flavor::MultiThread));
    let sleeper = there.spawn(weft::time::sleep(Duration::from_secs(3600)));
    let sleeper_id = sleeper.id();
    let joiner = here.spawn(async move {
        let _ = sleeper.await;
    });
    let options = DumpOptions::default().idle_threshold(Duration::from_millis(20));
    let deadline = Instant::now() + Duration::from_secs(10);
    let dump = loop {
        std::thread::sleep(Duration::from_millis(50));
        let dump = here.handle().dump_with(options);
        if row(&dump, joiner.id()).wait.is_some() || Instant::now() > deadline {
            break dump;
        }
    };
    assert_eq!(
        row(&dump, joiner.id()).wait,
        Some(WaitOn::Join { task: sleeper_id }),
        "{dump}"
    );
    assert!(!dump.stuck.iter().any(|s| s.task() == joiner.id()), "{dump}");
    joiner.abort();
}

#[test]
fn the_finder_names_a_worker_blocked_in_a_poll_with_the_task_and_its_line() {
    let rt = runtime(weft::Flavor::MultiThread);
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let (started, is_started) = std::sync::mpsc::channel::<()>();
    let line = line!() + 1;
    let blocker = Builder::new().name("blocker").spawn_on(
        async move {
            started.send(()).unwrap();
            let _ = blocked.recv_timeout(Duration::from_secs(30));
        },
        &rt.handle(),
    );
    is_started.recv().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // From a plain thread: dumps need no runtime context.
    let dump = rt.dump_with(DumpOptions::default().poll_threshold(Duration::from_millis(100)));
    release.send(()).unwrap();
    let found = dump
        .stuck
        .iter()
        .find(|s| s.task() == blocker.id())
        .unwrap_or_else(|| panic!("{dump}"));
    let Stuck::Blocking {
        worker,
        name,
        location,
        for_us,
        ..
    } = found
    else {
        panic!("{found:?}")
    };
    assert_eq!(name.as_deref(), Some("blocker"));
    assert_eq!(location.unwrap().line, line);
    assert!(*for_us >= 100_000, "{dump}");
    let w = dump.workers.iter().find(|w| w.index == *worker).unwrap();
    assert!(
        matches!(w.state, WorkerState::Polling { task, .. } if task == blocker.id()),
        "{dump}"
    );
    assert!(matches!(
        row(&dump, blocker.id()).state,
        TaskState::Running { worker: Some(_) }
    ));
    let text = dump.to_string();
    assert!(text.contains("has been inside one poll of task"), "{text}");
    rt.block_on(blocker).unwrap();
}

/// A blocking call in the future passed to a current-thread runtime's
/// `block_on` (where `#[weft::main(flavor = "current_thread")]` puts the
/// body of `main`) stalls every task; the dump names it as a row of its
/// own, at the `block_on` call's line (a user trial saw "0 stuck" and the
/// worker "between polls").
#[test]
fn a_blocking_call_in_a_current_thread_block_on_is_named() {
    let rt = runtime(weft::Flavor::CurrentThread);
    let handle = rt.handle();
    let (started, is_started) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let line = line!() + 2;
        let driver = scope.spawn(|| {
            rt.block_on(async {
                let child = weft::spawn(std::future::pending::<()>());
                weft::task::yield_now().await;
                started.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(700));
                child.abort();
            })
        });
        is_started.recv().unwrap();
        let options = DumpOptions::default().poll_threshold(Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(150));
        let _first = handle.dump_with(options);
        std::thread::sleep(Duration::from_millis(200));
        let dump = handle.dump_with(options);
        let found = dump
            .stuck
            .iter()
            .find(|s| matches!(s, Stuck::Blocking { task, .. } if *task == Id::BLOCK_ON))
            .unwrap_or_else(|| panic!("{dump}"));
        let Stuck::Blocking {
            name, location, for_us, ..
        } = found
        else {
            unreachable!()
        };
        assert_eq!(name.as_deref(), Some("block_on"));
        assert_eq!(location.map(|l| (l.file, l.line)), Some((file!(), line)), "{dump}");
        // At least since the first dump saw it.
        assert!(*for_us >= 150_000, "{dump}");
        assert!(row(&dump, Id::BLOCK_ON).longest_poll_us >= 150_000, "{dump}");
        let text = dump.to_string();
        assert!(text.contains("inside one poll of the block_on future"), "{text}");
        driver.join().unwrap();
    });
    // Once it returned, no row is left behind.
    assert!(!handle.dump().tasks.iter().any(|t| t.id == Id::BLOCK_ON));
}

/// A current-thread runtime's block_on row belongs to the call now polling:
/// none is left after a block_on panicked (here a nested block_on, which
/// Weft refuses), and a block_on called later from another thread shows
/// its own line.
#[test]
fn the_block_on_row_follows_the_thread_driving_now() {
    let rt = runtime(weft::Flavor::CurrentThread);
    let handle = rt.handle();
    let nested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { rt.block_on(async {}) });
    }));
    assert!(nested.is_err(), "a nested block_on is refused");
    assert!(
        !handle.dump().tasks.iter().any(|t| t.id == Id::BLOCK_ON),
        "{}",
        handle.dump()
    );
    let rt = &rt;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let line = line!() + 1;
                rt.block_on(async move {
                    let dump = weft::Handle::current().dump();
                    let row = row(&dump, Id::BLOCK_ON);
                    assert_eq!((row.location.file, row.location.line), (file!(), line), "{dump}");
                    assert!(
                        matches!(dump.workers[0].state, WorkerState::Polling { task, .. } if task == Id::BLOCK_ON),
                        "{dump}"
                    );
                })
            })
            .join()
            .unwrap();
    });
    assert!(
        !handle.dump().tasks.iter().any(|t| t.id == Id::BLOCK_ON),
        "{}",
        handle.dump()
    );
}

/// With every worker blocked (no idle worker watches), a dump taken later
/// reports each blocked poll as at least as long as an earlier dump did,
/// plus the time between them, in the worker's row and the task's longest
/// poll (a user trial saw 500 ms, then 200 ms: the second dump counted from
/// the first one's look, not from the poll's start).
#[test]
fn a_later_dump_never_reports_a_shorter_blocked_poll() {
    let rt = runtime(weft::Flavor::MultiThread);
    let workers = rt.metrics().workers.len();
    let (started, is_started) = std::sync::mpsc::channel::<()>();
    let blockers: Vec<_> = (0..workers)
        .map(|_| {
            let started = started.clone();
            rt.spawn(async move {
                started.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(900));
            })
        })
        .collect();
    for _ in 0..workers {
        is_started.recv().unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let options = DumpOptions::default().poll_threshold(Duration::from_millis(50));
    let first = rt.dump_with(options);
    std::thread::sleep(Duration::from_millis(200));
    let second = rt.dump_with(options);
    let least = |dump: &Dump, index: usize| match dump.workers[index].state {
        WorkerState::Polling { at_least_us, .. } => at_least_us,
        _ => None,
    };
    for index in 0..workers {
        let (Some(a), Some(b)) = (least(&first, index), least(&second, index)) else {
            panic!("every worker polls a blocked task, with a lower bound:\n{first}\n{second}");
        };
        assert!(a >= 150_000, "{first}");
        assert!(
            b >= a + 150_000,
            "worker {index}: {a} µs, then {b} µs\n{first}\n{second}"
        );
    }
    for task in &blockers {
        let (a, b) = (
            row(&first, task.id()).longest_poll_us,
            row(&second, task.id()).longest_poll_us,
        );
        assert!(b >= a + 150_000, "task {}: {a} µs, then {b} µs\n{second}", task.id());
    }
    for task in blockers {
        rt.block_on(task).unwrap();
    }
}

#[test]
fn blocking_jobs_show_running_on_their_thread_and_queued_behind() {
    let rt = weft_tests::builder(weft::Flavor::MultiThread)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let running = weft::task::Builder::new()
        .name("fsync")
        .spawn_blocking_on(move || wait.recv_timeout(Duration::from_secs(30)).is_ok(), &rt.handle());
    let queued = rt.spawn_blocking(|| true);
    let deadline = Instant::now() + Duration::from_secs(10);
    let dump = loop {
        let dump = rt.dump();
        let state = |id| dump.tasks.iter().find(|t| t.id == id).map(|t| t.state);
        if matches!(state(running.id()), Some(TaskState::Running { worker: Some(_) }))
            && state(queued.id()) == Some(TaskState::Queued)
        {
            break dump;
        }
        assert!(Instant::now() < deadline, "{dump}");
        std::thread::sleep(Duration::from_millis(2));
    };
    let job = row(&dump, running.id());
    assert_eq!(job.kind, TaskKind::Blocking);
    assert_eq!(job.name.as_deref(), Some("fsync"));
    assert_eq!(row(&dump, queued.id()).kind, TaskKind::Blocking);
    assert!(dump.workers.iter().any(|w| w.kind == weft::dump::WorkerKind::Blocking));
    release.send(()).unwrap();
    assert!(rt.block_on(running).unwrap());
    assert!(rt.block_on(queued).unwrap());
}

#[test]
fn a_dump_serializes_to_json() {
    let rt = runtime(weft::Flavor::MultiThread);
    let dump = rt.block_on(async {
        let task = Builder::new()
            .name("json")
            .spawn(weft::time::sleep(Duration::from_secs(3600)));
        let dump = dump_until(task.id(), |t| t.wait.is_some()).await;
        task.abort();
        dump
    });
    let json: serde_json::Value = serde_json::to_value(&dump).unwrap();
    let task = json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "json")
        .unwrap();
    assert_eq!(task["kind"], "task");
    assert_eq!(task["wait"]["kind"], "timer");
    assert!(task["wait"]["deadline_us"].as_u64().unwrap() > json["taken_at_us"].as_u64().unwrap());
    assert_eq!(task["location"]["file"], file!());
    assert_eq!(json["workers"].as_array().unwrap().len(), weft_tests::WORKERS);
    // One convention throughout: durations in µs, addresses as Display
    // prints them, and a wall-clock stamp to line the dump up with logs.
    assert_eq!(json["options"]["idle_threshold_us"], 10_000_000);
    assert_eq!(json["options"]["poll_threshold_us"], 100_000);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let stamp = json["taken_at_unix_ms"].as_u64().unwrap();
    assert!(stamp <= now_ms && now_ms - stamp < 60_000, "{stamp} vs {now_ms}");

    let (_keep, mut rx) = weft::sync::mpsc::channel::<u8>(1);
    let waiting = rt.spawn(async move {
        let _ = rx.recv().await;
    });
    let dump = rt.block_on(async { dump_until(waiting.id(), |t| t.wait.is_some()).await });
    let Some(WaitOn::Sync { address, .. }) = row(&dump, waiting.id()).wait else {
        panic!("{dump}")
    };
    let json: serde_json::Value = serde_json::to_value(&dump).unwrap();
    let row = json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == waiting.id().as_u64())
        .unwrap();
    assert_eq!(row["wait"]["address"], format!("{address:#x}"));
    assert!(dump.to_string().contains(&format!("{address:#x}")), "{dump}");
    waiting.abort();

    let blocked = Stuck::Blocking {
        worker: 0,
        task: waiting.id(),
        name: None,
        location: None,
        for_us: 1,
    };
    assert_eq!(serde_json::to_value(&blocked).unwrap()["kind"], "blocked_worker");
}

/// Every kind of wait serializes, tagged with its kind, in the dump's
/// conventions (addresses as hex strings, ids and instants as numbers).
#[test]
fn every_wait_serializes_tagged_with_its_kind() {
    let waits = [
        (
            WaitOn::Io {
                fd: 3,
                direction: IoDirection::Write,
            },
            r#"{"kind":"io","fd":3,"direction":"write"}"#,
        ),
        (WaitOn::Timer { deadline_us: 5 }, r#"{"kind":"timer","deadline_us":5}"#),
        (
            WaitOn::Source {
                source: "mpi",
                id: WaitOn::ANY,
            },
            r#"{"kind":"source","source":"mpi","id":18446744073709551615}"#,
        ),
        (
            WaitOn::Sync {
                primitive: "Mutex::lock",
                address: 0x10,
            },
            r#"{"kind":"sync","primitive":"Mutex::lock","address":"0x10"}"#,
        ),
        (
            WaitOn::Promise { address: 0x20 },
            r#"{"kind":"promise","address":"0x20"}"#,
        ),
        (
            WaitOn::Join { task: Id::BLOCK_ON },
            r#"{"kind":"join","task":18446744073709551615}"#,
        ),
        (WaitOn::Signal { signal: 2 }, r#"{"kind":"signal","signal":2}"#),
        (WaitOn::Completion, r#"{"kind":"completion"}"#),
    ];
    for (wait, json) in waits {
        assert_eq!(serde_json::to_string(&wait).unwrap(), json);
        let stuck = Stuck::Idle {
            task: Id::BLOCK_ON,
            name: None,
            location: weft::dump::SpawnLocation {
                file: "a.rs",
                line: 1,
                column: 2,
            },
            idle_us: 1,
            wait: Some(wait),
        };
        let value = serde_json::to_value(&stuck).unwrap();
        assert_eq!(value["kind"], "idle");
        assert_eq!(value["wait"], serde_json::from_str::<serde_json::Value>(json).unwrap());
    }
}

/// Checks what every dump must hold, whatever the runtime was doing: each
/// task once, a running task's worker is one of the dump's, and the table
/// prints.
fn check_consistent(dump: &Dump) {
    let mut ids: Vec<Id> = dump.tasks.iter().map(|t| t.id).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "a task is listed twice:\n{dump}");
    for task in &dump.tasks {
        if let TaskState::Running { worker: Some(w) } = task.state {
            assert!(w < dump.workers.len(), "{task:?} runs on a worker the dump lacks");
        }
    }
    for s in &dump.stuck {
        let _ = s.task();
    }
    let _ = dump.to_string();
}

/// Stress cases (a module of their own: `each_flavor!` makes modules).
mod stress {
    use super::*;

    each_flavor! {
        fn dumps_from_another_thread_hold_up_while_tasks_spawn_end_abort_and_panic(flavor) {
            let rt = runtime(flavor);
            let handle = rt.handle();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let dumper = {
                let stop = stop.clone();
                let handle = handle.clone();
                std::thread::spawn(move || {
                    let mut dumps = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let dump = handle.dump_with(DumpOptions::default().idle_threshold(Duration::ZERO).poll_threshold(Duration::ZERO));
                        check_consistent(&dump);
                        let _ = handle.metrics();
                        dumps += 1;
                    }
                    dumps
                })
            };
            rt.block_on(async {
                for round in 0..20u64 {
                    let mut joins = Vec::new();
                    for i in 0..200u64 {
                        let task = async move {
                            for _ in 0..(i % 5) {
                                weft::task::yield_now().await;
                            }
                            if i % 7 == 0 {
                                panic!("weft test: a task panics on purpose");
                            }
                            if i % 11 == 0 {
                                // A dump from inside a task.
                                check_consistent(&weft::Handle::current().dump());
                            }
                            i
                        };
                        let join = if i % 3 == 0 {
                            Builder::new().name(&format!("t{round}-{i}")).spawn(task)
                        } else {
                            weft::spawn(task)
                        };
                        match i % 4 {
                            // Detached: dropped at once (some of them panic).
                            0 => drop(join),
                            1 => {
                                join.abort();
                                joins.push(join);
                            }
                            _ => joins.push(join),
                        }
                    }
                    for join in joins {
                        let _ = join.await;
                    }
                }
            });
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(dumper.join().unwrap() > 0);
            // Quiescent: the detached tasks have ended too, by now or soon.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !rt.dump().tasks.is_empty() {
                assert!(Instant::now() < deadline, "tasks left after all ended:\n{}", rt.dump());
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(rt.metrics().alive_tasks, 0);
        }

        fn a_dump_from_a_tasks_drop_and_from_a_done_callback_works(flavor) {
            struct DumpOnDrop(weft::Handle, Arc<std::sync::atomic::AtomicUsize>);
            impl Drop for DumpOnDrop {
                fn drop(&mut self) {
                    let dump = self.0.dump();
                    check_consistent(&dump);
                    self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            let rt = runtime(flavor);
            let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            rt.block_on(async {
                // Completes: the future (and the guard in it) drops as it ends.
                let guard = DumpOnDrop(weft::Handle::current(), seen.clone());
                weft::spawn(async move {
                    let _guard = guard;
                    weft::task::yield_now().await;
                })
                .await
                .unwrap();
                // Aborted while idle: dropped by the cancelling thread.
                let guard = DumpOnDrop(weft::Handle::current(), seen.clone());
                let pending = weft::spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                });
                weft::task::yield_now().await;
                pending.abort();
                assert!(pending.await.unwrap_err().is_cancelled());
                // A done callback that dumps.
                let handle = weft::Handle::current();
                let count = seen.clone();
                let task = weft::spawn(async { 1 });
                task.add_done_callback(move |_| {
                    check_consistent(&handle.dump());
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
                task.await.unwrap();
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            while seen.load(std::sync::atomic::Ordering::SeqCst) < 3 {
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        fn a_dump_after_the_runtime_is_dropped_is_empty_not_a_panic(flavor) {
            let rt = runtime(flavor);
            let handle = rt.handle();
            let outliving = rt.spawn(std::future::pending::<()>());
            let guard_dump = {
                let handle = handle.clone();
                move || check_consistent(&handle.dump())
            };
            guard_dump();
            assert!(!handle.dump().shut_down);
            drop(rt);
            // The task outlived its runtime: its handle still answers, and
            // the dump says the runtime is gone.
            let dump = handle.dump();
            check_consistent(&dump);
            assert!(dump.shut_down, "{dump}");
            assert!(dump.to_string().contains("the runtime has shut down"), "{dump}");
            assert!(dump.tasks.iter().all(|t| t.id != outliving.id()), "{dump}");
            let _ = handle.metrics();
            drop(outliving);
            check_consistent(&handle.dump());
        }

        fn a_task_dropped_by_runtime_shutdown_may_dump_from_its_drop(flavor) {
        struct DumpOnDrop(weft::Handle, std::sync::mpsc::Sender<usize>);
        impl Drop for DumpOnDrop {
            fn drop(&mut self) {
                let dump = self.0.dump();
                check_consistent(&dump);
                let _ = self.1.send(dump.tasks.len());
            }
        }
        let rt = runtime(flavor);
        let (sent, dumped) = std::sync::mpsc::channel();
        for _ in 0..8 {
            let guard = DumpOnDrop(rt.handle(), sent.clone());
            drop(rt.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }));
        }
        rt.block_on(async { weft::time::sleep(Duration::from_millis(10)).await });
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(rt);
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("dropping the runtime hung: a dump from a task's Drop during shutdown deadlocked");
        for _ in 0..8 {
            dumped.recv_timeout(Duration::from_secs(1)).unwrap();
        }
    }

    fn an_idle_task_and_parked_workers_are_not_reported_as_blocking(flavor) {
            let rt = runtime(flavor);
            let idle = rt.spawn(std::future::pending::<()>());
            // Let the task be polled once and every worker park.
            rt.block_on(async { weft::time::sleep(Duration::from_millis(50)).await });
            std::thread::sleep(Duration::from_millis(50));
            let dump = rt.dump_with(DumpOptions::default().idle_threshold(Duration::from_millis(10)).poll_threshold(Duration::from_millis(1)));
            assert!(
                !dump.stuck.iter().any(|s| matches!(s, Stuck::Blocking { .. })),
                "an idle runtime reported as blocking:\n{dump}"
            );
            assert_eq!(row(&dump, idle.id()).state, TaskState::Idle, "{dump}");
            assert!(dump.stuck.iter().any(|s| matches!(s, Stuck::Idle { task, .. } if *task == idle.id())), "{dump}");
            idle.abort();
        }
    }
}

#[test]
fn a_current_thread_runtime_is_dumped_from_another_thread_while_block_on_runs() {
    let rt = runtime(weft::Flavor::CurrentThread);
    let handle = rt.handle();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dumper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut polling_seen = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let dump = handle.dump();
                check_consistent(&dump);
                polling_seen |= dump
                    .workers
                    .iter()
                    .any(|w| matches!(w.state, WorkerState::Polling { .. }));
            }
            polling_seen
        })
    };
    rt.block_on(async {
        let mut joins = Vec::new();
        for _ in 0..2000 {
            joins.push(weft::spawn(async {
                for _ in 0..10 {
                    weft::task::yield_now().await;
                }
            }));
        }
        for join in joins {
            join.await.unwrap();
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dumper.join().unwrap();
    assert!(rt.dump().tasks.is_empty(), "{}", rt.dump());
}

/// Workers kept busy by many short polls (about 200 µs each) are not
/// blocked: no dump may say a worker has been inside one poll for 50 ms.
#[test]
fn busy_workers_running_short_polls_are_not_reported_as_blocking() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let rt = runtime(weft::Flavor::MultiThread);
    let stop = Arc::new(AtomicBool::new(false));
    let base = Instant::now();
    let nanos = move || base.elapsed().as_nanos() as u64;
    // Each spinner's current poll began at (ns since `base`), 0 between
    // polls: a report is false only if it claims more than the poll took by
    // the wall clock (on a loaded machine a preempted 200 µs poll can truly
    // last 100 ms, and a dump may say so).
    let mut spinners = std::collections::HashMap::new();
    for _ in 0..16 {
        let (stop, began) = (stop.clone(), Arc::new(AtomicU64::new(0)));
        let poll_began = began.clone();
        let task = rt.spawn(async move {
            while !stop.load(Relaxed) {
                poll_began.store(nanos().max(1), Relaxed);
                let start = Instant::now();
                while start.elapsed() < Duration::from_micros(200) {
                    std::hint::spin_loop();
                }
                poll_began.store(0, Relaxed);
                weft::task::yield_now().await;
            }
        });
        spinners.insert(task.id(), (task, began));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut false_reports = Vec::new();
    for _ in 0..20 {
        let before = nanos();
        let dump = rt.dump_with(DumpOptions::default().poll_threshold(Duration::from_millis(50)));
        for stuck in &dump.stuck {
            let Stuck::Blocking { task, for_us, .. } = stuck else {
                continue;
            };
            // The poll the dump saw is still running if it began before
            // the dump; it has lasted at least until now, so a claim above
            // that is false. (One that ended since cannot be checked.)
            let began = spinners[task].1.load(Relaxed);
            let lasted_us = (nanos() - began) / 1000;
            if began != 0 && began < before && *for_us > lasted_us + 1000 {
                false_reports.push(format!("claimed {for_us} µs, the poll had run {lasted_us} µs:\n{dump}"));
            }
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    stop.store(true, Relaxed);
    for (_, (task, _)) in spinners {
        rt.block_on(task).unwrap();
    }
    assert!(
        false_reports.is_empty(),
        "{} of 20 dumps called a worker running 200 µs polls blocked for longer than its poll ran; the first: {}",
        false_reports.len(),
        false_reports[0]
    );
}

/// A task polled while a long dump copies the records (after the dump read
/// "now") was last polled 0 µs ago, not 49 days (a wrapped millisecond
/// difference): it must not be reported idle past any threshold.
#[test]
fn a_task_polled_during_a_long_dump_is_not_idle_for_49_days() {
    let rt = runtime(weft::Flavor::MultiThread);
    let mut idle = Vec::new();
    for _ in 0..50_000 {
        idle.push(rt.spawn(std::future::pending::<()>()));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tickers = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        tickers.push(rt.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                weft::time::sleep(Duration::from_micros(300)).await;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut bad = None;
    for _ in 0..20 {
        let dump = rt.dump_with(DumpOptions::default().idle_threshold(Duration::from_secs(3600)));
        if let Some(t) = dump
            .tasks
            .iter()
            .find(|t| t.since_last_poll_us.is_some_and(|us| us > 3_600_000_000))
        {
            bad = Some(format!("{t:?}"));
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tickers {
        rt.block_on(t).unwrap();
    }
    for t in idle {
        t.abort();
    }
    assert!(
        bad.is_none(),
        "a task polled during the dump shows as idle for ages: {}",
        bad.unwrap()
    );
}
