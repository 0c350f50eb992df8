//! Tokio's I/O traits on Weft (feature `tokio-compat`).
//!
//! Weft's sockets implement `tokio::io::AsyncRead` and
//! `tokio::io::AsyncWrite` themselves (reading straight into Tokio's
//! uninitialised `ReadBuf`), so code written against Tokio's traits takes
//! them as they are: `tokio::io::copy_bidirectional` between two Weft
//! sockets, a `tokio_util::codec::Framed` over a Weft `TcpStream`, a
//! `tokio-rustls` stream. For any other `futures-io` type (a
//! [`BufReader`](crate::io::BufReader), a TLS stream of the futures world)
//! and for Tokio types going the other way, wrap it in [`Compat`].
//!
//! Only the I/O traits carry over: code that calls `tokio::spawn`,
//! `tokio::time` or `tokio::net` needs Tokio's runtime (see
//! [`crate::compat`]).
//!
//! ```
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
//! use weft_io::compat::tokio::Compat;
//!
//! let mut driver = weft_io::Driver::new()?;
//! driver.block_on(async {
//!     let (a, b) = weft_io::net::UnixStream::pair()?;
//!     // Tokio's extension traits on a Weft socket, as it is...
//!     let mut a = a;
//!     a.write_all(b"first line\nsecond line\n").await?;
//!     // ...and on a futures-io reader, through `Compat`.
//!     let mut lines = Compat::new(weft_io::io::BufReader::new(b)).lines();
//!     assert_eq!(lines.next_line().await?.as_deref(), Some("first line"));
//!     assert_eq!(lines.next_line().await?.as_deref(), Some("second line"));
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

crate::compat::adapter! {
    /// Turns a `futures-io` reader, writer or buffered reader into a Tokio one,
    /// and a Tokio one into a `futures-io` one (whichever traits the wrapped
    /// type has, the wrapper has the other family's).
    ///
    /// Reading a `futures-io` stream into Tokio's `ReadBuf` initialises the
    /// buffer's unfilled part once (Tokio's `ReadBuf` remembers how much is
    /// initialised, so a reused buffer is zeroed only the first time).
    Compat
}

impl<T: futures_io::AsyncRead> tokio::io::AsyncRead for Compat<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let n = ready!(self.pinned().poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: futures_io::AsyncWrite> tokio::io::AsyncWrite for Compat<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.pinned().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.pinned().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // `futures-io` cannot tell; its default falls back to the first
        // buffer, which is correct either way.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pinned().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pinned().poll_close(cx)
    }
}

impl<T: futures_io::AsyncBufRead> tokio::io::AsyncBufRead for Compat<T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.pinned().poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.pinned().consume(amt)
    }
}

impl<T: tokio::io::AsyncRead> futures_io::AsyncRead for Compat<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read = tokio::io::ReadBuf::new(buf);
        ready!(self.pinned().poll_read(cx, &mut read))?;
        Poll::Ready(Ok(read.filled().len()))
    }
}

impl<T: tokio::io::AsyncWrite> futures_io::AsyncWrite for Compat<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.pinned().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.pinned().poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pinned().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pinned().poll_shutdown(cx)
    }
}

impl<T: tokio::io::AsyncBufRead> futures_io::AsyncBufRead for Compat<T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.pinned().poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.pinned().consume(amt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Driver;
    use crate::net::{TcpListener, TcpStream};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no TCP sockets")]
    fn tokio_copy_bidirectional_proxies_between_weft_sockets() {
        let mut driver = Driver::new().unwrap();
        driver.block_on(async {
            // client <-> [a  proxy  b] <-> upstream, the proxy being Tokio's
            // `copy_bidirectional` on two Weft sockets.
            let front = TcpListener::bind("127.0.0.1:0").unwrap();
            let back = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut client = TcpStream::connect(front.local_addr().unwrap()).await.unwrap();
            let (mut a, _) = front.accept().await.unwrap();
            let mut b = TcpStream::connect(back.local_addr().unwrap()).await.unwrap();
            let (mut upstream, _) = back.accept().await.unwrap();

            let proxy = tokio::io::copy_bidirectional(&mut a, &mut b);
            let traffic = async {
                client.write_all(b"request").await.unwrap();
                let mut got = [0; 7];
                upstream.read_exact(&mut got).await.unwrap();
                assert_eq!(&got, b"request");
                upstream.write_all(b"a longer response").await.unwrap();
                AsyncWriteExt::shutdown(&mut upstream).await.unwrap();
                let mut got = Vec::new();
                AsyncWriteExt::shutdown(&mut client).await.unwrap();
                client.read_to_end(&mut got).await.unwrap();
                assert_eq!(got, b"a longer response");
            };
            let (copied, ()) = futures::join!(proxy, traffic);
            assert_eq!(copied.unwrap(), (7, 17));
        });
    }

    /// The unsafe read path, which Miri can run: a socket filling Tokio's
    /// uninitialised `ReadBuf` (written with plain `write(2)`: Miri's
    /// socket pairs have no `send(2)`).
    #[test]
    fn a_socket_fills_an_uninitialised_read_buf() {
        use std::os::fd::AsRawFd;
        let mut driver = Driver::new().unwrap();
        driver.block_on(async {
            let (a, mut b) = crate::net::UnixStream::pair().unwrap();
            let message = b"into tokio's buffer";
            // SAFETY: `message` is valid for reads of its length.
            let n = unsafe { libc::write(a.as_raw_fd(), message.as_ptr().cast(), message.len()) };
            assert_eq!(n, message.len() as isize);
            let mut storage = [std::mem::MaybeUninit::<u8>::uninit(); 64];
            let mut buf = tokio::io::ReadBuf::uninit(&mut storage);
            while buf.filled().len() < message.len() {
                std::future::poll_fn(|cx| tokio::io::AsyncRead::poll_read(Pin::new(&mut b), cx, &mut buf))
                    .await
                    .unwrap();
            }
            assert_eq!(buf.filled(), message);
        });
    }

    #[test]
    fn compat_converts_both_ways() {
        futures::executor::block_on(async {
            // futures-io -> Tokio -> futures-io.
            let mut twice = Compat::new(Compat::new(futures::io::Cursor::new(b"hello".to_vec())));
            let mut got = Vec::new();
            futures::AsyncReadExt::read_to_end(&mut twice, &mut got).await.unwrap();
            assert_eq!(got, b"hello");

            let mut out = Compat::new(futures::io::Cursor::new(Vec::new()));
            out.write_all(b"written by tokio").await.unwrap();
            out.shutdown().await.unwrap();
            assert_eq!(out.into_inner().into_inner(), b"written by tokio");

            // A reused Tokio buffer over a futures-io reader.
            let mut reader = Compat::new(futures::io::Cursor::new(vec![7u8; 100]));
            let mut buf = [0u8; 64];
            assert_eq!(reader.read(&mut buf).await.unwrap(), 64);
            assert_eq!(reader.read(&mut buf).await.unwrap(), 36);
            assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
        });
    }
}
