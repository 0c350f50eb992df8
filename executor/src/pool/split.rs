//! Map inputs split without collecting them on the caller's thread: an
//! integer range (`pool.map(f, 0..n, None)`, Python's `range(n)`) is split
//! into `start..end` ranges that the workers count through, so no item is
//! ever stored. Any other input is collected into chunks on the caller's
//! thread first (`Cut` in `mod.rs`), which for a million cheap items costs
//! more than mapping them.
//!
//! # How a range is recognised
//!
//! `Pool::map` takes any `IntoIterator`, and stable Rust cannot specialise a
//! generic function for `Range<u64>`. So [`Pool::map_split`] compares the
//! input's type with `Range<X>` for each primitive integer `X` (up to 64
//! bits) at run time, with [`same_type`]: a `TypeId` that ignores lifetimes
//! (the input need not be `'static`). When they match, the input *is* that
//! `Range<X>` (a range of integers has no lifetime to differ in), and its
//! items `T` are `X`, so both casts ([`identity_cast`]) move a value to its
//! own type. The checks compare constants, which the compiler folds away.

use super::output::ChunkWriter;
use super::sink::Collect;
use super::{Job, Pool, PoolError, Shared, TERMINATE_CHECK, panicked};
use std::any::TypeId;
use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// A primitive integer whose `Range` the pool splits without collecting it.
pub(super) trait RangeItem: Copy + Send + Sync + 'static {
    /// The number of items of `range`, if it fits a `usize`.
    fn count(range: &Range<Self>) -> Option<usize>;
    /// The `i`-th item of a range that starts at `start` (`i` at most the
    /// range's count, so the result lies within it or at its end).
    fn nth_from(start: Self, i: usize) -> Self;
}

macro_rules! range_items {
    ($($int:ty),*) => {$(
        impl RangeItem for $int {
            fn count(range: &Range<$int>) -> Option<usize> {
                if range.start >= range.end {
                    return Some(0);
                }
                // Widened: no primitive up to 64 bits overflows an i128.
                usize::try_from(range.end as i128 - range.start as i128).ok()
            }
            fn nth_from(start: $int, i: usize) -> $int {
                // Within the range (the caller's contract), so it fits.
                (start as i128 + i as i128) as $int
            }
        }
    )*};
}
range_items!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// True if `A` and `B` are the same type once lifetimes are ignored.
pub(super) fn same_type<A: ?Sized, B: ?Sized>() -> bool {
    erased_type_id::<A>() == erased_type_id::<B>()
}

/// The `TypeId` of `T` with its lifetimes erased (what `TypeId::of` would
/// give with every lifetime made `'static`), for a `T` that need not be
/// `'static`.
fn erased_type_id<T: ?Sized>() -> TypeId {
    trait TypeIdOf {
        fn type_id(&self) -> TypeId
        where
            Self: 'static;
    }
    impl<T: ?Sized> TypeIdOf for PhantomData<T> {
        fn type_id(&self) -> TypeId
        where
            Self: 'static,
        {
            TypeId::of::<T>()
        }
    }
    let marker = PhantomData::<T>;
    let object: &dyn TypeIdOf = &marker;
    // SAFETY: only the trait object's lifetime bound changes, and the one
    // method called through it reads no data (a `PhantomData` has none): it
    // names `T`'s type, whose id does not depend on lifetimes.
    let object: &(dyn TypeIdOf + 'static) = unsafe { std::mem::transmute(object) };
    object.type_id()
}

/// Moves `value` to the type `B`.
///
/// # Safety
///
/// `A` and `B` must be the same type (as [`same_type`] finds, where a
/// difference in lifetimes alone cannot change what the value is allowed
/// to do; the pool only casts integers and ranges of integers).
unsafe fn identity_cast<A, B>(value: A) -> B {
    assert!(
        size_of::<A>() == size_of::<B>() && align_of::<A>() == align_of::<B>(),
        "weft bug: an identity cast between types of different layouts"
    );
    let value = ManuallyDrop::new(value);
    // SAFETY: `A` is `B` (the caller's contract); the value is read once and
    // its original is never dropped (`ManuallyDrop`).
    unsafe { std::ptr::read((&*value as *const A).cast::<B>()) }
}

impl Pool {
    /// Queues a map over `items` without collecting them, if `items` is a
    /// `Range` of a primitive integer (up to 64 bits) whose length fits a
    /// `usize`; otherwise gives everything back for the generic path.
    #[allow(clippy::type_complexity)]
    pub(super) fn map_split<F, T, R, I, Fin>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
        finish: Fin,
    ) -> Result<Result<(), PoolError>, (F, I, Fin)>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
        Fin: FnOnce(Result<Vec<R>, PoolError>) + Send + 'static,
    {
        macro_rules! try_ranges {
            ($($int:ty),*) => {$(
                if same_type::<I, Range<$int>>() {
                    // SAFETY: `I` is `Range<$int>` (`same_type`; no lifetime
                    // can differ in it), so a reference to it is one to that.
                    let range = unsafe { &*(&items as *const I).cast::<Range<$int>>() };
                    if let Some(len) = <$int>::count(range) {
                        // SAFETY: as above.
                        let range: Range<$int> = unsafe { identity_cast(items) };
                        let f = move |x: $int| {
                            // SAFETY: `Range<$int>` yields `$int`, and `I`
                            // yields `T`: they are one type.
                            f(unsafe { identity_cast::<$int, T>(x) })
                        };
                        return Ok(self.submit_range(f, range.start, len, chunksize, finish));
                    }
                }
            )*};
        }
        try_ranges!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
        Err((f, items, finish))
    }

    /// Queues the map of `f` over the `len` integers from `start`, in
    /// chunks of `chunksize` (the default as for any map).
    fn submit_range<X, R, F, Fin>(
        &self,
        f: F,
        start: X,
        len: usize,
        chunksize: Option<usize>,
        finish: Fin,
    ) -> Result<(), PoolError>
    where
        X: RangeItem,
        Range<X>: Iterator<Item = X>,
        F: Fn(X) -> R + Send + Sync + 'static,
        R: Send + 'static,
        Fin: FnOnce(Result<Vec<R>, PoolError>) + Send + 'static,
    {
        let size = match chunksize {
            Some(0) => return Err(PoolError::InvalidArgument("chunksize must be at least 1")),
            Some(size) => size,
            None => self.default_chunksize(len),
        };
        if len == 0 {
            finish(Ok(Vec::new()));
            return Ok(());
        }
        let chunks = len.div_ceil(size);
        let sink = Arc::new(Collect::new(len, chunks, finish));
        let f = Arc::new(f);
        let jobs: Vec<Box<dyn Job>> = (0..chunks)
            .map(|chunk| {
                let first = chunk * size;
                Box::new(RangeChunk {
                    f: f.clone(),
                    chunk,
                    first,
                    start: X::nth_from(start, first),
                    len: size.min(len - first),
                    ran: false,
                    sink: sink.clone(),
                }) as Box<dyn Job>
            })
            .collect();
        // The jobs hold every reference from here (rule 2: the function's
        // last drop happens on a worker, contained).
        drop(f);
        // Refused (closed): the jobs are dropped, which settles the sink as
        // terminated, and the caller gets `Closed`.
        self.submit(jobs)
    }
}

/// One chunk of a range map: the `len` integers from `start`, which are
/// items `first..first + len` of the map.
struct RangeChunk<F, X, R: Send> {
    f: Arc<F>,
    chunk: usize,
    first: usize,
    start: X,
    len: usize,
    /// Set when the chunk runs; a chunk dropped unrun tells its sink.
    ran: bool,
    sink: Arc<Collect<R>>,
}

impl<F, X, R> Job for RangeChunk<F, X, R>
where
    X: RangeItem,
    Range<X>: Iterator<Item = X>,
    F: Fn(X) -> R + Send + Sync,
    R: Send,
{
    fn run(mut self: Box<Self>, shared: &Shared) {
        self.ran = true;
        // SAFETY: a job runs once, so this is the chunk's only writer, over
        // its own range (the chunks' ranges are disjoint by construction).
        let writer = unsafe { self.sink.writer(self.first, self.len) };
        let items = self.start..X::nth_from(self.start, self.len);
        let outcome = run_chunk(items, writer, self.first, &*self.f, &shared.terminated);
        self.sink.report(self.chunk, self.first, self.len, outcome);
    }
}

impl<F, X, R: Send> Drop for RangeChunk<F, X, R> {
    fn drop(&mut self) {
        if !self.ran {
            // Dropped unrun (terminated): nothing to drop but the report.
            self.sink
                .report(self.chunk, self.first, self.len, Err(PoolError::Terminated));
        }
    }
}

/// Runs `f` on every item of `items`, writing the results with `writer`,
/// until the items run out (`Ok`), the pool is terminated, or an item
/// panics (its error). What a chunk reports: on failure the results written
/// and the items not run are dropped, one at a time, contained.
///
/// The iterator and the writer are owned by the unwind boundary, so their
/// state stays in registers and the loop compiles as tight as a plain
/// `for` (it vectorises for cheap items); what a panic needs of them, the
/// count of items taken, is written out by a guard only when it drops.
/// The terminate flag is read every [`TERMINATE_CHECK`] items.
fn run_chunk<I: Iterator, R>(
    items: I,
    writer: ChunkWriter<'_, R>,
    first: usize,
    f: &impl Fn(I::Item) -> R,
    terminated: &AtomicBool,
) -> Result<(), PoolError> {
    /// Counts the items taken; tells `taken` when dropped (also by a panic).
    struct Counted<'a, I> {
        items: I,
        n: usize,
        taken: &'a Cell<usize>,
    }
    impl<I> Drop for Counted<'_, I> {
        fn drop(&mut self) {
            self.taken.set(self.n);
        }
    }
    let taken = Cell::new(0);
    let run = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut writer = writer;
        let mut items = Counted {
            items,
            n: 0,
            taken: &taken,
        };
        loop {
            if terminated.load(Relaxed) {
                return None; // drops the results and the items left
            }
            for _ in 0..TERMINATE_CHECK {
                let Some(item) = items.items.next() else {
                    return Some(writer);
                };
                items.n += 1;
                writer.push(f(item));
            }
        }
    }));
    match run {
        Ok(Some(writer)) => {
            if writer.finish() {
                Ok(())
            } else {
                Err(PoolError::Terminated) // (a bug) fewer items than the range
            }
        }
        Ok(None) => Err(PoolError::Terminated),
        // The item that panicked was the last one taken.
        Err(payload) => Err(panicked(first + taken.get() - 1, payload)),
    }
}
