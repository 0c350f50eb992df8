//! `UnixStream`.

use crate::driver::Direction;
use crate::driver::registration::Registered;
use futures_io::{AsyncRead, AsyncWrite};
use mio::Interest;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A Unix-domain stream connection.
///
/// Like [`TcpStream`](crate::net::TcpStream): the `futures-io` traits are
/// implemented for `UnixStream` and `&UnixStream`.
pub struct UnixStream {
    io: Registered<mio::net::UnixStream>,
}

impl UnixStream {
    pub(crate) fn from_mio(stream: mio::net::UnixStream) -> io::Result<UnixStream> {
        UnixStream::from_mio_with(&crate::driver::Handle::try_current()?, stream)
    }

    /// Registers with `reactor` (an accepted connection joins its
    /// listener's reactor).
    pub(crate) fn from_mio_with(
        reactor: &crate::driver::Handle,
        stream: mio::net::UnixStream,
    ) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: Registered::new_with(reactor, stream, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// Connects to the socket at `path`.
    ///
    /// # Errors
    ///
    /// If nothing listens there, or outside a runtime.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let stream = UnixStream::from_mio(mio::net::UnixStream::connect(path)?)?;
        std::future::poll_fn(|cx| stream.io.registration().poll_ready(cx, Direction::Write).map_ok(|_| ())).await?;
        if let Some(err) = stream.io.get_ref().take_error()? {
            return Err(err);
        }
        Ok(stream)
    }

    /// A connected pair.
    ///
    /// # Errors
    ///
    /// As the OS reports them, or outside a runtime.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a)?, UnixStream::from_mio(b)?))
    }

    /// Takes over a standard-library stream (made non-blocking).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        UnixStream::from_mio(mio::net::UnixStream::from_std(stream))
    }

    /// Gives the socket back as a standard-library stream (still
    /// non-blocking).
    ///
    /// # Errors
    ///
    /// If it cannot be deregistered from the reactor.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        use std::os::fd::{FromRawFd, IntoRawFd};
        let mio = self.io.into_inner()?;
        // SAFETY: `into_raw_fd` hands over sole ownership of an open
        // socket, which `from_raw_fd` takes.
        Ok(unsafe { std::os::unix::net::UnixStream::from_raw_fd(mio.into_raw_fd()) })
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
    /// As the OS reports them.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    fn poll_read_inner(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.io.poll_transfer(cx, Direction::Read, len, |mut s| s.read(buf))
    }

    fn poll_read_vectored_inner(&self, cx: &mut Context<'_>, bufs: &mut [IoSliceMut<'_>]) -> Poll<io::Result<usize>> {
        // No short-transfer shortcut for vectored reads: `readv` takes at
        // most IOV_MAX buffers, so a short read need not mean a drained
        // socket.
        self.io.poll_io(cx, Direction::Read, |mut s| s.read_vectored(bufs))
    }

    fn poll_write_inner(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_transfer(cx, Direction::Write, buf.len(), |mut s| s.write(buf))
    }

    fn poll_write_vectored_inner(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        // As for reads: `writev` takes at most IOV_MAX buffers.
        self.io.poll_io(cx, Direction::Write, |mut s| s.write_vectored(bufs))
    }

    fn poll_shutdown_write(&self) -> Poll<io::Result<()>> {
        match self.io.get_ref().shutdown(Shutdown::Write) {
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            result => Poll::Ready(result),
        }
    }
}

macro_rules! stream_traits {
    ($ty:ty) => {
        impl AsyncRead for $ty {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                self.poll_read_inner(cx, buf)
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_vectored_inner(cx, bufs)
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.poll_write_inner(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_vectored_inner(cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_shutdown_write()
            }
        }
    };
}

stream_traits!(UnixStream);
stream_traits!(&UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

impl std::os::fd::AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.get_ref().as_raw_fd()
    }
}
