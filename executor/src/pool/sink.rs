//! Where a pool call's results go: a blocking [`Completion`], an ordered
//! [`Collect`]or for `map`, and the [`ImapSink`] that an `imap`'s consumer
//! (an [`Imap`](super::Imap) or an [`ImapStream`](super::ImapStream), in
//! `imap.rs`) drains.

use super::PoolError;
use super::output::{ChunkWriter, MapOutput};
use crate::loom::{Condvar, Mutex, lock, wait};
use std::collections::VecDeque;
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
        Collect::with_output(MapOutput::new(len), chunks, finish)
    }

    /// A collector whose results go into `output` (a fresh buffer, or the
    /// input's own for a map in place), in `chunks` chunks.
    pub(super) fn with_output(
        output: MapOutput<R>,
        chunks: usize,
        finish: impl FnOnce(Result<Vec<R>, PoolError>) + Send + 'static,
    ) -> Collect<R> {
        Collect {
            output,
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

/// The results of one chunk, one `Result` per item.
pub(super) type ChunkResults<R> = Vec<Result<R, PoolError>>;

/// The buffer between an imap's chunks and its one consumer. Chunks
/// deliver whole; the consumer takes them whole, in input order (ordered)
/// or completion order, by blocking ([`wait_take`](Self::wait_take)) or by
/// polling ([`poll_take`](Self::poll_take)), until it
/// [leaves](Self::consumer_gone).
pub(super) struct ImapSink<R> {
    state: Mutex<ImapState<R>>,
    /// Signalled when a chunk is delivered, for a blocked consumer.
    ready: Condvar,
}

struct ImapState<R> {
    /// The consumer is gone: nobody will take results (they are dropped as
    /// they come, one at a time: rule 2 of the pool).
    consumer_gone: bool,
    ordered: bool,
    /// Ordered: results per chunk, taken in chunk order.
    by_chunk: Vec<Option<ChunkResults<R>>>,
    /// Unordered: finished chunks in completion order.
    finished: VecDeque<ChunkResults<R>>,
    /// Chunks handed to the consumer so far.
    taken: usize,
    total: usize,
    /// The consumer's task, when it polled and found nothing.
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

    fn deliver(&self, chunk: usize, results: ChunkResults<R>) {
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

    /// Chunk `chunk` of `len` items will never run.
    pub(super) fn dropped(&self, chunk: usize, len: usize) {
        self.deliver(chunk, (0..len).map(|_| Err(PoolError::Terminated)).collect());
    }

    /// Chunk `chunk` finished, one result per item.
    pub(super) fn items_done(&self, chunk: usize, results: ChunkResults<R>) {
        self.deliver(chunk, results);
    }
}

impl<R> ImapState<R> {
    /// The next chunk for the consumer: `Ok(Some)` a chunk, `Ok(None)` all
    /// taken, `Err(())` not available yet.
    fn take_next(&mut self) -> Result<Option<ChunkResults<R>>, ()> {
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

impl<R> ImapSink<R> {
    /// Blocks until the next chunk is here (`Some`), or every chunk has
    /// been taken (`None`).
    pub(super) fn wait_take(&self) -> Option<ChunkResults<R>> {
        let mut state = lock(&self.state);
        loop {
            match state.take_next() {
                Ok(next) => return next,
                Err(()) => state = wait(&self.ready, state),
            }
        }
    }

    /// The next chunk if it is here (`Ready(Some)`), `Ready(None)` once
    /// every chunk has been taken; otherwise keeps `cx`'s waker, which the
    /// next delivery wakes.
    pub(super) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<ChunkResults<R>>> {
        let mut state = lock(&self.state);
        match state.take_next() {
            Ok(next) => Poll::Ready(next),
            Err(()) => {
                match &mut state.waker {
                    Some(waker) => waker.clone_from(cx.waker()),
                    none => *none = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// The consumer is gone: the results buffered here are dropped, on the
    /// caller's thread, and those still to come on the workers, contained.
    pub(super) fn consumer_gone(&self) {
        let buffered = {
            let mut state = lock(&self.state);
            state.consumer_gone = true;
            (
                std::mem::take(&mut state.by_chunk),
                std::mem::take(&mut state.finished),
                state.waker.take(),
            )
        };
        drop(buffered);
    }

    /// `(ordered, chunks taken, chunks)`, for `Debug`.
    pub(super) fn progress(&self) -> (bool, usize, usize) {
        let state = lock(&self.state);
        (state.ordered, state.taken, state.total)
    }
}
