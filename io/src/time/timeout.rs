//! `timeout`: bound how long a future may take.

use super::sleep::{Sleep, sleep, sleep_until};
use std::error::Error;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Runs `future`, giving up after `duration`.
///
/// Returns `Ok(output)` if the future finished in time, `Err(Elapsed)`
/// otherwise; the future is dropped either way, which cancels what it was
/// doing (asyncio's `wait_for`).
///
/// # Panics
///
/// As [`sleep`](super::sleep()).
#[track_caller]
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        future: future.into_future(),
        sleep: sleep(duration),
    }
}

/// Runs `future`, giving up at `deadline`; see [`timeout`].
#[track_caller]
pub fn timeout_at<F: IntoFuture>(deadline: Instant, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        future: future.into_future(),
        sleep: sleep_until(deadline),
    }
}

/// A future with a deadline; made by [`timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F> Timeout<F> {
    /// The inner future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// The inner future, consuming the timeout.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // a pinned `Timeout` (`into_inner` takes `self` by value, so it needs
        // an unpinned one), and `Timeout` has no `Drop` impl. `sleep` is not
        // pinned (`Sleep: Unpin`) and is only reached through `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(output) = future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        // The deadline is checked without spending budget: a future that
        // spent it must still time out.
        match this.sleep.poll_elapsed(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F: fmt::Debug> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("future", &self.future)
            .field("deadline", &self.sleep.deadline())
            .finish()
    }
}

/// The deadline of a [`timeout`] passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(err: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, err)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Driver;
    use std::future::pending;

    /// Runs the pin projection of `Timeout::poll` both ways: the inner
    /// future finishing first, and the deadline passing first (with a
    /// future that is not `Unpin`, so the projection is what keeps it put).
    #[test]
    fn passes_the_output_through_or_reports_elapsed() {
        let mut driver = Driver::new().unwrap();
        driver.block_on(async {
            let not_unpin = async {
                let local = [1u8; 4];
                let r = &local;
                std::future::ready(()).await;
                r[0] + 4
            };
            assert_eq!(timeout(Duration::from_secs(10), not_unpin).await, Ok(5));
            let start = Instant::now();
            assert_eq!(
                timeout(Duration::from_millis(5), pending::<()>()).await,
                Err(Elapsed(()))
            );
            assert!(start.elapsed() >= Duration::from_millis(5));
        });
    }
}
