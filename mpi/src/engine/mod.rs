//! The progress engine: every request in flight, tested by the loop.
//!
//! MPI has no file descriptor to wait on, so the engine is a
//! [`weft_io::source::Source`]: each turn of the reactor that has work
//! pending calls [`Engine::poll`], which tests requests with one
//! `MPI_Testsome`, matches arrived messages to waiting receives, and wakes
//! the tasks whose operations completed.
//!
//! # Rules
//!
//! 1. **One lock for every MPI call** (`Engine::mpi`, entered only through
//!    [`Engine::with_mpi`]). Weft runs MPI at `MPI_THREAD_SERIALIZED`:
//!    calls come from any thread (whichever worker turns the loop,
//!    whichever task posts), one at a time. The lock also guards
//!    everything in flight ([`InFlight`]), so posting a request and
//!    recording it are one step. Code outside Weft that calls MPI takes the
//!    same lock ([`Mpi::lock`](crate::Mpi::lock)).
//! 2. **An eager first test.** A request is tested once right after it is
//!    posted (most small sends and many receives are complete by then);
//!    only one that is still pending joins the request window. One
//!    exception: an agreement round's send joins the window untested
//!    (`agreement.rs`; nothing waits on it, and its receive is tested
//!    right after).
//! 3. **A turn costs O(batch), and nobody starves.** `requests.rs`: the
//!    requests form a ring tested [`TEST_BATCH`](requests::TEST_BATCH) at a time, the survivors
//!    going behind; every pending request is tested at least once every
//!    `pending / TEST_BATCH + 1` turns (proved and tested there).
//! 4. **Completions are delivered outside the lock.** Under it an
//!    operation is only marked finished (so nothing touches a freed
//!    request); outcomes are queued in `InFlight::deliver` and stored, and
//!    tasks woken, by [`Engine::with_mpi`] after it releases the lock.
//! 5. **Receives match in arrival order, once per message.** `matching.rs`:
//!    every receive matches its message first (`MPI_Improbe`, so the buffer
//!    is sized or checked before MPI writes: Open MPI 4.1 writes past a
//!    buffer that is too small); the queue of waiting receives and its
//!    counts are one private type. A receive dropped after its message
//!    matched, before its output was taken, hands the message back to the
//!    next receive that matches, in its place in arrival order: a receive
//!    dropped at any await loses no message.
//! 6. **Spin by time after activity, then sleep.** `activity.rs`: for the
//!    spin window (a setting, [`MpiBuilder::spin_window`], stretched to
//!    twice the recent wait from post to completion while that is under
//!    1 ms; at least
//!    [`REQUESTS_SPIN_WINDOW`] while MPI holds requests, which move only
//!    while polled) after the last post or completion the loop polls
//!    without sleeping; after it the
//!    reactor backs off from 50 µs to the longest idle poll interval
//!    ([`MpiBuilder::max_sleep`]; at most [`REQUESTS_MAX_SLEEP`] while MPI
//!    holds requests, whose progress no ring announces), with
//!    sub-millisecond sleeps. A post that
//!    may find the loop asleep, or backing off, wakes it. A message from a
//!    peer wakes it too: a send rings the destination's **doorbell**
//!    (`doorbell.rs`: a datagram socket the reactor watches, rung at most
//!    once per spin window per peer), whose reactor then polls at once and
//!    spins for the window, so idle polls can be far apart (cheap) while
//!    a request after an idle gap is still answered at once. Where ranks
//!    outnumber cores, a poll that finds nothing yields the core once
//!    (`sched_yield`, as Open MPI's own blocking calls do then), so a
//!    spinning rank does not starve the rank it waits for, and tasks never
//!    spin (rule 7). Once, not twice: where MPI already yields inside its
//!    own progress when it finds nothing (Open MPI's
//!    `mpi_yield_when_idle`, on by default under `--oversubscribe`;
//!    `Settings::mpi_yields`), the poll that found nothing has yielded
//!    inside `MPI_Testsome`, and a second yield of the loop's would only
//!    add a context switch per empty poll (a quarter of all context
//!    switches of suite `mpi`'s oversubscribed run). There, an empty
//!    `MPI_Testsome` that kept the core (it returned within
//!    [`KEPT_THE_CORE`]: its progress found something, so it did not
//!    yield, or nothing else wanted the core; one way only: a slower call,
//!    such as a test of a full batch of 256, is simply not asked again)
//!    is asked once more at once:
//!    Open MPI's test looks at the requests *before* it progresses, so a
//!    message that progress completes is seen by the next call, and
//!    without the second ask the rest of a turn and the next turn's start
//!    sit between a message's arrival and its detection, on the critical
//!    path of every hop of a collective (suite `mpi`, `over_barrier` and
//!    `over_allreduce_8B`: about 5% faster). A test that gave the core away
//!    is not asked again (the loop's turn goes on, sockets and timers
//!    first), so a turn still gives the core away at most once. The windows are the
//!    same, so a rank that waits long for a slower one sleeps, leaving the
//!    core to it (spinning, even
//!    yielding, for as long as work was pending made an awaited
//!    collective 2 to 3 times slower with 4 ranks on 2 cores: the waiting
//!    ranks' yields kept taking the cores from the ranks with work).
//! 7. **An awaiting task helps for a moment.** While the spin window is
//!    open (messages are flowing, and ranks do not outnumber cores), a
//!    task that polls a pending operation first runs the engine's poll
//!    itself for at most [`TASK_SPIN`], and returns `Pending` only if its
//!    operation is still not done: a reply that arrives within that time
//!    costs no trip through the loop.
//! 8. **Collectives run whole, in the order they were started.**
//!    `collective.rs`: a collective is a unit of stages (the agreement's
//!    point-to-point rounds on the communicator's hidden twin, then, for
//!    data too large to ride in it, the MPI collective) that the engine
//!    runs to the end even if its handle is dropped; on each communicator
//!    a unit posts its first stage only after every earlier unit has
//!    posted its last, so every rank posts the same MPI collectives, and
//!    numbers the same agreements, in the same order.
//! 9. **A communicator is freed by the engine**, after the last operation
//!    on it (each holds it) has gone: `Engine::retire` queues it and the
//!    next section under the lock frees it, so no MPI call ever names a
//!    freed communicator.
//!
//! [`MpiBuilder::spin_window`]: crate::MpiBuilder::spin_window
//! [`MpiBuilder::max_sleep`]: crate::MpiBuilder::max_sleep

mod activity;
pub(crate) mod clock;
mod collective;
mod matching;
mod requests;

pub(crate) use self::collective::{Advance, CollectiveStreams, Staged};
pub(crate) use self::matching::{Held, Receiver, Unclaimed, WaitingReceive, iprobe};

use self::activity::Activity;
use self::matching::ReceiveQueue;
use self::requests::RequestWindow;
use crate::doorbell::Doorbell;
use crate::error::Error;
use crate::loom::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*, lock};
use crate::status::Status;
use mpi::ffi;
use std::collections::VecDeque;
use std::os::raw::c_int;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The spin window while MPI holds requests (rule 6), at least: a
/// nonblocking collective's rounds and a large transfer's pieces move
/// only inside MPI calls, so sleeping between polls would slow the work
/// itself, not only its notice.
pub(crate) const REQUESTS_SPIN_WINDOW: Duration = Duration::from_millis(1);

/// The longest idle poll interval while MPI holds requests (rule 6), at
/// most: a nonblocking collective's rounds move only inside MPI calls and
/// ring no doorbell, so a rank that waits past its window for a slower one
/// polls at least this often (a rank asleep for the whole `max_sleep`
/// held up every rank of the collective).
pub(crate) const REQUESTS_MAX_SLEEP: Duration = Duration::from_micros(50);

/// The longest a task runs the engine itself before parking (rule 7).
pub(crate) const TASK_SPIN: Duration = Duration::from_micros(3);

/// What a request, receive or collective ends with.
pub(crate) type Outcome = Result<Status, Error>;

/// A raw MPI handle (a pointer under Open MPI) that may cross threads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub(crate) struct Raw<T>(pub(crate) T);

impl<T: Copy> Raw<T> {
    /// The handle (a method, so a closure that uses it captures the
    /// `Send` wrapper, not the bare handle).
    pub(crate) fn get(self) -> T {
        self.0
    }
}

// SAFETY: MPI handles name process-wide objects, not thread-local ones; with
// `MPI_THREAD_SERIALIZED` any thread may use them as long as calls do not
// overlap, and every call in this crate is made under `Engine::mpi` (rule 1).
unsafe impl<T> Send for Raw<T> {}
// SAFETY: as above: shared references only copy the handle out; using it
// needs the lock.
unsafe impl<T> Sync for Raw<T> {}

/// Something waiting for one request of MPI's.
pub(crate) trait Waiter: Send + Sync {
    /// Under the lock: MPI completed this waiter's request with `outcome`.
    /// Returns the outcome to deliver after the lock (rule 4), having
    /// marked itself finished (MPI is done with its buffers); or `None`
    /// when it has posted its next stage (rule 8) or has nobody to tell.
    fn request_done(self: Arc<Self>, mpi: &mut InFlight, outcome: Outcome) -> Option<Outcome>;

    /// Outside the lock: store the outcome and wake the task.
    fn complete(&self, outcome: Outcome);

    /// Whether the work needs `rank` (a peer, or every rank for a
    /// collective): it cannot complete once `rank` has died.
    fn involves(&self, _rank: c_int) -> bool {
        false
    }

    /// When the work was posted, if it is an operation a task awaits (its
    /// wait feeds the spin window, `activity.rs`).
    fn posted_at(&self) -> Option<u64> {
        None
    }
}

/// A pending request's bookkeeping, beside its handle in the window.
pub(crate) struct Entry {
    waiter: Arc<dyn Waiter>,
    report: Report,
    /// Elements the receive buffer holds (0 for sends and collectives; a
    /// discard's scratch words), for [`Error::Truncated`].
    capacity: usize,
}

/// What a request's status says once it completes without an error,
/// known when it is posted: MPI's own status is read only for its error
/// code. (Weft never calls `MPI_Cancel`, so no request ends cancelled.)
#[derive(Clone, Copy, Debug)]
pub(crate) enum Report {
    /// Nothing (a send, a collective's stage, a discarded message):
    /// MPI-3.1 §3.7.3 leaves a send's status fields undefined, and a
    /// collective's carry no meaning.
    Empty,
    /// A matched receive's: the one its message's probe gave (`MPI_Mrecv`
    /// receives exactly the message probed).
    Known(Status),
}

impl Report {
    fn status(self) -> Status {
        match self {
            Report::Empty => Status::empty(),
            Report::Known(status) => status,
        }
    }
}

/// Everything in flight, guarded by the MPI lock (rule 1).
pub(crate) struct InFlight {
    /// Requests posted and pending (rules 2, 3).
    requests: RequestWindow<Raw<ffi::MPI_Request>, Entry>,
    /// Receives waiting for a message (rule 5).
    receives: ReceiveQueue,
    /// Messages matched by `MPI_Improbe`, or handed back by dropped
    /// receives, that no receive has claimed yet, in arrival order
    /// (rule 5).
    unclaimed: VecDeque<Unclaimed>,
    /// The last place in arrival order given to a matched message.
    arrivals: u64,
    /// Placeholders (`Held::Arriving`) among the unclaimed messages.
    arriving: usize,
    /// Collectives whose stages are not all posted, per communicator
    /// (rule 8).
    collectives: CollectiveStreams,
    /// Outcomes to deliver once the lock is released (rule 4).
    deliver: Vec<(Arc<dyn Waiter>, Outcome)>,
    /// Scratch for `MPI_Testsome`, kept from turn to turn.
    indices: Vec<c_int>,
    statuses: Vec<ffi::MPI_Status>,
    finished: Vec<(Entry, Outcome)>,
    /// Scratch for `pull`: the communicators some receive waits on.
    pulling: Vec<Raw<ffi::MPI_Comm>>,
    /// Ranks known dead (the death notice, `liveness.rs`): nothing that
    /// needs them is started any more.
    dead: Vec<c_int>,
    /// MPI was finalized: no call may be made.
    finalized: bool,
    /// Rule 6: an empty `MPI_Testsome` that did not give the core away is
    /// asked once more at once (ranks outnumber cores, and MPI yields).
    retest: bool,
}

// SAFETY: `InFlight` holds raw MPI handles (in `Raw`, already `Send`) and
// statuses (plain integers); it is only reached through the engine's lock.
unsafe impl Send for InFlight {}

/// Rule 6: an `MPI_Testsome` that returned within this gave nobody the
/// core: a yield that switches to another process takes longer (a context
/// switch, then the other process's own turn: several microseconds); one
/// with nothing else to run, or a progress that delivered a message and so
/// did not yield, takes less.
pub(crate) const KEPT_THE_CORE: Duration = Duration::from_micros(2);

/// Rule 6: whether a test that took `elapsed_ns` kept the core.
fn kept_the_core(elapsed_ns: u64) -> bool {
    elapsed_ns < clock::nanos(KEPT_THE_CORE)
}

impl InFlight {
    fn new() -> InFlight {
        InFlight {
            requests: RequestWindow::new(),
            receives: ReceiveQueue::new(),
            unclaimed: VecDeque::new(),
            arrivals: 0,
            arriving: 0,
            collectives: CollectiveStreams::new(),
            deliver: Vec::new(),
            indices: Vec::new(),
            statuses: Vec::new(),
            finished: Vec::new(),
            retest: false,
            pulling: Vec::new(),
            dead: Vec::new(),
            finalized: false,
        }
    }

    /// A rank known dead, if any.
    pub(crate) fn a_dead_rank(&self) -> Option<c_int> {
        self.dead.first().copied()
    }

    /// Whether `rank` is known dead.
    pub(crate) fn is_dead(&self, rank: c_int) -> bool {
        self.dead.contains(&rank)
    }

    /// Work the loop must poll for: requests pending and receives waiting
    /// (a collective not yet started waits behind one of these).
    fn pending(&self) -> usize {
        self.requests.len() + self.receives.len()
    }

    /// Queues `outcome` for `waiter`, delivered after the lock (rule 4).
    pub(crate) fn deliver(&mut self, waiter: Arc<dyn Waiter>, outcome: Outcome) {
        self.deliver.push((waiter, outcome));
    }

    /// Hands `outcome` to `waiter` as MPI's end of one of its requests
    /// would be (`Waiter::request_done`: a part of a `sendrecv`, a stage
    /// of a collective), delivering what that says to deliver.
    pub(crate) fn settle(&mut self, waiter: Arc<dyn Waiter>, outcome: Outcome) {
        if let Some(outcome) = waiter.clone().request_done(self, outcome) {
            self.deliver.push((waiter, outcome));
        }
    }

    /// Rule 3: a request already tested once (and pending) joins the
    /// window, for `waiter`.
    pub(crate) fn queue(
        &mut self,
        request: Raw<ffi::MPI_Request>,
        report: Report,
        capacity: usize,
        waiter: Arc<dyn Waiter>,
    ) {
        self.requests.push(
            request,
            Entry {
                waiter,
                report,
                capacity,
            },
        );
    }

    /// Rule 2: tests a just-posted request once; its outcome if it is
    /// complete, `None` if it is still pending.
    pub(crate) fn test_once(
        &mut self,
        request: &mut Raw<ffi::MPI_Request>,
        report: Report,
        capacity: usize,
    ) -> Option<Outcome> {
        let mut flag: c_int = 0;
        // SAFETY: the lock is held (we have `&mut InFlight`); `request` is
        // the live handle just returned by an `MPI_I*` call; the status is
        // not wanted (the return code carries a failure, `report` the rest).
        let rc = unsafe { ffi::MPI_Test(&mut request.0, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
        if rc != ffi::MPI_SUCCESS as c_int {
            // MPI_Test reports a failed request through its return code and
            // frees it (the handle is MPI_REQUEST_NULL now).
            return Some(Err(with_capacity(Error::from_code(rc), capacity)));
        }
        (flag != 0).then(|| Ok(report.status()))
    }

    /// Rule 2 then 3: tests a just-posted request once, and queues it in
    /// the window if it is still pending (`None`), for `waiter`.
    pub(crate) fn track(
        &mut self,
        mut request: Raw<ffi::MPI_Request>,
        report: Report,
        capacity: usize,
        waiter: Arc<dyn Waiter>,
    ) -> Option<Outcome> {
        let outcome = self.test_once(&mut request, report, capacity);
        if outcome.is_none() {
            self.queue(request, report, capacity, waiter);
        }
        outcome
    }

    /// One turn's work under the lock: tests a batch of requests, then
    /// matches arrived messages. Returns how many things progressed.
    fn progress(&mut self) -> usize {
        if self.finalized {
            return 0;
        }
        let mut progressed = 0;
        if !self.requests.is_empty() {
            progressed += self.test_requests();
        }
        if !self.receives.is_empty() {
            progressed += self.pull();
        }
        progressed
    }

    /// Rule 3: one `MPI_Testsome` over the next batch; finished requests
    /// leave the window and their waiters hear of it.
    fn test_requests(&mut self) -> usize {
        let batch = self.requests.batch();
        let n = batch.len();
        self.indices.resize(n, 0);
        self.statuses.resize_with(n, empty_status);
        let mut outcount: c_int = 0;
        let count = c_int::try_from(n).expect("TEST_BATCH fits a C int");
        let started = if self.retest { clock::read() } else { 0 };
        let mut asked = 0;
        let rc = loop {
            asked += 1;
            // SAFETY: the lock is held; `batch` holds `n` live requests
            // contiguously (`Raw` is a transparent handle), and the arrays
            // have room for `n` indices and statuses. An empty test leaves
            // the handles as they were, so asking again is the same call.
            let rc = unsafe {
                ffi::MPI_Testsome(
                    count,
                    batch.as_mut_ptr().cast::<ffi::MPI_Request>(),
                    &mut outcount,
                    self.indices.as_mut_ptr(),
                    self.statuses.as_mut_ptr(),
                )
            };
            let found_nothing = rc == ffi::MPI_SUCCESS as c_int && outcount == 0;
            if !(self.retest && asked == 1 && found_nothing && kept_the_core(clock::read().saturating_sub(started))) {
                break rc;
            }
        };
        let mut per_status = rc == ffi::MPI_ERR_IN_STATUS as c_int;
        if rc != ffi::MPI_SUCCESS as c_int && !per_status {
            // The call itself failed and says nothing of which requests are
            // alive: ask each (a live request's buffers must stay).
            per_status = true;
            let mut ended = Vec::new();
            for (k, request) in batch.iter_mut().enumerate() {
                let mut flag: c_int = 0;
                let mut status = empty_status();
                // SAFETY: the lock is held; the request is live (in the batch).
                let rc = unsafe { ffi::MPI_Test(&mut request.0, &mut flag, &mut status) };
                if rc != ffi::MPI_SUCCESS as c_int || flag != 0 {
                    status.MPI_ERROR = rc;
                    ended.push((k, status));
                }
            }
            for (k, status) in ended {
                self.statuses[k] = status;
                self.requests.mark_finished(k, k);
            }
        } else if outcount != ffi::MPI_UNDEFINED && outcount > 0 {
            // Statuses are packed in completion order: status j goes with
            // indices[j].
            for j in 0..outcount as usize {
                self.requests.mark_finished(self.indices[j] as usize, j);
            }
        }
        let mut finished = std::mem::take(&mut self.finished);
        let statuses = &self.statuses;
        self.requests.rotate(|entry, j| {
            let status = &statuses[j];
            let result = if per_status && status.MPI_ERROR != ffi::MPI_SUCCESS as c_int {
                Err(with_capacity(Error::from_code(status.MPI_ERROR), entry.capacity))
            } else {
                Ok(entry.report.status())
            };
            finished.push((entry, result));
        });
        let count = finished.len();
        for (entry, result) in finished.drain(..) {
            if let Some(result) = entry.waiter.clone().request_done(self, result) {
                self.deliver.push((entry.waiter, result));
            }
        }
        self.finished = finished;
        count
    }

    /// Receives a matched message into scratch memory and drops it (a
    /// message matched by `MPI_Improbe` cannot go back to MPI), without
    /// blocking: the receive joins the window like any other, its scratch
    /// freed when it completes.
    pub(crate) fn discard(&mut self, mut message: Raw<ffi::MPI_Message>, status: &ffi::MPI_Status) {
        // Counted in 8-byte words, so a message up to 16 GiB fits a count
        // MPI can take; the scratch holds all of it.
        let bytes = crate::status::message_bytes(status).unwrap_or(0);
        let words = bytes.div_ceil(8);
        let Ok(count) = c_int::try_from(words) else {
            // Larger than any count: nothing can receive it without a
            // derived type; leave it matched and unreceived (MPI frees it
            // at finalize) rather than write past a buffer.
            return;
        };
        let mut scratch = vec![0u64; words];
        let word = crate::comm::datatype::<u64>();
        // SAFETY: reading a constant MPI initialised.
        let mut request = Raw(unsafe { ffi::RSMPI_REQUEST_NULL });
        // SAFETY: the lock is held; the message was matched in this process
        // and is received once; the scratch holds all of its bytes and
        // moves (its heap block does not) into the discard waiter, which
        // stays in the window until MPI is done with it.
        let rc = unsafe {
            ffi::MPI_Imrecv(
                scratch.as_mut_ptr().cast(),
                count,
                word.0,
                &mut message.0,
                &mut request.0,
            )
        };
        if rc == ffi::MPI_SUCCESS as c_int {
            let _ = self.track(request, Report::Empty, words, Arc::new(Discard { _scratch: scratch }));
        }
    }

    /// Messages pulled but never claimed are received and dropped (before
    /// finalizing: a matched message cannot go back to MPI).
    fn discard_unclaimed(&mut self) {
        while let Some(u) = self.unclaimed.pop_front() {
            self.drop_unclaimed(u);
        }
    }
}

/// The scratch of a discarded message, kept until MPI has written it.
struct Discard {
    _scratch: Vec<u64>,
}

impl Waiter for Discard {
    fn request_done(self: Arc<Self>, _: &mut InFlight, _: Outcome) -> Option<Outcome> {
        None
    }

    fn complete(&self, _: Outcome) {}
}

/// Tunables read by the loop every turn (set by [`crate::MpiBuilder`]).
pub(crate) struct Settings {
    /// Rule 6: the longest idle poll interval, in nanoseconds.
    max_sleep: AtomicU64,
    /// Rule 6: more ranks on this node than cores.
    oversubscribed: AtomicBool,
    /// Rule 6: MPI yields the core by itself in a progress call that finds
    /// nothing (Open MPI's `mpi_yield_when_idle`), so the loop does not.
    mpi_yields: AtomicBool,
}

/// The progress engine of this process.
pub(crate) struct Engine {
    mpi: Mutex<InFlight>,
    /// Work in flight and the spin window (rules 6 and 7), read without
    /// the lock by the reactor: `activity.rs` states the protocol.
    activity: Activity,
    settings: Settings,
    /// Communicators whose last handle has gone, to free under the lock
    /// (rule 9); `has_retired` saves taking this lock on every section.
    retired: Mutex<Vec<Raw<ffi::MPI_Comm>>>,
    has_retired: AtomicBool,
    /// Operations completed by the loop (not by the eager test), for
    /// tests and metrics.
    completed_by_loop: AtomicUsize,
    /// Reactors polling the engine; waiting receives fail on shutdown only
    /// when the last one goes.
    reactors: AtomicUsize,
    /// This rank's doorbell (rule 6, `doorbell.rs`), once MPI is up.
    doorbell: std::sync::OnceLock<Doorbell>,
    /// The loop's own yields after empty polls (rule 6).
    #[cfg(test)]
    loop_yields: AtomicUsize,
}

std::thread_local! {
    /// Delivery lists reused from section to section on this thread, so a
    /// turn that completes something allocates nothing.
    static DELIVER: std::cell::Cell<Vec<(Arc<dyn Waiter>, Outcome)>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Engine {
    pub(crate) fn new(spin_window: Duration, max_sleep: Duration, oversubscribed: bool) -> Engine {
        Engine {
            mpi: Mutex::new(InFlight::new()),
            activity: Activity::new(spin_window),
            settings: Settings {
                max_sleep: AtomicU64::new(clock::nanos(max_sleep)),
                oversubscribed: AtomicBool::new(oversubscribed),
                mpi_yields: AtomicBool::new(false),
            },
            retired: Mutex::new(Vec::new()),
            has_retired: AtomicBool::new(false),
            completed_by_loop: AtomicUsize::new(0),
            reactors: AtomicUsize::new(0),
            doorbell: std::sync::OnceLock::new(),
            #[cfg(test)]
            loop_yields: AtomicUsize::new(0),
        }
    }

    /// Rule 6: this rank's doorbell, set once at init (before the engine
    /// is registered with any reactor, which reads it then).
    pub(crate) fn set_doorbell(&self, doorbell: Doorbell) {
        let _ = self.doorbell.set(doorbell);
    }

    /// Rule 6: right before posting a send to world rank `rank`, rings
    /// its doorbell if it was last rung at least
    /// [`ADAPTIVE_CAP`](self::activity::ADAPTIVE_CAP) (or the spin window,
    /// if longer) ago: no window, stretched or not, outlasts that, so the
    /// peer likely sleeps, and its wake-up then overlaps the post
    /// (`doorbell.rs`, rule 2). True if the send must call
    /// [`Engine::ring`] after posting.
    #[must_use]
    pub(crate) fn ring_before_send(&self, rank: i32) -> bool {
        let window = self.activity.window();
        let asleep_after = window.max(self::activity::ADAPTIVE_CAP);
        self.doorbell
            .get()
            .is_some_and(|bell| bell.ring_before_send(rank, window, asleep_after))
    }

    /// Rule 6: after posting a send to world rank `rank`, rings its
    /// doorbell unless it was rung within the spin window. True if rung.
    pub(crate) fn ring(&self, rank: i32) -> bool {
        self.doorbell
            .get()
            .is_some_and(|bell| bell.ring(rank, self.activity.window()))
    }

    /// Rule 1: runs `f` under the MPI lock, then delivers what completed
    /// (rule 4) and returns `f`'s result. The one way into [`InFlight`].
    pub(crate) fn with_mpi<R>(&self, f: impl FnOnce(&mut InFlight) -> R) -> R {
        self.with_mpi_then(f, |_| ()).0
    }

    /// Rule 6: [`with_mpi`](Self::with_mpi) for a post; also true if the
    /// poster must wake the loop (`Activity::touched`), decided after the
    /// lock and before delivering, so with the operation's clock reading
    /// (`clock.rs`): no done callback has run since it was taken.
    pub(crate) fn posting<R>(&self, f: impl FnOnce(&mut InFlight) -> R) -> (R, bool) {
        let (result, wake, _) = self.with_mpi_then(f, |_| self.posted());
        (result, wake)
    }

    /// [`with_mpi`](Self::with_mpi), running `then` on `f`'s result after
    /// the lock and before delivering (while the scope's clock reading is
    /// still the section's), and saying how many outcomes it delivered.
    fn with_mpi_then<R, S>(&self, f: impl FnOnce(&mut InFlight) -> R, then: impl FnOnce(&R) -> S) -> (R, S, usize) {
        let (result, out) = {
            let mut mpi = match self.mpi.try_lock() {
                Ok(mpi) => mpi,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    let mpi = lock(&self.mpi);
                    // Another thread held MPI (perhaps for long, with its
                    // own blocking calls): what follows is decided with
                    // the time it is now, not the operation's earlier
                    // reading.
                    clock::renew();
                    mpi
                }
            };
            if self.has_retired.load(Acquire) {
                self.free_retired(&mut mpi);
            }
            let result = f(&mut mpi);
            // Most calls (a spinning poll that found nothing) deliver
            // nothing: only a delivery takes the thread's spare list.
            let out = (!mpi.deliver.is_empty()).then(|| {
                let mut out = DELIVER.try_with(std::cell::Cell::take).unwrap_or_default();
                std::mem::swap(&mut mpi.deliver, &mut out);
                out
            });
            self.activity.set_pending(mpi.pending(), mpi.requests.len());
            (result, out)
        };
        let then = then(&result);
        let Some(mut out) = out else {
            return (result, then, 0);
        };
        let delivered = out.len();
        let now = clock::now();
        // Completing runs wakers and done callbacks, of any length.
        clock::refresh();
        for (waiter, _) in &out {
            if let Some(at) = waiter.posted_at() {
                self.activity.record_wait(now.saturating_sub(at));
            }
        }
        // One waiter's panic (a user's waker, a done callback) must not
        // strand the outcomes behind it.
        weft_io::source::complete_each(out.drain(..), |(waiter, outcome)| waiter.complete(outcome));
        let _ = DELIVER.try_with(|cell| cell.set(out));
        (result, then, delivered)
    }

    /// The lock itself, for code outside Weft that calls MPI
    /// ([`Mpi::lock`](crate::Mpi::lock)); nothing in flight is reachable
    /// through it.
    pub(crate) fn raw_lock(&self) -> MutexGuard<'_, InFlight> {
        lock(&self.mpi)
    }

    /// Rule 9: the last handle to `comm` has gone; the next section under
    /// the lock frees it. Takes no MPI lock (it may be called under it).
    pub(crate) fn retire(&self, comm: Raw<ffi::MPI_Comm>) {
        lock(&self.retired).push(comm);
        self.has_retired.store(true, Release);
    }

    fn free_retired(&self, mpi: &mut InFlight) {
        let retired = std::mem::take(&mut *lock(&self.retired));
        self.has_retired.store(false, Release);
        if mpi.finalized {
            return;
        }
        for comm in retired {
            // No operation refers to it any more (each held it), so no
            // receive waits on it; messages pulled for it are dropped.
            let (stale, kept): (VecDeque<Unclaimed>, VecDeque<Unclaimed>) =
                mpi.unclaimed.drain(..).partition(|u| u.comm == comm);
            mpi.unclaimed = kept;
            for u in stale {
                mpi.drop_unclaimed(u);
            }
            let mut raw = comm.0;
            // SAFETY: the lock is held; nothing refers to the handle any
            // more; requests already posted on it (discards) complete
            // normally: MPI frees a communicator only when they are done.
            unsafe { ffi::MPI_Comm_free(&mut raw) };
        }
    }

    /// Rule 7: polls the engine until `done` says so or [`TASK_SPIN`]
    /// passes, only while the spin window is open and ranks do not
    /// outnumber cores. True if a completion found here means the caller
    /// must wake the loop (`Activity::touched`).
    #[must_use]
    pub(crate) fn spin_until(&self, done: impl Fn() -> bool) -> bool {
        if !self.helping() {
            return false;
        }
        let mut wake = false;
        // The clock is read every 16 polls only: reading it costs as much
        // as a poll. The start is the operation's reading (`helping` just
        // took it).
        let start = clock::now();
        let spin = clock::nanos(TASK_SPIN);
        let mut polls = 0u32;
        while !done() {
            if polls % 16 == 15 && clock::read().saturating_sub(start) >= spin {
                break;
            }
            // A completion found here is news the loop has not heard
            // (`Activity::touched`): decided before its delivery runs any
            // done callback, with the spin's reading.
            let (_, woke, _) = self.with_mpi_then(InFlight::progress, |&progressed| {
                progressed > 0 && self.activity.touched(self.activity.now())
            });
            wake |= woke;
            polls += 1;
        }
        wake
    }

    /// Rule 7: true while an awaiting task runs the engine itself before
    /// parking (so a receive's first probe can wait for it).
    pub(crate) fn helping(&self) -> bool {
        !self.oversubscribed() && self.activity.spinning(self.activity.now())
    }

    /// Rule 6: after a post (pending already published by `with_mpi`):
    /// true if the poster must wake the loop.
    #[must_use]
    pub(crate) fn posted(&self) -> bool {
        self.activity.touched(self.activity.now())
    }

    /// Requests and receives in flight.
    pub(crate) fn pending(&self) -> usize {
        self.activity.pending()
    }

    /// One more reactor polls the engine.
    pub(crate) fn add_reactor(&self) {
        self.reactors.fetch_add(1, AcqRel);
    }

    /// Operations completed by a loop turn rather than by the eager test.
    pub(crate) fn completed_by_loop(&self) -> usize {
        self.completed_by_loop.load(Relaxed)
    }

    /// Rule 6's settings.
    pub(crate) fn set_spin_window(&self, window: Duration) {
        self.activity.set_window(window);
    }

    pub(crate) fn spin_window(&self) -> Duration {
        self.activity.window()
    }

    pub(crate) fn set_max_sleep(&self, max_sleep: Duration) {
        self.settings.max_sleep.store(clock::nanos(max_sleep), Relaxed);
    }

    pub(crate) fn max_sleep(&self) -> Duration {
        Duration::from_nanos(self.settings.max_sleep.load(Relaxed))
    }

    pub(crate) fn set_oversubscribed(&self, yes: bool) {
        self.settings.oversubscribed.store(yes, Relaxed);
        self.update_retest();
    }

    pub(crate) fn oversubscribed(&self) -> bool {
        self.settings.oversubscribed.load(Relaxed)
    }

    pub(crate) fn set_mpi_yields(&self, yes: bool) {
        self.settings.mpi_yields.store(yes, Relaxed);
        self.update_retest();
    }

    /// Rule 6: empty tests are asked again (see [`kept_the_core`]) where
    /// ranks outnumber cores and MPI yields inside its tests.
    fn update_retest(&self) {
        let retest = self.oversubscribed() && self.settings.mpi_yields.load(Relaxed);
        lock(&self.mpi).retest = retest;
    }

    /// Rule 6: whether an empty poll yields the core itself (ranks
    /// outnumber cores, and MPI does not yield on its own).
    fn yields_when_idle(&self) -> bool {
        self.oversubscribed() && !self.settings.mpi_yields.load(Relaxed)
    }

    /// The loop's own yields after empty polls (rule 6), for tests.
    #[cfg(test)]
    pub(crate) fn loop_yields(&self) -> usize {
        self.loop_yields.load(Relaxed)
    }

    /// One loop turn's work (rules 3 to 5). Returns how many things
    /// progressed.
    pub(crate) fn poll(&self) -> usize {
        let (progressed, (), delivered) = self.with_mpi_then(InFlight::progress, |_| ());
        if progressed > 0 {
            self.activity.progressed_on_loop(self.activity.now());
            self.completed_by_loop.fetch_add(delivered, Relaxed);
        } else if self.yields_when_idle() {
            // Rule 6: give the core to a rank that may be the one we wait for.
            #[cfg(test)]
            self.loop_yields.fetch_add(1, Relaxed);
            std::thread::yield_now();
        }
        progressed
    }

    /// Before finalizing (`env.rs`, the exit fence): one pass of the
    /// engine's work without the loop, so that collectives whose rounds
    /// other ranks still need go on while this rank waits for them.
    pub(crate) fn progress_once(&self) -> usize {
        self.with_mpi(InFlight::progress)
    }

    /// Before finalizing: polls until nothing is in flight (no request, no
    /// collective waiting to start) or `timeout` has passed (a send to a
    /// rank that never receives would otherwise hang `MPI_Finalize`).
    /// Receives still waiting for a message posted nothing, so there is
    /// nothing of theirs to cancel.
    pub(crate) fn drain(&self, timeout: Duration) {
        let start = Instant::now();
        self.with_mpi(InFlight::discard_unclaimed);
        while self.with_mpi(|mpi| !mpi.requests.is_empty() || !mpi.collectives.is_empty()) && start.elapsed() < timeout
        {
            self.with_mpi(InFlight::progress);
            std::thread::yield_now();
        }
    }

    /// Before MPI is finalized with work still in flight: requests that did
    /// not finish in time keep their buffers forever (leaked) rather than
    /// free memory MPI may still write; collectives not started never will
    /// be. Then frees what was retired and marks MPI finalized, so a
    /// reactor that still holds the engine polls nothing.
    pub(crate) fn abandon_and_close(&self) {
        let mut mpi = lock(&self.mpi);
        for entry in mpi.requests.drain() {
            std::mem::forget(entry.waiter);
        }
        for unit in mpi.collectives.drain() {
            std::mem::forget(unit);
        }
        self.free_retired(&mut mpi);
        mpi.finalized = true;
        self.activity.set_pending(0, 0);
    }

    /// The death notice says `rank` died (`liveness.rs`, rule 3): fails
    /// what can no longer complete. Receives waiting for it leave the line;
    /// collectives not fully posted never will be; requests MPI holds that
    /// need it fail now, while MPI keeps them and their buffers (it cannot
    /// cancel them). Collectives and operations with it started from now
    /// on fail at once.
    pub(crate) fn peer_died(&self, rank: c_int) {
        self.with_mpi(|mpi| {
            // What the rank sent before it died is still received: match
            // what has arrived first.
            mpi.progress();
            if !mpi.dead.contains(&rank) {
                mpi.dead.push(rank);
            }
            let died = || Err(Error::PeerDied(rank));
            // A receive waiting for a message a dropped receive gives back
            // (it may be from the dead rank) keeps waiting for it.
            let (unclaimed, arriving) = (&mpi.unclaimed, mpi.arriving);
            let gone = mpi
                .receives
                .take_where(|r| r.source == rank && !InFlight::blocked(unclaimed, arriving, r));
            for receive in gone {
                mpi.deliver(receive.into_waiter(), died());
            }
            let units: Vec<Arc<dyn Staged>> = mpi.collectives.drain().collect();
            for unit in units {
                mpi.deliver(unit.into_waiter(), died());
            }
            let failing: Vec<Arc<dyn Waiter>> = mpi
                .requests
                .entries()
                .filter(|e| e.waiter.involves(rank))
                .map(|e| e.waiter.clone())
                .collect();
            for waiter in failing {
                mpi.deliver(waiter, died());
            }
        });
    }

    /// The runtime is going away: fails every receive still waiting for a
    /// message with [`Error::Shutdown`]. Requests MPI already owns stay in
    /// flight (their buffers with them) rather than being freed under
    /// MPI's feet; collectives run on when another runtime polls, or when
    /// MPI is finalized.
    pub(crate) fn shutdown(&self) {
        if self.reactors.fetch_sub(1, AcqRel) > 1 {
            // Other runtimes still poll the engine.
            return;
        }
        self.with_mpi(|mpi| {
            for receive in mpi.receives.take_where(|_| true) {
                mpi.settle(receive.into_waiter(), Err(Error::Shutdown));
            }
        });
    }
}

/// A status with every field zero (a valid `MPI_Status`: plain integers).
pub(crate) fn empty_status() -> ffi::MPI_Status {
    // SAFETY: `MPI_Status` is a C struct of integers; all zeros is valid.
    unsafe { std::mem::zeroed() }
}

fn with_capacity(err: Error, capacity: usize) -> Error {
    match err {
        Error::Truncated { .. } => Error::Truncated { capacity },
        other => other,
    }
}

impl weft_io::source::Source for Engine {
    fn poll(&self) -> usize {
        let _clock = clock::loop_scope();
        Engine::poll(self)
    }

    fn has_pending(&self) -> bool {
        // Rule 6: inside the window the loop keeps polling even with
        // nothing in flight, so the next post needs no wake-up.
        self.activity.has_work(|| self.activity.at(clock::loop_now()))
    }

    fn spin_window(&self) -> Duration {
        let window = self.activity.effective_window();
        if self.activity.pending() == 0 {
            return window;
        }
        // Requests MPI holds (a collective's stage, a large transfer) move
        // only while it is polled: keep spinning longer. (Where ranks
        // outnumber cores too: each empty poll yields the core there, and
        // a rank that waits longer than this for a slower one then sleeps,
        // leaving the core to it, until a ring or an idle poll.)
        if self.activity.requests() > 0 {
            window.max(REQUESTS_SPIN_WINDOW)
        } else {
            window
        }
    }

    fn max_sleep(&self) -> Duration {
        if self.activity.requests() > 0 {
            // Rule 6: what MPI holds is announced by no ring.
            return self.max_sleep().min(REQUESTS_MAX_SLEEP);
        }
        self.max_sleep()
    }

    #[cfg(unix)]
    fn doorbell(&self) -> Option<std::os::fd::RawFd> {
        self.doorbell.get().map(Doorbell::fd)
    }

    fn doorbell_rang(&self) -> bool {
        // Only rings from this job's user restart the spin window
        // (`doorbell.rs`, rule 5).
        self.doorbell
            .get()
            .is_some_and(|bell| bell.drain(self.activity.window()) > 0)
    }

    fn shutdown(&self) {
        Engine::shutdown(self);
    }

    fn name(&self) -> &'static str {
        "mpi"
    }

    /// Requests and receives in flight (one atomic load).
    fn pending(&self) -> usize {
        Engine::pending(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter whose completion panics (as a user's waker or done
    /// callback may), or records that it ran.
    struct Probe {
        panics: bool,
        completed: AtomicBool,
    }

    impl Waiter for Probe {
        fn request_done(self: Arc<Self>, _: &mut InFlight, outcome: Outcome) -> Option<Outcome> {
            Some(outcome)
        }
        fn complete(&self, _: Outcome) {
            self.completed.store(true, Relaxed);
            assert!(!self.panics, "a waiter that panics on completion");
        }
    }

    fn failed() -> Outcome {
        Err(Error::Mpi {
            code: 1,
            class: 1,
            message: "test".into(),
        })
    }

    #[test]
    fn oversubscribed_ranks_spin_the_same_windows_then_sleep_and_tasks_never_spin() {
        use weft_io::source::Source;
        let window = Duration::from_micros(100);
        for over in [false, true] {
            let engine = Engine::new(window, Duration::from_millis(1), over);
            engine.activity.set_pending(1, 1);
            assert_eq!(
                Source::spin_window(&engine),
                REQUESTS_SPIN_WINDOW,
                "requests in flight (oversubscribed: {over}): a bounded window, then sleeps"
            );
            assert_eq!(
                Source::max_sleep(&engine),
                REQUESTS_MAX_SLEEP,
                "requests in flight: idle polls at most this far apart"
            );
            engine.activity.set_pending(1, 0);
            assert_eq!(Source::spin_window(&engine), window);
            assert_eq!(
                Source::max_sleep(&engine),
                Duration::from_millis(1),
                "a waiting receive is rung: the setting"
            );
            assert!(engine.posted(), "the first post wakes the loop");
            assert_eq!(engine.helping(), !over, "tasks spin only where ranks have cores");
        }
    }

    /// Rule 6: empty tests are asked again only where ranks outnumber
    /// cores and MPI yields inside its tests, and only after a test that
    /// kept the core.
    #[test]
    fn an_empty_test_is_asked_again_only_oversubscribed_and_only_if_it_kept_the_core() {
        for (over, mpi_yields, retest) in [
            (false, false, false),
            (false, true, false),
            (true, false, false),
            (true, true, true),
        ] {
            let engine = Engine::new(Duration::ZERO, Duration::from_millis(1), false);
            engine.set_oversubscribed(over);
            engine.set_mpi_yields(mpi_yields);
            assert_eq!(
                lock(&engine.mpi).retest,
                retest,
                "oversubscribed {over}, MPI yields {mpi_yields}"
            );
        }
        assert!(kept_the_core(0));
        assert!(kept_the_core(clock::nanos(KEPT_THE_CORE) - 1));
        assert!(!kept_the_core(clock::nanos(KEPT_THE_CORE)));
        assert!(
            !kept_the_core(clock::nanos(Duration::from_micros(50))),
            "a context switch and another rank's turn"
        );
    }

    /// An operation whose section waited for the MPI lock decides with a
    /// reading from after the wait, not its scope's earlier one.
    #[test]
    fn a_section_that_waited_for_the_lock_reads_the_clock_after_the_wait() {
        let engine = Arc::new(Engine::new(Duration::ZERO, Duration::from_millis(1), false));
        // The operation's reading comes first: the holder then keeps the
        // lock 20 ms after it, however the threads are scheduled.
        let _scope = clock::scope();
        let before = clock::now();
        let held = Arc::new(AtomicBool::new(false));
        let holder = {
            let (engine, held) = (engine.clone(), held.clone());
            std::thread::spawn(move || {
                let _mpi = lock(&engine.mpi);
                held.store(true, SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            })
        };
        while !held.load(SeqCst) {
            std::thread::yield_now();
        }
        let inside = engine.with_mpi(|_| clock::now());
        holder.join().unwrap();
        assert!(
            inside >= before + clock::nanos(Duration::from_millis(10)),
            "the section's reading comes from after the wait ({} ns later)",
            inside.saturating_sub(before)
        );
        // Uncontended, the section shares the operation's reading.
        assert_eq!(engine.with_mpi(|_| clock::now()), inside);
    }

    #[test]
    fn an_empty_poll_yields_once_where_ranks_outnumber_cores() {
        // No request is held, so a poll makes no MPI call (none is
        // initialised here) and finds nothing.
        for (over, mpi_yields, yields) in [(false, false, 0), (true, false, 1), (true, true, 0)] {
            let engine = Engine::new(Duration::ZERO, Duration::from_millis(1), over);
            engine.set_mpi_yields(mpi_yields);
            assert_eq!(engine.poll(), 0);
            assert_eq!(
                engine.loop_yields(),
                yields,
                "oversubscribed {over}, MPI yields by itself {mpi_yields}: the loop yields {yields} times"
            );
        }
    }

    #[test]
    fn a_panicking_completion_strands_none_behind_it() {
        let engine = Engine::new(Duration::ZERO, Duration::from_millis(1), false);
        let probes: Vec<Arc<Probe>> = (0..4)
            .map(|k| {
                Arc::new(Probe {
                    panics: k % 2 == 0,
                    completed: AtomicBool::new(false),
                })
            })
            .collect();
        engine.with_mpi(|mpi| {
            for probe in &probes {
                mpi.deliver(probe.clone(), failed());
            }
        });
        for (k, probe) in probes.iter().enumerate() {
            assert!(probe.completed.load(Relaxed), "waiter {k} was never completed");
        }
        // The engine still delivers afterwards (its scratch list came back).
        let late = Arc::new(Probe {
            panics: false,
            completed: AtomicBool::new(false),
        });
        engine.with_mpi(|mpi| mpi.deliver(late.clone(), failed()));
        assert!(late.completed.load(Relaxed));
    }
}
