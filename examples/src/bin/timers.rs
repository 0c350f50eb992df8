//! Weft's timers: `sleep`, `timeout`, `interval`, and many sleeps at once.
//!
//! ```text
//! cargo run --release -p weft-examples --bin timers
//! ```
//!
//! It runs for about a second and prints what happened:
//!
//! 1. a `sleep`, and how long it really took;
//! 2. two `timeout`s: one whose future is too slow (it is cancelled at the
//!    deadline), one whose future finishes first;
//! 3. an `interval` under each `MissedTickBehavior`: the task stalls its
//!    worker (`std::thread::sleep`, which an async task should never do; here
//!    it stands in for a long computation) past a few ticks, and the instants
//!    the interval reports show how each behaviour catches up;
//! 4. 10 000 concurrent sleeps with random deadlines between 1 and 100 ms,
//!    and how late they woke up (p50, p99, max). Timers fire at their exact
//!    deadlines, never early; a loop about to sleep wakes once for the
//!    timers due within the timer slack (`Builder::timer_slack`, 50 µs), so
//!    expect tens of microseconds, plus the time to get the woken task
//!    running.

use std::io;
use std::time::{Duration, Instant};
use weft::time::{MissedTickBehavior, interval, sleep, sleep_until, timeout};

fn main() -> io::Result<()> {
    let rt = weft::Runtime::new()?;
    let start = Instant::now();
    rt.block_on(async {
        one_sleep().await;
        two_timeouts().await;
        for behavior in [
            MissedTickBehavior::Burst,
            MissedTickBehavior::Delay,
            MissedTickBehavior::Skip,
        ] {
            // In a task of its own, whose stall blocks one worker only.
            weft::spawn(stalled_interval(behavior)).await?;
        }
        many_sleeps(10_000).await
    })?;
    println!("\ndone in {:.0?}", start.elapsed());
    Ok(())
}

async fn one_sleep() {
    println!("1. sleep(50 ms)");
    let start = Instant::now();
    sleep(Duration::from_millis(50)).await;
    println!("   woke after {:.2?}\n", start.elapsed());
}

async fn two_timeouts() {
    println!("2. timeout");
    let start = Instant::now();
    match timeout(Duration::from_millis(20), sleep(Duration::from_secs(10))).await {
        Ok(()) => println!("   a 10 s sleep under a 20 ms timeout finished?!"),
        Err(elapsed) => println!(
            "   a 10 s sleep under a 20 ms timeout: \"{elapsed}\" after {:.2?}; the sleep was dropped",
            start.elapsed()
        ),
    }
    let start = Instant::now();
    let work = async {
        sleep(Duration::from_millis(10)).await;
        42
    };
    match timeout(Duration::from_millis(100), work).await {
        Ok(answer) => println!(
            "   10 ms of work under a 100 ms timeout: Ok({answer}) after {:.2?}\n",
            start.elapsed()
        ),
        Err(elapsed) => println!("   10 ms of work under a 100 ms timeout: {elapsed}?!\n"),
    }
}

/// A 20 ms interval whose task stalls for 70 ms after its second tick.
async fn stalled_interval(behavior: MissedTickBehavior) {
    const PERIOD: Duration = Duration::from_millis(20);
    const STALL: Duration = Duration::from_millis(70);
    let start = Instant::now();
    let mut ticks = interval(PERIOD);
    ticks.set_missed_tick_behavior(behavior);
    let explain = match behavior {
        MissedTickBehavior::Burst => "missed ticks fire back to back; the schedule stays start + n * 20 ms",
        MissedTickBehavior::Delay => "one tick now, then every 20 ms from now: the schedule shifts",
        MissedTickBehavior::Skip => "one tick now, then the next tick of the original schedule",
    };
    println!("3. interval(20 ms), MissedTickBehavior::{behavior:?}: {explain}");
    let ms = |t: Instant| t.saturating_duration_since(start).as_secs_f64() * 1e3;
    for n in 0..7 {
        let scheduled = ticks.tick().await;
        let seen = Instant::now();
        println!(
            "   tick {n}: scheduled at {:>5.1} ms, seen at {:>5.1} ms",
            ms(scheduled),
            ms(seen)
        );
        if n == 1 {
            println!("   ... the task stalls its worker for {STALL:?} ...");
            std::thread::sleep(STALL);
        }
    }
    println!();
}

/// `n` tasks, each sleeping until a random deadline 1 to 100 ms away, and
/// how late each woke up.
async fn many_sleeps(n: usize) -> io::Result<()> {
    println!("4. {n} concurrent sleeps, deadlines random in 1..=100 ms");
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let start = Instant::now();
    let sleepers: Vec<_> = (0..n)
        .map(|_| {
            let deadline = Instant::now() + Duration::from_millis(1 + rng.next() % 100);
            weft::spawn(async move {
                sleep_until(deadline).await;
                Instant::now().duration_since(deadline)
            })
        })
        .collect();
    let mut lateness = Vec::with_capacity(n);
    for sleeper in sleepers {
        lateness.push(sleeper.await?);
    }
    lateness.sort();
    let pct = |p: usize| lateness[(lateness.len() - 1) * p / 100];
    println!(
        "   all woke within {:.0?}; lateness p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        start.elapsed(),
        pct(50),
        pct(99),
        lateness[lateness.len() - 1]
    );
    Ok(())
}

/// A small pseudo-random generator (xorshift64), enough for deadlines.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
