//! [`WakeList`]: wakers collected under a lock and woken after it is
//! released, without a heap allocation for the common few.
//!
//! Its rule: **every waker in the list is woken**, even if waking one of
//! them panics (user code: a waker's `wake`); the first panic is resumed
//! once all are woken, so no notification is lost to another's panic.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::task::Waker;

/// Wakers kept inline before spilling to the heap.
const INLINE: usize = 4;

/// A list of wakers to wake once the lock that found them is released.
pub(crate) struct WakeList {
    inline: [Option<Waker>; INLINE],
    len: usize,
    spill: Vec<Waker>,
}

impl WakeList {
    pub(crate) fn new() -> WakeList {
        WakeList {
            inline: [None, None, None, None],
            len: 0,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, waker: Waker) {
        if self.len < INLINE {
            self.inline[self.len] = Some(waker);
            self.len += 1;
        } else {
            self.spill.push(waker);
        }
    }

    /// Wakes them all, in the order pushed; if a wake panics, wakes the
    /// rest and then resumes that panic.
    pub(crate) fn wake_all(self) {
        let mut panic = None;
        for waker in self.inline.into_iter().flatten().chain(self.spill) {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
                match panic {
                    None => panic = Some(payload),
                    // A second panic: its payload is dropped, and a payload
                    // whose destructor panics is leaked instead.
                    Some(_) => {
                        if let Err(inner) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                            std::mem::forget(inner);
                        }
                    }
                }
            }
        }
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

impl Extend<Waker> for WakeList {
    fn extend<I: IntoIterator<Item = Waker>>(&mut self, wakers: I) {
        for waker in wakers {
            self.push(waker);
        }
    }
}

/// Stores `waker` in `slot`, cloning only if the slot does not already hold
/// one that wakes the same task.
#[inline]
pub(crate) fn set_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(current) => current.clone_from(waker),
        none => *none = Some(waker.clone()),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::WakeList;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Wake, Waker};

    struct Waking {
        panics: bool,
        woken: AtomicUsize,
    }

    impl Wake for Waking {
        fn wake(self: Arc<Self>) {
            self.woken.fetch_add(1, SeqCst);
            assert!(!self.panics, "weft-sync test: a waker whose wake panics");
        }
    }

    #[test]
    fn a_panicking_wake_does_not_cost_the_others_their_wake() {
        let wakers: Vec<_> = (0..7)
            .map(|i| {
                Arc::new(Waking {
                    panics: i == 1 || i == 5,
                    woken: AtomicUsize::new(0),
                })
            })
            .collect();
        let mut list = WakeList::new();
        list.extend(wakers.iter().map(|w| Waker::from(w.clone())));
        assert!(
            catch_unwind(AssertUnwindSafe(|| list.wake_all())).is_err(),
            "the panic is resumed"
        );
        assert!(
            wakers.iter().all(|w| w.woken.load(SeqCst) == 1),
            "every waker was woken once"
        );
    }
}
