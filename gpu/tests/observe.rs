//! What weft-gpu shows of itself: a task awaiting an operation waits on
//! source `gpu` in a dump, the operations are on the timeline (a track per
//! stream), and the tracker is in the reactor's metrics. Runs on the real
//! driver when there is one, else on the CPU stand-in.

mod common;

use common::*;
use std::time::Duration;
use weft::dump::{TaskState, WaitOn};

#[test]
fn a_gpu_operation_shows_in_dumps_metrics_and_the_timeline() {
    let _turn = serial();
    let dir = std::env::temp_dir().join(format!("weft-gpu-observe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.json");
    let rt = weft::Builder::new_multi_thread()
        .worker_threads(2)
        .trace_file(&path)
        .build()
        .unwrap();
    let gpu = open(weft_gpu::WakeMode::EventPolling);
    rt.block_on(async {
        let stream = gpu.stream().unwrap();
        let kernel = demo_kernel(&gpu, "add_one");
        let n = 1024u32;
        let mut dev = stream.alloc_zeros::<u32>(n as usize).unwrap();
        let host = gpu.pinned_from_slice(&vec![1u32; n as usize]).unwrap();
        let host = stream.copy_to_device(host, &mut dev).await.unwrap();
        // SAFETY: `add_one` takes a device pointer to `n` u32s and `n`.
        unsafe {
            stream
                .launch(&kernel)
                .arg(&mut dev)
                .arg(&n)
                .run(weft_gpu::LaunchConfig::for_num_elems(n))
        }
        .await
        .unwrap();

        // An operation the device cannot start yet (on the stand-in, whose
        // streams can be held): its task waits on source `gpu`.
        if stand_in() {
            let hold = Hold::on();
            let s = stream.clone();
            let waiting = weft::task::Builder::new()
                .name("gpu waiter")
                .spawn(async move { s.synchronize().await.unwrap() });
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let dump = weft::Handle::current().dump();
                let row = dump.tasks.iter().find(|t| t.id == waiting.id());
                if row.is_some_and(|t| {
                    t.state == TaskState::Idle && matches!(t.wait, Some(WaitOn::Source { source: "gpu", .. }))
                }) {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{dump}");
                weft::time::sleep(Duration::from_millis(2)).await;
            }
            drop(hold);
            waiting.await.unwrap();
        }
        let back = stream.copy_to_host(&dev, host).await.unwrap();
        assert!(back.iter().all(|&v| v == 2));

        let metrics = weft::Handle::current().reactor_metrics();
        let tracker = metrics
            .sources
            .iter()
            .find(|s| s.name == "gpu")
            .expect("the tracker is a source");
        assert!(tracker.completed >= 3, "{tracker:?}");
    });
    drop(rt);

    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let meta = |name: &str, value: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] == name)
            .filter(|e| e["args"]["name"].as_str().is_some_and(|n| n.starts_with(value)))
            .cloned()
            .collect()
    };
    let pid = meta("process_name", "gpu")
        .first()
        .expect("a process for the GPU's operations")["pid"]
        .clone();
    assert!(
        meta("thread_name", "stream ").iter().any(|e| e["pid"] == pid),
        "a track per stream"
    );
    for op in ["copy to device", "kernel", "copy to host"] {
        let begin = events
            .iter()
            .find(|e| e["ph"] == "b" && e["pid"] == pid && e["name"] == op);
        let begin = begin.unwrap_or_else(|| panic!("{op} on the timeline"));
        assert!(
            events
                .iter()
                .any(|e| e["ph"] == "e" && e["id"] == begin["id"] && e["args"]["ok"] == true)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
