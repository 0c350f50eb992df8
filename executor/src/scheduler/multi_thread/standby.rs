//! The standby word: who may enter the shared driver, and who watches over
//! it while the worker that left it runs tasks.
//!
//! One worker at a time waits in the driver (the reactor: `epoll_wait`).
//! When events come, it leaves the driver to run the tasks they woke, and a
//! task may then block its thread (a blocking call, a long computation). If
//! every other worker slept untimed on its condition variable, nobody would
//! watch the sockets and timers of the runtime until that task returned
//! (tokio#4730). So a worker that leaves the driver to run tasks wakes a
//! sleeping worker to take its place (a *hand-off*), unless one already
//! watches: the *standby*, a sleeping worker that sleeps with a short
//! timeout ([`WATCH_INTERVAL`]) and, on waking, enters the driver if it is
//! free. Which is cheaper depends on how often events come: a hand-off costs
//! a wakeup per batch of events, a timed standby one per interval. So the
//! standby watches with a timeout only while hand-offs come more often than
//! every [`BUSY_HAND_OFFS`], and then until [`IDLE_WATCHES`] watches in a
//! row found the driver held; otherwise it sleeps untimed, and an idle
//! runtime goes quiet. Either way a worker stuck in a task stalls the
//! sockets and timers of the others for at most about one interval; the
//! tasks it woke last are rescued from its LIFO slot within about two
//! (`lifo.rs`).
//!
//! # The word
//!
//! | bits | meaning |
//! | --- | --- |
//! | `HELD` | a worker is in the driver (from [`enter_or_sleep`] or [`try_enter`] to [`leave`]) |
//! | `UNTIMED` | the standby sleeps with no timeout |
//! | above | the standby's index plus one; zero when there is none |
//!
//! Every change is a read-modify-write of this one word, so the changes are
//! totally ordered and each one sees all earlier ones (acquire and release
//! on a single location: no fence, no second location to race with). That
//! is the whole reason the driver's right of entry lives here rather than in
//! the driver's lock (`SharedDriver` in `park.rs`, taken only by a worker
//! that holds `HELD`, so it never waits).
//!
//! # Rules
//!
//! 1. **No sleep beside a free driver.** A parking worker enters the driver
//!    if it is free, and otherwise decides how to sleep, in one
//!    read-modify-write ([`enter_or_sleep`]): a worker never goes to sleep
//!    having seen the driver free.
//! 2. **One standby, timed.** A worker that sleeps because the driver is held
//!    takes the standby role if nobody has it, and sleeps at most
//!    [`WATCH_INTERVAL`]; on waking it goes through rule 1 again. The other
//!    sleepers sleep untimed.
//! 3. **Quiet when idle.** After [`IDLE_WATCHES`] timed sleeps in a row that
//!    found the driver held, the standby sleeps untimed, marking `UNTIMED`
//!    in the same read-modify-write in which it sees `HELD`. So `UNTIMED` is
//!    only ever set while some worker is in the driver. A worker starts
//!    that count (when it parks, and when a hand-off wakes it) from zero
//!    only while workers leave the driver to run tasks more often than
//!    every [`BUSY_HAND_OFFS`]; otherwise from [`IDLE_WATCHES`], so it sleeps
//!    untimed at once. (The count only sets the cost, never the safety:
//!    rule 4 covers an untimed standby.)
//! 4. **Hand-off.** A worker that leaves its parker to run code (tasks it
//!    found, a search it was picked for, shutdown) after having held the
//!    driver or the standby role calls [`hand_off`]: it gives up the role if
//!    it has it and, if the driver is free and no *timed* standby watches,
//!    wakes the untimed standby (clearing `UNTIMED` in the same
//!    read-modify-write, so one hand-off wakes it, not several) or, with no
//!    standby at all, one sleeping worker. The woken worker goes round its
//!    parker, where rule 1 puts it in the driver or rule 2 makes it a timed
//!    standby. A worker that leaves the driver and goes straight back to
//!    rule 1 needs no hand-off: it is itself about to watch.
//! 5. **A standby that enters gives up the role**, in the same
//!    read-modify-write, so a worker that parks meanwhile can take it.
//! 6. **A vacant role is filled.** The worker that would take it when it
//!    parks may be blocked in a task (the one whose leaving made the
//!    standby enter), while a third sleeps untimed, as no standby. So the
//!    holder, coming back from the driver while other workers run tasks
//!    (at least every [`WATCH_INTERVAL`]), wakes one sleeper once it has
//!    seen the role vacant beside it for half an interval; going round its
//!    parker, the sleeper takes it by rule 2. (A shorter vacancy is left to
//!    the next worker that parks.) The role matters for the timers of a
//!    holder stuck in a later turn ("Timers" below), not for who watches
//!    the driver.
//!
//! # Why a worker never sleeps untimed beside an unwatched driver
//!
//! The claim: whenever a worker sleeps untimed, either `HELD` is set, or a
//! timed standby sleeps, or a worker is on its way round its parker (woken
//! by a hand-off, back from a timed sleep, or just out of the driver), which
//! rule 1 will put in the driver or in a timed watch.
//!
//! - A worker decides to sleep untimed only while `HELD` is set (rules 1 and
//!   3; a non-standby sleeps untimed only beside a held driver too, by rule
//!   1). So at that moment the claim holds through `HELD`.
//! - `HELD` is cleared only by [`leave`]. Its caller is then on its way
//!   round its parker (claim holds), until it either goes back through rule
//!   1 (and enters, or sleeps beside a driver someone else entered), or
//!   leaves its parker, and then it hands off (rule 4).
//! - A timed standby stops being one by entering (then `HELD` is set), by
//!   sleeping untimed (only while `HELD`), or by leaving its parker, and then
//!   it hands off.
//! - A hand-off that finds the driver free and no timed standby wakes a
//!   sleeper, which is then on its way round its parker. It reads every
//!   earlier change of the word (rule 0 of this file: one location), so it
//!   cannot miss an untimed standby; and the idle list it picks a sleeper
//!   from is updated before a worker's first read-modify-write of the word
//!   in a park, so it cannot miss a sleeper either.
//!
//! # Timers
//!
//! The rules above keep the driver watched while its holder is away
//! running tasks. A holder can also be held up *inside* the driver: in the
//! middle of a turn, the OS may deschedule its thread (a CPU shared with a
//! busy thread, another process; on a loaded machine, for milliseconds),
//! or a source's poll may block it. A thread asleep in the kernel for its
//! next timer is woken by the kernel; one in a turn is not, and the timers
//! that come due meanwhile would wait for it. So other workers fire
//! overdue timers themselves (`Unpark::run_overdue`, which takes the
//! timers' own lock, not the driver): a worker running tasks in its
//! periodic maintenance, when the driver is held; and the standby, after
//! each of its sleeps. The standby sleeps no longer than [`OVERDUE_GRACE`]
//! past the next timer's deadline when the holder is in a turn as it goes
//! to sleep (`Unpark::overdue_at`), and, when it sleeps untimed (rule 3),
//! whatever the holder does (`Unpark::watch_due`): a holder asleep in the
//! kernel armed for the timer as the standby looked may wake for
//! something else before the deadline and be stuck in that turn when it
//! comes, and nothing would wake an untimed standby for it. For the same
//! reason an untimed standby is woken by a timer registered while it
//! sleeps, for a deadline before the one it saw (or any timer, when none
//! was pending): the registering thread wakes only the loop, and may be
//! no worker at all (a `block_on` caller, a task of another runtime) or a
//! worker that then sleeps untimed too; woken, the standby goes round its
//! parker and sleeps again until just past the new deadline. A timed
//! standby needs neither: it fires overdue timers after each watch. So an
//! idle runtime with timers pending may pay one more wakeup per timer
//! deadline (the standby's, beside the holder's), and one per timer
//! registered ahead of all the pending ones; one with no timer pending
//! stays quiet. None of this changes who may enter the driver.
//!
//! The loom model below runs this protocol with the idle counts, the
//! parkers, the driver's lock and a wake from outside.
//!
//! [`enter_or_sleep`]: Standby::enter_or_sleep
//! [`try_enter`]: Standby::try_enter
//! [`leave`]: Standby::leave
//! [`hand_off`]: Standby::hand_off

use crate::loom::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// How long the standby sleeps before it checks the driver.
pub(super) const WATCH_INTERVAL: Duration = Duration::from_millis(2);

/// How long after a timer's deadline the standby wakes to fire it, when
/// the driver's holder was in a turn as the standby went to sleep (see
/// "Timers" above). A holder that goes on to sleep in the kernel for the
/// timer fires it within the timer slack (50 µs by default), so the
/// standby, waking this much later, finds it fired in the common case.
pub(super) const OVERDUE_GRACE: Duration = Duration::from_micros(500);

/// Timed sleeps in a row, finding the driver held, before the standby
/// sleeps untimed (rule 3).
pub(super) const IDLE_WATCHES: u32 = 16;

/// While workers leave the driver to run tasks more often than this, the
/// standby watches with a timeout (a hand-off per leave would cost more
/// than a watch per interval); when leaves are further apart it sleeps
/// untimed at once (rule 3).
pub(super) const BUSY_HAND_OFFS: Duration = Duration::from_millis(4);

const HELD: usize = 1 << 0;
const UNTIMED: usize = 1 << 1;
const STANDBY_SHIFT: usize = 2;

/// The standby word; see the module docs.
pub(super) struct Standby {
    state: AtomicUsize,
    /// When a worker last left the driver to run tasks, and how long
    /// before that the previous one did, in microseconds since `epoch`
    /// (rule 3's measure of how busy the runtime is).
    last_leave: AtomicUsize,
    leave_gap: AtomicUsize,
    epoch: Instant,
}

/// What a parking worker does (rule 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Enter the driver: the worker now holds it and must [`Standby::leave`]
    /// when the driver returns.
    Enter,
    /// Sleep on the condition variable, at most this long (`None`: until
    /// unparked). `standby` says the worker holds the standby role.
    Sleep { timeout: Option<Duration>, standby: bool },
}

/// Whom a hand-off must wake (rule 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HandOff {
    /// Nobody: the driver is held, or a timed standby watches.
    Nobody,
    /// This worker: the untimed standby.
    Standby(usize),
    /// Any sleeping worker: there is no standby and the driver is free.
    AnySleeper,
}

#[derive(Clone, Copy)]
struct Word(usize);

impl Word {
    fn held(self) -> bool {
        self.0 & HELD != 0
    }
    fn untimed(self) -> bool {
        self.0 & UNTIMED != 0
    }
    fn standby(self) -> Option<usize> {
        (self.0 >> STANDBY_SHIFT).checked_sub(1)
    }
    fn with_standby(self, standby: Option<usize>) -> Word {
        let low = self.0 & (HELD | UNTIMED);
        Word(low | standby.map_or(0, |i| (i + 1) << STANDBY_SHIFT))
    }
    /// Without the standby role (and its `UNTIMED`) if `me` has it.
    fn resigned_by(self, me: usize) -> Word {
        if self.standby() == Some(me) {
            Word(self.0 & HELD).with_standby(None)
        } else {
            self
        }
    }
}

impl Standby {
    pub(super) fn new() -> Standby {
        Standby {
            state: AtomicUsize::new(0),
            last_leave: AtomicUsize::new(0),
            leave_gap: AtomicUsize::new(usize::MAX),
            epoch: Instant::now(),
        }
    }

    /// A worker left the driver to run tasks (rule 3's measure).
    pub(super) fn record_leave(&self) {
        let now = self.epoch.elapsed().as_micros() as usize;
        let previous = self.last_leave.swap(now, Relaxed);
        self.leave_gap.store(now.wrapping_sub(previous), Relaxed);
    }

    /// Where a worker about to sleep starts counting its watches as the
    /// standby: from zero (watch with a timeout) while workers leave the
    /// driver more often than every [`BUSY_HAND_OFFS`], or at
    /// [`IDLE_WATCHES`] (sleep untimed at once) otherwise (rule 3).
    pub(super) fn first_watches(&self) -> u32 {
        let busy = self.leave_gap.load(Relaxed) < BUSY_HAND_OFFS.as_micros() as usize;
        if busy { 0 } else { IDLE_WATCHES }
    }

    fn update<R>(&self, mut f: impl FnMut(Word) -> (Word, R)) -> R {
        let mut current = Word(self.state.load(Acquire));
        loop {
            let (next, out) = f(current);
            if next.0 == current.0 {
                // Nothing to write; still a read-modify-write, so this
                // decision is ordered after every earlier change.
                match self.state.compare_exchange(current.0, current.0, AcqRel, Acquire) {
                    Ok(_) => return out,
                    Err(actual) => current = Word(actual),
                }
                continue;
            }
            match self.state.compare_exchange_weak(current.0, next.0, AcqRel, Acquire) {
                Ok(_) => return out,
                Err(actual) => current = Word(actual),
            }
        }
    }

    /// Rules 1, 2, 3 and 5: worker `me` parks, having slept `watches` timed
    /// sleeps in a row as the standby, each finding the driver held.
    pub(super) fn enter_or_sleep(&self, me: usize, watches: u32) -> Decision {
        self.update(|word| {
            if !word.held() {
                let next = Word(word.resigned_by(me).0 | HELD);
                return (next, Decision::Enter);
            }
            match word.standby() {
                None => (
                    word.with_standby(Some(me)),
                    Decision::Sleep {
                        timeout: Some(WATCH_INTERVAL),
                        standby: true,
                    },
                ),
                Some(standby) if standby == me => {
                    if watches >= IDLE_WATCHES {
                        (
                            Word(word.0 | UNTIMED),
                            Decision::Sleep {
                                timeout: None,
                                standby: true,
                            },
                        )
                    } else {
                        (
                            Word(word.0 & !UNTIMED),
                            Decision::Sleep {
                                timeout: Some(WATCH_INTERVAL),
                                standby: true,
                            },
                        )
                    }
                }
                Some(_) => (
                    word,
                    Decision::Sleep {
                        timeout: None,
                        standby: false,
                    },
                ),
            }
        })
    }

    /// Enters the driver if it is free (for a poll between tasks); true if
    /// `me` now holds it and must [`leave`](Self::leave).
    pub(super) fn try_enter(&self, me: usize) -> bool {
        self.update(|word| {
            if word.held() {
                (word, false)
            } else {
                (Word(word.resigned_by(me).0 | HELD), true)
            }
        })
    }

    /// The holder leaves the driver.
    pub(super) fn leave(&self) {
        let prev = self.state.fetch_and(!HELD, AcqRel);
        debug_assert!(prev & HELD != 0, "weft bug: left a driver nobody held");
    }

    /// Rule 4: worker `me` leaves its parker to run code.
    pub(super) fn hand_off(&self, me: usize) -> HandOff {
        self.update(|word| {
            let word = word.resigned_by(me);
            if word.held() {
                return (word, HandOff::Nobody);
            }
            match word.standby() {
                Some(_) if !word.untimed() => (word, HandOff::Nobody),
                Some(standby) => (Word(word.0 & !UNTIMED), HandOff::Standby(standby)),
                None => (word, HandOff::AnySleeper),
            }
        })
    }

    /// True while a worker has the standby role.
    pub(super) fn has_standby(&self) -> bool {
        Word(self.state.load(Acquire)).standby().is_some()
    }

    /// True while a worker is in the driver.
    #[cfg(all(test, not(loom)))]
    pub(super) fn is_held(&self) -> bool {
        Word(self.state.load(Acquire)).held()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn sleep(timeout: Option<Duration>, standby: bool) -> Decision {
        Decision::Sleep { timeout, standby }
    }

    #[test]
    fn the_first_sleeper_beside_a_held_driver_is_the_timed_standby() {
        let s = Standby::new();
        assert_eq!(s.enter_or_sleep(0, 0), Decision::Enter);
        assert_eq!(s.enter_or_sleep(1, 0), sleep(Some(WATCH_INTERVAL), true));
        assert_eq!(s.enter_or_sleep(2, 0), sleep(None, false), "one standby at a time");
        // The standby keeps its role across watches, then goes quiet.
        assert_eq!(s.enter_or_sleep(1, IDLE_WATCHES - 1), sleep(Some(WATCH_INTERVAL), true));
        assert_eq!(s.enter_or_sleep(1, IDLE_WATCHES), sleep(None, true));
    }

    #[test]
    fn leaving_to_run_tasks_wakes_an_untimed_standby_once() {
        let s = Standby::new();
        assert_eq!(s.enter_or_sleep(0, 0), Decision::Enter);
        assert_eq!(s.enter_or_sleep(1, 0), sleep(Some(WATCH_INTERVAL), true));
        assert_eq!(s.enter_or_sleep(1, IDLE_WATCHES), sleep(None, true));
        s.leave();
        assert_eq!(s.hand_off(0), HandOff::Standby(1));
        assert_eq!(
            s.hand_off(2),
            HandOff::Nobody,
            "the standby is timed again: one wake is enough"
        );
    }

    #[test]
    fn a_timed_standby_needs_no_hand_off_and_a_held_driver_none_at_all() {
        let s = Standby::new();
        assert_eq!(s.enter_or_sleep(0, 0), Decision::Enter);
        assert_eq!(s.enter_or_sleep(1, 0), sleep(Some(WATCH_INTERVAL), true));
        assert_eq!(
            s.hand_off(2),
            HandOff::Nobody,
            "held: the holder hands off when it leaves"
        );
        s.leave();
        assert_eq!(
            s.hand_off(0),
            HandOff::Nobody,
            "the timed standby will look within the interval"
        );
    }

    #[test]
    fn a_standby_that_enters_gives_up_the_role() {
        // The defect the first version had: the standby kept the role while
        // in the driver, so a worker parking meanwhile slept untimed, and
        // nobody was left to watch when the standby left to run tasks.
        let s = Standby::new();
        assert_eq!(s.enter_or_sleep(0, 0), Decision::Enter);
        assert_eq!(s.enter_or_sleep(1, 0), sleep(Some(WATCH_INTERVAL), true));
        s.leave();
        assert_eq!(
            s.enter_or_sleep(1, 1),
            Decision::Enter,
            "the standby finds the driver free"
        );
        assert_eq!(
            s.enter_or_sleep(0, 0),
            sleep(Some(WATCH_INTERVAL), true),
            "the role is free again"
        );
    }

    #[test]
    fn with_no_standby_and_a_free_driver_a_sleeper_is_woken() {
        let s = Standby::new();
        assert_eq!(s.enter_or_sleep(0, 0), Decision::Enter);
        assert_eq!(s.enter_or_sleep(1, 0), sleep(Some(WATCH_INTERVAL), true));
        assert_eq!(s.enter_or_sleep(2, 0), sleep(None, false));
        // The standby is picked to search and leaves its parker while 0
        // still holds the driver: nobody to wake yet.
        assert_eq!(s.hand_off(1), HandOff::Nobody);
        // Then 0 leaves the driver to run tasks: 2 sleeps untimed, with no
        // standby, beside a free driver.
        s.leave();
        assert_eq!(s.hand_off(0), HandOff::AnySleeper);
    }

    #[test]
    fn a_maintenance_poll_enters_only_a_free_driver() {
        let s = Standby::new();
        assert!(s.try_enter(0));
        assert!(!s.try_enter(1));
        assert!(s.is_held());
        s.leave();
        assert!(!s.is_held());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The composed hand-off: workers with the idle counts, their parkers,
    //! the standby word, the driver and its lock, and a wake from outside,
    //! making the same calls in the same order as `Context::park` in
    //! `worker.rs`.
    //!
    //! loom does not time out timed waits. So the model lets a standby's
    //! first timed sleep "time out" (it goes round its parker once more,
    //! then counts as idle long enough to go untimed: the demanding case),
    //! and counts any later timed sleep as *watching*. A worker that ends
    //! up watching (timed, or in the driver with nothing more to come)
    //! tears the model down, waking the others, which end as *slept*: an
    //! untimed sleep is fine while someone watches. A worker that sleeps
    //! untimed while nobody watches, and that no hand-off wakes, never
    //! wakes: every thread ends up blocked, and loom reports the deadlock.
    //!
    //! The model's own bookkeeping (the task, the event, the end) sits
    //! under one lock, so that it is sequentially consistent and cannot
    //! itself race; only the protocol under test uses atomics.
    use super::super::idle::Idle;
    use super::*;
    use crate::loom::{Mutex, lock, thread};
    use crate::park::{Park, Parker, SharedDriver, ThreadParker, Unpark, Unparker};
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Default)]
    struct Model {
        /// Tasks the outside thread queued (the injection queue).
        tasks: usize,
        /// An event waiting for the driver (the socket that readied it).
        event: bool,
        /// The outside thread is done: no more events will come.
        quiet: bool,
        /// A worker watches for good: the others may stop.
        teardown: bool,
    }

    /// The model's reactor: a pending event makes a park return, as
    /// `epoll_wait` would; so does an unpark.
    struct Driver {
        model: Arc<Mutex<Model>>,
        parker: ThreadParker,
    }

    impl Park for Driver {
        fn park(&mut self, timeout: Option<Duration>) {
            let event = std::mem::take(&mut lock(&self.model).event);
            if !event {
                self.parker.park(timeout);
            }
        }

        fn unparker(&self) -> Arc<dyn Unpark> {
            self.parker.unparker()
        }
    }

    struct World {
        standby: Standby,
        idle: Idle,
        driver: Arc<SharedDriver>,
        unparkers: Vec<Unparker>,
        model: Arc<Mutex<Model>>,
    }

    /// How a worker's park ended.
    #[derive(Debug, PartialEq, Clone, Copy)]
    enum Ended {
        /// It took the task and left to run it, and blocks in it forever.
        RanTask,
        /// It watches: in the driver with nothing more to come, or asleep
        /// as the timed standby.
        Watching,
        /// It slept while another watched, until the teardown.
        Slept,
    }

    fn world(workers: usize) -> (Arc<World>, Vec<Parker>) {
        let model = Arc::new(Mutex::new(Model::default()));
        let driver = SharedDriver::new(Box::new(Driver {
            model: model.clone(),
            parker: ThreadParker::new(),
        }));
        let parkers: Vec<Parker> = (0..workers).map(|_| Parker::new(Some(driver.unparker()))).collect();
        let world = Arc::new(World {
            standby: Standby::new(),
            idle: Idle::new(workers),
            driver,
            unparkers: parkers.iter().map(Parker::unparker).collect(),
            model,
        });
        (world, parkers)
    }

    impl World {
        fn hand_off(&self, me: usize) {
            match self.standby.hand_off(me) {
                HandOff::Nobody => {}
                HandOff::Standby(index) => self.unparkers[index].unpark(),
                HandOff::AnySleeper => {
                    if let Some(index) = self.idle.sleeper_other_than(me) {
                        self.unparkers[index].unpark();
                    }
                }
            }
        }

        /// The outside wake: queue `tasks` tasks and notify, as
        /// `push_remote` does; the event that readied them reaches the
        /// driver.
        fn wake_from_outside(&self, tasks: usize) {
            {
                let mut model = lock(&self.model);
                model.tasks = tasks;
                model.event = true;
            }
            self.notify();
            lock(&self.model).quiet = true;
            self.driver.unparker().unpark();
        }

        fn notify(&self) {
            if let Some(index) = self.idle.worker_to_notify() {
                self.unparkers[index].unpark();
            }
        }

        fn take_task(&self) -> bool {
            let mut model = lock(&self.model);
            let took = model.tasks > 0;
            model.tasks -= usize::from(took);
            took
        }

        fn watching(&self, me: usize) -> Ended {
            lock(&self.model).teardown = true;
            for (i, unparker) in self.unparkers.iter().enumerate() {
                if i != me {
                    unparker.unpark();
                }
            }
            Ended::Watching
        }

        fn torn_down(&self) -> bool {
            lock(&self.model).teardown
        }

        /// A worker's life in the model: it parks; picked to search, it
        /// finds nothing (or the task) and parks again.
        fn run(&self, me: usize, parker: &Parker) -> Ended {
            loop {
                if let Some(ended) = self.park(me, parker) {
                    return ended;
                }
            }
        }

        /// One park, as `Context::park` runs it; `None` if it left to
        /// search and found nothing.
        fn park(&self, me: usize, parker: &Parker) -> Option<Ended> {
            self.idle.transition_worker_to_parked(me, false);
            let mut watches = 0;
            let mut timed_sleeps = 0;
            loop {
                let mut entered = false;
                if !parker.take_token() {
                    match self.standby.enter_or_sleep(me, watches) {
                        Decision::Enter => {
                            entered = true;
                            let done = {
                                let model = lock(&self.model);
                                model.quiet && !model.event
                            };
                            if done {
                                // Nothing more will come: the driver is
                                // watched for good.
                                self.standby.leave();
                                return Some(self.watching(me));
                            }
                            self.driver.with(|d| parker.park_driver(d, None));
                            self.standby.leave();
                        }
                        Decision::Sleep { timeout: Some(_), .. } => {
                            timed_sleeps += 1;
                            if timed_sleeps > 1 {
                                return Some(self.watching(me));
                            }
                            // The first timed sleep times out at once.
                        }
                        Decision::Sleep { timeout: None, .. } => {
                            if self.torn_down() {
                                return Some(Ended::Slept);
                            }
                            parker.park(None);
                            if self.torn_down() {
                                return Some(Ended::Slept);
                            }
                        }
                    }
                }
                if entered && self.take_task() {
                    // The driver delivered the event: run the task, which
                    // blocks forever. Hand off first (rule 4).
                    self.idle.unpark_worker_by_id(me);
                    self.hand_off(me);
                    return Some(Ended::RanTask);
                }
                if !self.idle.is_parked(me) {
                    // Picked by the notifier: leave to search (rule 4).
                    self.hand_off(me);
                    let took = self.take_task();
                    // As `run_task`: the last searcher to stop wakes a
                    // successor (rule 3 of `idle`).
                    if self.idle.transition_worker_from_searching() {
                        self.notify();
                    }
                    return if took { Some(Ended::RanTask) } else { None };
                }
                watches = if entered { 0 } else { IDLE_WATCHES };
            }
        }
    }

    fn check(ended: &[Ended], tasks: usize) {
        let ran = ended.iter().filter(|e| **e == Ended::RanTask).count();
        assert!(ran <= tasks, "a task ran twice: {ended:?}");
        assert!(ended.contains(&Ended::Watching), "nobody watches the driver: {ended:?}");
    }

    /// Two workers park while the outside thread queues a task and wakes
    /// the runtime; whoever runs the task then blocks in it forever. The
    /// other must end up watching the driver, never asleep untimed beside
    /// an unwatched one (the stall of issue 15: timers 310 ms late).
    #[test]
    fn the_driver_is_watched_after_its_holder_leaves_to_block() {
        loom::model(|| {
            let (world, mut parkers) = world(2);
            let p1 = parkers.pop().unwrap();
            let p0 = parkers.pop().unwrap();
            let w = world.clone();
            let worker1 = thread::spawn(move || w.run(1, &p1));
            let w = world.clone();
            let outside = thread::spawn(move || w.wake_from_outside(1));
            let ended0 = world.run(0, &p0);
            let ended1 = worker1.join().unwrap();
            outside.join().unwrap();
            check(&[ended0, ended1], 1);
        });
    }

    /// Three workers and two tasks: besides the standby, one worker sleeps
    /// untimed as a plain sleeper. When the standby and the holder both
    /// leave to run tasks that block, the hand-off must reach that
    /// sleeper.
    #[test]
    fn a_plain_sleeper_is_woken_when_the_standby_and_the_holder_leave() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            let (world, mut parkers) = world(3);
            let p2 = parkers.pop().unwrap();
            let p1 = parkers.pop().unwrap();
            let p0 = parkers.pop().unwrap();
            let w = world.clone();
            let worker1 = thread::spawn(move || w.run(1, &p1));
            let w = world.clone();
            let worker2 = thread::spawn(move || w.run(2, &p2));
            let w = world.clone();
            let outside = thread::spawn(move || w.wake_from_outside(2));
            let ended0 = world.run(0, &p0);
            let ended1 = worker1.join().unwrap();
            let ended2 = worker2.join().unwrap();
            outside.join().unwrap();
            check(&[ended0, ended1, ended2], 2);
        });
    }
}
