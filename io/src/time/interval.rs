//! `Interval`: ticks at a fixed period.

use super::sleep::{Sleep, sleep_until};
use crate::coop;
use futures_core::Stream;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

/// What an [`Interval`] does when ticks were missed (the task was busy, or
/// the system stalled, past one or more deadlines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up, keeping the
    /// original schedule (`start + n * period`). The default.
    #[default]
    Burst,
    /// Fire once now, then continue `period` after *now*: the schedule
    /// shifts by the delay.
    Delay,
    /// Fire once now, then continue at the next tick of the original
    /// schedule, skipping the missed ones.
    Skip,
}

/// Ticks every `period`, the first tick at once.
///
/// # Panics
///
/// If `period` is zero (it would tick forever without yielding), or as
/// [`sleep`](super::sleep()).
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first tick at `start`.
///
/// # Panics
///
/// As [`interval`].
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "weft::time::interval: the period must be non-zero (a zero period would tick without end)"
    );
    Interval {
        sleep: sleep_until(start),
        period,
        missed: MissedTickBehavior::default(),
    }
}

/// A schedule of ticks; made by [`interval`]. Also a `Stream` of the
/// instants it ticks at.
pub struct Interval {
    sleep: Sleep,
    period: Duration,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick; returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let budget = ready!(coop::poll_proceed(cx));
        ready!(self.sleep.poll_elapsed(cx));
        budget.made_progress();
        let scheduled = self.sleep.deadline();
        let now = Instant::now();
        // A period too long to add to an `Instant` means "never again".
        let Some(on_schedule) = scheduled.checked_add(self.period) else {
            self.sleep.reset(super::after(now, self.period));
            return Poll::Ready(scheduled);
        };
        let next = if now <= on_schedule {
            on_schedule
        } else {
            match self.missed {
                MissedTickBehavior::Burst => on_schedule,
                MissedTickBehavior::Delay => super::after(now, self.period),
                MissedTickBehavior::Skip => {
                    let behind = now.duration_since(scheduled).as_nanos();
                    let period = self.period.as_nanos();
                    let ticks = behind / period + 1;
                    scheduled + Duration::from_nanos(u64::try_from(ticks * period).unwrap_or(u64::MAX))
                }
            }
        };
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// Restarts the schedule: the next tick is one period from now (or, for
    /// a period too long for `Instant`, as far off as `sleep` puts "never").
    pub fn reset(&mut self) {
        self.sleep.reset(super::after(Instant::now(), self.period));
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The missed-tick behaviour.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets the missed-tick behaviour.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}

impl Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("next", &self.sleep.deadline())
            .field("period", &self.period)
            .field("missed", &self.missed)
            .finish()
    }
}
