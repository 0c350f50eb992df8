//! `UnixStream`.

use super::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf, split_owned};
use crate::driver::Direction;
use crate::driver::registration::Registered;
use mio::Interest;
use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;

/// A Unix-domain stream connection.
///
/// Like [`TcpStream`](crate::net::TcpStream): the `futures-io` traits are
/// implemented for `UnixStream` and `&UnixStream`, so one task can read
/// while another writes; for halves that move into different tasks, see
/// [`into_split`](UnixStream::into_split).
pub struct UnixStream {
    /// Visible to the halves (`split.rs`), which share its transfers.
    pub(crate) io: Registered<mio::net::UnixStream>,
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
        stream.io.ready(Direction::Write).await?;
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

crate::net::byte_stream!(UnixStream, |stream| stream.io);
crate::net::byte_stream!(&UnixStream, |stream| stream.io);

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
