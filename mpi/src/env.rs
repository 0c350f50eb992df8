//! [`Mpi`] and [`MpiBuilder`]: initialising and finalising MPI, once per
//! process; the thread rules; this node's share of cores.
//!
//! # Thread rules
//!
//! 1. **Weft initialises MPI at `MPI_THREAD_SERIALIZED`.** Its loop is
//!    turned by whichever worker parks first, and tasks post requests from
//!    any worker, so MPI calls come from many threads, but never at once:
//!    every call goes through the progress engine's lock (engine rule 1).
//!    That rules out `SINGLE` and `FUNNELED`, and makes `MULTIPLE`'s
//!    internal locking redundant (on Open MPI 4.1 `SERIALIZED`, `FUNNELED`
//!    and `MULTIPLE` measured the same latency here; the `mpi` bench suite
//!    measures all four). Code outside Weft that calls MPI in the same
//!    process takes the same lock: [`Mpi::lock`]. An application that
//!    cannot (a library making its own calls from its own threads) asks
//!    for [`Threading::Multiple`].
//! 2. **MPI initialised by other code must be at `MULTIPLE`.** Weft's loop
//!    calls `MPI_Testsome` whenever it turns, and code that initialised
//!    MPI itself makes its calls without Weft's lock: at any lower level
//!    the two would overlap, which MPI forbids. [`Mpi::init`] refuses it
//!    with [`Error::Unavailable`] saying so.
//! 3. **`MPI_Finalize` runs on the thread that called `MPI_Init_thread`**
//!    (MPI-3.1 §12.4.3 makes that the main thread's duty): Weft starts a
//!    thread of its own for both, so the last handle may be dropped on any
//!    worker.
//! 4. **Every rank leaves together.** Before finalizing, a rank waits in
//!    an exit fence (`Shared::exit_fence`) until every rank has come that
//!    far, running the engine meanwhile: a collective's rounds are posted
//!    by Weft's engine alone, so a rank that dropped a collective and left
//!    would strand a rank that joins it later. `MPI_Finalize` waits for
//!    every rank anyway; a rank that died ends the fence at once. After
//!    the fence, what is still in flight (a send no rank received, a
//!    collective the other ranks never joined) runs for up to 2 seconds
//!    (`DRAIN`) before the rank finalizes without it: such a job exits
//!    correctly, 2 seconds later than it would.
//!
//! Communicator handles are raw MPI handles wrapped so they can move
//! between threads, which is sound because they are only ever used under
//! the engine's lock.

use crate::agreement::{Agreement, Hidden};
use crate::comm::Communicator;
use crate::doorbell::Doorbell;
use crate::engine::{Engine, InFlight, Raw};
use crate::error::{Error, check};
use crate::liveness::{Deaths, Liveness};
use crate::loom::lock;
use mpi::ffi;
use std::fmt;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard, Weak, mpsc};
use std::time::Duration;
use weft_io::source::SourceHandle;

/// The live MPI state of this process, if any.
static LIVE: Mutex<Weak<Shared>> = Mutex::new(Weak::new());
/// Set once MPI was finalized: it cannot be initialised again.
static FINALIZED: AtomicBool = AtomicBool::new(false);

/// The default spin window (engine rule 6): the loop polls without
/// sleeping for this long after the last post or completion.
pub const DEFAULT_SPIN_WINDOW: Duration = Duration::from_micros(100);

/// The default longest idle poll interval (engine rule 6): with work in
/// flight and nothing completing, the loop still polls at least this often.
/// A send rings the destination's doorbell, which wakes its loop at once,
/// so this bounds only what no ring announces (a peer on another host):
/// each idle poll is a wakeup costing about 15 µs of CPU, 1.5 % of a core
/// at this interval.
pub const DEFAULT_MAX_SLEEP: Duration = Duration::from_millis(1);

/// How long finalizing waits for requests still in flight (a send to a
/// rank that has not received yet) before leaving them to MPI.
const DRAIN: Duration = Duration::from_secs(2);

/// The thread level Weft asks for when it initialises MPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Threading {
    /// `MPI_THREAD_SERIALIZED` (the default): every MPI call in the
    /// process goes through Weft's lock ([`Mpi::lock`] for your own).
    Serialized,
    /// `MPI_THREAD_MULTIPLE`: other code may call MPI from its own
    /// threads without Weft's lock (a little slower per call).
    Multiple,
}

/// Settings for [`Mpi`] (see the engine's rule 6 for what they tune).
///
/// ```no_run
/// use std::time::Duration;
///
/// let mpi = weft_mpi::Mpi::builder()
///     .spin_window(Duration::from_micros(50))
///     .max_sleep(Duration::from_micros(200))
///     .init()?;
/// # Ok::<(), weft_mpi::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MpiBuilder {
    spin_window: Duration,
    max_sleep: Duration,
    oversubscribed: Option<bool>,
    threading: Threading,
    death_notice: bool,
}

impl Default for MpiBuilder {
    fn default() -> MpiBuilder {
        MpiBuilder {
            spin_window: DEFAULT_SPIN_WINDOW,
            max_sleep: DEFAULT_MAX_SLEEP,
            oversubscribed: None,
            threading: Threading::Serialized,
            death_notice: true,
        }
    }
}

impl MpiBuilder {
    /// How long after the last post or completion the loop keeps polling
    /// MPI without sleeping, at least (default [`DEFAULT_SPIN_WINDOW`]): an
    /// exchange that keeps going stays inside it and answers in
    /// microseconds; after a quiet spell the loop sleeps. While operations
    /// of late have completed soon after they were posted (within 1 ms),
    /// the window stretches to twice that recent wait, so a reply that
    /// takes a few hundred microseconds (a loaded machine, a TCP link) is
    /// still caught spinning (the stretch holds while operations are in
    /// flight; with none, the loop spins for this setting only); waits
    /// longer than that (idle gaps) leave it at this setting. Zero: spin
    /// only as long as that recent wait asks. A rank rings a peer's
    /// doorbell at most once per this window, so every rank should use the
    /// same. (Where ranks outnumber cores the loop yields at every empty
    /// poll: see [`Mpi::oversubscribed`].)
    pub fn spin_window(mut self, window: Duration) -> MpiBuilder {
        self.spin_window = window;
        self
    }

    /// The longest idle poll interval (default [`DEFAULT_MAX_SLEEP`]):
    /// while operations are in flight and nothing completes, the loop
    /// backs off from 50 µs to this (to at most 50 µs while MPI holds
    /// requests, such as a collective's, which move only while polled and
    /// which no ring announces). A message from a rank on this host
    /// rings this rank's doorbell, which makes the loop poll at once and
    /// spin for the spin window, so it is noticed at once whatever this is
    /// unless it lands after that window (over TCP on a loaded host, say);
    /// this bounds how late a message nothing rang for (from a
    /// rank on another host, or in another network namespace) is noticed
    /// after an idle gap. Shorter answers those sooner and costs more CPU while
    /// waiting (a wakeup per interval, about 15 µs of CPU each on a
    /// virtual machine).
    pub fn max_sleep(mut self, max_sleep: Duration) -> MpiBuilder {
        self.max_sleep = max_sleep;
        self
    }

    /// Whether this node runs more ranks than it has cores (default:
    /// detected, see [`Mpi::oversubscribed`]). Oversubscribed ranks yield
    /// their core whenever a poll finds nothing, so they do not starve the
    /// rank they wait for.
    pub fn oversubscribed(mut self, yes: bool) -> MpiBuilder {
        self.oversubscribed = Some(yes);
        self
    }

    /// The thread level to ask for when Weft initialises MPI (default
    /// [`Threading::Serialized`]).
    pub fn threading(mut self, threading: Threading) -> MpiBuilder {
        self.threading = threading;
        self
    }

    /// Whether the ranks watch each other over TCP, so that a rank that
    /// dies fails the operations that need it on every surviving rank
    /// instead of leaving them waiting (default on; see
    /// [`Error::PeerDied`]). Every rank must choose the same.
    ///
    /// Only what needs the dead rank fails: every collective, and sends to
    /// and receives from it. A receive from a live rank waits on, even if
    /// that rank was to send only after hearing from the dead one (a ring
    /// of ranks); it ends when that rank's own error ends its part, or
    /// when the launcher ends the job. Launch with
    /// `mpirun --mca orte_abort_on_non_zero_status 0` so that `mpirun`
    /// does not kill the survivors first; it still exits with status 1 and
    /// names the dead rank, which never finalized.
    pub fn death_notice(mut self, on: bool) -> MpiBuilder {
        self.death_notice = on;
        self
    }

    /// Initialises MPI with these settings, or, if this process already
    /// did, applies the spin window, longest sleep and oversubscription
    /// setting to it and returns its handle.
    ///
    /// # Errors
    ///
    /// As [`Mpi::init`].
    pub fn init(self) -> Result<Mpi, Error> {
        let mut live = lock(&LIVE);
        if let Some(shared) = live.upgrade() {
            self.apply(&shared);
            return Ok(Mpi { shared });
        }
        if FINALIZED.load(Acquire) {
            return Err(Error::Unavailable(
                "MPI was finalized in this process and cannot be initialised again; keep the `Mpi` handle alive for as long as MPI is used".into(),
            ));
        }
        let shared = Arc::new(Shared::init(&self)?);
        self.apply(&shared);
        *live = Arc::downgrade(&shared);
        Ok(Mpi { shared })
    }

    fn apply(&self, shared: &Shared) {
        let over = self
            .oversubscribed
            .unwrap_or(shared.node.local_size > shared.node.cores);
        shared.engine.set_oversubscribed(over);
        shared
            .engine
            .set_mpi_yields(mpi_yields_when_idle(|name| std::env::var(name).ok()));
        shared.engine.set_spin_window(self.spin_window);
        shared.engine.set_max_sleep(self.max_sleep);
    }
}

/// The process's MPI, initialised. Keep it alive for as long as MPI is in
/// use; communicators and requests keep it alive too. When the last of
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
    /// The collectives' agreement record datatype.
    pub(crate) agreement: Agreement,
    /// The world's hidden twin (`agreement.rs`).
    pub(crate) hidden: Arc<Hidden>,
    node: Node,
    /// Ranks the death notice says died, and its watcher.
    pub(crate) deaths: Arc<Deaths>,
    liveness: Mutex<Option<Liveness>>,
    /// The thread that initialised MPI and finalizes it (thread rule 3);
    /// `None` if other code initialised MPI.
    mpi_thread: Mutex<Option<MpiThread>>,
    /// The reactors the engine is registered with.
    sources: Mutex<Vec<SourceHandle>>,
    /// The id of the first of them (0: none yet), for the fast path of
    /// `register`.
    first_reactor: AtomicUsize,
}

/// Ranks and cores on this node.
#[derive(Debug, Clone)]
struct Node {
    local_size: usize,
    local_rank: usize,
    /// Cores any rank on this node may run on (the union of their
    /// affinity masks).
    cores: usize,
    /// Cores this process may run on.
    own_cores: usize,
    /// The world ranks on this node, the only ones whose doorbells this
    /// rank can ring (`doorbell.rs`); `None` if MPI cannot say.
    world_ranks: Option<std::sync::Arc<[i32]>>,
}

impl Mpi {
    /// Initialises MPI (at `MPI_THREAD_SERIALIZED`, default settings), or
    /// returns the handle to it if this process already did. Every rank
    /// must call it (it makes communicators, a collective act).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if MPI was finalized already, or was
    /// initialised by other code at a thread level below
    /// `MPI_THREAD_MULTIPLE` (thread rule 2); an MPI error if
    /// `MPI_Init_thread` fails.
    pub fn init() -> Result<Mpi, Error> {
        MpiBuilder::default().init()
    }

    /// Settings for initialising MPI: spin window, longest idle poll
    /// interval, thread level.
    pub fn builder() -> MpiBuilder {
        MpiBuilder::default()
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

    /// Ranks of this job on this node (`MPI_Comm_split_type` shared).
    pub fn local_size(&self) -> usize {
        self.shared.node.local_size
    }

    /// This process's rank among the ranks on this node.
    pub fn local_rank(&self) -> usize {
        self.shared.node.local_rank
    }

    /// Cores the ranks on this node may use (the union of their CPU
    /// affinity masks).
    pub fn node_cores(&self) -> usize {
        self.shared.node.cores
    }

    /// This rank's share of the node's cores: at least one, at most what
    /// its affinity allows. A runtime with this many workers per rank uses
    /// the node without oversubscribing it (`weft::mpi::runtime` builds
    /// one).
    pub fn cores_per_rank(&self) -> usize {
        let node = &self.shared.node;
        (node.cores / node.local_size.max(1)).clamp(1, node.own_cores.max(1))
    }

    /// True when this node runs more ranks than it has cores, as detected
    /// at [`init`](Self::init) or set with
    /// [`MpiBuilder::oversubscribed`]: the loop then yields its core
    /// whenever a poll finds nothing (as blocking MPI calls do there: once,
    /// inside MPI's own progress where Open MPI yields by itself, its
    /// `mpi_yield_when_idle`, else by the loop), and
    /// tasks never spin; past the spin window it sleeps between polls as
    /// anywhere, leaving the core to the ranks it waits for.
    pub fn oversubscribed(&self) -> bool {
        self.shared.engine.oversubscribed()
    }

    /// The spin window set ([`MpiBuilder::spin_window`]; the loop stretches
    /// it while operations complete soon after they are posted).
    pub fn spin_window(&self) -> Duration {
        self.shared.engine.spin_window()
    }

    /// The longest idle poll interval in force ([`MpiBuilder::max_sleep`]).
    pub fn max_sleep(&self) -> Duration {
        self.shared.engine.max_sleep()
    }

    /// Requests and waiting receives in flight in the progress engine.
    pub fn pending(&self) -> usize {
        self.shared.engine.pending()
    }

    /// Operations completed by a loop turn rather than by the eager test
    /// right after posting (how often an await really waited).
    pub fn completed_by_loop(&self) -> usize {
        self.shared.engine.completed_by_loop()
    }

    /// Holds the lock every MPI call in this process goes through (thread
    /// rule 1): make your own MPI calls (rsmpi, or C) while holding it, and
    /// they never overlap Weft's. Keep it short: the loop cannot make
    /// progress on MPI while you hold it, and never await while holding it.
    pub fn lock(&self) -> MpiLock<'_> {
        MpiLock {
            _guard: self.shared.engine.raw_lock(),
        }
    }

    /// Aborts every rank of the job with `code` (`MPI_Abort`): the way out
    /// when a rank cannot go on and the others would wait for it forever.
    pub fn abort(&self, code: i32) -> ! {
        let _mpi = self.shared.engine.raw_lock();
        // SAFETY: the lock is held; MPI_Abort does not return.
        unsafe { ffi::MPI_Abort(self.shared.world.0, code) };
        std::process::exit(code)
    }

    /// The wall-clock time MPI measures, in seconds (`MPI_Wtime`).
    pub fn wtime(&self) -> f64 {
        let _mpi = self.shared.engine.raw_lock();
        // SAFETY: the lock is held (every MPI call takes it).
        unsafe { ffi::MPI_Wtime() }
    }
}

/// The MPI lock, held ([`Mpi::lock`]): while it lives, no other thread
/// calls MPI through Weft.
pub struct MpiLock<'a> {
    _guard: MutexGuard<'a, InFlight>,
}

impl fmt::Debug for MpiLock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MpiLock")
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

/// Weft's own thread for `MPI_Init_thread` and `MPI_Finalize` (thread
/// rule 3).
struct MpiThread {
    finalize: mpsc::Sender<()>,
    handle: std::thread::JoinHandle<()>,
}

impl MpiThread {
    /// Starts the thread and initialises MPI on it at `required`; the
    /// thread level provided.
    fn start(required: c_int) -> Result<(MpiThread, c_int), Error> {
        let (init_tx, init_rx) = mpsc::channel();
        let (finalize, finalize_rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("weft-mpi".into())
            .spawn(move || {
                let mut provided: c_int = 0;
                // SAFETY: MPI is not initialised (checked by the caller,
                // which holds the engine's lock); null argc/argv are allowed.
                let rc = unsafe {
                    ffi::MPI_Init_thread(std::ptr::null_mut(), std::ptr::null_mut(), required, &mut provided)
                };
                let _ = init_tx.send((rc, provided));
                if rc != ffi::MPI_SUCCESS as c_int {
                    return;
                }
                // Until the last handle goes (or the process exits without
                // finalizing, when the sender is dropped unsent: no call).
                if finalize_rx.recv().is_ok() {
                    // SAFETY: MPI is initialised, on this thread; the
                    // sender holds the engine's lock and has marked MPI
                    // finalized, so no other call overlaps or follows.
                    unsafe { ffi::MPI_Finalize() };
                }
            })
            .map_err(|e| Error::Unavailable(format!("cannot start the MPI thread: {e}")))?;
        let (rc, provided) = init_rx
            .recv()
            .map_err(|_| Error::Unavailable("the MPI thread died initialising MPI".into()))?;
        check(rc)?;
        Ok((MpiThread { finalize, handle }, provided))
    }

    /// Finalizes MPI on its thread and waits for it.
    fn finalize(self) {
        if self.finalize.send(()).is_ok() {
            let _ = self.handle.join();
        }
    }
}

impl Shared {
    fn init(settings: &MpiBuilder) -> Result<Shared, Error> {
        let engine = Arc::new(Engine::new(DEFAULT_SPIN_WINDOW, settings.max_sleep, false));
        let mpi = engine.raw_lock();
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
        let required = match settings.threading {
            Threading::Serialized => ffi::MPI_THREAD_SERIALIZED as c_int,
            Threading::Multiple => ffi::MPI_THREAD_MULTIPLE as c_int,
        };
        let mut provided: c_int = 0;
        let mpi_thread = if initialized == 0 {
            let (thread, level) = MpiThread::start(required)?;
            provided = level;
            Some(thread)
        } else {
            // SAFETY: MPI is initialised.
            check(unsafe { ffi::MPI_Query_thread(&mut provided) })?;
            if provided < ffi::MPI_THREAD_MULTIPLE as c_int {
                return Err(Error::Unavailable(format!(
                    "MPI was initialised by other code at thread level {provided}; Weft's loop calls MPI from its own threads, which overlaps that code's calls unless MPI runs at MPI_THREAD_MULTIPLE: initialise MPI with MPI_THREAD_MULTIPLE, or let Weft initialise it (`Mpi::init`) and make your own calls under `Mpi::lock`"
                )));
            }
            None
        };
        if provided < required {
            drop(mpi);
            if let Some(thread) = mpi_thread {
                thread.finalize();
            }
            return Err(Error::Unavailable(format!(
                "the MPI library provides thread level {provided}, below the {required} Weft asked for (it needs at least MPI_THREAD_SERIALIZED, since its loop runs on several threads)"
            )));
        }
        // SAFETY: reading constants MPI initialised.
        let (comm_world, comm_null, errors_return) =
            unsafe { (ffi::RSMPI_COMM_WORLD, ffi::RSMPI_COMM_NULL, ffi::RSMPI_ERRORS_RETURN) };
        let (mut world, mut hidden) = (comm_null, comm_null);
        let (mut rank, mut size) = (0, 0);
        // SAFETY: MPI is initialised and the lock is held; out-pointers are
        // valid locals.
        unsafe {
            check(ffi::MPI_Comm_dup(comm_world, &mut world))?;
            check(ffi::MPI_Comm_set_errhandler(world, errors_return))?;
            check(ffi::MPI_Comm_dup(comm_world, &mut hidden))?;
            check(ffi::MPI_Comm_set_errhandler(hidden, errors_return))?;
            check(ffi::MPI_Comm_rank(world, &mut rank))?;
            check(ffi::MPI_Comm_size(world, &mut size))?;
        }
        let agreement = Agreement::create()?;
        let node = Node::discover(Raw(world))?;
        if let Some(bell) = Doorbell::open(agree_job(Raw(world), rank)?, rank, size, node.world_ranks.as_deref()) {
            engine.set_doorbell(bell);
        }
        let deaths = Arc::new(Deaths::default());
        // Every rank calls it (it agrees on whether every rank connected),
        // or none: the setting must be the same everywhere.
        let liveness = settings
            .death_notice
            .then(|| Liveness::start(Raw(world), rank, size, engine.clone(), deaths.clone()))
            .flatten();
        drop(mpi);
        Ok(Shared {
            engine,
            world: Raw(world),
            rank,
            size,
            agreement,
            hidden: Arc::new(Hidden::new(Raw(hidden))),
            node,
            deaths,
            liveness: Mutex::new(liveness),
            mpi_thread: Mutex::new(mpi_thread),
            sources: Mutex::new(Vec::new()),
            first_reactor: AtomicUsize::new(0),
        })
    }

    /// At a post: the current reactor, if any, polls the engine from now
    /// on. Posting needs none (MPI holds the request); awaiting does
    /// (`Request::poll` registers, or fails with [`Error::NoRuntime`]).
    pub(crate) fn register_if_running(&self) {
        let _ = self.register();
    }

    /// Makes sure the engine is polled by the current reactor.
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

/// The job's number for the doorbells' names (`doorbell.rs`): rank 0's
/// draw, broadcast (collective over `world`: every rank calls it in
/// `init`). Call under the MPI lock.
fn agree_job(world: Raw<ffi::MPI_Comm>, rank: c_int) -> Result<u64, Error> {
    let mut job = if rank == 0 { crate::doorbell::draw_job() } else { 0 };
    // SAFETY: the lock is held; `world` is live; one u64 in and out.
    check(unsafe { ffi::MPI_Bcast((&raw mut job).cast(), 1, ffi::RSMPI_UINT64_T, 0, world.0) })?;
    Ok(job)
}

impl Node {
    /// Learns this node's ranks and cores (collective over `world`: every
    /// rank calls it in `init`). Call under the MPI lock.
    fn discover(world: Raw<ffi::MPI_Comm>) -> Result<Node, Error> {
        // SAFETY: reading constants MPI initialised.
        let (comm_null, shared, info_null, bor, u64_t) = unsafe {
            (
                ffi::RSMPI_COMM_NULL,
                ffi::RSMPI_COMM_TYPE_SHARED,
                ffi::RSMPI_INFO_NULL,
                ffi::RSMPI_BOR,
                ffi::RSMPI_UINT64_T,
            )
        };
        let mut node = comm_null;
        let (mut local_size, mut local_rank) = (1, 0);
        let mut mask = affinity();
        let own_cores = mask.iter().map(|w| w.count_ones() as usize).sum::<usize>();
        let mut union = vec![0u64; mask.len()];
        // SAFETY: the lock is held; `world` is live; out-pointers are valid
        // locals; both masks hold `mask.len()` words.
        unsafe {
            check(ffi::MPI_Comm_split_type(world.0, shared, 0, info_null, &mut node))?;
            check(ffi::MPI_Comm_size(node, &mut local_size))?;
            check(ffi::MPI_Comm_rank(node, &mut local_rank))?;
            check(ffi::MPI_Allreduce(
                mask.as_mut_ptr().cast(),
                union.as_mut_ptr().cast(),
                mask.len() as c_int,
                u64_t,
                bor,
                node,
            ))?;
        }
        let world_ranks = crate::comm::world_ranks(Raw(node), world, local_size);
        // SAFETY: the lock is held; `node` was made above and is freed once.
        unsafe {
            ffi::MPI_Comm_free(&mut node);
        }
        let cores = union.iter().map(|w| w.count_ones() as usize).sum::<usize>();
        Ok(Node {
            local_size: local_size.max(1) as usize,
            local_rank: local_rank.max(0) as usize,
            cores: cores.max(1),
            own_cores: own_cores.max(1),
            world_ranks,
        })
    }
}

/// Whether MPI yields the core by itself in a progress call that finds
/// nothing (engine rule 6): Open MPI's `mpi_yield_when_idle`, which is on
/// where set so and otherwise where `mpirun` found the node oversubscribed
/// (`mpi_oversubscribe`). Read from the environment `mpirun` gives each
/// rank (`var` reads a variable); false where neither says so (another MPI
/// library, or a setting only in a parameter file): the loop then yields
/// itself, which costs a context switch at most.
fn mpi_yields_when_idle(var: impl Fn(&str) -> Option<String>) -> bool {
    let on = |value: String| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "1" | "t" | "true" | "y" | "yes" | "enabled"
        )
    };
    match var("OMPI_MCA_mpi_yield_when_idle") {
        Some(value) => on(value),
        None => var("OMPI_MCA_mpi_oversubscribe").is_some_and(on),
    }
}

/// This process's CPU affinity mask, as 16 words (1024 CPUs); where the
/// platform cannot say, the first `available_parallelism` bits.
fn affinity() -> Vec<u64> {
    let mut words = vec![0u64; 16];
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `cpu_set_t` is plain bits; zeroed is an empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the set is a valid local of the size passed.
        if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0 {
            for cpu in 0..(words.len() * 64).min(libc::CPU_SETSIZE as usize) {
                // SAFETY: `cpu` is below CPU_SETSIZE.
                if unsafe { libc::CPU_ISSET(cpu, &set) } {
                    words[cpu / 64] |= 1 << (cpu % 64);
                }
            }
            return words;
        }
    }
    let n = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(words.len() * 64);
    for cpu in 0..n {
        words[cpu / 64] |= 1 << (cpu % 64);
    }
    words
}

impl Shared {
    /// Before `MPI_Finalize` (which waits for every rank anyway): waits
    /// until every rank has come this far, running the engine meanwhile. A
    /// collective is point-to-point rounds that only Weft's engine posts
    /// (`agreement.rs`), so a rank that dropped a collective and left would
    /// otherwise strand a rank that joins it later: the late rank's rounds
    /// need answers from ranks already gone. With the fence, the early
    /// ranks keep answering until the last rank reaches its exit. An
    /// `MPI_Ibarrier` on the world's hidden twin (every rank posts it once,
    /// here, and nothing else posts a collective there), tested with
    /// sleeps that grow to 5 ms (a rank that waits minutes for a slow one
    /// uses no core). Left at once when a rank dies (`liveness.rs`: no
    /// finalize follows).
    fn exit_fence(&self) {
        // SAFETY: reading a constant MPI initialised.
        let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
        let posted = {
            let _mpi = self.engine.raw_lock();
            // SAFETY: MPI is initialised and not finalized (this rank
            // finalizes after the fence), the lock is held, and `request`
            // is a valid out-pointer.
            unsafe { ffi::MPI_Ibarrier(self.hidden.raw.0, &mut request) == ffi::MPI_SUCCESS as c_int }
        };
        if !posted {
            return;
        }
        let mut pause = Duration::from_micros(20);
        loop {
            self.engine.progress_once();
            let mut done: c_int = 0;
            let rc = {
                let _mpi = self.engine.raw_lock();
                // SAFETY: as above; `request` is the barrier posted above,
                // not yet completed, and MPI frees it when `done` is set.
                unsafe { ffi::MPI_Test(&mut request, &mut done, ffi::RSMPI_STATUS_IGNORE) }
            };
            if rc != ffi::MPI_SUCCESS as c_int || done != 0 || !self.deaths.dead().is_empty() {
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // No `Mpi::init` may start on a half-finalized MPI while this runs.
        let _live = lock(&LIVE);
        // Take the engine off every loop first.
        drop(std::mem::take(&mut *lock(&self.sources)));
        let owns_mpi = lock(&self.mpi_thread).is_some();
        if owns_mpi && std::thread::panicking() {
            // Finalizing would wait for the other ranks, which may be
            // waiting for this one: end the job instead.
            let _mpi = self.engine.raw_lock();
            // SAFETY: the lock is held; MPI_Abort does not return.
            unsafe { ffi::MPI_Abort(self.world.0, 134) };
        }
        // Requests still in flight (and collectives still to post, and
        // discards of unclaimed messages) run for a while; whatever is left
        // then keeps its buffers for good rather than free memory MPI may
        // still write. After a death they never will: no wait.
        if owns_mpi && self.deaths.dead().is_empty() {
            self.exit_fence();
        }
        let a_rank_died = !self.deaths.dead().is_empty();
        if !a_rank_died {
            self.engine.drain(DRAIN);
        }
        if let Some(liveness) = lock(&self.liveness).take() {
            liveness.goodbye();
        }
        self.engine.retire(self.world);
        self.engine.retire(self.hidden.raw);
        self.engine.abandon_and_close();
        if !owns_mpi {
            return;
        }
        if a_rank_died {
            // `MPI_Finalize` would wait for the dead rank forever
            // (`liveness.rs`, rule 3): the process ends without it.
            FINALIZED.store(true, Release);
            return;
        }
        FINALIZED.store(true, Release);
        // Thread rule 3. The engine is marked finalized: nothing else calls
        // MPI from here on.
        if let Some(thread) = lock(&self.mpi_thread).take() {
            thread.finalize();
        }
    }
}

/// This host's name as MPI knows it (`MPI_Get_processor_name`), for
/// telling other ranks where to connect.
pub(crate) fn processor_name(shared: &Shared) -> String {
    let _mpi = shared.engine.raw_lock();
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::mpi_yields_when_idle;

    #[test]
    fn open_mpi_yields_by_itself_where_set_so_or_oversubscribed() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(
            !mpi_yields_when_idle(env(&[])),
            "no word from Open MPI: the loop yields"
        );
        assert!(mpi_yields_when_idle(env(&[("OMPI_MCA_mpi_oversubscribe", "1")])));
        assert!(!mpi_yields_when_idle(env(&[("OMPI_MCA_mpi_oversubscribe", "0")])));
        assert!(mpi_yields_when_idle(env(&[("OMPI_MCA_mpi_yield_when_idle", "true")])));
        assert!(
            !mpi_yields_when_idle(env(&[
                ("OMPI_MCA_mpi_oversubscribe", "1"),
                ("OMPI_MCA_mpi_yield_when_idle", "0"),
            ])),
            "an explicit setting wins over oversubscription"
        );
    }
}
