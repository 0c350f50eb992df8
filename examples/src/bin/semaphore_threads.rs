//! Threads sharing a resource under a semaphore: Python's
//! `threading.Semaphore` recipe, on plain OS threads.
//!
//! ```text
//! cargo run --release -p weft-examples --bin semaphore_threads
//! ```
//!
//! The Python version:
//!
//! ```text
//! pool = ConnectionPool(size=3)
//! slots = threading.Semaphore(3)
//! def worker(name):
//!     with slots:                      # at most 3 threads past this line
//!         conn = pool.take()           # so a connection is always free
//!         query(conn); pool.give_back(conn)
//! threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
//! ```
//!
//! Eight threads each run two "queries" against a pool of three simulated
//! database connections. A counting semaphore with three permits lets at
//! most three threads use the pool at once, so a thread that gets past the
//! semaphore always finds a free connection; the others sleep in `acquire`
//! until a permit comes back. The program prints who enters and leaves
//! (milliseconds since the start, how many threads are inside), and at the
//! end the most threads it ever saw inside at once: never more than three.
//!
//! The semaphore is not fair: a thread that releases its permit and asks
//! again at once may get it back ahead of threads that were already
//! waiting (the output often shows a client running both queries in a
//! row). Python makes no promise about the order either.
//!
//! These are OS threads, which block, so the semaphore here is a blocking
//! one: a small one built from a `Mutex` and a `Condvar`, so you can see how
//! one works. For async tasks use `weft_sync::Semaphore`, which is FIFO-fair
//! and puts the waiting task, not the thread, to sleep.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Threads competing for the resource.
const THREADS: usize = 8;
/// Connections in the pool, and so permits in the semaphore.
const CONNECTIONS: usize = 3;
/// Queries each thread runs.
const QUERIES_PER_THREAD: usize = 2;

fn main() -> io::Result<()> {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        slots: Semaphore::new(CONNECTIONS),
        connections: Mutex::new((0..CONNECTIONS).collect()),
        inside: AtomicUsize::new(0),
        max_inside: AtomicUsize::new(0),
        start,
    });
    println!(
        "{THREADS} threads, {QUERIES_PER_THREAD} queries each, {CONNECTIONS} connections behind a semaphore({CONNECTIONS})\n"
    );

    let mut threads = Vec::with_capacity(THREADS);
    for id in 0..THREADS {
        let shared = shared.clone();
        let thread = thread::Builder::new()
            .name(format!("client-{id}"))
            .spawn(move || client(id, &shared))?;
        threads.push(thread);
    }
    let mut failures = Vec::new();
    for thread in threads {
        // A client returns an error if it found no free connection; join
        // fails only if it panicked.
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => failures.push(err),
            Err(_) => failures.push("a client thread panicked".to_owned()),
        }
    }

    let max = shared.max_inside.load(Ordering::SeqCst);
    println!(
        "\n{} queries in {:.0?}; at most {max} threads were inside at once (the semaphore allows {CONNECTIONS})",
        THREADS * QUERIES_PER_THREAD,
        start.elapsed()
    );
    if let Some(err) = failures.first() {
        return Err(io::Error::other(format!("{} client(s) failed: {err}", failures.len())));
    }
    if max > CONNECTIONS {
        return Err(io::Error::other(format!("{max} threads were inside at once")));
    }
    Ok(())
}

/// What the threads share: the semaphore, the resource it guards, and
/// counters to check that it guards it.
struct Shared {
    slots: Semaphore,
    /// The resource: ids of the free connections.
    connections: Mutex<Vec<usize>>,
    /// Threads between `acquire` and the permit's release right now.
    inside: AtomicUsize,
    /// The most ever seen in `inside`.
    max_inside: AtomicUsize,
    start: Instant,
}

/// One thread: a few queries, each under a permit.
fn client(id: usize, shared: &Shared) -> Result<(), String> {
    for query in 0..QUERIES_PER_THREAD {
        let ms = || shared.start.elapsed().as_secs_f64() * 1e3;
        // Blocks while three other threads hold the permits.
        let permit = shared.slots.acquire();
        let inside = shared.inside.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_inside.fetch_max(inside, Ordering::SeqCst);

        // Past the semaphore, a connection must be free: there are as many
        // connections as permits.
        let Some(conn) = lock(&shared.connections).pop() else {
            return Err(format!("client {id} got a permit but found no free connection"));
        };
        println!(
            "{:>6.1} ms  client {id} enters, query {query} on connection {conn} ({inside} inside)",
            ms()
        );
        // The "query": a little work of uneven length.
        thread::sleep(Duration::from_millis(10 + 7 * ((id + query) % 4) as u64));
        lock(&shared.connections).push(conn);

        let inside = shared.inside.fetch_sub(1, Ordering::SeqCst) - 1;
        println!("{:>6.1} ms  client {id} leaves ({inside} inside)", ms());
        // Dropping the permit gives it back and wakes one waiting thread
        // (Python's `with slots:` block ending).
        drop(permit);
    }
    Ok(())
}

/// A counting semaphore: `acquire` takes one of `permits`, sleeping while
/// none is left; dropping the [`Permit`] gives it back.
///
/// Here is how a blocking one works (`weft_sync::Semaphore` is the async,
/// FIFO-fair one for tasks). The count lives
/// under a `Mutex`; a `Condvar` is where threads sleep until the count
/// rises above zero. `Condvar::wait` releases the mutex while it sleeps and
/// retakes it before returning, and it may wake spuriously, hence the loop.
struct Semaphore {
    permits: Mutex<usize>,
    released: Condvar,
}

impl Semaphore {
    fn new(permits: usize) -> Semaphore {
        Semaphore {
            permits: Mutex::new(permits),
            released: Condvar::new(),
        }
    }

    /// Takes a permit, blocking this thread until one is free (Python's
    /// `acquire()`, or entering `with sem:`).
    fn acquire(&self) -> Permit<'_> {
        let mut permits = lock(&self.permits);
        while *permits == 0 {
            permits = self.released.wait(permits).unwrap_or_else(PoisonError::into_inner);
        }
        *permits -= 1;
        Permit { semaphore: self }
    }
}

/// A taken permit; dropping it releases it (Python's `release()`, or
/// leaving the `with` block), even if the holder panics.
struct Permit<'a> {
    semaphore: &'a Semaphore,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *lock(&self.semaphore.permits) += 1;
        // One permit came back: one waiter can have it.
        self.semaphore.released.notify_one();
    }
}

/// Locks `mutex`, ignoring poisoning: the data here (a count, a list of
/// ids) stays valid even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
