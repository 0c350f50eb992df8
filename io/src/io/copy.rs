//! [`copy`] and [`copy_buf`]: moving a whole stream into a writer.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};

use super::write::write_zero;

/// The size of [`copy`]'s buffer.
const COPY_BUFFER: usize = 8 * 1024;

/// Copies everything from `reader` to `writer`, until end of file, then
/// flushes `writer`; returns how many bytes were copied.
///
/// Goes through an 8 KiB buffer of its own; for a reader that has a buffer
/// already, [`copy_buf`] saves a copy. While the reader has nothing to give,
/// what was written is flushed, so a buffering writer does not sit on data
/// the other side is waiting for. A write that takes no bytes is an error
/// of kind [`io::ErrorKind::WriteZero`]; reads and writes failing with
/// [`io::ErrorKind::Interrupted`] are retried. `writer` is not closed.
///
/// Not cancel-safe: if the future is dropped part-way, up to 8 KiB that were
/// read may not have been written, and are lost.
///
/// ```
/// futures::executor::block_on(async {
///     let mut reader = futures::io::Cursor::new(vec![7u8; 20_000]);
///     let mut writer = Vec::new();
///     assert_eq!(weft_io::io::copy(&mut reader, &mut writer).await?, 20_000);
///     assert_eq!(writer, vec![7u8; 20_000]);
///     # Ok::<(), std::io::Error>(())
/// }).unwrap();
/// ```
pub async fn copy<R, W>(reader: &mut R, writer: &mut W) -> io::Result<u64>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut copier = Copier {
        buf: vec![0; COPY_BUFFER].into_boxed_slice(),
        pos: 0,
        end: 0,
        eof: false,
        unflushed: false,
        copied: 0,
    };
    poll_fn(|cx| copier.poll(cx, Pin::new(&mut *reader), Pin::new(&mut *writer))).await
}

/// The state of a [`copy`].
struct Copier {
    buf: Box<[u8]>,
    /// `buf[pos..end]` is read and not yet written.
    pos: usize,
    end: usize,
    /// The reader reached end of file.
    eof: bool,
    /// Something was written since the last flush.
    unflushed: bool,
    copied: u64,
}

impl Copier {
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.pos == self.end && !self.eof {
                match reader.as_mut().poll_read(cx, &mut self.buf) {
                    Poll::Ready(Ok(0)) => self.eof = true,
                    Poll::Ready(Ok(n)) => {
                        self.pos = 0;
                        self.end = n.min(self.buf.len());
                    }
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        ready!(poll_flush_if(&mut self.unflushed, writer.as_mut(), cx))?;
                        return Poll::Pending;
                    }
                }
            }
            while self.pos < self.end {
                match ready!(writer.as_mut().poll_write(cx, &self.buf[self.pos..self.end])) {
                    Ok(0) => return Poll::Ready(Err(write_zero())),
                    Ok(n) => {
                        self.pos += n;
                        self.copied += n as u64;
                        self.unflushed = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if self.eof {
                ready!(writer.as_mut().poll_flush(cx))?;
                return Poll::Ready(Ok(self.copied));
            }
        }
    }
}

/// Flushes `writer` if `*unflushed`, clearing it once done.
fn poll_flush_if<W: AsyncWrite + ?Sized>(
    unflushed: &mut bool,
    writer: Pin<&mut W>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    if *unflushed {
        ready!(writer.poll_flush(cx))?;
        *unflushed = false;
    }
    Poll::Ready(Ok(()))
}

/// Copies everything from `reader` to `writer`, until end of file, straight
/// from the reader's own buffer, then flushes `writer`; returns how many
/// bytes were copied.
///
/// As [`copy`], but with no buffer of its own: each write takes bytes from
/// [`AsyncBufRead::poll_fill_buf`] and consumes what was written, so no byte
/// is read that has not been written.
///
/// Not cancel-safe in that the count is lost, but no data is: if the future
/// is dropped part-way, the bytes not written yet are still in the reader.
///
/// ```
/// use weft_io::io::BufReader;
///
/// futures::executor::block_on(async {
///     let mut reader = BufReader::new(&b"copied through the reader's buffer"[..]);
///     let mut writer = Vec::new();
///     weft_io::io::copy_buf(&mut reader, &mut writer).await?;
///     assert_eq!(writer, b"copied through the reader's buffer");
///     # Ok::<(), std::io::Error>(())
/// }).unwrap();
/// ```
pub async fn copy_buf<R, W>(reader: &mut R, writer: &mut W) -> io::Result<u64>
where
    R: AsyncBufRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut copied = 0u64;
    let mut unflushed = false;
    poll_fn(|cx| {
        let mut reader = Pin::new(&mut *reader);
        let mut writer = Pin::new(&mut *writer);
        loop {
            let available = match reader.as_mut().poll_fill_buf(cx) {
                Poll::Ready(Ok(available)) => available,
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    ready!(poll_flush_if(&mut unflushed, writer.as_mut(), cx))?;
                    return Poll::Pending;
                }
            };
            if available.is_empty() {
                ready!(writer.as_mut().poll_flush(cx))?;
                return Poll::Ready(Ok(copied));
            }
            let n = match ready!(writer.as_mut().poll_write(cx, available)) {
                Ok(0) => return Poll::Ready(Err(write_zero())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            };
            reader.as_mut().consume(n);
            copied += n as u64;
            unflushed = true;
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::BufReader;
    use crate::io::test_util::{Chunked, FailAfter, PendingEvery, ZeroWriter, block_on_counting};
    use futures::executor::block_on;
    use futures::io::Cursor;

    fn mib() -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..1 << 20)
            .map(|_| {
                // xorshift: bytes with no short period.
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn copy_one_mib_byte_exact() {
        let src = mib();
        let mut r = Cursor::new(src.clone());
        let mut w = Chunked::new(Vec::new(), 1000);
        let n = block_on(copy(&mut r, &mut w)).unwrap();
        assert_eq!(n, src.len() as u64);
        assert!(w.get_ref() == &src);
        assert_eq!(w.flushes, 1);
    }

    #[test]
    fn copy_through_pending_and_short_transfers() {
        let src = mib()[..50_000].to_vec();
        let mut r = PendingEvery::new(Chunked::new(Cursor::new(src.clone()), 333));
        let mut w = PendingEvery::new(Chunked::new(Vec::new(), 1));
        let (n, pendings) = block_on_counting(copy(&mut r, &mut w));
        assert_eq!(n.unwrap(), 50_000);
        assert!(w.get_ref().get_ref() == &src);
        assert!(pendings > 50_000);
    }

    #[test]
    fn copy_flushes_while_the_reader_is_pending() {
        let src = mib()[..1000].to_vec();
        let mut r = PendingEvery::new(Chunked::new(Cursor::new(src.clone()), 100));
        let mut w = Chunked::new(Vec::new(), usize::MAX);
        let (n, pendings) = block_on_counting(copy(&mut r, &mut w));
        assert_eq!(n.unwrap(), 1000);
        assert!(w.get_ref() == &src);
        // 11 reads (the last one at end of file), each first Pending: no
        // flush the first time (nothing written yet), one per later Pending
        // and one at the end.
        assert_eq!(pendings, 11);
        assert_eq!(w.flushes, 11);
    }

    #[test]
    fn copy_buf_flushes_while_the_reader_is_pending() {
        let src = mib()[..1000].to_vec();
        let mut r = PendingEvery::new(Chunked::new(Cursor::new(src.clone()), 100));
        let mut w = Chunked::new(Vec::new(), usize::MAX);
        let (n, pendings) = block_on_counting(copy_buf(&mut r, &mut w));
        assert_eq!(n.unwrap(), 1000);
        assert!(w.get_ref() == &src);
        assert_eq!(pendings, 11);
        assert_eq!(w.flushes, 11);
    }

    #[test]
    fn copy_empty_and_errors() {
        block_on(async {
            let mut w = Chunked::new(Vec::new(), usize::MAX);
            assert_eq!(copy(&mut Cursor::new(Vec::new()), &mut w).await.unwrap(), 0);
            assert_eq!(w.flushes, 1);
            let err = copy(&mut Cursor::new(vec![1]), &mut ZeroWriter).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WriteZero);
            let mut r = FailAfter::new(Cursor::new(vec![9; 100]), 10);
            let mut w = Vec::new();
            let err = copy(&mut r, &mut w).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            assert_eq!(w, [9; 10]);
        });
    }

    #[test]
    fn copy_unsized() {
        block_on(async {
            let mut cursor = Cursor::new(b"dyn".to_vec());
            let mut out = Vec::new();
            let r: &mut (dyn AsyncRead + Unpin) = &mut cursor;
            let w: &mut (dyn AsyncWrite + Unpin) = &mut out;
            assert_eq!(copy(r, w).await.unwrap(), 3);
            assert_eq!(out, b"dyn");
        });
    }

    #[test]
    fn copy_buf_one_mib_byte_exact() {
        let src = mib();
        let mut r = BufReader::new(Chunked::new(Cursor::new(src.clone()), 5000));
        let mut w = Vec::new();
        let n = block_on(copy_buf(&mut r, &mut w)).unwrap();
        assert_eq!(n, src.len() as u64);
        assert!(w == src);
    }

    #[test]
    fn copy_buf_through_pending_and_short_writes() {
        let src = mib()[..20_000].to_vec();
        let mut r = PendingEvery::new(BufReader::with_capacity(
            100,
            Chunked::new(Cursor::new(src.clone()), 77),
        ));
        let mut w = PendingEvery::new(Chunked::new(Vec::new(), 1));
        let (n, pendings) = block_on_counting(copy_buf(&mut r, &mut w));
        assert_eq!(n.unwrap(), 20_000);
        assert!(w.get_ref().get_ref() == &src);
        assert!(pendings > 20_000);
    }

    #[test]
    fn copy_buf_zero_write_leaves_data_in_reader() {
        block_on(async {
            let mut r = BufReader::new(Cursor::new(b"abc".to_vec()));
            let err = copy_buf(&mut r, &mut ZeroWriter).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WriteZero);
            assert_eq!(r.buffer(), b"abc");
        });
    }
}
