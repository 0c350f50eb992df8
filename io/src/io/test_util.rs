//! Test adapters: readers and writers that return `Pending`, short
//! transfers or errors, and an executor that counts `Pending`s.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};

/// Returns `Pending` (after waking the task) on every other call, starting
/// with the first, and passes the other calls through.
pub(crate) struct PendingEvery<T> {
    inner: T,
    pend_next: bool,
}

impl<T> PendingEvery<T> {
    pub(crate) fn new(inner: T) -> Self {
        PendingEvery { inner, pend_next: true }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Whether this call is to pend; if so, wakes the task first.
    fn pend(&mut self, cx: &mut Context<'_>) -> bool {
        let pend = self.pend_next;
        self.pend_next = !pend;
        if pend {
            cx.waker().wake_by_ref();
        }
        pend
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PendingEvery<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pend(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncBufRead + Unpin> AsyncBufRead for PendingEvery<T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pend(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().inner).consume(amt);
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PendingEvery<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pend(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pend(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pend(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

/// Limits every read, write and `fill_buf` to `max` bytes; counts the calls
/// that reach the inner value.
pub(crate) struct Chunked<T> {
    inner: T,
    max: usize,
    pub(crate) reads: usize,
    pub(crate) writes: usize,
    pub(crate) flushes: usize,
    pub(crate) closes: usize,
}

impl<T> Chunked<T> {
    pub(crate) fn new(inner: T, max: usize) -> Self {
        Chunked {
            inner,
            max,
            reads: 0,
            writes: 0,
            flushes: 0,
            closes: 0,
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Chunked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.reads += 1;
        let len = buf.len().min(this.max);
        Pin::new(&mut this.inner).poll_read(cx, &mut buf[..len])
    }
}

impl<T: AsyncBufRead + Unpin> AsyncBufRead for Chunked<T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        this.reads += 1;
        let max = this.max;
        Pin::new(&mut this.inner)
            .poll_fill_buf(cx)
            .map_ok(|b| &b[..b.len().min(max)])
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().inner).consume(amt);
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Chunked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writes += 1;
        let len = buf.len().min(this.max);
        Pin::new(&mut this.inner).poll_write(cx, &buf[..len])
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.flushes += 1;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.closes += 1;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

/// Reads at most `left` bytes, then fails with `BrokenPipe`.
pub(crate) struct FailAfter<T> {
    inner: T,
    left: usize,
}

impl<T> FailAfter<T> {
    pub(crate) fn new(inner: T, left: usize) -> Self {
        FailAfter { inner, left }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FailAfter<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let len = buf.len().min(this.left);
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf[..len]))?;
        this.left -= n;
        Poll::Ready(Ok(n))
    }
}

/// A writer that accepts nothing: every write returns `Ok(0)`.
pub(crate) struct ZeroWriter;

impl AsyncWrite for ZeroWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(0))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `fut` to completion on this thread, returning its output and how
/// many times it returned `Pending`. Panics if it returns `Pending` without
/// waking its waker (it would hang under a real executor).
pub(crate) fn block_on_counting<F: Future>(fut: F) -> (F::Output, usize) {
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let mut pendings = 0;
    loop {
        flag.0.store(false, Ordering::SeqCst);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return (out, pendings),
            Poll::Pending => {
                assert!(flag.0.load(Ordering::SeqCst), "Pending without a wake-up");
                pendings += 1;
            }
        }
    }
}
