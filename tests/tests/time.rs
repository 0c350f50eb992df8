//! Timers on the runtime.

use futures::StreamExt;
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft::time::{MissedTickBehavior, interval, interval_at, sleep, sleep_until, timeout};
use weft_tests::{DropCounter, Rng, each_flavor, runtime};

each_flavor! {
    fn a_hundred_thousand_sleeps_complete_never_early(flavor) {
        let rt = runtime(flavor);
        let early = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        rt.block_on(async {
            let mut rng = Rng::new(7);
            let handles: Vec<_> = (0..100_000)
                .map(|_| {
                    let deadline = Instant::now() + Duration::from_millis(rng.range(1, 101));
                    let early = early.clone();
                    weft::spawn(async move {
                        sleep_until(deadline).await;
                        if Instant::now() < deadline {
                            early.fetch_add(1, SeqCst);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        assert_eq!(early.load(SeqCst), 0, "no sleep may end before its deadline");
        assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    }

    fn timeout_drops_the_inner_future_and_passes_results_through(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let drops = Arc::new(AtomicUsize::new(0));
            let guard = DropCounter::new(&drops);
            let slow = async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            };
            let start = Instant::now();
            let result = timeout(Duration::from_millis(30), slow).await;
            assert!(result.is_err());
            assert!(start.elapsed() >= Duration::from_millis(30));
            assert_eq!(drops.load(SeqCst), 1, "the timed-out future was dropped");
            assert_eq!(timeout(Duration::from_secs(5), async { 5 }).await, Ok(5));
            let io_err: std::io::Error = result.unwrap_err().into();
            assert_eq!(io_err.kind(), std::io::ErrorKind::TimedOut);
        });
    }

    fn a_sleep_dropped_early_never_fires_and_reset_moves_it(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            // Many cancelled timers leave nothing behind: each was
            // registered (polled once) and then dropped.
            let reactor = weft::Handle::current().reactor().clone();
            let before = reactor.pending_timers();
            for i in 0..10_000 {
                let mut s = Box::pin(sleep(Duration::from_secs(60)));
                assert!(futures::poll!(s.as_mut()).is_pending());
                if i == 0 {
                    assert_eq!(reactor.pending_timers(), before + 1, "a polled sleep is a pending timer");
                }
            }
            assert_eq!(reactor.pending_timers(), before, "10,000 dropped sleeps left timers behind");
            let mut s = Box::pin(sleep(Duration::from_secs(60)));
            assert!(futures::poll!(s.as_mut()).is_pending());
            let start = Instant::now();
            s.as_mut().reset(Instant::now() + Duration::from_millis(20));
            s.await;
            let waited = start.elapsed();
            assert!(waited >= Duration::from_millis(20) && waited < Duration::from_secs(5), "{waited:?}");
        });
    }

    fn interval_ticks_on_schedule_and_handles_missed_ticks(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let period = Duration::from_millis(20);
            let start = Instant::now();
            let mut ticks = interval(period);
            let first = ticks.tick().await;
            assert!(first <= Instant::now());
            for n in 1..=3u32 {
                let at = ticks.tick().await;
                assert_eq!(at, first + period * n);
                assert!(Instant::now() >= at);
            }
            assert!(start.elapsed() >= period * 3);

            // Stall past three ticks, then see what each behaviour does.
            for behavior in [MissedTickBehavior::Burst, MissedTickBehavior::Delay, MissedTickBehavior::Skip] {
                let origin = Instant::now();
                let mut ticks = interval_at(origin, period);
                ticks.set_missed_tick_behavior(behavior);
                assert_eq!(ticks.tick().await, origin);
                std::thread::sleep(period * 3 + period / 2);
                let late = ticks.tick().await;
                assert_eq!(late, origin + period, "the overdue tick reports its scheduled time");
                let next = ticks.tick().await;
                match behavior {
                    MissedTickBehavior::Burst => assert_eq!(next, origin + period * 2),
                    MissedTickBehavior::Delay => assert!(next >= origin + period * 4),
                    MissedTickBehavior::Skip => assert_eq!(next, origin + period * 4),
                }
            }
            // An Interval is also a Stream.
            let instants: Vec<Instant> = interval(Duration::from_millis(1)).take(3).collect().await;
            assert_eq!(instants.len(), 3);
        });
    }

    fn sleeps_registered_from_outside_the_runtime_wake_it(flavor) {
        // A timer registered by a thread that is not running the loop must
        // wake the loop if it is earlier than what the loop is waiting for.
        let rt = runtime(flavor);
        let handle = rt.handle();
        rt.block_on(async { sleep(Duration::from_millis(1)).await });
        let from_thread = std::thread::spawn(move || {
            let start = Instant::now();
            handle.block_on(async { sleep(Duration::from_millis(30)).await });
            start.elapsed()
        });
        let took = from_thread.join().unwrap();
        assert!(took >= Duration::from_millis(30) && took < Duration::from_secs(5), "{took:?}");
    }
}

#[test]
#[should_panic(expected = "the period must be non-zero")]
fn a_zero_interval_is_refused() {
    let rt = weft::Runtime::new().unwrap();
    let _enter = rt.enter();
    let _ = interval(Duration::ZERO);
}

#[test]
fn sleeping_outside_a_runtime_names_the_fix() {
    let caught = std::panic::catch_unwind(|| futures::executor::block_on(sleep(Duration::from_millis(1))));
    let message = weft_tests::panic_message(&*caught.unwrap_err());
    assert!(message.contains("no Weft reactor"), "{message}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Against a reference model: a list sorted by deadline. On one thread
    /// (so completion order is wake order) every sleep ends at or after its
    /// deadline, and they end in deadline order.
    #[test]
    fn timers_fire_in_deadline_order_and_never_early(delays in prop::collection::vec(0u64..40_000, 1..60)) {
        let rt = weft::Builder::new_current_thread().build().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let base = Instant::now() + Duration::from_millis(5);
        let deadlines: Vec<Instant> = delays.iter().map(|&us| base + Duration::from_micros(us)).collect();
        rt.block_on(async {
            let handles: Vec<_> = deadlines
                .iter()
                .enumerate()
                .map(|(i, &deadline)| {
                    let order = order.clone();
                    weft::spawn(async move {
                        sleep_until(deadline).await;
                        order.lock().unwrap().push((i, Instant::now()));
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        let fired = order.lock().unwrap().clone();
        prop_assert_eq!(fired.len(), deadlines.len());
        for &(i, at) in &fired {
            prop_assert!(at >= deadlines[i], "timer {} fired early", i);
        }
        // Order: a timer never fires after one with a later deadline.
        for pair in fired.windows(2) {
            prop_assert!(deadlines[pair[0].0] <= deadlines[pair[1].0], "fired out of deadline order");
        }
    }
}

#[test]
fn a_timer_fires_on_time_while_the_worker_that_held_the_driver_blocks() {
    // Found in review: the worker that woke from the driver ran a task that
    // blocked for a second, and no other worker took the driver over, so a
    // timer due meanwhile fired a second late. The standby must take over.
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let start = Instant::now();
    let blocker = rt.spawn(async {
        sleep(Duration::from_millis(50)).await;
        std::thread::sleep(Duration::from_secs(1));
    });
    let timer = rt.spawn(async move {
        sleep_until(start + Duration::from_millis(200)).await;
        start.elapsed()
    });
    let fired_at = rt.block_on(timer).unwrap();
    assert!(fired_at >= Duration::from_millis(200));
    assert!(
        fired_at < Duration::from_millis(500),
        "the timer fired at {fired_at:?}, blocked behind the driver's holder"
    );
    rt.block_on(blocker).unwrap();
}

#[test]
fn a_sleep_far_beyond_the_wheel_does_not_stall_the_loop() {
    // Found in review: a deadline beyond the wheel's span (about 2.2 years),
    // once any earlier timer had fired, made the reactor spin forever.
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    rt.block_on(async {
        sleep(Duration::from_millis(3)).await;
        let forever = weft::spawn(sleep(Duration::MAX));
        let three_years = weft::spawn(sleep(Duration::from_secs(3 * 365 * 86_400)));
        let start = Instant::now();
        let r = timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
        assert!(r.is_err());
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        forever.abort();
        three_years.abort();
        let mut long = interval(Duration::MAX);
        long.tick().await;
        assert!(timeout(Duration::from_millis(5), long.tick()).await.is_err());
    });
    // Shutting down with far timers pending returns promptly.
    let start = Instant::now();
    drop(rt);
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// How long after `start` a sleep until `start + due` ended.
async fn fired_after(start: Instant, due: Duration) -> Duration {
    sleep_until(start + due).await;
    start.elapsed()
}

#[test]
fn timers_due_within_the_slack_fire_in_one_wakeup_and_a_lone_one_on_time() {
    // A slack far above any scheduling noise, so the test reads the policy
    // (`Builder::timer_slack`), not the machine.
    let slack = Duration::from_millis(200);
    let rt = weft::Builder::new_current_thread().timer_slack(slack).build().unwrap();
    rt.block_on(async {
        // Two timers 60 ms apart, within the slack: the sleeping loop wakes
        // once, for the later, and fires both; the earlier is late by the
        // gap, never early.
        let start = Instant::now();
        let early = weft::spawn(fired_after(start, Duration::from_millis(20)));
        let later = weft::spawn(fired_after(start, Duration::from_millis(80)));
        let (early, later) = (early.await.unwrap(), later.await.unwrap());
        assert!(later >= Duration::from_millis(80));
        assert!(
            early >= Duration::from_millis(80),
            "the first timer woke the loop alone at {early:?}: no coalescing"
        );
        // A lone timer: woken for at its deadline, not the slack later.
        let start = Instant::now();
        let lone = fired_after(start, Duration::from_millis(20)).await;
        assert!(lone >= Duration::from_millis(20));
        assert!(
            lone < Duration::from_millis(150),
            "a lone timer woke {lone:?} after its start"
        );
    });
    // No slack: every deadline wakes the loop.
    let rt = weft::Builder::new_current_thread()
        .timer_slack(Duration::ZERO)
        .build()
        .unwrap();
    rt.block_on(async {
        let start = Instant::now();
        let early = weft::spawn(fired_after(start, Duration::from_millis(20)));
        let later = weft::spawn(fired_after(start, Duration::from_millis(300)));
        let early = early.await.unwrap();
        assert!(early >= Duration::from_millis(20));
        assert!(
            early < Duration::from_millis(250),
            "with no slack the first timer waited {early:?}"
        );
        assert!(later.await.unwrap() >= Duration::from_millis(300));
    });
}

/// The largest slack (`Duration::MAX`) overflows nothing: timers still fire
/// never early, and a lone one still wakes the loop at its deadline.
#[test]
fn the_largest_timer_slack_overflows_nothing_and_ends_no_sleep_early() {
    for multi_thread in [false, true] {
        let mut builder = if multi_thread {
            weft::Builder::new_multi_thread()
        } else {
            weft::Builder::new_current_thread()
        };
        let rt = builder.timer_slack(Duration::MAX).build().unwrap();
        rt.block_on(async {
            let start = Instant::now();
            let early = weft::spawn(fired_after(start, Duration::from_millis(20)));
            let later = weft::spawn(fired_after(start, Duration::from_millis(60)));
            let far = weft::spawn(fired_after(start, Duration::from_millis(300)));
            let (early, later, far) = (early.await.unwrap(), later.await.unwrap(), far.await.unwrap());
            assert!(early >= Duration::from_millis(20) && later >= Duration::from_millis(60));
            assert!(
                far >= Duration::from_millis(300) && far < Duration::from_secs(5),
                "{far:?}"
            );
            let start = Instant::now();
            let lone = fired_after(start, Duration::from_millis(20)).await;
            assert!(lone >= Duration::from_millis(20));
            assert!(
                lone < Duration::from_secs(1),
                "a lone timer woke {lone:?} after its start"
            );
        });
    }
}
