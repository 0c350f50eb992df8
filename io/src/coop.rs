//! The cooperative budget of whatever executor polls io's futures.
//!
//! Every I/O operation and timer spends one unit of the polling task's
//! budget, so a socket that is always ready cannot starve the other tasks on
//! its worker. The budget belongs to the executor, and this crate depends on
//! none: so the runtime installs the executor's budget functions here, once
//! per process, with [`install`]. Without them (io driven by a bare loop),
//! operations are unconstrained.

use std::sync::OnceLock;
use std::task::{Context, Poll};

/// The executor's budget, as two functions.
#[derive(Clone, Copy, Debug)]
pub struct Hooks {
    /// Spends one unit: `Ready(token)` to go ahead, or `Pending` (after
    /// arranging for the task to be polled again) when the budget is spent.
    pub proceed: fn(&mut Context<'_>) -> Poll<u32>,
    /// Gives back the unit `proceed` took (the operation turned out
    /// `Pending`); `token` is what `proceed` returned.
    pub refund: fn(u32),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the executor's budget. The first call wins: there is one
/// executor crate, and so one budget, per process.
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// Spends one unit of budget; see [`Hooks::proceed`].
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<Spent> {
    match HOOKS.get() {
        Some(hooks) => hooks.proceed(cx).map(|token| Spent {
            refund: Some((hooks.refund, token)),
        }),
        None => Poll::Ready(Spent { refund: None }),
    }
}

/// A unit of budget spent; given back on drop unless the operation made
/// progress.
pub(crate) struct Spent {
    refund: Option<(fn(u32), u32)>,
}

impl Spent {
    /// The operation did something: keep the unit spent.
    pub(crate) fn made_progress(mut self) {
        self.refund = None;
    }
}

impl Drop for Spent {
    fn drop(&mut self) {
        if let Some((refund, token)) = self.refund {
            refund(token);
        }
    }
}

impl Hooks {
    fn proceed(&self, cx: &mut Context<'_>) -> Poll<u32> {
        (self.proceed)(cx)
    }
}

#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    //! The budget as the operations spend it, with a stand-in executor: a
    //! thread-local count of units left (`None`: unconstrained).
    use super::*;
    use crate::Driver;
    use crate::net::{TcpListener, TcpStream};
    use std::cell::Cell;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Wake, Waker};
    use std::time::Duration;

    thread_local! {
        static LEFT: Cell<Option<u32>> = const { Cell::new(None) };
    }

    fn proceed(cx: &mut Context<'_>) -> Poll<u32> {
        LEFT.with(|left| match left.get() {
            None => Poll::Ready(u32::MAX),
            Some(0) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(n) => {
                left.set(Some(n - 1));
                Poll::Ready(n)
            }
        })
    }

    fn refund(token: u32) {
        if token != u32::MAX {
            LEFT.with(|left| left.set(Some(token)));
        }
    }

    /// Installs the stand-in (the only hooks in this crate's tests; with
    /// no count set, a thread is unconstrained, as without hooks).
    fn installed() {
        install(Hooks { proceed, refund });
    }

    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn pair(driver: &mut Driver) -> (TcpStream, TcpStream) {
        driver.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            (client, server)
        })
    }

    #[test]
    fn a_read_spends_a_unit_when_it_reads_none_while_it_waits_and_yields_when_none_is_left() {
        use futures_io::{AsyncRead, AsyncWrite};
        installed();
        let mut driver = Driver::new().unwrap();
        let (mut client, mut server) = pair(&mut driver);
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0_u8; 16];
        // Nothing to read: it waits, and the budget is as it was.
        LEFT.with(|left| left.set(Some(3)));
        assert!(Pin::new(&mut server).poll_read(&mut cx, &mut buf).is_pending());
        assert_eq!(LEFT.with(Cell::get), Some(3));
        LEFT.with(|left| left.set(None));
        assert!(matches!(
            Pin::new(&mut client).poll_write(&mut cx, b"hi"),
            Poll::Ready(Ok(2))
        ));
        while wakes.0.load(SeqCst) == 0 {
            driver.turn(Some(Duration::from_millis(100)));
        }
        // Ready, but no budget left: it yields, and the task is woken to
        // run again.
        LEFT.with(|left| left.set(Some(0)));
        assert!(Pin::new(&mut server).poll_read(&mut cx, &mut buf).is_pending());
        assert_eq!(wakes.0.load(SeqCst), 2, "the yield wakes the task");
        // With budget: it reads, and spends one unit.
        LEFT.with(|left| left.set(Some(3)));
        assert!(matches!(
            Pin::new(&mut server).poll_read(&mut cx, &mut buf),
            Poll::Ready(Ok(2))
        ));
        assert_eq!(LEFT.with(Cell::get), Some(2));
    }

    #[test]
    fn a_sleep_spends_a_unit_when_it_completes_none_while_it_waits_and_yields_when_none_is_left() {
        installed();
        let driver = Driver::new().unwrap();
        let _enter = driver.handle().enter();
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        LEFT.with(|left| left.set(Some(3)));
        let mut later = Box::pin(crate::time::sleep(Duration::from_secs(60)));
        assert!(later.as_mut().poll(&mut cx).is_pending());
        assert_eq!(LEFT.with(Cell::get), Some(3), "a pending sleep spends nothing");
        let mut elapsed = Box::pin(crate::time::sleep(Duration::ZERO));
        LEFT.with(|left| left.set(Some(0)));
        assert!(elapsed.as_mut().poll(&mut cx).is_pending(), "no budget: it yields");
        assert_eq!(wakes.0.load(SeqCst), 1, "the yield wakes the task");
        LEFT.with(|left| left.set(Some(3)));
        assert!(elapsed.as_mut().poll(&mut cx).is_ready());
        assert_eq!(LEFT.with(Cell::get), Some(2));
    }

    /// An elapsed sleep that yields for want of budget, before the loop
    /// has fired its timer, still cancels the timer when dropped: no entry
    /// is left in the wheel.
    #[test]
    fn a_sleep_dropped_after_yielding_for_budget_leaves_the_wheel() {
        installed();
        let driver = Driver::new().unwrap();
        let handle = driver.handle().clone();
        let _enter = handle.enter();
        let waker = Waker::from(Arc::new(Wakes(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        LEFT.with(|left| left.set(Some(3)));
        let mut sleep = Box::pin(crate::time::sleep(Duration::from_millis(1)));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        assert_eq!(handle.pending_timers(), 1);
        // The deadline passes; no turn of the loop fires the timer.
        std::thread::sleep(Duration::from_millis(5));
        LEFT.with(|left| left.set(Some(0)));
        assert!(sleep.as_mut().poll(&mut cx).is_pending(), "no budget: it yields");
        drop(sleep);
        assert_eq!(
            handle.pending_timers(),
            0,
            "the dropped sleep left its timer in the wheel"
        );
        LEFT.with(|left| left.set(None));
    }
}
