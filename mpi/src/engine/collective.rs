//! Collectives as units, run whole and in order (engine rule 8).
//!
//! MPI requires every rank to post the same collectives on a communicator
//! in the same order. A Weft collective is a unit of stages: every one
//! first agrees on its arguments (`agreement.rs`: a small all-reduce in
//! rounds of point-to-point messages on the communicator's hidden twin,
//! one stage per round, so a rank that passes another length gets an error
//! on every rank instead of a write past a buffer), then, unless its data
//! rode in the agreement, posts its MPI collective. Each stage leaves at
//! most one request in flight for the unit (a round's receive; its send
//! owns a copy of its data and completes on its own). Two rules keep the
//! ranks in step:
//!
//! 1. **A unit runs to its end in the engine.** Its stages are posted here,
//!    under the lock, as the previous one completes ([`Staged::advance`]),
//!    not by the task that awaits it: a handle dropped between two stages
//!    (a timeout, a `race`) leaves the engine to post the rest, with the
//!    buffers the unit owns. Either every stage happens or, when one
//!    fails or the agreement finds the ranks disagree (the same answer on
//!    every rank), none after it does, on every rank.
//! 2. **A unit starts only after the one before it has posted its last
//!    stage.** Each communicator has a stream: the unit at its front has
//!    posted some stages and not all (it *holds* the stream); the units
//!    behind it have posted nothing. When the front posts its last stage
//!    (or ends), the next one starts. So the MPI collectives a rank posts
//!    are, on each communicator, exactly its units' stages in the order
//!    its tasks started the units, never the order in which stages
//!    happened to complete: the same sequence on every rank; and a unit's
//!    number on its communicator (the tag of its agreement's messages) is
//!    the same on every rank. Units whose last stages are in flight
//!    overlap freely, as MPI allows.

use super::{InFlight, Outcome, Raw, Waiter};
use mpi::ffi;
use std::collections::VecDeque;
use std::sync::Arc;

/// What [`Staged::advance`] did.
pub(crate) enum Advance {
    /// A stage is in flight (in the request window); `more` if stages
    /// remain after it.
    Posted {
        /// Stages remain after the one in flight.
        more: bool,
    },
    /// The unit ended (every stage done, or one failed).
    Finished(Outcome),
}

/// A collective made of stages.
pub(crate) trait Staged: Send + Sync {
    /// The communicator whose stream the unit belongs to.
    fn comm(&self) -> Raw<ffi::MPI_Comm>;

    /// Under the lock: the stage before ended with `previous` (`None`
    /// before the first); posts the next stage and tests it once, going on
    /// while stages complete at once. A failed stage ends the unit.
    fn advance(self: Arc<Self>, mpi: &mut InFlight, previous: Option<Outcome>) -> Advance;

    /// Itself as a plain waiter (for delivering an outcome).
    fn into_waiter(self: Arc<Self>) -> Arc<dyn Waiter>;
}

/// The per-communicator streams of units not yet fully posted (see the
/// module docs). Private fields: only these methods keep the invariant
/// that a stream's front is the unit holding it.
pub(crate) struct CollectiveStreams {
    streams: Vec<(Raw<ffi::MPI_Comm>, Stream)>,
    /// The last stream emptied, kept for the next one to start (a rank
    /// running one collective after another allocates no stream).
    spare: Stream,
}

/// One communicator's units: the front holds the stream.
type Stream = VecDeque<Arc<dyn Staged>>;

impl CollectiveStreams {
    pub(crate) fn new() -> CollectiveStreams {
        CollectiveStreams {
            streams: Vec::new(),
            spare: VecDeque::new(),
        }
    }

    /// No unit anywhere has stages left to post.
    pub(crate) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    fn stream(&mut self, comm: Raw<ffi::MPI_Comm>) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|(c, _)| *c == comm).map(|(_, s)| s)
    }

    fn push(&mut self, comm: Raw<ffi::MPI_Comm>, unit: Arc<dyn Staged>) {
        match self.stream(comm) {
            Some(stream) => stream.push_back(unit),
            None => {
                let mut stream = std::mem::take(&mut self.spare);
                stream.push_back(unit);
                self.streams.push((comm, stream));
            }
        }
    }

    fn front(&mut self, comm: Raw<ffi::MPI_Comm>) -> Option<Arc<dyn Staged>> {
        self.stream(comm).and_then(|s| s.front().cloned())
    }

    fn is_front(&mut self, comm: Raw<ffi::MPI_Comm>, unit: &Arc<dyn Staged>) -> bool {
        self.stream(comm)
            .and_then(|s| s.front())
            .is_some_and(|front| Arc::as_ptr(front).cast::<()>() == Arc::as_ptr(unit).cast::<()>())
    }

    fn pop_front(&mut self, comm: Raw<ffi::MPI_Comm>) {
        let i = self
            .streams
            .iter()
            .position(|(c, _)| *c == comm)
            .expect("weft-mpi bug: no collective stream to pop");
        self.streams[i].1.pop_front();
        if self.streams[i].1.is_empty() {
            self.spare = self.streams.swap_remove(i).1;
        }
    }

    /// Takes every unit out (MPI is being finalized).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Arc<dyn Staged>> + '_ {
        self.streams.drain(..).flat_map(|(_, s)| s)
    }
}

impl InFlight {
    /// Rule 2: starts `unit` now if its communicator's stream is free,
    /// else queues it behind the units there.
    pub(crate) fn start_collective(&mut self, unit: Arc<dyn Staged>) {
        if let Some(rank) = self.a_dead_rank() {
            // A collective needs every rank (`liveness.rs`, rule 3).
            self.deliver(unit.into_waiter(), Err(crate::Error::PeerDied(rank)));
            return;
        }
        let comm = unit.comm();
        let free = self.collectives.front(comm).is_none();
        self.collectives.push(comm, unit);
        if free {
            self.run_front(comm);
        }
    }

    /// The front of `comm`'s stream has posted nothing yet: starts it, and
    /// the next, while each posts its last stage (or ends) at once.
    fn run_front(&mut self, comm: Raw<ffi::MPI_Comm>) {
        while let Some(unit) = self.collectives.front(comm) {
            match unit.clone().advance(self, None) {
                Advance::Posted { more: true } => return,
                Advance::Posted { more: false } => {}
                Advance::Finished(outcome) => {
                    let waiter = unit.into_waiter();
                    self.deliver(waiter, outcome);
                }
            }
            self.collectives.pop_front(comm);
        }
    }

    /// A stage of `unit` completed with `outcome` (its waiter's
    /// `request_done`): posts the next stage, or ends the unit; frees the
    /// stream for the next unit once the last stage is posted. Returns the
    /// outcome to deliver when the unit ended.
    pub(crate) fn stage_done(&mut self, unit: Arc<dyn Staged>, outcome: Outcome) -> Option<Outcome> {
        let comm = unit.comm();
        let holds_stream = self.collectives.is_front(comm, &unit);
        // After a death nothing more is posted: the unit ends here.
        let outcome = match self.a_dead_rank() {
            Some(rank) => Err(crate::Error::PeerDied(rank)),
            None => outcome,
        };
        let ended = match unit.advance(self, Some(outcome)) {
            Advance::Posted { more: true } => return None,
            Advance::Posted { more: false } => None,
            Advance::Finished(outcome) => Some(outcome),
        };
        if holds_stream {
            self.collectives.pop_front(comm);
            self.run_front(comm);
        }
        ended
    }
}
