//! A channel for one value: [`channel`], Tokio's `oneshot`.
//!
//! One allocation holds the value, the receiver's waker, the sender's
//! waker (for [`Sender::closed`]) and one atomic state word. A round trip
//! is three atomic operations and no lock.
//!
//! # The state word
//!
//! | bit | set when | by |
//! | --- | --- | --- |
//! | `RX_WAKER` | the receiver's waker is published | receiver (cleared by it to replace the waker) |
//! | `TX_WAKER` | the sender's waker is published | sender (cleared by it to replace the waker) |
//! | `SENT` | the value is written | sender |
//! | `TX_GONE` | the sender dropped without sending | sender |
//! | `RX_CLOSED` | the receiver closed or dropped | receiver |
//!
//! `SENT`, `TX_GONE` and `RX_CLOSED` are never cleared.
//!
//! # Rules
//!
//! 1. **The value cell** is written only by the sender, before it sets
//!    `SENT`. From then on it belongs to the receiver, unless `RX_CLOSED`
//!    was already set when the sender set `SENT`: then the receiver will
//!    never read it and the sender takes it back. A receiver that closes
//!    after `SENT` drops it.
//! 2. **A waker cell** is written only by its owner (the receiver for
//!    `rx_waker`, the sender for `tx_waker`), only while its bit is clear.
//!    Setting the bit publishes it: the other side may then read it, only
//!    through `wake_by_ref`, never taking it. To replace its waker, the
//!    owner first clears the bit (and if the other side finished
//!    meanwhile, it sees so in the value it read and does not wait).
//! 3. **Waking.** The sender, after setting `SENT` or `TX_GONE`, wakes the
//!    receiver's published waker; the receiver, after setting `RX_CLOSED`,
//!    wakes the sender's. Whoever publishes a waker looks at the state it
//!    replaced: if the other side had already finished, it does not sleep.
//! 4. Both waker cells and the value are dropped with the allocation.

use crate::loom::{AtomicUsize, Ordering::*, UnsafeCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

const RX_WAKER: usize = 0b00001;
const TX_WAKER: usize = 0b00010;
const SENT: usize = 0b00100;
const TX_GONE: usize = 0b01000;
const RX_CLOSED: usize = 0b10000;

struct Inner<T> {
    state: AtomicUsize,
    value: UnsafeCell<Option<T>>,
    rx_waker: UnsafeCell<Option<Waker>>,
    tx_waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the rules above: the value moves from the sender's thread to the
// receiver's (needs `Send`), and each cell is written by one side at a time
// with the state word's Acquire/Release ordering between the two.
unsafe impl<T: Send> Sync for Inner<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Inner<T> {}

impl<T> Inner<T> {
    /// Publishes a new waker in `cell` under `bit` (rule 2). Returns the
    /// state as it was when published, so the caller can see whether the
    /// other side finished (`done` bits).
    ///
    /// # Safety
    ///
    /// Only the owner of `cell` may call this.
    unsafe fn publish(&self, cell: &UnsafeCell<Option<Waker>>, bit: usize, done: usize, cx: &Context<'_>) -> usize {
        let state = self.state.load(Acquire);
        if state & bit != 0 {
            // SAFETY: published wakers may be read by both sides (rule 2).
            let same = cell.with(|ptr| unsafe { (*ptr).as_ref() }.is_some_and(|w| w.will_wake(cx.waker())));
            if same {
                return state;
            }
            // Take the cell back before writing it.
            let state = self.state.fetch_and(!bit, AcqRel);
            if state & done != 0 {
                return state;
            }
        } else if state & done != 0 {
            return state;
        }
        // SAFETY: the bit is clear, so the owner alone touches the cell.
        cell.with_mut(|ptr| unsafe { *ptr = Some(cx.waker().clone()) });
        self.state.fetch_or(bit, AcqRel)
    }

    /// Wakes the waker published in `cell` (rule 3).
    ///
    /// # Safety
    ///
    /// `state & bit` must have been observed set; only the other side of
    /// the owner may call this.
    unsafe fn wake_published(&self, cell: &UnsafeCell<Option<Waker>>) {
        cell.with(|ptr| {
            // SAFETY: published: readable by the other side (rule 2).
            if let Some(waker) = unsafe { (*ptr).as_ref() } {
                waker.wake_by_ref();
            }
        });
    }
}

/// A channel that carries exactly one value.
///
/// ```
/// futures::executor::block_on(async {
///     let (tx, rx) = weft_sync::oneshot::channel();
///     std::thread::spawn(move || tx.send(42).unwrap());
///     assert_eq!(rx.await, Ok(42));
///
///     let (tx, rx) = weft_sync::oneshot::channel::<u8>();
///     drop(tx);
///     assert!(rx.await.is_err()); // the sender is gone: RecvError
/// });
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        value: UnsafeCell::new(None),
        rx_waker: UnsafeCell::new(None),
        tx_waker: UnsafeCell::new(None),
    });
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner, done: false },
    )
}

/// The sending half.
pub struct Sender<T> {
    /// Taken by `send`.
    inner: Option<Arc<Inner<T>>>,
}

impl<T> Sender<T> {
    /// Sends the value.
    ///
    /// # Errors
    ///
    /// The value, if the receiver is gone or closed.
    pub fn send(mut self, value: T) -> Result<(), T> {
        let inner = self.inner.take().expect("weft-sync bug: a oneshot sender used twice");
        if inner.state.load(Acquire) & RX_CLOSED != 0 {
            return Err(value);
        }
        // SAFETY: rule 1: `SENT` is not set, so the sender owns the cell.
        inner.value.with_mut(|ptr| unsafe { *ptr = Some(value) });
        let prev = inner.state.fetch_or(SENT, AcqRel);
        if prev & RX_CLOSED != 0 {
            // Rule 1: closed before `SENT`: the receiver never reads it.
            // SAFETY: as the rule says, the value is ours again.
            let value = inner.value.with_mut(|ptr| unsafe { (*ptr).take() });
            return Err(value.expect("weft-sync bug: the oneshot value vanished"));
        }
        if prev & RX_WAKER != 0 {
            // SAFETY: rule 3: the bit was set, and we are the sender.
            unsafe { inner.wake_published(&inner.rx_waker) };
        }
        Ok(())
    }

    /// True once the receiver is gone or closed.
    pub fn is_closed(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.state.load(Acquire) & RX_CLOSED != 0)
    }

    /// Completes when the receiver is gone or closed (to stop work nobody
    /// will read). Cancel-safe.
    pub async fn closed(&mut self) {
        std::future::poll_fn(|cx| {
            let Some(inner) = &self.inner else {
                return Poll::Ready(());
            };
            // SAFETY: the sender owns `tx_waker` (rule 2).
            let state = unsafe { inner.publish(&inner.tx_waker, TX_WAKER, RX_CLOSED, cx) };
            if state & RX_CLOSED != 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        let prev = inner.state.fetch_or(TX_GONE, AcqRel);
        if prev & RX_WAKER != 0 {
            // SAFETY: rule 3: the bit was set, and we are the sender.
            unsafe { inner.wake_published(&inner.rx_waker) };
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The sender was dropped without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError(());

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the oneshot sender was dropped without sending")
    }
}

impl std::error::Error for RecvError {}

/// Why `try_recv` returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing sent yet.
    Empty,
    /// The sender is gone without sending (or the value was taken).
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("nothing was sent yet"),
            TryRecvError::Closed => f.write_str("the oneshot sender is gone"),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// The channel's errors at Tokio's paths: `oneshot::error::RecvError` is
/// [`RecvError`], the same type as the flat name. (A failed
/// [`Sender::send`] gives the value back as it is, as Tokio's does.)
pub mod error {
    pub use super::{RecvError, TryRecvError};
}

/// The receiving half; await it for the value. Cancel-safe: dropping the
/// future drops nothing but the receiver.
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
    /// The value was taken, or the end reported, or the receiver closed
    /// before anything was sent (a later `SENT` is the sender's, rule 1).
    done: bool,
}

impl<T> Receiver<T> {
    /// Rule 1: takes the value once `SENT` was observed.
    fn take_value(&mut self) -> Option<T> {
        self.done = true;
        // SAFETY: rule 1: after `SENT` (observed with Acquire) the value
        // belongs to the receiver; `done` makes this the only take.
        self.inner.value.with_mut(|ptr| unsafe { (*ptr).take() })
    }

    /// The value if it was sent.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Closed`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if self.done {
            return Err(TryRecvError::Closed);
        }
        let state = self.inner.state.load(Acquire);
        if state & SENT != 0 {
            return self.take_value().ok_or(TryRecvError::Closed);
        }
        if state & (TX_GONE | RX_CLOSED) != 0 {
            self.done = true;
            return Err(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }

    /// Closes the channel: a later `send` fails and gives its value back.
    /// A value already sent can still be received.
    pub fn close(&mut self) {
        let prev = self.inner.state.fetch_or(RX_CLOSED, AcqRel);
        if prev & RX_CLOSED != 0 {
            return;
        }
        if prev & SENT == 0 {
            // Rule 1: anything sent from now on goes back to the sender.
            self.done = true;
        }
        if prev & TX_WAKER != 0 && prev & (SENT | TX_GONE) == 0 {
            // SAFETY: rule 3: the bit was set, and we are the receiver.
            unsafe { self.inner.wake_published(&self.inner.tx_waker) };
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(Err(RecvError(())));
        }
        // SAFETY: the receiver owns `rx_waker` (rule 2).
        let state = unsafe { this.inner.publish(&this.inner.rx_waker, RX_WAKER, SENT | TX_GONE, cx) };
        if state & SENT != 0 {
            return Poll::Ready(this.take_value().ok_or(RecvError(())));
        }
        if state & TX_GONE != 0 {
            this.done = true;
            return Poll::Ready(Err(RecvError(())));
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.done {
            // The value was taken, the sender's end seen, or `close` already
            // ran: the sender is finished or told, nothing is left to do.
            return;
        }
        self.close();
        // Still not done after closing means `SENT` came first (rule 1):
        // the value is ours to drop, here rather than with the allocation.
        if !self.done {
            drop(self.take_value());
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{TryRecvError, channel};
    use futures::FutureExt;

    #[test]
    fn send_recv_close_and_try_recv() {
        let (tx, mut rx) = channel::<String>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send("x".into()).unwrap();
        assert_eq!(rx.try_recv().unwrap(), "x");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));

        let (mut tx, mut rx) = channel::<u8>();
        assert!(!tx.is_closed());
        rx.close();
        assert!(tx.is_closed());
        assert!(tx.closed().now_or_never().is_some());
        assert_eq!(tx.send(1), Err(1));

        let (tx, rx) = channel::<u8>();
        drop(rx);
        assert_eq!(tx.send(2), Err(2));
    }
}
