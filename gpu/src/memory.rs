//! Host memory the GPU copies to and from without blocking the caller.
//!
//! A copy between the device and ordinary (pageable) host memory is not
//! asynchronous: the driver finishes a device-to-host copy before
//! `cuMemcpyDtoHAsync` returns, which would park a worker thread for as
//! long as the stream takes to get there. Only page-locked ("pinned")
//! memory is copied by DMA in the stream's own time. So Weft's copies take
//! a [`PinnedBuffer`], by value, and hand it back when the copy is done.

use crate::error::GpuError;
use cudarc::driver::{CudaContext, DeviceRepr, ValidAsZeroBits};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

/// Page-locked host memory holding `len` values of `T`, for asynchronous
/// copies. Derefs to `[T]`.
///
/// Made by [`Gpu::pinned_zeroed`](crate::Gpu::pinned_zeroed) and
/// [`Gpu::pinned_from_slice`](crate::Gpu::pinned_from_slice). Pinned memory
/// is a scarce, slow-to-allocate resource (the driver locks its pages):
/// allocate buffers once and reuse them, as the examples do.
pub struct PinnedBuffer<T: DeviceRepr> {
    ptr: NonNull<T>,
    len: usize,
    /// Keeps the context (and so the allocation) alive.
    ctx: Arc<CudaContext>,
}

// SAFETY: the buffer owns its memory, like a `Box<[T]>`; the driver
// handle it keeps (`CudaContext`) is Send + Sync.
unsafe impl<T: DeviceRepr + Send> Send for PinnedBuffer<T> {}
// SAFETY: as for Send; shared access only reads.
unsafe impl<T: DeviceRepr + Sync> Sync for PinnedBuffer<T> {}

impl<T: DeviceRepr + ValidAsZeroBits> PinnedBuffer<T> {
    /// `len` zeroes in pinned memory.
    pub(crate) fn zeroed(ctx: &Arc<CudaContext>, len: usize) -> Result<PinnedBuffer<T>, GpuError> {
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or_else(|| GpuError::InvalidArgument(format!("a pinned buffer of {len} values overflows")))?;
        if bytes == 0 {
            return Ok(PinnedBuffer {
                ptr: NonNull::dangling(),
                len,
                ctx: ctx.clone(),
            });
        }
        ctx.bind_to_thread()
            .map_err(|e| GpuError::driver("allocate pinned memory", e))?;
        // SAFETY: a plain allocation call; flags 0 is cacheable, non-portable
        // memory (fast for the CPU to read, unlike write-combined).
        let raw = unsafe { cudarc::driver::result::malloc_host(bytes, 0) }
            .map_err(|e| GpuError::driver("allocate pinned memory", e))?;
        let ptr = NonNull::new(raw as *mut T).ok_or_else(|| GpuError::Driver {
            call: "allocate pinned memory",
            name: "null pointer".into(),
            message: "the driver returned no memory".into(),
        })?;
        // SAFETY: `bytes` writable bytes at `ptr`, just allocated; all-zero
        // bits are a valid `T` (`ValidAsZeroBits`).
        unsafe { std::ptr::write_bytes(ptr.as_ptr() as *mut u8, 0, bytes) };
        Ok(PinnedBuffer {
            ptr,
            len,
            ctx: ctx.clone(),
        })
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

    /// Size in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.len * size_of::<T>()
    }

    /// The first value's address, for the driver.
    pub(crate) fn addr(&self) -> *mut std::ffi::c_void {
        self.ptr.as_ptr() as *mut std::ffi::c_void
    }

    /// The values, copied out.
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.deref().to_vec()
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

impl<T: DeviceRepr> Drop for PinnedBuffer<T> {
    fn drop(&mut self) {
        if self.bytes() == 0 {
            return;
        }
        // A failure to bind or free cannot be reported from a drop; the
        // memory is then leaked, which is safe.
        let _ = self.ctx.bind_to_thread();
        // SAFETY: allocated by `malloc_host`, freed once; no copy uses it
        // (copies own the buffer until the device is done).
        let _ = unsafe { cudarc::driver::result::free_host(self.addr()) };
    }
}

impl<T: DeviceRepr> fmt::Debug for PinnedBuffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedBuffer")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
