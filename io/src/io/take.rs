//! `Take`: a reader that stops after a number of bytes.

use futures_io::{AsyncBufRead, AsyncRead};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// A reader that yields at most `limit` bytes of the reader it wraps, then
/// end of stream; made by [`AsyncReadExt::take`](super::AsyncReadExt::take).
///
/// The usual guard against a peer that sends without end: cap a line read
/// (`read_until` on a `Take`) or a message body.
///
/// ```
/// use weft_io::io::{AsyncBufReadExt, AsyncReadExt};
///
/// futures::executor::block_on(async {
///     let mut input = futures::io::Cursor::new(b"a very long line without an end".to_vec());
///     let mut line = Vec::new();
///     // At most 8 bytes, newline or not.
///     (&mut input).take(8).read_until(b'\n', &mut line).await?;
///     assert_eq!(line, b"a very l");
///     # Ok::<(), std::io::Error>(())
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct Take<R> {
    inner: R,
    limit: u64,
}

impl<R> Take<R> {
    pub(super) fn new(inner: R, limit: u64) -> Take<R> {
        Take { inner, limit }
    }

    /// Bytes left before end of stream.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Sets the bytes left.
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped reader, mutably (reading from it directly does not count
    /// against the limit).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Take<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.limit == 0 {
            return Poll::Ready(Ok(0));
        }
        let max = usize::try_from(self.limit).unwrap_or(usize::MAX).min(buf.len());
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf[..max]))?;
        self.limit -= n as u64;
        Poll::Ready(Ok(n))
    }
}

impl<R: AsyncBufRead + Unpin> AsyncBufRead for Take<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.limit == 0 {
            return Poll::Ready(Ok(&[]));
        }
        let available = ready!(Pin::new(&mut this.inner).poll_fill_buf(cx))?;
        let max = usize::try_from(this.limit).unwrap_or(usize::MAX).min(available.len());
        Poll::Ready(Ok(&available[..max]))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        let amt = usize::try_from(self.limit).unwrap_or(usize::MAX).min(amt);
        self.limit -= amt as u64;
        Pin::new(&mut self.inner).consume(amt);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AsyncBufReadExt, AsyncReadExt};

    #[test]
    fn stops_at_the_limit_and_leaves_the_rest() {
        futures::executor::block_on(async {
            let mut input = futures::io::Cursor::new(b"hello world".to_vec());
            let mut first = Vec::new();
            (&mut input).take(5).read_to_end(&mut first).await.unwrap();
            assert_eq!(first, b"hello");
            let mut rest = Vec::new();
            input.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b" world");
        });
    }

    #[test]
    fn a_capped_line_read() {
        futures::executor::block_on(async {
            let mut input = futures::io::Cursor::new(b"short\nloooooooong\n".to_vec());
            let mut line = Vec::new();
            (&mut input).take(8).read_until(b'\n', &mut line).await.unwrap();
            assert_eq!(line, b"short\n");
            line.clear();
            let mut capped = (&mut input).take(8);
            capped.read_until(b'\n', &mut line).await.unwrap();
            assert_eq!(line, b"loooooooo"[..8].to_vec());
            assert_eq!(capped.limit(), 0);
        });
    }
}
