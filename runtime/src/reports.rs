//! Seeing what the runtime does: the reactor's reports routed to the
//! executor's records, and the trace file a runtime writes.
//!
//! The reactor and weft-sync know no tasks and the executor no sockets or
//! locks; this file joins them (as `driver.rs` joins parking to the
//! reactor): what io reports a task waits on (a socket, a timer, a signal,
//! a completion, a source's operation) and what weft-sync reports (a lock,
//! a channel, an event) become the task's [`WaitOn`] in dumps, and the
//! reactor's turns, timer firings and source operations go on the
//! timeline.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use weft_executor::dump::{IoDirection, WaitOn, note_wait, note_wait_with};
use weft_executor::timeline::{self, Timeline, TurnCounts};
use weft_io::driver::Direction;
use weft_io::observe::{Event, Hooks, Wait};

/// The environment variable that makes every runtime of the process write a
/// trace: `WEFT_TRACE=path.json`.
pub const TRACE_ENV: &str = "WEFT_TRACE";

/// Routes io's and weft-sync's reports to the executor (once per
/// process).
pub(crate) fn install() {
    weft_io::observe::install(Hooks {
        waiting,
        recording: timeline::is_recording,
        event,
    });
    weft_sync::observe::install(sync_waiting);
}

fn sync_waiting(primitive: &'static str, address: usize) {
    note_wait(WaitOn::Sync { primitive, address });
}

fn waiting(wait: Wait) {
    // Described only if the poll has no wait yet: a timer's deadline costs
    // a conversion, and hyper's reads arm one behind each `Pending` read.
    note_wait_with(move || {
        Some(match wait {
            Wait::Io { fd, direction } => WaitOn::Io {
                fd,
                direction: match direction {
                    Direction::Read => IoDirection::Read,
                    Direction::Write => IoDirection::Write,
                },
            },
            Wait::Timer { deadline } => WaitOn::timer(deadline),
            Wait::Source { source, id } => WaitOn::Source { source, id },
            Wait::Signal { signal } => WaitOn::Signal { signal },
            Wait::Completion => WaitOn::Completion,
            _ => return None,
        })
    });
}

fn event(event: Event) {
    match event {
        Event::Turn {
            start,
            end,
            events,
            timers,
            completions,
            sources,
        } => timeline::reactor_turn(
            start,
            end,
            TurnCounts {
                events,
                timers,
                completions,
                sources,
            },
        ),
        Event::TimersFired { count } => timeline::timers_fired(count),
        Event::OpSubmitted {
            source,
            track_label,
            track,
            name,
            id,
        } => timeline::op_submitted(source, track_label, track, name, id),
        Event::OpCompleted { source, id, ok } => timeline::op_completed(source, id, ok),
        _ => {}
    }
}

/// Where a runtime writes its trace at shutdown: the builder's path, or
/// else `WEFT_TRACE`'s (the second runtime of a process that reads it writes
/// `name.2.json`, the third `name.3.json`, and so on).
pub(crate) fn trace_path(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return Some(path.to_owned());
    }
    let path = PathBuf::from(std::env::var_os(TRACE_ENV).filter(|v| !v.is_empty())?);
    static RUNTIMES: AtomicUsize = AtomicUsize::new(0);
    let n = RUNTIMES.fetch_add(1, Relaxed) + 1;
    if n == 1 {
        return Some(path);
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{n}"),
    };
    Some(path.with_file_name(name))
}

/// The viewer page written next to a trace at `path`: `trace.json` →
/// `trace.html`.
pub fn viewer_path(path: &Path) -> PathBuf {
    path.with_extension("html")
}

/// Checks, when the runtime is built, that its trace and viewer can be
/// written at shutdown: creates them (empty, or leaves them as they are).
pub(crate) fn check_trace_path(path: &Path) -> io::Result<()> {
    for file in [path.to_owned(), viewer_path(path)] {
        std::fs::OpenOptions::new().append(true).create(true).open(file)?;
    }
    Ok(())
}

/// Writes `timeline` to `path` as a Chrome trace, and next to it
/// ([`viewer_path`]) Weft's offline viewer with the trace inside.
pub(crate) fn write_trace(timeline: &Timeline, path: &Path) -> io::Result<()> {
    let json = timeline.to_chrome_json();
    std::fs::write(path, &json)?;
    let viewer = viewer_path(path);
    if viewer != path {
        std::fs::write(viewer, timeline::viewer_with_trace(&json))?;
    }
    Ok(())
}
