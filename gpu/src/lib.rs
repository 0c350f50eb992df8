//! # weft-gpu: CUDA work as events in the loop
//!
//! Copies between host and device, kernel launches and recorded events
//! become futures that a task awaits while the same loop serves sockets and
//! timers. Awaiting never parks a worker thread: the loop learns that the
//! device is done from a CUDA host function or by polling an event (see
//! [`WakeMode`]), and the outcome, a device fault included, comes from the
//! event's status.
//!
//! ```
//! use weft_gpu::{Gpu, GpuError, LaunchConfig};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let gpu = match Gpu::open(0) {
//!         Err(GpuError::NoDriver) => return Ok(println!("skipped: no CUDA driver")),
//!         gpu => gpu?,
//!     };
//!     let rt = weft::Runtime::new()?;
//!     rt.block_on(async {
//!         let stream = gpu.stream()?;
//!         let kernel = gpu.load_ptx(weft_gpu::demo::PTX)?.kernel("add_one")?;
//!         let mut dev = stream.alloc_zeros::<u32>(1024)?;
//!         let host = gpu.pinned_from_slice(&[41u32; 1024])?;
//!         let host = stream.copy_to_device(host, &mut dev).await?;
//!         let n = 1024u32;
//!         // SAFETY: `add_one(u32 *buf, u32 n)` touches buf[0..n].
//!         unsafe { stream.launch(&kernel).arg(&mut dev).arg(&n).run(LaunchConfig::for_num_elems(n)) }.await?;
//!         let host = stream.copy_to_host(&dev, host).await?;
//!         assert!(host.iter().all(|&v| v == 42));
//!         Ok::<_, GpuError>(())
//!     })?;
//!     Ok(())
//! }
//! ```
//!
//! ## The pieces
//!
//! - [`Gpu`]: an opened device ([`Gpu::open`] returns
//!   [`GpuError::NoDriver`] on a machine without CUDA, never a panic).
//!   It compiles CUDA C with NVRTC ([`Gpu::compile_with`] and
//!   [`CompileOptions`]: architecture, include paths, defines, line info)
//!   and loads PTX ([`Gpu::load_ptx`]); the calls that take milliseconds
//!   have `_async` variants that run on the blocking pool (see [`Gpu`]).
//! - [`Stream`]: where work is enqueued, in order. Copies take a
//!   [`HostBuffer`] ([`PinnedBuffer`], your own `Vec` as a
//!   [`RegisteredBuffer`], or a [`HostRange`] of either) by value and give
//!   it back when the copy is done, so safe code cannot touch (or free) a
//!   buffer the device is using; ordinary slices are staged through pinned
//!   memory ([`Stream::copy_from_slice`], [`Stream::copy_to_slice`]).
//!   [`DeviceBuffer`]s, and their views ([`DeviceBuffer::slice`]), are
//!   kept alive by every operation that uses them and ordered across
//!   streams, so dropping one early is safe. [`Stream::launch`] runs a
//!   [`Kernel`] (arguments checked against the kernel's parameters where
//!   the driver can say); [`Stream::fill`], [`Stream::copy_device`],
//!   [`Stream::synchronize`], and [`Event`]s ([`Event::wait`],
//!   [`Event::elapsed`]) complete the set.
//! - [`GpuOp`]: the future all of these return. Dropping it in flight is
//!   safe; [`GpuOp::into_promise`] turns it into a Weft promise with done
//!   callbacks.
//! - [`GpuError`]: what fails, with one story for device faults (every call
//!   on a faulted context is [`GpuError::is_fault`]; open the device again
//!   to go on).
//!
//! ## How a completion reaches the task
//!
//! Each operation is followed on its stream by a pooled event. The loop's
//! tracker for the device (a `weft-io` source) learns that an event may
//! have completed in one of two ways ([`WakeMode`]): polling, with the
//! reactor's spin window and then sub-millisecond sleeps (the default), or
//! a CUDA host function that wakes the loop through io's completion
//! notifier. Either way it asks the event itself, so a device fault becomes
//! [`GpuError::Fault`] on the awaiting task. `docs/ARCHITECTURE.md` walks
//! the whole path.
//!
//! ## Nothing the loop runs blocks on the device
//!
//! Enqueueing, querying and stream-ordered frees never wait for the
//! device. The driver calls that do (`cuMemFreeHost`, `cuMemFree` without
//! memory pools, `cuMemHostUnregister`, `cuModuleUnload`, releasing the
//! context) run on a reclaimer thread per device; dropped pinned buffers go
//! back to a pool first. The one exception is documented: dropping a
//! runtime with work in flight waits for that work.
//!
//! ## Testing without a GPU
//!
//! The crate builds without CUDA (cudarc loads the driver at run time).
//! Its tests load a CPU stand-in for the driver (`stand-in/libcuda.rs`,
//! built by `build.rs`), at least as strict as the real one: contexts that
//! must be current, sticky faults, frees that wait for the device, host
//! functions that may not call CUDA, memory checks, and only Weft's demo
//! kernels run (anything else is refused, loudly).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod buffer;
mod device;
mod error;
mod event;
mod handles;
mod launch;
mod loom;
mod memory;
mod module;
mod op;
mod signal;
mod stream;
mod tracker;

pub use crate::buffer::{DeviceBuffer, DeviceRead, DeviceView, DeviceViewMut, DeviceWrite};
pub use crate::error::GpuError;
pub use crate::event::Event;
pub use crate::launch::{KernelArg, Launch};
pub use crate::memory::{HostBuffer, HostRange, PinnedBuffer, RegisteredBuffer};
pub use crate::module::{CompileOptions, Kernel, Module, default_include_paths};
pub use crate::op::{Completed, GpuOp};
pub use crate::stream::Stream;
pub use crate::tracker::GpuStats;
pub use cudarc;
pub use cudarc::driver::{DeviceRepr, LaunchConfig, ValidAsZeroBits};

use crate::device::Device;
use crate::handles::StreamCore;
use crate::loom::lock;
use crate::tracker::{Settings, Tracker};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// True if a CUDA driver library can be loaded (checked once per process).
pub fn driver_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only dlopens and closes the candidate
    // library names; it is unsafe because loading a library runs its
    // initializers, which for the CUDA driver is what we want to know.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// True if NVRTC (`libnvrtc.so`) can be loaded, so [`Gpu::compile`] can
/// work.
pub fn nvrtc_present() -> bool {
    module::nvrtc_present()
}

/// The number of CUDA devices.
///
/// # Errors
///
/// [`GpuError::NoDriver`] with no driver; the driver's refusal otherwise.
pub fn device_count() -> Result<usize, GpuError> {
    if !driver_present() {
        return Err(GpuError::NoDriver);
    }
    let mut n = 0;
    // SAFETY: plain driver calls with an out-pointer we own.
    unsafe {
        device::cu(cudarc::driver::sys::cuInit(0)).map_err(|e| GpuError::from_driver("count devices", e))?;
        device::cu(cudarc::driver::sys::cuDeviceGetCount(&mut n))
            .map_err(|e| GpuError::from_driver("count devices", e))?;
    }
    Ok(n.max(0) as usize)
}

/// Runs `f` on the current runtime's blocking pool.
pub(crate) async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, GpuError> {
    let handle = weft_executor::Handle::try_current().map_err(|_| GpuError::NoRuntime)?;
    match handle.spawn_blocking(f).await {
        Ok(r) => Ok(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(GpuError::NoRuntime), // cancelled: the runtime is shutting down
    }
}

/// How the loop learns that GPU work completed. Both ask the work's event
/// for the outcome; they differ in what makes the loop ask.
///
/// The environment variable `WEFT_GPU_WAKE` (`poll` or `host`) overrides
/// the mode of every [`Gpu`] opened in the process, whatever the builder
/// says, for trying both without a rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WakeMode {
    /// The default. No host functions: for the spin window after new work
    /// (or a completion) the loop polls the events every turn, then sleeps
    /// between polls, from 50 µs doubling, for at most a quarter of the
    /// time since the last progress and at most the poll interval: work
    /// that runs for T is noticed within about T/4. An awaited empty kernel completes at
    /// polling latency, and a long kernel costs one `cuEventQuery` per
    /// sleep. HPX and pika wait on GPUs this way: a host function after
    /// every operation blocks its stream until the driver's single callback
    /// thread has run it, which slows back-to-back work.
    EventPolling,
    /// A CUDA host function enqueued after each operation wakes the loop
    /// through io's completion notifier: after the spin window the loop
    /// sleeps until woken, polling only every poll interval as a watchdog
    /// (a faulted stream never runs its host functions). For long kernels
    /// on an otherwise idle loop, where even sub-millisecond polls cost
    /// more than the host function.
    HostFunction,
}

/// The default poll interval in [`WakeMode::EventPolling`]: the longest
/// sleep between polls while work is in flight (sleeps are shorter, down
/// to 50 µs, while the work in flight is young; see [`WakeMode`]).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// The default watchdog interval in [`WakeMode::HostFunction`]: how long a
/// fault can go unnoticed.
pub const DEFAULT_WATCHDOG_INTERVAL: Duration = Duration::from_millis(1);

/// The default [`GpuBuilder::spin_window`]: the reactor's spin window for
/// any source after new work.
pub const DEFAULT_SPIN_WINDOW: Duration = weft_io::source::DEFAULT_SPIN_WINDOW;

/// The default [`GpuBuilder::pinned_pool_limit`]: 256 MiB.
pub const DEFAULT_PINNED_POOL_LIMIT: usize = 256 << 20;

/// Opens a [`Gpu`] with settings; see [`Gpu::builder`].
#[derive(Debug, Clone)]
pub struct GpuBuilder {
    ordinal: usize,
    mode: WakeMode,
    spin_window: Duration,
    interval: Option<Duration>,
    pinned_pool_limit: usize,
}

impl GpuBuilder {
    /// The device to open (default 0).
    pub fn ordinal(mut self, ordinal: usize) -> Self {
        self.ordinal = ordinal;
        self
    }

    /// How completions wake the loop (default [`WakeMode::EventPolling`];
    /// `WEFT_GPU_WAKE` overrides it).
    pub fn wake_mode(mut self, mode: WakeMode) -> Self {
        self.mode = mode;
        self
    }

    /// How long the loop polls the events without sleeping after new work
    /// (or a completion) (default [`DEFAULT_SPIN_WINDOW`]; `Duration::ZERO`:
    /// never spin).
    pub fn spin_window(mut self, window: Duration) -> Self {
        self.spin_window = window;
        self
    }

    /// The poll interval: the longest sleep between polls (event polling),
    /// or the watchdog's period (host functions). Default
    /// [`DEFAULT_POLL_INTERVAL`] or [`DEFAULT_WATCHDOG_INTERVAL`]; at least
    /// 50 µs.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval.max(Duration::from_micros(50)));
        self
    }

    /// The most pinned memory the device keeps for reuse after buffers are
    /// dropped (default [`DEFAULT_PINNED_POOL_LIMIT`]); beyond it, dropped
    /// buffers are freed by the device's reclaimer thread.
    pub fn pinned_pool_limit(mut self, bytes: usize) -> Self {
        self.pinned_pool_limit = bytes;
        self
    }

    /// Opens the device.
    ///
    /// # Errors
    ///
    /// [`GpuError::NoDriver`] with no driver installed; [`GpuError::Driver`]
    /// if the driver refuses (no such device); [`GpuError::Fault`] if the
    /// device's context is dead and no new one can be made;
    /// [`GpuError::InvalidArgument`] for a `WEFT_GPU_WAKE` other than
    /// `poll` or `host`.
    pub fn open(self) -> Result<Gpu, GpuError> {
        let mode = match std::env::var("WEFT_GPU_WAKE").as_deref() {
            Ok("poll") => WakeMode::EventPolling,
            Ok("host") => WakeMode::HostFunction,
            Ok(other) => {
                return Err(GpuError::InvalidArgument(format!(
                    "WEFT_GPU_WAKE must be `poll` or `host`, not `{other}`"
                )));
            }
            Err(_) => self.mode,
        };
        if !driver_present() {
            return Err(GpuError::NoDriver);
        }
        let device = Device::open(self.ordinal, self.pinned_pool_limit)?;
        let interval = self.interval.unwrap_or(match mode {
            WakeMode::EventPolling => DEFAULT_POLL_INTERVAL,
            WakeMode::HostFunction => DEFAULT_WATCHDOG_INTERVAL,
        });
        Ok(Gpu {
            inner: Arc::new(Inner {
                device,
                settings: Settings {
                    mode,
                    spin_window: self.spin_window,
                    interval,
                },
                trackers: Mutex::new(Vec::new()),
            }),
        })
    }
}

/// An opened CUDA device (one context on it): makes streams, loads and
/// compiles kernels, allocates pinned host memory. Cheap to clone (clones
/// share the context).
///
/// # What blocks
///
/// The calls that can take milliseconds have `_async` variants that run
/// on the runtime's blocking pool: [`Gpu::compile_async`] (NVRTC),
/// [`Gpu::load_ptx_async`] (the driver compiles PTX),
/// [`Gpu::pinned_zeroed_async`] (page-locking new memory),
/// [`Gpu::register_async`]. Use those on a worker; the plain ones are for
/// plain threads and start-up. Nothing else here waits for the device.
///
/// Dropping a runtime with GPU work in flight waits for that work (its
/// buffers cannot be freed earlier): the runtime's shutdown blocks until
/// the device is done.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

struct Inner {
    device: Arc<Device>,
    settings: Settings,
    /// One tracker per reactor that awaits this device's work.
    trackers: Mutex<Vec<Arc<Tracker>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The trackers outlive this handle only while they have work.
        for tracker in lock(&self.trackers).drain(..) {
            tracker.detach();
        }
        self.device.release_if_faulted();
    }
}

impl Gpu {
    /// Opens device `ordinal` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`GpuBuilder::open`].
    pub fn open(ordinal: usize) -> Result<Gpu, GpuError> {
        Gpu::builder().ordinal(ordinal).open()
    }

    /// Settings for opening a device.
    pub fn builder() -> GpuBuilder {
        GpuBuilder {
            ordinal: 0,
            mode: WakeMode::EventPolling,
            spin_window: DEFAULT_SPIN_WINDOW,
            interval: None,
            pinned_pool_limit: DEFAULT_PINNED_POOL_LIMIT,
        }
    }

    pub(crate) fn device(&self) -> &Arc<Device> {
        &self.inner.device
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.inner.device.ordinal()
    }

    /// True if this handle uses the device's primary context (false: the
    /// primary one had faulted and was still held when this was opened).
    pub fn is_primary_context(&self) -> bool {
        self.inner.device.is_primary()
    }

    /// The device's compute capability (major, minor).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.inner.device.arch
    }

    /// The device's name.
    ///
    /// # Errors
    ///
    /// The driver's refusal.
    pub fn name(&self) -> Result<String, GpuError> {
        let call = "name the device";
        let device = self.device();
        device.bind(call)?;
        let mut name = [0 as std::ffi::c_char; 256];
        // SAFETY: a buffer of the length we pass.
        device::cu(unsafe {
            cudarc::driver::sys::cuDeviceGetName(name.as_mut_ptr(), name.len() as i32, device.cu_device())
        })
        .map_err(|e| device.error(call, e))?;
        name[name.len() - 1] = 0;
        // SAFETY: the buffer ends in NUL (set just now), so it holds a
        // NUL-terminated string.
        Ok(unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    /// How this device's completions wake the loop.
    pub fn wake_mode(&self) -> WakeMode {
        self.inner.settings.mode
    }

    /// The poll interval (see [`GpuBuilder::poll_interval`]).
    pub fn poll_interval(&self) -> Duration {
        self.inner.settings.interval
    }

    /// True once the context has faulted: every call on it now returns
    /// [`GpuError::Fault`]; open the device again to go on.
    pub fn is_faulted(&self) -> bool {
        self.device().fault().is_some()
    }

    /// A new stream (non-blocking: it does not wait for the legacy default
    /// stream).
    ///
    /// # Errors
    ///
    /// The driver's refusal; [`GpuError::Fault`] on a faulted context.
    pub fn stream(&self) -> Result<Stream, GpuError> {
        Ok(Stream::new(self.clone(), StreamCore::new(self.device())?))
    }

    /// Loads a module from PTX text. Blocks while the driver compiles the
    /// PTX for the device (milliseconds for big modules): on a worker, use
    /// [`Gpu::load_ptx_async`].
    ///
    /// # Errors
    ///
    /// The driver's refusal (PTX it cannot compile for this device).
    pub fn load_ptx(&self, ptx: &str) -> Result<Module, GpuError> {
        Module::load(self.device(), ptx)
    }

    /// [`Gpu::load_ptx`] on the runtime's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`Gpu::load_ptx`]; [`GpuError::NoRuntime`] outside a runtime.
    pub async fn load_ptx_async(&self, ptx: impl Into<String>) -> Result<Module, GpuError> {
        let (device, ptx) = (self.device().clone(), ptx.into());
        blocking(move || Module::load(&device, &ptx)).await?
    }

    /// Compiles CUDA C source with NVRTC (default [`CompileOptions`]: the
    /// device's own architecture, the CUDA headers found here) and loads
    /// it. Blocks for the compilation (tens of milliseconds): on a worker,
    /// use [`Gpu::compile_async`].
    ///
    /// # Errors
    ///
    /// [`GpuError::NoNvrtc`] when NVRTC is not installed;
    /// [`GpuError::Compile`] with the compiler's log; the driver's refusal.
    pub fn compile(&self, source: &str) -> Result<Module, GpuError> {
        self.compile_with(source, &CompileOptions::default())
    }

    /// [`Gpu::compile`] with options.
    ///
    /// # Errors
    ///
    /// As [`Gpu::compile`].
    pub fn compile_with(&self, source: &str, options: &CompileOptions) -> Result<Module, GpuError> {
        let ptx = self.compile_ptx(source, options)?;
        self.load_ptx(&ptx)
    }

    /// Compiles CUDA C source to PTX with NVRTC, without loading it (for
    /// a device of this one's architecture unless `options` say otherwise).
    ///
    /// # Errors
    ///
    /// [`GpuError::NoNvrtc`]; [`GpuError::Compile`] with the log.
    pub fn compile_ptx(&self, source: &str, options: &CompileOptions) -> Result<String, GpuError> {
        module::compile_to_ptx(source, options, self.inner.device.arch)
    }

    /// [`Gpu::compile_with`] on the runtime's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`Gpu::compile`]; [`GpuError::NoRuntime`] outside a runtime.
    pub async fn compile_async(&self, source: impl Into<String>, options: CompileOptions) -> Result<Module, GpuError> {
        let (gpu, source) = (self.clone(), source.into());
        blocking(move || gpu.compile_with(&source, &options)).await?
    }

    /// `len` zeroes in pinned host memory, for copies: from the device's
    /// pool if it has a block that fits, else newly page-locked, which can
    /// take milliseconds for big buffers (on a worker, use
    /// [`Gpu::pinned_zeroed_async`]).
    ///
    /// # Errors
    ///
    /// The driver's refusal (out of pinned memory).
    pub fn pinned_zeroed<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<PinnedBuffer<T>, GpuError> {
        PinnedBuffer::zeroed(self.device(), len)
    }

    /// [`Gpu::pinned_zeroed`] on the runtime's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`Gpu::pinned_zeroed`]; [`GpuError::NoRuntime`] outside a runtime.
    pub async fn pinned_zeroed_async<T: DeviceRepr + ValidAsZeroBits + Send + 'static>(
        &self,
        len: usize,
    ) -> Result<PinnedBuffer<T>, GpuError> {
        let device = self.device().clone();
        blocking(move || PinnedBuffer::zeroed(&device, len)).await?
    }

    /// A copy of `values` in pinned host memory, for copies.
    ///
    /// # Errors
    ///
    /// As [`Gpu::pinned_zeroed`].
    pub fn pinned_from_slice<T: DeviceRepr + ValidAsZeroBits + Copy>(
        &self,
        values: &[T],
    ) -> Result<PinnedBuffer<T>, GpuError> {
        let mut buffer = PinnedBuffer::zeroed(self.device(), values.len())?;
        buffer.copy_from_slice(values);
        Ok(buffer)
    }

    /// A staging buffer for a pageable copy: from the pool at once, or
    /// allocated on the blocking pool (never on the worker).
    pub(crate) async fn staging<T: DeviceRepr + ValidAsZeroBits + Send + 'static>(
        &self,
        len: usize,
    ) -> Result<PinnedBuffer<T>, GpuError> {
        match PinnedBuffer::pooled(self.device(), len) {
            Some(buffer) => buffer,
            None => self.pinned_zeroed_async(len).await,
        }
    }

    /// Page-locks your own `Vec` (`cuMemHostRegister`) so copies use it
    /// directly; see [`RegisteredBuffer`]. Blocks while the driver locks
    /// the pages: on a worker, use [`Gpu::register_async`].
    ///
    /// # Errors
    ///
    /// The driver's refusal.
    pub fn register<T: DeviceRepr + Send + 'static>(&self, values: Vec<T>) -> Result<RegisteredBuffer<T>, GpuError> {
        RegisteredBuffer::register(self.device(), values)
    }

    /// [`Gpu::register`] on the runtime's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`Gpu::register`]; [`GpuError::NoRuntime`] outside a runtime.
    pub async fn register_async<T: DeviceRepr + Send + 'static>(
        &self,
        values: Vec<T>,
    ) -> Result<RegisteredBuffer<T>, GpuError> {
        let device = self.device().clone();
        blocking(move || RegisteredBuffer::register(&device, values)).await?
    }

    /// What the completion machinery has done so far (all reactors, all
    /// `Gpu`s of this context).
    pub fn stats(&self) -> GpuStats {
        let mut stats = self.device().counters.snapshot();
        stats.pinned_pool_bytes = self.device().pinned.retained() as u64;
        stats
    }

    /// The last driver error of a call that had no caller to return it to
    /// (see [`GpuStats::driver_errors`]), as "what: CUDA_ERROR_...".
    pub fn last_background_error(&self) -> Option<String> {
        self.device().last_background_error()
    }

    /// The tracker of the current reactor, made on first use.
    pub(crate) fn tracker(&self) -> Result<Arc<Tracker>, GpuError> {
        weft_io::Handle::with_current(|reactor| {
            let reactor = reactor.ok_or(GpuError::NoRuntime)?;
            let mut trackers = lock(&self.inner.trackers);
            if let Some(t) = trackers.iter().find(|t| t.reactor() == reactor.id() && !t.is_closed()) {
                return Ok(t.clone());
            }
            trackers.retain(|t| !t.is_closed());
            let tracker = Tracker::register(reactor, self.device(), &self.inner.settings);
            trackers.push(tracker.clone());
            Ok(tracker)
        })
    }
}

impl fmt::Debug for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ordinal())
            .field("wake_mode", &self.wake_mode())
            .field("poll_interval", &self.poll_interval())
            .finish()
    }
}

/// Small kernels to try things with, as PTX text for [`Gpu::load_ptx`];
/// Weft's tests, examples and benchmarks use them, and they are the only
/// kernels the CPU stand-in driver runs.
pub mod demo {
    /// PTX (ISA 7.0, `sm_50` and later) of six kernels:
    ///
    /// | kernel | C signature | does |
    /// | --- | --- | --- |
    /// | `empty` | `void empty(void)` | nothing (latency probes) |
    /// | `spin` | `void spin(unsigned long long ns)` | runs for `ns` nanoseconds |
    /// | `add_one` | `void add_one(unsigned *buf, unsigned n)` | `buf[i] += 1` |
    /// | `vector_add` | `void vector_add(const float *a, const float *b, float *c, unsigned n)` | `c = a + b` |
    /// | `saxpy` | `void saxpy(float a, const float *x, float *y, unsigned n)` | `y = a * x + y` |
    /// | `oob_write` | `void oob_write(unsigned *buf, unsigned n)` | writes 4 GiB past `buf`: a fault, on purpose |
    pub const PTX: &str = include_str!("../ptx/demo.ptx");
}
