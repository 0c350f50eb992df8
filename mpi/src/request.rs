//! [`Request`]: one MPI operation in flight, awaited as a future, owning
//! its buffers; [`Completion`], [`wait_all`] and [`wait_any`] over a mix.
//!
//! # Posted when made
//!
//! Every operation is posted by the method that returns its request (as
//! `MPI_Isend`, `MPI_Irecv`, `MPI_Iallreduce` are): a receive is matched
//! against arrived messages at once and waits in the engine's line if none
//! matches; a collective's first stage is posted (or queued behind the
//! collectives started before it). The request is awaited later, in any
//! order, or not at all.
//!
//! # Buffer ownership
//!
//! MPI reads or writes an operation's buffers until it completes, and a
//! future can be dropped, or leaked with `mem::forget`, at any time. So a
//! request never borrows: its buffers move into a shared [`Slot`] before
//! anything is posted and stay there, at a fixed address, until MPI is
//! done with them; awaiting the request hands them back (turned into the
//! request's output). Dropping it early takes a receive that no message
//! has matched yet out of line (nothing was posted to MPI for it, so
//! nothing needs cancelling); everything already posted (a send, a
//! collective and all its stages, a receive whose message matched) runs to
//! completion with its slot in the engine, which frees the buffers once MPI
//! reports it done. Safe code cannot free or reuse a buffer in flight, and
//! nothing panics on drop (unlike rsmpi's `Request`).
//!
//! # Cancel safety: a dropped receive loses no message
//!
//! A receive dropped at any await loses no message, so a `race`,
//! `select!` or `timeout` loop may make a new receive each round (as with
//! Tokio's `mpsc::Receiver::recv`): dropped before a message matched it,
//! it takes none; dropped after its message matched or arrived but before
//! its output was taken, it hands the message back (its bytes, once MPI
//! has written them) to the next receive on the communicator that
//! matches, ahead of every message that arrived after it (MPI's
//! non-overtaking order; engine rule 5). That receive gets it as from MPI:
//! sized to it, or [`Error::Truncated`] if its buffer is too small.
//! A message is taken only by awaiting a receive to its end (or by
//! [`Request::into_promise`]: the promise then holds it). A message
//! handed back on a communicator that is then freed is dropped with it.

use crate::comm::Owned;

use crate::engine::{Advance, Held, InFlight, Outcome, Raw, Receiver, Report, Staged, Unclaimed, Waiter};
use crate::env::Shared;
use crate::error::{Error, check};
use crate::loom::{AtomicBool, AtomicUsize, Ordering::*, lock};
use crate::status::Status;
use mpi::ffi;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::os::raw::{c_int, c_void};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use weft_executor::future::{Promise, Resolver};

/// One stage of a collective: posts an MPI request on the communicator
/// with pointers into the buffers (under the MPI lock), into
/// [`Post::request`]. Leaving the request null means "nothing to post, go
/// on"; an error ends the unit (a stage that fails posts nothing for its
/// slot: the unit's buffers are freed when it ends).
pub(crate) type Stage<B> = Box<dyn FnOnce(&mut B, ffi::MPI_Comm, &mut Post<'_>) -> Result<(), Error> + Send>;

/// A stage that is a plain function (the agreement's rounds, which
/// capture nothing): run as often as a unit has rounds, with nothing
/// allocated for it.
pub(crate) type StepFn<B> = for<'a> fn(&mut B, ffi::MPI_Comm, &mut Post<'a>) -> Result<(), Error>;

/// A slot's stages still to post, in order: `step` run `leading` times
/// (a collective's agreement), then the boxed stages. A send's or a
/// receive's has none.
pub(crate) struct Stages<B> {
    step: StepFn<B>,
    leading: usize,
    rest: VecDeque<Stage<B>>,
}

/// The next stage, taken from [`Stages`].
enum NextStage<B> {
    Step(StepFn<B>),
    Boxed(Stage<B>),
}

impl<B> Stages<B> {
    /// No stages (a send, a receive).
    pub(crate) fn none() -> Stages<B> {
        Stages::led(|_, _, _| Ok(()), 0, Vec::new())
    }

    /// `step` run `leading` times, then `rest`.
    pub(crate) fn led(step: StepFn<B>, leading: usize, rest: Vec<Stage<B>>) -> Stages<B> {
        Stages {
            step,
            leading,
            rest: rest.into(),
        }
    }

    fn is_empty(&self) -> bool {
        self.leading == 0 && self.rest.is_empty()
    }

    fn clear(&mut self) {
        self.leading = 0;
        self.rest.clear();
    }

    fn pop(&mut self) -> Option<NextStage<B>> {
        if self.leading > 0 {
            self.leading -= 1;
            return Some(NextStage::Step(self.step));
        }
        self.rest.pop_front().map(NextStage::Boxed)
    }
}

impl<B> NextStage<B> {
    fn run(self, buffers: &mut B, comm: ffi::MPI_Comm, post: &mut Post<'_>) -> Result<(), Error> {
        match self {
            NextStage::Step(step) => step(buffers, comm, post),
            NextStage::Boxed(stage) => stage(buffers, comm, post),
        }
    }
}

/// What a [`Stage`] posts with, under the MPI lock.
pub(crate) struct Post<'a> {
    /// The one request the stage leaves in flight for its slot (the unit
    /// goes on when it completes); null if none.
    pub(crate) request: ffi::MPI_Request,
    /// Everything in flight, for requests the stage posts on its own
    /// account (`agreement.rs`: a send whose buffer it owns).
    pub(crate) mpi: &'a mut InFlight,
}

/// How a slot is set up (besides its buffers, recipe and stages).
pub(crate) struct Setup {
    pub(crate) kind: Kind,
    /// MPI requests to end before the outcome is delivered.
    pub(crate) parts: usize,
    /// The peers a point-to-point operation needs (negative: none).
    pub(crate) peers: [c_int; 2],
    pub(crate) comm: Raw<ffi::MPI_Comm>,
    pub(crate) keep: Option<Arc<Owned>>,
    /// A receive's element datatype (what `MPI_Imrecv` is given); unused
    /// by sends and collectives.
    pub(crate) datatype: Raw<ffi::MPI_Datatype>,
}

/// What kind of work a slot does for the engine.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Requests posted at once (a send); `parts` of them.
    Request,
    /// A receive (with, for `sendrecv`, a send as a second part): it may
    /// wait in the engine's line, and leaves it when dropped.
    Receive,
    /// A collective unit of stages (engine rule 8).
    Collective,
}

/// The slot one operation's buffers and outcome live in; shared by the
/// [`Request`] and, while MPI has work in it, the engine.
///
/// `F` turns the buffers and the final status into the request's output
/// `T`, in the task that awaits it (never under the MPI lock).
pub(crate) struct Slot<B, T, F> {
    /// Set when MPI is done with the buffers (every part, every stage).
    finished: AtomicBool,
    kind: Kind,
    /// MPI requests of this operation not yet complete (two for
    /// `sendrecv`): the outcome is delivered when the last ends.
    parts: AtomicUsize,
    /// The ranks a point-to-point operation needs (negative: none).
    peers: [c_int; 2],
    /// When it was posted (its wait feeds the spin window).
    posted: u64,
    /// Its id on a runtime's timeline; 0 while none records.
    trace: u64,
    comm: Raw<ffi::MPI_Comm>,
    /// A receive's element datatype (what `MPI_Imrecv` is given); unused
    /// by sends and collectives.
    datatype: Raw<ffi::MPI_Datatype>,
    /// Keeps a duplicated communicator alive while the operation may use
    /// it (engine rule 9).
    _keep: Option<Arc<Owned>>,
    /// The buffers, the output's recipe, the outcome, who waits for it
    /// and a collective's stages (one lock for all: a ping-pong hop takes
    /// it a handful of times, a collective's stage once). Taken after the
    /// MPI lock, never before it.
    done: Mutex<Done<B, T, F>>,
}

struct Done<B, T, F> {
    /// The buffers MPI reads or writes; handed out only once `finished`.
    buffers: Option<B>,
    /// A collective's stages still to post (taken only under the MPI
    /// lock).
    stages: Stages<B>,
    finish: Option<F>,
    outcome: Option<Outcome>,
    /// Parts ended so far (first error wins; a receive's envelope).
    partial: Option<Result<Option<Status>, Error>>,
    /// The task awaiting the request.
    waker: Option<Waker>,
    /// [`Completion`]s awaiting it.
    watchers: Vec<Waker>,
    /// Set by [`Request::into_promise`].
    resolver: Option<Resolver<Completed<T>>>,
    /// The message a receive matched, while the request may still be
    /// dropped without taking it (see "Cancel safety").
    arrival: Arrival,
}

/// Where a receive's matched message is, for handing it back if the
/// request is dropped before its output is taken.
enum Arrival {
    /// No message (not matched yet, a peek, or its receive failed).
    None,
    /// Being received by MPI.
    InFlight(Matched),
    /// Written into the buffers.
    Received(Matched),
    /// Being received by MPI for a request already dropped: handed back
    /// when MPI completes it.
    Abandoned(Matched),
}

/// A matched message in a receive's buffer.
struct Matched {
    comm: Raw<ffi::MPI_Comm>,
    /// Its envelope and length from `MPI_Improbe`.
    status: ffi::MPI_Status,
    /// Its place in arrival order.
    arrival: u64,
    /// Where in the buffers MPI writes it, and its length in bytes.
    data: Raw<*const u8>,
    bytes: usize,
}

impl Matched {
    /// A copy of the message's bytes.
    ///
    /// # Safety
    ///
    /// MPI has written the message (its receive completed without error)
    /// and the buffers it was written into are still in the slot.
    unsafe fn copy(&self) -> Vec<u8> {
        // SAFETY: per the contract, `data` points at `bytes` initialised
        // bytes inside the slot's buffers, which nothing writes now.
        unsafe { std::slice::from_raw_parts(self.data.0, self.bytes) }.to_vec()
    }
}

impl<B, T, F> Slot<B, T, F>
where
    B: Send + 'static,
    T: Send + 'static,
    F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
{
    pub(crate) fn new(buffers: B, finish: F, setup: Setup, stages: Stages<B>) -> Arc<Slot<B, T, F>> {
        let slot = Arc::new(Slot {
            finished: AtomicBool::new(false),
            kind: setup.kind,
            parts: AtomicUsize::new(setup.parts),
            peers: setup.peers,
            posted: crate::engine::clock::now(),
            trace: trace_id(),
            comm: setup.comm,
            datatype: setup.datatype,
            _keep: setup.keep,
            done: Mutex::new(Done {
                buffers: Some(buffers),
                stages,
                finish: Some(finish),
                outcome: None,
                partial: None,
                waker: None,
                watchers: Vec::new(),
                resolver: None,
                arrival: Arrival::None,
            }),
        });
        if slot.trace != 0 {
            slot.on_timeline();
        }
        slot
    }

    /// Puts the operation on a runtime's timeline, posted now (completed in
    /// `complete`): one track per peer, one for collectives, one for
    /// receives from any source.
    #[cold]
    fn on_timeline(&self) {
        let name = match self.kind {
            Kind::Request => "send",
            Kind::Receive if self.parts.load(Relaxed) > 1 => "sendrecv",
            Kind::Receive => "recv",
            Kind::Collective => "collective",
        };
        let (track_label, track) = match self.peer_id() {
            _ if self.kind == Kind::Collective => ("collectives", 0),
            u64::MAX => ("any source", 0),
            rank => ("peer", rank),
        };
        weft_io::observe::op_submitted("mpi", track_label, track, name, self.trace);
    }

    /// What dumps and the timeline name this operation by: its peer's rank,
    /// or `u64::MAX` (`WaitOn::ANY`) for a collective or a receive from
    /// any source.
    fn peer_id(&self) -> u64 {
        match (self.kind, self.peers[0]) {
            (Kind::Collective, _) => u64::MAX,
            (_, rank) => u64::try_from(rank).unwrap_or(u64::MAX),
        }
    }

    /// Tells a runtime that keeps task dumps that the task being polled
    /// waits on this operation (shown as "mpi #peer").
    fn report_wait(&self) {
        weft_io::observe::waiting(weft_io::observe::Wait::Source {
            source: "mpi",
            id: self.peer_id(),
        });
    }

    /// Runs `f` on the buffers in place, to take the pointers MPI will use.
    /// They stay valid while the slot lives: the buffers do not move until
    /// the request takes them back, after `finished`.
    pub(crate) fn with_buffers<R>(&self, f: impl FnOnce(&mut B) -> R) -> R {
        let mut done = self.lock_done();
        f(done
            .buffers
            .as_mut()
            .expect("weft-mpi bug: buffers taken before MPI was done with them"))
    }

    fn lock_done(&self) -> MutexGuard<'_, Done<B, T, F>> {
        lock(&self.done)
    }

    /// Under the lock: one MPI part of the operation ended (a send's
    /// status carries no envelope: `Ok(None)`). The merged outcome once
    /// the last part has ended (MPI is then done with the buffers).
    pub(crate) fn end_part(&self, ended: Result<Option<Status>, Error>) -> Option<Outcome> {
        let merged = {
            let mut done = self.lock_done();
            let merged = match (done.partial.take(), ended) {
                (Some(Err(err)), _) | (_, Err(err)) => Err(err),
                (Some(Ok(a)), Ok(b)) => Ok(b.or(a)),
                (None, ended) => ended,
            };
            if self.parts.fetch_sub(1, AcqRel) > 1 {
                done.partial = Some(merged);
                return None;
            }
            merged
        };
        self.finished.store(true, Release);
        Some(merged.map(|status| status.unwrap_or_else(Status::empty)))
    }

    /// Takes the buffers and recipe out and makes the output (outside
    /// every lock: a recipe may call MPI).
    fn output(done: &mut Done<B, T, F>, outcome: Outcome) -> Result<T, Error> {
        let status = outcome?;
        let buffers = done
            .buffers
            .take()
            .expect("weft-mpi bug: a request's buffers were taken twice");
        let finish = done
            .finish
            .take()
            .expect("weft-mpi bug: a request's output was made twice");
        finish(buffers, status)
    }
}

impl<B, T, F> Slot<B, T, F>
where
    B: Send + 'static,
    T: Send + 'static,
    F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
{
    /// Under the MPI lock: the receive part ended (`ok`: its message is in
    /// the buffers). A request dropped meanwhile hands the message back.
    fn arrived(&self, mpi: &mut InFlight, ok: bool) {
        let mut done = self.lock_done();
        match std::mem::replace(&mut done.arrival, Arrival::None) {
            Arrival::InFlight(m) if ok => done.arrival = Arrival::Received(m),
            Arrival::Abandoned(m) => {
                drop(done);
                // SAFETY: MPI completed the receive without error; the
                // request is gone, so nothing took the buffers.
                let bytes = ok.then(|| unsafe { m.copy() });
                mpi.returned(m.comm, m.status, m.arrival, bytes);
            }
            _ => {}
        }
    }

    /// Under the MPI lock: the receive's request is dropped before its
    /// output was taken. Leaves the line if no message matched it, else
    /// hands its message back (or, while MPI still receives it, holds its
    /// place until it does).
    fn abandon_receive(&self, mpi: &mut InFlight, me: *const ()) {
        if mpi.abandon_receive(me) {
            // No message matched it: it took none.
            return;
        }
        let arrival = std::mem::replace(&mut self.lock_done().arrival, Arrival::None);
        match arrival {
            Arrival::InFlight(m) => {
                mpi.hold_place(m.comm, m.status, m.arrival);
                self.lock_done().arrival = Arrival::Abandoned(m);
            }
            Arrival::Received(m) => {
                // SAFETY: the receive part completed without error and its
                // request (the only one that takes the buffers) is being
                // dropped without having taken them.
                let bytes = unsafe { m.copy() };
                mpi.returned(m.comm, m.status, m.arrival, Some(bytes));
            }
            other => self.lock_done().arrival = other,
        }
    }
}

impl<B, T, F> Waiter for Slot<B, T, F>
where
    B: Send + 'static,
    T: Send + 'static,
    F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
{
    fn request_done(self: Arc<Self>, mpi: &mut InFlight, outcome: Outcome) -> Option<Outcome> {
        if self.kind == Kind::Collective {
            return mpi.stage_done(self, outcome);
        }
        if self.kind == Kind::Receive {
            self.arrived(mpi, outcome.is_ok());
        }
        self.end_part(outcome.map(Some))
    }

    fn complete(&self, outcome: Outcome) {
        // Whatever delivers an outcome, MPI has nothing of this slot's any
        // more (finished, failed before posting, or never matched).
        self.finished.store(true, Release);
        let ok = outcome.is_ok();
        let (waker, watchers, settle) = {
            let mut done = self.lock_done();
            if done.outcome.is_some() {
                // The first outcome stands: a collective failed by a death
                // (`Engine::peer_died`) whose request with a live peer
                // ends later, and ends the unit again.
                return;
            }
            done.outcome = Some(outcome.clone());
            let settle = done.resolver.take().map(|r| (r, Slot::output(&mut done, outcome)));
            (done.waker.take(), std::mem::take(&mut done.watchers), settle)
        };
        if self.trace != 0 {
            weft_io::observe::op_completed("mpi", self.trace, ok);
        }
        // A panic in one (a done callback, a user's waker) wakes the rest
        // all the same.
        weft_io::source::complete_each(settle, |(resolver, output)| settle_promise(resolver, output));
        weft_io::source::complete_each(watchers.into_iter().chain(waker), std::task::Waker::wake);
    }

    fn involves(&self, rank: c_int) -> bool {
        self.kind == Kind::Collective || self.peers.contains(&rank)
    }

    fn posted_at(&self) -> Option<u64> {
        Some(self.posted)
    }
}

impl<B, T, F> Staged for Slot<B, T, F>
where
    B: Send + 'static,
    T: Send + 'static,
    F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
{
    fn comm(&self) -> Raw<ffi::MPI_Comm> {
        self.comm
    }

    fn advance(self: Arc<Self>, mpi: &mut InFlight, previous: Option<Outcome>) -> Advance {
        let mut previous = previous;
        loop {
            // SAFETY: reading a constant MPI initialised.
            let null = unsafe { ffi::RSMPI_REQUEST_NULL };
            let mut post = Post {
                request: null,
                mpi: &mut *mpi,
            };
            // The stage is taken and run on the buffers under one lock.
            let (posted, more) = {
                let mut done = self.lock_done();
                let done = &mut *done;
                if matches!(previous, Some(Err(_))) {
                    done.stages.clear();
                }
                let Some(stage) = done.stages.pop() else {
                    self.finished.store(true, Release);
                    return Advance::Finished(previous.unwrap_or_else(|| Ok(Status::empty())));
                };
                let buffers = done
                    .buffers
                    .as_mut()
                    .expect("weft-mpi bug: buffers taken before MPI was done with them");
                (stage.run(buffers, self.comm.0, &mut post), !done.stages.is_empty())
            };
            let request = post.request;
            if let Err(err) = posted {
                previous = Some(Err(err));
                continue;
            }
            if request == null {
                previous = Some(Ok(Status::empty()));
                continue;
            }
            match mpi.track(Raw(request), Report::Empty, 0, self.clone()) {
                Some(outcome) => previous = Some(outcome),
                None => return Advance::Posted { more },
            }
        }
    }

    fn into_waiter(self: Arc<Self>) -> Arc<dyn Waiter> {
        self
    }
}

/// Where a receive puts a matched message: room sized to it, or checked
/// against it.
pub(crate) trait RecvTarget: Send + 'static {
    /// The size in bytes of one element (a [`Plain`](crate::Plain) type's:
    /// what MPI's datatype for it describes).
    const ITEM_SIZE: usize;

    /// Room for a message of `bytes` bytes: the start (with provenance
    /// over all of it), the element count to pass to MPI, and the room in
    /// elements; or [`Error::Truncated`] if it does not fit.
    fn room(&mut self, bytes: usize) -> Result<(*mut c_void, c_int, usize), Error>;
}

/// `sendrecv`'s buffers: the send's, and the receive's target.
impl<S: Send + 'static, R: RecvTarget> RecvTarget for (S, R) {
    const ITEM_SIZE: usize = R::ITEM_SIZE;

    fn room(&mut self, bytes: usize) -> Result<(*mut c_void, c_int, usize), Error> {
        self.1.room(bytes)
    }
}

impl<B, T, F> Receiver for Slot<B, T, F>
where
    B: RecvTarget,
    T: Send + 'static,
    F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
{
    fn item_size(&self) -> usize {
        B::ITEM_SIZE
    }

    fn receive(self: Arc<Self>, mpi: &mut InFlight, message: Unclaimed) -> Option<Outcome> {
        // The room, and the message's place in it (kept for handing the
        // message back if the request is dropped), under one lock.
        let room = crate::status::message_bytes(&message.status).and_then(|bytes| {
            let mut done = self.lock_done();
            let buffers = done
                .buffers
                .as_mut()
                .expect("weft-mpi bug: buffers taken before MPI was done with them");
            let (ptr, count, capacity) = buffers.room(bytes)?;
            done.arrival = Arrival::InFlight(Matched {
                comm: message.comm,
                status: message.status,
                arrival: message.arrival,
                data: Raw(ptr.cast_const().cast::<u8>()),
                bytes,
            });
            Ok((ptr, count, capacity, bytes))
        });
        let (ptr, count, capacity, bytes) = match room {
            Ok(room) => room,
            Err(err) => {
                // Unmeasurable, or too long for the buffer: received
                // elsewhere and dropped (consumed, as MPI's truncated
                // receive does), never written past the buffer.
                mpi.drop_unclaimed(message);
                return Some(Err(err));
            }
        };
        match message.held {
            Held::Matched(mut handle) => {
                // SAFETY: reading a constant MPI initialised.
                let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
                // SAFETY: the MPI lock is held (`&mut InFlight`); the message
                // matched in this process and is received once; `ptr` has
                // room for `count` elements of the datatype (checked or
                // sized above) and stays put in this slot until MPI is done.
                let rc = unsafe { ffi::MPI_Imrecv(ptr, count, self.datatype.0, &mut handle.0, &mut request) };
                if let Err(err) = check(rc) {
                    self.lock_done().arrival = Arrival::None;
                    return Some(Err(err));
                }
                let report = Report::Known(Status::of_message(&message.status, bytes, B::ITEM_SIZE));
                mpi.track(Raw(request), report, capacity, self.clone())
            }
            Held::Received(data) => {
                // The room holds `bytes`, the message's length, which is
                // what was received.
                let n = data.len().min(bytes);
                // SAFETY: `ptr` has room for at least `bytes` bytes (sized or
                // checked above), inside this slot's buffers, which no one
                // else touches while the receive is in the engine's hands;
                // `data` is a separate allocation.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), ptr.cast::<u8>(), n) };
                Some(Ok(Status::of_message(&message.status, bytes, B::ITEM_SIZE)))
            }
            Held::Arriving => panic!("weft-mpi bug: a receive was given a message MPI is still receiving"),
        }
    }

    fn into_waiter(self: Arc<Self>) -> Arc<dyn Waiter> {
        self
    }
}

/// The send half of a `sendrecv`: ends one part of its slot.
pub(crate) struct SendPart<S> {
    pub(crate) slot: Arc<S>,
}

impl<B, T, F> Waiter for SendPart<Slot<B, T, F>>
where
    B: Send + 'static,
    T: Send + 'static,
    F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
{
    fn request_done(self: Arc<Self>, _: &mut InFlight, outcome: Outcome) -> Option<Outcome> {
        self.slot.end_part(outcome.map(|_| None))
    }

    fn complete(&self, outcome: Outcome) {
        self.slot.complete(outcome);
    }

    fn involves(&self, rank: c_int) -> bool {
        self.slot.involves(rank)
    }
}

/// The request's side of a slot, whatever its buffers.
trait Pending<T>: Send + Sync {
    fn is_finished(&self) -> bool;
    fn is_receive(&self) -> bool;
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, Error>>;
    fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>>;
    fn outcome(&self) -> Option<Result<(), Error>>;
    fn set_resolver(&self, resolver: Resolver<Completed<T>>);
    fn into_watch(self: Arc<Self>) -> Arc<dyn Watch>;
    /// Under the MPI lock: the request is dropped before its output was
    /// taken; a receive leaves the line, or hands its message back.
    fn abandon(&self, mpi: &mut InFlight, me: *const ());
}

/// A [`Completion`]'s view of a slot.
trait Watch: Send + Sync {
    fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>>;
}

impl<B, T, F> Pending<T> for Slot<B, T, F>
where
    B: Send + 'static,
    T: Send + 'static,
    F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
{
    fn is_finished(&self) -> bool {
        self.finished.load(Acquire)
    }

    fn is_receive(&self) -> bool {
        self.kind == Kind::Receive
    }

    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let mut done = self.lock_done();
        match done.outcome.clone() {
            Some(outcome) => Poll::Ready(Slot::output(&mut done, outcome)),
            None => {
                self.report_wait();
                match &mut done.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    registered => *registered = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut done = self.lock_done();
        match &done.outcome {
            Some(outcome) => Poll::Ready(outcome.clone().map(drop)),
            None => {
                self.report_wait();
                if !done.watchers.iter().any(|w| w.will_wake(cx.waker())) {
                    done.watchers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    fn outcome(&self) -> Option<Result<(), Error>> {
        self.lock_done().outcome.clone().map(|o| o.map(drop))
    }

    fn set_resolver(&self, resolver: Resolver<Completed<T>>) {
        let ready = {
            let mut done = self.lock_done();
            match done.outcome.clone() {
                Some(outcome) => Some(Slot::output(&mut done, outcome)),
                None => {
                    done.resolver = Some(resolver);
                    return;
                }
            }
        };
        if let Some(output) = ready {
            settle_promise(resolver, output);
        }
    }

    fn into_watch(self: Arc<Self>) -> Arc<dyn Watch> {
        self
    }

    fn abandon(&self, mpi: &mut InFlight, me: *const ()) {
        if self.kind == Kind::Receive {
            self.abandon_receive(mpi, me);
        }
    }
}

impl<B, T, F> Watch for Slot<B, T, F>
where
    B: Send + 'static,
    T: Send + 'static,
    F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
{
    fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pending::poll_complete(self, cx)
    }
}

fn settle_promise<T>(resolver: Resolver<Completed<T>>, output: Result<T, Error>) {
    match output {
        Ok(value) => {
            let _ = resolver.set_result(Completed {
                value: Arc::new(Mutex::new(Some(value))),
            });
        }
        Err(err) => {
            let _ = resolver.set_exception(err);
        }
    }
}

/// An MPI operation in flight (mpi4py's `Request`): posted when the method
/// that returned it returned, awaited for its output.
///
/// Await it (`.await` gives the output: the buffer back for a send, the
/// data and [`Status`] for a receive, the result of a collective), test it
/// ([`is_done`](Self::is_done)), wait for many at once through
/// [`completion`](Self::completion) ([`wait_all`], [`wait_any`], or Weft's
/// `gather`/`wait_until`), or turn it into a [`Promise`] with done
/// callbacks. Dropping it never frees a buffer MPI still uses: an
/// unmatched receive leaves the line (it takes no message); everything
/// else runs to completion in the engine.
///
/// A receive dropped at any await loses no message: one dropped after
/// its message matched, before its output was taken, hands the message to
/// the next matching receive on its communicator, ahead of anything that
/// arrived later (see the module's "Cancel safety"). So a new
/// `comm.recv(..)` each round of a `select!`, `race` or `timeout` loop is
/// safe.
#[must_use = "the operation is posted already; await it for its output"]
pub struct Request<T: Send + 'static> {
    shared: Option<Arc<Shared>>,
    state: State<T>,
}

enum State<T> {
    /// Complete before it needed a slot (done at once, or failed before
    /// MPI saw it): no allocation, no lock.
    Ready(Result<T, Error>),
    /// In the engine's hands, or done there.
    Pending(Arc<dyn Pending<T>>),
    /// Awaited to the end, or turned into a promise.
    Taken,
}

impl<T: Send + 'static> Request<T> {
    /// A request whose slot the engine holds.
    pub(crate) fn pending<B, F>(shared: Arc<Shared>, slot: Arc<Slot<B, T, F>>) -> Request<T>
    where
        B: Send + 'static,
        F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
    {
        Request {
            shared: Some(shared),
            state: State::Pending(slot),
        }
    }

    /// A request already complete (or failed before MPI saw it).
    pub(crate) fn ready(output: Result<T, Error>) -> Request<T> {
        Request {
            shared: None,
            state: State::Ready(output),
        }
    }

    /// The output of a request complete before it needed a slot, taken;
    /// `None` otherwise.
    pub(crate) fn ready_output(mut self) -> Option<Result<T, Error>> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Ready(output) => Some(output),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// True once the operation has completed (mpi4py's `Request.Test`):
    /// awaiting it then returns at once.
    pub fn is_done(&self) -> bool {
        match &self.state {
            State::Ready(_) | State::Taken => true,
            State::Pending(slot) => slot.outcome().is_some(),
        }
    }

    /// A handle that completes when this request does, with nothing but
    /// whether it failed: the one type for waiting on many operations of
    /// different kinds at once (sends, receives, collectives), with
    /// [`wait_all`], [`wait_any`] or Weft's `gather`/`wait_until`. Await
    /// the request itself afterwards for its output (at once).
    pub fn completion(&self) -> Completion {
        match &self.state {
            State::Ready(output) => Completion::ready(output.as_ref().map(drop).map_err(Clone::clone)),
            State::Taken => Completion::ready(Ok(())),
            State::Pending(slot) => Completion {
                shared: self.shared.clone(),
                state: CompletionState::Watch(slot.clone().into_watch()),
            },
        }
    }

    /// The operation as a Weft [`Promise`]: done callbacks
    /// (`add_done_callback`), `wait`, `result`, composition with `gather`
    /// and the rest of the asyncio-style API. The promise settles with a
    /// [`Completed`] holding the output, or fails with the [`Error`].
    ///
    /// Cancelling the promise does not cancel the MPI operation (it runs
    /// to completion and the output waits in the `Completed`).
    pub fn into_promise(mut self) -> Promise<Completed<T>> {
        let (resolver, promise) = Promise::channel();
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Ready(output) => settle_promise(resolver, output),
            State::Taken => panic!("weft-mpi: an MPI request turned into a promise after it completed"),
            State::Pending(slot) => slot.set_resolver(resolver),
        }
        promise
    }
}

// Nothing in a request is pinned: its buffers live in the slot, behind an
// `Arc`.
impl<T: Send + 'static> Unpin for Request<T> {}

impl<T: Send + 'static> Future for Request<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = match &this.state {
            State::Ready(_) => {
                let State::Ready(output) = std::mem::replace(&mut this.state, State::Taken) else {
                    unreachable!()
                };
                return Poll::Ready(output);
            }
            State::Taken => panic!("weft-mpi: an MPI request polled after it completed"),
            State::Pending(slot) => slot,
        };
        let _clock = crate::engine::clock::scope();
        if !slot.is_finished() {
            if let Some(shared) = &this.shared {
                // Posted under one runtime (or none), awaited under
                // another: make sure this one polls the engine. With no
                // runtime here nothing would (the request stays with MPI).
                if let Err(err) = shared.register() {
                    if slot.outcome().is_none() {
                        this.state = State::Taken;
                        return Poll::Ready(Err(err));
                    }
                }
                // Engine rule 7: while messages flow, make progress here
                // for a moment before parking.
                if shared.engine.spin_until(|| slot.is_finished()) {
                    shared.notify();
                }
            }
        }
        let output = std::task::ready!(slot.poll_output(cx));
        this.state = State::Taken;
        Poll::Ready(output)
    }
}

impl<T: Send + 'static> Drop for Request<T> {
    fn drop(&mut self) {
        let State::Pending(slot) = &self.state else { return };
        if !slot.is_receive() {
            return;
        }
        // Dropped before its output was taken: a receive no message has
        // matched leaves the line; one that matched hands its message back
        // (see "Cancel safety"); MPI completes what it holds on its own.
        if let Some(shared) = &self.shared {
            let me = Arc::as_ptr(slot).cast::<()>();
            shared.engine.with_mpi(|mpi| slot.abandon(mpi, me));
        }
    }
}

impl<T: Send + 'static> fmt::Debug for Request<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request").field("done", &self.is_done()).finish()
    }
}

/// What a request's [`Promise`] settles with: the output, for whoever
/// takes it first.
pub struct Completed<T> {
    value: Arc<Mutex<Option<T>>>,
}

impl<T> Completed<T> {
    /// Takes the output; `None` if a clone took it already.
    pub fn take(&self) -> Option<T> {
        lock(&self.value).take()
    }
}

impl<T> Clone for Completed<T> {
    fn clone(&self) -> Completed<T> {
        Completed {
            value: self.value.clone(),
        }
    }
}

impl<T> fmt::Debug for Completed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completed").finish_non_exhaustive()
    }
}

/// Completes when its [`Request`] does ([`Request::completion`]), with
/// `Ok(())` or the request's error: one type for every kind of operation,
/// so a mix of sends, receives and collectives can be waited on together.
/// Cloning it is cheap; dropping it changes nothing.
#[must_use = "futures do nothing unless awaited"]
#[derive(Clone)]
pub struct Completion {
    shared: Option<Arc<Shared>>,
    state: CompletionState,
}

#[derive(Clone)]
enum CompletionState {
    Ready(Result<(), Error>),
    Watch(Arc<dyn Watch>),
}

impl Completion {
    fn ready(outcome: Result<(), Error>) -> Completion {
        Completion {
            shared: None,
            state: CompletionState::Ready(outcome),
        }
    }
}

impl Future for Completion {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &self.state {
            CompletionState::Ready(outcome) => Poll::Ready(outcome.clone()),
            CompletionState::Watch(watch) => {
                if let Some(shared) = &self.shared {
                    let _ = shared.register();
                }
                watch.poll_complete(cx)
            }
        }
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion").finish_non_exhaustive()
    }
}

/// Waits until every operation has completed (mpi4py's
/// `Request.Waitall`): `Ok(())`, or the first error in the order given,
/// once all are done. Their outputs wait in their requests.
///
/// # Errors
///
/// The first failed operation's [`Error`].
pub async fn wait_all(completions: impl IntoIterator<Item = Completion>) -> Result<(), Error> {
    let outcomes = weft_executor::future::gather(completions.into_iter().map(OkAlways))
        .await
        .unwrap_or_else(|never: std::convert::Infallible| match never {});
    outcomes.into_iter().collect()
}

/// Waits until one operation has completed (mpi4py's `Request.Waitany`):
/// its index in the order given and whether it failed. `None` for an empty
/// list.
pub async fn wait_any(completions: impl IntoIterator<Item = Completion>) -> Option<(usize, Result<(), Error>)> {
    let mut set = weft_executor::future::as_completed(completions);
    set.next().await
}

/// A completion whose failure is a value, for `gather` (which stops at the
/// first error: `wait_all` waits for all).
struct OkAlways(Completion);

impl Future for OkAlways {
    type Output = Result<Result<(), Error>, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(Ok)
    }
}

/// A process-unique id for an operation on a runtime's timeline, or 0
/// while none records (the common case: one check).
fn trace_id() -> u64 {
    if !weft_io::observe::recording() {
        return 0;
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
