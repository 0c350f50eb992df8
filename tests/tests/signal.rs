//! Signals on multi-thread runtimes: `weft::signal`.
//!
//! A signal goes to the whole process, and the tests of this binary run on
//! parallel threads of it: so each test raises a signal of its own, and the
//! one `SIGINT` test raises it only after `ctrl_c` was polled (before that,
//! `SIGINT` would end the test binary).

#![cfg(unix)]

use futures::StreamExt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};
use weft::signal::unix::{SignalKind, signal};
use weft::time::timeout;
use weft_tests::{Flavor, runtime};

/// Long enough for any delivery on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// Sends `kind` to this process. Call it only once a listener of `kind`
/// exists (so Weft's handler is installed).
fn raise(kind: SignalKind) {
    // SAFETY: kill(2) with our own pid and a valid signal number; the
    // caller made a listener, so the signal runs Weft's handler rather than
    // its default action.
    let rc = unsafe { libc::kill(libc::getpid(), kind.as_raw_value()) };
    assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
}

/// Raises `kind` from another thread after a pause, so that it finds the
/// listeners waiting.
fn raise_soon(kind: SignalKind) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        raise(kind);
    })
}

/// Awaits `future` for at most `PATIENCE`, failing the test unless it
/// completed before then (a timeout polls it one last time, which would
/// hide a listener that was never woken).
async fn patiently<F: Future>(future: F) -> F::Output {
    let start = Instant::now();
    let output = timeout(PATIENCE, future).await;
    assert!(
        start.elapsed() < PATIENCE,
        "nothing woke the task: {:?}",
        start.elapsed()
    );
    output.expect("checked above")
}

#[test]
fn a_delivery_wakes_a_spawned_task() {
    let kind = SignalKind::user_defined1();
    let rt = runtime(Flavor::MultiThread);
    let got = rt.block_on(async {
        let mut usr1 = signal(kind).unwrap();
        let waiter = weft::spawn(async move { patiently(usr1.recv()).await });
        let raiser = raise_soon(kind);
        let got = waiter.await.unwrap();
        raiser.join().unwrap();
        got
    });
    assert_eq!(got, Some(()));
}

#[test]
fn each_runtime_s_listeners_get_a_delivery() {
    let kind = SignalKind::user_defined2();
    let runtimes = [runtime(Flavor::MultiThread), runtime(Flavor::MultiThread)];
    let listeners: Vec<_> = runtimes
        .iter()
        .map(|rt| {
            let _enter = rt.enter();
            signal(kind).unwrap()
        })
        .collect();
    let got = std::thread::scope(|scope| {
        let waiting: Vec<_> = runtimes
            .iter()
            .zip(listeners)
            .map(|(rt, mut listener)| scope.spawn(move || rt.block_on(async move { patiently(listener.recv()).await })))
            .collect();
        raise_soon(kind).join().unwrap();
        waiting.into_iter().map(|w| w.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(got, [Some(()), Some(())]);
}

#[test]
fn a_listener_is_a_stream() {
    let kind = SignalKind::window_change();
    let rt = runtime(Flavor::MultiThread);
    rt.block_on(async {
        let winches = signal(kind).unwrap();
        let counted = weft::spawn(async move { patiently(winches.take(3).count()).await });
        // Raises that come close together merge into one item, so keep
        // raising until the stream has yielded three and ended.
        let done = Arc::new(AtomicBool::new(false));
        let raiser = std::thread::spawn({
            let done = done.clone();
            move || {
                while !done.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                    raise(kind);
                }
            }
        });
        assert_eq!(counted.await.unwrap(), 3);
        done.store(true, SeqCst);
        raiser.join().unwrap();
    });
}

#[test]
fn ctrl_c_completes_at_the_next_sigint() {
    let rt = runtime(Flavor::MultiThread);
    rt.block_on(async {
        let mut first = Box::pin(weft::signal::ctrl_c());
        let mut second = Box::pin(weft::signal::ctrl_c());
        // The first poll installs the handler: only after it may SIGINT
        // come, or it would end this process.
        assert!(futures::poll!(first.as_mut()).is_pending());
        assert!(futures::poll!(second.as_mut()).is_pending());
        let raiser = raise_soon(SignalKind::interrupt());
        let (first, second) = patiently(async { futures::join!(first, second) }).await;
        raiser.join().unwrap();
        first.unwrap();
        second.unwrap();
    });
}

#[test]
fn a_listener_ends_when_its_runtime_is_dropped() {
    let kind = SignalKind::hangup();
    let owner = runtime(Flavor::MultiThread);
    let mut listener = {
        let _enter = owner.enter();
        signal(kind).unwrap()
    };
    // The listener waits in a task of another runtime, so that dropping its
    // own runtime does not cancel the wait: the shutdown must wake it.
    let other = runtime(Flavor::MultiThread);
    let waiter = other.spawn(async move { patiently(listener.recv()).await });
    std::thread::sleep(Duration::from_millis(50));
    drop(owner);
    assert_eq!(other.block_on(waiter).unwrap(), None);
}

#[test]
fn refused_signals_and_a_missing_runtime_are_errors() {
    let err = signal(SignalKind::user_defined1()).unwrap_err();
    assert!(err.to_string().contains("no Weft reactor"), "{err}");

    let rt = runtime(Flavor::MultiThread);
    rt.block_on(async {
        for signum in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -3] {
            let err = signal(SignalKind::from_raw(signum)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{signum}: {err}");
        }
    });
}
