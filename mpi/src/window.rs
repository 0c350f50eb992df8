//! [`Window`]: the progress engine's wake protocol (engine rules 6 and 7),
//! on its own so that loom can check it.
//!
//! Two counters, read without the MPI lock:
//!
//! - `pending`: requests and receives in flight;
//! - `quiet_polls`: loop polls since the last post or completion; the
//!   *window* is open while it is below [`SPIN_POLLS`].
//!
//! The loop keeps polling (never sleeps) while [`Window::has_work`]: work is
//! pending or the window is open. A poster counts its work pending and then
//! reopens the window with [`Window::active`], which says whether the
//! window had closed, in which case the loop may be asleep (no bound on its
//! sleep if nothing was pending) and the poster must wake it.
//!
//! **No lost wake-up**: the loop reads `pending` and then the window before
//! sleeping; a poster writes `pending` and then swaps the window. All four
//! accesses are `SeqCst`, so in their single total order one side sees the
//! other: either the loop sees the work (and polls), or the poster sees the
//! closed window (and wakes the loop). `loom_tests` checks it.

use crate::loom::{AtomicU64, AtomicUsize, Ordering::*};

/// Loop polls without sleeping after the last post or completion (about a
/// millisecond of polls); a shorter window under loom keeps models small.
#[cfg(not(loom))]
pub(crate) const SPIN_POLLS: u64 = 4096;
#[cfg(loom)]
pub(crate) const SPIN_POLLS: u64 = 2;

/// See the module docs.
pub(crate) struct Window {
    pending: AtomicUsize,
    quiet_polls: AtomicU64,
}

impl Window {
    /// Nothing pending, the window closed.
    pub(crate) fn new() -> Window {
        Window {
            pending: AtomicUsize::new(0),
            quiet_polls: AtomicU64::new(SPIN_POLLS),
        }
    }

    /// Work in flight now.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(SeqCst)
    }

    /// One more request or receive in flight (before [`active`](Self::active)).
    pub(crate) fn add_pending(&self) {
        self.pending.fetch_add(1, SeqCst);
    }

    /// `n` fewer in flight.
    pub(crate) fn sub_pending(&self, n: usize) {
        self.pending.fetch_sub(n, SeqCst);
    }

    /// The loop polled once.
    pub(crate) fn polled(&self) {
        self.quiet_polls.fetch_add(1, SeqCst);
    }

    /// True while the window is open.
    pub(crate) fn spinning(&self) -> bool {
        self.quiet_polls.load(SeqCst) < SPIN_POLLS
    }

    /// The loop's question before it sleeps: is there a reason to poll?
    pub(crate) fn has_work(&self) -> bool {
        self.pending() > 0 || self.spinning()
    }

    /// A post or a completion: reopens the window. True if it had closed,
    /// so the loop may be asleep and the caller (a poster) must wake it.
    pub(crate) fn active(&self) -> bool {
        self.quiet_polls.swap(0, SeqCst) >= SPIN_POLLS
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{AtomicBool, thread};
    use std::sync::Arc;

    /// A poster posts while the loop, after some quiet polls, decides
    /// whether to sleep: if it sleeps, it was woken.
    #[test]
    fn a_post_never_meets_a_loop_asleep_without_waking_it() {
        for open in [false, true] {
            loom::model(move || {
                let window = Arc::new(Window::new());
                if open {
                    // The window was open; the loop's polls close it.
                    window.active();
                }
                let woken = Arc::new(AtomicBool::new(false));
                let poster = {
                    let (window, woken) = (window.clone(), woken.clone());
                    thread::spawn(move || {
                        window.add_pending();
                        if window.active() {
                            woken.store(true, SeqCst);
                        }
                    })
                };
                for _ in 0..SPIN_POLLS {
                    window.polled();
                }
                let sleeps = !window.has_work();
                poster.join().unwrap();
                if sleeps {
                    assert!(woken.load(SeqCst), "the loop slept through a post");
                }
            });
        }
    }
}
