//! Signals on a bare reactor (a [`Driver`] turned by hand).
//!
//! The tests of one binary run on parallel threads of one process, and a
//! signal goes to the process: so each test that raises a signal, or counts
//! a signal's listeners, has a signal of its own.

use super::registry;
use super::unix::{SignalKind, signal};
use crate::time::timeout;
use crate::{Driver, Unparker};
use futures::{Stream, StreamExt};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Long enough for any delivery on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a listener that should hear nothing is given.
const QUIET: Duration = Duration::from_millis(150);

/// Sends `kind` to this process. Call it only once a listener of `kind`
/// exists, so Weft's handler is installed.
fn raise(kind: SignalKind) {
    // SAFETY: kill(2) with our own pid and a valid signal number; the
    // caller made a listener, so the signal runs Weft's handler rather than
    // its default action.
    let rc = unsafe { libc::kill(libc::getpid(), kind.as_raw_value()) };
    assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
}

/// Raises `kind` from another thread after a pause, so that the raise
/// finds the test blocked in the reactor.
fn raise_soon(kind: SignalKind) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        raise(kind);
    })
}

/// A waker that counts its wakes, and wakes the reactor if it has one.
#[derive(Default)]
struct CountingWaker(AtomicUsize, Option<Unparker>);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
        if let Some(unparker) = &self.1 {
            unparker.unpark();
        }
    }
}

/// Runs `future` on `driver` (see [`run`]) and returns its output, failing
/// the test unless it completed before `PATIENCE`: a timeout would poll it
/// once more, and a listener that was never woken would then find its
/// delivery and pass.
fn patiently<F: Future>(driver: &mut Driver, future: F) -> F::Output {
    let start = Instant::now();
    let output = run(driver, timeout(PATIENCE, future));
    assert!(
        start.elapsed() < PATIENCE,
        "nothing woke the task: {:?}",
        start.elapsed()
    );
    output.expect("checked above")
}

/// Runs `future` on `driver`, polling it only after its waker was woken,
/// as an executor does. [`Driver::block_on`] polls after every turn, so it
/// would hide a listener that is never woken; here that listener hangs
/// until its `timeout` fires, and the test fails.
fn run<F: Future>(driver: &mut Driver, future: F) -> F::Output {
    let _enter = driver.handle().enter();
    let woken = Arc::new(CountingWaker(AtomicUsize::new(1), Some(driver.unparker())));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if woken.0.swap(0, SeqCst) > 0 {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
        driver.turn(None);
    }
}

#[test]
fn a_delivery_wakes_a_task_blocked_in_the_reactor() {
    let kind = SignalKind::user_defined1();
    let mut driver = Driver::new().unwrap();
    let mut usr1 = {
        let _enter = driver.handle().enter();
        signal(kind).unwrap()
    };
    let raiser = raise_soon(kind);
    // `run` sleeps in `epoll_wait` with no timeout but the timer's: only
    // the self-pipe's event can wake the task before `PATIENCE`.
    let got = patiently(&mut driver, usr1.recv());
    raiser.join().unwrap();
    assert_eq!(got, Some(()));
}

#[test]
fn every_listener_of_a_signal_gets_the_delivery() {
    let kind = SignalKind::user_defined2();
    let mut driver = Driver::new().unwrap();
    let (mut first, mut second) = {
        let _enter = driver.handle().enter();
        (signal(kind).unwrap(), signal(kind).unwrap())
    };
    let raiser = raise_soon(kind);
    let got = patiently(&mut driver, async { futures::join!(first.recv(), second.recv()) });
    raiser.join().unwrap();
    assert_eq!(got, (Some(()), Some(())));
}

#[test]
fn a_listener_made_after_a_delivery_does_not_see_it() {
    let kind = SignalKind::window_change();
    let mut driver = Driver::new().unwrap();
    let _enter = driver.handle().enter();
    let mut early = signal(kind).unwrap();
    raise(kind);
    // The early listener saw it: the delivery is counted.
    assert_eq!(patiently(&mut driver, early.recv()), Some(()));

    let mut late = signal(kind).unwrap();
    let quiet = run(&mut driver, timeout(QUIET, late.recv()));
    assert!(quiet.is_err(), "the late listener reported an earlier delivery");

    raise(kind);
    let got = patiently(&mut driver, async { futures::join!(late.recv(), early.recv()) });
    assert_eq!(got, (Some(()), Some(())), "both see the next one");
}

#[test]
fn deliveries_between_two_recvs_coalesce() {
    let kind = SignalKind::alarm();
    let mut driver = Driver::new().unwrap();
    let _enter = driver.handle().enter();
    let mut alarms = signal(kind).unwrap();
    // Three runs of the handler before anyone looks. `kill` may return
    // before the handler has run (Linux hands a process-directed signal to
    // the main thread when it can take it), and the kernel merges a signal
    // sent while one is pending: so wait for each run, to be sure the
    // merging below is Weft's.
    let signum = kind.as_raw_value();
    let before = registry::deliveries(signum);
    for n in 1..=3 {
        raise(kind);
        let deadline = Instant::now() + PATIENCE;
        while registry::deliveries(signum).wrapping_sub(before) < n {
            assert!(Instant::now() < deadline, "delivery {n} never came");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(registry::deliveries(signum).wrapping_sub(before), 3);

    assert_eq!(patiently(&mut driver, alarms.recv()), Some(()));
    let quiet = run(&mut driver, timeout(QUIET, alarms.recv()));
    assert!(quiet.is_err(), "three deliveries before one recv are reported once");

    raise(kind);
    assert_eq!(patiently(&mut driver, alarms.recv()), Some(()));
}

#[test]
fn a_listener_is_a_stream_of_deliveries() {
    let kind = SignalKind::from_raw(libc::SIGVTALRM);
    let mut driver = Driver::new().unwrap();
    let _enter = driver.handle().enter();
    let mut alarms = signal(kind).unwrap();
    for _ in 0..3 {
        let raiser = raise_soon(kind);
        assert_eq!(patiently(&mut driver, alarms.next()), Some(()));
        raiser.join().unwrap();
    }
}

#[test]
fn a_dropped_listener_leaves_its_list_at_once() {
    let kind = SignalKind::from_raw(libc::SIGURG);
    let signum = kind.as_raw_value();
    let driver = Driver::new().unwrap();
    let _enter = driver.handle().enter();
    let waker = Waker::from(Arc::new(CountingWaker::default()));
    let mut cx = Context::from_waker(&waker);

    let mut listeners: Vec<_> = (0..100).map(|_| signal(kind).unwrap()).collect();
    assert_eq!(registry::listeners(signum), 100);
    // Half of them wait, with a waker stored in their entries.
    for listener in listeners.iter_mut().step_by(2) {
        assert_eq!(listener.poll_recv(&mut cx), Poll::Pending);
    }
    listeners.truncate(30);
    assert_eq!(registry::listeners(signum), 30);
    drop(listeners);
    assert_eq!(registry::listeners(signum), 0);

    // Listeners that come and go leave nothing behind.
    for _ in 0..10_000 {
        let mut listener = signal(kind).unwrap();
        assert_eq!(listener.poll_recv(&mut cx), Poll::Pending);
    }
    assert_eq!(registry::listeners(signum), 0);
}

#[test]
fn a_listener_ends_when_its_reactor_shuts_down() {
    let kind = SignalKind::from_raw(libc::SIGXCPU);
    let mut driver = Driver::new().unwrap();
    let mut listener = {
        let _enter = driver.handle().enter();
        signal(kind).unwrap()
    };
    let woken = Arc::new(CountingWaker::default());
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(listener.poll_recv(&mut cx), Poll::Pending);

    driver.shutdown();
    assert_eq!(woken.0.load(SeqCst), 1, "the shutdown woke the waiting task");
    assert_eq!(listener.poll_recv(&mut cx), Poll::Ready(None));
    let mut stream = std::pin::pin!(listener);
    assert_eq!(stream.as_mut().poll_next(&mut cx), Poll::Ready(None));
}

#[test]
fn a_listener_is_woken_by_whichever_reactor_turns() {
    let kind = SignalKind::hangup();
    let mut turning = Driver::new().unwrap();
    let idle = Driver::new().unwrap();
    let mut on_turning = {
        let _enter = turning.handle().enter();
        signal(kind).unwrap()
    };
    let mut on_idle = {
        let _enter = idle.handle().enter();
        signal(kind).unwrap()
    };
    let woken = Arc::new(CountingWaker::default());
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(on_idle.poll_recv(&mut cx), Poll::Pending);

    let raiser = raise_soon(kind);
    let got = patiently(&mut turning, on_turning.recv());
    raiser.join().unwrap();
    assert_eq!(got, Some(()));
    // Had the raise come before `run` first polled, `recv` returned
    // without a turn: turn until the pipe's event is served.
    let deadline = Instant::now() + PATIENCE;
    while woken.0.load(SeqCst) == 0 && Instant::now() < deadline {
        turning.turn(Some(Duration::from_millis(10)));
    }
    // `idle` never turned: the turning reactor's dispatch woke its listener.
    assert_eq!(woken.0.load(SeqCst), 1);
    assert_eq!(on_idle.poll_recv(&mut cx), Poll::Ready(Some(())));
}

#[test]
fn signals_weft_cannot_listen_for_are_errors() {
    let driver = Driver::new().unwrap();
    let _enter = driver.handle().enter();
    let refused = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        0,
        -1,
        registry::TABLE_LEN as i32,
        1000,
    ];
    for signum in refused {
        let err = signal(SignalKind::from_raw(signum)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "signal {signum}: {err}");
        assert!(err.to_string().contains("Weft cannot listen"), "{err}");
    }
    // Refusing SIGBUS left its disposition as it was (the standard library
    // installs a handler for it, to report stack overflows).
    let bus_handler = || {
        // SAFETY: a zeroed `sigaction` is a valid out-parameter, and a null
        // new action only queries.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old), 0);
            old.sa_sigaction
        }
    };
    let before = bus_handler();
    assert!(signal(SignalKind::from_raw(libc::SIGBUS)).is_err());
    assert_eq!(bus_handler(), before);

    // In the table, but no signal of Linux's (its numbers stop at 64):
    // `sigaction` says no, and the error says who asked.
    #[cfg(target_os = "linux")]
    {
        let err = signal(SignalKind::from_raw(100)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(
            err.to_string()
                .contains("Weft could not install a handler for signal 100"),
            "{err}"
        );
    }
}

#[test]
fn without_a_reactor_listening_is_an_error() {
    std::thread::spawn(|| {
        let err = signal(SignalKind::user_defined1()).unwrap_err();
        assert!(err.to_string().contains("no Weft reactor"), "{err}");

        let mut ctrl_c = std::pin::pin!(super::ctrl_c());
        let Poll::Ready(Err(err)) = ctrl_c.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
            panic!("ctrl_c outside a runtime should fail at its first poll");
        };
        assert!(err.to_string().contains("no Weft reactor"), "{err}");
    })
    .join()
    .unwrap();
}
