//! `TcpStream`.

use super::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf, split_owned};
use crate::driver::Direction;
use crate::driver::registration::Registered;
use crate::net::ToSocketAddrs;
use mio::Interest;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::task::{Context, Poll};
use std::time::Duration;

/// A TCP connection.
///
/// Reading and writing go through the `futures-io` traits (with the
/// extension methods of [`crate::io`]), for `TcpStream` and for
/// `&TcpStream`, so one task can read while another writes. For halves that
/// move into different tasks, see [`into_split`](TcpStream::into_split).
pub struct TcpStream {
    /// Visible to the halves (`split.rs`), which share its transfers.
    pub(crate) io: Registered<mio::net::TcpStream>,
}

impl TcpStream {
    pub(crate) fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::from_mio_with(&crate::driver::Handle::try_current()?, stream)
    }

    /// Registers with `reactor` (an accepted connection joins its
    /// listener's reactor, whatever thread accepts it).
    pub(crate) fn from_mio_with(reactor: &crate::driver::Handle, stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Registered::new_with(reactor, stream, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// Connects to `addr`, trying each address it resolves to in turn. A
    /// host name is looked up on a blocking thread, never on the loop (see
    /// [`ToSocketAddrs`]).
    ///
    /// # Errors
    ///
    /// The lookup's error, the last address's error if none connects
    /// (refused, unreachable...), or no runtime on this thread.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in crate::net::resolve(&addr).await? {
            match TcpStream::connect_addr(addr).await {
                Ok(stream) => return Ok(stream),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolved to nothing")))
    }

    /// As [`connect`](TcpStream::connect), giving up after `timeout` with
    /// `ErrorKind::TimedOut`.
    ///
    /// # Errors
    ///
    /// As `connect`, and `TimedOut`.
    pub async fn connect_timeout(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<TcpStream> {
        crate::time::timeout(timeout, TcpStream::connect(addr)).await?
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        // A non-blocking connect: it is complete when the socket becomes
        // writable, and its outcome is in SO_ERROR.
        let stream = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?)?;
        stream.io.ready(Direction::Write).await?;
        if let Some(err) = stream.io.get_ref().take_error()? {
            return Err(err);
        }
        // Writable but not connected (a spurious wakeup on some systems):
        // `peer_addr` tells.
        match stream.io.get_ref().peer_addr() {
            Ok(_) => Ok(stream),
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the connection did not complete",
            )),
            Err(err) => Err(err),
        }
    }

    /// Takes over a connected standard-library stream (made non-blocking).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(stream))
    }

    /// Gives the socket back as a standard-library stream (still
    /// non-blocking).
    ///
    /// # Errors
    ///
    /// If it cannot be deregistered from the reactor.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let mio = self.io.into_inner()?;
        #[cfg(unix)]
        {
            use std::os::fd::{FromRawFd, IntoRawFd};
            // SAFETY: `into_raw_fd` hands over sole ownership of an open
            // socket, which `from_raw_fd` takes.
            Ok(unsafe { std::net::TcpStream::from_raw_fd(mio.into_raw_fd()) })
        }
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Shuts down the reading half, the writing half, or both.
    ///
    /// # Errors
    ///
    /// As the OS reports them (`NotConnected` if the peer is gone).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Whether Nagle's algorithm is off (`TCP_NODELAY`).
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Turns Nagle's algorithm off (`true`) or on: off sends small writes
    /// at once, which request-response protocols want.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// The IP time-to-live.
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

    /// Reads into `buf` without removing the data from the socket's queue.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.op(Direction::Read, |s| s.peek(buf)).await
    }

    /// Polls a [`peek`](TcpStream::peek).
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |s| s.peek(buf))
    }

    /// Waits until the stream may be readable.
    ///
    /// # Errors
    ///
    /// If the reactor has shut down.
    pub async fn readable(&self) -> io::Result<()> {
        self.ready(Direction::Read).await
    }

    /// Waits until the stream may be writable.
    ///
    /// # Errors
    ///
    /// If the reactor has shut down.
    pub async fn writable(&self) -> io::Result<()> {
        self.ready(Direction::Write).await
    }

    async fn ready(&self, direction: Direction) -> io::Result<()> {
        self.io.ready(direction).await
    }

    /// Reads without waiting: `WouldBlock` if no data is ready.
    ///
    /// # Errors
    ///
    /// `WouldBlock`, or as the OS reports them.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Read, |mut s| s.read(buf))
    }

    /// Writes without waiting: `WouldBlock` if the socket buffer is full.
    ///
    /// # Errors
    ///
    /// `WouldBlock`, or as the OS reports them.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |mut s| s.write(buf))
    }

    /// Splits into halves that borrow the stream: one reads, one writes.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf::new(self), WriteHalf::new(self))
    }

    /// Splits into owned halves that may move to different tasks;
    /// [`OwnedReadHalf::reunite`] puts them back together. Dropping the
    /// write half shuts down the writing direction.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned(self)
    }
}

crate::net::byte_stream!(TcpStream, |stream| stream.io);
crate::net::byte_stream!(&TcpStream, |stream| stream.io);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.get_ref().as_raw_fd()
    }
}
