//! Where a pool call's results go: a blocking [`Completion`], an ordered
//! [`Collect`]or for `map`, and the [`ImapSink`] an [`Imap`] drains.

use super::PoolError;
use super::output::{ChunkWriter, MapOutput};
use crate::loom::{Condvar, Mutex, lock, wait};
use futures_core::Stream;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// A one-shot slot a blocking caller waits on. The sending side settles it
/// as [`PoolError::Terminated`] if dropped unset.
pub(super) struct Completion<R> {
    slot: Mutex<Option<Result<R, PoolError>>>,
    ready: Condvar,
}

impl<R> Completion<R> {
    pub(super) fn new() -> Completion<R> {
        Completion {
            slot: Mutex::new(None),
            ready: Condvar::new(),
        }
    }

    /// Sets the result (the first one wins).
    pub(super) fn set(&self, result: Result<R, PoolError>) {
        let mut slot = lock(&self.slot);
        if slot.is_none() {
            *slot = Some(result);
            self.ready.notify_all();
        }
    }

    /// Blocks until set.
    pub(super) fn wait(&self) -> Result<R, PoolError> {
        let mut slot = lock(&self.slot);
        loop {
            if let Some(result) = slot.take() {
                return result;
            }
            slot = wait(&self.ready, slot);
        }
    }
}

/// Sets a [`Completion`] once; dropped unset, reports `Terminated`.
pub(super) struct CompletionSender<R>(pub(super) Arc<Completion<R>>);

impl<R> CompletionSender<R> {
    pub(super) fn send(self, result: Result<R, PoolError>) {
        self.0.set(result);
    }
}

impl<R> Drop for CompletionSender<R> {
    fn drop(&mut self) {
        self.0.set(Err(PoolError::Terminated));
    }
}

type Finish<R> = Box<dyn FnOnce(Result<Vec<R>, PoolError>) + Send>;

/// Gathers a map's results: chunks write them in place into one
/// [`MapOutput`], report when done, and the last report calls `finish` once
/// with the whole result, on the thread that made it.
pub(super) struct Collect<R> {
    output: MapOutput<R>,
    state: Mutex<CollectState<R>>,
}

/// A chunk's report: its range (`first`, `len`) and how it ended.
type Report = (usize, usize, Result<(), PoolError>);

struct CollectState<R> {
    /// Per chunk, once reported.
    reports: Vec<Option<Report>>,
    remaining: usize,
    finish: Option<Finish<R>>,
}

impl<R: Send> Collect<R> {
    /// A collector for `len` results in `chunks` chunks.
    pub(super) fn new(
        len: usize,
        chunks: usize,
        finish: impl FnOnce(Result<Vec<R>, PoolError>) + Send + 'static,
    ) -> Collect<R> {
        Collect {
            output: MapOutput::new(len),
            state: Mutex::new(CollectState {
                reports: (0..chunks).map(|_| None).collect(),
                remaining: chunks,
                finish: Some(Box::new(finish)),
            }),
        }
    }

    /// The writer of chunk `first..first + len`.
    ///
    /// # Safety
    ///
    /// Called at most once per chunk (its job owns its items once), with the
    /// chunk's own range.
    pub(super) unsafe fn writer(&self, first: usize, len: usize) -> ChunkWriter<'_, R> {
        // SAFETY: the caller's contract is rule 2 of `output.rs`: one writer
        // per chunk, and chunks' ranges are disjoint by construction.
        unsafe { self.output.writer(first, len) }
    }

    /// Chunk `chunk` (items `first..first + len`) is over: its writer was
    /// finished (`Ok`) or dropped (`Err`), or it never ran.
    pub(super) fn report(&self, chunk: usize, first: usize, len: usize, outcome: Result<(), PoolError>) {
        let (reports, finish) = {
            let mut state = lock(&self.state);
            if state.reports[chunk].is_some() {
                return;
            }
            state.reports[chunk] = Some((first, len, outcome));
            state.remaining -= 1;
            if state.remaining > 0 {
                return;
            }
            (std::mem::take(&mut state.reports), state.finish.take())
        };
        let Some(finish) = finish else { return };
        let reports: Vec<_> = reports
            .into_iter()
            .map(|r| r.expect("weft bug: a map finished with a chunk unreported"))
            .collect();
        // The earliest failing chunk holds the first failing item by index.
        let first_error = reports.iter().find_map(|(_, _, outcome)| outcome.clone().err());
        let ranges: Vec<_> = reports
            .iter()
            .map(|(first, len, o)| (*first, *len, o.is_ok()))
            .collect();
        // SAFETY: every chunk has reported, so every writer is gone, and
        // `ranges` lists each chunk with whether its writer finished.
        let values = unsafe { self.output.take_vec(&ranges) };
        let result = match (values, first_error) {
            (Some(values), _) => Ok(values),
            (None, Some(err)) => Err(err),
            (None, None) => unreachable!("weft bug: a map with every chunk done but no result"),
        };
        // The finisher may drop results no one takes (a cancelled promise):
        // contained, so the report is complete whatever they do.
        super::contain(move || finish(result));
    }
}

/// The buffer between an imap's chunks and its [`Imap`] consumer.
pub(super) struct ImapSink<R> {
    state: Mutex<ImapState<R>>,
    ready: Condvar,
}

struct ImapState<R> {
    /// The [`Imap`] is gone: nobody will take results (they are dropped as
    /// they come, one at a time: rule 2 of the pool).
    consumer_gone: bool,
    ordered: bool,
    /// Ordered: results per chunk, taken in chunk order.
    by_chunk: Vec<Option<Vec<Result<R, PoolError>>>>,
    /// Unordered: finished chunks in completion order.
    finished: VecDeque<Vec<Result<R, PoolError>>>,
    /// Chunks handed to the consumer so far.
    taken: usize,
    total: usize,
    waker: Option<Waker>,
}

impl<R: Send> ImapSink<R> {
    pub(super) fn new(chunks: usize, ordered: bool) -> ImapSink<R> {
        ImapSink {
            state: Mutex::new(ImapState {
                consumer_gone: false,
                ordered,
                by_chunk: if ordered {
                    (0..chunks).map(|_| None).collect()
                } else {
                    Vec::new()
                },
                finished: VecDeque::new(),
                taken: 0,
                total: chunks,
                waker: None,
            }),
            ready: Condvar::new(),
        }
    }

    fn deliver(&self, chunk: usize, results: Vec<Result<R, PoolError>>) {
        let waker = {
            let mut state = lock(&self.state);
            if state.consumer_gone {
                drop(state);
                super::drop_each_contained(results);
                return;
            }
            if state.ordered {
                state.by_chunk[chunk] = Some(results);
            } else {
                state.finished.push_back(results);
            }
            state.waker.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<R> ImapState<R> {
    /// The next chunk for the consumer: `Ok(Some)` a chunk, `Ok(None)` all
    /// taken, `Err(())` not available yet.
    fn take_next(&mut self) -> Result<Option<Vec<Result<R, PoolError>>>, ()> {
        if self.taken == self.total {
            return Ok(None);
        }
        let next = if self.ordered {
            self.by_chunk[self.taken].take()
        } else {
            self.finished.pop_front()
        };
        match next {
            Some(chunk) => {
                self.taken += 1;
                Ok(Some(chunk))
            }
            None => Err(()),
        }
    }
}

impl<R: Send> ImapSink<R> {
    /// Chunk `chunk` of `len` items will never run.
    pub(super) fn dropped(&self, chunk: usize, len: usize) {
        self.deliver(chunk, (0..len).map(|_| Err(PoolError::Terminated)).collect());
    }

    /// Chunk `chunk` finished, one result per item.
    pub(super) fn items_done(&self, chunk: usize, results: Vec<Result<R, PoolError>>) {
        self.deliver(chunk, results);
    }
}

/// The results of [`Pool::imap`](super::Pool::imap) or
/// [`imap_unordered`](super::Pool::imap_unordered), one `Result` per item.
///
/// It is an `Iterator` that blocks for the next result (for plain threads)
/// and a `Stream` (for async code, through `futures::StreamExt` or
/// [`next_async`](Imap::next_async)). Results are taken from the pool a
/// whole chunk at a time, so iterating costs one lock per chunk.
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
    sink: Arc<ImapSink<R>>,
    current: std::vec::IntoIter<Result<R, PoolError>>,
}

impl<R: Send> Imap<R> {
    pub(super) fn new(sink: Arc<ImapSink<R>>) -> Imap<R> {
        Imap {
            sink,
            current: Vec::new().into_iter(),
        }
    }

    /// The next result, awaited without blocking the thread.
    pub async fn next_async(&mut self) -> Option<Result<R, PoolError>> {
        std::future::poll_fn(|cx| self.poll_next_result(cx)).await
    }

    fn poll_next_result(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<R, PoolError>>> {
        if let Some(item) = self.current.next() {
            return Poll::Ready(Some(item));
        }
        let mut state = lock(&self.sink.state);
        match state.take_next() {
            Ok(Some(chunk)) => {
                drop(state);
                self.current = chunk.into_iter();
                Poll::Ready(self.current.next())
            }
            Ok(None) => Poll::Ready(None),
            Err(()) => {
                match &mut state.waker {
                    Some(waker) => waker.clone_from(cx.waker()),
                    none => *none = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl<R: Send> Iterator for Imap<R> {
    type Item = Result<R, PoolError>;

    /// Blocks until the next result.
    ///
    /// # Panics
    ///
    /// On a thread that runs a Weft runtime; use the `Stream` there.
    #[track_caller]
    fn next(&mut self) -> Option<Result<R, PoolError>> {
        if let Some(item) = self.current.next() {
            return Some(item);
        }
        super::assert_may_block("iterating an Imap", "its Stream (next_async)");
        let mut state = lock(&self.sink.state);
        loop {
            match state.take_next() {
                Ok(Some(chunk)) => {
                    drop(state);
                    self.current = chunk.into_iter();
                    return self.current.next();
                }
                Ok(None) => return None,
                Err(()) => state = wait(&self.sink.ready, state),
            }
        }
    }
}

impl<R: Send> Stream for Imap<R> {
    type Item = Result<R, PoolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_next_result(cx)
    }
}

impl<R> Unpin for Imap<R> {}

impl<R> Drop for Imap<R> {
    fn drop(&mut self) {
        // Results not taken are dropped here, on the consumer's thread; those
        // still to come, on the workers, contained.
        let buffered = {
            let mut state = lock(&self.sink.state);
            state.consumer_gone = true;
            (std::mem::take(&mut state.by_chunk), std::mem::take(&mut state.finished))
        };
        drop(buffered);
    }
}

impl<R> fmt::Debug for Imap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.sink.state);
        f.debug_struct("Imap")
            .field("ordered", &state.ordered)
            .field("chunks_taken", &state.taken)
            .field("chunks", &state.total)
            .finish()
    }
}
