//! Sources (work with no descriptor, polled by the loop) and the completion
//! notifier, with plain threads standing in for devices.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use weft::source::{Notifier, Source};
use weft_tests::{Rng, each_flavor, runtime};

/// A stand-in device: jobs finish on background threads by setting a flag;
/// nobody is told, so the loop must poll.
#[derive(Default)]
struct Device {
    jobs: Mutex<Vec<Job>>,
    polls: AtomicUsize,
}

struct Job {
    done: Arc<AtomicBool>,
    waker: Option<Waker>,
    finished: bool,
}

impl Device {
    /// Starts a job that finishes after `after`; returns its flag.
    fn start(&self, after: Duration) -> Arc<AtomicBool> {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            flag.store(true, SeqCst);
        });
        self.jobs.lock().unwrap().push(Job {
            done: done.clone(),
            waker: None,
            finished: false,
        });
        done
    }

    /// Awaits the job with flag `done`.
    async fn wait(&self, done: Arc<AtomicBool>) {
        std::future::poll_fn(|cx| {
            if done.load(SeqCst) {
                return Poll::Ready(());
            }
            let mut jobs = self.jobs.lock().unwrap();
            if let Some(job) = jobs.iter_mut().find(|j| Arc::ptr_eq(&j.done, &done)) {
                job.waker = Some(cx.waker().clone());
            }
            drop(jobs);
            if done.load(SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Source for Device {
    fn poll(&self) -> usize {
        self.polls.fetch_add(1, SeqCst);
        let mut completed = 0;
        let mut wake = Vec::new();
        let mut jobs = self.jobs.lock().unwrap();
        for job in jobs.iter_mut().filter(|j| !j.finished && j.done.load(SeqCst)) {
            job.finished = true;
            completed += 1;
            wake.extend(job.waker.take());
        }
        jobs.retain(|j| !j.finished);
        drop(jobs);
        wake.into_iter().for_each(Waker::wake);
        completed
    }

    fn has_pending(&self) -> bool {
        !self.jobs.lock().unwrap().is_empty()
    }

    fn max_sleep(&self) -> Duration {
        Duration::from_millis(5)
    }
}

/// A source that asks the loop never to sleep and never completes anything
/// (as MPI's engine does while messages flow).
#[derive(Default)]
struct Spinner {
    polls: AtomicUsize,
}

impl Source for Spinner {
    fn poll(&self) -> usize {
        self.polls.fetch_add(1, SeqCst);
        0
    }

    fn has_pending(&self) -> bool {
        true
    }

    fn max_sleep(&self) -> Duration {
        Duration::ZERO
    }
}

each_flavor! {
    fn sockets_are_served_while_a_source_keeps_the_loop_spinning(flavor) {
        // The driver skips the OS poller on most spinning turns
        // (`POLL_EVENTS_EVERY`); fd events must still arrive promptly.
        let rt = runtime(flavor);
        let spinner = Arc::new(Spinner::default());
        let _registration = rt.reactor().register_source(spinner.clone());
        let start = Instant::now();
        rt.block_on(async {
            let a = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let b_addr = b.local_addr().unwrap();
            let echo = weft::spawn(async move {
                let mut buf = [0u8; 8];
                for _ in 0..500 {
                    let (n, from) = b.recv_from(&mut buf).await.unwrap();
                    b.send_to(&buf[..n], from).await.unwrap();
                }
            });
            let mut buf = [0u8; 8];
            for i in 0..500u32 {
                a.send_to(&i.to_le_bytes(), b_addr).await.unwrap();
                let (n, _) = a.recv_from(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], &i.to_le_bytes());
            }
            echo.await.unwrap();
        });
        let elapsed = start.elapsed();
        assert!(spinner.polls.load(SeqCst) > 500, "the source spun the loop");
        // 1000 datagrams; a lost or long-delayed readiness event would show.
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }

    fn a_source_completes_work_nobody_announces(flavor) {
        let rt = runtime(flavor);
        let device = Arc::new(Device::default());
        let registration = rt.reactor().register_source(device.clone());
        rt.block_on(async {
            let mut rng = Rng::new(3);
            let waits: Vec<_> = (0..200)
                .map(|_| {
                    let done = device.start(Duration::from_millis(rng.range(0, 30)));
                    registration.notify();
                    let device = device.clone();
                    weft::spawn(async move { device.wait(done).await })
                })
                .collect();
            for w in waits {
                w.await.unwrap();
            }
        });
        assert!(!device.has_pending());
    }

    fn an_idle_pending_source_backs_off_instead_of_spinning(flavor) {
        let rt = runtime(flavor);
        let device = Arc::new(Device::default());
        let registration = rt.reactor().register_source(device.clone());
        let start = Instant::now();
        rt.block_on(async {
            let done = device.start(Duration::from_millis(400));
            registration.notify();
            device.wait(done).await;
        });
        let waited = start.elapsed();
        let polls = device.polls.load(SeqCst);
        // Eager turns, then 1, 2, 4 ms and 5 ms steps: about 64 + 80 polls in
        // 400 ms; a spinning loop would poll many thousands of times.
        assert!(waited >= Duration::from_millis(400));
        assert!(polls < 1000, "{polls} polls in {waited:?}");
        assert!(polls >= 10, "the source was polled ({polls})");
    }

    fn a_hundred_thousand_completions_from_four_threads(flavor) {
        let rt = runtime(flavor);
        let notifier: Notifier = rt.reactor().notifier().clone();
        const N: usize = 100_000;
        let mut completers = Vec::with_capacity(N);
        let mut completions = Vec::with_capacity(N);
        for _ in 0..N {
            let (c, w) = notifier.completion::<usize>();
            completers.push(c);
            completions.push(w);
        }
        // Four threads complete interleaved slices, each completion with its
        // own index.
        let mut slices: Vec<Vec<(usize, weft::source::Completer<usize>)>> = (0..4).map(|_| Vec::new()).collect();
        for (i, c) in completers.into_iter().enumerate() {
            slices[i % 4].push((i, c));
        }
        let threads: Vec<_> = slices
            .into_iter()
            .map(|slice| std::thread::spawn(move || slice.into_iter().for_each(|(i, c)| c.complete(i))))
            .collect();
        let values = rt.block_on(async move {
            let tasks: Vec<_> = completions
                .into_iter()
                .map(|w| weft::spawn(async move { w.await.unwrap() }))
                .collect();
            let mut values = Vec::with_capacity(N);
            for t in tasks {
                values.push(t.await.unwrap());
            }
            values
        });
        threads.into_iter().for_each(|t| t.join().unwrap());
        // None lost, none duplicated, each where it belongs.
        assert_eq!(values.len(), N);
        assert!(values.iter().enumerate().all(|(i, &v)| i == v));
        assert_eq!(values.iter().collect::<HashSet<_>>().len(), N);
    }

    fn an_abandoned_completer_and_code_run_on_the_loop(flavor) {
        let rt = runtime(flavor);
        let notifier = rt.reactor().notifier().clone();
        let (completer, completion) = notifier.completion::<u8>();
        std::thread::spawn(move || drop(completer)).join().unwrap();
        assert!(rt.block_on(completion).is_err());
        let ran = Arc::new(AtomicBool::new(false));
        let (tx, rx) = notifier.completion::<bool>();
        let r = ran.clone();
        std::thread::spawn(move || {
            notifier.call_on_loop(move || {
                r.store(true, SeqCst);
                tx.complete(true);
            })
        })
        .join()
        .unwrap();
        assert!(rt.block_on(rx).unwrap());
        assert!(ran.load(SeqCst));
    }
}

/// A source that never completes and asks for at most `max_sleep` between
/// polls, with no spin window; it notes when it was polled.
struct Watchdog {
    max_sleep: Duration,
    polled_at: Mutex<Vec<Instant>>,
    pending: AtomicBool,
}

impl Source for Watchdog {
    fn poll(&self) -> usize {
        self.polled_at.lock().unwrap().push(Instant::now());
        0
    }
    fn has_pending(&self) -> bool {
        self.pending.load(SeqCst)
    }
    fn max_sleep(&self) -> Duration {
        self.max_sleep
    }
    fn spin_window(&self) -> Duration {
        Duration::ZERO
    }
}

#[test]
fn a_sub_millisecond_max_sleep_is_honoured() {
    // The loop sleeps to the exact instant a source asks for: a source
    // that wants a look every 200 µs gets one about every 200 µs, where a
    // loop sleeping in whole milliseconds would look once a millisecond.
    // (The median gap is robust to the thread being descheduled now and
    // then on a busy machine.)
    let rt = weft::Builder::new_current_thread().build().unwrap();
    let source = Arc::new(Watchdog {
        max_sleep: Duration::from_micros(200),
        polled_at: Mutex::new(Vec::new()),
        pending: AtomicBool::new(true),
    });
    let _handle = rt.reactor().register_source(source.clone());
    rt.block_on(weft::time::sleep(Duration::from_millis(100)));
    source.pending.store(false, SeqCst);
    let at = source.polled_at.lock().unwrap().clone();
    // Past the back-off's first doublings.
    let mut gaps: Vec<Duration> = at.windows(2).skip(10).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() > 20, "only {} polls in 100 ms", at.len());
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_micros(150),
        "the loop spun: median gap {median:?}"
    );
    assert!(
        median < Duration::from_micros(700),
        "median gap {median:?}: the sleep was rounded up"
    );
}
