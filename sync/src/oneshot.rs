//! A channel for one value: [`channel`], Tokio's `oneshot`.
//!
//! # Rule
//!
//! One lock guards the slot, the receiver's waker and the two "gone"
//! flags: the sender stores its value (or marks itself gone) and takes the
//! waker under it, the receiver checks and registers under it, so the value
//! or the closing can never slip past a sleeping receiver.

use crate::loom::{Mutex, lock};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

struct Inner<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    value: Option<T>,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
    tx_gone: bool,
    rx_gone: bool,
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
        state: Mutex::new(State {
            value: None,
            rx_waker: None,
            tx_waker: None,
            tx_gone: false,
            rx_gone: false,
        }),
    });
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner },
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
        let waker = {
            let mut state = lock(&inner.state);
            if state.rx_gone {
                return Err(value);
            }
            state.value = Some(value);
            state.tx_gone = true;
            state.rx_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// True once the receiver is gone or closed.
    pub fn is_closed(&self) -> bool {
        self.inner.as_ref().is_none_or(|inner| lock(&inner.state).rx_gone)
    }

    /// Completes when the receiver is gone or closed (to stop work nobody
    /// will read). Cancel-safe.
    pub async fn closed(&mut self) {
        std::future::poll_fn(|cx| {
            let Some(inner) = &self.inner else {
                return Poll::Ready(());
            };
            let mut state = lock(&inner.state);
            if state.rx_gone {
                return Poll::Ready(());
            }
            match &mut state.tx_waker {
                Some(waker) => waker.clone_from(cx.waker()),
                none => *none = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await;
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        let waker = {
            let mut state = lock(&inner.state);
            state.tx_gone = true;
            state.rx_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
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

/// The receiving half; await it for the value. Cancel-safe: dropping the
/// future drops nothing but the receiver.
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Receiver<T> {
    /// The value if it was sent.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Closed`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = lock(&self.inner.state);
        match state.value.take() {
            Some(value) => Ok(value),
            None if state.tx_gone => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Closes the channel: a later `send` fails and gives its value back.
    pub fn close(&mut self) {
        let waker = {
            let mut state = lock(&self.inner.state);
            state.rx_gone = true;
            state.tx_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.inner.state);
        if let Some(value) = state.value.take() {
            return Poll::Ready(Ok(value));
        }
        if state.tx_gone {
            return Poll::Ready(Err(RecvError(())));
        }
        match &mut state.rx_waker {
            Some(waker) => waker.clone_from(cx.waker()),
            none => *none = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        // A value sent but never read is dropped here, outside the lock.
        let value = lock(&self.inner.state).value.take();
        drop(value);
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
