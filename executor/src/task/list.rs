//! The owned-task list: every live task of a scheduler, so that shutdown can
//! find and cancel the ones no queue holds (tasks waiting on a waker).
//!
//! The list is sharded by task id so that spawning on one worker and
//! completing on another rarely contend on one lock. Each shard is an
//! intrusive doubly linked list threaded through the task headers (no
//! allocation per task), guarded by its own mutex (rule 5 of
//! [`crate::task`]). The list holds one reference to every task in it.
//!
//! Closing the list is final: a task bound afterwards is cancelled on the
//! spot, so nothing can slip in behind a shutdown.
//!
//! Each shard also keeps the names of its named tasks (few tasks have one,
//! so the task's header only flags it) and counts the tasks ever bound to
//! it; a dump walks the shards one at a time, holding each lock only while
//! it copies that shard's records.

use super::core::Header;
use super::{Id, JoinHandle, Notified, Schedule, Task, new_task};
use crate::loom::{AtomicBool, Mutex, Ordering::*, lock};
use crate::trace::SpawnMeta;
use crossbeam_utils::CachePadded;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Every live task of one scheduler.
pub(crate) struct OwnedTasks<S: 'static> {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    shard_mask: usize,
    /// Set by the first `close`.
    closing: AtomicBool,
    /// Set once every shard is closed (see `close`).
    closed: AtomicBool,
    _scheduler: PhantomData<S>,
}

struct Shard {
    head: Option<NonNull<Header>>,
    len: usize,
    closed: bool,
    /// Tasks ever bound here (the `spawned_tasks` metric).
    bound: u64,
    /// The names of the named tasks in the shard.
    names: HashMap<Id, Box<str>>,
}

// SAFETY: the shard's pointers refer to tasks the list holds references to;
// tasks are `Send` (see `Task`), and the pointers are only followed under the
// shard's mutex (rule 5).
unsafe impl Send for Shard {}

impl<S: Schedule> OwnedTasks<S> {
    /// A list with at least `min_shards` shards (rounded up to a power of
    /// two).
    pub(crate) fn new(min_shards: usize) -> OwnedTasks<S> {
        let n = min_shards.max(1).next_power_of_two();
        let shards = (0..n)
            .map(|_| {
                CachePadded::new(Mutex::new(Shard {
                    head: None,
                    len: 0,
                    closed: false,
                    bound: 0,
                    names: HashMap::new(),
                }))
            })
            .collect();
        OwnedTasks {
            shards,
            shard_mask: n - 1,
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            _scheduler: PhantomData,
        }
    }

    /// Creates a task and adds it to the list. Returns its `JoinHandle` and,
    /// unless the list is closed (in which case the task is already
    /// cancelled), the `Notified` to schedule. `meta` gives the task's
    /// spawn location and name for dumps.
    pub(crate) fn bind<T>(
        &self,
        future: T,
        scheduler: S,
        id: Id,
        meta: SpawnMeta<'_>,
    ) -> (JoinHandle<T::Output>, Option<Notified<S>>)
    where
        T: Future + Send + 'static,
        T::Output: Send + 'static,
    {
        let (task, notified, join) = new_task(future, scheduler, id, meta.location, meta.name.is_some());
        let mut shard = lock(self.shard(id));
        if shard.closed {
            drop(shard);
            drop(notified);
            // Not in the list: `shutdown` cancels it and releases this
            // reference, which stood for the list's.
            task.shutdown();
            return (join, None);
        }
        shard.bound += 1;
        if let Some(name) = meta.name {
            // Named tasks are few: their name is copied under the lock
            // (as the map's own growth allocates there), so an unnamed
            // spawn carries no `Option<Box<str>>` to drop on every path.
            shard.names.insert(id, name.into());
        }
        // SAFETY: the shard lock is held and the task is not in any list.
        unsafe { shard.push_front(task.into_header_ptr()) };
        (join, Some(notified))
    }

    /// Removes a completed task; returns the list's reference, or `None` if
    /// the task is not in the list (shutdown took it out already).
    pub(crate) fn remove(&self, task: &Task<S>) -> Option<Task<S>> {
        let mut shard = lock(self.shard(task.id()));
        // SAFETY: the lock of the shard this task maps to is held; the
        // pointer is live since the caller holds a reference.
        let ptr = unsafe { shard.remove(task.header_ptr()) }?;
        // SAFETY: as above.
        shard.forget_name(unsafe { ptr.as_ref() });
        // SAFETY: the list held one reference to the task; it passes to the
        // returned `Task`.
        Some(unsafe { Task::from_header_ptr(ptr) })
    }

    /// Calls `f` with every task in the list and its name, one shard at a
    /// time under that shard's lock: `f` must only copy what it needs.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Header, Option<&str>)) {
        for shard in self.shards.iter() {
            let shard = lock(shard);
            let mut next = shard.head;
            while let Some(node) = next {
                // SAFETY: rule 5: the shard's lock is held, and every task
                // in the shard is live (the list holds a reference to it).
                let header = unsafe { node.as_ref() };
                let name = if header.record().is_named() {
                    shard.names.get(&header.id()).map(|n| &**n)
                } else {
                    None
                };
                f(header, name);
                // SAFETY: as above; the links are read under the lock.
                next = unsafe { (*header.owned_pointers()).next };
            }
        }
    }

    /// Tasks ever bound to the list.
    pub(crate) fn spawned(&self) -> u64 {
        self.shards.iter().map(|s| lock(s).bound).sum()
    }

    /// Closes the list: later `bind`s cancel their task at once. Returns true
    /// for the first call.
    ///
    /// Every caller marks every shard before it returns, and the flag that
    /// [`is_closed`](Self::is_closed) reads is published only after that: so
    /// whoever sees the list closed (and starts sweeping it) knows that no
    /// `bind` can add a task behind the sweep.
    pub(crate) fn close(&self) -> bool {
        let first = !self.closing.swap(true, AcqRel);
        for shard in self.shards.iter() {
            lock(shard).closed = true;
        }
        self.closed.store(true, Release);
        first
    }

    /// Cancels every task in the list (see `Task::shutdown`). Call after
    /// [`close`](Self::close); may be called from several threads at once,
    /// which then share the work. Futures are dropped outside the locks.
    pub(crate) fn shutdown_all(&self, start: usize) {
        debug_assert!(self.closed.load(Acquire), "weft bug: shutdown_all before close");
        let n = self.shards.len();
        for i in 0..n {
            let shard = &self.shards[(start + i) & self.shard_mask];
            loop {
                let task = {
                    let mut shard = lock(shard);
                    // SAFETY: the lock is held for the duration of the pop.
                    let task = unsafe { shard.pop_front() };
                    if let Some(ptr) = task {
                        // SAFETY: the list's reference keeps it alive.
                        shard.forget_name(unsafe { ptr.as_ref() });
                    }
                    task
                };
                match task {
                    // SAFETY: the popped pointer carries the list's
                    // reference.
                    Some(ptr) => unsafe { Task::<S>::from_header_ptr(ptr) }.shutdown(),
                    None => break,
                }
            }
        }
    }

    /// True once [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    /// The number of tasks in the list: spawned and not yet complete.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len).sum()
    }

    /// True if no task is in the list.
    pub(crate) fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| lock(s).head.is_none())
    }

    fn shard(&self, id: Id) -> &Mutex<Shard> {
        &self.shards[id.as_u64() as usize & self.shard_mask]
    }
}

impl Shard {
    /// Drops the name of a task leaving the shard.
    #[inline(always)]
    fn forget_name(&mut self, header: &Header) {
        // Most shards hold no name: then the header need not be read, and
        // the map's code stays out of the caller.
        if !self.names.is_empty() {
            self.forget_name_slow(header);
        }
    }

    #[cold]
    #[inline(never)]
    fn forget_name_slow(&mut self, header: &Header) {
        if header.record().is_named() {
            self.names.remove(&header.id());
        }
    }

    /// # Safety
    ///
    /// The shard's lock is held, `node` maps to this shard and is in no list.
    unsafe fn push_front(&mut self, node: NonNull<Header>) {
        // SAFETY: rule 5: the caller holds the shard lock; `node` and `head`
        // are live tasks of this shard.
        unsafe {
            let ptrs = &mut *node.as_ref().owned_pointers();
            debug_assert!(ptrs.prev.is_none() && ptrs.next.is_none());
            ptrs.next = self.head;
            if let Some(head) = self.head {
                (*head.as_ref().owned_pointers()).prev = Some(node);
            }
        }
        self.head = Some(node);
        self.len += 1;
    }

    /// # Safety
    ///
    /// The shard's lock is held.
    unsafe fn pop_front(&mut self) -> Option<NonNull<Header>> {
        let node = self.head?;
        // SAFETY: rule 5: the caller holds the lock; every node in the shard
        // is live because the list holds a reference to it.
        unsafe {
            let ptrs = &mut *node.as_ref().owned_pointers();
            self.head = ptrs.next.take();
            if let Some(next) = self.head {
                (*next.as_ref().owned_pointers()).prev = None;
            }
        }
        self.len -= 1;
        Some(node)
    }

    /// Unlinks `node` if it is in this shard.
    ///
    /// # Safety
    ///
    /// The shard's lock is held and `node` is a live task of this shard.
    unsafe fn remove(&mut self, node: NonNull<Header>) -> Option<NonNull<Header>> {
        // SAFETY: rule 5: the caller holds the lock; `node` is live and its
        // neighbours are live members of this shard.
        unsafe {
            let ptrs = &mut *node.as_ref().owned_pointers();
            match ptrs.prev {
                Some(prev) => (*prev.as_ref().owned_pointers()).next = ptrs.next,
                // No predecessor: either the head, or not in the list at all
                // (unlinked nodes have both links cleared).
                None if self.head == Some(node) => self.head = ptrs.next,
                None => return None,
            }
            if let Some(next) = ptrs.next {
                (*next.as_ref().owned_pointers()).prev = ptrs.prev;
            }
            ptrs.prev = None;
            ptrs.next = None;
        }
        self.len -= 1;
        Some(node)
    }
}

impl<S: 'static> Drop for OwnedTasks<S> {
    fn drop(&mut self) {
        // Every task holds its scheduler, which holds this list, so the list
        // can only be dropped once it is empty.
        debug_assert!(
            self.shards.iter().all(|s| lock(s).head.is_none()),
            "weft bug: owned-task list dropped while it still holds tasks"
        );
    }
}

impl<S: 'static> std::fmt::Debug for OwnedTasks<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedTasks")
            .field("shards", &self.shards.len())
            .field("closed", &self.closed.load(Relaxed))
            .finish()
    }
}
