//! [`WakeList`]: wakers collected under a lock and woken after it is
//! released, without a heap allocation for the common few.

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

    /// Wakes them all, in the order pushed.
    pub(crate) fn wake_all(self) {
        for waker in self.inline.into_iter().flatten() {
            waker.wake();
        }
        for waker in self.spill {
            waker.wake();
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
