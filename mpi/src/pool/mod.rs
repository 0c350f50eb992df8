//! [`MpiPool`]: a pool of worker ranks running typed jobs, the role of
//! mpi4py's `MPIPoolExecutor` (and `multiprocessing.Pool`'s API).
//!
//! ```no_run
//! use weft_mpi::{Mpi, pool::{MpiPool, Registry}};
//!
//! let mpi = Mpi::init()?;
//! let rt = weft::Runtime::new().unwrap();
//! rt.block_on(async {
//!     // Every rank registers the same functions, getting typed handles.
//!     let mut registry = Registry::new();
//!     let square = registry.register("square", |x: u64| x * x);
//!     // Rank 0 gets the pool; worker ranks serve jobs until it is dropped
//!     // or shut down, then get `None`.
//!     if let Some(pool) = MpiPool::start(&mpi.world(), registry).await? {
//!         let squares: Vec<u64> = pool.map(&square, 0..100u64).await?;
//!         assert_eq!(squares[9], 81);
//!         let one = pool.submit(&square, 12); // posted now: a Promise
//!         assert_eq!(one.await.unwrap(), 144);
//!     } // dropping the pool releases the workers
//!     Ok::<(), weft_mpi::pool::PoolError>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it works
//!
//! 1. **Its own communicator.** [`MpiPool::start`] duplicates the
//!    communicator it is given, so pool traffic never meets the
//!    application's messages, and rank 0's [`PoolOptions`] reach every
//!    worker in the same collective step.
//! 2. **Rank 0 dispatches, the others serve.** A job is a chunk of
//!    arguments for one function. Rank 0 keeps at most
//!    `jobs_per_worker + 1` chunks at each worker (by default one running,
//!    one waiting, so a worker never idles while its next chunk is on the
//!    wire) and hands the next queued chunk to whichever worker answers
//!    first; a worker runs at most `jobs_per_worker` chunks at once, each on
//!    a blocking thread, so its loop stays free, and sends each chunk's
//!    results back in one message (`dispatch.rs`, `worker.rs`).
//! 3. **A dead worker fails its jobs, never hangs the pool.** MPI (Open MPI
//!    4.1) gives no way to learn that a rank died; the job's death notice
//!    (`liveness.rs`, on unless [`MpiBuilder::death_notice`] turned it off)
//!    does. Rank 0 then fails that worker's chunks in flight with
//!    [`PoolError::WorkerDied`] and stops sending it work. (Launch with
//!    `mpirun --mca orte_abort_on_non_zero_status 0` so that `mpirun` does
//!    not kill rank 0 along with the dead rank.)
//! 4. **The pool has a lifecycle.** Dropping it (a `?` that leaves rank 0's
//!    scope, a panic unwinding) releases every worker as
//!    [`shutdown`](MpiPool::shutdown) does, without waiting: queued and
//!    running jobs fail with [`PoolError::Shutdown`], the workers finish
//!    what they run and return from `start`, and every rank can finalize.
//!    This is mpi4py.futures' `with MPIPoolExecutor() as pool:`.
//! 5. **With no worker ranks** (a singleton), rank 0 runs the jobs itself,
//!    on blocking threads; dropping the pool fails them with
//!    [`PoolError::Shutdown`] as rule 4 says (their threads finish, their
//!    results go nowhere).
//!
//! A job that panics fails its item with [`PoolError::Job`] carrying the
//! panic's message; the process's panic hook still prints the panic where
//! the job ran, as for any caught panic.
//!
//! [`MpiBuilder::death_notice`]: crate::MpiBuilder::death_notice

mod dispatch;
mod registry;
mod worker;

pub use registry::{Job, Registry};

use self::dispatch::{ChunkOutcome, Dispatch};
use crate::comm::Communicator;
use crate::error::Error;
use crate::loom::lock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::{Arc, Mutex};
use weft_executor::future::{AsCompleted, Promise};

const TAG_JOB: i32 = 1;
const TAG_RESULT: i32 = 2;
const TAG_STOP: i32 = 3;

/// How the pool runs jobs (rank 0's choice reaches every worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolOptions {
    /// Chunks one worker runs at once (default 1, like a process of
    /// `multiprocessing.Pool`); one more waits there so it never idles.
    pub jobs_per_worker: usize,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions { jobs_per_worker: 1 }
    }
}

/// Why a pool job failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// MPI failed.
    Mpi(Error),
    /// The worker rank running the job died before answering.
    WorkerDied(i32),
    /// The function panicked, returned an `Err` (registered with
    /// [`Registry::register_fallible`]), is not registered (with these
    /// types) on the worker, or its argument or result did not
    /// (de)serialise; the text says which.
    Job(String),
    /// The pool was shut down or dropped with the job queued or running.
    Shutdown,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Mpi(err) => write!(f, "MPI failed: {err}"),
            PoolError::WorkerDied(rank) => write!(f, "worker rank {rank} died with the job in flight"),
            PoolError::Job(why) => write!(f, "the job failed: {why}"),
            PoolError::Shutdown => f.write_str("the pool shut down before the job finished"),
        }
    }
}

impl std::error::Error for PoolError {}

impl From<Error> for PoolError {
    fn from(err: Error) -> PoolError {
        PoolError::Mpi(err)
    }
}

/// A `map` in which some items failed: every item's outcome, in argument
/// order, so the results of the others stay available.
#[derive(Debug, Clone)]
pub struct MapError<R> {
    results: Vec<Result<R, PoolError>>,
}

impl<R> MapError<R> {
    /// The items that failed: their index and error.
    pub fn failed(&self) -> impl Iterator<Item = (usize, &PoolError)> + '_ {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
    }

    /// Every item's outcome, in argument order.
    pub fn into_results(self) -> Vec<Result<R, PoolError>> {
        self.results
    }
}

impl<R> fmt::Display for MapError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed: Vec<(usize, &PoolError)> = self.failed().collect();
        write!(f, "{} of {} items failed", failed.len(), self.results.len())?;
        if let Some((i, err)) = failed.first() {
            write!(f, "; item {i}: {err}")?;
        }
        Ok(())
    }
}

impl<R: fmt::Debug> std::error::Error for MapError<R> {}

impl<R> From<MapError<R>> for PoolError {
    /// The first failed item's error (for `?` in code that wants one).
    fn from(err: MapError<R>) -> PoolError {
        err.failed().next().map_or(PoolError::Shutdown, |(_, e)| e.clone())
    }
}

/// The pool, on rank 0. See the module docs.
pub struct MpiPool {
    comm: Communicator,
    registry: Arc<Registry>,
    dispatch: Arc<Mutex<Dispatch>>,
    /// The death watcher and the result collector.
    tasks: Vec<weft_executor::JoinHandle<()>>,
    /// Set once the workers were told to stop.
    stopped: bool,
    /// With no workers (rule 5): the chunks this rank runs itself, to fail
    /// with [`PoolError::Shutdown`] if the pool stops first (rule 4).
    /// Each entry leaves when its job's thread is done with it (so
    /// neither finished chunks nor their results stay here).
    local: Arc<Mutex<Local>>,
}

impl fmt::Debug for MpiPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPool").field("workers", &self.workers()).finish()
    }
}

/// `multiprocessing.Pool.map`'s default chunk size: about four chunks per
/// worker.
fn default_chunksize(items: usize, workers: usize) -> usize {
    let per = workers.max(1) * 4;
    items.div_ceil(per).max(1)
}

impl MpiPool {
    /// Starts the pool on every rank of `comm` (collective), with the
    /// default [`PoolOptions`]. Rank 0 gets `Some(pool)`; every other rank
    /// serves jobs until rank 0 drops or shuts down the pool (or dies),
    /// then gets `None`.
    ///
    /// # Errors
    ///
    /// MPI failures (on a worker: rank 0 died, [`Error::PeerDied`]).
    pub async fn start(comm: &Communicator, registry: Registry) -> Result<Option<MpiPool>, PoolError> {
        MpiPool::start_with(comm, registry, PoolOptions::default()).await
    }

    /// [`start`](Self::start) with rank 0's `options` (the workers' are
    /// ignored: rank 0's reach them).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub async fn start_with(
        comm: &Communicator,
        registry: Registry,
        options: PoolOptions,
    ) -> Result<Option<MpiPool>, PoolError> {
        let comm = comm.duplicate().await?;
        let ours = (comm.rank() == 0).then_some(options);
        let options: PoolOptions = comm.bcast_obj(ours.as_ref(), 0).await?;
        let registry = Arc::new(registry);
        if comm.rank() != 0 {
            worker::serve(&comm, &registry, options.jobs_per_worker.max(1)).await?;
            return Ok(None);
        }
        let dispatch = Arc::new(Mutex::new(Dispatch::new(
            comm.size(),
            options.jobs_per_worker.max(1) + 1,
        )));
        let mut tasks = Vec::new();
        // Rule 3: the job's death notice tells of every worker that dies.
        {
            let (dispatch, comm) = (dispatch.clone(), comm.clone());
            let deaths = comm.shared.deaths.clone();
            tasks.push(weft_executor::spawn(async move {
                for n in 0.. {
                    let rank = deaths.nth(n).await;
                    dispatch::worker_gone(&dispatch, &comm, rank);
                }
            }));
        }
        if comm.size() > 1 {
            let (dispatch, comm) = (dispatch.clone(), comm.clone());
            tasks.push(weft_executor::spawn(async move {
                dispatch::collect(&comm, &dispatch).await
            }));
        }
        Ok(Some(MpiPool {
            comm,
            registry,
            dispatch,
            tasks,
            stopped: false,
            local: Arc::default(),
        }))
    }

    /// Worker ranks (0 for a singleton, which runs jobs itself).
    pub fn workers(&self) -> usize {
        self.comm.size() as usize - 1
    }

    /// Runs `job` on `arg` on some worker, posted now (mpi4py.futures'
    /// `submit`): the [`Promise`] settles with the result (done callbacks
    /// and the rest of Weft's future API apply), or fails with the
    /// [`PoolError`] as its exception.
    pub fn submit<A, R>(&self, job: &Job<A, R>, arg: A) -> Promise<R>
    where
        A: Serialize,
        R: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let (resolver, promise) = Promise::channel();
        let bytes = match postcard::to_allocvec(&arg) {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = resolver.set_exception(PoolError::Job(format!("the argument did not serialise: {e}")));
                return promise;
            }
        };
        let chunk = self.chunk(job, vec![bytes]);
        chunk.add_done_callback_inline(move |chunk| {
            let outcome = match chunk.result() {
                Ok(Ok(results)) => decode::<R>(&results[0]),
                Ok(Err(err)) => Err(err.clone()),
                Err(_) => Err(PoolError::Shutdown),
            };
            let _ = match outcome {
                Ok(value) => resolver.set_result(value).map_err(drop),
                Err(err) => resolver.set_exception(err).map_err(drop),
            };
        });
        promise
    }

    /// Runs `job` on every argument, results in argument order (`Pool.map`),
    /// in chunks of the default size (about four per worker).
    ///
    /// # Errors
    ///
    /// A [`MapError`] with every item's outcome if any failed.
    pub async fn map<A, R>(&self, job: &Job<A, R>, args: impl IntoIterator<Item = A>) -> Result<Vec<R>, MapError<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        let args: Vec<A> = args.into_iter().collect();
        let chunksize = default_chunksize(args.len(), self.workers());
        self.map_chunked(job, args, chunksize).await
    }

    /// [`map`](Self::map) with `chunksize` arguments per message.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    pub async fn map_chunked<A, R>(
        &self,
        job: &Job<A, R>,
        args: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, MapError<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        let mut results: Vec<Option<Result<R, PoolError>>> = Vec::new();
        let mut unordered = self.map_unordered(job, args, chunksize);
        results.resize_with(unordered.len(), || None);
        while let Some((i, outcome)) = unordered.next().await {
            results[i] = Some(outcome);
        }
        let results: Vec<Result<R, PoolError>> = results
            .into_iter()
            .map(|r| r.unwrap_or(Err(PoolError::Shutdown)))
            .collect();
        if results.iter().all(Result::is_ok) {
            Ok(results
                .into_iter()
                .map(|r| r.unwrap_or_else(|_| unreachable!()))
                .collect())
        } else {
            Err(MapError { results })
        }
    }

    /// Runs `job` on every argument, posted now in chunks of `chunksize`,
    /// and yields each item's index and outcome as its chunk completes
    /// (`Pool.imap_unordered`).
    pub fn map_unordered<A, R>(
        &self,
        job: &Job<A, R>,
        args: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> MapUnordered<R>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        let chunksize = chunksize.max(1);
        let mut ready = Vec::new();
        let mut chunks = Vec::new();
        let mut current: (Vec<usize>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
        let mut items = 0;
        for (i, arg) in args.into_iter().enumerate() {
            items += 1;
            match postcard::to_allocvec(&arg) {
                Ok(bytes) => {
                    current.0.push(i);
                    current.1.push(bytes);
                }
                Err(e) => ready.push((i, Err(PoolError::Job(format!("the argument did not serialise: {e}"))))),
            }
            if current.1.len() == chunksize {
                let (indices, bytes) = std::mem::take(&mut current);
                chunks.push((indices, self.chunk(job, bytes)));
            }
        }
        if !current.1.is_empty() {
            chunks.push((current.0, self.chunk(job, current.1)));
        }
        let (indices, promises): (Vec<Vec<usize>>, Vec<Promise<ChunkOutcome>>) = chunks.into_iter().unzip();
        MapUnordered {
            items,
            ready,
            indices,
            chunks: weft_executor::future::as_completed(promises),
        }
    }

    /// Queues a chunk for `job` (or, with no workers, runs it here) and
    /// returns the promise of its results.
    fn chunk<A, R>(&self, job: &Job<A, R>, args: Vec<Vec<u8>>) -> Promise<ChunkOutcome> {
        if self.workers() == 0 {
            // Rule 5.
            let (resolver, promise) = Promise::channel();
            let id = {
                let mut local = lock(&self.local);
                local.next += 1;
                let id = local.next;
                local.running.insert(id, promise.clone());
                id
            };
            // Leaves `local` when the job's closure is done or dropped
            // unrun, after settling (callbacks run outside the lock).
            let leave = Leave(self.local.clone(), id);
            let registry = self.registry.clone();
            let (name, types) = (job.name.clone(), job.types.clone());
            // Detached: the promise carries the result.
            drop(weft_executor::spawn_blocking(move || {
                let _leave = leave;
                let _ = resolver.set_result(Ok(Arc::new(registry.run(&name, &types, &args))));
            }));
            return promise;
        }
        let promise = lock(&self.dispatch).queue(&job.name, &job.types, args);
        dispatch::pump(&self.comm, &self.dispatch);
        promise
    }

    /// Waits for every job queued or running, then releases the workers
    /// (they return from [`start`](Self::start)).
    ///
    /// # Errors
    ///
    /// MPI failures while telling the workers.
    pub async fn shutdown(mut self) -> Result<(), PoolError> {
        while lock(&self.dispatch).busy() || lock(&self.local).running.values().any(|chunk| !chunk.done()) {
            weft_io::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.stop()
    }

    /// Fails what is queued or running with [`PoolError::Shutdown`] and
    /// tells every live worker to stop (rule 4). The stop messages are
    /// posted whether or not a runtime runs here: MPI delivers them at the
    /// latest while this rank finalizes.
    fn stop(&mut self) -> Result<(), PoolError> {
        if std::mem::replace(&mut self.stopped, true) {
            return Ok(());
        }
        let live = dispatch::close(&self.dispatch, self.comm.size());
        let mut first_error = None;
        for rank in live {
            if let Err(err) = self.comm.isend_detached(Vec::<u8>::new(), rank, TAG_STOP) {
                first_error.get_or_insert(PoolError::Mpi(err));
            }
        }
        for task in &self.tasks {
            task.abort();
        }
        // Rule 5's chunks: their threads run on, and their results go
        // nowhere (the first outcome stands).
        // Taken first: no lock held while their callbacks run.
        let chunks = std::mem::take(&mut lock(&self.local).running);
        for chunk in chunks.into_values() {
            let _ = chunk.set_result(Err(PoolError::Shutdown));
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Rule 5's chunks in flight, by id.
#[derive(Default)]
struct Local {
    next: u64,
    running: std::collections::HashMap<u64, Promise<ChunkOutcome>>,
}

/// Takes chunk `.1` out of [`Local`] when dropped.
struct Leave(Arc<Mutex<Local>>, u64);

impl Drop for Leave {
    fn drop(&mut self) {
        let chunk = lock(&self.0).running.remove(&self.1);
        drop(chunk);
    }
}

impl Drop for MpiPool {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The stream of [`MpiPool::map_unordered`].
pub struct MapUnordered<R> {
    items: usize,
    /// Items that failed before being sent, and items of chunks already
    /// completed, not yet yielded.
    ready: Vec<(usize, Result<R, PoolError>)>,
    /// Per chunk, the argument indices it holds.
    indices: Vec<Vec<usize>>,
    chunks: AsCompleted<Promise<ChunkOutcome>>,
}

impl<R: DeserializeOwned> MapUnordered<R> {
    /// Items in the map.
    pub fn len(&self) -> usize {
        self.items
    }

    /// True for a map of no items.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The next item to complete: its index and outcome; `None` when all
    /// have been yielded.
    pub async fn next(&mut self) -> Option<(usize, Result<R, PoolError>)> {
        loop {
            if let Some(item) = self.ready.pop() {
                return Some(item);
            }
            let (chunk, outcome) = self.chunks.next().await?;
            let indices = &self.indices[chunk];
            let outcome = outcome.unwrap_or(Err(PoolError::Shutdown));
            // In reverse, so `pop` yields the chunk's items in order.
            for (k, &i) in indices.iter().enumerate().rev() {
                let item = match &outcome {
                    Ok(results) => results.get(k).map_or(Err(PoolError::Shutdown), decode),
                    Err(err) => Err(err.clone()),
                };
                self.ready.push((i, item));
            }
        }
    }
}

impl<R> fmt::Debug for MapUnordered<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapUnordered")
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

fn decode<R: DeserializeOwned>(result: &Result<Vec<u8>, String>) -> Result<R, PoolError> {
    match result {
        Ok(bytes) => crate::error::decode_whole(bytes)
            .map_err(|e| PoolError::Job(format!("the result did not deserialise: {e}"))),
        Err(why) => Err(PoolError::Job(why.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_chunksize_is_pool_maps() {
        // divmod(len, 4 * workers), rounded up.
        assert_eq!(default_chunksize(100, 3), 9);
        assert_eq!(default_chunksize(12, 3), 1);
        assert_eq!(default_chunksize(13, 3), 2);
        assert_eq!(default_chunksize(0, 3), 1);
        assert_eq!(default_chunksize(5, 0), 2);
    }
}
