//! Suite `echo`: a TCP echo server on each runtime, driven over loopback by
//! the same load client (see [`crate::load`]) at 1, 10, 100 and 1000
//! connections with 100-byte and 1 KiB messages.
//!
//! Per workload and runtime it records throughput (`msgs_per_s`, the median
//! of the repetitions) and round-trip latency (`latency_ns`, p50 and p99 over
//! every round trip of every repetition).

use crate::Options;
use crate::load;
use crate::report::Report;
use crate::runtimes::{Smol, Tokio, Weft};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::time::Duration;

const SIZES: [(usize, &str); 2] = [(100, "100B"), (1024, "1KiB")];
const CONNECTIONS: [usize; 4] = [1, 10, 100, 1000];
const BUF: usize = 16 * 1024;

pub(crate) fn run(opts: &Options) -> Report {
    let mut report = Report::new("echo");
    let weft = Weft::new(opts.workers);
    let tokio = Tokio::new(opts.workers);
    let smol = Smol::new(opts.workers);
    let servers: [(&'static str, SocketAddr); 3] = [
        ("weft", weft_server(&weft)),
        ("tokio", tokio_server(&tokio)),
        ("smol", smol_server(&smol)),
    ];
    let reps = opts.reps.clamp(1, 5);
    let window = if opts.reps <= 3 {
        Duration::from_millis(300)
    } else {
        Duration::from_millis(700)
    };
    let warmup = Duration::from_millis(100);
    for (size, size_name) in SIZES {
        for conns in CONNECTIONS {
            let workload = format!("echo_{size_name}_{conns}conn");
            if opts.filter.as_deref().is_some_and(|f| !workload.contains(f)) {
                continue;
            }
            eprint!("{workload} ");
            let mut latencies: Vec<Histogram<u64>> = (0..3).map(|_| Histogram::new(3).expect("histogram")).collect();
            for _ in 0..reps {
                for (i, &(name, addr)) in servers.iter().enumerate() {
                    if opts.runtime.as_deref().is_some_and(|only| only != name) {
                        continue;
                    }
                    let load = load::run(addr, conns, size, warmup, window).unwrap_or_else(|err| {
                        panic!("the echo load against {name} failed: {err}");
                    });
                    report.record(
                        &workload,
                        name,
                        "msgs_per_s",
                        load.round_trips as f64 / load.window.as_secs_f64(),
                    );
                    latencies[i].add(&load.latency).expect("compatible histograms");
                }
            }
            for (i, &(name, _)) in servers.iter().enumerate() {
                let h = &latencies[i];
                if h.is_empty() {
                    continue;
                }
                report.record_summary(
                    &workload,
                    name,
                    "latency_ns",
                    h.value_at_quantile(0.5) as f64,
                    h.value_at_quantile(0.99) as f64,
                );
            }
            eprintln!("done");
        }
    }
    report
}

fn weft_server(rt: &Weft) -> SocketAddr {
    use weft::io::{AsyncReadExt, AsyncWriteExt};
    let listener =
        rt.0.block_on(async { weft::net::TcpListener::bind("127.0.0.1:0") })
            .expect("weft bind");
    let addr = listener.local_addr().expect("weft addr");
    drop(rt.0.spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                weft::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            drop(weft::spawn(async move {
                let mut buf = vec![0u8; BUF];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }));
    addr
}

fn tokio_server(rt: &Tokio) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener =
        rt.0.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("tokio bind");
    let addr = listener.local_addr().expect("tokio addr");
    drop(rt.0.spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            drop(tokio::spawn(async move {
                let mut buf = vec![0u8; BUF];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }));
    addr
}

fn smol_server(rt: &Smol) -> SocketAddr {
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    let listener = futures_lite::future::block_on(async_net::TcpListener::bind("127.0.0.1:0")).expect("smol bind");
    let addr = listener.local_addr().expect("smol addr");
    let ex = rt.ex.clone();
    rt.ex
        .spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    async_io::Timer::after(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                ex.spawn(async move {
                    let mut buf = vec![0u8; BUF];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
    addr
}
