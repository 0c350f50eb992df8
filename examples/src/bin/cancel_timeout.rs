//! A task cancelled by a timeout: Python's `asyncio.wait_for`, `shield` and
//! `wait` recipes, on Weft's [`Task`].
//!
//! ```text
//! cargo run --release -p weft-examples --bin cancel_timeout
//! ```
//!
//! The Python version:
//!
//! ```text
//! task = asyncio.create_task(slow())             # sleeps 10 s
//! try:
//!     await asyncio.wait_for(task, timeout=0.05)
//! except TimeoutError:
//!     print(task.cancelled())                    # True: wait_for cancelled it
//! await asyncio.wait_for(asyncio.shield(task2), timeout=0.03)   # task2 lives on
//! done, pending = await asyncio.wait(tasks, return_when=FIRST_COMPLETED, timeout=1)
//! ```
//!
//! What it shows, in about 150 ms:
//!
//! 1. `wait_for` on a task that is too slow: at the deadline the wait gives
//!    up with `Elapsed` and the task is cancelled; its future is dropped,
//!    so its destructors run ("cleanup ran"), as Python's `finally:` blocks
//!    run on `CancelledError`. A task that is fast enough gives its value;
//! 2. `shield`: the wait times out, but the task it shields keeps running
//!    and can be awaited later;
//! 3. `wait` with `ReturnWhen::FirstCompleted`: returns `(done, pending)` as
//!    soon as one task finishes; the pending tasks are handed back, still
//!    running, and this example cancels them.
//!
//! Cancellation in Weft is dropping: a cancelled task's future is dropped
//! at its current `.await`, on a worker, soon after `cancel()`. Code after
//! that `.await` never runs; `Drop` impls do.

use std::io;
use std::time::{Duration, Instant};
use weft::future::{Promise, ReturnWhen, Task, create_task, shield, wait, wait_for};
use weft::time::sleep;

fn main() -> io::Result<()> {
    let rt = weft::Runtime::new()?;
    let start = Instant::now();
    rt.block_on(async {
        timeout_cancels().await?;
        shield_keeps_alive().await?;
        first_completed().await
    })?;
    println!("\ndone in {:.0?}", start.elapsed());
    Ok(())
}

async fn timeout_cancels() -> io::Result<()> {
    println!("1. wait_for(task, 50 ms)");
    // Settled by the guard's destructor (with the name of the thread it ran
    // on), so we can wait for it to run.
    let cleaned_up = Promise::<String>::new();
    let guard = Cleanup {
        name: "slow task",
        done: cleaned_up.clone(),
    };
    let task = create_task(async move {
        let _guard = guard; // dropped when the task ends, however it ends
        sleep(Duration::from_secs(10)).await;
        println!("   the slow task finished?!"); // never: the task is cancelled at the sleep
        "slow result"
    });
    // Lend the task to `wait_for` (`&mut task`) to look at it afterwards;
    // passing it by value works too. Either way, on timeout `wait_for`
    // cancels it explicitly: dropping a task handle only detaches it.
    let mut task = task;

    let start = Instant::now();
    // The outer `Result` is the timeout, the inner one the task's outcome.
    match wait_for(&mut task, Duration::from_millis(50)).await {
        Ok(Ok(value)) => println!("   finished?! {value}"),
        Ok(Err(err)) => println!("   the task failed: {err}"),
        Err(elapsed) => println!("   Err(Elapsed): \"{elapsed}\" after {:.0?}", start.elapsed()),
    }
    println!("   cancelled() = {}", task.cancelled());
    // The task is marked cancelled at once; its future is dropped on a
    // worker a moment later (so "cleanup ran" may print before or after the
    // lines above). Wait, at most a second, for its destructor.
    match wait_for(cleaned_up, Duration::from_secs(1)).await {
        Ok(Ok(thread)) => println!("   the task's destructor has run, on {thread}"),
        Ok(Err(err)) => println!("   the cleanup promise failed?! {err}"),
        Err(_) => println!("   the task's destructor did not run within a second?!"),
    }

    // The same, with a task fast enough for its deadline.
    let quick = create_task(async {
        sleep(Duration::from_millis(5)).await;
        "quick result"
    });
    match wait_for(quick, Duration::from_millis(50)).await {
        Ok(Ok(value)) => println!("   a 5 ms task under the same timeout: Ok(Ok({value:?}))\n"),
        Ok(Err(err)) => println!("   the quick task failed: {err}\n"),
        Err(elapsed) => println!("   the quick task timed out?! {elapsed}\n"),
    }
    Ok(())
}

async fn shield_keeps_alive() -> io::Result<()> {
    println!("2. wait_for(shield(task), 30 ms) on a 100 ms task");
    let start = Instant::now();
    let task = create_task(async {
        sleep(Duration::from_millis(100)).await;
        42u32
    });
    // `shield` awaits the task without the power to cancel it: on timeout
    // `wait_for` cancels the shield, which cancels nothing.
    let mut task = task;
    match wait_for(shield(&mut task), Duration::from_millis(30)).await {
        Ok(outcome) => println!("   finished early?! {outcome:?}"),
        Err(elapsed) => println!("   \"{elapsed}\" after {:.0?}", start.elapsed()),
    }
    println!(
        "   the task is still running: cancelled() = {}, done() = {}",
        task.cancelled(),
        task.done()
    );
    // Awaiting the task itself (no timeout now) gets its value.
    let value = task.await?;
    println!("   awaited later: {value} at {:.0?}\n", start.elapsed());
    Ok(())
}

async fn first_completed() -> io::Result<()> {
    println!("3. wait([slow, fast, medium], FirstCompleted, timeout 1 s)");
    let start = Instant::now();
    let task = |name: &'static str, ms: u64| -> Task<&'static str> {
        create_task(async move {
            sleep(Duration::from_millis(ms)).await;
            name
        })
    };
    let tasks = [task("slow", 300), task("fast", 10), task("medium", 100)];
    // Returns as soon as one finishes (or after the timeout, with whatever
    // finished by then). Each entry keeps its index in the input.
    let (done, pending) = wait(tasks, ReturnWhen::FirstCompleted, Duration::from_secs(1)).await;
    println!("   returned after {:.0?}", start.elapsed());
    for (index, outcome) in &done {
        println!("   done:    #{index} {outcome:?}");
    }
    // Pending tasks are not cancelled by `wait`: they are ours to await or
    // cancel. Dropping a `Task` would detach it (it would keep running).
    for (index, task) in &pending {
        let cancelled = task.cancel();
        println!(
            "   pending: #{index}, cancel() = {cancelled}, cancelled() = {}",
            task.cancelled()
        );
    }
    Ok(())
}

/// Prints when it is dropped, and settles `done` with the thread it ran on:
/// stands for the cleanup a task does on its way out (closing a file,
/// returning a connection).
struct Cleanup {
    name: &'static str,
    done: Promise<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        println!("   cleanup ran: the {}'s future was dropped", self.name);
        let thread = std::thread::current().name().unwrap_or("an unnamed thread").to_owned();
        let _ = self.done.set_result(thread);
    }
}
