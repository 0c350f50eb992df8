//! A pool of worker threads for CPU work: Python's `multiprocessing.Pool`
//! recipes, on `weft::pool::Pool`.
//!
//! ```text
//! cargo run --release -p weft-examples --bin pool_map
//! ```
//!
//! The Python version:
//!
//! ```text
//! with multiprocessing.Pool() as pool:
//!     print(pool.map(square, range(20)))
//!     print(sum(pool.map(popcount, range(10_000_000), chunksize=100_000)))
//!     print(sum(pool.map(count_primes, blocks, chunksize=1)))
//!     for r in pool.imap(slow, range(6)): print(r)
//!     for r in pool.imap_unordered(slow, range(6)): print(r)
//!     print(pool.apply(answer))
//!     r = pool.apply_async(greet, callback=print); r.get()
//!     # in a coroutine: await loop.run_in_executor(None, pool.map, square, range(20))
//!     pool.close(); pool.join()
//! ```
//!
//! What it shows, step by step:
//!
//! 1. `map`: results come back in input order;
//! 2. a chunked `map` over ten million items: `chunksize` items travel as
//!    one job, so the pool does a hundred queue operations, not ten million
//!    (the same work item by item would be dominated by queueing); then
//!    why work this cheap gains nothing from a pool, and heavier items
//!    (counting primes in blocks) that do;
//! 3. `imap` and `imap_unordered`: results as they are ready, in input
//!    order or in completion order;
//! 4. `apply` (blocks for one result) and `apply_async` (a
//!    [`Promise`](weft::future::Promise), with a done callback and a
//!    blocking `wait`);
//! 5. an item that panics: its call returns `PoolError::Panicked`, naming
//!    the item, and the pool carries on;
//! 6. the same pool from async code: a blocking call returns
//!    `PoolError::WouldBlockRuntime` (it would stall the runtime's tasks),
//!    `map_async` is awaited, and `imap_unordered_stream` yields results as
//!    a `Stream`;
//! 7. `close` and `join`, after which the pool takes no more work.
//!
//! `main` is a plain thread, not a runtime's, so the blocking calls are fine
//! there; step 6 shows what to write in async code instead.

use std::error::Error;
use std::thread;
use std::time::{Duration, Instant};
use weft::pool::{Pool, PoolError};

/// Items in the big map.
const BIG: u64 = 10_000_000;
/// Items per job in the big map.
const BIG_CHUNK: usize = 100_000;
/// Primes are counted below this...
const PRIME_LIMIT: u64 = 400_000;
/// ...in blocks of this many numbers, one block an item.
const PRIME_BLOCK: u64 = 20_000;

fn main() -> Result<(), Box<dyn Error>> {
    // One worker per CPU, as Python's `Pool()`.
    let pool = Pool::with_cpus()?;
    println!("a pool of {} worker threads\n", pool.size());

    squares(&pool)?;
    big_map(&pool)?;
    lazy_maps(&pool)?;
    apply(&pool)?;
    panicking_item(&pool)?;
    in_async_code(&pool)?;

    println!("7. close() and join()");
    pool.close();
    pool.join()?;
    match pool.apply(|| 1) {
        Err(PoolError::Closed) => println!(
            "   after close, apply() returns PoolError::Closed: {}",
            PoolError::Closed
        ),
        other => println!("   after close, apply() returned {other:?}?!"),
    }
    Ok(())
}

fn squares(pool: &Pool) -> Result<(), PoolError> {
    println!("1. map(square, range(20))");
    // `None`: Python's default chunk size, about four chunks per worker.
    let squares = pool.map(|x: u64| x * x, 0..20u64, None)?;
    println!("   {squares:?}\n");
    Ok(())
}

fn big_map(pool: &Pool) -> Result<(), PoolError> {
    println!("2. sum(map(popcount, range({BIG}), chunksize={BIG_CHUNK}))");
    let start = Instant::now();
    let bits = pool.map(|x: u64| x.count_ones(), 0..BIG, Some(BIG_CHUNK))?;
    let total: u64 = bits.iter().map(|&b| u64::from(b)).sum();
    let pooled = start.elapsed();
    println!(
        "   {total} bits set in 0..{BIG}: {} jobs of {BIG_CHUNK} items, {pooled:.0?}",
        BIG as usize / BIG_CHUNK
    );

    // The same on this thread, to check the answer. For work this cheap
    // (one instruction an item) the pool mostly moves data around: moving
    // the items into chunks and the results back costs more than counting
    // bits, so expect the pool to lose.
    let start = Instant::now();
    let serial: u64 = (0..BIG).map(|x| u64::from(x.count_ones())).sum();
    println!("   on one thread: {serial} in {:.0?}", start.elapsed());
    if serial != total {
        println!("   the pool's answer differs?!");
    }

    // Heavier items are where a pool pays: each item here is a block of
    // numbers whose primes are counted by trial division.
    let blocks = PRIME_LIMIT / PRIME_BLOCK;
    let start = Instant::now();
    let per_block = pool.map(
        |b: u64| count_primes(b * PRIME_BLOCK..(b + 1) * PRIME_BLOCK),
        0..blocks,
        Some(1),
    )?;
    let pooled = start.elapsed();
    let start = Instant::now();
    let serial: u64 = (0..blocks)
        .map(|b| count_primes(b * PRIME_BLOCK..(b + 1) * PRIME_BLOCK))
        .sum();
    println!(
        "   primes below {PRIME_LIMIT}, {blocks} blocks: pool {} in {pooled:.0?}, one thread {serial} in {:.0?}\n",
        per_block.iter().sum::<u64>(),
        start.elapsed()
    );
    Ok(())
}

/// The primes in `range`, by trial division: slow on purpose.
fn count_primes(range: std::ops::Range<u64>) -> u64 {
    let is_prime = |n: u64| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0);
    range.filter(|&n| is_prime(n)).count() as u64
}

/// An item that takes longer the smaller it is, so that items finish out of
/// order.
fn slow(x: u64) -> u64 {
    thread::sleep(Duration::from_millis(5 * (6 - x)));
    x * 10
}

fn lazy_maps(pool: &Pool) -> Result<(), PoolError> {
    println!("3. imap and imap_unordered (item x sleeps (6 - x) * 5 ms, returns x * 10)");
    // `Imap` is an iterator of `Result`s: each item can fail on its own.
    // Iterating blocks until the next result is ready.
    let ordered: Vec<u64> = pool.imap(slow, 0..6u64, None)?.collect::<Result<_, _>>()?;
    println!("   imap:           {ordered:?}  (input order)");
    let unordered: Vec<u64> = pool.imap_unordered(slow, 0..6u64, None)?.collect::<Result<_, _>>()?;
    println!("   imap_unordered: {unordered:?}  (the order they finished in)\n");
    Ok(())
}

fn apply(pool: &Pool) -> Result<(), Box<dyn Error>> {
    println!("4. apply and apply_async");
    // `apply` runs one closure on a worker and blocks for its result.
    let answer = pool.apply(|| 6 * 7)?;
    println!("   apply(|| 6 * 7) = {answer}");

    // `apply_async` returns at once with a promise of the result.
    let promise = pool.apply_async(|| {
        thread::sleep(Duration::from_millis(20));
        format!("hello from {}", thread::current().name().unwrap_or("a worker"))
    })?;
    // Python's `callback=`. This promise was made outside any runtime, so
    // its callback runs on the thread that settles it: the pool worker.
    promise.add_done_callback(|p| {
        let on = thread::current().name().unwrap_or("?").to_owned();
        println!("   done callback on {on}: {:?}", p.result());
    });
    println!("   apply_async returned; done() = {}", promise.done());
    // Python's `AsyncResult.get()`: block this (plain) thread until it is
    // done, and borrow the result.
    let greeting = promise.wait()?;
    println!("   wait() = {greeting:?}; done() = {}\n", promise.done());
    Ok(())
}

fn panicking_item(pool: &Pool) -> Result<(), PoolError> {
    println!("5. an item that panics");
    // Rust's panic hook prints every panic with a backtrace hint; swap in a
    // one-line hook while the demo panics on purpose, then put it back.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let on = thread::current().name().unwrap_or("?").to_owned();
        // A panic's payload is a `&str` or a `String` (from `panic!` with
        // format arguments).
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("?");
        println!("   (panic hook: {on} panicked: {message})");
    }));
    let result = pool.map(
        |x: u32| {
            if x == 3 {
                panic!("three is not allowed");
            }
            x + 100
        },
        0..8u32,
        Some(2),
    );
    std::panic::set_hook(default_hook);

    match result {
        Err(PoolError::Panicked { item, message }) => {
            println!("   map returned PoolError::Panicked {{ item: {item}, message: {message:?} }}");
        }
        other => println!("   map returned {other:?}?!"),
    }
    // The worker caught the panic and went on; the pool is intact.
    let after = pool.map(|x: u32| x + 100, 0..8u32, Some(2))?;
    println!("   the pool survives: map afterwards = {after:?}\n");
    Ok(())
}

fn in_async_code(pool: &Pool) -> Result<(), Box<dyn Error>> {
    println!("6. from async code");
    let rt = weft::Runtime::new()?;
    rt.block_on(async {
        // A blocking call would stall every task of this thread: refused,
        // with nothing queued, and the error says what to write instead.
        if let Err(refused) = pool.map(|x: u64| x * x, 0..20u64, None) {
            println!("   map() here returns: {refused}");
        }
        let squares = pool.map_async(|x: u64| x * x, 0..20u64, None)?.await?;
        println!("   map_async(..).await = {squares:?}");
        // The stream's `next` is awaited; the thread runs other tasks
        // meanwhile.
        let mut results = pool.imap_unordered_stream(slow, 0..6u64, None)?;
        let mut unordered = Vec::new();
        while let Some(result) = results.next().await {
            unordered.push(result?);
        }
        println!("   imap_unordered_stream: {unordered:?}\n");
        Ok(())
    })
}
