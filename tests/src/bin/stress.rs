//! Soak tests with churn (issue 22.3), and the long mode of the
//! combinations matrix (22.2). Each mode prints its figures and exits
//! non-zero, naming the failure, if any check fails.
//!
//! ```text
//! stress tcp [--connections N] [--seconds S] [--seed X]
//! stress timers [--count N] [--seconds S] [--seed X]
//! stress channels [--seconds S] [--seed X]
//! stress combinations [--count N] [--seed X]
//! stress short          (what scripts/test.sh runs: each mode, briefly)
//! ```
//!
//! `scripts/soak.sh` runs the long modes (10,000 connections for 60 s,
//! 100,000 timers, channels for 60 s, 1,000,000 combinations).
//!
//! What every soak checks:
//!
//! - **tcp**: a child process (`stress tcp-server`) runs an echo server on
//!   Weft, one task per connection (the shape of `examples/src/bin/echo.rs`);
//!   this process opens N connections on a Weft runtime and holds them all
//!   at once, then for S seconds each connection exchanges random payloads
//!   (every byte compared) and, now and then, closes and reconnects (some
//!   with a reset instead of a close). At the end all N are open again.
//!   RSS of both processes after the warm-up (all N open, one exchange each)
//!   and at the end (all N open again) must agree within 10%; once the
//!   clients are gone, neither side may have a task or a reactor
//!   registration left beyond its listeners and accept loops. Both
//!   processes raise `RLIMIT_NOFILE` to the hard limit (each holds N
//!   sockets).
//! - **timers**: N tasks, each in a loop of sleeps that are awaited, reset
//!   earlier or later, dropped before they fire, or raced by a shorter
//!   timeout, chosen at random; a controller aborts random tasks and
//!   spawns replacements. A sleep must never fire before its deadline, and
//!   never more than 10 s after it (a lost wakeup). At the end no timer,
//!   task or registration is left, and RSS is within 10% of the warm-up's.
//! - **channels**: bounded and unbounded mpsc, broadcast, oneshot and a
//!   semaphore, with producers, subscribers and acquirers spawned and
//!   aborted at random: every message a send reported as delivered is
//!   received exactly once and in order per producer; broadcast receivers
//!   see increasing values (lagging is allowed and counted); the semaphore
//!   ends with all its permits. Tasks and RSS as above.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::{Duration, Instant};
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream};
use weft_tests::Rng;
use weft_tests::combinations::{self, Expected, Jitter};

/// The heap in use is printed next to RSS, so that a leak (heap grows) and
/// allocator high-water marks (RSS grows, heap flat) can be told apart.
#[global_allocator]
static ALLOC: weft_tests::heap::CountingAllocator = weft_tests::heap::CountingAllocator;

/// Heap bytes in use in this process.
fn heap() -> u64 {
    weft_tests::heap::live().max(0) as u64
}

/// Command-line options (`--name value`).
struct Opts(Vec<String>);

impl Opts {
    fn get(&self, name: &str, default: u64) -> u64 {
        let flag = format!("--{name}");
        match self.0.iter().position(|a| *a == flag) {
            Some(i) => self
                .0
                .get(i + 1)
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| fail(&format!("{flag} needs a number"))),
            None => default,
        }
    }
}

fn fail(why: &str) -> ! {
    eprintln!("stress: FAILED: {why}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_default();
    let opts = Opts(args.into_iter().skip(1).collect());
    let seed = opts.get("seed", 22);
    match mode.as_str() {
        "tcp" => tcp(
            opts.get("connections", 10_000) as usize,
            secs(opts.get("seconds", 60)),
            seed,
        ),
        "tcp-server" => tcp_server(),
        "timers" => timers(opts.get("count", 100_000) as usize, secs(opts.get("seconds", 60)), seed),
        "channels" => channels(secs(opts.get("seconds", 60)), seed),
        "combinations" => combinations(opts.get("count", 1_000_000), seed),
        "short" => {
            tcp(400, secs(3), seed);
            timers(5_000, secs(3), seed);
            channels(secs(3), seed);
            combinations(300, seed);
        }
        _ => {
            eprintln!(
                "usage: stress tcp|timers|channels|combinations|short [--seconds S] [--connections N] [--count N] [--seed X]"
            );
            std::process::exit(2);
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    rss_of("self")
}

fn rss_of(pid: &str) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Fails if `end` is more than 10% above `warm` (growth is what a leak
/// looks like; ending lower is allowed and shown).
fn check_rss(what: &str, warm: u64, end: u64) {
    let ratio = end as f64 / warm as f64;
    println!(
        "  {what} RSS: {} after warm-up, {} at the end ({:+.1}%)",
        mib(warm),
        mib(end),
        (ratio - 1.0) * 100.0
    );
    if ratio > 1.1 && std::env::var_os("STRESS_NO_RSS").is_none() {
        fail(&format!(
            "{what}: RSS at the end is more than 10% above RSS after warm-up"
        ));
    }
}

/// Raises this process's open-file limit to its hard limit; returns it.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer; setrlimit reads it.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

fn runtime() -> weft::Runtime {
    weft::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")))
}

/// Waits for `cond` to hold, up to `limit`, polling every 10 ms.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            fail(&format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ----- tcp ---------------------------------------------------------------

/// The echo server's listeners: several loopback addresses, so that churn
/// never runs out of (source port, destination) pairs.
const LISTENERS: usize = 4;

/// The child process: an echo server that answers `stats` on stdin.
fn tcp_server() {
    raise_nofile();
    let rt = runtime();
    let open = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let mut addrs = Vec::new();
    for i in 1..=LISTENERS {
        let listener = rt
            .block_on(async { TcpListener::bind(format!("127.0.0.{i}:0")) })
            .unwrap_or_else(|e| fail(&format!("server bind: {e}")));
        addrs.push(listener.local_addr().unwrap().to_string());
        let (open, accepted) = (open.clone(), accepted.clone());
        drop(rt.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        open.fetch_add(1, Relaxed);
                        accepted.fetch_add(1, Relaxed);
                        let open = open.clone();
                        weft::spawn(async move {
                            let _ = echo(stream).await;
                            open.fetch_sub(1, Relaxed);
                        });
                    }
                    // EMFILE and friends: back off, as the example does.
                    Err(_) => weft::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    println!("listening {}", addrs.join(" "));
    std::io::stdout().flush().unwrap();
    let handle = rt.handle();
    for line in std::io::stdin().lock().lines() {
        match line.unwrap_or_default().trim() {
            "stats" => {
                let m = handle.metrics();
                println!(
                    "rss={} heap={} registrations={} tasks={} open={} accepted={}",
                    rss(),
                    heap(),
                    handle.reactor().registrations(),
                    m.alive_tasks,
                    open.load(Relaxed),
                    accepted.load(Relaxed)
                );
                std::io::stdout().flush().unwrap();
            }
            _ => break,
        }
    }
    drop(rt);
}

async fn echo(stream: TcpStream) -> std::io::Result<u64> {
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    weft::io::copy(&mut reader, &mut writer).await
}

/// The parent's line to the server.
struct Server {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

#[derive(Debug, Default)]
struct ServerStats {
    rss: u64,
    heap: u64,
    registrations: usize,
    tasks: usize,
    open: usize,
    accepted: u64,
}

impl Server {
    fn stats(&mut self) -> ServerStats {
        writeln!(self.stdin, "stats").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let mut stats = ServerStats::default();
        for field in line.split_whitespace() {
            let (k, v) = field.split_once('=').unwrap_or(("", ""));
            match k {
                "rss" => stats.rss = v.parse().unwrap(),
                "heap" => stats.heap = v.parse().unwrap(),
                "registrations" => stats.registrations = v.parse().unwrap(),
                "tasks" => stats.tasks = v.parse().unwrap(),
                "open" => stats.open = v.parse().unwrap(),
                "accepted" => stats.accepted = v.parse().unwrap(),
                _ => {}
            }
        }
        stats
    }
}

/// What the client tasks count.
#[derive(Default)]
struct TcpCounts {
    /// Connections open right now.
    open: AtomicUsize,
    /// Most open at once.
    peak: AtomicUsize,
    opened: AtomicU64,
    resets: AtomicU64,
    bytes: AtomicU64,
    exchanges: AtomicU64,
    /// Tasks that finished their warm-up exchange / their churn.
    warm: AtomicUsize,
    settled: AtomicUsize,
    connect_retries: AtomicU64,
}

impl TcpCounts {
    fn opened(&self) {
        let now = self.open.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        self.opened.fetch_add(1, Relaxed);
    }
}

fn tcp(connections: usize, churn: Duration, seed: u64) {
    let limit = raise_nofile();
    println!("stress tcp: {connections} connections, {churn:?} of churn (RLIMIT_NOFILE {limit})");
    if (limit as usize) < connections + 100 {
        fail(&format!(
            "RLIMIT_NOFILE's hard limit {limit} is below {connections} connections"
        ));
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("tcp-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("starting the server: {e}")));
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addrs: Vec<SocketAddr> = first
        .strip_prefix("listening ")
        .unwrap_or_else(|| fail(&format!("the server said {first:?}")))
        .split_whitespace()
        .map(|a| a.parse().unwrap())
        .collect();
    let mut server = Server { child, stdin, stdout };

    let rt = runtime();
    let heap_before = heap();
    let counts = Arc::new(TcpCounts::default());
    let start_churn = Arc::new(weft::sync::Event::new());
    let finish = Arc::new(weft::sync::Event::new());
    let churn_until = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            let counts = counts.clone();
            let (start_churn, finish, churn_until) = (start_churn.clone(), finish.clone(), churn_until.clone());
            rt.spawn(async move {
                let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x9E37));
                let mut bufs = Buffers::new();
                let mut conn = connect(addr, &counts).await?;
                exchange(&mut conn, &mut rng, &mut bufs, &counts).await?;
                counts.warm.fetch_add(1, SeqCst);
                start_churn.wait().await;
                let until = churn_until.lock().unwrap().expect("set before the start");
                while Instant::now() < until {
                    exchange(&mut conn, &mut rng, &mut bufs, &counts).await?;
                    match rng.range(0, 24) {
                        0 => {
                            // Close and reconnect.
                            drop(conn);
                            counts.open.fetch_sub(1, SeqCst);
                            conn = connect(addr, &counts).await?;
                        }
                        1 => {
                            // Reset (SO_LINGER 0) and reconnect.
                            let std = conn.into_std()?;
                            socket2::SockRef::from(&std).set_linger(Some(Duration::ZERO))?;
                            drop(std);
                            counts.open.fetch_sub(1, SeqCst);
                            counts.resets.fetch_add(1, Relaxed);
                            conn = connect(addr, &counts).await?;
                        }
                        2 => weft::time::sleep(Duration::from_millis(rng.range(1, 50))).await,
                        _ => {}
                    }
                }
                exchange(&mut conn, &mut rng, &mut bufs, &counts).await?;
                counts.settled.fetch_add(1, SeqCst);
                finish.wait().await;
                drop(conn);
                counts.open.fetch_sub(1, SeqCst);
                Ok::<(), std::io::Error>(())
            })
        })
        .collect();

    wait_for("every connection's first exchange", Duration::from_secs(300), || {
        counts.warm.load(SeqCst) == connections
    });
    let held = counts.open.load(SeqCst);
    let at_start = server.stats();
    println!(
        "  {held} connections held at once after {:.1?}; server sees {} open",
        started.elapsed(),
        at_start.open
    );
    if held != connections || at_start.open != connections {
        fail(&format!(
            "{held} open here, {} at the server, wanted {connections}",
            at_start.open
        ));
    }
    // The warm-up is the first quarter of the churn: RSS is taken once
    // the allocator has seen the workload.
    let churn_start = Instant::now();
    *churn_until.lock().unwrap() = Some(churn_start + churn);
    start_churn.set();
    std::thread::sleep(churn / 4);
    let warm_client = rss();
    let warm_server = server.stats();
    // RSS along the way: a leak climbs, an allocator's high-water mark
    // levels off.
    let mut samples = Vec::new();
    while churn_start.elapsed() < churn {
        std::thread::sleep(churn / 8);
        let stats = server.stats();
        samples.push(format!(
            "{}/{} ({}/{})",
            mib(rss()),
            mib(stats.rss),
            mib(heap()),
            mib(stats.heap)
        ));
    }
    println!("  RSS client/server (heap) during the churn: {}", samples.join(", "));
    wait_for(
        "every connection to finish its churn",
        churn + Duration::from_secs(300),
        || counts.settled.load(SeqCst) == connections,
    );
    let end_client = rss();
    let end_server = server.stats();
    println!(
        "  end of churn: {} held here, {} at the server",
        counts.open.load(SeqCst),
        end_server.open
    );
    if counts.open.load(SeqCst) != connections || end_server.open != connections {
        fail("not every connection is open again at the end");
    }
    finish.set();
    let mut errors = 0;
    rt.block_on(async {
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    errors += 1;
                    if errors < 5 {
                        eprintln!("  a client failed: {e}");
                    }
                }
                Err(e) => fail(&format!("a client task failed: {e}")),
            }
        }
    });
    if errors > 0 {
        fail(&format!("{errors} clients failed"));
    }
    wait_for(
        "the server to see every connection closed",
        Duration::from_secs(60),
        || server.stats().open == 0,
    );
    let after = server.stats();
    let m = rt.metrics();
    println!(
        "  client heap: {} before connecting, {} with everything closed; server heap {} with everything closed",
        mib(heap_before),
        mib(heap()),
        mib(after.heap)
    );
    println!(
        "  connections opened {} (peak {} at once), resets {}, exchanges {}, bytes verified {} (both ways: {}), connect retries {}",
        counts.opened.load(Relaxed),
        counts.peak.load(SeqCst),
        counts.resets.load(Relaxed),
        counts.exchanges.load(Relaxed),
        counts.bytes.load(Relaxed),
        counts.bytes.load(Relaxed) * 2,
        counts.connect_retries.load(Relaxed),
    );
    check_rss("client", warm_client, end_client);
    check_rss("server", warm_server.rss, end_server.rss);
    println!(
        "  left: client tasks {} registrations {}; server tasks {} registrations {} (its {LISTENERS} listeners and accept loops)",
        m.alive_tasks,
        rt.reactor().registrations(),
        after.tasks,
        after.registrations
    );
    if m.alive_tasks != 0 || rt.reactor().registrations() != 0 {
        fail("the client runtime has tasks or registrations left");
    }
    if after.tasks != LISTENERS || after.registrations != LISTENERS {
        fail("the server has tasks or registrations left beyond its listeners");
    }
    if after.accepted != counts.opened.load(Relaxed) {
        fail(&format!(
            "the server accepted {} connections, the clients opened {}",
            after.accepted,
            counts.opened.load(Relaxed)
        ));
    }
    drop(server.stdin);
    let status = server.child.wait().unwrap();
    if !status.success() {
        fail(&format!("the server exited with {status}"));
    }
    println!("stress tcp: ok in {:.1?}", started.elapsed());
}

async fn connect(addr: SocketAddr, counts: &TcpCounts) -> std::io::Result<TcpStream> {
    let mut tries = 0;
    loop {
        match weft::time::timeout(Duration::from_secs(30), TcpStream::connect(addr)).await? {
            Ok(conn) => {
                conn.set_nodelay(true)?;
                counts.opened();
                return Ok(conn);
            }
            // A full accept backlog or a port still in TIME_WAIT: retry a
            // few times, as a client would.
            Err(e) if tries < 50 => {
                tries += 1;
                counts.connect_retries.fetch_add(1, Relaxed);
                if tries == 50 {
                    return Err(e);
                }
                weft::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The largest payload of one exchange.
const MAX_PAYLOAD: usize = 2048;

/// A connection's two buffers, allocated once: a task's memory stays the
/// same whether or not it is in the middle of an exchange, so RSS measures
/// the runtime, not how many exchanges a loaded machine has in flight.
struct Buffers {
    payload: Vec<u8>,
    back: Vec<u8>,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers {
            payload: vec![0; MAX_PAYLOAD],
            back: vec![0; MAX_PAYLOAD],
        }
    }
}

/// Sends a random payload and reads it back, comparing every byte.
async fn exchange(conn: &mut TcpStream, rng: &mut Rng, bufs: &mut Buffers, counts: &TcpCounts) -> std::io::Result<()> {
    let len = rng.range(1, MAX_PAYLOAD as u64 + 1) as usize;
    for byte in &mut bufs.payload[..len] {
        *byte = rng.next_u64() as u8;
    }
    let payload = &bufs.payload[..len];
    let back = &mut bufs.back[..len];
    let (mut reader, mut writer) = conn.split();
    let round = async {
        // Write and read at once: a payload larger than the socket buffers
        // must not deadlock against the echo.
        let (w, r) = futures::join!(writer.write_all(payload), reader.read_exact(back));
        w.and(r)
    };
    weft::time::timeout(Duration::from_secs(30), round)
        .await
        .map_err(|_| std::io::Error::other("an exchange took over 30 s (a lost wakeup?)"))??;
    if bufs.back[..len] != bufs.payload[..len] {
        fail("an echoed payload differs from what was sent");
    }
    counts.bytes.fetch_add(len as u64, Relaxed);
    counts.exchanges.fetch_add(1, Relaxed);
    Ok(())
}

// ----- timers -------------------------------------------------------------

#[derive(Default)]
struct TimerCounts {
    fired: AtomicU64,
    resets: AtomicU64,
    cancelled: AtomicU64,
    timed_out: AtomicU64,
    aborted: AtomicU64,
    worst_late_ms: AtomicU64,
}

/// The longest a sleep may fire after its deadline before it counts as a
/// lost wakeup (generous: the machine is shared and loaded).
const LATE: Duration = Duration::from_secs(10);

fn timers(count: usize, run_for: Duration, seed: u64) {
    println!("stress timers: {count} tasks, {run_for:?}");
    let rt = runtime();
    let counts = Arc::new(TimerCounts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let spawn_one = |i: u64| {
        let (counts, stop) = (counts.clone(), stop.clone());
        rt.spawn(async move {
            let mut rng = Rng::new(seed ^ i.wrapping_mul(0x51_7CC1));
            while !stop.load(Relaxed) {
                timer_round(&mut rng, &counts).await;
            }
        })
    };
    let started = Instant::now();
    let mut tasks: Vec<_> = (0..count as u64).map(spawn_one).collect();
    let mut next_id = count as u64;
    let mut rng = Rng::new(seed);
    let warm_at = started + run_for / 4;
    let mut warm = None;
    while started.elapsed() < run_for {
        std::thread::sleep(Duration::from_millis(20));
        // Abort a few tasks at random (their sleeps are dropped wherever
        // they are) and start replacements.
        for _ in 0..(count / 500).max(1) {
            let victim = rng.range(0, tasks.len() as u64) as usize;
            tasks[victim].abort();
            counts.aborted.fetch_add(1, Relaxed);
            let replacement = spawn_one(next_id);
            next_id += 1;
            let old = std::mem::replace(&mut tasks[victim], replacement);
            drop(old);
        }
        if warm.is_none() && Instant::now() >= warm_at {
            warm = Some(rss());
        }
    }
    let end = rss();
    stop.store(true, Relaxed);
    rt.block_on(async {
        for task in tasks {
            if let Err(e) = task.await {
                if e.is_panic() {
                    fail(&format!(
                        "a timer task panicked: {}",
                        weft_tests::panic_message(&e.into_panic())
                    ));
                }
            }
        }
    });
    wait_for("every timer task to leave", Duration::from_secs(30), || {
        rt.metrics().alive_tasks == 0
    });
    println!(
        "  fired {} (worst {} ms late), reset {}, cancelled {}, timed out {}, tasks aborted {}",
        counts.fired.load(Relaxed),
        counts.worst_late_ms.load(Relaxed),
        counts.resets.load(Relaxed),
        counts.cancelled.load(Relaxed),
        counts.timed_out.load(Relaxed),
        counts.aborted.load(Relaxed),
    );
    check_rss("timers", warm.unwrap_or(end), end);
    let (timers_left, regs) = (rt.reactor().pending_timers(), rt.reactor().registrations());
    println!("  left: tasks 0, timers {timers_left}, registrations {regs}");
    if timers_left != 0 || regs != 0 {
        fail("timers or registrations left after every task finished");
    }
    println!("stress timers: ok in {:.1?}", started.elapsed());
}

/// One sleep, handled one of four ways.
async fn timer_round(rng: &mut Rng, counts: &TimerCounts) {
    let first = Duration::from_millis(rng.range(1, 300));
    let start = Instant::now();
    let mut sleep = Box::pin(weft::time::sleep(first));
    let check = |deadline: Instant| {
        let now = Instant::now();
        if now < deadline {
            fail(&format!("a sleep fired {:?} before its deadline", deadline - now));
        }
        let late = now - deadline;
        if late > LATE {
            fail(&format!("a sleep fired {late:?} after its deadline (a lost wakeup)"));
        }
        counts.worst_late_ms.fetch_max(late.as_millis() as u64, Relaxed);
    };
    match rng.range(0, 4) {
        0 => {
            bounded(sleep.as_mut(), first).await;
            check(start + first);
            counts.fired.fetch_add(1, Relaxed);
        }
        1 => {
            // Registered, then moved earlier or later, then awaited.
            let _ = futures::poll!(sleep.as_mut());
            weft::task::yield_now().await;
            let again = Duration::from_millis(rng.range(1, 300));
            let deadline = Instant::now() + again;
            sleep.as_mut().reset(deadline);
            bounded(sleep.as_mut(), again).await;
            check(deadline);
            counts.resets.fetch_add(1, Relaxed);
        }
        2 => {
            // Registered, then dropped before it fires.
            let _ = futures::poll!(sleep.as_mut());
            weft::time::sleep(Duration::from_millis(rng.range(0, 2))).await;
            drop(sleep);
            counts.cancelled.fetch_add(1, Relaxed);
        }
        _ => {
            // Raced by a shorter timeout, which drops it pending.
            let short = first / 2;
            let raced = weft::time::timeout(short, sleep).await;
            if raced.is_ok() && start.elapsed() < first {
                fail("a sleep completed before its deadline inside a timeout");
            }
            counts.timed_out.fetch_add(1, Relaxed);
        }
    }
}

/// Awaits `sleep`, failing the run if it is not done `LATE` after `d`.
async fn bounded(sleep: std::pin::Pin<&mut weft::time::Sleep>, d: Duration) {
    if weft::time::timeout(d + LATE, sleep).await.is_err() {
        fail("a sleep never fired (a lost wakeup)");
    }
}

// ----- channels -----------------------------------------------------------

#[derive(Default)]
struct ChannelCounts {
    sent: AtomicU64,
    received: AtomicU64,
    broadcast_seen: AtomicU64,
    lagged: AtomicU64,
    oneshots: AtomicU64,
    acquired: AtomicU64,
    aborted: AtomicU64,
    channels: AtomicU64,
}

fn channels(run_for: Duration, seed: u64) {
    println!("stress channels: {run_for:?}");
    let rt = runtime();
    let counts = Arc::new(ChannelCounts::default());
    let permits = 8;
    let semaphore = Arc::new(weft::sync::Semaphore::new(permits));
    let started = Instant::now();
    let warm_at = started + run_for / 4;
    let mut warm = None;
    let mut round = 0u64;
    while started.elapsed() < run_for {
        round += 1;
        let counts = counts.clone();
        let semaphore = semaphore.clone();
        rt.block_on(channel_round(seed ^ round, counts, semaphore));
        if warm.is_none() && Instant::now() >= warm_at {
            warm = Some(rss());
        }
    }
    let end = rss();
    wait_for("every channel task to leave", Duration::from_secs(30), || {
        rt.metrics().alive_tasks == 0
    });
    println!(
        "  rounds {round}, channels {}, mpsc sent {} = received {}, broadcast values seen {} (lagged {}), oneshots {}, permits taken {}, tasks aborted {}",
        counts.channels.load(Relaxed),
        counts.sent.load(Relaxed),
        counts.received.load(Relaxed),
        counts.broadcast_seen.load(Relaxed),
        counts.lagged.load(Relaxed),
        counts.oneshots.load(Relaxed),
        counts.acquired.load(Relaxed),
        counts.aborted.load(Relaxed),
    );
    if counts.sent.load(Relaxed) != counts.received.load(Relaxed) {
        fail("a message reported as sent was never received");
    }
    if semaphore.available_permits() != permits {
        fail(&format!(
            "the semaphore ends with {} permits of {permits}",
            semaphore.available_permits()
        ));
    }
    check_rss("channels", warm.unwrap_or(end), end);
    println!("stress channels: ok in {:.1?}", started.elapsed());
}

/// One round: a bounded and an unbounded mpsc with producers aborted at
/// random, a broadcast with subscribers coming and going, oneshots dropped
/// on either side, and semaphore acquirers aborted mid-wait.
async fn channel_round(seed: u64, counts: Arc<ChannelCounts>, semaphore: Arc<weft::sync::Semaphore>) {
    let mut rng = Rng::new(seed);
    let producers = 8u64;
    let per_producer = 200u64;

    // mpsc: bounded (small, so senders wait) and unbounded.
    let bounded = rng.range(0, 2) == 0;
    let (tx, mut rx) = weft::sync::mpsc::channel::<(u64, u64)>(4);
    let (utx, urx) = weft::sync::mpsc::unbounded_channel::<(u64, u64)>();
    counts.channels.fetch_add(2, Relaxed);
    let mut rx_u = urx;
    let sent = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for p in 0..producers {
        let (tx, utx, sent) = (tx.clone(), utx.clone(), sent.clone());
        handles.push(weft::spawn(async move {
            for seq in 0..per_producer {
                if bounded {
                    if tx.send((p, seq)).await.is_err() {
                        return;
                    }
                } else if utx.send((p, seq)).is_err() {
                    return;
                }
                // Counted only once the send reported success.
                sent.fetch_add(1, SeqCst);
                if seq % 16 == 0 {
                    weft::task::yield_now().await;
                }
            }
        }));
    }
    drop((tx, utx));
    let consumer = weft::spawn(async move {
        let mut next = vec![0u64; producers as usize];
        let mut got = 0u64;
        loop {
            let msg = if bounded { rx.recv().await } else { rx_u.recv().await };
            let Some((p, seq)) = msg else { break };
            // In order per producer, never twice; a gap only where a
            // producer was aborted mid-send (its later values never came).
            if seq < next[p as usize] {
                fail(&format!("producer {p}: value {seq} came again or out of order"));
            }
            next[p as usize] = seq + 1;
            got += 1;
        }
        got
    });
    // Abort some producers mid-stream.
    for handle in &handles {
        if rng.range(0, 4) == 0 {
            weft::time::sleep(Duration::from_micros(rng.range(0, 500))).await;
            handle.abort();
            counts.aborted.fetch_add(1, Relaxed);
        }
    }
    for handle in handles {
        let _ = handle.await;
    }
    let got = consumer
        .await
        .unwrap_or_else(|e| fail(&format!("the consumer failed: {e}")));
    let sent = sent.load(SeqCst);
    // Every send that returned Ok was received: the receiver outlived the
    // senders.
    if got != sent {
        fail(&format!("{sent} sends succeeded, {got} messages received"));
    }
    counts.sent.fetch_add(sent, Relaxed);
    counts.received.fetch_add(got, Relaxed);

    // broadcast: subscribers come and go while values flow.
    let (btx, _) = weft::sync::broadcast::channel::<u64>(16);
    counts.channels.fetch_add(1, Relaxed);
    let mut subs = Vec::new();
    for _ in 0..6 {
        let mut brx = btx.subscribe();
        let counts = counts.clone();
        subs.push(weft::spawn(async move {
            let mut last = None;
            loop {
                match brx.recv().await {
                    Ok(v) => {
                        if last.is_some_and(|l| v <= l) {
                            fail(&format!("broadcast value {v} after {last:?}"));
                        }
                        last = Some(v);
                        counts.broadcast_seen.fetch_add(1, Relaxed);
                    }
                    Err(weft::sync::broadcast::RecvError::Lagged(_)) => {
                        counts.lagged.fetch_add(1, Relaxed);
                    }
                    Err(weft::sync::broadcast::RecvError::Closed) => break,
                }
            }
        }));
    }
    for v in 0..500u64 {
        let _ = btx.send(v);
        if v % 50 == 0 {
            let victim = rng.range(0, subs.len() as u64) as usize;
            subs[victim].abort();
            counts.aborted.fetch_add(1, Relaxed);
            weft::task::yield_now().await;
        }
    }
    drop(btx);
    for sub in subs {
        let _ = sub.await;
    }

    // oneshots, either side dropped first.
    for i in 0..50u64 {
        let (otx, orx) = weft::sync::oneshot::channel::<Vec<u8>>();
        counts.channels.fetch_add(1, Relaxed);
        match i % 3 {
            0 => drop(otx),
            1 => {
                drop(orx);
                continue;
            }
            _ => {
                weft::spawn(async move { otx.send(vec![1; 8]) });
            }
        }
        let waited = weft::time::timeout(Duration::from_secs(10), orx).await;
        if waited.is_err() {
            fail("a oneshot receive hung");
        }
        counts.oneshots.fetch_add(1, Relaxed);
    }

    // A semaphore with acquirers aborted while they wait or hold.
    let mut acquirers = Vec::new();
    for _ in 0..32 {
        let (semaphore, counts) = (semaphore.clone(), counts.clone());
        let hold = Duration::from_micros(rng.range(0, 300));
        acquirers.push(weft::spawn(async move {
            let _permit = semaphore.acquire_many_owned(2).await.unwrap();
            counts.acquired.fetch_add(1, Relaxed);
            weft::time::sleep(hold).await;
        }));
    }
    for a in &acquirers {
        if rng.range(0, 3) == 0 {
            a.abort();
            counts.aborted.fetch_add(1, Relaxed);
        }
    }
    for a in acquirers {
        let _ = a.await;
    }
}

// ----- combinations ---------------------------------------------------------

fn combinations(count: u64, seed: u64) {
    println!("stress combinations: {count} random plans (seed {seed})");
    combinations::quiet_planned_panics();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let (mut outputs, mut panics, mut cancels, mut detached) = (0u64, 0u64, 0u64, 0u64);
    for n in 0..count {
        let plan = combinations::random_plan(&mut rng);
        let mut jitter = Jitter::random(Rng::new(rng.next_u64()));
        let played = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| combinations::run(plan, &mut jitter)))
            .unwrap_or_else(|_| fail(&format!("plan {n} failed: {plan:?}")));
        match played.joined {
            Some(Expected::Output) => outputs += 1,
            Some(Expected::Panic) => panics += 1,
            Some(Expected::Cancelled) => cancels += 1,
            None => detached += 1,
        }
        if (n + 1) % 100_000 == 0 {
            println!("  {} plans in {:.0?}", n + 1, started.elapsed());
        }
    }
    println!(
        "stress combinations: ok, {count} plans in {:.1?} (joined: {outputs} outputs, {panics} panics, {cancels} cancellations; {detached} detached)",
        started.elapsed()
    );
}
