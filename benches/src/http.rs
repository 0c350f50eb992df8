//! Suite `http`: the same hyper 1.x HTTP/1.1 hello-world server on each
//! runtime, driven by wrk (see [`crate::wrk`]) over loopback at 10, 50, 100
//! and 500 keep-alive connections (`wrk -t1 -cN -d10s`).
//!
//! # What runs where
//!
//! - **One server thread per runtime**, each a current-thread runtime that
//!   runs its reactor and every connection's task on that one thread: Weft's
//!   `Builder::new_current_thread()`, Tokio's `new_current_thread()` (with
//!   hyper-util's `TokioIo` and `TokioTimer`), and an `async_executor::Executor`
//!   run by `async_io::block_on` (so that thread drives async-io's reactor,
//!   as `smol::block_on` does), with smol-hyper's `FuturesIo` and `SmolTimer`.
//!   `--workers` does not apply.
//! - **Every server does the same work**: a listener with a 4096 backlog,
//!   `TCP_NODELAY` on each accepted socket, one task per connection serving
//!   `hyper::server::conn::http1` with keep-alive and the runtime's timer
//!   (so hyper's default 30 s header-read timeout is armed for every request,
//!   and each runtime's timer is on the path), and one `service_fn` answering
//!   every request with `Hello, world!`.
//! - **Pinning, where possible**: the bench process pins its main thread to
//!   the second CPU it may use before it starts any server, so every server
//!   thread inherits that CPU; wrk runs under `taskset -c` on the first. With
//!   one CPU, or without `taskset`, nothing is pinned, and the suite says so.
//!
//! # The `axum` rows
//!
//! With feature `axum` (`cargo run --release -p weft-benches --features
//! axum -- http`), workloads `axum-c10` … `axum-c500` load an axum
//! `Router` whose one route answers `{"message":"Hello, world!"}` as JSON,
//! on Weft and on Tokio, each on its own current-thread runtime as above:
//! Weft through `weft::web::serve`, Tokio through what `axum::serve` does
//! (hyper-util's auto HTTP/1 + HTTP/2 server with `TokioExecutor`, one
//! `TowerToHyperService` per connection), plus `TokioTimer` and the same
//! 30 s header-read timeout that `weft::web::serve` keeps, so both servers
//! do the same work.
//!
//! Repetitions (3 unless `--reps` says otherwise) interleave the runtimes:
//! each repetition runs every runtime in turn, each run after an untimed
//! warm-up run of wrk with the same connections. `--quick` runs 2 s instead
//! of 10 s at 50 and 500 connections only.
//!
//! # What it records
//!
//! Per workload (`c10`, `c50`, `c100`, `c500`) and runtime:
//! `requests_per_s` (the median and p99 of the repetitions' rates; higher is
//! better) and `latency_ns` (its "median" is the median of the
//! repetitions' p50 latencies as wrk measured them, its "p99" the median of
//! their p99s), and `server_cpu_ns`: the CPU time the bench process (the
//! server; wrk is a child and not counted, the other servers sit idle)
//! spent per request, and `server_sleeps_per_1k`: its voluntary context
//! switches (a thread going to sleep in `epoll_wait`, on a futex, in a
//! timed wait) per thousand requests. With wrk on one core, the rate is often wrk's limit
//! as much as the server's; the CPU per request is the server's alone.
//! Each run's p90, p99.9 and mean latencies go to stderr with its rate. Any socket error or non-2xx/3xx response in a run ends the
//! suite with an error.

use crate::Options;
use crate::cpu::{allowed_cpus, pin_this_thread, process_cpu_ns, process_sleeps};
use crate::report::{Report, percentile};
use crate::wrk::{self, Wrk};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

/// Connection counts of a full run, and of a `--quick` one.
const CONNECTIONS: [usize; 4] = [10, 50, 100, 500];
const QUICK_CONNECTIONS: [usize; 2] = [50, 500];
/// Seconds of each timed wrk run, and of the warm-up run before it.
const SECONDS: (u32, u32) = (10, 2);
const QUICK_SECONDS: (u32, u32) = (2, 1);
/// Repetitions unless `--reps` is given.
const DEFAULT_REPS: usize = 3;
/// The listen backlog of every server (the kernel caps it at
/// `net.core.somaxconn`): 500 connections arrive at once.
const BACKLOG: i32 = 4096;
/// How long an acceptor waits after a failed `accept` (out of file
/// descriptors) before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// The body of every response.
const HELLO: &[u8] = b"Hello, world!";

/// A server: the runtime's name and a function that serves the listener
/// on a runtime of one thread, forever.
type Server = (&'static str, fn(std::net::TcpListener));

/// Every server, Weft's first (the anchor of the ratios).
const SERVERS: [Server; 3] = [("weft", weft_server), ("tokio", tokio_server), ("smol", smol_server)];

/// Runs the suite: pins, finds wrk, starts the servers, then loads each in
/// turn at every connection count.
pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("http");
    let connections: &[usize] = if opts.quick { &QUICK_CONNECTIONS } else { &CONNECTIONS };
    let (secs, warmup_secs) = if opts.quick { QUICK_SECONDS } else { SECONDS };
    let reps = if opts.reps_given { opts.reps } else { DEFAULT_REPS };

    // Pin first: threads inherit the CPUs of the thread that starts them.
    let placement = place();
    println!("http: {}", placement.note);
    let most = connections.iter().copied().max().unwrap_or(0);
    if let Err(err) = raise_fd_limit(4 * most as u64 + 1024) {
        println!("http: {err}; the runs at {most} connections may fail");
    }
    let wrk = Wrk::new(placement.wrk_cpu).unwrap_or_else(|err| fail(&err));
    let pick = |servers: &[Server]| -> Vec<(&'static str, SocketAddr)> {
        servers
            .iter()
            .filter(|(name, _)| opts.runtime.as_deref().is_none_or(|only| only == *name))
            .map(|&(name, serve)| (name, start(name, serve)))
            .collect()
    };
    let rows = [("", pick(&SERVERS)), ("axum-", pick(&axum_row::SERVERS))];
    if axum_row::SERVERS.is_empty() {
        println!(
            "http: the axum rows need feature `axum` (cargo run --release -p weft-benches --features axum -- http)"
        );
    }
    let measure = Measure {
        wrk: &wrk,
        secs,
        warmup_secs,
        reps,
    };
    for (prefix, servers) in &rows {
        for &conns in connections {
            let workload = format!("{prefix}c{conns}");
            if servers.is_empty() || opts.filter.as_deref().is_some_and(|f| !workload.contains(f)) {
                continue;
            }
            measure.workload(&mut report, &workload, conns, servers);
        }
    }
    report
}

/// How each workload is run.
struct Measure<'a> {
    wrk: &'a Wrk,
    secs: u32,
    warmup_secs: u32,
    reps: usize,
}

impl Measure<'_> {
    /// Loads each server in turn, `reps` times, at `conns` connections, and
    /// records the runs under `workload`.
    fn workload(&self, report: &mut Report, workload: &str, conns: usize, servers: &[(&'static str, SocketAddr)]) {
        let (secs, reps) = (self.secs, self.reps);
        eprintln!("{workload}: wrk -t1 -c{conns} -d{secs}s, {reps} repetition(s) of each runtime");
        let mut runs: Vec<Vec<(wrk::Run, f64, f64)>> = vec![Vec::new(); servers.len()];
        for _ in 0..reps {
            for (i, &(name, addr)) in servers.iter().enumerate() {
                let against = |what: &str, secs| {
                    self.wrk
                        .run(addr, conns, secs)
                        .unwrap_or_else(|err| fail(&format!("{what} against {name} at {conns} connections: {err}")))
                };
                against("the warm-up", self.warmup_secs);
                let (cpu_before, sleeps_before) = (process_cpu_ns(), process_sleeps());
                let run = against("the run", secs);
                // wrk is a child process, not counted; the other servers are
                // idle: what this process spent is the server's work.
                let cpu_per_request = (process_cpu_ns() - cpu_before) / run.requests.max(1.0);
                let sleeps_per_1k = (process_sleeps() - sleeps_before) * 1e3 / run.requests.max(1.0);
                let [p50, p90, p99, p999] = run.latency_us;
                eprintln!(
                    "  {name:<6} {:>9.0} req/s   latency µs: p50 {p50:.0}  p90 {p90:.0}  p99 {p99:.0}  p99.9 {p999:.0}  mean {:.0}   server CPU {cpu_per_request:.0} ns/req, {sleeps_per_1k:.1} sleeps per 1k",
                    run.requests_per_s(),
                    run.latency_mean_us,
                );
                runs[i].push((run, cpu_per_request, sleeps_per_1k));
            }
        }
        for (&(name, _), runs) in servers.iter().zip(&runs) {
            for (run, cpu_per_request, sleeps_per_1k) in runs {
                report.record(workload, name, "requests_per_s", run.requests_per_s());
                report.record(workload, name, "server_cpu_ns", *cpu_per_request);
                report.record(workload, name, "server_sleeps_per_1k", *sleeps_per_1k);
            }
            let ns = |i: usize| -> Vec<f64> { runs.iter().map(|(run, _, _)| run.latency_us[i] * 1e3).collect() };
            report.record_summary(
                workload,
                name,
                "latency_ns",
                percentile(&ns(0), 50.0),
                percentile(&ns(2), 50.0),
            );
        }
    }
}

/// Prints why the suite cannot go on and exits with a failure.
fn fail(message: &str) -> ! {
    eprintln!("\nhttp: {message}");
    std::process::exit(1)
}

// ----- The service ------------------------------------------------------------

/// The one service of every server: `Hello, world!` for every request.
async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(HELLO))))
}

/// Serves one connection: HTTP/1.1 with keep-alive (hyper's default) and the
/// runtime's `timer`, until the client closes it.
async fn serve<I, T>(io: I, timer: T)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    T: hyper::rt::Timer + Send + Sync + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(timer);
    // An error is a client that went away mid-request: wrk stops with
    // requests in flight. wrk counts its own errors.
    let _ = http.serve_connection(io, service_fn(hello)).await;
}

/// Binds a listener on an ephemeral loopback port and starts a thread that
/// serves it with `serve`; returns the address.
fn start(name: &'static str, serve: fn(std::net::TcpListener)) -> SocketAddr {
    let listener = listener().unwrap_or_else(|err| fail(&format!("could not bind the {name} server: {err}")));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|err| fail(&format!("the {name} server has no address: {err}")));
    // The thread serves until the process exits.
    std::thread::Builder::new()
        .name(format!("http-{name}"))
        .spawn(move || serve(listener))
        .unwrap_or_else(|err| fail(&format!("could not start the {name} server's thread: {err}")));
    addr
}

/// A non-blocking listener on `127.0.0.1:0` with `SO_REUSEADDR` and a
/// backlog of [`BACKLOG`], made the same way for every runtime, which takes
/// it over.
fn listener() -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

// ----- The servers ------------------------------------------------------------

/// Weft: a current-thread runtime; its `TcpStream` is hyper I/O as it is,
/// and `weft::hyper::WeftTimer` is the timer.
fn weft_server(listener: std::net::TcpListener) {
    use weft::hyper::WeftTimer;
    let rt = weft::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|err| fail(&format!("could not build the weft runtime: {err}")));
    rt.block_on(async {
        let listener = weft::net::TcpListener::from_std(listener)
            .unwrap_or_else(|err| fail(&format!("weft could not take the listener: {err}")));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    drop(weft::spawn(serve(stream, WeftTimer::new())));
                }
                Err(_) => weft::time::sleep(ACCEPT_BACKOFF).await,
            }
        }
    })
}

/// Tokio: a current-thread runtime, hyper-util's `TokioIo` and `TokioTimer`.
fn tokio_server(listener: std::net::TcpListener) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| fail(&format!("could not build the tokio runtime: {err}")));
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .unwrap_or_else(|err| fail(&format!("tokio could not take the listener: {err}")));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    drop(tokio::spawn(serve(TokioIo::new(stream), TokioTimer::new())));
                }
                Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
            }
        }
    })
}

/// smol: an `async_executor::Executor` run by `async_io::block_on` on this
/// thread (which then drives async-io's reactor too), smol-hyper's
/// `FuturesIo` and `SmolTimer`.
fn smol_server(listener: std::net::TcpListener) {
    use smol_hyper::rt::{FuturesIo, SmolTimer};
    let ex = async_executor::Executor::new();
    async_io::block_on(ex.run(async {
        let listener = async_net::TcpListener::try_from(listener)
            .unwrap_or_else(|err| fail(&format!("smol could not take the listener: {err}")));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    ex.spawn(serve(FuturesIo::new(stream), SmolTimer::new())).detach();
                }
                Err(_) => {
                    async_io::Timer::after(ACCEPT_BACKOFF).await;
                }
            }
        }
    }))
}

// ----- The axum rows ----------------------------------------------------------

/// The axum rows' servers (none without feature `axum`).
#[cfg(not(feature = "axum"))]
mod axum_row {
    pub(super) const SERVERS: [super::Server; 0] = [];
}

/// The axum rows' servers: one JSON route, on Weft and on Tokio.
#[cfg(feature = "axum")]
mod axum_row {
    use super::{ACCEPT_BACKOFF, Server, fail};
    use axum::{Json, Router, routing::get};
    use std::time::Duration;

    pub(super) const SERVERS: [Server; 2] = [("weft", weft_server), ("tokio", tokio_server)];

    /// The header-read timeout both servers arm for every request
    /// (`weft::web::serve`'s default).
    const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

    #[derive(serde::Serialize)]
    struct Message {
        message: &'static str,
    }

    /// The router of both servers: `GET /` answers JSON.
    fn router() -> Router {
        Router::new().route(
            "/",
            get(|| async {
                Json(Message {
                    message: "Hello, world!",
                })
            }),
        )
    }

    /// Weft: `weft::web::serve` on a current-thread runtime.
    fn weft_server(listener: std::net::TcpListener) {
        let rt = weft::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|err| fail(&format!("could not build the weft runtime: {err}")));
        rt.block_on(async {
            let listener = weft::net::TcpListener::from_std(listener)
                .unwrap_or_else(|err| fail(&format!("weft could not take the listener: {err}")));
            let served = weft::web::serve(listener, router())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .await;
            fail(&format!("the weft axum server stopped: {served:?}"))
        })
    }

    /// Tokio: `axum::serve`'s loop (hyper-util's auto server with
    /// `TokioExecutor`, a `TowerToHyperService` per connection), with
    /// `TokioTimer` and the same header-read timeout.
    fn tokio_server(listener: std::net::TcpListener) {
        use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
        use hyper_util::server::conn::auto::Builder;
        use hyper_util::service::TowerToHyperService;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|err| fail(&format!("could not build the tokio runtime: {err}")));
        rt.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener)
                .unwrap_or_else(|err| fail(&format!("tokio could not take the listener: {err}")));
            let router = router();
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                drop(tokio::spawn(async move {
                    let mut builder = Builder::new(TokioExecutor::new());
                    builder
                        .http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT);
                    builder.http2().timer(TokioTimer::new());
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                }));
            }
        })
    }
}

// ----- Placement ----------------------------------------------------------------

/// Where wrk runs, and a line that says where everything runs.
struct Placement {
    /// The CPU wrk is pinned to (with `taskset`), if any.
    wrk_cpu: Option<usize>,
    note: String,
}

/// Pins this thread (and so every thread it starts from now on: the
/// servers') to the second CPU this process may use, and picks the first
/// for wrk; or, with one CPU or no `taskset`, pins nothing.
fn place() -> Placement {
    let unpinned = |why: String| Placement {
        wrk_cpu: None,
        note: format!("not pinned ({why}): servers and wrk share the CPUs"),
    };
    let cpus = match allowed_cpus() {
        Ok(cpus) => cpus,
        Err(err) => return unpinned(err),
    };
    if cpus.len() < 2 {
        return unpinned(format!("only {} CPU available", cpus.len()));
    }
    if !wrk::on_path("taskset") {
        return unpinned("taskset is not on PATH".to_owned());
    }
    let (wrk_cpu, server_cpu) = (cpus[0], cpus[1]);
    if let Err(err) = pin_this_thread(server_cpu) {
        return unpinned(err);
    }
    Placement {
        wrk_cpu: Some(wrk_cpu),
        note: format!(
            "servers pinned to CPU {server_cpu}, wrk to CPU {wrk_cpu} (of {})",
            cpus.len()
        ),
    }
}

/// Raises this process's soft limit on open files to at least `needed`
/// (within the hard limit). wrk, started from here, inherits it.
fn raise_fd_limit(needed: u64) -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    limit.rlim_cur = needed.min(limit.rlim_max);
    // SAFETY: `setrlimit` reads one `rlimit` from `limit`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    if limit.rlim_cur < needed {
        return Err(format!(
            "the open-file limit is {} (hard limit), below the {needed} wanted",
            limit.rlim_cur
        ));
    }
    Ok(())
}

// ----- The probe ------------------------------------------------------------------

/// `weft-benches http-probe <server> <requests> [connections]`: starts one
/// server of this suite (`weft`, `tokio`, `smol`, `axum-weft`,
/// `axum-tokio`) on its thread, sends it `requests` keep-alive `GET /`
/// requests from a blocking client on this thread over `connections`
/// connections (1 unless given; each round writes one request on every
/// connection, then reads every response, so the server sees several
/// ready sockets per wakeup, as under wrk), and exits.
///
/// It is a deterministic probe of the server's cost per request, for
/// valgrind (no timing, no wrk): run it with N and 3N requests and take
/// the difference of the server thread's counts over 2N, e.g.
///
/// ```text
/// valgrind --tool=callgrind --separate-threads=yes weft-benches http-probe axum-weft 2000 50
/// valgrind --tool=callgrind --separate-threads=yes weft-benches http-probe axum-weft 6000 50
/// strace -f -c -o trace.txt weft-benches http-probe axum-weft 6000 50
/// ```
///
/// callgrind writes one file per thread: `-01` is this (client) thread,
/// `-02` the server's. Startup, accepting and the first requests' buffer
/// growth cancel out in the difference; what remains is the steady
/// per-request cost, the same from run to run within a few tens of
/// instructions.
pub(crate) fn probe_main(args: &[String]) -> std::process::ExitCode {
    use std::io::{Read, Write};
    use std::process::ExitCode;
    let usage = "usage: weft-benches http-probe weft|tokio|smol|axum-weft|axum-tokio REQUESTS [CONNECTIONS]";
    let server = args.first().and_then(|wanted| {
        let (servers, wanted): (&[Server], &str) = match wanted.strip_prefix("axum-") {
            Some(runtime) => (&axum_row::SERVERS, runtime),
            None => (&SERVERS, wanted),
        };
        servers.iter().copied().find(|&(name, _)| name == wanted)
    });
    let number = |i: usize, default: Option<usize>| args.get(i).map_or(default, |n| n.parse().ok()).filter(|&n| n > 0);
    let (Some((name, serve)), Some(requests), Some(conns)) = (server, number(1, None), number(2, Some(1))) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let addr = start(name, serve);
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut streams: Vec<std::net::TcpStream> = (0..conns)
        .map(|_| {
            let stream = std::net::TcpStream::connect(addr).unwrap_or_else(|err| fail(&format!("connect: {err}")));
            let _ = stream.set_nodelay(true);
            stream
        })
        .collect();
    let mut buf = vec![0_u8; 4096];
    let mut sent = 0;
    while sent < requests {
        let round = conns.min(requests - sent);
        for stream in &mut streams[..round] {
            stream
                .write_all(request)
                .unwrap_or_else(|err| fail(&format!("write: {err}")));
        }
        for stream in &mut streams[..round] {
            read_response(stream, &mut buf).unwrap_or_else(|err| fail(&format!("read: {err}")));
        }
        sent += round;
    }
    drop(streams);
    /// Reads one response with a `content-length` body.
    fn read_response(stream: &mut std::net::TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
        let mut len = 0;
        loop {
            let n = stream.read(&mut buf[len..])?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            len += n;
            let got = &buf[..len];
            let Some(head_end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&got[..head_end]).unwrap_or("");
            let body_len = head
                .lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if len >= head_end + 4 + body_len {
                return Ok(());
            }
        }
    }
    ExitCode::SUCCESS
}
