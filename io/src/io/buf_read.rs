//! [`AsyncBufReadExt`]: `read_until`, `read_line` and the [`Lines`] stream.

use std::fmt;
use std::future::Future;
use std::io;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_io::AsyncBufRead;

use super::read::append_utf8;

/// Extension methods for every [`AsyncBufRead`]: reading up to a delimiter,
/// and lines.
///
/// The futures borrow the reader mutably and need it to be [`Unpin`].
///
/// # Cancellation
///
/// None of these is cancel-safe. A [`read_until`](Self::read_until) future
/// dropped part-way leaves the bytes it took appended to `buf`, without
/// saying whether the delimiter was reached; a
/// [`read_line`](Self::read_line) future dropped part-way loses them.
/// [`Lines`] keeps a partial line inside itself between polls, so polling
/// it is safe to abandon as long as the `Lines` itself is kept.
pub trait AsyncBufReadExt: AsyncBufRead {
    /// Reads into `buf` up to and including the first `byte`, or to end of
    /// file, and returns how many bytes were appended (`0` at end of file).
    ///
    /// Reads failing with [`io::ErrorKind::Interrupted`] are retried. On any
    /// other error the bytes read so far stay appended to `buf`.
    ///
    /// Not cancel-safe (see the [trait docs](AsyncBufReadExt#cancellation)).
    fn read_until<'a>(&'a mut self, byte: u8, buf: &'a mut Vec<u8>) -> ReadUntil<'a, Self>
    where
        Self: Unpin,
    {
        ReadUntil {
            reader: self,
            byte,
            buf,
            read: 0,
        }
    }

    /// Reads a line into `buf`, up to and including the `\n`, and returns
    /// how many bytes were appended (`0` at end of file).
    ///
    /// As with `std`, the line ending (`\n` or `\r\n`) is kept. If the line
    /// is not valid UTF-8 the result is an error of kind
    /// [`io::ErrorKind::InvalidData`] and `buf` is unchanged (the bytes of
    /// the line are consumed all the same). On an I/O error the bytes read
    /// so far are appended if they are valid UTF-8.
    ///
    /// Not cancel-safe: a future dropped part-way loses the bytes it read.
    ///
    /// ```
    /// use weft_io::io::AsyncBufReadExt;
    ///
    /// futures::executor::block_on(async {
    ///     let mut reader = futures::io::Cursor::new(b"one\ntwo".to_vec());
    ///     let mut line = String::new();
    ///     assert_eq!(reader.read_line(&mut line).await?, 4);
    ///     assert_eq!(line, "one\n");
    ///     line.clear();
    ///     assert_eq!(reader.read_line(&mut line).await?, 3);
    ///     assert_eq!(line, "two");
    ///     assert_eq!(reader.read_line(&mut line).await?, 0);
    ///     # Ok::<(), std::io::Error>(())
    /// }).unwrap();
    /// ```
    fn read_line<'a>(&'a mut self, buf: &'a mut String) -> ReadLine<'a, Self>
    where
        Self: Unpin,
    {
        // As in `read_to_string`: an empty string's allocation is reused.
        let bytes = if buf.is_empty() {
            mem::take(buf).into_bytes()
        } else {
            Vec::new()
        };
        ReadLine {
            reader: self,
            buf,
            bytes,
            read: 0,
        }
    }

    /// Turns the reader into a [`Stream`] of its lines, without their line
    /// endings (`\n` or `\r\n`).
    ///
    /// The stream ends at end of file; a last line without `\n` is still
    /// yielded. A line that is not valid UTF-8 is yielded as an error of
    /// kind [`io::ErrorKind::InvalidData`], and the stream goes on with the
    /// next line. The stream needs `Self: Unpin` (see [`Lines`]).
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weft_io::io::AsyncBufReadExt;
    ///
    /// futures::executor::block_on(async {
    ///     let reader = futures::io::Cursor::new(b"a\r\nb\nc".to_vec());
    ///     let lines: Vec<String> = reader.lines().map(|line| line.unwrap()).collect().await;
    ///     assert_eq!(lines, ["a", "b", "c"]);
    /// });
    /// ```
    fn lines(self) -> Lines<Self>
    where
        Self: Sized,
    {
        Lines {
            reader: self,
            bytes: Vec::new(),
            read: 0,
        }
    }
}

impl<R: AsyncBufRead + ?Sized> AsyncBufReadExt for R {}

/// Moves bytes from `reader` to the end of `buf` up to and including the
/// first `byte`, or to end of file, counting them in `*read`.
///
/// On `Ready(Ok(n))`, `n` is the total count and `*read` is reset to zero,
/// ready for the next delimited read; on `Pending`, `*read` keeps the count
/// so far.
pub(super) fn poll_read_until<R: AsyncBufRead + ?Sized>(
    mut reader: Pin<&mut R>,
    cx: &mut Context<'_>,
    byte: u8,
    buf: &mut Vec<u8>,
    read: &mut usize,
) -> Poll<io::Result<usize>> {
    loop {
        let (found, used) = match ready!(reader.as_mut().poll_fill_buf(cx)) {
            Ok(available) => match available.iter().position(|&b| b == byte) {
                Some(i) => {
                    buf.extend_from_slice(&available[..=i]);
                    (true, i + 1)
                }
                None => {
                    buf.extend_from_slice(available);
                    (false, available.len())
                }
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                *read = 0;
                return Poll::Ready(Err(e));
            }
        };
        reader.as_mut().consume(used);
        *read += used;
        if found || used == 0 {
            return Poll::Ready(Ok(mem::take(read)));
        }
    }
}

/// Future of [`AsyncBufReadExt::read_until`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ReadUntil<'a, R: ?Sized> {
    reader: &'a mut R,
    byte: u8,
    buf: &'a mut Vec<u8>,
    read: usize,
}

impl<R: AsyncBufRead + Unpin + ?Sized> Future for ReadUntil<'_, R> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        poll_read_until(Pin::new(&mut *this.reader), cx, this.byte, this.buf, &mut this.read)
    }
}

impl<R: ?Sized> fmt::Debug for ReadUntil<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadUntil")
            .field("byte", &self.byte)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// Future of [`AsyncBufReadExt::read_line`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ReadLine<'a, R: ?Sized> {
    reader: &'a mut R,
    buf: &'a mut String,
    /// The bytes of the line so far, appended to `buf` once validated.
    bytes: Vec<u8>,
    read: usize,
}

impl<R: AsyncBufRead + Unpin + ?Sized> Future for ReadLine<'_, R> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = ready!(poll_read_until(
            Pin::new(&mut *this.reader),
            cx,
            b'\n',
            &mut this.bytes,
            &mut this.read
        ));
        let bytes = mem::take(&mut this.bytes);
        Poll::Ready(append_utf8(this.buf, bytes, result.map(drop)))
    }
}

impl<R: ?Sized> fmt::Debug for ReadLine<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadLine")
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// Stream of the lines of a reader, from [`AsyncBufReadExt::lines`].
///
/// Items are `io::Result<String>`, without the line ending. It implements
/// [`Stream`] when `R: AsyncBufRead + Unpin`; pin a reader that is not
/// `Unpin` first (`Box::pin(reader).lines()`). A partial line is kept inside
/// the `Lines` between polls, so none is lost if a poll returns `Pending`.
#[must_use = "streams do nothing unless polled"]
pub struct Lines<R> {
    reader: R,
    /// The line read so far.
    bytes: Vec<u8>,
    read: usize,
}

impl<R> Lines<R> {
    /// The reader.
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The reader, mutably. Reading from it directly while a line is half
    /// read takes bytes from the middle of that line.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The reader back; a half-read line is lost.
    pub fn into_inner(self) -> R {
        self.reader
    }
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    /// The next line, `None` at the end (Tokio's `Lines::next_line`): the
    /// stream's next item with the error outside. Cancel-safe, as polling
    /// the stream is: a half-read line stays in the `Lines`.
    ///
    /// # Errors
    ///
    /// The reader's error, or `InvalidData` for a line that is not UTF-8
    /// (the line is consumed; the next call reads the one after it).
    pub async fn next_line(&mut self) -> io::Result<Option<String>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }
}

impl<R: AsyncBufRead + Unpin> Stream for Lines<R> {
    type Item = io::Result<String>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let n = match ready!(poll_read_until(
            Pin::new(&mut this.reader),
            cx,
            b'\n',
            &mut this.bytes,
            &mut this.read
        )) {
            Ok(n) => n,
            Err(e) => {
                this.bytes.clear();
                return Poll::Ready(Some(Err(e)));
            }
        };
        if n == 0 && this.bytes.is_empty() {
            return Poll::Ready(None);
        }
        let mut line = mem::take(&mut this.bytes);
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        Poll::Ready(Some(String::from_utf8(line).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8")
        })))
    }
}

impl<R: fmt::Debug> fmt::Debug for Lines<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines")
            .field("reader", &self.reader)
            .field("partial", &self.bytes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::BufReader;
    use crate::io::test_util::{Chunked, PendingEvery, block_on_counting};
    use futures::StreamExt;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn read_until_delimiter_and_eof() {
        block_on(async {
            let mut r = Cursor::new(b"ab,cd,ef".to_vec());
            let mut buf = Vec::new();
            assert_eq!(r.read_until(b',', &mut buf).await.unwrap(), 3);
            assert_eq!(buf, b"ab,");
            assert_eq!(r.read_until(b',', &mut buf).await.unwrap(), 3);
            assert_eq!(buf, b"ab,cd,");
            assert_eq!(r.read_until(b',', &mut buf).await.unwrap(), 2);
            assert_eq!(buf, b"ab,cd,ef");
            assert_eq!(r.read_until(b',', &mut buf).await.unwrap(), 0);
        });
    }

    #[test]
    fn read_until_keeps_progress_across_pending() {
        let mut r = PendingEvery::new(Chunked::new(Cursor::new(b"hello world;rest".to_vec()), 1));
        let mut buf = Vec::new();
        let (n, pendings) = block_on_counting(r.read_until(b';', &mut buf));
        assert_eq!(n.unwrap(), 12);
        assert_eq!(buf, b"hello world;");
        assert_eq!(pendings, 12);
    }

    #[test]
    fn read_line_keeps_newline_and_pending() {
        let src = "first line\r\nsécond\nlast".as_bytes().to_vec();
        let mut r = PendingEvery::new(BufReader::with_capacity(3, Chunked::new(Cursor::new(src), 1)));
        let mut line = String::new();
        let (n, _) = block_on_counting(r.read_line(&mut line));
        assert_eq!(n.unwrap(), 12);
        assert_eq!(line, "first line\r\n");
        let (n, pendings) = block_on_counting(r.read_line(&mut line));
        assert_eq!(n.unwrap(), 8);
        assert!(pendings >= 8);
        assert_eq!(line, "first line\r\nsécond\n");
        line.clear();
        let (n, _) = block_on_counting(r.read_line(&mut line));
        assert_eq!(n.unwrap(), 4);
        assert_eq!(line, "last");
        let (n, _) = block_on_counting(r.read_line(&mut line));
        assert_eq!(n.unwrap(), 0);
        assert_eq!(line, "last");
    }

    #[test]
    fn read_line_invalid_utf8_leaves_buf_unchanged() {
        block_on(async {
            let mut r = Cursor::new(b"ok\nb\xffd\nnext\n".to_vec());
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            let err = r.read_line(&mut line).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(line, "ok\n");
            line.clear();
            // The bad line was consumed.
            assert_eq!(r.read_line(&mut line).await.unwrap(), 5);
            assert_eq!(line, "next\n");
            let mut r = Cursor::new(b"\xfe\n".to_vec());
            let mut empty = String::new();
            assert_eq!(
                r.read_line(&mut empty).await.unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
            assert_eq!(empty, "");
        });
    }

    #[test]
    fn lines_strip_crlf_and_lf() {
        let src = b"a\r\n\r\nb\n\nc\rd\r\nlast".to_vec();
        let lines = PendingEvery::new(Chunked::new(Cursor::new(src), 1)).lines();
        let (lines, pendings): (Vec<String>, _) = block_on_counting(lines.map(Result::unwrap).collect());
        assert_eq!(lines, ["a", "", "b", "", "c\rd", "last"]);
        assert!(pendings > 10);
    }

    #[test]
    fn lines_invalid_utf8_and_trailing_newline() {
        block_on(async {
            let mut lines = Cursor::new(b"x\n\xc3\n\xc3\xa9\n".to_vec()).lines();
            assert_eq!(lines.next().await.unwrap().unwrap(), "x");
            assert_eq!(
                lines.next().await.unwrap().unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
            assert_eq!(lines.next().await.unwrap().unwrap(), "é");
            assert!(lines.next().await.is_none());
            assert!(lines.next().await.is_none());
        });
    }

    #[test]
    fn next_line_is_the_stream_with_the_error_outside() {
        let src = b"one\r\n\xff\ntwo".to_vec();
        let mut lines = PendingEvery::new(Chunked::new(Cursor::new(src), 1)).lines();
        let (line, pendings) = block_on_counting(lines.next_line());
        assert_eq!(line.unwrap().as_deref(), Some("one"));
        assert!(pendings > 0, "a half-read line survived the pending polls");
        let (line, _) = block_on_counting(lines.next_line());
        assert_eq!(line.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (line, _) = block_on_counting(lines.next_line());
        assert_eq!(line.unwrap().as_deref(), Some("two"));
        let (line, _) = block_on_counting(lines.next_line());
        assert_eq!(line.unwrap(), None);
    }

    #[test]
    fn lines_of_empty_input() {
        block_on(async {
            let mut lines = Cursor::new(Vec::new()).lines();
            assert!(lines.next().await.is_none());
        });
    }
}
