//! Futures with done callbacks: Python's `asyncio.Future` recipes, on
//! Weft's `Promise` and `Task`.
//!
//! ```text
//! cargo run --release -p weft-examples --bin future_callbacks
//! ```
//!
//! The Python version:
//!
//! ```text
//! async def first(n):  return sum(range(1, n + 1))
//! async def second(n): return math.factorial(n)
//! t1 = asyncio.create_task(first(100)); t1.add_done_callback(got_result)
//! t2 = asyncio.create_task(second(20)); t2.add_done_callback(got_result)
//! fut = loop.create_future()
//! threading.Thread(target=lambda: loop.call_soon_threadsafe(fut.set_result, 42)).start()
//! print(await asyncio.gather(t1, t2))
//! ```
//!
//! What it shows, in about 100 ms:
//!
//! 1. two tasks (a sum and a factorial), each with a done callback that
//!    prints its result; callbacks run on the runtime's loop, once the task
//!    is done, and the tasks can still be awaited for their values;
//! 2. a bare `Promise` settled by a plain `std::thread`: the callback still
//!    runs on the loop, not on the thread that settled it (in Python that
//!    thread must use `call_soon_threadsafe`; a Weft promise is thread-safe
//!    itself);
//! 3. a callback added after completion (scheduled at once), and
//!    `remove_done_callback` taking one back before it runs;
//! 4. `set_exception` and `exception()`: a promise that fails, and what
//!    each way of looking at it returns;
//! 5. `gather`: results in input order, whatever order the tasks finish in.
//!
//! Done callbacks run on the loop in the order they were scheduled, one at a
//! time, like `call_soon` callbacks (they share its queue). The example
//! uses that to print in a predictable order: `flush_callbacks` queues one
//! more callback and waits for it, so every callback queued before it has
//! run.

use std::fmt::Debug;
use std::io;
use std::thread;
use std::time::{Duration, Instant};
use weft::future::{Promise, PromiseError, create_task, gather};
use weft::time::sleep;

fn main() -> io::Result<()> {
    let rt = weft::Runtime::new()?;
    let start = Instant::now();
    rt.block_on(async {
        tasks_with_callbacks().await?;
        promise_from_a_thread().await?;
        remove_a_callback().await?;
        exceptions().await?;
        gather_in_input_order().await
    })?;
    println!("\ndone in {:.0?}", start.elapsed());
    Ok(())
}

async fn tasks_with_callbacks() -> io::Result<()> {
    println!("1. two tasks with done callbacks");
    // `create_task` spawns the future and returns a `Task`: a handle that
    // is also the task's `Promise` (it derefs to one).
    let sum = create_task(async {
        sleep(Duration::from_millis(20)).await;
        (1..=100u64).sum::<u64>()
    });
    let factorial = create_task(async {
        sleep(Duration::from_millis(10)).await;
        (1..=20u64).product::<u64>()
    });
    // The callback gets the promise; `result()` borrows its outcome:
    // `Result<&u64, PromiseError>`.
    sum.add_done_callback(|t| println!("   callback on {}: sum of 1..=100 = {:?}", thread_name(), t.result()));
    factorial.add_done_callback(|t| println!("   callback on {}: 20! = {:?}", thread_name(), t.result()));
    println!("   callbacks added; done() = {} and {}", sum.done(), factorial.done());

    // Awaiting a task gives a clone of its result (every awaiter gets one).
    let (s, f) = (sum.await?, factorial.await?);
    flush_callbacks().await?;
    println!("   awaited: {s} and {f}\n");
    Ok(())
}

async fn promise_from_a_thread() -> io::Result<()> {
    println!("2. a bare promise, set from a std::thread");
    // Made inside the runtime, so its callbacks run on this runtime's loop
    // (asyncio's `loop.create_future()`).
    let promise = Promise::<String>::new();
    promise.add_done_callback(|p| println!("   callback on {}: {:?}", thread_name(), p.result()));
    let setter = promise.clone();
    thread::Builder::new().name("producer".to_owned()).spawn(move || {
        thread::sleep(Duration::from_millis(10));
        // `set_result` fails (giving the value back) only if the promise was
        // already done; nobody else settles this one.
        let _ = setter.set_result(format!("made on the {} thread", thread_name()));
    })?;
    // `settled()` waits and borrows the result; awaiting `promise` itself
    // would clone it (and give up this handle).
    let value = promise.settled().await?;
    flush_callbacks().await?;
    println!("   awaited: {value:?}");

    // A callback added to a promise that is already done is scheduled at
    // once (it still runs on the loop, not inside `add_done_callback`).
    println!("   adding a callback to the promise, which is done");
    promise.add_done_callback(|p| println!("   late callback on {}: {:?}", thread_name(), p.result()));
    flush_callbacks().await?;
    println!();
    Ok(())
}

async fn remove_a_callback() -> io::Result<()> {
    println!("3. remove_done_callback");
    let promise = Promise::<u32>::new();
    let removed = promise.add_done_callback(|_| println!("   this callback was removed and never prints"));
    promise.add_done_callback(|p| println!("   the kept callback: {:?}", p.result()));
    // By id (Rust closures cannot be compared as Python functions are).
    // Returns how many were removed, as asyncio does: 1, then 0.
    println!(
        "   remove_done_callback(id) = {}",
        promise.remove_done_callback(removed)
    );
    println!(
        "   remove_done_callback(id) again = {}",
        promise.remove_done_callback(removed)
    );
    let _ = promise.set_result(7);
    flush_callbacks().await?;
    println!();
    Ok(())
}

async fn exceptions() -> io::Result<()> {
    println!("4. set_exception and exception()");
    let promise = Promise::<u32>::new();
    promise.add_done_callback(|p| {
        // `exception()`: `Ok(Some(e))` for a failure, `Ok(None)` for a result.
        let exception = p.exception().map(|e| e.map(ToString::to_string));
        println!("   callback: exception() = {exception:?}");
    });
    // Any `std::error::Error + Send + Sync` becomes the promise's exception.
    if promise.set_exception(io::Error::other("sensor offline")).is_err() {
        println!("   the promise was already done?!");
    }
    flush_callbacks().await?;

    if let Ok(Some(exception)) = promise.exception() {
        // The original error is still there, typed.
        let kind = exception.downcast_ref::<io::Error>().map(io::Error::kind);
        println!("   exception() = {exception}; as an io::Error, of kind {kind:?}");
    }
    show("result()", promise.result());
    // Awaiting a failed promise gives `Err(PromiseError::Failed(exception))`.
    match promise.clone().await {
        Err(PromiseError::Failed(exception)) => println!("   await = Err(Failed({exception}))"),
        other => println!("   await = {other:?}?!"),
    }
    // A promise settles once: asyncio's `InvalidStateError`.
    println!(
        "   set_result(5) now = {:?} (the value comes back)\n",
        promise.set_result(5)
    );
    Ok(())
}

async fn gather_in_input_order() -> io::Result<()> {
    println!("5. gather");
    let start = Instant::now();
    let task = |name: &'static str, ms: u64| {
        create_task(async move {
            sleep(Duration::from_millis(ms)).await;
            println!("   {name} finished at {:.0?}", start.elapsed());
            format!("{name} ({ms} ms)")
        })
    };
    // Finishing order: b, c, a. `gather` returns the results in input order
    // (or the first error, cancelling the rest).
    let results = gather([task("a", 30), task("b", 10), task("c", 20)]).await?;
    println!("   gather = {results:?}");
    Ok(())
}

/// Waits until every callback queued on the loop so far has run: the loop
/// runs callbacks one at a time in FIFO order, so one queued now runs after
/// them, and it settles the promise this awaits.
async fn flush_callbacks() -> Result<(), PromiseError> {
    let flushed = Promise::new();
    let setter = flushed.clone();
    weft::Handle::current().call_soon(move || {
        let _ = setter.set_result(());
    });
    flushed.await
}

fn show<T: Debug>(what: &str, result: Result<&T, PromiseError>) {
    match result {
        Ok(value) => println!("   {what} = Ok({value:?})"),
        Err(err) => println!("   {what} = Err({err})"),
    }
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("unnamed").to_owned()
}
