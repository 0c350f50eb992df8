//! Multi-producer, single-consumer channels: [`channel`] (bounded) and
//! [`unbounded_channel`], Tokio's `mpsc`.
//!
//! # Rules
//!
//! 1. **One lock for the queue and the receiver's waker.** A sender pushes
//!    and takes the waker under it; the receiver checks the queue and
//!    registers its waker under it: a message can never slip between the
//!    receiver's check and its sleep.
//! 2. **The receiver takes messages in batches.** It owns a second queue;
//!    when that runs dry it swaps it, under the lock, with the shared one
//!    (which then reuses the drained queue's memory), so a busy receiver
//!    takes the lock once per batch, not once per message, and senders
//!    contend with each other only. Messages in either queue count against
//!    a bounded channel's capacity until the receiver hands them out.
//! 3. **Capacity is a [`Semaphore`].** A bounded channel's free slots are
//!    permits: a sender takes one before it pushes (FIFO among senders,
//!    cancel-safe), the receiver gives one back for each message it takes.
//!    Closing the receiver closes the semaphore, so waiting senders fail.
//! 4. **Closed when every sender is gone**: the last sender to drop marks
//!    it under the lock and wakes the receiver, which then drains what is
//!    left and gets `None`.
//! 5. **The receiver decides under one lock.** "A message", "no message
//!    yet" and "no message ever again" are read in one critical section of
//!    the lock the senders push and close under (`recv_or_register`, which
//!    both `poll_recv` and `try_recv` use). Reading the queue and the end
//!    in two trips would let a send and the last sender's drop fall between
//!    them: `Disconnected` with a message queued, and a loop that stops on
//!    it would drop the message.

use crate::loom::{AtomicUsize, Mutex, Ordering::*, lock};
use crate::observe::WaitSite;
use crate::padded::Padded;
use crate::semaphore::{AcquireError, Semaphore, TryAcquireError};
use crate::wake_list::set_waker;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

struct Chan<T> {
    /// Padded apart from `slots`: senders and the receiver hit both, at
    /// different moments (see `padded.rs`).
    state: Padded<Mutex<State<T>>>,
    /// Free slots of a bounded channel; `None` when unbounded.
    slots: Padded<Option<Semaphore>>,
    senders: AtomicUsize,
}

struct State<T> {
    queue: VecDeque<T>,
    rx_waker: Option<Waker>,
    /// Every sender is gone.
    senders_gone: bool,
    /// The receiver is closed or gone.
    rx_closed: bool,
}

impl<T> Chan<T> {
    fn new(slots: Option<Semaphore>) -> Arc<Chan<T>> {
        Arc::new(Chan {
            state: Padded(Mutex::new(State {
                queue: VecDeque::new(),
                rx_waker: None,
                senders_gone: false,
                rx_closed: false,
            })),
            slots: Padded(slots),
            senders: AtomicUsize::new(1),
        })
    }

    /// Rule 1: pushes and wakes the receiver; gives the value back if the
    /// receiver is closed.
    fn push(&self, value: T) -> Result<(), T> {
        let waker = {
            let mut state = lock(&self.state);
            if state.rx_closed {
                return Err(value);
            }
            state.queue.push_back(value);
            state.rx_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// A slot is free again (rule 3): a message left the receiver's hands.
    fn free_slots(&self, n: usize) {
        if let Some(slots) = &*self.slots {
            slots.add_permits(n);
        }
    }

    fn close_rx(&self) {
        lock(&self.state).rx_closed = true;
        if let Some(slots) = &*self.slots {
            slots.close();
        }
    }

    fn add_sender(&self) {
        self.senders.fetch_add(1, Relaxed);
    }

    fn drop_sender(&self) {
        if self.senders.fetch_sub(1, AcqRel) != 1 {
            return;
        }
        // Rule 4.
        let waker = {
            let mut state = lock(&self.state);
            state.senders_gone = true;
            state.rx_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn is_closed(&self) -> bool {
        lock(&self.state).rx_closed
    }
}

pub use crate::error::SendError;

/// Why `try_send` failed; holds the message.
#[derive(PartialEq, Eq, Clone)]
pub enum TrySendError<T> {
    /// The channel is full.
    Full(T),
    /// The receiver is gone or closed.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("the channel is full"),
            TrySendError::Closed(_) => f.write_str("the channel is closed"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

/// Why `try_recv` returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message now; senders remain.
    Empty,
    /// No message, and every sender is gone (or the receiver closed).
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("the channel is empty"),
            TryRecvError::Disconnected => f.write_str("the channel is empty and closed"),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// The channel's errors at Tokio's paths: `mpsc::error::TrySendError` is
/// [`TrySendError`], the same type as the flat name.
///
/// Tokio's `SendTimeoutError` has no counterpart: this crate has no clock,
/// so there is no `send_timeout`. Put a timeout around
/// [`Sender::reserve`] instead (with Weft, `weft::time::timeout(d,
/// tx.reserve())`) and [`Permit::send`] the value once it returns: when the
/// time runs out, the value is still yours.
pub mod error {
    pub use super::{SendError, TryRecvError, TrySendError};
}

/// A bounded channel holding at most `capacity` messages.
///
/// ```
/// futures::executor::block_on(async {
///     let (tx, mut rx) = weft_sync::mpsc::channel(2);
///     let tx2 = tx.clone();
///     tx.send(1).await.unwrap();
///     tx2.send(2).await.unwrap();
///     assert!(matches!(tx.try_send(3), Err(weft_sync::mpsc::TrySendError::Full(3))));
///     drop((tx, tx2));
///     assert_eq!(rx.recv().await, Some(1));
///     assert_eq!(rx.recv().await, Some(2));
///     assert_eq!(rx.recv().await, None); // every sender is gone
/// });
/// ```
///
/// # Panics
///
/// If `capacity` is 0 (use a oneshot, or capacity 1) or exceeds
/// [`MAX_PERMITS`](crate::MAX_PERMITS).
#[track_caller]
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "weft_sync::mpsc::channel: the capacity must be at least 1"
    );
    let chan = Chan::new(Some(Semaphore::new(capacity)));
    (Sender { chan: chan.clone() }, Receiver::new(chan))
}

/// A channel with no bound: `send` never waits.
///
/// ```
/// let (tx, mut rx) = weft_sync::mpsc::unbounded_channel();
/// tx.send("hi").unwrap();
/// assert_eq!(rx.try_recv(), Ok("hi"));
/// ```
pub fn unbounded_channel<T>() -> (UnboundedSender<T>, Receiver<T>) {
    let chan = Chan::new(None);
    (UnboundedSender { chan: chan.clone() }, Receiver::new(chan))
}

/// The sending half of a bounded channel; clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    fn slots(&self) -> &Semaphore {
        self.chan
            .slots
            .as_ref()
            .expect("weft-sync bug: a bounded sender without slots")
    }

    /// Waits for a free slot, then sends. Cancel-safe in the sense that a
    /// cancelled send sends nothing (the message is dropped with the
    /// future); to keep the message, [`reserve`](Self::reserve) first.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if the receiver is gone.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.reserve().await {
            Ok(permit) => {
                permit.send(value);
                Ok(())
            }
            Err(SendError(())) => Err(SendError(value)),
        }
    }

    /// Sends if a slot is free now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the message.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match self.slots().try_acquire() {
            Ok(slot) => slot.forget(),
            Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full(value)),
            Err(TryAcquireError::Closed) => return Err(TrySendError::Closed(value)),
        }
        self.chan.push(value).map_err(TrySendError::Closed)
    }

    /// Waits for a free slot and holds it: the [`Permit`] then sends without
    /// waiting. Cancel-safe (a cancelled reserve holds nothing).
    ///
    /// # Errors
    ///
    /// [`SendError`] if the receiver is gone.
    pub async fn reserve(&self) -> Result<Permit<'_, T>, SendError<()>> {
        match self
            .slots()
            .acquire_as(1, WaitSite::new("mpsc::Sender::send", Arc::as_ptr(&self.chan)))
            .await
        {
            Ok(slot) => {
                slot.forget();
                Ok(Permit { sender: self })
            }
            Err(AcquireError { .. }) => Err(SendError(())),
        }
    }

    /// True once the receiver is gone or closed.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Free slots right now.
    pub fn capacity(&self) -> usize {
        self.slots().available_permits()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.add_sender();
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("closed", &self.is_closed()).finish()
    }
}

/// A reserved slot of a bounded channel: sending through it cannot wait or
/// fail for lack of room. Dropping it frees the slot.
#[must_use = "the slot is freed if the permit is dropped unused"]
pub struct Permit<'a, T> {
    sender: &'a Sender<T>,
}

impl<T> Permit<'_, T> {
    /// Sends `value` into the reserved slot. If the receiver closed in the
    /// meantime the value is dropped, as it would be with the queue.
    pub fn send(self, value: T) {
        let sender = self.sender;
        std::mem::forget(self);
        if sender.chan.push(value).is_err() {
            sender.slots().add_permits(1);
        }
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.sender.slots().add_permits(1);
    }
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// The sending half of an unbounded channel.
pub struct UnboundedSender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> UnboundedSender<T> {
    /// Sends without waiting.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.push(value).map_err(SendError)
    }

    /// True once the receiver is gone or closed.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> UnboundedSender<T> {
        self.chan.add_sender();
        UnboundedSender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for UnboundedSender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for UnboundedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedSender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The receiving half of either channel; a `Stream` of messages.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    /// Messages taken from the shared queue in one batch (rule 2).
    batch: VecDeque<T>,
    /// Ready receives until the next spends budget (`coop.rs`).
    coop: crate::coop::Countdown,
}

/// Tokio's name for the receiving half of an [`unbounded_channel`]: here
/// one [`Receiver`] serves both kinds of channel, so this is that type.
pub type UnboundedReceiver<T> = Receiver<T>;

impl<T> Receiver<T> {
    fn new(chan: Arc<Chan<T>>) -> Receiver<T> {
        Receiver {
            chan,
            batch: VecDeque::new(),
            coop: crate::coop::Countdown::default(),
        }
    }

    /// The next message, or `None` once every sender is gone and the queue
    /// is empty. Cancel-safe: a cancelled `recv` takes no message.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Waits for at least one message, then moves up to `limit` into
    /// `buffer`; returns how many (0 once closed and empty). Cancel-safe.
    pub async fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        let Some(first) = self.recv().await else { return 0 };
        buffer.push(first);
        let mut taken = 1;
        while taken < limit {
            if self.batch.is_empty() && !self.refill() {
                break;
            }
            let more = (limit - taken).min(self.batch.len());
            buffer.extend(self.batch.drain(..more));
            taken += more;
        }
        self.chan.free_slots(taken - 1);
        taken
    }

    /// Rule 2: swaps the empty batch with the shared queue; false if that
    /// was empty too.
    fn refill(&mut self) -> bool {
        debug_assert!(self.batch.is_empty());
        let mut state = lock(&self.chan.state);
        if state.queue.is_empty() {
            return false;
        }
        std::mem::swap(&mut state.queue, &mut self.batch);
        true
    }

    /// A message if one is queued now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], or [`TryRecvError::Disconnected`] once no
    /// message is queued and every sender is gone (or the receiver closed).
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.recv_or_register(None)
    }

    /// Polls for the next message (the `Stream` method, without the trait).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let unit = std::task::ready!(self.coop.proceed(cx));
        match self.recv_or_register(Some(cx.waker())) {
            Ok(value) => {
                unit.used();
                Poll::Ready(Some(value))
            }
            Err(TryRecvError::Disconnected) => {
                unit.used();
                Poll::Ready(None)
            }
            Err(TryRecvError::Empty) => {
                crate::observe::waiting("mpsc::Receiver::recv", Arc::as_ptr(&self.chan));
                Poll::Pending
            }
        }
    }

    /// The next message, from the batch or else the shared queue (freeing
    /// its slot); or, decided under the same lock (rule 5), `Empty` (after
    /// registering `waker`, if given: rule 1) or `Disconnected`.
    fn recv_or_register(&mut self, waker: Option<&Waker>) -> Result<T, TryRecvError> {
        if let Some(value) = self.batch.pop_front() {
            self.chan.free_slots(1);
            return Ok(value);
        }
        let mut state = lock(&self.chan.state);
        if !state.queue.is_empty() {
            // Rule 2: take the whole queue as the next batch.
            std::mem::swap(&mut state.queue, &mut self.batch);
            drop(state);
            let value = self
                .batch
                .pop_front()
                .expect("weft-sync bug: a swapped-in batch is empty");
            self.chan.free_slots(1);
            return Ok(value);
        }
        if state.senders_gone || state.rx_closed {
            return Err(TryRecvError::Disconnected);
        }
        if let Some(waker) = waker {
            set_waker(&mut state.rx_waker, waker);
        }
        Err(TryRecvError::Empty)
    }

    /// Closes the channel from this side: senders fail from now on (waiting
    /// ones too); messages already queued can still be received.
    pub fn close(&mut self) {
        self.chan.close_rx();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.close_rx();
        // Drop the messages nobody will read, outside the lock.
        let queued = std::mem::take(&mut lock(&self.chan.state).queue);
        drop(queued);
        self.batch.clear();
    }
}

impl<T> Unpin for Receiver<T> {}

impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{TryRecvError, TrySendError, channel, unbounded_channel};
    use futures::{FutureExt, StreamExt};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    #[test]
    fn a_full_channel_makes_senders_wait_in_order_and_receiving_frees_slots() {
        let (tx, mut rx) = channel(1);
        let mut cx = Context::from_waker(Waker::noop());
        tx.try_send(0).unwrap();
        let mut a = pin!(tx.send(1));
        let mut b = pin!(tx.send(2));
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        assert_eq!(rx.try_recv(), Ok(0));
        assert!(
            b.as_mut().poll(&mut cx).is_pending(),
            "FIFO: the first sender gets the slot"
        );
        assert!(a.as_mut().poll(&mut cx).is_ready());
        assert_eq!(rx.try_recv(), Ok(1));
        assert!(b.as_mut().poll(&mut cx).is_ready());
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn closing_the_receiver_fails_senders_but_keeps_queued_messages() {
        let (tx, mut rx) = channel(1);
        let mut cx = Context::from_waker(Waker::noop());
        tx.try_send(1).unwrap();
        let mut waiting = pin!(tx.send(2));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        rx.close();
        assert!(matches!(waiting.as_mut().poll(&mut cx), std::task::Poll::Ready(Err(_))));
        assert!(matches!(tx.try_send(3), Err(TrySendError::Closed(3))));
        assert!(tx.is_closed());
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn reserve_then_send_and_a_dropped_permit_frees_its_slot() {
        let (tx, mut rx) = channel::<u8>(1);
        let permit = tx.reserve().now_or_never().unwrap().unwrap();
        assert!(matches!(tx.try_send(9), Err(TrySendError::Full(9))));
        drop(permit);
        let permit = tx.reserve().now_or_never().unwrap().unwrap();
        permit.send(4);
        assert_eq!(rx.try_recv(), Ok(4));
        assert_eq!(tx.capacity(), 1);
    }

    #[test]
    fn a_batch_frees_one_slot_per_message_handed_out_and_keeps_arrival_order() {
        let (tx, mut rx) = channel(3);
        for i in 0..3 {
            tx.try_send(i).unwrap();
        }
        // The first receive moves all three into the receiver's batch, but
        // only the one handed out frees a slot.
        assert_eq!(rx.try_recv(), Ok(0));
        assert_eq!(tx.capacity(), 1);
        tx.try_send(3).unwrap();
        assert!(matches!(tx.try_send(4), Err(TrySendError::Full(4))));
        let mut out = Vec::new();
        assert_eq!(rx.recv_many(&mut out, 10).now_or_never(), Some(3));
        assert_eq!(out, [1, 2, 3], "the batch first, then the shared queue");
        assert_eq!(tx.capacity(), 3);
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn recv_many_and_the_stream_end_when_senders_are_gone() {
        let (tx, mut rx) = unbounded_channel();
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 4).now_or_never(), Some(4));
        assert_eq!(buf, [0, 1, 2, 3]);
        drop(tx);
        let rest: Vec<_> = futures::executor::block_on(rx.collect());
        assert_eq!(rest, (4..10).collect::<Vec<_>>());
    }

    /// A send and then the last sender's drop, on another thread, against
    /// a receiver looping on `try_recv` until `Disconnected`, on both kinds
    /// of channel: it must never say `Disconnected` while the message is
    /// queued (rule 5: the two facts are read under one lock).
    #[test]
    fn try_recv_never_reports_disconnected_before_the_last_message() {
        const ROUNDS: usize = if cfg!(miri) { 20 } else { 20_000 };
        /// Sends 7 and drops the sender, on the thread it is handed to.
        type Send7 = Box<dyn FnOnce() + Send>;
        fn lost_rounds(make: fn() -> (Send7, super::Receiver<usize>)) -> usize {
            let (handoff, sends) = std::sync::mpsc::channel::<Send7>();
            let sender_thread = std::thread::spawn(move || sends.into_iter().for_each(|send| send()));
            let mut lost = 0;
            for _ in 0..ROUNDS {
                let (send, mut rx) = make();
                handoff.send(send).unwrap();
                let mut got = None;
                loop {
                    match rx.try_recv() {
                        Ok(value) => got = Some(value),
                        Err(TryRecvError::Empty) => std::hint::spin_loop(),
                        Err(TryRecvError::Disconnected) => break,
                    }
                }
                if got != Some(7) {
                    lost += 1;
                }
            }
            drop(handoff);
            sender_thread.join().unwrap();
            lost
        }
        let unbounded = lost_rounds(|| {
            let (tx, rx) = unbounded_channel();
            (Box::new(move || tx.send(7).unwrap()), rx)
        });
        let bounded = lost_rounds(|| {
            let (tx, rx) = channel(1);
            (Box::new(move || tx.try_send(7).unwrap()), rx)
        });
        assert_eq!(
            (unbounded, bounded),
            (0, 0),
            "rounds of {ROUNDS} that stopped at Disconnected with the message queued (unbounded, bounded)"
        );
    }

    #[test]
    fn five_senders_one_receiver_across_threads() {
        const PER_SENDER: usize = if cfg!(miri) { 20 } else { 1000 };
        let (tx, mut rx) = channel(16);
        let threads: Vec<_> = (0..5)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    futures::executor::block_on(async {
                        for i in 0..PER_SENDER {
                            tx.send((t, i)).await.unwrap();
                        }
                    })
                })
            })
            .collect();
        drop(tx);
        let mut last = [None; 5];
        let mut n = 0;
        futures::executor::block_on(async {
            while let Some((t, i)) = rx.recv().await {
                // Per-sender order holds.
                assert!(last[t].is_none_or(|l| l < i));
                last[t] = Some(i);
                n += 1;
            }
        });
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(n, 5 * PER_SENDER);
    }
}
