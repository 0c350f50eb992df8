//! [`AsyncReadExt`]: `read`, `read_exact`, `read_to_end` and
//! `read_to_string` as futures.

use std::fmt;
use std::future::Future;
use std::io;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::AsyncRead;

/// The size of the stack buffer used to probe for EOF before growing a full
/// `Vec` in [`AsyncReadExt::read_to_end`].
const PROBE_SIZE: usize = 32;

/// Extension methods for every [`AsyncRead`]: each returns a future that does
/// the reading when awaited.
///
/// The methods borrow the reader mutably and need it to be [`Unpin`]; pin a
/// reader that is not (`Box::pin(reader)`, or `std::pin::pin!`) to use them.
///
/// # Cancellation
///
/// [`read`](Self::read) is cancel-safe: dropping its future before it
/// completes reads nothing. The others are not: a future dropped part-way
/// may have taken bytes from the reader that the caller never sees (see each
/// method).
pub trait AsyncReadExt: AsyncRead {
    /// Reads some bytes into `buf`, returning how many: `Ok(0)` means
    /// end of file (or an empty `buf`).
    ///
    /// Cancel-safe: if the future is dropped before it completes, no bytes
    /// were read.
    ///
    /// ```
    /// use weft_io::io::AsyncReadExt;
    ///
    /// futures::executor::block_on(async {
    ///     let mut reader = futures::io::Cursor::new(b"hello".to_vec());
    ///     let mut buf = [0; 3];
    ///     assert_eq!(reader.read(&mut buf).await?, 3);
    ///     assert_eq!(&buf, b"hel");
    ///     # Ok::<(), std::io::Error>(())
    /// }).unwrap();
    /// ```
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Read<'a, Self>
    where
        Self: Unpin,
    {
        Read { reader: self, buf }
    }

    /// Reads exactly `buf.len()` bytes, filling `buf`.
    ///
    /// End of file before `buf` is full is an error of kind
    /// [`io::ErrorKind::UnexpectedEof`]; the contents of `buf` are then
    /// unspecified. Reads failing with [`io::ErrorKind::Interrupted`] are
    /// retried.
    ///
    /// Not cancel-safe: a future dropped part-way has read the bytes it put
    /// in the front of `buf`, and the caller cannot tell how many.
    fn read_exact<'a>(&'a mut self, buf: &'a mut [u8]) -> ReadExact<'a, Self>
    where
        Self: Unpin,
    {
        ReadExact { reader: self, buf }
    }

    /// Reads until end of file, appending everything to `buf`, and returns
    /// how many bytes were appended.
    ///
    /// `buf` grows geometrically (amortised linear time); when it is full, a
    /// small probe read checks for end of file before it is grown, so a `Vec`
    /// allocated with the exact size is not doubled for nothing. Reads
    /// failing with [`io::ErrorKind::Interrupted`] are retried. On any
    /// other error the bytes read so far stay appended to `buf`.
    ///
    /// Not cancel-safe: a future dropped part-way leaves the bytes it read
    /// appended to `buf`, but the caller does not learn whether the end was
    /// reached.
    fn read_to_end<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> ReadToEnd<'a, Self>
    where
        Self: Unpin,
    {
        ReadToEnd::new(self, buf)
    }

    /// Reads until end of file, appending everything to `buf` as UTF-8, and
    /// returns how many bytes were appended.
    ///
    /// If the bytes read are not valid UTF-8, the result is an error of kind
    /// [`io::ErrorKind::InvalidData`] and `buf` is unchanged. On an I/O
    /// error the bytes read so far are appended if they are valid UTF-8 (as
    /// in `std`). Reads failing with [`io::ErrorKind::Interrupted`] are
    /// retried.
    ///
    /// Not cancel-safe: a future dropped part-way loses the bytes it read,
    /// and leaves `buf` unchanged.
    ///
    /// ```
    /// use weft_io::io::AsyncReadExt;
    ///
    /// futures::executor::block_on(async {
    ///     let mut reader = futures::io::Cursor::new("grüße".as_bytes().to_vec());
    ///     let mut text = String::from("> ");
    ///     assert_eq!(reader.read_to_string(&mut text).await?, 7);
    ///     assert_eq!(text, "> grüße");
    ///     # Ok::<(), std::io::Error>(())
    /// }).unwrap();
    /// ```
    fn read_to_string<'a>(&'a mut self, buf: &'a mut String) -> ReadToString<'a, Self>
    where
        Self: Unpin,
    {
        // Reading into an empty string's own allocation is free to undo
        // (it stays empty on failure); otherwise the new bytes go to a side
        // buffer and are appended once validated.
        let bytes = if buf.is_empty() {
            mem::take(buf).into_bytes()
        } else {
            Vec::new()
        };
        ReadToString {
            reader: self,
            buf,
            bytes,
            filled: 0,
        }
    }

    /// A reader that yields at most `limit` bytes of this one, then end of
    /// stream; see [`Take`](super::Take).
    fn take(self, limit: u64) -> super::Take<Self>
    where
        Self: Sized,
    {
        super::Take::new(self, limit)
    }
}

impl<R: AsyncRead + ?Sized> AsyncReadExt for R {}

/// Future of [`AsyncReadExt::read`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Read<'a, R: ?Sized> {
    reader: &'a mut R,
    buf: &'a mut [u8],
}

impl<R: AsyncRead + Unpin + ?Sized> Future for Read<'_, R> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut *this.reader).poll_read(cx, this.buf)
    }
}

impl<R: ?Sized> fmt::Debug for Read<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Read")
            .field("buf_len", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// Future of [`AsyncReadExt::read_exact`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ReadExact<'a, R: ?Sized> {
    reader: &'a mut R,
    /// The part of the caller's buffer still to fill.
    buf: &'a mut [u8],
}

impl<R: AsyncRead + Unpin + ?Sized> Future for ReadExact<'_, R> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        while !this.buf.is_empty() {
            match ready!(Pin::new(&mut *this.reader).poll_read(cx, this.buf)) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "end of file before the buffer was filled",
                    )));
                }
                Ok(n) => {
                    let rest = mem::take(&mut this.buf);
                    this.buf = &mut rest[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: ?Sized> fmt::Debug for ReadExact<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadExact")
            .field("remaining", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// Future of [`AsyncReadExt::read_to_end`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ReadToEnd<'a, R: ?Sized> {
    reader: &'a mut R,
    buf: &'a mut Vec<u8>,
    /// `buf.len()` when the future was made.
    start_len: usize,
    /// The end of the data in `buf`; between polls `buf` may hold zeroes
    /// past it, ready to be read into (see [`poll_read_to_end`]). Dropping
    /// the future cuts them off.
    filled: usize,
}

impl<'a, R: ?Sized> ReadToEnd<'a, R> {
    fn new(reader: &'a mut R, buf: &'a mut Vec<u8>) -> Self {
        let start_len = buf.len();
        ReadToEnd {
            reader,
            buf,
            start_len,
            filled: start_len,
        }
    }
}

impl<R: AsyncRead + Unpin + ?Sized> Future for ReadToEnd<'_, R> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = ready!(poll_read_to_end(
            Pin::new(&mut *this.reader),
            cx,
            this.buf,
            &mut this.filled
        ));
        this.buf.truncate(this.filled);
        Poll::Ready(result.map(|()| this.filled - this.start_len))
    }
}

impl<R: ?Sized> Drop for ReadToEnd<'_, R> {
    fn drop(&mut self) {
        // Cut off the zeroes read into nothing yet.
        self.buf.truncate(self.filled);
    }
}

impl<R: ?Sized> fmt::Debug for ReadToEnd<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadToEnd")
            .field("read", &(self.filled - self.start_len))
            .finish_non_exhaustive()
    }
}

/// Future of [`AsyncReadExt::read_to_string`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ReadToString<'a, R: ?Sized> {
    reader: &'a mut R,
    buf: &'a mut String,
    /// The bytes read so far (at `..filled`), appended to `buf` at the end.
    bytes: Vec<u8>,
    filled: usize,
}

impl<R: AsyncRead + Unpin + ?Sized> Future for ReadToString<'_, R> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = ready!(poll_read_to_end(
            Pin::new(&mut *this.reader),
            cx,
            &mut this.bytes,
            &mut this.filled
        ));
        this.bytes.truncate(this.filled);
        let bytes = mem::take(&mut this.bytes);
        Poll::Ready(append_utf8(this.buf, bytes, result))
    }
}

impl<R: ?Sized> fmt::Debug for ReadToString<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadToString")
            .field("read", &self.filled)
            .finish_non_exhaustive()
    }
}

/// Appends `bytes` to `buf` if they are valid UTF-8 and returns how many
/// there were, or the error: `result`'s if the read failed, else
/// [`io::ErrorKind::InvalidData`] for invalid UTF-8 (`buf` unchanged).
///
/// An empty `buf` is replaced by `bytes` rather than copied into.
pub(super) fn append_utf8(buf: &mut String, bytes: Vec<u8>, result: io::Result<()>) -> io::Result<usize> {
    let n = bytes.len();
    let valid = if buf.is_empty() {
        match String::from_utf8(bytes) {
            Ok(s) => {
                *buf = s;
                true
            }
            Err(e) => {
                // Keep the allocation (it may have been `buf`'s own).
                let mut bytes = e.into_bytes();
                bytes.clear();
                *buf = String::from_utf8(bytes).unwrap_or_default();
                false
            }
        }
    } else {
        match std::str::from_utf8(&bytes) {
            Ok(s) => {
                buf.push_str(s);
                true
            }
            Err(_) => false,
        }
    };
    match (result, valid) {
        (Err(e), _) => Err(e),
        (Ok(()), true) => Ok(n),
        (Ok(()), false) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )),
    }
}

/// Reads from `reader` into `buf` until end of file.
///
/// `buf[..*filled]` is the data; `buf[*filled..]` may hold zeroes left from
/// an earlier call, which are read into before the `Vec` is grown, so each
/// byte of capacity is zeroed once. On `Ready`, the caller truncates `buf`
/// to `*filled`.
pub(super) fn poll_read_to_end<R: AsyncRead + ?Sized>(
    mut reader: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
    filled: &mut usize,
) -> Poll<io::Result<()>> {
    loop {
        if *filled == buf.len() {
            if buf.len() == buf.capacity() {
                // Full: probe for end of file before doubling the allocation.
                let mut probe = [0u8; PROBE_SIZE];
                match ready!(reader.as_mut().poll_read(cx, &mut probe)) {
                    Ok(0) => return Poll::Ready(Ok(())),
                    Ok(n) => {
                        buf.extend_from_slice(&probe[..n]);
                        *filled += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            // More data is coming: zero the spare capacity (grown
            // geometrically, by at least 32 bytes) to read into.
            buf.reserve(PROBE_SIZE);
            buf.resize(buf.capacity(), 0);
        }
        match ready!(reader.as_mut().poll_read(cx, &mut buf[*filled..])) {
            Ok(0) => return Poll::Ready(Ok(())),
            Ok(n) => {
                assert!(
                    n <= buf.len() - *filled,
                    "poll_read returned more bytes than the buffer holds"
                );
                *filled += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_util::{Chunked, PendingEvery, block_on_counting};
    use futures::executor::block_on;
    use futures::io::Cursor;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn read_is_partial_and_zero_at_eof() {
        block_on(async {
            let mut r = Cursor::new(b"abcdef".to_vec());
            let mut buf = [0; 4];
            assert_eq!(r.read(&mut buf).await.unwrap(), 4);
            assert_eq!(&buf, b"abcd");
            assert_eq!(r.read(&mut buf).await.unwrap(), 2);
            assert_eq!(&buf[..2], b"ef");
            assert_eq!(r.read(&mut buf).await.unwrap(), 0);
        });
    }

    #[test]
    fn read_through_pending() {
        let mut r = PendingEvery::new(Cursor::new(b"xyz".to_vec()));
        let mut buf = [0; 8];
        let (n, pendings) = block_on_counting(r.read(&mut buf));
        assert_eq!(n.unwrap(), 3);
        assert_eq!(pendings, 1);
    }

    #[test]
    fn read_exact_keeps_progress_across_pending_and_short_reads() {
        let src = data(1000);
        let mut r = PendingEvery::new(Chunked::new(Cursor::new(src.clone()), 1));
        let mut buf = vec![0; 1000];
        let (res, pendings) = block_on_counting(r.read_exact(&mut buf));
        res.unwrap();
        assert_eq!(buf, src);
        assert_eq!(pendings, 1000);
    }

    #[test]
    fn read_exact_eof_is_unexpected_eof() {
        block_on(async {
            let mut r = Chunked::new(Cursor::new(b"abc".to_vec()), 1);
            let mut buf = [0; 4];
            let err = r.read_exact(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            let mut empty = [0; 0];
            r.read_exact(&mut empty).await.unwrap();
        });
    }

    #[test]
    fn read_to_end_appends_across_pending() {
        let src = data(100_000);
        let mut r = PendingEvery::new(Chunked::new(Cursor::new(src.clone()), 777));
        let mut buf = b"head".to_vec();
        let (n, pendings) = block_on_counting(r.read_to_end(&mut buf));
        assert_eq!(n.unwrap(), src.len());
        assert_eq!(&buf[..4], b"head");
        assert_eq!(&buf[4..], &src[..]);
        assert!(pendings > 100);
    }

    #[test]
    fn read_to_end_one_byte_reads() {
        block_on(async {
            let src = data(5000);
            let mut r = Chunked::new(Cursor::new(src.clone()), 1);
            let mut buf = Vec::new();
            assert_eq!(r.read_to_end(&mut buf).await.unwrap(), 5000);
            assert_eq!(buf, src);
            // Geometric growth: the capacity is within a small factor.
            assert!(buf.capacity() < 4 * 5000);
        });
    }

    #[test]
    fn read_to_end_exact_capacity_is_not_grown() {
        block_on(async {
            let mut r = Cursor::new(data(1024));
            let mut buf = Vec::with_capacity(1024);
            assert_eq!(r.read_to_end(&mut buf).await.unwrap(), 1024);
            assert_eq!(buf.capacity(), 1024);
            assert_eq!(r.read_to_end(&mut buf).await.unwrap(), 0);
        });
    }

    #[test]
    fn read_to_end_dropped_midway_leaves_no_padding() {
        let src = data(10);
        let mut r = PendingEvery::new(Chunked::new(Cursor::new(src.clone()), 3));
        let mut buf = Vec::new();
        {
            let mut fut = r.read_to_end(&mut buf);
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            // Pending; then a read of 3 bytes and Pending.
            assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
            assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        }
        assert_eq!(buf, &src[..3]);
    }

    #[test]
    fn read_to_end_keeps_bytes_on_error() {
        block_on(async {
            let mut r = crate::io::test_util::FailAfter::new(Cursor::new(b"abc".to_vec()), 2);
            let mut buf = Vec::new();
            let err = r.read_to_end(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            assert_eq!(buf, b"ab");
        });
    }

    #[test]
    fn read_to_string_valid_and_pending() {
        let text = "añb€c".repeat(300);
        let mut r = PendingEvery::new(Chunked::new(Cursor::new(text.clone().into_bytes()), 1));
        let mut s = String::from("start:");
        let (n, pendings) = block_on_counting(r.read_to_string(&mut s));
        assert_eq!(n.unwrap(), text.len());
        assert_eq!(s, format!("start:{text}"));
        assert!(pendings >= text.len());
    }

    #[test]
    fn read_to_string_into_empty() {
        block_on(async {
            let mut r = Cursor::new(b"hello".to_vec());
            let mut s = String::new();
            assert_eq!(r.read_to_string(&mut s).await.unwrap(), 5);
            assert_eq!(s, "hello");
        });
    }

    #[test]
    fn read_to_string_invalid_utf8_leaves_buf_unchanged() {
        block_on(async {
            for start in ["", "kept"] {
                let mut r = Cursor::new(vec![b'a', 0xff, b'b']);
                let mut s = String::from(start);
                let err = r.read_to_string(&mut s).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidData);
                assert_eq!(s, start);
            }
        });
    }

    #[test]
    fn works_on_unsized_readers() {
        block_on(async {
            let mut cursor = Cursor::new(b"dyn".to_vec());
            let r: &mut (dyn AsyncRead + Unpin) = &mut cursor;
            let mut out = Vec::new();
            assert_eq!(r.read_to_end(&mut out).await.unwrap(), 3);
            assert_eq!(out, b"dyn");
        });
    }
}
