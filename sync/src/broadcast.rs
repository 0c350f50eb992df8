//! A multi-producer, multi-consumer channel where every receiver sees every
//! message: [`channel`], Tokio's `broadcast`.
//!
//! # Rules
//!
//! 1. **A ring of the last `capacity` messages**, each with its sequence
//!    number, under one lock with the waiting receivers' wakers. Sending
//!    pushes (dropping the oldest when full) and wakes every waiter.
//! 2. **Each receiver keeps the sequence number it reads next.** If the
//!    oldest message kept is newer than that, the receiver has *lagged*: it
//!    gets [`RecvError::Lagged`] with how many it missed, jumps to the
//!    oldest kept message, and carries on.
//! 3. **A waiting receiver is in the wait list under its own id**, so a
//!    stale key (the list was drained by a send, and the slot reused by
//!    another receiver) is never mistaken for its entry.

use crate::loom::{AtomicUsize, Mutex, Ordering::*, lock};
use crate::waitlist::{WaitKey, WaitList};
use crate::wake_list::WakeList;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    state: Mutex<State<T>>,
    senders: AtomicUsize,
}

struct State<T> {
    ring: VecDeque<T>,
    /// Sequence number of `ring[0]`.
    first_seq: u64,
    capacity: usize,
    receivers: usize,
    senders_gone: bool,
    waiters: WaitList<(u64, Waker)>,
    next_receiver_id: u64,
}

impl<T> State<T> {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.ring.len() as u64
    }
}

/// A broadcast channel keeping the last `capacity` messages for slow
/// receivers.
///
/// ```
/// use weft_sync::broadcast::{self, RecvError};
///
/// futures::executor::block_on(async {
///     let (tx, mut a) = broadcast::channel(2);
///     let mut b = tx.subscribe();
///     for i in 0..3 {
///         tx.send(i).unwrap();
///     }
///     // `a` missed the oldest message (capacity 2): told, then continues.
///     assert_eq!(a.recv().await, Err(RecvError::Lagged(1)));
///     assert_eq!(a.recv().await, Ok(1));
///     assert_eq!(b.recv().await, Err(RecvError::Lagged(1)));
///     drop(tx);
///     assert_eq!(a.recv().await, Ok(2));
///     assert_eq!(a.recv().await, Err(RecvError::Closed));
/// });
/// ```
///
/// # Panics
///
/// If `capacity` is 0.
#[track_caller]
pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "weft_sync::broadcast::channel: the capacity must be at least 1"
    );
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            ring: VecDeque::with_capacity(capacity),
            first_seq: 0,
            capacity,
            receivers: 1,
            senders_gone: false,
            waiters: WaitList::new(),
            next_receiver_id: 1,
        }),
        senders: AtomicUsize::new(1),
    });
    let rx = Receiver {
        shared: shared.clone(),
        next: 0,
        id: 0,
        waiting: None,
    };
    (Sender { shared }, rx)
}

pub use crate::error::SendError;

/// Why a receive gave no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone and this receiver has read everything.
    Closed,
    /// This receiver fell behind and missed this many messages; the next
    /// receive returns the oldest one still kept.
    Lagged(u64),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("the channel is closed"),
            RecvError::Lagged(n) => write!(f, "the receiver lagged behind and missed {n} messages"),
        }
    }
}

impl std::error::Error for RecvError {}

/// Why `try_recv` gave no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing new yet.
    Empty,
    /// See [`RecvError::Closed`].
    Closed,
    /// See [`RecvError::Lagged`].
    Lagged(u64),
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no new message"),
            TryRecvError::Closed => f.write_str("the channel is closed"),
            TryRecvError::Lagged(n) => write!(f, "the receiver lagged behind and missed {n} messages"),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// The sending half; clone it for more producers.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T: Clone> Sender<T> {
    /// Sends to every receiver; returns how many there are.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if no receiver is left.
    pub fn send(&self, value: T) -> Result<usize, SendError<T>> {
        let mut wakers = WakeList::new();
        let (receivers, evicted) = {
            let mut state = lock(&self.shared.state);
            if state.receivers == 0 {
                return Err(SendError(value));
            }
            let evicted = if state.ring.len() == state.capacity {
                state.first_seq += 1;
                state.ring.pop_front()
            } else {
                None
            };
            state.ring.push_back(value);
            while let Some((_, waker)) = state.waiters.pop_front() {
                wakers.push(waker);
            }
            (state.receivers, evicted)
        };
        drop(evicted);
        wakers.wake_all();
        Ok(receivers)
    }

    /// A new receiver that sees messages sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        new_receiver(&self.shared)
    }

    /// Receivers right now.
    pub fn receiver_count(&self) -> usize {
        lock(&self.shared.state).receivers
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.senders.fetch_add(1, Relaxed);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, AcqRel) != 1 {
            return;
        }
        let mut wakers = WakeList::new();
        {
            let mut state = lock(&self.shared.state);
            state.senders_gone = true;
            while let Some((_, waker)) = state.waiters.pop_front() {
                wakers.push(waker);
            }
        }
        wakers.wake_all();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// A receiving half: sees every message sent after it subscribed.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The sequence number it reads next.
    next: u64,
    id: u64,
    /// Its entry in the wait list, while waiting (rule 3).
    waiting: Option<WaitKey>,
}

impl<T: Clone> Receiver<T> {
    /// The next message. Cancel-safe: a cancelled `recv` consumes nothing.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] (then carry on) or [`RecvError::Closed`].
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message if there is one now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], [`TryRecvError::Lagged`] or
    /// [`TryRecvError::Closed`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = lock(&self.shared.state);
        match take(&mut self.next, &mut state) {
            Some(Ok(value)) => Ok(value),
            Some(Err(RecvError::Lagged(n))) => Err(TryRecvError::Lagged(n)),
            Some(Err(RecvError::Closed)) => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        let mut state = lock(&self.shared.state);
        if let Some(result) = take(&mut self.next, &mut state) {
            return Poll::Ready(result);
        }
        let registered = self
            .waiting
            .and_then(|key| state.waiters.get_mut(key))
            .filter(|(id, _)| *id == self.id);
        match registered {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => self.waiting = Some(state.waiters.push_back((self.id, cx.waker().clone()))),
        }
        Poll::Pending
    }

    /// A new receiver that sees messages sent from now on (not the ones
    /// this one has yet to read).
    pub fn resubscribe(&self) -> Receiver<T> {
        new_receiver(&self.shared)
    }
}

/// A receiver positioned after the newest message.
fn new_receiver<T>(shared: &Arc<Shared<T>>) -> Receiver<T> {
    let mut state = lock(&shared.state);
    state.receivers += 1;
    let id = state.next_receiver_id;
    state.next_receiver_id += 1;
    Receiver {
        shared: shared.clone(),
        next: state.next_seq(),
        id,
        waiting: None,
    }
}

/// Rule 2: the next message for a receiver at `next`, a lag report, the
/// end, or `None` (wait).
fn take<T: Clone>(next: &mut u64, state: &mut State<T>) -> Option<Result<T, RecvError>> {
    if *next < state.first_seq {
        let missed = state.first_seq - *next;
        *next = state.first_seq;
        return Some(Err(RecvError::Lagged(missed)));
    }
    let index = (*next - state.first_seq) as usize;
    if let Some(value) = state.ring.get(index) {
        *next += 1;
        return Some(Ok(value.clone()));
    }
    if state.senders_gone {
        return Some(Err(RecvError::Closed));
    }
    None
}

impl<T> Unpin for Receiver<T> {}

impl<T: Clone> futures_core::Stream for Receiver<T> {
    /// A message, or a lag report; the stream ends when the channel closes.
    type Item = Result<T, RecvError>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.poll_recv(cx) {
            Poll::Ready(Err(RecvError::Closed)) => Poll::Ready(None),
            Poll::Ready(other) => Poll::Ready(Some(other)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.receivers -= 1;
        if let Some(key) = self.waiting.take() {
            if state.waiters.get_mut(key).is_some_and(|(id, _)| *id == self.id) {
                state.waiters.remove(key);
            }
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{RecvError, TryRecvError, channel};
    use futures::{FutureExt, StreamExt};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    #[test]
    fn every_receiver_sees_every_message_and_waiters_are_woken() {
        let (tx, mut a) = channel(8);
        let mut b = tx.subscribe();
        let mut cx = Context::from_waker(Waker::noop());
        let mut waiting = pin!(a.recv());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(tx.send("x").unwrap(), 2);
        assert_eq!(waiting.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok("x")));
        assert_eq!(b.try_recv(), Ok("x"));
        assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn a_lagging_receiver_is_told_how_many_it_missed_and_continues() {
        let (tx, mut rx) = channel(3);
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(7)));
        assert_eq!(rx.try_recv(), Ok(7));
        drop(tx);
        let rest: Vec<_> = futures::executor::block_on(rx.collect());
        assert_eq!(rest, [Ok(8), Ok(9)]);
    }

    #[test]
    fn send_fails_with_no_receivers_and_dropped_waiters_leave_no_ghost() {
        let (tx, rx) = channel::<u8>(1);
        let mut cx = Context::from_waker(Waker::noop());
        let mut other = tx.subscribe();
        {
            let mut waiting = pin!(other.recv());
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
        }
        drop(other);
        drop(rx);
        assert_eq!(tx.receiver_count(), 0);
        assert!(tx.send(1).is_err());
        let mut late = tx.subscribe();
        tx.send(2).unwrap();
        assert_eq!(late.recv().now_or_never(), Some(Ok(2)));
        drop(tx);
        assert_eq!(late.recv().now_or_never(), Some(Err(RecvError::Closed)));
    }
}
