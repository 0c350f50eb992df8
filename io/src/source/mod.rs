//! Sources: work with no file descriptor, polled by the loop.
//!
//! An MPI request or a CUDA event cannot be handed to `epoll`; someone has to
//! ask "done yet?". A [`Source`] is the loop's way of asking: every turn, the
//! reactor polls each source that has work pending, and the source wakes the
//! tasks whose work completed. A source also bounds how long the loop may
//! sleep, so a completion is noticed soon even when nothing else happens.
//!
//! # The polling policy
//!
//! Polling has a price (a library call per turn, a loop that cannot sleep),
//! so the reactor adapts, per source, by time:
//!
//! - For the source's **spin window** ([`Source::spin_window`], default
//!   [`DEFAULT_SPIN_WINDOW`]) after its last progress (a poll that
//!   completed something, or new work announced with
//!   [`SourceHandle::notify`]), the loop does not sleep at all: it polls
//!   the source every turn, since completions come in bursts and an
//!   exchange in full flow answers within microseconds.
//! - After the window, the loop sleeps between polls: [`FIRST_SLEEP`] first,
//!   doubling with each poll that finds nothing, up to the source's
//!   [`max_sleep`](Source::max_sleep) (default [`DEFAULT_MAX_SLEEP`]). The
//!   reactor sleeps to the exact instant (below a millisecond where the
//!   platform allows; see [`crate::driver`]), so a sub-millisecond
//!   `max_sleep` is honoured.
//! - With nothing pending, the source does not bound the sleep at all.
//!
//! A source that gets new work while the loop sleeps should wake the loop
//! ([`SourceHandle::notify`]) so the new work is polled at once.
//!
//! # Doorbells
//!
//! Work that completes in another process (an MPI message from a peer)
//! cannot call [`SourceHandle::notify`], and polling for it every
//! `max_sleep` costs a wakeup each time (a timer, `epoll_wait`, two
//! context switches: about 15 µs of CPU on a virtual machine), whether or
//! not anything came. A source may therefore offer a **doorbell**
//! ([`Source::doorbell`], Unix): a file descriptor the peer makes readable
//! (a datagram) when it gives the source work. The reactor watches it with
//! the poller, and when it is readable calls [`Source::doorbell_rang`] (the
//! source drains it) and restarts the source's spin window, so the source
//! is polled in that same turn and eagerly for the window after: the loop
//! sleeps `max_sleep` between idle polls, yet work that rings is noticed
//! as soon as the loop's thread wakes. A doorbell is a hint: work that
//! does not ring is still found by the next idle poll.
//!
//! For work that *does* end on some thread (a callback from a driver
//! thread, a blocking pool), the [`Notifier`] hands the result to the loop
//! without any polling.
//!
//! # Panics
//!
//! A source is user code run on the loop's thread, which every socket and
//! timer of the runtime waits on: a panic in any of its methods that the
//! loop calls (`poll`, `has_pending`, `spin_window`, `max_sleep`,
//! `doorbell_rang`, `shutdown`) is contained there, after the panic hook
//! has reported it, and the loop goes on as if the method had answered
//! "nothing" (no completions, no spin window, the default `max_sleep`,
//! news: the source is polled, nothing to shut down), except
//! `has_pending`, whose panic counts as work pending: the loop polls the
//! source and sleeps no longer than its `max_sleep` between polls, rather
//! than sleep with no bound beside work in flight when the panic comes
//! only sometimes. A panic in `name` or `pending` while the reactor's
//! metrics are read is contained too (`"source"`, 0), and so is one in the
//! source's `Drop` where the loop or a metrics reader held the last
//! reference ("Locks"). `doorbell` is read by the thread that registers the
//! source, whose call a panic there unwinds.
//!
//! # Locks
//!
//! The reactor calls a source's methods with none of its locks held: it
//! copies the list of sources (a reference count each) and then calls them.
//! A turn that a source spins copies the list once, in step 1, and reads
//! each source's `spin_window` once; step 6 polls from that copy (asking
//! `has_pending` again before each poll) unless a source was added or
//! removed since, when it copies the list afresh. A turn that may sleep
//! drops its copies before it waits, so a source removed while the loop
//! sleeps is dropped at once, by the thread that removed it.
//! So a source's method may register or drop sources, read the reactor's
//! metrics, or register timers, and a panic hook that reads the metrics
//! while a source's method panics finds nothing held. A source whose
//! registration is dropped while the loop (or a metrics reader) is calling
//! it may be asked once more in that turn, and is dropped by that thread
//! when it is done with it, in that turn.

mod notifier;

pub use self::notifier::{Abandoned, Completer, Completion, Notifier};

use crate::driver::Handle;
use crate::loom::{AtomicU64, AtomicUsize, Mutex, Ordering::*, lock};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

std::thread_local! {
    /// The clock reading of the turn this thread is running, if it is in
    /// one ([`turn_now`]).
    static TURN_NOW: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// The clock reading of the loop's current turn, when called on the loop's
/// thread during a turn (from a [`Source`] method: [`Source::has_pending`],
/// [`Source::poll`], [`Source::spin_window`]...); `None` anywhere else.
///
/// A turn reads the clock once after its wait (see [`crate::driver`]); a
/// source that needs the time to decide whether to spin can use that
/// reading instead of its own: a clock reading costs tens of nanoseconds on
/// a virtual machine, a good part of a spinning turn. The turn reads the
/// clock again after a delivery that ran jobs and after a poll that
/// completed something, but not after an empty poll or a waker, and
/// code that the turn runs (a done callback, a job handed to the loop)
/// sees the reading from before it: only the reactor's own calls of a
/// [`Source`]'s methods should take it. Work that may take long (a done
/// callback) should read the clock itself afterwards.
///
/// A turn that ends, even by a panic, leaves none behind; so does a turn
/// nested in another on one thread (a `block_on` inside a source's poll:
/// it may have blocked), for the rest of the outer turn.
pub fn turn_now() -> Option<Instant> {
    TURN_NOW.try_with(std::cell::Cell::get).ok().flatten()
}

/// Publishes this thread's turn reading ([`turn_now`]) until dropped.
pub(crate) struct TurnClock(());

impl TurnClock {
    /// The turn has read the clock at `now`.
    pub(crate) fn start(now: Instant) -> TurnClock {
        TurnClock::set(now);
        TurnClock(())
    }

    /// The turn read the clock again (after a wait).
    pub(crate) fn set(now: Instant) {
        let _ = TURN_NOW.try_with(|c| c.set(Some(now)));
    }
}

impl Drop for TurnClock {
    fn drop(&mut self) {
        let _ = TURN_NOW.try_with(|c| c.set(None));
    }
}

/// How long the loop polls a source without sleeping after its last
/// progress, unless the source says otherwise ([`Source::spin_window`]).
pub const DEFAULT_SPIN_WINDOW: Duration = Duration::from_micros(50);

/// The loop's first sleep between polls once a source's spin window has
/// passed; each poll that finds nothing doubles it, up to the source's
/// [`max_sleep`](Source::max_sleep).
pub const FIRST_SLEEP: Duration = Duration::from_micros(50);

/// The longest a pending source lets the loop sleep, unless it says
/// otherwise.
pub const DEFAULT_MAX_SLEEP: Duration = Duration::from_millis(10);

/// Work with no file descriptor that the loop polls while it has work
/// pending.
pub trait Source: Send + Sync + 'static {
    /// Checks for completed work and wakes the tasks waiting for it. Returns
    /// how many completed. Called on the thread that runs the loop; must not
    /// block.
    fn poll(&self) -> usize;

    /// True while work is in flight: the loop keeps polling until it is
    /// false. Called every turn (with no lock of the reactor's held, as
    /// every method here is: see "Locks" in the module docs): it must be
    /// cheap.
    fn has_pending(&self) -> bool;

    /// The longest the loop may sleep while work is pending, once
    /// completions have stopped arriving (may be below a millisecond).
    fn max_sleep(&self) -> Duration {
        DEFAULT_MAX_SLEEP
    }

    /// How long after its last progress the loop keeps polling this source
    /// without sleeping (default [`DEFAULT_SPIN_WINDOW`]). A source whose
    /// completions are *signalled* (a host callback wakes the loop through
    /// the [`Notifier`]) and that polls only as a watchdog returns
    /// `Duration::ZERO`: the loop then sleeps from the first poll on.
    /// Read at every turn: a source may change it (a setting, or what it
    /// learned about its work).
    fn spin_window(&self) -> Duration {
        DEFAULT_SPIN_WINDOW
    }

    /// A file descriptor that becomes readable when this source has news
    /// (see "Doorbells" in the module docs), watched by every reactor the
    /// source is registered with for as long as it is; `None` (the
    /// default): no doorbell. Read once, when the source is registered;
    /// it must stay open while the source is registered.
    #[cfg(unix)]
    fn doorbell(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// The doorbell was readable: drain it (without blocking), and say
    /// whether the rings were news: `false` (say, every ring came from
    /// someone the source does not trust) leaves its spin window as it
    /// was, so a stranger's rings cannot keep the loop spinning. A source
    /// may leave rings behind (to bound the time spent here under a
    /// flood): the next ring's arrival is a new event all the same. Called
    /// on the loop's thread, before the turn's polls.
    fn doorbell_rang(&self) -> bool {
        true
    }

    /// The reactor is shutting down and will never poll again: fail or
    /// abandon pending work, waking its tasks. Called once, on the loop's
    /// thread; the source is then dropped by the reactor.
    fn shutdown(&self) {}

    /// The source's name in metrics, dumps and timelines (`"mpi"`,
    /// `"gpu"`).
    fn name(&self) -> &'static str {
        "source"
    }

    /// Operations in flight, for metrics (by default 1 while
    /// [`has_pending`](Self::has_pending), else 0). Called whenever the
    /// reactor's metrics are read: keep it cheap.
    fn pending(&self) -> usize {
        usize::from(self.has_pending())
    }
}

/// The sources of one reactor.
pub(crate) struct Sources {
    /// The registered sources; `None` once the reactor has shut down (so a
    /// source added after that is told at once, never left unpolled).
    entries: Mutex<Option<Vec<Entry>>>,
    /// How many entries there are, written under the lock: most reactors
    /// have no source, and their turns skip the lock (see
    /// [`Sources::snapshot`]).
    registered: AtomicUsize,
    /// Bumped under the lock whenever an entry is added or removed: a
    /// turn's step 6 reuses step 1's copy of the list only if it has not
    /// moved ([`Sources::poll_pending`]).
    generation: AtomicU64,
    next_id: Mutex<u64>,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            entries: Mutex::new(Some(Vec::new())),
            registered: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            next_id: Mutex::new(0),
        }
    }
}

/// A turn's copy of the source list (the driver's, reused from turn to
/// turn so that it allocates nothing).
#[derive(Default)]
pub(crate) struct Listed {
    copies: Vec<Snapshot>,
    /// Set while `copies` holds step 1's copy for step 6 of a turn that
    /// spins (does not wait): the list's generation when it was copied.
    kept: Option<u64>,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.release();
    }
}

impl Listed {
    /// Drops the copies (see [`Snapshot::release`]).
    fn release(&mut self) {
        self.kept = None;
        if self.copies.is_empty() {
            // (Most calls: a drain's setup is a good part of a turn's
            // bookkeeping.)
            return;
        }
        for listed in self.copies.drain(..) {
            listed.release();
        }
    }
}

struct Entry {
    id: u64,
    source: Arc<dyn Source>,
    /// When the source last made progress (or got new work).
    progress: Instant,
    /// Polls in a row that found nothing after the spin window.
    idle_polls: u32,
    /// Polls, and operations they completed (for metrics).
    polls: u64,
    completed: u64,
    /// The source's doorbell, registered with the poller.
    #[cfg(unix)]
    doorbell: Option<std::os::fd::RawFd>,
}

impl Sources {
    /// Runs `f` on the registered sources (none once shut down).
    fn with_entries<R>(&self, f: impl FnOnce(&mut Vec<Entry>) -> R) -> R {
        let mut entries = lock(&self.entries);
        f(entries.as_mut().unwrap_or(&mut Vec::new()))
    }

    /// True if no source is registered: the turn's two looks at the
    /// sources then read one atomic and take no lock. A source registered
    /// meanwhile wakes the loop after it is counted
    /// ([`Handle::register_source`]), so the next turn sees it.
    fn none(&self) -> bool {
        self.registered.load(Acquire) == 0
    }

    /// Copies the list into `into` (see [`Snapshot`]); returns its
    /// generation.
    fn snapshot(&self, into: &mut Vec<Snapshot>) -> u64 {
        self.with_entries(|entries| {
            into.extend(entries.iter().map(Entry::snapshot));
            self.generation.load(Relaxed)
        })
    }

    /// A turn's step 1: the longest the loop may sleep at `now` given the
    /// sources' state. When the answer is zero (a source spins the loop),
    /// `listed` keeps the copy of the list and each source's spin window
    /// for step 6 of the same turn ([`poll_pending`](Self::poll_pending)),
    /// so a spinning turn copies the list and reads each window once;
    /// otherwise it is left empty, so that the loop holds no source while
    /// it sleeps.
    pub(crate) fn max_wait(&self, now: Instant, listed: &mut Listed) -> Option<Duration> {
        // A turn that unwound between its steps left its copy behind.
        listed.release();
        if self.none() {
            return None;
        }
        let generation = self.snapshot(&mut listed.copies);
        let mut wait: Option<Duration> = None;
        for copy in &mut listed.copies {
            if copy.has_pending() {
                let sleep = copy.sleep(now);
                wait = Some(wait.map_or(sleep, |w| w.min(sleep)));
            }
        }
        if wait == Some(Duration::ZERO) {
            listed.kept = Some(generation);
        } else {
            listed.release();
        }
        wait
    }

    /// Each source's metrics, in registration order.
    pub(crate) fn metrics(&self) -> Vec<crate::driver::SourceMetrics> {
        let listed: Vec<_> = self.with_entries(|entries| {
            entries
                .iter()
                .map(|e| (e.source.clone(), e.polls, e.completed))
                .collect()
        });
        listed
            .into_iter()
            .map(|(source, polls, completed)| {
                let metrics = crate::driver::SourceMetrics {
                    name: contained("source", || source.name()),
                    pending: contained(0, || source.pending()),
                    polls,
                    completed,
                };
                // Possibly the last reference (the source was removed).
                contained((), move || drop(source));
                metrics
            })
            .collect()
    }

    /// A turn's step 6: polls every source with work pending (asked
    /// again now: jobs delivered in step 5 may have ended its work);
    /// returns how many it polled. `listed` is step 1's copy if that turn
    /// spins and no source was added or removed since; otherwise a fresh
    /// copy. It is left empty. `now`, the turn's clock reading after its
    /// wait, dates an empty poll (a spinning turn then reads the clock
    /// once, not once per source), which is counted against the spin
    /// window read in step 1 when the copy is step 1's (a window that
    /// changes within the turn shifts only when the back-off starts).
    pub(crate) fn poll_pending(&self, listed: &mut Listed, now: Instant) -> usize {
        let kept = listed.kept.take();
        if kept.is_none_or(|generation| generation != self.generation.load(Relaxed)) {
            listed.release();
            if self.none() {
                return 0;
            }
            self.snapshot(&mut listed.copies);
        }
        let mut polled = 0;
        for copy in listed.copies.drain(..) {
            if !copy.has_pending() {
                copy.release();
                continue;
            }
            polled += 1;
            let completed = contained(0, || copy.source.poll());
            // Progress restarts the spin window from when the poll
            // returned (it may have run done callbacks); an empty poll is
            // dated by the turn's reading.
            let (at, window) = if completed > 0 {
                let at = Instant::now();
                TurnClock::set(at);
                (at, Duration::ZERO)
            } else {
                (now, copy.window.unwrap_or_else(|| copy.spin_window()))
            };
            self.with_entries(|entries| {
                if let Some(entry) = entries.iter_mut().find(|e| e.id == copy.id) {
                    entry.polled(completed, at, window);
                }
            });
            copy.release();
        }
        polled
    }

    /// Doorbells rang (the poller said one was readable): each source with
    /// a doorbell drains it and spins again from `now`, so it is polled in
    /// this turn.
    #[cfg(unix)]
    pub(crate) fn rang(&self, now: Instant) {
        let mut rung = Vec::new();
        self.with_entries(|entries| {
            for entry in entries.iter().filter(|e| e.doorbell.is_some()) {
                rung.push((entry.id, entry.source.clone()));
            }
        });
        // Outside the lock, as polls are; a panic is contained (and counts
        // as news: the source is polled).
        rung.retain(|(_, source)| contained(true, || source.doorbell_rang()));
        if rung.is_empty() {
            return;
        }
        self.with_entries(|entries| {
            for entry in entries.iter_mut().filter(|e| rung.iter().any(|(id, _)| *id == e.id)) {
                entry.progressed(now);
            }
        });
    }

    /// Adds a source with the doorbell its caller read (once: the entry
    /// deregisters what was registered); `Err` gives it back if the
    /// reactor has shut down.
    fn add(
        &self,
        source: Arc<dyn Source>,
        #[cfg(unix)] doorbell: Option<std::os::fd::RawFd>,
    ) -> Result<u64, Arc<dyn Source>> {
        let id = {
            let mut next = lock(&self.next_id);
            *next += 1;
            *next
        };
        let mut entries = lock(&self.entries);
        let Some(entries) = entries.as_mut() else {
            return Err(source);
        };
        self.generation.fetch_add(1, Relaxed);
        entries.push(Entry {
            id,
            #[cfg(unix)]
            doorbell,
            source,
            progress: Instant::now(),
            idle_polls: 0,
            polls: 0,
            completed: 0,
        });
        self.registered.store(entries.len(), Release);
        Ok(id)
    }

    /// Removes a source; returns it (with its doorbell) if it was there.
    fn remove(&self, id: u64) -> Option<Entry> {
        self.with_entries(|entries| {
            let i = entries.iter().position(|e| e.id == id)?;
            let entry = entries.remove(i);
            self.generation.fetch_add(1, Relaxed);
            self.registered.store(entries.len(), Release);
            Some(entry)
        })
    }

    /// New work arrived: spin again.
    fn kick(&self, id: u64) {
        self.with_entries(|entries| {
            if let Some(entry) = entries.iter_mut().find(|e| e.id == id) {
                entry.progressed(Instant::now());
            }
        });
    }

    /// Tells every source the loop is gone, then drops them (a source that
    /// holds a handle to the reactor would otherwise keep it alive).
    pub(crate) fn shutdown(&self) {
        let entries = {
            let mut list = lock(&self.entries);
            self.generation.fetch_add(1, Relaxed);
            self.registered.store(0, Release);
            list.take().unwrap_or_default()
        };
        for entry in entries {
            tell_shutdown(&*entry.source);
        }
    }
}

/// Hands each finished item to `complete`, one at a time, so that a panic
/// in one (a user's waker, a done callback, a payload's destructor) costs
/// none of the others its completion: the panic is contained and the loop
/// goes on to the next item. The panic hook has already reported it.
///
/// Every loop in Weft that completes a batch (the reactor's wakers, the
/// notifier's jobs, the MPI engine's and the GPU tracker's finished
/// operations) goes through here; without it, one panic would unwind past
/// the rest of the batch and leave their tasks waiting forever. Returns how
/// many completions panicked.
pub fn complete_each<T>(items: impl IntoIterator<Item = T>, mut complete: impl FnMut(T)) -> usize {
    let mut panicked = 0;
    for item in items {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| complete(item))).is_err() {
            panicked += 1;
        }
    }
    panicked
}

/// Tells a source the loop is gone (a panic is contained).
fn tell_shutdown(source: &dyn Source) {
    contained((), || source.shutdown());
}

/// The answer of a source's method called by the loop, or `fallback` if it
/// panicked: a source must not take the loop's thread with it ("Panics" in
/// the module docs). The panic hook has already reported the panic.
fn contained<R>(fallback: R, method: impl FnOnce() -> R) -> R {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(method)).unwrap_or(fallback)
}

/// A source and its entry's polling state, copied out of the list so that
/// the source's methods run with no lock held ("Locks" in the module docs).
pub(crate) struct Snapshot {
    id: u64,
    source: Arc<dyn Source>,
    progress: Instant,
    idle_polls: u32,
    /// Step 1's answer of `spin_window`, kept for step 6 of a spinning
    /// turn (`None`: not asked).
    window: Option<Duration>,
}

impl Snapshot {
    /// [`Source::has_pending`] (a panic is contained: work pending, so a
    /// panic that comes only sometimes cannot leave the loop asleep, with
    /// no bound, beside work in flight).
    fn has_pending(&self) -> bool {
        contained(true, || self.source.has_pending())
    }

    /// [`Source::spin_window`] (a panic is contained: no window).
    fn spin_window(&self) -> Duration {
        contained(Duration::ZERO, || self.source.spin_window())
    }

    /// Drops the copy, possibly the last reference to a source removed
    /// meanwhile: its `Drop` then runs here, and a panic in it is
    /// contained ("Panics" in the module docs).
    fn release(self) {
        contained((), move || drop(self));
    }

    /// The longest the loop may sleep at `now` for this source (the policy
    /// in the module docs).
    fn sleep(&mut self, now: Instant) -> Duration {
        let window = self.spin_window();
        self.window = Some(window);
        if in_window(now, self.progress, window) {
            return Duration::ZERO;
        }
        backoff(
            self.idle_polls,
            contained(DEFAULT_MAX_SLEEP, || self.source.max_sleep()),
        )
    }
}

impl Entry {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            id: self.id,
            source: self.source.clone(),
            progress: self.progress,
            idle_polls: self.idle_polls,
            window: None,
        }
    }

    fn progressed(&mut self, now: Instant) {
        self.progress = now;
        self.idle_polls = 0;
    }

    /// A poll at `now` completed `completed` operations; `spin_window` is
    /// the source's answer, read before the lock was taken.
    fn polled(&mut self, completed: usize, now: Instant, spin_window: Duration) {
        self.polls += 1;
        self.completed += completed as u64;
        if completed > 0 {
            self.progressed(now);
        } else if !in_window(now, self.progress, spin_window) {
            self.idle_polls = self.idle_polls.saturating_add(1);
        }
    }
}

/// True if `now` is less than `window` after `progress` (or before it):
/// `now.saturating_duration_since(progress) < window`, with one addition
/// and a comparison rather than a subtraction of two clock readings (a
/// spinning turn asks twice).
fn in_window(now: Instant, progress: Instant, window: Duration) -> bool {
    !window.is_zero() && progress.checked_add(window).is_none_or(|end| now < end)
}

/// The sleep after `idle_polls` empty polls past the spin window:
/// [`FIRST_SLEEP`], doubled per empty poll, at most `max`.
fn backoff(idle_polls: u32, max: Duration) -> Duration {
    FIRST_SLEEP.saturating_mul(1 << idle_polls.min(24)).min(max)
}

impl Handle {
    /// Adds a source to this reactor's loop; it is polled while it has
    /// work pending, until the returned handle is dropped.
    ///
    /// A source registered with a reactor that has shut down is told so at
    /// once ([`Source::shutdown`], on this thread) and never polled.
    pub fn register_source(&self, source: Arc<dyn Source>) -> SourceHandle {
        #[cfg(unix)]
        let doorbell = source.doorbell();
        let id = match self.inner.sources.add(
            source,
            #[cfg(unix)]
            doorbell,
        ) {
            Ok(id) => {
                #[cfg(unix)]
                if let Some(fd) = doorbell {
                    // A doorbell the poller refuses (out of memory) leaves
                    // the source polled as one without.
                    let _ = self.inner.registry.register(
                        &mut mio::unix::SourceFd(&fd),
                        crate::driver::registration::DOORBELL_TOKEN,
                        mio::Interest::READABLE,
                    );
                }
                self.inner.wake();
                id
            }
            Err(source) => {
                tell_shutdown(&*source);
                0
            }
        };
        SourceHandle {
            handle: self.clone(),
            id,
        }
    }
}

/// A source's place in a reactor; dropping it removes the source.
pub struct SourceHandle {
    handle: Handle,
    id: u64,
}

impl SourceHandle {
    /// Wakes the loop so it polls the source now, and eagerly for a while
    /// (see the module docs): call after giving the source new work.
    pub fn notify(&self) {
        self.handle.inner.sources.kick(self.id);
        self.handle.inner.wake();
    }

    /// The reactor the source belongs to.
    pub fn reactor(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        let entry = self.handle.inner.sources.remove(self.id);
        // The entry holds the source, so its doorbell is still open here
        // (deregistering a closed descriptor's number could hit another).
        #[cfg(unix)]
        if let Some(fd) = entry.as_ref().and_then(|e| e.doorbell) {
            let _ = self.handle.inner.registry.deregister(&mut mio::unix::SourceFd(&fd));
        }
        drop(entry);
    }
}

impl fmt::Debug for SourceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceHandle").field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty or successful poll at `now`, as `Sources::poll_pending`
    /// records it.
    fn polled(entry: &mut Entry, completed: usize, now: Instant) {
        let window = entry.snapshot().spin_window();
        entry.polled(completed, now, window);
    }

    /// The loop's sleep at `now` for `entry`, as `Sources::max_wait`
    /// computes it.
    fn sleep(entry: &Entry, now: Instant) -> Duration {
        entry.snapshot().sleep(now)
    }

    #[test]
    fn the_window_is_open_for_less_than_its_length_after_progress() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        for (now, window, open) in [
            (start, ms(5), true),
            (start + ms(4), ms(5), true),
            (start + ms(5), ms(5), false),
            (start + ms(6), ms(5), false),
            // Progress after the turn's reading: inside, unless no window.
            (start - ms(1), ms(5), true),
            (start - ms(1), Duration::ZERO, false),
            (start, Duration::ZERO, false),
            (start + ms(6), Duration::MAX, true),
        ] {
            assert_eq!(
                in_window(now, start, window),
                now.saturating_duration_since(start) < window,
                "{now:?} {window:?}"
            );
            assert_eq!(in_window(now, start, window), open, "{now:?} {window:?}");
        }
    }

    #[test]
    fn backoff_doubles_from_the_first_sleep_up_to_the_bound() {
        let max = Duration::from_millis(1);
        assert_eq!(backoff(0, max), FIRST_SLEEP);
        assert_eq!(backoff(1, max), FIRST_SLEEP * 2);
        assert_eq!(backoff(3, max), FIRST_SLEEP * 8);
        assert_eq!(backoff(10, max), max);
        assert_eq!(backoff(u32::MAX, max), max);
        // A sub-millisecond bound is honoured as it is.
        assert_eq!(
            backoff(u32::MAX, Duration::from_micros(120)),
            Duration::from_micros(120)
        );
    }

    struct Idle(Duration);
    impl Source for Idle {
        fn poll(&self) -> usize {
            0
        }
        fn has_pending(&self) -> bool {
            true
        }
        fn spin_window(&self) -> Duration {
            self.0
        }
    }

    #[test]
    fn the_loop_spins_for_the_window_after_progress_then_backs_off() {
        let start = Instant::now();
        let mut entry = Entry {
            id: 1,
            source: Arc::new(Idle(Duration::from_millis(5))),
            progress: start,
            idle_polls: 0,
            polls: 0,
            completed: 0,
            #[cfg(unix)]
            doorbell: None,
        };
        let ms = Duration::from_millis;
        // Inside the window: no sleep, and empty polls do not count.
        polled(&mut entry, 0, start + ms(1));
        assert_eq!(sleep(&entry, start + ms(4)), Duration::ZERO);
        assert_eq!(entry.idle_polls, 0);
        // Past it: the back-off starts, and doubles per empty poll.
        assert_eq!(sleep(&entry, start + ms(5)), FIRST_SLEEP);
        polled(&mut entry, 0, start + ms(6));
        assert_eq!(sleep(&entry, start + ms(6)), FIRST_SLEEP * 2);
        // Progress opens the window again.
        polled(&mut entry, 3, start + ms(7));
        assert_eq!(sleep(&entry, start + ms(8)), Duration::ZERO);
        assert_eq!(sleep(&entry, start + ms(12)), FIRST_SLEEP);
    }

    #[test]
    fn a_signalled_source_never_spins() {
        let start = Instant::now();
        let entry = Entry {
            id: 1,
            source: Arc::new(Idle(Duration::ZERO)),
            progress: start,
            idle_polls: 0,
            polls: 0,
            completed: 0,
            #[cfg(unix)]
            doorbell: None,
        };
        assert_eq!(sleep(&entry, start), FIRST_SLEEP);
    }
}

#[cfg(all(test, not(miri)))]
mod turn_clock_tests {
    use super::*;
    use crate::driver::Driver;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Records what `turn_now` said in each call the loop made, and the
    /// clock right after the poll.
    #[derive(Default)]
    struct Seen {
        calls: Mutex<Vec<(&'static str, Option<Instant>)>>,
        completes: bool,
    }

    impl Source for Seen {
        fn poll(&self) -> usize {
            lock(&self.calls).push(("poll", turn_now()));
            if self.completes {
                std::thread::sleep(Duration::from_millis(2));
                1
            } else {
                0
            }
        }
        fn has_pending(&self) -> bool {
            lock(&self.calls).push(("has_pending", turn_now()));
            true
        }
        fn spin_window(&self) -> Duration {
            Duration::from_secs(60)
        }
    }

    /// Every source call of a turn sees the turn's one reading, taken no
    /// earlier than the turn began; outside a turn there is none.
    #[test]
    fn sources_see_the_turns_reading_during_a_turn_and_none_outside() {
        let mut driver = Driver::new().expect("a driver");
        let seen = Arc::new(Seen::default());
        let handle = driver.handle().register_source(seen.clone());
        handle.notify();
        assert_eq!(turn_now(), None, "no turn yet");
        let before = Instant::now();
        driver.turn(Some(Duration::ZERO));
        let after = Instant::now();
        assert_eq!(turn_now(), None, "the turn is over");
        let calls = std::mem::take(&mut *lock(&seen.calls));
        assert!(calls.iter().any(|(what, _)| *what == "poll"), "{calls:?}");
        let first = calls[0].1.expect("a reading during the turn");
        assert!(before <= first && first <= after);
        assert!(
            calls.iter().all(|(_, at)| *at == Some(first)),
            "one reading for the whole turn: {calls:?}"
        );
        drop(handle);
    }

    /// After a poll that completed something (it may have run done
    /// callbacks for long), the turn's reading is fresh again for the
    /// sources polled next.
    #[test]
    fn progress_refreshes_the_turns_reading() {
        let mut driver = Driver::new().expect("a driver");
        let busy = Arc::new(Seen {
            completes: true,
            ..Seen::default()
        });
        let next = Arc::new(Seen::default());
        let a = driver.handle().register_source(busy.clone());
        let b = driver.handle().register_source(next.clone());
        a.notify();
        driver.turn(Some(Duration::ZERO));
        let busy_poll = lock(&busy.calls)
            .iter()
            .find(|(w, _)| *w == "poll")
            .and_then(|(_, at)| *at);
        let next_poll = lock(&next.calls)
            .iter()
            .find(|(w, _)| *w == "poll")
            .and_then(|(_, at)| *at);
        let (busy_poll, next_poll) = (busy_poll.expect("polled"), next_poll.expect("polled"));
        assert!(
            next_poll >= busy_poll + Duration::from_millis(2),
            "the source polled after a 2 ms poll saw a reading from before it"
        );
        drop((a, b));
    }

    /// A turn that unwinds (the reading's guard dropped by a panic) leaves
    /// no reading behind.
    #[test]
    fn a_turn_that_unwinds_leaves_no_reading_behind() {
        let unwound = std::panic::catch_unwind(|| {
            let _clock = TurnClock::start(Instant::now());
            assert!(turn_now().is_some());
            panic!("a turn that unwinds");
        });
        assert!(unwound.is_err());
        assert_eq!(turn_now(), None, "a reading outlived its turn");
    }

    /// A source that panics in each method the loop calls ("Panics" in the
    /// module docs) takes neither the loop's thread nor the other sources
    /// with it: the turn returns, and a source beside it is polled and
    /// completes its work.
    #[test]
    fn a_source_that_panics_in_every_method_leaves_the_loop_and_the_others_alone() {
        #[derive(Default)]
        struct Panics {
            asked: AtomicUsize,
        }
        impl Source for Panics {
            fn poll(&self) -> usize {
                panic!("a source that panics in poll");
            }
            fn has_pending(&self) -> bool {
                // Pending at first (so it is polled, and its window and
                // sleep are asked for), then a panic.
                if self.asked.fetch_add(1, SeqCst) < 2 {
                    return true;
                }
                panic!("a source that panics in has_pending");
            }
            fn spin_window(&self) -> Duration {
                panic!("a source that panics in spin_window");
            }
            fn max_sleep(&self) -> Duration {
                panic!("a source that panics in max_sleep");
            }
            fn shutdown(&self) {
                panic!("a source that panics in shutdown");
            }
        }
        /// Completes one operation on its second poll.
        #[derive(Default)]
        struct Works {
            polls: AtomicUsize,
        }
        impl Source for Works {
            fn poll(&self) -> usize {
                usize::from(self.polls.fetch_add(1, SeqCst) == 1)
            }
            fn has_pending(&self) -> bool {
                self.polls.load(SeqCst) < 2
            }
        }
        let mut driver = Driver::new().expect("a driver");
        let panics = Arc::new(Panics::default());
        let works = Arc::new(Works::default());
        let a = driver.handle().register_source(panics.clone());
        let b = driver.handle().register_source(works.clone());
        for _ in 0..4 {
            driver.turn(Some(Duration::from_millis(1)));
        }
        assert!(
            panics.asked.load(SeqCst) > 2,
            "has_pending was not asked after it panicked"
        );
        assert_eq!(
            works.polls.load(SeqCst),
            2,
            "the source beside the panicking one was not polled to its end"
        );
        let metrics = driver.handle().metrics();
        assert_eq!(metrics.sources[1].completed, 1);
        drop((a, b));
        drop(driver);
    }

    /// Runs `f` on a thread of its own and fails if it has not returned
    /// within 5 s (a relock of one of the reactor's mutexes on one thread
    /// deadlocks it).
    fn within_5_s(what: &str, f: impl FnOnce() + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            f();
            done.send(()).unwrap();
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(5)).is_ok(),
            "{what}: the reactor called a source under one of its locks (deadlock)"
        );
    }

    /// A source with nothing to do.
    struct Idle;
    impl Source for Idle {
        fn poll(&self) -> usize {
            0
        }
        fn has_pending(&self) -> bool {
            false
        }
    }

    /// Counts the loop's questions; always pending, with a spin window
    /// (so every turn spins) unless `window` is zero.
    struct Counted {
        window: Duration,
        has_pending: AtomicUsize,
        spin_window: AtomicUsize,
        polls: AtomicUsize,
        /// Called in the first `has_pending` (then cleared).
        meddle: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    }
    impl Counted {
        fn new(window: Duration) -> Arc<Counted> {
            Arc::new(Counted {
                window,
                has_pending: AtomicUsize::new(0),
                spin_window: AtomicUsize::new(0),
                polls: AtomicUsize::new(0),
                meddle: Mutex::new(None),
            })
        }
    }
    impl Source for Counted {
        fn poll(&self) -> usize {
            self.polls.fetch_add(1, SeqCst);
            0
        }
        fn has_pending(&self) -> bool {
            self.has_pending.fetch_add(1, SeqCst);
            let meddle = lock(&self.meddle).take();
            if let Some(meddle) = meddle {
                meddle();
            }
            true
        }
        fn spin_window(&self) -> Duration {
            self.spin_window.fetch_add(1, SeqCst);
            self.window
        }
    }

    /// `Sources::max_wait` and `poll_pending`: a turn that a source spins
    /// reads each source's `spin_window` once (step 1), and asks
    /// `has_pending` in step 1 and again before its poll (step 6).
    #[test]
    fn a_spinning_turn_reads_each_window_once_and_asks_before_each_poll() {
        let mut driver = Driver::new().expect("a driver");
        let source = Counted::new(Duration::from_secs(60));
        let _registration = driver.handle().register_source(source.clone());
        for turn in 1..=3 {
            driver.turn(Some(Duration::from_secs(5)));
            assert_eq!(source.polls.load(SeqCst), turn, "polled every turn");
            assert_eq!(source.has_pending.load(SeqCst), 2 * turn, "asked in steps 1 and 6");
            assert_eq!(source.spin_window.load(SeqCst), turn, "its window read once per turn");
        }
    }

    /// A source removed between a spinning turn's steps (here by another
    /// source's `has_pending`, in step 1) is not polled in step 6, and one
    /// added then is: step 6 copies the list again when it has moved.
    #[test]
    fn a_spinning_turn_polls_the_list_as_it_is_after_its_wait() {
        let mut driver = Driver::new().expect("a driver");
        let removed = Counted::new(Duration::from_secs(60));
        let added = Counted::new(Duration::from_secs(60));
        let meddler = Counted::new(Duration::from_secs(60));
        let _meddler = driver.handle().register_source(meddler.clone());
        let removed_registration = driver.handle().register_source(removed.clone());
        let handle = driver.handle().clone();
        let added_source = added.clone();
        let added_registration = Arc::new(Mutex::new(None));
        let keep = added_registration.clone();
        *lock(&meddler.meddle) = Some(Box::new(move || {
            drop(removed_registration);
            *lock(&keep) = Some(handle.register_source(added_source));
        }));
        driver.turn(Some(Duration::from_secs(5)));
        assert_eq!(meddler.polls.load(SeqCst), 1);
        assert_eq!(removed.polls.load(SeqCst), 0, "removed after step 1: not polled");
        assert_eq!(added.polls.load(SeqCst), 1, "added after step 1: polled in step 6");
        assert!(lock(&added_registration).is_some());
    }

    /// A source that said it had work in step 1 and whose work ended
    /// before step 6 (a job delivered in step 5, as a done callback would)
    /// is not polled: step 6 asks again.
    #[test]
    fn a_source_whose_work_ended_between_the_steps_is_not_polled() {
        struct Ends {
            polls: AtomicUsize,
            done: std::sync::atomic::AtomicBool,
        }
        impl Source for Ends {
            fn poll(&self) -> usize {
                self.polls.fetch_add(1, SeqCst);
                0
            }
            fn has_pending(&self) -> bool {
                !self.done.load(SeqCst)
            }
            fn spin_window(&self) -> Duration {
                Duration::from_secs(60)
            }
        }
        let mut driver = Driver::new().expect("a driver");
        let ends = Arc::new(Ends {
            polls: AtomicUsize::new(0),
            done: std::sync::atomic::AtomicBool::new(false),
        });
        let _registration = driver.handle().register_source(ends.clone());
        let job = ends.clone();
        driver
            .handle()
            .notifier()
            .call_on_loop(move || job.done.store(true, SeqCst));
        driver.turn(Some(Duration::from_secs(5)));
        assert!(ends.done.load(SeqCst), "the job ran in the turn");
        assert_eq!(ends.polls.load(SeqCst), 0, "polled after has_pending said false");
    }

    /// A turn that sleeps holds no copy of a source while it sleeps: one
    /// removed from another thread meanwhile is dropped by that thread at
    /// once ("Locks" in the module docs).
    #[test]
    fn a_sleeping_turn_holds_no_source() {
        /// Nothing pending: the loop sleeps with no bound from it.
        struct Quiet(std::sync::mpsc::SyncSender<()>);
        impl Source for Quiet {
            fn poll(&self) -> usize {
                0
            }
            fn has_pending(&self) -> bool {
                let _ = self.0.try_send(());
                false
            }
        }
        let mut driver = Driver::new().expect("a driver");
        let (asked, in_step_1) = std::sync::mpsc::sync_channel(1);
        let source = Arc::new(Quiet(asked));
        let weak = Arc::downgrade(&source);
        let registration = driver.handle().register_source(source);
        // A first turn takes the registration's wake-up.
        driver.turn(Some(Duration::ZERO));
        while in_step_1.try_recv().is_ok() {}
        let remover = std::thread::spawn(move || {
            // The loop has asked, and then gone to sleep.
            in_step_1.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(registration);
            weak.upgrade().is_none()
        });
        driver.turn(Some(Duration::from_millis(300)));
        assert!(
            remover.join().unwrap(),
            "the loop held a copy of the source while it slept"
        );
    }

    /// A loop asleep with no source (whose turns read one atomic, not the
    /// list) polls a source registered from another thread at once.
    #[test]
    fn a_source_registered_beside_a_loop_asleep_with_none_is_polled() {
        struct Counts(AtomicUsize);
        impl Source for Counts {
            fn poll(&self) -> usize {
                self.0.fetch_add(1, SeqCst);
                0
            }
            fn has_pending(&self) -> bool {
                true
            }
        }
        let mut driver = Driver::new().expect("a driver");
        let handle = driver.handle().clone();
        let counts = Arc::new(Counts(AtomicUsize::new(0)));
        let polled = counts.clone();
        let turning = std::thread::spawn(move || {
            // Turns of up to 2 s: only the registration's wake ends the
            // first one sooner.
            while polled.0.load(SeqCst) == 0 {
                driver.turn(Some(Duration::from_secs(2)));
            }
            driver
        });
        std::thread::sleep(Duration::from_millis(50));
        let registered_at = Instant::now();
        let registered = handle.register_source(counts.clone());
        let driver = turning.join().unwrap();
        assert!(
            registered_at.elapsed() < Duration::from_secs(1),
            "the source was polled only when the loop's wait ran out"
        );
        drop(registered);
        drop(driver);
    }

    /// "Locks" in the module docs: every method the loop or the metrics
    /// call may use the reactor the source belongs to.
    #[test]
    fn a_source_s_methods_may_read_the_metrics_and_register_sources() {
        struct Meddles {
            handle: crate::Handle,
            calls: AtomicUsize,
        }
        impl Meddles {
            fn meddle(&self, metrics: bool) {
                self.calls.fetch_add(1, SeqCst);
                if metrics {
                    let _ = self.handle.metrics();
                }
                drop(self.handle.register_source(Arc::new(Idle)));
            }
        }
        impl Source for Meddles {
            fn poll(&self) -> usize {
                self.meddle(true);
                0
            }
            fn has_pending(&self) -> bool {
                self.meddle(true);
                true
            }
            fn spin_window(&self) -> Duration {
                self.meddle(true);
                Duration::ZERO
            }
            fn max_sleep(&self) -> Duration {
                self.meddle(true);
                Duration::from_micros(100)
            }
            // The metrics call these two: they must not read the metrics
            // again (that would recurse), but may register sources.
            fn name(&self) -> &'static str {
                self.meddle(false);
                "meddles"
            }
            fn pending(&self) -> usize {
                self.meddle(false);
                1
            }
        }
        within_5_s("a source that uses its reactor", || {
            let mut driver = Driver::new().expect("a driver");
            let meddles = Arc::new(Meddles {
                handle: driver.handle().clone(),
                calls: AtomicUsize::new(0),
            });
            let registered = driver.handle().register_source(meddles.clone());
            for _ in 0..3 {
                driver.turn(Some(Duration::from_millis(1)));
            }
            let metrics = driver.handle().metrics();
            assert_eq!(metrics.sources.len(), 1, "the sources it registered were dropped");
            assert_eq!(metrics.sources[0].name, "meddles");
            assert!(metrics.sources[0].polls >= 3);
            assert!(meddles.calls.load(SeqCst) > 10);
            drop(registered);
        });
    }

    /// "Locks": a source that drops its own registration in one of its
    /// methods is dropped when that call returns, not before (it is still
    /// running) and not later (nothing keeps it).
    #[test]
    fn a_source_that_drops_its_registration_in_its_poll_is_dropped_when_the_poll_returns() {
        struct Leaves {
            registration: Mutex<Option<SourceHandle>>,
            dropped: Arc<AtomicUsize>,
            /// Drops seen right after the registration went, in the poll.
            dropped_in_poll: Arc<AtomicUsize>,
        }
        impl Source for Leaves {
            fn poll(&self) -> usize {
                drop(lock(&self.registration).take());
                // The reactor's copy keeps this source alive until the
                // poll returns.
                self.dropped_in_poll.store(self.dropped.load(SeqCst), SeqCst);
                0
            }
            fn has_pending(&self) -> bool {
                true
            }
        }
        impl Drop for Leaves {
            fn drop(&mut self) {
                self.dropped.fetch_add(1, SeqCst);
            }
        }
        within_5_s("a source that drops its own registration", || {
            let mut driver = Driver::new().expect("a driver");
            let dropped = Arc::new(AtomicUsize::new(0));
            let dropped_in_poll = Arc::new(AtomicUsize::new(usize::MAX));
            let leaves = Arc::new(Leaves {
                registration: Mutex::new(None),
                dropped: dropped.clone(),
                dropped_in_poll: dropped_in_poll.clone(),
            });
            let registration = driver.handle().register_source(leaves.clone());
            *lock(&leaves.registration) = Some(registration);
            let weak = Arc::downgrade(&leaves);
            drop(leaves);
            driver.turn(Some(Duration::from_millis(1)));
            assert_eq!(dropped_in_poll.load(SeqCst), 0, "polled, and alive through its poll");
            assert_eq!(dropped.load(SeqCst), 1, "dropped when its poll returned");
            assert!(weak.upgrade().is_none());
            assert_eq!(driver.handle().metrics().sources.len(), 0);
        });
    }

    /// "Panics": a source whose `Drop` panics, dropped by the loop, does not
    /// unwind the turn; the loop holds the last copy when the source drops
    /// its own registration in its poll, or in `has_pending` (the second
    /// time it is asked: the next turn's, since a spinning turn asks once).
    #[test]
    fn a_source_whose_drop_panics_on_the_loop_leaves_the_turn_alone() {
        struct PanicsOnDrop {
            registration: Mutex<Option<SourceHandle>>,
            leaves_in_poll: bool,
            asked: AtomicUsize,
        }
        impl PanicsOnDrop {
            fn leave(&self) {
                drop(lock(&self.registration).take());
            }
        }
        impl Source for PanicsOnDrop {
            fn poll(&self) -> usize {
                if self.leaves_in_poll {
                    self.leave();
                }
                0
            }
            fn has_pending(&self) -> bool {
                if self.leaves_in_poll || self.asked.fetch_add(1, SeqCst) == 0 {
                    return true;
                }
                self.leave();
                false
            }
        }
        impl Drop for PanicsOnDrop {
            fn drop(&mut self) {
                panic!("a source that panics in its drop");
            }
        }
        for leaves_in_poll in [true, false] {
            let mut driver = Driver::new().expect("a driver");
            let source = Arc::new(PanicsOnDrop {
                registration: Mutex::new(None),
                leaves_in_poll,
                asked: AtomicUsize::new(0),
            });
            let registration = driver.handle().register_source(source.clone());
            *lock(&source.registration) = Some(registration);
            drop(source);
            let turned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                driver.turn(Some(Duration::from_millis(1)));
                if !leaves_in_poll {
                    driver.turn(Some(Duration::from_millis(1)));
                }
            }));
            assert!(
                turned.is_ok(),
                "the source's Drop unwound the turn (left in its poll: {leaves_in_poll})"
            );
            assert_eq!(driver.handle().metrics().sources.len(), 0);
        }
    }

    /// A panic hook that reads the metrics, while a source's `has_pending`
    /// panics on the loop's thread.
    #[test]
    fn a_panic_hook_may_read_the_metrics_while_a_source_panics() {
        struct PanicsOnce(AtomicUsize);
        impl Source for PanicsOnce {
            fn poll(&self) -> usize {
                0
            }
            fn has_pending(&self) -> bool {
                if self.0.fetch_add(1, SeqCst) == 0 {
                    panic!("a source that panics in has_pending");
                }
                false
            }
        }
        let driver = Driver::new().expect("a driver");
        let handle = driver.handle().clone();
        let read = Arc::new(AtomicUsize::new(0));
        let hook_read = read.clone();
        let previous = std::panic::take_hook();
        // The hook reads the metrics on the turning thread only: on a
        // deadlock, the failed assertion's panic must not wait too.
        std::panic::set_hook(Box::new(move |_| {
            if std::thread::current().name() == Some("turning") {
                hook_read.fetch_add(handle.metrics().sources.len(), SeqCst);
            }
        }));
        let source = Arc::new(PanicsOnce(AtomicUsize::new(0)));
        let registered = driver.handle().register_source(source.clone());
        let (done, finished) = std::sync::mpsc::channel();
        let turning = std::thread::Builder::new()
            .name("turning".into())
            .spawn(move || {
                let mut driver = driver;
                driver.turn(Some(Duration::from_millis(1)));
                done.send(()).unwrap();
                driver
            })
            .expect("a thread");
        if finished.recv_timeout(Duration::from_secs(5)).is_err() {
            // The hook stays (taking it back would wait for the stuck
            // panic), and nothing that takes the reactor's locks is
            // dropped.
            std::mem::forget((registered, turning));
            panic!("the panic hook's metrics read waited for a lock the panicking turn held (deadlock)");
        }
        let _ = std::panic::take_hook();
        std::panic::set_hook(previous);
        assert_eq!(read.load(SeqCst), 1, "the hook read one source");
        drop(registered);
        drop(turning.join().unwrap());
    }

    /// A source whose `has_pending` panics only sometimes, with work in
    /// flight: a panic as the loop decides how long to sleep must not let
    /// it sleep as if the source had nothing pending (in a runtime, with no
    /// timer or socket to wake it, for ever), leaving the work unpolled.
    #[test]
    fn a_source_whose_has_pending_panics_once_is_still_polled_soon() {
        /// Pending until its second poll completes its one operation;
        /// `has_pending`'s third call panics.
        #[derive(Default)]
        struct PanicsOnce {
            asked: AtomicUsize,
            polls: AtomicUsize,
        }
        impl Source for PanicsOnce {
            fn poll(&self) -> usize {
                usize::from(self.polls.fetch_add(1, SeqCst) == 1)
            }
            fn has_pending(&self) -> bool {
                if self.asked.fetch_add(1, SeqCst) == 2 {
                    panic!("a source whose has_pending panics once");
                }
                self.polls.load(SeqCst) < 2
            }
            fn spin_window(&self) -> Duration {
                Duration::ZERO
            }
        }
        let mut driver = Driver::new().expect("a driver");
        let source = Arc::new(PanicsOnce::default());
        let registration = driver.handle().register_source(source.clone());
        // The registration's wakeup ends the first turn at once; it polls
        // the source (nothing completes).
        driver.turn(Some(Duration::from_secs(2)));
        assert_eq!(source.polls.load(SeqCst), 1);
        // This turn's step 1 asks `has_pending`, which panics.
        let waited = Instant::now();
        driver.turn(Some(Duration::from_secs(2)));
        let waited = waited.elapsed();
        assert_eq!(source.polls.load(SeqCst), 2);
        assert!(
            waited < Duration::from_secs(1),
            "the loop slept {waited:?} beside a source with work in flight"
        );
        drop(registration);
    }

    /// A turn nested in another on one thread (a reactor turned inside a
    /// source's poll) leaves no reading for the rest of the outer turn:
    /// neither its own, nor the outer one's from before it.
    #[test]
    fn a_nested_turn_leaves_no_reading_to_the_outer_one() {
        #[derive(Default)]
        struct Nests(Mutex<Vec<Option<Instant>>>);
        impl Source for Nests {
            fn poll(&self) -> usize {
                let mut inner = Driver::new().expect("a driver");
                inner.turn(Some(Duration::from_millis(1)));
                lock(&self.0).push(turn_now());
                0
            }
            fn has_pending(&self) -> bool {
                true
            }
        }
        let mut driver = Driver::new().expect("a driver");
        let nests = Arc::new(Nests::default());
        let handle = driver.handle().register_source(nests.clone());
        handle.notify();
        driver.turn(Some(Duration::ZERO));
        assert_eq!(*lock(&nests.0), [None]);
        assert_eq!(turn_now(), None);
        drop(handle);
    }

    /// A job the loop runs before the sources' polls (handed to it with
    /// `call_on_loop`: user code, of any length) leaves the sources a
    /// reading from after it, not one from before it.
    #[test]
    fn a_delivery_that_ran_jobs_refreshes_the_turns_reading() {
        let mut driver = Driver::new().expect("a driver");
        let seen = Arc::new(Seen::default());
        let handle = driver.handle().register_source(seen.clone());
        handle.notify();
        let job_end = Arc::new(Mutex::new(None));
        let end = job_end.clone();
        driver.handle().notifier().call_on_loop(move || {
            std::thread::sleep(Duration::from_millis(2));
            *lock(&end) = Some(Instant::now());
        });
        driver.turn(Some(Duration::ZERO));
        let job_end = lock(&job_end).expect("the job ran in the turn");
        let polled = lock(&seen.calls)
            .iter()
            .find(|(w, _)| *w == "poll")
            .and_then(|(_, at)| *at)
            .expect("polled in the turn");
        assert!(
            polled >= job_end,
            "the source polled after a 2 ms job saw a reading from before the job"
        );
        drop(handle);
    }
}

#[cfg(all(test, unix, not(miri)))]
mod doorbell_tests {
    use super::*;
    use crate::driver::Driver;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// `Source::doorbell` is read once, when the source is registered: a
    /// source that answered differently on a second call would have one
    /// descriptor watched and another unwatched when it goes.
    #[test]
    fn the_doorbell_is_read_once() {
        struct Asked {
            bells: [UnixDatagram; 2],
            asked: AtomicUsize,
        }
        impl Source for Asked {
            fn poll(&self) -> usize {
                0
            }
            fn has_pending(&self) -> bool {
                false
            }
            fn doorbell(&self) -> Option<std::os::fd::RawFd> {
                let n = self.asked.fetch_add(1, SeqCst);
                Some(self.bells[n.min(1)].as_raw_fd())
            }
        }
        let (a, b) = UnixDatagram::pair().expect("a socket pair");
        let source = Arc::new(Asked {
            bells: [a, b],
            asked: AtomicUsize::new(0),
        });
        let driver = Driver::new().expect("a driver");
        let handle = driver.handle().register_source(source.clone());
        assert_eq!(source.asked.load(SeqCst), 1);
        drop(handle);
        assert_eq!(source.asked.load(SeqCst), 1);
    }

    /// A source with work pending that lets the loop sleep an hour between
    /// polls, and a doorbell.
    struct Rung {
        bell: UnixDatagram,
        polls: AtomicUsize,
        rings: AtomicUsize,
        /// Drain one ring per call (as a bounded drain under a flood).
        one_at_a_time: bool,
    }

    impl Source for Rung {
        fn poll(&self) -> usize {
            self.polls.fetch_add(1, SeqCst);
            0
        }
        fn has_pending(&self) -> bool {
            true
        }
        fn spin_window(&self) -> Duration {
            Duration::ZERO
        }
        fn max_sleep(&self) -> Duration {
            Duration::from_secs(3600)
        }
        fn doorbell(&self) -> Option<std::os::fd::RawFd> {
            Some(self.bell.as_raw_fd())
        }
        fn doorbell_rang(&self) -> bool {
            let mut buf = [0u8; 8];
            let mut news = false;
            while let Ok(n) = self.bell.recv(&mut buf) {
                self.rings.fetch_add(1, SeqCst);
                // A ring of 0 is from a stranger.
                news |= n > 0 && buf[0] != 0;
                if self.one_at_a_time {
                    break;
                }
            }
            news
        }
    }

    /// A loop with a registered `Rung` source whose idle polls have backed
    /// off to its hour-long sleep, and the other end of its doorbell.
    fn rung_loop(one_at_a_time: bool) -> (Driver, Arc<Rung>, UnixDatagram, SourceHandle) {
        let mut driver = Driver::new().unwrap();
        let (bell, ringer) = UnixDatagram::pair().unwrap();
        bell.set_nonblocking(true).unwrap();
        let source = Arc::new(Rung {
            bell,
            polls: AtomicUsize::new(0),
            rings: AtomicUsize::new(0),
            one_at_a_time,
        });
        let handle = driver.handle().register_source(source.clone());
        // Idle polls double the sleep up to the source's hour: after these
        // the loop would sleep the whole turn's limit.
        for _ in 0..30 {
            driver.turn(Some(Duration::ZERO));
        }
        (driver, source, ringer, handle)
    }

    /// Rings the bell from another thread 50 ms into a turn allowed to
    /// last a minute, and asserts (`what` otherwise) that the ring ended
    /// the turn; the thread gives the ringer back.
    fn ring_during_a_long_turn(
        driver: &mut Driver,
        ringer: UnixDatagram,
        what: &str,
    ) -> std::thread::JoinHandle<UnixDatagram> {
        let ring = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            ringer.send(&[1]).unwrap();
            ringer
        });
        let start = Instant::now();
        driver.turn(Some(Duration::from_secs(60)));
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        ring
    }

    #[test]
    fn a_ring_wakes_a_loop_that_sleeps_between_polls_and_polls_the_source() {
        let (mut driver, source, ringer, handle) = rung_loop(false);
        let before = source.polls.load(SeqCst);
        // With no doorbell this turn would sleep the source's hour.
        let ring = ring_during_a_long_turn(&mut driver, ringer, "the ring did not wake the loop");
        assert_eq!(source.rings.load(SeqCst), 1, "the source drained its doorbell");
        assert!(
            source.polls.load(SeqCst) > before,
            "the rung source was polled in that turn"
        );
        // A dropped handle takes the doorbell off the poller: a ring wakes
        // nothing any more.
        let ringer = ring.join().unwrap();
        drop(handle);
        ringer.send(&[1]).unwrap();
        driver.turn(Some(Duration::from_millis(20)));
        assert_eq!(
            source.rings.load(SeqCst),
            1,
            "a removed source's doorbell is not watched"
        );
    }

    /// A source may leave rings in its doorbell (a bounded drain, under a
    /// flood): the next ring's arrival still wakes the loop, though the
    /// bell never stopped being readable.
    #[test]
    fn a_ring_wakes_the_loop_even_with_rings_left_in_the_bell() {
        let (mut driver, source, ringer, _handle) = rung_loop(true);
        ringer.send(&[1]).unwrap();
        ringer.send(&[1]).unwrap();
        driver.turn(Some(Duration::from_secs(60)));
        assert_eq!(source.rings.load(SeqCst), 1, "one ring read, one left");
        // Back to sleeping an hour between polls; the ring left behind is
        // no new event.
        for _ in 0..30 {
            driver.turn(Some(Duration::ZERO));
        }
        assert_eq!(source.rings.load(SeqCst), 1);
        let ring = ring_during_a_long_turn(
            &mut driver,
            ringer,
            "a ring into a bell still holding one did not wake the loop",
        );
        assert_eq!(source.rings.load(SeqCst), 2);
        drop(ring.join().unwrap());
    }

    /// Rings the source disowns (`doorbell_rang` false) are drained but
    /// do not restart its spin window: the loop goes on sleeping its long
    /// idle interval instead of polling again at once.
    #[test]
    fn disowned_rings_do_not_restart_the_spin_window() {
        let (mut driver, source, ringer, _handle) = rung_loop(false);
        let slept = |driver: &mut Driver| {
            let start = Instant::now();
            driver.turn(Some(Duration::from_millis(200)));
            start.elapsed()
        };
        ringer.send(&[0]).unwrap();
        driver.turn(Some(Duration::from_secs(60)));
        assert_eq!(source.rings.load(SeqCst), 1, "the stranger's ring was drained");
        assert!(
            slept(&mut driver) >= Duration::from_millis(150),
            "a stranger's ring had the loop poll again at once"
        );
        ringer.send(&[1]).unwrap();
        driver.turn(Some(Duration::from_secs(60)));
        assert_eq!(source.rings.load(SeqCst), 2);
        assert!(
            slept(&mut driver) < Duration::from_millis(100),
            "a trusted ring has the loop poll again soon"
        );
    }
}
