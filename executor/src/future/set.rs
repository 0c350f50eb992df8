//! [`FutureSet`]: many futures polled in place by one task, each with its
//! own waker, so a wake polls only the future it names. The one engine
//! behind `gather`, `wait`, `as_completed`, `race` and `TaskGroup`.
//!
//! # How a wake finds its future
//!
//! Every future sits in a slot with a [`ChildWaker`] that knows the slot's
//! index. Waking it pushes the index onto the set's ready list (once: the
//! `queued` flag) and wakes the task that owns the set. That task's
//! `poll_next` pops indices and polls only those futures: a set of ten
//! thousand promises where one settles costs one poll, not ten thousand.

use crate::loom::{Mutex, lock};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::task::{Context, Poll, Wake, Waker};

/// Futures polled in a row before `poll_next` yields to its caller's
/// scheduler (so futures that keep waking themselves cannot starve it).
const POLL_BUDGET: usize = 64;

/// A set of futures that yields their outputs in completion order, with the
/// index each was pushed at.
pub(crate) struct FutureSet<F: Future> {
    slots: Vec<Option<Slot<F>>>,
    free: Vec<usize>,
    ready: Arc<ReadyList>,
    len: usize,
}

struct Slot<F> {
    future: Pin<Box<F>>,
    child: Arc<ChildWaker>,
    waker: Waker,
}

struct ReadyList {
    inner: Mutex<ReadyInner>,
}

struct ReadyInner {
    indices: VecDeque<usize>,
    parent: Option<Waker>,
}

struct ChildWaker {
    index: usize,
    queued: AtomicBool,
    list: Arc<ReadyList>,
}

impl Wake for ChildWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, AcqRel) {
            return;
        }
        let parent = {
            let mut inner = lock(&self.list.inner);
            inner.indices.push_back(self.index);
            inner.parent.clone()
        };
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

impl<F: Future> FromIterator<F> for FutureSet<F> {
    /// A set holding `futures`, at indices in iteration order.
    fn from_iter<I: IntoIterator<Item = F>>(futures: I) -> FutureSet<F> {
        let mut set = FutureSet::new();
        for future in futures {
            set.push(future);
        }
        set
    }
}

impl<F: Future> FutureSet<F> {
    pub(crate) fn new() -> FutureSet<F> {
        FutureSet {
            slots: Vec::new(),
            free: Vec::new(),
            ready: Arc::new(ReadyList {
                inner: Mutex::new(ReadyInner {
                    indices: VecDeque::new(),
                    parent: None,
                }),
            }),
            len: 0,
        }
    }

    /// Adds a future (polled at the next `poll_next`) and returns its index.
    pub(crate) fn push(&mut self, future: F) -> usize {
        let index = self.free.pop().unwrap_or(self.slots.len());
        let child = Arc::new(ChildWaker {
            index,
            queued: AtomicBool::new(false),
            list: self.ready.clone(),
        });
        let waker = Waker::from(child.clone());
        let slot = Slot {
            future: Box::pin(future),
            child,
            waker,
        };
        if index == self.slots.len() {
            self.slots.push(Some(slot));
        } else {
            self.slots[index] = Some(slot);
        }
        self.len += 1;
        // Queue it for its first poll.
        self.slots[index].as_ref().expect("just stored").waker.wake_by_ref();
        index
    }

    /// Futures still in the set.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next output in completion order; `Ready(None)` once the set is
    /// empty.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, F::Output)>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        {
            let mut inner = lock(&self.ready.inner);
            match &mut inner.parent {
                Some(parent) => parent.clone_from(cx.waker()),
                none => *none = Some(cx.waker().clone()),
            }
        }
        for _ in 0..POLL_BUDGET {
            let Some(index) = lock(&self.ready.inner).indices.pop_front() else {
                return Poll::Pending;
            };
            // A stale wake of a slot that finished (or was reused) costs one
            // spurious poll at most.
            let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            slot.child.queued.store(false, Release);
            let mut child_cx = Context::from_waker(&slot.waker);
            if let Poll::Ready(output) = slot.future.as_mut().poll(&mut child_cx) {
                self.slots[index] = None;
                self.free.push(index);
                self.len -= 1;
                return Poll::Ready(Some((index, output)));
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Takes the futures still pending out of the set, with their indices.
    pub(crate) fn drain(&mut self) -> Vec<(usize, Pin<Box<F>>)> {
        self.len = 0;
        self.free.clear();
        lock(&self.ready.inner).indices.clear();
        std::mem::take(&mut self.slots)
            .into_iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.map(|s| (i, s.future)))
            .collect()
    }

    /// Runs `f` on every future still pending.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&F)) {
        for slot in self.slots.iter().flatten() {
            f(&slot.future);
        }
    }
}
