//! [`MpiPool`]: a pool of worker ranks running named functions, the role
//! of mpi4py's `MPIPoolExecutor` (and SCOOP's, Celery workers').
//!
//! Code cannot travel between processes, so jobs name a function from a
//! [`Registry`] that every rank builds the same way; arguments and results
//! travel serialised with postcard (compact, serde-based).
//!
//! ```no_run
//! use weft_mpi::{Mpi, pool::{MpiPool, Registry}};
//!
//! let mpi = Mpi::init()?;
//! let rt = weft::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let mut registry = Registry::new();
//!     registry.register("square", |x: u64| x * x);
//!     // Rank 0 gets the pool; worker ranks serve jobs until it shuts down.
//!     if let Some(pool) = MpiPool::start(&mpi.world(), registry).await? {
//!         let squares: Vec<u64> = pool.map("square", 0..100u64, 10).await?;
//!         assert_eq!(squares[9], 81);
//!         pool.shutdown().await?;
//!     }
//!     Ok::<(), weft_mpi::pool::PoolError>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it works
//!
//! 1. **Its own communicator.** [`MpiPool::start`] duplicates the
//!    communicator it is given, so pool traffic never meets the
//!    application's messages.
//! 2. **Rank 0 dispatches, the others serve.** A job is a chunk of
//!    arguments for one function. Rank 0 keeps at most [`IN_FLIGHT`] chunks
//!    at each worker and hands the next queued chunk to whichever worker
//!    answers first (load balancing without a central estimate); a worker
//!    runs a chunk on a blocking thread (`spawn_blocking`), so its loop
//!    stays free, and sends the results back in one message.
//! 3. **A dead worker fails its jobs, never hangs the pool.** MPI (Open MPI
//!    4.1) gives no way to learn that a rank died; the job's death notice
//!    (`liveness.rs`, on unless [`MpiBuilder::death_notice`] turned it off)
//!    does. Rank 0 then fails that worker's chunks in flight with
//!    [`PoolError::WorkerDied`] and stops sending it work. (Launch with
//!    `mpirun --mca orte_abort_on_non_zero_status 0` so that `mpirun` does
//!    not kill rank 0 along with the dead rank.)
//!
//! [`MpiBuilder::death_notice`]: crate::MpiBuilder::death_notice
//! 4. **With no worker ranks** (a singleton), rank 0 runs the jobs itself,
//!    on blocking threads.

use crate::comm::Communicator;
use crate::error::Error;
use crate::loom::lock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use weft_executor::future::{Promise, Resolver};

/// Chunks in flight at one worker at most: one running, one waiting, so a
/// worker never idles while its next chunk is on the wire.
pub const IN_FLIGHT: usize = 2;

const TAG_JOB: i32 = 1;
const TAG_RESULT: i32 = 2;
const TAG_STOP: i32 = 3;

/// A registered function: serialised argument in, serialised result (or
/// the panic message) out.
type Job = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync;

/// The functions jobs may name. Every rank must register the same names.
#[derive(Default, Clone)]
pub struct Registry {
    functions: HashMap<String, Arc<Job>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `f` under `name`; a job naming it deserialises its
    /// argument as `A` and serialises the result.
    pub fn register<A, R, F>(&mut self, name: &str, f: F) -> &mut Registry
    where
        A: DeserializeOwned,
        R: Serialize,
        F: Fn(A) -> R + Send + Sync + 'static,
    {
        let job = move |bytes: &[u8]| -> Result<Vec<u8>, String> {
            let arg: A = postcard::from_bytes(bytes).map_err(|e| format!("bad argument: {e}"))?;
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(arg)))
                .map_err(|panic| format!("the job panicked: {}", panic_message(&*panic)))?;
            postcard::to_allocvec(&out).map_err(|e| format!("cannot serialise the result: {e}"))
        };
        self.functions.insert(name.to_owned(), Arc::new(job));
        self
    }

    fn run(&self, name: &str, args: &[Vec<u8>]) -> Vec<Result<Vec<u8>, String>> {
        match self.functions.get(name) {
            Some(f) => args.iter().map(|a| f(a)).collect(),
            None => args
                .iter()
                .map(|_| Err(format!("no function {name:?} is registered on this rank")))
                .collect(),
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_owned())
}

/// Why a pool job failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// MPI failed.
    Mpi(Error),
    /// The worker rank running the job died (its connection to rank 0
    /// closed) before answering.
    WorkerDied(i32),
    /// The function panicked, is not registered, or its argument or result
    /// did not (de)serialise; the text says which.
    Job(String),
    /// The pool was shut down with the job queued.
    Shutdown,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Mpi(err) => write!(f, "MPI failed: {err}"),
            PoolError::WorkerDied(rank) => write!(f, "worker rank {rank} died with the job in flight"),
            PoolError::Job(why) => write!(f, "the job failed: {why}"),
            PoolError::Shutdown => f.write_str("the pool shut down before running the job"),
        }
    }
}

impl std::error::Error for PoolError {}

impl From<Error> for PoolError {
    fn from(err: Error) -> PoolError {
        PoolError::Mpi(err)
    }
}

/// What travels from rank 0 to a worker.
#[derive(serde::Serialize, serde::Deserialize)]
struct JobMsg {
    id: u64,
    name: String,
    args: Vec<Vec<u8>>,
}

/// What travels back.
#[derive(serde::Serialize, serde::Deserialize)]
struct ResultMsg {
    id: u64,
    results: Vec<Result<Vec<u8>, String>>,
}

/// The outcome of one chunk: a result per argument.
type ChunkOutcome = Result<Arc<Vec<Result<Vec<u8>, String>>>, PoolError>;

/// A chunk waiting for a worker.
struct Queued {
    id: u64,
    name: String,
    args: Vec<Vec<u8>>,
    resolver: Resolver<ChunkOutcome>,
}

/// Rank 0's bookkeeping (under one lock, never held across an await).
struct Dispatch {
    queue: VecDeque<Queued>,
    /// Per worker rank: chunks in flight there, by id.
    in_flight: HashMap<i32, HashMap<u64, Resolver<ChunkOutcome>>>,
    dead: Vec<i32>,
    next_id: u64,
    closed: bool,
}

/// The pool, on rank 0. See the module docs.
pub struct MpiPool {
    comm: Communicator,
    registry: Registry,
    dispatch: Arc<Mutex<Dispatch>>,
    /// Woken when a worker frees a slot or dies, or a chunk is queued.
    tasks: Vec<weft_executor::JoinHandle<()>>,
}

impl fmt::Debug for MpiPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPool")
            .field("workers", &(self.comm.size() - 1))
            .finish()
    }
}

impl MpiPool {
    /// Starts the pool on every rank of `comm` (collective). Rank 0 gets
    /// `Some(pool)`; every other rank serves jobs until rank 0 shuts the
    /// pool down (or dies), then gets `None`.
    ///
    /// # Errors
    ///
    /// MPI failures, or a worker that cannot reach rank 0 over TCP.
    pub async fn start(comm: &Communicator, registry: Registry) -> Result<Option<MpiPool>, PoolError> {
        let comm = comm.duplicate().await?;
        if comm.rank() != 0 {
            serve(&comm, &registry).await?;
            return Ok(None);
        }
        let dispatch = Arc::new(Mutex::new(Dispatch {
            queue: VecDeque::new(),
            in_flight: (1..comm.size()).map(|r| (r, HashMap::new())).collect(),
            dead: Vec::new(),
            next_id: 0,
            closed: false,
        }));
        let mut tasks = Vec::new();
        // Rule 3: the job's death notice tells of every worker that dies.
        {
            let dispatch = dispatch.clone();
            let comm = comm.clone();
            let deaths = comm.shared.deaths.clone();
            tasks.push(weft_executor::spawn(async move {
                for n in 0.. {
                    let rank = deaths.nth(n).await;
                    worker_gone(&dispatch, &comm, rank);
                }
            }));
        }
        // The collector: results from any worker.
        {
            let dispatch = dispatch.clone();
            let comm = comm.clone();
            tasks.push(weft_executor::spawn(async move { collect(&comm, &dispatch).await }));
        }
        Ok(Some(MpiPool {
            comm,
            registry,
            dispatch,
            tasks,
        }))
    }

    /// Worker ranks (0 for a singleton, which runs jobs itself).
    pub fn workers(&self) -> usize {
        self.comm.size() as usize - 1
    }

    /// Runs `name(arg)` on some worker; the promise settles with the result
    /// (done callbacks and the rest of Weft's future API apply).
    ///
    /// # Errors
    ///
    /// The returned future fails with the job's [`PoolError`].
    pub async fn submit<A: Serialize, R: DeserializeOwned>(&self, name: &str, arg: &A) -> Result<R, PoolError> {
        let bytes =
            postcard::to_allocvec(arg).map_err(|e| PoolError::Job(format!("cannot serialise the argument: {e}")))?;
        let outcome = self.chunk(name, vec![bytes]).await?;
        decode(&outcome[0])
    }

    /// Runs `name` on every argument, `chunksize` arguments per message,
    /// spread over the workers as they free up; results in argument order.
    ///
    /// # Errors
    ///
    /// The first failed job's [`PoolError`] (the others still ran).
    pub async fn map<A, R>(
        &self,
        name: &str,
        args: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        let chunksize = chunksize.max(1);
        let mut chunks = Vec::new();
        let mut current = Vec::with_capacity(chunksize);
        for arg in args {
            current.push(
                postcard::to_allocvec(&arg)
                    .map_err(|e| PoolError::Job(format!("cannot serialise an argument: {e}")))?,
            );
            if current.len() == chunksize {
                chunks.push(self.chunk_promise(name, std::mem::take(&mut current)));
            }
        }
        if !current.is_empty() {
            chunks.push(self.chunk_promise(name, current));
        }
        let mut out = Vec::new();
        let mut first_error = None;
        for chunk in chunks {
            match chunk.await {
                Ok(Ok(results)) => {
                    for result in results.iter() {
                        match decode(result) {
                            Ok(value) => out.push(value),
                            Err(err) => {
                                first_error.get_or_insert(err);
                            }
                        }
                    }
                }
                Ok(Err(err)) => {
                    first_error.get_or_insert(err);
                }
                Err(_) => {
                    first_error.get_or_insert(PoolError::Shutdown);
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(out),
        }
    }

    async fn chunk(&self, name: &str, args: Vec<Vec<u8>>) -> Result<Arc<Vec<Result<Vec<u8>, String>>>, PoolError> {
        match self.chunk_promise(name, args).await {
            Ok(outcome) => outcome,
            Err(_) => Err(PoolError::Shutdown),
        }
    }

    /// Queues a chunk (or, with no workers, runs it here) and returns the
    /// promise of its results.
    fn chunk_promise(&self, name: &str, args: Vec<Vec<u8>>) -> Promise<ChunkOutcome> {
        let (resolver, promise) = Promise::channel();
        if self.workers() == 0 {
            // Rule 4.
            let registry = self.registry.clone();
            let name = name.to_owned();
            // Detached: the promise carries the result.
            drop(weft_executor::spawn_blocking(move || {
                let _ = resolver.set_result(Ok(Arc::new(registry.run(&name, &args))));
            }));
            return promise;
        }
        {
            let mut d = lock(&self.dispatch);
            if d.closed {
                let _ = resolver.set_result(Err(PoolError::Shutdown));
                return promise;
            }
            if !any_live(&d, self.comm.size()) {
                let last = d.dead.last().copied().unwrap_or(1);
                let _ = resolver.set_result(Err(PoolError::WorkerDied(last)));
                return promise;
            }
            let id = d.next_id;
            d.next_id += 1;
            d.queue.push_back(Queued {
                id,
                name: name.to_owned(),
                args,
                resolver,
            });
        }
        pump(&self.comm, &self.dispatch);
        promise
    }

    /// Stops every worker (they return from [`start`](Self::start)) and
    /// fails queued jobs with [`PoolError::Shutdown`]. Waits for the chunks
    /// in flight first.
    ///
    /// # Errors
    ///
    /// MPI failures while telling the workers.
    pub async fn shutdown(self) -> Result<(), PoolError> {
        loop {
            let busy = {
                let d = lock(&self.dispatch);
                // Chunks queued with no live worker fail (worker_gone), so
                // this ends once every live worker has answered.
                !d.queue.is_empty() || d.in_flight.values().any(|jobs| !jobs.is_empty())
            };
            if !busy {
                break;
            }
            weft_io::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let live: Vec<i32> = {
            let mut d = lock(&self.dispatch);
            d.closed = true;
            for queued in d.queue.drain(..) {
                let _ = queued.resolver.set_result(Err(PoolError::Shutdown));
            }
            (1..self.comm.size()).filter(|r| !d.dead.contains(r)).collect()
        };
        for rank in live {
            self.comm.send::<u8>(&[], rank, TAG_STOP).await?;
        }
        // The collector waits for a result that will not come: stop it.
        for task in &self.tasks {
            task.abort();
        }
        Ok(())
    }
}

fn decode<R: DeserializeOwned>(result: &Result<Vec<u8>, String>) -> Result<R, PoolError> {
    match result {
        Ok(bytes) => postcard::from_bytes(bytes).map_err(|e| PoolError::Job(format!("cannot read the result: {e}"))),
        Err(why) => Err(PoolError::Job(why.clone())),
    }
}

/// Rule 2: hands queued chunks to live workers with room, least loaded
/// first. Taking a chunk off the queue and recording it at its worker is
/// one step under the lock, so a worker's death (which fails what is
/// recorded there) can never miss a chunk in between.
fn pump(comm: &Communicator, dispatch: &Arc<Mutex<Dispatch>>) {
    loop {
        let (rank, id, bytes) = {
            let mut d = lock(dispatch);
            if d.queue.is_empty() {
                return;
            }
            let dead = d.dead.clone();
            let Some((&rank, _)) = d
                .in_flight
                .iter()
                .filter(|(rank, jobs)| !dead.contains(rank) && jobs.len() < IN_FLIGHT)
                .min_by_key(|(rank, jobs)| (jobs.len(), **rank))
            else {
                return;
            };
            let queued = d.queue.pop_front().expect("not empty");
            let message = JobMsg {
                id: queued.id,
                name: queued.name,
                args: queued.args,
            };
            let bytes = postcard::to_allocvec(&message).expect("a job serialises");
            d.in_flight
                .get_mut(&rank)
                .expect("a worker's table")
                .insert(message.id, queued.resolver);
            (rank, message.id, bytes)
        };
        let op = comm.isend(bytes, rank, TAG_JOB);
        let dispatch = dispatch.clone();
        // Detached: a send that fails takes its chunk back and fails it.
        drop(weft_executor::spawn(async move {
            if let Err(err) = op.await {
                let resolver = lock(&dispatch)
                    .in_flight
                    .get_mut(&rank)
                    .and_then(|jobs| jobs.remove(&id));
                if let Some(resolver) = resolver {
                    let _ = resolver.set_result(Err(PoolError::Mpi(err)));
                }
            }
        }));
    }
}

/// True if some worker rank is alive.
fn any_live(d: &Dispatch, size: i32) -> bool {
    (1..size).any(|r| !d.dead.contains(&r))
}

/// Fails every chunk queued or in flight with `err` (the pool cannot go
/// on: no live worker, or rank 0 cannot receive).
fn fail_all(dispatch: &Mutex<Dispatch>, err: &PoolError) {
    let failed: Vec<Resolver<ChunkOutcome>> = {
        let mut d = lock(dispatch);
        let mut failed: Vec<_> = d.queue.drain(..).map(|q| q.resolver).collect();
        for jobs in d.in_flight.values_mut() {
            failed.extend(jobs.drain().map(|(_, r)| r));
        }
        failed
    };
    for resolver in failed {
        let _ = resolver.set_result(Err(err.clone()));
    }
}

/// Rank 0's collector: every result message, from any worker.
async fn collect(comm: &Communicator, dispatch: &Arc<Mutex<Dispatch>>) {
    loop {
        let (bytes, status) = match comm.recv::<u8>(crate::ANY_SOURCE, TAG_RESULT).await {
            Ok(received) => received,
            Err(err) => {
                // Rank 0 cannot receive results any more: nothing queued or
                // in flight could ever finish.
                fail_all(dispatch, &PoolError::Mpi(err));
                return;
            }
        };
        // A result that does not decode cannot be matched to its chunk; it
        // came from a rank running a different build (a registry mismatch
        // shows as job errors instead).
        let Ok(message) = postcard::from_bytes::<ResultMsg>(&bytes) else {
            continue;
        };
        let resolver = {
            let mut d = lock(dispatch);
            d.in_flight
                .get_mut(&status.source())
                .and_then(|jobs| jobs.remove(&message.id))
        };
        if let Some(resolver) = resolver {
            let _ = resolver.set_result(Ok(Arc::new(message.results)));
        }
        pump(comm, dispatch);
    }
}

/// Rule 3: a worker's connection closed.
fn worker_gone(dispatch: &Arc<Mutex<Dispatch>>, comm: &Communicator, rank: i32) {
    let (failed, none_left) = {
        let mut d = lock(dispatch);
        if d.closed {
            return;
        }
        d.dead.push(rank);
        let failed: Vec<Resolver<ChunkOutcome>> = d
            .in_flight
            .get_mut(&rank)
            .map(|jobs| jobs.drain().map(|(_, r)| r).collect())
            .unwrap_or_default();
        (failed, !any_live(&d, comm.size()))
    };
    for resolver in failed {
        let _ = resolver.set_result(Err(PoolError::WorkerDied(rank)));
    }
    if none_left {
        // Queued chunks have nowhere to go.
        fail_all(dispatch, &PoolError::WorkerDied(rank));
    } else {
        pump(comm, dispatch);
    }
}

/// A worker rank: connect to rank 0, then run chunks until told to stop.
async fn serve(comm: &Communicator, registry: &Registry) -> Result<(), PoolError> {
    let registry = Arc::new(registry.clone());
    loop {
        let (bytes, status) = comm.recv::<u8>(0, crate::ANY_TAG).await?;
        if status.tag() == TAG_STOP {
            return Ok(());
        }
        let Ok(job) = postcard::from_bytes::<JobMsg>(&bytes) else {
            continue;
        };
        let registry = registry.clone();
        let comm = comm.clone();
        // Run it off the loop; answer from a task, so the next job can be
        // received meanwhile (rule 2's second slot).
        drop(weft_executor::spawn(async move {
            let results = weft_executor::spawn_blocking(move || registry.run(&job.name, &job.args)).await;
            let results = results.unwrap_or_else(|_| vec![Err("the job's thread panicked".to_owned())]);
            let message = ResultMsg { id: job.id, results };
            let bytes = postcard::to_allocvec(&message).expect("results serialise");
            let _ = comm.isend(bytes, 0, TAG_RESULT).await;
        }));
    }
}
