//! The progress engine: every request in flight, tested by the loop.
//!
//! MPI has no file descriptor to wait on, so the engine is a
//! [`weft_io::source::Source`]: each turn of the reactor that has requests
//! pending calls [`Engine::poll`], which tests them all with one
//! `MPI_Testsome` and wakes the tasks whose requests completed.
//!
//! # Rules
//!
//! 1. **One lock for every MPI call** (`Engine::mpi`). MPI runs at
//!    `MPI_THREAD_SERIALIZED`: calls may come from any thread (whichever
//!    worker turns the loop, whichever task posts), one at a time. The lock
//!    also guards the arrays of pending requests, so posting a request and
//!    adding it to the array are one step.
//! 2. **An eager first test.** A request is tested once right after it is
//!    posted (most small sends and many receives are complete by then);
//!    only one that is still pending goes into the array.
//! 3. **A turn costs O(completed), not O(pending).** `MPI_Testsome` scans
//!    every request it is given, so a turn gives it at most [`TEST_BATCH`]
//!    of them, a window that moves round the array from turn to turn (with
//!    10,000 in flight, each is tested every 40 turns, a few tens of
//!    microseconds while the loop spins). The indices that finished leave
//!    by `swap_remove` in descending order, so no pending entry is moved
//!    twice and nothing else scans the array.
//! 4. **Completions are delivered outside the lock.** Under it an entry is
//!    only marked finished (so a cancel never touches a freed request);
//!    outcomes are stored and tasks woken after it is released.
//! 5. **Receives match in arrival order, at a cost per message.** Every
//!    receive probes first (`MPI_Improbe`, so the buffer is sized or checked
//!    before MPI writes: Open MPI 4.1 writes past a buffer that is too
//!    small). Rather than one probe per waiting receive per turn, which
//!    would cost O(pending receives) each turn, the engine pulls arrived
//!    messages with `MPI_Improbe(ANY_SOURCE, ANY_TAG)` (up to
//!    [`PULL_BATCH`] a turn) and hands each to the oldest waiting receive it
//!    matches; a message nobody waits for yet is kept, in order, for the
//!    next receive that matches it. That is MPI's own matching (first
//!    posted, first matched; messages from one sender in order), done once
//!    per message. The receive is posted (`MPI_Imrecv` into the waiting
//!    operation's buffer) right there, under the same lock, so a small
//!    message is complete before its task is even woken.
//! 6. **Spin while messages flow, back off when they stop.** MPI moves data
//!    only inside MPI calls and tells no file descriptor when a message
//!    lands, so a sleeping loop notices a message only when it wakes. For
//!    [`SPIN_POLLS`](crate::window::SPIN_POLLS) polls after each post or completion (about a
//!    millisecond) the engine asks the loop not to sleep at all
//!    (`max_sleep` is zero): an exchange that keeps going, like a
//!    ping-pong, stays in that window on both ranks. The window is counted
//!    in polls, not read from a clock, so that checking it costs a load.
//!    After it, the reactor's back-off lets the loop sleep up to
//!    [`MAX_SLEEP`] between polls, so a task that waits a second for a
//!    message costs a few polls per millisecond, not a core. Inside the
//!    window the engine says it has work even when nothing is in flight,
//!    so the loop is awake for the next post; a post made after the window
//!    wakes it (`SourceHandle::notify`, a system call saved on every hop of
//!    a busy exchange).
//! 7. **An awaiting task helps for a moment.** While the window of rule 6
//!    is open (messages are flowing), a task that polls a pending operation
//!    first runs the engine's poll itself, under the same lock, for at most
//!    [`TASK_SPIN`], and returns `Pending` only if its operation is still
//!    not done. A reply that arrives within that time costs no trip through
//!    the loop (no park, no wake, no reschedule: most of an awaited hop's
//!    price); other tasks on that worker wait at most that long, about what
//!    one system call costs. Outside the window a task never spins.

use crate::error::{Error, check};
use crate::loom::lock;
use crate::status::Status;
use crate::window::Window;
use mpi::datatype::Equivalence;
use mpi::ffi;
use mpi::raw::AsRaw;
use std::collections::VecDeque;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest the loop sleeps while requests are pending and none has
/// completed for a while (the reactor's adaptive back-off stops here).
pub(crate) const MAX_SLEEP: Duration = Duration::from_millis(1);

/// The longest a task runs the engine itself before parking (rule 7).
pub(crate) const TASK_SPIN: Duration = Duration::from_micros(3);

/// A raw MPI handle (a pointer under Open MPI) that may cross threads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw<T>(pub(crate) T);

// SAFETY: MPI handles name process-wide objects, not thread-local ones; with
// `MPI_THREAD_SERIALIZED` any thread may use them as long as calls do not
// overlap, and every call in this crate is made under `Engine::mpi` (rule 1).
unsafe impl<T> Send for Raw<T> {}
// SAFETY: as above: shared references only copy the handle out; using it
// needs the lock.
unsafe impl<T> Sync for Raw<T> {}

/// Something waiting for one request or probe.
pub(crate) trait Waiter: Send + Sync {
    /// Under the lock: the request finished; MPI is done with its buffers.
    fn mark_finished(&self);
    /// Outside the lock: store the outcome and wake the task.
    fn complete(&self, outcome: Result<Status, Error>);
}

/// Requests that completed this turn, with their outcomes.
type Done = Vec<(Arc<dyn Waiter>, Result<Status, Error>)>;
/// Receives that completed (or failed) this turn, with their outcomes.
type Received = Vec<(Arc<dyn Matcher>, Result<Status, Error>)>;

/// A pending request's bookkeeping, parallel to its handle.
struct Entry {
    waiter: Arc<dyn Waiter>,
    datatype: Raw<ffi::MPI_Datatype>,
    /// Elements the receive buffer holds (0 for sends and collectives).
    capacity: usize,
}

/// Requests tested in one turn at most (rule 3).
pub(crate) const TEST_BATCH: usize = 256;

/// Messages pulled with `MPI_Improbe` in one turn at most (rule 5).
pub(crate) const PULL_BATCH: usize = 64;

/// A receive waiting for a matching message (rule 5).
pub(crate) struct Probe {
    pub(crate) source: c_int,
    pub(crate) tag: c_int,
    pub(crate) comm: Raw<ffi::MPI_Comm>,
    pub(crate) waiter: Arc<dyn Matcher>,
    /// Only look (`probe`): the message stays unclaimed for a receive, and
    /// the waiter completes with its envelope.
    pub(crate) peek: bool,
}

/// A receive waiting for its message (rule 5).
pub(crate) trait Matcher: Waiter {
    /// The datatype the receive counts elements in (for its status).
    fn datatype(&self) -> Raw<ffi::MPI_Datatype>;

    /// Under the lock: `message` matched. Posts its receive (into the
    /// waiter's buffer, sized or checked against the message first) and
    /// queues the request with `engine`; returns the outcome if it is
    /// already complete (or failed), `None` if it is now a pending request.
    fn receive(
        self: Arc<Self>,
        engine: &Engine,
        state: &mut State,
        message: Raw<ffi::MPI_Message>,
        status: &ffi::MPI_Status,
    ) -> Option<Result<Status, Error>>;
}

/// A message matched by `MPI_Improbe` that no receive has claimed yet.
pub(crate) struct Unclaimed {
    pub(crate) comm: Raw<ffi::MPI_Comm>,
    pub(crate) message: Raw<ffi::MPI_Message>,
    pub(crate) status: ffi::MPI_Status,
}

impl Probe {
    fn matches(&self, comm: Raw<ffi::MPI_Comm>, status: &ffi::MPI_Status) -> bool {
        matches(self.source, self.tag, self.comm, comm, status)
    }
}

/// Whether a receive for `source`, `tag` on `comm` takes a message with
/// envelope `status` on `message_comm`.
fn matches(
    source: c_int,
    tag: c_int,
    comm: Raw<ffi::MPI_Comm>,
    message_comm: Raw<ffi::MPI_Comm>,
    status: &ffi::MPI_Status,
) -> bool {
    // SAFETY: reading constants MPI initialised.
    let (any_source, any_tag) = unsafe { (ffi::RSMPI_ANY_SOURCE, ffi::RSMPI_ANY_TAG) };
    comm == message_comm
        && (source == any_source || source == status.MPI_SOURCE)
        && (tag == any_tag || tag == status.MPI_TAG)
}

/// What the lock guards: the requests in flight (rule 1).
pub(crate) struct State {
    requests: Vec<Raw<ffi::MPI_Request>>,
    entries: Vec<Entry>,
    indices: Vec<c_int>,
    statuses: Vec<ffi::MPI_Status>,
    /// Receives waiting for a message, oldest first (rule 5). Changed only
    /// through `enqueue`/`dequeue`/`take_where`, which keep the counts
    /// below, so a turn never scans the line to learn them.
    probes: VecDeque<Probe>,
    /// Receives waiting, per communicator (a handful of entries).
    waiting_on: Vec<(Raw<ffi::MPI_Comm>, usize)>,
    /// Peeks (`probe`) among them.
    peeks: usize,
    /// Where the next turn's `MPI_Testsome` starts (rule 3).
    cursor: usize,
    /// Messages matched but not yet claimed, in arrival order.
    unclaimed: VecDeque<Unclaimed>,
    /// MPI was finalized: no call may be made.
    finalized: bool,
}

impl State {
    fn count(&mut self, probe: &Probe, delta: isize) {
        if probe.peek {
            self.peeks = self.peeks.wrapping_add_signed(delta);
        }
        match self.waiting_on.iter().position(|(c, _)| *c == probe.comm) {
            Some(i) => {
                self.waiting_on[i].1 = self.waiting_on[i].1.wrapping_add_signed(delta);
                if self.waiting_on[i].1 == 0 {
                    self.waiting_on.swap_remove(i);
                }
            }
            None => self.waiting_on.push((probe.comm, 1)),
        }
    }

    fn enqueue(&mut self, probe: Probe) {
        self.count(&probe, 1);
        self.probes.push_back(probe);
    }

    fn dequeue(&mut self, i: usize) -> Probe {
        let probe = self
            .probes
            .remove(i)
            .expect("weft-mpi bug: no waiting receive at that index");
        self.count(&probe, -1);
        probe
    }

    /// Takes every waiting receive `f` selects (rare paths: a communicator
    /// freed, a probe failing, shutdown).
    fn take_where(&mut self, f: impl Fn(&Probe) -> bool) -> Vec<Probe> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.probes.len());
        for probe in self.probes.drain(..) {
            if f(&probe) {
                taken.push(probe)
            } else {
                kept.push_back(probe)
            }
        }
        self.probes = kept;
        for probe in &taken {
            self.count(probe, -1);
        }
        taken
    }

    fn waiting_on(&self, comm: Raw<ffi::MPI_Comm>) -> usize {
        self.waiting_on.iter().find(|(c, _)| *c == comm).map_or(0, |(_, n)| *n)
    }
}

// SAFETY: `State` holds raw MPI handles (in `Raw`, already `Send`) and
// statuses (plain integers); it is only reached through the engine's lock.
unsafe impl Send for State {}

/// The progress engine of this process.
pub(crate) struct Engine {
    mpi: Mutex<State>,
    /// Work in flight and the spin window (rules 6 and 7), read without
    /// the lock by the reactor: `window.rs` states the protocol.
    window: Window,
    /// Requests completed by the loop (not by the eager test), for tests
    /// and metrics.
    completed_by_loop: AtomicUsize,
    /// Reactors polling the engine; receives are failed on shutdown only
    /// when the last one goes.
    reactors: AtomicUsize,
}

impl Engine {
    pub(crate) fn new() -> Engine {
        Engine {
            mpi: Mutex::new(State {
                requests: Vec::new(),
                entries: Vec::new(),
                indices: Vec::new(),
                statuses: Vec::new(),
                probes: VecDeque::new(),
                waiting_on: Vec::new(),
                peeks: 0,
                cursor: 0,
                unclaimed: VecDeque::new(),
                finalized: false,
            }),
            window: Window::new(),
            completed_by_loop: AtomicUsize::new(0),
            reactors: AtomicUsize::new(0),
        }
    }

    /// Takes the MPI lock (rule 1).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.mpi)
    }

    /// Rule 7: polls the engine until `done` says so or [`TASK_SPIN`]
    /// passes, only while the window of rule 6 is open. True if a
    /// completion here reopened a closed window: the caller must wake the
    /// loop (it may be asleep with other work now pending).
    #[must_use]
    pub(crate) fn spin_until(&self, done: impl Fn() -> bool) -> bool {
        if !self.spinning() {
            return false;
        }
        let mut reopened = false;
        // Not counted as the loop's polls (rule 6 counts those). The clock
        // is read every 16 polls only: reading it costs as much as a poll.
        let start = Instant::now();
        let mut polls = 0u32;
        while !done() {
            if polls % 16 == 15 && start.elapsed() >= TASK_SPIN {
                break;
            }
            reopened |= self.poll_inner().1;
            polls += 1;
        }
        reopened
    }

    /// Rule 6: true while the loop is asked not to sleep.
    pub(crate) fn spinning(&self) -> bool {
        self.window.spinning()
    }

    /// Rule 6: a post or completion reopens the window; true if it had
    /// closed, so a poster must wake the loop (`window.rs`).
    pub(crate) fn active(&self) -> bool {
        self.window.active()
    }

    /// Requests and probes in flight.
    pub(crate) fn pending(&self) -> usize {
        self.window.pending()
    }

    /// One more reactor polls the engine.
    pub(crate) fn add_reactor(&self) {
        self.reactors.fetch_add(1, AcqRel);
    }

    /// Requests completed by a loop turn rather than by the eager test.
    pub(crate) fn completed_by_loop(&self) -> usize {
        self.completed_by_loop.load(Relaxed)
    }

    /// Rule 2: tests a just-posted request once (under the lock); its
    /// outcome if it is complete, `None` if it is still pending.
    pub(crate) fn test_once(
        &self,
        request: &mut Raw<ffi::MPI_Request>,
        datatype: Raw<ffi::MPI_Datatype>,
        capacity: usize,
    ) -> Option<Result<Status, Error>> {
        let mut flag: c_int = 0;
        let mut status = empty_status();
        // SAFETY: the caller holds the lock (rule 1); `request` is the live
        // handle just returned by an `MPI_I*` call.
        let rc = unsafe { ffi::MPI_Test(&mut request.0, &mut flag, &mut status) };
        if rc != ffi::MPI_SUCCESS as c_int {
            // MPI_Test reports a failed request through its return code and
            // frees it (the handle is MPI_REQUEST_NULL now).
            return Some(Err(with_capacity(Error::from_code(rc), capacity)));
        }
        (flag != 0).then(|| outcome(&status, datatype))
    }

    /// Queues a pending request for the loop to test (rule 3's array).
    pub(crate) fn push(
        &self,
        state: &mut State,
        request: Raw<ffi::MPI_Request>,
        datatype: Raw<ffi::MPI_Datatype>,
        capacity: usize,
        waiter: Arc<dyn Waiter>,
    ) {
        state.requests.push(request);
        state.entries.push(Entry {
            waiter,
            datatype,
            capacity,
        });
        self.window.add_pending();
    }

    /// [`test_once`](Self::test_once), then [`push`](Self::push) if
    /// pending: for a request whose buffers already sit in `waiter`.
    pub(crate) fn track(
        &self,
        state: &mut State,
        mut request: Raw<ffi::MPI_Request>,
        datatype: Raw<ffi::MPI_Datatype>,
        capacity: usize,
        waiter: Arc<dyn Waiter>,
    ) -> Option<Result<Status, Error>> {
        let outcome = self.test_once(&mut request, datatype, capacity);
        if outcome.is_none() {
            self.push(state, request, datatype, capacity, waiter);
        }
        outcome
    }

    /// Starts a receive (rule 5): with the oldest unclaimed message it
    /// matches, else one MPI matches now (only if no older receive waits,
    /// which might want it), else it waits in line. Returns the outcome if
    /// the receive is already complete, `None` if it is pending.
    pub(crate) fn receive(&self, state: &mut State, probe: Probe) -> Option<Result<Status, Error>> {
        let found = match state.unclaimed.iter().position(|u| probe.matches(u.comm, &u.status)) {
            Some(i) if probe.peek => {
                let u = &state.unclaimed[i];
                return Some(Ok(Status::from_raw(&u.status, probe.waiter.datatype())));
            }
            Some(i) => {
                let u = state.unclaimed.remove(i).expect("index in range");
                Some((u.message, u.status))
            }
            // A peek looks without claiming (`MPI_Iprobe`): claiming a
            // message for a look would put it ahead of older ones from the
            // same sender that no one has pulled yet.
            None if probe.peek => match iprobe(probe.source, probe.tag, probe.comm) {
                Ok(Some(status)) => return Some(Ok(Status::from_raw(&status, probe.waiter.datatype()))),
                Ok(None) => None,
                Err(err) => return Some(Err(err)),
            },
            // While the window is open the awaiting task is about to poll
            // the engine itself (rule 7), whose pull does the same probe.
            None if state.probes.is_empty() && !self.spinning() => match improbe(probe.source, probe.tag, probe.comm) {
                Ok(found) => found,
                Err(err) => return Some(Err(err)),
            },
            None => None,
        };
        match found {
            Some((message, status)) => probe.waiter.receive(self, state, message, &status),
            None => {
                state.enqueue(probe);
                self.window.add_pending();
                None
            }
        }
    }

    /// A waiting receive was dropped: takes it out of line. True if it was
    /// still waiting (no message matched it).
    pub(crate) fn abandon(&self, state: &mut State, waiter: *const ()) -> bool {
        match state
            .probes
            .iter()
            .position(|p| Arc::as_ptr(&p.waiter).cast::<()>() == waiter)
        {
            Some(i) => {
                state.probes.remove(i);
                self.window.sub_pending(1);
                true
            }
            None => false,
        }
    }

    /// The oldest unclaimed message matching `source` and `tag`, without
    /// claiming it (for `probe`).
    pub(crate) fn peek_unclaimed(
        &self,
        state: &State,
        source: c_int,
        tag: c_int,
        comm: Raw<ffi::MPI_Comm>,
    ) -> Option<ffi::MPI_Status> {
        state
            .unclaimed
            .iter()
            .find(|u| matches(source, tag, comm, u.comm, &u.status))
            .map(|u| u.status)
    }

    /// One loop turn's work: tests every pending request and probe, then
    /// delivers what completed (rules 3 and 4). Returns how many completed.
    pub(crate) fn poll(&self) -> usize {
        self.window.polled();
        self.poll_inner().0
    }

    /// The work of a poll; also says whether a completion reopened a closed
    /// window (the loop may be asleep: a poll off the loop must wake it).
    fn poll_inner(&self) -> (usize, bool) {
        std::thread_local! {
            /// Completion lists reused from poll to poll on this thread, so a
            /// turn that completes something allocates nothing.
            static SCRATCH: std::cell::RefCell<(Done, Received)> = const {
                std::cell::RefCell::new((Vec::new(), Vec::new()))
            };
        }
        // A poll nested in another on this thread (a done callback run
        // inline that polls) gets lists of its own.
        let mut scratch = SCRATCH
            .try_with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)).ok())
            .ok()
            .flatten()
            .unwrap_or_default();
        let (done, received) = &mut scratch;
        let completed = {
            let mut state = self.lock();
            let state = &mut *state;
            if state.finalized {
                return (0, false);
            }
            let mut completed = 0;
            if !state.requests.is_empty() {
                completed += self.test_requests(state, done);
            }
            if !state.probes.is_empty() {
                completed += self.test_probes(state, received);
            }
            completed
        };
        let reopened = completed > 0 && self.active();
        if completed > 0 {
            self.completed_by_loop.fetch_add(done.len() + received.len(), Relaxed);
        }
        for (waiter, outcome) in done.drain(..) {
            waiter.complete(outcome);
        }
        for (waiter, outcome) in received.drain(..) {
            waiter.complete(outcome);
        }
        let _ = SCRATCH.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                *s = scratch;
            }
        });
        (completed, reopened)
    }

    /// Tests every pending request; returns how many left the array.
    fn test_requests(&self, state: &mut State, done: &mut Done) -> usize {
        // Rule 3: at most TEST_BATCH requests a turn, a window that moves
        // round the array, so a turn's cost does not grow with the number
        // in flight (MPI_Testsome scans what it is given).
        let len = state.requests.len();
        if state.cursor >= len {
            state.cursor = 0;
        }
        let start = state.cursor;
        let n = (len - start).min(TEST_BATCH);
        state.cursor = start + n;
        state.indices.resize(n, 0);
        state.statuses.resize_with(n, empty_status);
        let mut outcount: c_int = 0;
        let count = c_int::try_from(n).expect("TEST_BATCH fits a C int");
        // SAFETY: the lock is held (rule 1); `requests[start..start + n]`
        // are live requests, and the arrays have room for `n` indices and
        // statuses. `Raw<T>` is a transparent copy of the handle, so the
        // request array is an array of `MPI_Request`.
        let rc = unsafe {
            ffi::MPI_Testsome(
                count,
                state.requests[start..].as_mut_ptr().cast::<ffi::MPI_Request>(),
                &mut outcount,
                state.indices.as_mut_ptr(),
                state.statuses.as_mut_ptr(),
            )
        };
        let per_status = rc == ffi::MPI_ERR_IN_STATUS as c_int;
        if rc != ffi::MPI_SUCCESS as c_int && !per_status {
            // The call itself failed and says nothing of which requests are
            // alive: ask each one (a live request's buffers must stay).
            return self.test_each(state, done);
        }
        if outcount == ffi::MPI_UNDEFINED || outcount <= 0 {
            return 0;
        }
        let outcount = outcount as usize;
        // Statuses are packed in completion order: status k goes with
        // indices[k]. Pair them, then remove in descending index order.
        let mut finished: Vec<(usize, ffi::MPI_Status)> = (0..outcount)
            .map(|k| (start + state.indices[k] as usize, state.statuses[k]))
            .collect();
        finished.sort_unstable_by_key(|&(index, _)| std::cmp::Reverse(index));
        for (index, status) in finished {
            state.requests.swap_remove(index);
            let entry = state.entries.swap_remove(index);
            entry.waiter.mark_finished();
            let result = if per_status && status.MPI_ERROR != ffi::MPI_SUCCESS as c_int {
                Err(with_capacity(Error::from_code(status.MPI_ERROR), entry.capacity))
            } else {
                outcome(&status, entry.datatype)
            };
            done.push((entry.waiter, result));
        }
        self.window.sub_pending(outcount);
        outcount
    }

    /// After a failed `MPI_Testsome`: `MPI_Test` on each request; the ones
    /// that finished (or failed) leave the array, the live ones stay.
    fn test_each(&self, state: &mut State, done: &mut Done) -> usize {
        let mut left = 0;
        let mut i = 0;
        while i < state.requests.len() {
            let mut flag: c_int = 0;
            let mut status = empty_status();
            // SAFETY: the lock is held; the request is live (in the array).
            let rc = unsafe { ffi::MPI_Test(&mut state.requests[i].0, &mut flag, &mut status) };
            if rc == ffi::MPI_SUCCESS as c_int && flag == 0 {
                i += 1;
                continue;
            }
            state.requests.swap_remove(i);
            let entry = state.entries.swap_remove(i);
            entry.waiter.mark_finished();
            let result = if rc != ffi::MPI_SUCCESS as c_int {
                Err(with_capacity(Error::from_code(rc), entry.capacity))
            } else {
                outcome(&status, entry.datatype)
            };
            done.push((entry.waiter, result));
            left += 1;
        }
        self.window.sub_pending(left);
        left
    }

    /// Rule 5: pulls arrived messages and starts the receive of the oldest
    /// waiting receive each matches. Returns how many receives left the
    /// line (their outcomes, when already complete, go to `received`).
    fn test_probes(&self, state: &mut State, received: &mut Received) -> usize {
        // SAFETY: reading constants MPI initialised.
        let (any_source, any_tag) = unsafe { (ffi::RSMPI_ANY_SOURCE, ffi::RSMPI_ANY_TAG) };
        // Pull on every communicator a receive waits on (a handful).
        let comms: Vec<Raw<ffi::MPI_Comm>> = state.waiting_on.iter().map(|(c, _)| *c).collect();
        let mut left = 0;
        for comm in comms {
            left += self.pull(state, comm, any_source, any_tag, received);
        }
        left
    }

    /// Rule 5 on one communicator.
    fn pull(
        &self,
        state: &mut State,
        comm: Raw<ffi::MPI_Comm>,
        any_source: c_int,
        any_tag: c_int,
        received: &mut Received,
    ) -> usize {
        let mut left = 0;
        for _ in 0..PULL_BATCH {
            if state.waiting_on(comm) == 0 {
                break;
            }
            match improbe(any_source, any_tag, comm) {
                Ok(None) => break,
                Ok(Some((message, status))) => {
                    // Every peek it matches sees it; then the oldest
                    // receive it matches takes it, or it waits unclaimed.
                    while state.peeks > 0 {
                        let Some(i) = state.probes.iter().position(|p| p.peek && p.matches(comm, &status)) else {
                            break;
                        };
                        let probe = state.dequeue(i);
                        self.window.sub_pending(1);
                        left += 1;
                        let seen = Status::from_raw(&status, probe.waiter.datatype());
                        received.push((probe.waiter, Ok(seen)));
                    }
                    match state.probes.iter().position(|p| p.matches(comm, &status)) {
                        Some(i) => {
                            let probe = state.dequeue(i);
                            left += 1;
                            let waiter = probe.waiter.clone();
                            if let Some(outcome) = probe.waiter.receive(self, state, message, &status) {
                                received.push((waiter, outcome));
                            }
                            // After the receive counted its request, if any:
                            // the count never dips to zero with work left.
                            self.window.sub_pending(1);
                        }
                        None => state.unclaimed.push_back(Unclaimed { comm, message, status }),
                    }
                }
                Err(err) => {
                    // Probing itself failed: fail the receives waiting on
                    // this communicator.
                    let failed = state.take_where(|p| p.comm == comm);
                    left += failed.len();
                    self.window.sub_pending(failed.len());
                    for probe in failed {
                        received.push((probe.waiter, Err(err.clone())));
                    }
                    break;
                }
            }
        }
        left
    }

    /// Takes every unclaimed message out (to receive and discard them
    /// before finalizing). Under the lock.
    pub(crate) fn take_unclaimed_locked(&self, state: &mut State) -> Vec<Unclaimed> {
        state.unclaimed.drain(..).collect()
    }

    /// Before finalizing: tests until nothing is in flight or `timeout` has
    /// passed since `start` (a send to a rank that never receives would
    /// otherwise hang `MPI_Finalize`). Receives still waiting for a message
    /// posted nothing, so there is nothing of theirs to cancel.
    pub(crate) fn drain(&self, timeout: Duration, start: Instant) {
        while !self.lock().requests.is_empty() && start.elapsed() < timeout {
            self.poll();
            std::thread::yield_now();
        }
    }

    /// Under the lock: receives a matched message into scratch memory and
    /// drops it (a message matched by `MPI_Improbe` cannot go back to MPI).
    pub(crate) fn discard_locked(&self, mut message: Raw<ffi::MPI_Message>, status: &ffi::MPI_Status) {
        // Counted in 8-byte units so that messages past 2 GiB still fit a
        // count MPI can take; the scratch holds all of it.
        let bytes = crate::status::message_bytes(status).unwrap_or(0);
        let words = bytes.div_ceil(8);
        let mut scratch = vec![0u64; words];
        let mut out = empty_status();
        let word = Raw(u64::equivalent_datatype().as_raw());
        // SAFETY: the caller holds the lock; the message was matched in this
        // process and is received once; the scratch buffer holds all of its
        // bytes. Blocking is bounded: the data is already on its way.
        unsafe {
            ffi::MPI_Mrecv(
                scratch.as_mut_ptr().cast(),
                c_int::try_from(words).unwrap_or(c_int::MAX),
                word.0,
                &mut message.0,
                &mut out,
            );
        }
    }

    /// A communicator is being freed: fails the receives waiting on it and
    /// receives and drops the messages pulled for it. Under the lock.
    pub(crate) fn forget_comm(&self, state: &mut State, comm: Raw<ffi::MPI_Comm>) -> Vec<Arc<dyn Matcher>> {
        let gone = state.take_where(|p| p.comm == comm);
        self.window.sub_pending(gone.len());
        let (stale, kept): (VecDeque<Unclaimed>, VecDeque<Unclaimed>) =
            state.unclaimed.drain(..).partition(|u| u.comm == comm);
        state.unclaimed = kept;
        for u in stale {
            self.discard_locked(u.message, &u.status);
        }
        gone.into_iter().map(|p| p.waiter).collect()
    }

    /// Before the engine goes away with MPI still live: requests that did
    /// not finish in time keep their buffers forever (leaked) rather than
    /// freeing memory MPI may still write. Under the lock.
    pub(crate) fn abandon_in_flight(&self, state: &mut State) {
        let n = state.entries.len();
        state.requests.clear();
        for entry in state.entries.drain(..) {
            std::mem::forget(entry.waiter);
        }
        self.window.sub_pending(n);
    }

    /// MPI is finalized from now on: polls do nothing (a reactor may still
    /// hold the engine for a moment). Under the lock.
    pub(crate) fn set_finalized(&self, state: &mut State) {
        state.finalized = true;
    }

    /// The runtime is going away: fails every receive still waiting for a
    /// message with [`Error::Shutdown`]. Requests MPI already owns stay in
    /// flight (their buffers stay with them) rather than being freed under
    /// MPI's feet.
    pub(crate) fn shutdown(&self) {
        if self.reactors.fetch_sub(1, AcqRel) > 1 {
            // Other runtimes still poll the engine.
            return;
        }
        let waiting: Vec<Probe> = {
            let mut state = self.lock();
            let waiting: Vec<Probe> = state.take_where(|_| true);
            self.window.sub_pending(waiting.len());
            waiting
        };
        for probe in waiting {
            probe.waiter.complete(Err(Error::Shutdown));
        }
    }
}

/// Rule 5: one `MPI_Improbe`. Call under the lock.
pub(crate) fn improbe(
    source: c_int,
    tag: c_int,
    comm: Raw<ffi::MPI_Comm>,
) -> Result<Option<(Raw<ffi::MPI_Message>, ffi::MPI_Status)>, Error> {
    let mut flag: c_int = 0;
    // SAFETY: reading an immutable handle constant MPI initialised.
    let mut message = unsafe { ffi::RSMPI_MESSAGE_NULL };
    let mut status = empty_status();
    // SAFETY: the caller holds the lock (rule 1); `comm` is a live
    // communicator; the out-pointers are valid locals.
    let rc = unsafe { ffi::MPI_Improbe(source, tag, comm.0, &mut flag, &mut message, &mut status) };
    check(rc)?;
    Ok((flag != 0).then_some((Raw(message), status)))
}

/// One `MPI_Iprobe` (a look, no claim). Call under the lock.
fn iprobe(source: c_int, tag: c_int, comm: Raw<ffi::MPI_Comm>) -> Result<Option<ffi::MPI_Status>, Error> {
    let mut flag: c_int = 0;
    let mut status = empty_status();
    // SAFETY: the caller holds the lock (rule 1); `comm` is a live
    // communicator; the out-pointers are valid locals.
    check(unsafe { ffi::MPI_Iprobe(source, tag, comm.0, &mut flag, &mut status) })?;
    Ok((flag != 0).then_some(status))
}

/// A status with every field zero (a valid `MPI_Status`: plain integers).
pub(crate) fn empty_status() -> ffi::MPI_Status {
    // SAFETY: `MPI_Status` is a C struct of integers; all zeros is valid.
    unsafe { std::mem::zeroed() }
}

/// The outcome of a request that completed without an error code.
fn outcome(status: &ffi::MPI_Status, datatype: Raw<ffi::MPI_Datatype>) -> Result<Status, Error> {
    let mut cancelled: c_int = 0;
    // SAFETY: a local query of a completed request's status.
    unsafe { ffi::MPI_Test_cancelled(status, &mut cancelled) };
    if cancelled != 0 {
        return Err(Error::Cancelled);
    }
    Ok(Status::from_raw(status, datatype))
}

fn with_capacity(err: Error, capacity: usize) -> Error {
    match err {
        Error::Truncated { .. } => Error::Truncated { capacity },
        other => other,
    }
}

impl weft_io::source::Source for Engine {
    fn poll(&self) -> usize {
        Engine::poll(self)
    }

    fn has_pending(&self) -> bool {
        // Rule 6: inside the window the loop keeps polling even with
        // nothing in flight, so the next post needs no wake-up.
        self.window.has_work()
    }

    fn max_sleep(&self) -> Duration {
        if self.spinning() { Duration::ZERO } else { MAX_SLEEP }
    }

    fn shutdown(&self) {
        Engine::shutdown(self);
    }
}
