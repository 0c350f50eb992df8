//! `ExitLatch`: wait, with a deadline, for a group of threads to exit.
//!
//! `JoinHandle::join` cannot time out, and shutdown must be able to give up
//! on a thread stuck in user code (`shutdown_timeout`). Each thread of the
//! group holds an [`ExitToken`]; dropping it (when the thread's closure
//! returns, or unwinds) counts the thread out.

use crate::loom::{Condvar, Mutex, MutexGuard, lock, wait, wait_timeout};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts the live threads of a group.
#[derive(Default)]
pub(crate) struct ExitLatch {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    live: Mutex<usize>,
    all_gone: Condvar,
}

/// Held by one thread of the group; dropping it counts the thread out.
pub(crate) struct ExitToken {
    inner: Arc<Inner>,
}

impl ExitLatch {
    pub(crate) fn new() -> ExitLatch {
        ExitLatch::default()
    }

    /// Counts in a thread about to start; move the token into it.
    pub(crate) fn token(&self) -> ExitToken {
        *self.inner.lock() += 1;
        ExitToken {
            inner: self.inner.clone(),
        }
    }

    /// Waits until every token is dropped, at most `timeout` (`None`: no
    /// limit). True if they all were.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut live = self.inner.lock();
        while *live > 0 {
            live = match (timeout, deadline) {
                (Some(_), Some(deadline)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    wait_timeout(&self.inner.all_gone, live, deadline - now).0
                }
                _ => wait(&self.inner.all_gone, live),
            };
        }
        true
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, usize> {
        lock(&self.live)
    }
}

impl Drop for ExitToken {
    fn drop(&mut self) {
        let mut live = self.inner.lock();
        *live -= 1;
        if *live == 0 {
            self.inner.all_gone.notify_all();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn waits_for_every_token_or_the_deadline() {
        let latch = ExitLatch::new();
        assert!(latch.wait(Some(Duration::ZERO)), "an empty group has exited");
        let a = latch.token();
        let b = latch.token();
        assert!(!latch.wait(Some(Duration::from_millis(10))));
        drop(a);
        let th = std::thread::spawn(move || drop(b));
        assert!(latch.wait(None));
        th.join().unwrap();
    }
}
