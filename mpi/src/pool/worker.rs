//! A worker rank's side of the pool (rule 2 of the pool's docs): receive
//! chunks, run at most `jobs_per_worker` at once (the rest wait here, in
//! order), send each chunk's results back, until rank 0 says stop.

use super::dispatch::{JobMsg, ResultMsg};
use super::registry::Registry;
use super::{PoolError, TAG_RESULT, TAG_STOP};
use crate::comm::Communicator;
use crate::loom::lock;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the worker's tasks share.
struct Worker {
    /// Chunks received and not started, oldest first.
    waiting: VecDeque<JobMsg>,
    /// Chunks running (at most the pool's `jobs_per_worker`).
    running: usize,
    /// Rank 0 said stop: finish what runs, answer nothing more.
    stopped: bool,
}

/// Serves jobs until rank 0 says stop (then waits for the chunks still
/// running) or cannot be reached.
pub(crate) async fn serve(
    comm: &Communicator,
    registry: &Arc<Registry>,
    jobs_per_worker: usize,
) -> Result<(), PoolError> {
    let worker = Arc::new(Mutex::new(Worker {
        waiting: VecDeque::new(),
        running: 0,
        stopped: false,
    }));
    let outcome = loop {
        let (bytes, status) = match comm.recv::<u8>(0, crate::ANY_TAG).await {
            Ok(received) => received,
            Err(err) => break Err(PoolError::Mpi(err)),
        };
        if status.tag() == TAG_STOP {
            break Ok(());
        }
        let Ok(job) = crate::error::decode_whole::<JobMsg>(&bytes) else {
            continue;
        };
        let start = {
            let mut w = lock(&worker);
            if w.running < jobs_per_worker {
                w.running += 1;
                Some(job)
            } else {
                w.waiting.push_back(job);
                None
            }
        };
        if let Some(job) = start {
            // Detached: it answers and takes the next waiting chunk itself.
            drop(weft_executor::spawn(run(
                job,
                comm.clone(),
                registry.clone(),
                worker.clone(),
            )));
        }
    };
    {
        let mut w = lock(&worker);
        w.stopped = true;
        w.waiting.clear();
    }
    // The chunks still running finish (their threads cannot be stopped);
    // nobody wants their results.
    while lock(&worker).running > 0 {
        weft_io::time::sleep(Duration::from_millis(1)).await;
    }
    outcome
}

/// Runs `job` off the loop and answers, then the next waiting chunk, while
/// there is one.
async fn run(mut job: JobMsg, comm: Communicator, registry: Arc<Registry>, worker: Arc<Mutex<Worker>>) {
    loop {
        let id = job.id;
        let registry = registry.clone();
        let results = weft_executor::spawn_blocking(move || registry.run(&job.name, &job.types, &job.args))
            .await
            .unwrap_or_else(|_| vec![Err("the job's thread panicked".to_owned())]);
        if !lock(&worker).stopped {
            let bytes =
                postcard::to_allocvec(&ResultMsg { id, results }).expect("weft-mpi bug: results did not serialise");
            // A failed send means rank 0 is gone: the serve loop hears too.
            let _ = comm.isend(bytes, 0, TAG_RESULT).await;
        }
        let mut w = lock(&worker);
        match w.waiting.pop_front() {
            Some(next) if !w.stopped => job = next,
            _ => {
                w.running -= 1;
                return;
            }
        }
    }
}
