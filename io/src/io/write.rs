//! [`AsyncWriteExt`]: `write`, `write_all`, `write_vectored`, `flush` and
//! `close` as futures.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::AsyncWrite;

/// Extension methods for every [`AsyncWrite`]: each returns a future that
/// does the writing when awaited.
///
/// The methods borrow the writer mutably and need it to be [`Unpin`]; pin a
/// writer that is not (`Box::pin(writer)`, or `std::pin::pin!`) to use them.
///
/// # Cancellation
///
/// [`write`](Self::write) and [`write_vectored`](Self::write_vectored) are
/// cancel-safe: dropping the future before it completes writes nothing.
/// [`write_all`](Self::write_all) is not: a future dropped part-way may have
/// written a prefix of the buffer, and the caller cannot tell how much.
pub trait AsyncWriteExt: AsyncWrite {
    /// Writes some bytes from `buf`, returning how many were written.
    ///
    /// `Ok(0)` for a non-empty `buf` usually means the writer can take no
    /// more. Cancel-safe.
    fn write<'a>(&'a mut self, buf: &'a [u8]) -> Write<'a, Self>
    where
        Self: Unpin,
    {
        Write { writer: self, buf }
    }

    /// Writes all of `buf`, with as many writes as it takes.
    ///
    /// A write that takes no bytes is an error of kind
    /// [`io::ErrorKind::WriteZero`]; writes failing with
    /// [`io::ErrorKind::Interrupted`] are retried.
    ///
    /// Not cancel-safe: a future dropped part-way may have written some of
    /// `buf`.
    ///
    /// ```
    /// use weft_io::io::AsyncWriteExt;
    ///
    /// futures::executor::block_on(async {
    ///     let mut out = futures::io::Cursor::new(Vec::new());
    ///     out.write_all(b"hello, ").await?;
    ///     out.write_all(b"world").await?;
    ///     out.flush().await?;
    ///     assert_eq!(out.get_ref(), b"hello, world");
    ///     # Ok::<(), std::io::Error>(())
    /// }).unwrap();
    /// ```
    fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> WriteAll<'a, Self>
    where
        Self: Unpin,
    {
        WriteAll { writer: self, buf }
    }

    /// Writes some bytes from the buffers `bufs`, in order, with one
    /// vectored write, returning how many were written. Cancel-safe.
    ///
    /// Writers without a vectored write of their own write the first
    /// non-empty buffer only.
    fn write_vectored<'a>(&'a mut self, bufs: &'a [IoSlice<'a>]) -> WriteVectored<'a, Self>
    where
        Self: Unpin,
    {
        WriteVectored { writer: self, bufs }
    }

    /// Flushes the writer: everything written so far reaches its
    /// destination.
    fn flush(&mut self) -> Flush<'_, Self>
    where
        Self: Unpin,
    {
        Flush { writer: self }
    }

    /// Flushes and closes the writer. For a socket this shuts down the
    /// writing half, so the peer reads end of file.
    fn close(&mut self) -> Close<'_, Self>
    where
        Self: Unpin,
    {
        Close { writer: self }
    }
}

impl<W: AsyncWrite + ?Sized> AsyncWriteExt for W {}

/// Future of [`AsyncWriteExt::write`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Write<'a, W: ?Sized> {
    writer: &'a mut W,
    buf: &'a [u8],
}

impl<W: AsyncWrite + Unpin + ?Sized> Future for Write<'_, W> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut *this.writer).poll_write(cx, this.buf)
    }
}

impl<W: ?Sized> fmt::Debug for Write<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Write")
            .field("buf_len", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// Future of [`AsyncWriteExt::write_all`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct WriteAll<'a, W: ?Sized> {
    writer: &'a mut W,
    /// What is left to write.
    buf: &'a [u8],
}

impl<W: AsyncWrite + Unpin + ?Sized> Future for WriteAll<'_, W> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        while !this.buf.is_empty() {
            match ready!(Pin::new(&mut *this.writer).poll_write(cx, this.buf)) {
                Ok(0) => return Poll::Ready(Err(write_zero())),
                Ok(n) => this.buf = &this.buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: ?Sized> fmt::Debug for WriteAll<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteAll")
            .field("remaining", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// The error for a writer that takes no bytes.
pub(super) fn write_zero() -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, "failed to write the whole buffer")
}

/// Future of [`AsyncWriteExt::write_vectored`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct WriteVectored<'a, W: ?Sized> {
    writer: &'a mut W,
    bufs: &'a [IoSlice<'a>],
}

impl<W: AsyncWrite + Unpin + ?Sized> Future for WriteVectored<'_, W> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut *this.writer).poll_write_vectored(cx, this.bufs)
    }
}

impl<W: ?Sized> fmt::Debug for WriteVectored<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteVectored")
            .field("bufs", &self.bufs.len())
            .finish_non_exhaustive()
    }
}

/// Future of [`AsyncWriteExt::flush`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Flush<'a, W: ?Sized> {
    writer: &'a mut W,
}

impl<W: AsyncWrite + Unpin + ?Sized> Future for Flush<'_, W> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut *self.get_mut().writer).poll_flush(cx)
    }
}

impl<W: ?Sized> fmt::Debug for Flush<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flush").finish_non_exhaustive()
    }
}

/// Future of [`AsyncWriteExt::close`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Close<'a, W: ?Sized> {
    writer: &'a mut W,
}

impl<W: AsyncWrite + Unpin + ?Sized> Future for Close<'_, W> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut *self.get_mut().writer).poll_close(cx)
    }
}

impl<W: ?Sized> fmt::Debug for Close<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Close").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_util::{Chunked, PendingEvery, ZeroWriter, block_on_counting};
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn write_is_partial() {
        block_on(async {
            let mut w = Chunked::new(Vec::new(), 2);
            assert_eq!(w.write(b"abc").await.unwrap(), 2);
            assert_eq!(w.get_ref(), b"ab");
        });
    }

    #[test]
    fn write_all_keeps_progress_across_pending_and_short_writes() {
        let src: Vec<u8> = (0..=255).collect();
        let mut w = PendingEvery::new(Chunked::new(Vec::new(), 1));
        let (res, pendings) = block_on_counting(w.write_all(&src));
        res.unwrap();
        assert_eq!(w.get_ref().get_ref(), &src);
        assert_eq!(pendings, src.len());
    }

    #[test]
    fn write_all_zero_write_is_write_zero() {
        block_on(async {
            let err = ZeroWriter.write_all(b"x").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WriteZero);
            ZeroWriter.write_all(b"").await.unwrap();
        });
    }

    #[test]
    fn write_vectored_flush_close() {
        let mut w = PendingEvery::new(Chunked::new(Cursor::new(Vec::new()), usize::MAX));
        let bufs = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cd")];
        let (n, pendings) = block_on_counting(w.write_vectored(&bufs));
        assert_eq!(pendings, 1);
        // Chunked has no vectored write: the first non-empty buffer goes.
        assert_eq!(n.unwrap(), 2);
        let (res, pendings) = block_on_counting(w.flush());
        res.unwrap();
        assert_eq!(pendings, 1);
        let (res, pendings) = block_on_counting(w.close());
        res.unwrap();
        assert_eq!(pendings, 1);
        let inner = w.get_ref();
        assert_eq!((inner.flushes, inner.closes), (1, 1));
        assert_eq!(inner.get_ref().get_ref(), b"ab");
    }

    #[test]
    fn write_vectored_uses_the_writers_vectored_write() {
        block_on(async {
            let mut w = Cursor::new(Vec::new());
            let bufs = [IoSlice::new(b"ab"), IoSlice::new(b"cd")];
            assert_eq!(w.write_vectored(&bufs).await.unwrap(), 4);
            assert_eq!(w.get_ref(), b"abcd");
        });
    }

    #[test]
    fn works_on_unsized_writers() {
        block_on(async {
            let mut v = Vec::new();
            let w: &mut (dyn AsyncWrite + Unpin) = &mut v;
            w.write_all(b"dyn").await.unwrap();
            w.flush().await.unwrap();
            assert_eq!(v, b"dyn");
        });
    }
}
