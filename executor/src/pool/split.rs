//! Map inputs split without collecting them on the caller's thread: an
//! integer range (`pool.map(f, 0..n, None)`, Python's `range(n)`) is split
//! into `start..end` ranges that the workers count through, so no item is
//! ever stored; a `Vec` is split in place, each chunk moving its own items
//! out of the vector's buffer ([`VecRange`]), and when the results have the
//! items' layout (a `Vec<u64>` mapped to `u64`s) they are written over the
//! items, into that same buffer ([`InPlaceChunk`]), so the map allocates no
//! output and touches no fresh memory. Any other input is collected
//! into chunks on the caller's thread first (`Cut` in `mod.rs`), which for
//! a million cheap items costs more than mapping them.
//!
//! # A `Vec` split in place
//!
//! The vector's buffer goes into a [`SharedBuffer`], which frees it (and
//! drops no item) when the last chunk lets go. Each chunk owns the items
//! `next..end` of it, disjoint from every other chunk's; it moves them out
//! one at a time (`ptr::read`, advancing `next` first), so an item is moved
//! out at most once, and drops in place, when it is dropped, the ones it
//! never moved out. So every item is moved out or dropped exactly once,
//! whatever runs, panics or is terminated.
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

use super::output::{ChunkWriter, MapOutput};
use super::sink::Collect;
use super::{ChunkItems, Job, Pool, PoolError, Shared, TERMINATE_CHECK, drop_contained, panicked};
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
    /// Queues a map over `items` split in place, if `items` is a `Vec` of
    /// its items; otherwise gives everything back.
    #[allow(clippy::type_complexity)]
    pub(super) fn map_vec<F, T, R, I, Fin>(
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
        if !same_type::<I, Vec<T>>() {
            return Err((f, items, finish));
        }
        // SAFETY: `I` is `Vec<T>` (`same_type`; `T` is `'static`, so no
        // lifetime differs).
        let items: Vec<T> = unsafe { identity_cast(items) };
        let size = match chunksize {
            Some(0) => return Ok(Err(PoolError::InvalidArgument("chunksize must be at least 1"))),
            Some(size) => size,
            None => self.default_chunksize(items.len()),
        };
        // Before the empty case: an empty vector mapped in place is
        // returned in its own allocation too (`Pool::map`'s docs).
        if maps_in_place::<T, R>() {
            return Ok(self.submit_in_place(f, items, size, finish));
        }
        let len = items.len();
        if len == 0 {
            finish(Ok(Vec::new()));
            return Ok(Ok(()));
        }
        let buffer = Arc::new(SharedBuffer::new(items));
        let chunks: Vec<(usize, VecRange<T>)> = (0..len)
            .step_by(size)
            .map(|first| {
                let end = (first + size).min(len);
                (
                    first,
                    VecRange {
                        items: buffer.ptr,
                        _buffer: buffer.clone(),
                        next: first,
                        end,
                    },
                )
            })
            .collect();
        drop(buffer);
        let sink = Arc::new(Collect::new(len, chunks.len(), finish));
        Ok(self.submit_chunks(f, chunks, &sink))
    }

    /// Queues the map of `f` over `items` in place (see the module docs), in
    /// chunks of `size`: the results go into the vector's own buffer.
    fn submit_in_place<F, T, R, Fin>(&self, f: F, items: Vec<T>, size: usize, finish: Fin) -> Result<(), PoolError>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
        Fin: FnOnce(Result<Vec<R>, PoolError>) + Send + 'static,
    {
        let len = items.len();
        let chunks = len.div_ceil(size);
        let (output, base) = MapOutput::in_place(items);
        if chunks == 0 {
            // No chunk would report: the empty buffer is the result.
            // SAFETY: no writer was made, and the empty list covers the
            // output's zero slots.
            let results = unsafe { output.take_vec(&[]) };
            finish(Ok(results.expect("weft bug: an empty map in place not taken")));
            return Ok(());
        }
        let sink = Arc::new(Collect::with_output(output, chunks, finish));
        let f = Arc::new(f);
        let jobs: Vec<Box<dyn Job>> = (0..chunks)
            .map(|chunk| {
                let first = chunk * size;
                Box::new(InPlaceChunk {
                    f: f.clone(),
                    chunk,
                    first,
                    // SAFETY: `first < len`: within the buffer.
                    items: unsafe { base.add(first) },
                    len: size.min(len - first),
                    ran: false,
                    sink: sink.clone(),
                }) as Box<dyn Job>
            })
            .collect();
        // The jobs hold every reference from here (rule 2: the function's
        // last drop happens on a worker, contained).
        drop(f);
        // Refused (closed): the jobs are dropped, which drops their items
        // and settles the sink as terminated; the caller gets `Closed`.
        self.submit(jobs)
    }

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

/// True if a map from `T` to `R` can write its results over its items:
/// one size and alignment, not zero-sized.
fn maps_in_place<T, R>() -> bool {
    size_of::<T>() == size_of::<R>() && align_of::<T>() == align_of::<R>() && size_of::<T>() != 0
}

/// One chunk of a map in place: the `len` items at `items`, which are items
/// `first..first + len` of the map, and whose slots take their results.
struct InPlaceChunk<F, T, R: Send> {
    f: Arc<F>,
    chunk: usize,
    first: usize,
    /// The chunk's first item, in the buffer that `sink`'s output owns.
    items: *mut T,
    len: usize,
    /// Set when the chunk runs; a chunk dropped unrun drops its items and
    /// tells its sink.
    ran: bool,
    sink: Arc<Collect<R>>,
}

// SAFETY: the chunk owns its `len` items (moved to and dropped on a worker:
// `T: Send`) and nothing else reaches them; the buffer they lie in is kept
// by the sink, which the chunk holds.
unsafe impl<F: Send + Sync, T: Send, R: Send> Send for InPlaceChunk<F, T, R> {}

impl<F, T, R> Job for InPlaceChunk<F, T, R>
where
    F: Fn(T) -> R + Send + Sync,
    T: Send,
    R: Send,
{
    fn run(mut self: Box<Self>, shared: &Shared) {
        self.ran = true;
        // SAFETY: a job runs once, so the chunk's items are still all in
        // their slots, and its range is its own.
        let outcome = unsafe { run_in_place(self.items, self.len, self.first, &*self.f, &shared.terminated) };
        self.sink.report(self.chunk, self.first, self.len, outcome);
    }
}

/// Runs `f` on each of the `len` items at `items`, writing each result over
/// its item, until the items run out (`Ok`), the pool is terminated, or an
/// item panics (its error). On failure the results written and the items
/// not moved out are dropped, one at a time, contained (rule 7 of
/// `output.rs`), before it returns.
///
/// The loop reads and writes each slot through one pointer, so the compiler
/// sees that item `i` is read before result `i` is written over it, and
/// vectorises cheap maps; what a panic needs, the count of items moved out,
/// is written out by a guard only when it drops (as in [`run_chunk`]).
///
/// # Safety
///
/// The `len` slots at `items` must hold initialised items that the caller
/// owns and gives up, in a buffer that has room for as many `R`s (one
/// layout); on `Ok` they hold `len` results, otherwise nothing.
unsafe fn run_in_place<T, R>(
    items: *mut T,
    len: usize,
    first: usize,
    f: &impl Fn(T) -> R,
    terminated: &AtomicBool,
) -> Result<(), PoolError> {
    /// Counts the items moved out; tells `taken` when dropped (also by a
    /// panic).
    struct Moved<'a> {
        n: usize,
        taken: &'a Cell<usize>,
    }
    impl Drop for Moved<'_> {
        fn drop(&mut self) {
            self.taken.set(self.n);
        }
    }
    let taken = Cell::new(0);
    let run = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut moved = Moved { n: 0, taken: &taken };
        while moved.n < len {
            if terminated.load(Relaxed) {
                return false;
            }
            let stop = len.min(moved.n + TERMINATE_CHECK);
            while moved.n < stop {
                // SAFETY: `n < len`: one of this chunk's slots, still holding
                // its item (slots are taken in order, once), read once here
                // and then filled with the item's result, which fits (the
                // caller's contract).
                unsafe {
                    let slot = items.add(moved.n);
                    moved.n += 1;
                    let item = slot.read();
                    slot.cast::<R>().write(f(item));
                }
            }
        }
        true
    }));
    let (results, outcome) = match run {
        Ok(true) => return Ok(()),
        Ok(false) => (taken.get(), Err(PoolError::Terminated)),
        // The item that panicked was the last one moved out; its slot is
        // empty.
        Err(payload) => (taken.get() - 1, Err(panicked(first + taken.get() - 1, payload))),
    };
    // SAFETY: slots `..results` hold results and `taken..len` items, all
    // owned here (the caller's contract), each dropped once.
    unsafe {
        for i in 0..results {
            drop_contained(items.cast::<R>().add(i).read());
        }
        drop(InPlaceItems {
            items,
            next: taken.get(),
            len,
        });
    }
    outcome
}

impl<F, T, R: Send> Drop for InPlaceChunk<F, T, R> {
    fn drop(&mut self) {
        if !self.ran {
            // Dropped unrun (terminated, or refused by a closed pool): its
            // items first (rule 7 of `output.rs`), then the report.
            drop(InPlaceItems {
                items: self.items,
                next: 0,
                len: self.len,
            });
            self.sink
                .report(self.chunk, self.first, self.len, Err(PoolError::Terminated));
        }
    }
}

/// A chunk's items in a map in place, moved out of their slots one at a
/// time; those never moved out are dropped with it, each contained.
struct InPlaceItems<T> {
    items: *mut T,
    next: usize,
    len: usize,
}

impl<T> Iterator for InPlaceItems<T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.next == self.len {
            return None;
        }
        let index = self.next;
        // Advanced first: the slot is this chunk's to move out once.
        self.next += 1;
        // SAFETY: `index < len`: a slot of this chunk, which holds an item
        // not moved out before (`next` only grows); its result is written
        // there only after this read (`run_in_place` writes after `f`).
        Some(unsafe { self.items.add(index).read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.len - self.next;
        (left, Some(left))
    }
}

impl<T> Drop for InPlaceItems<T> {
    fn drop(&mut self) {
        // Each on its own, contained (rule 2): a destructor that panics,
        // even during a panic's unwinding, stops neither the others nor the
        // chunk's report.
        for item in self.by_ref() {
            drop_contained(item);
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

/// A `Vec`'s buffer, shared by the chunks that move its items out (see the
/// module docs). Dropping it frees the buffer and drops no item: by then
/// every chunk has moved out or dropped its own.
struct SharedBuffer<T> {
    ptr: *mut T,
    capacity: usize,
}

impl<T> SharedBuffer<T> {
    fn new(items: Vec<T>) -> SharedBuffer<T> {
        let mut items = ManuallyDrop::new(items);
        SharedBuffer {
            ptr: items.as_mut_ptr(),
            capacity: items.capacity(),
        }
    }
}

// SAFETY: the buffer owns `T`s, which chunks move to (and drop on) other
// threads: `T: Send` is what that needs. Chunks touch disjoint items, and
// the buffer itself is only freed by the last owner.
unsafe impl<T: Send> Send for SharedBuffer<T> {}
// SAFETY: as above; a shared reference only gives out the pointer, through
// which each chunk reaches its own items alone.
unsafe impl<T: Send> Sync for SharedBuffer<T> {}

impl<T> Drop for SharedBuffer<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `capacity` came from a `Vec<T>` that was never
        // dropped (`ManuallyDrop`); with length 0 the `Vec` frees the
        // allocation and drops no item (each was moved out or dropped by
        // its chunk).
        drop(unsafe { Vec::from_raw_parts(self.ptr, 0, self.capacity) });
    }
}

/// The items `next..end` of a shared buffer, owned by one chunk.
pub(super) struct VecRange<T> {
    /// The buffer's first item (a copy of its pointer, so that the loop
    /// over the items reads no `Arc`).
    items: *mut T,
    /// Keeps the buffer allocated while the range lives (only dropped).
    _buffer: Arc<SharedBuffer<T>>,
    next: usize,
    end: usize,
}

impl<T> Iterator for VecRange<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.next == self.end {
            return None;
        }
        let index = self.next;
        // Advanced first: the item is this chunk's to move out once.
        self.next += 1;
        // SAFETY: `index` is in this range's `next..end`, which no other
        // range overlaps, within the vector's length; it was not moved out
        // before (`next` only grows), and the buffer outlives the range
        // (the `Arc`).
        Some(unsafe { std::ptr::read(self.items.add(index)) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        (left, Some(left))
    }
}

// SAFETY: the range owns its items (`T: Send` moves them); the pointer is
// into the buffer the `Arc` keeps alive, and no other range reaches these
// items.
unsafe impl<T: Send> Send for VecRange<T> {}

impl<T> ChunkItems for VecRange<T> {
    fn len(&self) -> usize {
        self.end - self.next
    }
}

impl<T> Drop for VecRange<T> {
    fn drop(&mut self) {
        let (next, end) = (self.next, self.end);
        // Marked empty first: should a destructor panic, nothing is dropped
        // twice (the rest of the slice is still dropped by `drop_in_place`).
        self.next = end;
        // SAFETY: `next..end` are this range's items not moved out, each
        // still initialised, dropped here once.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(self.items.add(next), end - next));
        }
    }
}
