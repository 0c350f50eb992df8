//! Promise behaviour the earlier tests let through (issue 22.6):
//! `wait_timeout` really waits for its timeout (and no longer), and
//! `Promise::new_in` runs done callbacks on the runtime it names, not on
//! whichever runtime is current where the callback is added.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_executor::future::{Promise, PromiseError};
use weft_executor::{Builder, Handle};

#[test]
fn wait_timeout_waits_for_its_timeout_then_reports_it() {
    let promise = Promise::<u8>::new();
    let start = Instant::now();
    let outcome = promise.wait_timeout(Duration::from_millis(80));
    let waited = start.elapsed();
    assert!(matches!(outcome, Err(PromiseError::Pending)), "{outcome:?}");
    assert!(
        waited >= Duration::from_millis(80),
        "returned after {waited:?}, before its timeout"
    );
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    // Settled meanwhile: returns the value at once.
    let settler = promise.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        settler.set_result(7).unwrap();
    });
    let start = Instant::now();
    assert_eq!(promise.wait_timeout(Duration::from_secs(20)).unwrap(), &7);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn new_in_runs_callbacks_on_its_runtime_whatever_is_current() {
    let home = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("home")
        .build()
        .unwrap();
    let other = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("other")
        .build()
        .unwrap();
    let promise = Promise::<u8>::new_in(home.handle());
    let ran_on = Arc::new(Mutex::new(None));
    {
        // Added where `other` is current: still runs on `home`.
        let _other = other.enter();
        let ran_on = ran_on.clone();
        let home_handle = home.handle().clone();
        promise.add_done_callback(move |_| {
            let current = Handle::try_current().ok();
            let on_home = current.is_some_and(|h| h.ptr_eq(&home_handle));
            let thread = std::thread::current().name().map(str::to_owned);
            *ran_on.lock().unwrap() = Some((on_home, thread));
        });
    }
    std::thread::spawn({
        let promise = promise.clone();
        move || promise.set_result(1).unwrap()
    })
    .join()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ran_on.lock().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the callback never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
    let (on_home, thread) = ran_on.lock().unwrap().clone().unwrap();
    assert!(
        on_home,
        "the callback ran on {thread:?}, not on the runtime given to new_in"
    );
    assert!(thread.as_deref().is_some_and(|t| t.starts_with("home")), "{thread:?}");
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn counted() -> (Arc<Wakes>, std::task::Waker) {
    let wakes = Arc::new(Wakes::default());
    (wakes.clone(), std::task::Waker::from(wakes))
}

fn woken(wakes: &Wakes) -> usize {
    wakes.0.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn a_pending_promise_polled_with_a_new_waker_wakes_only_the_new_one() {
    use std::future::Future;
    use std::task::Context;
    let promise = Promise::<u8>::new();
    let mut awaiting = promise.clone();
    let (old_wakes, old) = counted();
    let (new_wakes, new) = counted();
    assert!(
        std::pin::Pin::new(&mut awaiting)
            .poll(&mut Context::from_waker(&old))
            .is_pending()
    );
    assert!(
        std::pin::Pin::new(&mut awaiting)
            .poll(&mut Context::from_waker(&old))
            .is_pending()
    );
    assert_eq!(promise.listener_count(), 1);
    // The task moved: same await, another waker.
    assert!(
        std::pin::Pin::new(&mut awaiting)
            .poll(&mut Context::from_waker(&new))
            .is_pending()
    );
    assert_eq!(promise.listener_count(), 1, "the waker was swapped, not added");
    promise.set_result(3).unwrap();
    assert_eq!(
        (woken(&old_wakes), woken(&new_wakes)),
        (0, 1),
        "only the current waker is woken"
    );
    match std::pin::Pin::new(&mut awaiting).poll(&mut Context::from_waker(&new)) {
        std::task::Poll::Ready(v) => assert_eq!(v.unwrap(), 3),
        std::task::Poll::Pending => panic!("a settled promise is ready"),
    }
}

#[test]
fn listener_count_counts_every_waiter_and_callback() {
    use std::future::Future;
    use std::task::Context;
    let promise = Promise::<u8>::new();
    assert_eq!(promise.listener_count(), 0);
    let mut awaits: Vec<_> = (0..3).map(|_| promise.clone()).collect();
    let (_, waker) = counted();
    for (i, a) in awaits.iter_mut().enumerate() {
        assert!(
            std::pin::Pin::new(a)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        assert_eq!(promise.listener_count(), i + 1);
    }
    let id = promise.add_done_callback_inline(|_| {});
    assert_eq!(promise.listener_count(), 4);
    assert_eq!(promise.remove_done_callback(id), 1);
    assert_eq!(promise.listener_count(), 3);
    // An abandoned await withdraws only its own listener; the promise
    // stays pending. Settling takes every listener left.
    drop(awaits.pop());
    assert!(!promise.done());
    assert_eq!(promise.listener_count(), 2);
    promise.set_result(1).unwrap();
    assert_eq!(promise.listener_count(), 0);
}

#[test]
fn done_callback_ids_are_unique_across_threads_and_blocks() {
    // More ids per thread than one block of the process-wide counter.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let promise = Promise::<u8>::new();
                (0..3_000)
                    .map(|_| promise.add_done_callback_inline(|_| {}))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = std::collections::HashSet::new();
    for t in threads {
        for id in t.join().unwrap() {
            assert!(all.insert(id), "callback id {id:?} handed out twice");
        }
    }
    assert_eq!(all.len(), 12_000);
    // An id removes its own callback and no other.
    let promise = Promise::<u8>::new();
    let ids: Vec<_> = (0..5).map(|_| promise.add_done_callback_inline(|_| {})).collect();
    assert_eq!(promise.remove_done_callback(ids[2]), 1);
    assert_eq!(promise.remove_done_callback(ids[2]), 0);
    assert_eq!(promise.listener_count(), 4);
}
