//! [`MapOutput`]: a map's result vector, written in place by its chunks, so
//! that a map of a million items writes each result once and never copies
//! the results into a final vector afterwards.
//!
//! # Rules
//!
//! 1. **One allocation, disjoint ranges.** The output owns a buffer with room
//!    for every result. Chunk `c` covers the items `first..first + len`, and
//!    the ranges of all chunks are disjoint and cover the buffer.
//! 2. **One writer per range.** Only the job of a chunk writes its range,
//!    through the one [`ChunkWriter`] made for it
//!    ([`MapOutput::writer`] is `unsafe` for this reason).
//! 3. **A writer cleans up after itself.** Values are written in order; a
//!    writer that is dropped before it has filled its range (the item
//!    panicked, the pool was terminated) drops the values it wrote. One that
//!    fills its range is consumed by [`ChunkWriter::finish`], which hands
//!    the values over to the output.
//! 4. **The last report decides.** Once every chunk has reported, the
//!    collector calls [`MapOutput::take_vec`] with which chunks finished: if
//!    all did, the buffer becomes the result vector as is; otherwise the
//!    finished ranges are dropped and the buffer is freed.
//! 5. **Ranges are checked, always.** [`MapOutput::writer`] refuses (panics)
//!    a range that does not lie within the output, in release builds too,
//!    and a writer refuses to write past its range; the pool sizes the
//!    output from the items it counted, so neither happens, but memory
//!    safety does not rest on that.
//! 6. **Values are dropped one at a time, contained** (rule 2 of the
//!    pool): a result whose destructor panics neither stops the others from
//!    dropping nor leaks the buffer.
//! 7. **A map in place reuses its input's buffer.** When the items and
//!    the results have one layout, the output is the input vector's own
//!    buffer ([`MapOutput::in_place`]): a chunk's slots hold its items until
//!    it moves each out, just before its writer fills that slot with the
//!    item's result, and a chunk that stops early (a panic, terminate, never
//!    run) drops the items it did not move out before it reports. So rule 4
//!    finds only results in a finished range, and the buffer, allocated for
//!    as many `T`s as `R`s, is freed or returned with its own layout.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering::AcqRel};

/// The shared result buffer of one map.
pub(super) struct MapOutput<R> {
    ptr: NonNull<R>,
    cap: usize,
    len: usize,
    /// Set by `take_vec`: the buffer belongs to someone else now.
    taken: AtomicBool,
}

// SAFETY: the buffer holds `R`s that are written by pool threads (rule 2:
// each range by one thread) and handed to the thread that finishes the map,
// so moving and sharing the output needs `R: Send` only; nothing reads a
// value through a shared reference while another thread writes it.
unsafe impl<R: Send> Send for MapOutput<R> {}
// SAFETY: as above: `&MapOutput` only gives out writers to disjoint ranges.
unsafe impl<R: Send> Sync for MapOutput<R> {}

impl<R> MapOutput<R> {
    /// Room for `len` results.
    pub(super) fn new(len: usize) -> MapOutput<R> {
        let mut vec = ManuallyDrop::new(Vec::<R>::with_capacity(len));
        MapOutput {
            // A vector's pointer is never null (dangling when it has no
            // allocation).
            ptr: NonNull::new(vec.as_mut_ptr()).expect("weft bug: a vector with a null pointer"),
            cap: vec.capacity(),
            len,
            taken: AtomicBool::new(false),
        }
    }

    /// The buffer of `items` as the output of a map over them in place
    /// (rule 7), with the pointer to its first item. `R` must have `T`'s
    /// size and alignment, and not be zero-sized, so that the buffer is a
    /// valid allocation for as many `R`s.
    ///
    /// # Panics
    ///
    /// If the layouts differ (a bug in the pool).
    pub(super) fn in_place<T>(items: Vec<T>) -> (MapOutput<R>, *mut T) {
        assert!(
            size_of::<T>() == size_of::<R>() && align_of::<T>() == align_of::<R>() && size_of::<R>() != 0,
            "weft bug: a map in place between types of different layouts"
        );
        let mut items = ManuallyDrop::new(items);
        let first = items.as_mut_ptr();
        let output = MapOutput {
            // A vector's pointer is never null (dangling when it has no
            // allocation).
            ptr: NonNull::new(first.cast::<R>()).expect("weft bug: a vector with a null pointer"),
            cap: items.capacity(),
            len: items.len(),
            taken: AtomicBool::new(false),
        };
        (output, first)
    }

    /// The writer of the range `first..first + len`.
    ///
    /// # Safety
    ///
    /// Rule 2: at most one writer may exist for each range, the range must
    /// lie within the output, and ranges of different writers must not
    /// overlap.
    ///
    /// # Panics
    ///
    /// If the range does not lie within the output (rule 5).
    pub(super) unsafe fn writer(&self, first: usize, len: usize) -> ChunkWriter<'_, R> {
        assert!(
            first.checked_add(len).is_some_and(|end| end <= self.len),
            "weft bug: a chunk range {first}+{len} outside a map output of {}",
            self.len
        );
        ChunkWriter {
            // SAFETY: `first <= self.len <= cap`, so the offset stays within
            // (or one past) the allocation.
            start: unsafe { self.ptr.as_ptr().add(first) },
            len,
            written: 0,
            _output: PhantomData,
        }
    }

    /// Rule 4: the results, if every chunk in `chunks` (`(first, len,
    /// finished)`) finished; otherwise drops what the finished chunks wrote
    /// and frees the buffer. Either way the buffer is gone afterwards.
    ///
    /// # Safety
    ///
    /// Every writer must be gone, `chunks` must list every chunk's range and
    /// whether its writer was finished, and no writer may be made after.
    ///
    /// # Panics
    ///
    /// If called twice (a bug in the pool).
    pub(super) unsafe fn take_vec(&self, chunks: &[(usize, usize, bool)]) -> Option<Vec<R>> {
        assert!(!self.taken.swap(true, AcqRel), "weft bug: a map's output taken twice");
        if chunks.iter().all(|c| c.2) {
            // SAFETY: rule 1 and 3: the finished ranges cover all `len`
            // slots, each written once; `ptr` and `cap` come from a vector of
            // `R` (rule 1).
            return Some(unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), self.len, self.cap) });
        }
        for &(first, len, finished) in chunks {
            if finished {
                // SAFETY: a finished range holds `len` initialised values
                // (rule 3) that nobody else owns, and lies within the
                // buffer (rule 5).
                unsafe { drop_each_in_place(self.ptr.as_ptr().add(first), len) };
            }
        }
        // SAFETY: frees the allocation without dropping anything more: the
        // length is zero.
        drop(unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), 0, self.cap) });
        None
    }
}

impl<R> Drop for MapOutput<R> {
    fn drop(&mut self) {
        if *self.taken.get_mut() {
            return;
        }
        // Reached only if a map never finished (a bug): free the memory and
        // leak whatever values were written, which is safe.
        // SAFETY: `ptr` and `cap` come from a vector of `R` that nobody took;
        // length zero drops no value.
        drop(unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), 0, self.cap) });
    }
}

/// Writes one chunk's results into its range of a [`MapOutput`], in order.
pub(super) struct ChunkWriter<'a, R> {
    start: *mut R,
    len: usize,
    written: usize,
    _output: PhantomData<&'a MapOutput<R>>,
}

impl<R> ChunkWriter<'_, R> {
    /// Appends the next result.
    ///
    /// # Panics
    ///
    /// If the range is already full (a bug in the pool).
    #[inline]
    pub(super) fn push(&mut self, value: R) {
        assert!(self.written < self.len, "weft bug: a chunk wrote past its range");
        // SAFETY: `written < len`, so the slot is inside this writer's range,
        // which only this writer touches (rule 2), and it is uninitialised.
        unsafe { self.start.add(self.written).write(value) };
        self.written += 1;
    }

    /// Hands the filled range over to the output (rule 3). False, after
    /// dropping what was written, if the range is not full.
    pub(super) fn finish(self) -> bool {
        if self.written != self.len {
            return false; // dropped here, which cleans up
        }
        std::mem::forget(self);
        true
    }
}

impl<R> Drop for ChunkWriter<'_, R> {
    fn drop(&mut self) {
        // SAFETY: the first `written` slots of the range were initialised by
        // `push` and are owned by this writer until `finish`.
        unsafe { drop_each_in_place(self.start, self.written) };
    }
}

/// Drops the `len` values at `start`, each on its own inside an unwind
/// boundary (rule 6).
///
/// # Safety
///
/// `start..start + len` must hold initialised values that the caller owns
/// and never uses again.
unsafe fn drop_each_in_place<R>(start: *mut R, len: usize) {
    for i in 0..len {
        // SAFETY: slot `i` is initialised and ours (the caller's contract);
        // it is read exactly once, here.
        let value = unsafe { start.add(i).read() };
        super::drop_contained(value);
    }
}

#[cfg(test)]
mod tests {
    use super::MapOutput;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn finished_chunks_become_the_vector() {
        let out = MapOutput::<String>::new(5);
        // SAFETY: disjoint ranges, one writer each.
        let (mut a, mut b) = unsafe { (out.writer(0, 2), out.writer(2, 3)) };
        for s in ["a", "b"] {
            a.push(s.to_owned());
        }
        for s in ["c", "d", "e"] {
            b.push(s.to_owned());
        }
        assert!(a.finish() && b.finish());
        // SAFETY: both writers are gone and listed.
        let v = unsafe { out.take_vec(&[(0, 2, true), (2, 3, true)]) }.unwrap();
        assert_eq!(v, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn a_failed_chunk_drops_every_written_value_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let out = MapOutput::<Counted>::new(6);
        // SAFETY: disjoint ranges, one writer each.
        let (mut a, mut b) = unsafe { (out.writer(0, 3), out.writer(3, 3)) };
        for _ in 0..3 {
            a.push(Counted(drops.clone()));
        }
        b.push(Counted(drops.clone())); // then "panics"
        assert!(a.finish());
        assert!(!b.finish());
        assert_eq!(drops.load(SeqCst), 1);
        // SAFETY: both writers are gone and listed.
        assert!(unsafe { out.take_vec(&[(0, 3, true), (3, 3, false)]) }.is_none());
        assert_eq!(drops.load(SeqCst), 4);
    }

    #[test]
    #[should_panic(expected = "outside a map output")]
    fn a_range_outside_the_output_is_refused_in_every_build() {
        let out = MapOutput::<u8>::new(4);
        // SAFETY: the call is refused before any writer exists.
        let _writer = unsafe { out.writer(2, 3) };
    }

    #[test]
    fn two_destructors_that_panic_do_not_abort_or_stop_the_others() {
        struct Bomb(Arc<AtomicUsize>, bool);
        impl Drop for Bomb {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
                assert!(!self.1, "weft pool test: a destructor that panics");
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let out = MapOutput::<Bomb>::new(6);
        // SAFETY: disjoint ranges, one writer each.
        let (mut a, mut b) = unsafe { (out.writer(0, 3), out.writer(3, 3)) };
        for armed in [true, false, true] {
            a.push(Bomb(drops.clone(), armed));
        }
        b.push(Bomb(drops.clone(), true));
        b.push(Bomb(drops.clone(), true));
        assert!(a.finish());
        drop(b); // two panicking destructors, one after the other
        assert_eq!(drops.load(SeqCst), 2);
        // SAFETY: both writers are gone and listed.
        assert!(unsafe { out.take_vec(&[(0, 3, true), (3, 3, false)]) }.is_none());
        assert_eq!(drops.load(SeqCst), 5);
    }

    #[test]
    fn zero_sized_results_work() {
        let out = MapOutput::<()>::new(3);
        // SAFETY: one writer for the whole range.
        let mut w = unsafe { out.writer(0, 3) };
        for _ in 0..3 {
            w.push(());
        }
        assert!(w.finish());
        // SAFETY: the writer is gone and listed.
        assert_eq!(unsafe { out.take_vec(&[(0, 3, true)]) }.unwrap().len(), 3);
    }
}
