//! An event loop scheduling callbacks: Python's `loop.call_soon`,
//! `call_soon_threadsafe`, `call_later` and `call_at`, on a Weft
//! [`Handle`](weft::Handle).
//!
//! ```text
//! cargo run --release -p weft-examples --bin event_loop
//! ```
//!
//! The Python version:
//!
//! ```text
//! loop = asyncio.new_event_loop()
//! for i in (1, 2, 3): loop.call_soon(say, f"call_soon #{i}")
//! def other(): time.sleep(0.025); loop.call_soon_threadsafe(say, "from a thread")
//! threading.Thread(target=other).start()
//! loop.call_later(0.030, say, "30 ms");  loop.call_at(loop.time() + 0.020, say, "20 ms")
//! loop.call_later(0.010, say, "10 ms");  loop.call_later(0.015, say, "never").cancel()
//! loop.call_later(0.050, loop.stop)
//! loop.run_forever()
//! ```
//!
//! It runs for about 50 ms and prints each callback as it runs, with the
//! time since the start and the thread it ran on:
//!
//! - three `call_soon` callbacks run in the order they were scheduled
//!   (FIFO);
//! - timers scheduled out of order (30, 20, 10 ms) run in deadline order;
//! - another thread schedules a callback while the loop is idle, and the
//!   loop wakes up to run it;
//! - a cancelled `call_later` never runs, though its deadline passes;
//! - a callback can schedule another;
//! - the last callback stops the loop: it settles a promise that
//!   `block_on` is waiting for (asyncio's `loop.stop()` ending
//!   `run_forever()`).
//!
//! The runtime here is a current-thread one, like an asyncio loop: every
//! callback runs on the thread inside `block_on`, and nothing runs before
//! `block_on` starts. On a multi-thread runtime (`Runtime::new()`) the same
//! code runs the callbacks on worker threads, as soon as they are due, even
//! before `block_on`; the order is the same.

use std::io;
use std::thread;
use std::time::{Duration, Instant};
use weft::CallbackHandle;

fn main() -> io::Result<()> {
    let rt = weft::Builder::new_current_thread().build()?;
    // A handle reaches the runtime from any thread; it is what schedules.
    let handle = rt.handle();
    let start = Instant::now();
    let say = move |what: &'static str| move || report(start, what);

    // FIFO: these run in this order, one at a time.
    let soon = [
        handle.call_soon(say("call_soon #1")),
        handle.call_soon(say("call_soon #2")),
        handle.call_soon(say("call_soon #3")),
    ];

    // From another thread, 25 ms in, while the loop sits idle waiting for
    // its next timer: scheduling wakes it. In asyncio only
    // `call_soon_threadsafe` may be called from another thread; every Weft
    // handle is thread-safe, so the two are one.
    let remote = handle.clone();
    let other = thread::Builder::new().name("other".to_owned()).spawn(move || {
        thread::sleep(Duration::from_millis(25));
        remote.call_soon_threadsafe(say("call_soon_threadsafe, scheduled by thread 'other'"))
    })?;

    // Timers, scheduled out of order; they run in deadline order. `call_at`
    // takes an `Instant`, the monotonic clock the loop's timers use.
    let timers = [
        handle.call_later(Duration::from_millis(30), say("call_later(30 ms)")),
        handle.call_at(start + Duration::from_millis(20), say("call_at(start + 20 ms)")),
        handle.call_later(Duration::from_millis(10), say("call_later(10 ms)")),
    ];

    // Cancelled before its deadline: it never runs, and its timer is freed.
    let doomed = handle.call_later(
        Duration::from_millis(15),
        say("call_later(15 ms): cancelled, never runs"),
    );
    let first_cancel = doomed.cancel();
    let second_cancel = doomed.cancel();

    // A callback that schedules the next one, as asyncio recipes chain
    // `call_later`s.
    let chain = handle.clone();
    handle.call_later(Duration::from_millis(40), move || {
        report(start, "call_later(40 ms), which calls call_soon");
        chain.call_soon(say("call_soon from inside a callback"));
    });

    // The last callback stops the loop: `block_on` below waits for this
    // promise. Its callbacks (none here) would run on this runtime's loop.
    let stopped = handle.create_future::<()>();
    let stop = stopped.clone();
    let last = handle.call_later(Duration::from_millis(50), move || {
        report(start, "call_later(50 ms): stop the loop");
        // Fails only if the promise was already done; nothing else sets it.
        let _ = stop.set_result(());
    });

    println!("scheduled everything in {:.1?}; nothing has run yet:", start.elapsed());
    println!(
        "   call_soon #1 done() = {}; doomed: cancel() = {first_cancel}, then cancel() = {second_cancel}\n",
        soon[0].done()
    );
    // Run the loop until the last callback settles `stopped`.
    rt.block_on(stopped)?;
    let from_thread = other
        .join()
        .map_err(|_| io::Error::other("the scheduling thread panicked"))?;

    println!("\nloop stopped after {:.0?}", start.elapsed());
    let state = |h: &CallbackHandle| format!("done() = {}, cancelled() = {}", h.done(), h.cancelled());
    for (i, h) in soon.iter().enumerate() {
        println!("   call_soon #{}:            {}", i + 1, state(h));
    }
    println!("   call_soon_threadsafe:    {}", state(&from_thread));
    println!("   call_later(10 ms):       {}", state(&timers[2]));
    println!("   call_later(15 ms):       {}", state(&doomed));
    println!("   the stop callback:       {}", state(&last));
    // Too late to cancel what has run.
    println!("   cancel() after it ran:   {}", last.cancel());
    Ok(())
}

/// Prints one line for a callback: when (since `start`), on which thread,
/// and what.
fn report(start: Instant, what: &str) {
    let thread = thread::current();
    println!(
        "{:>6.1} ms  on {:<6} {what}",
        start.elapsed().as_secs_f64() * 1e3,
        thread.name().unwrap_or("?")
    );
}
