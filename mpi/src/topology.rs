//! Communicators made from communicators: [`Communicator::duplicate`],
//! and [`CartComm`], a Cartesian process grid (mpi4py's `Create_cart`,
//! `Shift`), for halo exchanges.
//!
//! The grid is a duplicate of the communicator (its own message space,
//! made collectively like `MPI_Cart_create` with `reorder = false`) plus
//! arithmetic: ranks are laid out row-major, the last dimension varying
//! fastest, as MPI lays them out; [`CartComm::shift`] is `MPI_Cart_shift`,
//! giving [`PROC_NULL`](crate::PROC_NULL) past a non-periodic edge so the
//! same exchange code runs on every rank.

use crate::agreement::Record;
use crate::collective::{Unit, invalid};
use crate::comm::Communicator;
use crate::engine::{Engine, Raw};
use crate::envelope::Peer;
use crate::error::{Error, check};
use crate::request::{Request, Stage};
use mpi::ffi;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A communicator whose ranks form a Cartesian grid; derefs to its
/// [`Communicator`] for every operation.
#[derive(Clone)]
pub struct CartComm {
    comm: Communicator,
    dims: Vec<i32>,
    periods: Vec<bool>,
    coords: Vec<i32>,
}

impl Communicator {
    /// A new communicator over the same ranks, with its own message space
    /// (`MPI_Comm_idup`, collective: every rank must call it): messages on
    /// it never match receives on this one. Libraries use one to keep
    /// their traffic apart from the application's (the MPI pool does).
    ///
    /// # Errors
    ///
    /// An MPI error, or ranks that called another collective here.
    pub fn duplicate(&self) -> Request<Communicator> {
        self.duplicate_with("duplicate", &[], None, Ok)
    }

    /// `duplicate`, then `make` from the new communicator (`what` and
    /// `extra` join the signature, so every rank must pass them alike;
    /// a `problem` this rank found fails every rank).
    pub(crate) fn duplicate_with<T, M>(
        &self,
        what: &'static str,
        extra: &[u8],
        problem: Option<String>,
        make: M,
    ) -> Request<T>
    where
        T: Send + 'static,
        M: FnOnce(Communicator) -> Result<T, Error> + Send + 'static,
    {
        let record = Record::new(self.sig::<()>(what, extra), 0);
        let problem = problem.map(|why| invalid(what, why));
        let stage: Stage<Unit<NewComm>> = Box::new(move |u, comm, post| {
            u.agreed().verdict(what, true)?;
            // SAFETY: the MPI lock is held; MPI writes the new handle into
            // the slot's buffers, which stay put until the request is done.
            check(unsafe { ffi::MPI_Comm_idup(comm, &mut u.data.raw.0, &mut post.request) })
        });
        // Its hidden twin (`agreement.rs`), the next collective on `comm`
        // (so every rank posts the two in the same order).
        let twin: Stage<Unit<NewComm>> = Box::new(move |u, comm, post| {
            // SAFETY: as above, for the twin's handle.
            check(unsafe { ffi::MPI_Comm_idup(comm, &mut u.data.hidden.0, &mut post.request) })
        });
        // Posts nothing, so the unit holds `comm`'s stream (engine rule 8)
        // until the twin's `MPI_Comm_idup` has completed, not merely been
        // posted: Open MPI's idup posts nonblocking collectives of its own
        // on `comm` as it progresses (choosing the context id), so an MPI
        // collective of the next unit posted meanwhile would pair, on some
        // ranks, with one of those (a truncation error inside libnbc, then
        // a hang or a crash; open-mpi/ompi#2025).
        let settled: Stage<Unit<NewComm>> = Box::new(|_, _, _| Ok(()));
        // Weak: the unit sits in the engine, which `Shared` owns, until MPI
        // completes it; a strong handle there would keep `Shared` alive, so
        // a rank that dropped the request and left would never drain and
        // finalize (the request itself holds `Shared` while it lives).
        let shared = Arc::downgrade(&self.shared);
        let (rank, size) = (self.rank(), self.size());
        // SAFETY: reading a constant MPI initialised.
        let null = Raw(unsafe { ffi::RSMPI_COMM_NULL });
        let new = NewComm {
            raw: null,
            hidden: null,
            engine: self.shared.engine.clone(),
        };
        self.unit(record, problem, new, vec![stage, twin, settled], move |u, _| {
            // Gone only while MPI is being finalized (every handle dropped).
            let shared = shared.upgrade().ok_or(Error::Shutdown)?;
            let (raw, hidden) = u.data.take();
            let comm = Communicator::owned(shared.clone(), (raw, hidden), rank, size);
            shared.engine.with_mpi(|_| {
                // SAFETY: the lock is held; both are valid new
                // communicators (the unit completed).
                unsafe {
                    check(ffi::MPI_Comm_set_errhandler(raw.0, ffi::RSMPI_ERRORS_RETURN))?;
                    check(ffi::MPI_Comm_set_errhandler(hidden.0, ffi::RSMPI_ERRORS_RETURN))
                }
            })?;
            make(comm)
        })
    }

    /// A Cartesian grid of `dims` over this communicator's ranks (their
    /// product must be its size; [`dims_create`] picks balanced ones),
    /// periodic (wrapping) along the dimensions `periods` marks.
    /// Collective, like `MPI_Cart_create` with `reorder = false`: every
    /// rank calls it with the same arguments.
    ///
    /// # Errors
    ///
    /// On every rank: dimensions that do not multiply to the size, a
    /// `periods` of another length, or ranks that passed other grids.
    pub fn cart_create(&self, dims: &[i32], periods: &[bool]) -> Request<CartComm> {
        let size = self.size();
        let product = dims
            .iter()
            .try_fold(1i32, |p, &d| if d > 0 { p.checked_mul(d) } else { None });
        let problem = if dims.len() != periods.len() {
            Some(format!("{} dimensions but {} periods", dims.len(), periods.len()))
        } else if product != Some(size) {
            Some(format!("dimensions {dims:?} do not multiply to the {size} ranks"))
        } else {
            None
        };
        let mut extra: Vec<u8> = dims.iter().flat_map(|d| d.to_le_bytes()).collect();
        extra.extend(periods.iter().map(|&p| u8::from(p)));
        let (dims, periods) = (dims.to_vec(), periods.to_vec());
        self.duplicate_with("cart_create", &extra, problem, move |comm| {
            let coords = coords_of(comm.rank(), &dims);
            Ok(CartComm {
                comm,
                dims,
                periods,
                coords,
            })
        })
    }
}

impl CartComm {
    /// The grid's extent in each dimension.
    pub fn dims(&self) -> &[i32] {
        &self.dims
    }

    /// Which dimensions wrap around.
    pub fn periods(&self) -> &[bool] {
        &self.periods
    }

    /// This rank's coordinates in the grid.
    pub fn coords(&self) -> &[i32] {
        &self.coords
    }

    /// The rank at `coords` (wrapped along periodic dimensions), or
    /// `None` outside a non-periodic edge (`MPI_Cart_rank`).
    pub fn rank_of(&self, coords: &[i32]) -> Option<i32> {
        if coords.len() != self.dims.len() {
            return None;
        }
        let mut rank = 0i32;
        for ((&c, &d), &periodic) in coords.iter().zip(&self.dims).zip(&self.periods) {
            let c = if periodic {
                c.rem_euclid(d)
            } else if (0..d).contains(&c) {
                c
            } else {
                return None;
            };
            rank = rank * d + c;
        }
        Some(rank)
    }

    /// The ranks `disp` steps back and forward along `direction`
    /// (`MPI_Cart_shift`): `(source, dest)`, to receive from and send to
    /// in a shift. Past a non-periodic edge, [`PROC_NULL`](crate::PROC_NULL).
    ///
    /// # Panics
    ///
    /// If `direction` is not a dimension of the grid (a bug in the
    /// caller).
    pub fn shift(&self, direction: usize, disp: i32) -> (Peer, Peer) {
        assert!(
            direction < self.dims.len(),
            "weft-mpi: shift along dimension {direction} of a {}-dimensional grid",
            self.dims.len()
        );
        let at = |delta: i32| {
            let mut coords = self.coords.clone();
            coords[direction] += delta;
            self.rank_of(&coords).map_or(Peer::Null, Peer::Rank)
        };
        (at(-disp), at(disp))
    }

    /// The grid's communicator.
    pub fn comm(&self) -> &Communicator {
        &self.comm
    }
}

impl Deref for CartComm {
    type Target = Communicator;

    fn deref(&self) -> &Communicator {
        &self.comm
    }
}

impl fmt::Debug for CartComm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CartComm")
            .field("rank", &self.comm.rank())
            .field("dims", &self.dims)
            .field("periods", &self.periods)
            .field("coords", &self.coords)
            .finish()
    }
}

/// The handles `MPI_Comm_idup` writes (the communicator and its hidden
/// twin); freed by the engine if nobody takes them (a dropped
/// `duplicate`, or one whose second stage failed).
pub(crate) struct NewComm {
    raw: Raw<ffi::MPI_Comm>,
    hidden: Raw<ffi::MPI_Comm>,
    engine: Arc<Engine>,
}

impl NewComm {
    fn take(mut self) -> (Raw<ffi::MPI_Comm>, Raw<ffi::MPI_Comm>) {
        // SAFETY: reading a constant MPI initialised.
        let null = Raw(unsafe { ffi::RSMPI_COMM_NULL });
        (
            std::mem::replace(&mut self.raw, null),
            std::mem::replace(&mut self.hidden, null),
        )
    }
}

impl Drop for NewComm {
    fn drop(&mut self) {
        // SAFETY: reading a constant MPI initialised.
        let null = Raw(unsafe { ffi::RSMPI_COMM_NULL });
        for raw in [self.raw, self.hidden] {
            if raw != null {
                self.engine.retire(raw);
            }
        }
    }
}

/// Row-major coordinates of `rank` in a grid of `dims`.
fn coords_of(rank: i32, dims: &[i32]) -> Vec<i32> {
    let mut coords = vec![0; dims.len()];
    let mut rest = rank;
    for (c, &d) in coords.iter_mut().zip(dims).rev() {
        *c = rest % d;
        rest /= d;
    }
    coords
}

/// Balanced grid dimensions for `nodes` ranks in `ndims` dimensions, in
/// non-increasing order (`MPI_Dims_create` with every entry free): `12`
/// ranks in 2 dimensions give `[4, 3]`.
pub fn dims_create(nodes: i32, ndims: usize) -> Vec<i32> {
    let mut dims = vec![1; ndims];
    if ndims == 0 || nodes < 1 {
        return dims;
    }
    let mut factors = Vec::new();
    let (mut n, mut p) = (nodes, 2);
    while p * p <= n {
        while n % p == 0 {
            factors.push(p);
            n /= p;
        }
        p += 1;
    }
    if n > 1 {
        factors.push(n);
    }
    // Largest factors first, each to the smallest dimension so far.
    for &f in factors.iter().rev() {
        let smallest = (0..ndims).min_by_key(|&i| dims[i]).expect("ndims > 0");
        dims[smallest] *= f;
    }
    dims.sort_unstable_by(|a, b| b.cmp(a));
    dims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_are_balanced_and_non_increasing() {
        assert_eq!(dims_create(12, 2), [4, 3]);
        assert_eq!(dims_create(6, 2), [3, 2]);
        assert_eq!(dims_create(7, 2), [7, 1]);
        assert_eq!(dims_create(8, 3), [2, 2, 2]);
        assert_eq!(dims_create(1, 1), [1]);
        for n in 1..200 {
            for d in 1..4 {
                assert_eq!(dims_create(n, d).iter().product::<i32>(), n);
            }
        }
    }

    #[test]
    fn coordinates_are_row_major() {
        assert_eq!(coords_of(5, &[2, 3]), [1, 2]);
        assert_eq!(coords_of(0, &[2, 3]), [0, 0]);
        assert_eq!(coords_of(3, &[4]), [3]);
    }
}
