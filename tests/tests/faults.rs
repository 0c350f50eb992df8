//! Fault injection (issue 22.4): each case ends with an error or recovers,
//! never hangs (every wait is bounded and names what it waited for).
//!
//! - a peer resetting in the middle of a write and of a read;
//! - a slow reader: backpressure keeps the server's memory flat (this
//!   binary counts live heap bytes);
//! - an EMFILE storm on accept: descriptors run out and come back again
//!   and again while a burst of clients connects; every client is served;
//! - a worker blocked for a second inside a task while the others keep
//!   serving I/O and timers (the spine issue's scenario; the I/O half is
//!   also `net.rs`'s `a_worker_blocked_for_a_second_...`);
//! - panics in done callbacks, `call_soon` callbacks, and destructors
//!   (of a task's future, its output, a queued callback's captures);
//! - `fork` without `exec` in a process with a runtime and a signal
//!   listener: what the child may do (docs/RELIABILITY.md) and that the
//!   parent's runtime is unaffected.
//!
//! An MPI rank dying mid-collective: tests/tests/mpi_faults.rs. A GPU
//! fault while other streams are busy: gpu/tests/compose.rs.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream};
use weft_tests::{DropCounter, Flavor, each_flavor, runtime};

#[global_allocator]
static ALLOC: weft_tests::heap::CountingAllocator = weft_tests::heap::CountingAllocator;

/// Tests that count heap bytes or fork take turns with every other test of
/// this binary.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// The longest any step may take on a loaded machine before it counts as
/// a hang.
const PATIENCE: Duration = Duration::from_secs(20);

async fn patiently<F: std::future::Future>(what: &str, future: F) -> F::Output {
    weft::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("hang: {what} took over {PATIENCE:?}"))
}

/// Closes `stream` with a reset (SO_LINGER 0), as a crashing peer would.
fn reset(stream: std::net::TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

// ----- peers that reset -------------------------------------------------------

each_flavor! {
    fn a_peer_resetting_mid_write_fails_the_write_and_the_server_serves_on(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // The server streams 64 MiB to each client.
            let server = weft::spawn(async move {
                let mut outcomes = Vec::new();
                for _ in 0..2 {
                    let (mut conn, _) = listener.accept().await.unwrap();
                    let chunk = vec![0xA5u8; 1 << 16];
                    let mut sent = 0u64;
                    let outcome = loop {
                        if sent >= 64 << 20 {
                            break Ok(sent);
                        }
                        match conn.write_all(&chunk).await {
                            Ok(()) => sent += chunk.len() as u64,
                            Err(e) => break Err(e),
                        }
                    };
                    outcomes.push(outcome);
                }
                outcomes
            });
            // The first client reads a little, then resets mid-transfer.
            let first = std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                let mut buf = vec![0u8; 1 << 20];
                c.read_exact(&mut buf).unwrap();
                reset(c);
            });
            patiently("the resetting client", weft::spawn_blocking(move || first.join().unwrap())).await.unwrap();
            // The second reads everything.
            let second = weft::spawn_blocking(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                let mut total = 0u64;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = c.read(&mut buf).unwrap();
                    if n == 0 || total + n as u64 >= 64 << 20 {
                        break total + n as u64;
                    }
                    total += n as u64;
                }
            });
            let outcomes = patiently("the server", server).await.unwrap();
            let err = outcomes[0].as_ref().expect_err("a write into a reset connection fails");
            assert!(
                matches!(err.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
                "{err}"
            );
            assert_eq!(outcomes[1].as_ref().unwrap(), &(64 << 20), "the next client is served in full");
            assert_eq!(patiently("the second client", second).await.unwrap(), 64 << 20);
        });
    }

    fn a_peer_resetting_mid_read_fails_the_read(flavor) {
        let _turn = turn();
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(&[1u8; 1000]).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                reset(c);
            });
            let (mut conn, _) = listener.accept().await.unwrap();
            // Waits for 1 MiB; gets a thousand bytes and then a reset.
            let mut buf = vec![0u8; 1 << 20];
            let err = patiently("a read from a reset peer", conn.read_exact(&mut buf)).await.unwrap_err();
            assert!(
                matches!(err.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof),
                "{err}"
            );
            // Reads after the error keep failing or see the end, never hang.
            let again = patiently("a read after the reset", conn.read(&mut buf)).await;
            assert!(matches!(again, Ok(0) | Err(_)), "{again:?}");
            client.join().unwrap();
        });
    }
}

// ----- a slow reader ------------------------------------------------------------

#[test]
fn a_slow_reader_keeps_the_servers_memory_flat() {
    let _turn = turn();
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let addr = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        weft::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = conn.into_split();
            weft::io::copy(&mut r, &mut w).await
        });
        addr
    });
    let total: u64 = 48 << 20;
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    let mut reader = client.try_clone().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 16];
        let mut sent = 0;
        while sent < total {
            client.write_all(&chunk).unwrap();
            sent += chunk.len() as u64;
            w.store(sent, SeqCst);
        }
        client.shutdown(std::net::Shutdown::Write).unwrap();
    });
    // Read slowly at first (the writer blocks on a full path), then fast.
    let base = weft_tests::heap::live();
    let mut peak = 0isize;
    let mut read = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let slow_until = Instant::now() + Duration::from_secs(1);
    let mut lag_seen = 0u64;
    while read < total {
        if Instant::now() < slow_until {
            std::thread::sleep(Duration::from_millis(5));
            let n = reader.read(&mut buf[..4096]).unwrap();
            read += n as u64;
            lag_seen = lag_seen.max(written.load(SeqCst).saturating_sub(read));
        } else {
            let n = reader.read(&mut buf).unwrap();
            assert!(n > 0, "the echo ended early at {read} bytes");
            read += n as u64;
        }
        peak = peak.max(weft_tests::heap::live() - base);
    }
    writer.join().unwrap();
    // The writer was held back: it got at most the sockets' buffers ahead.
    assert!(
        lag_seen < 32 << 20,
        "the writer ran {lag_seen} bytes ahead of a slow reader"
    );
    // And the server held no more than its copy buffer and some change,
    // although 48 MiB went through it.
    assert!(
        peak < 1 << 20,
        "the heap grew by {peak} bytes while a slow reader held the echo back"
    );
    println!("slow reader: writer at most {lag_seen} B ahead; heap peak {peak:+} B over 48 MiB echoed");
}

// ----- an EMFILE storm on accept --------------------------------------------------

const STORM_CHILD: &str = "WEFT_EMFILE_STORM_CHILD";
const STORM_TEST: &str = "an_emfile_storm_on_accept_recovers_and_serves_every_client";

#[test]
fn an_emfile_storm_on_accept_recovers_and_serves_every_client() {
    if std::env::var_os(STORM_CHILD).is_some() {
        storm_child();
        return;
    }
    let _turn = turn();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", STORM_TEST, "--nocapture", "--test-threads=1"])
        .env(STORM_CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the child reports its address").unwrap();
        if let Some((_, addr)) = line.split_once("READY ") {
            break addr.trim().to_owned();
        }
    };
    // A burst of clients, all at once, while the child's descriptors come
    // and go.
    let clients = 150;
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(&addr).unwrap();
                c.set_read_timeout(Some(PATIENCE)).unwrap();
                c.write_all(&[i as u8]).unwrap();
                let mut reply = [0u8; 1];
                c.read_exact(&mut reply).map(|_| reply[0] == i as u8)
            })
        })
        .collect();
    let served = handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|r| matches!(r, Ok(true)))
        .count();
    let report: Vec<String> = lines.map_while(Result::ok).filter(|l| l.contains("REPORT")).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "the child failed: {report:?}");
    assert_eq!(
        served, clients,
        "every client is served once descriptors come back: {report:?}"
    );
    println!("{}", report.join(" "));
}

fn storm_child() {
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let listener = rt.block_on(async { TcpListener::bind_with_backlog("127.0.0.1:0", 1024).unwrap() });
    let addr = listener.local_addr().unwrap();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = 128.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let hog = || {
        let mut hoard = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            hoard.push(f);
        }
        hoard
    };
    let hoard = Arc::new(Mutex::new(hog()));
    println!("READY {addr}");
    std::io::stdout().flush().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let (attempts, emfile) = rt.block_on(async {
        // The storm: for two seconds, descriptors are freed and taken again
        // every 20 ms; then they stay free.
        let storm = hoard.clone();
        weft::spawn(async move {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(2) {
                weft::time::sleep(Duration::from_millis(20)).await;
                storm.lock().unwrap().clear();
                weft::time::sleep(Duration::from_millis(3)).await;
                *storm.lock().unwrap() = hog();
            }
            storm.lock().unwrap().clear();
        });
        let (mut attempts, mut emfile, mut accepted) = (0u64, 0u64, 0);
        while accepted < 150 {
            attempts += 1;
            match weft::time::timeout(PATIENCE, listener.accept()).await {
                Err(_) => panic!(
                    "REPORT hang: no accept for {PATIENCE:?}, {} served, {attempts} accepts, {emfile} EMFILE",
                    served.load(SeqCst)
                ),
                Ok(Ok((mut conn, _))) => {
                    accepted += 1;
                    let served = served.clone();
                    weft::spawn(async move {
                        let mut b = [0u8; 1];
                        if conn.read_exact(&mut b).await.is_ok() && conn.write_all(&b).await.is_ok() {
                            served.fetch_add(1, SeqCst);
                        }
                    });
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EMFILE) => {
                    emfile += 1;
                    // Back off, as the examples do, instead of spinning on a
                    // listener that stays readable.
                    weft::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(Err(e)) => panic!("REPORT accept failed with {e}"),
            }
        }
        weft_tests::eventually("every accepted client served", || served.load(SeqCst) == 150).await;
        (attempts, emfile)
    });
    assert!(emfile > 0, "REPORT the storm never ran the process out of descriptors");
    println!(
        "REPORT {attempts} accepts, {emfile} EMFILE, {} served",
        served.load(SeqCst)
    );
}

// ----- a worker blocked for a second ------------------------------------------------

#[test]
fn a_worker_blocked_for_a_second_keeps_timers_and_io_going_on_the_others() {
    let _turn = turn();
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        weft::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = conn.into_split();
            let _ = weft::io::copy(&mut r, &mut w).await;
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        // A ticker: how many 5 ms sleeps complete while the worker is stuck.
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let ticker = weft::spawn(async move {
            loop {
                weft::time::sleep(Duration::from_millis(5)).await;
                t.fetch_add(1, SeqCst);
            }
        });
        let (started_tx, started_rx) = weft::sync::oneshot::channel();
        let blocker = weft::spawn(async move {
            started_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(1));
        });
        started_rx.await.unwrap();
        let ticks_before = ticks.load(SeqCst);
        let start = Instant::now();
        let (mut trips, mut worst) = (0u32, Duration::ZERO);
        while start.elapsed() < Duration::from_millis(800) {
            let t = Instant::now();
            client.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            patiently("an echo round trip", client.read_exact(&mut b))
                .await
                .unwrap();
            worst = worst.max(t.elapsed());
            trips += 1;
            weft::time::sleep(Duration::from_millis(2)).await;
        }
        let ticked = ticks.load(SeqCst) - ticks_before;
        assert!(!blocker.is_finished(), "the blocking task still holds its worker");
        assert!(trips >= 20, "only {trips} round trips while a worker was blocked");
        assert!(
            ticked >= 20,
            "only {ticked} 5 ms sleeps fired in 800 ms while a worker was blocked"
        );
        assert!(worst < Duration::from_millis(300), "a round trip took {worst:?}");
        ticker.abort();
        blocker.await.unwrap();
    });
}

// ----- panics in callbacks and destructors -------------------------------------------

mod panics {
    use super::*;

    /// Panics when dropped (unless the thread is already unwinding).
    struct PanicOnDrop(&'static str);

    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                std::panic::panic_any(self.0);
            }
        }
    }

    /// Keeps the panics these tests raise on purpose out of the output.
    fn quiet() {
        weft_tests::combinations::quiet_planned_panics();
    }

    each_flavor! {
        fn a_panicking_done_callback_is_contained_and_the_others_still_run(flavor) {
            quiet();
            let rt = runtime(flavor);
            let handle = rt.handle();
            let promise = handle.create_future::<u8>();
            let ran = Arc::new(AtomicUsize::new(0));
            for i in 0..4 {
                let ran = ran.clone();
                promise.add_done_callback(move |_| {
                    if i % 2 == 0 {
                        std::panic::panic_any(weft_tests::combinations::PLANNED);
                    }
                    ran.fetch_add(1, SeqCst);
                });
            }
            let inline_ran = ran.clone();
            promise.add_done_callback_inline(move |_| {
                inline_ran.fetch_add(10, SeqCst);
            });
            promise.set_result(1).unwrap();
            rt.block_on(async {
                weft_tests::eventually("the done callbacks", || ran.load(SeqCst) == 12).await;
            });
            assert_eq!(rt.metrics().callback_panics, 2);
            // The loop is fine: callbacks and tasks still run.
            let after = Arc::new(AtomicUsize::new(0));
            let a = after.clone();
            handle.call_soon(move || {
                a.fetch_add(1, SeqCst);
            });
            assert_eq!(rt.block_on(async { weft::spawn(async { 3 }).await.unwrap() }), 3);
            rt.block_on(weft_tests::eventually("a callback after the panics", || after.load(SeqCst) == 1));
        }

        fn panicking_destructors_are_contained_wherever_the_runtime_drops_them(flavor) {
            quiet();
            let rt = runtime(flavor);
            let handle = rt.handle();
            let drops = Arc::new(AtomicUsize::new(0));
            // A task whose future panics when the abort drops it: the
            // JoinHandle reports a panic.
            let guard = DropCounter::new(&drops);
            let bomb = PanicOnDrop(weft_tests::combinations::PLANNED);
            let aborted = rt.spawn(async move {
                let _guard = guard;
                let _bomb = bomb;
                std::future::pending::<()>().await
            });
            aborted.abort();
            let outcome = rt.block_on(aborted);
            assert!(outcome.unwrap_err().is_panic(), "a destructor's panic is the task's outcome");
            // A detached task whose output panics when the runtime drops it.
            let guard = DropCounter::new(&drops);
            drop(rt.spawn(async move {
                let _guard = guard;
                PanicOnDrop(weft_tests::combinations::PLANNED)
            }));
            // A call_soon callback that panics, and one whose captures panic
            // when a shutdown drops it unrun.
            handle.call_soon(|| std::panic::panic_any(weft_tests::combinations::PLANNED));
            let bomb = PanicOnDrop(weft_tests::combinations::PLANNED);
            let guard = DropCounter::new(&drops);
            handle.call_later(Duration::from_secs(3600), move || {
                let _keep = (bomb, guard);
            });
            // Tasks whose futures panic when the shutdown drops them.
            for _ in 0..10 {
                let guard = DropCounter::new(&drops);
                let bomb = PanicOnDrop(weft_tests::combinations::PLANNED);
                drop(rt.spawn(async move {
                    let _guard = guard;
                    let _bomb = bomb;
                    std::future::pending::<()>().await
                }));
            }
            rt.block_on(async {
                weft_tests::eventually("the detached task and the callback", || {
                    drops.load(SeqCst) >= 2 && weft::Handle::current().metrics().callback_panics >= 1
                })
                .await;
            });
            // The shutdown drops everything left, none of it unwinding out.
            let shut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(rt)));
            assert!(shut.is_ok(), "a destructor's panic escaped the runtime's shutdown");
            assert_eq!(drops.load(SeqCst), 13, "every future and callback was dropped once");
        }
    }
}

// ----- fork without exec ------------------------------------------------------------

/// What a child forked from a process with a running runtime may do, as
/// POSIX allows after `fork` in a threaded process: only async-signal-safe
/// calls until `exec` or `_exit`. Here it writes to an inherited pipe,
/// raises a signal the parent's runtime listens for, and `_exit`s. The
/// parent's runtime must be unaffected: the child's signal is not the
/// parent's (its listener sees nothing), the parent's own next signal
/// arrives, and timers and sockets work.
#[test]
fn fork_without_exec_leaves_the_parents_runtime_and_signals_alone() {
    use futures::StreamExt;
    use weft::signal::unix::{SignalKind, signal};
    let _turn = turn();
    let kind = SignalKind::user_defined2();
    let rt = runtime(Flavor::MultiThread);
    let mut signals = rt.block_on(async { signal(kind).unwrap() });
    // Keep the runtime busy across the fork.
    let busy = rt.spawn(async {
        loop {
            weft::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fork(2). The child runs only async-signal-safe calls (write,
    // getpid, kill, _exit) and never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: async-signal-safe calls on our own descriptors and pid.
        unsafe {
            libc::kill(libc::getpid(), kind.as_raw_value());
            let ok = b"ok";
            libc::write(fds[1], ok.as_ptr().cast(), 2);
            libc::_exit(0);
        }
    }
    assert!(pid > 0, "fork failed");
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut from_child = Vec::new();
    // SAFETY: the read end is ours; File takes it over.
    let mut reader: std::fs::File = unsafe { std::os::fd::FromRawFd::from_raw_fd(fds[0]) };
    reader.read_to_end(&mut from_child).unwrap();
    assert_eq!(from_child, b"ok");
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status}"
    );
    rt.block_on(async {
        // The child's signal was the child's.
        let spurious = weft::time::timeout(Duration::from_millis(200), signals.next()).await;
        assert!(spurious.is_err(), "the parent's listener saw the child's signal");
        // The parent's own signal still arrives.
        // SAFETY: kill(2) on ourselves, with a listener installed.
        unsafe { libc::kill(libc::getpid(), kind.as_raw_value()) };
        patiently("the parent's own signal", signals.next())
            .await
            .expect("a delivery");
        // Timers and sockets work.
        let start = Instant::now();
        weft::time::sleep(Duration::from_millis(10)).await;
        assert!(start.elapsed() >= Duration::from_millis(10));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        c.write_all(b"after fork").await.unwrap();
        let mut b = [0u8; 10];
        patiently("a read after the fork", s.read_exact(&mut b)).await.unwrap();
        assert_eq!(&b, b"after fork");
    });
    busy.abort();
}
