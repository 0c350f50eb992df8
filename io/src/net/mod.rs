//! Networking: TCP, UDP and Unix-domain sockets on the reactor.
//!
//! Every type wraps a non-blocking mio socket registered with the current
//! reactor. Operations are `async fn`s (or `poll_*` methods) that wait for
//! readiness and then retry the system call; byte streams also implement
//! the `futures-io` traits, so they work with
//! [`crate::io::AsyncReadExt`] and any crate built on those traits.
//!
//! Addresses are Weft's [`ToSocketAddrs`] (the same types as std's): the
//! async constructors ([`TcpStream::connect`], [`UdpSocket::send_to`],
//! [`lookup_host`]) look host names up on a blocking thread, never on the
//! loop; the synchronous ones (`bind`) resolve names where they are called.
//!
//! With feature `hyper`, the byte streams (and their halves, each in its
//! direction) also implement `hyper::rt::Read` and `hyper::rt::Write`, so
//! hyper's connection builders take them as they are; with feature
//! `tokio-compat`, Tokio's `AsyncRead` and `AsyncWrite` (see
//! [`crate::compat`]).
//!
//! The halves of a split stream live where Tokio has them:
//! [`tcp::OwnedReadHalf`], [`unix::OwnedReadHalf`] and their siblings (the
//! TCP ones are also re-exported here, under their short names).
//!
//! Errors are `io::Error`s, as the OS reports them: an accept that finds the
//! process out of file descriptors returns `EMFILE`, and the caller decides
//! how to back off (the examples sleep briefly).

mod addr;
mod split;
pub mod tcp;
#[cfg(test)]
mod tests;
mod udp;
#[cfg(unix)]
pub mod unix;

pub use self::addr::{ToSocketAddrs, lookup_host};
pub use self::tcp::listener::{DEFAULT_BACKLOG, TcpIncoming, TcpListener};
pub use self::tcp::stream::TcpStream;
/// The TCP stream's halves, also at their Tokio paths in [`tcp`].
#[doc(no_inline)]
pub use self::tcp::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
pub use self::udp::UdpSocket;
#[cfg(unix)]
pub use self::unix::datagram::UnixDatagram;
#[cfg(unix)]
pub use self::unix::listener::{UnixIncoming, UnixListener};
#[cfg(unix)]
pub use self::unix::stream::UnixStream;

use std::io;

/// The result of shutting down a stream's writing half, for `poll_close`:
/// a peer that already closed the connection leaves nothing to shut.
pub(crate) fn shutdown_write(result: io::Result<()>) -> std::task::Poll<io::Result<()>> {
    std::task::Poll::Ready(match result {
        Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
        result => result,
    })
}

/// Implements `futures_io::AsyncRead` for a byte-stream type, given how to
/// reach its `Registered` socket from `self`.
macro_rules! byte_stream_read {
    ($ty:ty, |$this:ident| $io:expr) => {
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_read_vectored(cx, bufs)
            }
        }

        #[cfg(feature = "hyper")]
        impl hyper::rt::Read for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                mut buf: hyper::rt::ReadBufCursor<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $this = &*self;
                // SAFETY: `poll_read_uninit` only writes bytes into the
                // slice (the kernel's `recv`), never de-initialises any.
                let unfilled = unsafe { buf.as_mut() };
                let n = std::task::ready!(crate::compat::poll_read_uninit(&$io, cx, unfilled))?;
                // SAFETY: the kernel initialised the first `n` bytes.
                unsafe { buf.advance(n) };
                std::task::Poll::Ready(Ok(()))
            }
        }

        #[cfg(feature = "tokio-compat")]
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $this = &*self;
                // SAFETY: as for `hyper::rt::Read` above: only written to.
                let unfilled = unsafe { buf.unfilled_mut() };
                let n = std::task::ready!(crate::compat::poll_read_uninit(&$io, cx, unfilled))?;
                // SAFETY: the kernel initialised the first `n` unfilled bytes.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                std::task::Poll::Ready(Ok(()))
            }
        }
    };
}

/// Implements `futures_io::AsyncWrite` for a byte-stream type; closing shuts
/// down the writing half.
macro_rules! byte_stream_write {
    ($ty:ty, |$this:ident| $io:expr) => {
        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                // Writes go straight to the kernel: nothing is buffered here.
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $this = &*self;
                crate::net::shutdown_write($io.get_ref().shutdown(std::net::Shutdown::Write))
            }
        }

        #[cfg(feature = "hyper")]
        crate::net::write_through_futures_io!(hyper::rt::Write, $ty);

        #[cfg(feature = "tokio-compat")]
        crate::net::write_through_futures_io!(tokio::io::AsyncWrite, $ty);
    };
}

/// Implements another crate's write trait (hyper's `rt::Write`, Tokio's
/// `AsyncWrite`: the same five methods) by the `futures-io` impl.
#[cfg(any(feature = "hyper", feature = "tokio-compat"))]
macro_rules! write_through_futures_io {
    ($trait:path, $ty:ty) => {
        impl $trait for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncWrite::poll_write(self, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncWrite::poll_write_vectored(self, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                futures_io::AsyncWrite::poll_flush(self, cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                futures_io::AsyncWrite::poll_close(self, cx)
            }
        }
    };
}

/// Both traits.
macro_rules! byte_stream {
    ($ty:ty, |$this:ident| $io:expr) => {
        crate::net::byte_stream_read!($ty, |$this| $io);
        crate::net::byte_stream_write!($ty, |$this| $io);
    };
}

pub(crate) use self::addr::{each_addr, first_that_works, resolve};
#[cfg(any(feature = "hyper", feature = "tokio-compat"))]
pub(crate) use write_through_futures_io;
pub(crate) use {byte_stream, byte_stream_read, byte_stream_write};
