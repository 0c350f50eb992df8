//! Suite `sync`: weft-sync's primitives against `tokio::sync` and smol-rs'
//! crates (`async-lock`, `async-channel`, `async-broadcast`), all three on
//! the same Weft runtime (`--workers` threads), so that only the primitive
//! differs.
//!
//! | workload | what (after Tokio's `benches/sync_*.rs` where it has one) | metric |
//! | --- | --- | --- |
//! | `mutex_uncontended` | one task locks, adds one and unlocks, 100k times | `lock_ns` |
//! | `mutex_contended` | 8 tasks do the same, 12,500 times each | `lock_ns` |
//! | `semaphore_uncontended` | one task acquires and releases one of 10 permits, 100k times (`sync_semaphore.rs`' `uncontended`) | `acquire_ns` |
//! | `semaphore_contended` | 8 tasks share 2 permits: acquire, yield to the runtime with the permit held, release; 2,500 times each | `acquire_ns` |
//! | `mpsc_contended_bounded` | `sync_mpsc.rs`' `contention_bounded`: 5 sender tasks x 1000 messages, capacity 1M, received by the timing task | `msg_ns` |
//! | `mpsc_contended_full` | the same with capacity 100, so senders wait (`contention_bounded_full`) | `msg_ns` |
//! | `mpsc_contended_unbounded` | the same, unbounded (`contention_unbounded`) | `msg_ns` |
//! | `mpsc_uncontended_bounded` | one task sends 5000 messages (capacity 1M), then receives them (`uncontented_bounded`) | `msg_ns` |
//! | `mpsc_uncontended_unbounded` | the same, unbounded (`uncontented_unbounded`) | `msg_ns` |
//! | `oneshot_send_recv` | one task makes a pair, sends, then awaits the value, 100k times | `round_trip_ns` |
//! | `oneshot_request_reply` | `sync_mpsc_oneshot.rs`: each request carries a oneshot sender through an mpsc (capacity 10) to a server task, which answers on it; 10k requests | `round_trip_ns` |
//! | `broadcast_4rx` | 1 sender, 4 receiver tasks, 10k messages, room for all of them (nobody lags or waits for room) | `msg_ns` (per message sent) |
//! | `broadcast_lockstep_10rx` | `sync_broadcast.rs`' `contention/10`: each message is received by all 10 receiver tasks before the next is sent; 2000 messages, capacity 1000 | `msg_ns` (per message sent) |
//!
//! The mpsc workloads run Tokio's 5000 messages 10 times per sample, each
//! time on a new channel; making and dropping the channel is not timed
//! (async-channel allocates its whole capacity, 1M slots, up front, where
//! the others grow as needed; Tokio's capacity stands for "never full").
//!
//! The third column is named after the smol-rs crate it uses: `async-lock`
//! for the mutex and the semaphore, `async-channel` for mpsc and oneshot
//! (it has no oneshot: `async_channel::bounded(1)`, its documented
//! stand-in, sending with `try_send`), `async-broadcast` for broadcast (the
//! unboxed `broadcast_direct`/`recv_direct`). weft-sync, the first column,
//! is the anchor of the ratios. `--runtime weft|tokio|smol` keeps only
//! weft-sync, `tokio::sync` or the smol-rs crates.
//!
//! Every workload runs inside one spawned task, on a worker, and times
//! itself there, so the spawn and join around it are not counted; spawning
//! the tasks *inside* a workload is, as in Tokio's benches (the same Weft
//! spawn for every column).

use crate::Options;
use crate::report::Report;
use crate::runtimes::{Ctx, Rt, Weft};
use futures::task::AtomicWaker;
use std::future::{Future, poll_fn};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicUsize,
    Ordering::{AcqRel, Acquire, Release},
};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Lock and unlock rounds of the mutex workloads (in all).
const MUTEX_OPS: u64 = 100_000;
/// Tasks of the contended workloads.
const TASKS: u64 = 8;
/// Acquire and release rounds of `semaphore_uncontended`.
const SEMAPHORE_OPS: u64 = 100_000;
/// The permits of `semaphore_uncontended` (Tokio's 10).
const SEMAPHORE_PERMITS: usize = 10;
/// Acquire and release rounds of `semaphore_contended` (in all): each
/// holds its permit across a yield, so it costs more.
const CONTENDED_SEMAPHORE_OPS: u64 = 20_000;
/// The permits of `semaphore_contended`.
const CONTENDED_PERMITS: usize = 2;
/// Sender tasks of the mpsc contention workloads (Tokio's 5).
const SENDERS: u64 = 5;
/// Messages per sender (Tokio's 1000).
const PER_SENDER: u64 = 1_000;
/// Capacity of a bounded channel that never fills (Tokio's 1M).
const ROOMY: usize = 1_000_000;
/// Capacity of `mpsc_contended_full` (Tokio's 100).
const FULL: usize = 100;
/// Tokio's workload, on a new channel each time, per sample.
const MPSC_ROUNDS: u64 = 10;
/// Pairs of `oneshot_send_recv`.
const ONESHOTS: u64 = 100_000;
/// Requests of `oneshot_request_reply` (Tokio's 1000 per iteration).
const REQUESTS: u64 = 10_000;
/// The request queue of `oneshot_request_reply` (Tokio's 10).
const REQUEST_QUEUE: usize = 10;
/// Receivers of `broadcast_4rx`.
const BROADCAST_RECEIVERS: usize = 4;
/// Messages of `broadcast_4rx`, and its capacity (room for every one).
const BROADCAST_MESSAGES: u64 = 10_000;
/// Receivers of `broadcast_lockstep_10rx` (Tokio's smallest count).
const LOCKSTEP_RECEIVERS: usize = 10;
/// Messages of `broadcast_lockstep_10rx`.
const LOCKSTEP_MESSAGES: u64 = 2_000;
/// Capacity of `broadcast_lockstep_10rx` (Tokio's 1000).
const LOCKSTEP_CAPACITY: usize = 1_000;

/// One timed run of a workload with one library, on the suite's runtime.
type Workload = fn(&Weft) -> Duration;

/// One column of a row: its name, the `--runtime` name that keeps it, and
/// the workload compiled for its library.
type Column = (&'static str, &'static str, Workload);

/// One row of the table: workload, metric, operations per run, columns.
type Row = (&'static str, &'static str, u64, [Column; 3]);

/// The three columns of a row: `$workload` compiled for weft-sync,
/// `tokio::sync` and the smol-rs crate, each named by its `$primitives`
/// implementation.
macro_rules! columns {
    ($primitives:ident, $workload:ident) => {
        [
            (
                <WeftSync as $primitives>::NAME,
                WeftSync::RUNTIME,
                $workload::<WeftSync> as Workload,
            ),
            (
                <TokioSync as $primitives>::NAME,
                TokioSync::RUNTIME,
                $workload::<TokioSync> as Workload,
            ),
            (
                <SmolRs as $primitives>::NAME,
                SmolRs::RUNTIME,
                $workload::<SmolRs> as Workload,
            ),
        ]
    };
}

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("sync");
    let weft = Weft::new(opts.workers);
    let mpsc_messages = MPSC_ROUNDS * SENDERS * PER_SENDER;
    let rows: [Row; 13] = [
        (
            "mutex_uncontended",
            "lock_ns",
            MUTEX_OPS,
            columns!(Locks, mutex_uncontended),
        ),
        (
            "mutex_contended",
            "lock_ns",
            MUTEX_OPS,
            columns!(Locks, mutex_contended),
        ),
        (
            "semaphore_uncontended",
            "acquire_ns",
            SEMAPHORE_OPS,
            columns!(Locks, semaphore_uncontended),
        ),
        (
            "semaphore_contended",
            "acquire_ns",
            CONTENDED_SEMAPHORE_OPS,
            columns!(Locks, semaphore_contended),
        ),
        (
            "mpsc_contended_bounded",
            "msg_ns",
            mpsc_messages,
            columns!(Channels, mpsc_contended_bounded),
        ),
        (
            "mpsc_contended_full",
            "msg_ns",
            mpsc_messages,
            columns!(Channels, mpsc_contended_full),
        ),
        (
            "mpsc_contended_unbounded",
            "msg_ns",
            mpsc_messages,
            columns!(Channels, mpsc_contended_unbounded),
        ),
        (
            "mpsc_uncontended_bounded",
            "msg_ns",
            mpsc_messages,
            columns!(Channels, mpsc_uncontended_bounded),
        ),
        (
            "mpsc_uncontended_unbounded",
            "msg_ns",
            mpsc_messages,
            columns!(Channels, mpsc_uncontended_unbounded),
        ),
        (
            "oneshot_send_recv",
            "round_trip_ns",
            ONESHOTS,
            columns!(Channels, oneshot_send_recv),
        ),
        (
            "oneshot_request_reply",
            "round_trip_ns",
            REQUESTS,
            columns!(Channels, oneshot_request_reply),
        ),
        (
            "broadcast_4rx",
            "msg_ns",
            BROADCAST_MESSAGES,
            columns!(Broadcast, broadcast_free),
        ),
        (
            "broadcast_lockstep_10rx",
            "msg_ns",
            LOCKSTEP_MESSAGES,
            columns!(Broadcast, broadcast_lockstep),
        ),
    ];
    for (workload, metric, ops, columns) in rows {
        compare(&mut report, opts, &weft, workload, metric, ops, columns);
    }
    report
}

/// Runs `warmup + reps` rounds of the row, one library after the other in
/// each round (so drifts in machine load hit all of them alike), and
/// records each timed round's time per operation (`ops` of them) under
/// `metric`.
fn compare(
    report: &mut Report,
    opts: &Options,
    rt: &Weft,
    workload: &str,
    metric: &'static str,
    ops: u64,
    columns: [Column; 3],
) {
    if opts.filter.as_deref().is_some_and(|f| !workload.contains(f)) {
        return;
    }
    eprint!("{workload} ");
    for rep in 0..opts.warmup + opts.reps {
        for (name, runtime, run) in columns {
            if opts.runtime.as_deref().is_some_and(|only| only != runtime) {
                continue;
            }
            let elapsed = run(rt);
            if rep >= opts.warmup {
                report.record(workload, name, metric, elapsed.as_nanos() as f64 / ops as f64);
            }
        }
    }
    eprintln!("done");
}

/// Runs `body` as a task on one of `rt`'s workers and waits for it from
/// this thread.
fn in_task<T: Send + 'static>(rt: &Weft, body: impl Future<Output = T> + Send + 'static) -> T {
    let ctx = rt.ctx();
    rt.block_on(ctx.spawn(body))
}

// ----- The libraries ---------------------------------------------------------

/// A library under test.
trait Lib: 'static {
    /// The `--runtime` name that keeps it: the ecosystem it belongs to.
    const RUNTIME: &'static str;
}

/// weft-sync.
#[derive(Debug)]
struct WeftSync;

/// `tokio::sync`.
#[derive(Debug)]
struct TokioSync;

/// smol-rs' `async-lock`, `async-channel` and `async-broadcast`.
#[derive(Debug)]
struct SmolRs;

impl Lib for WeftSync {
    const RUNTIME: &'static str = "weft";
}

impl Lib for TokioSync {
    const RUNTIME: &'static str = "tokio";
}

impl Lib for SmolRs {
    const RUNTIME: &'static str = "smol";
}

/// A mutex around a `u64`, and a semaphore.
trait Locks: Lib {
    /// The column's name.
    const NAME: &'static str;
    /// The mutex, holding a `u64`.
    type Mutex: Send + Sync + 'static;
    /// The semaphore.
    type Semaphore: Send + Sync + 'static;
    /// A mutex holding 0.
    fn mutex() -> Self::Mutex;
    /// Locks, adds one, unlocks; returns the new value.
    fn increment(mutex: &Self::Mutex) -> impl Future<Output = u64> + Send;
    /// A semaphore with `permits` permits.
    fn semaphore(permits: usize) -> Self::Semaphore;
    /// Acquires a permit, yields to the runtime with it held if `hold`, and
    /// releases it.
    fn acquire_release(semaphore: &Self::Semaphore, hold: bool) -> impl Future<Output = ()> + Send;
}

impl Locks for WeftSync {
    const NAME: &'static str = "weft-sync";
    type Mutex = weft_sync::Mutex<u64>;
    type Semaphore = weft_sync::Semaphore;
    fn mutex() -> Self::Mutex {
        weft_sync::Mutex::new(0)
    }
    async fn increment(mutex: &Self::Mutex) -> u64 {
        let mut value = mutex.lock().await;
        *value += 1;
        *value
    }
    fn semaphore(permits: usize) -> Self::Semaphore {
        weft_sync::Semaphore::new(permits)
    }
    async fn acquire_release(semaphore: &Self::Semaphore, hold: bool) {
        let permit = semaphore.acquire().await.expect("never closed");
        if hold {
            weft::task::yield_now().await;
        }
        drop(permit);
    }
}

impl Locks for TokioSync {
    const NAME: &'static str = "tokio::sync";
    type Mutex = tokio::sync::Mutex<u64>;
    type Semaphore = tokio::sync::Semaphore;
    fn mutex() -> Self::Mutex {
        tokio::sync::Mutex::new(0)
    }
    async fn increment(mutex: &Self::Mutex) -> u64 {
        let mut value = mutex.lock().await;
        *value += 1;
        *value
    }
    fn semaphore(permits: usize) -> Self::Semaphore {
        tokio::sync::Semaphore::new(permits)
    }
    async fn acquire_release(semaphore: &Self::Semaphore, hold: bool) {
        let permit = semaphore.acquire().await.expect("never closed");
        if hold {
            weft::task::yield_now().await;
        }
        drop(permit);
    }
}

impl Locks for SmolRs {
    const NAME: &'static str = "async-lock";
    type Mutex = async_lock::Mutex<u64>;
    type Semaphore = async_lock::Semaphore;
    fn mutex() -> Self::Mutex {
        async_lock::Mutex::new(0)
    }
    async fn increment(mutex: &Self::Mutex) -> u64 {
        let mut value = mutex.lock().await;
        *value += 1;
        *value
    }
    fn semaphore(permits: usize) -> Self::Semaphore {
        async_lock::Semaphore::new(permits)
    }
    async fn acquire_release(semaphore: &Self::Semaphore, hold: bool) {
        let permit = semaphore.acquire().await;
        if hold {
            weft::task::yield_now().await;
        }
        drop(permit);
    }
}

/// mpsc channels, bounded and unbounded, and a oneshot. Every send and
/// receive here expects the other end alive, and panics otherwise.
trait Channels: Lib {
    /// The column's name.
    const NAME: &'static str;
    /// A bounded channel's sender.
    type Tx<T: Send + 'static>: Clone + Send + Sync + 'static;
    /// A bounded channel's receiver.
    type Rx<T: Send + 'static>: Send + 'static;
    /// An unbounded channel's sender.
    type UnboundedTx<T: Send + 'static>: Clone + Send + Sync + 'static;
    /// An unbounded channel's receiver.
    type UnboundedRx<T: Send + 'static>: Send + 'static;
    /// A oneshot's sender.
    type OneTx<T: Send + 'static>: Send + 'static;
    /// A oneshot's receiver.
    type OneRx<T: Send + 'static>: Send + 'static;
    /// A bounded channel.
    fn bounded<T: Send + 'static>(capacity: usize) -> (Self::Tx<T>, Self::Rx<T>);
    /// Sends, waiting for room.
    fn send<T: Send + 'static>(tx: &Self::Tx<T>, value: T) -> impl Future<Output = ()> + Send;
    /// The next message; `None` once every sender is gone.
    fn recv<T: Send + 'static>(rx: &mut Self::Rx<T>) -> impl Future<Output = Option<T>> + Send;
    /// An unbounded channel.
    fn unbounded<T: Send + 'static>() -> (Self::UnboundedTx<T>, Self::UnboundedRx<T>);
    /// Sends (never waits).
    fn send_unbounded<T: Send + 'static>(tx: &Self::UnboundedTx<T>, value: T);
    /// The next message; `None` once every sender is gone.
    fn recv_unbounded<T: Send + 'static>(rx: &mut Self::UnboundedRx<T>) -> impl Future<Output = Option<T>> + Send;
    /// A oneshot.
    fn oneshot<T: Send + 'static>() -> (Self::OneTx<T>, Self::OneRx<T>);
    /// Sends the oneshot's value.
    fn send_once<T: Send + 'static>(tx: Self::OneTx<T>, value: T);
    /// Awaits the oneshot's value; `None` if the sender went away without.
    fn recv_once<T: Send + 'static>(rx: Self::OneRx<T>) -> impl Future<Output = Option<T>> + Send;
}

impl Channels for WeftSync {
    const NAME: &'static str = "weft-sync";
    type Tx<T: Send + 'static> = weft_sync::mpsc::Sender<T>;
    type Rx<T: Send + 'static> = weft_sync::mpsc::Receiver<T>;
    type UnboundedTx<T: Send + 'static> = weft_sync::mpsc::UnboundedSender<T>;
    type UnboundedRx<T: Send + 'static> = weft_sync::mpsc::Receiver<T>;
    type OneTx<T: Send + 'static> = weft_sync::oneshot::Sender<T>;
    type OneRx<T: Send + 'static> = weft_sync::oneshot::Receiver<T>;
    fn bounded<T: Send + 'static>(capacity: usize) -> (Self::Tx<T>, Self::Rx<T>) {
        weft_sync::mpsc::channel(capacity)
    }
    async fn send<T: Send + 'static>(tx: &Self::Tx<T>, value: T) {
        assert!(tx.send(value).await.is_ok(), "the receiver is gone");
    }
    async fn recv<T: Send + 'static>(rx: &mut Self::Rx<T>) -> Option<T> {
        rx.recv().await
    }
    fn unbounded<T: Send + 'static>() -> (Self::UnboundedTx<T>, Self::UnboundedRx<T>) {
        weft_sync::mpsc::unbounded_channel()
    }
    fn send_unbounded<T: Send + 'static>(tx: &Self::UnboundedTx<T>, value: T) {
        assert!(tx.send(value).is_ok(), "the receiver is gone");
    }
    async fn recv_unbounded<T: Send + 'static>(rx: &mut Self::UnboundedRx<T>) -> Option<T> {
        rx.recv().await
    }
    fn oneshot<T: Send + 'static>() -> (Self::OneTx<T>, Self::OneRx<T>) {
        weft_sync::oneshot::channel()
    }
    fn send_once<T: Send + 'static>(tx: Self::OneTx<T>, value: T) {
        assert!(tx.send(value).is_ok(), "the receiver is gone");
    }
    async fn recv_once<T: Send + 'static>(rx: Self::OneRx<T>) -> Option<T> {
        rx.await.ok()
    }
}

impl Channels for TokioSync {
    const NAME: &'static str = "tokio::sync";
    type Tx<T: Send + 'static> = tokio::sync::mpsc::Sender<T>;
    type Rx<T: Send + 'static> = tokio::sync::mpsc::Receiver<T>;
    type UnboundedTx<T: Send + 'static> = tokio::sync::mpsc::UnboundedSender<T>;
    type UnboundedRx<T: Send + 'static> = tokio::sync::mpsc::UnboundedReceiver<T>;
    type OneTx<T: Send + 'static> = tokio::sync::oneshot::Sender<T>;
    type OneRx<T: Send + 'static> = tokio::sync::oneshot::Receiver<T>;
    fn bounded<T: Send + 'static>(capacity: usize) -> (Self::Tx<T>, Self::Rx<T>) {
        tokio::sync::mpsc::channel(capacity)
    }
    async fn send<T: Send + 'static>(tx: &Self::Tx<T>, value: T) {
        assert!(tx.send(value).await.is_ok(), "the receiver is gone");
    }
    async fn recv<T: Send + 'static>(rx: &mut Self::Rx<T>) -> Option<T> {
        rx.recv().await
    }
    fn unbounded<T: Send + 'static>() -> (Self::UnboundedTx<T>, Self::UnboundedRx<T>) {
        tokio::sync::mpsc::unbounded_channel()
    }
    fn send_unbounded<T: Send + 'static>(tx: &Self::UnboundedTx<T>, value: T) {
        assert!(tx.send(value).is_ok(), "the receiver is gone");
    }
    async fn recv_unbounded<T: Send + 'static>(rx: &mut Self::UnboundedRx<T>) -> Option<T> {
        rx.recv().await
    }
    fn oneshot<T: Send + 'static>() -> (Self::OneTx<T>, Self::OneRx<T>) {
        tokio::sync::oneshot::channel()
    }
    fn send_once<T: Send + 'static>(tx: Self::OneTx<T>, value: T) {
        assert!(tx.send(value).is_ok(), "the receiver is gone");
    }
    async fn recv_once<T: Send + 'static>(rx: Self::OneRx<T>) -> Option<T> {
        rx.await.ok()
    }
}

/// async-channel has no oneshot: its oneshot is `bounded(1)`, as its docs
/// suggest, sent into with `try_send` (a fresh one always has room).
impl Channels for SmolRs {
    const NAME: &'static str = "async-channel";
    type Tx<T: Send + 'static> = async_channel::Sender<T>;
    type Rx<T: Send + 'static> = async_channel::Receiver<T>;
    type UnboundedTx<T: Send + 'static> = async_channel::Sender<T>;
    type UnboundedRx<T: Send + 'static> = async_channel::Receiver<T>;
    type OneTx<T: Send + 'static> = async_channel::Sender<T>;
    type OneRx<T: Send + 'static> = async_channel::Receiver<T>;
    fn bounded<T: Send + 'static>(capacity: usize) -> (Self::Tx<T>, Self::Rx<T>) {
        async_channel::bounded(capacity)
    }
    async fn send<T: Send + 'static>(tx: &Self::Tx<T>, value: T) {
        assert!(tx.send(value).await.is_ok(), "the receiver is gone");
    }
    async fn recv<T: Send + 'static>(rx: &mut Self::Rx<T>) -> Option<T> {
        rx.recv().await.ok()
    }
    fn unbounded<T: Send + 'static>() -> (Self::UnboundedTx<T>, Self::UnboundedRx<T>) {
        async_channel::unbounded()
    }
    fn send_unbounded<T: Send + 'static>(tx: &Self::UnboundedTx<T>, value: T) {
        assert!(tx.try_send(value).is_ok(), "the receiver is gone");
    }
    async fn recv_unbounded<T: Send + 'static>(rx: &mut Self::UnboundedRx<T>) -> Option<T> {
        rx.recv().await.ok()
    }
    fn oneshot<T: Send + 'static>() -> (Self::OneTx<T>, Self::OneRx<T>) {
        async_channel::bounded(1)
    }
    fn send_once<T: Send + 'static>(tx: Self::OneTx<T>, value: T) {
        assert!(tx.try_send(value).is_ok(), "the receiver is gone");
    }
    async fn recv_once<T: Send + 'static>(rx: Self::OneRx<T>) -> Option<T> {
        rx.recv().await.ok()
    }
}

/// A broadcast channel of `u64`s. A receiver that lags panics: no workload
/// here lets one.
trait Broadcast: Lib {
    /// The column's name.
    const NAME: &'static str;
    /// The sender.
    type Tx: Send + Sync + 'static;
    /// A receiver.
    type Rx: Send + 'static;
    /// A channel keeping `capacity` messages, with its first receiver.
    fn channel(capacity: usize) -> (Self::Tx, Self::Rx);
    /// Another receiver, seeing the messages sent from now on.
    fn subscribe(tx: &Self::Tx) -> Self::Rx;
    /// Sends to every receiver.
    fn send(tx: &Self::Tx, value: u64) -> impl Future<Output = ()> + Send;
    /// The next message; `None` once the sender is gone.
    fn recv(rx: &mut Self::Rx) -> impl Future<Output = Option<u64>> + Send;
}

impl Broadcast for WeftSync {
    const NAME: &'static str = "weft-sync";
    type Tx = weft_sync::broadcast::Sender<u64>;
    type Rx = weft_sync::broadcast::Receiver<u64>;
    fn channel(capacity: usize) -> (Self::Tx, Self::Rx) {
        weft_sync::broadcast::channel(capacity)
    }
    fn subscribe(tx: &Self::Tx) -> Self::Rx {
        tx.subscribe()
    }
    async fn send(tx: &Self::Tx, value: u64) {
        assert!(tx.send(value).is_ok(), "every receiver is gone");
    }
    async fn recv(rx: &mut Self::Rx) -> Option<u64> {
        use weft_sync::broadcast::RecvError;
        match rx.recv().await {
            Ok(value) => Some(value),
            Err(RecvError::Closed) => None,
            Err(RecvError::Lagged(n)) => panic!("a receiver lagged {n} messages behind"),
        }
    }
}

impl Broadcast for TokioSync {
    const NAME: &'static str = "tokio::sync";
    type Tx = tokio::sync::broadcast::Sender<u64>;
    type Rx = tokio::sync::broadcast::Receiver<u64>;
    fn channel(capacity: usize) -> (Self::Tx, Self::Rx) {
        tokio::sync::broadcast::channel(capacity)
    }
    fn subscribe(tx: &Self::Tx) -> Self::Rx {
        tx.subscribe()
    }
    async fn send(tx: &Self::Tx, value: u64) {
        assert!(tx.send(value).is_ok(), "every receiver is gone");
    }
    async fn recv(rx: &mut Self::Rx) -> Option<u64> {
        use tokio::sync::broadcast::error::RecvError;
        match rx.recv().await {
            Ok(value) => Some(value),
            Err(RecvError::Closed) => None,
            Err(RecvError::Lagged(n)) => panic!("a receiver lagged {n} messages behind"),
        }
    }
}

/// async-broadcast waits for room instead of dropping the oldest message
/// (nothing here fills it), and boxes the futures of its plain `broadcast`
/// and `recv`: the unboxed `_direct` ones are used.
impl Broadcast for SmolRs {
    const NAME: &'static str = "async-broadcast";
    type Tx = async_broadcast::Sender<u64>;
    type Rx = async_broadcast::Receiver<u64>;
    fn channel(capacity: usize) -> (Self::Tx, Self::Rx) {
        async_broadcast::broadcast(capacity)
    }
    fn subscribe(tx: &Self::Tx) -> Self::Rx {
        tx.new_receiver()
    }
    async fn send(tx: &Self::Tx, value: u64) {
        assert!(tx.broadcast_direct(value).await.is_ok(), "every receiver is gone");
    }
    async fn recv(rx: &mut Self::Rx) -> Option<u64> {
        use async_broadcast::RecvError;
        match rx.recv_direct().await {
            Ok(value) => Some(value),
            Err(RecvError::Closed) => None,
            Err(RecvError::Overflowed(n)) => panic!("a receiver lagged {n} messages behind"),
        }
    }
}

// ----- The workloads ---------------------------------------------------------

/// One task: `MUTEX_OPS` rounds of lock, add one, unlock.
fn mutex_uncontended<L: Locks>(rt: &Weft) -> Duration {
    in_task(rt, async {
        let mutex = L::mutex();
        let start = Instant::now();
        for _ in 0..MUTEX_OPS {
            L::increment(&mutex).await;
        }
        let elapsed = start.elapsed();
        assert_eq!(L::increment(&mutex).await, MUTEX_OPS + 1);
        elapsed
    })
}

/// `TASKS` tasks, `MUTEX_OPS / TASKS` rounds each of lock, add one,
/// unlock, on one mutex; timed until the last is joined.
fn mutex_contended<L: Locks>(rt: &Weft) -> Duration {
    let ctx = rt.ctx();
    in_task(rt, async move {
        let mutex = Arc::new(L::mutex());
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mutex = mutex.clone();
                ctx.spawn(async move {
                    for _ in 0..MUTEX_OPS / TASKS {
                        L::increment(&mutex).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        let elapsed = start.elapsed();
        assert_eq!(L::increment(&mutex).await, MUTEX_OPS + 1);
        elapsed
    })
}

/// One task: `SEMAPHORE_OPS` acquires and releases of one permit out of
/// `SEMAPHORE_PERMITS`.
fn semaphore_uncontended<L: Locks>(rt: &Weft) -> Duration {
    in_task(rt, async {
        let semaphore = L::semaphore(SEMAPHORE_PERMITS);
        let start = Instant::now();
        for _ in 0..SEMAPHORE_OPS {
            L::acquire_release(&semaphore, false).await;
        }
        start.elapsed()
    })
}

/// `TASKS` tasks share `CONTENDED_PERMITS` permits, each acquiring one,
/// yielding with it held (so others queue for it) and releasing it,
/// `CONTENDED_SEMAPHORE_OPS / TASKS` times; timed until the last is joined.
fn semaphore_contended<L: Locks>(rt: &Weft) -> Duration {
    let ctx = rt.ctx();
    in_task(rt, async move {
        let semaphore = Arc::new(L::semaphore(CONTENDED_PERMITS));
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let semaphore = semaphore.clone();
                ctx.spawn(async move {
                    for _ in 0..CONTENDED_SEMAPHORE_OPS / TASKS {
                        L::acquire_release(&semaphore, true).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        start.elapsed()
    })
}

/// Tokio's `contention_bounded`: `SENDERS` tasks send `PER_SENDER`
/// messages each into a channel of capacity `ROOMY`.
fn mpsc_contended_bounded<C: Channels>(rt: &Weft) -> Duration {
    contended_bounded::<C>(rt, ROOMY)
}

/// Tokio's `contention_bounded_full`: the same with capacity `FULL`.
fn mpsc_contended_full<C: Channels>(rt: &Weft) -> Duration {
    contended_bounded::<C>(rt, FULL)
}

/// `SENDERS` spawned tasks send `PER_SENDER` messages each into a bounded
/// channel of `capacity`, and this task receives them all; `MPSC_ROUNDS`
/// times, on a new channel each time (made and dropped off the clock).
fn contended_bounded<C: Channels>(rt: &Weft, capacity: usize) -> Duration {
    let ctx = rt.ctx();
    in_task(rt, async move {
        let mut elapsed = Duration::ZERO;
        let mut sum = 0u64;
        for _ in 0..MPSC_ROUNDS {
            let (tx, mut rx) = C::bounded::<u64>(capacity);
            let start = Instant::now();
            for _ in 0..SENDERS {
                let tx = tx.clone();
                ctx.spawn_detached(async move {
                    for i in 0..PER_SENDER {
                        C::send(&tx, i).await;
                    }
                });
            }
            for _ in 0..SENDERS * PER_SENDER {
                sum += C::recv(&mut rx).await.expect("a sender is alive");
            }
            elapsed += start.elapsed();
            drop((tx, rx));
        }
        assert_eq!(sum, MPSC_ROUNDS * SENDERS * PER_SENDER * (PER_SENDER - 1) / 2);
        elapsed
    })
}

/// Tokio's `contention_unbounded`: [`contended_bounded`] on an unbounded
/// channel.
fn mpsc_contended_unbounded<C: Channels>(rt: &Weft) -> Duration {
    let ctx = rt.ctx();
    in_task(rt, async move {
        let mut elapsed = Duration::ZERO;
        let mut sum = 0u64;
        for _ in 0..MPSC_ROUNDS {
            let (tx, mut rx) = C::unbounded::<u64>();
            let start = Instant::now();
            for _ in 0..SENDERS {
                let tx = tx.clone();
                ctx.spawn_detached(async move {
                    for i in 0..PER_SENDER {
                        C::send_unbounded(&tx, i);
                    }
                });
            }
            for _ in 0..SENDERS * PER_SENDER {
                sum += C::recv_unbounded(&mut rx).await.expect("a sender is alive");
            }
            elapsed += start.elapsed();
            drop((tx, rx));
        }
        assert_eq!(sum, MPSC_ROUNDS * SENDERS * PER_SENDER * (PER_SENDER - 1) / 2);
        elapsed
    })
}

/// Tokio's `uncontented_bounded`: one task sends `SENDERS * PER_SENDER`
/// messages into a channel of capacity `ROOMY`, then receives them;
/// `MPSC_ROUNDS` times, on a new channel each time (off the clock).
fn mpsc_uncontended_bounded<C: Channels>(rt: &Weft) -> Duration {
    in_task(rt, async {
        let mut elapsed = Duration::ZERO;
        let mut sum = 0u64;
        for _ in 0..MPSC_ROUNDS {
            let (tx, mut rx) = C::bounded::<u64>(ROOMY);
            let start = Instant::now();
            for i in 0..SENDERS * PER_SENDER {
                C::send(&tx, i).await;
            }
            for _ in 0..SENDERS * PER_SENDER {
                sum += C::recv(&mut rx).await.expect("the sender is alive");
            }
            elapsed += start.elapsed();
            drop((tx, rx));
        }
        black_box(sum);
        elapsed
    })
}

/// Tokio's `uncontented_unbounded`: [`mpsc_uncontended_bounded`] on an
/// unbounded channel.
fn mpsc_uncontended_unbounded<C: Channels>(rt: &Weft) -> Duration {
    in_task(rt, async {
        let mut elapsed = Duration::ZERO;
        let mut sum = 0u64;
        for _ in 0..MPSC_ROUNDS {
            let (tx, mut rx) = C::unbounded::<u64>();
            let start = Instant::now();
            for i in 0..SENDERS * PER_SENDER {
                C::send_unbounded(&tx, i);
            }
            for _ in 0..SENDERS * PER_SENDER {
                sum += C::recv_unbounded(&mut rx).await.expect("the sender is alive");
            }
            elapsed += start.elapsed();
            drop((tx, rx));
        }
        black_box(sum);
        elapsed
    })
}

/// One task: `ONESHOTS` times, a new oneshot, sent into, then awaited (the
/// value is there before the await). Includes making the pair.
fn oneshot_send_recv<C: Channels>(rt: &Weft) -> Duration {
    in_task(rt, async {
        let start = Instant::now();
        let mut sum = 0u64;
        for i in 0..ONESHOTS {
            let (tx, rx) = C::oneshot::<u64>();
            C::send_once(tx, i);
            sum = sum.wrapping_add(C::recv_once(rx).await.expect("the value was sent"));
        }
        let elapsed = start.elapsed();
        black_box(sum);
        elapsed
    })
}

/// Tokio's `request_reply`: a server task receives oneshot senders from an
/// mpsc of capacity `REQUEST_QUEUE` and answers on each; this task sends
/// `REQUESTS` requests, one at a time, awaiting each answer.
fn oneshot_request_reply<C: Channels>(rt: &Weft) -> Duration {
    let ctx = rt.ctx();
    in_task(rt, async move {
        let (tx, mut rx) = C::bounded::<C::OneTx<()>>(REQUEST_QUEUE);
        let server = ctx.spawn(async move {
            while let Some(reply) = C::recv(&mut rx).await {
                C::send_once(reply, ());
            }
        });
        let start = Instant::now();
        for _ in 0..REQUESTS {
            let (reply, answer) = C::oneshot();
            C::send(&tx, reply).await;
            C::recv_once(answer).await.expect("the server answers");
        }
        let elapsed = start.elapsed();
        drop(tx);
        server.await;
        elapsed
    })
}

/// `BROADCAST_RECEIVERS` tasks receive all of `BROADCAST_MESSAGES`
/// messages that this task sends into a channel with room for all of them;
/// timed from the first send until the last receiver is joined (the
/// receivers are spawned before).
fn broadcast_free<B: Broadcast>(rt: &Weft) -> Duration {
    let ctx = rt.ctx();
    in_task(rt, async move {
        let (tx, first) = B::channel(BROADCAST_MESSAGES as usize);
        let receivers: Vec<_> = std::iter::once(first)
            .chain((1..BROADCAST_RECEIVERS).map(|_| B::subscribe(&tx)))
            .map(|mut rx| {
                ctx.spawn(async move {
                    let mut sum = 0u64;
                    for _ in 0..BROADCAST_MESSAGES {
                        sum += B::recv(&mut rx).await.expect("the sender is alive");
                    }
                    sum
                })
            })
            .collect();
        let start = Instant::now();
        for i in 0..BROADCAST_MESSAGES {
            B::send(&tx, i).await;
        }
        for receiver in receivers {
            assert_eq!(receiver.await, BROADCAST_MESSAGES * (BROADCAST_MESSAGES - 1) / 2);
        }
        start.elapsed()
    })
}

/// How many receivers of the lockstep have yet to see the current
/// message, and the sender's waker (the same for every library, so that
/// only the channel differs).
#[derive(Debug, Default)]
struct Acks {
    left: AtomicUsize,
    sender: AtomicWaker,
}

/// Tokio's broadcast `contention`: `LOCKSTEP_RECEIVERS` tasks receive each
/// of `LOCKSTEP_MESSAGES` messages, and the sender waits until every one
/// has it before sending the next; the receivers are spawned before the
/// clock starts, and joined after it stops.
fn broadcast_lockstep<B: Broadcast>(rt: &Weft) -> Duration {
    let ctx = rt.ctx();
    in_task(rt, async move {
        let (tx, first) = B::channel(LOCKSTEP_CAPACITY);
        let acks = Arc::new(Acks::default());
        let receivers: Vec<_> = std::iter::once(first)
            .chain((1..LOCKSTEP_RECEIVERS).map(|_| B::subscribe(&tx)))
            .map(|mut rx| {
                let acks = acks.clone();
                ctx.spawn(async move {
                    let mut received = 0u64;
                    while let Some(value) = B::recv(&mut rx).await {
                        black_box(value);
                        received += 1;
                        if acks.left.fetch_sub(1, AcqRel) == 1 {
                            acks.sender.wake();
                        }
                    }
                    received
                })
            })
            .collect();
        let start = Instant::now();
        for i in 0..LOCKSTEP_MESSAGES {
            acks.left.store(LOCKSTEP_RECEIVERS, Release);
            B::send(&tx, i).await;
            poll_fn(|cx| {
                acks.sender.register(cx.waker());
                if acks.left.load(Acquire) == 0 {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
        let elapsed = start.elapsed();
        drop(tx);
        for receiver in receivers {
            assert_eq!(receiver.await, LOCKSTEP_MESSAGES);
        }
        elapsed
    })
}
