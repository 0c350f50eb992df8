//! hyper 1.x on Weft's reactor (feature `hyper`).
//!
//! hyper does no I/O of its own: it asks the runtime for three things,
//! through the traits of `hyper::rt`, and this crate gives them:
//!
//! | hyper needs | Weft gives |
//! | --- | --- |
//! | `rt::Read` + `rt::Write` (a connection) | [`TcpStream`](crate::net::TcpStream) and [`UnixStream`](crate::net::UnixStream) as they are; any other `futures-io` stream through [`HyperIo`] |
//! | `rt::Timer` (header-read timeouts, HTTP/2 keep-alive pings) | [`WeftTimer`], whose sleeps are [`time::Sleep`](crate::time::Sleep)s on the reactor's wheel |
//! | `rt::Executor` (HTTP/2's per-stream tasks) | `weft::hyper::WeftExecutor`, in crate `weft` (this crate knows no tasks) |
//!
//! [`WeftTimer::reset`](hyper::rt::Timer::reset) moves a Weft sleep in
//! place, keeping the waker of the task that waits on it (see
//! [`Sleep::reset`](crate::time::Sleep::reset)), so hyper's resets cost no
//! allocation.

use crate::time::{Sleep, sleep, sleep_until};
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

/// hyper's timer trait on Weft's timing wheel.
///
/// Give it to hyper's connection builders (`.timer(WeftTimer::new())`);
/// hyper needs one for `header_read_timeout` and HTTP/2 keep-alive. The
/// sleeps it makes belong to the reactor of the thread that first polls
/// them (hyper polls them in the connection's task).
#[derive(Clone, Copy, Default)]
pub struct WeftTimer {
    _private: (),
}

impl WeftTimer {
    /// A timer on the current runtime's reactor.
    pub fn new() -> WeftTimer {
        WeftTimer { _private: () }
    }
}

impl hyper::rt::Timer for WeftTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep_until(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Sleep>() {
            Some(ours) => ours.get_mut().reset(new_deadline),
            // Another timer's sleep: replace it.
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

impl fmt::Debug for WeftTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeftTimer").finish()
    }
}

impl hyper::rt::Sleep for Sleep {}

crate::compat::adapter! {
    /// An adapter between `futures-io` streams and hyper's I/O traits, both
    /// ways.
    ///
    /// - Around a `futures-io` stream (a TLS stream from `futures-rustls`,
    ///   a [`BufReader`](crate::io::BufReader), a test double), it is a hyper
    ///   connection: `hyper::rt::Read` + `hyper::rt::Write`.
    /// - Around a hyper stream (`hyper::upgrade::Upgraded` after a `CONNECT` or
    ///   a WebSocket upgrade), it is a `futures-io` stream, for
    ///   [`crate::io::copy`] and the extension traits.
    ///
    /// Weft's own sockets need no adapter.
    ///
    /// Reading a `futures-io` stream through hyper's `ReadBufCursor` zeroes the
    /// part of hyper's buffer that the read may fill first (`futures-io` takes
    /// `&mut [u8]`, which must be initialised); Weft's sockets skip that.
    HyperIo
}

impl<T: futures_io::AsyncRead> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: the bytes are only written to (zeroed, then read into).
        let unfilled = unsafe { buf.as_mut() };
        for byte in unfilled.iter_mut() {
            byte.write(0);
        }
        // SAFETY: every byte of `unfilled` was initialised just above, and
        // `MaybeUninit<u8>` has the layout of `u8`.
        let bytes = unsafe { &mut *(unfilled as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
        let n = ready!(self.pinned().poll_read(cx, bytes))?;
        // SAFETY: `n` bytes were filled (and all were initialised).
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: futures_io::AsyncWrite> hyper::rt::Write for HyperIo<T> {
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

impl<T: hyper::rt::Read> futures_io::AsyncRead for HyperIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read = hyper::rt::ReadBuf::new(buf);
        ready!(self.pinned().poll_read(cx, read.unfilled()))?;
        Poll::Ready(Ok(read.filled().len()))
    }
}

impl<T: hyper::rt::Write> futures_io::AsyncWrite for HyperIo<T> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Driver;
    use crate::io::{AsyncReadExt, AsyncWriteExt};
    use crate::net::UnixStream;
    use hyper::rt::Timer;

    /// hyper's own `Read`/`Write` calls, without hyper's connection code:
    /// a `ReadBuf` over uninitialised memory, filled by the socket.
    fn hyper_read(stream: Pin<&mut impl hyper::rt::Read>, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<usize> {
        let mut storage = [std::mem::MaybeUninit::<u8>::uninit(); 64];
        let mut buf = hyper::rt::ReadBuf::uninit(&mut storage);
        match stream.poll_read(cx, buf.unfilled()) {
            Poll::Ready(Ok(())) => {
                out.extend_from_slice(buf.filled());
                Poll::Ready(buf.filled().len())
            }
            Poll::Ready(Err(err)) => panic!("read failed: {err}"),
            Poll::Pending => Poll::Pending,
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri's socket pairs have no send(2) or shutdown(2)")]
    fn sockets_read_and_write_through_hyper_traits() {
        let mut driver = Driver::new().unwrap();
        driver.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            let n = std::future::poll_fn(|cx| hyper::rt::Write::poll_write(Pin::new(&mut a), cx, b"ping"))
                .await
                .unwrap();
            assert_eq!(n, 4);
            let mut got = Vec::new();
            while got.len() < 4 {
                std::future::poll_fn(|cx| hyper_read(Pin::new(&mut b), cx, &mut got)).await;
            }
            assert_eq!(got, b"ping");
            std::future::poll_fn(|cx| hyper::rt::Write::poll_shutdown(Pin::new(&mut a), cx))
                .await
                .unwrap();
            // End of stream: a read that fills nothing.
            assert_eq!(
                std::future::poll_fn(|cx| hyper_read(Pin::new(&mut b), cx, &mut got)).await,
                0
            );
        });
    }

    /// The unsafe read path alone, which Miri can run: bytes written with
    /// plain `write(2)` (Miri's socket pairs have no `send(2)`), read
    /// into uninitialised memory through hyper's cursor.
    #[test]
    fn a_socket_reads_into_an_uninitialised_buffer() {
        use std::os::fd::AsRawFd;
        let mut driver = Driver::new().unwrap();
        driver.block_on(async {
            let (a, mut b) = UnixStream::pair().unwrap();
            let message = b"into uninitialised memory";
            // SAFETY: `message` is valid for reads of its length.
            let n = unsafe { libc::write(a.as_raw_fd(), message.as_ptr().cast(), message.len()) };
            assert_eq!(n, message.len() as isize);
            let mut got = Vec::new();
            while got.len() < message.len() {
                std::future::poll_fn(|cx| hyper_read(Pin::new(&mut b), cx, &mut got)).await;
            }
            assert_eq!(got, message);
        });
    }

    /// The adapters over memory, which Miri can run.
    #[test]
    fn hyper_io_over_memory() {
        futures::executor::block_on(async {
            // hyper reading a futures-io reader: the zeroing path.
            let mut reader = HyperIo::new(futures::io::Cursor::new(b"from memory".to_vec()));
            let mut got = Vec::new();
            while std::future::poll_fn(|cx| hyper_read(Pin::new(&mut reader), cx, &mut got)).await > 0 {}
            assert_eq!(got, b"from memory");
            // futures-io over hyper over futures-io, both directions.
            let mut twice = HyperIo::new(HyperIo::new(futures::io::Cursor::new(b"twice".to_vec())));
            let mut got = Vec::new();
            twice.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"twice");
            let mut out = HyperIo::new(HyperIo::new(futures::io::Cursor::new(Vec::new())));
            out.write_all(b"written").await.unwrap();
            out.close().await.unwrap();
            assert_eq!(out.into_inner().into_inner().into_inner(), b"written");
        });
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri's socket pairs have no send(2) or shutdown(2)")]
    fn hyper_io_converts_both_ways() {
        let mut driver = Driver::new().unwrap();
        driver.block_on(async {
            let (a, b) = UnixStream::pair().unwrap();
            // Written as futures-io over hyper over futures-io, read as
            // futures-io over hyper: every byte crosses each conversion.
            let mut a = HyperIo::new(HyperIo::new(a));
            a.write_all(b"through the adapters").await.unwrap();
            a.close().await.unwrap();
            let mut b = HyperIo::new(b);
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"through the adapters");

            // And hyper reading a futures-io stream (the zeroing path).
            let (mut c, d) = UnixStream::pair().unwrap();
            let mut d = HyperIo::new(d);
            c.write_all(b"pong").await.unwrap();
            let mut got = Vec::new();
            while got.len() < 4 {
                std::future::poll_fn(|cx| hyper_read(Pin::new(&mut d), cx, &mut got)).await;
            }
            assert_eq!(got, b"pong");
        });
    }

    #[test]
    fn timer_sleeps_on_the_wheel_and_resets_in_place() {
        let mut driver = Driver::new().unwrap();
        let handle = driver.handle().clone();
        driver.block_on(async {
            let timer = WeftTimer::new();
            let start = Instant::now();
            timer.sleep(Duration::from_millis(3)).await;
            assert!(start.elapsed() >= Duration::from_millis(3));

            let mut sleep = timer.sleep(Duration::from_secs(60));
            assert!(sleep.as_mut().downcast_mut_pin::<Sleep>().is_some(), "a Weft sleep");
            let before: *const dyn hyper::rt::Sleep = &*sleep;
            let start = Instant::now();
            timer.reset(&mut sleep, start + Duration::from_millis(5));
            assert!(std::ptr::addr_eq(before, &*sleep), "reset in place, not replaced");
            sleep.await;
            assert!(start.elapsed() >= Duration::from_millis(5));
            assert!(start.elapsed() < Duration::from_secs(30));
            assert_eq!(handle.pending_timers(), 0);
        });
    }
}
