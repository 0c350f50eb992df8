//! Bad input against `weft::web::serve` (an axum router, no Tokio
//! runtime): a malformed request line, a header block that never ends, a
//! silent client, a header block too large, a body over the limit, a
//! client that vanishes mid-response, and 1,000 idle keep-alive
//! connections. Each gets the right status or is closed by the right
//! timeout, and a well-behaved client on another connection is served
//! throughout.

mod web_common;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use http::StatusCode;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use web_common::{Client, NOT_A_HANG, assert_no_tokio, raw_exchange, read_until_closed, within};
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::TcpStream;
use weft_tests::{each_flavor, runtime};

/// The header-read timeout of the servers here.
const HEADER_READ_TIMEOUT: Duration = Duration::from_millis(500);
/// The body limit of `/upload`.
const BODY_LIMIT: usize = 1024;

/// Counts `/stream` bodies dropped by the server.
#[derive(Clone, Default)]
struct Dropped(Arc<AtomicUsize>);

struct OnDrop(Dropped);

impl Drop for OnDrop {
    fn drop(&mut self) {
        (self.0).0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A server on a fresh port with the given idle timeout.
fn start(idle_timeout: Option<Duration>, header_read_timeout: Duration) -> (SocketAddr, Dropped) {
    let dropped = Dropped::default();
    let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = weft::web::serve(listener, router(&dropped))
        .header_read_timeout(header_read_timeout)
        .idle_timeout(idle_timeout);
    weft::spawn(server.into_future());
    (addr, dropped)
}

/// `/` answers `ok`, `/upload` takes at most [`BODY_LIMIT`] bytes,
/// `/stream` streams until dropped (counted in `dropped`).
fn router(dropped: &Dropped) -> Router {
    let streams = dropped.clone();
    Router::new()
        .route(
            "/",
            get(|| async {
                assert_no_tokio();
                "ok"
            }),
        )
        .route(
            "/upload",
            post(|body: Bytes| async move {
                assert_no_tokio();
                format!("{} bytes", body.len())
            }),
        )
        .route(
            "/stream",
            get(move || async move {
                assert_no_tokio();
                // 16 KiB chunks, forever, until the server drops the body.
                let guard = Arc::new(OnDrop(streams.clone()));
                let chunks = futures::stream::unfold(guard, |guard| async move {
                    weft::task::yield_now().await;
                    Some((Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 16 * 1024])), guard))
                });
                Body::from_stream(chunks)
            }),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// A keep-alive client that asks every 50 ms while `work` runs: the
/// server answers it throughout.
async fn while_a_good_client_is_served<F: std::future::Future>(addr: SocketAddr, work: F) -> F::Output {
    let mut good = Client::connect(addr, false).await;
    let stop = Arc::new(weft_sync::Event::new());
    let asking = {
        let stop = stop.clone();
        weft::spawn(async move {
            let mut answers = 0;
            while !stop.is_set() {
                assert_eq!(good.get("/").await, (StatusCode::OK, "ok".to_owned()));
                answers += 1;
                weft::time::sleep(Duration::from_millis(50)).await;
            }
            answers
        })
    };
    let output = work.await;
    stop.set();
    let answers = within("the good client", asking).await.unwrap();
    assert!(answers >= 1, "the good client was never answered");
    output
}

each_flavor! {
    fn malformed_requests_get_400_and_leave_others_alone(flavor) {
        runtime(flavor).block_on(async {
            let (addr, _) = start(None, HEADER_READ_TIMEOUT);
            while_a_good_client_is_served(addr, async {
                for garbage in [
                    &b"GARBAGE\r\n\r\n"[..],
                    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
                    b"\x00\x01\x02\x03 / HTTP/1.1\r\n\r\n",
                ] {
                    let answer = raw_exchange(addr, garbage).await;
                    assert!(answer.starts_with("HTTP/1.1 400"), "{garbage:?} got {answer:?}");
                }
            })
            .await;
        });
    }

    fn a_header_block_that_never_ends_is_closed_by_the_header_read_timeout(flavor) {
        runtime(flavor).block_on(async {
            let (addr, _) = start(None, HEADER_READ_TIMEOUT);
            while_a_good_client_is_served(addr, async {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let started = Instant::now();
                stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
                // Trickle a header line every 50 ms, until the server
                // closes the connection.
                let closed = within("the header-read timeout", async {
                    loop {
                        weft::time::sleep(Duration::from_millis(50)).await;
                        if stream.write_all(b"X-Trickle: a\r\n").await.is_err() {
                            break;
                        }
                        let mut buf = [0u8; 256];
                        let peeked = weft::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await;
                        match peeked {
                            Ok(Ok(0)) | Ok(Err(_)) => break,
                            Ok(Ok(n)) => {
                                // hyper may answer 408 before closing.
                                let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                                assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
                            }
                            Err(_) => {}
                        }
                    }
                    started.elapsed()
                })
                .await;
                assert!(closed >= HEADER_READ_TIMEOUT, "closed after {closed:?}");
            })
            .await;
        });
    }

    fn a_silent_client_or_half_a_preface_is_closed_by_the_header_read_timeout(flavor) {
        runtime(flavor).block_on(async {
            let (addr, _) = start(None, HEADER_READ_TIMEOUT);
            while_a_good_client_is_served(addr, async {
                for opening in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
                    let started = Instant::now();
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    stream.write_all(opening).await.unwrap();
                    let answer = read_until_closed(&mut stream).await;
                    assert_eq!(answer, "", "for {opening:?}");
                    assert!(started.elapsed() >= HEADER_READ_TIMEOUT, "closed after {:?}", started.elapsed());
                }
            })
            .await;
        });
    }

    fn a_header_block_too_large_gets_431(flavor) {
        runtime(flavor).block_on(async {
            let (addr, _) = start(None, HEADER_READ_TIMEOUT);
            while_a_good_client_is_served(addr, async {
                let mut request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
                request.extend(std::iter::repeat_n(b'a', 1 << 20));
                let mut stream = TcpStream::connect(addr).await.unwrap();
                // The server may close before taking it all.
                let _ = stream.write_all(&request).await;
                let answer = read_until_closed(&mut stream).await;
                assert!(answer.starts_with("HTTP/1.1 431"), "got {answer:?}");
            })
            .await;
        });
    }

    fn a_body_over_the_limit_gets_413(flavor) {
        runtime(flavor).block_on(async {
            let (addr, _) = start(None, HEADER_READ_TIMEOUT);
            while_a_good_client_is_served(addr, async {
                let mut client = Client::connect(addr, false).await;
                let within_limit = web_common::post("/upload", "application/octet-stream", vec![0u8; BODY_LIMIT]);
                assert_eq!(client.send(within_limit).await.unwrap().status(), StatusCode::OK);
                let over = web_common::post("/upload", "application/octet-stream", vec![0u8; BODY_LIMIT + 1]);
                assert_eq!(client.send(over).await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
                // Chunked, so the length is learnt only by reading.
                let mut chunked = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                chunked.extend(format!("{:x}\r\n", 4 * BODY_LIMIT).as_bytes());
                chunked.extend(vec![b'y'; 4 * BODY_LIMIT]);
                chunked.extend(b"\r\n0\r\n\r\n");
                let answer = raw_exchange_keep_alive(addr, &chunked).await;
                assert!(answer.starts_with("HTTP/1.1 413"), "got {answer:?}");
            })
            .await;
        });
    }

    fn a_client_that_vanishes_mid_response_ends_only_its_connection(flavor) {
        runtime(flavor).block_on(async {
            let (addr, dropped) = start(None, HEADER_READ_TIMEOUT);
            while_a_good_client_is_served(addr, async {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
                let mut got = 0;
                let mut buf = [0u8; 16 * 1024];
                while got < 256 * 1024 {
                    let n = stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the stream ended early");
                    got += n;
                }
                drop(stream);
                // The server notices, stops, and drops the body.
                within("the server to drop the body", async {
                    while dropped.0.load(Ordering::SeqCst) == 0 {
                        weft::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await;
            })
            .await;
        });
    }

    fn dropping_the_server_closes_the_connections_its_drain_waits_for(flavor) {
        runtime(flavor).block_on(async {
            let dropped = Dropped::default();
            let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let streaming = Arc::new(weft_sync::Event::new());
            // A client in the middle of a response that never ends: a
            // graceful drain would wait for it forever.
            let client = {
                let streaming = streaming.clone();
                weft::spawn(async move {
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    stream.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
                    let mut buf = [0u8; 16 * 1024];
                    assert!(stream.read(&mut buf).await.unwrap() > 0);
                    streaming.set();
                    read_until_closed(&mut stream).await;
                })
            };
            let server = weft::web::serve(listener, router(&dropped)).with_graceful_shutdown(async move {
                streaming.wait().await;
            });
            // The stop comes at once; the drain is given 500 ms, then the
            // server's future is dropped.
            let drained = weft::time::timeout(Duration::from_millis(500), server).await;
            assert!(drained.is_err(), "the drain finished although a response never ends");
            within("the client to see its connection closed", client).await.unwrap();
            assert_eq!(dropped.0.load(Ordering::SeqCst), 1, "the endless body was dropped");
        });
    }

    fn a_thousand_idle_keep_alive_connections_are_closed_after_the_idle_timeout(flavor) {
        runtime(flavor).block_on(async {
            const CONNECTIONS: usize = 1000;
            const IDLE_TIMEOUT: Duration = Duration::from_millis(500);
            if let Err(why) = raise_fd_limit(3 * CONNECTIONS as u64) {
                println!("skipped: {why}");
                return;
            }
            // A header-read timeout far beyond the idle timeout, so that
            // the idle timeout is what closes them.
            let (addr, _) = start(Some(IDLE_TIMEOUT), NOT_A_HANG * 3);
            let started = Instant::now();
            let idle: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    weft::spawn(async move {
                        let mut stream = TcpStream::connect(addr).await.unwrap();
                        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
                        let answer = read_until_closed(&mut stream).await;
                        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer:?}");
                        Instant::now()
                    })
                })
                .collect();
            // While they idle, the server still answers; an HTTP/2
            // connection left idle is closed too.
            weft::time::sleep(IDLE_TIMEOUT / 5).await;
            let mut fresh = Client::connect(addr, false).await;
            assert_eq!(fresh.get("/").await.0, StatusCode::OK);
            let mut h2 = Client::connect(addr, true).await;
            assert_eq!(h2.get("/").await.0, StatusCode::OK);
            for connection in idle {
                let closed_at = within("an idle connection to close", connection).await.unwrap();
                assert!(closed_at - started >= IDLE_TIMEOUT);
            }
            // Watched without a request (which would make it busy).
            within("the idle HTTP/2 connection to close", async {
                while !h2.is_closed() {
                    weft::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
        });
    }
}

/// Like `raw_exchange`, but stops reading at the end of the first
/// response's head (the server may keep the connection).
async fn raw_exchange_keep_alive(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    within("a response", async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Raises the soft limit on open files to `needed`, within the hard limit.
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
    if limit.rlim_max < needed {
        return Err(format!(
            "the open-file hard limit is {}, below {needed}",
            limit.rlim_max
        ));
    }
    limit.rlim_cur = needed;
    // SAFETY: `setrlimit` reads one `rlimit` from `limit`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
