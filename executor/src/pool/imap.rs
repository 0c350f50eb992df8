//! The consumer side of `imap` and `imap_unordered`: [`Imap`], an
//! `Iterator` that blocks, for plain threads, and [`ImapStream`], a
//! `Stream`, for async code.
//!
//! They are two types so that neither can stand in for the other: with one
//! type that were both, `for r in imap` in async code would compile and then
//! block the runtime's thread, and `imap.next()` would be ambiguous
//! (`Iterator::next` or `StreamExt::next`) wherever `futures::StreamExt` is
//! imported. An [`Imap`] becomes an [`ImapStream`] with
//! [`into_stream`](Imap::into_stream); `Pool::imap_stream` and
//! `Pool::imap_unordered_stream` make one directly.
//!
//! # Rules
//!
//! 1. **One reader per call.** Both types hold the call's one `Reader`: the
//!    [`ImapSink`] and the chunk being read out. `into_stream` moves it, so
//!    no result is lost or read twice on the way.
//! 2. **The iterator refuses a runtime thread before it touches a result**
//!    (rule 3 of the pool). On a thread that runs a Weft runtime,
//!    `Imap::next` yields one `Err(PoolError::WouldBlockRuntime)` and `None`
//!    ever after, so `filter_map(Result::ok)` ends instead of spinning;
//!    every result stays where it was, for `into_stream`. It refuses even
//!    when a result is at hand, so whether async code works never depends
//!    on timing.
//! 3. **Results are taken a whole chunk at a time**: one lock per chunk,
//!    not per item.

use super::PoolError;
use super::sink::{ChunkResults, ImapSink};
use crate::context;
use futures_core::Stream;
use std::fmt;
use std::iter::FusedIterator;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The results of [`Pool::imap`](super::Pool::imap) or
/// [`imap_unordered`](super::Pool::imap_unordered), one `Result` per item:
/// an `Iterator` that blocks until the next result is ready, for plain
/// threads (and `spawn_blocking`). In async code, turn it into an
/// [`ImapStream`] with [`into_stream`](Self::into_stream), or make one
/// with [`Pool::imap_stream`](super::Pool::imap_stream).
///
/// On a thread that runs a Weft runtime it does not block: `next` yields
/// one [`PoolError::WouldBlockRuntime`], then `None` for good, and takes no
/// result, so `into_stream` afterwards still yields every one.
///
/// ```
/// let pool = weft_executor::pool::Pool::new(2)?;
/// let lengths: Vec<usize> = pool
///     .imap(|s: &str| s.len(), ["a", "bb", "ccc"], None)?
///     .map(Result::unwrap)
///     .collect();
/// assert_eq!(lengths, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Imap<R> {
    reader: Reader<R>,
    /// `next` refused a runtime thread: the iterator is over (rule 2).
    refused: bool,
}

impl<R> Imap<R> {
    pub(super) fn new(sink: Arc<ImapSink<R>>) -> Imap<R> {
        Imap {
            reader: Reader {
                sink,
                current: Vec::new().into_iter(),
            },
            refused: false,
        }
    }

    /// The same results as a [`Stream`], for async code: every result not
    /// yet taken, in the same order, including after `next` refused a
    /// runtime thread.
    pub fn into_stream(self) -> ImapStream<R> {
        ImapStream { reader: self.reader }
    }
}

impl<R> Iterator for Imap<R> {
    type Item = Result<R, PoolError>;

    /// Blocks until the next result is ready; `None` once every item's
    /// result has been taken.
    ///
    /// On a thread that runs a Weft runtime, yields
    /// [`PoolError::WouldBlockRuntime`] once and then `None`, taking no
    /// result (see [`Imap`]).
    fn next(&mut self) -> Option<Result<R, PoolError>> {
        if self.refused {
            return None;
        }
        if context::is_entered() {
            self.refused = true;
            return Some(Err(PoolError::WouldBlockRuntime {
                call: "Imap::next",
                instead: "imap.into_stream().next().await",
            }));
        }
        self.reader.next_blocking()
    }
}

impl<R> FusedIterator for Imap<R> {}

impl<R> fmt::Debug for Imap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reader.debug("Imap", f)
    }
}

/// The results of [`Pool::imap_stream`](super::Pool::imap_stream),
/// [`imap_unordered_stream`](super::Pool::imap_unordered_stream) or
/// [`Imap::into_stream`], one `Result` per item: a [`Stream`] that waits
/// without blocking the thread, for async code.
///
/// Its inherent [`next`](Self::next) is what `stream.next().await` calls,
/// with or without `futures::StreamExt` in scope (inherent methods win
/// over trait methods), and the `Stream` impl serves every combinator.
///
/// ```
/// use weft_executor::pool::Pool;
///
/// let pool = Pool::new(2)?;
/// let rt = weft_executor::Executor::new()?;
/// let lengths = rt.block_on(async {
///     let mut stream = pool.imap_stream(|s: &str| s.len(), ["a", "bb", "ccc"], None)?;
///     let mut lengths = Vec::new();
///     while let Some(result) = stream.next().await {
///         lengths.push(result?);
///     }
///     Ok::<_, weft_executor::pool::PoolError>(lengths)
/// })?;
/// assert_eq!(lengths, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ImapStream<R> {
    reader: Reader<R>,
}

impl<R> ImapStream<R> {
    /// The next result, awaited without blocking the thread; `None` once
    /// every item's result has been taken. Cancel-safe: dropping the
    /// future before it is ready takes no result.
    pub async fn next(&mut self) -> Option<Result<R, PoolError>> {
        std::future::poll_fn(|cx| self.reader.poll_next(cx)).await
    }
}

impl<R> Stream for ImapStream<R> {
    type Item = Result<R, PoolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.reader.poll_next(cx)
    }
}

// Nothing is ever pinned in place: the stream is moved freely between polls.
impl<R> Unpin for ImapStream<R> {}

impl<R> fmt::Debug for ImapStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reader.debug("ImapStream", f)
    }
}

/// The reading end of one imap (rule 1): its sink, and the chunk being
/// read out.
struct Reader<R> {
    sink: Arc<ImapSink<R>>,
    current: std::vec::IntoIter<Result<R, PoolError>>,
}

impl<R> Reader<R> {
    fn next_blocking(&mut self) -> Option<Result<R, PoolError>> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            self.current = self.sink.wait_take()?.into_iter();
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<R, PoolError>>> {
        loop {
            if let Some(item) = self.current.next() {
                return Poll::Ready(Some(item));
            }
            let chunk: ChunkResults<R> = match self.sink.poll_take(cx) {
                Poll::Ready(Some(chunk)) => chunk,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            self.current = chunk.into_iter();
        }
    }

    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ordered, taken, total) = self.sink.progress();
        f.debug_struct(name)
            .field("ordered", &ordered)
            .field("chunks_taken", &taken)
            .field("chunks", &total)
            .finish()
    }
}

impl<R> Drop for Reader<R> {
    fn drop(&mut self) {
        // Results not taken are dropped here, on the consumer's thread;
        // those still to come, on the workers, contained.
        self.sink.consumer_gone();
    }
}
