//! Loom models of the promise core: every interleaving of settling against
//! adding and removing listeners, through the real `Core` and `Promise`
//! code (via the crate's loom shim).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p weft-executor --lib --release loom`.

use super::promise::Promise;
use super::state::Core;
use crate::loom::thread;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// A listener added while another thread settles is handed out exactly
/// once: by `complete` or back to its adder; and the adder that gets it
/// back sees the outcome.
#[test]
fn a_listener_added_during_complete_is_handled_once() {
    loom::model(|| {
        let core = Arc::new(Core::<u32, u8>::new());
        let settler = {
            let core = core.clone();
            thread::spawn(move || core.complete(7).ok().expect("only settler").count())
        };
        let added = core.add(1);
        let taken_by_settler = settler.join().unwrap();
        match added {
            Ok(_) => assert_eq!(taken_by_settler, 1),
            Err(1) => {
                assert_eq!(taken_by_settler, 0);
                assert_eq!(core.outcome(), Some(&7));
            }
            Err(_) => unreachable!(),
        }
        assert_eq!(core.outcome(), Some(&7));
    });
}

/// Removing races settling: the listener goes to exactly one of them.
#[test]
fn removing_races_complete() {
    loom::model(|| {
        let core = Arc::new(Core::<u32, u8>::new());
        let key = core.add(1).expect("pending");
        let settler = {
            let core = core.clone();
            thread::spawn(move || core.complete(3).ok().expect("only settler").count())
        };
        let removed = core.remove(key).is_some();
        let taken = settler.join().unwrap();
        assert_eq!(usize::from(removed) + taken, 1);
    });
}

/// Two settlers: one wins, the other gets its value back, and every reader
/// that sees `done` reads the winner's value.
#[test]
fn two_settlers_one_wins() {
    loom::model(|| {
        let core = Arc::new(Core::<u32, u8>::new());
        let other = {
            let core = core.clone();
            thread::spawn(move || core.complete(1).is_ok())
        };
        let mine = core.complete(2).is_ok();
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs);
        assert_eq!(core.outcome(), Some(&if mine { 2 } else { 1 }));
    });
}

/// The whole promise: `set_result` on one thread, `cancel` on another, and
/// a done callback added and another added-then-removed on a third. Each
/// callback that stays registered runs exactly once, the removed one never
/// (or, if removal lost the race, once), and exactly one settler wins.
#[test]
fn promise_callbacks_run_exactly_once() {
    loom::model(|| {
        let promise: Promise<u32> = Promise::with_scheduler(None);
        let kept_runs = Arc::new(AtomicUsize::new(0));
        let removed_runs = Arc::new(AtomicUsize::new(0));

        let setter = {
            let p = promise.clone();
            thread::spawn(move || p.set_result(5).is_ok())
        };
        let canceller = {
            let p = promise.clone();
            thread::spawn(move || p.cancel())
        };

        let runs = kept_runs.clone();
        promise.add_done_callback_inline(move |p| {
            assert!(p.done());
            runs.fetch_add(1, SeqCst);
        });
        let runs = removed_runs.clone();
        let id = promise.add_done_callback_inline(move |_| {
            runs.fetch_add(1, SeqCst);
        });
        let removed = promise.remove_done_callback(id);

        let set = setter.join().unwrap();
        let cancelled = canceller.join().unwrap();
        assert!(set ^ cancelled, "exactly one settler wins");
        assert_eq!(promise.cancelled(), cancelled);
        assert_eq!(kept_runs.load(SeqCst), 1);
        assert_eq!(removed_runs.load(SeqCst) + removed, 1);
    });
}

/// A handle registers its waker, swaps it, and withdraws it by being
/// dropped (its key back to the sentinel) while another thread settles:
/// the settler wakes it at most once, nothing stays registered, and a
/// fresh handle polled afterwards is ready.
#[test]
fn a_waiter_withdrawing_races_the_settle() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    loom::model(|| {
        let promise: Promise<u32> = Promise::with_scheduler(None);
        let setter = {
            let p = promise.clone();
            thread::spawn(move || p.set_result(9).is_ok())
        };
        let mut waiter = promise.clone();
        let cx = &mut Context::from_waker(Waker::noop());
        let first = Pin::new(&mut waiter).poll(cx);
        let second = Pin::new(&mut waiter).poll(cx);
        assert!(first.is_pending() || matches!(second, Poll::Ready(Ok(9))));
        drop(waiter);
        assert!(setter.join().unwrap());
        assert_eq!(promise.listener_count(), 0);
        let mut late = promise.clone();
        assert!(matches!(Pin::new(&mut late).poll(cx), Poll::Ready(Ok(9))));
    });
}
