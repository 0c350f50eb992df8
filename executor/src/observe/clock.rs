//! The one clock every observation is stamped with: microseconds since a
//! process-wide epoch, the first time anything asked.
//!
//! One epoch for the whole process, not one per runtime, so that a task
//! record, a worker record and a timeline event can be compared whichever
//! runtime wrote them, and so that the io crate's timer deadlines (plain
//! `Instant`s) convert without knowing any runtime.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The epoch: fixed the first time it is asked for.
pub(crate) fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Reads the clock: microseconds since the epoch.
#[inline]
pub(crate) fn now_us() -> u64 {
    to_us(Instant::now())
}

/// `instant` as microseconds since the epoch (0 for an instant before it).
#[inline]
pub(crate) fn to_us(instant: Instant) -> u64 {
    duration_us(instant.saturating_duration_since(epoch()))
}

/// A duration in whole microseconds, saturating.
#[inline]
pub(crate) fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `instant` as nanoseconds since the epoch (0 for an instant before it).
#[inline]
pub(crate) fn to_ns(instant: Instant) -> u64 {
    u64::try_from(instant.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// Reads the clock: nanoseconds since the epoch.
#[inline]
pub(crate) fn now_ns() -> u64 {
    to_ns(Instant::now())
}
