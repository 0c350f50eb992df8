//! [`Communicator`]: point-to-point and collective operations, awaited.

use crate::buffer::{Plain, RecvBuffer, SendBuffer};
use crate::engine::{Probe, Raw, Waiter, empty_status};
use crate::env::Shared;
use crate::error::{Error, check};
use crate::op::{Operation, RecvTarget, Slot};
use crate::status::Status;
use mpi::datatype::Equivalence;
use mpi::ffi;
use mpi::raw::AsRaw;
use std::fmt;
use std::os::raw::{c_int, c_void};
use std::sync::Arc;

/// Which sender a receive or probe matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Any rank (`MPI_ANY_SOURCE`).
    Any,
    /// This rank.
    Rank(i32),
}

impl From<i32> for Peer {
    fn from(rank: i32) -> Peer {
        Peer::Rank(rank)
    }
}

/// Which tag a receive or probe matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Any tag (`MPI_ANY_TAG`).
    Any,
    /// This tag.
    Value(i32),
}

impl From<i32> for Tag {
    fn from(tag: i32) -> Tag {
        Tag::Value(tag)
    }
}

/// Matches a message from any rank (mpi4py's `MPI.ANY_SOURCE`).
pub const ANY_SOURCE: Peer = Peer::Any;
/// Matches a message with any tag (mpi4py's `MPI.ANY_TAG`).
pub const ANY_TAG: Tag = Tag::Any;

impl Peer {
    fn raw(self) -> c_int {
        match self {
            // SAFETY: reading a constant MPI initialised.
            Peer::Any => unsafe { ffi::RSMPI_ANY_SOURCE },
            Peer::Rank(rank) => rank,
        }
    }
}

impl Tag {
    fn raw(self) -> c_int {
        match self {
            // SAFETY: reading a constant MPI initialised.
            Tag::Any => unsafe { ffi::RSMPI_ANY_TAG },
            Tag::Value(tag) => tag,
        }
    }
}

/// A reduction operation for [`Communicator::reduce`] and
/// [`all_reduce`](Communicator::all_reduce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// `MPI_SUM`.
    Sum,
    /// `MPI_PROD`.
    Prod,
    /// `MPI_MIN`.
    Min,
    /// `MPI_MAX`.
    Max,
    /// `MPI_LAND`.
    LogicalAnd,
    /// `MPI_LOR`.
    LogicalOr,
    /// `MPI_BAND`.
    BitAnd,
    /// `MPI_BOR`.
    BitOr,
    /// `MPI_BXOR`.
    BitXor,
}

impl ReduceOp {
    fn raw(self) -> ffi::MPI_Op {
        // SAFETY: reading constants MPI initialised.
        unsafe {
            match self {
                ReduceOp::Sum => ffi::RSMPI_SUM,
                ReduceOp::Prod => ffi::RSMPI_PROD,
                ReduceOp::Min => ffi::RSMPI_MIN,
                ReduceOp::Max => ffi::RSMPI_MAX,
                ReduceOp::LogicalAnd => ffi::RSMPI_LAND,
                ReduceOp::LogicalOr => ffi::RSMPI_LOR,
                ReduceOp::BitAnd => ffi::RSMPI_BAND,
                ReduceOp::BitOr => ffi::RSMPI_BOR,
                ReduceOp::BitXor => ffi::RSMPI_BXOR,
            }
        }
    }
}

/// A communicator usable from any task on any worker (it is `Send`,
/// `Sync` and cheap to clone): every call is funnelled through the
/// progress engine's lock, so MPI sees one call at a time.
///
/// Every operation is posted at once (a request is in flight when the
/// method returns), tested once eagerly, and then completed by the loop;
/// the futures own their buffers until MPI is done with them.
#[derive(Clone)]
pub struct Communicator {
    shared: Arc<Shared>,
    raw: Raw<ffi::MPI_Comm>,
    rank: i32,
    size: i32,
    /// Frees a duplicated communicator when its last clone goes (the world
    /// duplicate is freed by `Shared`).
    _owned: Option<Arc<Owned>>,
}

/// A communicator this crate made with `MPI_Comm_idup`.
struct Owned {
    shared: Arc<Shared>,
    raw: Raw<ffi::MPI_Comm>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.shared.engine.lock();
            // Receives still waiting on it fail; messages pulled for it are
            // received and dropped: nothing refers to the handle after this.
            let waiting = self.shared.engine.forget_comm(&mut state, self.raw);
            let mut raw = self.raw.0;
            // SAFETY: the lock is held; no clone of the communicator is left
            // and no receive waits on it; MPI has not been finalized (we
            // hold `Shared`). Requests already posted on it complete
            // normally: MPI frees a communicator only when they are done.
            unsafe { ffi::MPI_Comm_free(&mut raw) };
            waiting
        };
        for waiter in waiting {
            waiter.complete(Err(Error::Cancelled));
        }
    }
}

fn datatype<T: Equivalence>() -> Raw<ffi::MPI_Datatype> {
    Raw(T::equivalent_datatype().as_raw())
}

fn count(len: usize) -> Result<c_int, Error> {
    c_int::try_from(len).map_err(|_| Error::TooLarge { len })
}

/// Elements of `T` needed to hold `bytes` bytes.
fn elements_for<T>(bytes: usize) -> usize {
    bytes.div_ceil(std::mem::size_of::<T>().max(1))
}

impl Communicator {
    pub(crate) fn world(shared: Arc<Shared>) -> Communicator {
        Communicator {
            raw: shared.world,
            rank: shared.rank,
            size: shared.size,
            shared,
            _owned: None,
        }
    }

    /// A new communicator over the same ranks, with its own message space
    /// (`MPI_Comm_idup`, collective: every rank must call it): messages on
    /// it never match receives on this one. Libraries use one to keep
    /// their traffic apart from the application's (the MPI pool does).
    ///
    /// # Errors
    ///
    /// An MPI error.
    pub async fn duplicate(&self) -> Result<Communicator, Error> {
        // The new handle is written by MPI when the request completes, so
        // it lives in the operation's buffers until then.
        // SAFETY: reading a constant MPI initialised.
        let null = unsafe { ffi::RSMPI_COMM_NULL };
        let (handle, _) = self
            .post(Box::new(Raw(null)), datatype::<u8>(), 0, |new, comm, request| {
                // SAFETY: the MPI lock is held (inside `post`); MPI writes
                // the new communicator into the boxed handle, which stays
                // put until the request is done.
                unsafe { ffi::MPI_Comm_idup(comm, &mut new.0, request) }
            })
            .await?;
        let raw = *handle;
        let shared = self.shared.clone();
        {
            let _mpi = shared.engine.lock();
            // SAFETY: the lock is held; `raw` is a valid new communicator.
            unsafe {
                check(ffi::MPI_Comm_set_errhandler(raw.0, ffi::RSMPI_ERRORS_RETURN))?;
            }
        }
        Ok(Communicator {
            raw,
            rank: self.rank,
            size: self.size,
            _owned: Some(Arc::new(Owned {
                shared: shared.clone(),
                raw,
            })),
            shared,
        })
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

    /// Posts one request: lets `start` post it with pointers into
    /// `buffers` (under the MPI lock), tests it once, and if it is still
    /// pending moves the buffers into a slot (their elements stay put: a
    /// [`SendBuffer`] keeps them on the heap) and queues it with the
    /// engine. A request done at once costs no allocation.
    fn post<B: Send + 'static>(
        &self,
        mut buffers: B,
        datatype: Raw<ffi::MPI_Datatype>,
        capacity: usize,
        start: impl FnOnce(&mut B, ffi::MPI_Comm, *mut ffi::MPI_Request) -> c_int,
    ) -> Operation<B> {
        if let Err(err) = self.shared.register() {
            return Operation::failed(self.shared.clone(), buffers, err);
        }
        let engine = &self.shared.engine;
        let slot = {
            let mut state = engine.lock();
            // SAFETY: reading a constant MPI initialised.
            let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
            let rc = start(&mut buffers, self.raw.0, &mut request);
            if let Err(err) = check(rc) {
                drop(state);
                return Operation::failed(self.shared.clone(), buffers, err);
            }
            let mut request = Raw(request);
            if let Some(outcome) = engine.test_once(&mut request, datatype, capacity) {
                drop(state);
                return Operation::done(self.shared.clone(), buffers, outcome);
            }
            let slot = Slot::new(buffers, false);
            engine.push(&mut state, request, datatype, capacity, slot.clone());
            slot
        };
        // Engine rule 6: keep the loop spinning; wake it if it may be
        // asleep (past its window).
        if engine.active() {
            self.shared.notify();
        }
        Operation::new(self.shared.clone(), slot)
    }

    // ----- point to point -------------------------------------------------

    /// Sends `data` to rank `dest` with `tag`, copying it first (so the
    /// caller's slice is free at once); completes when MPI is done with the
    /// copy. For large messages use [`isend`](Self::isend) with an owned
    /// buffer, which does not copy.
    ///
    /// Cancel-safe in the sense that dropping it never frees memory MPI
    /// reads; the message may still be sent.
    ///
    /// # Errors
    ///
    /// An MPI error (a bad rank or tag) or [`Error::TooLarge`].
    pub async fn send<T: Equivalence + Copy + Send + 'static>(
        &self,
        data: &[T],
        dest: i32,
        tag: i32,
    ) -> Result<(), Error> {
        self.isend(data.to_vec(), dest, tag).await.map(drop)
    }

    /// Sends an owned buffer without copying; awaiting gives it back.
    pub fn isend<B: SendBuffer>(&self, buffer: B, dest: i32, tag: i32) -> Operation<B> {
        let len = buffer.as_slice().len();
        let n = match count(len) {
            Ok(n) => n,
            Err(err) => return Operation::failed(self.shared.clone(), buffer, err),
        };
        let dt = datatype::<B::Item>();
        self.post(buffer, dt, 0, |b, comm, request| {
            // SAFETY: the MPI lock is held (inside `post`); the slice lives
            // in the operation's slot, unmoved, until MPI is done.
            unsafe {
                ffi::MPI_Isend(
                    b.as_slice().as_ptr().cast::<c_void>(),
                    n,
                    dt.0,
                    dest,
                    tag,
                    comm,
                    request,
                )
            }
        })
    }

    /// Receives a message from `source` with `tag` (either may be `ANY_*`),
    /// into a vector sized to fit it: the message is matched first
    /// (`MPI_Improbe`), so no message is too long. Cancel-safe: dropped
    /// before a message matched, it takes none.
    ///
    /// # Errors
    ///
    /// An MPI error (a bad rank or tag).
    pub async fn recv<T: Plain>(
        &self,
        source: impl Into<Peer>,
        tag: impl Into<Tag>,
    ) -> Result<(Vec<T>, Status), Error> {
        let (Spare(mut buffer), status) = self
            .receive(Spare(Vec::<T>::new()), source.into(), tag.into(), false)
            .await?;
        let got = status.count().min(buffer.capacity());
        // SAFETY: MPI wrote `got` whole elements (its count, at most the
        // room it was given) at the start of the vector's allocation;
        // `T: Plain` makes any bytes valid.
        unsafe { buffer.set_len(got) };
        Ok((buffer, status))
    }

    /// Receives into `buffer` (its whole length is the room). A message
    /// longer than that is received elsewhere and dropped, and the call
    /// fails with [`Error::Truncated`]: the buffer is never written past
    /// (Open MPI 4.1 would, with a plain `MPI_Irecv`; the message is
    /// matched and measured first). Cancel-safe as [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`], or an MPI error.
    pub async fn recv_into<B>(
        &self,
        buffer: B,
        source: impl Into<Peer>,
        tag: impl Into<Tag>,
    ) -> Result<(B, Status), Error>
    where
        B: RecvBuffer,
        B::Item: Plain,
    {
        let (Whole(buffer), status) = self.receive(Whole(buffer), source.into(), tag.into(), false).await?;
        Ok((buffer, status))
    }

    /// Waits for a message from `source` with `tag` without receiving it;
    /// its [`Status`] gives the sender, tag and length (in `T`s). The next
    /// receive that matches it gets it (with `ANY_*` receives around,
    /// another task's receive may take it first).
    ///
    /// # Errors
    ///
    /// An MPI error.
    pub async fn probe<T: Plain>(&self, source: impl Into<Peer>, tag: impl Into<Tag>) -> Result<Status, Error> {
        let (_, status) = self
            .receive(Spare(Vec::<T>::new()), source.into(), tag.into(), true)
            .await?;
        Ok(status)
    }

    /// Checks once for a matching message, without receiving it.
    ///
    /// # Errors
    ///
    /// An MPI error.
    pub fn try_probe<T: Equivalence>(
        &self,
        source: impl Into<Peer>,
        tag: impl Into<Tag>,
    ) -> Result<Option<Status>, Error> {
        let (source, tag) = (source.into().raw(), tag.into().raw());
        let state = self.shared.engine.lock();
        // Messages the engine pulled for other receives come first (they
        // arrived first).
        if let Some(status) = self.shared.engine.peek_unclaimed(&state, source, tag, self.raw) {
            return Ok(Some(Status::from_raw(&status, datatype::<T>())));
        }
        let mut flag: c_int = 0;
        let mut status = empty_status();
        // SAFETY: the MPI lock is held; out-pointers are valid locals.
        check(unsafe { ffi::MPI_Iprobe(source, tag, self.raw.0, &mut flag, &mut status) })?;
        Ok((flag != 0).then(|| Status::from_raw(&status, datatype::<T>())))
    }

    /// A receive's source and tag must be ones a message can carry: the
    /// engine matches receives itself, so a bad one would wait forever
    /// rather than fail inside MPI.
    fn check_envelope(&self, source: Peer, tag: Tag) -> Result<(), Error> {
        if let Peer::Rank(rank) = source {
            if !(0..self.size).contains(&rank) {
                return Err(Error::Mpi {
                    code: ffi::MPI_ERR_RANK as i32,
                    class: ffi::MPI_ERR_RANK as i32,
                    message: format!("weft-mpi: no rank {rank} in a communicator of {} ranks", self.size),
                });
            }
        }
        if let Tag::Value(tag) = tag {
            if tag < 0 {
                return Err(Error::Mpi {
                    code: ffi::MPI_ERR_TAG as i32,
                    class: ffi::MPI_ERR_TAG as i32,
                    message: format!("weft-mpi: tag {tag} is negative; tags are 0 to MPI_TAG_UB"),
                });
            }
        }
        Ok(())
    }

    /// Starts a receive (or, with `peek`, a probe) into `target`: the
    /// engine matches it against arrived messages now or as they come, and
    /// posts its `MPI_Imrecv` the moment one matches (engine rule 5).
    fn receive<X: RecvTarget>(&self, target: X, source: Peer, tag: Tag, peek: bool) -> Operation<X> {
        if let Err(err) = self.shared.register().and_then(|()| self.check_envelope(source, tag)) {
            return Operation::failed(self.shared.clone(), target, err);
        }
        let slot = Slot::new(target, true);
        let probe = Probe {
            source: source.raw(),
            tag: tag.raw(),
            comm: self.raw,
            waiter: slot.clone(),
            peek,
        };
        let outcome = {
            let mut state = self.shared.engine.lock();
            self.shared.engine.receive(&mut state, probe)
        };
        match outcome {
            Some(outcome) => slot.complete(outcome),
            // Waiting in line or in flight: as for a queued request.
            None => {
                if self.shared.engine.active() {
                    self.shared.notify();
                }
            }
        }
        Operation::new(self.shared.clone(), slot)
    }

    // ----- collectives ---------------------------------------------------
    //
    // Every rank must call the same collectives in the same order (MPI's
    // rule); each is posted at once and awaited like any other request.
    // Every rank must also pass the same lengths: each collective first
    // checks that they agree (`agree`, one small all-reduce), so a rank
    // that passes another length gets an error on every rank, never a
    // write past a buffer.

    /// Waits until every rank has entered the barrier (`MPI_Ibarrier`).
    ///
    /// # Errors
    ///
    /// An MPI error.
    pub async fn barrier(&self) -> Result<(), Error> {
        self.post((), datatype::<u8>(), 0, |_, comm, request| {
            // SAFETY: the MPI lock is held (inside `post`).
            unsafe { ffi::MPI_Ibarrier(comm, request) }
        })
        .await
        .map(drop)
    }

    /// Broadcasts `root`'s buffer to every rank (`MPI_Ibcast`): each passes
    /// a buffer of the same length, and every rank gets back one holding
    /// root's contents.
    ///
    /// # Errors
    ///
    /// An MPI error, or [`Error::TooLarge`].
    pub async fn broadcast<B>(&self, buffer: B, root: i32) -> Result<B, Error>
    where
        B: RecvBuffer,
        B::Item: Plain,
    {
        let n = count(buffer.as_slice().len())?;
        self.agree(buffer.as_slice().len(), "broadcast").await?;
        let dt = datatype::<B::Item>();
        self.post(buffer, dt, 0, |b, comm, request| {
            // SAFETY: the MPI lock is held; the buffer stays put until done.
            unsafe {
                ffi::MPI_Ibcast(
                    b.as_mut_slice().as_mut_ptr().cast::<c_void>(),
                    n,
                    dt.0,
                    root,
                    comm,
                    request,
                )
            }
        })
        .await
        .map(|(b, _)| b)
    }

    /// Reduces every rank's `data` element-wise with `op` to `root`
    /// (`MPI_Ireduce`): `Some(result)` at root, `None` elsewhere.
    ///
    /// # Errors
    ///
    /// An MPI error, or [`Error::TooLarge`].
    pub async fn reduce<T: Plain>(&self, data: Vec<T>, op: ReduceOp, root: i32) -> Result<Option<Vec<T>>, Error> {
        let at_root = self.rank == root;
        let n = count(data.len())?;
        self.agree(data.len(), "reduce").await?;
        let len = if at_root { data.len() } else { 0 };
        let out = self
            .collective(data, len, |send, recv, dt, comm, request| {
                // SAFETY: inside `collective` (its contract).
                unsafe { ffi::MPI_Ireduce(send, recv, n, dt, op.raw(), root, comm, request) }
            })
            .await?;
        Ok(at_root.then_some(out))
    }

    /// Reduces every rank's `data` element-wise with `op`; every rank gets
    /// the result (`MPI_Iallreduce`).
    ///
    /// # Errors
    ///
    /// An MPI error, or [`Error::TooLarge`].
    pub async fn all_reduce<T: Plain>(&self, data: Vec<T>, op: ReduceOp) -> Result<Vec<T>, Error> {
        let n = count(data.len())?;
        self.agree(data.len(), "all_reduce").await?;
        let len = data.len();
        self.collective(data, len, |send, recv, dt, comm, request| {
            // SAFETY: inside `collective` (its contract).
            unsafe { ffi::MPI_Iallreduce(send, recv, n, dt, op.raw(), comm, request) }
        })
        .await
    }

    /// Gathers every rank's `data` (all the same length) to `root`, in rank
    /// order (`MPI_Igather`): `Some(all)` at root, `None` elsewhere.
    ///
    /// # Errors
    ///
    /// An MPI error, or [`Error::TooLarge`].
    pub async fn gather<T: Plain>(&self, data: Vec<T>, root: i32) -> Result<Option<Vec<T>>, Error> {
        let at_root = self.rank == root;
        let n = count(data.len())?;
        self.agree(data.len(), "gather").await?;
        let total = if at_root { data.len() * self.size as usize } else { 0 };
        let out = self
            .collective(data, total, |send, recv, dt, comm, request| {
                // SAFETY: inside `collective` (its contract).
                unsafe { ffi::MPI_Igather(send, n, dt, recv, n, dt, root, comm, request) }
            })
            .await?;
        Ok(at_root.then_some(out))
    }

    /// Gathers every rank's `data` (all the same length) to every rank, in
    /// rank order (`MPI_Iallgather`).
    ///
    /// # Errors
    ///
    /// An MPI error, or [`Error::TooLarge`].
    pub async fn all_gather<T: Plain>(&self, data: Vec<T>) -> Result<Vec<T>, Error> {
        let n = count(data.len())?;
        self.agree(data.len(), "all_gather").await?;
        let total = data.len() * self.size as usize;
        self.collective(data, total, |send, recv, dt, comm, request| {
            // SAFETY: inside `collective` (its contract).
            unsafe { ffi::MPI_Iallgather(send, n, dt, recv, n, dt, comm, request) }
        })
        .await
    }

    /// Scatters `root`'s `data` (`size * per_rank` elements, `None` off
    /// root) in rank order: every rank gets its `per_rank` elements
    /// (`MPI_Iscatter`).
    ///
    /// # Errors
    ///
    /// [`Error::Mpi`] if root's data is not `size * per_rank` long (checked
    /// here, before MPI could read past it), or another MPI error.
    pub async fn scatter<T: Plain>(&self, data: Option<Vec<T>>, per_rank: usize, root: i32) -> Result<Vec<T>, Error> {
        let data = data.unwrap_or_default();
        let n = count(per_rank)?;
        // Root's data must hold `size * per_rank`: root votes "no" (an
        // impossible length) if it does not, so every rank fails together.
        let valid = self.rank != root || data.len() == per_rank * self.size as usize;
        let vote = if valid { per_rank } else { usize::MAX };
        if let Err(err) = self.agree(vote, "scatter").await {
            return Err(if valid {
                err
            } else {
                bad_length("scatter", data.len(), per_rank * self.size as usize)
            });
        }
        if !valid {
            // A singleton agrees with itself.
            return Err(bad_length("scatter", data.len(), per_rank * self.size as usize));
        }
        self.collective(data, per_rank, |send, recv, dt, comm, request| {
            // SAFETY: inside `collective` (its contract); root's data holds
            // `size * n` elements (checked above).
            unsafe { ffi::MPI_Iscatter(send, n, dt, recv, n, dt, root, comm, request) }
        })
        .await
    }

    /// Every rank sends block `j` of its `data` (`size` equal blocks) to
    /// rank `j`, and gets back block `i` from every rank `i`, in rank order
    /// (`MPI_Ialltoall`).
    ///
    /// # Errors
    ///
    /// [`Error::Mpi`] if `data`'s length is not a multiple of the size, or
    /// another MPI error.
    pub async fn all_to_all<T: Plain>(&self, data: Vec<T>) -> Result<Vec<T>, Error> {
        let size = self.size as usize;
        self.agree(data.len(), "all_to_all").await?;
        if data.len() % size != 0 {
            // Every rank has the same length (agreed): all fail alike.
            return Err(bad_length("all_to_all", data.len(), data.len().div_ceil(size) * size));
        }
        let len = data.len();
        let n = count(len / size)?;
        self.collective(data, len, |send, recv, dt, comm, request| {
            // SAFETY: inside `collective` (its contract).
            unsafe { ffi::MPI_Ialltoall(send, n, dt, recv, n, dt, comm, request) }
        })
        .await
    }

    /// Checks that every rank passed the same `n` to a collective (MPI's
    /// rule, which a peer could otherwise break to make MPI write past a
    /// buffer): an all-reduce of (n, !n) by maximum gives the largest and
    /// the smallest at once. Every rank gets the same answer, so on a
    /// mismatch all fail together and none is left waiting.
    async fn agree(&self, n: usize, what: &str) -> Result<(), Error> {
        if self.size == 1 {
            return Ok(());
        }
        let local = vec![n as u64, !(n as u64)];
        let dt = datatype::<u64>();
        let ((_, out), _) = self
            .post((local, vec![0u64; 2]), dt, 0, |(send, recv), comm, request| {
                // SAFETY: the MPI lock is held (inside `post`); both vectors
                // hold two elements on the heap, which stay put until done.
                unsafe {
                    ffi::MPI_Iallreduce(
                        send.as_ptr().cast(),
                        recv.as_mut_ptr().cast(),
                        2,
                        dt.0,
                        ReduceOp::Max.raw(),
                        comm,
                        request,
                    )
                }
            })
            .await?;
        let (largest, smallest) = (out[0], !out[1]);
        if largest != smallest {
            return Err(Error::Mpi {
                code: ffi::MPI_ERR_COUNT as i32,
                class: ffi::MPI_ERR_COUNT as i32,
                message: format!(
                    "weft-mpi {what}: ranks passed different lengths ({smallest} to {largest}); every rank must pass the same"
                ),
            });
        }
        Ok(())
    }

    /// One collective with a send buffer (`data`) and a receive buffer of
    /// `out_len` elements: `start` posts it given the send pointer, the
    /// receive pointer (room for `out_len` elements), the datatype, the
    /// communicator and the request slot, under the MPI lock; both buffers
    /// stay put until MPI is done. Returns the receive buffer, filled.
    async fn collective<T: Plain>(
        &self,
        data: Vec<T>,
        out_len: usize,
        start: impl FnOnce(*const c_void, *mut c_void, ffi::MPI_Datatype, ffi::MPI_Comm, *mut ffi::MPI_Request) -> c_int,
    ) -> Result<Vec<T>, Error> {
        count(out_len)?;
        let dt = datatype::<T>();
        let out: Vec<T> = Vec::with_capacity(out_len);
        let ((_, mut out), _) = self
            .post((data, out), dt, 0, |(data, out), comm, request| {
                start(data.as_ptr().cast(), out.as_mut_ptr().cast(), dt.0, comm, request)
            })
            .await?;
        // SAFETY: the collective completed, and MPI wrote `out_len` elements
        // (the caller sized `out_len` to what the operation writes on this
        // rank); `T: Plain` makes any bytes valid.
        unsafe { out.set_len(out_len) };
        Ok(out)
    }
}

fn bad_length(what: &str, got: usize, want: usize) -> Error {
    Error::Mpi {
        code: ffi::MPI_ERR_COUNT as i32,
        class: ffi::MPI_ERR_COUNT as i32,
        message: format!("weft-mpi {what}: the buffer holds {got} elements, the operation needs {want}"),
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
struct Spare<T>(Vec<T>);

impl<T: Plain> RecvTarget for Spare<T> {
    fn datatype(&self) -> Raw<ffi::MPI_Datatype> {
        datatype::<T>()
    }

    fn room(&mut self, bytes: usize) -> Result<(*mut c_void, c_int, usize), Error> {
        let n = elements_for::<T>(bytes);
        let count = count(n)?;
        self.0.reserve_exact(n);
        Ok((self.0.as_mut_ptr().cast(), count, n))
    }
}

/// A caller's buffer, whole: a longer message does not fit.
struct Whole<B>(B);

impl<B> RecvTarget for Whole<B>
where
    B: RecvBuffer,
    B::Item: Plain,
{
    fn datatype(&self) -> Raw<ffi::MPI_Datatype> {
        datatype::<B::Item>()
    }

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
