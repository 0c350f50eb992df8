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
//!    the destination after posting, unless this rank rang it less than
//!    the spin window ago ([`Doorbell::ring`]): a peer rung then opened its
//!    own window (the same setting, on every rank) when the ring arrived,
//!    so it is still polling without sleep and sees this send too. A busy
//!    exchange rings a peer once per window, not once per message; one
//!    after an idle gap always rings. A ring is one nonblocking `sendto`
//!    (a few microseconds); collectives do not ring (their ranks poll
//!    without sleep while MPI holds their requests).
//! 3. **A hint, never a duty.** A ring that cannot be delivered (the peer
//!    on another host or in another network namespace, its socket full)
//!    is dropped: the peer's idle polls still find the message, within
//!    `max_sleep`. So correctness never depends on a ring; latency after
//!    idle gaps does, between ranks of one host.
//!
//! [`MpiBuilder::max_sleep`]: crate::MpiBuilder::max_sleep

use crate::loom::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// This rank's doorbell, and what it needs to ring its peers'.
pub(crate) struct Doorbell {
    #[cfg(target_os = "linux")]
    socket: std::os::unix::net::UnixDatagram,
    /// The job's number (the same on every rank), in every bell's name.
    #[cfg(target_os = "linux")]
    job: u64,
    /// When this rank last rang each world rank, in nanoseconds since
    /// `epoch` (0: never).
    last_rung: Vec<AtomicU64>,
    epoch: Instant,
}

impl Doorbell {
    /// This rank's bell in job `job`, for a world of `size`; `None` where
    /// the platform has none (then peers are found by idle polls alone).
    pub(crate) fn open(job: u64, rank: i32, size: i32) -> Option<Doorbell> {
        #[cfg(target_os = "linux")]
        {
            let socket = std::os::unix::net::UnixDatagram::bind_addr(&address(job, rank).ok()?).ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(Doorbell {
                socket,
                job,
                last_rung: (0..size.max(0)).map(|_| AtomicU64::new(0)).collect(),
                epoch: Instant::now(),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (job, rank, size);
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
    /// than `window` ago. True if a ring was sent.
    pub(crate) fn ring(&self, rank: i32, window: Duration) -> bool {
        let Some(last) = usize::try_from(rank).ok().and_then(|r| self.last_rung.get(r)) else {
            return false;
        };
        let now = u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let before = last.load(Relaxed);
        let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        if before != 0 && now.saturating_sub(before) < window {
            return false;
        }
        // Racing rings may both go: one datagram too many, no more.
        last.store(now, Relaxed);
        self.send(rank)
    }

    #[cfg(target_os = "linux")]
    fn send(&self, rank: i32) -> bool {
        // Rule 3: an undeliverable ring is dropped.
        address(self.job, rank)
            .and_then(|to| self.socket.send_to_addr(&[1], &to))
            .is_ok()
    }

    #[cfg(not(target_os = "linux"))]
    fn send(&self, _rank: i32) -> bool {
        false
    }

    /// Empties the bell (the reactor saw it readable). Returns how many
    /// rings it held.
    pub(crate) fn drain(&self) -> usize {
        let mut rings = 0;
        #[cfg(target_os = "linux")]
        {
            let mut buf = [0u8; 8];
            while self.socket.recv(&mut buf).is_ok() {
                rings += 1;
            }
        }
        rings
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
        let (a, b) = (Doorbell::open(job, 0, 2).unwrap(), Doorbell::open(job, 1, 2).unwrap());
        let window = Duration::from_secs(3600);
        assert!(a.ring(1, window), "the first ring goes");
        assert!(!a.ring(1, window), "a peer rung within the window is not rung again");
        assert_eq!(b.drain(), 1);
        assert_eq!(b.drain(), 0, "drained");
        assert!(a.ring(1, Duration::ZERO), "with no window, every send rings");
        assert_eq!(b.drain(), 1);
        assert!(!a.ring(2, window), "no such rank: nothing to ring");
        assert!(!a.ring(-1, window));
    }

    #[test]
    fn a_ring_nobody_hears_is_dropped() {
        let job = draw_job();
        let a = Doorbell::open(job, 0, 2).unwrap();
        // Rank 1 has no bell (another host): the ring fails quietly.
        assert!(!a.ring(1, Duration::ZERO));
    }
}
