//! Doorbells: how a rank wakes a peer's loop that sleeps between polls.
//!
//! MPI gives no file descriptor to wait on, so a rank whose receive waits
//! polls for the message: every [`MpiBuilder::max_sleep`] once the spin
//! window is over. Each poll is a wakeup (a timer, `epoll_wait`, two
//! context switches, one `MPI_Improbe`): about 15 µs of CPU on a virtual
//! machine, so polling often enough to answer within tens of microseconds
//! would cost a sixth of a core or more while nothing comes. Instead, each
//! rank has a doorbell, and a sender rings the destination's as it sends:
//!
//! 1. **The bell.** A Unix datagram socket in Linux's abstract namespace,
//!    named after the job (a number rank 0 draws at init and broadcasts)
//!    and the world rank. It is the engine's
//!    [doorbell](weft_io::source::Source::doorbell): the reactor watches it,
//!    and a datagram makes the loop drain it, restart the engine's spin
//!    window and poll MPI in that same turn.
//! 2. **Ringing.** A send (`isend`, `send`, `sendrecv`, the pool's) rings
//!    the destination, unless this rank rang it less than the spin window
//!    ago ([`Doorbell::ring`]). A peer not rung for at least 1 ms (the
//!    longest a spin window stretches: it likely sleeps) is rung right
//!    before the send is posted ([`Doorbell::ring_before_send`]); a sleeping
//!    peer takes tens of microseconds to wake, and posting a send over TCP
//!    is a `writev` of about as long (the loopback delivers the bytes
//!    inside it), so the two overlap instead of adding up, and the rung
//!    peer polls without sleep for its spin window, which the message
//!    reaches well before it closes. Any other peer is rung after the
//!    post: it is likely still polling, and a ring before would only delay
//!    the send by the `sendto`. A peer rung less than a window ago
//!    opened its own window (the same setting, on every rank) when the ring arrived,
//!    so it is still polling without sleep and sees this send too. A busy
//!    exchange rings a peer once per window, not once per message; one
//!    after an idle gap always rings. A ring is one nonblocking `sendto`
//!    (a few microseconds). A collective posted after this rank was idle
//!    rings every other rank on this host (a collective completes only
//!    once every rank's loop has polled it); its later rounds ring
//!    nothing (MPI holds their requests, and idle polls come at most
//!    `REQUESTS_MAX_SLEEP` apart then).
//! 3. **A hint, never a duty.** A ring that cannot be delivered (the peer
//!    in another network namespace, its socket full) is dropped: the
//!    peer's idle polls still find the message, within `max_sleep`. So
//!    correctness never depends on a ring; latency after idle gaps does,
//!    between ranks of one host. Ranks on other hosts (as MPI's shared
//!    memory split says) are never rung: their bells are out of reach,
//!    and a ring would be a failing system call (a few microseconds) on
//!    every send to them after a gap, and per remote rank on every
//!    collective after one.
//! 4. **Each peer its own sender.** A datagram waiting in a peer's bell is
//!    charged to the socket that sent it until the peer drains it. With
//!    one sending socket, a peer that stops draining (its loop busy with
//!    a long computation, not yet watching its bell, or gone with its bell
//!    still bound) would within a few hundred rings leave this rank unable
//!    to ring anyone: every `sendto` fails with `EAGAIN` once the send
//!    buffer is full, which on Linux's 212 KiB default comes before the
//!    peer's queue is (where `net.unix.max_dgram_qlen` is 512, systemd's
//!    setting). So the first [`PEER_SENDERS`] peers rung each get a socket
//!    of their own to be rung from (unbound, made at the first ring): a
//!    peer whose bell is full then blocks only rings to itself, which it
//!    does not need (rings wait in its bell). Further peers share the
//!    bell's socket, as do all peers where no socket could be made.
//! 5. **Strangers are drained, not heeded.** An abstract socket has no
//!    permissions and its name shows in `/proc/net/unix`, so any process
//!    in the network namespace can ring a bell; one ringing every few
//!    hundred microseconds kept a waiting rank spinning (measured: 2.7 s
//!    of CPU in 4 s). The bell asks for each ring's sender credentials
//!    (`SO_PASSCRED`), and a drain that read only rings from other users
//!    leaves the spin window as it was. (A process of the job's own user
//!    could still ring; it could as well signal or trace the rank.)
//! 6. **A ringer is awake.** A ring carries its ringer's world rank and
//!    the host's monotonic clock when it rang (12 bytes). A peer rings
//!    because it is posting a send, and a post opens the poster's own spin
//!    window, so a trusted ring read from the bell counts as if this rank
//!    had rung the ringer a quarter window before the ring was sent (the
//!    post may have come a little before the ring: rule 2). The reply to a
//!    request that arrived after an idle gap then rings nobody before it
//!    is posted (measured: a ring to a polling peer is a `sendto` of
//!    3–6 µs, on the critical path of every such exchange); posted later
//!    than three quarters of a window after the ring, it is rung after the
//!    post, as rule 2 says for a peer rung recently. The ring's own time,
//!    not the time it was read, counts, so a drain that comes late (its
//!    loop busy, its thread descheduled) marks nobody awake past their
//!    window. A ring older than a window, from the future (another time
//!    namespace), or that names no rank of the job marks nobody. The
//!    window is the reader's setting: rule 2 already takes it to be the
//!    same on every rank (`MpiBuilder::spin_window`). A process of the
//!    job's user (or, where credentials are missing, any process) can
//!    forge rings naming a rank, and so keep this rank from ringing it;
//!    as with any lost ring, that peer's idle polls still find the
//!    message, within its `max_sleep` (rule 3).
//!
//! [`MpiBuilder::max_sleep`]: crate::MpiBuilder::max_sleep

use crate::loom::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// `last_rung` of a rank on another host (rule 3): never rung.
const REMOTE: u64 = u64::MAX;

/// The most rings one drain reads: any local process may ring a bell
/// (abstract sockets have no permissions), and one that rings faster than
/// the loop reads must not hold the loop's thread in the drain. Rings left
/// behind are read at the next, which the next ring's arrival brings (the
/// poller reports each arrival); above `net.unix.max_dgram_qlen`'s usual
/// values (10, 512), so a bell nobody floods is always emptied.
pub(crate) const DRAIN_AT_MOST: usize = 1024;

/// How many peers get a socket of their own to be rung from (rule 4): a
/// descriptor each, so bounded, well below the usual limit of 1024.
pub(crate) const PEER_SENDERS: usize = 64;

/// This rank's doorbell, and what it needs to ring its peers'.
pub(crate) struct Doorbell {
    #[cfg(target_os = "linux")]
    socket: std::os::unix::net::UnixDatagram,
    /// The job's number (the same on every rank), in every bell's name.
    #[cfg(target_os = "linux")]
    job: u64,
    /// This rank's world rank, the payload of its rings (rule 6).
    #[cfg(target_os = "linux")]
    rank: i32,
    /// The user whose rings count (rule 5): this process's effective one;
    /// `None` if the bell gets no credentials (then every ring counts).
    #[cfg(target_os = "linux")]
    trusted: Option<libc::uid_t>,
    /// Each world rank's own sending socket (rule 4), made at its first
    /// ring: `None` past [`PEER_SENDERS`] or where none could be made.
    #[cfg(target_os = "linux")]
    senders: Vec<std::sync::OnceLock<Option<Sender>>>,
    /// Sending sockets claimed so far (may pass [`PEER_SENDERS`] by the
    /// peers refused one).
    #[cfg(target_os = "linux")]
    claimed: AtomicUsize,
    /// When this rank last rang each world rank, in the unit of
    /// `engine/clock.rs` (0: never; [`REMOTE`]: on another host, never
    /// rung).
    last_rung: Vec<AtomicU64>,
}

impl Doorbell {
    /// Now, in the unit of `engine/clock.rs` (never 0, which means "never
    /// rung"): the operation's one reading.
    fn now(&self) -> u64 {
        crate::engine::clock::now()
    }

    /// This rank's bell in job `job`, for a world of `size` whose ranks on
    /// this host are `local` (`None`: unknown, ring them all); `None`
    /// where the platform has none (then peers are found by idle polls
    /// alone).
    pub(crate) fn open(job: u64, rank: i32, size: i32, local: Option<&[i32]>) -> Option<Doorbell> {
        #[cfg(target_os = "linux")]
        {
            let socket = std::os::unix::net::UnixDatagram::bind_addr(&address(job, rank).ok()?).ok()?;
            socket.set_nonblocking(true).ok()?;
            let trusted = pass_credentials(&socket).then(|| {
                // SAFETY: geteuid has no preconditions and cannot fail.
                unsafe { libc::geteuid() }
            });
            let last_rung: Vec<AtomicU64> = (0..size.max(0))
                .map(|_| AtomicU64::new(if local.is_some() { REMOTE } else { 0 }))
                .collect();
            for &r in local.unwrap_or_default() {
                if let Some(last) = usize::try_from(r).ok().and_then(|r| last_rung.get(r)) {
                    last.store(0, Relaxed);
                }
            }
            Some(Doorbell {
                socket,
                job,
                rank,
                trusted,
                senders: (0..size.max(0)).map(|_| std::sync::OnceLock::new()).collect(),
                claimed: AtomicUsize::new(0),
                last_rung,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (job, rank, size, local);
            None
        }
    }

    /// The bell's descriptor, for the reactor to watch.
    #[cfg(unix)]
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            self.socket.as_raw_fd()
        }
        #[cfg(not(target_os = "linux"))]
        {
            -1
        }
    }

    /// Rings world rank `rank`'s bell (rule 2), unless it was rung less
    /// than `window` ago or is on another host (rule 3). True if a ring
    /// was sent.
    pub(crate) fn ring(&self, rank: i32, window: Duration) -> bool {
        let Some(last) = usize::try_from(rank).ok().and_then(|r| self.last_rung.get(r)) else {
            return false;
        };
        let now = self.now();
        let before = last.load(Relaxed);
        if before == REMOTE {
            return false;
        }
        let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        if before != 0 && now.saturating_sub(before) < window {
            return false;
        }
        // Racing rings may both go: one datagram too many, no more.
        last.store(now, Relaxed);
        self.send(rank)
    }

    /// Before a send (rule 2): rings world rank `rank`'s bell if it was
    /// never rung or last rung at least `asleep_after` ago (it likely
    /// sleeps then). True if the send must still call [`Doorbell::ring`]
    /// after posting: the peer was rung at least `window` ago but less
    /// than `asleep_after`. False when it was rung now or within `window`
    /// (the common case of a busy exchange: one clock read, nothing more).
    pub(crate) fn ring_before_send(&self, rank: i32, window: Duration, asleep_after: Duration) -> bool {
        let Some(last) = usize::try_from(rank).ok().and_then(|r| self.last_rung.get(r)) else {
            return false;
        };
        let before = last.load(Relaxed);
        if before == REMOTE {
            return false;
        }
        let now = self.now();
        let age = now.saturating_sub(before);
        if before != 0 && age < u64::try_from(window.as_nanos()).unwrap_or(u64::MAX) {
            return false;
        }
        if before != 0 && age < u64::try_from(asleep_after.as_nanos()).unwrap_or(u64::MAX) {
            return true;
        }
        last.store(now, Relaxed);
        self.send(rank);
        false
    }

    #[cfg(target_os = "linux")]
    fn send(&self, rank: i32) -> bool {
        // The host's clock (`engine/clock.rs`), one for every process here,
        // so a ring's time is read in the ringer's clock (rule 6).
        let payload = ring_payload(self.rank, crate::engine::clock::read());
        // Rule 3: an undeliverable ring is dropped.
        match self.sender(rank) {
            Some(sender) => sender.socket.send_to_addr(&payload, &sender.to),
            None => address(self.job, rank).and_then(|to| self.socket.send_to_addr(&payload, &to)),
        }
        .is_ok()
    }

    /// World rank `rank`'s own sending socket (rule 4) and its bell's
    /// address, made at its first ring; `None`: ring it from the bell's.
    #[cfg(target_os = "linux")]
    fn sender(&self, rank: i32) -> Option<&Sender> {
        let slot = self.senders.get(usize::try_from(rank).ok()?)?;
        slot.get_or_init(|| {
            if self.claimed.fetch_add(1, Relaxed) >= PEER_SENDERS {
                return None;
            }
            let to = address(self.job, rank).ok()?;
            let socket = std::os::unix::net::UnixDatagram::unbound().ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(Sender { socket, to })
        })
        .as_ref()
    }

    #[cfg(not(target_os = "linux"))]
    fn send(&self, _rank: i32) -> bool {
        false
    }

    /// Empties the bell (the reactor saw it readable), reading at most
    /// [`DRAIN_AT_MOST`] rings, and takes each trusted ringer as awake for
    /// half of `window` (rule 6). Returns how many rings came from the
    /// trusted user (rule 5).
    pub(crate) fn drain(&self, window: Duration) -> usize {
        self.drain_at_most(DRAIN_AT_MOST, window)
    }

    /// Reads at most `most` rings from the bell; returns how many came
    /// from the trusted user.
    fn drain_at_most(&self, most: usize, window: Duration) -> usize {
        let mut trusted = 0;
        #[cfg(target_os = "linux")]
        {
            // One reading per drain, the clock's (a ring's age is judged
            // against the time it is, not an older reading of the turn's).
            let mut host_now = None;
            let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
            for _ in 0..most {
                match self.receive() {
                    None => break,
                    Some(Ring { trusted: false, .. }) => {}
                    Some(Ring { trusted: true, from }) => {
                        trusted += 1;
                        let Some((rank, sent_ns)) = from else {
                            continue;
                        };
                        let Some(last) = usize::try_from(rank).ok().and_then(|r| self.last_rung.get(r)) else {
                            continue;
                        };
                        let host_now = *host_now.get_or_insert_with(crate::engine::clock::read);
                        // Rule 6: as if rung a quarter window before the
                        // ring was sent (the ring carries the host's clock,
                        // `last_rung`'s unit); nothing for a ring older
                        // than a window (or from the future: another clock).
                        let since = host_now
                            .checked_sub(sent_ns)
                            .filter(|&age| age < window_ns)
                            .and_then(|_| sent_ns.checked_sub(window_ns / 4))
                            .filter(|&since| since > 0);
                        // Never a remote rank's mark (rule 3), and never
                        // earlier than a ring this rank sent.
                        if let Some(since) = since
                            && last.load(Relaxed) != REMOTE
                        {
                            last.fetch_max(since, Relaxed);
                        }
                    }
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (most, window);
        trusted
    }

    /// Reads one ring: `None` if the bell is empty.
    #[cfg(target_os = "linux")]
    fn receive(&self) -> Option<Ring> {
        use std::os::fd::AsRawFd;
        let mut data = [0u8; RING_LEN + 1];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // Room for one `ucred` message, aligned for `cmsghdr`.
        let mut control = [0u64; 8];
        // SAFETY: `msghdr` is plain data; zeroed is empty.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: a live descriptor; `msg` points at the locals above,
        // which outlive the call.
        let read = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
        if read < 0 {
            return None;
        }
        // A ring from this job names its ringer and when it rang (rule 6);
        // anything else names nobody.
        let from = (read == RING_LEN as isize).then(|| parse_ring(&data));
        let Some(trusted) = self.trusted else {
            return Some(Ring { trusted: true, from });
        };
        // SAFETY: `msg` was filled by `recvmsg`; the macros walk its
        // control buffer within `msg_controllen`.
        let mut header = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
        while !header.is_null() {
            // SAFETY: a header inside the control buffer (above).
            let (level, kind) = unsafe { ((*header).cmsg_level, (*header).cmsg_type) };
            if level == libc::SOL_SOCKET && kind == libc::SCM_CREDENTIALS {
                // SAFETY: an SCM_CREDENTIALS message holds one `ucred`,
                // possibly unaligned.
                let credentials: libc::ucred = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(header).cast()) };
                return Some(Ring {
                    trusted: credentials.uid == trusted,
                    from,
                });
            }
            // SAFETY: as above.
            header = unsafe { libc::CMSG_NXTHDR(&raw const msg, header) };
        }
        Some(Ring { trusted: true, from })
    }
}

/// One ring read from the bell.
#[cfg(target_os = "linux")]
#[derive(Debug, PartialEq, Eq)]
struct Ring {
    /// From the trusted user (rule 5; true where credentials are missing).
    trusted: bool,
    /// The world rank that says it rang, and when (`CLOCK_MONOTONIC`,
    /// nanoseconds), if the ring says so (rule 6).
    from: Option<(i32, u64)>,
}

/// A ring's bytes: the ringer's world rank and the host's monotonic clock
/// when it rang, little-endian (rule 6).
#[cfg(target_os = "linux")]
const RING_LEN: usize = 12;

#[cfg(target_os = "linux")]
fn ring_payload(rank: i32, at_ns: u64) -> [u8; RING_LEN] {
    let mut bytes = [0; RING_LEN];
    bytes[..4].copy_from_slice(&rank.to_le_bytes());
    bytes[4..].copy_from_slice(&at_ns.to_le_bytes());
    bytes
}

#[cfg(target_os = "linux")]
fn parse_ring(bytes: &[u8]) -> (i32, u64) {
    let mut rank = [0; 4];
    let mut at = [0; 8];
    rank.copy_from_slice(&bytes[..4]);
    at.copy_from_slice(&bytes[4..RING_LEN]);
    (i32::from_le_bytes(rank), u64::from_le_bytes(at))
}

/// A peer's own sending socket (rule 4) and the address of its bell,
/// formatted once (a ring is on the way to a post).
#[cfg(target_os = "linux")]
struct Sender {
    socket: std::os::unix::net::UnixDatagram,
    to: std::os::unix::net::SocketAddr,
}

/// Asks the kernel to attach each ring's sender credentials (rule 5).
#[cfg(target_os = "linux")]
fn pass_credentials(socket: &std::os::unix::net::UnixDatagram) -> bool {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a live descriptor; the option value is a c_int of the
    // length passed.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// The abstract address of world rank `rank`'s bell in job `job`.
#[cfg(target_os = "linux")]
fn address(job: u64, rank: i32) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(format!("weft-mpi-{job:016x}-{rank}"))
}

/// A number for this job, drawn by rank 0 (its process id and the time):
/// two jobs on one host get different bells.
pub(crate) fn draw_job() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

#[cfg(all(test, target_os = "linux", not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_ring_reaches_the_peers_bell_once_per_window() {
        let job = draw_job();
        let (a, b) = (
            Doorbell::open(job, 0, 2, None).unwrap(),
            Doorbell::open(job, 1, 2, None).unwrap(),
        );
        let window = Duration::from_secs(3600);
        assert!(a.ring(1, window), "the first ring goes");
        assert!(!a.ring(1, window), "a peer rung within the window is not rung again");
        assert_eq!(b.drain(Duration::ZERO), 1);
        assert_eq!(b.drain(Duration::ZERO), 0, "drained");
        assert!(a.ring(1, Duration::ZERO), "with no window, every send rings");
        assert_eq!(b.drain(Duration::ZERO), 1);
        assert!(!a.ring(2, window), "no such rank: nothing to ring");
        assert!(!a.ring(-1, window));
    }

    /// A send that user code starts inside a loop's turn (a job handed to
    /// the loop, another source's done callback), after that code ran for
    /// longer than the window, rings the peer: its window is over and it
    /// may sleep. (The ring decision must not take the turn's clock
    /// reading, which is as old as the code before it.)
    #[test]
    fn a_send_started_inside_a_turn_after_the_window_rings_again() {
        use std::sync::{Arc, Mutex};
        let job = draw_job();
        let (a, b) = (
            Doorbell::open(job, 0, 2, None).unwrap(),
            Doorbell::open(job, 1, 2, None).unwrap(),
        );
        let a = Arc::new(a);
        let window = Duration::from_millis(1);
        let rang: Arc<Mutex<Vec<bool>>> = Arc::default();
        let mut driver = weft_io::driver::Driver::new().expect("a reactor");
        let (bell, record) = (a.clone(), rang.clone());
        driver.handle().notifier().call_on_loop(move || {
            let first = {
                let _op = crate::engine::clock::scope();
                bell.ring(1, window)
            };
            std::thread::sleep(2 * window);
            let second = {
                let _op = crate::engine::clock::scope();
                bell.ring(1, window)
            };
            *record.lock().unwrap() = vec![first, second];
        });
        driver.turn(Some(Duration::ZERO));
        assert_eq!(
            *rang.lock().unwrap(),
            [true, true],
            "rung once, then again two windows later"
        );
        assert_eq!(b.drain(Duration::ZERO), 2);
    }

    #[test]
    fn before_a_send_only_a_peer_not_rung_for_long_is_rung() {
        let job = draw_job();
        let (a, b) = (
            Doorbell::open(job, 0, 2, None).unwrap(),
            Doorbell::open(job, 1, 2, None).unwrap(),
        );
        let (window, asleep_after) = (Duration::from_millis(10), Duration::from_millis(50));
        assert!(
            !a.ring_before_send(1, window, asleep_after),
            "never rung: rung before the send, not after"
        );
        assert_eq!(b.drain(Duration::ZERO), 1);
        assert!(
            !a.ring_before_send(1, window, asleep_after),
            "rung within the window: no ring before the send, nor after"
        );
        assert_eq!(b.drain(Duration::ZERO), 0);
        std::thread::sleep(window);
        assert!(
            a.ring_before_send(1, window, asleep_after),
            "past the window but not long: left to the ring after the send"
        );
        assert_eq!(b.drain(Duration::ZERO), 0, "nothing rung before the send");
        assert!(a.ring(1, window), "the ring after the send goes");
        assert_eq!(b.drain(Duration::ZERO), 1);
        std::thread::sleep(asleep_after);
        assert!(
            !a.ring_before_send(1, window, asleep_after),
            "not rung for long: rung before the send, not after"
        );
        assert_eq!(b.drain(Duration::ZERO), 1);
    }

    /// Rule 6: a peer that rang is awake (its post opened its window), so
    /// the reply it awaits is not preceded by a ring, for three quarters
    /// of a window from its ring.
    #[test]
    fn a_peer_that_rang_is_not_rung_back_for_three_quarters_of_a_window() {
        let job = draw_job();
        let (a, b) = (
            Doorbell::open(job, 0, 2, None).unwrap(),
            Doorbell::open(job, 1, 2, None).unwrap(),
        );
        let window = Duration::from_millis(200);
        let asleep_after = Duration::from_secs(3600);
        let rang = std::time::Instant::now();
        assert!(a.ring(1, window));
        assert_eq!(b.drain(window), 1);
        assert!(
            !b.ring_before_send(0, window, asleep_after),
            "the ringer is awake: no ring before the reply, nor after"
        );
        assert!(!b.ring(0, window), "nor after the post");
        assert_eq!(a.drain(window), 0, "rank 0 was not rung");
        std::thread::sleep((window * 3 / 4).saturating_sub(rang.elapsed()));
        assert!(
            b.ring(0, window),
            "three quarters of a window after the ring, a ring goes"
        );
        assert_eq!(a.drain(window), 1);
    }

    /// Rule 6: the ring's own time counts, not when it is read.
    #[test]
    fn a_ring_read_late_marks_nobody() {
        let job = draw_job();
        let (a, b) = (
            Doorbell::open(job, 0, 2, None).unwrap(),
            Doorbell::open(job, 1, 2, None).unwrap(),
        );
        let window = Duration::from_millis(100);
        std::thread::sleep(window);
        assert!(a.ring(1, window));
        // Rank 1's loop was busy for a window: rank 0 may be asleep by now.
        std::thread::sleep(window);
        assert_eq!(b.drain(window), 1);
        assert!(b.ring(0, window), "rank 0 is rung: its window is over");
        assert_eq!(a.drain(window), 1);
    }

    /// Rule 6: a ring that names no rank of the job, or says it was sent
    /// in the future, marks nobody (it still counts as a ring).
    #[test]
    fn a_ring_that_names_nobody_or_comes_from_the_future_marks_nobody() {
        let job = draw_job();
        let (a, _b) = (
            Doorbell::open(job, 0, 2, None).unwrap(),
            Doorbell::open(job, 1, 2, None).unwrap(),
        );
        let window = Duration::from_millis(100);
        std::thread::sleep(window);
        let stranger = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let to = address(job, 0).unwrap();
        let now = crate::engine::clock::read();
        for payload in [
            vec![1u8],
            ring_payload(9, now).to_vec(),
            ring_payload(-1, now).to_vec(),
            ring_payload(1, u64::MAX).to_vec(),
            ring_payload(1, now)[..8].to_vec(),
        ] {
            stranger.send_to_addr(&payload, &to).unwrap();
        }
        assert_eq!(a.drain(window), 5, "counted as rings all the same");
        assert!(a.ring(1, window), "rank 1 was never marked awake");
    }

    #[test]
    fn a_ring_nobody_hears_is_dropped() {
        let job = draw_job();
        let a = Doorbell::open(job, 0, 2, None).unwrap();
        // Rank 1 has no bell (another network namespace): the ring fails
        // quietly.
        assert!(!a.ring(1, Duration::ZERO));
    }

    /// Shrinks a socket's send buffer to the kernel's least (a few
    /// datagrams), as a full one would be.
    fn shrink(socket: &std::os::unix::net::UnixDatagram) {
        use std::os::fd::AsRawFd;
        let size: libc::c_int = 1;
        // SAFETY: a live descriptor; the option value is a c_int of the
        // length passed.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
    }

    #[test]
    fn a_peer_that_stops_draining_does_not_silence_rings_to_others() {
        let job = draw_job();
        let a = Doorbell::open(job, 0, 3, None).unwrap();
        let (stuck, live) = (
            Doorbell::open(job, 1, 3, None).unwrap(),
            Doorbell::open(job, 2, 3, None).unwrap(),
        );
        assert!(a.ring(1, Duration::ZERO) && a.ring(2, Duration::ZERO));
        assert_eq!((stuck.drain(Duration::ZERO), live.drain(Duration::ZERO)), (1, 1));
        // Every socket `a` sends from holds only a few unread datagrams
        // now, as each holds a few hundred where max_dgram_qlen is 512.
        shrink(&a.socket);
        for sender in a.senders.iter().filter_map(|s| s.get()?.as_ref()) {
            shrink(&sender.socket);
        }
        // Rank 1 stops draining: its rings pile up until they fail.
        let mut piled = 0;
        while a.ring(1, Duration::ZERO) {
            piled += 1;
            assert!(piled < 10_000, "rings to a bell nobody drains never failed");
        }
        assert!(
            a.ring(2, Duration::ZERO),
            "rank 1's full bell silenced the rings to rank 2"
        );
        assert_eq!(live.drain(Duration::ZERO), 1);
        assert_eq!(
            stuck.drain(Duration::ZERO),
            piled,
            "rank 1 gets its rings once it drains"
        );
        assert!(a.ring(1, Duration::ZERO), "and is rung again");
    }

    #[test]
    fn peer_senders_are_bounded() {
        let job = draw_job();
        let size = PEER_SENDERS as i32 + 2;
        let a = Doorbell::open(job, 0, size, None).unwrap();
        let last = Doorbell::open(job, size - 1, size, None).unwrap();
        for rank in 1..size {
            a.ring(rank, Duration::ZERO);
        }
        let own = a
            .senders
            .iter()
            .filter(|s| s.get().is_some_and(Option::is_some))
            .count();
        assert_eq!(own, PEER_SENDERS, "a descriptor per peer, up to the bound");
        assert_eq!(
            last.drain(Duration::ZERO),
            1,
            "a peer past the bound is rung from the bell's socket"
        );
    }

    #[test]
    fn a_drain_reads_a_bounded_number_of_rings() {
        let job = draw_job();
        let (a, b) = (
            Doorbell::open(job, 0, 2, None).unwrap(),
            Doorbell::open(job, 1, 2, None).unwrap(),
        );
        for _ in 0..5 {
            assert!(a.ring(1, Duration::ZERO));
        }
        assert_eq!(
            b.drain_at_most(3, Duration::ZERO),
            3,
            "a flood cannot keep a drain reading"
        );
        assert_eq!(b.drain(Duration::ZERO), 2, "the rest is read at the next drain");
    }

    #[test]
    fn a_strangers_rings_are_drained_but_do_not_count() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: ringing as another user needs root");
            return;
        }
        let job = draw_job();
        let (a, b) = (
            Doorbell::open(job, 0, 2, None).unwrap(),
            Doorbell::open(job, 1, 2, None).unwrap(),
        );
        std::thread::spawn(move || {
            // The raw system call changes this thread's user only.
            // SAFETY: plain integers; the thread ends right after.
            let set = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
            assert_eq!(set, 0);
            let stranger = std::os::unix::net::UnixDatagram::unbound().unwrap();
            for _ in 0..3 {
                stranger.send_to_addr(&[1], &address(job, 1).unwrap()).unwrap();
            }
        })
        .join()
        .unwrap();
        assert_eq!(b.drain(Duration::ZERO), 0, "another user's rings do not count");
        assert_eq!(b.receive(), None, "but they were read");
        assert!(a.ring(1, Duration::ZERO));
        assert_eq!(b.drain(Duration::ZERO), 1, "the job's own user's ring counts");
    }

    #[test]
    fn ranks_on_other_hosts_are_never_rung() {
        let job = draw_job();
        // World ranks 0 and 2 share a host; rank 1 is elsewhere (its bell
        // here stands for a namesake it must not reach).
        let a = Doorbell::open(job, 0, 3, Some(&[0, 2])).unwrap();
        let (b, c) = (
            Doorbell::open(job, 1, 3, Some(&[1])).unwrap(),
            Doorbell::open(job, 2, 3, Some(&[0, 2])).unwrap(),
        );
        assert!(!a.ring(1, Duration::ZERO), "a rank on another host is not rung");
        assert_eq!(b.drain(Duration::ZERO), 0, "no system call reached it");
        assert!(a.ring(2, Duration::ZERO), "a rank on this host is");
        assert_eq!(c.drain(Duration::ZERO), 1);
    }
}
