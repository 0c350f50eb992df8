//! Every wait list in the crate against a waker whose `clone` panics.
//!
//! The rule each list keeps: **the waker is cloned before the entry is
//! linked**, and every fact about a linked entry (its key, its state) is
//! recorded before any other waker code runs. So a panicking clone unwinds
//! out of `poll` with nothing linked, the future drops cleanly, and the
//! primitive carries on as if that poll never happened: no entry points at
//! freed memory, no permit or message is handed to a ghost. (Before this
//! order, the semaphore linked first: Miri reported a use-after-free in the
//! next release.)
//!
//! Each test polls once with such a waker, checks that the poll panicked,
//! drops the future, then checks that the primitive still serves the next
//! user. These run under Miri in `scripts/test.sh`.

use crate::{
    Barrier, BoundedSemaphore, Condition, Event, Mutex, Notify, OnceCell, Queue, RwLock, Semaphore, broadcast, mpsc,
    oneshot, watch,
};
use futures::FutureExt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

fn clone_panics(_: *const ()) -> RawWaker {
    panic!("weft-sync test: this waker's clone panics")
}

fn no_op(_: *const ()) {}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_panics, no_op, no_op, no_op);

/// A waker whose `clone` panics (its wakes and drop do nothing).
fn panicking_clone() -> Waker {
    // SAFETY: the vtable's functions ignore the data pointer, and none of
    // them has a contract to uphold (`clone` only panics).
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// Polls `future` once with [`panicking_clone`] and asserts that the poll
/// panicked (so the clone was reached), then drops the future.
fn poll_panics<F: Future>(mut future: Pin<Box<F>>) {
    let waker = panicking_clone();
    let polled = catch_unwind(AssertUnwindSafe(|| {
        future.as_mut().poll(&mut Context::from_waker(&waker)).is_pending()
    }));
    assert!(
        polled.is_err(),
        "the poll never cloned the waker: this test tests nothing"
    );
    drop(future);
}

#[test]
fn semaphore_acquire_and_acquire_owned() {
    let sem = Arc::new(Semaphore::new(0));
    poll_panics(Box::pin(sem.acquire_many(2)));
    poll_panics(Box::pin(sem.clone().acquire_owned()));
    assert_eq!(sem.waiters(), 0, "a ghost waiter was left in the list");
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), 1, "the release went to a ghost");
    // With a waiter queued ahead, the panicking one does not take its place.
    let mut first = Box::pin(sem.acquire_many(2));
    assert!(first.as_mut().now_or_never().is_none());
    poll_panics(Box::pin(sem.acquire()));
    sem.add_permits(1);
    assert!(first.now_or_never().is_some_and(|p| p.is_ok()));
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn mutex_lock() {
    let m = Mutex::new(1);
    let guard = m.try_lock().unwrap();
    poll_panics(Box::pin(m.lock()));
    drop(guard);
    assert_eq!(*m.try_lock().expect("the lock went to a ghost"), 1);
}

#[test]
fn rwlock_read_and_write() {
    let lock = RwLock::new(0);
    let reader = lock.try_read().unwrap();
    poll_panics(Box::pin(lock.write()));
    drop(reader);
    let writer = lock.try_write().expect("the lock went to a ghost");
    poll_panics(Box::pin(lock.read()));
    drop(writer);
    assert!(lock.try_write().is_ok());
}

#[test]
fn bounded_semaphore_acquire() {
    let sem = BoundedSemaphore::new(1);
    sem.try_acquire().unwrap();
    poll_panics(Box::pin(sem.acquire()));
    sem.release().unwrap();
    assert!(sem.try_acquire().is_ok(), "the permit went to a ghost");
}

#[test]
fn mpsc_send_and_recv() {
    let (tx, mut rx) = mpsc::channel(1);
    tx.try_send(1).unwrap();
    poll_panics(Box::pin(tx.send(2)));
    assert_eq!(rx.try_recv(), Ok(1));
    tx.try_send(3).expect("the free slot went to a ghost sender");
    assert_eq!(rx.try_recv(), Ok(3));
    poll_panics(Box::pin(rx.recv()));
    tx.try_send(4).unwrap();
    assert_eq!(rx.recv().now_or_never(), Some(Some(4)));
}

#[test]
fn queue_get_put_join() {
    let q = Queue::new(1);
    poll_panics(Box::pin(q.get()));
    q.put_nowait('a').unwrap();
    poll_panics(Box::pin(q.put('b')));
    poll_panics(Box::pin(q.join()));
    assert_eq!(q.get_nowait(), Ok('a'), "the item went to a ghost getter");
    q.put_nowait('c').expect("the slot went to a ghost putter");
    assert_eq!(q.get_nowait(), Ok('c'));
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert!(q.join().now_or_never().is_some());
}

#[test]
fn notify_event_condition_barrier() {
    let notify = Notify::new();
    poll_panics(Box::pin(notify.notified()));
    notify.notify_one();
    assert!(
        notify.notified().now_or_never().is_some(),
        "the notification went to a ghost instead of becoming the permit"
    );

    let event = Event::new();
    poll_panics(Box::pin(event.wait()));
    event.set();
    assert!(event.wait().now_or_never().is_some());

    let m = Mutex::new(());
    let c = Condition::new();
    poll_panics(Box::pin(c.wait(m.try_lock().unwrap())));
    let mut waiting = Box::pin(c.wait(m.try_lock().expect("the cancelled wait left the mutex locked")));
    assert!(waiting.as_mut().now_or_never().is_none());
    c.notify();
    assert!(waiting.now_or_never().is_some(), "notify() went to a ghost");

    let barrier = Barrier::new(2);
    poll_panics(Box::pin(barrier.wait()));
    // Not cancel-safe by its docs: the dropped wait counted as arrived, so
    // the next arrival completes that round.
    assert!(barrier.wait().now_or_never().is_some_and(|r| r.is_leader()));
}

#[test]
fn broadcast_watch_oneshot_oncecell() {
    let (tx, mut rx) = broadcast::channel(2);
    poll_panics(Box::pin(rx.recv()));
    tx.send(1).unwrap();
    assert_eq!(rx.recv().now_or_never(), Some(Ok(1)));

    let (tx, mut rx) = watch::channel(0);
    poll_panics(Box::pin(rx.changed()));
    tx.send(1).unwrap();
    assert!(rx.changed().now_or_never().is_some_and(|r| r.is_ok()));

    let (tx, rx) = oneshot::channel();
    let mut rx = Box::pin(rx);
    let waker = panicking_clone();
    let polled = catch_unwind(AssertUnwindSafe(|| {
        rx.as_mut().poll(&mut Context::from_waker(&waker)).is_pending()
    }));
    assert!(polled.is_err());
    tx.send(5).unwrap();
    assert_eq!(rx.now_or_never(), Some(Ok(5)));

    let (mut tx, rx) = oneshot::channel::<u8>();
    poll_panics(Box::pin(tx.closed()));
    drop(rx);
    assert!(tx.closed().now_or_never().is_some());

    let cell = OnceCell::new();
    let mut init = Box::pin(cell.get_or_init(std::future::pending::<u8>));
    assert!(init.as_mut().now_or_never().is_none());
    poll_panics(Box::pin(cell.get_or_init(|| async { 1 })));
    drop(init);
    assert_eq!(cell.get_or_init(|| async { 2 }).now_or_never(), Some(&2));
}
