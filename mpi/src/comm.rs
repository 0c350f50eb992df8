//! [`Communicator`]: point-to-point operations, posted when made (the
//! collectives are in `collective.rs`, topologies in `topology.rs`).

use crate::agreement::{Hidden, PointToPoint};
use crate::buffer::{Element, Plain, RecvBuffer, SendBuffer};
use crate::engine::{Engine, InFlight, Raw, Report, WaitingReceive};
use crate::env::Shared;
use crate::envelope::{Peer, Tag};
use crate::error::Error;
use crate::request::{Kind, RecvTarget, Request, SendPart, Setup, Slot, Stages};
use crate::status::Status;
use mpi::ffi;
use mpi::raw::AsRaw;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::os::raw::{c_int, c_void};
use std::sync::Arc;

/// A communicator usable from any task on any worker (it is `Send`,
/// `Sync` and cheap to clone): every call is funnelled through the
/// progress engine's lock, so MPI sees one call at a time.
///
/// Every operation is posted by the method that returns its [`Request`]
/// (as `MPI_Isend`, `MPI_Irecv` and `MPI_Iallreduce` are), tested once
/// eagerly, and then completed by the loop; await the request when you
/// need its output, in any order. So mpi4py's order works as it does
/// there:
///
/// ```no_run
/// # let mpi = weft_mpi::Mpi::init()?;
/// # let world = mpi.world();
/// # let rt = weft::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let peer = 1 - world.rank();
/// let incoming = world.recv::<u8>(peer, 0); // posted now
/// let outgoing = world.isend(vec![7u8; 1 << 24], peer, 0); // posted now
/// outgoing.await?; // completes: the peer's receive was posted first
/// let (data, _) = incoming.await?;
/// # Ok::<(), weft_mpi::Error>(())
/// # })?;
/// # Ok::<(), weft_mpi::Error>(())
/// ```
///
/// A receive dropped at any await loses no message: one dropped after its
/// message matched, before its output was taken, hands the message to the
/// next receive on this communicator that matches, ahead of anything that
/// arrived after it, so a loop may make a new receive each round of a
/// `select!`, `race` or `timeout` (see [`Request`]).
#[derive(Clone)]
pub struct Communicator {
    pub(crate) shared: Arc<Shared>,
    pub(crate) raw: Raw<ffi::MPI_Comm>,
    rank: i32,
    size: i32,
    /// Frees a duplicated communicator when its last clone, and the last
    /// operation on it, has gone (the world duplicate is freed by
    /// `Shared`).
    pub(crate) owned: Option<Arc<Owned>>,
    /// Each rank's world rank, for ringing doorbells (`doorbell.rs`);
    /// `None` for the world itself (the same ranks).
    world_ranks: Option<Arc<[i32]>>,
    /// Its hidden twin, where the collectives' agreements run point to
    /// point (`agreement.rs`), with what a unit's steps post with: one
    /// per communicator, shared by its units.
    pub(crate) agreement: Arc<PointToPoint>,
}

/// A communicator this crate made (`MPI_Comm_idup`), with its hidden
/// twin: operations on it hold it, and its drop hands both to the engine
/// to free (engine rule 9).
pub(crate) struct Owned {
    pub(crate) engine: Arc<Engine>,
    pub(crate) raw: Raw<ffi::MPI_Comm>,
    pub(crate) hidden: Raw<ffi::MPI_Comm>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.engine.retire(self.raw);
        self.engine.retire(self.hidden);
    }
}

/// Each rank of `comm` (of `size` ranks) as a rank of `world`, for the
/// doorbells; `None` if MPI cannot say (then sends on it do not ring).
/// Call under the MPI lock.
pub(crate) fn world_ranks(comm: Raw<ffi::MPI_Comm>, world: Raw<ffi::MPI_Comm>, size: i32) -> Option<Arc<[i32]>> {
    // SAFETY: reading a constant MPI initialised.
    let null = unsafe { ffi::RSMPI_GROUP_NULL };
    let (mut group, mut world_group) = (null, null);
    let ranks: Vec<c_int> = (0..size).collect();
    let mut out = vec![0 as c_int; ranks.len()];
    // SAFETY: the caller holds the lock; both communicators are live; the
    // arrays hold `size` ranks each; the groups made here are freed here.
    let ok = unsafe {
        let ok = ffi::MPI_Comm_group(comm.0, &mut group) == ffi::MPI_SUCCESS as c_int
            && ffi::MPI_Comm_group(world.0, &mut world_group) == ffi::MPI_SUCCESS as c_int
            && ffi::MPI_Group_translate_ranks(group, size, ranks.as_ptr(), world_group, out.as_mut_ptr())
                == ffi::MPI_SUCCESS as c_int;
        for g in [&mut group, &mut world_group] {
            if *g != null {
                ffi::MPI_Group_free(g);
            }
        }
        ok
    };
    ok.then(|| out.into())
}

/// `T`'s datatype handle; it stays valid after the `Out` is dropped, since
/// an [`Element`]'s is a `DatatypeRef<'static>` (`buffer.rs`).
pub(crate) fn datatype<T: Element>() -> Raw<ffi::MPI_Datatype> {
    Raw(T::equivalent_datatype().as_raw())
}

pub(crate) fn count(len: usize) -> Result<c_int, Error> {
    c_int::try_from(len).map_err(|_| Error::TooLarge { len })
}

/// Elements of `T` needed to hold `bytes` bytes.
fn elements_for<T>(bytes: usize) -> usize {
    bytes.div_ceil(std::mem::size_of::<T>().max(1))
}

pub(crate) fn rank_error(message: String) -> Error {
    Error::Mpi {
        code: ffi::MPI_ERR_RANK as i32,
        class: ffi::MPI_ERR_RANK as i32,
        message,
    }
}

fn tag_error(message: String) -> Error {
    Error::Mpi {
        code: ffi::MPI_ERR_TAG as i32,
        class: ffi::MPI_ERR_TAG as i32,
        message,
    }
}

impl Communicator {
    pub(crate) fn world(shared: Arc<Shared>) -> Communicator {
        Communicator {
            raw: shared.world,
            rank: shared.rank,
            size: shared.size,
            agreement: Arc::new(PointToPoint::new(
                shared.hidden.clone(),
                shared.agreement.datatype,
                None,
                (shared.rank, shared.size),
            )),
            shared,
            owned: None,
            world_ranks: None,
        }
    }

    /// A communicator over the same ranks for `raw` (and `hidden`, its
    /// twin), owned by this crate.
    pub(crate) fn owned(
        shared: Arc<Shared>,
        (raw, hidden): (Raw<ffi::MPI_Comm>, Raw<ffi::MPI_Comm>),
        rank: i32,
        size: i32,
    ) -> Communicator {
        // A translation MPI refuses leaves no rank to ring (not the world's).
        let world_ranks = shared
            .engine
            .with_mpi(|_| world_ranks(raw, shared.world, size))
            .or_else(|| Some(Arc::from(Vec::new())));
        let owned = Arc::new(Owned {
            engine: shared.engine.clone(),
            raw,
            hidden,
        });
        Communicator {
            world_ranks,
            agreement: Arc::new(PointToPoint::new(
                Arc::new(Hidden::new(hidden)),
                shared.agreement.datatype,
                Some(owned.clone()),
                (rank, size),
            )),
            owned: Some(owned),
            shared,
            raw,
            rank,
            size,
        }
    }

    /// This host's name as MPI knows it (`MPI_Get_processor_name`).
    pub fn processor_name(&self) -> String {
        crate::env::processor_name(&self.shared)
    }

    /// This process's rank in the communicator.
    pub fn rank(&self) -> i32 {
        self.rank
    }

    /// Ranks in the communicator.
    pub fn size(&self) -> i32 {
        self.size
    }

    /// A slot for an operation on this communicator (it holds the
    /// communicator until MPI is done).
    pub(crate) fn slot<B, T, F>(
        &self,
        buffers: B,
        finish: F,
        (kind, parts, peers): (Kind, usize, [c_int; 2]),
        datatype: Raw<ffi::MPI_Datatype>,
        stages: Stages<B>,
    ) -> Arc<Slot<B, T, F>>
    where
        B: Send + 'static,
        T: Send + 'static,
        F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
    {
        let setup = Setup {
            kind,
            parts,
            peers,
            comm: self.raw,
            keep: self.owned.clone(),
            datatype,
        };
        Slot::new(buffers, finish, setup, stages)
    }

    /// Fails at once an operation with a rank the death notice says died
    /// (`liveness.rs`, rule 3).
    fn check_alive(&self, peer: Peer) -> Result<(), Error> {
        if let Peer::Rank(rank) = peer {
            if self.shared.deaths.is_dead(rank) {
                return Err(Error::PeerDied(rank));
            }
        }
        Ok(())
    }

    /// Runs `f` under the MPI lock for a post, then wakes the loop if the
    /// post may find it asleep (engine rule 6).
    pub(crate) fn posting<R>(&self, f: impl FnOnce(&mut InFlight) -> R) -> R {
        let (result, wake) = self.shared.engine.posting(f);
        if wake {
            self.shared.notify();
        }
        result
    }

    /// Runs `f` under the MPI lock to post a collective, then wakes the
    /// loop if the post may find it asleep, and then, since this rank was
    /// idle and its peers may be too, rings every other rank on this host
    /// (`doorbell.rs`, rules 2 and 3): a collective completes only once
    /// every rank's loop has polled it.
    pub(crate) fn posting_collective<R>(&self, f: impl FnOnce(&mut InFlight) -> R) -> R {
        // One reading for the post and the rings to every rank.
        let _clock = crate::engine::clock::scope();
        let (result, wake) = self.shared.engine.posting(f);
        if wake {
            self.shared.notify();
            for rank in 0..self.size {
                self.ring(rank);
            }
        }
        result
    }

    /// After posting a send to `dest` (a rank here): rings its doorbell
    /// (`doorbell.rs`, rule 2), so its loop, if it sleeps between polls,
    /// wakes (unless it was rung within the spin window).
    fn ring(&self, dest: c_int) {
        if let Some(world) = self.world_peer(dest) {
            self.shared.engine.ring(world);
        }
    }

    /// Right before posting a send to `dest` (a rank here): rings its
    /// doorbell if it was not rung for so long that it likely sleeps, so
    /// its wake-up overlaps the post (`doorbell.rs`, rule 2). True if the
    /// send must call [`Communicator::ring`] after posting.
    fn ring_before_send(&self, dest: c_int) -> bool {
        self.world_peer(dest)
            .is_some_and(|world| self.shared.engine.ring_before_send(world))
    }

    /// The world rank of `dest` (a rank here), if it is another rank.
    fn world_peer(&self, dest: c_int) -> Option<c_int> {
        if dest < 0 || dest == self.rank {
            return None;
        }
        match &self.world_ranks {
            None => Some(dest),
            Some(ranks) => usize::try_from(dest).ok().and_then(|d| ranks.get(d)).copied(),
        }
    }

    /// A destination and tag a message can be sent with.
    fn check_send(&self, dest: Peer, tag: Tag) -> Result<(), Error> {
        match dest {
            Peer::Any => {
                return Err(rank_error(
                    "weft-mpi: a send needs one rank (or PROC_NULL), not ANY_SOURCE".into(),
                ));
            }
            Peer::Rank(rank) if !(0..self.size).contains(&rank) => {
                return Err(rank_error(format!(
                    "weft-mpi: no rank {rank} in a communicator of {} ranks",
                    self.size
                )));
            }
            _ => {}
        }
        match tag {
            Tag::Any => Err(tag_error("weft-mpi: a send needs a tag, not ANY_TAG".into())),
            Tag::Value(tag) if tag < 0 => Err(tag_error(format!(
                "weft-mpi: tag {tag} is negative; tags are 0 to MPI_TAG_UB"
            ))),
            _ => Ok(()),
        }
    }

    /// A receive's source and tag must be ones a message can carry: the
    /// engine matches receives itself, so a bad one would wait forever
    /// rather than fail inside MPI.
    fn check_receive(&self, source: Peer, tag: Tag) -> Result<(), Error> {
        if let Peer::Rank(rank) = source {
            if !(0..self.size).contains(&rank) {
                return Err(rank_error(format!(
                    "weft-mpi: no rank {rank} in a communicator of {} ranks",
                    self.size
                )));
            }
        }
        if let Tag::Value(tag) = tag {
            if tag < 0 {
                return Err(tag_error(format!(
                    "weft-mpi: tag {tag} is negative; tags are 0 to MPI_TAG_UB"
                )));
            }
        }
        Ok(())
    }

    // ----- point to point -------------------------------------------------

    /// Sends `data` to `dest` with `tag`, copying it first (so the caller's
    /// slice is free at once); completes when MPI is done with the copy.
    /// For large messages use [`isend`](Self::isend) with an owned buffer,
    /// which does not copy.
    pub fn send<T: Element + Copy + Send + 'static>(
        &self,
        data: &[T],
        dest: impl Into<Peer>,
        tag: impl Into<Tag>,
    ) -> Request<()> {
        self.isend_then(data.to_vec(), dest.into(), tag.into(), |_, _| Ok(()))
    }

    /// Sends an owned buffer without copying (`MPI_Isend`); awaiting gives
    /// it back.
    ///
    /// # Errors
    ///
    /// The request fails with an MPI error (a bad rank or tag) or
    /// [`Error::TooLarge`].
    pub fn isend<B: SendBuffer>(&self, buffer: B, dest: impl Into<Peer>, tag: impl Into<Tag>) -> Request<B> {
        self.isend_then(buffer, dest.into(), tag.into(), |b, _| Ok(b))
    }

    /// Posts a send and leaves it to the engine (no request to await), with
    /// or without a runtime here: a loop that polls the engine completes
    /// it, or finalizing does. Only errors found while posting come back.
    pub(crate) fn isend_detached<B: SendBuffer>(&self, buffer: B, dest: i32, tag: i32) -> Result<(), Error> {
        match self.isend_then(buffer, Peer::Rank(dest), Tag::Value(tag), |_, _| Ok(())) {
            request if request.is_done() => request.ready_output().unwrap_or(Ok(())),
            _ => Ok(()),
        }
    }

    /// `isend` whose request's output `finish` makes from the buffer.
    fn isend_then<B, T, F>(&self, buffer: B, dest: Peer, tag: Tag, finish: F) -> Request<T>
    where
        B: SendBuffer,
        T: Send + 'static,
        F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
    {
        let _clock = crate::engine::clock::scope();
        self.shared.register_if_running();
        let checked = self.check_send(dest, tag).and_then(|()| self.check_alive(dest));
        if let Err(err) = checked {
            return Request::ready(Err(err));
        }
        let n = match count(buffer.as_slice().len()) {
            Ok(n) => n,
            Err(err) => return Request::ready(Err(err)),
        };
        let dt = datatype::<B::Item>();
        let (dest, tag) = (dest.raw(), tag.raw());
        let ring_after = self.ring_before_send(dest);
        let request = self.post(buffer, (dt, dest), finish, move |b, comm, request| {
            // SAFETY: the MPI lock is held (inside `post`); the slice lives
            // on the heap, owned by the buffer, unmoved until MPI is done
            // (`SendBuffer`'s contract).
            unsafe {
                ffi::MPI_Isend(
                    b.as_slice().as_ptr().cast::<c_void>(),
                    n,
                    dt.get(),
                    dest,
                    tag,
                    comm,
                    request,
                )
            }
        });
        if ring_after {
            self.ring(dest);
        }
        request
    }

    /// Posts one request: lets `start` post it with pointers into
    /// `buffers` (under the MPI lock), tests it once, and if it is still
    /// pending moves the buffers into a slot (their elements stay put: a
    /// [`SendBuffer`] keeps them on the heap) queued with the engine. A
    /// request done at once costs no allocation.
    fn post<B, T, F>(
        &self,
        buffers: B,
        (datatype, peer): (Raw<ffi::MPI_Datatype>, c_int),
        finish: F,
        start: impl FnOnce(&mut B, ffi::MPI_Comm, *mut ffi::MPI_Request) -> c_int,
    ) -> Request<T>
    where
        B: Send + 'static,
        T: Send + 'static,
        F: FnOnce(B, Status) -> Result<T, Error> + Send + 'static,
    {
        let mut buffers = Some(buffers);
        let mut finish = Some(finish);
        let queued = self.posting(|mpi| {
            // SAFETY: reading a constant MPI initialised.
            let mut request = Raw(unsafe { ffi::RSMPI_REQUEST_NULL });
            let b = buffers.as_mut().expect("buffers before posting");
            if let Err(err) = crate::error::check(start(b, self.raw.0, &mut request.0)) {
                return Err(Err(err));
            }
            match mpi.test_once(&mut request, Report::Empty, 0) {
                Some(outcome) => Err(outcome),
                None => {
                    let b = buffers.take().expect("buffers before queueing");
                    let f = finish.take().expect("the recipe before queueing");
                    let slot = self.slot(b, f, (Kind::Request, 1, [peer, -1]), datatype, Stages::none());
                    mpi.queue(request, Report::Empty, 0, slot.clone());
                    Ok(slot)
                }
            }
        });
        match queued {
            Ok(slot) => Request::pending(self.shared.clone(), slot),
            Err(outcome) => {
                let (b, f) = (buffers.expect("not queued"), finish.expect("not queued"));
                Request::ready(outcome.and_then(|status| f(b, status)))
            }
        }
    }

    /// Receives a message from `source` with `tag` (either may be `ANY_*`)
    /// into a vector sized to fit it (mpi4py's `irecv`): the message is
    /// matched first (`MPI_Improbe`), so no message is too long. Posted now;
    /// dropped before a message matched, it takes none; dropped after (at
    /// any await, before its output was taken), it hands the message back
    /// to the next receive that matches: a new `recv` each round of a
    /// `select!` or `race` loop loses no message ([`Request`]'s "cancel
    /// safety").
    ///
    /// # Errors
    ///
    /// The request fails with an MPI error (a bad rank or tag).
    pub fn recv<T: Plain>(&self, source: impl Into<Peer>, tag: impl Into<Tag>) -> Request<(Vec<T>, Status)> {
        self.receive(
            Spare(Vec::<T>::new()),
            datatype::<T>(),
            source.into(),
            tag.into(),
            false,
            |spare, status| Ok((spare.filled(&status), status)),
        )
    }

    /// Receives into `buffer` (its whole length is the room). A message
    /// longer than that is received elsewhere and dropped, and the request
    /// fails with [`Error::Truncated`]: the buffer is never written past
    /// (Open MPI 4.1 would, with a plain `MPI_Irecv`; the message is
    /// matched and measured first). Posted now, and dropped without losing a
    /// message, as [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`], or an MPI error.
    pub fn recv_into<B>(&self, buffer: B, source: impl Into<Peer>, tag: impl Into<Tag>) -> Request<(B, Status)>
    where
        B: RecvBuffer,
        B::Item: Plain,
    {
        self.receive(
            Whole(buffer),
            datatype::<B::Item>(),
            source.into(),
            tag.into(),
            false,
            |Whole(b), status| Ok((b, status)),
        )
    }

    /// Waits for a message from `source` with `tag` without receiving it;
    /// its [`Status`] gives the sender, tag and length (in `T`s). The next
    /// receive that matches it gets it (with `ANY_*` receives around,
    /// another task's receive may take it first).
    ///
    /// # Errors
    ///
    /// An MPI error.
    pub fn probe<T: Plain>(&self, source: impl Into<Peer>, tag: impl Into<Tag>) -> Request<Status> {
        self.receive(
            Spare(Vec::<T>::new()),
            datatype::<T>(),
            source.into(),
            tag.into(),
            true,
            |_, status| Ok(status),
        )
    }

    /// Checks once for a matching message, without receiving it.
    ///
    /// # Errors
    ///
    /// An MPI error.
    pub fn try_probe<T: Element>(&self, source: impl Into<Peer>, tag: impl Into<Tag>) -> Result<Option<Status>, Error> {
        let (source, tag) = (source.into(), tag.into());
        self.check_receive(source, tag)?;
        if source == Peer::Null {
            return Ok(Some(Status::null_peer()));
        }
        let (source, tag) = (source.raw(), tag.raw());
        self.shared.engine.with_mpi(|mpi| {
            // Counted as a receive of `T`s would count them (whole ones).
            let item = crate::status::type_size(datatype::<T>());
            // Messages the engine pulled for other receives come first
            // (they arrived first).
            if let Some(status) = mpi.peek_unclaimed(source, tag, self.raw) {
                return Ok(Some(Status::from_raw(&status, item)));
            }
            let found = crate::engine::iprobe(source, tag, self.raw)?;
            Ok(found.map(|status| Status::from_raw(&status, item)))
        })
    }

    /// Starts a receive (or, with `peek`, a probe) into `target`: the
    /// engine matches it against arrived messages now or as they come, and
    /// posts its `MPI_Imrecv` the moment one matches (engine rule 5).
    fn receive<X, T, F>(
        &self,
        target: X,
        dt: Raw<ffi::MPI_Datatype>,
        source: Peer,
        tag: Tag,
        peek: bool,
        finish: F,
    ) -> Request<T>
    where
        X: RecvTarget,
        T: Send + 'static,
        F: FnOnce(X, Status) -> Result<T, Error> + Send + 'static,
    {
        // A receive from a rank known dead still takes what it sent before
        // it died (`start_receive`).
        let _clock = crate::engine::clock::scope();
        self.shared.register_if_running();
        if let Err(err) = self.check_receive(source, tag) {
            return Request::ready(Err(err));
        }
        if source == Peer::Null {
            return Request::ready(finish(target, Status::null_peer()));
        }
        let slot = self.slot(
            target,
            finish,
            (Kind::Receive, 1, [source.raw(), -1]),
            dt,
            Stages::none(),
        );
        self.posting(|mpi| self.start_receive(mpi, slot.clone(), source, tag, peek));
        Request::pending(self.shared.clone(), slot)
    }

    /// Under the lock: a receive for `slot` joins the engine's matching.
    fn start_receive<R: crate::engine::Receiver + 'static>(
        &self,
        mpi: &mut InFlight,
        slot: Arc<R>,
        source: Peer,
        tag: Tag,
        peek: bool,
    ) {
        let receive = WaitingReceive {
            source: source.raw(),
            tag: tag.raw(),
            comm: self.raw,
            receiver: slot.clone(),
            peek,
        };
        // While tasks help (engine rule 7) the awaiting task's own poll
        // probes next; otherwise probe now (and always for a dead source,
        // whose last messages may still be waiting).
        let dead = mpi.is_dead(source.raw());
        let probe_now = dead || !self.shared.engine.helping();
        let me = Arc::as_ptr(&slot).cast::<()>();
        if let Some(outcome) = mpi.start_receive(receive, probe_now) {
            mpi.settle(slot.into_waiter(), outcome);
        } else if dead && mpi.abandon_unless_returning(me) {
            // Nothing it sent waits: nothing more will come.
            mpi.settle(slot.into_waiter(), Err(Error::PeerDied(source.raw())));
        }
    }

    /// Sends `data` to `dest` and receives a message from `source` into a
    /// vector sized to fit it, both posted now (`MPI_Sendrecv`, mpi4py's
    /// `sendrecv`); the request completes when both have. Either peer may
    /// be [`PROC_NULL`](crate::PROC_NULL) (an edge of a non-periodic halo exchange): that
    /// half does nothing.
    ///
    /// # Errors
    ///
    /// The first MPI error of either half, or [`Error::TooLarge`].
    pub fn sendrecv<B, R>(
        &self,
        data: B,
        dest: impl Into<Peer>,
        send_tag: impl Into<Tag>,
        source: impl Into<Peer>,
        recv_tag: impl Into<Tag>,
    ) -> Request<(Vec<R>, Status)>
    where
        B: SendBuffer,
        R: Plain,
    {
        let (dest, send_tag, source, recv_tag) = (dest.into(), send_tag.into(), source.into(), recv_tag.into());
        // One clock reading for the slot, the rings and the post.
        let _clock = crate::engine::clock::scope();
        self.shared.register_if_running();
        let checked = self
            .check_send(dest, send_tag)
            .and_then(|()| self.check_receive(source, recv_tag))
            .and_then(|()| self.check_alive(dest))
            .and_then(|()| count(data.as_slice().len()));
        let n = match checked {
            Ok(n) => n,
            Err(err) => return Request::ready(Err(err)),
        };
        let send_dt = datatype::<B::Item>();
        let (dest_raw, send_tag_raw) = (dest.raw(), send_tag.raw());
        let parts = if source == Peer::Null { 1 } else { 2 };
        let null_source = source == Peer::Null;
        let slot = self.slot(
            (data, Spare(Vec::<R>::new())),
            move |(_, spare): (B, Spare<R>), status| {
                // With no receive part, the answer is MPI's for PROC_NULL.
                let status = if null_source { Status::null_peer() } else { status };
                Ok((spare.filled(&status), status))
            },
            (Kind::Receive, parts, [dest_raw, source.raw()]),
            datatype::<R>(),
            Stages::none(),
        );
        let ring_after = self.ring_before_send(dest_raw);
        self.posting(|mpi| {
            // SAFETY: reading a constant MPI initialised.
            let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
            let rc = slot.with_buffers(|(b, _)| {
                // SAFETY: the MPI lock is held; the send buffer's heap
                // slice stays put in the slot until MPI is done with it.
                unsafe {
                    ffi::MPI_Isend(
                        b.as_slice().as_ptr().cast(),
                        n,
                        send_dt.get(),
                        dest_raw,
                        send_tag_raw,
                        self.raw.0,
                        &mut request,
                    )
                }
            });
            if let Err(err) = crate::error::check(rc) {
                // Nothing is posted: the receive is not started either.
                mpi.deliver(slot.clone(), Err(err));
                return;
            }
            let send = Arc::new(SendPart { slot: slot.clone() });
            if let Some(outcome) = mpi.track(Raw(request), Report::Empty, 0, send) {
                if let Some(merged) = slot.end_part(outcome.map(|_| None)) {
                    mpi.deliver(slot.clone(), merged);
                    return;
                }
            }
            if source == Peer::Null {
                return;
            }
            self.start_receive(mpi, slot.clone(), source, recv_tag, false);
        });
        if ring_after {
            self.ring(dest_raw);
        }
        Request::pending(self.shared.clone(), slot)
    }

    // ----- objects (mpi4py's lowercase methods) ----------------------------

    /// Sends any serde-serialisable value (mpi4py's `send` of a Python
    /// object), serialised with postcard.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] if it does not serialise, or an MPI error.
    pub fn send_obj<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dest: impl Into<Peer>,
        tag: impl Into<Tag>,
    ) -> Request<()> {
        match postcard::to_allocvec(value) {
            Ok(bytes) => self.isend_then(bytes, dest.into(), tag.into(), |_, _| Ok(())),
            Err(err) => Request::ready(Err(Error::Serialization(err.to_string()))),
        }
    }

    /// Receives a value sent with [`send_obj`](Self::send_obj) (mpi4py's
    /// `recv`), deserialised as `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] if the message is not a `T`, or an MPI
    /// error.
    pub fn recv_obj<T: DeserializeOwned + Send + 'static>(
        &self,
        source: impl Into<Peer>,
        tag: impl Into<Tag>,
    ) -> Request<(T, Status)> {
        self.receive(
            Spare(Vec::<u8>::new()),
            datatype::<u8>(),
            source.into(),
            tag.into(),
            false,
            |spare, status| {
                let bytes = spare.filled(&status);
                let value = crate::error::decode_whole(&bytes).map_err(Error::Serialization)?;
                Ok((value, status))
            },
        )
    }
}

impl fmt::Debug for Communicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Communicator")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

/// A vector's spare capacity, sized to the matched message (its length is
/// set after the receive).
pub(crate) struct Spare<T>(pub(crate) Vec<T>);

impl<T: Plain> Spare<T> {
    /// The vector holding what MPI wrote: `status.count()` elements.
    pub(crate) fn filled(self, status: &Status) -> Vec<T> {
        let mut v = self.0;
        let got = status.count().min(v.capacity());
        // SAFETY: the receive completed and MPI wrote `got` whole elements
        // (its count, at most the room it was given) at the start of the
        // allocation; `T: Plain` makes any bytes valid.
        unsafe { v.set_len(got) };
        v
    }
}

impl<T: Plain> RecvTarget for Spare<T> {
    const ITEM_SIZE: usize = std::mem::size_of::<T>();

    fn room(&mut self, bytes: usize) -> Result<(*mut c_void, c_int, usize), Error> {
        let n = elements_for::<T>(bytes);
        let count = count(n)?;
        self.0.reserve_exact(n);
        Ok((self.0.as_mut_ptr().cast(), count, n))
    }
}

/// A caller's buffer, whole: a longer message does not fit.
pub(crate) struct Whole<B>(pub(crate) B);

impl<B> RecvTarget for Whole<B>
where
    B: RecvBuffer,
    B::Item: Plain,
{
    const ITEM_SIZE: usize = std::mem::size_of::<B::Item>();

    fn room(&mut self, bytes: usize) -> Result<(*mut c_void, c_int, usize), Error> {
        let slice = self.0.as_mut_slice();
        let capacity = slice.len();
        if bytes > std::mem::size_of_val(slice) {
            return Err(Error::Truncated { capacity });
        }
        Ok((slice.as_mut_ptr().cast(), count(capacity)?, capacity))
    }
}

/// The datatype MPI counts bytes in.
pub(crate) fn byte_datatype() -> Raw<ffi::MPI_Datatype> {
    datatype::<u8>()
}
