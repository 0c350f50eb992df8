//! [`BufReader`]: buffering for any [`AsyncRead`].

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};

/// The default capacity of a [`BufReader`]: 8 KiB.
const DEFAULT_CAPACITY: usize = 8 * 1024;

/// Adds a buffer to a reader, making it an [`AsyncBufRead`] and turning many
/// small reads into a few large ones.
///
/// Reads at least as large as the capacity, made while the buffer is empty,
/// go straight to the inner reader, skipping the copy. If `R` is also an
/// [`AsyncWrite`], so is the `BufReader`: writes go straight through.
///
/// The trait implementations need `R: Unpin` (the `BufReader` then is too);
/// to buffer a reader that is not, pin it first: `BufReader::new(Box::pin(r))`.
///
/// ```
/// use weft_io::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
///
/// futures::executor::block_on(async {
///     let mut reader = BufReader::new(futures::io::Cursor::new(b"key=value\nrest".to_vec()));
///     let mut key = Vec::new();
///     reader.read_until(b'=', &mut key).await?;
///     assert_eq!(key, b"key=");
///     assert_eq!(reader.buffer(), b"value\nrest");
///     let mut rest = String::new();
///     reader.read_to_string(&mut rest).await?;
///     assert_eq!(rest, "value\nrest");
///     # Ok::<(), std::io::Error>(())
/// }).unwrap();
/// ```
pub struct BufReader<R> {
    inner: R,
    buf: Box<[u8]>,
    /// `buf[pos..filled]` is what has been read from `inner` and not yet
    /// consumed.
    pos: usize,
    filled: usize,
}

impl<R> BufReader<R> {
    /// Buffers `inner` with the default capacity (8 KiB).
    pub fn new(inner: R) -> Self {
        Self::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// Buffers `inner` with a buffer of `capacity` bytes.
    ///
    /// With a capacity of zero, `poll_fill_buf` always returns an empty
    /// buffer, which callers read as end of file; reads still go through.
    pub fn with_capacity(capacity: usize, inner: R) -> Self {
        BufReader {
            inner,
            buf: vec![0; capacity].into_boxed_slice(),
            pos: 0,
            filled: 0,
        }
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The inner reader, mutably. Reading from it directly skips the bytes
    /// in the buffer, which are still returned first by the `BufReader`.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The inner reader back; the buffered bytes ([`buffer`](Self::buffer))
    /// are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The bytes read from the inner reader and not yet consumed.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// The size of the buffer.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Empties the buffer.
    fn discard_buffer(&mut self) {
        self.pos = 0;
        self.filled = 0;
    }

    /// Marks `amt` buffered bytes as read (at most all of them).
    fn consume_bytes(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.filled);
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for BufReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pos == this.filled && out.len() >= this.buf.len() {
            this.discard_buffer();
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let available = ready!(Pin::new(&mut *this).poll_fill_buf(cx))?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        this.consume_bytes(n);
        Poll::Ready(Ok(n))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if this.pos == this.filled && total >= this.buf.len() {
            this.discard_buffer();
            return Pin::new(&mut this.inner).poll_read_vectored(cx, bufs);
        }
        let mut available = ready!(Pin::new(&mut *this).poll_fill_buf(cx))?;
        let mut n = 0;
        for buf in bufs {
            let len = available.len().min(buf.len());
            buf[..len].copy_from_slice(&available[..len]);
            available = &available[len..];
            n += len;
            if available.is_empty() {
                break;
            }
        }
        this.consume_bytes(n);
        Poll::Ready(Ok(n))
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for BufReader<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pos >= this.filled {
            let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut this.buf))?;
            this.pos = 0;
            this.filled = n.min(this.buf.len());
        }
        Poll::Ready(Ok(&this.buf[this.pos..this.filled]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().consume_bytes(amt);
    }
}

impl<R: AsyncWrite + Unpin> AsyncWrite for BufReader<R> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl<R: fmt::Debug> fmt::Debug for BufReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufReader")
            .field("inner", &self.inner)
            .field("buffered", &(self.filled - self.pos))
            .field("capacity", &self.buf.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_util::{Chunked, PendingEvery, block_on_counting};
    use crate::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    use futures::executor::block_on;
    use futures::io::Cursor;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 253) as u8).collect()
    }

    #[test]
    fn small_reads_are_buffered() {
        block_on(async {
            let mut r = BufReader::with_capacity(16, Chunked::new(Cursor::new(data(40)), usize::MAX));
            assert_eq!(r.capacity(), 16);
            let mut b = [0; 4];
            r.read_exact(&mut b).await.unwrap();
            assert_eq!(b, [0, 1, 2, 3]);
            assert_eq!(r.buffer(), &data(16)[4..]);
            assert_eq!(r.get_ref().reads, 1);
            r.read_exact(&mut b).await.unwrap();
            assert_eq!(b, [4, 5, 6, 7]);
            assert_eq!(r.get_ref().reads, 1);
            assert_eq!(r.buffer().len(), 8);
        });
    }

    #[test]
    fn large_reads_bypass_an_empty_buffer() {
        block_on(async {
            let src = data(100);
            let mut r = BufReader::with_capacity(8, Chunked::new(Cursor::new(src.clone()), usize::MAX));
            let mut big = [0; 8];
            // Empty buffer, read as large as the capacity: straight through.
            assert_eq!(r.read(&mut big).await.unwrap(), 8);
            assert_eq!(big, src[..8]);
            assert!(r.buffer().is_empty());
            // A small read fills the buffer.
            let mut small = [0; 2];
            assert_eq!(r.read(&mut small).await.unwrap(), 2);
            assert_eq!(small, src[8..10]);
            assert_eq!(r.buffer(), &src[10..16]);
            // A large read with bytes buffered returns those first.
            assert_eq!(r.read(&mut big).await.unwrap(), 6);
            assert_eq!(big[..6], src[10..16]);
            assert_eq!(r.get_ref().reads, 2);
            // Then bypasses again.
            let mut huge = [0; 50];
            assert_eq!(r.read(&mut huge).await.unwrap(), 50);
            assert_eq!(huge, src[16..66]);
            assert!(r.buffer().is_empty());
            assert_eq!(r.get_ref().reads, 3);
        });
    }

    #[test]
    fn fill_buf_and_consume() {
        block_on(async {
            let mut r = BufReader::with_capacity(4, Cursor::new(b"abcdef".to_vec()));
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let got = Pin::new(&mut r).poll_fill_buf(&mut cx);
            assert!(matches!(got, Poll::Ready(Ok(b"abcd"))));
            Pin::new(&mut r).consume(3);
            assert_eq!(r.buffer(), b"d");
            Pin::new(&mut r).consume(100);
            assert_eq!(r.buffer(), b"");
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b"ef");
        });
    }

    #[test]
    fn reads_keep_progress_across_pending() {
        let src = data(10_000);
        let mut r = BufReader::with_capacity(64, PendingEvery::new(Chunked::new(Cursor::new(src.clone()), 7)));
        let mut out = vec![0; 10_000];
        let (res, pendings) = block_on_counting(r.read_exact(&mut out));
        res.unwrap();
        assert_eq!(out, src);
        assert!(pendings > 1000);
    }

    #[test]
    fn vectored_reads() {
        block_on(async {
            let src = data(30);
            let mut r = BufReader::with_capacity(8, Cursor::new(src.clone()));
            let mut a = [0; 3];
            let mut b = [0; 3];
            let mut bufs = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)];
            let n = futures::AsyncReadExt::read_vectored(&mut r, &mut bufs).await.unwrap();
            assert_eq!(n, 6);
            assert_eq!((a, b), ([0, 1, 2], [3, 4, 5]));
            assert_eq!(r.buffer(), &src[6..8]);
            let mut c = [0; 10];
            let mut bufs = [IoSliceMut::new(&mut c)];
            assert_eq!(
                futures::AsyncReadExt::read_vectored(&mut r, &mut bufs).await.unwrap(),
                2
            );
            assert_eq!(c[..2], src[6..8]);
            // Empty buffer, large vectored read: bypass.
            let mut bufs = [IoSliceMut::new(&mut c)];
            assert_eq!(
                futures::AsyncReadExt::read_vectored(&mut r, &mut bufs).await.unwrap(),
                10
            );
            assert_eq!(c, src[8..18]);
            assert!(r.buffer().is_empty());
        });
    }

    #[test]
    fn writes_pass_through() {
        block_on(async {
            let mut rw = BufReader::new(Cursor::new(Vec::new()));
            rw.write_all(b"abc").await.unwrap();
            rw.flush().await.unwrap();
            rw.close().await.unwrap();
            assert_eq!(rw.into_inner().into_inner(), b"abc");
        });
    }

    #[test]
    fn lines_over_a_bufreader_with_tiny_capacity() {
        block_on(async {
            use futures::StreamExt;
            let r = BufReader::with_capacity(2, Cursor::new(b"alpha\r\nbeta\ngamma".to_vec()));
            let lines: Vec<String> = r.lines().map(Result::unwrap).collect().await;
            assert_eq!(lines, ["alpha", "beta", "gamma"]);
        });
    }

    #[test]
    fn into_inner_get_mut_and_debug() {
        let mut r = BufReader::new(Cursor::new(vec![1, 2, 3]));
        assert_eq!(r.capacity(), 8 * 1024);
        r.get_mut().set_position(1);
        assert_eq!(r.get_ref().position(), 1);
        assert!(format!("{r:?}").contains("capacity: 8192"));
        assert_eq!(r.into_inner().into_inner(), [1, 2, 3]);
    }
}
