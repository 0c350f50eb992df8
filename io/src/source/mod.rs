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
//! so the reactor adapts, per source:
//!
//! - While completions keep arriving, the loop does not sleep at all: it
//!   polls the source every turn (completions tend to come in bursts).
//! - After a poll finds nothing, it stays eager for [`EAGER_TURNS`] more
//!   turns (or the source's [`eager_turns`](Source::eager_turns)), then
//!   lets the loop sleep 1 ms, 2 ms, 4 ms... up to the source's
//!   [`max_sleep`](Source::max_sleep) (default [`DEFAULT_MAX_SLEEP`]).
//! - With nothing pending, the source does not bound the sleep at all.
//!
//! A source that gets new work while the loop sleeps should wake the loop
//! ([`SourceHandle::notify`]) so the new work is polled at once.
//!
//! For work that *does* end on some thread (a callback from a driver
//! thread, a blocking pool), the [`Notifier`] hands the result to the loop
//! without any polling.

mod notifier;

pub use self::notifier::{Abandoned, Completer, Completion, Notifier};

use crate::driver::Handle;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Turns a source stays eager after its last completion.
pub const EAGER_TURNS: u32 = 64;

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
    /// false. Called every turn, under the reactor's source list lock: it
    /// must be cheap, and must not register or drop sources.
    fn has_pending(&self) -> bool;

    /// The longest the loop may sleep while work is pending, once
    /// completions have stopped arriving.
    fn max_sleep(&self) -> Duration {
        DEFAULT_MAX_SLEEP
    }

    /// Turns the loop keeps polling without sleeping after a poll finds
    /// nothing (default [`EAGER_TURNS`]). A source whose completions are
    /// *signalled* (a host callback wakes the loop through the
    /// [`Notifier`]) and that polls only as a watchdog returns 0: the loop
    /// then sleeps up to [`max_sleep`](Source::max_sleep) at once instead
    /// of spinning.
    fn eager_turns(&self) -> u32 {
        EAGER_TURNS
    }

    /// The reactor is shutting down and will never poll again: fail or
    /// abandon pending work, waking its tasks. Called once, on the loop's
    /// thread; the source is then dropped by the reactor.
    fn shutdown(&self) {}
}

/// The sources of one reactor.
#[derive(Default)]
pub(crate) struct Sources {
    entries: Mutex<Vec<Entry>>,
    next_id: Mutex<u64>,
}

struct Entry {
    id: u64,
    source: Arc<dyn Source>,
    /// Polls in a row that found nothing.
    idle_polls: u32,
}

impl Sources {
    fn entries(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The longest the loop may sleep given the sources' state.
    pub(crate) fn max_wait(&self) -> Option<Duration> {
        self.entries()
            .iter()
            .filter(|e| e.source.has_pending())
            .map(|e| backoff(e.idle_polls, e.source.eager_turns(), e.source.max_sleep()))
            .min()
    }

    /// Polls every source with work pending. `scratch` is the caller's
    /// reusable buffer.
    pub(crate) fn poll_pending(&self, scratch: &mut Vec<(u64, Arc<dyn Source>)>) {
        // Poll outside the lock: a source may wake tasks, and a woken task's
        // code may register or drop a source.
        {
            let entries = self.entries();
            if entries.is_empty() {
                return;
            }
            scratch.extend(
                entries
                    .iter()
                    .filter(|e| e.source.has_pending())
                    .map(|e| (e.id, e.source.clone())),
            );
        }
        for (id, source) in scratch.drain(..) {
            // A panicking source must not take the loop's thread with it;
            // the panic hook has already reported it.
            let completed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.poll())).unwrap_or(0);
            if let Some(entry) = self.entries().iter_mut().find(|e| e.id == id) {
                entry.idle_polls = if completed > 0 {
                    0
                } else {
                    entry.idle_polls.saturating_add(1)
                };
            }
        }
    }

    fn add(&self, source: Arc<dyn Source>) -> u64 {
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        self.entries().push(Entry {
            id,
            source,
            idle_polls: 0,
        });
        id
    }

    fn remove(&self, id: u64) {
        self.entries().retain(|e| e.id != id);
    }

    /// New work arrived: poll eagerly again.
    fn kick(&self, id: u64) {
        if let Some(entry) = self.entries().iter_mut().find(|e| e.id == id) {
            entry.idle_polls = 0;
        }
    }

    /// Tells every source the loop is gone, then drops them (a source that
    /// holds a handle to the reactor would otherwise keep it alive).
    pub(crate) fn shutdown(&self) {
        let entries = std::mem::take(&mut *self.entries());
        for entry in entries {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.source.shutdown()));
        }
    }
}

/// How long the loop may sleep after `idle_polls` empty polls of a source
/// that stays eager for `eager` turns.
fn backoff(idle_polls: u32, eager: u32, max: Duration) -> Duration {
    if idle_polls < eager {
        return Duration::ZERO;
    }
    let doublings = (idle_polls - eager).min(20);
    Duration::from_millis(1u64 << doublings).min(max)
}

impl Handle {
    /// Adds a source to this reactor's loop; it is polled while it has
    /// work pending, until the returned handle is dropped.
    pub fn register_source(&self, source: Arc<dyn Source>) -> SourceHandle {
        let id = self.inner.sources.add(source);
        self.inner.wake();
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
        self.handle.inner.sources.remove(self.id);
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

    #[test]
    fn backoff_stays_eager_then_doubles_up_to_the_bound() {
        let max = Duration::from_millis(10);
        let e = EAGER_TURNS;
        assert_eq!(backoff(0, e, max), Duration::ZERO);
        assert_eq!(backoff(e - 1, e, max), Duration::ZERO);
        assert_eq!(backoff(e, e, max), Duration::from_millis(1));
        assert_eq!(backoff(e + 1, e, max), Duration::from_millis(2));
        assert_eq!(backoff(e + 3, e, max), Duration::from_millis(8));
        assert_eq!(backoff(e + 4, e, max), max);
        assert_eq!(backoff(u32::MAX, e, max), max);
    }

    #[test]
    fn a_signalled_source_never_spins() {
        let max = Duration::from_micros(500);
        assert_eq!(backoff(0, 0, max), max);
        assert_eq!(backoff(0, 0, Duration::from_millis(4)), Duration::from_millis(1));
        assert_eq!(backoff(2, 0, Duration::from_millis(4)), Duration::from_millis(4));
    }
}
