//! The core of a promise: one state word, a write-once outcome, and the list
//! of listeners (wakers and done callbacks) waiting for it.
//!
//! Everything a [`Promise`](super::Promise) does that can race goes through
//! [`Core`]: settling (`set_result`, `set_exception`, `cancel`, from any
//! thread), adding and removing listeners, and reading the outcome. The loom
//! models in `future/loom_tests.rs` check it through the crate's loom shim.
//!
//! # The state word
//!
//! | bit | set when | cleared |
//! | --- | --- | --- |
//! | `CLAIMED` | a settler won the race to write the outcome | never |
//! | `COMPLETE` | the outcome is written and may be read | never |
//! | `LISTENING` | a listener was pushed at some point | never |
//!
//! # Rules
//!
//! 1. **One writer.** Only the thread whose compare-and-swap set `CLAIMED`
//!    writes the outcome cell, and it does so before it sets `COMPLETE`.
//!    Every other settler loses and gets its value back.
//! 2. **Then read-only forever.** After a thread observes `COMPLETE` with
//!    `Acquire`, it may read the outcome through a shared reference; nothing
//!    writes it again until the core is dropped.
//! 3. **Adders hold the lock from the check to the push.** An adder locks the
//!    list, sets `LISTENING` with a `fetch_or` and, only if that returned no
//!    `COMPLETE`, pushes its listener before unlocking. Otherwise it keeps the
//!    listener and handles it itself (the promise is done).
//! 4. **The settler takes the list after setting `COMPLETE`**, under the lock,
//!    if it saw `LISTENING`. Every adder whose `fetch_or` came before
//!    `COMPLETE` held the lock across its push, so the settler's lock comes
//!    after that push; every later adder saw `COMPLETE`. Each listener is
//!    therefore handled exactly once: by the settler or by its adder. A
//!    settler that saw no `LISTENING` never touches the lock, which keeps a
//!    set-before-await round trip to two atomic operations.
//! 5. **Removal** happens under the lock and finds the listener only if the
//!    settler has not taken it yet.
//! 6. **Keys never collide.** The core numbers the listeners it keys itself
//!    from 0 up; a caller that brings its own keys ([`Core::add_keyed`])
//!    takes them from [`CALLER_KEYS`] and up, which the core's count never
//!    reaches. (The promise gives done callbacks process-wide unique keys,
//!    so an id from one promise can never name another's listener.)
//! 7. **User code under the lock leaves the list whole.** Listeners go in
//!    and come out whole, and a listener removed or taken is dropped or run
//!    by the caller after the lock is released. The one piece of user code
//!    run under the lock is [`Core::update`]'s closure (a waker's clone),
//!    which hands back what it replaces for the caller to drop outside; if
//!    it panics, the listener is still there under its key.

use crate::loom::{AtomicUsize, Mutex, Ordering::*, UnsafeCell, lock};
use std::mem::ManuallyDrop;
use std::sync::PoisonError;

const CLAIMED: usize = 0b001;
const COMPLETE: usize = 0b010;
const LISTENING: usize = 0b100;

/// A listener's key, unique within one core (rule 6).
pub(crate) type Key = u64;

/// The first key a caller may bring to [`Core::add_keyed`] (rule 6).
pub(crate) const CALLER_KEYS: Key = 1 << 63;

/// The write-once outcome and its listeners.
pub(crate) struct Core<T, L> {
    state: AtomicUsize,
    /// Written once under rule 1, read under rule 2.
    outcome: UnsafeCell<Option<T>>,
    /// The list is dropped by `Core`'s `Drop` only if a listener was ever
    /// pushed (`LISTENING`): a core nobody listened to (a promise set before
    /// it was awaited) has nothing in it to drop. The mutex itself is always
    /// dropped: where `std`'s mutex is a lazily boxed pthread mutex (macOS),
    /// a lock taken without a listener (`listener_count`, a `remove` of
    /// another promise's callback id) allocated it.
    listeners: Mutex<ManuallyDrop<Listeners<L>>>,
}

/// The listeners in the order they were added. The first lives inline, so
/// the common case (one awaiter) allocates nothing; `rest` holds the others,
/// boxed, so that a promise that never has two listeners carries one pointer
/// for them (a smaller core is also cheaper to make and drop).
struct Listeners<L> {
    next_key: Key,
    first: Option<(Key, L)>,
    // Boxed on purpose: one pointer in the core instead of a vector's three.
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<(Key, L)>>>,
}

impl<L> Listeners<L> {
    fn find(&mut self, key: Key) -> Option<&mut L> {
        if let Some((k, listener)) = &mut self.first {
            if *k == key {
                return Some(listener);
            }
        }
        self.rest.as_mut()?.iter_mut().find(|(k, _)| *k == key).map(|(_, l)| l)
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.as_ref().map_or(0, |rest| rest.len())
    }
}

/// The listeners a settler took, in the order they were added (a settler
/// that found no `LISTENING` takes none: it gets no `Taken` at all).
pub(crate) struct Taken<L> {
    first: Option<(Key, L)>,
    rest: Option<std::vec::IntoIter<(Key, L)>>,
}

#[cfg(test)]
impl<L> Taken<L> {
    const NONE: Taken<L> = Taken {
        first: None,
        rest: None,
    };
}

impl<L> Iterator for Taken<L> {
    type Item = L;

    fn next(&mut self) -> Option<L> {
        if let Some((_, listener)) = self.first.take() {
            return Some(listener);
        }
        self.rest.as_mut()?.next().map(|(_, listener)| listener)
    }
}

// SAFETY: the outcome is written by one thread (rule 1) before `COMPLETE` is
// published with `Release`, and only read after `COMPLETE` is observed with
// `Acquire` (rule 2), so sharing the core shares a `T` (needs `Sync`) and
// lets another thread drop it (needs `Send`). Listeners move between threads
// under the mutex.
unsafe impl<T: Send + Sync, L: Send> Sync for Core<T, L> {}
// SAFETY: as above: the core owns a `T` and `L`s, which may move threads.
unsafe impl<T: Send, L: Send> Send for Core<T, L> {}

impl<T, L> Core<T, L> {
    #[inline]
    pub(crate) fn new() -> Core<T, L> {
        Core {
            state: AtomicUsize::new(0),
            outcome: UnsafeCell::new(None),
            listeners: Mutex::new(ManuallyDrop::new(Listeners {
                next_key: 0,
                first: None,
                rest: None,
            })),
        }
    }

    /// True once the outcome can be read.
    pub(crate) fn is_complete(&self) -> bool {
        self.state.load(Acquire) & COMPLETE != 0
    }

    /// True once a settler has won (the outcome may still be being written).
    pub(crate) fn is_claimed(&self) -> bool {
        self.state.load(Acquire) & CLAIMED != 0
    }

    /// The outcome, if complete.
    pub(crate) fn outcome(&self) -> Option<&T> {
        if !self.is_complete() {
            return None;
        }
        // SAFETY: rule 2: `COMPLETE` was observed with `Acquire`, so the
        // single write of rule 1 happened before, and the cell is never
        // written again while `self` lives.
        self.outcome.with(|ptr| unsafe { (*ptr).as_ref() })
    }

    /// Settles the core with `outcome` and returns the listeners to notify,
    /// in the order they were added; or gives `outcome` back if another
    /// settler won. [`settle`](Self::settle) and
    /// [`take_listeners`](Self::take_listeners) in one call, for the tests
    /// and the loom models.
    #[cfg(test)]
    pub(crate) fn complete(&self, outcome: T) -> Result<Taken<L>, T> {
        Ok(if self.settle(outcome)? {
            self.take_listeners()
        } else {
            Taken::NONE
        })
    }

    /// Settles the core with `outcome`: true if listeners may be waiting,
    /// which the caller then takes with
    /// [`take_listeners`](Self::take_listeners) (rule 4); or gives `outcome`
    /// back if another settler won. The round trip of a promise set before
    /// it is awaited gets `false` back and never touches the list.
    #[inline]
    pub(crate) fn settle(&self, outcome: T) -> Result<bool, T> {
        if self.state.fetch_or(CLAIMED, AcqRel) & CLAIMED != 0 {
            return Err(outcome);
        }
        // SAFETY: rule 1: our `fetch_or` set `CLAIMED`, so we are the only
        // writer, and no reader looks before `COMPLETE`. The cell holds the
        // `None` it was made with, which owns nothing, so it is overwritten
        // without being dropped (no check of what it held).
        self.outcome.with_mut(|ptr| unsafe { ptr.write(Some(outcome)) });
        // `COMPLETE` is clear (only the one claimer sets it), so adding it
        // sets it: one `lock xadd` on x86, where a `fetch_or` whose old
        // value is read compiles to a compare-and-swap loop.
        let prev = self.state.fetch_add(COMPLETE, AcqRel);
        debug_assert!(prev & COMPLETE == 0, "weft bug: a promise completed twice");
        Ok(prev & LISTENING != 0)
    }

    /// Takes the listeners, in the order they were added. Only the settler
    /// calls it, once, after [`settle`](Self::settle) returned true.
    pub(crate) fn take_listeners(&self) -> Taken<L> {
        // Rule 4: every listener pushed before our `COMPLETE` is in the list
        // once we hold the lock.
        let mut listeners = lock(&self.listeners);
        Taken {
            first: listeners.first.take(),
            rest: listeners.rest.take().map(|rest| rest.into_iter()),
        }
    }

    /// Adds a listener and returns its key; gives it back if the core is
    /// already complete (the caller then handles it at once).
    pub(crate) fn add(&self, listener: L) -> Result<Key, L> {
        self.add_with(None, listener)
    }

    /// Adds a listener under `key`, which the caller takes from
    /// [`CALLER_KEYS`] and up and never uses twice (rule 6); gives it back
    /// if the core is already complete.
    pub(crate) fn add_keyed(&self, key: Key, listener: L) -> Result<(), L> {
        debug_assert!(key >= CALLER_KEYS, "weft bug: a caller's key in the core's own range");
        self.add_with(Some(key), listener).map(drop)
    }

    fn add_with(&self, key: Option<Key>, listener: L) -> Result<Key, L> {
        let mut listeners = lock(&self.listeners);
        // Rule 3: the check and the push under one lock.
        if self.state.fetch_or(LISTENING, AcqRel) & COMPLETE != 0 {
            return Err(listener);
        }
        let key = key.unwrap_or_else(|| {
            let key = listeners.next_key;
            listeners.next_key += 1;
            key
        });
        // The inline slot only while it is the earliest: order is kept.
        if listeners.first.is_none() && listeners.rest.as_ref().is_none_or(|rest| rest.is_empty()) {
            listeners.first = Some((key, listener));
        } else {
            listeners.rest.get_or_insert_default().push((key, listener));
        }
        Ok(key)
    }

    /// Removes the listener `key`, if the settler has not taken it.
    pub(crate) fn remove(&self, key: Key) -> Option<L> {
        let mut listeners = lock(&self.listeners);
        if listeners.first.as_ref().is_some_and(|(k, _)| *k == key) {
            return listeners.first.take().map(|(_, l)| l);
        }
        let rest = listeners.rest.as_mut()?;
        let at = rest.iter().position(|(k, _)| *k == key)?;
        Some(rest.remove(at).1)
    }

    /// Runs `f` on the listener `key` in place (to swap a waker), under the
    /// lock, and returns what `f` returns (what it replaced, for the caller
    /// to drop after the lock: rule 7); `None` if the settler already took
    /// the listener.
    pub(crate) fn update<R>(&self, key: Key, f: impl FnOnce(&mut L) -> R) -> Option<R> {
        let mut listeners = lock(&self.listeners);
        listeners.find(key).map(f)
    }

    /// Listeners waiting right now.
    pub(crate) fn listener_count(&self) -> usize {
        lock(&self.listeners).len()
    }
}

impl<T, L> Drop for Core<T, L> {
    #[inline]
    fn drop(&mut self) {
        // Rule 3: a listener is pushed only after `LISTENING` is set, so
        // without the bit the list is empty (no listener, no `rest` vector).
        // `&mut self`: every other handle is gone, so a relaxed load sees
        // the last value.
        if self.state.load(Relaxed) & LISTENING != 0 {
            let listeners = self.listeners.get_mut().unwrap_or_else(PoisonError::into_inner);
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(listeners) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Core;

    #[test]
    fn listeners_come_back_in_order_and_late_adders_get_theirs_back() {
        let core = Core::<String, u8>::new();
        assert!(core.outcome().is_none());
        let a = core.add(1).unwrap();
        core.add(2).unwrap();
        core.add(3).unwrap();
        assert_eq!(core.remove(a), Some(1));
        assert!(core.update(a, |_| {}).is_none());
        assert_eq!(
            core.complete("done".to_owned()).unwrap().collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(core.complete("again".to_owned()).err(), Some("again".to_owned()));
        assert_eq!(core.outcome().map(String::as_str), Some("done"));
        assert_eq!(core.add(4), Err(4));
        assert_eq!(core.listener_count(), 0);
    }

    /// The core drops its listeners only if one was ever added (`Drop`
    /// skips an empty list): every listener still in it when it goes,
    /// inline or in the overflow vector, is dropped exactly once.
    #[test]
    fn a_cores_unsettled_listeners_are_dropped_with_it() {
        use std::sync::Arc;
        let witness = Arc::new(());
        let core = Core::<u8, Arc<()>>::new();
        core.add(witness.clone()).unwrap();
        core.add(witness.clone()).unwrap();
        core.add(witness.clone()).unwrap();
        assert_eq!(Arc::strong_count(&witness), 4);
        drop(core);
        assert_eq!(Arc::strong_count(&witness), 1, "every listener was dropped");
        // Settled with listeners, which the settler took: nothing left.
        let core = Core::<u8, Arc<()>>::new();
        core.add(witness.clone()).unwrap();
        drop(core.complete(1).unwrap());
        drop(core);
        assert_eq!(Arc::strong_count(&witness), 1);
    }

    /// A core whose lock was taken but that nobody listened to (its
    /// listeners counted, a callback id from elsewhere removed) still frees
    /// the lock itself: on the platforms whose `std` mutex is a lazily
    /// boxed pthread mutex (macOS), skipping it leaked that box. Checked by
    /// Miri's leak check with `--target x86_64-apple-darwin`; on Linux the
    /// futex mutex owns nothing, so this passes either way.
    #[test]
    fn a_core_whose_lock_was_taken_without_a_listener_frees_the_lock() {
        let core = Core::<u8, u8>::new();
        assert_eq!(core.listener_count(), 0);
        assert_eq!(core.remove(super::CALLER_KEYS + 5), None);
        assert!(core.update(3, |_| ()).is_none());
        drop(core);
        // Through the promise's public API.
        let promise = crate::future::Promise::<u8>::new();
        assert_eq!(promise.listener_count(), 0);
        let other = crate::future::Promise::<u8>::new();
        let id = other.add_done_callback_inline(|_| ());
        assert_eq!(promise.remove_done_callback(id), 0);
        promise.set_result(1).unwrap();
        drop(promise);
        assert_eq!(other.remove_done_callback(id), 1);
    }

    /// `Promise::waiter` is a sentinel key, not an `Option`: a handle is an
    /// `Arc` and a key.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_promise_handle_is_two_words() {
        assert_eq!(std::mem::size_of::<crate::future::Promise<u64>>(), 16);
    }

    /// Wakes counted, and the wakers alive (the `Arc`'s count).
    struct CountWake(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for CountWake {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn count_waker() -> (std::sync::Arc<CountWake>, std::task::Waker) {
        let count = std::sync::Arc::new(CountWake(std::sync::atomic::AtomicUsize::new(0)));
        (count.clone(), std::task::Waker::from(count))
    }

    /// The sentinel key of an unregistered handle: handles that register,
    /// swap their waker, and are dropped before the settle leave nothing
    /// behind, never withdraw another handle's waker, and a handle polled
    /// once the promise settled is ready whatever key it held. A promise
    /// dropped unsettled with callbacks registered drops them unrun.
    #[test]
    fn waiters_that_come_and_go_before_the_settle_leave_nothing_behind() {
        use crate::future::Promise;
        use std::future::Future;
        use std::pin::Pin;
        use std::sync::atomic::Ordering::SeqCst;
        use std::task::{Context, Poll};
        let promise = Promise::<String>::new();
        let (kept_count, kept_waker) = count_waker();
        let mut kept = promise.clone();
        assert!(
            Pin::new(&mut kept)
                .poll(&mut Context::from_waker(&kept_waker))
                .is_pending()
        );
        let (gone_count, gone_waker) = count_waker();
        for round in 0..20 {
            let mut waiter = promise.clone();
            let cx = &mut Context::from_waker(&gone_waker);
            assert!(Pin::new(&mut waiter).poll(cx).is_pending());
            // The swap path (update under the key), then the same key again.
            let (_, other) = count_waker();
            assert!(
                Pin::new(&mut waiter)
                    .poll(&mut Context::from_waker(&other))
                    .is_pending()
            );
            assert!(Pin::new(&mut waiter).poll(cx).is_pending());
            assert_eq!(promise.listener_count(), 2, "round {round}");
            drop(waiter);
            assert_eq!(promise.listener_count(), 1, "round {round}");
        }
        // Done callbacks, one removed: their keys live in another range.
        let id = promise.add_done_callback_inline(|_| panic!("removed"));
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = ran.clone();
        promise.add_done_callback_inline(move |p| {
            assert!(matches!(p.result(), Ok(s) if s == "x"));
            r.fetch_add(1, SeqCst);
        });
        assert_eq!(promise.remove_done_callback(id), 1);
        assert_eq!(promise.remove_done_callback(id), 0);
        let mut late = promise.clone();
        assert!(
            Pin::new(&mut late)
                .poll(&mut Context::from_waker(&gone_waker))
                .is_pending()
        );
        promise.set_result("x".to_owned()).unwrap();
        assert_eq!(kept_count.0.load(SeqCst), 1);
        assert_eq!(gone_count.0.load(SeqCst), 1, "only `late` of the gone waker's handles");
        assert_eq!(ran.load(SeqCst), 1);
        // Read many times, by the registered handles and fresh ones.
        for _ in 0..3 {
            let cx = &mut Context::from_waker(std::task::Waker::noop());
            assert!(matches!(Pin::new(&mut kept).poll(cx), Poll::Ready(Ok(s)) if s == "x"));
            assert!(matches!(Pin::new(&mut late).poll(cx), Poll::Ready(Ok(s)) if s == "x"));
            assert!(matches!(promise.result(), Ok(s) if s == "x"));
        }
        drop((kept, late, promise));
        assert_eq!(std::sync::Arc::strong_count(&gone_count), 2, "no waker clone kept");
        assert_eq!(std::sync::Arc::strong_count(&kept_count), 2);

        // Dropped unsettled with a waker and callbacks registered.
        let promise = Promise::<u8>::new();
        let mut waiter = promise.clone();
        assert!(
            Pin::new(&mut waiter)
                .poll(&mut Context::from_waker(&kept_waker))
                .is_pending()
        );
        let witness = std::sync::Arc::new(());
        for _ in 0..3 {
            let w = witness.clone();
            promise.add_done_callback_inline(move |_| drop(w));
        }
        drop(promise);
        assert_eq!(std::sync::Arc::strong_count(&witness), 4, "`waiter` keeps the promise");
        drop(waiter);
        assert_eq!(std::sync::Arc::strong_count(&witness), 1, "callbacks dropped unrun");
        assert_eq!(
            std::sync::Arc::strong_count(&kept_count),
            2,
            "the waiter's waker dropped"
        );
        assert_eq!(kept_count.0.load(SeqCst), 1);
    }

    /// Settlers race each other and waiters that register, swap and
    /// withdraw on other threads: exactly one settler wins, the losers get
    /// their values back, every waiter still registered is woken, and
    /// nothing is left registered or leaked.
    #[test]
    fn settlers_race_waiters_on_other_threads() {
        use crate::future::{Promise, PromiseError};
        use std::future::Future;
        use std::pin::Pin;
        use std::sync::atomic::Ordering::SeqCst;
        use std::task::{Context, Poll};
        let rounds = if cfg!(miri) { 3 } else { 300 };
        for _ in 0..rounds {
            let promise = Promise::<Vec<u8>>::new();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(5));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let (p, b) = (promise.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let (count, waker) = count_waker();
                        let mut handle = p.clone();
                        b.wait();
                        for _ in 0..3 {
                            let mut other = p.clone();
                            let _ = Pin::new(&mut other).poll(&mut Context::from_waker(&waker));
                        }
                        match Pin::new(&mut handle).poll(&mut Context::from_waker(&waker)) {
                            Poll::Ready(outcome) => outcome.is_ok(),
                            Poll::Pending => {
                                while !p.done() {
                                    std::thread::yield_now();
                                }
                                // The settler woke us (or is about to).
                                while count.0.load(SeqCst) == 0 {
                                    std::thread::yield_now();
                                }
                                let cx = &mut Context::from_waker(std::task::Waker::noop());
                                matches!(Pin::new(&mut handle).poll(cx), Poll::Ready(Ok(_)))
                            }
                        }
                    })
                })
                .collect();
            let setter = {
                let (p, b) = (promise.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    p.set_result(vec![1]).is_ok()
                })
            };
            let failer = {
                let (p, b) = (promise.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    p.set_exception(crate::future::Exception::msg("no")).is_ok()
                })
            };
            barrier.wait();
            let cancelled = promise.cancel();
            let set = setter.join().unwrap();
            let failed = failer.join().unwrap();
            assert_eq!(usize::from(set) + usize::from(failed) + usize::from(cancelled), 1);
            let oks: Vec<bool> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
            assert!(oks.iter().all(|ok| *ok == set));
            assert_eq!(promise.listener_count(), 0);
            match promise.result() {
                Ok(v) => assert!(set && v == &vec![1]),
                Err(PromiseError::Cancelled) => assert!(cancelled),
                Err(PromiseError::Failed(_)) => assert!(failed),
                Err(other) => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn completing_with_no_listeners_never_locks() {
        let core = Core::<Vec<u8>, ()>::new();
        assert_eq!(core.complete(vec![1, 2, 3]).unwrap().count(), 0);
        assert_eq!(core.outcome(), Some(&vec![1, 2, 3]));
    }
}
