//! `UdpSocket`.

use super::ToSocketAddrs;
use crate::driver::Direction;
use crate::driver::registration::Registered;
use mio::Interest;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

/// A UDP socket.
///
/// Unconnected, it sends to and receives from any address
/// ([`send_to`](UdpSocket::send_to), [`recv_from`](UdpSocket::recv_from));
/// after [`connect`](UdpSocket::connect) it talks to one peer
/// ([`send`](UdpSocket::send), [`recv`](UdpSocket::recv)). Every method takes
/// `&self`, so the socket can be shared (in an `Arc`) between a sending and a
/// receiving task.
///
/// ```
/// use weft_io::net::UdpSocket;
///
/// let mut driver = weft_io::Driver::new()?;
/// driver.block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     a.send_to(b"hello", b.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"hello"[..], a.local_addr()?));
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    pub(crate) io: Registered<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`.
    ///
    /// # Errors
    ///
    /// If the address is in use or not available, or outside a runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        super::each_addr(&addr, |addr| UdpSocket::from_mio(mio::net::UdpSocket::bind(addr)?))
    }

    fn from_mio(socket: mio::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: Registered::new(socket, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// Takes over a standard-library socket (made non-blocking).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        UdpSocket::from_mio(mio::net::UdpSocket::from_std(socket))
    }

    /// Gives the socket back as a standard-library socket (still
    /// non-blocking).
    ///
    /// # Errors
    ///
    /// If it cannot be deregistered from the reactor.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        let mio = self.io.into_inner()?;
        #[cfg(unix)]
        {
            use std::os::fd::{FromRawFd, IntoRawFd};
            // SAFETY: `into_raw_fd` hands over sole ownership of an open
            // socket, which `from_raw_fd` takes.
            Ok(unsafe { std::net::UdpSocket::from_raw_fd(mio.into_raw_fd()) })
        }
    }

    /// Sets the default peer: [`send`](UdpSocket::send) goes there, and
    /// [`recv`](UdpSocket::recv) only accepts datagrams from it.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        super::each_addr(&addr, |addr| self.io.get_ref().connect(addr))
    }

    /// Sends `buf` to `target`; returns the bytes sent.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let target = super::first_that_works(super::resolve(&target).await?, Ok)?;
        self.io.op(Direction::Write, |s| s.send_to(buf, target)).await
    }

    /// Polls a [`send_to`](UdpSocket::send_to).
    pub fn poll_send_to(&self, cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Write, |s| s.send_to(buf, target))
    }

    /// Receives one datagram into `buf`; returns its length and sender. A
    /// datagram longer than `buf` is truncated.
    ///
    /// Cancel-safe: dropping the future loses no datagram.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.op(Direction::Read, |s| s.recv_from(buf)).await
    }

    /// Polls a [`recv_from`](UdpSocket::recv_from).
    pub fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv_from(buf))
    }

    /// Receives one datagram without removing it from the queue.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.op(Direction::Read, |s| s.peek_from(buf)).await
    }

    /// Sends `buf` to the connected peer.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](UdpSocket::connect), or as the OS
    /// reports them.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.op(Direction::Write, |s| s.send(buf)).await
    }

    /// Polls a [`send`](UdpSocket::send).
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Write, |s| s.send(buf))
    }

    /// Receives one datagram from the connected peer.
    ///
    /// # Errors
    ///
    /// As the OS reports them (a refused earlier send can surface here as
    /// `ConnectionRefused`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.op(Direction::Read, |s| s.recv(buf)).await
    }

    /// Polls a [`recv`](UdpSocket::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv(buf))
    }

    /// Sends without waiting: `WouldBlock` if the send buffer is full.
    ///
    /// # Errors
    ///
    /// `WouldBlock`, or as the OS reports them.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send_to(buf, target))
    }

    /// Receives without waiting: `WouldBlock` if no datagram is queued.
    ///
    /// # Errors
    ///
    /// `WouldBlock`, or as the OS reports them.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.try_io(Direction::Read, |s| s.recv_from(buf))
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](UdpSocket::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Whether broadcast sends are allowed.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }

    /// Allows (or forbids) sending to broadcast addresses.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
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
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.get_ref().as_raw_fd()
    }
}
