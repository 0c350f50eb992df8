//! The timeline: what every thread of a runtime did, and when, as a Chrome
//! trace (the JSON that Perfetto, `chrome://tracing` and Weft's own offline
//! viewer open).
//!
//! A runtime built with a timeline
//! ([`Builder::timeline`](crate::Builder::timeline); the `weft` crate also
//! turns it on with `WEFT_TRACE=path.json`) records, per thread:
//!
//! - a slice for every task poll, named by the task's name or spawn
//!   location;
//! - a slice for every park (`park`, or `park (driver)` when the thread
//!   waited in the reactor), and inside it the reactor's turn with the
//!   events, timers, completions and sources it served;
//! - a flow arrow for every wake, from the slice that woke the task to the
//!   poll the wake caused, and for every steal, from the victim to the
//!   thief's next poll;
//! - an instant for every turn that fires timers, with how many;
//! - operations of reactor sources (GPU operations per stream, MPI requests
//!   per peer), from submitted to completed, on tracks of their own.
//!
//! # Bound
//!
//! Each thread keeps its latest [`DEFAULT_CAPACITY`] events (the
//! capacity is a setting): 40 bytes each, so at most 2.5 MiB per thread
//! with the default, whatever the run's length; older events are dropped,
//! and the file says how many. Threads of the blocking pool that exit keep
//! their track until the runtime is dropped.
//!
//! # Cost
//!
//! Off (the default), each poll tests one field of the worker's record and
//! each wake one global flag; nothing is allocated or locked. On, each poll
//! reads the clock twice and appends one event to its thread's ring (an
//! uncontended lock); a wake, a park or a steal appends one.
//!
//! # Threads that are not the runtime's
//!
//! A wake from a thread with no track of its own (the thread in
//! `block_on`, a plain thread that has the runtime current) goes on the
//! runtime's `other threads` track; a thread with no runtime at all has
//! nowhere to record it, and the woken poll then has no arrow.

mod chrome;
mod viewer;

pub use self::viewer::{VIEWER_HTML, viewer_with_trace};

use crate::context;
use crate::dump::wait::intern;
use crate::loom::{Mutex, lock};
use crate::observe::clock;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::Location;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::time::Instant;

/// Events each thread keeps by default.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// How many timelines are recording in this process: wakes look at this
/// before anything else.
static RECORDING: AtomicUsize = AtomicUsize::new(0);

std::thread_local! {
    /// The track of the runtime thread running here, if its runtime
    /// records a timeline.
    static TRACK: std::cell::RefCell<Option<Arc<Track>>> = const { std::cell::RefCell::new(None) };
}

/// A runtime's timeline: every thread's track. Cloning it is cheap (it is a
/// handle), and it stays readable after the runtime is gone.
///
/// ```
/// let rt = weft_executor::Builder::new_multi_thread().worker_threads(2).timeline(4096).build()?;
/// rt.block_on(async { weft_executor::spawn(async { 1 + 1 }).await.unwrap() });
/// let timeline = rt.handle().timeline().expect("the runtime records one");
/// // A poll's slice is recorded as the poll returns, before the task's
/// // completion wakes `block_on`: the timeline holds it already.
/// let json = timeline.to_chrome_json();
/// assert!(json.starts_with("{\"traceEvents\":["));
/// assert!(json.contains("\"cat\":\"poll\""));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Timeline {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    tracks: Mutex<Vec<Arc<Track>>>,
    /// Wakes from threads that have no track of their own.
    others: Arc<Track>,
    next_tid: AtomicU64,
}

/// One thread's ring of events.
pub(crate) struct Track {
    tid: u64,
    name: String,
    ring: Mutex<Ring>,
}

struct Ring {
    events: VecDeque<Event>,
    capacity: usize,
    dropped: u64,
}

/// What happened. Times are nanoseconds since the observation epoch.
#[derive(Clone)]
pub(crate) enum Event {
    /// A task's poll.
    Poll {
        task: u64,
        poll: u32,
        location: &'static Location<'static>,
        start: u64,
        end: u64,
    },
    /// The thread was parked; `driver`: it waited in the reactor.
    Park { start: u64, end: u64, driver: bool },
    /// A task was woken; its poll number `poll` will follow.
    Wake { task: u64, poll: u32, at: u64 },
    /// This thread stole `tasks` tasks from the thread whose track is
    /// `victim`.
    Steal { victim: u64, tasks: u32, at: u64 },
    /// A turn of the reactor.
    Turn { start: u64, end: u64, counts: TurnCounts },
    /// `count` timers fired.
    Timer { at: u64, count: u32 },
    /// A source's operation was submitted (`source` and `name` are
    /// interned: `dump::wait::intern`).
    OpBegin {
        source: u32,
        name: u32,
        track_label: u32,
        track: u64,
        id: u64,
        at: u64,
    },
    /// A source's operation completed.
    OpEnd { source: u32, id: u64, ok: bool, at: u64 },
    /// A task was given a name.
    Named { task: u64, name: Box<str> },
}

/// What one reactor turn served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnCounts {
    /// Readiness events delivered.
    pub events: u32,
    /// Timers fired.
    pub timers: u32,
    /// Completions delivered from other threads.
    pub completions: u32,
    /// Sources polled.
    pub sources: u32,
}

impl Timeline {
    /// A timeline whose threads keep `capacity` events each.
    pub(crate) fn new(capacity: usize) -> Timeline {
        let capacity = capacity.max(1);
        RECORDING.fetch_add(1, Relaxed);
        let others = Arc::new(Track::new(0, "other threads".to_owned(), capacity));
        Timeline {
            inner: Arc::new(Inner {
                capacity,
                tracks: Mutex::new(vec![others.clone()]),
                others,
                next_tid: AtomicU64::new(1),
            }),
        }
    }

    /// A new track for a runtime thread named `name`.
    pub(crate) fn track(&self, name: String) -> Arc<Track> {
        let tid = self.inner.next_tid.fetch_add(1, Relaxed);
        let track = Arc::new(Track::new(tid, name, self.inner.capacity));
        lock(&self.inner.tracks).push(track.clone());
        track
    }

    /// The track for threads that have none of their own.
    pub(crate) fn others(&self) -> &Arc<Track> {
        &self.inner.others
    }

    /// Events each thread keeps.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Events dropped so far because a thread's ring was full.
    pub fn dropped(&self) -> u64 {
        lock(&self.inner.tracks).iter().map(|t| lock(&t.ring).dropped).sum()
    }

    /// Everything recorded so far, as a Chrome trace (JSON).
    pub fn to_chrome_json(&self) -> String {
        let tracks: Vec<_> = lock(&self.inner.tracks).clone();
        let snapshot: Vec<chrome::TrackEvents> = tracks
            .iter()
            .map(|t| {
                let ring = lock(&t.ring);
                chrome::TrackEvents {
                    tid: t.tid,
                    name: t.name.clone(),
                    events: ring.events.iter().cloned().collect(),
                    dropped: ring.dropped,
                }
            })
            .collect();
        chrome::write(&snapshot)
    }

    /// Writes [`to_chrome_json`](Self::to_chrome_json) to `path`.
    ///
    /// # Errors
    ///
    /// The file system's.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_chrome_json())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        RECORDING.fetch_sub(1, Relaxed);
    }
}

impl fmt::Debug for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeline")
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

impl Track {
    fn new(tid: u64, name: String, capacity: usize) -> Track {
        Track {
            tid,
            name,
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                capacity,
                dropped: 0,
            }),
        }
    }

    /// Appends an event, dropping the oldest if the ring is full.
    pub(crate) fn push(&self, event: Event) {
        let mut ring = lock(&self.ring);
        if ring.events.len() == ring.capacity {
            ring.events.pop_front();
            ring.dropped += 1;
        }
        ring.events.push_back(event);
    }

    /// A poll of `task` (its `poll`th) ran from `start` to `end` (ns).
    pub(crate) fn poll(
        &self,
        task: crate::task::Id,
        poll: u32,
        location: &'static Location<'static>,
        start: u64,
        end: u64,
    ) {
        self.push(Event::Poll {
            task: task.as_u64(),
            poll,
            location,
            start,
            end,
        });
    }

    /// The thread was parked from `since` to `now` (ns).
    pub(crate) fn park(&self, since: u64, now: u64, driver: bool) {
        self.push(Event::Park {
            start: since,
            end: now,
            driver,
        });
    }
}

/// Makes `track` this thread's until [`leave_thread`] (a runtime thread
/// calls it when it starts).
pub(crate) fn enter_thread(track: Option<Arc<Track>>) {
    if track.is_some() {
        let _ = TRACK.try_with(|t| *t.borrow_mut() = track);
    }
}

/// Forgets this thread's track.
pub(crate) fn leave_thread() {
    let _ = TRACK.try_with(|t| t.borrow_mut().take());
}

/// True if some timeline in the process records: the one check the hot
/// paths make.
#[inline]
pub fn is_recording() -> bool {
    RECORDING.load(Relaxed) != 0
}

/// Runs `f` with the track that events on this thread go to: its own, or
/// the `other threads` track of the runtime current here.
fn with_track(f: impl FnOnce(&Track)) {
    let done = TRACK
        .try_with(|t| match &*t.borrow() {
            Some(track) => {
                f(track);
                None
            }
            None => Some(f),
        })
        .unwrap_or(None);
    if let Some(f) = done {
        let _ = context::with_current(|handle| {
            if let Some(timeline) = handle.timeline() {
                f(timeline.others());
            }
        });
    }
}

/// A task was woken; `poll` is the number of the poll the wake will cause.
#[inline]
pub(crate) fn wake(task: crate::task::Id, poll: u32) {
    if is_recording() {
        with_track(|track| {
            track.push(Event::Wake {
                task: task.as_u64(),
                poll,
                at: clock::now_ns(),
            })
        });
    }
}

/// This thread stole `tasks` tasks from the thread whose track is `victim`.
pub(crate) fn steal(victim: &Track, tasks: u64) {
    if is_recording() {
        let victim = victim.tid;
        with_track(|track| {
            track.push(Event::Steal {
                victim,
                tasks: tasks as u32,
                at: clock::now_ns(),
            })
        });
    }
}

/// Task `task` was spawned with a name.
pub(crate) fn named(task: crate::task::Id, name: &str) {
    if is_recording() {
        with_track(|track| {
            track.push(Event::Named {
                task: task.as_u64(),
                name: name.into(),
            })
        });
    }
}

/// Records a turn of the reactor that ran on this thread from `start` to
/// `end` (for the runtime crate, which sees the reactor). Does nothing on a
/// thread that records no timeline.
pub fn reactor_turn(start: Instant, end: Instant, counts: TurnCounts) {
    if is_recording() {
        with_track(|track| {
            track.push(Event::Turn {
                start: clock::to_ns(start),
                end: clock::to_ns(end),
                counts,
            })
        });
    }
}

/// Records that `count` timers fired now, on this thread.
pub fn timers_fired(count: u32) {
    if is_recording() {
        with_track(|track| {
            track.push(Event::Timer {
                at: clock::now_ns(),
                count,
            })
        });
    }
}

/// Records that a reactor source (`source`: `"gpu"`, `"mpi"`) accepted
/// operation `id` (unique within the source), named `name` (`"kernel"`,
/// `"isend"`), on one of its tracks: `track_label` and `track` name it
/// (`"stream"` 3, `"peer"` 1).
pub fn op_submitted(source: &'static str, track_label: &'static str, track: u64, name: &'static str, id: u64) {
    if is_recording() {
        with_track(|t| {
            t.push(Event::OpBegin {
                source: intern(source),
                name: intern(name),
                track_label: intern(track_label),
                track,
                id,
                at: clock::now_ns(),
            })
        });
    }
}

/// Records that operation `id` of `source` completed (`ok`: without an
/// error).
pub fn op_completed(source: &'static str, id: u64, ok: bool) {
    if is_recording() {
        with_track(|t| {
            t.push(Event::OpEnd {
                source: intern(source),
                id,
                ok,
                at: clock::now_ns(),
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_drops_its_oldest_events_and_counts_them() {
        let timeline = Timeline::new(3);
        let track = timeline.track("t".into());
        for i in 0..5 {
            track.push(Event::Timer { at: i, count: 1 });
        }
        let ring = lock(&track.ring);
        assert_eq!(ring.events.len(), 3);
        assert_eq!(ring.dropped, 2);
        assert!(matches!(ring.events.front(), Some(Event::Timer { at: 2, .. })));
    }

    #[test]
    fn an_event_is_forty_bytes() {
        assert!(std::mem::size_of::<Event>() <= 40, "{}", std::mem::size_of::<Event>());
    }
}
