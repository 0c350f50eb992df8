//! The semaphore's owned types and `is_closed`, as a user meets them
//! (issue 22.6: each of these mutants survived the earlier tests).
//!
//! - A cancelled `AcquireOwned` leaves no waiter behind, and a permit
//!   released afterwards goes to the next live waiter, not to the ghost.
//! - Dropping an `OwnedSemaphorePermit` returns its permits; `forget`
//!   keeps them out for good.
//! - `is_closed` is false until `close`, true after.

use futures::FutureExt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};
use weft_sync::Semaphore;

/// A waker that counts its wakes.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counted() -> (Arc<Wakes>, Waker) {
    let wakes = Arc::new(Wakes::default());
    (wakes.clone(), Waker::from(wakes))
}

#[test]
fn a_cancelled_owned_acquire_leaves_no_waiter_and_passes_permits_on() {
    let sem = Arc::new(Semaphore::new(0));
    let (_, ghost_waker) = counted();
    let (next_wakes, next_waker) = counted();
    let mut ghost = Box::pin(sem.clone().acquire_many_owned(2));
    assert!(ghost.as_mut().poll(&mut Context::from_waker(&ghost_waker)).is_pending());
    let mut next = pin!(sem.clone().acquire_owned());
    assert!(next.as_mut().poll(&mut Context::from_waker(&next_waker)).is_pending());
    assert_eq!(sem.waiters(), 2);
    drop(ghost);
    assert_eq!(sem.waiters(), 1, "a cancelled owned acquire left its waiter behind");
    sem.add_permits(1);
    assert_eq!(next_wakes.0.load(SeqCst), 1, "the permit went to the live waiter");
    let permit = match next.as_mut().poll(&mut Context::from_waker(&next_waker)) {
        Poll::Ready(permit) => permit.unwrap(),
        Poll::Pending => panic!("the live waiter did not get the permit"),
    };
    assert_eq!(permit.num_permits(), 1);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn a_cancelled_owned_acquire_that_was_granted_gives_its_permits_back() {
    let sem = Arc::new(Semaphore::new(0));
    let (wakes, waker) = counted();
    let mut granted = Box::pin(sem.clone().acquire_many_owned(2));
    assert!(granted.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    sem.add_permits(2);
    assert_eq!(wakes.0.load(SeqCst), 1);
    // Granted but never polled again: dropping it returns the two permits.
    drop(granted);
    assert_eq!(sem.available_permits(), 2, "a dropped granted acquire kept its permits");
}

#[test]
fn an_owned_permit_returns_its_permits_when_dropped_and_forget_keeps_them() {
    let sem = Arc::new(Semaphore::new(5));
    let permit = sem.clone().try_acquire_many_owned(3).unwrap();
    assert_eq!(permit.num_permits(), 3);
    assert!(Arc::ptr_eq(permit.semaphore(), &sem));
    assert_eq!(sem.available_permits(), 2);
    drop(permit);
    assert_eq!(
        sem.available_permits(),
        5,
        "a dropped owned permit did not return its permits"
    );
    let awaited = sem.clone().acquire_many_owned(4).now_or_never().unwrap().unwrap();
    assert_eq!(sem.available_permits(), 1);
    drop(awaited);
    assert_eq!(sem.available_permits(), 5);
    // A waiter blocked on the permits is woken by the drop.
    let held = sem.clone().try_acquire_many_owned(5).unwrap();
    let (wakes, waker) = counted();
    let mut waiting = pin!(sem.clone().acquire_owned());
    assert!(waiting.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    drop(held);
    assert_eq!(wakes.0.load(SeqCst), 1, "dropping the permit woke the waiter");
    assert!(waiting.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
    let forgotten = sem.clone().try_acquire_many_owned(1).unwrap();
    forgotten.forget();
    assert_eq!(sem.available_permits(), 4, "a forgotten permit stays out");
}

#[test]
fn is_closed_is_false_until_close() {
    let sem = Arc::new(Semaphore::new(1));
    assert!(!sem.is_closed(), "a new semaphore is open");
    let _permit = sem.clone().try_acquire_many_owned(1).unwrap();
    assert!(!sem.is_closed(), "taking a permit does not close it");
    sem.close();
    assert!(sem.is_closed());
    assert!(sem.clone().acquire_owned().now_or_never().unwrap().is_err());
}

#[test]
fn max_permits_is_the_most_a_semaphore_holds() {
    use weft_sync::MAX_PERMITS;
    let sem = Semaphore::new(MAX_PERMITS);
    assert_eq!(sem.available_permits(), MAX_PERMITS);
    let over = std::panic::catch_unwind(|| sem.add_permits(1));
    assert!(over.is_err(), "adding past MAX_PERMITS must panic");
    assert!(std::panic::catch_unwind(|| Semaphore::new(MAX_PERMITS + 1)).is_err());
    // Up to the limit, adding works.
    let near = Semaphore::new(MAX_PERMITS - 3);
    near.add_permits(3);
    assert_eq!(near.available_permits(), MAX_PERMITS);
    // Big enough for any real use, small enough for the counter's two
    // flag bits.
    assert!(MAX_PERMITS >= u32::MAX as usize);
    assert!(MAX_PERMITS.checked_mul(4).is_some());
}

#[test]
fn errors_say_what_failed() {
    let sem = Arc::new(Semaphore::new(0));
    assert_eq!(
        sem.clone().try_acquire_many_owned(1).unwrap_err().to_string(),
        "no permits available"
    );
    sem.close();
    assert_eq!(
        sem.clone().try_acquire_many_owned(1).unwrap_err().to_string(),
        "the semaphore is closed"
    );
    let err = sem.acquire().now_or_never().unwrap().unwrap_err();
    assert_eq!(err.to_string(), "the semaphore is closed");
    let shown = format!("{sem:?}");
    assert!(
        shown.contains("available_permits: 0") && shown.contains("closed: true"),
        "{shown}"
    );
}

#[test]
fn acquires_and_permits_show_their_permit_counts() {
    let sem = Arc::new(Semaphore::new(5));
    let acquire = sem.acquire_many(2);
    assert_eq!(format!("{acquire:?}"), "Acquire { permits: 2 }");
    let owned_acquire = sem.clone().acquire_many_owned(3);
    assert_eq!(format!("{owned_acquire:?}"), "AcquireOwned { permits: 3 }");
    let permit = sem.try_acquire_many(2).unwrap();
    assert_eq!(format!("{permit:?}"), "SemaphorePermit { permits: 2 }");
    let owned = sem.clone().try_acquire_many_owned(1).unwrap();
    assert_eq!(format!("{owned:?}"), "OwnedSemaphorePermit { permits: 1 }");
}
