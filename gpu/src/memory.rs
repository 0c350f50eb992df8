//! Host memory the GPU copies to and from without blocking the caller.
//!
//! A copy between the device and ordinary (pageable) host memory is not
//! asynchronous: the driver finishes it before `cuMemcpy*Async` returns,
//! which would park a worker thread for as long as the stream takes to get
//! there. Only page-locked ("pinned") memory is copied by DMA in the
//! stream's own time. So Weft's copies take a [`HostBuffer`] by value (a
//! [`PinnedBuffer`], a [`RegisteredBuffer`], or a [`HostRange`] of either)
//! and hand it back when the copy is done. Copies of ordinary slices
//! ([`Stream::copy_from_slice`](crate::Stream::copy_from_slice),
//! [`Stream::copy_to_slice`](crate::Stream::copy_to_slice)) are staged
//! through pinned memory for the same reason.
//!
//! # Where pinned memory goes
//!
//! Freeing pinned memory (`cuMemFreeHost`) synchronizes the whole context
//! on real drivers: called on a worker, it would stall the worker (and,
//! on the loop's thread, every socket and timer) for as long as the longest
//! kernel in flight. So a dropped [`PinnedBuffer`] makes no driver call:
//! its block goes back to the [`Gpu`](crate::Gpu)'s pool (blocks of a
//! power-of-two size, reused by later allocations), and memory beyond the
//! pool's limit ([`GpuBuilder::pinned_pool_limit`](crate::GpuBuilder::pinned_pool_limit))
//! is freed by the device's reclaimer thread. The pool itself is freed
//! there when the last handle of the device goes. Unregistering host
//! memory synchronizes too, and also happens there.
//!
//! Pinned memory is allocated `CU_MEMHOSTALLOC_PORTABLE`, so a copy on any
//! context's stream (another device's included) is asynchronous.

use crate::device::{Device, cu};
use crate::error::GpuError;
use crate::loom::lock;
use cudarc::driver::sys;
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::fmt;
use std::ops::{Bound, Deref, DerefMut, RangeBounds};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

/// A pinned block's address, which may cross threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostPtr(pub(crate) *mut c_void);

// SAFETY: an address of memory nobody else uses while the pool holds it.
unsafe impl Send for HostPtr {}

/// Pinned blocks no buffer uses, for reuse; see the module docs.
pub(crate) struct PinnedPool {
    limit: usize,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// Block size -> free blocks of that size.
    free: BTreeMap<usize, Vec<HostPtr>>,
    /// Bytes held in `free`.
    retained: usize,
}

/// The block size a request of `bytes` uses (at least a page).
fn block_size(bytes: usize) -> usize {
    bytes.max(4096).checked_next_power_of_two().unwrap_or(bytes)
}

impl PinnedPool {
    pub(crate) fn new(limit: usize) -> PinnedPool {
        PinnedPool {
            limit,
            state: Mutex::default(),
        }
    }

    fn take(&self, block: usize) -> Option<HostPtr> {
        let mut state = lock(&self.state);
        let ptr = state.free.get_mut(&block)?.pop()?;
        state.retained -= block;
        Some(ptr)
    }

    /// Keeps a block for reuse; returns it if the pool is full (the caller
    /// frees it off the loop).
    fn give_back(&self, ptr: HostPtr, block: usize) -> Option<HostPtr> {
        let mut state = lock(&self.state);
        if state.retained + block > self.limit {
            return Some(ptr);
        }
        state.retained += block;
        state.free.entry(block).or_default().push(ptr);
        None
    }

    /// Every pooled block (at the device's end).
    pub(crate) fn drain(&self) -> Vec<HostPtr> {
        let mut state = lock(&self.state);
        state.retained = 0;
        std::mem::take(&mut state.free).into_values().flatten().collect()
    }

    /// Bytes held for reuse.
    pub(crate) fn retained(&self) -> usize {
        lock(&self.state).retained
    }
}

/// Host memory a copy may use while the caller does not hold it: pinned or
/// registered with the driver, at an address that stays put while the
/// value is moved.
///
/// # Safety
///
/// `host_ptr` and `host_len` describe memory that is page-locked in the
/// device's context (or portably) for as long as the value lives, that
/// does not move when the value moves, and that only the value's owner
/// reaches.
pub unsafe trait HostBuffer<T>: Send + 'static {
    /// The first value's address.
    fn host_ptr(&self) -> *const T;
    /// The number of values.
    fn host_len(&self) -> usize;
}

/// Page-locked host memory holding `len` values of `T`, for asynchronous
/// copies. Derefs to `[T]`.
///
/// Made by [`Gpu::pinned_zeroed`](crate::Gpu::pinned_zeroed) and
/// [`Gpu::pinned_from_slice`](crate::Gpu::pinned_from_slice) (or their
/// `_async` variants). Dropping one returns its memory to the device's
/// pool (see the module docs), so reuse is cheap.
pub struct PinnedBuffer<T: DeviceRepr> {
    ptr: NonNull<T>,
    len: usize,
    /// The pool block behind `ptr` (0 for an empty buffer).
    block: usize,
    device: Arc<Device>,
}

// SAFETY: the buffer owns its memory, like a `Box<[T]>`; the device handle
// is Send + Sync.
unsafe impl<T: DeviceRepr + Send> Send for PinnedBuffer<T> {}
// SAFETY: as for Send; shared access only reads.
unsafe impl<T: DeviceRepr + Sync> Sync for PinnedBuffer<T> {}

impl<T: DeviceRepr + ValidAsZeroBits> PinnedBuffer<T> {
    /// `len` zeroes in pinned memory, from the pool or newly allocated.
    pub(crate) fn zeroed(device: &Arc<Device>, len: usize) -> Result<PinnedBuffer<T>, GpuError> {
        let call = "allocate pinned memory";
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or_else(|| GpuError::InvalidArgument(format!("{call}: {len} values overflow")))?;
        if bytes == 0 {
            device.bind(call)?; // a dead context answers even here
            return Ok(PinnedBuffer {
                ptr: NonNull::dangling(),
                len,
                block: 0,
                device: device.clone(),
            });
        }
        device.bind(call)?;
        let block = block_size(bytes);
        let raw = match device.pinned.take(block) {
            Some(ptr) => ptr.0,
            None => {
                let mut raw: *mut c_void = std::ptr::null_mut();
                // SAFETY: an allocation call with an out-pointer we own;
                // PORTABLE: page-locked for every context (see the module
                // docs).
                cu(unsafe { sys::cuMemHostAlloc(&mut raw, block, sys::CU_MEMHOSTALLOC_PORTABLE) })
                    .map_err(|e| device.error(call, e))?;
                raw
            }
        };
        let ptr = NonNull::new(raw as *mut T).ok_or_else(|| GpuError::Driver {
            call: call.into(),
            name: "null pointer".into(),
            message: "the driver returned no memory".into(),
        })?;
        // SAFETY: `block >= bytes` writable bytes at `ptr`, ours alone; all
        // zero bits are a valid `T` (`ValidAsZeroBits`).
        unsafe { std::ptr::write_bytes(ptr.as_ptr() as *mut u8, 0, bytes) };
        Ok(PinnedBuffer {
            ptr,
            len,
            block,
            device: device.clone(),
        })
    }
}

impl<T: DeviceRepr + ValidAsZeroBits> PinnedBuffer<T> {
    /// `len` zeroes from the pool, if it has a block that fits (no driver
    /// call); `None` if a new block would have to be allocated.
    pub(crate) fn pooled(device: &Arc<Device>, len: usize) -> Option<Result<PinnedBuffer<T>, GpuError>> {
        let bytes = len.checked_mul(size_of::<T>())?;
        if bytes == 0 {
            return Some(PinnedBuffer::zeroed(device, 0));
        }
        let raw = device.pinned.take(block_size(bytes))?;
        if let Err(e) = device.bind("allocate pinned memory") {
            let _ = device.pinned.give_back(raw, block_size(bytes));
            return Some(Err(e));
        }
        let ptr = NonNull::new(raw.0 as *mut T).expect("pooled blocks are not null");
        // SAFETY: as in `zeroed`.
        unsafe { std::ptr::write_bytes(ptr.as_ptr() as *mut u8, 0, bytes) };
        Some(Ok(PinnedBuffer {
            ptr,
            len,
            block: block_size(bytes),
            device: device.clone(),
        }))
    }
}

impl<T: DeviceRepr> PinnedBuffer<T> {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values, copied out.
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.deref().to_vec()
    }

    /// The values in `range` only, for a copy of part of the buffer (see
    /// [`HostRange`]).
    ///
    /// # Panics
    ///
    /// If `range` is out of bounds, as slicing is.
    pub fn range(self, range: impl RangeBounds<usize>) -> HostRange<Self>
    where
        T: Send + 'static,
    {
        HostRange::new(self, range)
    }
}

impl<T: DeviceRepr> Deref for PinnedBuffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialized values at `ptr` (zeroed or copied in at
        // allocation), owned by `self`; no copy is in flight while anyone
        // can reach `self` (copies take the buffer by value).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: DeviceRepr> DerefMut for PinnedBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, and `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

// SAFETY: pinned (portable) memory owned by the buffer; moving the buffer
// does not move it.
unsafe impl<T: DeviceRepr + Send + 'static> HostBuffer<T> for PinnedBuffer<T> {
    fn host_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }
    fn host_len(&self) -> usize {
        self.len
    }
}

impl<T: DeviceRepr> Drop for PinnedBuffer<T> {
    fn drop(&mut self) {
        if self.block == 0 {
            return;
        }
        let ptr = HostPtr(self.ptr.as_ptr() as *mut c_void);
        if let Some(ptr) = self.device.pinned.give_back(ptr, self.block) {
            // The pool is full: free off this thread (it synchronizes).
            let device = self.device.clone();
            self.device.reclaim(Box::new(move || {
                let ptr = ptr;
                // SAFETY: a block from cuMemHostAlloc that no buffer holds.
                device.in_background("free pinned memory", || cu(unsafe { sys::cuMemFreeHost(ptr.0) }));
            }));
        }
    }
}

impl<T: DeviceRepr> fmt::Debug for PinnedBuffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedBuffer")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Your own `Vec<T>`, page-locked with the driver (`cuMemHostRegister`),
/// for copies without a staging copy. Derefs to `[T]`.
///
/// Made by [`Gpu::register`](crate::Gpu::register). The same ownership rule
/// as for [`PinnedBuffer`] holds: copies take it by value and give it back
/// when the device is done. Unregistering synchronizes the context, so
/// dropping one hands the memory to the device's reclaimer thread; get the
/// `Vec` back with [`RegisteredBuffer::unregister`] on a thread that may
/// block (or its async variant).
pub struct RegisteredBuffer<T: DeviceRepr> {
    values: Option<Vec<T>>,
    device: Arc<Device>,
}

impl<T: DeviceRepr + Send + 'static> RegisteredBuffer<T> {
    pub(crate) fn register(device: &Arc<Device>, values: Vec<T>) -> Result<RegisteredBuffer<T>, GpuError> {
        let call = "register host memory";
        device.bind(call)?;
        let bytes = values.len() * size_of::<T>();
        if bytes > 0 {
            // SAFETY: `bytes` bytes of the Vec's buffer, which stays put
            // (we never grow it) until it is unregistered.
            cu(unsafe {
                sys::cuMemHostRegister_v2(values.as_ptr() as *mut c_void, bytes, sys::CU_MEMHOSTREGISTER_PORTABLE)
            })
            .map_err(|e| device.error(call, e))?;
        }
        Ok(RegisteredBuffer {
            values: Some(values),
            device: device.clone(),
        })
    }

    /// Unregisters the memory and gives the `Vec` back. Blocks: the driver
    /// synchronizes the context first. On a Weft worker use
    /// [`RegisteredBuffer::unregister_async`].
    ///
    /// # Errors
    ///
    /// The driver's refusal; the memory is then leaked (the `Vec` cannot
    /// be handed back while the driver may still think it pinned).
    pub fn unregister(mut self) -> Result<Vec<T>, GpuError> {
        let values = self.values.take().expect("present until unregistered or dropped");
        if values.is_empty() {
            return Ok(values);
        }
        let call = "unregister host memory";
        let done = self.device.bind(call).and_then(|()| {
            // SAFETY: registered by `register`, unregistered once.
            cu(unsafe { sys::cuMemHostUnregister(values.as_ptr() as *mut c_void) })
                .map_err(|e| self.device.error(call, e))
        });
        match done {
            Ok(()) => Ok(values),
            Err(e) => {
                std::mem::forget(values);
                Err(e)
            }
        }
    }

    /// [`RegisteredBuffer::unregister`] on the runtime's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`RegisteredBuffer::unregister`]; [`GpuError::NoRuntime`] outside
    /// a runtime.
    pub async fn unregister_async(self) -> Result<Vec<T>, GpuError> {
        crate::blocking(move || self.unregister()).await?
    }
}

impl<T: DeviceRepr> RegisteredBuffer<T> {
    /// The values in `range` only (see [`HostRange`]).
    ///
    /// # Panics
    ///
    /// If `range` is out of bounds, as slicing is.
    pub fn range(self, range: impl RangeBounds<usize>) -> HostRange<Self>
    where
        T: Send + 'static,
    {
        HostRange::new(self, range)
    }
}

impl<T: DeviceRepr> Deref for RegisteredBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.values.as_deref().unwrap_or_default()
    }
}

impl<T: DeviceRepr> DerefMut for RegisteredBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.values.as_deref_mut().unwrap_or_default()
    }
}

// SAFETY: registered (portable) while the value lives; the Vec's buffer
// does not move when the Vec does, and is never grown here.
unsafe impl<T: DeviceRepr + Send + 'static> HostBuffer<T> for RegisteredBuffer<T> {
    fn host_ptr(&self) -> *const T {
        self.deref().as_ptr()
    }
    fn host_len(&self) -> usize {
        self.deref().len()
    }
}

impl<T: DeviceRepr> Drop for RegisteredBuffer<T> {
    fn drop(&mut self) {
        let Some(values) = self.values.take() else { return };
        if values.is_empty() {
            return;
        }
        // The Vec's buffer goes to the reclaimer as raw memory: it is
        // unregistered there, then deallocated (the values are plain data,
        // `DeviceRepr`, so not running their drops leaks nothing).
        let values = std::mem::ManuallyDrop::new(values);
        let addr = HostPtr(values.as_ptr() as *mut c_void);
        let layout = std::alloc::Layout::array::<T>(values.capacity()).expect("a Vec's own layout");
        let device = self.device.clone();
        self.device.reclaim(Box::new(move || {
            let addr = addr;
            let mut unregistered = false;
            device.in_background("unregister host memory", || {
                // SAFETY: registered by `register`, unregistered once.
                let done = cu(unsafe { sys::cuMemHostUnregister(addr.0) });
                unregistered = done.is_ok();
                done
            });
            if unregistered && layout.size() > 0 {
                // SAFETY: the Vec's buffer, allocated by the global
                // allocator with this layout, reached by no one else.
                unsafe { std::alloc::dealloc(addr.0 as *mut u8, layout) };
            }
            // Otherwise the driver may still use it: leaked.
        }));
    }
}

impl<T: DeviceRepr> fmt::Debug for RegisteredBuffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredBuffer")
            .field("len", &self.deref().len())
            .finish_non_exhaustive()
    }
}

/// Part of a host buffer, for a copy of a sub-range: owns the buffer and
/// gives it back with [`HostRange::into_inner`]. Derefs to the range.
pub struct HostRange<H> {
    buffer: H,
    start: usize,
    end: usize,
}

impl<H> HostRange<H> {
    fn new<T>(buffer: H, range: impl RangeBounds<usize>) -> HostRange<H>
    where
        H: HostBuffer<T>,
    {
        let len = buffer.host_len();
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
            "weft-gpu: host range {start}..{end} out of bounds for a buffer of {len} values"
        );
        HostRange { buffer, start, end }
    }

    /// The whole buffer back.
    pub fn into_inner(self) -> H {
        self.buffer
    }

    /// Where the range starts in the buffer.
    pub fn start(&self) -> usize {
        self.start
    }
}

impl<T, H: HostBuffer<T> + Deref<Target = [T]>> Deref for HostRange<H> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buffer[self.start..self.end]
    }
}

// SAFETY: a sub-range of a `HostBuffer`, owned with it.
unsafe impl<T, H: HostBuffer<T>> HostBuffer<T> for HostRange<H> {
    fn host_ptr(&self) -> *const T {
        // SAFETY: `start <= len`, checked at construction.
        unsafe { self.buffer.host_ptr().add(self.start) }
    }
    fn host_len(&self) -> usize {
        self.end - self.start
    }
}

impl<H> fmt::Debug for HostRange<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostRange")
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}
