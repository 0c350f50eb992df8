//! The Weft demo: tasks spread over several workers, and what ran where.
//!
//! ```text
//! cargo run --release -p weft-examples --bin demo
//! ```
//!
//! Sixteen tasks of uneven size start on whichever worker picks them up;
//! tasks that yield may resume elsewhere after an idle worker steals them.
//! A blocking job runs on the blocking pool, a chain of tasks shows the LIFO
//! slot at work, and the runtime's counters show how each worker spent its
//! time.

use std::io;
use std::time::Instant;

const WORKERS: usize = 4;

fn worker() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

fn main() -> io::Result<()> {
    let rt = weft::Builder::new_multi_thread().worker_threads(WORKERS).build()?;
    println!("Weft demo: a multi-thread runtime with {WORKERS} workers\n");

    rt.block_on(async {
        println!("1. Sixteen tasks of uneven size, spawned from block_on:");
        let start = Instant::now();
        let tasks: Vec<_> = (0..16u64)
            .map(|i| {
                weft::spawn(async move {
                    let started_on = worker();
                    // Uneven CPU work, yielding now and then so a busy worker's
                    // queue can be stolen from.
                    let mut x = i;
                    for step in 0..(i + 1) * 50_000 {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(step);
                        if step % 20_000 == 0 {
                            weft::task::yield_now().await;
                        }
                    }
                    (weft::task::id(), started_on, worker(), x)
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let (id, started_on, finished_on, _) = task.await.expect("demo task");
            let moved = if started_on == finished_on { "" } else { "  <- moved" };
            println!("   task {i:>2} (id {id:>4}) started on {started_on}, finished on {finished_on}{moved}");
        }
        println!("   all done in {:.1?}\n", start.elapsed());

        println!("2. A blocking call goes to the blocking pool, not a worker:");
        let ran_on = weft::spawn_blocking(|| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            worker()
        })
        .await
        .expect("blocking job");
        println!("   slept 20 ms on {ran_on}\n");

        println!("3. A chain of 1000 tasks, each spawning the next:");
        let start = Instant::now();
        let last_worker = weft::spawn(chain(1000)).await.expect("chain");
        println!("   ended on {last_worker} after {:.1?}\n", start.elapsed());
    });

    let metrics = rt.metrics();
    println!("What each worker did:");
    println!(
        "   {:<10} {:>8} {:>11} {:>8} {:>7}",
        "worker", "polls", "lifo polls", "stolen", "parks"
    );
    for (i, w) in metrics.workers.iter().enumerate() {
        println!(
            "   {:<10} {:>8} {:>11} {:>8} {:>7}",
            format!("worker-{i}"),
            w.polls,
            w.lifo_polls,
            w.steals,
            w.parks
        );
    }
    println!(
        "   blocking-pool threads: {}, tasks still alive: {}",
        metrics.blocking_threads, metrics.alive_tasks
    );
    Ok(())
}

/// Spawns the next link and waits for it: each new task goes into the
/// spawning worker's LIFO slot and runs next, on the same worker.
fn chain(n: u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>> {
    Box::pin(async move {
        if n == 0 {
            worker()
        } else {
            weft::spawn(chain(n - 1)).await.expect("link")
        }
    })
}
