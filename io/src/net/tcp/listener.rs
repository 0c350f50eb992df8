//! `TcpListener`.

use super::stream::TcpStream;
use crate::driver::Direction;
use crate::driver::registration::Registered;
use futures_core::Stream;
use mio::Interest;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// The backlog [`TcpListener::bind`] asks for: enough for a burst of a few
/// thousand connections while the acceptor is busy (the kernel caps it at
/// `net.core.somaxconn`, 4096 by default on Linux).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// A TCP socket that accepts connections.
///
/// ```
/// use weft_io::io::{AsyncReadExt, AsyncWriteExt};
/// use weft_io::net::{TcpListener, TcpStream};
///
/// let mut driver = weft_io::Driver::new()?;
/// driver.block_on(async {
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let mut client = TcpStream::connect(addr).await?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    pub(crate) io: Registered<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (`SO_REUSEADDR` is set, as is usual for servers) and
    /// starts listening with a backlog of [`DEFAULT_BACKLOG`] pending
    /// connections (the kernel caps it at its `somaxconn`).
    ///
    /// # Errors
    ///
    /// If the address is in use or not available, or outside a runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(addr, DEFAULT_BACKLOG)
    }

    /// As [`bind`](TcpListener::bind), with a chosen backlog: how many
    /// connections the kernel completes and queues before `accept` takes
    /// them. When it is full, new connections are dropped (or reset).
    ///
    /// # Errors
    ///
    /// As `bind`.
    pub fn bind_with_backlog(addr: impl ToSocketAddrs, backlog: u32) -> io::Result<TcpListener> {
        crate::net::each_addr(addr, |addr| {
            // `Socket::new` sets close-on-exec itself. Non-blocking is a
            // second call: `Type::nonblocking` (SOCK_NONBLOCK) exists only on
            // Linux, Android and the BSDs, not on macOS.
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_nonblocking(true)?;
            #[cfg(unix)]
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
            TcpListener::from_mio(mio::net::TcpListener::from_std(socket.into()))
        })
    }

    fn from_mio(listener: mio::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: Registered::new(listener, Interest::READABLE)?,
        })
    }

    /// Takes over a standard-library listener (made non-blocking here).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::from_mio(mio::net::TcpListener::from_std(listener))
    }

    /// Gives the socket back as a standard-library listener (still
    /// non-blocking; call `set_nonblocking(false)` to block).
    ///
    /// # Errors
    ///
    /// If it cannot be deregistered from the reactor.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let mio = self.io.into_inner()?;
        #[cfg(unix)]
        {
            use std::os::fd::{FromRawFd, IntoRawFd};
            // SAFETY: `into_raw_fd` hands over sole ownership of an open
            // listening socket, which `from_raw_fd` takes.
            Ok(unsafe { std::net::TcpListener::from_raw_fd(mio.into_raw_fd()) })
        }
    }

    /// Waits for a connection; returns it and the peer's address.
    ///
    /// Cancel-safe: if the future is dropped, no connection is lost (it
    /// stays in the backlog for the next call).
    ///
    /// # Errors
    ///
    /// As the OS reports them; notably `EMFILE`/`ENFILE` when the process
    /// or system is out of descriptors, in which case the connection stays
    /// queued and the caller should back off briefly before trying again.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = self.io.op(Direction::Read, |l| l.accept()).await?;
        TcpStream::from_mio_with(self.io.reactor(), stream).map(|s| (s, addr))
    }

    /// Polls for a connection; see [`accept`](TcpListener::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (stream, addr) = ready!(self.io.poll_io(cx, Direction::Read, |l| l.accept()))?;
        Poll::Ready(TcpStream::from_mio_with(self.io.reactor(), stream).map(|s| (s, addr)))
    }

    /// The connections, as a `Stream` (it never ends; errors are items).
    pub fn incoming(&self) -> TcpIncoming<'_> {
        TcpIncoming {
            listener: self,
            key: None,
        }
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The IP time-to-live of accepted connections.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets the IP time-to-live.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

/// The connections of a [`TcpListener`], as a `Stream`.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct TcpIncoming<'a> {
    listener: &'a TcpListener,
    /// This stream's place among the listener's waiters.
    key: Option<usize>,
}

impl Stream for TcpIncoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let io = &this.listener.io;
        let (stream, _) = ready!(io.poll_keyed(cx, Direction::Read, &mut this.key, |l| l.accept()))?;
        Poll::Ready(Some(TcpStream::from_mio_with(io.reactor(), stream)))
    }
}

impl Drop for TcpIncoming<'_> {
    fn drop(&mut self) {
        self.listener.io.leave(&mut self.key);
    }
}

#[cfg(all(test, unix, not(loom)))]
mod tests {
    use super::TcpListener;
    use std::os::fd::AsRawFd;

    /// `bind` makes the socket itself (socket2), so it must set the flags
    /// that `std` and mio would have: non-blocking, and close-on-exec on
    /// every Unix (macOS has no `SOCK_NONBLOCK` to do both in one call).
    #[test]
    fn a_bound_listener_is_non_blocking_and_close_on_exec() {
        let mut driver = crate::Driver::new().expect("driver");
        driver
            .block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                // SAFETY: F_GETFD on a descriptor the listener owns reads its flags.
                let fd_flags = unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_GETFD) };
                assert!(fd_flags >= 0 && fd_flags & libc::FD_CLOEXEC != 0, "{fd_flags:#x}");
                // SAFETY: as above, for the file status flags.
                let status = unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_GETFL) };
                assert!(status >= 0 && status & libc::O_NONBLOCK != 0, "{status:#x}");
                // So, with nobody connecting, accept returns at once.
                let err = listener.into_std()?.accept().expect_err("nobody connected");
                assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
                Ok::<(), std::io::Error>(())
            })
            .expect("a listener bound and inspected");
    }
}
