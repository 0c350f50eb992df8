//! What the owned halves of a byte stream share, for TCP and Unix streams
//! alike: the stream behind one `Arc`, the writing half's shutdown when it
//! is dropped, and `reunite`.
//!
//! Each stream's module wraps these in its own public types (as Tokio has
//! `net::tcp::OwnedReadHalf` and `net::unix::OwnedReadHalf`), which add the
//! addresses of their kind of socket.

use std::io;
use std::sync::Arc;

/// A stream whose writing direction can be shut down on its own.
pub(crate) trait ShutdownWrite {
    /// `shutdown(Shutdown::Write)`.
    fn shutdown_write(&self) -> io::Result<()>;
}

/// The reading half's hold on a stream it shares with its writing half.
#[derive(Debug)]
pub(crate) struct ReadShare<S> {
    stream: Arc<S>,
}

/// The writing half's hold: shuts the writing direction down when dropped
/// (so the peer sees end of stream), unless it was reunited or told to
/// [`keep_open`](WriteShare::keep_open).
#[derive(Debug)]
pub(crate) struct WriteShare<S: ShutdownWrite> {
    stream: Arc<S>,
    shutdown_on_drop: bool,
}

/// Puts `stream` behind one `Arc` for two halves.
pub(crate) fn share<S: ShutdownWrite>(stream: S) -> (ReadShare<S>, WriteShare<S>) {
    let stream = Arc::new(stream);
    (
        ReadShare { stream: stream.clone() },
        WriteShare {
            stream,
            shutdown_on_drop: true,
        },
    )
}

/// The stream back from its two halves, with its writing direction still
/// open; both halves back if they come from different streams.
pub(crate) fn reunite<S: ShutdownWrite>(
    read: ReadShare<S>,
    mut write: WriteShare<S>,
) -> Result<S, (ReadShare<S>, WriteShare<S>)> {
    if !Arc::ptr_eq(&read.stream, &write.stream) {
        return Err((read, write));
    }
    write.shutdown_on_drop = false;
    drop(write);
    // The two halves held the only two counts, and the writing half's is
    // gone.
    Ok(Arc::into_inner(read.stream).expect("weft-io bug: a third owner of a split stream"))
}

impl<S> ReadShare<S> {
    /// The shared stream.
    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }
}

impl<S: ShutdownWrite> WriteShare<S> {
    /// The shared stream.
    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }

    /// Keeps the writing direction open when this half is dropped.
    pub(crate) fn keep_open(&mut self) {
        self.shutdown_on_drop = false;
    }
}

impl<S: ShutdownWrite> Drop for WriteShare<S> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // The peer may be gone already: nothing left to tell it.
            let _ = self.stream.shutdown_write();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ShutdownWrite, reunite, share};
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Counts its write shutdowns.
    #[derive(Debug, Default)]
    struct Fake(AtomicUsize);

    impl ShutdownWrite for Fake {
        fn shutdown_write(&self) -> io::Result<()> {
            self.0.fetch_add(1, SeqCst);
            Ok(())
        }
    }

    #[test]
    fn reunited_halves_give_back_the_stream_with_writing_still_open() {
        let (read, write) = share(Fake::default());
        let stream = reunite(read, write).unwrap();
        assert_eq!(stream.0.load(SeqCst), 0);
    }

    #[test]
    fn mismatched_halves_both_come_back_and_still_work() {
        let (read_a, write_a) = share(Fake::default());
        let (read_b, write_b) = share(Fake::default());
        let (read_a, write_b) = reunite(read_a, write_b).unwrap_err();
        assert_eq!(read_a.stream().0.load(SeqCst) + write_b.stream().0.load(SeqCst), 0);
        let a = reunite(read_a, write_a).unwrap();
        let b = reunite(read_b, write_b).unwrap();
        assert_eq!(a.0.load(SeqCst) + b.0.load(SeqCst), 0);
    }

    #[test]
    fn dropping_the_writing_half_shuts_writing_down_once_unless_kept_open() {
        let (read, write) = share(Fake::default());
        drop(write);
        assert_eq!(read.stream().0.load(SeqCst), 1);
        let (read, mut write) = share(Fake::default());
        write.keep_open();
        drop(write);
        assert_eq!(read.stream().0.load(SeqCst), 0);
    }
}
