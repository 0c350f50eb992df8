//! [`Pool`]: Python's `multiprocessing.Pool`, on threads.
//!
//! A fixed set of worker threads takes *jobs* from one FIFO queue. A job is
//! one `apply`, or one *chunk* of a `map`: `chunksize` consecutive items
//! that a worker runs back to back, so a map of a million cheap items costs a
//! few dozen queue operations, not a million. Each item runs under
//! `catch_unwind`: a panic becomes that item's [`PoolError::Panicked`] and
//! the worker goes on with the next item.
//!
//! Results travel back through a *sink* per call (`sink.rs`): a
//! [`Promise`] for `apply_async`; for `map` and `map_async`, one output
//! vector that each chunk writes in place over its own range (`output.rs`),
//! so results are written once and never gathered. A map over a range of
//! integers (`0..n`) is split as ranges that the workers count through,
//! never collected, and a `Vec` in place: each chunk moves its own items
//! out of the vector's buffer and, when the results have the items' size
//! and alignment, writes each result over its item, so the vector comes
//! back as the output (`split.rs`); for `imap` and
//! `imap_unordered`, a buffer that an [`Imap`] (an `Iterator`, for plain
//! threads) or an [`ImapStream`] (a `Stream`, for async code) drains
//! (`imap.rs`). A job dropped unrun (the pool was terminated) tells its sink
//! so, and nobody waits forever.
//!
//! # Rules
//!
//! 1. **Lengths are counted, never believed.** A map's items are cut into
//!    chunks before any job is queued, and the output, the chunk count and
//!    every range come from what the iterator actually yielded. Its
//!    `size_hint` only picks the default chunk size (a guess, capped at
//!    [`MAX_DEFAULT_CHUNK`] items), so an iterator that lies about its
//!    length gets its real items mapped, never uninitialised results, a
//!    write past the output, or a wait for chunks that do not exist. (The
//!    output also checks every range it hands out, in release builds.)
//! 2. **A worker survives its user code.** Every piece of user code a job
//!    runs on a worker, the mapped function and the destructors of items,
//!    results, payloads and the function itself, runs inside an unwind
//!    boundary, and those that run before a job reports (items never run,
//!    results dropped because their chunk failed) are contained one value
//!    at a time, so the job still reports its real outcome. A panic in a
//!    destructor is printed by the panic hook and otherwise ignored; the
//!    worker goes on with the next job, and the pool keeps its size. The
//!    same holds for the jobs `terminate` drops unrun, on its caller's
//!    thread.
//! 3. **A blocking call refuses a runtime thread.** [`apply`](Pool::apply),
//!    [`map`](Pool::map), [`join`](Pool::join) and iterating an [`Imap`]
//!    wait for the workers, which on a thread that runs a Weft runtime (a
//!    worker, or inside `block_on`) would stall every task of that thread.
//!    There they return [`PoolError::WouldBlockRuntime`], which names the
//!    async call to use, before anything else: nothing is queued, and an
//!    `Imap` takes no result (it yields the error once, then ends). They
//!    refuse even when they would not have to wait, so whether async code
//!    works never depends on timing. Dropping a pool on such a thread, or
//!    on one of its own workers (a job that held its last handle),
//!    terminates it without waiting for the items the workers are running.
//!
//! | multiprocessing | Weft, on plain threads (blocks) | Weft, in async code |
//! | --- | --- | --- |
//! | `Pool(processes=n)` | [`Pool::new`]`(n)` | the same |
//! | `apply(f, args)` | [`apply`](Pool::apply) | [`apply_async`](Pool::apply_async)`(f)?.await` |
//! | `apply_async(f, args, callback)` | [`apply_async`](Pool::apply_async) → [`Promise`] (`add_done_callback` is the callback; [`wait`](Promise::wait) is `get`) | the same, awaited |
//! | `map(f, it, chunksize)` | [`map`](Pool::map) | [`map_async`](Pool::map_async)`(f, it, chunksize)?.await` |
//! | `map_async(f, it, chunksize, callback)` | [`map_async`](Pool::map_async) → [`Promise`] | the same, awaited |
//! | `imap(f, it, chunksize)` | [`imap`](Pool::imap) → [`Imap`], an `Iterator` | [`imap_stream`](Pool::imap_stream) → [`ImapStream`], a `Stream` (or [`Imap::into_stream`]) |
//! | `imap_unordered(f, it, chunksize)` | [`imap_unordered`](Pool::imap_unordered) → [`Imap`] | [`imap_unordered_stream`](Pool::imap_unordered_stream) → [`ImapStream`] |
//! | `close()`, `terminate()` | [`close`](Pool::close), [`terminate`](Pool::terminate) | the same |
//! | `join()` | [`join`](Pool::join) | [`join_async`](Pool::join_async)`().await` |
//!
//! ```
//! use weft_executor::pool::{Pool, PoolError};
//!
//! let pool = Pool::new(2)?;
//! let squares = pool.map(|x: u64| x * x, 0..10, None)?;
//! assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//!
//! // A panic is the failing item's error; the pool carries on.
//! let err = pool.map(|x: u32| if x == 3 { panic!("three") } else { x }, 0..5, Some(2)).unwrap_err();
//! assert!(matches!(err, PoolError::Panicked { item: 3, .. }));
//! assert_eq!(pool.apply(|| 6 * 7)?, 42);
//!
//! // In async code, the blocking calls refuse (rule 3); their async
//! // counterparts await the same work.
//! let rt = weft_executor::Executor::new()?;
//! rt.block_on(async {
//!     let refused = pool.map(|x: u64| x * x, 0..10, None).unwrap_err();
//!     assert!(matches!(refused, PoolError::WouldBlockRuntime { call: "Pool::map", .. }));
//!     assert!(refused.to_string().contains("map_async"));
//!
//!     let squares = pool.map_async(|x: u64| x * x, 0..10, None)?.await?;
//!     assert_eq!(squares[9], 81);
//!     let mut lengths = pool.imap_stream(|s: &str| s.len(), ["a", "bb"], None)?;
//!     assert_eq!(lengths.next().await, Some(Ok(1)));
//!     assert_eq!(lengths.next().await, Some(Ok(2)));
//!     assert_eq!(lengths.next().await, None);
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//!
//! pool.close();
//! pool.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod imap;
mod output;
mod sink;
mod split;
#[cfg(all(test, not(loom)))]
mod tests;

pub use imap::{Imap, ImapStream};

use crate::context;
use crate::future::{Exception, Promise, Resolver};
use crate::loom::{Condvar, Mutex, lock, wait};
use sink::{Collect, Completion, CompletionSender, ImapSink};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::thread;

/// Why a pool call gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// The pool was closed or terminated before the call: it takes no new
    /// work (Python's "Pool not running").
    Closed,
    /// `join` was called while the pool still accepts work; call `close` or
    /// `terminate` first.
    Running,
    /// The pool was terminated before this item ran.
    Terminated,
    /// The item at index `item` (0 for `apply`) panicked with `message`.
    Panicked {
        /// Index of the item in the input.
        item: usize,
        /// The panic message.
        message: String,
    },
    /// An argument was out of range (a zero pool size or chunk size).
    InvalidArgument(&'static str),
    /// A call that blocks until the workers are done was made on a thread
    /// that runs a Weft runtime, whose tasks it would stall; it did nothing
    /// (rule 3 of the [module docs](self)). Use its async counterpart
    /// there, or make the call from a plain thread or `spawn_blocking`.
    WouldBlockRuntime {
        /// The call refused: `"Pool::apply"`, `"Pool::map"`,
        /// `"Pool::join"` or `"Imap::next"`.
        call: &'static str,
        /// What to write in async code instead, such as
        /// `"pool.map_async(..).await"`.
        instead: &'static str,
    },
    /// [`join`](Pool::join) was called from one of the pool's own jobs:
    /// that worker would wait for itself to exit. It did nothing; join
    /// from outside the pool.
    JoinFromOwnWorker,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Closed => f.write_str("the pool is closed and takes no new work"),
            PoolError::Running => f.write_str("join() needs a closed or terminated pool: call close() first"),
            PoolError::Terminated => f.write_str("the pool was terminated before this item ran"),
            PoolError::Panicked { item, message } => write!(f, "item {item} panicked: {message}"),
            PoolError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            PoolError::WouldBlockRuntime { call, instead } => write!(
                f,
                "`{call}` would block this thread, which runs a Weft runtime, and stall its tasks: in async \
                 code write `{instead}`, or call `{call}` from a plain thread or `spawn_blocking`"
            ),
            PoolError::JoinFromOwnWorker => f.write_str(
                "Pool::join was called from one of the pool's own jobs, which would wait for itself to exit: \
                 join from a thread outside the pool",
            ),
        }
    }
}

impl std::error::Error for PoolError {}

impl From<PoolError> for io::Error {
    fn from(err: PoolError) -> io::Error {
        let kind = match err {
            PoolError::InvalidArgument(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

/// A pool of worker threads for CPU work: Python's `multiprocessing.Pool`
/// with threads instead of processes (no pickling: closures and values move
/// by ownership). See the [module docs](self) for the mapping.
///
/// Blocking calls ([`apply`](Pool::apply), [`map`](Pool::map),
/// [`join`](Pool::join), iterating an [`Imap`]) are for plain threads (and
/// `spawn_blocking`); on a thread that runs a Weft runtime they return
/// [`PoolError::WouldBlockRuntime`] and do nothing. From async code use the
/// `_async` methods, whose [`Promise`]s are awaitable, and an
/// [`ImapStream`] (the module docs' table pairs them).
///
/// Dropping the pool terminates it (as leaving Python's `with Pool()` block
/// does) and waits for the workers to finish their current item; on a
/// thread that runs a Weft runtime it does not wait (rule 3): the workers
/// finish that item and exit on their own.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
    size: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the pool stops.
    available: Condvar,
    /// Set by `terminate`: chunks stop between items.
    terminated: AtomicBool,
    /// Workers running a job right now.
    busy: AtomicUsize,
    /// Worker threads that have not yet left `worker_loop`.
    live_workers: AtomicUsize,
    /// Settles `exited` when the last worker leaves (taken then).
    last_out: Mutex<Option<Resolver<()>>>,
    /// Done once every worker has left `worker_loop`: what
    /// [`Pool::join_async`] awaits.
    exited: Promise<()>,
}

impl Shared {
    /// `n` workers have left `worker_loop` (or never started); the last one
    /// out settles `exited`.
    fn workers_exited(&self, n: usize) {
        if n > 0 && self.live_workers.fetch_sub(n, AcqRel) == n {
            if let Some(last_out) = lock(&self.last_out).take() {
                // An awaiter's waker that panics goes no further (rule 2).
                contain(move || {
                    let _ = last_out.set_result(());
                });
            }
        }
    }
}

/// Counts its worker out of `live_workers` when the thread leaves
/// `worker_loop`, however it leaves.
struct WorkerExit<'a>(&'a Shared);

impl Drop for WorkerExit<'_> {
    fn drop(&mut self) {
        self.0.workers_exited(1);
    }
}

struct Queue {
    jobs: VecDeque<Box<dyn Job>>,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Closed,
    Terminated,
}

/// One unit of pool work. Dropping it unrun must tell its sink.
trait Job: Send {
    fn run(self: Box<Self>, shared: &Shared);
}

impl Pool {
    /// A pool of `workers` threads (named `weft-pool-{i}`).
    ///
    /// # Errors
    ///
    /// [`PoolError::InvalidArgument`] for zero workers (as an
    /// `InvalidInput` I/O error), or the operating system's error if a thread
    /// cannot start.
    pub fn new(workers: usize) -> io::Result<Pool> {
        if workers == 0 {
            return Err(PoolError::InvalidArgument("a pool needs at least one worker").into());
        }
        let (last_out, exited) = Promise::channel();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                state: State::Running,
            }),
            available: Condvar::new(),
            terminated: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            live_workers: AtomicUsize::new(workers),
            last_out: Mutex::new(Some(last_out)),
            exited,
        });
        let pool = Pool {
            shared: shared.clone(),
            threads: Mutex::new(Vec::with_capacity(workers)),
            size: workers,
        };
        // The threads report to the subscriber of the thread that creates
        // the pool (see `crate::trace`).
        let dispatch = crate::trace::ThreadDispatch::capture();
        for i in 0..workers {
            let shared = shared.clone();
            let dispatch = dispatch.clone();
            let spawned = thread::Builder::new().name(format!("weft-pool-{i}")).spawn(move || {
                let _dispatch = dispatch.enter();
                let _exit = WorkerExit(&shared);
                worker_loop(&shared);
            });
            match spawned {
                Ok(thread) => lock(&pool.threads).push(thread),
                Err(err) => {
                    // The workers not started never leave: count them out.
                    // Dropping `pool` terminates and joins those started.
                    pool.shared.workers_exited(workers - i);
                    return Err(err);
                }
            }
        }
        Ok(pool)
    }

    /// A pool with one worker per CPU (Python's `Pool()`).
    ///
    /// # Errors
    ///
    /// If a thread cannot start.
    pub fn with_cpus() -> io::Result<Pool> {
        Pool::new(thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The number of worker threads.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Jobs (applies and map chunks) waiting for a worker.
    pub fn queued_jobs(&self) -> usize {
        lock(&self.shared.queue).jobs.len()
    }

    /// Workers running a job right now.
    pub fn busy_workers(&self) -> usize {
        self.shared.busy.load(Relaxed)
    }

    fn submit(&self, jobs: Vec<Box<dyn Job>>) -> Result<(), PoolError> {
        let mut queue = lock(&self.shared.queue);
        if queue.state != State::Running {
            return Err(PoolError::Closed);
        }
        let n = jobs.len();
        queue.jobs.extend(jobs);
        drop(queue);
        if n == 1 {
            self.shared.available.notify_one();
        } else {
            self.shared.available.notify_all();
        }
        Ok(())
    }

    /// Runs `f` on a worker and waits for its result (Python's `apply`).
    ///
    /// # Errors
    ///
    /// [`PoolError::Panicked`] if `f` panicked; [`PoolError::Closed`] or
    /// [`PoolError::Terminated`] if the pool stopped first;
    /// [`PoolError::WouldBlockRuntime`], with nothing queued, on a thread
    /// that runs a Weft runtime: use [`apply_async`](Self::apply_async)
    /// and await it there.
    pub fn apply<F, R>(&self, f: F) -> Result<R, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        may_block("Pool::apply", "pool.apply_async(..).await")?;
        let done = Arc::new(Completion::new());
        let sender = CompletionSender(done.clone());
        self.submit(vec![Box::new(ApplyJob {
            f: Some(f),
            deliver: Some(move |r: Result<R, PoolError>| sender.send(r)),
        })])?;
        done.wait()
    }

    /// Runs `f` on a worker and returns a [`Promise`] of its result (Python's
    /// `apply_async`; its `callback` is
    /// [`add_done_callback`](Promise::add_done_callback)). A panic fails the
    /// promise with an exception that [`is_panic`](Exception::is_panic); a
    /// terminated pool cancels it.
    ///
    /// # Errors
    ///
    /// [`PoolError::Closed`] if the pool takes no new work.
    pub fn apply_async<F, R>(&self, f: F) -> Result<Promise<R>, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + Sync + 'static,
    {
        let (resolver, promise) = Promise::channel();
        self.submit(vec![Box::new(ApplyJob {
            f: Some(f),
            deliver: Some(move |r: Result<R, PoolError>| {
                let _ = match r {
                    Ok(value) => resolver.set_result(value).map_err(drop),
                    Err(PoolError::Panicked { message, .. }) => resolver
                        .set_exception(Exception::from_panic(&message as &(dyn std::any::Any + Send)))
                        .map_err(drop),
                    // Terminated: dropping the resolver cancels the promise.
                    Err(_) => Ok(()),
                };
            }),
        })])?;
        Ok(promise)
    }

    /// Applies `f` to every item on the workers and returns the results in
    /// input order (Python's `map`). Items go to workers in chunks of
    /// `chunksize`; `None` picks Python's default, about four chunks per
    /// worker (at most [`MAX_DEFAULT_CHUNK`] items each). The items are
    /// counted as they come: a `size_hint` only guides the default. An
    /// integer range and a `Vec` are split without copying their items;
    /// a `Vec` mapped to results of its items' size and alignment (not
    /// zero-sized) gets them written over its items and returned in its own
    /// allocation, capacity kept, as `vec.into_iter().map(f).collect()`
    /// does: such a map allocates no output.
    ///
    /// # Errors
    ///
    /// The error of the first failing item by index
    /// ([`PoolError::Panicked`]; its chunk stops there, the other chunks
    /// still run); `Closed`, `Terminated`, or `InvalidArgument` for a zero
    /// chunk size; [`PoolError::WouldBlockRuntime`], with nothing queued, on
    /// a thread that runs a Weft runtime: use [`map_async`](Self::map_async)
    /// there.
    pub fn map<F, T, R, I>(&self, f: F, items: I, chunksize: Option<usize>) -> Result<Vec<R>, PoolError>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
    {
        may_block("Pool::map", "pool.map_async(..).await")?;
        let done = Arc::new(Completion::new());
        let sender = CompletionSender(done.clone());
        self.submit_map(f, items, chunksize, move |r| sender.send(r))?;
        done.wait()
    }

    /// Like [`map`](Self::map), but returns at once with a [`Promise`] of the
    /// results (Python's `map_async`; its `callback` is
    /// [`add_done_callback`](Promise::add_done_callback)). Await the
    /// promise, or borrow the results with
    /// [`settled`](Promise::settled) to avoid cloning them.
    ///
    /// # Errors
    ///
    /// `Closed`, or `InvalidArgument` for a zero chunk size; item failures
    /// fail the promise with the [`PoolError`] as its exception.
    pub fn map_async<F, T, R, I>(&self, f: F, items: I, chunksize: Option<usize>) -> Result<Promise<Vec<R>>, PoolError>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + Sync + 'static,
    {
        let (resolver, promise) = Promise::channel();
        self.submit_map(f, items, chunksize, move |r| match r {
            Ok(values) => {
                // Cancelled meanwhile: nobody takes the results, which are
                // dropped here, on the worker (rule 2).
                if let Err(values) = resolver.set_result(values) {
                    drop_each_contained(values);
                }
            }
            Err(PoolError::Terminated) => {} // the resolver cancels on drop
            Err(err) => {
                let _ = resolver.set_exception(err);
            }
        })?;
        Ok(promise)
    }

    fn submit_map<F, T, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
        finish: impl FnOnce(Result<Vec<R>, PoolError>) + Send + 'static,
    ) -> Result<(), PoolError>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
    {
        if lock(&self.shared.queue).state != State::Running {
            return Err(PoolError::Closed);
        }
        // A range of integers is split as ranges, never collected.
        let (f, items, finish) = match self.map_split(f, items, chunksize, finish) {
            Ok(queued) => return queued,
            Err(not_a_range) => not_a_range,
        };
        // A `Vec` is split in place: each chunk moves its own items out.
        let (f, items, finish) = match self.map_vec(f, items, chunksize, finish) {
            Ok(queued) => return queued,
            Err(not_a_vec) => not_a_vec,
        };
        let cut = self.chunk(items, chunksize)?;
        if cut.chunks.is_empty() {
            finish(Ok(Vec::new()));
            return Ok(());
        }
        // Rule 1: sized by what was counted.
        let sink = Arc::new(Collect::new(cut.len, cut.chunks.len(), finish));
        self.submit_chunks(f, cut.chunks, &sink)
    }

    /// Applies `f` to every item and yields the results lazily, in input
    /// order, as they become available (Python's `imap`). Each item is a
    /// `Result`, so a panic fails only its own item. Items go to workers in
    /// chunks of `chunksize` (`None`: 1, as in Python).
    ///
    /// The [`Imap`] is an `Iterator` that blocks, for plain threads; in
    /// async code use [`imap_stream`](Self::imap_stream), or
    /// [`Imap::into_stream`].
    ///
    /// # Errors
    ///
    /// `Closed`, or `InvalidArgument` for a zero chunk size.
    pub fn imap<F, T, R, I>(&self, f: F, items: I, chunksize: Option<usize>) -> Result<Imap<R>, PoolError>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
    {
        self.imap_inner(f, items, chunksize, true)
    }

    /// [`imap`](Self::imap) for async code: the same results, in input
    /// order, as an [`ImapStream`] (`stream.next().await`).
    ///
    /// # Errors
    ///
    /// `Closed`, or `InvalidArgument` for a zero chunk size.
    pub fn imap_stream<F, T, R, I>(&self, f: F, items: I, chunksize: Option<usize>) -> Result<ImapStream<R>, PoolError>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
    {
        Ok(self.imap_inner(f, items, chunksize, true)?.into_stream())
    }

    /// Like [`imap`](Self::imap), but yields results as chunks finish, in
    /// any order (Python's `imap_unordered`). A failed item's
    /// [`PoolError::Panicked`] names its input index.
    ///
    /// # Errors
    ///
    /// `Closed`, or `InvalidArgument` for a zero chunk size.
    pub fn imap_unordered<F, T, R, I>(&self, f: F, items: I, chunksize: Option<usize>) -> Result<Imap<R>, PoolError>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
    {
        self.imap_inner(f, items, chunksize, false)
    }

    /// [`imap_unordered`](Self::imap_unordered) for async code: the same
    /// results, in completion order, as an [`ImapStream`].
    ///
    /// # Errors
    ///
    /// `Closed`, or `InvalidArgument` for a zero chunk size.
    pub fn imap_unordered_stream<F, T, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<ImapStream<R>, PoolError>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
    {
        Ok(self.imap_inner(f, items, chunksize, false)?.into_stream())
    }

    fn imap_inner<F, T, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
        ordered: bool,
    ) -> Result<Imap<R>, PoolError>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
    {
        // Explicit chunk size 1 by default, as Python's imap.
        let cut = self.chunk(items, Some(chunksize.unwrap_or(1)))?;
        // Rule 1: as many chunks as were cut.
        let sink = Arc::new(ImapSink::new(cut.chunks.len(), ordered));
        self.submit_chunks(f, cut.chunks, &sink)?;
        Ok(Imap::new(sink))
    }

    /// Python's default chunk size for `len` items: about four chunks per
    /// worker, at most [`MAX_DEFAULT_CHUNK`] items each.
    fn default_chunksize(&self, len: usize) -> usize {
        len.div_ceil(self.size * 4).clamp(1, MAX_DEFAULT_CHUNK)
    }

    /// Cuts `items` into chunks of `chunksize` (Python's default, about
    /// four per worker, when `None`), counting what the iterator yields
    /// (rule 1). An iterator that claims an exact length is cut as it
    /// goes, with that claim picking the default size; any other is
    /// collected first to count it.
    fn chunk<T, I>(&self, items: I, chunksize: Option<usize>) -> Result<Cut<T>, PoolError>
    where
        I: IntoIterator<Item = T>,
    {
        if chunksize == Some(0) {
            return Err(PoolError::InvalidArgument("chunksize must be at least 1"));
        }
        let mut items = items.into_iter();
        let default_size = |len: usize| self.default_chunksize(len);
        match (chunksize, items.size_hint()) {
            (Some(size), _) => Ok(Cut::new(items, size)),
            (None, (lower, Some(upper))) if lower == upper => Ok(Cut::new(items, default_size(lower))),
            (None, (lower, _)) => {
                // Pushed one by one: a lower bound that lies cannot make
                // this reserve more than a chunk's worth.
                let mut all = Vec::with_capacity(lower.min(MAX_DEFAULT_CHUNK));
                for item in items.by_ref() {
                    all.push(item);
                }
                let size = default_size(all.len());
                Ok(Cut::new(all.into_iter(), size))
            }
        }
    }

    /// Makes every chunk's job and queues them all in one go. (On a machine
    /// with as many workers as cores, cutting while the workers compute
    /// only adds a thread competing for the cores: measured slower.)
    fn submit_chunks<F, T, S, C>(&self, f: F, chunks: Vec<(usize, C)>, sink: &Arc<S>) -> Result<(), PoolError>
    where
        S: ChunkSink,
        C: ChunkItems<Item = T>,
        Chunk<F, T, S, C>: Job + 'static,
    {
        let f = Arc::new(f);
        let jobs: Vec<Box<dyn Job>> = chunks
            .into_iter()
            .enumerate()
            .map(|(chunk, (first, items))| {
                Box::new(Chunk {
                    f: f.clone(),
                    chunk,
                    first,
                    items: Some(items),
                    sink: sink.clone(),
                }) as Box<dyn Job>
            })
            .collect();
        // The jobs hold every reference from here, so the function is
        // dropped with the last job: on a worker, contained (rule 2).
        drop(f);
        // Refused (closed): the jobs are dropped, which settles their sink as
        // terminated, and the caller gets `Closed`.
        self.submit(jobs)
    }

    /// Stops taking new work; the workers exit once the queue is empty
    /// (Python's `close`).
    pub fn close(&self) {
        let mut queue = lock(&self.shared.queue);
        if queue.state == State::Running {
            queue.state = State::Closed;
        }
        drop(queue);
        self.shared.available.notify_all();
    }

    /// Stops now: queued jobs are dropped (their promises cancelled, their
    /// items reported [`Terminated`](PoolError::Terminated)) and running
    /// chunks stop within a few hundred items (they look at the flag every
    /// 256 items, which keeps the per-item loop tight). Python's
    /// `terminate` kills processes; threads cannot be killed mid-item. Call [`join`](Self::join) to wait for the
    /// workers.
    pub fn terminate(&self) {
        self.shared.terminated.store(true, Release);
        let dropped = {
            let mut queue = lock(&self.shared.queue);
            queue.state = State::Terminated;
            std::mem::take(&mut queue.jobs)
        };
        self.shared.available.notify_all();
        // Outside the lock: dropping a job settles its sink, which may run
        // inline callbacks. Each job's user drops are contained (rule 2), so
        // a destructor that panics cannot stop the rest or `Drop for Pool`.
        drop_each_contained(dropped);
    }

    /// Waits for every worker to exit (Python's `join`).
    ///
    /// # Errors
    ///
    /// [`PoolError::Running`] if the pool was neither closed nor terminated:
    /// the workers would never exit. [`PoolError::WouldBlockRuntime`] on a
    /// thread that runs a Weft runtime: use
    /// [`join_async`](Self::join_async) there.
    /// [`PoolError::JoinFromOwnWorker`] from one of the pool's own jobs.
    pub fn join(&self) -> Result<(), PoolError> {
        may_block("Pool::join", "pool.join_async().await")?;
        if self.is_own_worker() {
            return Err(PoolError::JoinFromOwnWorker);
        }
        if lock(&self.shared.queue).state == State::Running {
            return Err(PoolError::Running);
        }
        self.join_threads();
        Ok(())
    }

    /// True on one of this pool's worker threads.
    fn is_own_worker(&self) -> bool {
        let me = thread::current().id();
        lock(&self.threads).iter().any(|worker| worker.thread().id() == me)
    }

    /// Joins the worker threads not joined yet.
    fn join_threads(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            // A panic cannot end a worker (rule 2: every job runs inside an
            // unwind boundary), so this only waits for it to return.
            let _ = thread.join();
        }
    }

    /// Waits, without blocking the thread, until every worker has left
    /// its loop: [`join`](Self::join) for async code. The threads' last
    /// exit is reaped by a later `join` or by dropping the pool.
    ///
    /// # Errors
    ///
    /// [`PoolError::Running`] if the pool was neither closed nor terminated:
    /// the workers would never exit.
    pub async fn join_async(&self) -> Result<(), PoolError> {
        if lock(&self.shared.queue).state == State::Running {
            return Err(PoolError::Running);
        }
        // `settled` observes without cancelling, and the promise can only
        // settle as done: its resolver lives in `Shared` until the last
        // worker out settles it.
        let _ = self.shared.exited.settled().await;
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
        // Rule 3: a runtime's thread does not wait for the items the
        // workers are running; they finish them and exit on their own
        // (their handles are dropped, which detaches them). Nor does one of
        // the pool's own workers (a job held the last handle): it cannot
        // wait for itself to exit.
        if !context::is_entered() && !self.is_own_worker() {
            self.join_threads();
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .field("queued_jobs", &self.queued_jobs())
            .field("busy_workers", &self.busy_workers())
            .finish()
    }
}

/// Rule 3: `call` would block, so it is refused on a thread that runs a
/// Weft runtime, in favour of `instead`.
fn may_block(call: &'static str, instead: &'static str) -> Result<(), PoolError> {
    if context::is_entered() {
        return Err(PoolError::WouldBlockRuntime { call, instead });
    }
    Ok(())
}

/// The most items a default-sized chunk holds (rule 1): also the most that
/// an iterator's claimed length can make the pool reserve at once.
pub const MAX_DEFAULT_CHUNK: usize = 1 << 20;

/// A map's items, cut into `(index of first item, items)` chunks, and how
/// many there were: counted as they came (rule 1).
struct Cut<T> {
    chunks: Vec<(usize, Vec<T>)>,
    len: usize,
}

impl<T> Cut<T> {
    fn new(mut items: impl Iterator<Item = T>, size: usize) -> Cut<T> {
        let mut chunks = Vec::new();
        let mut len = 0;
        loop {
            // A `Range` fills the vector without a per-item check. Any
            // reservation is bounded by `size` (`take` caps the hint).
            let chunk: Vec<T> = items.by_ref().take(size).collect();
            if chunk.is_empty() {
                return Cut { chunks, len };
            }
            let first = len;
            len += chunk.len();
            chunks.push((first, chunk));
        }
    }
}

fn worker_loop(shared: &Shared) {
    loop {
        let job = {
            let mut queue = lock(&shared.queue);
            loop {
                if queue.state == State::Terminated {
                    return;
                }
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.state == State::Closed {
                    return;
                }
                queue = wait(&shared.available, queue);
            }
        };
        shared.busy.fetch_add(1, Relaxed);
        // Rule 2: the job contains its user code where it runs, so that it
        // reports; this boundary catches what is left (the last drop of the
        // mapped function or of a sink), so no panic ends a worker.
        contain(move || job.run(shared));
        shared.busy.fetch_sub(1, Relaxed);
    }
}

/// Runs one item, turning a panic into its error.
fn run_item<R>(item: usize, f: impl FnOnce() -> R) -> Result<R, PoolError> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panicked(item, payload))
}

/// The error of item `item`, whose panic left `payload`.
pub(super) fn panicked(item: usize, payload: Box<dyn std::any::Any + Send>) -> PoolError {
    let message = Exception::from_panic(&*payload).to_string();
    let message = message.strip_prefix("panicked: ").unwrap_or(&message).to_owned();
    drop_contained(payload);
    PoolError::Panicked { item, message }
}

/// Drops `value` inside an unwind boundary (rule 2): a destructor that
/// panics is reported by the panic hook and goes no further. (A panic
/// payload whose own destructor panics is leaked.)
pub(super) fn drop_contained<T>(value: T) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
        if let Err(inner) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(inner);
        }
    }
}

/// Runs `f` inside an unwind boundary (rule 2), ignoring a panic.
pub(super) fn contain(f: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
        drop_contained(payload);
    }
}

/// Drops every value of `values` on its own, each inside an unwind
/// boundary: two destructors that panic cannot abort the process (as they
/// would inside one `Vec` drop) nor stop the rest from dropping.
pub(super) fn drop_each_contained<T>(values: impl IntoIterator<Item = T>) {
    for value in values {
        drop_contained(value);
    }
}

/// `apply` and `apply_async`: one closure.
struct ApplyJob<F, D> {
    f: Option<F>,
    deliver: Option<D>,
}

impl<F, R, D> Job for ApplyJob<F, D>
where
    F: FnOnce() -> R + Send,
    D: FnOnce(Result<R, PoolError>) + Send,
{
    fn run(mut self: Box<Self>, _shared: &Shared) {
        let (Some(f), Some(deliver)) = (self.f.take(), self.deliver.take()) else {
            return;
        };
        let result = run_item(0, f);
        // The deliverer may run user callbacks inline.
        let _ = panic::catch_unwind(AssertUnwindSafe(move || deliver(result)));
    }
}

impl<F, D> Drop for ApplyJob<F, D> {
    fn drop(&mut self) {
        // Dropped unrun (terminated): the deliverer's drop settles the call
        // (a `Completion` or a `Resolver` reports it as terminated or
        // cancelled).
        self.deliver.take();
    }
}

/// Items a chunk runs between two looks at the terminate flag.
pub(super) const TERMINATE_CHECK: usize = 256;

/// Runs `f` on `items` in order, handing each result to `out`, until the
/// items run out (`None`), the pool is terminated, or an item panics (its
/// error; the items after it stay in `items`). `ran` counts the items taken
/// so far, across calls, so an error can name its item.
///
/// One `catch_unwind` covers a whole run of items, and the terminate flag is
/// read every [`TERMINATE_CHECK`] items, so the per-item loop stays tight.
fn run_items<T, R>(
    items: &mut impl Iterator<Item = T>,
    first: usize,
    ran: &mut usize,
    f: &impl Fn(T) -> R,
    terminated: &AtomicBool,
    mut out: impl FnMut(R),
) -> Option<PoolError> {
    let run = panic::catch_unwind(AssertUnwindSafe(|| {
        loop {
            if terminated.load(Relaxed) {
                return Some(PoolError::Terminated);
            }
            let mut block = 0;
            for item in items.by_ref().take(TERMINATE_CHECK) {
                *ran += 1;
                out(f(item));
                block += 1;
            }
            if block < TERMINATE_CHECK {
                return None;
            }
        }
    }));
    match run {
        Ok(end) => end,
        // The item that panicked was the last one taken.
        Err(payload) => Some(panicked(first + *ran - 1, payload)),
    }
}

/// One chunk of a map: `chunksize` consecutive items and where their
/// results go. For `map` (`S` = [`Collect`]) the results are written
/// straight into the map's output vector and the first failure ends the
/// chunk; for `imap` (`S` = [`ImapSink`]) every item gets its own result.
struct Chunk<F, T, S: ChunkSink, C: ChunkItems<Item = T> = Vec<T>> {
    f: Arc<F>,
    chunk: usize,
    first: usize,
    /// Taken when the chunk runs; still here if it is dropped unrun.
    items: Option<C>,
    sink: Arc<S>,
}

/// A chunk's items: a `Vec` collected on the caller's thread, or a range of
/// a `Vec` split in place (`split::VecRange`).
trait ChunkItems: IntoIterator {
    fn len(&self) -> usize;
}

impl<T> ChunkItems for Vec<T> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// What a chunk's sink hears when the chunk is dropped unrun (the pool was
/// terminated).
trait ChunkSink {
    fn unrun(&self, chunk: usize, first: usize, len: usize);
}

impl<R: Send> ChunkSink for Collect<R> {
    fn unrun(&self, chunk: usize, first: usize, len: usize) {
        self.report(chunk, first, len, Err(PoolError::Terminated));
    }
}

impl<R: Send> ChunkSink for ImapSink<R> {
    fn unrun(&self, chunk: usize, _first: usize, len: usize) {
        self.dropped(chunk, len);
    }
}

impl<F, T, S: ChunkSink, C: ChunkItems<Item = T>> Drop for Chunk<F, T, S, C> {
    fn drop(&mut self) {
        if let Some(items) = self.items.take() {
            let len = items.len();
            // Rule 2, also on the thread that terminates: one at a time, so
            // two destructors that panic cannot abort the process. Before
            // the report: the last one ends the map, and its caller may
            // count on what the items held being released.
            drop_each_contained(items);
            self.sink.unrun(self.chunk, self.first, len);
        }
    }
}

impl<F, T, R, C> Job for Chunk<F, T, Collect<R>, C>
where
    F: Fn(T) -> R + Send + Sync,
    T: Send,
    R: Send,
    C: ChunkItems<Item = T> + Send,
{
    fn run(mut self: Box<Self>, shared: &Shared) {
        let Some(items) = self.items.take() else { return };
        let len = items.len();
        // SAFETY: `items` was taken once, so this is the chunk's only
        // writer, over its own range.
        let mut writer = unsafe { self.sink.writer(self.first, len) };
        let mut items = items.into_iter();
        let mut ran = 0;
        let failure = run_items(
            &mut items,
            self.first,
            &mut ran,
            &*self.f,
            &shared.terminated,
            |value| writer.push(value),
        );
        // Rule 2: items an error or terminate left unrun.
        drop_each_contained(items);
        // The writer must be gone before the report: the last report hands
        // the buffer on.
        let outcome = match failure {
            None => {
                if writer.finish() {
                    Ok(())
                } else {
                    Err(PoolError::Terminated)
                }
            }
            Some(err) => {
                // Drops the results it holds, one at a time (rule 2).
                drop(writer);
                Err(err)
            }
        };
        self.sink.report(self.chunk, self.first, len, outcome);
    }
}

impl<F, T, R> Job for Chunk<F, T, ImapSink<R>>
where
    F: Fn(T) -> R + Send + Sync,
    T: Send,
    R: Send,
{
    fn run(mut self: Box<Self>, shared: &Shared) {
        let Some(items) = self.items.take() else { return };
        let mut results: Vec<Result<R, PoolError>> = Vec::with_capacity(items.len());
        let mut items = items.into_iter();
        let mut ran = 0;
        loop {
            let failure = run_items(
                &mut items,
                self.first,
                &mut ran,
                &*self.f,
                &shared.terminated,
                |value| results.push(Ok(value)),
            );
            match failure {
                None => break,
                Some(PoolError::Terminated) => {
                    // Every item not run is reported, then dropped (rule 2).
                    results.extend((0..items.len()).map(|_| Err(PoolError::Terminated)));
                    drop_each_contained(items.by_ref());
                    break;
                }
                Some(err) => results.push(Err(err)),
            }
        }
        self.sink.items_done(self.chunk, results);
    }
}
