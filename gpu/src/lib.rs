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
//! - [`Stream`]: where work is enqueued, in order. [`Stream::copy_to_device`]
//!   and [`Stream::copy_to_host`] take a [`PinnedBuffer`] by value and
//!   give it back when the copy is done, so safe code cannot touch (or
//!   free) a buffer the device is using; [`Stream::launch`] runs a
//!   [`Kernel`] from PTX ([`Gpu::load_ptx`]) or CUDA C compiled by NVRTC
//!   ([`Gpu::compile`]); [`Stream::synchronize`] and [`Event::wait`] await
//!   the stream's progress.
//! - [`GpuOp`]: the future all of these return. Dropping it in flight is
//!   safe; [`GpuOp::into_promise`] turns it into a Weft promise with done
//!   callbacks.
//!
//! ## How a completion reaches the task
//!
//! Each operation is followed on its stream by a pooled event. The loop's
//! tracker for the device (a `weft-io` source) learns that an event may
//! have completed in one of two ways ([`WakeMode`]): a CUDA host function
//! that wakes the loop through io's completion notifier (the default), or
//! polling. Either way it asks the event itself, so a device fault becomes
//! [`GpuError::Fault`] on the awaiting task within one poll interval.
//! `docs/ARCHITECTURE.md` walks the whole path.
//!
//! ## Testing without a GPU
//!
//! The crate builds without CUDA (cudarc loads the driver at run time).
//! Its tests load a CPU stand-in for the driver (`stand-in/libcuda.rs`,
//! built by `build.rs`) that implements the entry points Weft calls with
//! asynchronous streams, events, sticky faults and memory checks, so the
//! logic around the driver is tested on machines with no GPU.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod error;
mod loom;
mod memory;
mod op;
mod signal;
mod stream;
mod tracker;

pub use crate::error::GpuError;
pub use crate::memory::PinnedBuffer;
pub use crate::op::{Completed, GpuOp};
pub use crate::stream::{DeviceBuffer, Event, Kernel, Launch, Stream};
pub use crate::tracker::GpuStats;
pub use cudarc;
pub use cudarc::driver::{DeviceRepr, LaunchConfig, ValidAsZeroBits};

use crate::loom::lock;
use crate::tracker::{Counters, EventPool, Settings, Tracker};
use cudarc::driver::{CudaContext, CudaModule, CudaStream};
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

/// The number of CUDA devices.
///
/// # Errors
///
/// [`GpuError::NoDriver`] with no driver; the driver's refusal otherwise.
pub fn device_count() -> Result<usize, GpuError> {
    if !driver_present() {
        return Err(GpuError::NoDriver);
    }
    CudaContext::device_count()
        .map(|n| n.max(0) as usize)
        .map_err(|e| GpuError::driver("count devices", e))
}

/// How the loop learns that GPU work completed. Both ask the work's event
/// for the outcome; they differ in what makes the loop ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WakeMode {
    /// A CUDA host function enqueued after each operation wakes the loop
    /// through io's completion notifier. After new work the loop polls
    /// for a brief spin window first ([`GpuBuilder::spin_window`]), which catches
    /// short work as fast as polling does; then it sleeps until a host
    /// function wakes it. Since a faulted stream never runs its host
    /// functions, the loop also polls every poll interval while work is in
    /// flight, as a watchdog. The default: short work completes at polling
    /// latency, long work costs almost no CPU, and a fault surfaces within
    /// the interval.
    HostFunction,
    /// No host functions: the loop polls the events every turn while
    /// completions come, as HPX does, then backs off to the poll interval.
    /// Lowest latency for short work on a busy loop; burns CPU while
    /// waiting.
    EventPolling,
}

/// The default poll interval: how long a fault can go unnoticed in
/// [`WakeMode::HostFunction`], and the longest sleep between polls in
/// [`WakeMode::EventPolling`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// The default [`GpuBuilder::spin_window`]: the reactor's spin window for
/// any source after new work.
pub const DEFAULT_SPIN_WINDOW: Duration = weft_io::source::DEFAULT_SPIN_WINDOW;

/// Opens a [`Gpu`] with settings; see [`Gpu::builder`].
#[derive(Debug, Clone)]
pub struct GpuBuilder {
    ordinal: usize,
    mode: WakeMode,
    spin_window: Duration,
    interval: Duration,
}

impl GpuBuilder {
    /// The device to open (default 0).
    pub fn ordinal(mut self, ordinal: usize) -> Self {
        self.ordinal = ordinal;
        self
    }

    /// How completions wake the loop (default [`WakeMode::HostFunction`]).
    pub fn wake_mode(mut self, mode: WakeMode) -> Self {
        self.mode = mode;
        self
    }

    /// In [`WakeMode::HostFunction`], how long the loop polls the events
    /// after new work (or a completion) before it sleeps until a host
    /// function wakes it (default [`DEFAULT_SPIN_WINDOW`];
    /// `Duration::ZERO`: never spin, rely on host functions and the
    /// watchdog alone).
    pub fn spin_window(mut self, window: Duration) -> Self {
        self.spin_window = window;
        self
    }

    /// The poll interval (default [`DEFAULT_POLL_INTERVAL`]; at least
    /// 50 µs).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_micros(50));
        self
    }

    /// Opens the device.
    ///
    /// # Errors
    ///
    /// [`GpuError::NoDriver`] with no driver installed; [`GpuError::Driver`]
    /// if the driver refuses (no such device, no device at all).
    pub fn open(self) -> Result<Gpu, GpuError> {
        if !driver_present() {
            return Err(GpuError::NoDriver);
        }
        let ctx = CudaContext::new(self.ordinal).map_err(|e| GpuError::driver("open the device", e))?;
        Ok(Gpu {
            inner: Arc::new(Inner {
                settings: Settings {
                    mode: self.mode,
                    spin_window: self.spin_window,
                    interval: self.interval,
                    ctx,
                    pool: Arc::new(EventPool::default()),
                    counters: Arc::new(Counters::default()),
                },
                trackers: Mutex::new(Vec::new()),
            }),
        })
    }
}

/// An opened CUDA device: makes streams, loads kernels, allocates pinned
/// host memory. Cheap to clone (clones share the device).
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    /// One tracker per reactor that awaits this device's work.
    trackers: Mutex<Vec<Arc<Tracker>>>,
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
            mode: WakeMode::HostFunction,
            spin_window: DEFAULT_SPIN_WINDOW,
            interval: DEFAULT_POLL_INTERVAL,
        }
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.context().ordinal()
    }

    /// The device's name.
    ///
    /// # Errors
    ///
    /// The driver's refusal.
    pub fn name(&self) -> Result<String, GpuError> {
        self.context()
            .name()
            .map_err(|e| GpuError::driver("name the device", e))
    }

    /// How this device's completions wake the loop.
    pub fn wake_mode(&self) -> WakeMode {
        self.inner.settings.mode
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        self.inner.settings.interval
    }

    /// The cudarc context, for what Weft does not wrap.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.inner.settings.ctx
    }

    /// A new stream (non-blocking: it does not wait for the legacy default
    /// stream).
    ///
    /// # Errors
    ///
    /// The driver's refusal.
    pub fn stream(&self) -> Result<Stream, GpuError> {
        let stream = self
            .context()
            .new_stream()
            .map_err(|e| GpuError::driver("create a stream", e))?;
        Ok(Stream::new(self.clone(), stream))
    }

    /// Loads a module from PTX text.
    ///
    /// # Errors
    ///
    /// The driver's refusal (PTX it cannot compile for this device).
    pub fn load_ptx(&self, ptx: &str) -> Result<Module, GpuError> {
        let module = self
            .context()
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(|e| GpuError::driver("load a module", e))?;
        Ok(Module { module })
    }

    /// Compiles CUDA C source with NVRTC and loads it.
    ///
    /// # Errors
    ///
    /// [`GpuError::NoNvrtc`] when NVRTC is not installed;
    /// [`GpuError::Compile`] with the compiler's log; the driver's refusal.
    pub fn compile(&self, source: &str) -> Result<Module, GpuError> {
        static NVRTC: OnceLock<bool> = OnceLock::new();
        // SAFETY: as in `driver_present`, for libnvrtc.
        if !*NVRTC.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }) {
            return Err(GpuError::NoNvrtc);
        }
        let ptx = cudarc::nvrtc::compile_ptx(source).map_err(|e| GpuError::Compile(e.to_string()))?;
        let module = self
            .context()
            .load_module(ptx)
            .map_err(|e| GpuError::driver("load a module", e))?;
        Ok(Module { module })
    }

    /// `len` zeroes in pinned host memory, for copies.
    ///
    /// # Errors
    ///
    /// The driver's refusal (out of pinned memory).
    pub fn pinned_zeroed<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<PinnedBuffer<T>, GpuError> {
        PinnedBuffer::zeroed(self.context(), len)
    }

    /// A copy of `values` in pinned host memory, for copies.
    ///
    /// # Errors
    ///
    /// The driver's refusal (out of pinned memory).
    pub fn pinned_from_slice<T: DeviceRepr + ValidAsZeroBits + Copy>(
        &self,
        values: &[T],
    ) -> Result<PinnedBuffer<T>, GpuError> {
        let mut buffer = PinnedBuffer::zeroed(self.context(), values.len())?;
        buffer.copy_from_slice(values);
        Ok(buffer)
    }

    /// What the completion machinery has done so far (all reactors).
    pub fn stats(&self) -> GpuStats {
        self.inner.settings.counters.snapshot()
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
            let tracker = Tracker::register(reactor, &self.inner.settings);
            trackers.push(tracker.clone());
            Ok(tracker)
        })
    }

    /// After the work enqueued so far on `stream`, signal the current
    /// reactor's tracker (host-function mode; nothing otherwise).
    pub(crate) fn signal_after(&self, stream: &CudaStream) {
        if let Ok(tracker) = self.tracker() {
            tracker.signal_after(stream);
        }
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

/// Kernels loaded from PTX (see [`Gpu::load_ptx`], [`Gpu::compile`]).
#[derive(Clone)]
pub struct Module {
    module: Arc<CudaModule>,
}

impl Module {
    /// The kernel named `name` (a `.entry` of the PTX; an `extern "C"
    /// __global__` function of CUDA C).
    ///
    /// # Errors
    ///
    /// The driver's refusal (`CUDA_ERROR_NOT_FOUND`: no such kernel).
    pub fn kernel(&self, name: &str) -> Result<Kernel, GpuError> {
        let func = self
            .module
            .load_function(name)
            .map_err(|e| GpuError::driver("find a kernel", e))?;
        Ok(Kernel {
            func,
            name: name.to_owned(),
            _module: self.clone(),
        })
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module").finish_non_exhaustive()
    }
}

/// Small kernels to try things with, as PTX text for [`Gpu::load_ptx`];
/// Weft's tests, examples and benchmarks use them.
pub mod demo {
    /// PTX (ISA 7.0, `sm_50` and later) of five kernels:
    ///
    /// | kernel | C signature | does |
    /// | --- | --- | --- |
    /// | `empty` | `void empty(void)` | nothing (latency probes) |
    /// | `spin` | `void spin(unsigned long long ns)` | runs for `ns` nanoseconds |
    /// | `add_one` | `void add_one(unsigned *buf, unsigned n)` | `buf[i] += 1` |
    /// | `vector_add` | `void vector_add(const float *a, const float *b, float *c, unsigned n)` | `c = a + b` |
    /// | `oob_write` | `void oob_write(unsigned *buf, unsigned n)` | writes 4 GiB past `buf`: a fault, on purpose |
    pub const PTX: &str = include_str!("../ptx/demo.ptx");
}
