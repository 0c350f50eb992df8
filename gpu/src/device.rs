//! [`Device`]: one CUDA context and what every object made in it shares.
//!
//! # Invariants
//!
//! 1. **Every driver call runs with the context bound.** Callers bind with
//!    [`Device::bind`], which fails, naming the call, if the context has
//!    faulted or cannot be made current; a call is never made after a
//!    failed bind.
//! 2. **No driver error is swallowed.** A call's error goes back to its
//!    caller as a [`GpuError`] naming the call; errors of calls that have
//!    no caller (drops, background frees) are counted in
//!    [`GpuStats::driver_errors`](crate::GpuStats::driver_errors) and the
//!    last one is kept for [`Gpu::last_background_error`](crate::Gpu::last_background_error).
//! 3. **A faulted context is one state.** The first sticky error any call
//!    or query meets is stored; from then on [`Device::bind`] answers
//!    [`GpuError::Fault`] for every call (see `error.rs`).
//! 4. **Nothing here blocks on the device on the caller's thread.** Calls
//!    that synchronize implicitly (`cuMemFreeHost`, `cuMemFree`,
//!    `cuMemHostUnregister`, `cuModuleUnload`, releasing the context) go to
//!    the device's reclaimer thread ([`Device::reclaim`]), which owns them
//!    and may wait as long as the device takes.

use crate::error::{GpuError, describe, is_sticky};
use crate::handles::EventPool;
use crate::loom::lock;
use crate::memory::PinnedPool;
use cudarc::driver::DriverError;
use cudarc::driver::sys::{self, CUcontext, CUdevice, CUresult, CUstream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// A CUDA result as a `Result`.
pub(crate) fn cu(code: CUresult) -> Result<(), DriverError> {
    code.result()
}

/// A context handle that may cross threads (it is an opaque driver value).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct RawCtx(pub(crate) CUcontext);

// SAFETY: a CUcontext is an opaque handle the driver lets any thread use
// (binding it is what `cuCtxSetCurrent` is for).
unsafe impl Send for RawCtx {}
// SAFETY: as for Send.
unsafe impl Sync for RawCtx {}

/// Binds `ctx` to the calling thread if it is not current already.
pub(crate) fn make_current(ctx: RawCtx) -> Result<(), DriverError> {
    let mut current: CUcontext = std::ptr::null_mut();
    // SAFETY: an out-pointer we own.
    cu(unsafe { sys::cuCtxGetCurrent(&mut current) })?;
    if current != ctx.0 {
        // SAFETY: the context is alive (its `Device` holds it).
        cu(unsafe { sys::cuCtxSetCurrent(ctx.0) })?;
    }
    Ok(())
}

/// Counters a [`Gpu`](crate::Gpu) reports in [`GpuStats`](crate::GpuStats).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submitted: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) faults: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) queries: AtomicU64,
    pub(crate) host_wakeups: AtomicU64,
    pub(crate) host_function_failures: AtomicU64,
    pub(crate) driver_errors: AtomicU64,
    pub(crate) orphans: AtomicU64,
}

/// Work for the reclaimer thread.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// One CUDA context and its shared state; see the module docs.
pub(crate) struct Device {
    ctx: RawCtx,
    cu_device: CUdevice,
    ordinal: usize,
    primary: bool,
    /// Stream-ordered allocation (`cuMemAllocAsync`) is supported.
    pub(crate) has_pools: bool,
    /// Compute capability (major, minor).
    pub(crate) arch: (i32, i32),
    /// The first sticky error met: (name, message).
    fault: Mutex<Option<(String, String)>>,
    pub(crate) counters: Counters,
    last_background_error: Mutex<Option<String>>,
    /// Where device memory is freed (after the streams that used it), and
    /// where nothing else runs.
    free_stream: CUstream,
    pub(crate) pinned: PinnedPool,
    pub(crate) events: EventPool,
    /// The context was released early, after a fault (see
    /// [`Device::release_if_faulted`]).
    released: std::sync::atomic::AtomicBool,
    reclaimer: Mutex<Option<mpsc::Sender<Job>>>,
}

// SAFETY: the raw handles are opaque driver values usable from any thread
// with the context bound (invariant 1); the rest is Send + Sync.
unsafe impl Send for Device {}
// SAFETY: as for Send.
unsafe impl Sync for Device {}

impl Device {
    /// Opens device `ordinal`: its primary context, or a new context if the
    /// primary one has faulted and is still held (see `error.rs`).
    pub(crate) fn open(ordinal: usize, pinned_pool_limit: usize) -> Result<Arc<Device>, GpuError> {
        let call = "open the device";
        let err = |e| GpuError::from_driver(call, e);
        // SAFETY: plain driver calls with out-pointers we own.
        unsafe {
            cu(sys::cuInit(0)).map_err(err)?;
            let mut cu_device: CUdevice = 0;
            cu(sys::cuDeviceGet(&mut cu_device, ordinal as i32)).map_err(err)?;
            let mut ctx: CUcontext = std::ptr::null_mut();
            cu(sys::cuDevicePrimaryCtxRetain(&mut ctx, cu_device)).map_err(err)?;
            let mut primary = true;
            let probed = probe(RawCtx(ctx));
            if let Err(e) = probed.filter_sticky() {
                let _ = sys::cuDevicePrimaryCtxRelease_v2(cu_device);
                return Err(err(e));
            }
            if let Err(fault) = probed {
                // The primary context is dead and someone still holds it:
                // make a context of our own.
                let _ = sys::cuDevicePrimaryCtxRelease_v2(cu_device);
                let mut fresh: CUcontext = std::ptr::null_mut();
                if let Err(e) = cu(sys::cuCtxCreate_v2(&mut fresh, 0, cu_device)) {
                    let (name, message) = describe(fault);
                    let (why, _) = describe(e);
                    return Err(GpuError::Fault {
                        call: call.into(),
                        name,
                        message: format!(
                            "{message}; the primary context is dead and still held, and a new context \
                             could not be made ({why}): drop every handle of the old one and open again"
                        ),
                    });
                }
                ctx = fresh;
                primary = false;
            }
            let ctx = RawCtx(ctx);
            let attr = |a| {
                let mut v = 0;
                cu(sys::cuDeviceGetAttribute(&mut v, a, cu_device)).map(|_| v)
            };
            use sys::CUdevice_attribute::*;
            let has_pools = attr(CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED).map_err(err)? > 0;
            let arch = (
                attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR).map_err(err)?,
                attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR).map_err(err)?,
            );
            make_current(ctx).map_err(err)?;
            let mut free_stream: CUstream = std::ptr::null_mut();
            cu(sys::cuStreamCreate(
                &mut free_stream,
                sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
            ))
            .map_err(err)?;
            let (tx, rx) = mpsc::channel::<Job>();
            let device = Arc::new(Device {
                ctx,
                cu_device,
                ordinal,
                primary,
                has_pools,
                arch,
                fault: Mutex::new(None),
                counters: Counters::default(),
                last_background_error: Mutex::new(None),
                free_stream,
                pinned: PinnedPool::new(pinned_pool_limit),
                events: EventPool::default(),
                released: std::sync::atomic::AtomicBool::new(false),
                reclaimer: Mutex::new(Some(tx)),
            });
            spawn_reclaimer(ctx, rx);
            Ok(device)
        }
    }

    pub(crate) fn ordinal(&self) -> usize {
        self.ordinal
    }

    pub(crate) fn cu_device(&self) -> CUdevice {
        self.cu_device
    }

    pub(crate) fn is_primary(&self) -> bool {
        self.primary
    }

    /// Binds the context to this thread for `call` (invariant 1); fails
    /// with the fault if the context is dead (invariant 3).
    pub(crate) fn bind(&self, call: &str) -> Result<(), GpuError> {
        if let Some((name, message)) = lock(&self.fault).clone() {
            return Err(GpuError::Fault {
                call: call.into(),
                name,
                message,
            });
        }
        make_current(self.ctx).map_err(|e| self.error(call, e))
    }

    /// Binds the context without looking at the fault state: for the
    /// tracker, which must still ask events how their work ended.
    pub(crate) fn bind_raw(&self) -> Result<(), DriverError> {
        make_current(self.ctx)
    }

    /// The error for `err` from `call`; a sticky one marks the context
    /// faulted (invariant 3).
    pub(crate) fn error(&self, call: impl Into<String>, err: DriverError) -> GpuError {
        if is_sticky(err.0) {
            self.mark_faulted(err);
        }
        GpuError::from_driver(call, err)
    }

    pub(crate) fn mark_faulted(&self, err: DriverError) {
        let mut fault = lock(&self.fault);
        if fault.is_none() {
            *fault = Some(describe(err));
        }
    }

    /// The stored fault, if the context is dead.
    pub(crate) fn fault(&self) -> Option<(String, String)> {
        lock(&self.fault).clone()
    }

    /// Counts an error that has no caller to go to (invariant 2).
    pub(crate) fn background_error(&self, what: &str, err: DriverError) {
        if is_sticky(err.0) {
            self.mark_faulted(err);
        }
        self.counters.driver_errors.fetch_add(1, Relaxed);
        let (name, _) = describe(err);
        *lock(&self.last_background_error) = Some(format!("{what}: {name}"));
    }

    pub(crate) fn last_background_error(&self) -> Option<String> {
        lock(&self.last_background_error).clone()
    }

    /// Binds and runs `f`, counting its error: for drops. On a faulted
    /// context it does nothing: the handles and memory of a dead context
    /// go with it.
    pub(crate) fn in_background(&self, what: &str, f: impl FnOnce() -> Result<(), DriverError>) {
        if self.fault().is_some() {
            return;
        }
        if let Err(e) = self.bind_raw().and_then(|()| f()) {
            self.background_error(what, e);
        }
    }

    /// The last `Gpu` handle of a faulted context is gone: release the
    /// context now, so the driver can make the primary context fresh
    /// again, rather than when the last buffer of it goes (buffers of
    /// operations in flight at the fault are leaked, and would hold it
    /// forever). Nothing of a dead context makes driver calls afterwards
    /// (`in_background`, `DeviceAlloc`'s and modules' drops check the
    /// fault first).
    pub(crate) fn release_if_faulted(&self) {
        if self.fault().is_none() || self.released.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let (ctx, cu_device, primary) = (self.ctx, self.cu_device, self.primary);
        self.reclaim(Box::new(move || release_context(ctx, cu_device, primary)));
    }

    /// The stream device memory is freed on.
    pub(crate) fn free_stream(&self) -> CUstream {
        self.free_stream
    }

    /// Runs `job` on the reclaimer thread, with the context bound there.
    /// The job may block on the device; its errors go to
    /// [`Device::background_error`].
    pub(crate) fn reclaim(&self, job: Job) {
        match lock(&self.reclaimer).as_ref() {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(job) {
                    // The thread is gone (it never panics; only process
                    // exit ends it): nothing left to protect.
                    std::mem::forget(job);
                }
            }
            None => std::mem::forget(job),
        }
    }
}

/// Binds `ctx` and asks a non-blocking question whose answer is the
/// sticky error on a dead context.
fn probe(ctx: RawCtx) -> Result<(), DriverError> {
    make_current(ctx)?;
    // SAFETY: querying the legacy default stream of a bound context.
    match cu(unsafe { sys::cuStreamQuery(std::ptr::null_mut()) }) {
        Err(e) if e.0 == CUresult::CUDA_ERROR_NOT_READY => Ok(()),
        other => other,
    }
}

/// Splits a probe's answer: `Err` here only for errors that are not
/// sticky (the device is unusable for another reason).
trait FilterSticky {
    fn filter_sticky(&self) -> Result<(), DriverError>;
}

impl FilterSticky for Result<(), DriverError> {
    fn filter_sticky(&self) -> Result<(), DriverError> {
        match self {
            Err(e) if !is_sticky(e.0) => Err(*e),
            _ => Ok(()),
        }
    }
}

/// The reclaimer: a thread per device that makes the driver calls that
/// can block on the device (invariant 4), in order, and at the end
/// releases the context.
fn spawn_reclaimer(ctx: RawCtx, jobs: mpsc::Receiver<Job>) {
    let spawned = std::thread::Builder::new()
        .name("weft-gpu-reclaim".into())
        .spawn(move || {
            let _ = make_current(ctx);
            for job in jobs {
                // A job binds what it needs; a panic in one (a bug) must
                // not stop the frees after it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        });
    if let Err(e) = spawned {
        // Without the thread, reclaimed memory leaks (safe): say so once.
        eprintln!("weft-gpu: could not start the reclaimer thread ({e}); blocking frees will leak instead");
    }
}

impl Drop for Device {
    /// Everything made in the context is gone (they hold the `Device`):
    /// the reclaimer frees the pooled pinned memory, destroys the free
    /// stream and releases the context, off this thread. These are the
    /// only driver errors with nowhere to go (no handle is left to ask
    /// `Gpu::stats`): the context is released either way.
    fn drop(&mut self) {
        let ctx = self.ctx;
        let (cu_device, primary) = (self.cu_device, self.primary);
        let free_stream = RawStream(self.free_stream);
        let pooled = self.pinned.drain();
        let events = self.events.drain();
        if self.released.load(std::sync::atomic::Ordering::Acquire) {
            // Released after a fault: its handles went with it.
            drop(lock(&self.reclaimer).take());
            return;
        }
        let job: Job = Box::new(move || {
            let free_stream = free_stream;
            let _ = make_current(ctx);
            for event in events {
                // SAFETY: pooled events are ours alone.
                let _ = unsafe { sys::cuEventDestroy_v2(event.0) };
            }
            for block in pooled {
                // SAFETY: pooled blocks are ours alone (no buffer holds
                // them) and were allocated by cuMemHostAlloc.
                let _ = unsafe { sys::cuMemFreeHost(block.0) };
            }
            // SAFETY: the free stream was made at open and is used by no
            // one now.
            let _ = unsafe { sys::cuStreamDestroy_v2(free_stream.0) };
            release_context(ctx, cu_device, primary);
        });
        self.reclaim(job);
        // Closing the channel ends the thread after the last job.
        drop(lock(&self.reclaimer).take());
    }
}

/// Releases the primary context (or destroys our own), once.
fn release_context(ctx: RawCtx, cu_device: CUdevice, primary: bool) {
    // SAFETY: called once per context, when nothing will use it again.
    unsafe {
        let _ = if primary {
            sys::cuDevicePrimaryCtxRelease_v2(cu_device)
        } else {
            sys::cuCtxDestroy_v2(ctx.0)
        };
    }
}

/// A stream handle that may cross threads.
#[derive(Clone, Copy)]
pub(crate) struct RawStream(pub(crate) CUstream);

// SAFETY: an opaque driver handle, used with its context bound.
unsafe impl Send for RawStream {}
