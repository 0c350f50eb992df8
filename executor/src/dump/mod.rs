//! Task dumps: every live task of a runtime, what it waits on, what each
//! worker is running now, and which of them look stuck.
//!
//! [`Handle::dump`](crate::Handle::dump) copies the records the runtime
//! keeps anyway (nothing is switched on for it): each task's header holds
//! its spawn location, poll count, last poll time, longest measured poll
//! and what it waits on (`task/record.rs`); each worker publishes the task
//! it is polling and its last clock reading (`observe/poll_record.rs`).
//! Taking a dump locks one shard of the owned-task list at a time while it
//! copies that shard's records, and the blocking pool's lock while it
//! copies the pool's; no worker is paused or signalled, so a dump works on
//! every platform and costs the runtime nothing when nobody takes one.
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = weft_executor::Builder::new_multi_thread().worker_threads(2).build()?;
//! let stuck = weft_executor::task::Builder::new()
//!     .name("forever")
//!     .spawn_on(std::future::pending::<()>(), rt.handle());
//! std::thread::sleep(Duration::from_millis(50));
//!
//! let options = weft_executor::dump::DumpOptions::default().idle_threshold(Duration::from_millis(20));
//! let dump = rt.handle().dump_with(options);
//! println!("{dump}");
//! let task = dump.tasks.iter().find(|t| t.id == stuck.id()).unwrap();
//! assert_eq!(task.name.as_deref(), Some("forever"));
//! assert_eq!(task.polls, 1);
//! assert!(dump.stuck.iter().any(|s| s.task() == stuck.id()));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How exact
//!
//! - Times are on Weft's observation clock, in microseconds
//!   ([`Dump::taken_at_us`] is "now").
//! - A task's *last poll* is its worker's last clock reading before that
//!   poll: the worker reads the clock at every park and unpark and around
//!   every 1,024th poll, so the stamp may be early by the time of the
//!   polls in between (microseconds on a busy worker).
//! - A task's *longest poll* is the longest of its polls that the runtime's
//!   watcher (which looks at busy workers every 2 ms while another worker
//!   waits in the driver) or a dump saw in progress, measured as at least
//!   the time since it was first seen (or since the worker's clock reading
//!   right before it, when there is one), or a sampled run; 0 if none was. Short polls are not
//!   timed one by one (that would read the clock twice per poll): the
//!   workers' sampled poll-time histograms and the timeline have them.
//! - A worker's *running for* has two bounds: at most the time since the
//!   worker's last clock reading before the poll, at least the time since a
//!   watcher or an earlier dump first saw that poll (or since that clock
//!   reading, if it came right before the poll). The stuck finder goes by
//!   the lower bound only: on a busy worker the last reading may be a
//!   thousand short polls old. A blocked worker is usually seen within a
//!   few milliseconds; a dump that is the first to see it names it only if
//!   its clock reading came right before the poll, and the next dump does.
//! - What a task waits on is what the resource reported when the task
//!   registered its waker in its latest poll ([`WaitOn`]): sockets,
//!   timers, sources, Weft's locks and channels, promises and join
//!   handles report; a future from another library reports nothing unless
//!   it calls [`note_wait`].

mod table;
pub(crate) mod wait;

pub use self::wait::{IoDirection, WaitOn, note_wait, note_wait_with};

use crate::observe::poll_record::PollerSnapshot;
use crate::task::Id;
use crate::task::record::TaskView;
use std::panic::Location;
use std::time::Duration;

/// What [`Handle::dump_with`](crate::Handle::dump_with) calls stuck.
///
/// ```
/// use std::time::Duration;
/// let options = weft_executor::dump::DumpOptions::default()
///     .idle_threshold(Duration::from_secs(30))
///     .poll_threshold(Duration::from_millis(50));
/// assert_eq!(options.poll_threshold, Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DumpOptions {
    /// A task idle (not scheduled, not running) for longer than this since
    /// its last poll is reported stuck, with what it waits on, unless it
    /// waits on a timer not yet due (it sleeps: an hourly job is not stuck;
    /// a timer past its deadline whose task has not run is reported).
    /// Default 10 s. Tasks waiting on the world outside the process are
    /// left out unless [`io_waits_stuck`](DumpOptions#structfield.io_waits_stuck)
    /// is set, and a task awaiting another task is stuck only if that task
    /// is (a supervisor awaiting its idle accept loop is not; a task of
    /// another runtime is judged in that runtime's dump).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "idle_threshold_us", serialize_with = "serialize_us")
    )]
    pub idle_threshold: Duration,
    /// A worker inside one poll for longer than this is reported as
    /// blocked: a blocking call in async code. Default 100 ms.
    ///
    /// Only a lower bound on a poll's length counts: from the moment an
    /// observer first saw it in progress (an idle worker, which watches the
    /// busy ones, or an earlier dump), or from the worker's last clock
    /// reading if the poll began right after it. Otherwise a dump knows
    /// only that the poll has run *at most* since that reading (the
    /// `WORKERS` table shows that bound), which is no evidence of blocking:
    /// thousands of short polls look the same. Such a poll is named by the
    /// next dump, one threshold later, if it is still the same poll.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "poll_threshold_us", serialize_with = "serialize_us")
    )]
    pub poll_threshold: Duration,
    /// Whether a task idle past the idle threshold while waiting for a
    /// socket to become ready or for a signal is reported stuck. Default
    /// false: such a task waits on a peer or a person, and an accept loop,
    /// a keep-alive connection or a Ctrl-C listener with nothing to do is
    /// idle, not stuck (a server's thousand idle connections would bury
    /// the one deadlock). The `TASKS` table still shows how long each has
    /// waited and on which descriptor. Set it to find, say, a client
    /// waiting for a reply that never comes.
    pub io_waits_stuck: bool,
}

impl DumpOptions {
    /// Sets [`idle_threshold`](DumpOptions#structfield.idle_threshold).
    pub fn idle_threshold(mut self, threshold: Duration) -> DumpOptions {
        self.idle_threshold = threshold;
        self
    }

    /// Sets [`poll_threshold`](DumpOptions#structfield.poll_threshold).
    pub fn poll_threshold(mut self, threshold: Duration) -> DumpOptions {
        self.poll_threshold = threshold;
        self
    }

    /// Sets [`io_waits_stuck`](DumpOptions#structfield.io_waits_stuck).
    pub fn io_waits_stuck(mut self, yes: bool) -> DumpOptions {
        self.io_waits_stuck = yes;
        self
    }
}

impl Default for DumpOptions {
    fn default() -> DumpOptions {
        DumpOptions {
            idle_threshold: Duration::from_secs(10),
            poll_threshold: Duration::from_millis(100),
            io_waits_stuck: false,
        }
    }
}

/// A runtime's tasks and workers at one instant. `Display` prints a table;
/// with the feature `serde`, it serializes.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Dump {
    /// When the dump was taken, in µs on Weft's observation clock (the
    /// clock of every `*_us` instant in the dump).
    pub taken_at_us: u64,
    /// When the dump was taken by the wall clock, in ms since the Unix
    /// epoch (to line a dump up with logs); 0 if the system clock is
    /// before 1970 (or under Miri, which has no wall clock).
    pub taken_at_unix_ms: u64,
    /// The runtime had shut down (or was shutting down): its tasks are
    /// gone or going, and its threads' rows are their last state.
    pub shut_down: bool,
    /// The thresholds the dump was taken with.
    pub options: DumpOptions,
    /// The live tasks (and the blocking pool's jobs), by id.
    pub tasks: Vec<TaskDump>,
    /// The runtime's workers, then the blocking pool's threads.
    pub workers: Vec<WorkerDump>,
    /// What looks stuck, by the options' thresholds.
    pub stuck: Vec<Stuck>,
}

/// One task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TaskDump {
    /// Its id.
    #[cfg_attr(feature = "serde", serde(serialize_with = "wait::serialize_id"))]
    pub id: Id,
    /// The name given to [`task::Builder`](crate::task::Builder).
    pub name: Option<String>,
    /// Where it was spawned.
    pub location: SpawnLocation,
    /// A task or a blocking job.
    pub kind: TaskKind,
    /// Idle, scheduled, running (where), or queued for the blocking pool.
    pub state: TaskState,
    /// Cancellation was requested and has not happened yet.
    pub cancelling: bool,
    /// What it waits on, when idle and known.
    pub wait: Option<WaitOn>,
    /// Polls begun (modulo 2^31).
    pub polls: u32,
    /// Time since its last poll began, in µs (to within a millisecond,
    /// never less than the truth; 0 for a poll that began while the dump
    /// was being taken); `None` if never polled.
    pub since_last_poll_us: Option<u64>,
    /// Its longest measured poll, in µs; 0 if none was measured (see the
    /// module docs).
    pub longest_poll_us: u64,
}

/// Where a task was spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SpawnLocation {
    /// The source file.
    pub file: &'static str,
    /// The line.
    pub line: u32,
    /// The column.
    pub column: u32,
}

/// What runs in a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum TaskKind {
    /// A future.
    Task,
    /// A closure on the blocking pool.
    Blocking,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "state", rename_all = "snake_case"))]
pub enum TaskState {
    /// Waiting for a wake.
    Idle,
    /// Woken, waiting in a run queue.
    Scheduled,
    /// Being polled, by the worker (index into [`Dump::workers`]) if known.
    Running {
        /// The index into [`Dump::workers`] of the thread polling it.
        worker: Option<usize>,
    },
    /// A blocking job waiting for a pool thread.
    Queued,
}

/// One thread that polls tasks: a worker or a blocking-pool thread.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct WorkerDump {
    /// A worker or a blocking-pool thread.
    pub kind: WorkerKind,
    /// Its index among its kind (worker `i` is thread `{prefix}-worker-{i}`).
    pub index: usize,
    /// Polls (jobs, for a pool thread) it has begun.
    pub polls: u64,
    /// What it is doing.
    pub state: WorkerState,
}

/// Which kind of thread a [`WorkerDump`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum WorkerKind {
    /// A worker (or the thread driving a current-thread runtime).
    Worker,
    /// A thread of the blocking pool.
    Blocking,
}

/// What a worker is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "state", rename_all = "snake_case"))]
pub enum WorkerState {
    /// Inside a task's poll.
    Polling {
        /// The task.
        #[cfg_attr(feature = "serde", serde(serialize_with = "wait::serialize_id"))]
        task: Id,
        /// For at least this long (µs), if a watcher or a dump saw this
        /// poll before, or the worker read its clock just before it. The
        /// stuck finder goes by this bound alone: a worker first seen in a
        /// poll that followed others since its last clock reading is named
        /// by the next dump (or the watcher) if it is still in that poll.
        at_least_us: Option<u64>,
        /// For at most this long (µs).
        at_most_us: u64,
    },
    /// Parked (waiting for work, or in the driver) for this long (µs).
    Parked {
        /// How long.
        for_us: u64,
    },
    /// Between polls: looking for work, scheduling, or not started.
    Between,
}

/// Something that looks stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Stuck {
    /// A task idle for longer than the idle threshold.
    Idle {
        /// The task.
        #[cfg_attr(feature = "serde", serde(serialize_with = "wait::serialize_id"))]
        task: Id,
        /// Its name.
        name: Option<String>,
        /// Where it was spawned.
        location: SpawnLocation,
        /// Time since its last poll (µs).
        idle_us: u64,
        /// What it waits on, if known.
        wait: Option<WaitOn>,
    },
    /// A worker inside one poll for longer than the poll threshold.
    #[cfg_attr(feature = "serde", serde(rename = "blocked_worker"))]
    Blocking {
        /// The worker's index.
        worker: usize,
        /// The task it polls.
        #[cfg_attr(feature = "serde", serde(serialize_with = "wait::serialize_id"))]
        task: Id,
        /// Its name.
        name: Option<String>,
        /// Where it was spawned.
        location: Option<SpawnLocation>,
        /// How long the poll has run at least (µs).
        for_us: u64,
    },
}

impl Stuck {
    /// The task concerned.
    pub fn task(&self) -> Id {
        match self {
            Stuck::Idle { task, .. } | Stuck::Blocking { task, .. } => *task,
        }
    }
}

impl SpawnLocation {
    fn from_location(location: &'static Location<'static>) -> SpawnLocation {
        SpawnLocation {
            file: location.file(),
            line: location.line(),
            column: location.column(),
        }
    }
}

/// The wall clock in ms since the Unix epoch; 0 where there is none (a
/// clock before 1970, or Miri's isolation, which has no wall clock).
fn unix_ms() -> u64 {
    #[cfg(miri)]
    return 0;
    #[cfg(not(miri))]
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(feature = "serde")]
fn serialize_us<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(crate::observe::clock::duration_us(*d))
}

/// Gathers a dump's rows; the scheduler and the blocking pool feed it.
pub(crate) struct Collector {
    now_us: u64,
    unix_ms: u64,
    tasks: Vec<TaskDump>,
    workers: Vec<WorkerDump>,
}

impl Collector {
    pub(crate) fn new() -> Collector {
        Collector {
            now_us: crate::observe::clock::now_us(),
            unix_ms: unix_ms(),
            tasks: Vec::new(),
            workers: Vec::new(),
        }
    }

    pub(crate) fn now_us(&self) -> u64 {
        self.now_us
    }

    /// A task of the owned-task list (or a blocking job, `kind`).
    pub(crate) fn task(&mut self, view: TaskView, name: Option<&str>, kind: TaskKind, queued: bool) {
        let record = view.record;
        let state = if queued {
            TaskState::Queued
        } else if view.running {
            TaskState::Running { worker: None }
        } else if view.notified {
            TaskState::Scheduled
        } else {
            TaskState::Idle
        };
        let wait = if view.wait_valid {
            wait::decode(record.wait_tag, record.wait_object)
        } else {
            None
        };
        // The stamp is in whole milliseconds (wrapping after 49 days): the
        // age is the whole milliseconds since, plus this one's fraction. A
        // poll that began after the dump read "now" (while it copied other
        // records) has a stamp past it: its age is 0, not a wrapped
        // difference of 49 days (so a task truly idle for over 24 days
        // shows as just polled).
        let now_ms = (self.now_us / 1000) as u32;
        let age_us = |last_ms: u32| match now_ms.wrapping_sub(last_ms) {
            ms if ms > u32::MAX / 2 => 0,
            ms => u64::from(ms) * 1000 + self.now_us % 1000,
        };
        self.tasks.push(TaskDump {
            id: view.id,
            name: name.map(str::to_owned),
            location: SpawnLocation::from_location(view.location),
            kind,
            state,
            cancelling: view.cancelled,
            wait,
            polls: record.polls,
            since_last_poll_us: (record.polls > 0).then(|| age_us(record.last_poll_ms)),
            longest_poll_us: u64::from(record.longest_poll_us),
        });
    }

    /// The future passed to a current-thread runtime's `block_on`, called
    /// at `location`, which its thread is polling now (a row of its own,
    /// [`Id::BLOCK_ON`], so that the stuck finder can name it).
    pub(crate) fn block_on(&mut self, location: &'static Location<'static>) {
        self.tasks.push(TaskDump {
            id: Id::BLOCK_ON,
            name: Some("block_on".to_owned()),
            location: SpawnLocation::from_location(location),
            kind: TaskKind::Task,
            state: TaskState::Running { worker: None },
            cancelling: false,
            wait: None,
            polls: 0,
            since_last_poll_us: None,
            longest_poll_us: 0,
        });
    }

    /// A blocking job a pool thread runs, for `running_us` so far.
    pub(crate) fn running_job(
        &mut self,
        id: Id,
        location: &'static Location<'static>,
        name: Option<&str>,
        running_us: u64,
    ) {
        self.tasks.push(TaskDump {
            id,
            name: name.map(str::to_owned),
            location: SpawnLocation::from_location(location),
            kind: TaskKind::Blocking,
            state: TaskState::Running { worker: None },
            cancelling: false,
            wait: None,
            polls: 1,
            since_last_poll_us: Some(running_us),
            longest_poll_us: running_us,
        });
    }

    /// A polling thread.
    pub(crate) fn worker(&mut self, kind: WorkerKind, index: usize, snapshot: PollerSnapshot) {
        let state = match (snapshot.polling, snapshot.parked_for_us) {
            (Some(p), _) => match Id::from_u64(p.task) {
                Some(task) => WorkerState::Polling {
                    task,
                    // A reading just before the poll bounds it from below
                    // too (to within the scheduling in between).
                    at_least_us: p.at_least_us.or(p.at_most_is_tight.then_some(p.at_most_us)),
                    at_most_us: p.at_most_us,
                },
                None => WorkerState::Between,
            },
            (None, Some(for_us)) => WorkerState::Parked { for_us },
            (None, None) => WorkerState::Between,
        };
        self.workers.push(WorkerDump {
            kind,
            index,
            polls: snapshot.polls,
            state,
        });
    }

    /// The dump: running tasks matched to their threads, stuck ones found.
    pub(crate) fn finish(mut self, options: DumpOptions, shut_down: bool) -> Dump {
        self.tasks.sort_by_key(|t| t.id);
        match_running(&mut self.tasks, &self.workers);
        let stuck = find_stuck(&self.tasks, &self.workers, options, self.now_us);
        Dump {
            taken_at_us: self.now_us,
            taken_at_unix_ms: self.unix_ms,
            shut_down,
            options,
            tasks: self.tasks,
            workers: self.workers,
            stuck,
        }
    }
}

/// Gives each task a worker is polling that worker, and counts the poll in
/// progress in the task's longest poll once it is known to have run at
/// least as long (a dump that names a blocking poll shows it in the task's
/// row too). `tasks` is sorted by id.
fn match_running(tasks: &mut [TaskDump], workers: &[WorkerDump]) {
    for (w, worker) in workers.iter().enumerate() {
        if let WorkerState::Polling { task, at_least_us, .. } = worker.state {
            if let Ok(i) = tasks.binary_search_by_key(&task, |t| t.id) {
                if matches!(tasks[i].state, TaskState::Running { .. }) {
                    tasks[i].state = TaskState::Running { worker: Some(w) };
                    let longest = &mut tasks[i].longest_poll_us;
                    *longest = (*longest).max(at_least_us.unwrap_or(0));
                }
            }
        }
    }
}

/// The stuck finder: workers in one poll past the poll threshold first,
/// then tasks idle past the idle threshold, longest first, except those
/// sleeping on a timer not yet due at `now_us`.
fn find_stuck(tasks: &[TaskDump], workers: &[WorkerDump], options: DumpOptions, now_us: u64) -> Vec<Stuck> {
    let poll_us = crate::observe::clock::duration_us(options.poll_threshold);
    let idle_us = crate::observe::clock::duration_us(options.idle_threshold);
    let find = |id: Id| tasks.binary_search_by_key(&id, |t| t.id).ok().map(|i| &tasks[i]);
    let mut stuck = Vec::new();
    for worker in workers.iter().filter(|w| w.kind == WorkerKind::Worker) {
        // Only a lower bound is evidence (see `DumpOptions::poll_threshold`).
        if let WorkerState::Polling {
            task,
            at_least_us: Some(for_us),
            ..
        } = worker.state
        {
            if for_us >= poll_us {
                let row = find(task);
                stuck.push(Stuck::Blocking {
                    worker: worker.index,
                    task,
                    name: row.and_then(|t| t.name.clone()),
                    location: row.map(|t| t.location),
                    for_us,
                });
            }
        }
    }
    let idle_stuck = IdleRule {
        tasks,
        idle_us,
        now_us,
        io_waits_stuck: options.io_waits_stuck,
    };
    let mut idle: Vec<&TaskDump> = tasks.iter().filter(|t| idle_stuck.holds(t, JOIN_DEPTH)).collect();
    idle.sort_by_key(|t| std::cmp::Reverse(t.since_last_poll_us));
    stuck.extend(idle.into_iter().map(|t| Stuck::Idle {
        task: t.id,
        name: t.name.clone(),
        location: t.location,
        idle_us: t.since_last_poll_us.unwrap_or(0),
        wait: t.wait,
    }));
    stuck
}

/// How far the idle rule follows a chain of joins (a task awaiting a task
/// awaiting ...) before it calls the chain stuck (a cycle of joins is a
/// deadlock).
const JOIN_DEPTH: usize = 32;

/// When an idle task is stuck (see [`DumpOptions::idle_threshold`]).
struct IdleRule<'a> {
    /// Sorted by id.
    tasks: &'a [TaskDump],
    idle_us: u64,
    now_us: u64,
    io_waits_stuck: bool,
}

impl IdleRule<'_> {
    /// A task idle past the threshold is stuck unless it sleeps on a timer
    /// not yet due, waits on a socket or a signal (unless asked for), or
    /// awaits a task that is not stuck itself: a supervisor awaiting its
    /// accept loop is as healthy as the loop, and a task awaiting one this
    /// dump lacks (another runtime's) is judged by that one in its own
    /// runtime's dump. `depth` bounds the joins followed.
    fn holds(&self, t: &TaskDump, depth: usize) -> bool {
        if t.kind != TaskKind::Task || t.state != TaskState::Idle {
            return false;
        }
        if t.since_last_poll_us.is_none_or(|us| us < self.idle_us) {
            return false;
        }
        match t.wait {
            Some(WaitOn::Timer { deadline_us }) => deadline_us <= self.now_us,
            Some(WaitOn::Io { .. } | WaitOn::Signal { .. }) => self.io_waits_stuck,
            Some(WaitOn::Join { task }) if depth > 0 => {
                match self.tasks.binary_search_by_key(&task, |t| t.id) {
                    Ok(i) => self.holds(&self.tasks[i], depth - 1),
                    // Not in this dump: a task of another runtime (judged
                    // in that runtime's dump), or one that completed while
                    // this dump was taken (its joiner's wake is on its
                    // way). Nothing here says the joiner is stuck.
                    Err(_) => false,
                }
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polling(index: usize, task: Id, at_least_us: Option<u64>, at_most_us: u64) -> WorkerDump {
        WorkerDump {
            kind: WorkerKind::Worker,
            index,
            polls: 1,
            state: WorkerState::Polling {
                task,
                at_least_us,
                at_most_us,
            },
        }
    }

    fn idle(wait: Option<WaitOn>) -> TaskDump {
        TaskDump {
            id: Id::next(),
            name: None,
            location: SpawnLocation {
                file: "x.rs",
                line: 1,
                column: 1,
            },
            kind: TaskKind::Task,
            state: TaskState::Idle,
            cancelling: false,
            wait,
            polls: 1,
            since_last_poll_us: Some(20_000_000),
            longest_poll_us: 0,
        }
    }

    /// A task sleeping on a timer not yet due is not stuck, however long
    /// it has been idle; one whose timer is past due, or that waits on
    /// anything else, is.
    #[test]
    fn a_task_sleeping_on_a_timer_not_yet_due_is_not_stuck() {
        let now = 100_000_000;
        let tasks = [
            idle(Some(WaitOn::Timer {
                deadline_us: now + 3_600_000_000,
            })),
            idle(Some(WaitOn::Timer {
                deadline_us: now - 5_000,
            })),
            idle(None),
        ];
        let stuck = find_stuck(&tasks, &[], DumpOptions::default(), now);
        let ids: Vec<Id> = stuck.iter().map(Stuck::task).collect();
        assert_eq!(ids, [tasks[1].id, tasks[2].id], "{stuck:?}");
    }

    /// A task idle on a socket or a signal waits on the world outside:
    /// not stuck unless the options ask for such waits; a task idle on a
    /// lock is stuck either way.
    #[test]
    fn waits_on_sockets_and_signals_are_stuck_only_when_asked() {
        use super::wait::IoDirection;
        let tasks = [
            idle(Some(WaitOn::Io {
                fd: 7,
                direction: IoDirection::Read,
            })),
            idle(Some(WaitOn::Signal { signal: 2 })),
            idle(Some(WaitOn::Sync {
                primitive: "Mutex::lock",
                address: 0x10,
            })),
        ];
        let ids = |options| -> Vec<Id> { find_stuck(&tasks, &[], options, 0).iter().map(Stuck::task).collect() };
        assert_eq!(ids(DumpOptions::default()), [tasks[2].id]);
        let mut all = ids(DumpOptions::default().io_waits_stuck(true));
        all.sort();
        assert_eq!(all, [tasks[0].id, tasks[1].id, tasks[2].id]);
    }

    /// A task awaiting another task is stuck only if that one is: a
    /// supervisor awaiting an idle accept loop is not, one awaiting a task
    /// stuck on a lock is, and so is each of two tasks awaiting each other.
    #[test]
    fn a_join_is_stuck_only_when_the_awaited_task_is() {
        use super::wait::IoDirection;
        let mut tasks = vec![
            idle(Some(WaitOn::Io {
                fd: 3,
                direction: IoDirection::Read,
            })),
            idle(Some(WaitOn::Sync {
                primitive: "Mutex::lock",
                address: 0x10,
            })),
        ];
        let (accept, locked) = (tasks[0].id, tasks[1].id);
        let supervisor = idle(Some(WaitOn::Join { task: accept }));
        let supervisor_id = supervisor.id;
        tasks.push(supervisor);
        tasks.push(idle(Some(WaitOn::Join { task: locked })));
        let (a, b) = (idle(None), idle(None));
        let (a_id, b_id) = (a.id, b.id);
        tasks.push(TaskDump {
            wait: Some(WaitOn::Join { task: b_id }),
            ..a
        });
        tasks.push(TaskDump {
            wait: Some(WaitOn::Join { task: a_id }),
            ..b
        });
        tasks.sort_by_key(|t| t.id);
        let mut ids: Vec<Id> = find_stuck(&tasks, &[], DumpOptions::default(), 0)
            .iter()
            .map(Stuck::task)
            .collect();
        ids.sort();
        let mut expected: Vec<Id> = tasks
            .iter()
            .map(|t| t.id)
            .filter(|&id| id != accept && id != supervisor_id)
            .collect();
        expected.sort();
        assert_eq!(ids, expected);
    }

    /// A task a worker has been polling for at least 150 ms shows that on
    /// its own row, as its longest poll, and as running on that worker; a
    /// poll with no lower bound yet leaves the longest as it was.
    #[test]
    fn a_poll_in_progress_counts_in_the_tasks_longest_poll() {
        let mut tasks = [idle(None), idle(None)];
        for task in &mut tasks {
            task.state = TaskState::Running { worker: None };
            task.longest_poll_us = 7;
        }
        tasks.sort_by_key(|t| t.id);
        let workers = [
            polling(0, tasks[0].id, Some(150_000), 400_000),
            polling(1, tasks[1].id, None, 400_000),
        ];
        match_running(&mut tasks, &workers);
        assert_eq!(tasks[0].longest_poll_us, 150_000);
        assert_eq!(tasks[1].longest_poll_us, 7);
        assert!(matches!(tasks[0].state, TaskState::Running { worker: Some(0) }));
        assert!(matches!(tasks[1].state, TaskState::Running { worker: Some(1) }));
    }

    /// Only a poll seen in progress for the threshold is called blocking:
    /// the time since a busy worker last read its clock (the upper bound)
    /// also covers thousands of short polls (a user trial saw "a blocking
    /// call in async code?" for two workers each running 50 µs polls).
    #[test]
    fn only_a_poll_known_to_have_run_past_the_threshold_is_called_blocking() {
        let options = DumpOptions::default();
        let (a, b, c) = (Id::next(), Id::next(), Id::next());
        let workers = [
            polling(0, a, None, 250_000),
            polling(1, b, Some(150_000), 400_000),
            polling(2, c, Some(50_000), 400_000),
        ];
        let stuck = find_stuck(&[], &workers, options, 0);
        assert_eq!(stuck.len(), 1, "{stuck:?}");
        assert!(
            matches!(stuck[0], Stuck::Blocking { worker: 1, task, for_us: 150_000, .. } if task == b),
            "{stuck:?}"
        );
    }
}
