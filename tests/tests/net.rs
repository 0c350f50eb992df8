//! Sockets on the reactor, on both flavours.

use futures::future::join_all;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use weft::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use weft::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use weft_tests::{Rng, each_flavor, eventually, runtime};

/// Runs `fut`, counting the polls of it that returned `Pending`: once the
/// count is above zero, `fut` has registered its waker.
async fn counting_pending<F: Future>(pending: Arc<AtomicUsize>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let polled = fut.as_mut().poll(cx);
        if polled.is_pending() {
            pending.fetch_add(1, SeqCst);
        }
        polled
    })
    .await
}

/// An echo server on a fresh loopback port; returns its address.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    weft::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(_) => {
                    weft::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            weft::spawn(async move {
                let (mut reader, mut writer) = stream.into_split();
                let _ = weft::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    addr
}

/// Raises the soft descriptor limit to at least `want` (or the hard limit).
fn ensure_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

each_flavor! {
    fn a_host_name_is_looked_up_on_the_blocking_pool(flavor) {
        // The names of the threads the runtime starts: the lookup starts
        // one of its blocking pool's (named `weft-blocking-N`).
        let lookups = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = lookups.clone();
        let rt = weft_tests::builder(flavor)
            .on_thread_start(move || seen.lock().unwrap().push(std::thread::current().name().map(str::to_owned)))
            .build()
            .unwrap();
        rt.block_on(async {
            let addr = echo_server().await;
            let mut stream = TcpStream::connect(format!("localhost:{}", addr.port())).await.unwrap();
            let blocking = |name: &Option<String>| name.as_deref().is_some_and(|n| n.contains("-blocking-"));
            assert!(lookups.lock().unwrap().iter().any(blocking), "no blocking thread ran the lookup");
            stream.write_all(b"ping").await.unwrap();
            let mut back = [0u8; 4];
            stream.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"ping");
            let found: Vec<_> = weft::net::lookup_host(("localhost", 9)).await.unwrap().collect();
            assert!(found.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        });
        // The runner the runtime gave its reactor holds the runtime: shut
        // down, it lets go (a cycle would leak it under the leak check).
        drop(rt);
    }

    fn a_thousand_clients_echo_64_kib_each(flavor) {
        ensure_fd_limit(4096);
        let rt = runtime(flavor);
        rt.block_on(async {
            let addr = echo_server().await;
            let clients = (0..1000u64).map(|c| {
                weft::spawn(async move {
                    let data = Rng::new(c).bytes(64 * 1024);
                    let stream = TcpStream::connect(addr).await?;
                    let (mut reader, mut writer) = stream.into_split();
                    let expected = data.clone();
                    let write = weft::spawn(async move {
                        writer.write_all(&data).await?;
                        writer.close().await
                    });
                    let mut echoed = Vec::with_capacity(expected.len());
                    reader.read_to_end(&mut echoed).await?;
                    write.await.unwrap()?;
                    assert!(echoed == expected, "client {c} got back different bytes");
                    io::Result::Ok(())
                })
            });
            for result in join_all(clients).await {
                result.unwrap().unwrap();
            }
        });
    }

    fn half_close_lets_the_other_direction_finish(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = weft::spawn(async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                // Reads to end of stream: the client's half-close.
                stream.read_to_end(&mut request).await.unwrap();
                stream.write_all(&request).await.unwrap();
                stream.write_all(b" (done)").await.unwrap();
            });
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(b"question").await.unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            let mut reply = String::new();
            client.read_to_string(&mut reply).await.unwrap();
            assert_eq!(reply, "question (done)");
            server.await.unwrap();
        });
    }

    fn a_reset_by_the_peer_is_an_error(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(addr).unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            // SO_LINGER with a zero timeout: close sends RST, not FIN.
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: a valid socket descriptor and a correctly sized option.
            let rc = unsafe {
                use std::os::fd::AsRawFd;
                libc::setsockopt(
                    client.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0);
            drop(client);
            let mut buf = [0u8; 16];
            let err = server.read(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        });
    }

    fn connect_to_a_closed_port_is_refused_and_connect_timeout_works(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            // A port held by a bound socket that never listens: connecting
            // is refused, and no parallel test can take the port meanwhile.
            let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            holder.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
            let port = holder.local_addr().unwrap().as_socket().unwrap();
            let err = TcpStream::connect(port).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
            // A listener whose accept queue is full: the kernel drops new
            // SYNs, so a connect can only time out. (Networks here may
            // proxy remote addresses, so an unanswered remote address is no
            // portable test.)
            let full = TcpListener::bind_with_backlog("127.0.0.1:0", 1).unwrap();
            let full_addr = full.local_addr().unwrap();
            let mut fillers = Vec::new();
            for _ in 0..2 {
                fillers.push(std::net::TcpStream::connect(full_addr).unwrap());
            }
            let start = Instant::now();
            let err = TcpStream::connect_timeout(full_addr, Duration::from_millis(100)).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            assert!(start.elapsed() >= Duration::from_millis(100));
            drop(fillers);
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let ok = TcpStream::connect_timeout(addr, Duration::from_secs(5)).await.unwrap();
            assert_eq!(ok.peer_addr().unwrap(), addr);
        });
    }

    fn stream_options_peek_vectored_and_std_round_trip(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (server, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
            client.set_nodelay(true).unwrap();
            assert!(client.nodelay().unwrap());
            let bufs = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")];
            let mut sent = 0;
            while sent < 4 {
                sent += client.write_vectored(&bufs).await.unwrap();
            }
            let mut peeked = [0u8; 4];
            let mut n = 0;
            while n < 4 {
                n = server.peek(&mut peeked).await.unwrap();
            }
            assert_eq!(&peeked, b"abcd");
            // Peeking left the data in place.
            let mut server = server;
            let mut read = [0u8; 4];
            server.read_exact(&mut read).await.unwrap();
            assert_eq!(&read, b"abcd");
            // Out to std and back.
            let std_stream = client.into_std().unwrap();
            let mut client = TcpStream::from_std(std_stream).unwrap();
            client.write_all(b"again").await.unwrap();
            let mut again = [0u8; 5];
            server.read_exact(&mut again).await.unwrap();
            assert_eq!(&again, b"again");
        });
    }

    fn owned_halves_move_to_different_tasks_and_reunite(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let addr = echo_server().await;
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut reader, mut writer) = stream.into_split();
            let writer_task = weft::spawn(async move {
                writer.write_all(b"hello").await.unwrap();
                writer
            });
            let mut buf = [0u8; 5];
            reader.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            let writer = writer_task.await.unwrap();
            let stream = reader.reunite(writer).unwrap();
            assert!(stream.peer_addr().is_ok());
        });
    }

    fn incoming_is_a_stream_of_connections(flavor) {
        use futures::StreamExt;
        let rt = runtime(flavor);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let clients: Vec<_> = (0..3).map(|_| weft::spawn(TcpStream::connect(addr))).collect();
            let accepted: Vec<_> = listener.incoming().take(3).collect().await;
            assert_eq!(accepted.len(), 3);
            assert!(accepted.iter().all(|c| c.is_ok()));
            for c in clients {
                c.await.unwrap().unwrap();
            }
        });
    }

    fn udp_send_to_recv_from_and_connected(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b_addr = b.local_addr().unwrap();
            for i in 0..100u8 {
                a.send_to(&[i; 32], b_addr).await.unwrap();
                let mut buf = [0u8; 64];
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                assert_eq!((n, from, buf[0]), (32, a.local_addr().unwrap(), i));
            }
            a.connect(b_addr).unwrap();
            b.connect(a.local_addr().unwrap()).unwrap();
            a.send(b"connected").await.unwrap();
            let mut buf = [0u8; 16];
            let n = b.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"connected");
            // A datagram larger than the buffer is truncated, not an error.
            a.send(&[7u8; 100]).await.unwrap();
            let n = b.recv(&mut buf).await.unwrap();
            assert_eq!(n, 16);
        });
    }

    fn unix_stream_listener_and_datagram(flavor) {
        let rt = runtime(flavor);
        let dir = std::env::temp_dir().join(format!("weft-unix-{}-{flavor:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stream.sock");
        let _ = std::fs::remove_file(&path);
        rt.block_on(async {
            let listener = UnixListener::bind(&path).unwrap();
            let server = weft::spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                let mut lines = BufReader::new(&stream).lines();
                use futures::StreamExt;
                let mut got = Vec::new();
                while let Some(line) = lines.next().await {
                    got.push(line.unwrap());
                }
                got
            });
            let mut client = UnixStream::connect(&path).await.unwrap();
            client.write_all(b"one\ntwo\r\nthree").await.unwrap();
            client.close().await.unwrap();
            assert_eq!(server.await.unwrap(), vec!["one", "two", "three"]);

            let (a, mut b) = UnixStream::pair().unwrap();
            (&a).write_all(b"pair").await.unwrap();
            let mut buf = [0u8; 4];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pair");

            let (x, y) = UnixDatagram::pair().unwrap();
            x.send(b"dgram").await.unwrap();
            let mut buf = [0u8; 8];
            let n = y.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"dgram");
            let bound = dir.join("dgram.sock");
            let _ = std::fs::remove_file(&bound);
            let server = UnixDatagram::bind(&bound).unwrap();
            let client = UnixDatagram::unbound().unwrap();
            client.send_to(b"to path", &bound).await.unwrap();
            let (n, _) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"to path");
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn sockets_fail_cleanly_after_the_runtime_is_gone(flavor) {
        let rt = runtime(flavor);
        let (stream, listener) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            (stream, listener)
        });
        drop(rt);
        let mut stream = stream;
        // No runtime needed: the operation fails at once.
        let err = futures::executor::block_on(async { stream.read(&mut [0u8; 1]).await.unwrap_err() });
        assert!(err.to_string().contains("shut down"), "{err}");
        drop(listener);
    }
}

#[test]
fn creating_a_socket_outside_a_runtime_is_an_error_not_a_panic() {
    let err = TcpListener::bind("127.0.0.1:0").unwrap_err();
    assert!(err.to_string().contains("no Weft reactor"), "{err}");
}

#[test]
fn a_worker_blocked_for_a_second_does_not_stall_io_on_the_others() {
    // The echo traffic must keep flowing while one worker is stuck in a
    // blocking call for a second (tokio#4730).
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let addr = rt.block_on(echo_server());
    // Warm up: the server is answering.
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.set_nodelay(true).unwrap();
    let round_trip = |client: &mut std::net::TcpStream| {
        use std::io::{Read, Write};
        client.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        client.read_exact(&mut b).unwrap();
    };
    round_trip(&mut client);
    // Block one worker for a second.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let blocker = rt.spawn(async move {
        started_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(1));
    });
    started_rx.recv().unwrap();
    let start = Instant::now();
    let mut trips = 0;
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_millis(800) {
        let t = Instant::now();
        round_trip(&mut client);
        worst = worst.max(t.elapsed());
        trips += 1;
    }
    assert!(!blocker.is_finished(), "the blocking task still holds its worker");
    assert!(trips >= 50, "only {trips} round trips while a worker was blocked");
    assert!(worst < Duration::from_millis(300), "a round trip took {worst:?}");
    rt.block_on(blocker).unwrap();
}

// ----- found in review ---------------------------------------------------------

#[test]
fn short_vectored_transfers_do_not_lose_readiness() {
    // `readv`/`writev` take at most IOV_MAX buffers, so a short vectored
    // transfer does not mean the socket was drained or filled.
    let rt = runtime(weft::Flavor::MultiThread);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let chunks = vec![[7u8; 10]; 2000];
        let slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
        let mut sent = client.write_vectored(&slices).await.unwrap();
        // The next write must not wait for an edge that never comes.
        sent += weft::time::timeout(Duration::from_secs(3), client.write(b"!"))
            .await
            .unwrap()
            .unwrap();
        let mut bufs = vec![[0u8; 10]; 2000];
        let received = {
            let mut slices: Vec<io::IoSliceMut<'_>> = bufs.iter_mut().map(|b| io::IoSliceMut::new(b)).collect();
            std::future::poll_fn(|cx| {
                futures::AsyncRead::poll_read_vectored(std::pin::Pin::new(&mut server), cx, &mut slices)
            })
            .await
            .unwrap()
        };
        let mut rest = vec![0u8; sent - received];
        weft::time::timeout(Duration::from_secs(3), server.read_exact(&mut rest))
            .await
            .unwrap()
            .unwrap();
    });
}

#[test]
fn try_recv_does_not_steal_a_waiting_tasks_waker() {
    let rt = runtime(weft::Flavor::MultiThread);
    rt.block_on(async {
        let socket = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = socket.local_addr().unwrap();
        let waiter = socket.clone();
        let parked = Arc::new(AtomicUsize::new(0));
        let task = weft::spawn(counting_pending(parked.clone(), async move {
            let mut buf = [0u8; 8];
            waiter.recv_from(&mut buf).await.unwrap().0
        }));
        // The waiting task's waker is registered once its receive returned
        // Pending.
        eventually("the receiver to wait", || parked.load(SeqCst) > 0).await;
        let mut buf = [0u8; 8];
        assert_eq!(
            socket.try_recv_from(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"ping", addr).await.unwrap();
        let n = weft::time::timeout(Duration::from_secs(3), task)
            .await
            .expect("the waiting task was woken");
        assert_eq!(n.unwrap(), 4);
    });
}

#[test]
fn two_tasks_receiving_on_one_socket_are_both_served() {
    let rt = runtime(weft::Flavor::MultiThread);
    rt.block_on(async {
        let socket = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = socket.local_addr().unwrap();
        let parked: Vec<_> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let receivers: Vec<_> = parked
            .iter()
            .map(|parked| {
                let socket = socket.clone();
                weft::spawn(counting_pending(parked.clone(), async move {
                    let mut buf = [0u8; 8];
                    socket.recv_from(&mut buf).await.unwrap().0
                }))
            })
            .collect();
        // Both wait (each receive returned Pending) before anything is sent.
        eventually("both receivers to wait", || parked.iter().all(|p| p.load(SeqCst) > 0)).await;
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"one", addr).await.unwrap();
        // One of them takes it; the other must still be waiting with a
        // registered waker, not have lost it to the first.
        eventually("one receiver to get the first datagram", || {
            receivers.iter().filter(|r| r.is_finished()).count() == 1
        })
        .await;
        sender.send_to(b"two", addr).await.unwrap();
        for r in receivers {
            weft::time::timeout(Duration::from_secs(3), r)
                .await
                .expect("both receivers get a datagram")
                .unwrap();
        }
    });
}

#[test]
fn an_accepted_connection_joins_the_listeners_reactor() {
    // Accepting on a thread with no current reactor still registers the
    // connection with the listener's.
    let rt = runtime(weft::Flavor::MultiThread);
    let (listener, addr) = rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    });
    let client = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"hi").unwrap();
        let mut b = [0u8; 2];
        c.read_exact(&mut b).unwrap();
        b
    });
    let accepted = std::thread::spawn(move || futures::executor::block_on(listener.accept()))
        .join()
        .unwrap();
    let (mut stream, _) = accepted.expect("accepted without a current reactor");
    rt.block_on(async move {
        let mut b = [0u8; 2];
        stream.read_exact(&mut b).await.unwrap();
        stream.write_all(&b).await.unwrap();
    });
    assert_eq!(&client.join().unwrap(), b"hi");
}

#[test]
fn racing_a_read_against_a_timeout_in_a_loop_keeps_no_waker_per_round() {
    // Found in review: every distinct waker that polled a socket stayed
    // with it until the next event, and `race` gives each child a fresh
    // waker, so this loop on an idle connection grew without bound (and
    // each poll scanned the list).
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Outer(Waker);
    impl Wake for Outer {
        fn wake(self: Arc<Self>) {
            self.0.wake_by_ref();
        }
    }
    let rt = runtime(weft::Flavor::MultiThread);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let outer = std::future::poll_fn(|cx| Poll::Ready(Arc::new(Outer(cx.waker().clone())))).await;
        let waker = Waker::from(outer.clone());
        let mut buf = [0u8; 16];
        for round in 0..10_000 {
            let raced = weft::future::race2(server.read(&mut buf), weft::time::sleep(Duration::ZERO));
            let mut raced = std::pin::pin!(raced);
            // Poll it with a waker we can count, until the timeout wins.
            let won = std::future::poll_fn(|_| raced.as_mut().poll(&mut Context::from_waker(&waker))).await;
            assert!(
                matches!(won, weft::future::Either::Right(())),
                "round {round}: the idle socket delivered data"
            );
        }
        // What the reactor still holds of the 10,000 rounds: at most the
        // last read's waker (the poll API's one slot).
        let retained = Arc::strong_count(&outer) - 2;
        assert!(retained <= 1, "{retained} wakers of abandoned reads are still alive");
    });
}
