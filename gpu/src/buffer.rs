//! [`DeviceBuffer`]: device memory that safe code cannot free, or let the
//! pool reuse, while any stream still uses it.
//!
//! # Invariants
//!
//! 1. **The allocation outlives every use.** A buffer's memory is a shared
//!    [`DeviceAlloc`]. Every operation that uses it (a copy, a memset, a
//!    kernel argument) holds a count of it in the operation's slot, which
//!    the loop's tracker keeps until the operation's event says the device
//!    is done (`op.rs`). Dropping the buffer drops only its own count; the
//!    memory is freed when the last count goes, so never while a stream
//!    still reads or writes it, whichever streams those are. (cudarc's
//!    `CudaSlice` keeps one read event, re-recorded on each use, and so
//!    forgets a read on stream B once stream C reads: its drop frees while
//!    B still reads. This type exists to make that impossible.)
//! 2. **Streams see each other's uses in order.** The allocation keeps its
//!    last write and the last read *per stream* (`Hazards`), as the events
//!    of those operations. Before a use on stream S, S waits (on the
//!    device, `cuStreamWaitEvent`) for the last write on other streams, and
//!    a write also waits for every other stream's last read. So a kernel
//!    writing on S never races a copy reading on B or C, and a read never
//!    sees a half-done write. Uses on one stream are ordered by the stream.
//! 3. **The free is stream-ordered and non-blocking.** With memory pools
//!    (every GPU CUDA 11.2 and later runs on), the free is `cuMemFreeAsync`
//!    on the device's free stream after it waits for the recorded events;
//!    without pools, `cuMemFree` synchronizes, so it runs on the device's
//!    reclaimer thread. After a device fault the memory is not freed (the
//!    context is dead; it goes with it).

use crate::device::{Device, cu};
use crate::error::GpuError;
use crate::handles::{RawEvent, StreamCore};
use crate::loom::lock;
use cudarc::driver::sys::{self, CUdeviceptr};
use cudarc::driver::{DeviceRepr, DriverError};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

/// One device allocation, shared by its buffer and the operations using
/// it; see the module docs.
pub(crate) struct DeviceAlloc {
    ptr: CUdeviceptr,
    bytes: usize,
    device: Arc<Device>,
    hazards: Mutex<Hazards>,
}

/// The events after the latest uses (invariant 2).
#[derive(Default)]
struct Hazards {
    /// The last write: (stream id, event after it).
    write: Option<(u64, Arc<RawEvent>)>,
    /// The last read on each stream since that write.
    reads: Vec<(u64, Arc<RawEvent>)>,
}

impl DeviceAlloc {
    /// Makes `stream` wait for the uses on other streams that a read (or a
    /// write) must follow (invariant 2). The context must be bound.
    pub(crate) fn order_before(&self, stream: &StreamCore, write: bool) -> Result<(), DriverError> {
        let hazards = lock(&self.hazards);
        if let Some((id, event)) = &hazards.write
            && *id != stream.id()
        {
            stream.wait(event)?;
        }
        if write {
            for (id, event) in &hazards.reads {
                if *id != stream.id() {
                    stream.wait(event)?;
                }
            }
        }
        Ok(())
    }

    /// Records a use on stream `id`, finished when `event` completes.
    pub(crate) fn used(&self, id: u64, write: bool, event: &Arc<RawEvent>) {
        let mut hazards = lock(&self.hazards);
        if write {
            hazards.reads.clear();
            hazards.write = Some((id, event.clone()));
        } else {
            match hazards.reads.iter_mut().find(|(s, _)| *s == id) {
                Some(read) => read.1 = event.clone(),
                None => hazards.reads.push((id, event.clone())),
            }
        }
    }

    pub(crate) fn device(&self) -> &Arc<Device> {
        &self.device
    }
}

impl Drop for DeviceAlloc {
    fn drop(&mut self) {
        if self.bytes == 0 || self.device.fault().is_some() {
            return; // nothing allocated / the dead context owns it
        }
        let (ptr, device) = (self.ptr, self.device.clone());
        let hazards = std::mem::take(&mut *lock(&self.hazards));
        let events: Vec<Arc<RawEvent>> = hazards
            .write
            .into_iter()
            .chain(hazards.reads)
            .map(|(_, event)| event)
            .collect();
        if device.has_pools {
            // Every tracked use is done (invariant 1), but an allocation's
            // own zeroing may still be queued: the free stream waits for
            // all recorded uses, then frees in stream order.
            device.in_background("free device memory", || {
                let free = device.free_stream();
                for event in &events {
                    // SAFETY: live handles of the bound context.
                    cu(unsafe { sys::cuStreamWaitEvent(free, event.handle(), 0) })?;
                }
                // SAFETY: our allocation, freed once, after its uses.
                cu(unsafe { sys::cuMemFreeAsync(ptr, free) })
            });
        } else {
            let worker = device.clone();
            device.reclaim(Box::new(move || {
                drop(events);
                // SAFETY: our allocation, freed once; cuMemFree waits for
                // the device first.
                worker.in_background("free device memory", || cu(unsafe { sys::cuMemFree_v2(ptr) }));
            }));
        }
    }
}

/// Memory on the device holding `len` values of `T`; see the module docs
/// for why dropping it while work uses it is safe.
///
/// Made by [`Stream::alloc_zeros`](crate::Stream::alloc_zeros). Use part
/// of it with [`DeviceBuffer::slice`] and [`DeviceBuffer::slice_mut`].
pub struct DeviceBuffer<T> {
    alloc: Arc<DeviceAlloc>,
    len: usize,
    _values: PhantomData<T>,
}

impl<T: DeviceRepr> DeviceBuffer<T> {
    /// `len` zeroes, allocated and zeroed in `stream`'s order.
    pub(crate) fn zeroed(stream: &StreamCore, len: usize) -> Result<DeviceBuffer<T>, GpuError> {
        let call = "allocate device memory";
        let device = &stream.device;
        device.bind(call)?;
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or_else(|| GpuError::InvalidArgument(format!("{call}: {len} values overflow")))?;
        let mut ptr: CUdeviceptr = 0;
        let mut hazards = Hazards::default();
        if bytes > 0 {
            let err = |e| device.error(call, e);
            // SAFETY: out-pointers we own; the stream is live.
            unsafe {
                if device.has_pools {
                    cu(sys::cuMemAllocAsync(&mut ptr, bytes, stream.handle())).map_err(err)?;
                } else {
                    cu(sys::cuMemAlloc_v2(&mut ptr, bytes)).map_err(err)?;
                }
            }
            let alloc = DeviceAlloc {
                ptr,
                bytes,
                device: device.clone(),
                hazards: Mutex::default(),
            };
            // From here a failure drops `alloc`, which frees the memory.
            // SAFETY: the allocation just made, `bytes` long.
            cu(unsafe { sys::cuMemsetD8Async(ptr, 0, bytes, stream.handle()) }).map_err(err)?;
            let event = device.events.take(device).map_err(err)?;
            event.record(stream.handle()).map_err(err)?;
            // The allocation and its zeroing are a write on this stream.
            hazards.write = Some((stream.id(), Arc::new(event)));
            *lock(&alloc.hazards) = hazards;
            return Ok(DeviceBuffer {
                alloc: Arc::new(alloc),
                len,
                _values: PhantomData,
            });
        }
        Ok(DeviceBuffer {
            alloc: Arc::new(DeviceAlloc {
                ptr,
                bytes,
                device: device.clone(),
                hazards: Mutex::new(hazards),
            }),
            len,
            _values: PhantomData,
        })
    }
}

impl<T> DeviceBuffer<T> {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values in `range`, for copies and kernel arguments that read.
    ///
    /// # Panics
    ///
    /// If `range` is out of bounds, as slicing is.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> DeviceView<'_, T> {
        let (start, end) = bounds(range, self.len);
        DeviceView {
            span: Span::new(&self.alloc, start, end - start, size_of::<T>()),
            _buffer: PhantomData,
        }
    }

    /// The values in `range`, for copies and kernel arguments that write.
    ///
    /// # Panics
    ///
    /// If `range` is out of bounds, as slicing is.
    pub fn slice_mut(&mut self, range: impl RangeBounds<usize>) -> DeviceViewMut<'_, T> {
        let (start, end) = bounds(range, self.len);
        DeviceViewMut {
            span: Span::new(&self.alloc, start, end - start, size_of::<T>()),
            _buffer: PhantomData,
        }
    }

    /// The device address, for what Weft does not wrap. Using it does not
    /// keep the memory alive or order streams: that is then yours to do.
    pub fn device_ptr(&self) -> u64 {
        self.alloc.ptr
    }

    fn span(&self) -> Span {
        Span::new(&self.alloc, 0, self.len, size_of::<T>())
    }
}

fn bounds(range: impl RangeBounds<usize>, len: usize) -> (usize, usize) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    assert!(
        start <= end && end <= len,
        "weft-gpu: device range {start}..{end} out of bounds for a buffer of {len} values"
    );
    (start, end)
}

impl<T> fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// A part of a [`DeviceBuffer`], read-only (see [`DeviceBuffer::slice`]).
pub struct DeviceView<'a, T> {
    span: Span,
    _buffer: PhantomData<&'a DeviceBuffer<T>>,
}

/// A part of a [`DeviceBuffer`] that copies and kernels may write (see
/// [`DeviceBuffer::slice_mut`]).
pub struct DeviceViewMut<'a, T> {
    span: Span,
    _buffer: PhantomData<&'a mut DeviceBuffer<T>>,
}

impl<T> DeviceView<'_, T> {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.span.len
    }

    /// True if it holds no values.
    pub fn is_empty(&self) -> bool {
        self.span.len == 0
    }
}

impl<T> DeviceViewMut<'_, T> {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.span.len
    }

    /// True if it holds no values.
    pub fn is_empty(&self) -> bool {
        self.span.len == 0
    }
}

impl<T> fmt::Debug for DeviceView<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceView")
            .field("len", &self.span.len)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for DeviceViewMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceViewMut")
            .field("len", &self.span.len)
            .finish_non_exhaustive()
    }
}

/// Where an operation reads or writes: part of an allocation, which the
/// operation keeps alive (invariant 1).
#[derive(Clone)]
#[doc(hidden)]
pub struct Span {
    pub(crate) alloc: Arc<DeviceAlloc>,
    /// Offset in bytes.
    pub(crate) offset: usize,
    /// Values.
    pub(crate) len: usize,
    /// Bytes.
    pub(crate) bytes: usize,
}

impl Span {
    fn new(alloc: &Arc<DeviceAlloc>, start: usize, len: usize, size: usize) -> Span {
        Span {
            alloc: alloc.clone(),
            offset: start * size,
            len,
            bytes: len * size,
        }
    }

    /// The device address of the span's start.
    pub(crate) fn ptr(&self) -> CUdeviceptr {
        self.alloc.ptr + self.offset as u64
    }
}

/// Device memory an operation may read: a [`DeviceBuffer`] or a view.
pub trait DeviceRead<T> {
    /// The span, sealed: only weft-gpu's types implement this.
    #[doc(hidden)]
    fn span(&self) -> Span;
}

/// Device memory an operation may write: a `DeviceBuffer` or a
/// [`DeviceViewMut`].
pub trait DeviceWrite<T> {
    /// The span, sealed: only weft-gpu's types implement this.
    #[doc(hidden)]
    fn span_mut(&mut self) -> Span;
}

impl<T> DeviceRead<T> for DeviceBuffer<T> {
    fn span(&self) -> Span {
        DeviceBuffer::span(self)
    }
}

impl<T> DeviceRead<T> for DeviceView<'_, T> {
    fn span(&self) -> Span {
        self.span.clone()
    }
}

impl<T> DeviceRead<T> for DeviceViewMut<'_, T> {
    fn span(&self) -> Span {
        self.span.clone()
    }
}

impl<T> DeviceWrite<T> for DeviceBuffer<T> {
    fn span_mut(&mut self) -> Span {
        DeviceBuffer::span(self)
    }
}

impl<T> DeviceWrite<T> for DeviceViewMut<'_, T> {
    fn span_mut(&mut self) -> Span {
        self.span.clone()
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
