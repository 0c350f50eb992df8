//! The load client of the `echo` suite: one thread, one `mio::Poll`, many
//! connections, each in a closed loop (send a message, wait for all of it to
//! come back, record the round trip, send the next). It runs outside every
//! runtime under test, and is the same client for all of them.

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What one run measured.
pub(crate) struct Load {
    /// Round trips completed in the measured window.
    pub(crate) round_trips: u64,
    /// Round trips completed in the whole run, warm-up included.
    pub(crate) total_round_trips: u64,
    /// The window's length.
    pub(crate) window: Duration,
    /// Round-trip latencies in nanoseconds.
    pub(crate) latency: Histogram<u64>,
}

struct Conn {
    stream: TcpStream,
    /// Bytes of the current echo still to arrive.
    pending: usize,
    sent_at: Instant,
}

/// Runs `conns` connections against `addr` for `warmup + window`, sending
/// `size`-byte messages; counts and times the round trips of the window.
pub(crate) fn run(addr: SocketAddr, conns: usize, size: usize, warmup: Duration, window: Duration) -> io::Result<Load> {
    let mut poll = Poll::new()?;
    let message = vec![0xA5u8; size];
    let mut buf = vec![0u8; 64 * 1024];
    let mut connections = Vec::with_capacity(conns);
    for i in 0..conns {
        let std = std::net::TcpStream::connect(addr)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std);
        poll.registry().register(&mut stream, Token(i), Interest::READABLE)?;
        connections.push(Conn {
            stream,
            pending: 0,
            sent_at: Instant::now(),
        });
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds");
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let mut round_trips = 0u64;
    let mut total_round_trips = 0u64;
    for conn in &mut connections {
        send(conn, &message)?;
    }
    let mut events = Events::with_capacity(1024);
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(10)))?;
        for event in &events {
            let conn = &mut connections[event.token().0];
            loop {
                match conn.stream.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed a connection",
                        ));
                    }
                    Ok(n) => {
                        conn.pending = conn.pending.saturating_sub(n);
                        if conn.pending == 0 {
                            total_round_trips += 1;
                            let now = Instant::now();
                            if now >= measure_from && now < end {
                                round_trips += 1;
                                let _ = latency.record(
                                    u64::try_from(now.duration_since(conn.sent_at).as_nanos()).unwrap_or(u64::MAX),
                                );
                            }
                            send(conn, &message)?;
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(Load {
        round_trips,
        total_round_trips,
        window,
        latency,
    })
}

/// Sends one message (it fits in the socket buffer: one is in flight per
/// connection).
fn send(conn: &mut Conn, message: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < message.len() {
        match conn.stream.write(&message[written..]) {
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    conn.pending = message.len();
    conn.sent_at = Instant::now();
    Ok(())
}
