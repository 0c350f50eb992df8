//! The death notice: how a rank learns that another rank of the job died.
//!
//! MPI (Open MPI 4.1, without the fault-tolerance extensions) gives no way
//! to learn that a rank died: a receive from it, or a collective it should
//! join, simply never completes. So at [`Mpi::init`](crate::Mpi::init)
//! every rank but 0 opens a TCP connection to rank 0, and a thread of
//! Weft's (`weft-mpi-liveness`) watches the connections:
//!
//! 1. **A connection that closes without a goodbye is a death.** Rank 0
//!    sees it on the dead rank's connection and tells every other rank
//!    (`DIED r`); every rank sees rank 0's death on its own connection.
//! 2. **Every rank says goodbye before it finalizes** (`BYE`), so a rank
//!    that has finished is never taken for dead.
//! 3. **A death fails what can no longer complete**
//!    ([`Engine::peer_died`](crate::engine::Engine::peer_died)): every
//!    collective (they need every rank), receives from the dead rank, sends
//!    to it; their requests fail with [`Error::PeerDied`](crate::Error) on
//!    every surviving rank, never hang. MPI cannot cancel what it already
//!    holds, so those requests stay with MPI, buffers and all, and the
//!    process does not call `MPI_Finalize` (which would wait for the dead
//!    rank forever): it ends without it.
//!
//! Rank 0 advertises every IPv4 address it has (and the listener's port)
//! with one `MPI_Bcast`; a rank connects to the first that answers with
//! Weft's greeting, so ranks on other hosts or in other network
//! namespaces find it. Where no connection can be made (a firewall), the
//! ranks agree (`MPI_Allreduce`) to go without the notice, and a death is
//! then noticed only by `mpirun`.
//!
//! `mpirun` kills every rank when one exits abnormally unless it is told
//! otherwise (`--mca orte_abort_on_non_zero_status 0`); the notice matters
//! under that setting, and under launchers that do not.

use crate::engine::{Engine, Raw};
use crate::error::check;
use mpi::ffi;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::raw::c_int;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::loom::lock;

/// Greets a connection as Weft's (and this version's).
const MAGIC: [u8; 8] = *b"WEFTLIV1";
/// How long rank 0 waits for every rank to connect, and a rank for each
/// connection attempt.
const CONNECT: Duration = Duration::from_secs(5);
/// Bytes of the address list rank 0 broadcasts.
const ADDRESSES: usize = 1024;

const BYE: u8 = 1;
const DIED: u8 = 2;

/// The ranks known dead, and who waits to hear of the next.
#[derive(Default)]
pub(crate) struct Deaths {
    inner: Mutex<DeathList>,
}

#[derive(Default)]
struct DeathList {
    dead: Vec<i32>,
    wakers: Vec<Waker>,
}

impl Deaths {
    /// The ranks known dead so far.
    pub(crate) fn dead(&self) -> Vec<i32> {
        lock(&self.inner).dead.clone()
    }

    /// Whether `rank` is known dead (every operation with a peer asks:
    /// no copy of the list).
    pub(crate) fn is_dead(&self, rank: i32) -> bool {
        lock(&self.inner).dead.contains(&rank)
    }

    /// The `n`th death (counting from 0), when it happens.
    pub(crate) fn nth(self: &Arc<Self>, n: usize) -> NthDeath {
        NthDeath {
            deaths: self.clone(),
            n,
        }
    }

    fn poll_nth(&self, n: usize, waker: &Waker) -> Option<i32> {
        let mut inner = lock(&self.inner);
        match inner.dead.get(n) {
            Some(&rank) => Some(rank),
            None => {
                if !inner.wakers.iter().any(|w| w.will_wake(waker)) {
                    inner.wakers.push(waker.clone());
                }
                None
            }
        }
    }

    fn record(&self, rank: i32) -> bool {
        let wakers = {
            let mut inner = lock(&self.inner);
            if inner.dead.contains(&rank) {
                return false;
            }
            inner.dead.push(rank);
            std::mem::take(&mut inner.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
        true
    }
}

/// The future of [`Deaths::nth`]: the rank, once it has died.
pub(crate) struct NthDeath {
    deaths: Arc<Deaths>,
    n: usize,
}

impl std::future::Future for NthDeath {
    type Output = i32;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<i32> {
        match self.deaths.poll_nth(self.n, cx.waker()) {
            Some(rank) => std::task::Poll::Ready(rank),
            None => std::task::Poll::Pending,
        }
    }
}

/// The watcher thread and this rank's connections (see the module docs).
pub(crate) struct Liveness {
    /// Rank 0: one per other rank; others: the one to rank 0.
    peers: Vec<(i32, TcpStream)>,
    /// Wakes the watcher to stop.
    stop: TcpStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Liveness {
    /// Connects the ranks (collective over `world`; blocking MPI calls:
    /// call under the MPI lock, from `init`) and starts the watcher, which
    /// tells `engine` and `deaths` of every death. `None` when the ranks
    /// could not all connect (they agree on it) or the job is one rank.
    pub(crate) fn start(
        world: Raw<ffi::MPI_Comm>,
        rank: i32,
        size: i32,
        engine: Arc<Engine>,
        deaths: Arc<Deaths>,
    ) -> Option<Liveness> {
        if size < 2 {
            return None;
        }
        let listener = (rank == 0)
            .then(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).ok())
            .flatten();
        let mut advert = [0u8; ADDRESSES];
        if let Some(listener) = &listener {
            let text = advertise(listener);
            let n = text.len().min(ADDRESSES);
            advert[..n].copy_from_slice(&text.as_bytes()[..n]);
        }
        // SAFETY: the caller holds the MPI lock during init; every rank
        // calls this; the buffer holds `ADDRESSES` bytes.
        let rc = unsafe {
            ffi::MPI_Bcast(
                advert.as_mut_ptr().cast(),
                ADDRESSES as c_int,
                ffi::RSMPI_UINT8_T,
                0,
                world.0,
            )
        };
        check(rc).ok()?;
        let peers = if rank == 0 {
            listener.and_then(|l| accept_all(&l, size))
        } else {
            connect(&advert, rank).map(|s| vec![(0, s)])
        };
        // Every rank must agree that every connection is up.
        let mut ok: c_int = c_int::from(peers.is_some());
        let mut all: c_int = 0;
        // SAFETY: as above; one int each way.
        let rc = unsafe {
            ffi::MPI_Allreduce(
                (&raw mut ok).cast(),
                (&raw mut all).cast(),
                1,
                ffi::RSMPI_INT32_T,
                ffi::RSMPI_MIN,
                world.0,
            )
        };
        if check(rc).is_err() || all == 0 {
            return None;
        }
        let peers = peers?;
        let (stop, stop_rx) = socket_pair()?;
        let watched: Vec<(i32, TcpStream)> = peers
            .iter()
            .map(|(r, s)| s.try_clone().map(|s| (*r, s)))
            .collect::<Result<_, _>>()
            .ok()?;
        let thread = std::thread::Builder::new()
            .name("weft-mpi-liveness".into())
            .spawn(move || watch(rank, watched, stop_rx, &engine, &deaths))
            .ok()?;
        Some(Liveness {
            peers,
            stop,
            thread: Some(thread),
        })
    }

    /// Rule 2: says goodbye on every connection and stops the watcher.
    pub(crate) fn goodbye(mut self) {
        for (_, stream) in &mut self.peers {
            let _ = stream.write_all(&[BYE, 0, 0, 0, 0]);
        }
        let _ = self.stop.write_all(&[0]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `port;ip,ip,...`: the listener's port and every IPv4 address of this
/// host, loopback last.
fn advertise(listener: &TcpListener) -> String {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let mut ips = host_ipv4();
    ips.sort_by_key(|ip| ip.is_loopback());
    let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
    format!("{port};{}", ips.join(","))
}

/// This host's IPv4 addresses (`getifaddrs`).
fn host_ipv4() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `getifaddrs` fills `list` with a list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return vec![Ipv4Addr::LOCALHOST];
    }
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list `getifaddrs` returned.
        let entry = unsafe { &*at };
        if !entry.ifa_addr.is_null() {
            // SAFETY: `ifa_addr` points at a socket address of the family
            // it names; an `AF_INET` one is a `sockaddr_in`.
            unsafe {
                if i32::from((*entry.ifa_addr).sa_family) == libc::AF_INET {
                    let sin = &*entry.ifa_addr.cast::<libc::sockaddr_in>();
                    out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
                }
            }
        }
        at = entry.ifa_next;
    }
    // SAFETY: the list from `getifaddrs`, freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

/// Rank 0: every other rank's connection (greeted, acknowledged), by rank.
fn accept_all(listener: &TcpListener, size: i32) -> Option<Vec<(i32, TcpStream)>> {
    let deadline = Instant::now() + CONNECT;
    let mut peers: Vec<(i32, TcpStream)> = Vec::new();
    while peers.len() < size as usize - 1 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut fd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the timeout fits an int (at most CONNECT).
        if unsafe { libc::poll(&mut fd, 1, left.as_millis().max(1) as c_int) } <= 0 {
            continue;
        }
        let Ok((mut stream, _)) = listener.accept() else {
            continue;
        };
        let _ = stream.set_read_timeout(Some(CONNECT));
        let mut hello = [0u8; 12];
        if stream.read_exact(&mut hello).is_err() || hello[..8] != MAGIC {
            continue;
        }
        let rank = i32::from_le_bytes(hello[8..].try_into().expect("four bytes"));
        if !(1..size).contains(&rank) || peers.iter().any(|(r, _)| *r == rank) || stream.write_all(&MAGIC).is_err() {
            continue;
        }
        let _ = stream.set_read_timeout(None);
        let _ = stream.set_nodelay(true);
        peers.push((rank, stream));
    }
    Some(peers)
}

/// A rank: the connection to rank 0, at the first advertised address that
/// greets back.
fn connect(advert: &[u8], rank: i32) -> Option<TcpStream> {
    let end = advert.iter().position(|&b| b == 0).unwrap_or(advert.len());
    let text = std::str::from_utf8(&advert[..end]).ok()?;
    let (port, ips) = text.split_once(';')?;
    let port: u16 = port.parse().ok()?;
    for ip in ips.split(',').filter_map(|ip| ip.parse::<Ipv4Addr>().ok()) {
        let Ok(mut stream) = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), CONNECT) else {
            continue;
        };
        let _ = stream.set_read_timeout(Some(CONNECT));
        let mut hello = MAGIC.to_vec();
        hello.extend(rank.to_le_bytes());
        let mut back = [0u8; 8];
        if stream.write_all(&hello).is_ok() && stream.read_exact(&mut back).is_ok() && back == MAGIC {
            let _ = stream.set_read_timeout(None);
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
    }
    None
}

/// A connected pair of sockets on loopback (to wake the watcher).
fn socket_pair() -> Option<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    let a = TcpStream::connect(listener.local_addr().ok()?).ok()?;
    let (b, _) = listener.accept().ok()?;
    Some((a, b))
}

/// The watcher (rules 1 and 2).
fn watch(rank: i32, mut peers: Vec<(i32, TcpStream)>, mut stop: TcpStream, engine: &Engine, deaths: &Deaths) {
    loop {
        let mut fds: Vec<libc::pollfd> = peers
            .iter()
            .map(|(_, s)| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        fds.push(libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds.last().is_some_and(|f| f.revents != 0) {
            let _ = stop.read(&mut [0u8; 1]);
            return;
        }
        let ready: Vec<usize> = (0..peers.len()).filter(|&i| fds[i].revents != 0).collect();
        // Last first, so a removal leaves the indices still to visit alone.
        for &i in ready.iter().rev() {
            let peer = peers[i].0;
            let mut message = [0u8; 5];
            match peers[i].1.read_exact(&mut message) {
                Ok(()) if message[0] == BYE => {
                    peers.remove(i);
                }
                Ok(()) if message[0] == DIED => {
                    died(
                        i32::from_le_bytes(message[1..].try_into().expect("four bytes")),
                        engine,
                        deaths,
                    );
                }
                Ok(()) => {}
                Err(_) => {
                    // Rule 1: closed without a goodbye.
                    peers.remove(i);
                    died(peer, engine, deaths);
                    if rank == 0 {
                        let mut notice = vec![DIED];
                        notice.extend(peer.to_le_bytes());
                        for (_, other) in &mut peers {
                            let _ = other.write_all(&notice);
                        }
                    }
                }
            }
        }
        if peers.is_empty() {
            // Everyone said goodbye (or died); wait for our own stop.
            let _ = stop.read(&mut [0u8; 1]);
            return;
        }
    }
}

fn died(rank: i32, engine: &Engine, deaths: &Deaths) {
    if deaths.record(rank) {
        engine.peer_died(rank);
    }
}
