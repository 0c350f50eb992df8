//! [`Communicator`]'s collectives: each a unit of stages that the engine
//! runs whole, in the order started (engine rule 8), beginning with the
//! agreement (`agreement.rs`: rounds of small messages on the
//! communicator's hidden twin, one stage each).
//!
//! Every collective is posted when the method returns (its first stage,
//! or its place in the communicator's stream) and runs to the end even if
//! its request is dropped. Every rank must call the same collectives in
//! the same order with the same lengths, roots and element types (MPI's
//! rule); a rank that does not gets an error, and so does every other
//! rank, before anything that could overrun a buffer is posted.

use crate::agreement::{PAYLOAD, Record, Rounds, signature};
use crate::buffer::{Numeric, Plain, RecvBuffer};
use crate::comm::{Communicator, count, datatype};
use crate::error::{Error, check};
use crate::op::ReduceOp;
use crate::request::{Kind, Request, Stage, Stages};
use crate::status::Status;
use mpi::ffi;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::mem::{size_of, size_of_val};
use std::os::raw::{c_int, c_void};

/// A collective's buffers: the agreement's state, then the collective's
/// own.
pub(crate) struct Unit<D> {
    /// Boxed: two records (about 540 bytes) that would otherwise be copied
    /// each time the unit moves (into its slot, out of it for the output).
    agreement: Box<Agreement>,
    /// The collective's own buffers.
    pub(crate) data: D,
}

/// The agreement's record (this rank's, merged round by round into the
/// agreed one) and its rounds' state.
struct Agreement {
    record: Record,
    rounds: Rounds,
}

impl<D> Unit<D> {
    /// The agreed record (once the agreement's stages have run).
    pub(crate) fn agreed(&self) -> &Record {
        &self.agreement.record
    }
}

/// An error for arguments this rank finds invalid (every rank fails: the
/// agreement carries the flag).
pub(crate) fn invalid(what: &str, why: impl std::fmt::Display) -> Error {
    Error::Mpi {
        code: ffi::MPI_ERR_ARG as i32,
        class: ffi::MPI_ERR_ARG as i32,
        message: format!("weft-mpi {what}: {why}"),
    }
}

/// Whether `op` applies to `T` (bitwise ops need integers).
fn op_applies<T: Numeric>(op: ReduceOp) -> bool {
    use crate::buffer::Scalar::{F32, F64};
    !(matches!(T::SCALAR, F32 | F64) && matches!(op, ReduceOp::BitAnd | ReduceOp::BitOr | ReduceOp::BitXor))
}

/// A vector with room for `len` elements whose length is set once MPI
/// has written them.
fn room<T>(len: usize) -> Vec<T> {
    Vec::with_capacity(len)
}

/// # Safety
///
/// MPI wrote `len` elements at the start of `v`'s allocation (a collective
/// that completed), within its capacity.
pub(crate) unsafe fn written<T: Plain>(mut v: Vec<T>, len: usize) -> Vec<T> {
    debug_assert!(len <= v.capacity());
    // SAFETY: the caller's promise; `T: Plain` makes any bytes valid.
    unsafe { v.set_len(len) };
    v
}

impl Communicator {
    /// The signature of a collective call: what every rank must pass alike.
    pub(crate) fn sig<T>(&self, what: &str, extra: &[u8]) -> u64 {
        signature(&[
            what.as_bytes(),
            std::any::type_name::<T>().as_bytes(),
            &size_of::<T>().to_le_bytes(),
            extra,
        ])
    }

    /// Starts a unit: the agreement of `record` first, then `stages`;
    /// `finish` makes the output from the buffers (checking the verdict
    /// itself when there are no further stages). A `problem` this rank
    /// found in its own arguments goes into the agreement, so every rank
    /// fails, and is this rank's error.
    pub(crate) fn unit<D, T, F>(
        &self,
        record: Record,
        problem: Option<Error>,
        data: D,
        stages: Vec<Stage<Unit<D>>>,
        finish: F,
    ) -> Request<T>
    where
        D: Send + 'static,
        T: Send + 'static,
        F: FnOnce(Unit<D>, Status) -> Result<T, Error> + Send + 'static,
    {
        // One clock reading for the slot, the post and the rings.
        let _clock = crate::engine::clock::scope();
        self.shared.register_if_running();
        let record = if problem.is_some() { record.invalid() } else { record };
        let agreement = Box::new(Agreement {
            record,
            rounds: Rounds::new(self.agreement.clone()),
        });
        let mut rest: Vec<Stage<Unit<D>>> = Vec::with_capacity(stages.len());
        let mut stages = stages.into_iter();
        if let Some(first) = stages.next() {
            let local = problem.clone();
            rest.push(Box::new(move |u: &mut Unit<D>, comm, post| match local {
                Some(err) => Err(err),
                None => first(u, comm, post),
            }));
        }
        rest.extend(stages);
        // The agreement's rounds first, one stage per step of the plan.
        let all = Stages::led(
            |u, _, post| {
                let Agreement { record, rounds } = &mut *u.agreement;
                rounds.run_next(record, post)
            },
            agreement.rounds.steps(),
            rest,
        );
        let unit = Unit { agreement, data };
        let finish = move |u: Unit<D>, status| match problem {
            Some(err) => Err(err),
            None => finish(u, status),
        };
        let slot = self.slot(unit, finish, (Kind::Collective, 1, [-1, -1]), datatype::<u8>(), all);
        self.posting_collective(|mpi| mpi.start_collective(slot.clone()));
        Request::pending(self.shared.clone(), slot)
    }

    pub(crate) fn valid_root(&self, root: i32) -> bool {
        (0..self.size()).contains(&root)
    }

    /// Waits until every rank has entered the barrier. Posted now; it is
    /// the agreement alone (an all-reduce completes only when every rank
    /// has joined it): `log2` of the size rounds of small messages.
    ///
    /// # Errors
    ///
    /// An MPI error, or ranks that called another collective here.
    pub fn barrier(&self) -> Request<()> {
        let record = Record::new(self.sig::<()>("barrier", &[]), 0);
        self.unit(record, None, (), Vec::new(), |u, _| u.agreed().verdict("barrier", true))
    }

    /// Reduces every rank's `data` element-wise with `op`; every rank gets
    /// the result (`MPI_Iallreduce`, mpi4py's `Iallreduce`). Up to
    /// 192 bytes ride in the agreement itself (`log2` of the size rounds
    /// of small messages); more then run one `MPI_Iallreduce`.
    ///
    /// # Errors
    ///
    /// An MPI error, ranks that passed different lengths or types, a
    /// bitwise op on floats, or [`Error::TooLarge`].
    pub fn all_reduce<T: Numeric>(&self, data: Vec<T>, op: ReduceOp) -> Request<Vec<T>> {
        self.reduction(data, op, None, |v| {
            v.expect("weft-mpi bug: every rank gets an all-reduce's result")
        })
    }

    /// Reduces every rank's `data` element-wise with `op` to `root`
    /// (`MPI_Ireduce`): `Some(result)` at root, `None` elsewhere.
    ///
    /// # Errors
    ///
    /// As [`all_reduce`](Self::all_reduce), or a root outside the
    /// communicator.
    pub fn reduce<T: Numeric>(&self, data: Vec<T>, op: ReduceOp, root: i32) -> Request<Option<Vec<T>>> {
        self.reduction(data, op, Some(root), |v| v)
    }

    /// `all_reduce` (`root` `None`) and `reduce`.
    fn reduction<T: Numeric, U: Send + 'static>(
        &self,
        data: Vec<T>,
        op: ReduceOp,
        root: Option<i32>,
        out: fn(Option<Vec<T>>) -> U,
    ) -> Request<U> {
        let what = if root.is_some() { "reduce" } else { "all_reduce" };
        let len = data.len();
        let mut extra = [op.code() as u8, 0, 0, 0, 0];
        extra[1..].copy_from_slice(&root.unwrap_or(-1).to_le_bytes());
        let sig = self.sig::<T>(what, &extra);
        let mut problem = None;
        if !op_applies::<T>(op) {
            problem = Some(invalid(
                what,
                format!("{op:?} does not apply to {}", std::any::type_name::<T>()),
            ));
        } else if root.is_some_and(|r| !self.valid_root(r)) {
            problem = Some(invalid(
                what,
                format!("root {} is not a rank of {}", root.unwrap_or(0), self.size()),
            ));
        }
        let at_root = root.is_none_or(|r| r == self.rank());
        let record = Record::new(sig, len as u64);
        if len * size_of::<T>() <= PAYLOAD {
            // The data rides in the agreement: nothing more to post.
            let record = record.with_payload(&data, Some((op, T::SCALAR)));
            return self.unit(record, problem, (), Vec::new(), move |u, _| {
                u.agreed().verdict(what, true)?;
                let result = u.agreed().payload::<T>().unwrap_or_default();
                Ok(out(at_root.then_some(result)))
            });
        }
        let n = match count(len) {
            Ok(n) => n,
            Err(err) => {
                problem.get_or_insert(err);
                0
            }
        };
        let dt = datatype::<T>();
        let out_len = if at_root { len } else { 0 };
        let stage: Stage<Unit<(Vec<T>, Vec<T>)>> = Box::new(move |u, comm, post| {
            u.agreed().verdict(what, true)?;
            let (send, recv) = (
                u.data.0.as_ptr().cast::<c_void>(),
                u.data.1.as_mut_ptr().cast::<c_void>(),
            );
            // SAFETY: the MPI lock is held (stages run under it); both
            // vectors stay put in the slot until the unit ends; `recv` has
            // room for `len` elements where MPI writes them (every rank for
            // an all-reduce, root for a reduce); the agreement made sure
            // every rank passed `len`.
            check(unsafe {
                match root {
                    None => ffi::MPI_Iallreduce(send, recv, n, dt.get(), op.raw(), comm, &mut post.request),
                    Some(root) => ffi::MPI_Ireduce(send, recv, n, dt.get(), op.raw(), root, comm, &mut post.request),
                }
            })
        });
        self.unit(record, problem, (data, room::<T>(out_len)), vec![stage], move |u, _| {
            // SAFETY: the collective completed; MPI wrote `out_len`
            // elements into the room for them.
            Ok(out(at_root.then(|| unsafe { written(u.data.1, out_len) })))
        })
    }

    /// Broadcasts `root`'s buffer to every rank (`MPI_Ibcast`): each passes
    /// a buffer of the same length, and every rank gets back one holding
    /// root's contents. Small buffers ride in the agreement.
    ///
    /// # Errors
    ///
    /// An MPI error, ranks that passed different lengths, or
    /// [`Error::TooLarge`].
    pub fn broadcast<B>(&self, buffer: B, root: i32) -> Request<B>
    where
        B: RecvBuffer,
        B::Item: Plain,
    {
        const WHAT: &str = "broadcast";
        let len = buffer.as_slice().len();
        let sig = self.sig::<B::Item>(WHAT, &root.to_le_bytes());
        let mut record = Record::new(sig, len as u64);
        let mut problem =
            (!self.valid_root(root)).then(|| invalid(WHAT, format!("root {root} is not a rank of {}", self.size())));
        let at_root = root == self.rank();
        if size_of_val(buffer.as_slice()) <= PAYLOAD {
            if at_root {
                record = record.with_payload(buffer.as_slice(), None);
            }
            return self.unit(record, problem, buffer, Vec::new(), move |mut u, _| {
                u.agreed().verdict(WHAT, true)?;
                if let Some(data) = u.agreed().payload::<B::Item>() {
                    let out = u.data.as_mut_slice();
                    let n = data.len().min(out.len());
                    out[..n].copy_from_slice(&data[..n]);
                }
                Ok(u.data)
            });
        }
        let n = count(len).unwrap_or_else(|err| {
            problem.get_or_insert(err);
            0
        });
        let dt = datatype::<B::Item>();
        let stage: Stage<Unit<B>> = Box::new(move |u, comm, post| {
            u.agreed().verdict(WHAT, true)?;
            // SAFETY: the MPI lock is held; the buffer's heap elements stay
            // put in the slot until the unit ends; every rank's holds `n`
            // (agreed).
            check(unsafe {
                ffi::MPI_Ibcast(
                    u.data.as_mut_slice().as_mut_ptr().cast(),
                    n,
                    dt.get(),
                    root,
                    comm,
                    &mut post.request,
                )
            })
        });
        self.unit(record, problem, buffer, vec![stage], move |u, _| Ok(u.data))
    }

    /// Gathers every rank's `data` (all the same length) to `root`, in rank
    /// order (`MPI_Igather`): `Some(all)` at root, `None` elsewhere. For
    /// lengths that differ, [`gatherv`](Self::gatherv).
    ///
    /// # Errors
    ///
    /// An MPI error, ranks that passed different lengths, or
    /// [`Error::TooLarge`].
    pub fn gather<T: Plain>(&self, data: Vec<T>, root: i32) -> Request<Option<Vec<T>>> {
        self.gathering("gather", data, Some(root), |v| v)
    }

    /// Gathers every rank's `data` (all the same length) to every rank, in
    /// rank order (`MPI_Iallgather`).
    ///
    /// # Errors
    ///
    /// As [`gather`](Self::gather).
    pub fn all_gather<T: Plain>(&self, data: Vec<T>) -> Request<Vec<T>> {
        self.gathering("all_gather", data, None, |v| {
            v.expect("weft-mpi bug: every rank gets an all-gather's result")
        })
    }

    fn gathering<T: Plain, U: Send + 'static>(
        &self,
        what: &'static str,
        data: Vec<T>,
        root: Option<i32>,
        out: fn(Option<Vec<T>>) -> U,
    ) -> Request<U> {
        let len = data.len();
        let size = self.size() as usize;
        let sig = self.sig::<T>(what, &root.unwrap_or(-1).to_le_bytes());
        let at_root = root.is_none_or(|r| r == self.rank());
        let total = len.checked_mul(size);
        let mut problem = None;
        if root.is_some_and(|r| !self.valid_root(r)) {
            problem = Some(invalid(
                what,
                format!("root {} is not a rank of {}", root.unwrap_or(0), size),
            ));
        }
        let n = count(len).and_then(|n| count(total.unwrap_or(usize::MAX)).map(|_| n));
        let n = n.unwrap_or_else(|err| {
            problem.get_or_insert(err);
            0
        });
        let record = Record::new(sig, len as u64);
        let out_len = if at_root { total.unwrap_or(0) } else { 0 };
        let dt = datatype::<T>();
        let stage: Stage<Unit<(Vec<T>, Vec<T>)>> = Box::new(move |u, comm, post| {
            u.agreed().verdict(what, true)?;
            let (send, recv) = (
                u.data.0.as_ptr().cast::<c_void>(),
                u.data.1.as_mut_ptr().cast::<c_void>(),
            );
            // SAFETY: the MPI lock is held; both vectors stay put until the
            // unit ends; every rank sends `n` (agreed) and `recv` has room
            // for `n * size` where MPI writes it.
            check(unsafe {
                match root {
                    Some(root) => ffi::MPI_Igather(send, n, dt.get(), recv, n, dt.get(), root, comm, &mut post.request),
                    None => ffi::MPI_Iallgather(send, n, dt.get(), recv, n, dt.get(), comm, &mut post.request),
                }
            })
        });
        self.unit(record, problem, (data, room::<T>(out_len)), vec![stage], move |u, _| {
            // SAFETY: the collective completed and wrote `out_len` elements.
            Ok(out(at_root.then(|| unsafe { written(u.data.1, out_len) })))
        })
    }

    /// Scatters `root`'s `data` (`size * per_rank` elements; `None` off
    /// root) in rank order: every rank gets its `per_rank` elements
    /// (`MPI_Iscatter`). For blocks of different lengths,
    /// [`scatterv`](Self::scatterv).
    ///
    /// # Errors
    ///
    /// An error on every rank if root's data is not `size * per_rank`
    /// long (checked before MPI could read past it), or ranks passed
    /// different `per_rank`; another MPI error.
    pub fn scatter<T: Plain>(&self, data: Option<Vec<T>>, per_rank: usize, root: i32) -> Request<Vec<T>> {
        const WHAT: &str = "scatter";
        let size = self.size() as usize;
        let at_root = root == self.rank();
        let data = data.unwrap_or_default();
        let mut problem =
            (!self.valid_root(root)).then(|| invalid(WHAT, format!("root {root} is not a rank of {size}")));
        let want = per_rank.checked_mul(size);
        if at_root && problem.is_none() && Some(data.len()) != want {
            problem = Some(invalid(
                WHAT,
                format!(
                    "the buffer holds {} elements, the operation needs {} ({size} × {per_rank})",
                    data.len(),
                    want.map_or("too many".into(), |w| w.to_string())
                ),
            ));
        }
        let n = count(per_rank)
            .and_then(|n| count(want.unwrap_or(usize::MAX)).map(|_| n))
            .unwrap_or_else(|err| {
                problem.get_or_insert(err);
                0
            });
        let record = Record::new(self.sig::<T>(WHAT, &root.to_le_bytes()), per_rank as u64);
        let dt = datatype::<T>();
        let stage: Stage<Unit<(Vec<T>, Vec<T>)>> = Box::new(move |u, comm, post| {
            u.agreed().verdict(WHAT, true)?;
            // SAFETY: the MPI lock is held; both vectors stay put; root's
            // data holds `size * n` (checked, else every rank failed the
            // verdict) and every rank's room holds `n`.
            check(unsafe {
                ffi::MPI_Iscatter(
                    u.data.0.as_ptr().cast(),
                    n,
                    dt.get(),
                    u.data.1.as_mut_ptr().cast(),
                    n,
                    dt.get(),
                    root,
                    comm,
                    &mut post.request,
                )
            })
        });
        self.unit(
            record,
            problem,
            (data, room::<T>(per_rank)),
            vec![stage],
            move |u, _| {
                // SAFETY: the collective completed and wrote `per_rank` elements.
                Ok(unsafe { written(u.data.1, per_rank) })
            },
        )
    }

    /// Every rank sends block `j` of its `data` (`size` equal blocks) to
    /// rank `j`, and gets back block `i` from every rank `i`, in rank order
    /// (`MPI_Ialltoall`).
    ///
    /// # Errors
    ///
    /// An error on every rank if the length is not a multiple of the size,
    /// or ranks passed different lengths; another MPI error.
    pub fn all_to_all<T: Plain>(&self, data: Vec<T>) -> Request<Vec<T>> {
        const WHAT: &str = "all_to_all";
        let size = self.size() as usize;
        let len = data.len();
        let mut problem = (len % size != 0).then(|| {
            invalid(
                WHAT,
                format!("the buffer holds {len} elements, not a multiple of the {size} ranks"),
            )
        });
        let n = count(len).map(|_| (len / size) as c_int).unwrap_or_else(|err| {
            problem.get_or_insert(err);
            0
        });
        let record = Record::new(self.sig::<T>(WHAT, &[]), len as u64);
        let dt = datatype::<T>();
        let stage: Stage<Unit<(Vec<T>, Vec<T>)>> = Box::new(move |u, comm, post| {
            u.agreed().verdict(WHAT, true)?;
            // SAFETY: the MPI lock is held; both vectors stay put; every
            // rank passed `len = n * size` (agreed) and has room for it.
            check(unsafe {
                ffi::MPI_Ialltoall(
                    u.data.0.as_ptr().cast(),
                    n,
                    dt.get(),
                    u.data.1.as_mut_ptr().cast(),
                    n,
                    dt.get(),
                    comm,
                    &mut post.request,
                )
            })
        });
        self.unit(record, problem, (data, room::<T>(len)), vec![stage], move |u, _| {
            // SAFETY: the collective completed and wrote `len` elements.
            Ok(unsafe { written(u.data.1, len) })
        })
    }

    /// Broadcasts any serde value from `root` (mpi4py's lowercase `bcast`):
    /// root passes `Some(value)`, the others `None`; every rank gets root's
    /// value. Its serialised length travels in the agreement, and a value
    /// of up to 192 bytes travels there too.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`], an error on every rank if root passed
    /// `None`, or an MPI error.
    pub fn bcast_obj<T>(&self, value: Option<&T>, root: i32) -> Request<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        const WHAT: &str = "bcast_obj";
        let at_root = root == self.rank();
        let mut problem =
            (!self.valid_root(root)).then(|| invalid(WHAT, format!("root {root} is not a rank of {}", self.size())));
        let mut bytes = Vec::new();
        if at_root && problem.is_none() {
            match value.map(postcard::to_allocvec) {
                Some(Ok(b)) => bytes = b,
                Some(Err(err)) => problem = Some(Error::Serialization(err.to_string())),
                None => problem = Some(invalid(WHAT, "root passed no value")),
            }
        }
        let mut record = Record::new(self.sig::<T>(WHAT, &root.to_le_bytes()), bytes.len() as u64);
        if at_root && bytes.len() <= PAYLOAD {
            record = record.with_payload(&bytes, None);
        }
        // Stage 2, for a value too large to ride: the bytes, sized from
        // root's length (the largest in the agreement).
        let stage: Stage<Unit<Vec<u8>>> = Box::new(move |u, comm, post| {
            u.agreed().verdict(WHAT, false)?;
            let len = usize::try_from(u.agreed().largest_len()).map_err(|_| Error::TooLarge { len: usize::MAX })?;
            if len <= PAYLOAD {
                return Ok(());
            }
            let n = count(len)?;
            u.data.resize(len, 0);
            // SAFETY: the MPI lock is held; the vector holds `len` bytes,
            // root's length, and stays put until the unit ends.
            check(unsafe {
                ffi::MPI_Ibcast(
                    u.data.as_mut_ptr().cast(),
                    n,
                    ffi::RSMPI_UINT8_T,
                    root,
                    comm,
                    &mut post.request,
                )
            })
        });
        self.unit(record, problem, bytes, vec![stage], move |u, _| {
            let bytes = match u.agreed().payload::<u8>() {
                Some(payload) if u.agreed().largest_len() as usize <= PAYLOAD => payload,
                _ => u.data,
            };
            crate::error::decode_whole(&bytes).map_err(Error::Serialization)
        })
    }
}
