//! [`Communicator`]'s collectives of lengths that vary by rank
//! (`gatherv`, `all_gatherv`, `scatterv`): units of three stages, the
//! agreement, an exchange of the lengths (so every rank sizes its buffers
//! from them and none can make another overflow), then the collective.

use crate::agreement::Record;
use crate::buffer::Plain;
use crate::collective::{Unit, invalid, written};
use crate::comm::{Communicator, count, datatype};
use crate::error::{Error, check};
use crate::request::{Request, Stage};
use mpi::ffi;
use std::os::raw::{c_int, c_void};

impl Communicator {
    /// Gathers every rank's `data`, of any length, to `root`
    /// (`MPI_Igatherv`, mpi4py's `Gatherv`): `Some(per_rank)` at root, one
    /// vector per rank in rank order; `None` elsewhere. The lengths are
    /// exchanged first (so root sizes its buffer from them, and no rank can
    /// make it overflow).
    ///
    /// # Errors
    ///
    /// An MPI error, ranks that called another collective, or a total past
    /// what MPI can count.
    pub fn gatherv<T: Plain>(&self, data: Vec<T>, root: i32) -> Request<Option<Vec<Vec<T>>>> {
        self.gathering_v("gatherv", data, Some(root), |v| v)
    }

    /// Gathers every rank's `data`, of any length, to every rank
    /// (`MPI_Iallgatherv`): one vector per rank, in rank order.
    ///
    /// # Errors
    ///
    /// As [`gatherv`](Self::gatherv).
    pub fn all_gatherv<T: Plain>(&self, data: Vec<T>) -> Request<Vec<Vec<T>>> {
        self.gathering_v("all_gatherv", data, None, |v| {
            v.expect("weft-mpi bug: every rank gets an all-gather's result")
        })
    }

    fn gathering_v<T: Plain, U: Send + 'static>(
        &self,
        what: &'static str,
        data: Vec<T>,
        root: Option<i32>,
        out: fn(Option<Vec<Vec<T>>>) -> U,
    ) -> Request<U> {
        let size = self.size() as usize;
        let at_root = root.is_none_or(|r| r == self.rank());
        let mut problem = root
            .filter(|r| !self.valid_root(*r))
            .map(|r| invalid(what, format!("root {r} is not a rank of {size}")));
        let mine = count(data.len()).unwrap_or_else(|err| {
            problem.get_or_insert(err);
            0
        });
        let record = Record::new(self.sig::<T>(what, &root.unwrap_or(-1).to_le_bytes()), 0);
        let dt = datatype::<T>();
        // Stage 2: everyone's length, to every rank (so every rank can tell
        // alike whether the total fits).
        let lengths: Stage<Unit<Varying<T>>> = Box::new(move |u, comm, post| {
            u.agreed().verdict(what, false)?;
            let v = &mut u.data;
            v.counts.resize(size, 0);
            v.mine = mine;
            // SAFETY: the MPI lock is held; `mine` and `counts` (one int per
            // rank) stay put in the slot until the unit ends.
            check(unsafe {
                ffi::MPI_Iallgather(
                    (&raw const v.mine).cast(),
                    1,
                    ffi::RSMPI_INT32_T,
                    v.counts.as_mut_ptr().cast(),
                    1,
                    ffi::RSMPI_INT32_T,
                    comm,
                    &mut post.request,
                )
            })
        });
        let data_stage: Stage<Unit<Varying<T>>> = Box::new(move |u, comm, post| {
            let v = &mut u.data;
            let total = v.displace().map_err(|err| invalid(what, err))?;
            if at_root {
                v.recv.reserve_exact(total);
            }
            let (send, recv) = (v.send.as_ptr().cast::<c_void>(), v.recv.as_mut_ptr().cast::<c_void>());
            // SAFETY: the MPI lock is held; every buffer stays put until the
            // unit ends; `counts` are what each rank sends (exchanged) and
            // `displs` their running sums, all fitting a C int (checked by
            // `displace`, alike on every rank), and `recv` has room for the
            // total where MPI writes it.
            check(unsafe {
                match root {
                    Some(root) => ffi::MPI_Igatherv(
                        send,
                        mine,
                        dt.get(),
                        recv,
                        v.counts.as_ptr(),
                        v.displs.as_ptr(),
                        dt.get(),
                        root,
                        comm,
                        &mut post.request,
                    ),
                    None => ffi::MPI_Iallgatherv(
                        send,
                        mine,
                        dt.get(),
                        recv,
                        v.counts.as_ptr(),
                        v.displs.as_ptr(),
                        dt.get(),
                        comm,
                        &mut post.request,
                    ),
                }
            })
        });
        let varying = Varying::new(data);
        self.unit(record, problem, varying, vec![lengths, data_stage], move |u, _| {
            Ok(out(at_root.then(|| u.data.split())))
        })
    }

    /// Scatters `root`'s blocks, one per rank and of any lengths
    /// (`MPI_Iscatterv`, mpi4py's `Scatterv`): rank `i` gets block `i`.
    /// `data` is `Some(blocks)` at root (one per rank), `None` elsewhere.
    ///
    /// # Errors
    ///
    /// An error on every rank if root's data is not one block per rank or
    /// past what MPI can count; another MPI error.
    pub fn scatterv<T: Plain>(&self, data: Option<Vec<Vec<T>>>, root: i32) -> Request<Vec<T>> {
        const WHAT: &str = "scatterv";
        let size = self.size() as usize;
        let at_root = root == self.rank();
        let mut problem =
            (!self.valid_root(root)).then(|| invalid(WHAT, format!("root {root} is not a rank of {size}")));
        let mut varying = Varying::new(Vec::new());
        if at_root && problem.is_none() {
            match data {
                Some(blocks) if blocks.len() == size => {
                    let lengths: Result<Vec<c_int>, Error> = blocks.iter().map(|b| count(b.len())).collect();
                    match lengths {
                        Ok(lengths) => {
                            varying.counts = lengths;
                            varying.send = blocks.concat();
                            if let Err(why) = varying.displace() {
                                problem = Some(invalid(WHAT, why));
                            }
                        }
                        Err(err) => problem = Some(err),
                    }
                }
                Some(blocks) => {
                    problem = Some(invalid(
                        WHAT,
                        format!("root passed {} blocks for {size} ranks", blocks.len()),
                    ))
                }
                None => problem = Some(invalid(WHAT, "root passed no data")),
            }
        }
        let record = Record::new(self.sig::<T>(WHAT, &root.to_le_bytes()), 0);
        let dt = datatype::<T>();
        // Stage 2: each rank's length, from root.
        let lengths: Stage<Unit<Varying<T>>> = Box::new(move |u, comm, post| {
            u.agreed().verdict(WHAT, false)?;
            let v = &mut u.data;
            v.counts.resize(size, 0);
            // SAFETY: the MPI lock is held; `counts` (one int per rank, read
            // at root) and `mine` stay put until the unit ends.
            check(unsafe {
                ffi::MPI_Iscatter(
                    v.counts.as_ptr().cast(),
                    1,
                    ffi::RSMPI_INT32_T,
                    (&raw mut v.mine).cast(),
                    1,
                    ffi::RSMPI_INT32_T,
                    root,
                    comm,
                    &mut post.request,
                )
            })
        });
        let data_stage: Stage<Unit<Varying<T>>> = Box::new(move |u, comm, post| {
            let v = &mut u.data;
            let mine = usize::try_from(v.mine).map_err(|_| invalid(WHAT, "a negative length"))?;
            v.recv.reserve_exact(mine);
            // SAFETY: the MPI lock is held; every buffer stays put until the
            // unit ends; root's `send` holds the blocks at `displs` with
            // `counts` (checked at root, before anything was posted), and
            // this rank's room holds the `mine` elements root sends it.
            check(unsafe {
                ffi::MPI_Iscatterv(
                    v.send.as_ptr().cast(),
                    v.counts.as_ptr(),
                    v.displs.as_ptr(),
                    dt.get(),
                    v.recv.as_mut_ptr().cast(),
                    v.mine,
                    dt.get(),
                    root,
                    comm,
                    &mut post.request,
                )
            })
        });
        self.unit(record, problem, varying, vec![lengths, data_stage], move |u, _| {
            let mine = usize::try_from(u.data.mine).unwrap_or(0);
            // SAFETY: the collective completed and wrote `mine` elements.
            Ok(unsafe { written(u.data.recv, mine) })
        })
    }
}

/// The buffers of a collective with lengths that vary by rank.
pub(crate) struct Varying<T> {
    send: Vec<T>,
    recv: Vec<T>,
    /// This rank's length (sent or received).
    mine: c_int,
    /// Every rank's length, and where its block starts.
    counts: Vec<c_int>,
    displs: Vec<c_int>,
}

impl<T: Plain> Varying<T> {
    fn new(send: Vec<T>) -> Varying<T> {
        Varying {
            send,
            recv: Vec::new(),
            mine: 0,
            counts: Vec::new(),
            displs: Vec::new(),
        }
    }

    /// Fills `displs` from `counts`; the total, or why it does not fit
    /// what MPI can count.
    fn displace(&mut self) -> Result<usize, String> {
        self.displs.clear();
        let mut at: c_int = 0;
        for &n in &self.counts {
            if n < 0 {
                return Err(format!("a rank sent the length {n}"));
            }
            self.displs.push(at);
            at = at
                .checked_add(n)
                .ok_or_else(|| "the blocks hold more elements in all than MPI can count (i32::MAX)".to_owned())?;
        }
        Ok(at as usize)
    }

    /// The received blocks, one per rank.
    fn split(self) -> Vec<Vec<T>> {
        let total: usize = self.counts.iter().map(|&n| n as usize).sum();
        // SAFETY: the collective completed and wrote `total` elements (the
        // sum of the counts, the room reserved for it).
        let all = unsafe { written(self.recv, total) };
        let mut at = 0;
        self.counts
            .iter()
            .map(|&n| {
                let block = all[at..at + n as usize].to_vec();
                at += n as usize;
                block
            })
            .collect()
    }
}
