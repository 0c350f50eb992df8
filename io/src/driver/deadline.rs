//! Sleeping to an exact instant.
//!
//! `epoll_wait` takes its timeout in whole milliseconds (mio rounds up), so
//! a loop that sleeps until a timer with it wakes up to a millisecond late.
//! On Linux the reactor therefore arms a `timerfd`, registered with the
//! poller under [`TIMER_TOKEN`](super::registration::TIMER_TOKEN), for the
//! instant it must wake at; `epoll_wait` returns when it fires, to the
//! microsecond. kqueue's `kevent` takes a nanosecond timeout, which mio
//! passes through, so on the BSDs and macOS the timeout itself is exact and
//! no timer is needed. Under Miri, which cannot call `timerfd_create`, the
//! reactor uses the poller's timeout alone (a millisecond coarser), so that
//! its unsafe code can still run there.
//!
//! Rules:
//!
//! 1. The timer is armed with a *relative* time computed from the same
//!    `now` the caller used, so it can only fire late, never before the
//!    deadline (the system call happens after `now` was read).
//! 2. It is re-armed only when the loop must wake earlier than it is armed
//!    for, or when it has fired (or is about to): an armed instant that is
//!    earlier than needed costs one early turn, a re-arm costs a system
//!    call every turn. A timer's deadline is stable from turn to turn; a
//!    source's sleep is not, and rule 2 keeps its turns to one `epoll_wait`.
//! 3. The poller is still given a timeout, rounded up to the millisecond,
//!    as a backstop: the timer fires before it.

use std::io;
use std::time::{Duration, Instant};

/// Makes the poller return at an exact instant.
pub(crate) struct DeadlineTimer {
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    fd: std::os::fd::OwnedFd,
    /// The instant the timer is armed for (Linux), if any.
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    armed: Option<Instant>,
}

impl DeadlineTimer {
    /// A disarmed timer, registered with `registry` under `token`.
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    pub(crate) fn new(registry: &mio::Registry, token: mio::Token) -> io::Result<DeadlineTimer> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: a plain system call with constant, valid arguments.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            token,
            mio::Interest::READABLE,
        )?;
        Ok(DeadlineTimer { fd, armed: None })
    }

    /// No timer is needed where the poller's timeout is exact.
    #[cfg(not(all(any(target_os = "linux", target_os = "android"), not(miri))))]
    pub(crate) fn new(_registry: &mio::Registry, _token: mio::Token) -> io::Result<DeadlineTimer> {
        Ok(DeadlineTimer {})
    }

    /// Prepares to wake at `deadline` (`None`: only when woken), given that
    /// it is `now`; returns the timeout to give the poller.
    pub(crate) fn arm(&mut self, deadline: Option<Instant>, now: Instant) -> Option<Duration> {
        let deadline = deadline?;
        let wait = deadline.saturating_duration_since(now);
        if wait.is_zero() {
            return Some(Duration::ZERO);
        }
        self.arm_for(deadline, wait, now)
    }

    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    fn arm_for(&mut self, deadline: Instant, wait: Duration, now: Instant) -> Option<Duration> {
        // Rule 2.
        let rearm = self.armed.is_none_or(|armed| armed > deadline || armed <= now);
        if rearm {
            if self.settime(wait).is_ok() {
                self.armed = Some(deadline);
            } else {
                // Cannot happen with a valid descriptor and time; if it
                // does, the backstop below keeps the loop correct (late by
                // up to a millisecond).
                self.armed = None;
            }
        }
        Some(backstop(wait))
    }

    #[cfg(not(all(any(target_os = "linux", target_os = "android"), not(miri))))]
    fn arm_for(&mut self, _deadline: Instant, wait: Duration, _now: Instant) -> Option<Duration> {
        Some(wait)
    }

    /// The poller reported the timer: it fired, and is disarmed.
    pub(crate) fn fired(&mut self) {
        #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
        {
            self.armed = None;
        }
    }

    /// Arms the timer `wait` from now (rule 1). Arming also clears its
    /// expiration count, so the next expiry is a new edge for the poller.
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    fn settime(&self, wait: Duration) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: wait.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                // Below a billion: fits every platform's `c_long`.
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `fd` is our live timerfd; `spec` is a valid, initialised
        // itimerspec; the old value is not asked for (null).
        let rc = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// The poller's own timeout behind the timer (rule 3): `wait` rounded up to
/// a whole millisecond, as `epoll_wait` counts.
#[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
fn backstop(wait: Duration) -> Duration {
    Duration::from_millis(u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

impl std::fmt::Debug for DeadlineTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineTimer").finish_non_exhaustive()
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android"), not(miri)))]
mod tests {
    use super::*;

    fn timer() -> (mio::Poll, DeadlineTimer) {
        let poll = mio::Poll::new().unwrap();
        let timer = DeadlineTimer::new(poll.registry(), mio::Token(1)).unwrap();
        (poll, timer)
    }

    #[test]
    fn the_poller_returns_at_the_deadline_not_at_the_next_millisecond() {
        let (mut poll, mut timer) = timer();
        let mut events = mio::Events::with_capacity(4);
        let mut lateness = Vec::new();
        for _ in 0..20 {
            let now = Instant::now();
            let deadline = now + Duration::from_micros(300);
            let timeout = timer.arm(Some(deadline), now);
            assert_eq!(timeout, Some(Duration::from_millis(1)), "the backstop rounds up");
            poll.poll(&mut events, timeout).unwrap();
            let woke = Instant::now();
            assert!(woke >= deadline, "woke before the deadline");
            assert!(events.iter().any(|e| e.token() == mio::Token(1)), "the timer's event");
            timer.fired();
            lateness.push(woke - deadline);
        }
        lateness.sort();
        // The median wake is far from the millisecond epoll alone would
        // take (a loaded machine may make single wakes late).
        assert!(
            lateness[10] < Duration::from_micros(500),
            "median lateness {:?}",
            lateness[10]
        );
    }

    #[test]
    fn an_earlier_deadline_rearms_and_a_later_one_keeps_the_armed_instant() {
        let (_poll, mut timer) = timer();
        let now = Instant::now();
        timer.arm(Some(now + Duration::from_millis(50)), now);
        assert_eq!(timer.armed, Some(now + Duration::from_millis(50)));
        timer.arm(Some(now + Duration::from_millis(80)), now);
        assert_eq!(
            timer.armed,
            Some(now + Duration::from_millis(50)),
            "an early wake costs less than a re-arm"
        );
        timer.arm(Some(now + Duration::from_millis(20)), now);
        assert_eq!(timer.armed, Some(now + Duration::from_millis(20)));
        timer.fired();
        timer.arm(Some(now + Duration::from_millis(80)), now);
        assert_eq!(
            timer.armed,
            Some(now + Duration::from_millis(80)),
            "a fired timer is armed again"
        );
        assert_eq!(timer.arm(None, now), None);
        assert_eq!(timer.arm(Some(now), now), Some(Duration::ZERO));
    }
}
