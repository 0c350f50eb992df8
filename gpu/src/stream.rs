//! Streams and the work enqueued on them: copies, fills, synchronization.
//! Kernel launches are in `launch.rs`, events in `event.rs`.
//!
//! Every operation is enqueued when it is made (not when first polled) and
//! follows one path, [`Stream::submit`]: find the loop's tracker, bind the
//! context, order the stream after other streams' uses of the device
//! memory involved (`buffer.rs`), move the host buffer and the device
//! allocations into the operation's slot, enqueue, and hand the slot to the
//! tracker. Nothing on this path waits for the device.

use crate::buffer::{DeviceBuffer, DeviceRead, DeviceWrite, Span};
use crate::error::GpuError;
use crate::event::Event;
use crate::handles::StreamCore;
use crate::memory::HostBuffer;
use crate::op::{Finish, GpuOp, Slot};
use crate::{Gpu, device::cu};
use cudarc::driver::sys;
use cudarc::driver::{DeviceRepr, DriverError, ValidAsZeroBits};
use std::borrow::Cow;
use std::ffi::c_void;
use std::fmt;
use std::sync::Arc;

/// A CUDA stream: work enqueued on it runs in order, and overlaps with the
/// work of other streams. Cheap to clone (clones share the stream).
#[derive(Clone)]
pub struct Stream {
    gpu: Gpu,
    core: Arc<StreamCore>,
}

/// A device buffer's part in an operation: read or written.
pub(crate) struct Use {
    pub(crate) span: Span,
    pub(crate) write: bool,
}

impl Stream {
    pub(crate) fn new(gpu: Gpu, core: StreamCore) -> Stream {
        Stream {
            gpu,
            core: Arc::new(core),
        }
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The driver's handle, for what Weft does not wrap (valid while this
    /// stream lives).
    pub fn cu_stream(&self) -> sys::CUstream {
        self.core.handle()
    }

    pub(crate) fn core(&self) -> &StreamCore {
        &self.core
    }

    /// `len` zeroes in device memory, allocated and zeroed in stream order
    /// (`cuMemAllocAsync`: no wait for the device; without memory pools,
    /// `cuMemAlloc`, which may).
    ///
    /// # Errors
    ///
    /// The driver's refusal (out of memory); [`GpuError::Fault`] on a
    /// faulted context.
    pub fn alloc_zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<DeviceBuffer<T>, GpuError> {
        DeviceBuffer::zeroed(&self.core, len)
    }

    /// Copies `src` to the start of `dst`, and gives `src` back when the
    /// copy is done. `src` may hold fewer values than `dst`; copy into a
    /// part of a buffer with [`DeviceBuffer::slice_mut`], from a part of a
    /// host buffer with `.range(..)`.
    ///
    /// ```no_run
    /// # async fn demo(stream: weft_gpu::Stream, dev: &mut weft_gpu::DeviceBuffer<f32>) -> Result<(), weft_gpu::GpuError> {
    /// let host = stream.gpu().pinned_from_slice(&[1.0f32, 2.0, 3.0])?;
    /// let host = stream.copy_to_device(host, dev).await?; // yours again
    /// // Values 1..3 of the host buffer into values 10..12 on the device:
    /// let part = stream.copy_to_device(host.range(1..3), &mut dev.slice_mut(10..12)).await?;
    /// let host = part.into_inner();
    /// # Ok(()) }
    /// ```
    pub fn copy_to_device<T: DeviceRepr, H: HostBuffer<T>>(
        &self,
        src: H,
        dst: &mut (impl DeviceWrite<T> + ?Sized),
    ) -> GpuOp<H> {
        let call = "copy to device";
        let span = dst.span_mut();
        if src.host_len() > span.len {
            return GpuOp::failed(too_long(call, src.host_len(), span.len));
        }
        let (dptr, stream) = (span.ptr(), self.core.handle());
        let uses = vec![Use { span, write: true }];
        self.submit(call.into(), src, uses, move |host| {
            let bytes = host.host_len() * size_of::<T>();
            // SAFETY: `host` is pinned and lives in the operation's slot
            // until the device is done; the device span holds at least
            // `bytes` and lives in the slot too.
            cu(unsafe { sys::cuMemcpyHtoDAsync_v2(dptr, host.host_ptr() as *const c_void, bytes, stream) })
        })
    }

    /// Copies the start of `src` into `dst` (as many values as `dst`
    /// holds, at most `src.len()`), and gives `dst` back when the copy is
    /// done.
    pub fn copy_to_host<T: DeviceRepr, H: HostBuffer<T>>(
        &self,
        src: &(impl DeviceRead<T> + ?Sized),
        dst: H,
    ) -> GpuOp<H> {
        let call = "copy to host";
        let span = src.span();
        if dst.host_len() > span.len {
            return GpuOp::failed(too_long(call, dst.host_len(), span.len));
        }
        let (dptr, stream) = (span.ptr(), self.core.handle());
        let uses = vec![Use { span, write: false }];
        self.submit(call.into(), dst, uses, move |host| {
            let bytes = host.host_len() * size_of::<T>();
            // SAFETY: as in `copy_to_device`, with the roles swapped.
            cu(unsafe { sys::cuMemcpyDtoHAsync_v2(host.host_ptr() as *mut c_void, dptr, bytes, stream) })
        })
    }

    /// Copies `src` into `dst` on the device; both hold the same number of
    /// values (use views for parts).
    pub fn copy_device<T: DeviceRepr>(
        &self,
        src: &(impl DeviceRead<T> + ?Sized),
        dst: &mut (impl DeviceWrite<T> + ?Sized),
    ) -> GpuOp<()> {
        let call = "copy on the device";
        let (from, to) = (src.span(), dst.span_mut());
        if from.len != to.len {
            return GpuOp::failed(GpuError::InvalidArgument(format!(
                "{call}: {} values in the source, {} in the destination",
                from.len, to.len
            )));
        }
        let (s, d, bytes, stream) = (from.ptr(), to.ptr(), from.bytes, self.core.handle());
        let uses = vec![
            Use {
                span: from,
                write: false,
            },
            Use { span: to, write: true },
        ];
        self.submit(call.into(), (), uses, move |()| {
            // SAFETY: both spans live in the slot; the lengths match.
            cu(unsafe { sys::cuMemcpyDtoDAsync_v2(d, s, bytes, stream) })
        })
    }

    /// Sets every value of `dst` to `value` (CUDA's `cuMemsetD8/16/32`):
    /// for values of 1, 2 or 4 bytes.
    pub fn fill<T: DeviceRepr + Copy>(&self, dst: &mut (impl DeviceWrite<T> + ?Sized), value: T) -> GpuOp<()> {
        let call = "fill device memory";
        let span = dst.span_mut();
        let mut bits = 0u32;
        let size = size_of::<T>();
        if ![1, 2, 4].contains(&size) {
            return GpuOp::failed(GpuError::InvalidArgument(format!(
                "{call}: values of {size} bytes; fill takes 1-, 2- or 4-byte values (use a kernel for others)"
            )));
        }
        // SAFETY: copying `size <= 4` bytes of a `Copy` value into a u32.
        unsafe {
            std::ptr::copy_nonoverlapping(&value as *const T as *const u8, &mut bits as *mut u32 as *mut u8, size)
        };
        let (d, n, stream) = (span.ptr(), span.len, self.core.handle());
        let uses = vec![Use { span, write: true }];
        self.submit(call.into(), (), uses, move |()| {
            // SAFETY: `n` values of `size` bytes at `d`, held by the slot.
            cu(unsafe {
                match size {
                    1 => sys::cuMemsetD8Async(d, bits as u8, n, stream),
                    2 => sys::cuMemsetD16Async(d, bits as u16, n, stream),
                    _ => sys::cuMemsetD32Async(d, bits, n, stream),
                }
            })
        })
    }

    /// Copies an ordinary slice to the start of `dst`, staged through a
    /// pinned buffer from the device's pool (a pageable copy would block
    /// the worker). The copy is enqueued when the future is first polled.
    ///
    /// # Errors
    ///
    /// As [`Stream::copy_to_device`].
    pub async fn copy_from_slice<T: DeviceRepr + ValidAsZeroBits + Copy + Send + 'static>(
        &self,
        src: &[T],
        dst: &mut (impl DeviceWrite<T> + ?Sized),
    ) -> Result<(), GpuError> {
        let mut staging = self.gpu.staging::<T>(src.len()).await?;
        staging.copy_from_slice(src);
        self.copy_to_device(staging, dst).await.map(drop)
    }

    /// Copies the start of `src` into an ordinary slice (as many values as
    /// it holds), staged through a pinned buffer from the device's pool.
    /// The copy is enqueued when the future is first polled; `dst` is
    /// written when the device is done (dropping the future early leaves
    /// it untouched).
    ///
    /// # Errors
    ///
    /// As [`Stream::copy_to_host`].
    pub async fn copy_to_slice<T: DeviceRepr + ValidAsZeroBits + Copy + Send + 'static>(
        &self,
        src: &(impl DeviceRead<T> + ?Sized),
        dst: &mut [T],
    ) -> Result<(), GpuError> {
        let staging = self.gpu.staging::<T>(dst.len()).await?;
        let staging = self.copy_to_host(src, staging).await?;
        dst.copy_from_slice(&staging);
        Ok(())
    }

    /// Everything enqueued on this stream so far, done: CUDA's
    /// `cuStreamSynchronize`, awaited instead of blocking.
    pub fn synchronize(&self) -> GpuOp<()> {
        self.submit("synchronize a stream".into(), (), Vec::new(), |()| Ok(()))
    }

    /// Records an event after the work enqueued so far (timing disabled,
    /// the cheap kind); await it with [`Event::wait`], or make another
    /// stream wait for it with [`Stream::wait_event`].
    ///
    /// # Errors
    ///
    /// The driver's refusal; [`GpuError::Fault`] on a faulted context.
    pub fn record_event(&self) -> Result<Event, GpuError> {
        Event::record(self, false)
    }

    /// As [`Stream::record_event`], with timing enabled, for
    /// [`Event::elapsed`].
    ///
    /// # Errors
    ///
    /// As [`Stream::record_event`].
    pub fn record_timing_event(&self) -> Result<Event, GpuError> {
        Event::record(self, true)
    }

    /// Makes later work on this stream wait (on the device, not here) for
    /// `event`, which may come from another stream.
    ///
    /// # Errors
    ///
    /// The driver's refusal (an event of another context).
    pub fn wait_event(&self, event: &Event) -> Result<(), GpuError> {
        let call = "make a stream wait for an event";
        let device = &self.core.device;
        device.bind(call)?;
        self.core.wait(event.raw()).map_err(|e| device.error(call, e))
    }

    /// The one path of every operation; see the module docs. `enqueue`
    /// gets the payload in its slot (where it stays until the device is
    /// done) and makes the driver call.
    pub(crate) fn submit<T: Send + 'static>(
        &self,
        call: Cow<'static, str>,
        payload: T,
        uses: Vec<Use>,
        enqueue: impl FnOnce(&T) -> Result<(), DriverError>,
    ) -> GpuOp<T> {
        let tracker = match self.gpu.tracker() {
            Ok(t) => t,
            Err(e) => return GpuOp::failed(e),
        };
        let device = &self.core.device;
        if let Err(e) = device.bind(&call) {
            return GpuOp::failed(e);
        }
        for u in &uses {
            if !Arc::ptr_eq(u.span.alloc.device(), device) {
                return GpuOp::failed(GpuError::InvalidArgument(format!(
                    "{call}: a device buffer of another context (or device) than the stream's"
                )));
            }
            if let Err(e) = u.span.alloc.order_before(&self.core, u.write) {
                return GpuOp::failed(device.error(call, e));
            }
        }
        let slot = Slot::keeping(payload, uses.iter().map(|u| u.span.clone()).collect());
        if let Err(e) = slot.with_payload(enqueue) {
            // Nothing reached the device: dropping the payload is safe.
            return GpuOp::failed(device.error(call, e));
        }
        if let Some(event) = tracker.submit(&self.core, slot.clone() as Arc<dyn Finish>, call) {
            for u in &uses {
                u.span.alloc.used(self.core.id(), u.write, &event);
            }
        }
        GpuOp::pending(slot, self.core.id())
    }
}

fn too_long(call: &str, host: usize, device: usize) -> GpuError {
    GpuError::InvalidArgument(format!(
        "{call}: {host} values in the host buffer, {device} in the device buffer"
    ))
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("gpu", &self.gpu.ordinal())
            .field("id", &self.core.id())
            .finish()
    }
}
