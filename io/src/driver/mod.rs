//! The reactor: one `mio::Poll`, and everything a turn of the loop serves.
//!
//! [`Driver::turn`] is one turn of the loop:
//!
//! 1. Work out until when it may sleep: no later than the caller allows,
//!    than the next timer's exact deadline (or, when other timers fall
//!    due soon after it, up to the timer slack later: one wakeup then
//!    fires them all; [`DEFAULT_TIMER_SLACK`]), or than any pending
//!    [source](crate::source) asks (which may be below a millisecond).
//! 2. Wait in `epoll_wait` / `kevent` until then, or until
//!    [`Unparker::unpark`] writes to the `mio::Waker`. The wait ends at the
//!    exact instant, not the next millisecond: a `timerfd` on Linux, the
//!    timeout itself on kqueue (`deadline.rs`). While a source keeps
//!    the loop spinning (it asked for no sleep at all: an MPI exchange in
//!    full flow), the poller is asked only every
//!    [`POLL_EVENTS_EVERY`]th turn: a system call per turn would cost more
//!    than the source's own check, and an fd event waits a few hundred
//!    nanoseconds more at most.
//!    The turn reads the clock once after the wait (not at all when it
//!    did not wait: its reading from step 1 stands), and steps 3 to 6 use
//!    that reading; sources see it as [`turn_now`](crate::source::turn_now).
//!    It reads it again only after work that may have been long: a
//!    delivery that ran jobs (step 5), a source's poll that completed
//!    something (step 6).
//! 3. Deliver readiness events: each token names a registration (with a
//!    generation tag, so stale events are dropped); the readiness is set and
//!    the tasks waiting in that direction are woken. An event on the signal
//!    self-pipe's token drains the pipe and wakes the listeners of the
//!    signals delivered (see [`crate::signal`]).
//! 4. Fire the timers that are due, in deadline order. (Another thread may
//!    have fired some already: while the loop's thread waits past a
//!    deadline, for its wakeup or for a CPU, or is stuck in a turn, threads
//!    beside the loop fire overdue timers themselves;
//!    [`Handle::fire_overdue_timers`].)
//! 5. Deliver completions queued by other threads (the
//!    [`Notifier`]).
//! 6. Poll the sources that have work pending. A source whose doorbell
//!    rang in step 3 ([`Source::doorbell`]) has had it drained and its
//!    spin window restarted, so it is polled in this very turn.
//!
//! [`Source::doorbell`]: crate::source::Source::doorbell
//!
//! Wakers are collected while locks are held and woken after they are
//! released.
//!
//! The [`Driver`] (the poller and its event buffer) belongs to whichever
//! thread runs the loop; the [`Handle`] (registrations, timers, sources) is
//! shared by every thread that creates sockets or timers.

pub(crate) mod context;
mod deadline;
mod metrics;
pub(crate) mod registration;
pub(crate) mod scheduled_io;

use self::deadline::DeadlineTimer;
#[cfg(unix)]
use self::registration::{DOORBELL_TOKEN, SIGNAL_TOKEN};
use self::registration::{Registrations, TIMER_TOKEN, WAKER_TOKEN};
use crate::loom::{RwLock, RwLockReadGuard, RwLockWriteGuard, read, write};
use crate::source::{Notifier, Sources, TurnClock};
use crate::time::Timers;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::task::Waker;
use std::time::{Duration, Instant};

pub use self::context::{EnterGuard, TryCurrentError};
pub use self::metrics::{EVENTS_PER_TURN_BUCKETS, ReactorMetrics, SourceMetrics};
pub use self::scheduled_io::{Direction, Readiness};

/// The reactor's loop state; owned by the thread that runs the loop.
pub struct Driver {
    poll: mio::Poll,
    events: mio::Events,
    handle: Handle,
    /// Reused between turns, so a turn allocates nothing.
    wakers: Vec<Waker>,
    sources: crate::source::Listed,
    /// Turns in a row that a spinning source kept from sleeping (step 2).
    spinning_turns: u32,
    /// Makes the wait of step 2 end at an exact instant.
    deadline: DeadlineTimer,
    /// How late a sleeping turn may wake for a timer to fire others with it
    /// ([`DEFAULT_TIMER_SLACK`]).
    timer_slack: Duration,
}

/// How much later than the next timer's deadline a turn that sleeps may
/// wake, to fire the timers due within that span in one wakeup (step 1 of
/// [`Driver::turn`]): a server with a thousand timeouts spread over 20 ms
/// has one due every 20 µs, and a wakeup each (an `epoll_wait` return,
/// context switches: tens of microseconds of CPU on a virtual machine) cost
/// more CPU than the work the timers woke. A timer with no other due within
/// the slack is woken for at its deadline, and no sleep ever ends before
/// its deadline. Linux's default timer slack for a thread's own sleeps is
/// the same 50 µs. [`Driver::set_timer_slack`] changes it
/// (`Duration::ZERO`: a wakeup at every deadline).
pub const DEFAULT_TIMER_SLACK: Duration = Duration::from_micros(50);

/// While sources keep the loop spinning, the OS poller is asked for events
/// only every this many turns (step 2 of [`Driver::turn`]).
pub const POLL_EVENTS_EVERY: u32 = 8;

/// A cloneable reference to a reactor, for registering sockets and timers
/// from any thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) registry: mio::Registry,
    registrations: RwLock<Registrations>,
    waker: Arc<mio::Waker>,
    pub(crate) timers: Timers,
    pub(crate) sources: Sources,
    pub(crate) notifier: Notifier,
    /// This reactor's watch on the signal self-pipe, made with its first
    /// signal listener.
    #[cfg(unix)]
    pub(crate) signals: crate::signal::ReactorSignals,
    shutdown: AtomicBool,
    /// Runs blocking jobs (name lookups) for this reactor's tasks: the
    /// runtime's blocking pool, once the runtime that owns the reactor
    /// says so ([`Handle::set_blocking_runner`]). Emptied at shutdown: the
    /// runner holds the runtime, which holds this reactor.
    blocking: crate::loom::Mutex<Option<Arc<BlockingRunner>>>,
    /// What the turns counted (`metrics.rs`).
    counters: metrics::DriverCounters,
}

/// Runs a blocking job on some thread that is not a loop's; see
/// [`Handle::set_blocking_runner`].
pub type BlockingRunner = Box<dyn Fn(Box<dyn FnOnce() + Send>) + Send + Sync>;

/// Wakes a reactor blocked in [`Driver::turn`], from any thread.
#[derive(Clone)]
pub struct Unparker {
    waker: Arc<mio::Waker>,
}

/// Events fetched per `epoll_wait`; more wait for the next turn.
const EVENTS_CAPACITY: usize = 1024;

impl Driver {
    /// A reactor on a new OS poller.
    ///
    /// # Errors
    ///
    /// If the OS refuses a poller or its wakeup descriptor (for example when
    /// the process is out of file descriptors).
    pub fn new() -> io::Result<Driver> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER_TOKEN)?);
        let deadline = DeadlineTimer::new(poll.registry(), TIMER_TOKEN)?;
        let handle = Handle {
            inner: Arc::new(Inner {
                registry,
                registrations: RwLock::new(Registrations::default()),
                notifier: {
                    let waker = waker.clone();
                    // Fails only if the wakeup counter would overflow,
                    // which means a wakeup is already pending.
                    Notifier::new(move || drop(waker.wake()))
                },
                waker,
                timers: Timers::new(Instant::now()),
                sources: Sources::default(),
                #[cfg(unix)]
                signals: Default::default(),
                shutdown: AtomicBool::new(false),
                blocking: crate::loom::Mutex::new(None),
                counters: Default::default(),
            }),
        };
        Ok(Driver {
            poll,
            events: mio::Events::with_capacity(EVENTS_CAPACITY),
            handle,
            wakers: Vec::with_capacity(64),
            sources: crate::source::Listed::default(),
            spinning_turns: 0,
            deadline,
            timer_slack: DEFAULT_TIMER_SLACK,
        })
    }

    /// How much later than a timer's deadline a turn that sleeps may wake
    /// for it, to fire the timers due within that span in one wakeup
    /// (default [`DEFAULT_TIMER_SLACK`]; `Duration::ZERO` wakes at every
    /// deadline). A timer with no other due within the slack is always
    /// woken for at its deadline.
    pub fn set_timer_slack(&mut self, slack: Duration) {
        self.timer_slack = slack;
    }

    /// The handle that registers sockets, timers and sources with this
    /// reactor.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Wakes this reactor from any thread.
    pub fn unparker(&self) -> Unparker {
        self.handle.unparker()
    }

    /// Runs one turn of the loop (see the module docs), blocking at most
    /// `max_wait` (`None`: until there is something to do;
    /// `Some(Duration::ZERO)`: not at all).
    pub fn turn(&mut self, max_wait: Option<Duration>) {
        let inner = self.handle.inner.clone();
        let now = Instant::now();
        let _clock = TurnClock::start(now);
        // Step 1: the earliest instant anything asks to be looked at.
        let mut until: Option<Instant> = max_wait.map(|w| crate::time::after(now, w));
        let mut bound = |at: Option<Instant>| {
            if let Some(at) = at {
                until = Some(until.map_or(at, |u| u.min(at)));
            }
        };
        let source_wait = inner.sources.max_wait(now, &mut self.sources);
        let notified = inner.notifier.has_pending();
        // A turn that may sleep wakes for the next timer up to
        // `timer_slack` late, so that timers due close together cost one
        // wakeup; one that will not sleep needs no such search.
        let may_sleep = max_wait != Some(Duration::ZERO) && source_wait != Some(Duration::ZERO) && !notified;
        let slack = if may_sleep { self.timer_slack } else { Duration::ZERO };
        let (next_timer, timer_wake) = inner.timers.next_deadline_and_wake(slack);
        bound(timer_wake);
        bound(source_wait.map(|w| now + w));
        if notified {
            bound(Some(now));
        }

        // Step 2, skipped on most turns while a source spins the loop.
        let spinning = source_wait == Some(Duration::ZERO);
        self.spinning_turns = if spinning {
            self.spinning_turns.wrapping_add(1)
        } else {
            0
        };
        // The turn's one clock reading after the wait: `now` again when the
        // turn did not wait (spinning, or nothing to wait for), since a
        // clock reading (tens of nanoseconds on a virtual machine) is a
        // good part of a spinning turn; a fresh one after a wait that may
        // have blocked.
        let mut after = now;
        if spinning && self.spinning_turns % POLL_EVENTS_EVERY != 0 {
            self.events.clear();
        } else {
            let timeout = self.deadline.arm(until, now);
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                // A signal arrived: the turn simply ends early.
                Err(err) if err.kind() == io::ErrorKind::Interrupted => self.events.clear(),
                // epoll_wait/kevent only fail on a broken poller (EBADF,
                // EINVAL): nothing the loop could do next would work.
                Err(err) => panic!("Weft's reactor could not wait for events: {err}"),
            }
            if timeout != Some(Duration::ZERO) {
                after = Instant::now();
                TurnClock::set(after);
            }
        }

        // The loop looks at the timers again before its next wait.
        inner.timers.loop_awake();

        // A timeline sees the turn from the moment the wait ended.
        let recording = crate::observe::recording();
        let woke = after;

        #[cfg(unix)]
        let mut signalled = false;
        #[cfg(unix)]
        let mut rang = false;
        let mut events = 0;
        {
            let registrations = inner.registrations();
            for event in self.events.iter() {
                if event.token() == WAKER_TOKEN {
                    continue;
                }
                if event.token() == TIMER_TOKEN {
                    self.deadline.fired();
                    continue;
                }
                #[cfg(unix)]
                if event.token() == SIGNAL_TOKEN {
                    signalled = true;
                    continue;
                }
                #[cfg(unix)]
                if event.token() == DOORBELL_TOKEN {
                    rang = true;
                    continue;
                }
                if let Some(slot) = registrations.get(event.token()) {
                    events += 1;
                    slot.state.set_readiness(Readiness::from_event(event), &mut self.wakers);
                }
            }
        }
        #[cfg(unix)]
        if signalled {
            inner.signals.deliver(&mut self.wakers);
        }
        #[cfg(unix)]
        if rang {
            inner.sources.rang(after);
        }
        self.wake_all();

        // A timer registered since step 1 with an earlier deadline woke the
        // loop (`Timers::register`): the next turn fires it.
        if next_timer.is_some_and(|next| next <= after) {
            inner.timers.fire(after, &mut self.wakers);
        }
        let timers = self.wakers.len();
        if recording && timers > 0 {
            crate::observe::event(crate::observe::Event::TimersFired { count: timers as u32 });
        }
        self.wake_all();

        let completions = inner.notifier.deliver();
        if completions > 0 {
            // The jobs delivered (done callbacks, any code handed to the
            // loop) may have run for long: the sources are polled, and
            // their empty polls dated, with a reading from after them.
            after = Instant::now();
            TurnClock::set(after);
        }
        let sources = inner.sources.poll_pending(&mut self.sources, after);
        inner.counters.turn(events, timers, completions);
        if recording {
            crate::observe::event(crate::observe::Event::Turn {
                start: woke,
                end: Instant::now(),
                events: events as u32,
                timers: timers as u32,
                completions: completions as u32,
                sources: sources as u32,
            });
        }
    }

    /// Wakes every collected waker. A waker that panics (a user's own:
    /// Weft's never do) costs no other task its wake: the panic is
    /// contained here, as a source's is (the panic hook has reported it).
    fn wake_all(&mut self) {
        // Most spinning turns wake nothing: skip the drain's setup.
        if self.wakers.is_empty() {
            return;
        }
        crate::source::complete_each(self.wakers.drain(..), std::task::Waker::wake);
    }

    /// Runs `future` to completion on this thread, turning the reactor
    /// whenever it is pending: a complete single-future runtime, for
    /// programs and tests that need sockets and timers but no tasks. The
    /// reactor is current (see [`Handle::current`]) while it runs.
    pub fn block_on<F: std::future::Future>(&mut self, future: F) -> F::Output {
        struct Unpark(Unparker);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
            fn wake_by_ref(self: &Arc<Self>) {
                self.0.unpark();
            }
        }
        let _enter = self.handle.enter();
        let waker = Waker::from(Arc::new(Unpark(self.unparker())));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            self.turn(None);
        }
    }

    /// Shuts the reactor down: every registered I/O object fails from now
    /// on (with an error saying why), pending timers wake their tasks
    /// (which then panic, naming the cause), queued completions are
    /// delivered, later completions are delivered on the thread that
    /// completes them, every source is told ([`Source::shutdown`]) and
    /// dropped, and this reactor's signal listeners are woken and report the
    /// end of their stream.
    ///
    /// [`Source::shutdown`]: crate::source::Source::shutdown
    pub fn shutdown(&mut self) {
        let inner = self.handle.inner.clone();
        if inner.shutdown.swap(true, AcqRel) {
            return;
        }
        for slot in inner.registrations().iter() {
            slot.state.shutdown(&mut self.wakers);
        }
        #[cfg(unix)]
        inner.signals.shutdown(self.handle.id(), &mut self.wakers);
        self.wake_all();
        inner.timers.shutdown(&mut self.wakers);
        self.wake_all();
        inner.notifier.close();
        inner.sources.shutdown();
        drop(crate::loom::lock(&inner.blocking).take());
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Handle {
    /// Wakes the reactor from any thread.
    pub fn unparker(&self) -> Unparker {
        Unparker {
            waker: self.inner.waker.clone(),
        }
    }

    /// True once the reactor has shut down.
    pub fn is_shutdown(&self) -> bool {
        self.inner.is_shutdown()
    }

    /// The completion notifier of this reactor: how other threads hand
    /// results to the loop.
    pub fn notifier(&self) -> &Notifier {
        &self.inner.notifier
    }

    /// Says where this reactor's blocking jobs (the name lookups of
    /// [`crate::net`]) run: the runtime that composes the reactor with a
    /// thread pool hands them to its blocking pool. Without it (or once
    /// the reactor has shut down), each job runs on a thread of its own.
    pub fn set_blocking_runner(&self, runner: BlockingRunner) {
        if !self.is_shutdown() {
            *crate::loom::lock(&self.inner.blocking) = Some(Arc::new(runner));
        }
    }

    /// Runs `job` off the loop: on the blocking runner if one is set, else
    /// on a new thread.
    pub(crate) fn run_blocking(&self, job: Box<dyn FnOnce() + Send>) {
        let runner = crate::loom::lock(&self.inner.blocking).clone();
        match runner {
            Some(run) => run(job),
            None => {
                // A job that cannot start is dropped, and with it whatever
                // completes it: its waiter hears so.
                let _ = std::thread::Builder::new().name("weft-blocking".into()).spawn(job);
            }
        }
    }

    /// How many I/O objects are registered.
    pub fn registrations(&self) -> usize {
        self.inner.registrations().len()
    }

    /// How many timers wait in this reactor's wheel (cancelled ones leave at
    /// once; a completed one when it fires).
    pub fn pending_timers(&self) -> usize {
        self.inner.timers.len()
    }

    /// A snapshot of the reactor's counters and state (see
    /// [`ReactorMetrics`]).
    pub fn metrics(&self) -> ReactorMetrics {
        let mut metrics = ReactorMetrics {
            timers_pending: self.pending_timers(),
            timers_fired_off_loop: self.inner.timers.fired_off_loop(),
            registrations: self.registrations(),
            sources: self.inner.sources.metrics(),
            ..ReactorMetrics::default()
        };
        self.inner.counters.fill(&mut metrics);
        metrics
    }

    /// Fires, on the calling thread, the timers already due whose loop is
    /// waiting past them, and wakes their tasks; returns how many it woke.
    ///
    /// The loop fires timers when it wakes for them; but the thread that
    /// waits in it may be slow to run again after its wakeup, when it
    /// shares a CPU with a busy thread (the OS runs it only when that
    /// thread's time slice ends, milliseconds later), or it may be stuck in
    /// the middle of a turn. Other threads beside the loop (a multi-thread
    /// runtime's workers: a busy one now and then, and the one that sleeps
    /// beside the loop as its standby) call this, so that such a timer
    /// fires on them instead. A timer due while the loop's thread sleeps
    /// within the timer slack of it fires here too, before the loop wakes.
    ///
    /// Cheap when there is nothing to do: an atomic load while the loop
    /// sleeps with no timer pending, a clock reading while it sleeps until
    /// a deadline still ahead, and otherwise (the loop's thread is awake,
    /// or nobody waits in the loop) a lock taken without waiting and a
    /// cached deadline; it never waits for a lock (a thread firing timers
    /// already is left to it). Timers fired here are counted in
    /// [`ReactorMetrics::timers_fired_off_loop`].
    ///
    /// ```
    /// let driver = weft_io::Driver::new()?;
    /// // Nothing is due: nothing to fire.
    /// assert_eq!(driver.handle().fire_overdue_timers(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fire_overdue_timers(&self) -> usize {
        let mut wakers = Vec::new();
        self.inner.timers.fire_overdue(&mut wakers);
        let woken = wakers.len();
        if woken > 0 && crate::observe::recording() {
            // On this thread's track of a timeline, as the loop's firings
            // are on the loop thread's.
            crate::observe::event(crate::observe::Event::TimersFired { count: woken as u32 });
        }
        crate::source::complete_each(wakers, Waker::wake);
        woken
    }

    /// The deadline of the next timer while no thread sleeps in the loop
    /// armed to wake for it: the loop's thread is in a turn (and may be
    /// descheduled there, or stuck in a source's poll), or no thread turns
    /// the loop. `None` while a thread sleeps in the loop until its next
    /// timer (the kernel wakes it), or no timer is pending.
    ///
    /// A thread that sleeps beside the loop (a multi-thread runtime's
    /// standby) wakes shortly after this instant and calls
    /// [`fire_overdue_timers`](Self::fire_overdue_timers), so that a loop
    /// thread that cannot run does not hold the timer up for long.
    ///
    /// ```
    /// let mut driver = weft_io::Driver::new()?;
    /// let handle = driver.handle().clone();
    /// let _enter = handle.enter();
    /// let sleep = weft_io::time::sleep(std::time::Duration::from_secs(60));
    /// let mut sleep = std::pin::pin!(sleep);
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// assert!(sleep.as_mut().poll(&mut cx).is_pending());
    /// // After a turn, until the next one waits, nobody sleeps armed for
    /// // the timer.
    /// driver.turn(Some(std::time::Duration::ZERO));
    /// assert!(handle.unwatched_timer().is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unwatched_timer(&self) -> Option<Instant> {
        self.inner.timers.unwatched()
    }

    /// The deadline of the next timer (or an instant before it, when the
    /// loop must re-file far timers then), whether or not a thread sleeps
    /// in the loop armed for it, `None` while no timer is pending; and a
    /// promise until [`unwatch_timers`](Self::unwatch_timers): the first
    /// timer then registered with a deadline before the returned one (any
    /// timer, when it is `None`), by any thread, wakes `waker`, once. A
    /// registration is either in the returned deadline or wakes `waker`:
    /// the two are decided under the timers' lock. A later call replaces
    /// the watch.
    ///
    /// A thread that sleeps beside the loop with no timeout of its own (a
    /// multi-thread runtime's untimed standby) sleeps until shortly after
    /// the returned deadline, and is woken by a timer registered meanwhile
    /// for an earlier one: by a thread that is not one of the runtime's
    /// workers (a `block_on` caller, a task of another runtime), which
    /// wakes only the loop, or by a worker that then sleeps untimed itself.
    /// The loop's thread may be stuck in a turn when the timer comes due,
    /// and then the woken sleeper fires it
    /// ([`fire_overdue_timers`](Self::fire_overdue_timers)).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::task::{Wake, Waker};
    ///
    /// struct Flag(AtomicBool);
    /// impl Wake for Flag {
    ///     fn wake(self: Arc<Self>) {
    ///         self.0.store(true, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// let driver = weft_io::Driver::new()?;
    /// let handle = driver.handle().clone();
    /// let _enter = handle.enter();
    /// let flag = Arc::new(Flag(AtomicBool::new(false)));
    /// assert_eq!(handle.watch_timers(&Waker::from(flag.clone())), None);
    /// let sleep = weft_io::time::sleep(std::time::Duration::from_millis(10));
    /// let mut sleep = std::pin::pin!(sleep);
    /// let mut cx = std::task::Context::from_waker(Waker::noop());
    /// assert!(sleep.as_mut().poll(&mut cx).is_pending());
    /// assert!(flag.0.load(Ordering::SeqCst), "the registration woke the watcher");
    /// handle.unwatch_timers();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn watch_timers(&self, waker: &Waker) -> Option<Instant> {
        self.inner.timers.watch(waker)
    }

    /// Ends a [`watch_timers`](Self::watch_timers): no registration wakes
    /// its waker any more.
    pub fn unwatch_timers(&self) {
        self.inner.timers.unwatch();
    }

    /// A number that names this reactor among the live ones: two handles
    /// of one reactor have the same id, and no other live reactor has it
    /// (it is the address of the reactor's shared state, which a handle
    /// keeps alive).
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// True if both handles refer to the same reactor.
    pub fn ptr_eq(&self, other: &Handle) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Inner {
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Acquire)
    }

    fn registrations(&self) -> RwLockReadGuard<'_, Registrations> {
        read(&self.registrations)
    }

    pub(crate) fn registrations_mut(&self) -> RwLockWriteGuard<'_, Registrations> {
        write(&self.registrations)
    }

    pub(crate) fn wake(&self) {
        // Fails only if the wakeup counter would overflow, which means a
        // wakeup is already pending.
        let _ = self.waker.wake();
    }
}

impl Unparker {
    /// Makes the reactor's current (or next) turn return at once.
    pub fn unpark(&self) {
        let _ = self.waker.wake();
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("registrations", &self.registrations())
            .field("timers", &self.inner.timers)
            .field("shutdown", &self.is_shutdown())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unparker").finish_non_exhaustive()
    }
}
