//! Networking: TCP, UDP and Unix-domain sockets on the reactor.
//!
//! Every type wraps a non-blocking mio socket registered with the current
//! reactor. Operations are `async fn`s (or `poll_*` methods) that wait for
//! readiness and then retry the system call; byte streams also implement
//! the `futures-io` traits, so they work with
//! [`crate::io::AsyncReadExt`] and any crate built on those traits.
//!
//! Constructors that bind or connect resolve addresses with the standard
//! library's resolver, which blocks for host names: from async code, pass a
//! `SocketAddr` or an IP literal (`"127.0.0.1:8080"`), or resolve names on the
//! blocking pool first.
//!
//! Errors are `io::Error`s, as the OS reports them: an accept that finds the
//! process out of file descriptors returns `EMFILE`, and the caller decides
//! how to back off (the examples sleep briefly).

mod tcp;
mod udp;
#[cfg(unix)]
mod unix;

pub use self::tcp::{
    DEFAULT_BACKLOG, OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, TcpIncoming, TcpListener, TcpStream,
    WriteHalf,
};
pub use self::udp::UdpSocket;
#[cfg(unix)]
pub use self::unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `addr` and tries `f` on each address in turn; returns the first
/// success, or the last error.
pub(crate) fn each_addr<A: ToSocketAddrs, T>(addr: A, mut f: impl FnMut(SocketAddr) -> io::Result<T>) -> io::Result<T> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match f(addr) {
            Ok(value) => return Ok(value),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolved to nothing")))
}
