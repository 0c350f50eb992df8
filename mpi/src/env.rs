//! [`Mpi`]: initialising and finalising MPI, once per process.
//!
//! # Thread level
//!
//! Weft initialises MPI at `MPI_THREAD_SERIALIZED`. Its loop is turned by
//! whichever worker parks first, and tasks post requests from any worker,
//! so MPI calls come from many threads, but never at once: every call goes
//! through the progress engine's lock (see `engine.rs`, rule 1). That rules
//! out `SINGLE` and `FUNNELED` (one thread only), and makes `MULTIPLE`'s
//! internal locking redundant; on Open MPI 4.1 `SERIALIZED`, `FUNNELED` and
//! `MULTIPLE` measured the same latency here, `SINGLE` about 0.1 µs less
//! (the `mpi` bench suite measures all four). Communicator handles are raw
//! MPI handles wrapped so they can move between threads, which is sound
//! because they are only ever used under that lock.

use crate::comm::Communicator;
use crate::engine::{Engine, Raw};
use crate::error::{Error, check};
use crate::loom::lock;
use mpi::ffi;
use std::fmt;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use weft_io::source::SourceHandle;

/// The live MPI state of this process, if any.
static LIVE: Mutex<Weak<Shared>> = Mutex::new(Weak::new());
/// Set once MPI was finalized: it cannot be initialised again.
static FINALIZED: AtomicBool = AtomicBool::new(false);

/// The process's MPI, initialised. Keep it alive for as long as MPI is in
/// use; communicators and operations keep it alive too. When the last of
/// them is gone, MPI is finalized (every rank must do so for `mpirun` to
/// report success). A rank that is unwinding from a panic aborts the job
/// instead (`MPI_Abort`), since finalizing would wait for ranks that may
/// be waiting for it.
///
/// ```no_run
/// let mpi = weft_mpi::Mpi::init()?;
/// let world = mpi.world();
/// println!("rank {} of {}", world.rank(), world.size());
/// # Ok::<(), weft_mpi::Error>(())
/// ```
#[derive(Clone)]
pub struct Mpi {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) engine: Arc<Engine>,
    /// A duplicate of `MPI_COMM_WORLD` with `MPI_ERRORS_RETURN`, so that
    /// errors come back as codes, not as a job abort.
    pub(crate) world: Raw<ffi::MPI_Comm>,
    pub(crate) rank: i32,
    pub(crate) size: i32,
    /// MPI was initialised by Weft (and so is finalized by it).
    owns_mpi: bool,
    /// The reactors the engine is registered with.
    sources: Mutex<Vec<SourceHandle>>,
    /// The id of the first of them (0: none yet), for the fast path of
    /// `register`.
    first_reactor: AtomicUsize,
}

impl Mpi {
    /// Initialises MPI (at `MPI_THREAD_SERIALIZED`), or returns the handle
    /// to it if this process already did.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if MPI was finalized already, or was
    /// initialised by other code at a thread level below `SERIALIZED`; an
    /// MPI error if `MPI_Init_thread` fails.
    pub fn init() -> Result<Mpi, Error> {
        let mut live = lock(&LIVE);
        if let Some(shared) = live.upgrade() {
            return Ok(Mpi { shared });
        }
        if FINALIZED.load(Acquire) {
            return Err(Error::Unavailable(
                "MPI was finalized in this process and cannot be initialised again; keep the `Mpi` handle alive for as long as MPI is used".into(),
            ));
        }
        let shared = Arc::new(Shared::init()?);
        *live = Arc::downgrade(&shared);
        Ok(Mpi { shared })
    }

    /// The world communicator (every rank of the job).
    pub fn world(&self) -> Communicator {
        Communicator::world(self.shared.clone())
    }

    /// This process's rank in the world.
    pub fn rank(&self) -> i32 {
        self.shared.rank
    }

    /// Ranks in the world.
    pub fn size(&self) -> i32 {
        self.shared.size
    }

    /// Requests and probes in flight in the progress engine.
    pub fn pending(&self) -> usize {
        self.shared.engine.pending()
    }

    /// Requests completed by a loop turn rather than by the eager test
    /// right after posting (how often an await really waited).
    pub fn completed_by_loop(&self) -> usize {
        self.shared.engine.completed_by_loop()
    }

    /// Aborts every rank of the job with `code` (`MPI_Abort`): the way out
    /// when a rank cannot go on and the others would wait for it forever.
    pub fn abort(&self, code: i32) -> ! {
        let _mpi = self.shared.engine.lock();
        // SAFETY: the lock is held; MPI_Abort does not return.
        unsafe { ffi::MPI_Abort(self.shared.world.0, code) };
        std::process::exit(code)
    }

    /// The wall-clock time MPI measures, in seconds (`MPI_Wtime`).
    pub fn wtime(&self) -> f64 {
        let _mpi = self.shared.engine.lock();
        // SAFETY: the lock is held (every MPI call takes it).
        unsafe { ffi::MPI_Wtime() }
    }
}

impl fmt::Debug for Mpi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.shared.rank)
            .field("size", &self.shared.size)
            .field("pending", &self.pending())
            .finish()
    }
}

impl Shared {
    fn init() -> Result<Shared, Error> {
        let engine = Arc::new(Engine::new());
        let _mpi = engine.lock();
        let mut initialized: c_int = 0;
        let mut finalized: c_int = 0;
        // SAFETY: both may be called at any time, from any thread.
        unsafe {
            ffi::MPI_Initialized(&mut initialized);
            ffi::MPI_Finalized(&mut finalized);
        }
        if finalized != 0 {
            return Err(Error::Unavailable(
                "MPI was finalized by other code in this process".into(),
            ));
        }
        let serialized = ffi::MPI_THREAD_SERIALIZED as c_int;
        let owns_mpi = initialized == 0;
        let mut provided: c_int = 0;
        if owns_mpi {
            // SAFETY: MPI is not initialised; null argc/argv are allowed.
            check(unsafe {
                ffi::MPI_Init_thread(std::ptr::null_mut(), std::ptr::null_mut(), serialized, &mut provided)
            })?;
        } else {
            // SAFETY: MPI is initialised.
            check(unsafe { ffi::MPI_Query_thread(&mut provided) })?;
        }
        if provided < serialized {
            return Err(Error::Unavailable(format!(
                "the MPI library provides thread level {provided}, below MPI_THREAD_SERIALIZED, which Weft needs because its loop runs on several threads"
            )));
        }
        // SAFETY: reading constants MPI initialised.
        let (comm_world, comm_null, errors_return) =
            unsafe { (ffi::RSMPI_COMM_WORLD, ffi::RSMPI_COMM_NULL, ffi::RSMPI_ERRORS_RETURN) };
        let mut world = comm_null;
        let (mut rank, mut size) = (0, 0);
        // SAFETY: MPI is initialised and the lock is held; out-pointers are
        // valid locals.
        unsafe {
            check(ffi::MPI_Comm_dup(comm_world, &mut world))?;
            check(ffi::MPI_Comm_set_errhandler(world, errors_return))?;
            check(ffi::MPI_Comm_rank(world, &mut rank))?;
            check(ffi::MPI_Comm_size(world, &mut size))?;
        }
        drop(_mpi);
        Ok(Shared {
            engine,
            world: Raw(world),
            rank,
            size,
            owns_mpi,
            sources: Mutex::new(Vec::new()),
            first_reactor: AtomicUsize::new(0),
        })
    }

    /// Makes sure the engine is polled by the current reactor; returns the
    /// source handle's notify to call after posting.
    pub(crate) fn register(&self) -> Result<(), Error> {
        // The common case, on every post: the current reactor is the one
        // registered first (its id stays unique while our `SourceHandle`
        // keeps it alive). No clone, no lock.
        let first = self.first_reactor.load(Acquire);
        match weft_io::Handle::with_current(|current| current.map(|r| r.id() == first)) {
            None => return Err(Error::NoRuntime),
            Some(true) => return Ok(()),
            Some(false) => {}
        }
        let reactor = weft_io::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut sources = lock(&self.sources);
        if !sources.iter().any(|s| s.reactor().ptr_eq(&reactor)) {
            self.engine.add_reactor();
            sources.push(reactor.register_source(self.engine.clone()));
            if sources.len() == 1 {
                self.first_reactor.store(reactor.id(), Release);
            }
        }
        Ok(())
    }

    /// Wakes the loops polling the engine (new work while they may sleep).
    pub(crate) fn notify(&self) {
        for source in lock(&self.sources).iter() {
            source.notify();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // No `Mpi::init` may start on a half-finalized MPI while this runs.
        let _live = lock(&LIVE);
        // Take the engine off every loop first.
        drop(std::mem::take(&mut *lock(&self.sources)));
        if self.owns_mpi && std::thread::panicking() {
            // Finalizing would wait for the other ranks, which may be
            // waiting for this one: end the job instead.
            let _mpi = self.engine.lock();
            // SAFETY: the lock is held; MPI_Abort does not return.
            unsafe { ffi::MPI_Abort(self.world.0, 134) };
        }
        self.engine.drain(Duration::from_secs(1), Instant::now());
        let mut state = self.engine.lock();
        // Messages pulled but never claimed must be received (a matched
        // message cannot go back to MPI); requests still in flight keep
        // their buffers for good rather than free memory MPI may write.
        for unclaimed in self.engine.take_unclaimed_locked(&mut state) {
            self.engine.discard_locked(unclaimed.message, &unclaimed.status);
        }
        self.engine.abandon_in_flight(&mut state);
        let mut world = self.world.0;
        // SAFETY: the lock is held; no operation uses the duplicate any more
        // (they all hold this `Shared`).
        unsafe { ffi::MPI_Comm_free(&mut world) };
        if !self.owns_mpi {
            return;
        }
        // A reactor that still holds the engine polls nothing from now on.
        self.engine.set_finalized(&mut state);
        FINALIZED.store(true, Release);
        // SAFETY: the lock is held; this is the last MPI call.
        unsafe { ffi::MPI_Finalize() };
    }
}

/// This host's name as MPI knows it (`MPI_Get_processor_name`), for
/// telling other ranks where to connect.
pub(crate) fn processor_name(shared: &Shared) -> String {
    let _mpi = shared.engine.lock();
    // SAFETY: reading a constant MPI initialised.
    let max = unsafe { ffi::RSMPI_MAX_PROCESSOR_NAME } as usize;
    let mut buf = vec![0u8; max + 1];
    let mut len: c_int = 0;
    // SAFETY: a local query writing at most `max` bytes into `buf`.
    let rc = unsafe { ffi::MPI_Get_processor_name(buf.as_mut_ptr().cast(), &mut len) };
    if rc != ffi::MPI_SUCCESS as c_int {
        return "localhost".to_owned();
    }
    buf.truncate(len.max(0) as usize);
    String::from_utf8_lossy(&buf).into_owned()
}
