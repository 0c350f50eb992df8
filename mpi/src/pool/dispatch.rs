//! Rank 0's side of the pool (rules 2 and 3 of the pool's docs): the
//! queue of chunks, what is in flight at each worker, and the tasks that
//! hand out chunks and collect results.
//!
//! [`Dispatch`] is under one lock, never held across an await. Taking a
//! chunk off the queue and recording it at its worker is one step under
//! it, so a worker's death (which fails what is recorded there) can never
//! miss a chunk in between.

use super::{PoolError, TAG_JOB, TAG_RESULT};
use crate::comm::Communicator;
use crate::loom::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use weft_executor::future::{Promise, Resolver};

/// The outcome of one chunk: a result per argument.
pub(crate) type ChunkOutcome = Result<Arc<Vec<Result<Vec<u8>, String>>>, PoolError>;

/// What travels from rank 0 to a worker.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct JobMsg {
    pub(crate) id: u64,
    pub(crate) name: String,
    /// The argument and result types rank 0 expects (checked by the
    /// worker's registry).
    pub(crate) types: String,
    pub(crate) args: Vec<Vec<u8>>,
}

/// What travels back.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ResultMsg {
    pub(crate) id: u64,
    pub(crate) results: Vec<Result<Vec<u8>, String>>,
}

/// A chunk waiting for a worker.
struct Queued {
    message: JobMsg,
    resolver: Resolver<ChunkOutcome>,
}

/// See the module docs.
pub(crate) struct Dispatch {
    queue: VecDeque<Queued>,
    /// Per worker rank: chunks in flight there, by id.
    in_flight: HashMap<i32, HashMap<u64, Resolver<ChunkOutcome>>>,
    dead: Vec<i32>,
    /// Chunks at one worker at most.
    per_worker: usize,
    next_id: u64,
    closed: bool,
}

impl Dispatch {
    pub(crate) fn new(size: i32, per_worker: usize) -> Dispatch {
        Dispatch {
            queue: VecDeque::new(),
            in_flight: (1..size).map(|r| (r, HashMap::new())).collect(),
            dead: Vec::new(),
            per_worker,
            next_id: 0,
            closed: false,
        }
    }

    /// Queues a chunk; the promise of its results.
    pub(crate) fn queue(&mut self, name: &str, types: &str, args: Vec<Vec<u8>>) -> Promise<ChunkOutcome> {
        let (resolver, promise) = Promise::channel();
        if self.closed {
            let _ = resolver.set_result(Err(PoolError::Shutdown));
            return promise;
        }
        if let Some(last) = self.no_live_worker() {
            let _ = resolver.set_result(Err(PoolError::WorkerDied(last)));
            return promise;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(Queued {
            message: JobMsg {
                id,
                name: name.to_owned(),
                types: types.to_owned(),
                args,
            },
            resolver,
        });
        promise
    }

    /// Chunks queued or in flight.
    pub(crate) fn busy(&self) -> bool {
        !self.queue.is_empty() || self.in_flight.values().any(|jobs| !jobs.is_empty())
    }

    /// `Some(a dead rank)` if every worker is dead.
    fn no_live_worker(&self) -> Option<i32> {
        let live = self.in_flight.keys().any(|r| !self.dead.contains(r));
        (!live).then(|| self.dead.last().copied().unwrap_or(1))
    }

    /// Takes every chunk queued or in flight (to fail them).
    fn take_all(&mut self) -> Vec<Resolver<ChunkOutcome>> {
        let mut all: Vec<_> = self.queue.drain(..).map(|q| q.resolver).collect();
        for jobs in self.in_flight.values_mut() {
            all.extend(jobs.drain().map(|(_, r)| r));
        }
        all
    }
}

/// Hands queued chunks to live workers with room, least loaded first.
pub(crate) fn pump(comm: &Communicator, dispatch: &Arc<Mutex<Dispatch>>) {
    loop {
        let (rank, id, bytes) = {
            let mut d = lock(dispatch);
            if d.queue.is_empty() || d.closed {
                return;
            }
            let (per_worker, dead) = (d.per_worker, d.dead.clone());
            let Some((&rank, _)) = d
                .in_flight
                .iter()
                .filter(|(rank, jobs)| !dead.contains(rank) && jobs.len() < per_worker)
                .min_by_key(|(rank, jobs)| (jobs.len(), **rank))
            else {
                return;
            };
            let queued = d.queue.pop_front().expect("not empty");
            let bytes = postcard::to_allocvec(&queued.message).expect("weft-mpi bug: a job message did not serialise");
            let id = queued.message.id;
            d.in_flight
                .get_mut(&rank)
                .expect("a worker's table")
                .insert(id, queued.resolver);
            (rank, id, bytes)
        };
        let sent = comm.isend(bytes, rank, TAG_JOB);
        let dispatch = dispatch.clone();
        // Detached: a send that fails takes its chunk back and fails it.
        drop(weft_executor::spawn(async move {
            if let Err(err) = sent.await {
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

/// Fails every chunk queued or in flight with `err`.
fn fail_all(dispatch: &Mutex<Dispatch>, err: &PoolError) {
    let failed = lock(dispatch).take_all();
    for resolver in failed {
        let _ = resolver.set_result(Err(err.clone()));
    }
}

/// Rule 4: closes the pool (queued and running chunks fail with
/// [`PoolError::Shutdown`]); the live workers, to tell to stop.
pub(crate) fn close(dispatch: &Mutex<Dispatch>, size: i32) -> Vec<i32> {
    let live = {
        let mut d = lock(dispatch);
        d.closed = true;
        (1..size).filter(|r| !d.dead.contains(r)).collect()
    };
    fail_all(dispatch, &PoolError::Shutdown);
    live
}

/// Rank 0's collector: every result message, from any worker.
pub(crate) async fn collect(comm: &Communicator, dispatch: &Arc<Mutex<Dispatch>>) {
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
        // A result that does not decode cannot be matched to its chunk (a
        // rank running other code); its chunk fails when that rank stops.
        let Ok(message) = crate::error::decode_whole::<ResultMsg>(&bytes) else {
            continue;
        };
        let resolver = lock(dispatch)
            .in_flight
            .get_mut(&status.source())
            .and_then(|jobs| jobs.remove(&message.id));
        if let Some(resolver) = resolver {
            let _ = resolver.set_result(Ok(Arc::new(message.results)));
        }
        pump(comm, dispatch);
    }
}

/// Rule 3: the death notice says `rank` died.
pub(crate) fn worker_gone(dispatch: &Arc<Mutex<Dispatch>>, comm: &Communicator, rank: i32) {
    let (failed, none_left) = {
        let mut d = lock(dispatch);
        if d.closed || !d.in_flight.contains_key(&rank) || d.dead.contains(&rank) {
            return;
        }
        d.dead.push(rank);
        let failed: Vec<Resolver<ChunkOutcome>> = d
            .in_flight
            .get_mut(&rank)
            .map(|jobs| jobs.drain().map(|(_, r)| r).collect())
            .unwrap_or_default();
        (failed, d.no_live_worker().is_some())
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
