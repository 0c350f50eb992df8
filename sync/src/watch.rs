//! A single value that many tasks watch for changes: [`channel`], Tokio's
//! `watch`.
//!
//! # Rules
//!
//! 1. The value, its *version* (bumped by every send) and whether the
//!    sender is gone live under one lock; a change (or the end) is
//!    announced with [`Notify::notify_waiters`], and [`Receiver::changed`]
//!    creates its `Notified` before it looks, so a send between the look and
//!    the wait still wakes it.
//! 2. **`changed` decides under one lock**: it reads the version and the
//!    end in one critical section, so a send followed by the sender's drop
//!    can never be reported as the end with the change unseen.

use crate::loom::{AtomicUsize, Ordering::*, RwLock, RwLockReadGuard, read, write};
use crate::notify::Notify;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

struct Shared<T> {
    value: RwLock<Slot<T>>,
    changed: Notify,
    receivers: AtomicUsize,
}

/// What the lock guards (rule 1).
struct Slot<T> {
    value: T,
    version: u64,
    sender_gone: bool,
}

/// A watch channel holding `initial`.
///
/// ```
/// futures::executor::block_on(async {
///     let (tx, mut rx) = weft_sync::watch::channel("starting");
///     assert_eq!(*rx.borrow(), "starting");
///     tx.send("ready").unwrap();
///     rx.changed().await.unwrap();
///     assert_eq!(*rx.borrow_and_update(), "ready");
///     drop(tx);
///     assert!(rx.changed().await.is_err()); // the sender is gone
/// });
/// ```
pub fn channel<T>(initial: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: RwLock::new(Slot {
            value: initial,
            version: 0,
            sender_gone: false,
        }),
        changed: Notify::new(),
        receivers: AtomicUsize::new(1),
    });
    (Sender { shared: shared.clone() }, Receiver { shared, seen: 0 })
}

pub use crate::error::SendError;

/// The sender is gone: no change will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError(());

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the watch sender is gone")
    }
}

impl std::error::Error for RecvError {}

/// The channel's errors at Tokio's paths: `watch::error::RecvError` is
/// [`RecvError`], the same type as the flat name.
pub mod error {
    pub use super::{RecvError, SendError};
}

/// The sending half.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Replaces the value and wakes every receiver waiting in `changed`.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value if no receiver is left.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.receivers.load(Acquire) == 0 {
            return Err(SendError(value));
        }
        self.send_replace(value);
        Ok(())
    }

    /// Replaces the value whether or not anyone watches, and returns the old
    /// one.
    pub fn send_replace(&self, value: T) -> T {
        let old = {
            let mut slot = write(&self.shared.value);
            slot.version += 1;
            std::mem::replace(&mut slot.value, value)
        };
        self.shared.changed.notify_waiters();
        old
    }

    /// The current value.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: read(&self.shared.value),
        }
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        self.shared.receivers.fetch_add(1, AcqRel);
        Receiver {
            seen: read(&self.shared.value).version,
            shared: self.shared.clone(),
        }
    }

    /// Receivers right now.
    pub fn receiver_count(&self) -> usize {
        self.shared.receivers.load(Acquire)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        write(&self.shared.value).sender_gone = true;
        self.shared.changed.notify_waiters();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// A receiving half: reads the current value and waits for changes.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The version this receiver has seen.
    seen: u64,
}

impl<T> Receiver<T> {
    /// The current value (not marking it seen).
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: read(&self.shared.value),
        }
    }

    /// The current value, marking it seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = read(&self.shared.value);
        self.seen = guard.version;
        Ref { guard }
    }

    /// True if the value changed since this receiver last marked it seen.
    pub fn has_changed(&self) -> bool {
        read(&self.shared.value).version != self.seen
    }

    /// Waits until the value changes (compared with the version last
    /// seen), and marks it seen. Cancel-safe.
    ///
    /// # Errors
    ///
    /// [`RecvError`] if the sender is gone and there is no unseen change.
    pub async fn changed(&mut self) -> Result<(), RecvError> {
        loop {
            // The rule: `Notified` first, then the comparison.
            let notified = self.shared.changed.notified();
            // Rule 2: both facts from one look under the lock.
            let (version, sender_gone) = {
                let slot = read(&self.shared.value);
                (slot.version, slot.sender_gone)
            };
            if version != self.seen {
                self.seen = version;
                return Ok(());
            }
            if sender_gone {
                return Err(RecvError(()));
            }
            notified.await;
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Receiver<T> {
    /// This receiver as a [`Stream`](futures_core::Stream) of values: the
    /// current one first if this receiver has not seen it, then one item
    /// per [`changed`](Receiver::changed) (values set in quick succession
    /// coalesce into the latest), ending when the sender is gone.
    ///
    /// ```
    /// use futures::StreamExt;
    ///
    /// futures::executor::block_on(async {
    ///     let (tx, rx) = weft_sync::watch::channel(0);
    ///     let mut values = rx.into_stream();
    ///     tx.send(1).unwrap();
    ///     assert_eq!(values.next().await, Some(1));
    ///     tx.send(2).unwrap();
    ///     drop(tx);
    ///     assert_eq!(values.next().await, Some(2));
    ///     assert_eq!(values.next().await, None);
    /// });
    /// ```
    pub fn into_stream(self) -> WatchStream<T> {
        WatchStream {
            waiting: None,
            receiver: Some(self),
        }
    }
}

/// A watch [`Receiver`] as a [`Stream`](futures_core::Stream) of values;
/// made by [`Receiver::into_stream`].
pub struct WatchStream<T> {
    /// Between changes: the receiver, idle.
    receiver: Option<Receiver<T>>,
    /// While waiting for a change: the wait, which owns the receiver.
    #[allow(clippy::type_complexity)]
    waiting: Option<std::pin::Pin<Box<dyn std::future::Future<Output = (bool, Receiver<T>)> + Send + Sync>>>,
}

impl<T: Clone + Send + Sync + 'static> futures_core::Stream for WatchStream<T> {
    type Item = T;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
        if let Some(mut receiver) = self.receiver.take() {
            if receiver.has_changed() {
                let value = receiver.borrow_and_update().clone();
                self.receiver = Some(receiver);
                return std::task::Poll::Ready(Some(value));
            }
            self.waiting = Some(Box::pin(async move {
                let changed = receiver.changed().await.is_ok();
                (changed, receiver)
            }));
        }
        let Some(waiting) = self.waiting.as_mut() else {
            return std::task::Poll::Ready(None); // ended
        };
        let (changed, mut receiver) = std::task::ready!(waiting.as_mut().poll(cx));
        self.waiting = None;
        if !changed {
            return std::task::Poll::Ready(None);
        }
        let value = receiver.borrow_and_update().clone();
        self.receiver = Some(receiver);
        std::task::Poll::Ready(Some(value))
    }
}

impl<T> fmt::Debug for WatchStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream")
            .field("waiting", &self.waiting.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.shared.receivers.fetch_add(1, AcqRel);
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receivers.fetch_sub(1, AcqRel);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

/// A read lock on a watch channel's value; keep it short (senders wait for
/// it).
pub struct Ref<'a, T> {
    guard: RwLockReadGuard<'a, Slot<T>>,
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::channel;
    use futures::FutureExt;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    /// A send and then the sender's drop, on another thread, against a
    /// receiver polling `changed`: it must never report the sender gone
    /// while a change is unseen (version and end are read under one lock).
    #[test]
    fn changed_never_reports_the_end_before_the_last_change() {
        const ROUNDS: usize = if cfg!(miri) { 20 } else { 20_000 };
        let (handoff, senders) = std::sync::mpsc::channel::<super::Sender<usize>>();
        let sender_thread = std::thread::spawn(move || {
            for tx in senders {
                tx.send(7).unwrap();
                drop(tx);
            }
        });
        let mut lost = 0;
        for _ in 0..ROUNDS {
            let (tx, mut rx) = channel(0);
            handoff.send(tx).unwrap();
            let changed = loop {
                if let Some(result) = rx.changed().now_or_never() {
                    break result.is_ok();
                }
                std::hint::spin_loop();
            };
            if !changed {
                lost += 1;
                assert_eq!(*rx.borrow(), 7, "the change was there all along");
            }
        }
        drop(handoff);
        sender_thread.join().unwrap();
        assert_eq!(
            lost, 0,
            "changed() reported the end before an unseen change in {lost} of {ROUNDS} rounds"
        );
    }

    #[test]
    fn receivers_see_the_latest_value_and_changes_coalesce() {
        let (tx, mut rx) = channel(0);
        let mut other = tx.subscribe();
        let mut cx = Context::from_waker(Waker::noop());
        {
            let mut waiting = pin!(other.changed());
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            assert!(waiting.as_mut().poll(&mut cx).is_ready());
        }
        assert!(rx.has_changed());
        assert!(rx.changed().now_or_never().unwrap().is_ok());
        assert_eq!(*rx.borrow(), 2, "only the latest value is kept");
        assert!(rx.changed().now_or_never().is_none(), "nothing new");
        drop(other);
        drop(rx);
        assert!(tx.send(3).is_err());
        assert_eq!(tx.send_replace(4), 2);
    }
}
