//! The timeline: what a trace file holds, its bound, writing on demand, and
//! `WEFT_TRACE`.

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::source::Source;

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-timeline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_trace(path: &Path) -> Vec<Value> {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["traceEvents"].as_array().unwrap().clone()
}

fn of<'a>(events: &'a [Value], ph: &str, cat: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["ph"] == ph && e["cat"] == cat).collect()
}

#[test]
fn a_trace_file_holds_polls_parks_wakes_reactor_turns_and_timers() {
    let dir = scratch("kinds");
    let path = dir.join("trace.json");
    let rt = weft_tests::builder(weft::Flavor::MultiThread)
        .trace_file(&path)
        .build()
        .unwrap();
    rt.block_on(async {
        // Wakes: a chain of tasks handing a token along.
        let (first, mut rx) = futures::channel::oneshot::channel::<u32>();
        for _ in 0..20 {
            let (tx, next) = futures::channel::oneshot::channel::<u32>();
            weft::task::Builder::new().name("relay").spawn(async move {
                let token = rx.await.unwrap();
                let _ = tx.send(token + 1);
            });
            rx = next;
        }
        // Every relay waits before the token goes round, so each one is
        // woken exactly once.
        weft_tests::eventually("every relay waits", || {
            let dump = weft::Handle::current().dump();
            dump.tasks
                .iter()
                .filter(|t| {
                    t.name.as_deref() == Some("relay") && t.state == weft::dump::TaskState::Idle && t.polls == 1
                })
                .count()
                == 20
        })
        .await;
        first.send(0).unwrap();
        assert_eq!(rx.await.unwrap(), 20);
        // Timers, and a socket whose readiness the reactor delivers.
        weft::time::sleep(Duration::from_millis(5)).await;
        let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = weft::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            conn.read_exact(&mut buf).await.unwrap();
            conn.write_all(&buf).await.unwrap();
        });
        let mut client = weft::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        server.await.unwrap();
    });
    drop(rt);
    let events = read_trace(&path);

    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    for i in 0..weft_tests::WORKERS {
        assert!(names.contains(&format!("weft-worker-{i}").as_str()), "{names:?}");
    }
    let polls = of(&events, "X", "poll");
    let relays: Vec<_> = polls.iter().filter(|p| p["name"] == "relay").collect();
    assert!(relays.len() >= 20, "every relay task is polled: {}", relays.len());
    assert!(
        relays
            .iter()
            .all(|p| p["args"]["location"].as_str().unwrap().starts_with(file!()))
    );
    assert!(!of(&events, "X", "park").is_empty());
    let turns = of(&events, "X", "reactor");
    assert!(
        turns.iter().any(|t| t["args"]["events"].as_u64().unwrap() > 0),
        "a turn delivered the socket's events"
    );
    assert!(!of(&events, "i", "timer").is_empty(), "the sleep's timer fired");

    // Each wake arrow ends inside a poll of the woken task, on its thread.
    let starts: HashMap<u64, &Value> = of(&events, "s", "wake")
        .into_iter()
        .map(|e| (e["id"].as_u64().unwrap(), e))
        .collect();
    let finishes = of(&events, "f", "wake");
    assert!(finishes.len() >= 20, "the relays woke each other: {}", finishes.len());
    for f in &finishes {
        let id = f["id"].as_u64().unwrap();
        let s = starts.get(&id).expect("every arrow has a start");
        assert!(s["ts"].as_f64().unwrap() <= f["ts"].as_f64().unwrap());
        assert!(
            polls.iter().any(|p| p["tid"] == f["tid"] && p["ts"] == f["ts"]),
            "the arrow {id} ends where a poll starts"
        );
    }
    // The viewer, with the trace inside, is written next to it.
    let viewer = std::fs::read_to_string(weft::viewer_path(&path)).unwrap();
    assert!(viewer.contains("Weft trace viewer"));
    assert!(viewer.contains("\"traceEvents\":["));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A source whose operations complete when a flag is set.
#[derive(Default)]
struct Device {
    ops: Mutex<Vec<(u64, Arc<AtomicBool>)>>,
}

impl Source for Device {
    fn poll(&self) -> usize {
        let mut ops = self.ops.lock().unwrap();
        let before = ops.len();
        ops.retain(|(id, done)| {
            let finished = done.load(SeqCst);
            if finished {
                weft::observe::op_completed("device", *id, true);
            }
            !finished
        });
        before - ops.len()
    }

    fn has_pending(&self) -> bool {
        !self.ops.lock().unwrap().is_empty()
    }

    fn name(&self) -> &'static str {
        "device"
    }
}

weft_tests::each_flavor! {
    fn source_operations_get_a_process_and_a_track_each(flavor) {
        let dir = scratch(&format!("source-{flavor:?}"));
        let path = dir.join("trace.json");
        let rt = weft_tests::builder(flavor).trace_file(&path).build().unwrap();
        let device = Arc::new(Device::default());
        let _registration = rt.reactor().register_source(device.clone());
        rt.block_on(async {
            for (id, stream) in [(1, 0), (2, 3)] {
                let done = Arc::new(AtomicBool::new(false));
                weft::observe::op_submitted("device", "stream", stream, "copy", id);
                device.ops.lock().unwrap().push((id, done.clone()));
                weft::time::sleep(Duration::from_millis(2)).await;
                done.store(true, SeqCst);
                weft_tests::eventually("the device's op completes", || !device.has_pending()).await;
            }
        });
        drop(rt);
        let events = read_trace(&path);
        let process = events
            .iter()
            .find(|e| e["ph"] == "M" && e["name"] == "process_name" && e["args"]["name"] == "device")
            .expect("a process for the source");
        let pid = process["pid"].clone();
        assert_ne!(pid, 1, "not the runtime's own process");
        for (id, track) in [(1, "stream 0"), (2, "stream 3")] {
            let tid = events
                .iter()
                .find(|e| e["ph"] == "M" && e["pid"] == pid && e["args"]["name"] == track)
                .expect("a track per stream")["tid"]
                .clone();
            let begin = events.iter().find(|e| e["ph"] == "b" && e["id"] == format!("device-{id}")).unwrap();
            let end = events.iter().find(|e| e["ph"] == "e" && e["id"] == format!("device-{id}")).unwrap();
            assert_eq!(begin["tid"], tid);
            assert_eq!(begin["name"], "copy");
            assert_eq!(end["args"]["ok"], true);
            assert!(end["ts"].as_f64().unwrap() - begin["ts"].as_f64().unwrap() >= 2000.0, "{begin} {end}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn a_full_ring_keeps_the_latest_events_and_counts_the_rest(flavor) {
        let dir = scratch(&format!("ring-{flavor:?}"));
        let path = dir.join("trace.json");
        let rt = weft_tests::builder(flavor).trace_file(&path).timeline_capacity(50).build().unwrap();
        rt.block_on(async {
            weft::spawn(async {
                for _ in 0..500 {
                    weft::task::yield_now().await;
                }
            })
            .await
            .unwrap();
        });
        assert!(rt.timeline().unwrap().dropped() > 0);
        drop(rt);
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let dropped = json["otherData"]["dropped_events"].as_u64().unwrap();
        let events = json["traceEvents"].as_array().unwrap();
        let mut per_thread: HashMap<String, u64> = HashMap::new();
        for e in events.iter().filter(|e| e["pid"] == 1 && e["ph"] != "M" && e["ph"] != "s" && e["ph"] != "f") {
            *per_thread.entry(e["tid"].to_string()).or_default() += 1;
        }
        // No thread keeps more than its ring holds, and nothing is lost
        // unaccounted: the 501 polls are either in a ring or counted.
        assert!(per_thread.values().all(|&n| n <= 50), "{per_thread:?}");
        let polls = events.iter().filter(|e| e["cat"] == "poll").count() as u64;
        assert!(polls + dropped >= 501, "{polls} kept, {dropped} dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_trace_is_written_on_demand_and_only_by_a_runtime_that_records_one() {
    let dir = scratch("demand");
    let path = dir.join("now.json");
    let rt = weft_tests::builder(weft::Flavor::MultiThread)
        .trace_file(dir.join("at-shutdown.json"))
        .build()
        .unwrap();
    rt.block_on(async { weft::spawn(async {}).await.unwrap() });
    rt.write_trace(&path).unwrap();
    assert!(!of(&read_trace(&path), "X", "poll").is_empty());
    assert!(dir.join("now.html").exists());
    drop(rt);
    assert!(dir.join("at-shutdown.json").exists());

    let plain = weft_tests::runtime(weft::Flavor::MultiThread);
    assert!(plain.timeline().is_none());
    let err = plain.write_trace(dir.join("never.json")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    assert!(err.to_string().contains("WEFT_TRACE"), "{err}");
    assert!(!dir.join("never.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_trace_read_as_a_task_is_joined_holds_the_tasks_last_poll() {
    // The poll's slice is recorded before the completion wakes the
    // joiner, so a timeline read at once holds it, every time.
    let dir = scratch("last-poll");
    let rt = weft_tests::builder(weft::Flavor::MultiThread)
        .trace_file(dir.join("trace.json"))
        .build()
        .unwrap();
    let timeline = rt.timeline().unwrap();
    for _ in 0..200 {
        let task = rt.spawn(async {});
        let id = task.id().as_u64();
        rt.block_on(task).unwrap();
        let json: Value = serde_json::from_str(&timeline.to_chrome_json()).unwrap();
        let events = json["traceEvents"].as_array().unwrap();
        assert!(
            of(events, "X", "poll").iter().any(|e| e["args"]["task"] == id),
            "no poll of task {id} in a timeline read after joining it"
        );
    }
    drop(rt);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The child half of the next test: builds two runtimes under `WEFT_TRACE`.
#[test]
fn weft_trace_child() {
    if std::env::var_os("WEFT_TIMELINE_TEST_CHILD").is_none() {
        return;
    }
    for _ in 0..2 {
        let rt = weft_tests::runtime(weft::Flavor::MultiThread);
        rt.block_on(async { weft::spawn(async {}).await.unwrap() });
    }
}

#[test]
fn weft_trace_makes_every_runtime_write_a_trace() {
    let dir = scratch("env");
    let path = dir.join("run.json");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "weft_trace_child", "--nocapture"])
        .env("WEFT_TIMELINE_TEST_CHILD", "1")
        .env(weft::TRACE_ENV, &path)
        .status()
        .unwrap();
    assert!(status.success());
    // The second runtime of the process writes next to the first.
    for file in ["run.json", "run.html", "run.2.json", "run.2.html"] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    assert!(!of(&read_trace(&dir.join("run.2.json")), "X", "poll").is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_trace_that_cannot_be_written_fails_the_build_or_is_reported_at_shutdown_not_a_panic() {
    let dir = scratch("unwritable");
    // Into a directory that does not exist: the build says so, before a
    // run is recorded for nothing.
    let missing = dir.join("no-such-dir").join("trace.json");
    let Err(err) = weft_tests::builder(weft::Flavor::MultiThread)
        .trace_file(&missing)
        .build()
    else {
        panic!("the build checks the trace path");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    // Writable when built, not at shutdown (a directory where the file
    // should be): reported, not a panic.
    let path = dir.join("trace.json");
    let rt = weft_tests::builder(weft::Flavor::MultiThread)
        .trace_file(&path)
        .build()
        .unwrap();
    rt.block_on(async { weft::spawn(async {}).await.unwrap() });
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir_all(&path).unwrap();
    assert!(rt.write_trace(&path).is_err());
    drop(rt); // prints the error, and returns
    assert!(path.is_dir());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_weft_trace_is_reported_and_the_program_runs_on() {
    let dir = scratch("env-unwritable");
    let path = dir.join("no-such-dir").join("run.json");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "weft_trace_child", "--nocapture"])
        .env("WEFT_TIMELINE_TEST_CHILD", "1")
        .env(weft::TRACE_ENV, &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-dir") && stderr.contains("records no trace"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Rings of one and two events wrap on every push; a trace read while
/// every thread writes is valid JSON, and the count of dropped events only
/// grows.
#[test]
fn tiny_rings_wrap_and_stay_readable_while_written() {
    for capacity in [1, 2] {
        for flavor in [weft::Flavor::CurrentThread, weft::Flavor::MultiThread] {
            let path = scratch(&format!("tiny-{capacity}")).join("trace.json");
            let rt = weft_tests::builder(flavor)
                .trace_file(&path)
                .timeline_capacity(capacity)
                .build()
                .unwrap();
            let timeline = rt.timeline().expect("a runtime writing a trace records a timeline");
            assert_eq!(timeline.capacity(), capacity);
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let reader = {
                let stop = stop.clone();
                let timeline = timeline.clone();
                std::thread::spawn(move || {
                    let mut dropped = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let json: Value = serde_json::from_str(&timeline.to_chrome_json()).unwrap();
                        let events = json["traceEvents"].as_array().unwrap();
                        let polls = events.iter().filter(|e| e["cat"] == "poll").count();
                        // One poll per thread at most (rings hold `capacity`
                        // events of every kind).
                        assert!(polls <= capacity * 64, "{polls}");
                        let now = timeline.dropped();
                        assert!(now >= dropped);
                        dropped = now;
                    }
                })
            };
            rt.block_on(async {
                let mut joins = Vec::new();
                for _ in 0..200 {
                    joins.push(weft::spawn(async {
                        for _ in 0..5 {
                            weft::task::yield_now().await;
                        }
                        weft::time::sleep(Duration::from_millis(1)).await;
                    }));
                }
                for join in joins {
                    join.await.unwrap();
                }
            });
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            reader.join().unwrap();
            assert!(timeline.dropped() > 0);
            let json: Value = serde_json::from_str(&timeline.to_chrome_json()).unwrap();
            assert!(!json["traceEvents"].as_array().unwrap().is_empty());
            drop(rt);
            assert!(!read_trace(&path).is_empty());
        }
    }
}
