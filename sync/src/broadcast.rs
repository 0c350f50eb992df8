//! A multi-producer, multi-consumer channel where every receiver sees every
//! message: [`channel`], Tokio's `broadcast`.
//!
//! # Rules
//!
//! 1. **A ring of `capacity` slots, each under its own read-write lock**,
//!    holding one message and its sequence number (message `s` lives in
//!    slot `s % capacity`). Receivers clone from a slot under its read lock
//!    (so they do not exclude each other) and never touch the sender's lock
//!    while messages are there to read.
//! 2. **The tail lock orders senders and parks receivers.** A sender takes
//!    it, writes the next sequence number's slot (under that slot's write
//!    lock), advances `next_seq`, and wakes every waiting receiver. A
//!    receiver takes it only when its slot does not hold the message it
//!    wants: under it, `next_seq` says whether that message is not sent yet
//!    (wait, with the waker registered under the same lock, so no send can
//!    slip between the check and the sleep), was overwritten (lagged), or
//!    is there now (read again).
//! 3. **Each receiver keeps the sequence number it reads next.** If the
//!    oldest message kept (`next_seq - capacity`) is newer than that, the
//!    receiver has *lagged*: it gets [`RecvError::Lagged`] with how many it
//!    missed, jumps to the oldest kept message, and carries on.
//! 4. **A waiting receiver is in the wait list under its own id**, so a
//!    stale key (the list was drained by a send, and the slot reused by
//!    another receiver) is never mistaken for its entry.

use crate::loom::{AtomicU64, AtomicUsize, Mutex, Ordering::*, RwLock, lock, read, write};
use crate::padded::Padded;
use crate::waitlist::{WaitKey, WaitList};
use crate::wake_list::WakeList;
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    slots: Box<[RwLock<Slot<T>>]>,
    tail: Padded<Mutex<Tail>>,
    /// `Tail::next_seq`, published for receivers that need not wait. On
    /// its own cache line: receivers read it while the sender takes the
    /// tail lock.
    sent: Padded<AtomicU64>,
    senders: AtomicUsize,
}

/// One message of the ring (rule 1).
struct Slot<T> {
    /// The sequence number of `value`; `u64::MAX` before the first write.
    seq: u64,
    value: Option<T>,
}

/// What the tail lock guards (rule 2).
struct Tail {
    /// The sequence number the next message gets.
    next_seq: u64,
    /// Its slot.
    next_index: usize,
    receivers: usize,
    senders_gone: bool,
    waiters: WaitList<(u64, Waker)>,
    next_receiver_id: u64,
}

impl<T> Shared<T> {
    /// The slot of message `seq`. Receivers and the tail track slot
    /// indices as they go and call this only to start or after a lag (it
    /// divides).
    fn index(&self, seq: u64) -> usize {
        (seq % self.slots.len() as u64) as usize
    }

    fn capacity(&self) -> u64 {
        self.slots.len() as u64
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
        slots: (0..capacity)
            .map(|_| {
                RwLock::new(Slot {
                    seq: u64::MAX,
                    value: None,
                })
            })
            .collect(),
        tail: Padded(Mutex::new(Tail {
            next_seq: 0,
            next_index: 0,
            receivers: 1,
            senders_gone: false,
            waiters: WaitList::new(),
            next_receiver_id: 1,
        })),
        sent: Padded(AtomicU64::new(0)),
        senders: AtomicUsize::new(1),
    });
    let rx = Receiver {
        shared: shared.clone(),
        next: 0,
        index: 0,
        id: 0,
        waiting: None,
        coop: crate::coop::Countdown::default(),
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

/// The channel's errors at Tokio's paths: `broadcast::error::RecvError` is
/// [`RecvError`], the same type as the flat name.
pub mod error {
    pub use super::{RecvError, SendError, TryRecvError};
}

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
            let mut tail = lock(&self.shared.tail);
            if tail.receivers == 0 {
                return Err(SendError(value));
            }
            let seq = tail.next_seq;
            let evicted = {
                let mut slot = write(&self.shared.slots[tail.next_index]);
                slot.seq = seq;
                slot.value.replace(value)
            };
            tail.next_seq += 1;
            tail.next_index = next_index(tail.next_index, self.shared.slots.len());
            self.shared.sent.store(tail.next_seq, Release);
            while let Some((_, waker)) = tail.waiters.pop_front() {
                wakers.push(waker);
            }
            (tail.receivers, evicted)
        };
        // The overwritten message is dropped outside every lock.
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
        lock(&self.shared.tail).receivers
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
            let mut tail = lock(&self.shared.tail);
            tail.senders_gone = true;
            while let Some((_, waker)) = tail.waiters.pop_front() {
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
    /// Its slot.
    index: usize,
    id: u64,
    /// Its entry in the wait list, while waiting (rule 4).
    waiting: Option<WaitKey>,
    /// Ready receives until the next spends budget (`coop.rs`).
    coop: crate::coop::Countdown,
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
        match self.next_or_wait(None) {
            Some(Ok(value)) => Ok(value),
            Some(Err(RecvError::Lagged(n))) => Err(TryRecvError::Lagged(n)),
            Some(Err(RecvError::Closed)) => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        let unit = std::task::ready!(self.coop.proceed(cx));
        match self.next_or_wait(Some(cx.waker())) {
            Some(result) => {
                unit.used();
                Poll::Ready(result)
            }
            None => {
                crate::observe::waiting("broadcast::Receiver::recv", Arc::as_ptr(&self.shared));
                Poll::Pending
            }
        }
    }

    /// The next message, a lag report or the end; `None` if nothing is
    /// sent yet, after registering `waker` if given (rule 2).
    fn next_or_wait(&mut self, waker: Option<&Waker>) -> Option<Result<T, RecvError>> {
        loop {
            // Rule 1: the fast path reads the slot alone.
            let overwritten = {
                let slot = read(&self.shared.slots[self.index]);
                if slot.seq == self.next {
                    self.next += 1;
                    self.index = next_index(self.index, self.shared.slots.len());
                    return Some(Ok(slot.value.clone().expect("weft-sync bug: a written slot is empty")));
                }
                slot.seq != u64::MAX && slot.seq > self.next
            };
            // Written after our look (the sender publishes `sent` after the
            // slot): read again, with no need for the tail lock (rule 2). A
            // slot already holding a newer message means a lag, which the
            // tail decides (a sender may be between the two writes).
            let sent = self.shared.sent.load(Acquire);
            if !overwritten && self.next < sent {
                if let Some(missed) = lagged(&mut self.next, &mut self.index, &self.shared, sent) {
                    return Some(Err(RecvError::Lagged(missed)));
                }
                continue;
            }
            let mut tail = lock(&self.shared.tail);
            if let Some(missed) = lagged(&mut self.next, &mut self.index, &self.shared, tail.next_seq) {
                return Some(Err(RecvError::Lagged(missed)));
            }
            if self.next < tail.next_seq {
                // Written after our look at the slot: read it again.
                continue;
            }
            if tail.senders_gone {
                return Some(Err(RecvError::Closed));
            }
            let waker = waker?;
            let registered = self
                .waiting
                .and_then(|key| tail.waiters.get_mut(key))
                .filter(|(id, _)| *id == self.id);
            match registered {
                Some((_, registered)) => registered.clone_from(waker),
                None => self.waiting = Some(tail.waiters.push_back((self.id, waker.clone()))),
            }
            return None;
        }
    }

    /// A new receiver that sees messages sent from now on (not the ones
    /// this one has yet to read).
    pub fn resubscribe(&self) -> Receiver<T> {
        new_receiver(&self.shared)
    }
}

/// A receiver positioned after the newest message.
fn new_receiver<T>(shared: &Arc<Shared<T>>) -> Receiver<T> {
    let mut tail = lock(&shared.tail);
    tail.receivers += 1;
    let id = tail.next_receiver_id;
    tail.next_receiver_id += 1;
    Receiver {
        shared: shared.clone(),
        next: tail.next_seq,
        index: tail.next_index,
        id,
        waiting: None,
        coop: crate::coop::Countdown::default(),
    }
}

/// Rule 3: if `sent` messages leave a receiver at `next` behind the ring,
/// moves it to the oldest message kept and says how many it missed.
fn lagged<T>(next: &mut u64, index: &mut usize, shared: &Shared<T>, sent: u64) -> Option<u64> {
    let oldest = sent.saturating_sub(shared.capacity());
    if *next >= oldest {
        return None;
    }
    let missed = oldest - *next;
    *next = oldest;
    *index = shared.index(oldest);
    Some(missed)
}

/// The slot after `index` in a ring of `len`.
fn next_index(index: usize, len: usize) -> usize {
    if index + 1 == len { 0 } else { index + 1 }
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
        let mut tail = lock(&self.shared.tail);
        tail.receivers -= 1;
        if let Some(key) = self.waiting.take() {
            if tail.waiters.get_mut(key).is_some_and(|(id, _)| *id == self.id) {
                tail.waiters.remove(key);
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
