//! The one clock every observation is stamped with: microseconds since a
//! process-wide epoch, the first time anything asked.
//!
//! One epoch for the whole process, not one per runtime, so that a task
//! record, a worker record and a timeline event can be compared whichever
//! runtime wrote them, and so that the io crate's timer deadlines (plain
//! `Instant`s) convert without knowing any runtime.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The epoch, and (where `Instant` is `CLOCK_MONOTONIC`) that clock's
/// reading at it, so that [`now_ns`] can read the clock directly.
struct Epoch {
    instant: Instant,
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    monotonic_ns: u64,
}

static EPOCH: OnceLock<Epoch> = OnceLock::new();

fn the_epoch() -> &'static Epoch {
    EPOCH.get_or_init(|| {
        #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
        {
            // `Instant::now` reads CLOCK_MONOTONIC here: the reading taken
            // between two of ours is the midpoint of theirs (to within
            // their gap, tens of nanoseconds).
            let before = monotonic_ns();
            let instant = Instant::now();
            let after = monotonic_ns();
            Epoch {
                instant,
                monotonic_ns: before + (after - before) / 2,
            }
        }
        #[cfg(not(all(any(target_os = "linux", target_os = "android"), not(miri))))]
        Epoch {
            instant: Instant::now(),
        }
    })
}

/// CLOCK_MONOTONIC in nanoseconds: what `Instant::now` reads on Linux,
/// without the `Instant` arithmetic that turning one into nanoseconds
/// since the epoch costs (about 80 instructions; the workers read the
/// clock as they park and unpark, on every round of a spinning loop).
#[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to write;
    // CLOCK_MONOTONIC is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    (now.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(now.tv_nsec as u64)
}

/// The epoch: fixed the first time it is asked for.
pub(crate) fn epoch() -> Instant {
    the_epoch().instant
}

/// Reads the clock: microseconds since the epoch.
#[inline]
pub(crate) fn now_us() -> u64 {
    now_ns() / 1_000
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
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    {
        monotonic_ns().saturating_sub(the_epoch().monotonic_ns)
    }
    #[cfg(not(all(any(target_os = "linux", target_os = "android"), not(miri))))]
    to_ns(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `now_ns` (a direct clock reading where there is one) and `to_ns` of
    /// an `Instant` are one clock: a reading taken between two instants
    /// converts between theirs, to within the epoch's anchoring (the gap
    /// between the readings that fixed it, well under a microsecond).
    #[test]
    fn a_reading_falls_between_the_instants_around_it() {
        let slack = 2_000;
        for _ in 0..1_000 {
            let before = to_ns(Instant::now());
            let now = now_ns();
            let after = to_ns(Instant::now());
            assert!(before <= now + slack, "{before} > {now}");
            assert!(now <= after + slack, "{now} > {after}");
            assert!(now_us() >= now / 1_000, "microseconds follow");
        }
    }
}
