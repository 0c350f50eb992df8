//! Halves of a `TcpStream`: borrowed ([`TcpStream::split`]) and owned
//! ([`TcpStream::into_split`]), at Tokio's paths (`net::tcp::OwnedReadHalf`).

use super::stream::TcpStream;
use crate::net::split::{ReadShare, ShutdownWrite, WriteShare, reunite, share};
use std::error::Error;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};

/// The reading half of a borrowed [`TcpStream`]; see
/// [`TcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The writing half of a borrowed [`TcpStream`]; see
/// [`TcpStream::split`]. Closing it shuts down the writing direction.
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

impl<'a> ReadHalf<'a> {
    pub(super) fn new(stream: &'a TcpStream) -> ReadHalf<'a> {
        ReadHalf(stream)
    }
}

impl<'a> WriteHalf<'a> {
    pub(super) fn new(stream: &'a TcpStream) -> WriteHalf<'a> {
        WriteHalf(stream)
    }
}

/// The owned reading half of a [`TcpStream`]; see
/// [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    share: ReadShare<TcpStream>,
}

/// The owned writing half of a [`TcpStream`]; see
/// [`TcpStream::into_split`]. Dropping it shuts down the writing direction,
/// so the peer sees end of stream.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    share: WriteShare<TcpStream>,
}

impl ShutdownWrite for TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

pub(super) fn split_owned(stream: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    let (read, write) = share(stream);
    (OwnedReadHalf { share: read }, OwnedWriteHalf { share: write })
}

impl OwnedReadHalf {
    /// Puts the halves back together.
    ///
    /// # Errors
    ///
    /// If the halves come from different streams; both are given back.
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        reunite(self.share, other.share)
            .map_err(|(read, write)| ReuniteError(OwnedReadHalf { share: read }, OwnedWriteHalf { share: write }))
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.share.stream().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.share.stream().local_addr()
    }
}

impl OwnedWriteHalf {
    /// Puts the halves back together; see [`OwnedReadHalf::reunite`].
    ///
    /// # Errors
    ///
    /// If the halves come from different streams.
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        other.reunite(self)
    }

    /// Keeps the writing direction open when this half is dropped.
    pub fn forget(mut self) {
        self.share.keep_open();
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.share.stream().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As the OS reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.share.stream().local_addr()
    }
}

/// [`OwnedReadHalf::reunite`] was given halves of two different streams;
/// both come back in the fields.
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Debug for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReuniteError").finish_non_exhaustive()
    }
}

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl Error for ReuniteError {}

crate::net::byte_stream_read!(ReadHalf<'_>, |half| half.0.io);
crate::net::byte_stream_write!(WriteHalf<'_>, |half| half.0.io);
crate::net::byte_stream_read!(OwnedReadHalf, |half| half.share.stream().io);
crate::net::byte_stream_write!(OwnedWriteHalf, |half| half.share.stream().io);
