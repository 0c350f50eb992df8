//! Timer behaviour the earlier tests let through (issue 22.6): a sleep
//! polled again with a new waker wakes the new one when it fires, and a
//! cancelled timer leaves the reactor free to sleep (its wheel slot is not
//! left marked as occupied, which would wake the loop for nothing).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};
use weft_io::Driver;

#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counted() -> (Arc<Wakes>, Waker) {
    let wakes = Arc::new(Wakes::default());
    (wakes.clone(), Waker::from(wakes))
}

#[test]
fn a_sleep_polled_with_a_new_waker_wakes_the_new_one() {
    let mut driver = Driver::new().unwrap();
    let _enter = driver.handle().enter();
    for delay_ms in [3u64, 40, 300] {
        let mut sleep = Box::pin(weft_io::time::sleep(Duration::from_millis(delay_ms)));
        let (old_wakes, old) = counted();
        let (new_wakes, new) = counted();
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&old)).is_pending());
        // The task moved (another worker, another waker): poll again.
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&new)).is_pending());
        let deadline = Instant::now() + Duration::from_secs(20);
        while new_wakes.0.load(SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "{delay_ms} ms: the new waker was never woken"
            );
            driver.turn(Some(Duration::from_millis(10)));
        }
        assert_eq!(
            old_wakes.0.load(SeqCst),
            0,
            "{delay_ms} ms: the replaced waker was woken instead"
        );
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&new)).is_ready());
    }
}

#[test]
fn a_cancelled_timer_lets_the_reactor_sleep_until_the_next_real_one() {
    let mut driver = Driver::new().unwrap();
    let _enter = driver.handle().enter();
    let (_, waker) = counted();
    // Timers due soon on several wheel levels, all cancelled.
    for ms in [5u64, 70, 4_100] {
        let mut sleep = Box::pin(weft_io::time::sleep(Duration::from_millis(ms)));
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        drop(sleep);
    }
    assert_eq!(driver.handle().pending_timers(), 0);
    // Registering an earlier deadline wakes the loop once (to arm its
    // timer sooner): let that turn go by.
    driver.turn(Some(Duration::ZERO));
    // With nothing pending, a turn waits for its whole timeout: a slot left
    // marked would end it early, at the cancelled timer's tick.
    for _ in 0..3 {
        let start = Instant::now();
        driver.turn(Some(Duration::from_millis(150)));
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(140),
            "a turn ended after {waited:?}, woken by a cancelled timer"
        );
    }
}
