//! Streams, the work enqueued on them, and events.

use crate::error::GpuError;
use crate::memory::PinnedBuffer;
use crate::op::{Finish, GpuOp, Slot};
use crate::{Gpu, Module};
use cudarc::driver::{
    CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, LaunchArgs, LaunchConfig,
    PushKernelArg, ValidAsZeroBits,
};
use std::fmt;
use std::sync::Arc;

/// Memory on the device: cudarc's [`CudaSlice`]. Its memory is freed in
/// stream order (after the work that uses it), so dropping one while a
/// kernel or copy still uses it is safe.
pub type DeviceBuffer<T> = CudaSlice<T>;

/// A CUDA stream: work enqueued on it runs in order, and overlaps with the
/// work of other streams. Cheap to clone (clones share the stream).
#[derive(Clone)]
pub struct Stream {
    gpu: Gpu,
    inner: Arc<CudaStream>,
}

impl Stream {
    pub(crate) fn new(gpu: Gpu, inner: Arc<CudaStream>) -> Stream {
        Stream { gpu, inner }
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The cudarc stream, for what Weft does not wrap.
    pub fn cuda(&self) -> &Arc<CudaStream> {
        &self.inner
    }

    /// `len` zeroes in device memory (allocated and zeroed in stream
    /// order).
    ///
    /// # Errors
    ///
    /// The driver's refusal (out of memory, a faulted context).
    pub fn alloc_zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<DeviceBuffer<T>, GpuError> {
        self.inner
            .alloc_zeros(len)
            .map_err(|e| GpuError::driver("allocate device memory", e))
    }

    /// Copies `src` to the start of `dst`, and gives `src` back when the
    /// copy is done. `src` may hold fewer values than `dst`.
    ///
    /// ```no_run
    /// # async fn demo(stream: weft_gpu::Stream, dev: &mut weft_gpu::DeviceBuffer<f32>) -> Result<(), weft_gpu::GpuError> {
    /// let host = stream.gpu().pinned_from_slice(&[1.0f32, 2.0, 3.0])?;
    /// let host = stream.copy_to_device(host, dev).await?; // yours again
    /// # Ok(()) }
    /// ```
    pub fn copy_to_device<T: DeviceRepr + Send>(
        &self,
        src: PinnedBuffer<T>,
        dst: &mut DeviceBuffer<T>,
    ) -> GpuOp<PinnedBuffer<T>> {
        let device_len = dst.len();
        self.copy("copy to device", src, device_len, |host| {
            let (dptr, _record) = dst.device_ptr_mut(&self.inner);
            // SAFETY: `host` is pinned and lives in the operation's slot,
            // which the tracker keeps until the device is done; `dst` holds
            // at least `host.len()` values (checked by `copy`), and its
            // memory is freed in stream order. The guard `_record` records
            // the write for cudarc's cross-stream tracking.
            unsafe {
                cudarc::driver::sys::cuMemcpyHtoDAsync_v2(dptr, host.addr(), host.bytes(), self.inner.cu_stream())
            }
            .result()
        })
    }

    /// Copies the start of `src` into `dst` (as many values as `dst`
    /// holds, at most `src.len()`), and gives `dst` back when the copy is
    /// done.
    pub fn copy_to_host<T: DeviceRepr + Send>(
        &self,
        src: &DeviceBuffer<T>,
        dst: PinnedBuffer<T>,
    ) -> GpuOp<PinnedBuffer<T>> {
        self.copy("copy to host", dst, src.len(), |host| {
            let (dptr, _record) = src.device_ptr(&self.inner);
            // SAFETY: as in `copy_to_device`, with the roles swapped.
            unsafe {
                cudarc::driver::sys::cuMemcpyDtoHAsync_v2(host.addr(), dptr, host.bytes(), self.inner.cu_stream())
            }
            .result()
        })
    }

    /// A copy between `host` (moved into the operation's slot first) and a
    /// device buffer of `device_len` values, enqueued by `enqueue`.
    fn copy<T: DeviceRepr + Send>(
        &self,
        call: &'static str,
        host: PinnedBuffer<T>,
        device_len: usize,
        enqueue: impl FnOnce(&PinnedBuffer<T>) -> Result<(), cudarc::driver::DriverError>,
    ) -> GpuOp<PinnedBuffer<T>> {
        if host.len() > device_len {
            return GpuOp::failed(GpuError::InvalidArgument(format!(
                "{call}: {} values in the host buffer, {device_len} in the device buffer",
                host.len()
            )));
        }
        let tracker = match self.gpu.tracker() {
            Ok(t) => t,
            Err(e) => return GpuOp::failed(e),
        };
        if let Err(e) = self.gpu.context().bind_to_thread() {
            return GpuOp::failed(GpuError::driver(call, e));
        }
        let slot = Slot::new(host);
        let enqueued = slot.with_payload(enqueue);
        self.finish_submit(tracker, slot, enqueued, call)
    }

    /// Starts a kernel launch: add the arguments with [`Launch::arg`], then
    /// [`Launch::run`] it.
    pub fn launch<'a>(&'a self, kernel: &'a Kernel) -> Launch<'a> {
        Launch {
            stream: self,
            args: self.inner.launch_builder(&kernel.func),
        }
    }

    /// Everything enqueued on this stream so far, done: CUDA's
    /// `cuStreamSynchronize`, awaited instead of blocking.
    pub fn synchronize(&self) -> GpuOp<()> {
        match self.gpu.tracker() {
            Ok(tracker) => self.finish_submit(tracker, Slot::new(()), Ok(()), "synchronize"),
            Err(e) => GpuOp::failed(e),
        }
    }

    /// Records an event after the work enqueued so far; await it with
    /// [`Event::wait`], or make another stream wait for it with
    /// [`Stream::wait_event`].
    ///
    /// # Errors
    ///
    /// The driver's refusal (a faulted context).
    pub fn record_event(&self) -> Result<Event, GpuError> {
        let event = self
            .gpu
            .context()
            .new_event(None)
            .map_err(|e| GpuError::driver("create an event", e))?;
        event
            .record(&self.inner)
            .map_err(|e| GpuError::driver("record an event", e))?;
        let event = Arc::new(event);
        self.gpu.signal_after(&self.inner);
        Ok(Event {
            gpu: self.gpu.clone(),
            inner: event,
        })
    }

    /// Makes later work on this stream wait (on the device, not here) for
    /// `event`, which may come from another stream.
    ///
    /// # Errors
    ///
    /// The driver's refusal (an event of another device).
    pub fn wait_event(&self, event: &Event) -> Result<(), GpuError> {
        self.inner
            .wait(&event.inner)
            .map_err(|e| GpuError::driver("wait for an event", e))
    }

    /// Hands an enqueued operation to the tracker, or fails it.
    fn finish_submit<T: Send + 'static>(
        &self,
        tracker: Arc<crate::tracker::Tracker>,
        slot: Arc<Slot<T>>,
        enqueued: Result<(), cudarc::driver::DriverError>,
        call: &'static str,
    ) -> GpuOp<T> {
        match enqueued {
            // Nothing reached the device: dropping the payload is safe.
            Err(e) => GpuOp::failed(GpuError::driver(call, e)),
            Ok(()) => {
                tracker.submit(&self.inner, slot.clone() as Arc<dyn Finish>);
                GpuOp::pending(slot)
            }
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("gpu", &self.gpu.ordinal())
            .field("handle", &self.inner.cu_stream())
            .finish()
    }
}

/// A kernel (a `.entry` of a loaded [`Module`]).
#[derive(Clone)]
pub struct Kernel {
    pub(crate) func: CudaFunction,
    pub(crate) name: String,
    /// Keeps the module loaded.
    pub(crate) _module: Module,
}

impl Kernel {
    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cudarc function, for what Weft does not wrap.
    pub fn cuda(&self) -> &CudaFunction {
        &self.func
    }
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel").field("name", &self.name).finish()
    }
}

/// A kernel launch being put together (see [`Stream::launch`]).
pub struct Launch<'a> {
    stream: &'a Stream,
    args: LaunchArgs<'a>,
}

impl<'a> Launch<'a> {
    /// Adds the next argument: a `&DeviceBuffer<T>` or `&mut
    /// DeviceBuffer<T>` (a device pointer), or a reference to a plain value
    /// (`&u32`, `&f32`, ...).
    pub fn arg<A>(&mut self, arg: A) -> &mut Self
    where
        LaunchArgs<'a>: PushKernelArg<A>,
    {
        self.args.arg(arg);
        self
    }

    /// Enqueues the kernel with `config`; the operation completes when the
    /// kernel has run.
    ///
    /// # Safety
    ///
    /// The arguments must match the kernel's parameters in number, order
    /// and type, and the kernel must stay inside the buffers it is given:
    /// the driver checks neither. (A kernel that strays outside all memory
    /// the context owns faults, and the fault comes back as
    /// [`GpuError::Fault`]; one that strays into another buffer corrupts
    /// it silently.)
    pub unsafe fn run(&mut self, config: LaunchConfig) -> GpuOp<()> {
        let tracker = match self.stream.gpu.tracker() {
            Ok(t) => t,
            Err(e) => return GpuOp::failed(e),
        };
        // SAFETY: the caller's promise about arguments and bounds.
        let launched = unsafe { self.args.launch(config) }.map(drop);
        self.stream
            .finish_submit(tracker, Slot::new(()), launched, "launch a kernel")
    }
}

impl fmt::Debug for Launch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Launch")
            .field("stream", self.stream)
            .finish_non_exhaustive()
    }
}

/// An event recorded on a stream (see [`Stream::record_event`]).
#[derive(Clone)]
pub struct Event {
    gpu: Gpu,
    inner: Arc<CudaEvent>,
}

impl Event {
    /// Completes when the stream has done everything enqueued before the
    /// event was recorded. May be awaited any number of times.
    pub fn wait(&self) -> GpuOp<()> {
        match self.gpu.tracker() {
            Ok(tracker) => {
                let slot = Slot::new(());
                tracker.watch(self.inner.clone(), slot.clone() as Arc<dyn Finish>);
                GpuOp::pending(slot)
            }
            Err(e) => GpuOp::failed(e),
        }
    }

    /// True if the work before the event is done.
    ///
    /// # Errors
    ///
    /// [`GpuError::Fault`] if the device failed.
    pub fn is_done(&self) -> Result<bool, GpuError> {
        self.inner.try_is_complete().map_err(GpuError::fault)
    }

    /// The cudarc event.
    pub fn cuda(&self) -> &Arc<CudaEvent> {
        &self.inner
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("handle", &self.inner.cu_event()).finish()
    }
}
